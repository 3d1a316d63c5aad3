"""PyTorch modules for the wce losses.

Each module takes the keywords of its function (:func:`wce.softmax_cross_entropy`,
:func:`wce.sigmoid_cross_entropy` and those of :mod:`wce.longtail`) once, and is
called as ``criterion(logits, labels)`` or ``criterion(logits, labels,
sample_weight)``. Its value and gradient equal the function's.

* Per-class arrays (``class_weight``, ``pos_weight``, ``cost_matrix``, ``prior``,
  ``class_counts``) are buffers: they follow ``.to(device, dtype)``, ``.cuda()``
  and ``.double()``, and are saved in ``state_dict``. Arrays that are not tensors
  are stored in the default dtype (float32); tensors keep their floating dtype.
  Assigning a tensor to the attribute replaces a buffer (deferred re-weighting).
* ``sync_normalizer=True`` makes ``"mean"``, ``"weighted_mean"`` and ``"sum"``
  exact under ``torch.distributed`` data parallelism: the loss value is the loss
  of the concatenated global batch and the gradient that DDP averages is its
  exact gradient (:func:`wce.distributed.process_group_normalizer`). Every rank
  must call the loss. Off by default; without an initialised process group it
  changes nothing.
* ``normalizer=`` takes any normalizer, such as a
  :class:`wce.distributed.GradientAccumulator` for micro-batches.
* Autocast is turned off inside the loss, which is computed in float32 (or
  float64) whatever the logits' dtype; the modules work under ``torch.compile``
  (``fullgraph=True`` included).

Not supported: ``inplace_backward`` (a memory hint of the plain functions); call
the function for it.

Examples:
    >>> import torch
    >>> from wce.torch import SoftmaxCrossEntropy
    >>> criterion = SoftmaxCrossEntropy(class_weight=[1.0, 3.0],
    ...                                 reduction="weighted_mean")
    >>> logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> labels = torch.tensor([0, 1, 1])
    >>> round(float(criterion(logits, labels)), 4)
    0.4495
    >>> sorted(criterion.state_dict())
    ['class_weight']
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from . import _checks
from ._checks import fail
from ._core import Normalizer, check_weight_by
from .distributed import process_group_normalizer
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


def _as_buffer(value: Any, argument: str) -> torch.Tensor | None:
    """A per-class array as a float tensor for a buffer (``None`` stays ``None``)."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        t = value.detach().clone()
    else:
        t = torch.as_tensor(np.asarray(value))
    if t.dtype == torch.bool or t.is_complex():
        fail(
            argument,
            "a real-valued array",
            f"dtype {t.dtype}",
            "cast it to float",
            cls=TypeError,
        )
    if not isinstance(value, torch.Tensor) or not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    return t


class _Loss(nn.Module):
    """Shared machinery: buffers, options, normalizer, autocast."""

    _function: Callable[..., Any]

    def __init__(
        self,
        *,
        arrays: dict[str, Any],
        options: dict[str, Any],
        reduction: str,
        sync_normalizer: bool,
        process_group: Any,
        normalizer: Normalizer | None,
    ) -> None:
        super().__init__()
        self.reduction = _checks.check_reduction(reduction)
        if sync_normalizer and normalizer is not None:
            fail(
                "normalizer",
                "None with sync_normalizer=True",
                "a normalizer",
                "pass one or the other",
            )
        self._array_names = tuple(arrays)
        for name, value in arrays.items():
            self.register_buffer(name, _as_buffer(value, name))
        self._options = dict(options)
        self.sync_normalizer = bool(sync_normalizer)
        self.process_group = process_group
        self.normalizer = normalizer

    def extra_repr(self) -> str:
        items = [f"reduction={self.reduction!r}"]
        items += [f"{k}={v!r}" for k, v in self._options.items()]
        items += [
            f"{k}=<{tuple(getattr(self, k).shape)}>"
            for k in self._array_names
            if getattr(self, k) is not None
        ]
        if self.sync_normalizer:
            items.append("sync_normalizer=True")
        return ", ".join(items)

    def forward(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        sample_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The loss of ``logits`` against ``labels`` (see the function's docs).

        Args:
            logits: unnormalised scores, (N, C) or (N, C, d1, ...) with ``axis=1``.
            labels: class ids or targets, as the function takes them.
            sample_weight: optional weight per sample or per element.

        Returns:
            The reduced loss (0-d), or the weighted losses for ``"none"``.
        """
        kwargs = dict(self._options)
        for name in self._array_names:
            kwargs[name] = getattr(self, name)
        normalizer = self.normalizer
        if self.sync_normalizer:
            normalizer = process_group_normalizer(self.process_group)
        fn = type(self)._function
        device = logits.device.type
        if torch.is_autocast_enabled(device):
            with torch.autocast(device, enabled=False):
                return fn(
                    logits,
                    labels,
                    sample_weight=sample_weight,
                    reduction=self.reduction,
                    normalizer=normalizer,
                    **kwargs,
                )
        return fn(
            logits,
            labels,
            sample_weight=sample_weight,
            reduction=self.reduction,
            normalizer=normalizer,
            **kwargs,
        )


def _common(
    label_smoothing: float, ignore_index: int | None, axis: int
) -> dict[str, Any]:
    """The keywords every loss shares, checked once at construction."""
    return {
        "label_smoothing": _checks.check_unit_interval(
            label_smoothing, "label_smoothing"
        ),
        "ignore_index": _checks.check_ignore_index(ignore_index),
        "axis": axis,
    }


def _number(value: Any, argument: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        fail(argument, "a float", repr(value), "pass a Python float", cls=TypeError)
    return float(value)


class SoftmaxCrossEntropy(_Loss):
    """Module form of :func:`wce.softmax_cross_entropy`.

    Args:
        class_weight: shape (C,), a buffer.
        weight_by: ``"label"`` or ``"prediction"``.
        cost_matrix: shape (C, C), a buffer.
        label_smoothing: ``eps`` in [0, 1].
        ignore_index: label value left out (loss 0, not counted).
        axis: the class axis of the logits (1 for (N, C, H, W)).
        reduction: ``"none"``, ``"sum"``, ``"mean"`` or ``"weighted_mean"``.
        sync_normalizer: exact global normalisation under ``torch.distributed``.
        process_group: the group for ``sync_normalizer`` (default group if None).
        normalizer: a custom normalizer (not with ``sync_normalizer``).

    Shape:
        logits (N, C) or (N, C, d1, ..., dk) with ``axis=1``; labels of the logits'
        shape without ``axis`` (class ids) or of their shape (probabilities).
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
        sync_normalizer: bool = False,
        process_group: Any = None,
        normalizer: Normalizer | None = None,
    ) -> None:
        super().__init__(
            arrays={"class_weight": class_weight, "cost_matrix": cost_matrix},
            options={
                "weight_by": check_weight_by(weight_by),
                **_common(label_smoothing, ignore_index, axis),
            },
            reduction=reduction,
            sync_normalizer=sync_normalizer,
            process_group=process_group,
            normalizer=normalizer,
        )


class SigmoidCrossEntropy(_Loss):
    """Module form of :func:`wce.sigmoid_cross_entropy` (binary, multi-label).

    Args:
        pos_weight: scalar or shape (C,) along ``axis``, a buffer.
        class_weight: scalar or shape (C,) along ``axis``, a buffer.
        label_smoothing: ``eps`` in [0, 1].
        ignore_index: target value left out (loss 0, not counted).
        axis: the label axis.
        reduction: ``"none"``, ``"sum"``, ``"mean"`` or ``"weighted_mean"``.
        sync_normalizer: exact global normalisation under ``torch.distributed``.
        process_group: the group for ``sync_normalizer`` (default group if None).
        normalizer: a custom normalizer (not with ``sync_normalizer``).

    Shape:
        logits (N,), (N, C) or (N, C, d1, ...); labels of the same shape.
    """

    _function = staticmethod(sigmoid_cross_entropy)

    def __init__(
        self,
        *,
        pos_weight: Any | None = None,
        class_weight: Any | None = None,
        label_smoothing: float = 0.0,
        ignore_index: int | None = None,
        axis: int = -1,
        reduction: str = "mean",
        sync_normalizer: bool = False,
        process_group: Any = None,
        normalizer: Normalizer | None = None,
    ) -> None:
        super().__init__(
            arrays={"pos_weight": pos_weight, "class_weight": class_weight},
            options=_common(label_smoothing, ignore_index, axis),
            reduction=reduction,
            sync_normalizer=sync_normalizer,
            process_group=process_group,
            normalizer=normalizer,
        )


class SoftmaxFocalLoss(_Loss):
    """Module form of :func:`wce.longtail.softmax_focal_loss`.

    Args:
        gamma: focusing exponent ``>= 0``.
        class_weight: shape (C,), a buffer (Lin et al.'s per-class ``alpha``).
        label_smoothing: ``eps`` in [0, 1].
        ignore_index: label value left out (loss 0, not counted).
        axis: the class axis of the logits (1 for (N, C, H, W)).
        reduction: ``"none"``, ``"sum"``, ``"mean"`` or ``"weighted_mean"``.
        sync_normalizer: exact global normalisation under ``torch.distributed``.
        process_group: the group for ``sync_normalizer`` (default group if None).
        normalizer: a custom normalizer (not with ``sync_normalizer``).
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
        sync_normalizer: bool = False,
        process_group: Any = None,
        normalizer: Normalizer | None = None,
    ) -> None:
        super().__init__(
            arrays={"class_weight": class_weight},
            options={
                "gamma": _number(gamma, "gamma"),
                **_common(label_smoothing, ignore_index, axis),
            },
            reduction=reduction,
            sync_normalizer=sync_normalizer,
            process_group=process_group,
            normalizer=normalizer,
        )


class SigmoidFocalLoss(_Loss):
    """Module form of :func:`wce.longtail.sigmoid_focal_loss`.

    Args:
        gamma: focusing exponent ``>= 0``.
        alpha: weight of positives in [0, 1] (negatives ``1 - alpha``), or None.
        class_weight: scalar or shape (C,) along ``axis``, a buffer.
        label_smoothing: ``eps`` in [0, 1].
        ignore_index: target value left out (loss 0, not counted).
        axis: the label axis.
        reduction: ``"none"``, ``"sum"``, ``"mean"`` or ``"weighted_mean"``.
        sync_normalizer: exact global normalisation under ``torch.distributed``.
        process_group: the group for ``sync_normalizer`` (default group if None).
        normalizer: a custom normalizer (not with ``sync_normalizer``).
    """

    _function = staticmethod(sigmoid_focal_loss)

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
        sync_normalizer: bool = False,
        process_group: Any = None,
        normalizer: Normalizer | None = None,
    ) -> None:
        super().__init__(
            arrays={"class_weight": class_weight},
            options={
                "gamma": _number(gamma, "gamma"),
                "alpha": None if alpha is None else _number(alpha, "alpha"),
                **_common(label_smoothing, ignore_index, axis),
            },
            reduction=reduction,
            sync_normalizer=sync_normalizer,
            process_group=process_group,
            normalizer=normalizer,
        )


class LogitAdjustedCrossEntropy(_Loss):
    """Module form of :func:`wce.longtail.logit_adjusted_cross_entropy`.

    Args:
        prior: class frequencies or counts, shape (C,), a buffer (required).
        tau: temperature ``>= 0`` of the adjustment (1 is the balanced softmax).
        class_weight: shape (C,), a buffer.
        label_smoothing: ``eps`` in [0, 1].
        ignore_index: label value left out (loss 0, not counted).
        axis: the class axis of the logits (1 for (N, C, H, W)).
        reduction: ``"none"``, ``"sum"``, ``"mean"`` or ``"weighted_mean"``.
        sync_normalizer: exact global normalisation under ``torch.distributed``.
        process_group: the group for ``sync_normalizer`` (default group if None).
        normalizer: a custom normalizer (not with ``sync_normalizer``).
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
        sync_normalizer: bool = False,
        process_group: Any = None,
        normalizer: Normalizer | None = None,
    ) -> None:
        super().__init__(
            arrays={"prior": prior, "class_weight": class_weight},
            options={
                "tau": _number(tau, "tau"),
                **_common(label_smoothing, ignore_index, axis),
            },
            reduction=reduction,
            sync_normalizer=sync_normalizer,
            process_group=process_group,
            normalizer=normalizer,
        )


class LDAMLoss(_Loss):
    """Module form of :func:`wce.longtail.ldam_loss`.

    For deferred re-weighting, assign a new ``class_weight`` buffer between
    epochs: ``criterion.class_weight = torch.as_tensor(drw_weights(...))``.

    Args:
        class_counts: training examples per class, shape (C,), a buffer
            (required).
        max_margin: the margin of the rarest class, ``>= 0``.
        scale: the factor ``> 0`` applied after the margin.
        class_weight: shape (C,), a buffer.
        label_smoothing: ``eps`` in [0, 1].
        ignore_index: label value left out (loss 0, not counted).
        axis: the class axis of the logits (1 for (N, C, H, W)).
        reduction: ``"none"``, ``"sum"``, ``"mean"`` or ``"weighted_mean"``.
        sync_normalizer: exact global normalisation under ``torch.distributed``.
        process_group: the group for ``sync_normalizer`` (default group if None).
        normalizer: a custom normalizer (not with ``sync_normalizer``).
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
        sync_normalizer: bool = False,
        process_group: Any = None,
        normalizer: Normalizer | None = None,
    ) -> None:
        super().__init__(
            arrays={"class_counts": class_counts, "class_weight": class_weight},
            options={
                "max_margin": _number(max_margin, "max_margin"),
                "scale": _number(scale, "scale"),
                **_common(label_smoothing, ignore_index, axis),
            },
            reduction=reduction,
            sync_normalizer=sync_normalizer,
            process_group=process_group,
            normalizer=normalizer,
        )


class AsymmetricLoss(_Loss):
    """Module form of :func:`wce.longtail.asymmetric_loss` (multi-label).

    Args:
        gamma_pos: focusing exponent of positives, ``>= 0``.
        gamma_neg: focusing exponent of negatives, ``>= 0``.
        clip: probability shift of negatives, in [0, 1].
        class_weight: scalar or shape (C,) along ``axis``, a buffer.
        label_smoothing: ``eps`` in [0, 1].
        ignore_index: target value left out (loss 0, not counted).
        axis: the label axis.
        reduction: ``"none"``, ``"sum"``, ``"mean"`` or ``"weighted_mean"``.
        sync_normalizer: exact global normalisation under ``torch.distributed``.
        process_group: the group for ``sync_normalizer`` (default group if None).
        normalizer: a custom normalizer (not with ``sync_normalizer``).
    """

    _function = staticmethod(asymmetric_loss)

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
        sync_normalizer: bool = False,
        process_group: Any = None,
        normalizer: Normalizer | None = None,
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
            sync_normalizer=sync_normalizer,
            process_group=process_group,
            normalizer=normalizer,
        )


class ExpectedCostLoss(_Loss):
    """Module form of :func:`wce.longtail.expected_cost_loss`.

    Args:
        cost_matrix: shape (C, C), a buffer (required); ``cost_matrix[i, j]`` is
            the cost of predicting ``j`` when the truth is ``i``.
        class_weight: shape (C,), a buffer.
        label_smoothing: ``eps`` in [0, 1].
        ignore_index: label value left out (loss 0, not counted).
        axis: the class axis of the logits (1 for (N, C, H, W)).
        reduction: ``"none"``, ``"sum"``, ``"mean"`` or ``"weighted_mean"``.
        sync_normalizer: exact global normalisation under ``torch.distributed``.
        process_group: the group for ``sync_normalizer`` (default group if None).
        normalizer: a custom normalizer (not with ``sync_normalizer``).
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
        sync_normalizer: bool = False,
        process_group: Any = None,
        normalizer: Normalizer | None = None,
    ) -> None:
        super().__init__(
            arrays={"cost_matrix": cost_matrix, "class_weight": class_weight},
            options=_common(label_smoothing, ignore_index, axis),
            reduction=reduction,
            sync_normalizer=sync_normalizer,
            process_group=process_group,
            normalizer=normalizer,
        )
