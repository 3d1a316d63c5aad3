"""Weighted softmax and sigmoid cross-entropy on every backend.

Both losses share one vocabulary (see the README's reduction table):

* ``class_weight`` weighs each element by its class; ``sample_weight`` by the
  element itself. Their product is the element weight ``w``.
* ``reduction`` names its denominator: ``"mean"`` divides the weighted sum by the
  number of counted (non-ignored) elements, ``"weighted_mean"`` by the sum of their
  weights, ``"sum"`` by nothing, and ``"none"`` returns ``w * l`` per element.
* An empty denominator (every element ignored, or every weight 0) gives 0 with a
  zero gradient, never NaN.

Checked always, also under ``jax.jit``, ``torch.compile`` and ``tf.function``:
shapes, dtypes, keyword values. Checked only on concrete arrays (skipped while
tracing, where a bad value cannot raise): labels in range, weights non-negative
and finite, probability labels in [0, 1]. Under tracing an out-of-range class id
matches no class and contributes a loss of 0.
"""

from __future__ import annotations

from typing import Any

from . import _checks, _fused
from ._core import (
    Normalizer,
    check_weight_by,
    finish,
    log_softmax,
    prepare_class_vector,
    prepare_cost_matrix,
    prepare_sigmoid,
    prepare_softmax,
    reduce,
    sigmoid_terms,
    without_dropped,
)

__all__ = ["sigmoid_cross_entropy", "softmax_cross_entropy"]


def softmax_cross_entropy(
    logits: Any,
    labels: Any,
    *,
    class_weight: Any | None = None,
    weight_by: str = "label",
    cost_matrix: Any | None = None,
    sample_weight: Any | None = None,
    label_smoothing: float = 0.0,
    ignore_index: int | None = None,
    axis: int = -1,
    reduction: str = "mean",
    axis_name: str | None = None,
    normalizer: Normalizer | None = None,
    inplace_backward: bool = False,
) -> Any:
    """Weighted softmax cross-entropy for single-label classification.

    In short: ``mean_i w_i * (-sum_c q_ic log softmax(logits_i)_c)``.

    Exactly, per element ``i`` with ``p = softmax(logits_i)`` along ``axis``:

    * ``t`` is the one-hot of the class id, or the given probabilities; the target
      is smoothed to ``q = (1 - eps) * t + eps / C`` (``eps = label_smoothing``).
    * ``l_i = -sum_c q_c log p_c``, in log space; ``0 * log 0`` counts as 0, so a
      ``-inf`` logit masks its class (no loss, zero gradient) unless smoothing puts
      target mass on it, in which case the loss is ``inf`` as the maths says.
    * ``a_i = sum_c class_weight_c * t_c`` with ``weight_by="label"`` (the
      unsmoothed target, so class ids and their one-hot give the same loss), or
      ``class_weight[argmax logits_i]`` with ``weight_by="prediction"``. A
      ``cost_matrix`` multiplies it by ``sum_j t_j cost_matrix[j, argmax logits_i]``.
      Factors taken from the prediction are constants for autodiff.
    * ``w_i = a_i * sample_weight_i``; the weight multiplies the whole smoothed
      loss of the element, so smoothing keeps its optimum at ``q``.

    Args:
        logits: unnormalised scores of shape (N, C), or (N, C, d1, ..., dk) with
            ``axis=1``; any floating dtype (half precision is computed in float32).
        labels: integer class ids of the shape of ``logits`` without ``axis``, or
            floating class probabilities of the shape of ``logits``. The dtype
            decides which. Probabilities are checked to lie in [0, 1] but not to
            sum to 1 (as in TensorFlow and PyTorch); the loss is linear in them.
        class_weight: weight per class, shape (C,).
        weight_by: ``"label"`` or ``"prediction"``: which class picks the weight.
        cost_matrix: shape (C, C); ``cost_matrix[i, j]`` prices predicting ``j``
            when the truth is ``i``.
        sample_weight: weight per element, of the shape of the labels or of its
            leading dimensions (a (N,) weight for (N, H, W) class ids weighs each
            sample); scalars broadcast.
        label_smoothing: ``eps`` in [0, 1].
        ignore_index: class id whose elements get loss 0, weight 0, gradient 0 and
            are not counted. Only with integer labels.
        axis: the class axis of ``logits``.
        reduction: ``"none"``, ``"sum"``, ``"mean"`` (divide by the number of
            non-ignored elements) or ``"weighted_mean"`` (divide by the sum of their
            weights ``w``).
        axis_name: JAX only: inside ``shard_map`` or ``pmap``, the mapped axis over
            which the denominator of ``"mean"`` and ``"weighted_mean"`` is summed
            (see :mod:`wce.distributed`).
        normalizer: advanced; combines local sums across workers (see
            :mod:`wce.distributed`).
        inplace_backward: PyTorch only, a memory hint: the fused kernel writes
            the gradient over the logits' buffer instead of a new one. Unsafe
            when the logits are needed afterwards or saved by another operation
            (see docs/torch-fast-path.md); ignored where the fused path does not
            apply (other backends, ``torch.compile``).

    Returns:
        The reduced loss (a 0-d array), or with ``reduction="none"`` the weighted
        per-element losses of the shape of the labels. Same backend and device as
        ``logits``; dtype float32, or float64 for float64 logits.

    Raises:
        ValueError: shapes that do not fit (``class_weight`` not (C,), ``cost_matrix``
            not (C, C), labels not matching the logits), unknown ``reduction`` or
            ``weight_by``, ``label_smoothing`` outside [0, 1], ``ignore_index`` with
            probability labels; and outside tracing: class ids out of range,
            negative or non-finite weights, probabilities outside [0, 1].
        TypeError: boolean or complex weights, non-float logits.

    Examples:
        >>> import numpy as np
        >>> logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]])
        >>> labels = np.array([0, 1])
        >>> float(softmax_cross_entropy(logits, labels))
        1.5754...
        >>> float(softmax_cross_entropy(logits, labels, class_weight=[1.0, 2.0, 1.0],
        ...                             reduction="weighted_mean"))
        2.0201...
    """
    fast = _fused.dispatch("softmax", locals())
    if fast is not NotImplemented:
        return fast
    reduction = _checks.check_reduction(reduction)
    weight_by = check_weight_by(weight_by)
    batch = prepare_softmax(
        logits,
        labels,
        axis=axis,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )
    be, like, cdt, c = batch.be, batch.like, batch.dtype, batch.num_classes
    cw = prepare_class_vector(
        be,
        class_weight,
        "class_weight",
        num_classes=c,
        axis=batch.axis,
        allow_scalar=False,
        like=like,
        dtype=cdt,
    )
    cost = prepare_cost_matrix(be, cost_matrix, c, like=like, dtype=cdt)

    factor = batch.class_factor(cw, weight_by, cost)
    weight = batch.element_weight(factor, sample_weight)
    x = without_dropped(be, batch.x, weight, batch.valid, rows=True)
    loss = batch.cross_entropy(log_softmax(be, x), label_smoothing)

    out = reduce(
        be,
        loss,
        weight,
        batch.valid,
        reduction,
        axis_name=axis_name,
        normalizer=normalizer,
    )
    return finish(be, out)


def sigmoid_cross_entropy(
    logits: Any,
    labels: Any,
    *,
    pos_weight: Any | None = None,
    class_weight: Any | None = None,
    sample_weight: Any | None = None,
    label_smoothing: float = 0.0,
    ignore_index: int | None = None,
    axis: int = -1,
    reduction: str = "mean",
    axis_name: str | None = None,
    normalizer: Normalizer | None = None,
    inplace_backward: bool = False,
) -> Any:
    """Weighted sigmoid (binary) cross-entropy for binary and multi-label tasks.

    In short: ``mean w * (P q softplus(-z) + (1 - q) softplus(z))``.

    Exactly, per element (each logit ``z`` with its target ``t``):

    * ``q = (1 - eps) * t + eps / 2`` with ``eps = label_smoothing``;
    * ``l = P * q * softplus(-z) + (1 - q) * softplus(z)``, where
      ``softplus(-z) = -log sigmoid(z)`` and ``P = pos_weight`` weighs the positive
      term only (TensorFlow's ``weighted_cross_entropy_with_logits`` and PyTorch's
      ``pos_weight``). Finite for every finite ``z``, exact at ``z = +-inf``;
    * ``w = class_weight * sample_weight``; ``class_weight`` weighs both terms.

    Args:
        logits: unnormalised scores; shape (N,) for binary, (N, C) for C labels, or
            (N, C, d1, ..., dk) with ``axis=1``.
        labels: targets in [0, 1] of the shape of ``logits`` (integer or boolean
            multi-hot labels are cast).
        pos_weight: scalar, or shape (C,) along ``axis``: the weight of positives
            per label, typically ``negatives / positives`` (:func:`wce.pos_weight`).
            Any other length raises; it never broadcasts along another axis. For
            (N,) logits of one binary label pass a scalar: a vector is read along
            the only axis, one weight per element.
        class_weight: scalar or shape (C,) along ``axis``: a weight per label.
        sample_weight: of the shape of ``logits`` or of its leading dimensions (a
            (N,) weight for (N, C) logits weighs every label of a sample).
        label_smoothing: ``eps`` in [0, 1].
        ignore_index: target value (such as -100) whose elements get loss 0,
            weight 0, gradient 0 and are not counted.
        axis: the label axis, along which ``pos_weight`` and ``class_weight`` lie.
        reduction: ``"none"``, ``"sum"``, ``"mean"`` (divide by the number of
            non-ignored elements, every label of every sample counted) or
            ``"weighted_mean"`` (divide by the sum of their weights ``w``).
        axis_name: JAX only: the mapped axis over which the denominator is summed
            (see :mod:`wce.distributed`).
        normalizer: advanced; combines local sums across workers.
        inplace_backward: PyTorch only: the gradient overwrites the logits'
            buffer (see ``softmax_cross_entropy``).

    Returns:
        The reduced loss (0-d), or with ``reduction="none"`` the weighted losses of
        the shape of ``logits``.

    Raises:
        ValueError: ``pos_weight`` or ``class_weight`` not scalar or (C,), labels of
            another shape, unknown ``reduction``, ``label_smoothing`` outside
            [0, 1]; outside tracing: targets outside [0, 1], negative weights.
        TypeError: boolean or complex weights, non-float logits.

    Examples:
        >>> import numpy as np
        >>> z = np.array([[1.5, -0.3], [-2.0, 0.8]])
        >>> t = np.array([[1.0, 0.0], [0.0, 1.0]])
        >>> float(sigmoid_cross_entropy(z, t, pos_weight=[3.0, 1.0]))
        0.4141...
    """
    fast = _fused.dispatch("sigmoid", locals())
    if fast is not NotImplemented:
        return fast
    reduction = _checks.check_reduction(reduction)
    batch = prepare_sigmoid(
        logits,
        labels,
        axis=axis,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
    )
    be = batch.be
    pw = batch.per_label(pos_weight, "pos_weight")
    cw = batch.per_label(class_weight, "class_weight")

    weight = batch.element_weight(cw, sample_weight)
    z = without_dropped(be, batch.z, weight, batch.valid, rows=False)
    loss = sigmoid_terms(be, z, batch.smoothed(label_smoothing), pw)

    out = reduce(
        be,
        loss,
        weight,
        batch.valid,
        reduction,
        axis_name=axis_name,
        normalizer=normalizer,
    )
    return finish(be, out)
