"""PyTorch modules for the wce losses.

Each module takes the keywords of its function (:func:`wce.softmax_cross_entropy`
and the others) once, and is called as ``criterion(logits, labels)`` or
``criterion(logits, labels, sample_weight)``. Its value equals the function's.

* Per-class arrays (``class_weight``, ``pos_weight``, ``cost_matrix``, ``prior``,
  ``class_counts``, ``alpha``) are buffers: they follow ``.to(device, dtype)``,
  ``.cuda()`` and ``.double()``, and are saved in ``state_dict``. Arrays that are
  not tensors are stored in the default dtype (float32).
* ``sync_normalizer=True`` makes ``"mean"``, ``"weighted_mean"`` and ``"sum"``
  exact under ``torch.distributed`` data parallelism: the loss value is the loss
  of the concatenated global batch and the gradient that DDP averages is its
  exact gradient (:func:`wce.distributed.process_group_normalizer`). Every rank
  must call the loss. Off by default; without an initialised process group it
  changes nothing.
* ``normalizer=`` takes any normalizer, such as a
  :class:`wce.distributed.GradientAccumulator` for micro-batches.
* Autocast is turned off inside the loss, which is computed in float32 (or
  float64) whatever the logits' dtype; the modules work under ``torch.compile``.

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

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from . import _checks
from ._checks import fail
from ._core import Normalizer
from .distributed import process_group_normalizer
from .losses import sigmoid_cross_entropy, softmax_cross_entropy

__all__ = [
    "SigmoidCrossEntropy",
    "SoftmaxCrossEntropy",
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
        fail(argument, "a real-valued array", f"dtype {t.dtype}", "cast it to float",
             cls=TypeError)
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
            fail("normalizer", "None with sync_normalizer=True", "a normalizer",
                 "pass one or the other")
        self._array_names = tuple(arrays)
        for name, value in arrays.items():
            self.register_buffer(name, _as_buffer(value, name))
        self._options = dict(options)
        self.sync_normalizer = bool(sync_normalizer)
        self.process_group = process_group
        self.normalizer = normalizer
        self._sync = process_group_normalizer(process_group)

    def extra_repr(self) -> str:
        items = [f"reduction={self.reduction!r}"]
        items += [f"{k}={v!r}" for k, v in self._options.items()]
        items += [f"{k}=<{tuple(getattr(self, k).shape)}>" for k in self._array_names
                  if getattr(self, k) is not None]
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
        normalizer = self._sync if self.sync_normalizer else self.normalizer
        fn = type(self)._function
        device = logits.device.type
        if torch.is_autocast_enabled(device):
            with torch.autocast(device, enabled=False):
                return fn(logits, labels, sample_weight=sample_weight,
                          reduction=self.reduction, normalizer=normalizer, **kwargs)
        return fn(logits, labels, sample_weight=sample_weight,
                  reduction=self.reduction, normalizer=normalizer, **kwargs)


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
        from ._core import check_weight_by

        super().__init__(
            arrays={"class_weight": class_weight, "cost_matrix": cost_matrix},
            options={"weight_by": check_weight_by(weight_by),
                     "label_smoothing": _checks.check_unit_interval(
                         label_smoothing, "label_smoothing"),
                     "ignore_index": _checks.check_ignore_index(ignore_index),
                     "axis": axis},
            reduction=reduction, sync_normalizer=sync_normalizer,
            process_group=process_group, normalizer=normalizer)


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
            options={"label_smoothing": _checks.check_unit_interval(
                         label_smoothing, "label_smoothing"),
                     "ignore_index": _checks.check_ignore_index(ignore_index),
                     "axis": axis},
            reduction=reduction, sync_normalizer=sync_normalizer,
            process_group=process_group, normalizer=normalizer)
