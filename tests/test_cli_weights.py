"""``wce weights`` on CSV and Parquet files: output, chunked reading, errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from typer.testing import CliRunner

from wce.cli import PlainErrors, weights_cmd
from wce.weights import SCHEMES

from .test_weights import reference

LABELS = np.random.default_rng(0).permutation(np.repeat([0, 1, 2], [60, 30, 10]))


def _app() -> typer.Typer:
    app = typer.Typer(
        name="wce",
        cls=PlainErrors,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    weights_cmd.register(app)

    @app.callback()
    def main() -> None:
        """A stand-in for the ``wce`` group."""

    return app


APP = _app()


def run(*args: str) -> object:
    return CliRunner().invoke(APP, ["weights", *args])


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """labels.csv, labels.tsv.gz and labels.parquet (row groups of 17) in cwd, and
    notes.csv and notes.tsv.gz: the labels with a 100-character note, three 4096-byte
    blocks each."""
    monkeypatch.chdir(tmp_path)
    rows = ["id,label,is_cat,is_dog"] + [
        f"{i},{v},{int(v == 1)},{int(v == 2)}" for i, v in enumerate(LABELS)
    ]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    with gzip.open(tmp_path / "labels.tsv.gz", "wt") as f:
        f.write("\n".join(r.replace(",", "\t") for r in rows) + "\n")
    notes = ["label,note"] + [f"{v},{'n' * 100}" for v in LABELS]
    (tmp_path / "notes.csv").write_text("\n".join(notes) + "\n")
    with gzip.open(tmp_path / "notes.tsv.gz", "wt") as f:
        f.write("\n".join(r.replace(",", "\t") for r in notes) + "\n")
    table = pa.table(
        {
            "label": LABELS,
            "is_cat": (LABELS == 1).astype(np.int8),
            "is_dog": LABELS == 2,
        }
    )
    pq.write_table(table, tmp_path / "labels.parquet", row_group_size=17)
    return tmp_path


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------
def test_table_on_csv(files: Path) -> None:
    result = run("labels.csv", "--column", "label")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "       labels.csv, column 'label'       \n"
        "┏━━━━━━━┳━━━━━━━┳━━━━━━━━━━━┳━━━━━━━━━━┓\n"
        "┃ class ┃ count ┃ frequency ┃ balanced ┃\n"
        "┡━━━━━━━╇━━━━━━━╇━━━━━━━━━━━╇━━━━━━━━━━┩\n"
        "│     0 │    60 │       0.6 │ 0.555556 │\n"
        "│     1 │    30 │       0.3 │  1.11111 │\n"
        "│     2 │    10 │       0.1 │  3.33333 │\n"
        "└───────┴───────┴───────────┴──────────┘\n"
        "                100 rows                \n"
    )
    assert result.stderr == ""


@pytest.mark.parametrize("name", ["notes.csv", "notes.tsv.gz", "labels.parquet"])
def test_json_every_scheme_in_chunks(files: Path, name: str) -> None:
    """Small chunks (4096-byte CSV blocks, 7-row Parquet batches): the same counts."""
    result = run(
        name,
        "--column",
        "label",
        "--all-schemes",
        "--normalize",
        "mean_sample",
        "--format",
        "json",
        "--block-bytes",
        "4096",
        "--batch-rows",
        "7",
    )
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["counts"] == [60, 30, 10] and out["rows"] == 100
    assert out["num_classes"] == 3 and out["normalize"] == "mean_sample"
    np.testing.assert_allclose(out["frequencies"], [0.6, 0.3, 0.1], rtol=1e-15)
    assert list(out["weights"]) == list(SCHEMES)
    for scheme, got in out["weights"].items():
        np.testing.assert_allclose(
            got, reference([60, 30, 10], scheme, "mean_sample"), rtol=1e-12
        )


def test_scheme_options_reach_the_weights(files: Path) -> None:
    result = run(
        "labels.parquet",
        "--column",
        "label",
        "--scheme",
        "effective_number",
        "--beta",
        "0.9",
        "--format",
        "json",
    )
    np.testing.assert_allclose(
        json.loads(result.stdout)["weights"]["effective_number"],
        reference([60, 30, 10], "effective_number", None, beta=0.9),
        rtol=1e-12,
    )
    result = run(
        "labels.csv",
        "--column",
        "label",
        "--scheme",
        "log",
        "--c",
        "1.5",
        "--normalize",
        "sum_to_one",
        "--format",
        "json",
    )
    np.testing.assert_allclose(
        json.loads(result.stdout)["weights"]["log"],
        reference([60, 30, 10], "log", "sum_to_one", c=1.5),
        rtol=1e-12,
    )


def test_num_classes_and_empty_zero(files: Path) -> None:
    result = run(
        "labels.csv",
        "--column",
        "label",
        "--num-classes",
        "4",
        "--empty",
        "zero",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["counts"] == [60, 30, 10, 0]
    np.testing.assert_allclose(
        out["weights"]["balanced"], [*reference([60, 30, 10], "balanced", None), 0.0]
    )


def test_multilabel_pos_weight(files: Path) -> None:
    result = run("labels.csv", "--multilabel", "is_cat,is_dog")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "           pos_weight of labels.csv            \n"
        "┏━━━━━━━━┳━━━━━━━━━━━┳━━━━━━━━━━━┳━━━━━━━━━━━━┓\n"
        "┃ label  ┃ positives ┃ negatives ┃ pos_weight ┃\n"
        "┡━━━━━━━━╇━━━━━━━━━━━╇━━━━━━━━━━━╇━━━━━━━━━━━━┩\n"
        "│ is_cat │        30 │        70 │    2.33333 │\n"
        "│ is_dog │        10 │        90 │          9 │\n"
        "└────────┴───────────┴───────────┴────────────┘\n"
        "                   100 rows                    \n"
    )
    result = run(
        "labels.parquet",
        "--multilabel",
        "is_cat, is_dog",
        "--format",
        "json",
        "--batch-rows",
        "9",
    )
    out = json.loads(result.stdout)
    assert out == {
        "file": "labels.parquet",
        "columns": ["is_cat", "is_dog"],
        "rows": 100,
        "positives": [30, 10],
        "negatives": [70, 90],
        "pos_weight": [70 / 30, 9.0],
    }


# ---------------------------------------------------------------------------
# Errors: one line on stderr, exit 2 for usage and 1 for data, no traceback
# ---------------------------------------------------------------------------
def _error(result: object, code: int) -> str:
    assert result.exit_code == code, (result.stdout, result.stderr)  # type: ignore[attr-defined]
    err = result.stderr  # type: ignore[attr-defined]
    assert err.startswith("Error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and result.stdout == ""  # type: ignore[attr-defined]
    return str(err.strip())


def test_usage_errors(files: Path) -> None:
    assert _error(run("nope.csv", "--column", "label"), 2) == (
        "Error: FILE must be an existing file, got 'nope.csv'; check the path"
    )
    assert _error(run("labels.csv", "--column", "lab"), 2) == (
        "Error: column 'lab' must be a column of 'labels.csv', got no such column; "
        "pick one of 'id', 'label', 'is_cat', 'is_dog'"
    )
    assert _error(run("labels.parquet", "--multilabel", "is_cat,dog"), 2) == (
        "Error: column 'dog' must be a column of 'labels.parquet', got no such "
        "column; pick one of 'label', 'is_cat', 'is_dog'"
    )
    assert _error(run("labels.csv"), 2) == (
        "Error: the label columns must be given by exactly one of --column and "
        "--multilabel, got neither; pass --column COL for class ids, or "
        "--multilabel A,B,C for 0/1 label columns"
    )
    assert _error(run("labels.csv", "--column", "label", "--scheme", "foo"), 2) == (
        "Error: --scheme must be one of balanced, inverse, inverse_sqrt, "
        "effective_number, median_frequency, log, got 'foo'; pick one, such as "
        "--scheme balanced"
    )
    assert _error(
        run("labels.csv", "--column", "label", "--normalize", "mean"), 2
    ).startswith(
        "Error: --normalize must be one of none, "
        "sum_to_one, sum_to_classes, mean_sample, got "
        "'mean';"
    )
    assert _error(
        run("labels.csv", "--column", "label", "--format", "yaml"), 2
    ).startswith("Error: --format must be one of table, json, got 'yaml';")
    assert _error(
        run("labels.csv", "--multilabel", "is_cat", "--all-schemes"), 2
    ).startswith("Error: --all-schemes must be used with --column,")
    assert _error(run(".", "--column", "label"), 2) == (
        "Error: FILE must be a file, got '.', a directory; pass the path of a CSV "
        "or Parquet file"
    )
    (files / "labels.xlsx").write_text("x")
    assert _error(run("labels.xlsx", "--column", "label"), 2) == (
        "Error: FILE must be a .csv, .tsv or .parquet file, got 'labels.xlsx'; "
        "convert it, or rename it to its format's suffix"
    )


def test_data_errors(files: Path) -> None:
    (files / "empty.csv").write_text("")
    assert _error(run("empty.csv", "--column", "label"), 1) == (
        "Error: FILE must be a non-empty file, got 'empty.csv' of 0 bytes; pass a "
        "file with a header and rows"
    )
    (files / "header.csv").write_text("id,label\n")
    assert _error(run("header.csv", "--column", "label"), 1) == (
        "Error: file 'header.csv' must be at least one row, got no rows; pass a "
        "file with labels"
    )
    (files / "float.csv").write_text("label\n0.5\n1\n")
    assert _error(run("float.csv", "--column", "label"), 1) == (
        "Error: column 'label' must be integer class ids, got type double; write "
        "the labels as integers (class names need an encoding first)"
    )
    (files / "names.parquet").write_bytes(b"")
    pq.write_table(pa.table({"label": ["cat", "dog"]}), files / "names.parquet")
    assert _error(run("names.parquet", "--column", "label"), 1) == (
        "Error: column 'label' must be integer class ids, got type string; write "
        "the labels as integers (class names need an encoding first)"
    )
    (files / "late.csv").write_text("label\n" + "0\n1\n" * 2100 + "cat\n")
    late = _error(run("late.csv", "--column", "label", "--block-bytes", "4096"), 1)
    assert late == (
        "Error: column 'label' must be numbers in every row, of the type of the "
        "first rows, got a value pyarrow cannot read (In CSV column #0: CSV "
        "conversion error to int64: invalid value 'cat'); fix or filter the rows"
    )
    (files / "holes.csv").write_text("label,x\n0,1\n,2\n1,3\n")
    assert _error(run("holes.csv", "--column", "label"), 1) == (
        "Error: column 'label' must be a class id in every row, got 1 empty rows; "
        "fill or drop them"
    )
    (files / "negative.csv").write_text("label\n0\n-1\n")
    assert _error(run("negative.csv", "--column", "label"), 1) == (
        "Error: column 'label' must be class ids >= 0, got a row with -1; fix the "
        "labels, or filter the padding rows out"
    )
    assert _error(run("labels.csv", "--column", "label", "--num-classes", "2"), 1) == (
        "Error: column 'label' must be class ids below "
        "--num-classes 2, got a row with 2; raise --num-classes, "
        "or fix the labels"
    )
    assert _error(run("labels.csv", "--column", "label", "--num-classes", "4"), 1) == (
        "Error: column 'label' must be non-empty for every class "
        "in [0, 4), got no rows for class 3; pass --empty zero to "
        "give it weight 0, or a smaller --num-classes"
    )
    (files / "broken.parquet").write_bytes(b"PAR1 not really")
    assert _error(run("broken.parquet", "--column", "label"), 1).startswith(
        "Error: FILE must be a Parquet file, got 'broken.parquet' ("
    )


def test_multilabel_data_errors(files: Path) -> None:
    (files / "multi.csv").write_text("a,b\n1,0\n0,2\n")
    assert _error(run("multi.csv", "--multilabel", "a,b"), 1) == (
        "Error: column 'b' must be 0/1 labels, got a row with 2; write the labels "
        "as 0 and 1"
    )
    (files / "none.csv").write_text("a,b\n1,0\n0,0\n")
    assert _error(run("none.csv", "--multilabel", "a,b"), 1) == (
        "Error: column 'b' must be at least one positive row (pos_weight divides "
        "by the positives), got none; drop the column from --multilabel"
    )
    (files / "text.csv").write_text("a,b\n1,x\n0,y\n")
    assert _error(run("text.csv", "--multilabel", "a,b"), 1) == (
        "Error: column 'b' must be 0/1 labels, got type string; write the labels "
        "as 0 and 1"
    )


def test_option_out_of_range_is_a_usage_error(files: Path) -> None:
    def bad(*options: str) -> str:
        return _error(run("labels.csv", "--column", "label", *options), 2)

    beta = bad("--scheme", "effective_number", "--beta", "1.5")
    assert beta == (
        "Error: --beta must be in [0, 1], got 1.5; pass a value such as 0.999 (near "
        "1 gives weights near 1 / n_c, 0 uniform weights)"
    )
    assert bad("--beta", "-0.1").startswith(
        "Error: --beta must be in [0, 1], got -0.1;"
    )
    assert bad("--scheme", "log", "--c", "0.5") == (
        "Error: --c must be greater than 1 (so that log(c + f_c) > 0), got 0.5; pass "
        "a value such as 1.02"
    )
    assert bad("--c", "1").startswith("Error: --c must be greater than 1 ")
    assert bad("--block-bytes", "10") == (
        "Error: --block-bytes must be at least 4096 (a block holds whole rows), got "
        "10; omit it (default 16777216), or pass 4096 or more"
    )
    assert bad("--batch-rows", "0") == (
        "Error: --batch-rows must be a positive int, got 0; omit it"
    )


def test_block_smaller_than_a_line_is_a_usage_error(files: Path) -> None:
    (files / "long.csv").write_text(
        "label,note\n" + "".join(f"{i % 2},{'n' * 5000}\n" for i in range(10))
    )
    assert _error(run("long.csv", "--column", "label", "--block-bytes", "4096"), 2) == (
        "Error: --block-bytes must be larger than the longest line of 'long.csv', got "
        "4096; pass a larger value, or omit it (default 16777216)"
    )
    header = ",".join(f"column_{i}" for i in range(600))
    (files / "wide.csv").write_text(header + "\n" + ",".join(["0"] * 600) + "\n")
    assert _error(
        run("wide.csv", "--column", "column_1", "--block-bytes", "4096"), 2
    ).startswith("Error: --block-bytes must be larger than the longest line of ")
    result = run("long.csv", "--column", "label", "--format", "json")
    assert result.exit_code == 0 and json.loads(result.stdout)["counts"] == [5, 5]


@pytest.mark.parametrize(
    ("options", "stderr"),
    [
        (
            ["--num-classes", "1.5"],
            "Error: Invalid value for '--num-classes': Input should be a valid "
            "integer, unable to parse string as an integer; got '1.5'\n"
            "Try 'wce weights --help' for help.\n",
        ),
        (
            ["--beta", "abc"],
            "Error: Invalid value for '--beta': Input should be a valid number, "
            "unable to parse string as a number; got 'abc'\n"
            "Try 'wce weights --help' for help.\n",
        ),
        (
            ["--colum", "label"],
            "Error: No such option: --colum (Possible options: --c, --column)\n"
            "Try 'wce weights --help' for help.\n",
        ),
        (["--column"], "Error: Option '--column' requires an argument.\n"),
    ],
)
def test_parse_errors_are_plain_lines(
    files: Path, options: list[str], stderr: str
) -> None:
    """Errors typer finds itself: no box, no traceback, exit code 2."""
    result = run("labels.csv", *options)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", stderr)


def test_help_is_not_an_error() -> None:
    result = run("--help")
    assert (result.exit_code, result.stderr) == (0, "")
    assert "--block-bytes" in result.stdout and "Error" not in result.stdout


def test_the_wce_entry_point(files: Path) -> None:
    """Through ``wce.cli.main``, as the installed ``wce`` script runs it."""
    import subprocess
    import sys

    script = "import sys; from wce.cli import main; sys.argv[0] = 'wce'; main()"
    ok = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            "weights",
            "labels.parquet",
            "--column",
            "label",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["counts"] == [60, 30, 10]
    bad = subprocess.run(
        [sys.executable, "-c", script, "weights", "labels.csv", "--column", "nope"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr == (
        "Error: column 'nope' must be a column of 'labels.csv', got no such "
        "column; pick one of 'id', 'label', 'is_cat', 'is_dog'\n"
    )
    typo = subprocess.run(
        [sys.executable, "-c", script, "weights", "labels.csv", "--epochs", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (typo.returncode, typo.stdout) == (2, "")
    assert typo.stderr == (
        "Error: No such option: --epochs\nTry 'wce weights --help' for help.\n"
    )
