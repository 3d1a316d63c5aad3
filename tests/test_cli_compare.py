"""``wce compare`` through typer's runner: output, exit codes and error messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from wce import cli
from wce.cli import compare_cmd

FAST = ["--epochs", "2", "--seeds", "0"]


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    """The real ``wce`` app with its commands registered."""
    if not cli.app.registered_commands:
        cli._register()
    return cli.app


def invoke(app: typer.Typer, *args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["compare", *map(str, args)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small CSV and Parquet tables: binary, multi-class, multi-label, broken."""
    folder = tmp_path_factory.mktemp("tables")
    rng = np.random.default_rng(0)
    n = 240
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    shop = rng.choice(["north", "south", "east"], size=n)
    frame = pd.DataFrame({"amount": x1, "age": x2, "shop": shop})
    frame["fraud"] = np.where(x1 + 0.8 * (shop == "east") > 1.2, "yes", "no")
    frame["segment"] = np.select([x2 > 0.8, x1 > 0.3], ["vip", "active"], "rest")
    frame["tag_a"] = (x1 > 0.5).astype(int)
    frame["tag_b"] = (x2 < -0.9).astype(int)
    frame.loc[::9, "age"] = np.nan
    frame.to_csv(folder / "shop.csv", index=False)
    frame.to_parquet(folder / "shop.parquet")

    base = pd.DataFrame({"x": np.arange(20.0)})
    base.assign(y=[1] * 20).to_csv(folder / "one_class.csv", index=False)
    base.assign(y=[0] * 18 + [1] * 2).to_csv(folder / "tiny_class.csv", index=False)
    base.assign(y=["1", "0", "oops"] + ["0"] * 17).to_csv(
        folder / "mixed.csv", index=False
    )
    (folder / "cost.csv").write_text("0,1\n5,0\n")
    return folder


# ---------------------------------------------------------------------------
# Errors: one line on stderr, 2 for usage, 1 for data, nothing on stdout
# ---------------------------------------------------------------------------
USAGE_ERRORS = [
    (
        ["--losses", "hinge"],
        "unknown loss 'hinge'; choose from ce, balanced-ce, "
        "focal, logit-adjusted, ce-posthoc, ldam, asymmetric, cost-ce, expected-cost",
    ),
    (
        ["--losses", "focal:gama=1"],
        "loss 'focal' has no option 'gama'; its options: gamma, alpha",
    ),
    (
        ["--dataset", "mnist"],
        "unknown dataset 'mnist'; choose from satimage, "
        "shuttle, fashion-mnist-lt, yeast, flights or pass a CSV or Parquet file",
    ),
    (
        ["missing.csv", "--target", "y"],
        "file 'missing.csv' not found; pass a CSV or Parquet file",
    ),
    (
        ["{dir}", "--target", "y"],
        "'{dir}' is a directory, not a data file; pass a CSV, TSV or Parquet file",
    ),
    (
        ["{dir}/shop.csv", "--target", "label"],
        "column 'label' not in shop.csv; "
        "columns: amount, age, shop, fraud, segment, tag_a, tag_b",
    ),
    (
        ["{dir}/shop.csv", "--targets", "tag_a,tag_c"],
        "column 'tag_c' not in "
        "shop.csv; columns: amount, age, shop, fraud, segment, tag_a, tag_b",
    ),
    (["{dir}/shop.csv"], "pass either --target COLUMN or --targets A,B,C"),
    (
        ["{dir}/shop.csv", "--target", "fraud", "--dataset", "satimage"],
        "pass a data file or --dataset, not both",
    ),
    (
        ["--target", "y"],
        "--target and --targets are for data files; 'satimage' has its own",
    ),
    (["--model", "resnet"], "unknown --model 'resnet'; choose from linear, mlp"),
    (["--format", "yaml"], "unknown --format 'yaml'; choose table or json"),
    (
        ["--seeds", "0,x"],
        "--seeds takes comma-separated integers such as 0,1,2, got '0,x'",
    ),
    (["--seeds", "1,1"], "--seeds lists a seed twice; give each seed once"),
    (["--epochs", "0"], "--epochs must be at least 1, got 0"),
    (["--test-size", "0"], "--test-size must be between 0 and 1 (exclusive), got 0"),
    (["--losses", "expected-cost"], "loss 'expected-cost' needs --cost-matrix FILE"),
    (["--cost-matrix", "nope.csv"], "cost matrix file 'nope.csv' not found"),
    (
        ["--cost-matrix", "{dir}"],
        "cost matrix '{dir}' is a directory; pass a CSV file of costs",
    ),
    (["--out", "{dir}/cost.csv"], "--out '{dir}/cost.csv' is a file; pass a folder"),
    (
        ["--out", "{dir}/cost.csv/report"],
        "cannot create --out '{dir}/cost.csv/report' (Not a directory); pass a "
        "folder you can write to",
    ),
    (
        ["--cost-matrix", "{dir}/cost.csv", "{dir}/shop.csv", "--target", "segment"],
        "cost matrix 'cost.csv' is 2x2 but the data has 3 classes; write a 3x3 matrix",
    ),
    (
        ["{dir}/shop.csv", "--target", "segment", "--losses", "asymmetric"],
        "loss 'asymmetric' works on binary and multilabel data, not multiclass; "
        "remove it from --losses",
    ),
]

DATA_ERRORS = [
    (
        ["{dir}/one_class.csv", "--target", "y"],
        "target 'y' has one class only "
        "('1' in 20 rows); a classifier needs at least two",
    ),
    (
        ["{dir}/tiny_class.csv", "--target", "y"],
        "class '1' has 2 rows, too few for "
        "--test-size 0.25: each class needs at least 4; drop or merge it, or change "
        "--test-size",
    ),
    (
        ["{dir}/mixed.csv", "--target", "y"],
        "target 'y' is not numeric: it mixes "
        "numbers with text such as 'oops'; clean the column or make every class a "
        "word",
    ),
    (
        ["{dir}/shop.csv", "--targets", "tag_a,fraud"],
        "target 'fraud' is not numeric: multi-label targets are 0/1 columns",
    ),
]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [(a, 2, m) for a, m in USAGE_ERRORS] + [(a, 1, m) for a, m in DATA_ERRORS],
)
def test_errors(
    app: typer.Typer, data_dir: Path, args: list[str], code: int, message: str
) -> None:
    args = [a.format(dir=data_dir) for a in args]
    message = message.format(dir=data_dir)
    exit_code, stdout, stderr = invoke(app, *args)
    assert (exit_code, stdout, stderr) == (code, "", f"Error: {message}\n")


@pytest.mark.parametrize(
    ("args", "stderr"),
    [
        (
            ["--epochs", "1.5"],
            "Error: Invalid value for '--epochs': Input should be a valid integer, "
            "unable to parse string as an integer; got '1.5'\n"
            "Try 'wce compare --help' for help.\n",
        ),
        (
            ["--epochs", "abc"],
            "Error: Invalid value for '--epochs': Input should be a valid integer, "
            "unable to parse string as an integer; got 'abc'\n"
            "Try 'wce compare --help' for help.\n",
        ),
        (
            ["--test-size", "half"],
            "Error: Invalid value for '--test-size': Input should be a valid number, "
            "unable to parse string as a number; got 'half'\n"
            "Try 'wce compare --help' for help.\n",
        ),
        (
            ["--bogus"],
            "Error: No such option: --bogus (Possible options: --out)\n"
            "Try 'wce compare --help' for help.\n",
        ),
        (["--epochs"], "Error: Option '--epochs' requires an argument.\n"),
    ],
)
def test_parse_errors_are_plain_lines(
    app: typer.Typer, args: list[str], stderr: str
) -> None:
    """Errors typer finds itself: no box, no traceback, exit code 2."""
    assert invoke(app, *args) == (2, "", stderr)


def test_unknown_command(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["compar"])
    assert (result.exit_code, result.stdout, result.stderr) == (
        2,
        "",
        "Error: No such command 'compar'. Did you mean 'compare'?\n"
        "Try 'wce --help' for help.\n",
    )


def test_help(app: typer.Typer) -> None:
    code, stdout, stderr = invoke(app, "--help")
    assert (code, stderr) == (0, "")
    assert "Usage: wce compare [OPTIONS] [DATA]" in stdout
    assert "--epochs" in stdout and "Error" not in stdout


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_out_unwritable_before_training(app: typer.Typer) -> None:
    """Checked before the data is loaded: the default satimage run never starts."""
    code, stdout, stderr = invoke(app, "--out", "/proc/x")
    assert (code, stdout) == (2, "")
    assert stderr.startswith("Error: cannot create --out '/proc/x' (")
    assert stderr.endswith("); pass a folder you can write to\n")


def test_out_removed_when_the_data_fails(
    app: typer.Typer, data_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "new" / "report"
    code, _, stderr = invoke(
        app, data_dir / "one_class.csv", "--target", "y", "--out", out
    )
    assert code == 1 and stderr.startswith("Error: target 'y' has one class only")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------
# User data
# ---------------------------------------------------------------------------
def test_csv_json(app: typer.Typer, data_dir: Path) -> None:
    code, stdout, stderr = invoke(
        app, data_dir / "shop.csv", "--target", "fraud", "--format", "json", *FAST
    )
    assert (code, stderr) == (0, "")
    out = json.loads(stdout)
    assert out["dataset"] == "shop.csv"
    assert out["task"] == "binary"
    assert out["class_names"] == ["no", "yes"]
    assert (out["n_train"], out["n_test"]) == (180, 60)
    # amount, age, tag_a, tag_b, shop x3, segment x3
    assert out["n_features"] == 10
    assert [r["loss"] for r in out["runs"]] == [
        "ce",
        "balanced-ce",
        "focal",
        "logit-adjusted",
        "ce-posthoc",
    ]
    for run in out["runs"]:
        for stat in run["metrics"].values():
            assert set(stat) == {"mean", "std"}
        assert run["metrics"]["accuracy"]["std"] == 0.0  # one seed
        assert 0.0 <= run["metrics"]["pr_auc"]["mean"] <= 1.0


def test_parquet_multiclass_table(app: typer.Typer, data_dir: Path) -> None:
    code, stdout, stderr = invoke(
        app,
        data_dir / "shop.parquet",
        "--target",
        "segment",
        "--model",
        "linear",
        "--losses",
        "ce,balanced-ce:scheme=inverse_sqrt,ldam",
        *FAST,
    )
    assert (code, stderr) == (0, "")
    lines = stdout.splitlines()
    assert lines[0].startswith("shop.parquet: 3 classes, largest/smallest ")
    assert lines[0].endswith("; linear, 2 epochs, seeds 0")
    rule = next(i for i, line in enumerate(lines) if line.lstrip().startswith("─"))
    header = [line.split("  ") for line in lines[1:rule]]
    words = " ".join(w.strip() for line in header for w in line if w.strip())
    for column in ("loss", "bal. acc.", "macro F1", "worst", "log-loss", "vip"):
        assert column in words
    assert "PR-AUC" not in words
    body = [line.split()[0] for line in lines[rule + 1 : -1] if line.strip()]
    rows = [word for word in body if not word.startswith("±")]
    assert rows == ["ce", "balanced-ce:scheme=inverse_sqrt", "ldam"]
    assert lines[-1].startswith("mean ±std over 1 seed(s) on the held-out split")


def test_multilabel_table_keeps_the_file_name(
    app: typer.Typer, data_dir: Path, tmp_path: Path
) -> None:
    """The header starts with the file name as given, in its own case."""
    for name in ("shop.csv", "myShop.csv"):
        (tmp_path / name).write_bytes((data_dir / "shop.csv").read_bytes())
        code, stdout, stderr = invoke(
            app, tmp_path / name, "--targets", "tag_a,tag_b", "--losses", "ce", *FAST
        )
        assert (code, stderr) == (0, "")
        assert stdout.startswith(f"{name}: 2 labels, positive rates ")


def test_multilabel_targets(app: typer.Typer, data_dir: Path) -> None:
    code, stdout, _ = invoke(
        app,
        data_dir / "shop.csv",
        "--targets",
        "tag_a, tag_b",
        "--format",
        "json",
        "--losses",
        "ce,balanced-ce,asymmetric",
        *FAST,
    )
    assert code == 0
    out = json.loads(stdout)
    assert (out["task"], out["class_names"]) == ("multilabel", ["tag_a", "tag_b"])
    metrics = out["runs"][0]["metrics"]
    assert "pr_auc" not in metrics
    assert len(metrics["recall_per_class"]["mean"]) == 2


def test_cost_matrix_adds_loss_and_metric(app: typer.Typer, data_dir: Path) -> None:
    code, stdout, _ = invoke(
        app,
        data_dir / "shop.csv",
        "--target",
        "fraud",
        "--format",
        "json",
        "--cost-matrix",
        data_dir / "cost.csv",
        *FAST,
    )
    assert code == 0
    runs = json.loads(stdout)["runs"]
    assert runs[-1]["loss"] == "expected-cost"
    assert all("mean_cost" in r["metrics"] for r in runs)


# ---------------------------------------------------------------------------
# The built-in default: satimage
# ---------------------------------------------------------------------------
def test_satimage_json_and_report(app: typer.Typer, tmp_path: Path) -> None:
    code, stdout, stderr = invoke(
        app,
        "--format",
        "json",
        "--seeds",
        "0",
        "--epochs",
        "10",
        "--losses",
        "ce,balanced-ce",
        "--out",
        tmp_path / "report",
    )
    assert code == 0
    assert stderr == f"Report written to {tmp_path / 'report' / 'report.md'}\n"
    out = json.loads(stdout)
    assert (out["dataset"], out["n_train"], out["n_test"]) == ("satimage", 4826, 1609)
    ce, balanced = (r["metrics"]["recall_per_class"]["mean"] for r in out["runs"])
    # damp grey soil (9.7% of rows): class weights find far more of it
    assert balanced[1] > ce[1] + 0.2
    assert ce[0] > balanced[0]
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == [
        "confusion_matrices.png",
        "precision_recall.png",
        "recall_by_class.png",
        "report.md",
        "results.json",
        "summary.png",
    ]


def test_register_on_a_fresh_app() -> None:
    fresh = typer.Typer()
    compare_cmd.register(fresh)
    assert [c.name for c in fresh.registered_commands] == ["compare"]
