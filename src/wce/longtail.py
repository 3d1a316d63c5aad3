"""Losses for long-tailed data beyond re-weighting, on every backend.

Each loss shares the vocabulary of :mod:`wce.losses`: ``class_weight`` and
``sample_weight`` multiply into the element weight ``w``; ``ignore_index`` drops
elements; ``reduction`` names its denominator (``"mean"``: the number of counted
elements, ``"weighted_mean"``: the sum of their weights ``w``, ``"sum"``: none,
``"none"``: ``w * l`` per element). An empty denominator gives 0, not NaN.

Every loss is written in log space: for every finite logit the value and the
gradient are finite, also for focusing exponents below 1 where ``p_t`` rounds to 1
(no ``0 ** 0`` or ``0 ** -0.5`` reaches autodiff), and ``1 - p`` is never formed
as ``1 - exp(log p)``. Half-precision logits are computed in float32.

Checked always (also under tracing): shapes, dtypes, hyperparameters. Checked only
on concrete arrays: labels in range, weights, priors and counts non-negative or
positive and finite.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

from . import _checks, _fused
from ._backend import Backend, convert
from ._checks import fail, fmt_shape
from ._core import (
    Normalizer,
    SoftmaxBatch,
    eager,
    finish,
    log_softmax,
    prepare_class_vector,
    prepare_cost_matrix,
    prepare_sigmoid,
    prepare_softmax,
    reduce,
    sigmoid_terms,
    softplus_pair,
    without_dropped,
)

__all__ = [
    "asymmetric_loss",
    "drw_weights",
    "expected_cost_loss",
    "ldam_loss",
    "logit_adjusted_cross_entropy",
    "sigmoid_focal_loss",
    "softmax_focal_loss",
]


# ---------------------------------------------------------------------------
# Checks of hyperparameters
# ---------------------------------------------------------------------------
def _finite_nonnegative(value: Any, argument: str) -> float:
    out = _checks.check_nonnegative_scalar(value, argument)
    if not math.isfinite(out):
        fail(
            argument,
            "a finite non-negative float",
            repr(value),
            "pass a finite value (2.0 is the usual focusing exponent)",
        )
    return out


def _positive(value: Any, argument: str) -> float:
    out = _finite_nonnegative(value, argument)
    if out <= 0.0:
        fail(argument, "a positive float", repr(value), "pass a value > 0")
    return out


def _positive_class_vector(
    be: Backend,
    value: Any,
    argument: str,
    *,
    num_classes: int,
    axis: int,
    like: Any,
    dtype: Any,
    what: str,
) -> Any:
    """A (C,) vector of positive, finite entries (positivity checked eagerly)."""
    v = prepare_class_vector(
        be,
        value,
        argument,
        num_classes=num_classes,
        axis=axis,
        allow_scalar=False,
        like=like,
        dtype=dtype,
    )
    if eager(be, v, like):
        host = be.to_numpy(v)
        if not (host > 0).all():
            c = int((~(host > 0)).nonzero()[0][0])
            fail(
                argument,
                f"positive for every class ({what}; checked outside jit/compile)",
                f"{host[c]} for class {c}",
                "drop the empty class or give it a small positive value",
            )
    return v


def _class_weight(batch: SoftmaxBatch, class_weight: Any, axis: int) -> Any:
    return prepare_class_vector(
        batch.be,
        class_weight,
        "class_weight",
        num_classes=batch.num_classes,
        axis=axis,
        allow_scalar=False,
        like=batch.like,
        dtype=batch.dtype,
    )


def _integer_labels_only(batch: SoftmaxBatch, loss: str) -> None:
    if batch.labels is None:
        fail(
            "labels",
            f"integer class ids for {loss} (the margin is taken from the true class)",
            "floating probabilities",
            "pass class ids, such as labels.argmax(axis)",
        )


# ---------------------------------------------------------------------------
# Stable pieces in log space
# ---------------------------------------------------------------------------
def _neg_inf_like(be: Backend, x: Any) -> Any:
    return be.xp.zeros_like(x) - math.inf


def _logaddexp(be: Backend, u: Any, v: Any) -> Any:
    """log(exp(u) + exp(v)) for arrays that are not both -inf."""
    xp = be.xp
    m = xp.maximum(u, v)
    m = be.stop_gradient(xp.where(xp.isfinite(m), m, xp.zeros_like(m)))
    return m + xp.log(xp.exp(u - m) + xp.exp(v - m))


def _logsumexp_excluding(be: Backend, v: Any, exclude: Any) -> Any:
    """log sum exp(v) over the last axis where not ``exclude``; -inf when empty.

    Excluded entries are replaced before any exponential, so their gradient is 0
    and never ``0 * inf``.
    """
    xp = be.xp
    keep = xp.logical_and(xp.logical_not(exclude), v > -math.inf)
    neg_inf = _neg_inf_like(be, v)
    m = xp.max(xp.where(keep, v, neg_inf), axis=-1, keepdims=True)
    m = be.stop_gradient(xp.where(xp.isfinite(m), m, xp.zeros_like(m)))
    zero = xp.zeros_like(v)
    e = xp.where(keep, xp.exp(xp.where(keep, v, zero + m) - m), zero)
    total = xp.sum(e, axis=-1, keepdims=True)
    ok = total > 0
    safe = xp.where(ok, total, xp.ones_like(total))
    return xp.where(ok, m + xp.log(safe), _neg_inf_like(be, total))


def _softmax_logs(be: Backend, batch: SoftmaxBatch) -> tuple[Any, Any]:
    """(log p_c, log(1 - p_c)) for every class, each to full relative precision.

    The normaliser is written around the top class m: ``log sum_k exp(x_k) = x_m +
    log1p(sum_{k != m} exp(x_k - x_m))``, so ``log p_m`` keeps the digits a plain
    log-softmax rounds away when ``p_m`` is near 1. ``1 - p_m`` is the other
    classes' mass, from their log-sum-exp; for the other classes ``p_c <= 1/2``
    and ``log1p(-p_c)`` is well conditioned.
    """
    xp = be.xp
    x = batch.x
    top = batch.predicted_onehot()
    zero = xp.zeros_like(x)
    x_top = xp.sum(xp.where(top, x, zero), axis=-1, keepdims=True)
    x_top = xp.where(xp.isfinite(x_top), x_top, xp.zeros_like(x_top))
    # exactly 0 for the top class, with no gradient path that could cancel
    s = xp.where(top, zero, x - x_top)
    # rest = log sum_{k != m} exp(x_k - x_m) <= log(C - 1)
    rest = _logsumexp_excluding(be, s, top)
    sp_neg_rest, sp_rest = softplus_pair(be, rest)
    logp = s - sp_rest
    top_log1m = -sp_neg_rest + zero
    other = xp.where(top, zero - 1.0, logp)
    log1m = xp.where(top, top_log1m, xp.log1p(-xp.exp(other)))
    return logp, log1m


def _sigmoid_log1m_pt(be: Backend, q: Any, sp_neg: Any, sp_pos: Any) -> Any:
    """log(1 - p_t) with ``1 - p_t = q (1 - p) + (1 - q) p``, in log space.

    ``log(1 - p) = -softplus(z)`` and ``log p = -softplus(-z)``; soft targets mix
    them with a log-add-exp, hard targets take one of them exactly.
    """
    xp = be.xp
    strict = xp.logical_and(q > 0, q < 1)
    half = xp.zeros_like(q) + 0.5
    qs = xp.where(strict, q, half)
    soft = _logaddexp(be, xp.log(qs) - sp_pos, xp.log1p(-qs) - sp_neg)
    hard = xp.where(q > 0.5, -sp_pos, -sp_neg)
    return xp.where(strict, soft, hard)


def _sigmoid_focal_terms(
    be: Backend, z: Any, q: Any, gamma: float, alpha: float | None
) -> Any:
    """The sigmoid focal loss of each element, ``alpha_t (1 - p_t)^gamma bce``,
    unweighted (see :func:`sigmoid_focal_loss`; also the fused path's reference)."""
    loss = sigmoid_terms(be, z, q, None)
    if gamma != 0.0:
        sp_neg, sp_pos = softplus_pair(be, z)
        loss = be.xp.exp(gamma * _sigmoid_log1m_pt(be, q, sp_neg, sp_pos)) * loss
    if alpha is not None:
        loss = (alpha * q + (1 - alpha) * (1 - q)) * loss
    return loss


def _smoothed_targets(batch: SoftmaxBatch, label_smoothing: float) -> Any:
    q = batch.target_distribution()
    if label_smoothing != 0.0:
        q = (1 - label_smoothing) * q + label_smoothing / batch.num_classes
    return q


def _reduce(
    batch: Any,
    loss: Any,
    weight: Any,
    reduction: str,
    axis_name: str | None,
    normalizer: Normalizer | None,
) -> Any:
    out = reduce(
        batch.be,
        loss,
        weight,
        batch.valid,
        reduction,
        axis_name=axis_name,
        normalizer=normalizer,
    )
    return finish(batch.be, out)


# ---------------------------------------------------------------------------
# Focal losses
# ---------------------------------------------------------------------------
def sigmoid_focal_loss(
    logits: Any,
    labels: Any,
    *,
    gamma: float = 2.0,
    alpha: float | None = None,
    class_weight: Any | None = None,
    sample_weight: Any | None = None,
    label_smoothing: float = 0.0,
    ignore_index: int | None = None,
    axis: int = -1,
    reduction: str = "mean",
    axis_name: str | None = None,
    normalizer: Normalizer | None = None,
) -> Any:
    """Binary (sigmoid) focal loss for detection, binary and multi-label tasks.

    In short: ``mean w * alpha_t * (1 - p_t) ** gamma * bce(z, q)``.

    Exactly, per element (a logit ``z`` with target ``t``), with ``p = sigmoid(z)``:

    * ``q = (1 - eps) * t + eps / 2`` with ``eps = label_smoothing``;
    * ``bce = q * softplus(-z) + (1 - q) * softplus(z)``, the cross-entropy of
      :func:`wce.sigmoid_cross_entropy`;
    * ``1 - p_t = q * (1 - p) + (1 - q) * p``, computed as a log-add-exp of
      ``log(1 - p) = -softplus(z)`` and ``log p = -softplus(-z)``;
    * ``l = alpha_t * exp(gamma * log(1 - p_t)) * bce``, where
      ``alpha_t = alpha * q + (1 - alpha) * (1 - q)``: ``alpha`` weighs the
      positive class (target 1) and ``1 - alpha`` the negative class; with
      ``alpha=None`` there is no such factor (``alpha_t = 1``);
    * ``w = class_weight * sample_weight``. ``alpha_t`` belongs to the loss ``l``,
      so ``"weighted_mean"`` divides by the sum of ``w`` only.

    For hard targets this is Lin et al.'s ``-alpha_t (1 - p_t) ** gamma log p_t``;
    for soft targets it is the product form of torchvision, optax and Keras.
    ``gamma = 0`` is the sigmoid cross-entropy, computed by the same code.

    Args:
        logits: unnormalised scores; shape (N,), (N, C), or (N, C, d1, ..., dk)
            with ``axis=1``; half precision is computed in float32.
        labels: targets in [0, 1] of the shape of ``logits``.
        gamma: focusing exponent ``>= 0``; finite gradients for every value,
            including ``0 < gamma < 1`` at saturated logits.
        alpha: weight of positives in [0, 1] (negatives get ``1 - alpha``), or
            ``None`` for no balancing. Lin et al. use 0.25.
        class_weight: scalar or shape (C,) along ``axis``: a weight per label.
        sample_weight: of the shape of ``logits`` or of its leading dimensions.
        label_smoothing: ``eps`` in [0, 1].
        ignore_index: target value (such as -100) whose elements get loss 0,
            weight 0, gradient 0 and are not counted.
        axis: the label axis, along which ``class_weight`` lies.
        reduction: ``"none"``, ``"sum"``, ``"mean"`` (divide by the number of
            non-ignored elements) or ``"weighted_mean"`` (divide by the sum of
            their weights ``w``).
        axis_name: JAX only: the mapped axis over which the denominator is summed
            (see :mod:`wce.distributed`).
        normalizer: advanced; combines local sums across workers.

    Returns:
        The reduced loss (0-d), or with ``reduction="none"`` the weighted losses of
        the shape of ``logits``; float32, or float64 for float64 logits.

    Raises:
        ValueError: ``gamma`` negative or infinite, ``alpha`` or
            ``label_smoothing`` outside [0, 1], ``class_weight`` not scalar or
            (C,), labels of another shape, unknown ``reduction``; outside tracing:
            targets outside [0, 1], negative weights.
        TypeError: non-float logits, boolean or complex weights, non-numeric
            hyperparameters.

    Not supported: ``pos_weight`` (``alpha`` plays its part).

    On PyTorch tensors the loss and its gradient are computed together by the
    fused kernel (docs/torch-fast-path.md); it has no second derivative, so take
    double backward under ``wce.use_fused_kernels(False)``.

    References:
        Lin, Goyal, Girshick, He and Dollár (2017). Focal Loss for Dense Object
        Detection. ICCV 2017.

    Examples:
        >>> import numpy as np
        >>> z = np.array([[2.0, -1.0], [-0.5, 3.0]])
        >>> t = np.array([[1.0, 0.0], [1.0, 1.0]])
        >>> round(float(sigmoid_focal_loss(z, t, gamma=2.0, alpha=0.25)), 6)
        0.027956
        >>> round(float(sigmoid_focal_loss(z, t, gamma=0.0)), 6)
        0.365714
    """
    fast = _fused.dispatch("sigmoid_focal", locals())
    if fast is not NotImplemented:
        return fast
    reduction = _checks.check_reduction(reduction)
    gamma = _finite_nonnegative(gamma, "gamma")
    if alpha is not None:
        alpha = _checks.check_unit_interval(
            alpha,
            "alpha",
            "alpha weighs positives and 1 - alpha negatives; "
            "None turns the balancing off",
        )
    batch = prepare_sigmoid(
        logits,
        labels,
        axis=axis,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )
    cw = batch.per_label(class_weight, "class_weight")
    q = batch.smoothed(label_smoothing)

    loss = _sigmoid_focal_terms(batch.be, batch.z, q, gamma, alpha)
    weight = batch.element_weight(cw, sample_weight)

    return _reduce(batch, loss, weight, reduction, axis_name, normalizer)


def softmax_focal_loss(
    logits: Any,
    labels: Any,
    *,
    gamma: float = 2.0,
    class_weight: Any | None = None,
    sample_weight: Any | None = None,
    label_smoothing: float = 0.0,
    ignore_index: int | None = None,
    axis: int = -1,
    reduction: str = "mean",
    axis_name: str | None = None,
    normalizer: Normalizer | None = None,
) -> Any:
    """Multi-class (softmax) focal loss.

    In short: ``mean w * sum_c q_c (1 - p_c) ** gamma (-log p_c)``; for a class id
    ``y`` that is ``w * (1 - p_y) ** gamma * (-log p_y)``.

    Exactly, per element with ``p = softmax(logits)`` along ``axis``:

    * ``t`` is the one-hot of the class id or the given probabilities, smoothed to
      ``q = (1 - eps) * t + eps / C``;
    * ``l = sum_c q_c * exp(gamma * log(1 - p_c)) * (-log p_c)``: each class's
      focal term weighted by its target mass (Keras's convention for soft targets;
      the expected focal loss under ``q``). ``log(1 - p_c)`` is the log-sum-exp of
      the other classes' probabilities, never ``log(1 - exp(log p_c))``;
    * ``a = sum_c class_weight_c * t_c`` (the per-class ``alpha`` of Lin et al.;
      Keras's scalar ``alpha`` is ``class_weight=[alpha] * C``);
      ``w = a * sample_weight``.

    ``gamma = 0`` is :func:`wce.softmax_cross_entropy`, computed by the same code.
    A ``-inf`` logit masks its class, as in the cross-entropy.

    Args:
        logits: unnormalised scores of shape (N, C), or (N, C, d1, ..., dk) with
            ``axis=1``; half precision is computed in float32.
        labels: integer class ids of the shape of ``logits`` without ``axis``, or
            floating class probabilities of the shape of ``logits``.
        gamma: focusing exponent ``>= 0``.
        class_weight: weight per class, shape (C,), picked by the true class.
        sample_weight: weight per element, of the shape of the labels or of its
            leading dimensions.
        label_smoothing: ``eps`` in [0, 1].
        ignore_index: class id whose elements get loss 0, weight 0, gradient 0 and
            are not counted. Only with integer labels.
        axis: the class axis of ``logits``.
        reduction: ``"none"``, ``"sum"``, ``"mean"`` (divide by the number of
            non-ignored elements) or ``"weighted_mean"`` (divide by the sum of
            their weights ``w``).
        axis_name: JAX only: the mapped axis over which the denominator is summed.
        normalizer: advanced; combines local sums across workers.

    Returns:
        The reduced loss (0-d), or with ``reduction="none"`` the weighted
        per-element losses of the shape of the labels.

    Raises:
        ValueError: ``gamma`` negative or infinite, ``class_weight`` not (C,),
            labels not matching the logits, unknown ``reduction``,
            ``label_smoothing`` outside [0, 1], ``ignore_index`` with probability
            labels; outside tracing: class ids out of range, negative weights.
        TypeError: non-float logits, boolean or complex weights.

    On PyTorch tensors with class ids the loss and its gradient are computed
    together by the fused kernel (docs/torch-fast-path.md); it has no second
    derivative, so take double backward under ``wce.use_fused_kernels(False)``.

    References:
        Lin, Goyal, Girshick, He and Dollár (2017). Focal Loss for Dense Object
        Detection. ICCV 2017.

    Examples:
        >>> import numpy as np
        >>> logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
        >>> labels = np.array([0, 1])
        >>> round(float(softmax_focal_loss(logits, labels, gamma=2.0)), 6)
        1.306102
        >>> round(float(softmax_focal_loss(logits, labels, gamma=0.0)), 6)
        1.575456
    """
    fast = _fused.dispatch("softmax_focal", locals())
    if fast is not NotImplemented:
        return fast
    reduction = _checks.check_reduction(reduction)
    gamma = _finite_nonnegative(gamma, "gamma")
    batch = prepare_softmax(
        logits,
        labels,
        axis=axis,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )
    be, xp = batch.be, batch.be.xp
    cw = _class_weight(batch, class_weight, axis)
    weight = batch.element_weight(batch.class_factor(cw, "label", None), sample_weight)
    # rows that carry no weight: logits 0, so their gradient is exactly 0
    masked = without_dropped(be, batch.x, weight, batch.valid, rows=True)
    batch = dataclasses.replace(batch, x=masked)

    if gamma == 0.0:
        loss = batch.cross_entropy(log_softmax(be, batch.x), label_smoothing)
    else:
        logp, log1m = _softmax_logs(be, batch)
        q = _smoothed_targets(batch, label_smoothing)
        zero = xp.zeros_like(q)
        # classes without target mass are left out before any product with inf
        active = q > 0
        nlp = xp.where(active, zero - logp, zero)
        focus = xp.exp(gamma * xp.where(active, log1m, zero))
        loss = xp.sum(q * focus * nlp, axis=-1)

    return _reduce(batch, loss, weight, reduction, axis_name, normalizer)


# ---------------------------------------------------------------------------
# Margins and priors
# ---------------------------------------------------------------------------
def logit_adjusted_cross_entropy(
    logits: Any,
    labels: Any,
    *,
    prior: Any,
    tau: float = 1.0,
    class_weight: Any | None = None,
    sample_weight: Any | None = None,
    label_smoothing: float = 0.0,
    ignore_index: int | None = None,
    axis: int = -1,
    reduction: str = "mean",
    axis_name: str | None = None,
    normalizer: Normalizer | None = None,
) -> Any:
    """Logit-adjusted softmax cross-entropy (balanced softmax for ``tau = 1``).

    In short: ``softmax_cross_entropy(logits + tau * log(prior), labels)``.

    Exactly, per element: ``l = -sum_c q_c log softmax(x + tau * log(prior))_c``
    with ``q`` the (smoothed) target as in :func:`wce.softmax_cross_entropy`;
    ``w = class_weight[y] * sample_weight``. Only the ratios of ``prior`` matter
    (a constant shift of the logits leaves the softmax unchanged), so class
    counts serve as well as frequencies. ``tau = 0`` and a uniform prior give the
    plain cross-entropy. Predict with the unadjusted logits: that is the point of
    the method (rare classes must win by a margin during training).

    Args:
        logits: unnormalised scores of shape (N, C), or (N, C, d1, ..., dk) with
            ``axis=1``.
        labels: integer class ids of the shape of ``logits`` without ``axis``, or
            floating class probabilities of the shape of ``logits``.
        prior: class frequencies or counts, shape (C,), positive and finite.
        tau: temperature ``>= 0`` of the adjustment; Menon et al. use 1.
        class_weight: weight per class, shape (C,), picked by the true class.
        sample_weight: weight per element (shape of the labels or leading dims).
        label_smoothing: ``eps`` in [0, 1].
        ignore_index: class id to leave out (integer labels only).
        axis: the class axis of ``logits``.
        reduction: ``"none"``, ``"sum"``, ``"mean"`` (number of non-ignored
            elements) or ``"weighted_mean"`` (sum of their weights ``w``).
        axis_name: JAX only: the mapped axis over which the denominator is summed.
        normalizer: advanced; combines local sums across workers.

    Returns:
        The reduced loss (0-d), or per element with ``reduction="none"``.

    Raises:
        ValueError: ``prior`` not (C,) or (outside tracing) with a zero, negative
            or non-finite entry; ``tau`` negative or infinite; and as
            :func:`wce.softmax_cross_entropy`.
        TypeError: non-float logits, boolean or complex ``prior`` or weights.

    References:
        Menon, Jayasumana, Rawat, Jain, Veit and Kumar (2021). Long-tail learning
        via logit adjustment. ICLR 2021.
        Ren, Yu, Sheng, Ma, Zhao, Yi and Li (2020). Balanced Meta-Softmax for
        Long-Tailed Visual Recognition. NeurIPS 2020.

    Examples:
        >>> import numpy as np
        >>> logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
        >>> labels = np.array([0, 1])
        >>> prior = np.array([0.7, 0.2, 0.1])
        >>> round(float(logit_adjusted_cross_entropy(logits, labels, prior=prior)),
        ...       6)
        1.292648
    """
    reduction = _checks.check_reduction(reduction)
    tau = _finite_nonnegative(tau, "tau")
    batch = prepare_softmax(
        logits,
        labels,
        axis=axis,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )
    be, c = batch.be, batch.num_classes
    pri = _positive_class_vector(
        be,
        prior,
        "prior",
        num_classes=c,
        axis=axis,
        like=batch.like,
        dtype=batch.dtype,
        what="a class frequency or count",
    )
    cw = _class_weight(batch, class_weight, axis)

    x = batch.x if tau == 0.0 else batch.x + tau * be.xp.log(pri)
    loss = batch.cross_entropy(log_softmax(be, x), label_smoothing)
    weight = batch.element_weight(batch.class_factor(cw, "label", None), sample_weight)

    return _reduce(batch, loss, weight, reduction, axis_name, normalizer)


def ldam_loss(
    logits: Any,
    labels: Any,
    *,
    class_counts: Any,
    max_margin: float = 0.5,
    scale: float = 30.0,
    class_weight: Any | None = None,
    sample_weight: Any | None = None,
    label_smoothing: float = 0.0,
    ignore_index: int | None = None,
    axis: int = -1,
    reduction: str = "mean",
    axis_name: str | None = None,
    normalizer: Normalizer | None = None,
) -> Any:
    """Label-distribution-aware margin (LDAM) loss.

    In short: ``softmax_cross_entropy(scale * (logits - margin_y * onehot(y)), y)``.

    Exactly, with ``n_c = class_counts``: ``margin_c = max_margin * (min_k n_k /
    n_c) ** (1/4)``, i.e. proportional to ``n_c ** -1/4`` with the largest margin
    (the rarest class) equal to ``max_margin``. Per element with class id ``y``:
    ``x'_c = scale * (x_c - margin_y [c = y])`` and ``l = -sum_c q_c log
    softmax(x')_c`` with ``q`` the (smoothed) one-hot target;
    ``w = class_weight[y] * sample_weight``. Cao et al. feed it normalised
    (cosine) logits and combine it with deferred re-weighting: pass
    ``class_weight=drw_weights(epoch, counts, start_epoch)`` with
    ``reduction="weighted_mean"`` (PyTorch's weighted mean, as in their code).
    ``max_margin=0`` with ``scale=1`` is the plain cross-entropy.

    Args:
        logits: unnormalised scores of shape (N, C), or (N, C, d1, ..., dk) with
            ``axis=1``.
        labels: integer class ids of the shape of ``logits`` without ``axis``.
        class_counts: training examples per class, shape (C,), positive.
        max_margin: the margin of the rarest class, ``>= 0``.
        scale: the factor ``s > 0`` applied after the margin.
        class_weight: weight per class, shape (C,), picked by the true class.
        sample_weight: weight per element (shape of the labels or leading dims).
        label_smoothing: ``eps`` in [0, 1].
        ignore_index: class id to leave out.
        axis: the class axis of ``logits``.
        reduction: ``"none"``, ``"sum"``, ``"mean"`` (number of non-ignored
            elements) or ``"weighted_mean"`` (sum of their weights ``w``).
        axis_name: JAX only: the mapped axis over which the denominator is summed.
        normalizer: advanced; combines local sums across workers.

    Returns:
        The reduced loss (0-d), or per element with ``reduction="none"``.

    Raises:
        ValueError: probability labels; ``class_counts`` not (C,) or (outside
            tracing) with a zero or negative count; ``max_margin`` negative,
            ``scale`` not positive; and as :func:`wce.softmax_cross_entropy`.
        TypeError: non-float logits, boolean or complex counts or weights.

    References:
        Cao, Wei, Gaidon, Arechiga and Ma (2019). Learning Imbalanced Datasets with
        Label-Distribution-Aware Margin Loss. NeurIPS 2019.

    Examples:
        >>> import numpy as np
        >>> cosine = np.array([[0.9, 0.1, -0.2], [0.2, 0.3, 0.1]])
        >>> labels = np.array([0, 2])
        >>> counts = np.array([500.0, 50.0, 5.0])
        >>> round(float(ldam_loss(cosine, labels, class_counts=counts)), 6)
        10.524294
    """
    reduction = _checks.check_reduction(reduction)
    max_margin = _finite_nonnegative(max_margin, "max_margin")
    scale = _positive(scale, "scale")
    batch = prepare_softmax(
        logits,
        labels,
        axis=axis,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )
    _integer_labels_only(batch, "ldam_loss")
    be, xp, c = batch.be, batch.be.xp, batch.num_classes
    counts = _positive_class_vector(
        be,
        class_counts,
        "class_counts",
        num_classes=c,
        axis=axis,
        like=batch.like,
        dtype=batch.dtype,
        what="a count of training examples",
    )
    cw = _class_weight(batch, class_weight, axis)

    margin = max_margin * (xp.min(counts) / counts) ** 0.25
    onehot = xp.astype(batch.onehot(), batch.dtype)
    x = scale * (batch.x - onehot * margin)
    loss = batch.cross_entropy(log_softmax(be, x), label_smoothing)
    weight = batch.element_weight(batch.class_factor(cw, "label", None), sample_weight)

    return _reduce(batch, loss, weight, reduction, axis_name, normalizer)


def drw_weights(epoch: int, counts: Any, start_epoch: int, beta: float = 0.9999) -> Any:
    """Deferred re-weighting: class weights that switch on at ``start_epoch``.

    Before ``start_epoch`` every class weighs 1. From ``start_epoch`` on
    (epochs counted from 0), the class-balanced weight of Cui et al.,
    ``(1 - beta) / (1 - beta ** n_c)``, rescaled to sum to the number of
    classes C, as in the LDAM-DRW schedule of Cao et al. (who use 200 epochs,
    ``start_epoch=160``, ``beta=0.9999``).

    Args:
        epoch: the current epoch, an int ``>= 0``.
        counts: training examples per class, shape (C,), positive (checked
            outside tracing); NumPy, PyTorch, JAX or TensorFlow.
        start_epoch: the first epoch that is re-weighted, an int ``>= 0``.
        beta: in [0, 1); 0 gives equal weights, values near 1 approach inverse
            frequency.

    Returns:
        Weights of shape (C,) on the backend and device of ``counts``, float32
        (float64 for float64 counts; NumPy: float64), summing to C.

    Raises:
        ValueError: ``counts`` not of shape (C,) or with a zero or negative count,
            ``beta`` outside [0, 1), negative epochs.
        TypeError: non-integer epochs, non-numeric ``beta``, boolean counts.

    References:
        Cao, Wei, Gaidon, Arechiga and Ma (2019). Learning Imbalanced Datasets with
        Label-Distribution-Aware Margin Loss. NeurIPS 2019.
        Cui, Jia, Lin, Song and Belongie (2019). Class-Balanced Loss Based on
        Effective Number of Samples. CVPR 2019.

    Examples:
        >>> import numpy as np
        >>> counts = np.array([1000, 100, 10])
        >>> drw_weights(5, counts, start_epoch=160)
        array([1., 1., 1.])
        >>> np.round(drw_weights(160, counts, start_epoch=160), 4)
        array([0.0284, 0.2713, 2.7004])
    """
    for value, name in ((epoch, "epoch"), (start_epoch, "start_epoch")):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            fail(name, "an int", repr(value), "count epochs from 0", cls=TypeError)
        if value < 0:
            fail(name, "an int >= 0", repr(value), "count epochs from 0")
    beta = _checks.check_unit_interval(
        beta, "beta", "beta near 1 gives weights near 1 / n_c, 0 uniform weights"
    )
    if beta >= 1.0:
        fail(
            "beta", "in [0, 1)", repr(beta), "use a value just below 1, such as 0.9999"
        )
    be, n = convert(counts)
    if be.kind(n) not in ("floating", "integer"):
        fail(
            "counts",
            "a real-valued array of class counts",
            f"dtype {n.dtype}",
            "pass counts, such as wce.class_counts(labels)",
            cls=TypeError,
        )
    if n.ndim != 1:
        fail(
            "counts",
            "shape (C,), one count per class",
            f"shape {fmt_shape(n.shape)}",
            "pass one count per class",
        )
    if be.name == "numpy":
        dtype = be.xp.float64
    else:
        dtype = be.xp.float64 if be.dtype_name(n.dtype) == "float64" else be.xp.float32
    n = be.xp.astype(n, dtype)
    if eager(be, n):
        host = be.to_numpy(n)
        if not ((host > 0) & (host < math.inf)).all():
            c = int((~((host > 0) & (host < math.inf))).nonzero()[0][0])
            fail(
                "counts",
                "positive and finite for every class (checked outside jit/compile)",
                f"{host[c]} for class {c}",
                "drop the empty class or give it a count of at least 1",
            )
    xp = be.xp
    if epoch < start_epoch or beta == 0.0:
        return xp.ones_like(n)
    # 1 - beta ** n without cancellation
    effective = -xp.expm1(n * math.log(beta))
    w = (1.0 - beta) / effective
    return w * (int(n.shape[0]) / xp.sum(w))


# ---------------------------------------------------------------------------
# Multi-label and cost-sensitive losses
# ---------------------------------------------------------------------------
def asymmetric_loss(
    logits: Any,
    labels: Any,
    *,
    gamma_pos: float = 0.0,
    gamma_neg: float = 4.0,
    clip: float = 0.05,
    class_weight: Any | None = None,
    sample_weight: Any | None = None,
    label_smoothing: float = 0.0,
    ignore_index: int | None = None,
    axis: int = -1,
    reduction: str = "mean",
    axis_name: str | None = None,
    normalizer: Normalizer | None = None,
) -> Any:
    """Asymmetric loss (ASL) for multi-label classification.

    In short: positives ``(1 - p) ** gamma_pos * (-log p)``, negatives
    ``p_m ** gamma_neg * (-log(1 - p_m))`` with ``p_m = max(p - clip, 0)``.

    Exactly, per element (logit ``z``, target ``t``, ``p = sigmoid(z)``):

    * ``q = (1 - eps) * t + eps / 2`` with ``eps = label_smoothing``;
    * ``L+ = exp(-gamma_pos * softplus(z)) * softplus(-z)``;
    * ``L- = 0`` where ``p <= clip``, else ``exp(gamma_neg * log(p - clip)) *
      (-log(sigmoid(-z) + clip))``, the log taken as a log-add-exp (with
      ``clip = 0``: ``exp(-gamma_neg * softplus(-z)) * softplus(z)``);
    * ``l = q * L+ + (1 - q) * L-`` (for soft targets the mixture of the two
      terms; the paper defines binary targets), ``w = class_weight *
      sample_weight``.

    ``gamma_pos = gamma_neg = clip = 0`` is :func:`wce.sigmoid_cross_entropy`;
    ``gamma_pos = gamma_neg = gamma`` with ``clip = 0`` is the focal loss with
    ``alpha=None`` on binary targets. With ``0 < gamma_neg < 1`` the negative
    term's gradient is continuous (0) where ``p`` crosses ``clip``.

    Args:
        logits: unnormalised scores; shape (N, C), or (N, C, d1, ..., dk) with
            ``axis=1``.
        labels: targets in [0, 1] of the shape of ``logits``.
        gamma_pos: focusing exponent of positives, ``>= 0``.
        gamma_neg: focusing exponent of negatives, ``>= 0``.
        clip: probability margin ``m`` in [0, 1] shifting negatives down.
        class_weight: scalar or shape (C,) along ``axis``: a weight per label.
        sample_weight: of the shape of ``logits`` or of its leading dimensions.
        label_smoothing: ``eps`` in [0, 1].
        ignore_index: target value whose elements are left out.
        axis: the label axis.
        reduction: ``"none"``, ``"sum"``, ``"mean"`` (number of non-ignored
            elements, every label counted) or ``"weighted_mean"``. Ridnik et al.
            sum over labels and samples: ``"sum"``.
        axis_name: JAX only: the mapped axis over which the denominator is summed.
        normalizer: advanced; combines local sums across workers.

    Returns:
        The reduced loss (0-d), or with ``reduction="none"`` the weighted losses of
        the shape of ``logits``.

    Raises:
        ValueError: negative or infinite exponents, ``clip`` or
            ``label_smoothing`` outside [0, 1]; and as
            :func:`wce.sigmoid_cross_entropy`.
        TypeError: non-float logits, boolean or complex weights.

    References:
        Ridnik, Ben-Baruch, Zamir, Noy, Friedman, Protter and Zelnik-Manor (2021).
        Asymmetric Loss For Multi-Label Classification. ICCV 2021.

    Examples:
        >>> import numpy as np
        >>> z = np.array([[2.0, -1.0, 0.5], [-3.0, 1.5, -0.2]])
        >>> t = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        >>> round(float(asymmetric_loss(z, t, reduction="sum")), 6)
        0.433268
    """
    reduction = _checks.check_reduction(reduction)
    gamma_pos = _finite_nonnegative(gamma_pos, "gamma_pos")
    gamma_neg = _finite_nonnegative(gamma_neg, "gamma_neg")
    clip = _checks.check_unit_interval(
        clip, "clip", "0 turns the probability shift off"
    )
    batch = prepare_sigmoid(
        logits,
        labels,
        axis=axis,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )
    be, xp, z = batch.be, batch.be.xp, batch.z
    cw = batch.per_label(class_weight, "class_weight")
    q = batch.smoothed(label_smoothing)
    sp_neg, sp_pos = softplus_pair(be, z)
    zero = xp.zeros_like(z)

    pos = xp.where(q != 0, sp_neg, zero)
    if gamma_pos != 0.0:
        pos = xp.exp(-gamma_pos * sp_pos) * pos
    if clip == 0.0:
        neg = xp.where(q != 1, sp_pos, zero)
        if gamma_neg != 0.0:
            neg = xp.exp(-gamma_neg * sp_neg) * neg
    else:
        # p_m = p - clip > 0 and log(1 - p_m) = log(sigmoid(-z) + clip)
        shifted = xp.exp(-sp_neg) - clip
        on = xp.logical_and(shifted > 0, q != 1)
        one = xp.ones_like(z)
        pm = xp.where(on, shifted, one)
        neg = -_logaddexp(be, -sp_pos, zero + math.log(clip))
        if gamma_neg != 0.0:
            neg = xp.exp(gamma_neg * xp.log(pm)) * neg
        neg = xp.where(on, neg, zero)
    loss = q * pos + (1 - q) * neg
    weight = batch.element_weight(cw, sample_weight)

    return _reduce(batch, loss, weight, reduction, axis_name, normalizer)


def expected_cost_loss(
    logits: Any,
    labels: Any,
    *,
    cost_matrix: Any,
    class_weight: Any | None = None,
    sample_weight: Any | None = None,
    label_smoothing: float = 0.0,
    ignore_index: int | None = None,
    axis: int = -1,
    reduction: str = "mean",
    axis_name: str | None = None,
    normalizer: Normalizer | None = None,
) -> Any:
    """Expected misclassification cost under the predicted distribution.

    In short: ``mean w * sum_j cost_matrix[y, j] * p_j``.

    Exactly, per element with ``p = softmax(logits)`` along ``axis`` and ``q`` the
    (smoothed) target distribution: ``l = sum_i sum_j q_i cost_matrix[i, j] p_j``,
    differentiable in the logits (unlike the cost factor of
    :func:`wce.softmax_cross_entropy`, taken at the argmax);
    ``w = class_weight[y] * sample_weight``. With ``cost_matrix = 1 - I`` it is
    the expected 0-1 error ``1 - p_y``. It is bounded, so it is often mixed with a
    cross-entropy rather than used alone.

    Args:
        logits: unnormalised scores of shape (N, C), or (N, C, d1, ..., dk) with
            ``axis=1``.
        labels: integer class ids of the shape of ``logits`` without ``axis``, or
            floating class probabilities of the shape of ``logits``.
        cost_matrix: shape (C, C), non-negative and finite; ``cost_matrix[i, j]``
            is the cost of predicting ``j`` when the truth is ``i``.
        class_weight: weight per class, shape (C,), picked by the true class.
        sample_weight: weight per element (shape of the labels or leading dims).
        label_smoothing: ``eps`` in [0, 1].
        ignore_index: class id to leave out (integer labels only).
        axis: the class axis of ``logits``.
        reduction: ``"none"``, ``"sum"``, ``"mean"`` (number of non-ignored
            elements) or ``"weighted_mean"`` (sum of their weights ``w``).
        axis_name: JAX only: the mapped axis over which the denominator is summed.
        normalizer: advanced; combines local sums across workers.

    Returns:
        The reduced loss (0-d), or per element with ``reduction="none"``.

    Raises:
        ValueError: ``cost_matrix`` not (C, C) or (outside tracing) negative or
            non-finite; and as :func:`wce.softmax_cross_entropy`.
        TypeError: non-float logits, boolean or complex costs or weights.

    References:
        Elkan (2001). The Foundations of Cost-Sensitive Learning. IJCAI 2001.

    Examples:
        >>> import numpy as np
        >>> logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
        >>> labels = np.array([0, 1])
        >>> cost = np.array([[0.0, 1.0, 1.0], [10.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
        >>> round(float(expected_cost_loss(logits, labels, cost_matrix=cost)), 6)
        0.801854
    """
    reduction = _checks.check_reduction(reduction)
    batch = prepare_softmax(
        logits,
        labels,
        axis=axis,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )
    be, xp, c = batch.be, batch.be.xp, batch.num_classes
    cost = prepare_cost_matrix(be, cost_matrix, c, like=batch.like, dtype=batch.dtype)
    cw = _class_weight(batch, class_weight, axis)

    q = xp.reshape(_smoothed_targets(batch, label_smoothing), (-1, c))
    row = xp.reshape(xp.matmul(q, cost), tuple(batch.x.shape))
    p = xp.exp(log_softmax(be, batch.x))
    loss = xp.sum(row * p, axis=-1)
    weight = batch.element_weight(batch.class_factor(cw, "label", None), sample_weight)

    return _reduce(batch, loss, weight, reduction, axis_name, normalizer)
