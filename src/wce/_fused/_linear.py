"""``linear_cross_entropy``: a linear layer and softmax cross-entropy, fused.

The (N, C) logits are never stored: rows are taken in slabs of about
:data:`SLAB_ELEMENTS` logits (all classes of a few rows), each slab's logits are
computed by one matrix product, turned into their gradient in place by the fused
softmax kernel of :mod:`wce._fused._torch`, and the gradients of the hidden states,
the weight and the bias are accumulated from the slab. The forward pass therefore
does the three matrix products of an unfused layer and keeps only the parameter-
sized gradients for the backward pass, which scales them by the upstream gradient.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from .._checks import fail, fmt_shape
from ._torch import _Softmax, _traced

Tensor = torch.Tensor

#: Logits per slab (rows x classes); 2**24 float32 logits are 64 MiB. Smaller slabs
#: lower the peak memory; each slab adds one pass over the weight's gradient.
SLAB_ELEMENTS = 1 << 24


@contextlib.contextmanager
def slab_elements(n: int) -> Iterator[None]:
    """Temporarily use slabs of about ``n`` logits (tests use tiny slabs)."""
    global SLAB_ELEMENTS
    old, SLAB_ELEMENTS = SLAB_ELEMENTS, max(1, int(n))
    try:
        yield
    finally:
        SLAB_ELEMENTS = old


Result = tuple[Tensor, Tensor | None, Tensor | None, Tensor | None, Tensor | None]


class _LinearCE(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, hidden: Tensor, weight: Tensor, bias: Tensor | None, compute: Any
    ) -> Tensor:
        del hidden, weight, bias
        need = ctx.needs_input_grad
        ctx.recompute = compute if compute.per_row else None
        if ctx.recompute is not None:
            # a per-row upstream gradient reweighs the rows of the weight's
            # gradient: the backward pass recomputes the slabs with it
            return compute(False, False, False)[0]
        out, dh, dw, db, factor = compute(need[0], need[1], need[2])
        ctx.factor = factor
        ctx.save_for_backward(dh, dw, db)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, upstream: Tensor) -> tuple[Any, Any, Any, None]:
        if ctx.recompute is not None:
            plan = ctx.recompute.plan
            plan.upstream = upstream.reshape(-1)
            plan.out = torch.empty_like(plan.out)  # the output still views the old
            need = ctx.needs_input_grad
            _, dh, dw, db, _ = ctx.recompute(need[0], need[1], need[2])
            plan.upstream = None
            return dh, dw, db, None
        f = upstream if ctx.factor is None else upstream * ctx.factor
        one = f.device.type == "cpu" and float(f) == 1.0
        grads = []
        for g in ctx.saved_tensors:
            if g is None or one:
                grads.append(g)
            else:
                grads.append((g * f).to(g.dtype))
        return grads[0], grads[1], grads[2], None


def _check(hidden: Any, weight: Any, bias: Any, labels: Any) -> None:
    for name, v in (("hidden", hidden), ("weight", weight), ("labels", labels)):
        if not isinstance(v, Tensor):
            fail(
                name,
                "a PyTorch tensor",
                type(v).__name__,
                "linear_cross_entropy is PyTorch only; use softmax_cross_entropy "
                "on the logits elsewhere",
                cls=TypeError,
            )
    if not hidden.dtype.is_floating_point or weight.dtype != hidden.dtype:
        fail(
            "weight",
            f"floating, of the dtype of hidden ({hidden.dtype})",
            f"dtype {weight.dtype}",
            "cast both to one floating dtype",
            cls=TypeError,
        )
    if hidden.ndim < 1 or weight.ndim != 2 or weight.shape[1] != hidden.shape[-1]:
        fail(
            "weight",
            f"shape (C, {hidden.shape[-1] if hidden.ndim else '?'}), "
            "as torch.nn.Linear stores it",
            f"shape {fmt_shape(weight.shape)}",
            "pass the layer's weight, not its transpose",
        )
    bad_bias = not isinstance(bias, Tensor) or bias.dtype != hidden.dtype
    if bias is not None and bad_bias:
        fail(
            "bias",
            f"a PyTorch tensor of the dtype of hidden ({hidden.dtype})",
            f"dtype {bias.dtype}" if isinstance(bias, Tensor) else type(bias).__name__,
            "cast the bias like the weight, or pass bias=None",
            cls=TypeError,
        )
    if bias is not None and tuple(bias.shape) != (weight.shape[0],):
        fail(
            "bias",
            f"shape ({weight.shape[0]},)",
            f"shape {fmt_shape(bias.shape)}",
            "pass one bias per class",
        )
    if labels.dtype.is_floating_point or labels.dtype == torch.bool:
        fail(
            "labels",
            "integer class ids",
            f"dtype {labels.dtype}",
            "probability labels are not supported here; compute the logits and "
            "use softmax_cross_entropy",
            cls=TypeError,
        )
    if tuple(labels.shape) != tuple(hidden.shape[:-1]):
        fail(
            "labels",
            f"class ids of shape {fmt_shape(hidden.shape[:-1])}",
            f"shape {fmt_shape(labels.shape)}",
            "one label per row of hidden",
        )


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
    """See :func:`wce.linear_cross_entropy`."""
    _check(hidden, weight, bias, labels)
    if _traced(hidden):
        fail(
            "hidden",
            "an eager tensor",
            "a traced one",
            "linear_cross_entropy does not run under torch.compile; call it "
            "outside the compiled region",
            cls=TypeError,
        )
    c, h = int(weight.shape[0]), int(weight.shape[1])
    cdt = torch.float64 if hidden.dtype == torch.float64 else torch.float32
    lead = tuple(hidden.shape[:-1])
    like = torch.zeros((), dtype=hidden.dtype, device=hidden.device)
    like = like.expand((*lead, c))
    args = dict(
        labels=labels,
        class_weight=class_weight,
        weight_by=weight_by,
        cost_matrix=cost_matrix,
        sample_weight=sample_weight,
        label_smoothing=label_smoothing,
        ignore_index=ignore_index,
        axis=-1,
        reduction=reduction,
    )
    plan = _Softmax(args, like)
    assert plan.ok
    h2 = hidden.detach().reshape(-1, h)
    w2 = weight.detach()
    b2 = None if bias is None else bias.detach()

    def compute(want_h: bool, want_w: bool, want_b: bool) -> Result:
        n = h2.shape[0]
        need = want_h or want_w or want_b
        dh = torch.empty_like(h2) if want_h else None
        dw = torch.zeros_like(w2) if want_w else None
        db = torch.zeros_like(b2) if want_b and b2 is not None else None
        rows = max(1, SLAB_ELEMENTS // max(c, 1))
        for s in range(0, n, rows):
            e = min(n, s + rows)
            hs = h2[s:e]
            xs = hs @ w2.T if b2 is None else torch.addmm(b2, hs, w2.T)
            if xs.dtype != cdt:
                xs = xs.to(cdt)
            if not plan.native_chunk(xs, xs if need else None, s, e):
                plan._chunk(xs, xs, s, e, need)
            if not need:
                del xs
                continue
            g = xs.to(h2.dtype)
            if dh is not None:
                torch.mm(g, w2, out=dh[s:e])
            if dw is not None:
                dw.addmm_(g.T, hs)
            if db is not None:
                db += g.sum(0)
            del xs, g  # free this slab before the next one is computed
        out, factor = plan.finish()
        if dh is not None:
            dh = dh.reshape(hidden.shape)
        return out, dh, dw, db, factor

    compute.per_row = plan.reduction == "none"  # type: ignore[attr-defined]
    compute.plan = plan  # type: ignore[attr-defined]
    if torch.is_grad_enabled() and (
        hidden.requires_grad
        or weight.requires_grad
        or (bias is not None and bias.requires_grad)
    ):
        out: Tensor = _LinearCE.apply(hidden, weight, bias, compute)
        return out
    return compute(False, False, False)[0]
