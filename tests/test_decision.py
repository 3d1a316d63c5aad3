"""adjust_logits: reference values, backends, gradients, tracing, invariants, errors."""

from __future__ import annotations

import numpy as np
import pytest

import wce
from wce._backend import backend_of

from ._arrays import grad, host, to

LOGITS = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0], [-0.3, 0.0, 0.3]])
WEIGHT = np.array([0.5, 2.0, 4.0])
PRIOR = np.array([0.7, 0.2, 0.1])


# ---------------------------------------------------------------------------
# Reference values
# ---------------------------------------------------------------------------
def test_reference_values() -> None:
    got = wce.adjust_logits(LOGITS, class_weight=WEIGHT)
    np.testing.assert_allclose(got, LOGITS + np.log(WEIGHT), rtol=1e-15)
    got = wce.adjust_logits(LOGITS, prior=PRIOR, tau=0.5)
    np.testing.assert_allclose(got, LOGITS - 0.5 * np.log(PRIOR), rtol=1e-15)
    got = wce.adjust_logits(LOGITS, class_weight=WEIGHT, prior=PRIOR)
    np.testing.assert_allclose(got, LOGITS + np.log(WEIGHT) - np.log(PRIOR), rtol=1e-15)
    np.testing.assert_array_equal(wce.adjust_logits(LOGITS), LOGITS)
    # hand-computed: log 2 = 0.693147..., -log 0.5 = 0.693147...
    np.testing.assert_allclose(
        wce.adjust_logits(np.zeros((1, 2)), class_weight=[1.0, 2.0], prior=[0.5, 1.0]),
        [[0.6931471805599453, 0.6931471805599453]],
        rtol=1e-15,
    )


def test_zero_weight_class_is_never_predicted() -> None:
    got = wce.adjust_logits(LOGITS, class_weight=[1.0, 0.0, 1.0])
    assert np.isneginf(got[:, 1]).all()
    assert np.isfinite(got[:, [0, 2]]).all()
    assert (got.argmax(-1) != 1).all()


def test_class_axis_of_a_segmentation_map() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 4, 5))  # (N, C, H, W)
    got = wce.adjust_logits(x, class_weight=WEIGHT, prior=PRIOR, axis=1)
    want = x + (np.log(WEIGHT) - np.log(PRIOR))[None, :, None, None]
    np.testing.assert_allclose(got, want, rtol=1e-14)


# ---------------------------------------------------------------------------
# Every backend: values, dtypes, gradients, tracing
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_every_backend(backend: str, dtype: str) -> None:
    x = to(backend, LOGITS, dtype)
    got = wce.adjust_logits(
        x, class_weight=to(backend, WEIGHT, np.float32), prior=PRIOR, tau=2.0
    )
    assert type(got).__module__.split(".")[0] == type(x).__module__.split(".")[0]
    assert host(got).dtype == (np.float64 if dtype == "float64" else np.float32)
    want = LOGITS.astype(dtype).astype(np.float64) + np.log(WEIGHT) - 2 * np.log(PRIOR)
    np.testing.assert_allclose(
        host(got), want, rtol=1e-6 if dtype != "float64" else 1e-14
    )


@pytest.mark.parametrize("backend", ["torch", "jax", "tensorflow"])
def test_gradients(backend: str) -> None:
    x = to(backend, LOGITS, np.float64)
    w = to(backend, WEIGHT, np.float64)
    upstream = np.arange(9.0).reshape(3, 3)
    u = to(backend, upstream, np.float64)
    xp = backend_of(x).xp

    def shifted(v: object) -> object:
        return xp.sum(u * wce.adjust_logits(v, class_weight=w, prior=PRIOR))

    def weighted(v: object) -> object:
        return xp.sum(u * wce.adjust_logits(x, class_weight=v))

    np.testing.assert_allclose(grad(backend, shifted, x), upstream)  # a constant
    # d/dw_c of sum(upstream * (x + log w)) = sum_i upstream_ic / w_c
    np.testing.assert_allclose(
        grad(backend, weighted, w), upstream.sum(0) / WEIGHT, rtol=1e-14
    )


def test_jit_and_tf_function() -> None:
    import jax
    import jax.numpy as jnp
    import tensorflow as tf

    want = LOGITS + np.log(WEIGHT) - np.log(PRIOR)
    jitted = jax.jit(lambda x, w, p: wce.adjust_logits(x, class_weight=w, prior=p))
    got = jitted(jnp.asarray(LOGITS), jnp.asarray(WEIGHT), jnp.asarray(PRIOR))
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-14)
    traced = tf.function(lambda x, w: wce.adjust_logits(x, class_weight=w, prior=PRIOR))
    got = traced(tf.constant(LOGITS), tf.constant(WEIGHT))
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-14)


def test_torch_compile() -> None:
    """Dynamo traces adjust_logits and class_counts (data checks skipped)."""
    import torch

    compiled = torch.compile(
        lambda x, w: wce.adjust_logits(x, class_weight=w, prior=PRIOR),
        backend="eager",
    )
    x = torch.from_numpy(LOGITS)
    got = compiled(x, torch.from_numpy(WEIGHT))
    np.testing.assert_allclose(
        got.numpy(), LOGITS + np.log(WEIGHT) - np.log(PRIOR), rtol=1e-14
    )
    counts = torch.compile(
        lambda y: wce.class_counts(y, num_classes=3), backend="eager"
    )(torch.tensor([0, 1, 1, 2, 1]))
    np.testing.assert_array_equal(counts.numpy(), [1.0, 3.0, 1.0])


# ---------------------------------------------------------------------------
# Invariants
# ---------------------------------------------------------------------------
def test_argmax_of_weighted_probabilities() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 5)) * 3
    w = rng.uniform(0.1, 10, size=5)
    p = np.exp(x - x.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    got = wce.adjust_logits(x, class_weight=w).argmax(-1)
    np.testing.assert_array_equal(got, (w * p).argmax(-1))


def test_prior_adjustment_removes_the_prior() -> None:
    """Logits that are log prior plus a constant become uniform; scale is free."""
    x = np.log(PRIOR)[None, :] + np.array([[3.0], [-1.0]])
    got = wce.adjust_logits(x, prior=PRIOR)
    np.testing.assert_allclose(got - got[:, :1], 0.0, atol=1e-15)
    counts = PRIOR * 1000  # counts instead of frequencies: same argmax, softmax
    shifted = wce.adjust_logits(LOGITS, prior=counts)
    np.testing.assert_allclose(
        shifted - wce.adjust_logits(LOGITS, prior=PRIOR), -np.log(1000.0), rtol=1e-13
    )
    np.testing.assert_array_equal(
        wce.adjust_logits(LOGITS, prior=PRIOR, tau=0.0), LOGITS
    )


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------
def test_errors() -> None:
    with pytest.raises(
        ValueError,
        match=r"^class_weight must be shape \(3,\), one "
        r"entry per class on axis -1 of logits, got shape \(2,\); "
        r"pass one weight per class",
    ):
        wce.adjust_logits(LOGITS, class_weight=[1.0, 2.0])
    with pytest.raises(
        ValueError,
        match=r"^prior must be shape \(4,\), one entry "
        r"per class on axis 1 of logits, got shape \(3,\)",
    ):
        wce.adjust_logits(np.zeros((2, 4)), prior=PRIOR, axis=1)
    with pytest.raises(
        ValueError,
        match=r"^class_weight must be non-negative and "
        r"finite .*got an entry equal to -1.0;",
    ):
        wce.adjust_logits(LOGITS, class_weight=[1.0, -1.0, 1.0])
    with pytest.raises(
        ValueError,
        match=r"^prior must be positive for every class, "
        r"got 0.0 for class 1; pass class frequencies or counts",
    ):
        wce.adjust_logits(LOGITS, prior=[0.5, 0.0, 0.5])
    with pytest.raises(
        ValueError,
        match=r"^tau must be a non-negative float, got "
        r"-1.0; pass a value >= 0",
    ):
        wce.adjust_logits(LOGITS, prior=PRIOR, tau=-1.0)
    with pytest.raises(
        TypeError,
        match=r"^logits must be a floating-point array, "
        r"got dtype int64;",
    ):
        wce.adjust_logits(np.zeros((2, 3), dtype=np.int64), prior=PRIOR)
    with pytest.raises(
        ValueError,
        match=r"^logits must be an array of rank >= 1 "
        r"with a class axis, got a scalar;",
    ):
        wce.adjust_logits(np.float64(1.0), prior=PRIOR)
    with pytest.raises(
        ValueError,
        match=r"^axis must be in \[-2, 1\] for logits of "
        r"rank 2, got 2;",
    ):
        wce.adjust_logits(LOGITS, prior=PRIOR, axis=2)
    with pytest.raises(
        TypeError,
        match=r"^class_weight must be a real-valued array,"
        r" got dtype bool;",
    ):
        wce.adjust_logits(LOGITS, class_weight=np.array([True, False, True]))
