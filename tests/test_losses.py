"""softmax_cross_entropy and sigmoid_cross_entropy.

Order: reference values, parity with the peers, gradients, invariants, backends
and tracing, errors.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import wce

from . import reference as ref
from ._arrays import grad, host, to
from .conftest import BACKENDS

RNG = np.random.default_rng(20261203)
REDUCTIONS = ("none", "sum", "mean", "weighted_mean")


def _softmax_inputs(shape: tuple[int, ...] = (6, 4), axis: int = -1) -> tuple:
    logits = RNG.normal(scale=2.0, size=shape)
    c = shape[axis]
    elem = shape[: axis % len(shape)] + shape[axis % len(shape) + 1 :]
    labels = RNG.integers(0, c, size=elem)
    return logits, labels


LOGITS, LABELS = _softmax_inputs()
PROBS = RNG.dirichlet(np.ones(4), size=6)
CW = np.array([0.5, 2.0, 1.0, 4.0])
COST = np.array([[0, 1, 2, 3], [1, 0, 1, 2], [5, 1, 0, 1], [9, 2, 1, 0.5]])
SW = RNG.uniform(0.0, 2.0, size=6)

# (name, labels, keyword options): every option alone and in combinations
SOFTMAX_OPTIONS = [
    ("plain", LABELS, {}),
    ("class_weight", LABELS, {"class_weight": CW}),
    ("by_prediction", LABELS, {"class_weight": CW, "weight_by": "prediction"}),
    ("cost_matrix", LABELS, {"cost_matrix": COST}),
    ("sample_weight", LABELS, {"sample_weight": SW}),
    ("smoothing", LABELS, {"label_smoothing": 0.2}),
    ("ignore", np.where(LABELS == 1, -100, LABELS), {"ignore_index": -100}),
    ("probs", PROBS, {}),
    ("probs_weighted", PROBS, {"class_weight": CW, "label_smoothing": 0.1}),
    ("probs_cost", PROBS, {"cost_matrix": COST, "sample_weight": SW}),
    (
        "all_hard",
        np.where(LABELS == 2, 7, LABELS),
        {
            "class_weight": CW,
            "cost_matrix": COST,
            "sample_weight": SW,
            "label_smoothing": 0.05,
            "ignore_index": 7,
        },
    ),
]

Z = RNG.normal(scale=3.0, size=(5, 3))
T = (RNG.random((5, 3)) > 0.6).astype(np.float64)
SOFT_T = RNG.random((5, 3))
SIGMOID_OPTIONS = [
    ("plain", T, {}),
    ("pos_weight", T, {"pos_weight": np.array([3.0, 1.0, 0.5])}),
    ("pos_weight_scalar", T, {"pos_weight": 2.5}),
    ("class_weight", T, {"class_weight": np.array([1.0, 0.2, 5.0])}),
    ("sample_weight", T, {"sample_weight": np.array([1, 2, 0, 1, 3.0])}),
    ("smoothing", SOFT_T, {"label_smoothing": 0.3, "pos_weight": [2.0, 1.0, 1.0]}),
    ("ignore", np.where(RNG.random((5, 3)) > 0.7, -1.0, T), {"ignore_index": -1}),
    (
        "all",
        np.where(RNG.random((5, 3)) > 0.8, -1.0, SOFT_T),
        {
            "pos_weight": [3.0, 1.0, 0.5],
            "class_weight": [1.0, 0.2, 5.0],
            "sample_weight": np.array([1, 2, 0, 1, 3.0]),
            "label_smoothing": 0.1,
            "ignore_index": -1,
        },
    ),
]


def _labels_for(backend: str, labels: np.ndarray) -> Any:
    return to(backend, labels)


# ---------------------------------------------------------------------------
# Reference values
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    ("name", "labels", "options"), SOFTMAX_OPTIONS, ids=[o[0] for o in SOFTMAX_OPTIONS]
)
def test_softmax_reference_float64(name, labels, options, reduction) -> None:
    got = wce.softmax_cross_entropy(LOGITS, labels, reduction=reduction, **options)
    want = ref.softmax_cross_entropy(LOGITS, labels, reduction=reduction, **options)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize(
    ("name", "labels", "options"), SIGMOID_OPTIONS, ids=[o[0] for o in SIGMOID_OPTIONS]
)
def test_sigmoid_reference_float64(name, labels, options, reduction) -> None:
    got = wce.sigmoid_cross_entropy(Z, labels, reduction=reduction, **options)
    want = ref.sigmoid_cross_entropy(Z, labels, reduction=reduction, **options)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    ("name", "labels", "options"), SOFTMAX_OPTIONS, ids=[o[0] for o in SOFTMAX_OPTIONS]
)
def test_softmax_reference_every_backend(backend, name, labels, options) -> None:
    want = ref.softmax_cross_entropy(
        LOGITS, labels, reduction="weighted_mean", **options
    )
    got = wce.softmax_cross_entropy(
        to(backend, LOGITS, np.float32),
        _labels_for(backend, labels),
        reduction="weighted_mean",
        **options,
    )
    assert "float32" in str(got.dtype)
    np.testing.assert_allclose(host(got), want, rtol=2e-6)


@pytest.mark.parametrize(
    ("name", "labels", "options"), SIGMOID_OPTIONS, ids=[o[0] for o in SIGMOID_OPTIONS]
)
def test_sigmoid_reference_every_backend(backend, name, labels, options) -> None:
    want = ref.sigmoid_cross_entropy(Z, labels, reduction="none", **options)
    got = wce.sigmoid_cross_entropy(
        to(backend, Z, np.float32),
        to(backend, labels, np.float32),
        reduction="none",
        **options,
    )
    np.testing.assert_allclose(host(got), want, rtol=2e-6, atol=1e-7)


def test_zero_pos_weight_leaves_the_positive_term_out(backend) -> None:
    # a zero positive weight times softplus(-z) = inf at z = -inf is 0, not NaN
    z = np.array([[-np.inf, 2.0], [-np.inf, -np.inf]])
    t = np.array([[1.0, 1.0], [0.0, 1.0]])
    pw = np.array([0.0, 3.0])
    got = wce.sigmoid_cross_entropy(
        to(backend, z, np.float32), to(backend, t, np.float32),
        pos_weight=to(backend, pw, np.float32), reduction="none",
    )  # fmt: skip
    # 0, 3 softplus(-2); 0 (target 0 at -inf); 3 softplus(inf) = inf
    want = np.array([[0.0, 3.0 * math.log1p(math.exp(-2.0))], [0.0, np.inf]])
    np.testing.assert_allclose(host(got), want, rtol=2e-6)
    if backend == "numpy":
        return  # no gradients
    g = grad(
        backend,
        lambda a: wce.sigmoid_cross_entropy(
            a, to(backend, t[:1], np.float32), pos_weight=to(backend, pw, np.float32),
            reduction="sum",
        ),
        to(backend, z[:1], np.float32),
    )  # fmt: skip
    # d/dz of 3 softplus(-z) at z = 2 is -3 sigmoid(-2); the masked term gives 0
    np.testing.assert_allclose(g, [[0.0, -3.0 / (1.0 + math.exp(2.0))]], rtol=2e-6)


def test_segmentation_layout_class_axis_1(backend) -> None:
    logits, labels = _softmax_inputs((2, 3, 4, 5), axis=1)
    labels[0, 0, :2] = 255
    sw = np.array([1.0, 3.0])
    want = ref.softmax_cross_entropy(
        logits,
        labels,
        class_weight=[1.0, 2.0, 0.5],
        sample_weight=sw,
        ignore_index=255,
        axis=1,
        reduction="weighted_mean",
    )
    got = wce.softmax_cross_entropy(
        to(backend, logits),
        to(backend, labels),
        class_weight=[1.0, 2.0, 0.5],
        sample_weight=sw,
        ignore_index=255,
        axis=1,
        reduction="weighted_mean",
    )
    np.testing.assert_allclose(host(got), want, rtol=1e-10)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_is_computed_in_float32(backend, dtype) -> None:
    x16 = to(backend, LOGITS, dtype)
    exact = host(x16).astype(np.float64)  # the values the half array holds
    got = wce.softmax_cross_entropy(
        x16, to(backend, LABELS), class_weight=CW, reduction="none"
    )
    assert "float32" in str(got.dtype)
    want = ref.softmax_cross_entropy(exact, LABELS, class_weight=CW, reduction="none")
    np.testing.assert_allclose(host(got), want, rtol=2e-6)


def test_integer_and_half_weights_are_cast(backend) -> None:
    got = wce.softmax_cross_entropy(
        to(backend, LOGITS),
        to(backend, LABELS),
        class_weight=to(backend, [1, 2, 3, 4], np.int32),
    )
    got16 = wce.softmax_cross_entropy(
        to(backend, LOGITS),
        to(backend, LABELS),
        class_weight=to(backend, [1, 2, 3, 4], "float16"),
    )
    want = ref.softmax_cross_entropy(LOGITS, LABELS, class_weight=[1, 2, 3, 4])
    np.testing.assert_allclose(host(got), want, rtol=1e-10)
    np.testing.assert_allclose(host(got16), want, rtol=1e-10)


# ---------------------------------------------------------------------------
# Parity with the peers
# ---------------------------------------------------------------------------
def test_parity_torch_cross_entropy() -> None:
    import torch
    import torch.nn.functional as F

    x = torch.tensor(RNG.normal(size=(64, 7)))
    y = torch.tensor(RNG.integers(0, 7, 64))
    y[::5] = -100
    w = torch.tensor(RNG.uniform(0.1, 3.0, 7))
    probs = torch.tensor(RNG.dirichlet(np.ones(7), 64))
    pairs = [
        (
            F.cross_entropy(x, y, weight=w, ignore_index=-100),
            wce.softmax_cross_entropy(
                x, y, class_weight=w, ignore_index=-100, reduction="weighted_mean"
            ),
        ),
        (
            F.cross_entropy(x, y, weight=w, ignore_index=-100, reduction="sum"),
            wce.softmax_cross_entropy(
                x, y, class_weight=w, ignore_index=-100, reduction="sum"
            ),
        ),
        (
            F.cross_entropy(x, y, weight=w, ignore_index=-100, reduction="none"),
            wce.softmax_cross_entropy(
                x, y, class_weight=w, ignore_index=-100, reduction="none"
            ),
        ),
        (
            F.cross_entropy(x, y, ignore_index=-100, label_smoothing=0.1),
            wce.softmax_cross_entropy(x, y, ignore_index=-100, label_smoothing=0.1),
        ),
        (F.cross_entropy(x, probs), wce.softmax_cross_entropy(x, probs)),
        (
            F.cross_entropy(x, probs, label_smoothing=0.3),
            wce.softmax_cross_entropy(x, probs, label_smoothing=0.3),
        ),
    ]
    for theirs, ours in pairs:
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def test_parity_torch_segmentation_and_bce_pos_weight() -> None:
    import torch
    import torch.nn.functional as F

    x = torch.tensor(RNG.normal(size=(2, 5, 3, 4)))
    y = torch.tensor(RNG.integers(0, 5, (2, 3, 4)))
    w = torch.tensor(RNG.uniform(0.1, 3.0, 5))
    torch.testing.assert_close(
        wce.softmax_cross_entropy(
            x, y, class_weight=w, axis=1, reduction="weighted_mean"
        ),
        F.cross_entropy(x, y, weight=w),
    )
    z = torch.tensor(RNG.normal(scale=4, size=(32, 6)))
    t = torch.tensor(RNG.random((32, 6)))
    pw = torch.tensor(RNG.uniform(0.5, 9.0, 6))
    for reduction in ("none", "sum", "mean"):
        torch.testing.assert_close(
            wce.sigmoid_cross_entropy(z, t, pos_weight=pw, reduction=reduction),
            F.binary_cross_entropy_with_logits(
                z, t, pos_weight=pw, reduction=reduction
            ),
        )


def test_parity_tensorflow_nn_against_compat() -> None:
    import tensorflow as tf

    from wce import compat

    x = RNG.normal(scale=3, size=(16, 5))
    y = RNG.integers(0, 5, 16)
    p = RNG.dirichlet(np.ones(5), 16)
    t = RNG.random((16, 5))
    pairs = [
        (
            tf.nn.sparse_softmax_cross_entropy_with_logits(y, x),
            compat.sparse_softmax_cross_entropy_with_logits,
        ),
        (
            tf.nn.softmax_cross_entropy_with_logits(p, x),
            compat.softmax_cross_entropy_with_logits,
        ),
        (
            tf.nn.sigmoid_cross_entropy_with_logits(t, x),
            compat.sigmoid_cross_entropy_with_logits,
        ),
    ]
    for backend in BACKENDS:
        for theirs, ours in pairs:
            labels = (
                y
                if ours is compat.sparse_softmax_cross_entropy_with_logits
                else (p if ours is compat.softmax_cross_entropy_with_logits else t)
            )
            got = ours(to(backend, labels), to(backend, x))
            np.testing.assert_allclose(host(got), theirs.numpy(), rtol=1e-10)
        got = compat.weighted_cross_entropy_with_logits(
            to(backend, t), to(backend, x), 2.5
        )
        want = tf.nn.weighted_cross_entropy_with_logits(t, x, 2.5).numpy()
        np.testing.assert_allclose(host(got), want, rtol=1e-10)
    xt = np.moveaxis(x.reshape(4, 4, 5), -1, 1)
    pt = np.moveaxis(p.reshape(4, 4, 5), -1, 1)
    np.testing.assert_allclose(
        compat.softmax_cross_entropy_with_logits(pt, xt, axis=1),
        tf.nn.softmax_cross_entropy_with_logits(pt, xt, axis=1).numpy(),
        rtol=1e-10,
    )


def test_parity_optax() -> None:
    import jax.numpy as jnp
    import optax

    x = jnp.asarray(RNG.normal(scale=3, size=(16, 5)))
    y = jnp.asarray(RNG.integers(0, 5, 16))
    p = jnp.asarray(RNG.dirichlet(np.ones(5), 16))
    t = jnp.asarray(RNG.random((16, 5)))
    np.testing.assert_allclose(
        wce.softmax_cross_entropy(x, y, reduction="none"),
        optax.losses.softmax_cross_entropy_with_integer_labels(x, y),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        wce.softmax_cross_entropy(x, p, reduction="none"),
        optax.losses.softmax_cross_entropy(x, p),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        wce.sigmoid_cross_entropy(x, t, reduction="none"),
        optax.losses.sigmoid_binary_cross_entropy(x, t),
        rtol=1e-12,
    )


def test_parity_sklearn_log_loss_with_sample_weight() -> None:
    from scipy.special import softmax
    from sklearn.metrics import log_loss

    x = RNG.normal(size=(40, 3))
    y = RNG.integers(0, 3, 40)
    sw = RNG.uniform(0.0, 5.0, 40)
    want = log_loss(y, softmax(x, axis=1), sample_weight=sw, labels=[0, 1, 2])
    got = wce.softmax_cross_entropy(x, y, sample_weight=sw, reduction="weighted_mean")
    np.testing.assert_allclose(got, want, rtol=1e-10)


# ---------------------------------------------------------------------------
# Gradients
# ---------------------------------------------------------------------------
def test_torch_gradcheck_float64() -> None:
    import torch

    x = torch.tensor(RNG.normal(size=(5, 4)), requires_grad=True)
    y = torch.tensor(np.array([0, 3, -1, 2, 1]))
    p = torch.tensor(RNG.dirichlet(np.ones(4), 5))
    sw = torch.tensor(RNG.uniform(0.5, 2, 5), requires_grad=True)

    def hard(x, sw):
        return wce.softmax_cross_entropy(
            x,
            y,
            class_weight=CW,
            sample_weight=sw,
            label_smoothing=0.1,
            ignore_index=-1,
            reduction="weighted_mean",
        )

    def soft(x):
        return wce.softmax_cross_entropy(x, p, cost_matrix=COST, reduction="none")

    z = torch.tensor(RNG.normal(size=(5, 3)), requires_grad=True)
    t = torch.tensor(SOFT_T)

    def sig(z, sw):
        return wce.sigmoid_cross_entropy(
            z,
            t,
            pos_weight=[2.0, 1.0, 0.5],
            class_weight=[1.0, 3.0, 1.0],
            sample_weight=sw,
            label_smoothing=0.1,
            reduction="weighted_mean",
        )

    assert torch.autograd.gradcheck(hard, (x, sw))
    assert torch.autograd.gradcheck(soft, (x,))
    assert torch.autograd.gradcheck(sig, (z, sw))
    assert torch.autograd.gradgradcheck(hard, (x, sw))


def _finite_difference(fn: Any, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        g[i] = (float(fn(up)) - float(fn(down))) / (2 * h)
    return g


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
@pytest.mark.parametrize("loss", ["softmax", "sigmoid"])
def test_gradient_matches_finite_differences(backend, loss) -> None:
    if loss == "softmax":
        labels = np.where(LABELS == 1, -100, LABELS)

        def f(x: Any) -> Any:
            return wce.softmax_cross_entropy(
                x,
                to(backend, labels),
                class_weight=CW,
                sample_weight=SW,
                label_smoothing=0.1,
                ignore_index=-100,
                reduction="weighted_mean",
            )

        x0 = LOGITS
    else:

        def f(x: Any) -> Any:
            return wce.sigmoid_cross_entropy(
                x,
                to(backend, SOFT_T),
                pos_weight=[3.0, 1.0, 0.5],
                sample_weight=SW[:5],
                reduction="mean",
            )

        x0 = Z
    got = grad(backend, f, to(backend, x0))
    want = _finite_difference(lambda v: host(f(to(backend, v))), x0)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("backend", ["torch", "jax", "tensorflow"])
@pytest.mark.parametrize("scale", [100.0, 1e9])
def test_gradients_finite_at_extreme_logits(backend, scale) -> None:
    x = np.array([[scale, -scale, 0.0], [-scale, scale, scale], [scale, scale, 0]])
    y = np.array([1, 0, 2])
    t = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.3], [1.0, 1.0, 0.0]])
    for fn, labels in ((wce.softmax_cross_entropy, y), (wce.sigmoid_cross_entropy, t)):

        def f(v: Any, fn=fn, labels=labels) -> Any:
            return fn(
                v,
                to(backend, labels),
                class_weight=[1.0, 2.0, 3.0],
                label_smoothing=0.1,
            )

        value = host(f(to(backend, x, np.float32)))
        g = grad(backend, f, to(backend, x, np.float32))
        assert np.isfinite(value) and np.isfinite(g).all()
        want = host(f(to(backend, x, np.float64)))
        np.testing.assert_allclose(value, want, rtol=1e-6)


def test_loss_at_infinite_logits_is_exact() -> None:
    z = np.array([np.inf, -np.inf, np.inf, -np.inf])
    t = np.array([1.0, 0.0, 0.0, 1.0])
    got = wce.sigmoid_cross_entropy(z, t, pos_weight=2.0, reduction="none")
    np.testing.assert_array_equal(got, [0.0, 0.0, np.inf, np.inf])


def test_upstream_gradient_of_none_reduction() -> None:
    import torch

    x = torch.tensor(LOGITS, requires_grad=True)
    up = torch.tensor(RNG.normal(size=6))
    out = wce.softmax_cross_entropy(
        x, torch.tensor(LABELS), class_weight=CW, reduction="none"
    )
    (g,) = torch.autograd.grad(out, x, up)
    p = torch.softmax(x.detach(), -1)
    onehot = torch.nn.functional.one_hot(torch.tensor(LABELS), 4)
    want = (p - onehot) * (torch.tensor(CW)[torch.tensor(LABELS)] * up)[:, None]
    torch.testing.assert_close(g, want)


# ---------------------------------------------------------------------------
# Invariants
# ---------------------------------------------------------------------------
def _batch(draw: Any, n_max: int = 6, c_max: int = 5) -> tuple:
    n = draw(st.integers(1, n_max))
    c = draw(st.integers(1, c_max))
    floats = st.floats(-30, 30, allow_nan=False, width=64)
    x = draw(hnp.arrays(np.float64, (n, c), elements=floats))
    y = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)))
    return x, y, c


@st.composite
def batches(draw: Any) -> tuple:
    return _batch(draw)


SETTINGS = settings(max_examples=40, deadline=None)


@SETTINGS
@given(batches(), st.floats(0.1, 10), st.sampled_from(REDUCTIONS))
def test_uniform_class_weights_equal_unweighted_mean(b, k, reduction) -> None:
    x, y, c = b
    weighted = wce.softmax_cross_entropy(
        x, y, class_weight=np.full(c, k), reduction=reduction
    )
    plain = wce.softmax_cross_entropy(x, y, reduction=reduction)
    scale = 1.0 if reduction == "weighted_mean" else k
    np.testing.assert_allclose(weighted, scale * plain, rtol=1e-10, atol=1e-12)


@SETTINGS
@given(
    batches(),
    st.sampled_from(REDUCTIONS),
    st.floats(0, 1),
    st.sampled_from(["label", "prediction"]),
)
def test_integer_labels_equal_one_hot(b, reduction, eps, weight_by) -> None:
    x, y, c = b
    cw = np.linspace(0.5, 3, c)
    onehot = np.eye(c)[y]
    kw = {
        "class_weight": cw,
        "label_smoothing": eps,
        "reduction": reduction,
        "weight_by": weight_by,
        "cost_matrix": np.ones((c, c)) - np.eye(c) * 0.5,
    }
    np.testing.assert_allclose(
        wce.softmax_cross_entropy(x, y, **kw),
        wce.softmax_cross_entropy(x, onehot, **kw),
        rtol=1e-10,
        atol=1e-12,
    )


@SETTINGS
@given(batches(), st.sampled_from(["sum", "mean", "weighted_mean"]), st.data())
def test_ignoring_an_element_equals_removing_it(b, reduction, data) -> None:
    x, y, c = b
    mask = data.draw(hnp.arrays(np.bool_, y.shape))
    cw = np.linspace(0.5, 3, c)
    masked = wce.softmax_cross_entropy(
        x, np.where(mask, -1, y), ignore_index=-1, class_weight=cw, reduction=reduction
    )
    removed = wce.softmax_cross_entropy(
        x[~mask], y[~mask], class_weight=cw, reduction=reduction
    )
    np.testing.assert_allclose(masked, removed, rtol=1e-10, atol=1e-12)
    t = RNG.random(x.shape)
    sig_masked = wce.sigmoid_cross_entropy(
        x, np.where(mask[:, None], -1.0, t), ignore_index=-1, reduction=reduction
    )
    sig_removed = wce.sigmoid_cross_entropy(x[~mask], t[~mask], reduction=reduction)
    np.testing.assert_allclose(sig_masked, sig_removed, rtol=1e-10, atol=1e-12)


@SETTINGS
@given(st.integers(2, 4), st.integers(0, 3), st.data())
def test_moving_the_class_axis_changes_nothing(ndim, ax, data) -> None:
    ax = ax % ndim
    shape = tuple(data.draw(st.integers(1, 3)) for _ in range(ndim))
    x = RNG.normal(size=shape)
    c = shape[ax]
    y = RNG.integers(0, c, shape[:ax] + shape[ax + 1 :])
    cw = np.linspace(1, 2, c)
    moved = wce.softmax_cross_entropy(
        np.moveaxis(x, ax, -1), y, class_weight=cw, reduction="none"
    )
    here = wce.softmax_cross_entropy(x, y, axis=ax, class_weight=cw, reduction="none")
    np.testing.assert_allclose(here, moved, rtol=1e-12)
    t = RNG.random(shape)
    np.testing.assert_allclose(
        wce.sigmoid_cross_entropy(x, t, axis=ax, pos_weight=cw, reduction="none"),
        np.moveaxis(
            wce.sigmoid_cross_entropy(
                np.moveaxis(x, ax, -1),
                np.moveaxis(t, ax, -1),
                pos_weight=cw,
                reduction="none",
            ),
            -1,
            ax,
        ),
        rtol=1e-12,
    )


@SETTINGS
@given(batches(), st.sampled_from(["sum", "mean"]), st.data())
def test_integer_sample_weight_equals_repetition(b, reduction, data) -> None:
    x, y, _ = b
    reps = data.draw(hnp.arrays(np.int64, y.shape, elements=st.integers(0, 3)))
    weighted = wce.softmax_cross_entropy(x, y, sample_weight=reps, reduction="sum")
    repeated = wce.softmax_cross_entropy(
        np.repeat(x, reps, 0), np.repeat(y, reps), reduction="sum"
    )
    np.testing.assert_allclose(weighted, repeated, rtol=1e-10, atol=1e-12)
    if reduction == "mean" and reps.sum() == len(y):
        np.testing.assert_allclose(
            wce.softmax_cross_entropy(x, y, sample_weight=reps),
            wce.softmax_cross_entropy(np.repeat(x, reps, 0), np.repeat(y, reps)),
            rtol=1e-10,
        )


@SETTINGS
@given(batches(), st.floats(1e-3, 1e3))
def test_weighted_mean_is_scale_free(b, k) -> None:
    x, y, c = b
    cw = np.linspace(0.5, 3, c)
    sw = np.linspace(1, 2, len(y))
    base = wce.softmax_cross_entropy(
        x, y, class_weight=cw, sample_weight=sw, reduction="weighted_mean"
    )
    scaled = wce.softmax_cross_entropy(
        x, y, class_weight=k * cw, sample_weight=sw, reduction="weighted_mean"
    )
    np.testing.assert_allclose(scaled, base, rtol=1e-10, atol=1e-12)


@SETTINGS
@given(batches(), st.floats(0, 1), st.sampled_from(REDUCTIONS))
def test_loss_is_never_negative(b, eps, reduction) -> None:
    x, y, _c = b
    out = wce.softmax_cross_entropy(x, y, label_smoothing=eps, reduction=reduction)
    assert np.all(out >= 0)
    t = RNG.random(x.shape)
    out = wce.sigmoid_cross_entropy(x, t, label_smoothing=eps, reduction=reduction)
    assert np.all(out >= 0)


def test_smoothed_weighted_optimum_is_the_smoothed_target() -> None:
    """The class weight scales the whole smoothed loss, so its minimiser stays q."""
    from scipy.optimize import minimize_scalar

    def loss(a: float) -> float:
        x = np.array([[a, 0.0]])
        return float(
            wce.softmax_cross_entropy(
                x,
                np.array([0]),
                class_weight=[0.1, 0.9],
                label_smoothing=0.1,
                reduction="weighted_mean",
            )
        )

    best = minimize_scalar(loss, bounds=(-20, 20), method="bounded").x
    p0 = 1 / (1 + math.exp(-best))
    assert abs(p0 - 0.95) < 1e-5


# ---------------------------------------------------------------------------
# Backends and tracing
# ---------------------------------------------------------------------------
def test_same_kind_of_array_out(backend) -> None:
    out = wce.softmax_cross_entropy(to(backend, LOGITS), to(backend, LABELS))
    kinds = {
        "numpy": "numpy",
        "torch": "torch",
        "jax": "jax",
        "tensorflow": "tensorflow",
    }
    assert type(out).__module__.split(".")[0] in {kinds[backend], "jaxlib"}
    assert tuple(out.shape) == ()


def test_jax_jit_and_vmap() -> None:
    import jax
    import jax.numpy as jnp

    f = jax.jit(
        lambda x, y: wce.softmax_cross_entropy(
            x, y, class_weight=CW, reduction="weighted_mean"
        )
    )
    x, y = jnp.asarray(LOGITS), jnp.asarray(LABELS)
    want = ref.softmax_cross_entropy(
        LOGITS, LABELS, class_weight=CW, reduction="weighted_mean"
    )
    np.testing.assert_allclose(f(x, y), want, rtol=1e-12)
    per_row = jax.vmap(lambda a, b: wce.softmax_cross_entropy(a, b))(x, y)
    np.testing.assert_allclose(
        per_row, ref.softmax_cross_entropy(LOGITS, LABELS, reduction="none"), rtol=1e-12
    )


def test_traced_out_of_range_label_is_not_checked_and_adds_zero() -> None:
    """Under jit a bad id cannot raise: it matches no class and adds 0."""
    import jax
    import jax.numpy as jnp

    f = jax.jit(lambda x, y: wce.softmax_cross_entropy(x, y, reduction="none"))
    got = f(jnp.asarray(LOGITS[:2]), jnp.asarray([9, 1]))
    assert float(got[0]) == 0.0
    with pytest.raises(ValueError, match=r"labels must be class ids in \[0, 4\)"):
        wce.softmax_cross_entropy(jnp.asarray(LOGITS[:2]), jnp.asarray([9, 1]))


def test_torch_compile_matches_eager() -> None:
    import torch

    x, y = torch.tensor(LOGITS), torch.tensor(LABELS)
    cw = torch.tensor(CW)

    def f(x, y):
        return wce.softmax_cross_entropy(
            x, y, class_weight=cw, label_smoothing=0.1, reduction="mean"
        )

    compiled = torch.compile(f, backend="eager", fullgraph=False)
    torch.testing.assert_close(compiled(x, y), f(x, y))


def test_tf_function_and_gradient_tape() -> None:
    import tensorflow as tf

    f = tf.function(
        lambda x, y: wce.sigmoid_cross_entropy(
            x, y, pos_weight=[3.0, 1.0, 0.5], reduction="weighted_mean"
        )
    )
    want = ref.sigmoid_cross_entropy(
        Z, T, pos_weight=[3.0, 1.0, 0.5], reduction="weighted_mean"
    )
    np.testing.assert_allclose(
        f(tf.constant(Z), tf.constant(T)).numpy(), want, rtol=1e-12
    )


def test_torch_result_stays_on_the_input_device_and_dtype() -> None:
    import torch

    x = torch.tensor(LOGITS, dtype=torch.float64)
    out = wce.softmax_cross_entropy(x, torch.tensor(LABELS), class_weight=CW)
    assert out.device == x.device and out.dtype == torch.float64


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------
ERRORS = [
    (
        {"class_weight": [1.0, 2.0, 3.0]},
        ValueError,
        r"class_weight must be shape \(4,\), one entry per class on axis 1 of logits, "
        r"got shape \(3,\); pass one weight per class",
    ),
    (
        {"cost_matrix": np.ones((4, 3))},
        ValueError,
        r"cost_matrix must be shape \(4, 4\).*got shape \(4, 3\)",
    ),
    (
        {"reduction": "avg"},
        ValueError,
        r"reduction must be one of 'none', 'sum', 'mean', 'weighted_mean', got 'avg'",
    ),
    (
        {"weight_by": "truth"},
        ValueError,
        r"weight_by must be 'label' or "
        r"'prediction', got 'truth'",
    ),
    (
        {"label_smoothing": 1.5},
        ValueError,
        r"label_smoothing must be in \[0, 1\], "
        r"got 1.5; 0 turns it off",
    ),
    (
        {"class_weight": [1.0, -2.0, 1.0, 1.0]},
        ValueError,
        r"class_weight must be non-negative and finite .* got an entry equal to -2.0",
    ),
    (
        {"class_weight": [1.0, np.nan, 1.0, 1.0]},
        ValueError,
        r"class_weight must be non-negative and finite",
    ),
    (
        {"class_weight": np.array([True, False, True, True])},
        TypeError,
        r"class_weight must be a real-valued array, got dtype bool",
    ),
    (
        {"sample_weight": np.ones(4)},
        ValueError,
        r"sample_weight must be broadcastable to the element shape \(6,\)",
    ),
    ({"axis": 2}, ValueError, r"axis must be in \[-2, 1\] for logits of rank 2"),
    ({"ignore_index": 1.5}, TypeError, r"ignore_index must be an int or None"),
]


@pytest.mark.parametrize(
    ("options", "cls", "pattern"), ERRORS, ids=[p[2][:30] for p in ERRORS]
)
def test_softmax_errors(backend, options, cls, pattern) -> None:
    with pytest.raises(cls, match=pattern):
        wce.softmax_cross_entropy(to(backend, LOGITS), to(backend, LABELS), **options)


def test_softmax_label_errors() -> None:
    with pytest.raises(
        ValueError,
        match=r"labels must be class ids in \[0, 4\) "
        r"for logits with 4 classes on axis -1, got 4 at index "
        r"\(2,\)",
    ):
        wce.softmax_cross_entropy(LOGITS, np.array([0, 1, 4, 0, 0, 0]))
    with pytest.raises(
        ValueError,
        match=r"labels must be class ids of shape "
        r"\(6,\) \(logits without axis -1\)",
    ):
        wce.softmax_cross_entropy(LOGITS, np.zeros((6, 2), dtype=np.int64))
    with pytest.raises(
        ValueError,
        match=r"ignore_index must be None with "
        r"probability labels, got -100",
    ):
        wce.softmax_cross_entropy(LOGITS, PROBS, ignore_index=-100)
    with pytest.raises(
        ValueError,
        match=r"labels must be probabilities in "
        r"\[0, 1\]",
    ):
        wce.softmax_cross_entropy(LOGITS, PROBS * 3)
    with pytest.raises(
        TypeError,
        match=r"labels must be integer class ids or "
        r"floating probabilities, got dtype bool",
    ):
        wce.softmax_cross_entropy(LOGITS, PROBS > 0.5)
    with pytest.raises(TypeError, match=r"logits must be a floating-point array"):
        wce.softmax_cross_entropy(LABELS[:, None], np.zeros(6, dtype=np.int64))


def test_sigmoid_errors(backend) -> None:
    z = to(backend, np.zeros((1, 3, 3)))
    t = to(backend, np.zeros((1, 3, 3)))
    with pytest.raises(
        ValueError,
        match=r"pos_weight must be a scalar or shape "
        r"\(3,\), one entry per class on axis 2 of logits, got "
        r"shape \(2,\)",
    ):
        wce.sigmoid_cross_entropy(z, t, pos_weight=[1.0, 1.0])
    with pytest.raises(
        ValueError,
        match=r"pos_weight must be a scalar or shape "
        r"\(3,\), one entry per class on axis 1",
    ):
        wce.sigmoid_cross_entropy(z, t, pos_weight=np.ones((3, 1)), axis=1)
    with pytest.raises(
        ValueError,
        match=r"labels must be targets of the logits' "
        r"shape \(1, 3, 3\), got shape \(1, 3\)",
    ):
        wce.sigmoid_cross_entropy(z, to(backend, np.zeros((1, 3))))
    with pytest.raises(
        ValueError,
        match=r"labels must be targets in \[0, 1\] "
        r"\(checked outside jit/compile\), got an entry equal to 2",
    ):
        wce.sigmoid_cross_entropy(z, to(backend, np.full((1, 3, 3), 2.0)))
    with pytest.raises(ValueError, match=r"class_weight must be non-negative"):
        wce.sigmoid_cross_entropy(z, t, class_weight=-1.0)


def test_pos_weight_never_broadcasts_along_another_axis() -> None:
    """(N, C, 2) logits with pos_weight of length 2 on axis 1: refused."""
    z = np.zeros((4, 3, 2))
    with pytest.raises(
        ValueError,
        match=r"pos_weight must be a scalar or shape "
        r"\(3,\)",
    ):
        wce.sigmoid_cross_entropy(z, np.zeros_like(z), pos_weight=[1.0, 2.0], axis=1)


def test_positive_infinite_logit_takes_all_the_probability(backend) -> None:
    x = np.array([[np.inf, 0.0, 1.0], [np.inf, 0.0, 1.0], [1e9, 1e9, 0.0]])
    got = wce.softmax_cross_entropy(
        to(backend, x), to(backend, np.array([0, 1, 1])), reduction="none"
    )
    np.testing.assert_array_equal(host(got)[:2], [0.0, np.inf])
    np.testing.assert_allclose(host(got)[2], math.log(2), rtol=1e-12)


def test_fully_masked_row_is_inf_unless_ignored(backend) -> None:
    """A row of -inf logits has no softmax: inf loss, or 0 when ignored."""
    x = np.array([[-np.inf, -np.inf], [0.0, 1.0]])
    labels = to(backend, np.array([0, 1]))
    got = wce.softmax_cross_entropy(to(backend, x), labels, reduction="none")
    assert host(got)[0] == np.inf
    ignored = to(backend, np.array([-1, 1]))
    f = lambda v: wce.softmax_cross_entropy(v, ignored, ignore_index=-1)  # noqa: E731
    want = math.log1p(math.exp(-1.0))
    np.testing.assert_allclose(host(f(to(backend, x))), want, rtol=1e-12)
    if backend != "numpy":
        g = grad(backend, f, to(backend, x))
        assert np.isfinite(g).all() and (g[0] == 0).all()


def test_near_certain_prediction_keeps_relative_precision() -> None:
    """-log p for p = 1 - 2e^-100 is 2e^-100, not 0 (log1p around the top)."""
    x = np.array([[100.0, 0.0, 0.0]])
    got = wce.softmax_cross_entropy(x, np.array([0]))
    np.testing.assert_allclose(got, 2 * math.exp(-100), rtol=1e-12)


def test_torch_compile_fullgraph_with_python_weights() -> None:
    """Python floats and lists as weights trace without NumPy under Dynamo."""
    import torch

    z, t = torch.tensor(Z), torch.tensor(T)

    def f(z, t):
        return wce.sigmoid_cross_entropy(
            z, t, pos_weight=2.5, class_weight=[1.0, 2.0, 3.0], reduction="sum"
        )

    compiled = torch.compile(f, backend="eager", fullgraph=True)
    want = ref.sigmoid_cross_entropy(
        Z, T, pos_weight=2.5, class_weight=[1.0, 2.0, 3.0], reduction="sum"
    )
    np.testing.assert_allclose(host(compiled(z, t)), want, rtol=1e-12)


def test_tf_function_with_unknown_batch_size() -> None:
    """A None batch dimension (tf.data, Keras fit) works with sample weights."""
    import tensorflow as tf

    spec = [
        tf.TensorSpec([None, 4], tf.float64),
        tf.TensorSpec([None], tf.int64),
        tf.TensorSpec([None], tf.float64),
    ]
    f = tf.function(
        lambda x, y, sw: wce.softmax_cross_entropy(
            x, y, sample_weight=sw, class_weight=CW, reduction="weighted_mean"
        ),
        input_signature=spec,
    )
    want = ref.softmax_cross_entropy(
        LOGITS, LABELS, sample_weight=SW, class_weight=CW, reduction="weighted_mean"
    )
    np.testing.assert_allclose(f(LOGITS, LABELS, SW).numpy(), want, rtol=1e-12)
    g = tf.function(
        lambda x, y: wce.softmax_cross_entropy(x, y),
        input_signature=[tf.TensorSpec([None, None]), tf.TensorSpec([None], tf.int64)],
    )
    with pytest.raises(
        ValueError,
        match=r"logits must be an array whose class axis "
        r"1 has a static size, got shape \(None, None\)",
    ):
        g(LOGITS.astype(np.float32), LABELS)


def test_compat_is_reachable_from_the_package() -> None:
    import wce as package

    got = package.compat.sigmoid_cross_entropy_with_logits(T, Z)
    np.testing.assert_allclose(
        got, ref.sigmoid_cross_entropy(Z, T, reduction="none"), rtol=1e-12
    )
