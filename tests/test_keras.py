"""wce.keras losses in Keras 3 on the TensorFlow and JAX backends.

Each backend runs in its own process (Keras picks its backend once, at import).
The process fits small models for a few steps, evaluates them on one batch, saves
and reloads them, and prints what it saw; the checks here recompute every loss with
the functional API on the printed logits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import wce
import wce.longtail

CW = [1.0, 4.0, 0.5]
POS = [3.0, 1.0, 2.0]
SEG_CW = [0.5, 2.0, 1.0]
NAMES = ["softmax", "focal", "sigmoid", "segmentation"]
TYPE_NAMES = {
    "softmax": "SoftmaxCrossEntropy",
    "focal": "SoftmaxFocalLoss",
    "sigmoid": "SigmoidCrossEntropy",
    "segmentation": "SoftmaxCrossEntropy",
}

SCRIPT = r"""
import json
import sys
import numpy as np
import keras
import wce
from wce.keras import SigmoidCrossEntropy, SoftmaxCrossEntropy, SoftmaxFocalLoss

keras.utils.set_random_seed(0)
tmp = sys.argv[1]
rng = np.random.default_rng(0)
out = {"backend": keras.backend.backend()}


def run(name, model, loss, x, y, sw):
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss)
    hist = model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    n = len(x)
    logits = np.asarray(model.predict(x, batch_size=n, verbose=0))
    ev = model.evaluate(x, y, batch_size=n, verbose=0, return_dict=True)["loss"]
    ev_sw = model.evaluate(x, y, sample_weight=sw, batch_size=n, verbose=0,
                           return_dict=True)["loss"]
    direct = float(keras.ops.convert_to_numpy(loss(y, logits)))
    none = keras.ops.convert_to_numpy(loss.call(y, logits))
    path = f"{tmp}/{name}.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    reloaded_ev = loaded.evaluate(x, y, batch_size=n, verbose=0,
                                  return_dict=True)["loss"]
    out[name] = {
        "history": [float(v) for v in hist.history["loss"]],
        "logits": logits.tolist(), "evaluate": float(ev),
        "evaluate_sw": float(ev_sw), "direct": direct, "none": none.tolist(),
        "config": loss.get_config(), "loaded_class": type(loaded.loss).__name__,
        "loaded_config": loaded.loss.get_config(), "reloaded_evaluate": reloaded_ev,
    }


# single-label classes, integer labels of shape (N, 1), some ignored
x = rng.normal(size=(64, 5)).astype("float32")
y = rng.choice(3, size=(64, 1), p=[0.7, 0.2, 0.1]).astype("int64")
y[::9] = -1
sw = rng.uniform(0.5, 2.0, size=64).astype("float32")
model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
run("softmax", model, SoftmaxCrossEntropy(class_weight=CW, ignore_index=-1,
    reduction="weighted_mean", label_smoothing=0.05), x, y, sw)

# a long-tail loss on the same data
model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
run("focal", model, SoftmaxFocalLoss(gamma=2.0, class_weight=CW, ignore_index=-1),
    x, y, sw)

# multi-label targets: fit(class_weight=) cannot weigh these
t = (rng.uniform(size=(64, 3)) < [0.5, 0.1, 0.3]).astype("float32")
model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
run("sigmoid", model, SigmoidCrossEntropy(pos_weight=POS, class_weight=2.0), x, t,
    sw)

# dense segmentation: (N, H, W, 1) masks with void pixels 255
img = rng.normal(size=(8, 6, 6, 2)).astype("float32")
mask = rng.choice(3, size=(8, 6, 6, 1), p=[0.8, 0.15, 0.05]).astype("int32")
mask[:, 0, :, :] = 255
model = keras.Sequential([keras.Input((6, 6, 2)),
                          keras.layers.Conv2D(3, 1)])
seg_sw = rng.uniform(0.5, 2.0, size=8).astype("float32")
run("segmentation", model, SoftmaxCrossEntropy(class_weight=SEG_CW,
    ignore_index=255), img, mask, seg_sw)

data = {"x": x.tolist(), "y": y.tolist(), "sw": sw.tolist(), "t": t.tolist(),
        "mask": mask.tolist(), "seg_sw": seg_sw.tolist()}
out["data"] = data
print("RESULT " + json.dumps(out))
"""


def _run_backend(backend: str, tmp: Path) -> dict[str, Any]:
    env = dict(
        os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu"
    )
    script = f"CW, POS, SEG_CW = {CW}, {POS}, {SEG_CW}\n" + SCRIPT
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    res = dict(json.loads(line.removeprefix("RESULT ")))
    assert res["backend"] == backend
    return res


def _reference(res: dict[str, Any], name: str, with_sw: bool) -> float:
    data = res["data"]
    logits = np.asarray(res[name]["logits"], dtype=np.float32)
    sw = np.asarray(data["sw"]) if with_sw else None
    if name == "softmax":
        return float(
            wce.softmax_cross_entropy(
                logits,
                np.asarray(data["y"])[:, 0],
                class_weight=CW,
                ignore_index=-1,
                reduction="weighted_mean",
                label_smoothing=0.05,
                sample_weight=sw,
            )
        )
    if name == "focal":
        return float(
            wce.longtail.softmax_focal_loss(
                logits,
                np.asarray(data["y"])[:, 0],
                gamma=2.0,
                class_weight=CW,
                ignore_index=-1,
                sample_weight=sw,
            )
        )
    if name == "sigmoid":
        return float(
            wce.sigmoid_cross_entropy(
                logits,
                np.asarray(data["t"]),
                pos_weight=POS,
                class_weight=2.0,
                sample_weight=sw,
            )
        )
    seg_sw = np.asarray(data["seg_sw"]) if with_sw else None
    return float(
        wce.softmax_cross_entropy(
            logits,
            np.asarray(data["mask"])[..., 0],
            class_weight=SEG_CW,
            ignore_index=255,
            sample_weight=seg_sw,
        )
    )


# One test per backend process, so that pytest-xdist never runs one twice.
@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_keras_backend(backend: str, tmp_path: Path) -> None:
    res = _run_backend(backend, tmp_path)
    for name in NAMES:
        out = res[name]
        # a small model fits: finite, decreasing loss
        hist = out["history"]
        assert len(hist) == 3 and all(np.isfinite(hist)), (name, hist)
        assert hist[-1] < hist[0], (name, hist)
        # model.evaluate and a direct call equal the function on the logits
        want = _reference(res, name, with_sw=False)
        assert out["evaluate"] == pytest.approx(want, rel=1e-5), name
        assert out["direct"] == pytest.approx(want, rel=1e-5), name
        # Keras's sample_weight is wce's sample_weight
        want_sw = _reference(res, name, with_sw=True)
        assert want_sw != pytest.approx(want), name
        assert out["evaluate_sw"] == pytest.approx(want_sw, rel=1e-5), name
        # the saved model reloads with the same loss and configuration
        assert out["loaded_class"] == TYPE_NAMES[name], name
        assert out["loaded_config"] == out["config"], name
        assert out["reloaded_evaluate"] == pytest.approx(out["evaluate"], rel=1e-6)
    # call() gives the weighted per-element losses of a segmentation mask
    seg, data = res["segmentation"], res["data"]
    want_none = wce.softmax_cross_entropy(
        np.asarray(seg["logits"], dtype=np.float32),
        np.asarray(data["mask"])[..., 0],
        class_weight=SEG_CW,
        ignore_index=255,
        reduction="none",
    )
    assert np.asarray(seg["none"]).shape == (8, 6, 6)
    np.testing.assert_allclose(seg["none"], want_none, rtol=1e-5, atol=1e-7)


# -- in-process, on the backend the test session uses ---------------------------------
def test_config_round_trip_and_registration() -> None:
    import keras

    from wce.keras import SigmoidCrossEntropy

    loss = SigmoidCrossEntropy(
        pos_weight=np.array(POS), ignore_index=-1, reduction="sum", name="multi"
    )
    config = loss.get_config()
    assert config == {
        "name": "multi",
        "reduction": "sum",
        "pos_weight": POS,
        "class_weight": None,
        "label_smoothing": 0.0,
        "ignore_index": -1,
        "axis": -1,
    }
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(again) is SigmoidCrossEntropy
    assert again.get_config() == config


def test_errors() -> None:
    from wce.keras import SigmoidCrossEntropy, SoftmaxCrossEntropy

    with pytest.raises(ValueError, match="reduction must be one of"):
        SoftmaxCrossEntropy(reduction="sum_over_batch_size")
    with pytest.raises(TypeError, match="real-valued"):
        SigmoidCrossEntropy(class_weight=np.array([True, False]))
    with pytest.raises(ValueError, match="class_weight"):
        SoftmaxCrossEntropy(class_weight=[1.0, 2.0])(
            np.array([0, 1]), np.zeros((2, 3), dtype=np.float32)
        )


RNG = np.random.default_rng(11)
LOGITS = RNG.normal(size=(7, 4)).astype(np.float32)
IDS = np.array([0, 1, 3, 2, -1, 3, 0])
MULTI = (RNG.uniform(size=(7, 4)) < 0.4).astype(np.float32)
SW = RNG.uniform(0.5, 2.0, size=7).astype(np.float32)
CW4 = [1.0, 2.0, 0.5, 4.0]
COST4 = (1.0 - np.eye(4)) * np.array([1.0, 2.0, 3.0, 4.0])[:, None]

# (Keras class, function, keywords, labels)
IN_PROCESS = [
    (
        "SoftmaxCrossEntropy",
        wce.softmax_cross_entropy,
        {"class_weight": CW4, "cost_matrix": COST4, "ignore_index": -1},
        IDS,
    ),
    (
        "SigmoidCrossEntropy",
        wce.sigmoid_cross_entropy,
        {"pos_weight": CW4, "class_weight": 0.5, "reduction": "sum"},
        MULTI,
    ),
    (
        "SoftmaxFocalLoss",
        wce.longtail.softmax_focal_loss,
        {
            "gamma": 1.5,
            "class_weight": CW4,
            "ignore_index": -1,
            "reduction": "weighted_mean",
        },
        IDS,
    ),
    (
        "SigmoidFocalLoss",
        wce.longtail.sigmoid_focal_loss,
        {"gamma": 2.0, "alpha": 0.25, "class_weight": CW4},
        MULTI,
    ),
    (
        "LogitAdjustedCrossEntropy",
        wce.longtail.logit_adjusted_cross_entropy,
        {"prior": [50.0, 20.0, 5.0, 1.0], "tau": 1.0, "ignore_index": -1},
        IDS,
    ),
    (
        "LDAMLoss",
        wce.longtail.ldam_loss,
        {
            "class_counts": [50.0, 20.0, 5.0, 1.0],
            "scale": 5.0,
            "ignore_index": -1,
            "class_weight": CW4,
        },
        IDS,
    ),
    (
        "AsymmetricLoss",
        wce.longtail.asymmetric_loss,
        {
            "gamma_neg": 3.0,
            "clip": 0.1,
            "class_weight": CW4,
            "reduction": "weighted_mean",
        },
        MULTI,
    ),
    (
        "ExpectedCostLoss",
        wce.longtail.expected_cost_loss,
        {"cost_matrix": COST4, "ignore_index": -1},
        IDS,
    ),
]


@pytest.mark.parametrize("name, fn, kwargs, labels", IN_PROCESS)
def test_every_loss_equals_its_function_and_round_trips(
    name: str, fn: Any, kwargs: dict[str, Any], labels: np.ndarray
) -> None:
    import keras

    import wce.keras as wk

    loss = getattr(wk, name)(**kwargs)
    want = fn(LOGITS, labels, sample_weight=SW, **kwargs)
    got = loss(labels, keras.ops.convert_to_tensor(LOGITS), sample_weight=SW)
    assert float(keras.ops.convert_to_numpy(got)) == pytest.approx(
        float(want), rel=1e-5
    )
    config = loss.get_config()
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(again) is type(loss)
    assert again.get_config() == config
    assert json.loads(json.dumps(config)) == config


def test_every_class_is_covered() -> None:
    import wce.keras as wk

    assert sorted(wk.__all__) == sorted(name for name, _, _, _ in IN_PROCESS)


def test_keras_shaped_labels() -> None:
    """(N, 1) class ids, float class ids, and (N,) targets for (N, 1) logits."""
    from wce.keras import SigmoidCrossEntropy, SoftmaxCrossEntropy

    loss = SoftmaxCrossEntropy(ignore_index=-1)
    want = float(wce.softmax_cross_entropy(LOGITS, IDS, ignore_index=-1))
    assert float(loss(IDS[:, None], LOGITS)) == pytest.approx(want, rel=1e-6)
    assert float(loss(IDS.astype(np.float32), LOGITS)) == pytest.approx(want, rel=1e-6)
    onehot = np.eye(4, dtype=np.float32)[[0, 1, 3]]
    want = float(wce.softmax_cross_entropy(LOGITS[:3], onehot))
    got = SoftmaxCrossEntropy()(onehot, LOGITS[:3])
    assert float(got) == pytest.approx(want, rel=1e-6)
    binary = SigmoidCrossEntropy(pos_weight=2.0)
    z, t = LOGITS[:, :1], MULTI[:, 0]
    want = float(wce.sigmoid_cross_entropy(z, t[:, None], pos_weight=2.0))
    assert float(binary(t, z)) == pytest.approx(want, rel=1e-6)


def test_example_trains_saves_and_reloads(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util

    path = Path(__file__).parents[1] / "examples" / "train_keras.py"
    spec = importlib.util.spec_from_file_location("example_keras", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = example.main(["--dataset", "satimage", "--epochs", "2", "--limit", "2000"])
    assert result["balanced_accuracy"] > 0.6  # two classes: chance is 0.5
    assert "reloaded loss: SoftmaxCrossEntropy" in capsys.readouterr().out
