"""wce.compare: data preparation, losses, metrics, and a real run on satimage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import wce
from wce import compare as cmp
from wce.compare import objectives
from wce.compare.metrics import evaluate, predictions, summarise
from wce.compare.report import write_report


def _table(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """Two numeric features (one with gaps), a categorical one, and a rare class."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    frame = pd.DataFrame(
        {
            "x1": x1,
            "x2": rng.normal(size=n),
            "colour": colour,
            "y": np.where(x1 + (colour == "red") > 1.5, "rare", "common"),
        }
    )
    frame.loc[::10, "x2"] = np.nan
    frame.loc[::7, "colour"] = None
    return frame


# ---------------------------------------------------------------------------
# The real run: satimage, default losses, fixed seeds
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def satimage_run() -> cmp.CompareResult:
    data = cmp.prepare(dataset="satimage")
    return cmp.compare(data, seeds=(0, 1), epochs=15)


def test_satimage_split_is_stratified() -> None:
    data = cmp.prepare()  # the default dataset
    assert data.name == "satimage"
    assert data.task == "binary"
    assert data.X_train.shape == (4826, 36)
    assert data.X_test.shape == (1609, 36)
    assert data.train_counts.tolist() == [4357.0, 469.0]
    assert np.bincount(data.y_test).tolist() == [1452, 157]
    assert data.X_train.dtype == np.float32
    # standardised on the training rows
    np.testing.assert_allclose(data.X_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(data.X_train.std(axis=0), 1.0, atol=1e-3)


def test_satimage_has_a_row_per_default_loss(satimage_run: cmp.CompareResult) -> None:
    out = satimage_run.to_dict()
    assert json.loads(json.dumps(out)) == out
    assert [r["loss"] for r in out["runs"]] == list(cmp.DEFAULT_LOSSES)
    assert (out["dataset"], out["n_train"], out["n_test"]) == ("satimage", 4826, 1609)
    expected = {
        "accuracy",
        "balanced_accuracy",
        "macro_f1",
        "worst_class_recall",
        "recall_per_class",
        "precision_per_class",
        "log_loss",
        "pr_auc",
        "roc_auc",
    }
    for run in out["runs"]:
        assert set(run["metrics"]) == expected
        assert len(run["metrics"]["recall_per_class"]["mean"]) == 2
        assert len(run["metrics"]["recall_per_class"]["std"]) == 2


def test_class_weights_raise_minority_recall(satimage_run: cmp.CompareResult) -> None:
    def recall(loss: str) -> float:
        return satimage_run.run(loss).metrics["recall_per_class"]["mean"][1]

    # plain CE finds about 55% of the damp grey soil; the weighted losses ~90%
    assert 0.40 < recall("ce") < 0.70
    for loss in ("balanced-ce", "logit-adjusted", "ce-posthoc"):
        assert recall(loss) > recall("ce") + 0.2
        assert recall(loss) > 0.8
    ce, balanced = satimage_run.run("ce"), satimage_run.run("balanced-ce")
    assert (
        balanced.metrics["balanced_accuracy"]["mean"]
        > ce.metrics["balanced_accuracy"]["mean"] + 0.05
    )
    # the price: probabilities no longer match the data's frequencies
    assert balanced.metrics["log_loss"]["mean"] > ce.metrics["log_loss"]["mean"]
    # worst-class recall is the minority's recall here
    assert ce.metrics["worst_class_recall"]["mean"] == pytest.approx(recall("ce"))


def test_posthoc_keeps_the_ranking_of_ce(satimage_run: cmp.CompareResult) -> None:
    ce, posthoc = satimage_run.run("ce"), satimage_run.run("ce-posthoc")
    # the same trained models, only the threshold moved
    for metric in ("pr_auc", "roc_auc"):
        for a, b in zip(posthoc.per_seed, ce.per_seed, strict=True):
            assert a[metric] == pytest.approx(b[metric], rel=1e-12)
    assert posthoc.metrics["recall_per_class"] != ce.metrics["recall_per_class"]


def test_seeds_give_a_spread(satimage_run: cmp.CompareResult) -> None:
    run = satimage_run.run("ce")
    values = [m["macro_f1"] for m in run.per_seed]
    assert len(values) == 2
    assert run.metrics["macro_f1"]["mean"] == pytest.approx(np.mean(values))
    assert run.metrics["macro_f1"]["std"] == pytest.approx(np.std(values, ddof=1))
    assert run.confusion is not None
    assert run.confusion.sum() == 2 * 1609


def test_report_files(satimage_run: cmp.CompareResult, tmp_path: Path) -> None:
    report = write_report(satimage_run, tmp_path / "report")
    names = sorted(p.name for p in report.parent.iterdir())
    assert names == [
        "confusion_matrices.png",
        "precision_recall.png",
        "recall_by_class.png",
        "report.md",
        "results.json",
        "summary.png",
    ]
    for png in report.parent.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 10_000
    text = report.read_text()
    assert text.startswith("# Loss comparison on satimage\n")
    for loss in cmp.DEFAULT_LOSSES:
        assert f"| {loss} | " in text
    assert "![Precision-recall curves](precision_recall.png)" in text
    saved = json.loads((report.parent / "results.json").read_text())
    assert saved == satimage_run.to_dict()


# ---------------------------------------------------------------------------
# Data preparation
# ---------------------------------------------------------------------------
def test_table_encoding_and_imputation() -> None:
    data = cmp.from_table(_table(), target="y", test_size=0.25, seed=0)
    assert data.task == "binary"
    # text classes: the rarer one is the positive class
    assert data.class_names == ("common", "rare")
    # x1, x2 standardised; colour one-hot with a "missing" category
    assert data.feature_names == (
        "x1",
        "x2",
        "colour_blue",
        "colour_green",
        "colour_missing",
        "colour_red",
    )
    assert data.X_train.shape == (150, 6)
    assert data.X_test.shape == (50, 6)
    assert np.isfinite(data.X_train).all() and np.isfinite(data.X_test).all()
    onehot = data.X_train[:, 2:]
    np.testing.assert_array_equal(onehot.sum(axis=1), 1.0)


def test_split_is_stratified() -> None:
    frame = _table(400)
    data = cmp.from_table(frame, target="y", test_size=0.25, seed=3)
    rate = (frame["y"] == "rare").mean()
    assert abs(data.y_train.mean() - rate) < 0.01
    assert abs(data.y_test.mean() - rate) < 0.01


def test_numeric_and_boolean_targets_keep_their_order() -> None:
    frame = _table()
    frame["y"] = (frame["y"] == "rare").astype(bool)
    data = cmp.from_table(frame, target="y")
    assert data.class_names == ("0", "1")
    frame["y"] = np.where(frame["y"], 7, 3) * 1.0
    assert cmp.from_table(frame, target="y").class_names == ("3", "7")


def test_multiclass_table() -> None:
    frame = _table()
    frame["y"] = np.repeat(["a", "b", "c", "d"], [110, 50, 30, 10])
    data = cmp.from_table(frame, target="y")
    assert data.task == "multiclass"
    assert data.class_names == ("a", "b", "c", "d")
    assert data.train_counts.tolist() == [82.0, 37.0, 23.0, 8.0]


def test_missing_targets_are_dropped() -> None:
    frame = _table()
    frame.loc[:9, "y"] = None
    data = cmp.from_table(frame, target="y")
    assert len(data.y_train) + len(data.y_test) == 190


@pytest.mark.parametrize(
    ("target", "values", "message"),
    [
        (
            "y",
            ["a"] * 20,
            "target 'y' has one class only ('a' in 20 rows); a "
            "classifier needs at least two",
        ),
        (
            "y",
            ["a"] * 18 + ["b"] * 2,
            "class 'b' has 2 rows, too few for "
            "--test-size 0.25: each class needs at least 4; drop or merge it, or "
            "change --test-size",
        ),
        (
            "y",
            ["1", "0", "oops"] + ["0"] * 17,
            "target 'y' is not numeric: it "
            "mixes numbers with text such as 'oops'; clean the column or make every "
            "class a word",
        ),
        ("y", [None] * 20, "target 'y' has no values; every row is missing"),
        (
            "y",
            np.linspace(0, 1, 20),
            "target 'y' has non-integer values such as "
            "0.0526316; compare classifies: pass a column of class labels",
        ),
    ],
)
def test_target_errors(target: str, values: object, message: str) -> None:
    frame = pd.DataFrame({"x": np.arange(20.0), target: values})
    with pytest.raises(cmp.DataError) as info:
        cmp.from_table(frame, target=target)
    assert str(info.value) == message
    assert info.value.exit_code == 1


def test_usage_errors_of_tables() -> None:
    frame = _table()
    with pytest.raises(
        cmp.UsageError,
        match=r"^column 'z' not in data; columns: "
        r"x1, x2, colour, y$",
    ):
        cmp.from_table(frame, target="z")
    with pytest.raises(cmp.UsageError, match="either --target COLUMN or --targets"):
        cmp.from_table(frame)
    with pytest.raises(cmp.UsageError, match=r"--test-size must be between 0 and 1"):
        cmp.from_table(frame, target="y", test_size=1.0)


def test_multilabel_table() -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(size=120), "w": rng.normal(size=120)})
    frame["a"] = (frame["x"] > 0.5).astype(int)
    frame["b"] = (frame["w"] > 1.0).astype(int)
    data = cmp.from_table(frame, targets=["a", "b"])
    assert data.task == "multilabel"
    assert data.y_train.shape == (90, 2) and data.y_train.dtype == np.float32
    assert data.feature_names == ("x", "w")
    result = cmp.compare(data, epochs=3, seeds=(0,))
    assert [r.loss for r in result.runs] == list(cmp.DEFAULT_LOSSES)
    metrics = result.run("ce").metrics
    assert "pr_auc" not in metrics and len(metrics["recall_per_class"]["mean"]) == 2
    frame["a"] = frame["a"].map({0: "no", 1: "yes"})
    with pytest.raises(cmp.DataError, match=r"^target 'a' is not numeric: multi-"):
        cmp.from_table(frame, targets=["a", "b"])


# ---------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------
def test_parse_losses() -> None:
    specs = cmp.parse_losses("ce, focal:gamma=1:alpha=0.25,balanced-ce:scheme=log")
    assert [s.name for s in specs] == [
        "ce",
        "focal:gamma=1:alpha=0.25",
        "balanced-ce:scheme=log",
    ]
    assert specs[1].option("gamma") == 1.0 and specs[1].option("alpha") == 0.25
    assert specs[0].training_key == cmp.parse_losses("ce-posthoc")[0].training_key
    assert [s.name for s in cmp.parse_losses(None)] == list(cmp.DEFAULT_LOSSES)
    with_cost = cmp.parse_losses(None, cost_matrix=True)
    assert with_cost[-1].name == "expected-cost"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "hinge",
            "unknown loss 'hinge'; choose from ce, balanced-ce, focal, "
            "logit-adjusted, ce-posthoc, ldam, asymmetric, cost-ce, expected-cost",
        ),
        (
            "focal:beta=1",
            "loss 'focal' has no option 'beta'; its options: gamma, alpha",
        ),
        ("focal:gamma=x", "option 'gamma' of 'focal' must be a number, got 'x'"),
        ("focal:gamma", "option 'gamma' of 'focal' needs a value: gamma=VALUE"),
        ("ce,ce", "loss 'ce' is listed twice in --losses"),
        ("expected-cost", "loss 'expected-cost' needs --cost-matrix FILE"),
    ],
)
def test_parse_loss_errors(text: str, message: str) -> None:
    with pytest.raises(cmp.UsageError) as info:
        cmp.parse_losses(text)
    assert str(info.value) == message


def _binary_data() -> cmp.PreparedData:
    frame = _table()
    return cmp.from_table(frame, target="y")


def test_binary_softmax_view_matches_sigmoid() -> None:
    """tau=0 logit adjustment on the (0, z) view is the plain sigmoid loss."""
    data = _binary_data()
    z = torch.linspace(-3, 3, 8).reshape(8, 1)
    t = torch.tensor([0, 1, 0, 0, 1, 1, 0, 1.0]).reshape(8, 1)
    (spec,) = cmp.parse_losses("logit-adjusted:tau=0")
    adjusted = objectives.build_objective(spec, data).loss(z, t)
    plain = wce.sigmoid_cross_entropy(z, t)
    assert float(adjusted) == pytest.approx(float(plain), rel=1e-6)


def test_balanced_ce_uses_pos_weight() -> None:
    data = _binary_data()
    n_pos = data.train_counts[1]
    ratio = (len(data.y_train) - n_pos) / n_pos
    z = torch.zeros(4, 1)
    t = torch.tensor([[1.0], [0.0], [0.0], [0.0]])
    (spec,) = cmp.parse_losses("balanced-ce")
    loss = objectives.build_objective(spec, data).loss(z, t)
    assert float(loss) == pytest.approx((ratio + 3) * np.log(2) / 4, rel=1e-6)


def test_posthoc_moves_the_binary_threshold_by_the_log_odds() -> None:
    data = _binary_data()
    p = data.train_prior[1]
    (spec,) = cmp.parse_losses("ce-posthoc:tau=0.5")
    logits = np.array([[-1.0], [0.0], [2.0]])
    moved = objectives.build_objective(spec, data).decide(logits)
    np.testing.assert_allclose(moved, logits - 0.5 * np.log(p / (1 - p)))


def test_loss_task_mismatch() -> None:
    frame = _table()
    frame["y"] = np.repeat(["a", "b", "c"], [120, 50, 30])
    data = cmp.from_table(frame, target="y")
    with pytest.raises(
        cmp.UsageError,
        match=r"^loss 'asymmetric' works on binary "
        r"and multilabel data, not multiclass; remove it",
    ):
        cmp.compare(data, losses="asymmetric", epochs=1, seeds=(0,))


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------
def test_evaluate_by_hand() -> None:
    y = np.array([0, 0, 0, 1, 1, 2])
    logits = np.log(
        np.array(
            [
                [0.8, 0.1, 0.1],
                [0.6, 0.3, 0.1],
                [0.2, 0.7, 0.1],
                [0.1, 0.8, 0.1],
                [0.5, 0.4, 0.1],
                [0.1, 0.1, 0.8],
            ]
        )
    )
    out = evaluate(
        "multiclass",
        y,
        *predictions("multiclass", logits),
        num_classes=3,
        cost_matrix=np.array([[0, 1, 1], [4, 0, 1], [1, 1, 0.0]]),
    )
    # predictions 0, 0, 1, 1, 0, 2
    assert out["accuracy"] == pytest.approx(4 / 6)
    assert out["recall_per_class"] == pytest.approx([2 / 3, 1 / 2, 1.0])
    assert out["precision_per_class"] == pytest.approx([2 / 3, 1 / 2, 1.0])
    assert out["worst_class_recall"] == pytest.approx(0.5)
    assert out["balanced_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert out["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    p_true = np.array([0.8, 0.6, 0.2, 0.8, 0.4, 0.8])
    assert out["log_loss"] == pytest.approx(-np.mean(np.log(p_true)))
    assert out["mean_cost"] == pytest.approx((1 + 4) / 6)
    assert "pr_auc" not in out


def test_evaluate_binary_aucs() -> None:
    y = np.array([0, 0, 1, 1])
    logits = np.array([[-2.0], [1.0], [0.5], [3.0]])
    out = evaluate("binary", y, *predictions("binary", logits), num_classes=2)
    assert out["roc_auc"] == pytest.approx(0.75)
    assert out["pr_auc"] == pytest.approx((1 + 2 / 3) / 2)
    assert out["recall_per_class"] == pytest.approx([0.5, 1.0])


def test_summarise() -> None:
    runs = [
        {"accuracy": 0.5, "recall_per_class": [0.1, 0.9]},
        {"accuracy": 0.7, "recall_per_class": [0.3, 0.9]},
    ]
    out = summarise(runs)
    assert out["accuracy"]["mean"] == pytest.approx(0.6)
    assert out["accuracy"]["std"] == pytest.approx(np.sqrt(0.02))
    assert out["recall_per_class"]["mean"] == pytest.approx([0.2, 0.9])
    assert out["recall_per_class"]["std"] == pytest.approx([np.sqrt(0.02), 0.0])
    assert summarise(runs[:1])["accuracy"] == {"mean": 0.5, "std": 0.0}


def test_cost_matrix_file(tmp_path: Path) -> None:
    path = tmp_path / "cost.csv"
    path.write_text("0,1\n5,0\n")
    np.testing.assert_array_equal(cmp.load_cost_matrix(path, 2), [[0, 1], [5, 0]])
    with pytest.raises(cmp.UsageError, match="is 2x2 but the data has 3 classes"):
        cmp.load_cost_matrix(path, 3)
    path.write_text("0 -1\n1 0\n")
    with pytest.raises(cmp.UsageError, match="negative or non-finite"):
        cmp.load_cost_matrix(path, 2)


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_every_loss_trains_on_every_task_it_supports(task: str) -> None:
    frame = _table(240)
    if task == "multiclass":
        frame["y"] = np.repeat(["a", "b", "c"], [150, 60, 30])
    if task == "multilabel":
        frame["low"] = frame.pop("x1") < -0.8
        frame["rare"] = frame.pop("y") == "rare"
        data = cmp.from_table(frame, targets=["low", "rare"])
    else:
        data = cmp.from_table(frame, target="y")
    assert data.task == task
    names = [k for k, (_, _, tasks) in cmp.LOSSES.items() if task in tasks]
    costs = None if task == "multilabel" else 1.0 - np.eye(data.num_classes)
    result = cmp.compare(data, losses=names, epochs=2, seeds=(0,), cost_matrix=costs)
    assert [r.loss for r in result.runs] == names
    for run in result.runs:
        assert 0.0 <= run.metrics["balanced_accuracy"]["mean"] <= 1.0
        assert np.isfinite(run.metrics["log_loss"]["mean"])
        if costs is not None:
            # with 0/1 costs the mean cost is the error rate
            accuracy = run.metrics["accuracy"]["mean"]
            assert run.metrics["mean_cost"]["mean"] == pytest.approx(1 - accuracy)
