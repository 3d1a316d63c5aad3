"""Keras 3 losses for the wce functions, for ``model.compile(loss=...)``.

Each class is a ``keras.losses.Loss`` that takes the keywords of its function once
and returns exactly the function's value, on the TensorFlow and JAX backends (the
arrays Keras hands over are passed to wce as they are). They are registered as
``wce>ClassName``, so a saved ``.keras`` model reloads with the same loss
configuration once ``wce.keras`` is imported.

What differs from Keras's own losses:

* The model outputs logits (no final softmax or sigmoid layer).
* ``reduction`` takes wce's names: ``"mean"`` (the default; Keras's
  ``"sum_over_batch_size"``, but ignored elements are not counted),
  ``"weighted_mean"``, ``"sum"`` and ``"none"``. Keras's reduction machinery is
  bypassed: ``__call__`` is overridden so these semantics hold exactly.
* Keras's ``sample_weight`` (from ``fit(sample_weight=...)`` or
  ``fit(class_weight=...)``) is passed on as wce's ``sample_weight``: one weight per
  sample (or per element) that multiplies ``class_weight``; with ``"mean"`` it does
  not change the denominator, with ``"weighted_mean"`` it does.
* Labels: for the softmax losses, integer class ids of the logits' shape without
  the class axis (a trailing size-1 axis, as in ``(N, 1)`` or ``(N, H, W, 1)``, is
  squeezed; floating class ids are cast to integers), or one-hot / probability
  targets of the logits' shape. For the sigmoid losses, targets of the logits'
  shape (``(N,)`` targets for ``(N, 1)`` logits are expanded).

``fit(class_weight=...)`` cannot weigh multi-label targets (Keras collapses them
with an argmax) or dense segmentation masks; pass ``class_weight`` (and
``pos_weight``) to these losses instead, with ``ignore_index`` for void pixels.

Not supported: Keras masks attached to the predictions (``_keras_mask``) are not
applied; use ``ignore_index`` or a zero ``sample_weight``.

Examples:
    >>> import numpy as np
    >>> from wce.keras import SoftmaxCrossEntropy
    >>> loss = SoftmaxCrossEntropy(class_weight=[1.0, 3.0], reduction="weighted_mean")
    >>> logits = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype="float32")
    >>> round(float(loss(np.array([[0], [1], [1]]), logits)), 4)
    0.4495
    >>> loss.get_config()["class_weight"]
    [1.0, 3.0]
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
from keras import ops

from . import _checks
from ._core import check_weight_by
from .longtail import (
    asymmetric_loss,
    expected_cost_loss,
    ldam_loss,
    logit_adjusted_cross_entropy,
    sigmoid_focal_loss,
    softmax_focal_loss,
)
from .losses import sigmoid_cross_entropy, softmax_cross_entropy

__all__ = [
    "AsymmetricLoss",
    "ExpectedCostLoss",
    "LDAMLoss",
    "LogitAdjustedCrossEntropy",
    "SigmoidCrossEntropy",
    "SigmoidFocalLoss",
    "SoftmaxCrossEntropy",
    "SoftmaxFocalLoss",
]


def _as_array(value: Any, argument: str) -> np.ndarray | float | None:
    """A per-class array as float32 NumPy (a Python float stays a float)."""
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    arr = np.asarray(
        keras.ops.convert_to_numpy(value)
        if not isinstance(value, (list, tuple, np.ndarray))
        else value
    )
    if arr.dtype == np.bool_ or np.iscomplexobj(arr):
        _checks.fail(
            argument,
            "a real-valued array",
            f"dtype {arr.dtype}",
            "cast it to float",
            cls=TypeError,
        )
    return arr.astype(np.float32)


def _to_config(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value


def _number(value: Any, argument: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        _checks.fail(
            argument, "a float", repr(value), "pass a Python float", cls=TypeError
        )
    return float(value)


def _common(
    label_smoothing: float, ignore_index: int | None, axis: int
) -> dict[str, Any]:
    """The keywords every loss shares, checked once at construction."""
    return {
        "label_smoothing": _checks.check_unit_interval(
            label_smoothing, "label_smoothing"
        ),
        "ignore_index": _checks.check_ignore_index(ignore_index),
        "axis": int(axis),
    }


def _is_integer(x: Any) -> bool:
    return "int" in keras.backend.standardize_dtype(x.dtype)


class _Loss(keras.losses.Loss):
    """Shared machinery: wce keywords, labels, sample weights, config."""

    _function: Callable[..., Any]
    _softmax: bool = True

    def __init__(
        self,
        *,
        arrays: dict[str, Any],
        options: dict[str, Any],
        reduction: str,
        name: str | None,
        dtype: Any,
    ) -> None:
        reduction = _checks.check_reduction(reduction)
        super().__init__(name=name, reduction="none", dtype=dtype)
        # wce's reduction, applied by __call__ (Keras's own is bypassed)
        self.reduction = reduction
        self._arrays = {k: _as_array(v, k) for k, v in arrays.items()}
        self._options = dict(options)

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"name": self.name, "reduction": self.reduction}
        config.update({k: _to_config(v) for k, v in self._arrays.items()})
        config.update(self._options)
        return config

    def __call__(
        self, y_true: Any, y_pred: Any, sample_weight: Any | None = None
    ) -> Any:
        """The wce loss with this object's reduction (Keras's is not applied)."""
        return self._compute(y_true, y_pred, sample_weight, self.reduction)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        """The weighted per-element losses (``reduction="none"``)."""
        return self._compute(y_true, y_pred, None, "none")

    def _labels(self, y_true: Any, y_pred: Any) -> Any:
        rank = len(y_pred.shape)
        ax = int(self._options["axis"]) % rank
        if self._softmax:
            if (
                len(y_true.shape) == rank
                and y_true.shape[ax] == 1
                and y_pred.shape[ax] != 1
            ):
                y_true = ops.squeeze(y_true, axis=ax)
            if len(y_true.shape) == rank - 1:
                return y_true if _is_integer(y_true) else ops.cast(y_true, "int32")
            return ops.cast(y_true, "float32")
        if len(y_true.shape) == rank - 1 and y_pred.shape[ax] == 1:
            y_true = ops.expand_dims(y_true, ax)
        return ops.cast(y_true, "float32")

    def _sample_weight(self, sample_weight: Any, y_pred: Any) -> Any:
        if sample_weight is None:
            return None
        sw = ops.convert_to_tensor(sample_weight, dtype="float32")
        elem_rank = len(y_pred.shape) - (1 if self._softmax else 0)
        while len(sw.shape) > elem_rank and sw.shape[-1] == 1:
            sw = ops.squeeze(sw, axis=-1)
        return sw

    def _compute(
        self, y_true: Any, y_pred: Any, sample_weight: Any, reduction: str
    ) -> Any:
        y_pred = ops.convert_to_tensor(y_pred)
        labels = self._labels(ops.convert_to_tensor(y_true), y_pred)
        sw = self._sample_weight(sample_weight, y_pred)
        kwargs = dict(self._options)
        kwargs.update(self._arrays)
        fn = type(self)._function
        return fn(y_pred, labels, sample_weight=sw, reduction=reduction, **kwargs)


@keras.saving.register_keras_serializable(package="wce")
class SoftmaxCrossEntropy(_Loss):
    """Keras loss for :func:`wce.softmax_cross_entropy` (logits in, one label each).

    Args:
        class_weight: shape (C,), one weight per class.
        weight_by: ``"label"`` or ``"prediction"``.
        cost_matrix: shape (C, C).
        label_smoothing: ``eps`` in [0, 1].
        ignore_index: label value left out (loss 0, not counted), e.g. 255 for
            void pixels of a segmentation mask.
        axis: the class axis (``-1``, Keras's channels-last layout).
        reduction: ``"none"``, ``"sum"``, ``"mean"`` or ``"weighted_mean"``.
        name: the loss's name.
        dtype: Keras's loss dtype (wce computes in float32 whatever it is).
    """

    _function = staticmethod(softmax_cross_entropy)

    def __init__(
        self,
        *,
        class_weight: Any | None = None,
        weight_by: str = "label",
        cost_matrix: Any | None = None,
        label_smoothing: float = 0.0,
        ignore_index: int | None = None,
        axis: int = -1,
        reduction: str = "mean",
        name: str | None = "softmax_cross_entropy",
        dtype: Any = None,
    ) -> None:
        super().__init__(
            arrays={"class_weight": class_weight, "cost_matrix": cost_matrix},
            options={
                "weight_by": check_weight_by(weight_by),
                **_common(label_smoothing, ignore_index, axis),
            },
            reduction=reduction,
            name=name,
            dtype=dtype,
        )


@keras.saving.register_keras_serializable(package="wce")
class SigmoidCrossEntropy(_Loss):
    """Keras loss for :func:`wce.sigmoid_cross_entropy` (binary and multi-label).

    Args:
        pos_weight: scalar or shape (C,): weight of the positives per label.
        class_weight: scalar or shape (C,): weight per label.
        label_smoothing: ``eps`` in [0, 1].
        ignore_index: target value left out (loss 0, not counted).
        axis: the label axis.
        reduction: ``"none"``, ``"sum"``, ``"mean"`` or ``"weighted_mean"``.
        name: the loss's name.
        dtype: Keras's loss dtype (wce computes in float32 whatever it is).
    """

    _function = staticmethod(sigmoid_cross_entropy)
    _softmax = False

    def __init__(
        self,
        *,
        pos_weight: Any | None = None,
        class_weight: Any | None = None,
        label_smoothing: float = 0.0,
        ignore_index: int | None = None,
        axis: int = -1,
        reduction: str = "mean",
        name: str | None = "sigmoid_cross_entropy",
        dtype: Any = None,
    ) -> None:
        super().__init__(
            arrays={"pos_weight": pos_weight, "class_weight": class_weight},
            options=_common(label_smoothing, ignore_index, axis),
            reduction=reduction,
            name=name,
            dtype=dtype,
        )


@keras.saving.register_keras_serializable(package="wce")
class SoftmaxFocalLoss(_Loss):
    """Keras loss for :func:`wce.longtail.softmax_focal_loss`.

    Args:
        gamma: focusing exponent ``>= 0``.
        class_weight: shape (C,) (Lin et al.'s per-class ``alpha``).
        label_smoothing: ``eps`` in [0, 1].
        ignore_index: label value left out (loss 0, not counted).
        axis: the class axis.
        reduction: ``"none"``, ``"sum"``, ``"mean"`` or ``"weighted_mean"``.
        name: the loss's name.
        dtype: Keras's loss dtype (wce computes in float32 whatever it is).
    """

    _function = staticmethod(softmax_focal_loss)

    def __init__(
        self,
        *,
        gamma: float = 2.0,
        class_weight: Any | None = None,
        label_smoothing: float = 0.0,
        ignore_index: int | None = None,
        axis: int = -1,
        reduction: str = "mean",
        name: str | None = "softmax_focal_loss",
        dtype: Any = None,
    ) -> None:
        super().__init__(
            arrays={"class_weight": class_weight},
            options={
                "gamma": _number(gamma, "gamma"),
                **_common(label_smoothing, ignore_index, axis),
            },
            reduction=reduction,
            name=name,
            dtype=dtype,
        )


@keras.saving.register_keras_serializable(package="wce")
class SigmoidFocalLoss(_Loss):
    """Keras loss for :func:`wce.longtail.sigmoid_focal_loss`.

    Args:
        gamma: focusing exponent ``>= 0``.
        alpha: weight of positives in [0, 1] (negatives ``1 - alpha``), or None.
        class_weight: scalar or shape (C,): weight per label.
        label_smoothing: ``eps`` in [0, 1].
        ignore_index: target value left out (loss 0, not counted).
        axis: the label axis.
        reduction: ``"none"``, ``"sum"``, ``"mean"`` or ``"weighted_mean"``.
        name: the loss's name.
        dtype: Keras's loss dtype (wce computes in float32 whatever it is).
    """

    _function = staticmethod(sigmoid_focal_loss)
    _softmax = False

    def __init__(
        self,
        *,
        gamma: float = 2.0,
        alpha: float | None = None,
        class_weight: Any | None = None,
        label_smoothing: float = 0.0,
        ignore_index: int | None = None,
        axis: int = -1,
        reduction: str = "mean",
        name: str | None = "sigmoid_focal_loss",
        dtype: Any = None,
    ) -> None:
        super().__init__(
            arrays={"class_weight": class_weight},
            options={
                "gamma": _number(gamma, "gamma"),
                "alpha": None if alpha is None else _number(alpha, "alpha"),
                **_common(label_smoothing, ignore_index, axis),
            },
            reduction=reduction,
            name=name,
            dtype=dtype,
        )


@keras.saving.register_keras_serializable(package="wce")
class LogitAdjustedCrossEntropy(_Loss):
    """Keras loss for :func:`wce.longtail.logit_adjusted_cross_entropy`.

    Args:
        prior: class frequencies or counts, shape (C,) (required).
        tau: temperature ``>= 0`` of the adjustment (1 is the balanced softmax).
        class_weight: shape (C,).
        label_smoothing: ``eps`` in [0, 1].
        ignore_index: label value left out (loss 0, not counted).
        axis: the class axis.
        reduction: ``"none"``, ``"sum"``, ``"mean"`` or ``"weighted_mean"``.
        name: the loss's name.
        dtype: Keras's loss dtype (wce computes in float32 whatever it is).
    """

    _function = staticmethod(logit_adjusted_cross_entropy)

    def __init__(
        self,
        *,
        prior: Any,
        tau: float = 1.0,
        class_weight: Any | None = None,
        label_smoothing: float = 0.0,
        ignore_index: int | None = None,
        axis: int = -1,
        reduction: str = "mean",
        name: str | None = "logit_adjusted_cross_entropy",
        dtype: Any = None,
    ) -> None:
        super().__init__(
            arrays={"prior": prior, "class_weight": class_weight},
            options={
                "tau": _number(tau, "tau"),
                **_common(label_smoothing, ignore_index, axis),
            },
            reduction=reduction,
            name=name,
            dtype=dtype,
        )


@keras.saving.register_keras_serializable(package="wce")
class LDAMLoss(_Loss):
    """Keras loss for :func:`wce.longtail.ldam_loss` (integer class ids only).

    Args:
        class_counts: training examples per class, shape (C,) (required).
        max_margin: the margin of the rarest class, ``>= 0``.
        scale: the factor ``> 0`` applied after the margin.
        class_weight: shape (C,).
        label_smoothing: ``eps`` in [0, 1].
        ignore_index: label value left out (loss 0, not counted).
        axis: the class axis.
        reduction: ``"none"``, ``"sum"``, ``"mean"`` or ``"weighted_mean"``.
        name: the loss's name.
        dtype: Keras's loss dtype (wce computes in float32 whatever it is).
    """

    _function = staticmethod(ldam_loss)

    def __init__(
        self,
        *,
        class_counts: Any,
        max_margin: float = 0.5,
        scale: float = 30.0,
        class_weight: Any | None = None,
        label_smoothing: float = 0.0,
        ignore_index: int | None = None,
        axis: int = -1,
        reduction: str = "mean",
        name: str | None = "ldam_loss",
        dtype: Any = None,
    ) -> None:
        super().__init__(
            arrays={"class_counts": class_counts, "class_weight": class_weight},
            options={
                "max_margin": _number(max_margin, "max_margin"),
                "scale": _number(scale, "scale"),
                **_common(label_smoothing, ignore_index, axis),
            },
            reduction=reduction,
            name=name,
            dtype=dtype,
        )


@keras.saving.register_keras_serializable(package="wce")
class AsymmetricLoss(_Loss):
    """Keras loss for :func:`wce.longtail.asymmetric_loss` (multi-label).

    Args:
        gamma_pos: focusing exponent of positives, ``>= 0``.
        gamma_neg: focusing exponent of negatives, ``>= 0``.
        clip: probability shift of negatives, in [0, 1].
        class_weight: scalar or shape (C,): weight per label.
        label_smoothing: ``eps`` in [0, 1].
        ignore_index: target value left out (loss 0, not counted).
        axis: the label axis.
        reduction: ``"none"``, ``"sum"``, ``"mean"`` or ``"weighted_mean"``.
        name: the loss's name.
        dtype: Keras's loss dtype (wce computes in float32 whatever it is).
    """

    _function = staticmethod(asymmetric_loss)
    _softmax = False

    def __init__(
        self,
        *,
        gamma_pos: float = 0.0,
        gamma_neg: float = 4.0,
        clip: float = 0.05,
        class_weight: Any | None = None,
        label_smoothing: float = 0.0,
        ignore_index: int | None = None,
        axis: int = -1,
        reduction: str = "mean",
        name: str | None = "asymmetric_loss",
        dtype: Any = None,
    ) -> None:
        super().__init__(
            arrays={"class_weight": class_weight},
            options={
                "gamma_pos": _number(gamma_pos, "gamma_pos"),
                "gamma_neg": _number(gamma_neg, "gamma_neg"),
                "clip": _number(clip, "clip"),
                **_common(label_smoothing, ignore_index, axis),
            },
            reduction=reduction,
            name=name,
            dtype=dtype,
        )


@keras.saving.register_keras_serializable(package="wce")
class ExpectedCostLoss(_Loss):
    """Keras loss for :func:`wce.longtail.expected_cost_loss`.

    Args:
        cost_matrix: shape (C, C) (required); ``cost_matrix[i, j]`` is the cost
            of predicting ``j`` when the truth is ``i``.
        class_weight: shape (C,).
        label_smoothing: ``eps`` in [0, 1].
        ignore_index: label value left out (loss 0, not counted).
        axis: the class axis.
        reduction: ``"none"``, ``"sum"``, ``"mean"`` or ``"weighted_mean"``.
        name: the loss's name.
        dtype: Keras's loss dtype (wce computes in float32 whatever it is).
    """

    _function = staticmethod(expected_cost_loss)

    def __init__(
        self,
        *,
        cost_matrix: Any,
        class_weight: Any | None = None,
        label_smoothing: float = 0.0,
        ignore_index: int | None = None,
        axis: int = -1,
        reduction: str = "mean",
        name: str | None = "expected_cost_loss",
        dtype: Any = None,
    ) -> None:
        super().__init__(
            arrays={"cost_matrix": cost_matrix, "class_weight": class_weight},
            options=_common(label_smoothing, ignore_index, axis),
            reduction=reduction,
            name=name,
            dtype=dtype,
        )
