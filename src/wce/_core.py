"""The maths shared by every loss, written once for all backends.

Everything here takes a :class:`~wce._backend.Backend` and arrays of that backend.
The public functions in :mod:`wce.losses` and :mod:`wce.longtail` prepare their
inputs with :func:`prepare_softmax` or :func:`prepare_sigmoid`, compute a
per-element loss, and hand it to :func:`reduce`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import _checks
from ._backend import Backend, convert
from ._checks import fail, fmt_shape

# A hook that turns local (numerator, denominator) into the values to divide, for
# exact normalisation across data-parallel workers or micro-batches.
Normalizer = Callable[[Backend, Any, Any], tuple[Any, Any]]


# ---------------------------------------------------------------------------
# Stable building blocks
# ---------------------------------------------------------------------------
def log_softmax(be: Backend, x: Any) -> Any:
    """log softmax over the last axis, to full relative precision.

    The normaliser is written around the top class m of each row,
    ``log sum_k exp(x_k) = x_m + log1p(sum_{k != m} exp(x_k - x_m))``, so
    ``log p_m`` keeps its digits when ``p_m`` is near 1, and huge equal logits give
    exactly ``-log 2``. ``x_m`` keeps its gradient (the choice of m is a constant);
    ``-inf`` entries stay ``-inf`` with gradient 0, a row of ``-inf`` gives
    ``-inf`` everywhere, not NaN, and a single ``+inf`` logit takes probability 1
    (two in one row have no defined softmax and give NaN).
    """
    xp = be.xp
    top = _top_onehot(be, x)
    zero = xp.zeros_like(x)
    m = xp.sum(xp.where(top, x, zero), axis=-1, keepdims=True)
    # a row of -inf has no top class: it is shifted by 0 and stays -inf
    dead = m == -math.inf
    m = xp.where(dead, xp.zeros_like(m), m)
    top = xp.logical_and(top, xp.logical_not(dead))
    # the top class is shifted to exactly 0; a +inf top takes all the mass
    shifted = xp.where(top, zero, x) - xp.where(top, zero, m + zero)
    others = xp.sum(xp.where(top, zero, xp.exp(shifted)), axis=-1, keepdims=True)
    return shifted - xp.log1p(others)


def _top_onehot(be: Backend, x: Any) -> Any:
    """Boolean mask of the first largest entry of each row (last axis)."""
    xp = be.xp
    idx = xp.argmax(be.stop_gradient(x), axis=-1, keepdims=True)
    classes = be.asarray(_arange(int(x.shape[-1])), like=x)
    return idx == xp.astype(classes, idx.dtype)


def _split_sign(be: Backend, z: Any) -> tuple[Any, Any, Any]:
    """(z > 0, max(z, 0), min(z, 0)) with the mask deciding ties at 0."""
    xp = be.xp
    zero = xp.zeros_like(z)
    positive = z > 0
    return positive, xp.where(positive, z, zero), xp.where(positive, zero, z)


def log1p_exp_neg_abs(be: Backend, z: Any) -> Any:
    """log(1 + exp(-|z|)), the shared tail of softplus(z) and softplus(-z).

    Each branch of the ``where`` sees only inputs that keep ``exp`` finite, so
    the unselected branch cannot send NaN into the gradient.
    """
    xp = be.xp
    positive, z_pos, z_neg = _split_sign(be, z)
    return xp.where(positive, xp.log1p(xp.exp(-z_pos)), xp.log1p(xp.exp(z_neg)))


def softplus_pair(be: Backend, z: Any) -> tuple[Any, Any]:
    """(softplus(-z), softplus(z)) = (-log sigmoid(z), -log(1 - sigmoid(z))).

    Each is finite for finite ``z``, exact at ``z = +-inf``, and has the exact
    derivative everywhere, ``z = 0`` included (no subgradient of ``|z|`` or
    ``max``, whose conventions differ between frameworks).
    """
    _, z_pos, z_neg = _split_sign(be, z)
    tail = log1p_exp_neg_abs(be, z)
    return tail - z_neg, z_pos + tail


def sigmoid_terms(be: Backend, z: Any, q: Any, pos_weight: Any | None) -> Any:
    """``P * q * softplus(-z) + (1 - q) * softplus(z)``, with 0 * inf taken as 0.

    A term whose coefficient is exactly 0 is left out, so a saturated logit
    (``z = +-inf``) gives the exact finite loss where there is one.
    """
    xp = be.xp
    neg_log_p, neg_log_not_p = softplus_pair(be, z)
    zero = xp.zeros_like(z)
    # the coefficient of softplus(-z) is P q: zero when either factor is
    coef = q if pos_weight is None else pos_weight * q
    pos = coef * xp.where(coef != 0, neg_log_p, zero)
    neg = (1 - q) * xp.where(q != 1, neg_log_not_p, zero)
    return pos + neg


# ---------------------------------------------------------------------------
# Input preparation
# ---------------------------------------------------------------------------
def cast_logits(be: Backend, logits: Any) -> tuple[Any, Any]:
    """Logits in the compute dtype: half precision goes to float32."""
    kind = be.kind(logits)
    if kind != "floating":
        fail(
            "logits",
            "a floating-point array",
            f"dtype {logits.dtype}",
            "cast the logits to float32",
            cls=TypeError,
        )
    cdt = be.compute_dtype(logits)
    return be.xp.astype(logits, cdt), cdt


def class_axis(logits: Any, axis: Any) -> int:
    """``axis`` normalised for logits that must have a class axis."""
    if logits.ndim < 1:
        fail(
            "logits",
            "an array of rank >= 1 with a class axis",
            "a scalar",
            "pass logits of shape (N, C) or (C,)",
        )
    return _checks.normalize_axis(axis, logits.ndim)


def static_size(logits: Any, axis: int) -> int:
    """The number of classes on ``axis``, which must be known while tracing."""
    size = logits.shape[axis]
    if size is None:
        fail(
            "logits",
            f"an array whose class axis {axis} has a static size",
            f"shape {fmt_shape(logits.shape)}",
            "give the class dimension in the "
            "input signature, e.g. tf.TensorSpec([None, C])",
        )
    return int(size)


def eager(be: Backend, *arrays: Any) -> bool:
    """True when every array is concrete, so data-dependent checks may run."""
    return not any(be.is_traced(a) for a in arrays if a is not None)


def sample_weight_to(
    be: Backend,
    sample_weight: Any,
    elem_shape: tuple[int, ...],
    *,
    like: Any,
    dtype: Any,
) -> Any:
    """``sample_weight`` aligned with the leading dimensions of the elements.

    A weight of shape (N,) for elements of shape (N, H, W) is read as one weight
    per sample: its shape is padded on the right with ones, then broadcast.
    """
    w = _checks.as_weight(be, sample_weight, "sample_weight", like=like, dtype=dtype)
    shape = tuple(w.shape)
    if len(shape) > len(elem_shape):
        fail(
            "sample_weight",
            f"broadcastable to the element shape {fmt_shape(elem_shape)}",
            f"shape {fmt_shape(shape)}",
            "pass one weight per element or per sample",
        )
    padded = shape + (1,) * (len(elem_shape) - len(shape))
    for s, e in zip(padded, elem_shape, strict=True):
        if s not in (1, e) and s is not None and e is not None:
            fail(
                "sample_weight",
                f"broadcastable to the element shape "
                f"{fmt_shape(elem_shape)} (its dimensions align with the leading "
                "ones)",
                f"shape {fmt_shape(shape)}",
                "pass one weight per element or per sample",
            )
    # trailing axes one at a time: works when the batch size is only known at run
    # time (a None dimension under tf.function)
    for _ in range(len(elem_shape) - len(shape)):
        w = be.xp.expand_dims(w, axis=-1)
    return w


def along_axis(be: Backend, w: Any, ndim: int, axis: int) -> Any:
    """A (C,) vector reshaped to broadcast along ``axis`` of a rank-``ndim`` array."""
    if tuple(w.shape) in ((), (1,)):
        return be.xp.reshape(w, ())
    shape = [1] * ndim
    shape[axis] = int(w.shape[0])
    return be.xp.reshape(w, tuple(shape))


@dataclass
class SoftmaxBatch:
    """Softmax inputs, validated, in the compute dtype, with the class axis last."""

    be: Backend
    x: Any  # logits, (..., C)
    labels: Any | None  # integer class ids, (...), or None for probabilities
    targets: Any | None  # probabilities, (..., C), or None for class ids
    valid: Any | None  # bool (...), False where labels == ignore_index
    num_classes: int
    axis: int  # the class axis of the caller's logits, normalised
    dtype: Any
    like: Any  # the caller's logits, for device placement

    @property
    def elem_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[:-1])

    def onehot(self) -> Any:
        """Boolean one-hot of the class ids; all False where ignored."""
        assert self.labels is not None, "one-hot needs class ids"
        xp = self.be.xp
        classes = self.be.asarray(_arange(self.num_classes), like=self.like)
        classes = xp.astype(classes, self.labels.dtype)
        return xp.expand_dims(self.labels, axis=-1) == classes

    def target_distribution(self) -> Any:
        """The unsmoothed target t as floats: one-hot for class ids."""
        if self.targets is not None:
            return self.targets
        return self.be.xp.astype(self.onehot(), self.dtype)

    def cross_entropy(self, logp: Any, label_smoothing: float) -> Any:
        """``-sum_c q_c log p_c`` per element, with q smoothed by ``eps / C``."""
        xp = self.be.xp
        eps = label_smoothing
        zero = xp.zeros_like(logp)
        neg_logp = zero - logp  # 0 - 0 is +0, so a certain prediction gives +0
        if self.targets is None:
            nll = xp.sum(xp.where(self.onehot(), neg_logp, zero), axis=-1)
            if eps == 0.0:
                return nll
            return (1 - eps) * nll + (eps / self.num_classes) * xp.sum(
                neg_logp, axis=-1
            )
        q = self.targets
        if eps != 0.0:
            q = (1 - eps) * q + eps / self.num_classes
        # 0 * log 0 = 0: a masked class with no target mass adds nothing
        return xp.sum(q * xp.where(q > 0, neg_logp, zero), axis=-1)

    def gather_class(self, per_class: Any) -> Any:
        """``per_class[label]`` for class ids, ``sum_c per_class_c t_c`` otherwise."""
        xp = self.be.xp
        if self.targets is None:
            zero = xp.zeros_like(self.x)
            full = per_class + zero
            return xp.sum(xp.where(self.onehot(), full, zero), axis=-1)
        return xp.sum(per_class * self.targets, axis=-1)

    def predicted_onehot(self) -> Any:
        xp = self.be.xp
        pred = xp.argmax(self.be.stop_gradient(self.x), axis=-1)
        classes = self.be.asarray(_arange(self.num_classes), like=self.like)
        classes = xp.astype(classes, pred.dtype)
        return xp.expand_dims(pred, axis=-1) == classes

    def class_factor(
        self, class_weight: Any | None, weight_by: str, cost_matrix: Any | None
    ) -> Any | None:
        """The per-element factor ``a`` from class weights and a cost matrix."""
        xp = self.be.xp
        a = None
        if class_weight is not None:
            if weight_by == "label":
                a = self.gather_class(class_weight)
            else:
                zero = xp.zeros_like(self.x)
                a = xp.sum(
                    xp.where(self.predicted_onehot(), class_weight + zero, zero),
                    axis=-1,
                )
        if cost_matrix is not None:
            c = self.num_classes
            t = xp.reshape(self.target_distribution(), (-1, c))
            # row i of t @ cost: expected cost of predicting each class
            expected = xp.matmul(t, cost_matrix)
            pred = xp.reshape(self.predicted_onehot(), (-1, c))
            cost = xp.sum(xp.where(pred, expected, xp.zeros_like(expected)), axis=-1)
            cost = xp.reshape(cost, self.elem_shape)
            a = cost if a is None else a * cost
        if a is not None:
            a = self.be.stop_gradient(a) if weight_by == "prediction" else a
        return a

    def element_weight(self, factor: Any | None, sample_weight: Any | None) -> Any:
        if sample_weight is None:
            return factor
        sw = sample_weight_to(
            self.be, sample_weight, self.elem_shape, like=self.like, dtype=self.dtype
        )
        return sw if factor is None else factor * sw


def _arange(n: int) -> Any:
    import numpy as np

    return np.arange(n, dtype=np.int64)


def prepare_softmax(
    logits: Any,
    labels: Any,
    *,
    axis: int,
    ignore_index: Any,
    label_smoothing: float = 0.0,
) -> SoftmaxBatch:
    """Validate and lay out softmax inputs (see :class:`SoftmaxBatch`)."""
    be, logits = convert(logits)
    xp = be.xp
    ax = class_axis(logits, axis)
    ignore = _checks.check_ignore_index(ignore_index)
    _checks.check_unit_interval(label_smoothing, "label_smoothing")
    x, cdt = cast_logits(be, logits)
    if ax != x.ndim - 1:
        x = xp.moveaxis(x, ax, -1)
    num_classes = static_size(logits, ax)
    lab = be.asarray(labels, like=logits)
    kind = be.kind(lab)
    class_shape = tuple(logits.shape[:ax]) + tuple(logits.shape[ax + 1 :])
    if kind == "integer":
        if tuple(lab.shape) != class_shape:
            fail(
                "labels",
                f"class ids of shape {fmt_shape(class_shape)} (logits "
                f"without axis {axis}), or probabilities of shape "
                f"{fmt_shape(logits.shape)}",
                f"shape {fmt_shape(lab.shape)}",
                "match the labels to the logits, or set axis= to the class axis",
            )
        valid = None if ignore is None else lab != ignore
        if eager(be, logits, lab):
            _check_class_ids(be, lab, num_classes, ignore, axis)
        return SoftmaxBatch(be, x, lab, None, valid, num_classes, ax, cdt, logits)
    if kind != "floating":
        fail(
            "labels",
            "integer class ids or floating probabilities",
            f"dtype {lab.dtype}",
            "cast boolean one-hot labels to float",
            cls=TypeError,
        )
    if ignore is not None:
        fail(
            "ignore_index",
            "None with probability labels",
            repr(ignore),
            "pass integer class ids, or give ignored elements sample_weight 0 "
            "(note: 'mean' still counts them)",
        )
    if tuple(lab.shape) != tuple(logits.shape):
        fail(
            "labels",
            f"probabilities of the logits' shape "
            f"{fmt_shape(logits.shape)}, or integer class ids of shape "
            f"{fmt_shape(class_shape)}",
            f"shape {fmt_shape(lab.shape)} with dtype {lab.dtype}",
            "cast class ids to an integer dtype, or match the shapes",
        )
    t = xp.astype(lab, cdt)
    if ax != t.ndim - 1:
        t = xp.moveaxis(t, ax, -1)
    if eager(be, logits, lab):
        host = be.to_numpy(t)
        if host.size and not ((host >= 0) & (host <= 1)).all():
            fail(
                "labels",
                "probabilities in [0, 1] (checked outside jit/compile)",
                f"an entry equal to {host[~((host >= 0) & (host <= 1))][0]}",
                "pass class probabilities, or integer class ids",
            )
    return SoftmaxBatch(be, x, None, t, None, num_classes, ax, cdt, logits)


def _check_class_ids(
    be: Backend, labels: Any, num_classes: int, ignore: int | None, axis: int
) -> None:
    import numpy as np

    host = be.to_numpy(labels)
    bad = (host < 0) | (host >= num_classes)
    if ignore is not None:
        bad &= host != ignore
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        fail(
            "labels",
            f"class ids in [0, {num_classes}) for logits with "
            f"{num_classes} classes on axis {axis}"
            + (f" or ignore_index={ignore}" if ignore is not None else ""),
            f"{host[where]} at index {where} (checked outside jit/compile)",
            "fix the labels, or pass ignore_index= for padding values",
        )


def prepare_class_vector(
    be: Backend,
    value: Any | None,
    argument: str,
    *,
    num_classes: int,
    axis: int,
    allow_scalar: bool,
    like: Any,
    dtype: Any,
) -> Any:
    """A per-class weight, checked against the class axis, in the compute dtype
    (None stays None)."""
    if value is None:
        return None
    w = _checks.as_weight(be, value, argument, like=like, dtype=dtype)
    _checks.check_class_vector(
        w, argument, num_classes, axis, allow_scalar=allow_scalar
    )
    return w


def prepare_cost_matrix(
    be: Backend,
    value: Any | None,
    num_classes: int,
    *,
    like: Any,
    dtype: Any,
) -> Any | None:
    if value is None:
        return None
    m = _checks.as_weight(be, value, "cost_matrix", like=like, dtype=dtype)
    if tuple(m.shape) != (num_classes, num_classes):
        fail(
            "cost_matrix",
            f"shape ({num_classes}, {num_classes}), "
            "cost_matrix[i, j] the cost of predicting j when the truth is i",
            f"shape {fmt_shape(m.shape)}",
            "pass a square matrix over the classes",
        )
    return m


def check_weight_by(weight_by: Any) -> str:
    if weight_by not in ("label", "prediction"):
        fail(
            "weight_by",
            "'label' or 'prediction'",
            repr(weight_by),
            "'label' weighs each element by its true class",
        )
    return str(weight_by)


@dataclass
class SigmoidBatch:
    """Sigmoid inputs, validated, in the compute dtype, in the caller's layout."""

    be: Backend
    z: Any
    targets: Any  # in [0, 1], 0 where ignored
    valid: Any | None
    num_labels: int
    axis: int
    dtype: Any
    like: Any

    def smoothed(self, label_smoothing: float) -> Any:
        eps = label_smoothing
        return self.targets if eps == 0.0 else (1 - eps) * self.targets + eps / 2

    def per_label(self, value: Any | None, argument: str) -> Any | None:
        """A scalar or (C,) weight broadcast along the label axis."""
        if value is None:
            return None
        w = _checks.as_weight(
            self.be, value, argument, like=self.like, dtype=self.dtype
        )
        _checks.check_class_vector(
            w, argument, self.num_labels, self.axis, allow_scalar=True
        )
        return along_axis(self.be, w, self.z.ndim, self.axis)

    def element_weight(self, factor: Any | None, sample_weight: Any | None) -> Any:
        if sample_weight is None:
            return factor
        sw = sample_weight_to(
            self.be,
            sample_weight,
            tuple(self.z.shape),
            like=self.like,
            dtype=self.dtype,
        )
        return sw if factor is None else factor * sw


def prepare_sigmoid(
    logits: Any,
    labels: Any,
    *,
    axis: int,
    ignore_index: Any,
    label_smoothing: float = 0.0,
    check_range: bool = True,
) -> SigmoidBatch:
    be, logits = convert(logits)
    xp = be.xp
    if logits.ndim < 1:
        fail(
            "logits",
            "an array of rank >= 1",
            "a scalar",
            "pass logits of shape (N,) or (N, C)",
        )
    ax = _checks.normalize_axis(axis, logits.ndim)
    ignore = _checks.check_ignore_index(ignore_index)
    _checks.check_unit_interval(label_smoothing, "label_smoothing")
    z, cdt = cast_logits(be, logits)
    lab = be.asarray(labels, like=logits)
    if be.kind(lab) == "complex":
        fail(
            "labels",
            "real targets in [0, 1]",
            f"dtype {lab.dtype}",
            "pass float targets",
            cls=TypeError,
        )
    if tuple(lab.shape) != tuple(logits.shape):
        fail(
            "labels",
            f"targets of the logits' shape {fmt_shape(logits.shape)}",
            f"shape {fmt_shape(lab.shape)}",
            "pass one target per logit",
        )
    t = xp.astype(lab, cdt)
    valid = None if ignore is None else t != ignore
    if check_range and eager(be, logits, lab):
        host = be.to_numpy(t)
        bad = ~((host >= 0) & (host <= 1))
        if ignore is not None:
            bad &= host != ignore
        if bad.any():
            fail(
                "labels",
                "targets in [0, 1]"
                + (f" or ignore_index={ignore}" if ignore is not None else "")
                + " (checked outside jit/compile)",
                f"an entry equal to {host[bad][0]}",
                "pass binary or soft targets, or set ignore_index=",
            )
    if valid is not None:
        t = xp.where(valid, t, xp.zeros_like(t))
    return SigmoidBatch(be, z, t, valid, static_size(logits, ax), ax, cdt, logits)


# ---------------------------------------------------------------------------
# Reduction
# ---------------------------------------------------------------------------
def keep_mask(be: Backend, weight: Any | None, valid: Any | None) -> Any | None:
    """Where an element counts: not ignored and not weighted 0 (None: everywhere)."""
    keep = valid
    if weight is not None:
        nonzero = weight != 0
        keep = nonzero if keep is None else be.xp.logical_and(keep, nonzero)
    return keep


def without_dropped(
    be: Backend, x: Any, weight: Any | None, valid: Any | None, *, rows: bool
) -> Any:
    """``x`` with 0 in place of the elements that carry no weight (ignored, or
    weighted 0); ``rows``: ``x`` has a trailing class axis the mask spreads over.

    Their loss is dropped by :func:`reduce`; taking it from 0 instead of the
    caller's values makes their gradient exactly 0 even where those values are not
    finite (0 times the NaN of an undefined softmax would otherwise leak into it).
    """
    keep = keep_mask(be, weight, valid)
    if keep is None:
        return x
    xp = be.xp
    if rows:
        keep = xp.expand_dims(keep, axis=-1)
    return xp.where(keep, x, xp.zeros_like(x))


def reduce(
    be: Backend,
    loss: Any,
    weight: Any | None,
    valid: Any | None,
    reduction: str,
    *,
    axis_name: str | None = None,
    normalizer: Normalizer | None = None,
) -> Any:
    """Weigh, mask and reduce a per-element loss.

    ``"none"`` gives ``w * l`` (0 where ignored or weighted 0); ``"sum"`` its sum;
    ``"mean"`` the sum over the counted elements divided by their number;
    ``"weighted_mean"`` divided by the sum of their weights. An empty denominator
    gives 0 with gradient 0. ``axis_name`` (JAX) or ``normalizer`` make the
    denominator global across data-parallel workers (:mod:`wce.distributed`).
    """
    xp = be.xp
    if axis_name is not None and normalizer is None:
        from .distributed import axis_normalizer

        normalizer = axis_normalizer(axis_name)
    wl = loss if weight is None else weight * loss
    keep = keep_mask(be, weight, valid)
    zero = xp.zeros_like(wl)
    if keep is not None:
        # a weight of 0 drops the element even where its loss is inf
        wl = xp.where(keep, wl, zero)
    if reduction == "none":
        return wl
    num = xp.sum(wl)
    if reduction == "sum":
        if normalizer is not None:
            num, _ = normalizer(be, num, None)
        return num
    if reduction == "mean":
        if valid is None:
            den = xp.sum(xp.ones_like(wl))
        else:
            den = xp.sum(xp.astype(valid, wl.dtype) + zero)
    else:
        w = xp.ones_like(wl) if weight is None else weight + zero
        if valid is not None:
            w = xp.where(valid, w, zero)
        den = xp.sum(w)
    if normalizer is not None:
        num, den = normalizer(be, num, den)
    safe = xp.where(den > 0, den, xp.ones_like(den))
    return num / safe


def finish(be: Backend, out: Any) -> Any:
    """NumPy reductions give NumPy scalars; return 0-d arrays like the others."""
    if be.name == "numpy":
        import numpy as np

        return np.asarray(out)
    return out
