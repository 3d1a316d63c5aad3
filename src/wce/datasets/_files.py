"""The committed data files: one canonical format, and their recorded hashes.

Each committed table is a CSV of integers (a header row of column names, the
source's class code in the last column, ``\\n`` line ends) compressed with gzip.
The recorded SHA-256 is that of the uncompressed CSV text, so it does not depend
on the zlib build that compressed it; ``scripts/rebuild_datasets.py`` rebuilds
each file from its registry source and checks it against this table.
"""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Sequence
from importlib import resources

import numpy as np

SHA256 = {
    "satimage.csv.gz": (
        "98bfae896ef5c1cac3f43f7e4c33b568bbf64358c9f249e4945ec4c05e9f18ab"
    ),
    "shuttle.csv.gz": (
        "23bb3a4c98a4e28989a83c1c4585ddd06c76b473adc601993ff4e996198aef33"
    ),
}


class DataIntegrityError(RuntimeError):
    """A committed data file does not match its recorded hash."""


def csv_text(columns: Sequence[str], rows: np.ndarray) -> bytes:
    """The canonical CSV text of an integer table.

    Args:
        columns: Column names for the header row.
        rows: Integer table of shape (n_rows, len(columns)).

    Returns:
        The UTF-8 bytes of the CSV, one ``\\n``-terminated line per row.
    """
    lines = [",".join(columns)]
    lines.extend(",".join(str(int(v)) for v in row) for row in rows)
    return ("\n".join(lines) + "\n").encode()


def compress(text: bytes) -> bytes:
    """Gzip ``text`` with no file name and a zero timestamp in the header."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as f:
        f.write(text)
    return buffer.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_table(filename: str) -> tuple[tuple[str, ...], np.ndarray]:
    """Read a committed table after checking its hash.

    Args:
        filename: Name of the file in ``wce/datasets/data``.

    Returns:
        The column names and the int64 table of shape (n_rows, n_columns).

    Raises:
        DataIntegrityError: The uncompressed text does not have the recorded
            SHA-256.
    """
    source = resources.files("wce.datasets").joinpath("data", filename)
    text = gzip.decompress(source.read_bytes())
    digest = sha256(text)
    if digest != SHA256[filename]:
        raise DataIntegrityError(
            f"{filename} has SHA-256 {digest}, expected {SHA256[filename]}; "
            "reinstall wce or rebuild it with scripts/rebuild_datasets.py"
        )
    header, _, body = text.partition(b"\n")
    columns = tuple(header.decode().split(","))
    table = np.loadtxt(io.BytesIO(body), delimiter=",", dtype=np.int64, ndmin=2)
    return columns, table
