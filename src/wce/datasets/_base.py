"""The dataset record and the error for a missing source package."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

TASKS = ("binary", "multiclass", "multilabel")


class DatasetUnavailableError(RuntimeError):
    """The package a built-in dataset is read from is not installed.

    The message is one line that ends with the command that installs it.
    """


@dataclass(frozen=True)
class Dataset:
    """A built-in dataset, its labels and where it came from.

    Attributes:
        name: The name :func:`wce.datasets.load` knows it by.
        X: Features of shape (n, d): float64 for every dataset but ``flights``,
            whose features are a pandas DataFrame of numeric columns (float64,
            with missing values) and string columns (``origin``, ``dest``).
        y: int64 class ids of shape (n,) in ``0 .. C-1`` for ``binary`` and
            ``multiclass``; an int64 multi-hot array of shape (n, L) for
            ``multilabel``.
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        class_names: One name per class id (or per label column); for binary,
            ``class_names[1]`` names the positive class.
        feature_names: One name per column of ``X``.
        X_test: Features of the fixed test split where the dataset's protocol
            defines one (the balanced test set of ``fashion-mnist-lt``), else
            None.
        y_test: Labels of that split, else None.
        description: What the rows, features and classes are.
        source: Where the data comes from and the reference to cite.
        license: The data's licence.
    """

    name: str
    X: np.ndarray | pd.DataFrame
    y: np.ndarray
    task: str
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...]
    X_test: np.ndarray | None
    y_test: np.ndarray | None
    description: str
    source: str
    license: str

    @property
    def class_counts(self) -> np.ndarray:
        """Examples per class (per label for multi-label), of shape (C,)."""
        if self.task == "multilabel":
            return np.asarray(self.y.sum(axis=0), dtype=np.int64)
        return np.bincount(self.y, minlength=len(self.class_names))
