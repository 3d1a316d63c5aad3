"""Class counts and class weights, from a label array, a stream or a Dask cluster.

Weights are computed once from the training labels and then passed to every loss:
:func:`class_counts` counts the classes, :func:`class_weights` turns the counts into
weights by one of six schemes and four normalisations, :func:`pos_weight` gives the
positive weight of each label of a multi-label task, and :class:`ClassCounter`
accumulates counts batch by batch and merges with ``+``.

With ``n_c`` the count of class ``c``, ``N = sum_c n_c``, ``f_c = n_c / N`` and ``C``
the number of classes:

============================  =============================================
``scheme``                    weight ``w_c``
============================  =============================================
``"inverse"``                 ``1 / n_c``
``"balanced"``                ``N / (C * n_c)``
``"inverse_sqrt"``            ``1 / sqrt(n_c)``
``"effective_number"``        ``(1 - beta) / (1 - beta ** n_c)``
``"median_frequency"``        ``median(f) / f_c``
``"log"``                     ``1 / log(c + f_c)``
============================  =============================================

Checked only on concrete arrays (skipped under ``jax.jit``, ``torch.compile`` and
``tf.function``, where a bad value cannot raise): labels in range, counts and
weights non-negative and finite, empty classes. On Dask the same checks run when
the result is computed.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from . import _checks
from ._backend import Backend, convert
from ._checks import fail, fmt_shape
from ._core import sample_weight_to

__all__ = [
    "NORMALIZATIONS",
    "SCHEMES",
    "ClassCounter",
    "class_counts",
    "class_weights",
    "pos_weight",
]

SCHEMES = (
    "inverse",
    "balanced",
    "inverse_sqrt",
    "effective_number",
    "median_frequency",
    "log",
)
NORMALIZATIONS = (None, "sum_to_one", "sum_to_classes", "mean_sample")

_DASK_GROUP = 16  # per-chunk counts summed this many at a time


# ---------------------------------------------------------------------------
# class_counts
# ---------------------------------------------------------------------------
def class_counts(
    labels: Any,
    *,
    num_classes: int | None = None,
    sample_weight: Any | None = None,
    ignore_index: int | None = None,
) -> Any:
    """The (weighted) number of elements of each class.

    In short: ``n_c = sum_i sample_weight_i * [labels_i == c]``, over every element
    of ``labels`` whose value is not ``ignore_index``.

    Args:
        labels: integer class ids of any shape: (N,) for a classifier, (N, H, W)
            for a segmentation mask. NumPy, PyTorch, JAX or TensorFlow arrays, a
            list, or a Dask array or Dask DataFrame column. Boolean labels count
            as classes 0 and 1.
        num_classes: ``C``. ``None`` takes the largest class id plus one, which
            reads the data: pass it under ``jax.jit`` and friends, and to keep
            classes that never occur.
        sample_weight: non-negative weight of each element, of the shape of
            ``labels`` or of its leading dimensions (a (N,) weight for (N, H, W)
            masks weighs each sample); a scalar broadcasts.
        ignore_index: a class id whose elements are not counted (such as -100).

    Returns:
        Float counts of shape (C,), of the backend and device of ``labels``:
        float64 (float32 on JAX without x64). For a Dask input, a lazy Dask
        array of shape (C,) that runs on the scheduler in use when computed (its
        length is unknown until then if ``num_classes`` is ``None``), and whose
        checks run then.

    Raises:
        TypeError: floating or complex labels, ``num_classes`` not an int, or
            ``num_classes=None`` on traced labels.
        ValueError: outside tracing, a class id that is negative or not below
            ``num_classes`` (other than ``ignore_index``), no labels at all with
            ``num_classes=None``, negative or non-finite ``sample_weight``.

    Not checked under tracing: the range of the class ids; an id outside
    [0, C) is then not counted.

    Examples:
        >>> import numpy as np
        >>> class_counts(np.array([0, 0, 2, 0, 1, 0]))
        array([4., 1., 1.])
        >>> class_counts(np.array([0, 1, -100]), num_classes=3, ignore_index=-100)
        array([1., 1., 0.])
        >>> class_counts([0, 1, 1], sample_weight=[2.0, 0.5, 0.5])
        array([2., 1.])
    """
    num_classes = _check_num_classes(num_classes)
    ignore = _checks.check_ignore_index(ignore_index)
    if _is_dask(labels):
        return _dask_counts(labels, num_classes, sample_weight, ignore)
    be, lab = convert(labels)
    _check_label_kind(be, lab)
    if be.kind(lab) == "bool":
        lab = be.xp.astype(lab, _index_dtype(be))
    traced = be.is_traced(lab)
    if not traced:
        num_classes = _check_class_ids(be, lab, num_classes, ignore)
    elif num_classes is None:
        fail(
            "num_classes",
            "an int when the labels are traced (jit/compile)",
            "None",
            "pass num_classes=C",
            cls=TypeError,
        )
    assert num_classes is not None
    dtype = _count_dtype(be)
    xp = be.xp
    valid = xp.logical_and(lab >= 0, lab < num_classes)
    if ignore is not None:
        valid = xp.logical_and(valid, lab != ignore)
    weight = xp.astype(valid, dtype)
    if sample_weight is not None:
        sw = sample_weight_to(
            be, sample_weight, tuple(lab.shape), like=lab, dtype=dtype
        )
        weight = weight * xp.broadcast_to(sw, tuple(lab.shape))
    index = xp.astype(xp.where(valid, lab, xp.zeros_like(lab)), _index_dtype(be))
    flat = (int(np.prod(lab.shape)),)
    counts = _scatter_add(
        be,
        xp.reshape(index, flat),
        xp.reshape(weight, flat),
        num_classes,
        dtype,
        like=lab,
    )
    return np.asarray(counts) if be.name == "numpy" else counts


def _check_num_classes(num_classes: Any) -> int | None:
    if num_classes is None:
        return None
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral):
        fail(
            "num_classes",
            "a positive int or None",
            repr(num_classes),
            "pass the number of classes C",
            cls=TypeError,
        )
    if num_classes < 1:
        fail(
            "num_classes",
            "a positive int or None",
            repr(num_classes),
            "pass the number of classes C",
        )
    return int(num_classes)


def _check_label_kind(be: Backend, lab: Any) -> None:
    kind = be.kind(lab)
    if kind not in ("integer", "bool"):
        fail(
            "labels",
            "integer class ids",
            f"dtype {lab.dtype}",
            "cast them to an integer dtype (for multi-hot labels use pos_weight)",
            cls=TypeError,
        )


def _check_class_ids(
    be: Backend, lab: Any, num_classes: int | None, ignore: int | None
) -> int:
    """Eager: every counted id in [0, num_classes); returns num_classes."""
    host = be.to_numpy(lab)
    counted = host if ignore is None else host[host != ignore]
    if counted.size and counted.min() < 0:
        bad = int(counted.min())
        fail(
            "labels",
            "class ids >= 0"
            + (f" or ignore_index={ignore}" if ignore is not None else ""),
            f"an entry equal to {bad}",
            "fix the labels, or pass ignore_index= for padding values",
        )
    if num_classes is None:
        if not counted.size:
            fail(
                "labels",
                "at least one class id when num_classes is None",
                f"{host.size} elements"
                + (f", all equal to ignore_index={ignore}" if host.size else ""),
                "pass num_classes=C",
            )
        return int(counted.max()) + 1
    if counted.size and counted.max() >= num_classes:
        bad = int(counted.max())
        fail(
            "labels",
            f"class ids in [0, {num_classes}) for num_classes={num_classes}",
            f"an entry equal to {bad}",
            "fix the labels, or raise num_classes",
        )
    return num_classes


def _count_dtype(be: Backend) -> Any:
    """float64, or float32 on JAX without x64."""
    if be.name == "jax":
        import jax.numpy as jnp

        if jnp.result_type(float) != jnp.float64:
            return be.xp.float32
    return be.xp.float64


def _index_dtype(be: Backend) -> Any:
    """int64, or int32 on JAX without x64 (which would warn and truncate)."""
    if be.name == "jax" and _count_dtype(be) != be.xp.float64:
        return be.xp.int32
    return be.xp.int64


def _scatter_add(
    be: Backend, index: Any, weight: Any, size: int, dtype: Any, *, like: Any
) -> Any:
    """``out[index[i]] += weight[i]`` into zeros of shape (size,)."""
    if be.name == "torch":
        import torch

        out = torch.zeros(size, dtype=dtype, device=like.device)
        return out.index_add(0, index, weight)
    if be.name == "jax":
        import jax.numpy as jnp

        return jnp.zeros(size, dtype=dtype).at[index].add(weight)
    if be.name == "tensorflow":
        tf = be.xp._tf
        return tf.math.unsorted_segment_sum(weight, index, size)
    return np.bincount(index, weights=weight, minlength=size).astype(dtype)


# ---------------------------------------------------------------------------
# Dask: one count per chunk, summed in a tree, all lazy
# ---------------------------------------------------------------------------
def _is_dask(x: Any) -> bool:
    return type(x).__module__.startswith("dask") and hasattr(x, "to_delayed")


def _dask_counts(
    labels: Any,
    num_classes: int | None,
    sample_weight: Any | None,
    ignore: int | None,
) -> Any:
    import dask
    import dask.array as da

    label_parts, weight_parts = _dask_parts(labels, sample_weight)
    count = dask.delayed(_chunk_counts, pure=True)
    parts = [
        count(lab, w, num_classes, ignore)
        for lab, w in zip(label_parts, weight_parts, strict=True)
    ]
    add = dask.delayed(_add_counts, pure=True)
    while len(parts) > 1:
        parts = [
            add(*parts[i : i + _DASK_GROUP]) for i in range(0, len(parts), _DASK_GROUP)
        ]
    total = dask.delayed(_final_counts, pure=True)(
        parts[0] if parts else np.zeros(num_classes or 0), num_classes, ignore
    )
    length = np.nan if num_classes is None else num_classes
    return da.from_delayed(total, shape=(length,), dtype=np.float64)


def _dask_parts(labels: Any, sample_weight: Any | None) -> tuple[list, list]:
    import dask.array as da

    try:
        dtype = np.dtype(labels.dtype)
    except TypeError:  # a pandas extension dtype, such as a category
        dtype = np.dtype(object)
    if dtype.kind not in "iub":
        fail(
            "labels",
            "integer class ids",
            f"dtype {labels.dtype}",
            "cast them with .astype(int) (for multi-hot labels use pos_weight)",
            cls=TypeError,
        )
    if not isinstance(labels, da.Array):  # a Dask DataFrame column
        label_parts = list(labels.to_delayed())
        if sample_weight is None:
            return label_parts, [None] * len(label_parts)
        if not _is_dask(sample_weight) or isinstance(sample_weight, da.Array):
            fail(
                "sample_weight",
                "a Dask column partitioned like labels",
                type(sample_weight).__name__,
                "pass ddf[weight_column]",
            )
        weight_parts = list(sample_weight.to_delayed())
        if len(weight_parts) != len(label_parts):
            fail(
                "sample_weight",
                f"{len(label_parts)} partitions like labels",
                f"{len(weight_parts)} partitions",
                "take both columns from the same DataFrame",
            )
        return label_parts, weight_parts
    label_parts = list(labels.to_delayed().ravel())
    if sample_weight is None:
        return label_parts, [None] * len(label_parts)
    sw = da.asarray(sample_weight)
    shape = tuple(labels.shape)
    if sw.ndim > len(shape) or any(
        s not in (1, e) for s, e in zip(sw.shape, shape, strict=False)
    ):
        fail(
            "sample_weight",
            f"broadcastable to the labels' shape "
            f"{fmt_shape(shape)} (its dimensions align with the leading ones)",
            f"shape {fmt_shape(sw.shape)}",
            "pass one weight per element or per sample",
        )
    sw = da.reshape(sw, tuple(sw.shape) + (1,) * (len(shape) - sw.ndim))
    sw = da.broadcast_to(sw, shape).rechunk(labels.chunks)
    return label_parts, list(sw.to_delayed().ravel())


def _chunk_counts(
    labels: Any, weight: Any | None, num_classes: int | None, ignore: int | None
) -> np.ndarray:
    """Counts of one chunk; without num_classes, as long as its largest id."""
    lab = np.asarray(labels)
    if lab.dtype.kind == "b":
        lab = lab.astype(np.int64)
    counted = lab if ignore is None else lab[lab != ignore]
    if num_classes is None and not counted.size:
        return np.zeros(0)
    return np.asarray(
        class_counts(
            lab,
            num_classes=num_classes,
            sample_weight=None
            if weight is None
            else np.asarray(weight, dtype=np.float64),
            ignore_index=ignore,
        ),
        dtype=np.float64,
    )


def _add_counts(*parts: np.ndarray) -> np.ndarray:
    out = np.zeros(max(len(p) for p in parts))
    for p in parts:
        out[: len(p)] += p
    return out


def _final_counts(
    counts: np.ndarray, num_classes: int | None, ignore: int | None
) -> np.ndarray:
    if not len(counts):
        fail(
            "labels",
            "at least one class id when num_classes is None",
            "no counted elements"
            + (f" (all equal to ignore_index={ignore})" if ignore is not None else ""),
            "pass num_classes=C",
        )
    return counts


# ---------------------------------------------------------------------------
# class_weights
# ---------------------------------------------------------------------------
def class_weights(
    counts: Any,
    *,
    scheme: str = "balanced",
    normalize: str | None = None,
    beta: float = 0.999,
    c: float = 1.02,
    empty: str = "error",
) -> Any:
    """Class weights from class counts, by one of six schemes.

    In short: rare classes weigh more. With ``n_c`` the counts, ``N = sum_c n_c``,
    ``f_c = n_c / N`` and ``C`` the number of classes, ``scheme`` gives:

    * ``"inverse"``: ``w_c = 1 / n_c``;
    * ``"balanced"``: ``w_c = N / (C * n_c)`` (scikit-learn's ``"balanced"``;
      ``sum_c n_c w_c = N``);
    * ``"inverse_sqrt"``: ``w_c = 1 / sqrt(n_c)``;
    * ``"effective_number"``: ``w_c = (1 - beta) / (1 - beta ** n_c)`` (Cui et al.
      2019), computed as ``(1 - beta) / -expm1(n_c * log(beta))``; ``beta = 1``
      gives its limit ``1 / n_c`` and ``beta = 0`` gives 1;
    * ``"median_frequency"``: ``w_c = median_c'(f_c') / f_c`` (Eigen and Fergus
      2015), the median over the classes that occur;
    * ``"log"``: ``w_c = 1 / log(c + f_c)`` (ENet, Paszke et al. 2016), bounded
      by ``1 / log(c)``.

    Then ``normalize`` rescales them:

    * ``None``: the scheme's own scale;
    * ``"sum_to_one"``: ``w / sum_c w_c``;
    * ``"sum_to_classes"``: ``C * w / sum_c w_c`` (the mean weight is 1);
    * ``"mean_sample"``: ``N * w / sum_c n_c w_c``, so ``sum_c n_c w_c = N``: the
      average sample weight is 1 and a ``"mean"`` loss keeps its unweighted scale.

    A class with ``n_c = 0`` raises ``ValueError`` naming it, unless
    ``empty="zero"``: it then gets weight 0 and is left out of everything else;
    ``C`` counts only the classes that occur (in ``"balanced"`` and
    ``"sum_to_classes"``) and the median is taken over them. Under tracing the
    check cannot run and empty classes are treated as with ``empty="zero"``.

    Args:
        counts: class counts of shape (C,), such as :func:`class_counts` returns;
            any backend, a list, or a lazy Dask array.
        scheme: one of ``"inverse"``, ``"balanced"``, ``"inverse_sqrt"``,
            ``"effective_number"``, ``"median_frequency"``, ``"log"``.
        normalize: ``None``, ``"sum_to_one"``, ``"sum_to_classes"`` or
            ``"mean_sample"``.
        beta: of ``"effective_number"``, in [0, 1].
        c: of ``"log"``, greater than 1 so every weight is positive and finite.
        empty: ``"error"`` or ``"zero"``: what a class with no samples gets.

    Returns:
        Weights of shape (C,), same backend and device as ``counts``; float64 for
        integer counts (float32 on JAX without x64), else the counts' dtype
        promoted with float32. Lazy for Dask counts (the checks run on compute).

    Raises:
        ValueError: unknown ``scheme``, ``normalize`` or ``empty``, ``beta``
            outside [0, 1], ``c <= 1``, ``counts`` not of shape (C,); outside
            tracing, negative or non-finite counts, a class with ``n_c = 0`` and
            ``empty="error"``, or every count 0.
        TypeError: boolean or complex counts, non-real ``beta`` or ``c``.

    Examples:
        >>> import numpy as np
        >>> class_weights(np.array([6, 3, 1]))
        array([0.55555556, 1.11111111, 3.33333333])
        >>> class_weights([6, 3, 1], scheme="inverse", normalize="sum_to_one")
        array([0.11111111, 0.22222222, 0.66666667])
        >>> class_weights([6, 0, 4], scheme="balanced", empty="zero")
        array([0.83333333, 0.        , 1.25      ])
    """
    _check_choice(scheme, "scheme", SCHEMES, "'balanced' gives N / (C * n_c)")
    _check_choice(
        normalize, "normalize", NORMALIZATIONS, "None keeps the scheme's own scale"
    )
    _check_choice(
        empty,
        "empty",
        ("error", "zero"),
        "'zero' gives a class with no samples weight 0",
    )
    beta = _checks.check_unit_interval(
        beta, "beta", "beta near 1 gives weights near 1 / n_c, 0 uniform weights"
    )
    if isinstance(c, bool) or not isinstance(c, numbers.Real):
        fail(
            "c",
            "a float > 1",
            repr(c),
            "pass a Python float such as 1.02",
            cls=TypeError,
        )
    if not float(c) > 1.0:
        fail(
            "c",
            "a float > 1 (so that log(c + f_c) > 0)",
            repr(c),
            "pass a value such as 1.02",
        )
    options: dict[str, Any] = {
        "scheme": scheme,
        "normalize": normalize,
        "beta": beta,
        "c": float(c),
        "empty": empty,
    }
    if _is_dask(counts):
        return _dask_weights(counts, options)

    be, n = convert(counts)
    kind = be.kind(n)
    if kind not in ("integer", "floating"):
        fail(
            "counts",
            "a real-valued array",
            f"dtype {n.dtype}",
            "pass counts from class_counts",
            cls=TypeError,
        )
    if n.ndim != 1:
        fail(
            "counts",
            "of shape (C,), one count per class",
            f"shape {fmt_shape(n.shape)}",
            "pass counts from class_counts",
        )
    dtype = be.compute_dtype(n) if kind == "floating" else _count_dtype(be)
    n = be.xp.astype(n, dtype)
    if not be.is_traced(n):
        _check_counts(be.to_numpy(n), empty)
    out = _weights(be, n, **options)
    return np.asarray(out) if be.name == "numpy" else out


def _check_choice(value: Any, argument: str, choices: tuple, fix: str) -> None:
    if not any(value is v or (isinstance(value, str) and value == v) for v in choices):
        fail(
            argument, "one of " + ", ".join(repr(v) for v in choices), repr(value), fix
        )


def _check_counts(host: np.ndarray, empty: str) -> None:
    if not host.size:
        fail(
            "counts",
            "at least one class",
            "shape (0,)",
            "pass counts from class_counts",
        )
    if not np.isfinite(host).all() or (host < 0).any():
        where = int(np.flatnonzero(~(np.isfinite(host) & (host >= 0)))[0])
        fail(
            "counts",
            "non-negative and finite",
            f"{host[where]} for class {where}",
            "pass counts from class_counts",
        )
    zero = np.flatnonzero(host == 0)
    if len(zero) == len(host):
        fail(
            "counts",
            "positive for at least one class",
            "0 for every class",
            "count a non-empty set of labels",
        )
    if len(zero) and empty == "error":
        names = ", ".join(str(int(i)) for i in zero[:10])
        more = f" and {len(zero) - 10} more" if len(zero) > 10 else ""
        cls, it = ("class", "it") if len(zero) == 1 else ("classes", "them")
        fail(
            "counts",
            "positive for every class (the weights divide by n_c)",
            f"0 for {cls} {names}{more} (no samples, or zero total sample_weight)",
            f"give {cls} {names} samples, drop {it} from num_classes, or pass "
            f"empty='zero' to give {it} weight 0",
        )


def _weights(
    be: Backend,
    n: Any,
    *,
    scheme: str,
    normalize: str | None,
    beta: float,
    c: float,
    empty: str,
) -> Any:
    """The scheme's weights, 0 for empty classes, then the normalisation."""
    del empty
    xp = be.xp
    zero = xp.zeros_like(n)
    present = n > 0
    safe = xp.where(present, n, zero + 1)
    k = xp.sum(xp.astype(present, n.dtype))  # classes that occur
    total = xp.sum(n)
    k_safe = xp.where(k > 0, k, k + 1)
    total_safe = xp.where(total > 0, total, total + 1)
    if scheme == "inverse":
        w = 1 / safe
    elif scheme == "balanced":
        w = total / (k_safe * safe)
    elif scheme == "inverse_sqrt":
        w = 1 / xp.sqrt(safe)
    elif scheme == "effective_number":
        if beta == 0.0:
            w = zero + 1
        elif beta == 1.0:
            w = 1 / safe
        else:
            # 1 - beta ** n without cancellation for beta near 1
            w = (1.0 - beta) / -xp.expm1(safe * math.log(beta))
    elif scheme == "median_frequency":
        f = safe / total_safe
        w = _masked_median(be, f, present, k) / f
    else:  # "log"
        w = 1 / xp.log(c + xp.where(present, n, zero) / total_safe)
    w = xp.where(present, w, zero)
    if normalize is None:
        return w
    if normalize == "mean_sample":
        denom = xp.sum(n * w)
        scale = total
    else:
        denom = xp.sum(w)
        scale = k if normalize == "sum_to_classes" else 1.0
    return w * (scale / xp.where(denom > 0, denom, denom + 1))


def _masked_median(be: Backend, v: Any, present: Any, k: Any) -> Any:
    """The median of ``v`` over the ``k`` entries where ``present`` is True."""
    xp = be.xp
    inf = xp.zeros_like(v) + math.inf
    if be.name == "tensorflow":
        s = be.xp._tf.sort(xp.where(present, v, inf))
    else:
        s = xp.sort(xp.where(present, v, inf))
    k_int = xp.astype(xp.where(k > 0, k, k + 1), _index_dtype(be))
    lo = xp.reshape((k_int - 1) // 2, (1,))
    hi = xp.reshape(k_int // 2, (1,))
    mid = (xp.take(s, lo, axis=0) + xp.take(s, hi, axis=0)) / 2
    return xp.reshape(mid, ())


def _dask_weights(counts: Any, options: dict) -> Any:
    import dask
    import dask.array as da

    if counts.ndim != 1:
        fail(
            "counts",
            "of shape (C,), one count per class",
            f"shape {fmt_shape(counts.shape)}",
            "pass counts from class_counts",
        )
    (block,) = counts.rechunk(-1).to_delayed().ravel()
    out = dask.delayed(_eager_weights, pure=True)(block, options)
    return da.from_delayed(out, shape=counts.shape, dtype=np.float64)


def _eager_weights(counts: Any, options: dict) -> np.ndarray:
    return np.asarray(class_weights(np.asarray(counts, dtype=np.float64), **options))


# ---------------------------------------------------------------------------
# pos_weight
# ---------------------------------------------------------------------------
def pos_weight(labels: Any, *, axis: int = -1) -> Any:
    """``negatives / positives`` per label, for sigmoid losses on multi-hot labels.

    In short: ``P_c = sum_i (1 - y_ic) / sum_i y_ic``, summed over every axis but
    ``axis``. Pass it as ``pos_weight`` to :func:`wce.sigmoid_cross_entropy` so
    that positives and negatives of each label weigh the same in total. A label
    with no negatives gets weight 0, which switches off its positive term: such a
    label carries no information to balance, so consider leaving it out.

    Args:
        labels: multi-hot targets in [0, 1] (boolean, integer or floating; soft
            targets count fractionally): shape (N, C) for C labels, (N, C, H, W)
            with ``axis=1``, or (N,) for one binary label. Any backend, or a Dask
            array.
        axis: the label axis.

    Returns:
        Shape (C,) (a 0-d array for (N,) labels), same backend and device as
        ``labels``; float64 for boolean and integer labels (float32 on JAX
        without x64), else their dtype promoted with float32. Lazy for Dask.

    Raises:
        ValueError: outside tracing, a label with no positives (its weight would
            be infinite), targets outside [0, 1]; ``axis`` out of range.
        TypeError: complex labels, non-int ``axis``.

    Examples:
        >>> import numpy as np
        >>> y = np.array([[1, 0], [0, 0], [1, 1], [0, 0]])
        >>> pos_weight(y)
        array([1., 3.])
        >>> pos_weight(np.array([True, False, False]))
        array(2.)
    """
    if _is_dask(labels):
        return _dask_pos_weight(labels, axis)
    be, lab = convert(labels)
    xp = be.xp
    kind = be.kind(lab)
    if kind not in ("bool", "integer", "floating"):
        fail(
            "labels",
            "multi-hot targets in [0, 1]",
            f"dtype {lab.dtype}",
            "pass boolean, integer or float targets",
            cls=TypeError,
        )
    if lab.ndim < 1:
        fail(
            "labels",
            "an array of rank >= 1",
            "a scalar",
            "pass multi-hot labels of shape (N, C)",
        )
    ax = _checks.normalize_axis(axis, lab.ndim)
    dtype = be.compute_dtype(lab) if kind == "floating" else _count_dtype(be)
    t = xp.astype(lab, dtype)
    others = tuple(i for i in range(t.ndim) if i != ax) if t.ndim > 1 else None
    positives = xp.sum(t, axis=others)
    negatives = xp.sum(1 - t, axis=others)
    if not be.is_traced(t):
        host = be.to_numpy(t)
        bad = ~((host >= 0) & (host <= 1))
        if bad.any():
            fail(
                "labels",
                "multi-hot targets in [0, 1]",
                f"an entry equal to {host[bad].ravel()[0]}",
                "pass 0/1 targets per label (class ids go to class_counts)",
            )
        _check_positives(be.to_numpy(positives), "labels")
    out = negatives / positives
    return np.asarray(out) if be.name == "numpy" else out


def _check_positives(positives: np.ndarray, argument: str) -> None:
    zero = np.flatnonzero(np.atleast_1d(positives) == 0)
    if len(zero):
        names = ", ".join(str(int(i)) for i in zero[:10])
        what = "label" if len(zero) == 1 else "labels"
        fail(
            argument,
            "at least one positive for every label (pos_weight "
            "divides by the positives)",
            f"no positives for {what} {names}",
            f"drop {what} {names}, or give it a weight by hand",
        )


def _dask_pos_weight(labels: Any, axis: int) -> Any:
    import dask.array as da

    if not isinstance(labels, da.Array):
        labels = labels.to_dask_array()
    if labels.ndim < 1:
        fail(
            "labels",
            "an array of rank >= 1",
            "a scalar",
            "pass multi-hot labels of shape (N, C)",
        )
    ax = _checks.normalize_axis(axis, labels.ndim)
    t = labels.map_blocks(_checked_multihot, dtype=np.float64)
    others = tuple(i for i in range(t.ndim) if i != ax) if t.ndim > 1 else None
    positives = t.sum(axis=others).rechunk(-1)
    negatives = (1 - t).sum(axis=others).rechunk(-1)
    return da.map_blocks(_checked_ratio, negatives, positives, dtype=np.float64)


def _checked_multihot(block: np.ndarray) -> np.ndarray:
    host = np.asarray(block, dtype=np.float64)
    bad = ~((host >= 0) & (host <= 1))
    if bad.any():
        fail(
            "labels",
            "multi-hot targets in [0, 1]",
            f"an entry equal to {host[bad].ravel()[0]}",
            "pass 0/1 targets per label (class ids go to class_counts)",
        )
    return host


def _checked_ratio(negatives: np.ndarray, positives: np.ndarray) -> np.ndarray:
    _check_positives(positives, "labels")
    return np.asarray(negatives / positives)


# ---------------------------------------------------------------------------
# ClassCounter
# ---------------------------------------------------------------------------
def _host(x: Any) -> np.ndarray:
    """A float64 NumPy copy of any backend's array, a list, or a Dask array."""
    if _is_dask(x):
        x = x.compute()
    be, arr = convert(x)
    return np.asarray(be.to_numpy(arr), dtype=np.float64)


class ClassCounter:
    """Class counts accumulated batch by batch; counters merge with ``+``.

    Feed it the labels of each batch (from a ``DataLoader``, a ``tf.data``
    pipeline, a generator, or chunks of a file), then ask for ``.counts``,
    ``.weights(...)`` or ``.pos_weight()``. Counts are kept on the host in
    float64, so a counter pickles, and counters built on separate workers add up
    exactly: ``sum(counters)`` works.

    With ``multilabel=True`` each batch holds multi-hot targets with the labels
    along ``axis``; ``.counts`` are then the positives of each label.

    Args:
        num_classes: ``C``, the number of classes (or labels).
        multilabel: whether batches are multi-hot targets rather than class ids.
        axis: the label axis of multi-hot batches.
        ignore_index: a class id that is not counted (single-label only).

    Raises:
        TypeError: ``num_classes`` not an int.
        ValueError: ``num_classes < 1``; ``ignore_index`` with ``multilabel``.

    Examples:
        >>> import numpy as np
        >>> counter = ClassCounter(3)
        >>> for batch in (np.array([0, 0, 1]), np.array([0, 2, 0])):
        ...     _ = counter.update(batch)
        >>> counter.counts
        array([4., 1., 1.])
        >>> counter.weights(scheme="balanced")
        array([0.5, 2. , 2. ])
        >>> (counter + ClassCounter(3).update([1, 2])).counts
        array([4., 2., 2.])
        >>> counter.pos_weight()
        array([0.5, 5. , 5. ])
    """

    def __init__(
        self,
        num_classes: int,
        *,
        multilabel: bool = False,
        axis: int = -1,
        ignore_index: int | None = None,
    ) -> None:
        checked = _check_num_classes(num_classes)
        if checked is None:
            fail(
                "num_classes",
                "a positive int",
                "None",
                "pass the number of classes C",
                cls=TypeError,
            )
        assert checked is not None
        self.num_classes: int = checked
        self.multilabel = bool(multilabel)
        self.axis = axis
        self.ignore_index = _checks.check_ignore_index(ignore_index)
        if self.multilabel and self.ignore_index is not None:
            fail(
                "ignore_index",
                "None with multilabel=True",
                repr(self.ignore_index),
                "give ignored rows sample_weight 0",
            )
        self._counts = np.zeros(self.num_classes)
        self._rows = 0.0  # multi-label: the (weighted) number of rows

    # -- accumulating ------------------------------------------------------------
    def update(self, labels: Any, *, sample_weight: Any | None = None) -> ClassCounter:
        """Add one batch of labels; returns the counter itself.

        Args:
            labels: class ids of any shape (multi-hot targets with
                ``multilabel=True``), of any backend, a list, or a Dask array.
            sample_weight: as in :func:`class_counts`; with ``multilabel=True``
                one weight per row (every axis but ``axis``), or a scalar.

        Returns:
            ``self``, so calls chain.

        Raises:
            ValueError: class ids outside [0, C), or multi-hot labels whose
                ``axis`` does not have C entries or whose values are outside
                [0, 1].
        """
        if self.multilabel:
            self._update_multilabel(labels, sample_weight)
            return self
        counts = class_counts(
            labels,
            num_classes=self.num_classes,
            sample_weight=sample_weight,
            ignore_index=self.ignore_index,
        )
        if _is_dask(counts):
            counts = counts.compute()
        self._counts += _host(counts)
        return self

    def _update_multilabel(self, labels: Any, sample_weight: Any | None) -> None:
        t = _host(labels)
        if t.ndim < 1:
            fail(
                "labels",
                "multi-hot targets of rank >= 1",
                "a scalar",
                "pass targets of shape (N, C)",
            )
        ax = _checks.normalize_axis(self.axis, t.ndim)
        if t.shape[ax] != self.num_classes:
            fail(
                "labels",
                f"{self.num_classes} labels on axis {self.axis} "
                f"(num_classes={self.num_classes})",
                f"shape {fmt_shape(t.shape)}",
                "set axis= to the label axis",
            )
        bad = ~((t >= 0) & (t <= 1))
        if bad.any():
            fail(
                "labels",
                "multi-hot targets in [0, 1]",
                f"an entry equal to {t[bad].ravel()[0]}",
                "pass 0/1 targets per label",
            )
        t = np.moveaxis(t, ax, -1)
        w = np.ones(t.shape[:-1]) if sample_weight is None else _host(sample_weight)
        if not (np.isfinite(w) & (w >= 0)).all():
            fail(
                "sample_weight",
                "non-negative and finite",
                f"an entry equal to {w[~(np.isfinite(w) & (w >= 0))].ravel()[0]}",
                "weights scale a count and cannot be negative or NaN",
            )
        if w.ndim > t.ndim - 1 or any(
            s not in (1, e) for s, e in zip(w.shape, t.shape[:-1], strict=False)
        ):
            fail(
                "sample_weight",
                f"one weight per row, shape {fmt_shape(t.shape[:-1])}",
                f"shape {fmt_shape(w.shape)}",
                "pass one weight per sample",
            )
        w = np.broadcast_to(
            w.reshape(w.shape + (1,) * (t.ndim - 1 - w.ndim)), t.shape[:-1]
        )
        rows = t.reshape(-1, self.num_classes)
        self._counts += w.reshape(-1) @ rows
        self._rows += float(w.sum())

    def update_from(
        self,
        batches: Iterable[Any],
        *,
        select: Callable[[Any], Any] | int | str | None = None,
    ) -> ClassCounter:
        """Add every batch of an iterable (a DataLoader, a tf.data dataset, ...).

        Args:
            batches: an iterable of batches.
            select: how to find the labels in a batch: ``None`` (the batch is the
                labels), an index (``1`` for ``(x, y)`` pairs), a key (``"label"``
                for dict batches), or a function of the batch.

        Returns:
            ``self``.

        Examples:
            >>> import numpy as np
            >>> pairs = ((np.zeros((2, 4)), np.array([0, 1])) for _ in range(3))
            >>> ClassCounter(2).update_from(pairs, select=1).counts
            array([3., 3.])
        """
        for batch in batches:
            if select is None:
                labels = batch
            elif callable(select):
                labels = select(batch)
            else:
                labels = batch[select]
            self.update(labels)
        return self

    # -- results -------------------------------------------------------------
    @property
    def counts(self) -> np.ndarray:
        """Counts so far, shape (C,) float64 (positives per label if multi-label)."""
        return self._counts.copy()

    @property
    def total(self) -> float:
        """Elements counted so far (rows, for multi-label)."""
        return self._rows if self.multilabel else float(self._counts.sum())

    def weights(
        self,
        *,
        scheme: str = "balanced",
        normalize: str | None = None,
        beta: float = 0.999,
        c: float = 1.02,
        empty: str = "error",
    ) -> np.ndarray:
        """:func:`class_weights` of the counts so far, as a NumPy array."""
        return np.asarray(
            class_weights(
                self._counts,
                scheme=scheme,
                normalize=normalize,
                beta=beta,
                c=c,
                empty=empty,
            )
        )

    def pos_weight(self) -> np.ndarray:
        """``negatives / positives`` per class (one-vs-rest) or per label.

        Raises:
            ValueError: a class or label with no positives.
        """
        _check_positives(self._counts, "counts")
        return (self.total - self._counts) / self._counts

    # -- merging -----------------------------------------------------------------
    def _same_kind(self, other: ClassCounter) -> None:
        mine = (self.num_classes, self.multilabel, self.ignore_index)
        theirs = (other.num_classes, other.multilabel, other.ignore_index)
        if mine != theirs:
            fail(
                "other",
                f"a ClassCounter with (num_classes, multilabel, ignore_index) = {mine}",
                f"{theirs}",
                "merge counters built with the same settings",
            )

    def __add__(self, other: Any) -> ClassCounter:
        if not isinstance(other, ClassCounter):
            return NotImplemented
        self._same_kind(other)
        out = ClassCounter(
            self.num_classes,
            multilabel=self.multilabel,
            axis=self.axis,
            ignore_index=self.ignore_index,
        )
        out._counts = self._counts + other._counts
        out._rows = self._rows + other._rows
        return out

    def __radd__(self, other: Any) -> ClassCounter:
        if isinstance(other, numbers.Number) and other == 0:  # sum(counters)
            return self + ClassCounter(
                self.num_classes,
                multilabel=self.multilabel,
                axis=self.axis,
                ignore_index=self.ignore_index,
            )
        return NotImplemented

    def __repr__(self) -> str:
        kind = ", multilabel=True" if self.multilabel else ""
        return f"ClassCounter({self.num_classes}{kind}, counts={self._counts.tolist()})"
