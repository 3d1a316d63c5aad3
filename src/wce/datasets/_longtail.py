"""The CIFAR-10-LT protocol: exponentially decaying per-class counts."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .._checks import fail


def long_tailed_counts(
    n_max: int, num_classes: int, imbalance_factor: float
) -> list[int]:
    """Per-class counts of the CIFAR-10-LT protocol (Cao et al., 2019).

    Class ``i`` of ``C`` keeps ``int(n_max * r ** (-i / (C - 1)))`` examples, so
    class 0 keeps ``n_max``, the last class ``n_max / r`` (rounded down), and the
    counts in between decay exponentially.

    Args:
        n_max: Count of the largest class (class 0), at least 1.
        num_classes: Number of classes ``C``, at least 2.
        imbalance_factor: Ratio ``r`` of the largest to the smallest count, at
            least 1.

    Returns:
        The ``C`` counts, largest first.

    Raises:
        ValueError: An argument is out of range.
        TypeError: An argument has the wrong type.

    References:
        Cao, Wei, Gaidon, Arechiga and Ma (2019), "Learning Imbalanced Datasets
        with Label-Distribution-Aware Margin Loss", NeurIPS.

    Example:
        >>> long_tailed_counts(5000, 10, 100)
        [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    """
    _check_count(n_max, "n_max", 1)
    _check_count(num_classes, "num_classes", 2)
    r = _check_factor(imbalance_factor)
    c = int(num_classes)
    return [int(n_max * r ** (-i / (c - 1))) for i in range(c)]


def long_tailed_subset(y: Any, imbalance_factor: float, seed: int = 0) -> np.ndarray:
    """Indices of a long-tailed subset of a labelled set.

    Applies :func:`long_tailed_counts` to the classes ``0 .. C-1`` of ``y`` with
    ``n_max`` the size of the smallest class, so every quota can be met (for a
    balanced set, ``n_max`` is the per-class count). Each class's examples are
    drawn at random without replacement.

    Args:
        y: Integer class ids of shape (n,), every class in ``0 .. C-1`` present,
            ``C >= 2``.
        imbalance_factor: Ratio of the largest to the smallest kept count, at
            least 1.
        seed: Seed of the NumPy generator that picks the examples.

    Returns:
        Sorted int64 indices into ``y``.

    Raises:
        ValueError: ``y`` is not 1-D integer ids ``0 .. C-1`` with ``C >= 2``, or
            ``imbalance_factor`` is below 1.

    Example:
        >>> y = np.repeat(np.arange(3), 100)
        >>> np.bincount(y[long_tailed_subset(y, 10)]).tolist()
        [100, 31, 10]
    """
    labels = np.asarray(y)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        fail(
            "y",
            "1-D integer class ids",
            f"{labels.dtype} of shape {labels.shape}",
            "pass the labels of shape (n,)",
        )
    r = _check_factor(imbalance_factor)
    counts = np.bincount(labels) if labels.size and labels.min() >= 0 else None
    if counts is None or counts.size < 2 or counts.min() == 0:
        present = np.unique(labels).tolist()
        fail(
            "y",
            "class ids 0 .. C-1 with C >= 2, each present",
            f"classes {present[:10]}",
            "relabel the classes to 0 .. C-1",
        )
    assert counts is not None
    quotas = long_tailed_counts(int(counts.min()), counts.size, r)
    rng = np.random.default_rng(seed)
    picked = [
        rng.choice(np.flatnonzero(labels == k), size=quota, replace=False)
        for k, quota in enumerate(quotas)
    ]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def _check_count(value: Any, argument: str, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        fail(argument, "an int", repr(value), "pass a whole number", cls=TypeError)
    if value < least:
        fail(argument, f"at least {least}", repr(value), f"pass {least} or more")


def _check_factor(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        fail(
            "imbalance_factor", "a number", repr(value), "pass 10 or 100", cls=TypeError
        )
    if not float(value) >= 1.0:
        fail(
            "imbalance_factor",
            "at least 1",
            repr(value),
            "it is the largest class count over the smallest, e.g. 100",
        )
    return float(value)
