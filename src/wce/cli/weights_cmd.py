"""``wce weights``: class counts and weights of a label column in a CSV or Parquet file.

The file is read in chunks (CSV blocks, Parquet record batches) with pyarrow, so a
file larger than memory works; only the counts are kept. Errors print one line on
stderr: exit code 2 for a usage error (a missing file or column, an unknown or
out-of-range option value), 1 for a data error (an empty file, a label column that
does not hold integer class ids, an empty class).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import typer

from .._checks import message
from ..weights import NORMALIZATIONS, SCHEMES, ClassCounter, class_weights

__all__ = ["register", "weights"]

_CSV_SUFFIXES = (".csv", ".tsv", ".txt")
_PARQUET_SUFFIXES = (".parquet", ".pq")
_COMPRESSED = (".gz", ".bz2", ".zst", ".lz4")
_FORMATS = ("table", "json")
_BLOCK_BYTES = 1 << 24
_MIN_BLOCK_BYTES = 1 << 12  # smaller blocks cut through headers and rows


class _Failure(Exception):
    """A one-line error with its exit code: 2 for usage, 1 for data."""

    def __init__(self, text: str, code: int) -> None:
        super().__init__(text)
        self.code = code


def _usage(argument: str, expected: str, received: str, fix: str) -> _Failure:
    return _Failure(message(argument, expected, received, fix), 2)


def _data(argument: str, expected: str, received: str, fix: str) -> _Failure:
    return _Failure(message(argument, expected, received, fix), 1)


def register(app: typer.Typer) -> None:
    """Add the ``weights`` command to ``app``."""
    app.command("weights", no_args_is_help=True)(weights)


def weights(
    file: Annotated[
        Path,
        typer.Argument(
            help="A CSV (.csv, .tsv, optionally compressed) or Parquet file.",
            show_default=False,
        ),
    ],
    column: Annotated[
        str | None,
        typer.Option("--column", help="The column of integer class ids."),
    ] = None,
    scheme: Annotated[
        str, typer.Option(help="One of: " + ", ".join(SCHEMES) + ".")
    ] = "balanced",
    normalize: Annotated[
        str,
        typer.Option(help="none, sum_to_one, sum_to_classes or mean_sample."),
    ] = "none",
    all_schemes: Annotated[
        bool, typer.Option("--all-schemes", help="Every scheme side by side.")
    ] = False,
    multilabel: Annotated[
        str | None,
        typer.Option(
            "--multilabel",
            help="Comma-separated 0/1 columns, one per label: gives pos_weight.",
        ),
    ] = None,
    num_classes: Annotated[
        int | None,
        typer.Option(help="C; default: the largest class id plus one."),
    ] = None,
    empty: Annotated[
        str, typer.Option(help="error or zero: the weight of a class with no rows.")
    ] = "error",
    beta: Annotated[float, typer.Option(help="beta of effective_number.")] = 0.999,
    c: Annotated[float, typer.Option("--c", help="c of the log scheme.")] = 1.02,
    output_format: Annotated[
        str, typer.Option("--format", help="table or json.")
    ] = "table",
    block_bytes: Annotated[
        int,
        typer.Option(help=f"CSV bytes read per chunk, at least {_MIN_BLOCK_BYTES}."),
    ] = _BLOCK_BYTES,
    batch_rows: Annotated[int, typer.Option(help="Parquet rows read per chunk.")] = 1
    << 16,
) -> None:
    """Class counts, frequencies and weights of a label column."""
    try:
        result = _run(
            file,
            column,
            scheme,
            normalize,
            all_schemes,
            multilabel,
            num_classes,
            empty,
            beta,
            c,
            output_format,
            block_bytes,
            batch_rows,
        )
    except _Failure as failure:
        typer.echo(f"Error: {failure}", err=True)
        raise typer.Exit(failure.code) from None
    _print(result, output_format)


# ---------------------------------------------------------------------------
# The command, as a function from options to a result
# ---------------------------------------------------------------------------
def _run(
    file: Path,
    column: str | None,
    scheme: str,
    normalize: str,
    all_schemes: bool,
    multilabel: str | None,
    num_classes: int | None,
    empty: str,
    beta: float,
    c: float,
    output_format: str,
    block_bytes: int,
    batch_rows: int,
) -> dict[str, Any]:
    _choice("--format", output_format, _FORMATS)
    _choice("--scheme", scheme, ("balanced", *SCHEMES[:1], *SCHEMES[2:]))
    norm = None if normalize == "none" else normalize
    _choice(
        "--normalize",
        normalize,
        tuple("none" if n is None else n for n in NORMALIZATIONS),
    )
    _choice("--empty", empty, ("error", "zero"))
    if (column is None) == (multilabel is None):
        raise _usage(
            "the label columns",
            "given by exactly one of --column and --multilabel",
            "both" if column else "neither",
            "pass --column COL for class ids, or --multilabel A,B,C for "
            "0/1 label columns",
        )
    if multilabel is not None and all_schemes:
        raise _usage(
            "--all-schemes",
            "used with --column",
            "--multilabel",
            "drop --all-schemes: multi-label files give pos_weight",
        )
    if num_classes is not None and num_classes < 1:
        raise _usage(
            "--num-classes",
            "a positive int",
            str(num_classes),
            "pass the number of classes",
        )
    if not 0.0 <= beta <= 1.0:
        raise _usage(
            "--beta",
            "in [0, 1]",
            f"{beta:g}",
            "pass a value such as 0.999 (near 1 gives weights near 1 / n_c, "
            "0 uniform weights)",
        )
    if not c > 1.0:
        raise _usage(
            "--c",
            "greater than 1 (so that log(c + f_c) > 0)",
            f"{c:g}",
            "pass a value such as 1.02",
        )
    if block_bytes < _MIN_BLOCK_BYTES:
        raise _usage(
            "--block-bytes",
            f"at least {_MIN_BLOCK_BYTES} (a block holds whole rows)",
            str(block_bytes),
            f"omit it (default {_BLOCK_BYTES}), or pass {_MIN_BLOCK_BYTES} or more",
        )
    if batch_rows < 1:
        raise _usage("--batch-rows", "a positive int", str(batch_rows), "omit it")
    columns = (
        [column]
        if column is not None
        else [m.strip() for m in str(multilabel).split(",") if m.strip()]
    )
    if not columns:
        raise _usage(
            "--multilabel",
            "comma-separated column names",
            repr(multilabel),
            "pass --multilabel A,B,C",
        )
    chunks = _chunks(file, columns, block_bytes, batch_rows)
    if multilabel is not None:
        return _multilabel(file, columns, chunks)
    options = {"beta": beta, "c": c, "empty": empty, "normalize": norm}
    return _single(file, columns[0], chunks, num_classes, scheme, all_schemes, options)


def _choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise _usage(
            option,
            "one of " + ", ".join(choices),
            repr(value),
            f"pick one, such as {option} {choices[0]}",
        )


def _single(
    file: Path,
    column: str,
    chunks: Iterator[dict[str, Any]],
    num_classes: int | None,
    scheme: str,
    all_schemes: bool,
    options: dict[str, Any],
) -> dict[str, Any]:
    counts = np.zeros(num_classes or 0)
    for chunk in chunks:
        labels = _integer_labels(chunk[column], column)
        if not labels.size:
            continue
        low, high = int(labels.min()), int(labels.max())
        if low < 0:
            raise _data(
                f"column {column!r}",
                "class ids >= 0",
                f"a row with {low}",
                "fix the labels, or filter the padding rows out",
            )
        if num_classes is not None and high >= num_classes:
            raise _data(
                f"column {column!r}",
                f"class ids below --num-classes {num_classes}",
                f"a row with {high}",
                "raise --num-classes, or fix the labels",
            )
        if high >= len(counts):
            counts = np.concatenate([counts, np.zeros(high + 1 - len(counts))])
        counts += np.bincount(labels, minlength=len(counts))
    if not counts.sum():
        raise _data(
            f"file {str(file)!r}",
            "at least one row",
            "no rows",
            "pass a file with labels",
        )
    empty_classes = np.flatnonzero(counts == 0)
    if len(empty_classes) and options["empty"] == "error":
        names = ", ".join(str(int(k)) for k in empty_classes[:10])
        raise _data(
            f"column {column!r}",
            f"non-empty for every class in [0, {len(counts)})",
            f"no rows for class {names}",
            "pass --empty zero to give it "
            "weight 0"
            + (", or a smaller --num-classes" if num_classes is not None else ""),
        )
    schemes = SCHEMES if all_schemes else (scheme,)
    try:
        table = {
            s: class_weights(counts, scheme=s, **options).tolist() for s in schemes
        }
    except ValueError as err:
        raise _Failure(str(err), 1) from None
    total = int(counts.sum())
    return {
        "file": str(file),
        "column": column,
        "rows": total,
        "num_classes": len(counts),
        "counts": [int(n) for n in counts],
        "frequencies": (counts / total).tolist(),
        "normalize": options["normalize"],
        "weights": table,
    }


def _multilabel(
    file: Path, columns: list[str], chunks: Iterator[dict[str, Any]]
) -> dict[str, Any]:
    counter = ClassCounter(len(columns), multilabel=True)
    for chunk in chunks:
        block = np.stack(
            [_binary_labels(chunk[name], name) for name in columns], axis=-1
        )
        counter.update(block)
    if not counter.total:
        raise _data(
            f"file {str(file)!r}",
            "at least one row",
            "no rows",
            "pass a file with labels",
        )
    positives = counter.counts
    empty = [name for name, p in zip(columns, positives, strict=True) if not p]
    if empty:
        raise _data(
            f"column {empty[0]!r}",
            "at least one positive row (pos_weight divides by the positives)",
            "none",
            "drop the column from --multilabel",
        )
    return {
        "file": str(file),
        "columns": columns,
        "rows": int(counter.total),
        "positives": [int(p) for p in positives],
        "negatives": [int(counter.total - p) for p in positives],
        "pos_weight": counter.pos_weight().tolist(),
    }


# ---------------------------------------------------------------------------
# Reading in chunks
# ---------------------------------------------------------------------------
def _kind(file: Path) -> str:
    suffixes = [s.lower() for s in file.suffixes]
    if suffixes and suffixes[-1] in _COMPRESSED:
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last in _PARQUET_SUFFIXES:
        return "parquet"
    if last in _CSV_SUFFIXES:
        return "csv"
    raise _usage(
        "FILE",
        "a .csv, .tsv or .parquet file",
        repr(str(file)),
        "convert it, or rename it to its format's suffix",
    )


def _chunks(
    file: Path, columns: list[str], block_bytes: int, batch_rows: int
) -> Iterator[dict[str, Any]]:
    """Check the file and the columns now; then yield {column: pyarrow array}."""
    if not file.exists():
        raise _usage("FILE", "an existing file", repr(str(file)), "check the path")
    if not file.is_file():
        raise _usage(
            "FILE",
            "a file",
            f"{str(file)!r}, a directory",
            "pass the path of a CSV or Parquet file",
        )
    kind = _kind(file)
    if file.stat().st_size == 0:
        raise _data(
            "FILE",
            "a non-empty file",
            f"{str(file)!r} of 0 bytes",
            "pass a file with a header and rows",
        )
    if kind == "parquet":
        return _parquet_chunks(file, columns, batch_rows)
    return _csv_chunks(file, columns, block_bytes)


def _check_columns(file: Path, names: list[str], columns: list[str]) -> None:
    missing = [col for col in columns if col not in names]
    if missing:
        shown = ", ".join(repr(n) for n in names[:20])
        raise _usage(
            f"column {missing[0]!r}",
            f"a column of {str(file)!r}",
            "no such column",
            f"pick one of {shown}",
        )


def _parquet_chunks(
    file: Path, columns: list[str], batch_rows: int
) -> Iterator[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        reader = pq.ParquetFile(file)
    except (pa.ArrowException, OSError) as err:
        raise _data(
            "FILE",
            "a Parquet file",
            f"{str(file)!r} ({_first_line(err)})",
            "pass a valid Parquet file",
        ) from None
    _check_columns(file, reader.schema_arrow.names, columns)
    batches = reader.iter_batches(batch_size=batch_rows, columns=columns)
    return _guarded(
        ({name: batch.column(name) for name in columns} for batch in batches),
        columns,
        file,
    )


def _csv_chunks(
    file: Path, columns: list[str], block_bytes: int
) -> Iterator[dict[str, Any]]:
    import pyarrow.csv as pcsv

    delimiter = "\t" if ".tsv" in [s.lower() for s in file.suffixes] else ","
    header = _csv_header(file, delimiter)
    if not header:
        raise _data(
            "FILE",
            "a CSV file with a header row",
            f"{str(file)!r} without one",
            "add a header that names the columns",
        )
    _check_columns(file, header, columns)
    reader = _guarded_open(
        lambda: pcsv.open_csv(
            file,
            read_options=pcsv.ReadOptions(block_size=block_bytes),
            parse_options=pcsv.ParseOptions(delimiter=delimiter),
            convert_options=pcsv.ConvertOptions(include_columns=columns),
        ),
        file,
        block_bytes,
    )
    return _guarded(
        ({name: batch.column(name) for name in columns} for batch in reader),
        columns,
        file,
        block_bytes,
    )


def _csv_header(file: Path, delimiter: str) -> list[str]:
    import pyarrow as pa

    try:
        with pa.input_stream(str(file)) as stream:  # decompresses by suffix
            first = stream.read(1 << 20).split(b"\n", 1)[0]
        text = first.decode("utf-8-sig")
    except (pa.ArrowException, OSError, UnicodeDecodeError) as err:
        raise _data(
            "FILE",
            "a readable CSV file",
            f"{str(file)!r} ({_first_line(err)})",
            "check the file",
        ) from None
    rows = list(csv.reader([text], delimiter=delimiter))
    return list(rows[0]) if rows and rows[0] else []


def _guarded_open(open_reader: Any, file: Path, block_bytes: int) -> Any:
    import pyarrow as pa

    try:
        return open_reader()
    except pa.ArrowException as err:
        _check_block(err, file, block_bytes)
        raise _data(
            "FILE",
            "a readable CSV file",
            f"{str(file)!r} ({_first_line(err)})",
            "check the file",
        ) from None


def _guarded(
    chunks: Iterator[dict[str, Any]],
    columns: list[str],
    file: Path,
    block_bytes: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Chunks, with pyarrow's parse errors (a text in an int column) as data errors."""
    import pyarrow as pa

    try:
        yield from chunks
    except pa.ArrowException as err:
        if block_bytes is not None:
            _check_block(err, file, block_bytes)
        names = ", ".join(repr(c) for c in columns)
        raise _data(
            f"column {names}" if len(columns) == 1 else f"columns {names}",
            "numbers in every row, of the type of the first rows",
            f"a value pyarrow cannot read ({_first_line(err)})",
            "fix or filter the rows",
        ) from None


def _check_block(err: BaseException, file: Path, block_bytes: int) -> None:
    """A usage error if pyarrow failed because a line does not fit in a block."""
    text = str(err)
    if "straddl" in text or "Empty CSV file or block" in text:
        raise _usage(
            "--block-bytes",
            f"larger than the longest line of {str(file)!r}",
            str(block_bytes),
            f"pass a larger value, or omit it (default {_BLOCK_BYTES})",
        )


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _integer_labels(array: Any, column: str) -> np.ndarray:
    import pyarrow as pa

    if not pa.types.is_integer(array.type):
        raise _data(
            f"column {column!r}",
            "integer class ids",
            f"type {array.type}",
            "write the labels as integers (class names need an encoding first)",
        )
    if array.null_count:
        raise _data(
            f"column {column!r}",
            "a class id in every row",
            f"{array.null_count} empty rows",
            "fill or drop them",
        )
    return np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.int64)


def _binary_labels(array: Any, column: str) -> np.ndarray:
    import pyarrow as pa

    if not (
        pa.types.is_integer(array.type)
        or pa.types.is_boolean(array.type)
        or pa.types.is_floating(array.type)
    ):
        raise _data(
            f"column {column!r}",
            "0/1 labels",
            f"type {array.type}",
            "write the labels as 0 and 1",
        )
    if array.null_count:
        raise _data(
            f"column {column!r}",
            "a 0/1 label in every row",
            f"{array.null_count} empty rows",
            "fill or drop them",
        )
    values = np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.float64)
    bad = ~((values == 0) | (values == 1))
    if bad.any():
        raise _data(
            f"column {column!r}",
            "0/1 labels",
            f"a row with {values[bad][0]:g}",
            "write the labels as 0 and 1",
        )
    return values


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------
def _print(result: dict[str, Any], output_format: str) -> None:
    if output_format == "json":
        typer.echo(json.dumps(result, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    if not console.is_terminal:  # piped: wide enough that nothing is cut
        console = Console(highlight=False, width=160)
    if "pos_weight" in result:
        table = Table(
            title=f"pos_weight of {result['file']}", caption=f"{result['rows']} rows"
        )
        for name in ("label", "positives", "negatives", "pos_weight"):
            justify: Literal["left", "right"] = "left" if name == "label" else "right"
            table.add_column(name, justify=justify, overflow="fold")
        for row in zip(
            result["columns"],
            result["positives"],
            result["negatives"],
            result["pos_weight"],
            strict=True,
        ):
            table.add_row(row[0], str(row[1]), str(row[2]), f"{row[3]:.6g}")
        console.print(table)
        return
    norm = result["normalize"]
    caption = f"{result['rows']} rows" + (f", normalize={norm}" if norm else "")
    table = Table(
        title=f"{result['file']}, column {result['column']!r}", caption=caption
    )
    for name in ("class", "count", "frequency", *result["weights"]):
        header = name.replace("_", "\n", 1) if len(result["weights"]) > 1 else name
        table.add_column(header, justify="right", overflow="fold")
    digits = ".4g" if len(result["weights"]) > 1 else ".6g"
    for i, (n, f) in enumerate(
        zip(result["counts"], result["frequencies"], strict=True)
    ):
        cells = [format(w[i], digits) for w in result["weights"].values()]
        table.add_row(str(i), str(n), format(f, digits), *cells)
    console.print(table)
