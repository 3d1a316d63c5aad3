"""Data for the comparison: a table or a built-in dataset, split and encoded.

Every source ends as a :class:`PreparedData`: float32 features, standardised and
one-hot encoded by a scikit-learn pipeline fitted on the training split only, and
labels as class ids (single-label) or a 0/1 matrix (multi-label).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._errors import DataError, UsageError

__all__ = ["PreparedData", "from_dataset", "from_table", "load_table"]

TASKS = ("binary", "multiclass", "multilabel")
MAX_CATEGORIES = 64
_TABLE_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass(frozen=True)
class PreparedData:
    """A split, encoded dataset ready for training.

    Attributes:
        name: what the report calls the data (dataset name or file name).
        task: ``"binary"``, ``"multiclass"`` or ``"multilabel"``.
        class_names: one name per class (per label for multi-label); for binary the
            second is the positive class.
        feature_names: the encoded columns, in the order of ``X_train``.
        X_train: float32 of shape (n_train, n_features).
        y_train: int64 class ids of shape (n_train,), or for multi-label float32
            0/1 of shape (n_train, n_labels).
        X_test: float32 of shape (n_test, n_features).
        y_test: like ``y_train``, for the held-out split.
    """

    name: str
    task: str
    class_names: tuple[str, ...]
    feature_names: tuple[str, ...]
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    @property
    def num_classes(self) -> int:
        """Classes for single-label tasks, labels for multi-label."""
        return len(self.class_names)

    @property
    def training_targets(self) -> np.ndarray:
        """``y_train`` in the shape of the model's outputs: (n_train, 1) floats for
        binary (one sigmoid logit), unchanged otherwise."""
        if self.task == "binary":
            return self.y_train[:, None].astype(np.float32)
        return self.y_train

    @property
    def train_counts(self) -> np.ndarray:
        """Training rows per class (positives per label for multi-label)."""
        if self.task == "multilabel":
            return np.asarray(self.y_train.sum(axis=0), dtype=np.float64)
        return np.bincount(self.y_train, minlength=self.num_classes).astype(float)

    @property
    def train_prior(self) -> np.ndarray:
        """Class frequencies in the training split (positive rate per label)."""
        return self.train_counts / len(self.y_train)


def load_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV, TSV or Parquet file, chosen by its suffix.

    Raises:
        UsageError: the file does not exist, is a directory or has another suffix.
        DataError: the file cannot be parsed or has no rows.
    """
    path = Path(path)
    kind = _TABLE_SUFFIXES.get(path.suffix.lower())
    if path.is_dir():
        raise UsageError(
            f"'{path}' is a directory, not a data file; pass a CSV, TSV or Parquet file"
        )
    if not path.is_file():
        raise UsageError(f"file '{path}' not found; pass a CSV or Parquet file")
    if kind is None:
        raise UsageError(
            f"cannot read '{path.name}': use a .csv, .tsv or .parquet file"
        )
    try:
        if kind == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="\t" if kind == "tsv" else ",")
    except (ValueError, OSError) as err:
        text = str(err).strip()
        first = text.splitlines()[0] if text else type(err).__name__
        raise DataError(f"cannot read '{path.name}': {first}") from None
    if frame.empty:
        raise DataError(f"'{path.name}' has no rows")
    return frame


def from_table(
    frame: pd.DataFrame,
    *,
    target: str | None = None,
    targets: Sequence[str] | None = None,
    test_size: float = 0.25,
    seed: int = 0,
    name: str = "data",
) -> PreparedData:
    """Split and encode a table with one target column or several 0/1 targets.

    Args:
        frame: the table; every column that is not a target is a feature.
        target: the class column of a single-label task (numbers, booleans or
            text; text classes are sorted, and with two classes the rarer is the
            positive one).
        targets: the 0/1 columns of a multi-label task.
        test_size: the held-out fraction, in (0, 1); the split is stratified for
            single-label tasks.
        seed: seed of the split.
        name: what the report calls the data.

    Raises:
        UsageError: neither or both of ``target`` and ``targets``, a column that is
            not in the table, ``test_size`` outside (0, 1).
        DataError: one class only, a class too small for the split, a target that
            mixes numbers and text or holds non-integer numbers, a multi-label
            target that is not 0/1, no feature columns.
    """
    _check_test_size(test_size)
    if (target is None) == (not targets):
        raise UsageError("pass either --target COLUMN or --targets A,B,C")
    wanted = [target] if target is not None else list(dict.fromkeys(targets or []))
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise UsageError(
            f"column '{missing[0]}' not in {name}; columns: {_list(frame.columns)}"
        )
    features = frame.drop(columns=wanted)
    if features.shape[1] == 0:
        raise DataError(f"{name} has no feature columns besides the target")

    if target is not None:
        keep = frame[target].notna().to_numpy()
        y, class_names = _encode_target(frame[target][keep], target)
        task = "binary" if len(class_names) == 2 else "multiclass"
    else:
        keep = frame[wanted].notna().all(axis=1).to_numpy()
        y = _multilabel_targets(frame.loc[keep, wanted])
        class_names = tuple(wanted)
        task = "multilabel"
    return _prepare(
        name,
        task,
        class_names,
        features[keep].reset_index(drop=True),
        y,
        test_size=test_size,
        seed=seed,
    )


def from_dataset(
    dataset: Any, *, test_size: float = 0.25, seed: int = 0
) -> PreparedData:
    """Split (unless it has a test set) and encode a :mod:`wce.datasets` dataset."""
    _check_test_size(test_size)
    task = str(dataset.task)
    class_names = tuple(str(c) for c in dataset.class_names)
    y = np.asarray(dataset.y)
    y = y.astype(np.float32) if task == "multilabel" else y.astype(np.int64)
    X = _as_frame(dataset.X, dataset.feature_names)
    if getattr(dataset, "X_test", None) is None:
        return _prepare(
            dataset.name, task, class_names, X, y, test_size=test_size, seed=seed
        )
    y_test = np.asarray(dataset.y_test)
    y_test = y_test.astype(y.dtype)
    X_test = _as_frame(dataset.X_test, dataset.feature_names)
    return _encode(dataset.name, task, class_names, X, y, X_test, y_test)


# ---------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------
def _encode_target(column: pd.Series, name: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """Class ids and class names of a single-label target column."""
    values = column
    if not (
        pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
    ):
        as_numbers = pd.to_numeric(values, errors="coerce")
        text = as_numbers.isna().to_numpy()
        if not text.all() and text.any():
            bad = values[text].iloc[0]
            raise DataError(
                f"target '{name}' is not numeric: it mixes numbers with text such as "
                f"'{bad}'; clean the column or make every class a word"
            )
        if not text.any():
            values = as_numbers
    if pd.api.types.is_bool_dtype(values):
        values = values.astype(np.int64)

    if pd.api.types.is_numeric_dtype(values):
        numbers = values.to_numpy(dtype=np.float64)
        fractional = numbers[numbers != np.round(numbers)]
        if fractional.size:
            raise DataError(
                f"target '{name}' has non-integer values such as {fractional[0]:g}; "
                "compare classifies: pass a column of class labels"
            )
        classes, y = np.unique(numbers.astype(np.int64), return_inverse=True)
        class_names = tuple(str(c) for c in classes)
    else:
        text_values = values.astype(str).to_numpy()
        classes_s, y = np.unique(text_values, return_inverse=True)
        if len(classes_s) == 2 and np.mean(y) > 0.5:
            classes_s, y = classes_s[::-1], 1 - y
        class_names = tuple(str(c) for c in classes_s)
    if not class_names:
        raise DataError(f"target '{name}' has no values; every row is missing")
    if len(class_names) < 2:
        raise DataError(
            f"target '{name}' has one class only ({class_names[0]!r} in {len(y)} "
            "rows); a classifier needs at least two"
        )
    return y.astype(np.int64), class_names


def _multilabel_targets(frame: pd.DataFrame) -> np.ndarray:
    """The 0/1 matrix of a multi-label task, checked column by column."""
    columns = []
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_bool_dtype(column):
            column = column.astype(np.int64)
        if not pd.api.types.is_numeric_dtype(column):
            raise DataError(
                f"target '{name}' is not numeric: multi-label targets are 0/1 columns"
            )
        values = column.to_numpy(dtype=np.float64)
        if not np.isin(values, (0.0, 1.0)).all():
            raise DataError(
                f"target '{name}' has values other than 0 and 1; multi-label "
                "targets are 0/1 columns"
            )
        if values.min() == values.max():
            raise DataError(
                f"target '{name}' has one class only ({int(values[0])} in "
                f"{len(values)} rows); drop it from --targets"
            )
        columns.append(values)
    return np.stack(columns, axis=1).astype(np.float32)


# ---------------------------------------------------------------------------
# Split and features
# ---------------------------------------------------------------------------
def _prepare(
    name: str,
    task: str,
    class_names: tuple[str, ...],
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    test_size: float,
    seed: int,
) -> PreparedData:
    """Split ``X`` and ``y`` (stratified when single-label) and encode them."""
    from sklearn.model_selection import train_test_split

    _check_split(task, class_names, y, test_size)
    index = np.arange(len(y))
    stratify = None if task == "multilabel" else y
    train, test = train_test_split(
        index, test_size=test_size, random_state=seed, stratify=stratify
    )
    if task == "multilabel":
        for part, rows in (("training", train), ("test", test)):
            empty = np.flatnonzero(y[rows].sum(axis=0) == 0)
            if empty.size:
                raise DataError(
                    f"label '{class_names[empty[0]]}' has no positives in the "
                    f"{part} split; drop it from --targets or change --test-size"
                )
    return _encode(
        name, task, class_names, X.iloc[train], y[train], X.iloc[test], y[test]
    )


def _check_split(
    task: str, class_names: tuple[str, ...], y: np.ndarray, test_size: float
) -> None:
    """Every class must reach both sides of the split."""
    need = max(2, math.ceil(1 / test_size), math.ceil(1 / (1 - test_size)))
    if task == "multilabel":
        counts = y.sum(axis=0).astype(np.int64)
    else:
        counts = np.bincount(y, minlength=len(class_names))
    small = np.flatnonzero(counts < need)
    if small.size:
        c = small[np.argmin(counts[small])]
        kind = "label" if task == "multilabel" else "class"
        rows = "positive row" if task == "multilabel" else "row"
        rows += "" if counts[c] == 1 else "s"
        raise DataError(
            f"{kind} '{class_names[c]}' has {counts[c]} {rows}, too few for "
            f"--test-size {test_size:g}: each {kind} needs at least {need}; "
            f"drop or merge it, or change --test-size"
        )


def _encode(
    name: str,
    task: str,
    class_names: tuple[str, ...],
    X_train: pd.DataFrame,
    y_train: np.ndarray,
    X_test: pd.DataFrame,
    y_test: np.ndarray,
) -> PreparedData:
    """Fit the feature pipeline on the training rows and apply it to both."""
    pipeline = _feature_pipeline(X_train)
    train = pipeline.fit_transform(X_train)
    test = pipeline.transform(X_test)
    names = tuple(str(n) for n in pipeline.get_feature_names_out())
    return PreparedData(
        name=name,
        task=task,
        class_names=class_names,
        feature_names=names,
        X_train=np.ascontiguousarray(train, dtype=np.float32),
        y_train=y_train,
        X_test=np.ascontiguousarray(test, dtype=np.float32),
        y_test=y_test,
    )


def _feature_pipeline(X: pd.DataFrame) -> Any:
    """Standardise numbers, one-hot encode the rest, impute what is missing.

    Columns with no observed value in the training rows are dropped.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    observed = [c for c in X.columns if X[c].notna().any()]
    numeric = [c for c in observed if _is_number(X[c])]
    categorical = [c for c in observed if c not in numeric]
    numbers = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median")),
            ("scale", StandardScaler()),
        ]
    )
    categories = Pipeline(
        [
            ("as_text", FunctionTransformer(_as_text, feature_names_out="one-to-one")),
            ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
            (
                "one_hot",
                OneHotEncoder(
                    handle_unknown="infrequent_if_exist",
                    max_categories=MAX_CATEGORIES,
                    sparse_output=False,
                ),
            ),
        ]
    )
    return ColumnTransformer(
        [("numeric", numbers, numeric), ("categorical", categories, categorical)],
        verbose_feature_names_out=False,
    )


def _is_number(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def _as_text(X: Any) -> np.ndarray:
    """Categorical columns as an object array of strings, missing as NaN."""
    frame = pd.DataFrame(X).astype(object)
    text = frame.map(lambda v: np.nan if pd.isna(v) else str(v))
    return np.asarray(text.to_numpy(dtype=object))


def _as_frame(X: Any, feature_names: Sequence[str] | None) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X.reset_index(drop=True)
    array = np.asarray(X)
    if array.ndim > 2:
        array = array.reshape(len(array), -1)
    names = list(feature_names) if feature_names is not None else []
    if len(names) != array.shape[1]:
        names = [f"x{i}" for i in range(array.shape[1])]
    return pd.DataFrame(array, columns=names)


def _check_test_size(test_size: float) -> None:
    if not 0.0 < test_size < 1.0:
        raise UsageError(
            f"--test-size must be between 0 and 1 (exclusive), got {test_size:g}"
        )


def _list(names: Any, limit: int = 10) -> str:
    names = [str(n) for n in names]
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
