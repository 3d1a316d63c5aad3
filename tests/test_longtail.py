"""The losses for long-tailed data in wce.longtail.

Order: reference values, parity with the peers, reductions to the cross-entropy,
gradients, the cases from bug reports, invariants, backends and tracing, errors.
The references below are written from the papers' formulas in 120-digit mpmath or
float64 NumPy and share no code with wce.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import wce
from wce import longtail as lt

from ._arrays import grad, host, to
from .conftest import load_cases

RNG = np.random.default_rng(4)
AUTODIFF = ("torch", "jax", "tensorflow")
REDUCTIONS = ("none", "sum", "mean", "weighted_mean")
GAMMAS = (0.0, 0.5, 1.0, 2.0, 5.0)

X = RNG.normal(scale=2.0, size=(6, 4))
Y = np.array([0, 3, 1, 2, 3, 0])
PROBS = RNG.dirichlet(np.ones(4), size=6)
CW = np.array([0.5, 2.0, 1.0, 4.0])
SW = RNG.uniform(0.2, 2.0, size=6)
COUNTS = np.array([1000.0, 200.0, 30.0, 5.0])
PRIOR = COUNTS / COUNTS.sum()
COST = np.array([[0, 1, 2, 3], [1, 0, 1, 2], [5, 1, 0, 1], [9, 2, 1, 0.5]])

Z = RNG.normal(scale=2.5, size=(5, 3))
T = (RNG.uniform(size=(5, 3)) < 0.4).astype(np.float64)
T_SOFT = RNG.uniform(size=(5, 3))
LW = np.array([1.0, 3.0, 0.5])


def _tol(backend: str) -> dict:
    return {"rtol": 1e-12, "atol": 0} if backend == "numpy" else {"rtol": 2e-5}


def _dtype(backend: str) -> str:
    """float64 on NumPy (exact checks), float32 elsewhere (the usual case)."""
    return "float64" if backend == "numpy" else "float32"


# ---------------------------------------------------------------------------
# References, from the papers
# ---------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _mp_precision() -> Iterator[None]:
    """120 digits for the references (1 - p_t down to 1e-87 must survive)."""
    with mpmath.workdps(120):
        yield


def _mp_sigmoid(z: float) -> Any:
    return 1 / (1 + mpmath.exp(-mpmath.mpf(z)))


def ref_sigmoid_focal(
    z: Any, t: Any, gamma: float, alpha: float | None = None, eps: float = 0.0
) -> np.ndarray:
    """Lin et al. (2017), eq. 5, with torchvision's soft-target p_t, per element."""
    out = []
    for zi, ti in zip(np.ravel(z), np.ravel(t), strict=True):
        q = (1 - mpmath.mpf(eps)) * mpmath.mpf(ti) + mpmath.mpf(eps) / 2
        p = _mp_sigmoid(zi)
        ce = -(q * mpmath.log(p) + (1 - q) * mpmath.log(1 - p))
        p_t = p * q + (1 - p) * (1 - q)
        loss = (1 - p_t) ** gamma * ce
        if alpha is not None:
            loss *= alpha * q + (1 - alpha) * (1 - q)
        out.append(float(loss))
    return np.array(out).reshape(np.shape(z))


def ref_softmax_focal(
    x: Any, target: Any, gamma: float, eps: float = 0.0
) -> np.ndarray:
    """sum_c q_c (1 - p_c)^gamma (-log p_c) per row; target: ids or probabilities."""
    out = []
    for row, tgt in zip(np.asarray(x), np.asarray(target), strict=True):
        c = len(row)
        e = [mpmath.exp(mpmath.mpf(v)) for v in row]
        p = [v / mpmath.fsum(e) for v in e]
        t = np.eye(c)[tgt] if np.ndim(tgt) == 0 else tgt
        q = [(1 - mpmath.mpf(eps)) * mpmath.mpf(v) + mpmath.mpf(eps) / c for v in t]
        out.append(
            float(
                mpmath.fsum(
                    qc * (1 - pc) ** gamma * -mpmath.log(pc)
                    for qc, pc in zip(q, p, strict=True)
                )
            )
        )
    return np.array(out)


def _log_softmax64(x: np.ndarray) -> np.ndarray:
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def ref_logit_adjusted(x: Any, y: Any, prior: Any, tau: float) -> np.ndarray:
    """Menon et al. (2021), eq. 10: -log softmax(f(x) + tau log pi)_y."""
    z = np.asarray(x) + tau * np.log(np.asarray(prior))
    return -_log_softmax64(z)[np.arange(len(y)), y]


def ldam_margins(counts: Any, max_margin: float) -> np.ndarray:
    """Cao et al. (2019), eq. 13: Delta_j = C / n_j^(1/4), largest = max_margin."""
    m = 1.0 / np.sqrt(np.sqrt(np.asarray(counts, dtype=np.float64)))
    return m * (max_margin / m.max())


def ref_ldam(x: Any, y: Any, counts: Any, max_margin: float, s: float) -> np.ndarray:
    z = np.array(x, dtype=np.float64)
    z[np.arange(len(y)), y] -= ldam_margins(counts, max_margin)[y]
    return -_log_softmax64(s * z)[np.arange(len(y)), y]


def ref_asymmetric(
    z: Any, t: Any, gamma_pos: float, gamma_neg: float, clip: float
) -> np.ndarray:
    """Ridnik et al. (2021), eqs. 5-7, binary targets, in float64."""
    p = 1 / (1 + np.exp(-np.asarray(z)))
    pm = np.maximum(p - clip, 0.0)
    pos = (1 - p) ** gamma_pos * np.log(p)
    neg = pm**gamma_neg * np.log(1 - pm)
    return -(t * pos + (1 - t) * neg)


def ref_expected_cost(x: Any, y: Any, cost: Any) -> np.ndarray:
    p = np.exp(_log_softmax64(np.asarray(x)))
    return (np.asarray(cost)[y] * p).sum(axis=-1)


def ref_drw(epoch: int, counts: Any, start_epoch: int, beta: float) -> np.ndarray:
    """Cao et al.'s schedule: effective-number weights (Cui et al.) summing to C."""
    b = 0.0 if epoch < start_epoch else beta
    eff = 1.0 - np.power(b, np.asarray(counts, dtype=np.float64))
    w = (1.0 - b) / eff
    return w / w.sum() * len(counts)


def ref_reduce(loss: Any, w: Any, reduction: str) -> Any:
    wl = np.asarray(w) * np.asarray(loss)
    if reduction == "none":
        return wl
    if reduction == "sum":
        return wl.sum()
    if reduction == "mean":
        return wl.sum() / wl.size
    return wl.sum() / np.broadcast_to(w, wl.shape).sum()


# ---------------------------------------------------------------------------
# Reference values
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_sigmoid_focal_reference(backend: str, reduction: str) -> None:
    dt = _dtype(backend)
    sw = RNG.uniform(0.5, 2.0, size=(5, 1))
    got = lt.sigmoid_focal_loss(
        to(backend, Z, dt),
        to(backend, T_SOFT, dt),
        gamma=1.5,
        alpha=0.3,
        class_weight=to(backend, LW, dt),
        sample_weight=to(backend, sw, dt),
        label_smoothing=0.1,
        reduction=reduction,
    )
    loss = ref_sigmoid_focal(Z, T_SOFT, 1.5, 0.3, eps=0.1)
    want = ref_reduce(loss, LW * sw, reduction)
    np.testing.assert_allclose(host(got), want, **_tol(backend))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_softmax_focal_reference(backend: str, reduction: str) -> None:
    dt = _dtype(backend)
    got = lt.softmax_focal_loss(
        to(backend, X, dt),
        to(backend, Y),
        gamma=2.0,
        class_weight=to(backend, CW, dt),
        sample_weight=to(backend, SW, dt),
        reduction=reduction,
    )
    want = ref_reduce(ref_softmax_focal(X, Y, 2.0), CW[Y] * SW, reduction)
    np.testing.assert_allclose(host(got), want, **_tol(backend))


@pytest.mark.parametrize("gamma", [0.25, 3.0])
def test_softmax_focal_reference_soft_targets_and_smoothing(gamma: float) -> None:
    got = lt.softmax_focal_loss(X, PROBS, gamma=gamma, reduction="none")
    np.testing.assert_allclose(got, ref_softmax_focal(X, PROBS, gamma), rtol=1e-12)
    got = lt.softmax_focal_loss(
        X, Y, gamma=gamma, label_smoothing=0.2, reduction="none"
    )
    np.testing.assert_allclose(got, ref_softmax_focal(X, Y, gamma, eps=0.2), rtol=1e-12)


def test_focal_reference_at_saturated_logits() -> None:
    """Values where p_t is 1 - 1e-87: the 60-digit reference at work."""
    z = np.array([100.0, -100.0, 30.0, -30.0, 0.0])
    t = np.array([1.0, 1.0, 0.0, 0.0, 1.0])
    for gamma in GAMMAS:
        got = lt.sigmoid_focal_loss(z, t, gamma=gamma, alpha=0.25, reduction="none")
        np.testing.assert_allclose(
            got, ref_sigmoid_focal(z, t, gamma, 0.25), rtol=1e-13
        )
    x = np.array([[100.0, 0.0, -100.0], [40.0, 39.0, -5.0], [-3.0, 3.0, 0.0]])
    y = np.array([0, 1, 2])
    for gamma in GAMMAS:
        got = lt.softmax_focal_loss(x, y, gamma=gamma, reduction="none")
        # gamma = 0 is the core cross-entropy, whose log-softmax rounds a loss
        # of 3.7e-44 (p_y = 1 - 3.7e-44) to 0
        np.testing.assert_allclose(
            got,
            ref_softmax_focal(x, y, gamma),
            rtol=1e-13,
            atol=1e-40 if gamma == 0 else 0,
        )


@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0])
def test_logit_adjusted_reference(backend: str, tau: float) -> None:
    dt = _dtype(backend)
    got = lt.logit_adjusted_cross_entropy(
        to(backend, X, dt),
        to(backend, Y),
        prior=to(backend, PRIOR, dt),
        tau=tau,
        sample_weight=to(backend, SW, dt),
        reduction="sum",
    )
    want = (ref_logit_adjusted(X, Y, PRIOR, tau) * SW).sum()
    np.testing.assert_allclose(host(got), want, **_tol(backend))


def test_logit_adjusted_reference_probabilities_and_counts() -> None:
    got = lt.logit_adjusted_cross_entropy(X, PROBS, prior=COUNTS, reduction="none")
    want = -(PROBS * _log_softmax64(X + np.log(PRIOR))).sum(axis=-1)
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize(("max_margin", "scale"), [(0.5, 30.0), (1.2, 4.0)])
def test_ldam_reference(backend: str, max_margin: float, scale: float) -> None:
    dt = _dtype(backend)
    cos = np.tanh(X)
    got = lt.ldam_loss(
        to(backend, cos, dt),
        to(backend, Y),
        class_counts=to(backend, COUNTS, dt),
        max_margin=max_margin,
        scale=scale,
        class_weight=to(backend, CW, dt),
        reduction="weighted_mean",
    )
    loss = ref_ldam(cos, Y, COUNTS, max_margin, scale)
    want = (CW[Y] * loss).sum() / CW[Y].sum()
    np.testing.assert_allclose(host(got), want, **_tol(backend))


def test_ldam_margins_follow_the_quarter_power() -> None:
    """The rarest class gets max_margin; margins scale as n ** -1/4."""
    m = ldam_margins(COUNTS, 0.5)
    assert m[-1] == pytest.approx(0.5)
    assert m[0] / m[-1] == pytest.approx((5 / 1000) ** 0.25)
    # a zero-logit row with the rarest class as label: only its logit moves
    x = np.zeros((1, 4))
    got = lt.ldam_loss(x, np.array([3]), class_counts=COUNTS, scale=1.0)
    assert float(got) == pytest.approx(-math.log(math.exp(-0.5) / (3 + math.exp(-0.5))))


@pytest.mark.parametrize(
    ("gamma_pos", "gamma_neg", "clip"),
    [(0.0, 4.0, 0.05), (1.0, 2.0, 0.2), (0.5, 0.5, 0.0)],
)
def test_asymmetric_reference(
    backend: str, gamma_pos: float, gamma_neg: float, clip: float
) -> None:
    dt = _dtype(backend)
    got = lt.asymmetric_loss(
        to(backend, Z, dt),
        to(backend, T, dt),
        gamma_pos=gamma_pos,
        gamma_neg=gamma_neg,
        clip=clip,
        class_weight=to(backend, LW, dt),
        reduction="none",
    )
    want = LW * ref_asymmetric(Z, T, gamma_pos, gamma_neg, clip)
    np.testing.assert_allclose(host(got), want, **_tol(backend))


def test_asymmetric_soft_targets_mix_the_two_terms() -> None:
    pos = ref_asymmetric(Z, np.ones_like(Z), 1.0, 3.0, 0.1)
    neg = ref_asymmetric(Z, np.zeros_like(Z), 1.0, 3.0, 0.1)
    got = lt.asymmetric_loss(
        Z, T_SOFT, gamma_pos=1.0, gamma_neg=3.0, clip=0.1, reduction="none"
    )
    np.testing.assert_allclose(got, T_SOFT * pos + (1 - T_SOFT) * neg, rtol=1e-12)


def test_expected_cost_reference(backend: str) -> None:
    dt = _dtype(backend)
    got = lt.expected_cost_loss(
        to(backend, X, dt),
        to(backend, Y),
        cost_matrix=to(backend, COST, dt),
        sample_weight=to(backend, SW, dt),
        reduction="mean",
    )
    want = (ref_expected_cost(X, Y, COST) * SW).mean()
    np.testing.assert_allclose(host(got), want, **_tol(backend))
    got = lt.expected_cost_loss(
        to(backend, X, dt),
        to(backend, PROBS, dt),
        cost_matrix=to(backend, COST, dt),
        reduction="none",
    )
    want = ((PROBS @ COST) * np.exp(_log_softmax64(X))).sum(axis=-1)
    np.testing.assert_allclose(host(got), want, **_tol(backend))


@pytest.mark.parametrize("epoch", [0, 159, 160, 199])
def test_drw_weights_reference(backend: str, epoch: int) -> None:
    counts = to(backend, np.array([5000.0, 500.0, 50.0, 5.0]))
    got = lt.drw_weights(epoch, counts, 160, 0.9999)
    assert type(got).__module__.split(".")[0] == type(counts).__module__.split(".")[0]
    want = ref_drw(epoch, [5000, 500, 50, 5], 160, 0.9999)
    np.testing.assert_allclose(host(got), want, rtol=1e-12)
    assert host(got).sum() == pytest.approx(4.0)


def test_drw_weights_integer_counts_and_beta_zero() -> None:
    w = lt.drw_weights(3, np.array([10, 20, 30]), start_epoch=2, beta=0.99)
    assert w.dtype == np.float64
    np.testing.assert_allclose(w, ref_drw(3, [10, 20, 30], 2, 0.99), rtol=1e-13)
    np.testing.assert_array_equal(lt.drw_weights(3, [10, 20], 2, beta=0.0), [1, 1])


# ---------------------------------------------------------------------------
# Parity with the peers
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [None, 0.25])
@pytest.mark.parametrize("labels", ["hard", "soft"])
def test_sigmoid_focal_matches_optax(alpha: float | None, labels: str) -> None:
    import jax.numpy as jnp
    import optax

    t = T if labels == "hard" else T_SOFT
    want = optax.sigmoid_focal_loss(
        jnp.asarray(Z), jnp.asarray(t), alpha=alpha, gamma=2.0
    )
    got = lt.sigmoid_focal_loss(
        jnp.asarray(Z), jnp.asarray(t), gamma=2.0, alpha=alpha, reduction="none"
    )
    np.testing.assert_allclose(host(got), host(want), rtol=1e-12)


def test_sigmoid_focal_matches_keras_binary_focal() -> None:
    """Keras averages over the last axis, then over the batch: wce's "mean"."""
    import keras
    import tensorflow as tf

    peer = keras.losses.BinaryFocalCrossentropy(
        apply_class_balancing=True,
        alpha=0.3,
        gamma=1.5,
        from_logits=True,
        label_smoothing=0.1,
    )
    want = peer(tf.constant(T, tf.float32), tf.constant(Z, tf.float32))
    got = lt.sigmoid_focal_loss(
        tf.constant(Z, tf.float32),
        tf.constant(T, tf.float32),
        gamma=1.5,
        alpha=0.3,
        label_smoothing=0.1,
    )
    np.testing.assert_allclose(host(got), host(want), rtol=1e-5)


def test_softmax_focal_matches_keras_categorical_focal() -> None:
    """Keras's scalar alpha scales every class: class_weight=[alpha] * C."""
    import keras
    import tensorflow as tf

    peer = keras.losses.CategoricalFocalCrossentropy(
        alpha=0.25, gamma=2.0, from_logits=True, label_smoothing=0.1
    )
    want = peer(tf.constant(np.eye(4)[Y], tf.float32), tf.constant(X, tf.float32))
    got = lt.softmax_focal_loss(
        tf.constant(X, tf.float32),
        tf.constant(Y),
        gamma=2.0,
        class_weight=tf.constant([0.25] * 4),
        label_smoothing=0.1,
    )
    np.testing.assert_allclose(host(got), host(want), rtol=1e-5)
    want = peer(tf.constant(PROBS, tf.float32), tf.constant(X, tf.float32))
    got = lt.softmax_focal_loss(
        tf.constant(X, tf.float32),
        tf.constant(PROBS, tf.float32),
        gamma=2.0,
        class_weight=tf.constant([0.25] * 4),
        label_smoothing=0.1,
    )
    np.testing.assert_allclose(host(got), host(want), rtol=1e-5)


def _torchvision_focal(
    inputs: Any, targets: Any, alpha: float, gamma: float, reduction: str
) -> Any:
    """torchvision.ops.sigmoid_focal_loss as its documentation states it."""
    import torch
    import torch.nn.functional as F

    p = torch.sigmoid(inputs)
    ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("labels", ["hard", "soft"])
def test_sigmoid_focal_matches_torchvision_formula(reduction: str, labels: str) -> None:
    import torch

    t = torch.tensor(T if labels == "hard" else T_SOFT)
    z = torch.tensor(Z)

    def peer(x: Any) -> Any:
        return _torchvision_focal(x, t, 0.25, 2.0, reduction)

    def ours(x: Any) -> Any:
        return lt.sigmoid_focal_loss(x, t, gamma=2.0, alpha=0.25, reduction=reduction)

    np.testing.assert_allclose(host(ours(z)), host(peer(z)), rtol=1e-12)
    np.testing.assert_allclose(
        grad("torch", ours, z), grad("torch", peer, z), rtol=1e-10, atol=1e-15
    )


def test_ldam_drw_matches_pytorch_weighted_cross_entropy() -> None:
    """Cao et al.'s code: F.cross_entropy(s * (x - margin), y, weight=drw)."""
    import torch
    import torch.nn.functional as F

    cos = torch.tanh(torch.tensor(X))
    y = torch.tensor(Y)
    w = lt.drw_weights(170, torch.tensor(COUNTS, dtype=torch.float64), 160)
    margin = torch.tensor(ldam_margins(COUNTS, 0.5))
    shifted = cos - F.one_hot(y, 4) * margin[y][:, None]
    want = F.cross_entropy(30.0 * shifted, y, weight=w)
    got = lt.ldam_loss(
        cos,
        y,
        class_counts=torch.tensor(COUNTS),
        class_weight=w,
        reduction="weighted_mean",
    )
    np.testing.assert_allclose(host(got), host(want), rtol=1e-12)


# ---------------------------------------------------------------------------
# Reductions to the plain cross-entropy, values and gradients
# ---------------------------------------------------------------------------
def _value_and_grad(backend: str, fn: Any, x: np.ndarray) -> tuple[Any, Any]:
    xb = to(backend, x, _dtype(backend))
    value = host(fn(xb))
    g = grad(backend, fn, xb) if backend in AUTODIFF else None
    return value, g


def _assert_same(
    backend: str, ours: Any, plain: Any, x: np.ndarray, rtol: float = 0.0
) -> None:
    """Equal values and gradients: bit for bit on NumPy (the same code), to
    float32 rounding elsewhere (PyTorch's cross-entropy may take a fused kernel).
    """
    if backend != "numpy":
        rtol = max(rtol, 2e-6)
    v1, g1 = _value_and_grad(backend, ours, x)
    v2, g2 = _value_and_grad(backend, plain, x)
    np.testing.assert_allclose(v1, v2, rtol=rtol, atol=0)
    if g1 is not None:
        np.testing.assert_allclose(g1, g2, rtol=rtol, atol=1e-9)


@pytest.mark.parametrize("reduction", ["mean", "weighted_mean"])
def test_softmax_focal_gamma_zero_is_cross_entropy(
    backend: str, reduction: str
) -> None:
    y = to(backend, np.array([0, 3, -100, 2, 3, 0]))
    kw = {
        "class_weight": to(backend, CW, _dtype(backend)),
        "label_smoothing": 0.1,
        "ignore_index": -100,
        "reduction": reduction,
        "sample_weight": to(backend, SW, _dtype(backend)),
    }
    _assert_same(
        backend,
        lambda x: lt.softmax_focal_loss(x, y, gamma=0.0, **kw),
        lambda x: wce.softmax_cross_entropy(x, y, **kw),
        X,
    )


def test_sigmoid_focal_gamma_zero_is_cross_entropy(backend: str) -> None:
    t = to(backend, T_SOFT, _dtype(backend))
    kw = {
        "class_weight": to(backend, LW, _dtype(backend)),
        "label_smoothing": 0.2,
        "reduction": "weighted_mean",
    }
    _assert_same(
        backend,
        lambda z: lt.sigmoid_focal_loss(z, t, gamma=0.0, **kw),
        lambda z: wce.sigmoid_cross_entropy(z, t, **kw),
        Z,
    )


def test_focal_tends_to_cross_entropy_as_gamma_goes_to_zero() -> None:
    """The log-space focal path (gamma > 0) agrees with the plain loss."""
    got = lt.softmax_focal_loss(X, PROBS, gamma=1e-12, reduction="none")
    want = wce.softmax_cross_entropy(X, PROBS, reduction="none")
    np.testing.assert_allclose(got, want, rtol=1e-10)
    got = lt.sigmoid_focal_loss(Z, T_SOFT, gamma=1e-12, reduction="none")
    want = wce.sigmoid_cross_entropy(Z, T_SOFT, reduction="none")
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_logit_adjustment_off_is_cross_entropy(backend: str) -> None:
    y = to(backend, Y)
    pri = to(backend, PRIOR, _dtype(backend))
    kw = {"sample_weight": to(backend, SW, _dtype(backend)), "label_smoothing": 0.1}
    _assert_same(
        backend,
        lambda x: lt.logit_adjusted_cross_entropy(x, y, prior=pri, tau=0.0, **kw),
        lambda x: wce.softmax_cross_entropy(x, y, **kw),
        X,
    )
    uniform = to(backend, np.full(4, 0.25), _dtype(backend))
    _assert_same(
        backend,
        lambda x: lt.logit_adjusted_cross_entropy(x, y, prior=uniform, **kw),
        lambda x: wce.softmax_cross_entropy(x, y, **kw),
        X,
        rtol=1e-14,
    )


def test_ldam_zero_margin_unit_scale_is_cross_entropy(backend: str) -> None:
    y = to(backend, Y)
    counts = to(backend, COUNTS, _dtype(backend))
    kw = {
        "class_weight": to(backend, CW, _dtype(backend)),
        "reduction": "weighted_mean",
    }
    _assert_same(
        backend,
        lambda x: lt.ldam_loss(
            x, y, class_counts=counts, max_margin=0.0, scale=1.0, **kw
        ),
        lambda x: wce.softmax_cross_entropy(x, y, **kw),
        X,
    )


def test_asymmetric_without_focusing_or_clip_is_cross_entropy(backend: str) -> None:
    t = to(backend, T_SOFT, _dtype(backend))
    _assert_same(
        backend,
        lambda z: lt.asymmetric_loss(z, t, gamma_pos=0.0, gamma_neg=0.0, clip=0.0),
        lambda z: wce.sigmoid_cross_entropy(z, t),
        Z,
    )


# ---------------------------------------------------------------------------
# Gradients: finite at saturation for every gamma
# ---------------------------------------------------------------------------
EXTREME_Z = np.array([[100.0, -100.0, 1e4, -1e4], [100.0, -100.0, 1e4, -1e4]])
EXTREME_T = np.array([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.3]])
EXTREME_X = np.array(
    [
        [100.0, -100.0, 0.0],
        [1e4, -1e4, 5.0],
        [-1e4, 1e4, 0.0],
        [-100.0, 100.0, 100.0],
        [1e4, 1e4, -1e4],
    ]
)
EXTREME_Y = np.array([0, 0, 0, 1, 2])


@pytest.mark.parametrize("backend", AUTODIFF)
def test_gradients_finite_at_saturated_logits(backend: str) -> None:
    t = to(backend, EXTREME_T, "float32")
    y = to(backend, EXTREME_Y)
    for gamma in GAMMAS:
        losses = [
            lambda z, g=gamma: lt.sigmoid_focal_loss(z, t, gamma=g, alpha=0.25),
            lambda z, g=gamma: lt.asymmetric_loss(z, t, gamma_pos=g, gamma_neg=g),
        ]
        for fn in losses:
            z = to(backend, EXTREME_Z, "float32")
            assert np.isfinite(host(fn(z))), gamma
            assert np.isfinite(grad(backend, fn, z)).all(), gamma
        for fn in [
            lambda x, g=gamma: lt.softmax_focal_loss(x, y, gamma=g),
            lambda x, g=gamma: lt.softmax_focal_loss(
                x, y, gamma=g, label_smoothing=0.1
            ),
        ]:
            x = to(backend, EXTREME_X, "float32")
            assert np.isfinite(host(fn(x))), gamma
            g_x = grad(backend, fn, x)
            assert np.isfinite(g_x).all(), gamma
            # the softmax gradient of a row sums to 0
            np.testing.assert_allclose(g_x.sum(axis=-1), 0.0, atol=1e-5)


@pytest.mark.parametrize("backend", AUTODIFF)
def test_gradient_matches_reference_where_p_t_rounds_to_one(backend: str) -> None:
    """gamma < 1 at p_t = 1 - 1e-8: the mpmath derivative, not 0 and not NaN."""
    x = np.array([[17.0, 0.0, -1.0]])
    y = np.array([0])

    def mp_loss(i: int, h: Any) -> Any:
        row = [mpmath.mpf(v) for v in x[0]]
        row[i] += h
        e = [mpmath.exp(v) for v in row]
        p0 = e[0] / mpmath.fsum(e)
        return (1 - p0) ** 0.5 * -mpmath.log(p0)

    want = [float(mpmath.diff(lambda h, i=i: mp_loss(i, h), 0)) for i in range(3)]
    got = grad(
        backend,
        lambda v: lt.softmax_focal_loss(v, to(backend, y), gamma=0.5),
        to(backend, x, "float32"),
    )
    np.testing.assert_allclose(got[0], want, rtol=1e-5)


# ---------------------------------------------------------------------------
# The focal cases from public bug reports (tests/data/cases.json)
# ---------------------------------------------------------------------------
CASES = {c["id"]: c for c in load_cases()}


def _run_case(case_id: str, backend: str) -> tuple[np.ndarray, np.ndarray, Any]:
    case = CASES[case_id]
    options = dict(case["options"])
    dtype = options.pop("dtype", "float32")
    fn = getattr(lt, case["function"])
    labels = np.asarray(case["inputs"]["labels"])
    labels = labels.astype(
        np.int64 if case["function"] == "softmax_focal_loss" else np.float32
    )
    lab = to(backend, labels)
    x = to(backend, np.asarray(case["inputs"]["logits"]), dtype)

    def loss(v: Any) -> Any:
        return fn(v, lab, reduction=case["reduction"], **options)

    got = host(loss(x)) if case["check"] == "value" else grad(backend, loss, x)
    return np.ravel(got), np.ravel(case["expected"]), loss(x)


def test_case_R16_binary_focal_gamma_below_one_saturated(backend: str) -> None:
    got, want, _ = _run_case("R16", backend)
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("backend", AUTODIFF)
def test_case_R16b_binary_focal_gradient_finite_at_saturation(backend: str) -> None:
    got, want, _ = _run_case("R16b", backend)
    # entries 0 and 3 are ~1e-66: 0 in float32
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-30)


@pytest.mark.parametrize("backend", AUTODIFF)
def test_case_R16b_in_float64_keeps_the_tiny_entries(backend: str) -> None:
    """In float64 the ~1e-66 entries survive; checked against mpmath derivatives.

    (cases.json gives them to about 4 digits only: 2.01804e-66, -6.7229e-67.)
    """
    case = CASES["R16b"]
    z = np.asarray(case["inputs"]["logits"])
    t = np.asarray(case["inputs"]["labels"])

    def mp_loss(i: int, h: Any) -> Any:
        zi = mpmath.mpf(z[i]) + h
        p = 1 / (1 + mpmath.exp(-zi))
        p_t = p if t[i] == 1 else 1 - p
        a_t = 0.25 if t[i] == 1 else 0.75
        return a_t * (1 - p_t) ** 0.5 * -mpmath.log(p_t) / len(z)

    want = [float(mpmath.diff(lambda h, i=i: mp_loss(i, h), 0)) for i in range(4)]
    lab = to(backend, t)
    got = grad(
        backend,
        lambda v: lt.sigmoid_focal_loss(v, lab, gamma=0.5, alpha=0.25),
        to(backend, z, "float64"),
    )
    np.testing.assert_allclose(got, want, rtol=1e-10)


def test_case_R18_fp16_sigmoid_focal_saturated(backend: str) -> None:
    got, want, out = _run_case("R18", backend)
    assert "float32" in str(out.dtype)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # computed in float32, the first entry keeps its digits too
    assert got[0] == pytest.approx(want[0], rel=1e-5)


def test_case_R18b_fp16_sigmoid_focal_negative_target(backend: str) -> None:
    got, want, _ = _run_case("R18b", backend)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_case_R27_softmax_focal_gamma_below_one(backend: str) -> None:
    got, want, _ = _run_case("R27", backend)
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("backend", AUTODIFF)
def test_case_R27b_softmax_focal_gradient_at_p_t_one(backend: str) -> None:
    got, want, _ = _run_case("R27b", backend)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-15)


# ---------------------------------------------------------------------------
# Invariants
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("gamma", [0.3, 1.0, 2.0, 5.0])
def test_focal_never_exceeds_cross_entropy_and_falls_with_gamma(gamma: float) -> None:
    x = RNG.normal(scale=4.0, size=(64, 5))
    y = RNG.integers(0, 5, size=64)
    fl = lt.softmax_focal_loss(x, y, gamma=gamma, reduction="none")
    ce = wce.softmax_cross_entropy(x, y, reduction="none")
    assert (fl <= ce).all() and (fl >= 0).all()
    assert (lt.softmax_focal_loss(x, y, gamma=gamma + 1, reduction="none") <= fl).all()
    z = RNG.normal(scale=4.0, size=(64, 3))
    t = RNG.uniform(size=(64, 3))
    fl = lt.sigmoid_focal_loss(z, t, gamma=gamma, reduction="none")
    assert (fl <= wce.sigmoid_cross_entropy(z, t, reduction="none")).all()


@settings(max_examples=60, deadline=None)
@given(
    x=hnp.arrays(np.float64, (3, 4), elements=st.floats(-1e4, 1e4)),
    y=hnp.arrays(np.int64, (3,), elements=st.integers(0, 3)),
    gamma=st.floats(0.0, 5.0),
)
def test_focal_is_finite_nonnegative_and_below_cross_entropy(
    x: np.ndarray, y: np.ndarray, gamma: float
) -> None:
    fl = lt.softmax_focal_loss(x, y, gamma=gamma, reduction="none")
    ce = wce.softmax_cross_entropy(x, y, reduction="none")
    assert np.isfinite(fl).all() and (fl >= 0).all()
    # up to the rounding of the plain log-softmax (which gives 0 for p_y = 1 - 1e-20)
    assert (fl <= ce + 1e-12 * (1 + ce)).all()
    t = (y[:, None] == np.arange(4)).astype(np.float64)
    sfl = lt.sigmoid_focal_loss(x, t, gamma=gamma, reduction="none")
    assert np.isfinite(sfl).all() and (sfl >= 0).all()
    assert (sfl <= wce.sigmoid_cross_entropy(x, t, reduction="none")).all()


def test_softmax_focal_ids_equal_one_hot_probabilities() -> None:
    kw = {
        "gamma": 1.5,
        "class_weight": CW,
        "label_smoothing": 0.1,
        "reduction": "weighted_mean",
    }
    a = lt.softmax_focal_loss(X, Y, **kw)
    b = lt.softmax_focal_loss(X, np.eye(4)[Y], **kw)
    assert float(a) == pytest.approx(float(b), rel=1e-13)


def test_class_axis_one_equals_moved_axis() -> None:
    x = RNG.normal(size=(2, 4, 3, 3))
    y = RNG.integers(0, 4, size=(2, 3, 3))
    flat_x, flat_y = np.moveaxis(x, 1, -1).reshape(-1, 4), y.reshape(-1)
    for fn, kw in [
        (lt.softmax_focal_loss, {"gamma": 2.0}),
        (lt.logit_adjusted_cross_entropy, {"prior": PRIOR}),
        (lt.ldam_loss, {"class_counts": COUNTS}),
        (lt.expected_cost_loss, {"cost_matrix": COST}),
    ]:
        a = fn(x, y, axis=1, reduction="none", class_weight=CW, **kw)
        b = fn(flat_x, flat_y, reduction="none", class_weight=CW, **kw)
        np.testing.assert_allclose(a.reshape(-1), b, rtol=1e-13)
    z = RNG.normal(size=(2, 3, 4))
    t = (RNG.uniform(size=(2, 3, 4)) < 0.5).astype(float)
    for fn in (lt.sigmoid_focal_loss, lt.asymmetric_loss):
        a = fn(z, t, axis=1, class_weight=LW, reduction="none")
        b = fn(
            np.moveaxis(z, 1, -1),
            np.moveaxis(t, 1, -1),
            class_weight=LW,
            reduction="none",
        )
        np.testing.assert_allclose(a, np.moveaxis(b, -1, 1), rtol=1e-13)


def test_logit_adjustment_invariant_to_prior_scale_and_favours_rare_classes() -> None:
    a = lt.logit_adjusted_cross_entropy(X, Y, prior=PRIOR, reduction="none")
    b = lt.logit_adjusted_cross_entropy(X, Y, prior=COUNTS, reduction="none")
    np.testing.assert_allclose(a, b, rtol=1e-12)
    ce = wce.softmax_cross_entropy(X, Y, reduction="none")
    rare = Y == 3  # the rarest class must win by a larger margin
    assert (a[rare] > ce[rare]).all() and (a[Y == 0] < ce[Y == 0]).all()


def test_asymmetric_equals_focal_with_equal_exponents_and_no_clip() -> None:
    for gamma in (0.5, 2.0):
        a = lt.asymmetric_loss(
            Z, T, gamma_pos=gamma, gamma_neg=gamma, clip=0.0, reduction="none"
        )
        b = lt.sigmoid_focal_loss(Z, T, gamma=gamma, reduction="none")
        np.testing.assert_allclose(a, b, rtol=1e-13)


def test_asymmetric_clip_discards_easy_negatives() -> None:
    z = np.array([-4.0, -2.0, 0.0])  # p = 0.018, 0.12, 0.5
    got = lt.asymmetric_loss(z, np.zeros(3), clip=0.15, reduction="none")
    assert got[0] == 0.0 and got[1] == 0.0 and got[2] > 0


def test_expected_cost_with_zero_one_cost_is_error_probability() -> None:
    got = lt.expected_cost_loss(X, Y, cost_matrix=1 - np.eye(4), reduction="none")
    np.testing.assert_allclose(
        got, 1 - np.exp(_log_softmax64(X))[np.arange(6), Y], rtol=1e-12
    )


def test_ignored_elements_have_no_loss_and_no_gradient() -> None:
    import torch

    y = torch.tensor([0, -1, 2, -1, 3, 1])
    x = torch.tensor(X)
    for fn, kw in [
        (lt.softmax_focal_loss, {}),
        (lt.logit_adjusted_cross_entropy, {"prior": torch.tensor(PRIOR)}),
        (lt.ldam_loss, {"class_counts": torch.tensor(COUNTS)}),
        (lt.expected_cost_loss, {"cost_matrix": torch.tensor(COST)}),
    ]:
        out = fn(x, y, ignore_index=-1, reduction="none", **kw)
        assert (host(out)[[1, 3]] == 0).all()
        g = grad("torch", lambda v, f=fn, k=kw: f(v, y, ignore_index=-1, **k), x)
        assert (g[[1, 3]] == 0).all() and (g[[0, 2]] != 0).any()
        mean = fn(x, y, ignore_index=-1, **kw)
        assert float(mean) == pytest.approx(host(out).sum() / 4, rel=1e-12)
    t = torch.tensor([[1.0, -100.0], [0.0, 1.0]])
    z = torch.tensor([[0.3, 2.0], [-1.0, 4.0]])
    for fn2 in (lt.sigmoid_focal_loss, lt.asymmetric_loss):
        g = grad("torch", lambda v, f=fn2: f(v, t, ignore_index=-100), z)
        assert g[0, 1] == 0 and np.isfinite(g).all()


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_is_computed_in_float32(backend: str, dtype: str) -> None:
    x16 = to(backend, X, dtype)
    x32 = to(backend, host(x16), "float32")
    y = to(backend, Y)
    for fn, kw in [
        (lt.softmax_focal_loss, {"gamma": 0.5}),
        (lt.expected_cost_loss, {"cost_matrix": COST}),
    ]:
        a, b = fn(x16, y, **kw), fn(x32, y, **kw)
        assert "float32" in str(a.dtype)
        assert host(a) == host(b)
    t = to(backend, T, "float32")
    z16 = to(backend, Z, dtype)
    a = lt.sigmoid_focal_loss(z16, t, gamma=0.5)
    assert "float32" in str(a.dtype)
    assert host(a) == host(
        lt.sigmoid_focal_loss(to(backend, host(z16), "float32"), t, gamma=0.5)
    )


# ---------------------------------------------------------------------------
# Backends and tracing
# ---------------------------------------------------------------------------
def test_every_loss_under_jax_jit() -> None:
    import jax
    import jax.numpy as jnp

    x, y, z, t = (jnp.asarray(a) for a in (X, Y, Z, T))
    calls = [
        (lambda v: lt.softmax_focal_loss(v, y, gamma=0.5), x),
        (lambda v: lt.logit_adjusted_cross_entropy(v, y, prior=PRIOR), x),
        (lambda v: lt.ldam_loss(v, y, class_counts=COUNTS), x),
        (lambda v: lt.expected_cost_loss(v, y, cost_matrix=COST), x),
        (lambda v: lt.sigmoid_focal_loss(v, t, alpha=0.25), z),
        (lambda v: lt.asymmetric_loss(v, t), z),
    ]
    for fn, arg in calls:
        value, g = jax.jit(jax.value_and_grad(fn))(arg)
        np.testing.assert_allclose(host(value), host(fn(arg)), rtol=1e-12)
        assert np.isfinite(host(g)).all()


def test_softmax_focal_under_tf_function() -> None:
    import tensorflow as tf

    x, y = tf.constant(X, tf.float32), tf.constant(Y)
    traced = tf.function(lambda v: lt.softmax_focal_loss(v, y, gamma=2.0))
    np.testing.assert_allclose(
        host(traced(x)), host(lt.softmax_focal_loss(x, y)), rtol=1e-6
    )


def test_torch_result_keeps_backend_and_dtype() -> None:
    import torch

    x = torch.tensor(X, dtype=torch.float32)
    out = lt.softmax_focal_loss(x, torch.tensor(Y), reduction="none")
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert out.shape == (6,)


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"gamma": -1.0},
            ValueError,
            r"gamma must be a non-negative float, got -1.0; "
            r"pass a value >= 0",
        ),
        (
            {"gamma": math.inf},
            ValueError,
            r"gamma must be a finite non-negative "
            r"float, got inf",
        ),
        ({"gamma": "2"}, TypeError, r"gamma must be a non-negative float, got '2'"),
        (
            {"alpha": 1.5},
            ValueError,
            r"alpha must be in \[0, 1\], got 1.5; alpha weighs "
            r"positives and 1 - alpha negatives; None turns the balancing off",
        ),
        ({"reduction": "avg"}, ValueError, r"reduction must be one of 'none'"),
        (
            {"class_weight": [1.0, 2.0]},
            ValueError,
            r"class_weight must be a scalar or shape \(3,\)",
        ),
    ],
)
def test_sigmoid_focal_errors(kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        lt.sigmoid_focal_loss(Z, T, **kwargs)


@pytest.mark.parametrize(
    ("fn", "kwargs", "error", "match"),
    [
        (
            lt.softmax_focal_loss,
            {"gamma": -0.5},
            ValueError,
            r"gamma must be a non-negative float",
        ),
        (
            lt.softmax_focal_loss,
            {"class_weight": [1.0, 2.0]},
            ValueError,
            r"class_weight must be shape \(4,\), one entry per class on axis -1",
        ),
        (
            lt.logit_adjusted_cross_entropy,
            {"prior": [0.5, 0.5, 0.0, 0.0]},
            ValueError,
            r"prior must be positive for every class \(a class frequency "
            r"or count; checked outside jit/compile\), got 0.0 for class 2; drop the "
            r"empty class",
        ),
        (
            lt.logit_adjusted_cross_entropy,
            {"prior": [0.5, 0.5]},
            ValueError,
            r"prior must be shape \(4,\)",
        ),
        (
            lt.logit_adjusted_cross_entropy,
            {"prior": PRIOR, "tau": -1.0},
            ValueError,
            r"tau must be a non-negative float",
        ),
        (
            lt.ldam_loss,
            {"class_counts": [10.0, 0.0, 1.0, 1.0]},
            ValueError,
            r"class_counts must be positive for every class .* got 0.0 for class 1",
        ),
        (
            lt.ldam_loss,
            {"class_counts": COUNTS, "scale": 0.0},
            ValueError,
            r"scale must be a positive float, got 0.0; pass a value > 0",
        ),
        (
            lt.ldam_loss,
            {"class_counts": COUNTS, "max_margin": -0.1},
            ValueError,
            r"max_margin must be a non-negative float",
        ),
        (
            lt.expected_cost_loss,
            {"cost_matrix": np.ones((3, 3))},
            ValueError,
            r"cost_matrix must be shape \(4, 4\)",
        ),
        (
            lt.expected_cost_loss,
            {"cost_matrix": -np.ones((4, 4))},
            ValueError,
            r"cost_matrix must be non-negative and finite",
        ),
    ],
)
def test_softmax_loss_errors(fn: Any, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        fn(X, Y, **kwargs)


def test_ldam_rejects_probability_labels() -> None:
    with pytest.raises(
        ValueError,
        match=r"labels must be integer class ids for "
        r"ldam_loss .* got floating probabilities; pass class ids",
    ):
        lt.ldam_loss(X, PROBS, class_counts=COUNTS)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"gamma_neg": -1.0}, r"gamma_neg must be a non-negative float"),
        ({"gamma_pos": math.nan}, r"gamma_pos must be a non-negative float, got nan"),
        ({"clip": 1.5}, r"clip must be in \[0, 1\], got 1.5; 0 turns the probability "),
    ],
)
def test_asymmetric_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        lt.asymmetric_loss(Z, T, **kwargs)


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        ((1.5, COUNTS, 2), TypeError, r"epoch must be an int, got 1.5"),
        ((-1, COUNTS, 2), ValueError, r"epoch must be an int >= 0, got -1"),
        ((1, COUNTS, None), TypeError, r"start_epoch must be an int, got None"),
        (
            (1, COUNTS, 2, 1.0),
            ValueError,
            r"beta must be in \[0, 1\), got 1.0; "
            r"use a value just below 1",
        ),
        ((1, np.ones((2, 2)), 2), ValueError, r"counts must be shape \(C,\)"),
        (
            (1, [3.0, 0.0], 0),
            ValueError,
            r"counts must be positive and finite for "
            r"every class \(checked outside jit/compile\), got 0.0 for class 1",
        ),
        (
            (1, np.array([True, False]), 0),
            TypeError,
            r"counts must be a real-valued array of class counts, got dtype bool",
        ),
    ],
)
def test_drw_weights_errors(args: tuple, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        lt.drw_weights(*args)


def test_public_names_are_exported() -> None:
    for name in lt.__all__:
        assert getattr(wce, name) is getattr(lt, name)
        assert name in wce.__all__
