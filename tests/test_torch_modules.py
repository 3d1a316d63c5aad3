"""wce.torch modules: parity with the functions, buffers, dtypes, compile, autocast."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import wce
import wce.longtail
import wce.torch as wt

RNG = np.random.default_rng(7)
N, C = 6, 4


def _softmax_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    logits = torch.tensor(RNG.normal(size=(N, C)), dtype=torch.float64)
    labels = torch.tensor([0, 1, 3, -100, 2, 3])
    return logits, labels


def _sigmoid_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    logits = torch.tensor(RNG.normal(size=(N, C)), dtype=torch.float64)
    labels = torch.tensor(RNG.integers(0, 2, size=(N, C)), dtype=torch.float64)
    return logits, labels


CW = [0.5, 2.0, 1.0, 4.0]
COST = np.array([[0, 1, 2, 3], [1, 0, 1, 2], [4, 1, 0, 1], [3, 2, 1, 0.5]])

# (module class, function, keywords, kind)
CASES: list[tuple[type, Any, dict[str, Any], str]] = [
    (
        wt.SoftmaxCrossEntropy,
        wce.softmax_cross_entropy,
        {"class_weight": CW, "ignore_index": -100},
        "softmax",
    ),
    (
        wt.SoftmaxCrossEntropy,
        wce.softmax_cross_entropy,
        {
            "class_weight": CW,
            "ignore_index": -100,
            "reduction": "weighted_mean",
            "label_smoothing": 0.1,
        },
        "softmax",
    ),
    (
        wt.SoftmaxCrossEntropy,
        wce.softmax_cross_entropy,
        {
            "cost_matrix": COST,
            "weight_by": "prediction",
            "class_weight": CW,
            "ignore_index": -100,
            "reduction": "sum",
        },
        "softmax",
    ),
    (
        wt.SoftmaxCrossEntropy,
        wce.softmax_cross_entropy,
        {"ignore_index": -100, "reduction": "none"},
        "softmax",
    ),
    (
        wt.SigmoidCrossEntropy,
        wce.sigmoid_cross_entropy,
        {"pos_weight": [3.0, 1.0, 0.5, 2.0], "class_weight": 2.0},
        "sigmoid",
    ),
    (
        wt.SigmoidCrossEntropy,
        wce.sigmoid_cross_entropy,
        {"class_weight": CW, "reduction": "weighted_mean", "label_smoothing": 0.2},
        "sigmoid",
    ),
    (
        wt.SoftmaxFocalLoss,
        wce.longtail.softmax_focal_loss,
        {"gamma": 2.0, "class_weight": CW, "ignore_index": -100},
        "softmax",
    ),
    (
        wt.SigmoidFocalLoss,
        wce.longtail.sigmoid_focal_loss,
        {"gamma": 1.5, "alpha": 0.25, "class_weight": CW, "reduction": "sum"},
        "sigmoid",
    ),
    (
        wt.LogitAdjustedCrossEntropy,
        wce.longtail.logit_adjusted_cross_entropy,
        {
            "prior": [0.6, 0.25, 0.1, 0.05],
            "tau": 1.0,
            "ignore_index": -100,
            "reduction": "weighted_mean",
            "class_weight": CW,
        },
        "softmax",
    ),
    (
        wt.LDAMLoss,
        wce.longtail.ldam_loss,
        {
            "class_counts": [500.0, 100.0, 20.0, 5.0],
            "class_weight": CW,
            "scale": 10.0,
            "ignore_index": -100,
        },
        "softmax",
    ),
    (
        wt.AsymmetricLoss,
        wce.longtail.asymmetric_loss,
        {"gamma_pos": 1.0, "gamma_neg": 4.0, "clip": 0.05, "class_weight": CW},
        "sigmoid",
    ),
    (
        wt.ExpectedCostLoss,
        wce.longtail.expected_cost_loss,
        {"cost_matrix": COST, "ignore_index": -100, "reduction": "none"},
        "softmax",
    ),
]


def _inputs(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    return _softmax_inputs() if kind == "softmax" else _sigmoid_inputs()


def _as64(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The function's keywords with arrays as float64 tensors (the buffers' copy)."""
    out = {}
    for k, v in kwargs.items():
        is_array = isinstance(v, (list, np.ndarray)) or (
            isinstance(v, float) and k in ("pos_weight", "class_weight")
        )
        out[k] = torch.tensor(np.asarray(v), dtype=torch.float64) if is_array else v
    return out


# -- parity with the functions ------------------------------------------------
@pytest.mark.parametrize("cls, fn, kwargs, kind", CASES)
def test_module_equals_function_values_and_gradients(
    cls: type, fn: Any, kwargs: dict[str, Any], kind: str
) -> None:
    logits, labels = _inputs(kind)
    sw = torch.tensor(RNG.uniform(0.5, 2.0, size=N), dtype=torch.float64)
    module = cls(**_as64(kwargs))

    a = logits.clone().requires_grad_(True)
    got = module(a, labels, sw)
    b = logits.clone().requires_grad_(True)
    want = fn(b, labels, sample_weight=sw, **_as64(kwargs))

    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    got.sum().backward()
    want.sum().backward()
    assert a.grad is not None and b.grad is not None
    assert a.grad.abs().sum() > 0
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-12, atol=1e-12)


def test_every_loss_has_a_module() -> None:
    functions = {fn for _, fn, _, _ in CASES}
    names = set(wce.longtail.__all__) - {"drw_weights"}
    assert {f.__name__ for f in functions} >= names
    assert len({cls for cls, _, _, _ in CASES}) == len(wt.__all__) == 8


def test_segmentation_axis_1() -> None:
    logits = torch.tensor(RNG.normal(size=(2, 3, 4, 5)), dtype=torch.float32)
    labels = torch.tensor(RNG.integers(0, 3, size=(2, 4, 5)))
    labels[0, 0, :2] = 255
    module = wt.SoftmaxCrossEntropy(
        class_weight=[1.0, 2.0, 0.5],
        axis=1,
        ignore_index=255,
        reduction="weighted_mean",
    )
    want = wce.softmax_cross_entropy(
        logits,
        labels,
        class_weight=[1.0, 2.0, 0.5],
        axis=1,
        ignore_index=255,
        reduction="weighted_mean",
    )
    torch.testing.assert_close(module(logits, labels), want)


def test_matches_torch_cross_entropy_weighted_mean() -> None:
    """An independent reference: PyTorch's own weighted cross-entropy."""
    logits, labels = _softmax_inputs()
    w = torch.tensor(CW, dtype=torch.float64)
    module = wt.SoftmaxCrossEntropy(
        class_weight=w, ignore_index=-100, reduction="weighted_mean"
    )
    want = torch.nn.functional.cross_entropy(
        logits, labels, weight=w, ignore_index=-100
    )
    torch.testing.assert_close(module(logits, labels), want)


# -- buffers, state_dict, dtype and device moves -------------------------------
def test_state_dict_round_trip() -> None:
    src = wt.SigmoidCrossEntropy(pos_weight=[2.0, 3.0, 1.0, 0.5], class_weight=CW)
    dst = wt.SigmoidCrossEntropy(pos_weight=[1.0] * C, class_weight=[1.0] * C)
    assert set(src.state_dict()) == {"pos_weight", "class_weight"}
    logits, labels = _sigmoid_inputs()
    assert not torch.allclose(src(logits, labels), dst(logits, labels))
    dst.load_state_dict(src.state_dict())
    torch.testing.assert_close(dst(logits, labels), src(logits, labels))
    torch.testing.assert_close(dst.pos_weight, torch.tensor([2.0, 3.0, 1.0, 0.5]))


def test_pickle_and_deepcopy_round_trip() -> None:
    import copy
    import pickle

    module = wt.LDAMLoss(class_counts=[50.0, 20.0, 5.0, 1.0], sync_normalizer=True)
    logits, labels = _softmax_inputs()
    labels = labels.clamp(min=0)
    want = module(logits, labels)
    for again in (pickle.loads(pickle.dumps(module)), copy.deepcopy(module)):
        torch.testing.assert_close(again(logits, labels), want)
        assert again.sync_normalizer


def test_none_arrays_are_not_in_state_dict() -> None:
    module = wt.SoftmaxCrossEntropy()
    assert module.class_weight is None
    assert dict(module.state_dict()) == {}


def test_buffers_follow_dtype_and_device() -> None:
    module = wt.SoftmaxCrossEntropy(class_weight=CW, cost_matrix=COST)
    assert module.class_weight.dtype == torch.float32
    module = module.to(torch.float64)
    assert module.class_weight.dtype == torch.float64
    assert module.cost_matrix.dtype == torch.float64
    module = module.to("meta")
    assert module.class_weight.device.type == "meta"
    assert module.cost_matrix.device.type == "meta"


def test_tensor_weights_keep_their_dtype_and_are_copied() -> None:
    w = torch.tensor(CW, dtype=torch.float64)
    module = wt.SoftmaxCrossEntropy(class_weight=w)
    w[0] = 100.0
    buffer = module.get_buffer("class_weight")
    assert buffer.dtype == torch.float64
    assert float(buffer[0]) == 0.5


def test_float32_module_on_float32_logits_matches_float64_reference() -> None:
    logits, labels = _softmax_inputs()
    module = wt.SoftmaxCrossEntropy(
        class_weight=CW, ignore_index=-100, reduction="weighted_mean"
    )
    got = module(logits.float(), labels)
    want = wce.softmax_cross_entropy(
        logits, labels, class_weight=CW, ignore_index=-100, reduction="weighted_mean"
    )
    assert got.dtype == torch.float32
    assert abs(float(got) - float(want)) < 1e-6


# -- compile and autocast -------------------------------------------------------
# inductor imports torch.utils.mkldnn, which warns about torch.jit at import
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method`:DeprecationWarning")
@pytest.mark.parametrize("case", [0, 7])
def test_torch_compile_parity(case: int) -> None:
    cls, fn, kwargs, kind = CASES[case]
    logits, labels = _inputs(kind)
    logits = logits.float()
    module = cls(**kwargs)
    torch._dynamo.reset()
    compiled = torch.compile(module, fullgraph=True)

    a = logits.clone().requires_grad_(True)
    got = compiled(a, labels)
    got.backward()
    b = logits.clone().requires_grad_(True)
    want = fn(b, labels, **kwargs)
    want.backward()
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-6)


def test_cpu_autocast_bfloat16() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(5, C)
    x = torch.randn(N, 5)
    _, labels = _softmax_inputs()
    module = wt.SoftmaxCrossEntropy(
        class_weight=CW, ignore_index=-100, cost_matrix=COST
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = layer(x)
        assert logits.dtype == torch.bfloat16
        got = module(logits, labels)
    assert got.dtype == torch.float32
    got.backward()
    assert layer.weight.grad is not None
    assert torch.isfinite(layer.weight.grad).all()
    want = wce.softmax_cross_entropy(
        logits.detach().float(),
        labels,
        class_weight=CW,
        ignore_index=-100,
        cost_matrix=COST,
    )
    torch.testing.assert_close(got.detach(), want, rtol=1e-6, atol=1e-6)


# -- normalizers ------------------------------------------------------------------
def test_sync_normalizer_without_process_group_changes_nothing() -> None:
    logits, labels = _softmax_inputs()
    plain = wt.SoftmaxCrossEntropy(class_weight=CW, ignore_index=-100).double()
    synced = wt.SoftmaxCrossEntropy(
        class_weight=CW, ignore_index=-100, sync_normalizer=True
    ).double()
    torch.testing.assert_close(synced(logits, labels), plain(logits, labels))


def test_custom_normalizer_is_used() -> None:
    logits, labels = _softmax_inputs()

    def halve(be: Any, num: Any, den: Any) -> tuple[Any, Any]:
        return num, 2 * den

    module = wt.SoftmaxCrossEntropy(ignore_index=-100, normalizer=halve)
    want = wce.softmax_cross_entropy(logits, labels, ignore_index=-100) / 2
    torch.testing.assert_close(module(logits, labels), want)


# -- errors ------------------------------------------------------------------------
def test_errors_at_construction() -> None:
    with pytest.raises(ValueError, match="reduction must be one of"):
        wt.SoftmaxCrossEntropy(reduction="avg")
    with pytest.raises(ValueError, match="sync_normalizer"):
        wt.SoftmaxCrossEntropy(sync_normalizer=True, normalizer=lambda b, n, d: (n, d))
    with pytest.raises(TypeError, match="real-valued"):
        wt.SigmoidCrossEntropy(class_weight=[True, False])
    with pytest.raises(ValueError, match="label_smoothing"):
        wt.SigmoidCrossEntropy(label_smoothing=1.5)


def test_wrong_class_weight_length_raises_at_call() -> None:
    logits, labels = _softmax_inputs()
    module = wt.SoftmaxCrossEntropy(class_weight=[1.0, 2.0], ignore_index=-100)
    with pytest.raises(ValueError, match="class_weight"):
        module(logits, labels)


# -- the example -------------------------------------------------------------------
def test_example_trains_on_fashion_mnist_lt(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util
    from pathlib import Path

    from wce.datasets import DatasetUnavailableError

    path = Path(__file__).parents[1] / "examples" / "train_torch_fashion_mnist_lt.py"
    spec = importlib.util.spec_from_file_location("example_torch", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    args = ["--epochs", "1", "--limit", "3000", "--test-limit", "2000"]
    try:
        result = example.main([*args, "--loss", "ldam", "--hidden", "64"])
    except DatasetUnavailableError as err:
        pytest.skip(str(err))
    assert np.isfinite(result["train_loss"])
    assert result["balanced_accuracy"] > 0.3  # ten classes: chance is 0.1
    assert "class counts" in capsys.readouterr().out
