"""Fused PyTorch kernels: one pass over the logits for the loss and its gradient.

This module imports nothing heavy: :func:`dispatch` looks at the logits and hands
PyTorch tensors to :mod:`wce._fused._torch` only when ``torch`` is already loaded,
so ``import wce`` never imports PyTorch. See ``docs/torch-fast-path.md``.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["dispatch", "enabled", "linear_cross_entropy", "use_fused_kernels"]

_STATE = threading.local()


def enabled() -> bool:
    """Whether PyTorch tensors take the fused kernels (per thread; default on)."""
    return bool(getattr(_STATE, "on", True))


@contextlib.contextmanager
def use_fused_kernels(on: bool = True) -> Iterator[None]:
    """Turn the fused PyTorch kernels on or off inside a ``with`` block.

    Off, every loss takes the generic path, which supports what the fused
    kernels do not: double backward (``create_graph=True``), for example.

    Examples:
        >>> import torch, wce
        >>> x = torch.zeros(2, 3, requires_grad=True)
        >>> with wce.use_fused_kernels(False):
        ...     loss = wce.softmax_cross_entropy(x, torch.tensor([0, 1]))
        >>> (g,) = torch.autograd.grad(loss, x, create_graph=True)
        >>> g.requires_grad
        True
    """
    old = enabled()
    _STATE.on = bool(on)
    try:
        yield
    finally:
        _STATE.on = old


def dispatch(loss: str, args: dict[str, Any]) -> Any:
    """The fused ``loss`` for these arguments, or ``NotImplemented``.

    ``args`` are the keyword arguments of the public loss (its ``locals()`` on
    entry). ``NotImplemented`` sends the caller down the generic path: other
    backends, tracing under ``torch.compile``, gradients wanted for weights or
    targets, ``axis_name``/``normalizer``, and inputs the generic path rejects
    (so its error messages stay the only ones).
    """
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(args.get("logits"), torch.Tensor):
        return NotImplemented
    from . import _torch

    return _torch.dispatch(loss, args)


def linear_cross_entropy(
    hidden: Any,
    weight: Any,
    labels: Any,
    *,
    bias: Any | None = None,
    class_weight: Any | None = None,
    weight_by: str = "label",
    cost_matrix: Any | None = None,
    sample_weight: Any | None = None,
    label_smoothing: float = 0.0,
    ignore_index: int | None = None,
    reduction: str = "mean",
) -> Any:
    """Softmax cross-entropy of ``hidden @ weight.T + bias``, never storing the logits.

    The loss equals :func:`wce.softmax_cross_entropy` of the logits
    ``hidden @ weight.T + bias`` with the same keywords, but the (N, C) logits are
    computed one slab of rows at a time (all classes of a few rows), the slab is
    turned into its gradient in place, and the gradients of ``hidden``, ``weight``
    and ``bias`` are accumulated from it. Peak extra memory is one slab plus the
    gradients themselves, instead of several (N, C) buffers; the matrix products are
    the same three an unfused layer does. For vocabularies of 32k to 256k classes.

    Args:
        hidden: PyTorch tensor of shape (N, H), or (..., H) (leading dimensions are
            flattened into rows).
        weight: shape (C, H), as in ``torch.nn.Linear``.
        labels: integer class ids of shape (N,) (or the leading shape of
            ``hidden``).
        bias: shape (C,), or None.
        class_weight, weight_by, cost_matrix, sample_weight, label_smoothing,
        ignore_index, reduction: as in :func:`wce.softmax_cross_entropy`.

    Returns:
        The reduced loss (0-d), or with ``reduction="none"`` the weighted
        per-row losses of the shape of ``labels``.

    Raises:
        TypeError: inputs that are not PyTorch tensors, non-integer labels.
        ValueError: as :func:`wce.softmax_cross_entropy`.

    Not supported: probability labels, other backends, double backward.

    Examples:
        >>> import torch
        >>> h = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
        >>> w = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        >>> y = torch.tensor([0, 2])
        >>> float(linear_cross_entropy(h, w, y))
        0.6348...
    """
    from . import _linear

    return _linear.linear_cross_entropy(
        hidden,
        weight,
        labels,
        bias=bias,
        class_weight=class_weight,
        weight_by=weight_by,
        cost_matrix=cost_matrix,
        sample_weight=sample_weight,
        label_smoothing=label_smoothing,
        ignore_index=ignore_index,
        reduction=reduction,
    )
