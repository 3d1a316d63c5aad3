"""Fused softmax and sigmoid cross-entropy for PyTorch tensors.

Each loss runs one ``torch.autograd.Function``: the forward pass computes the loss of
every element and, when a gradient is wanted, its gradient into one logits-sized
buffer (or over the logits themselves with ``inplace_backward=True``). Only that
buffer is kept for the backward pass, which scales it by the upstream gradient.

The pass itself is the compiled CPU kernel of :mod:`wce._fused._native` where it
applies (CPU tensors, integer class ids for the softmax), else the chunked PyTorch
code of this module: rows in chunks of about :data:`CHUNK_ELEMENTS` entries, a few
torch operations per chunk. The maths is the generic path's (:mod:`wce._core`);
rows whose logits are not finite (a row of ``-inf``, a ``+inf``, a NaN) are
recomputed with the generic formulas, so edge cases agree exactly.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F

from .. import _checks
from .._backend import backend_of
from .._core import (
    _check_class_ids,
    check_weight_by,
    log_softmax,
    prepare_class_vector,
    prepare_cost_matrix,
    sample_weight_to,
    sigmoid_terms,
)
from . import _native

Tensor = torch.Tensor

#: Entries of the logits processed per chunk (rows are never split for softmax).
CHUNK_ELEMENTS = 1 << 21
#: The sigmoid loss keeps several chunk-sized temporaries: it uses smaller chunks.
SIGMOID_CHUNK_ELEMENTS = 1 << 17
#: Sigmoid rows shorter than this are handed to the compiled kernel in groups of
#: about this many labels.
SIGMOID_GROUP = 4096
#: At most this many rows per chunk, so per-row temporaries stay small.
CHUNK_ROWS = 8192
#: Up to this many classes the softmax is written out (exp once, reused); above it
#: torch's fused softmax kernel is faster.
SMALL_CLASSES = 128
# x_y - max below this: the probability of the label may leave float32's normal
# range, so the row's loss is taken in log space by the generic formula
_UNDERFLOW = -60.0
_TINY = 1e-26  # about exp(-60)


@contextlib.contextmanager
def chunk_elements(n: int) -> Iterator[None]:
    """Temporarily process ``n`` logits per chunk (tests use tiny chunks)."""
    global CHUNK_ELEMENTS
    old, CHUNK_ELEMENTS = CHUNK_ELEMENTS, max(1, int(n))
    try:
        yield
    finally:
        CHUNK_ELEMENTS = old


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Send every call of this thread down the generic path (comparisons, tests,
    the reference rows)."""
    from . import use_fused_kernels

    with use_fused_kernels(False):
        yield


def _public_switch_on() -> bool:
    from . import enabled

    return enabled()


def _wants_grad(x: Any) -> bool:
    return isinstance(x, Tensor) and x.requires_grad


def _traced(x: Tensor) -> bool:
    if torch.compiler.is_compiling() or torch.jit.is_scripting():
        return True
    if torch._C._functorch.is_functorch_wrapped_tensor(x):
        return True
    return type(x).__name__ in {"FakeTensor", "FunctionalTensor"}


def _weighted(
    loss: Tensor, w: Tensor | None, valid: Tensor | None
) -> tuple[Tensor, Tensor | None]:
    """``w * loss``, 0 where ignored or weighted 0 (even if the loss is infinite),
    and the mask of the elements kept (None: all)."""
    keep = valid
    if w is not None:
        nz = w != 0
        keep = nz if keep is None else keep & nz
    wl = loss if w is None else w * loss
    if keep is not None:
        wl = torch.where(keep, wl, 0.0)
    return wl, keep


def _safe(den: Tensor) -> Tensor:
    return torch.where(den > 0, den, torch.ones_like(den))


def dispatch(loss: str, args: dict[str, Any]) -> Any:
    """The fused loss, or ``NotImplemented`` for the generic path."""
    logits = args["logits"]
    if not _public_switch_on():
        return NotImplemented
    if args.get("axis_name") is not None or args.get("normalizer") is not None:
        return NotImplemented
    if (
        _traced(logits)
        or not logits.dtype.is_floating_point
        or logits.ndim < 1
        or logits.numel() == 0
    ):
        return NotImplemented
    weights = ("class_weight", "cost_matrix", "sample_weight", "pos_weight")
    if any(_wants_grad(args.get(k)) for k in ("labels", *weights)):
        return NotImplemented
    inplace = bool(args.get("inplace_backward", False))
    if loss == "softmax":
        return _softmax_entry(args, inplace)
    if loss == "sigmoid":
        return _sigmoid_entry(args, inplace)
    if loss == "softmax_focal":
        gamma = args["gamma"]
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)):
            return NotImplemented
        if not 0.0 <= float(gamma) < math.inf:
            return NotImplemented
        # gamma = 0 is the cross-entropy, computed by the same code as the generic
        g = float(gamma) if gamma else None
        return _softmax_entry(args, inplace, gamma=g)
    if loss == "sigmoid_focal":
        gamma, alpha = args["gamma"], args["alpha"]
        if isinstance(gamma, bool) or not isinstance(gamma, (int, float)):
            return NotImplemented
        if not 0.0 <= float(gamma) < math.inf:
            return NotImplemented
        if alpha is not None and (
            isinstance(alpha, bool)
            or not isinstance(alpha, (int, float))
            or not 0.0 <= float(alpha) <= 1.0
        ):
            return NotImplemented
        focal = (float(gamma), None if alpha is None else float(alpha))
        return _sigmoid_entry(args, inplace, focal=focal)
    return NotImplemented


# ---------------------------------------------------------------------------
# The autograd Function shared by every fused loss
# ---------------------------------------------------------------------------
Compute = Callable[[bool], tuple[Tensor, Tensor | None, Tensor | None]]


class _FusedLoss(torch.autograd.Function):
    """Loss forward; the gradient, computed in the forward pass, scaled backward."""

    @staticmethod
    def forward(
        ctx: Any, logits: Tensor, compute: Compute, inplace: bool, axis: int | None
    ) -> Tensor:
        del logits
        out, grad, factor = compute(True)
        if inplace and grad is not None:
            # the compiled kernel wrote the gradient over the logits through a raw
            # pointer: tell autograd, so that an operation that saved the logits
            # for its own backward raises instead of reading the gradient
            torch.autograd.graph.increment_version(grad)
        ctx.inplace = inplace
        ctx.factor = factor
        ctx.axis = axis
        ctx.used = False
        ctx.save_for_backward(grad)
        return out

    @staticmethod
    def backward(ctx: Any, upstream: Tensor) -> tuple[Tensor, None, None, None]:
        if torch.is_grad_enabled():
            # create_graph=True: the stored gradient has no graph of its own
            raise RuntimeError(
                "the fused PyTorch kernel of this wce loss has no second "
                "derivative (create_graph=True); compute the loss inside "
                "`with wce.use_fused_kernels(False):` for double backward"
            )
        if ctx.inplace and ctx.used:  # before the saved buffer's version check
            raise RuntimeError(
                "inplace_backward=True keeps the gradient in the logits' buffer "
                "and supports one backward pass; call the loss again, or use "
                "inplace_backward=False with retain_graph=True"
            )
        (grad,) = ctx.saved_tensors
        factor = upstream if ctx.factor is None else upstream * ctx.factor
        if factor.ndim and ctx.axis is not None:
            factor = factor.unsqueeze(ctx.axis)
        one = factor.ndim == 0 and factor.device.type == "cpu" and float(factor) == 1.0
        if ctx.inplace:
            ctx.used = True
            return (grad if one else grad.mul_(factor)), None, None, None
        if one:
            return grad, None, None, None
        return (grad * factor).to(grad.dtype), None, None, None


def _run(logits: Tensor, compute: Compute, inplace: bool, axis: int | None) -> Tensor:
    if torch.is_grad_enabled() and logits.requires_grad:
        out: Tensor = _FusedLoss.apply(logits, compute, inplace, axis)
        return out
    return compute(False)[0]


def _compute_dtype(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _grad_buffer(x2: Tensor, logits: Tensor, inplace: bool) -> Tensor:
    """Where the gradient goes: the logits (in place), a private copy, or new."""
    if inplace and x2.is_contiguous():  # not a view with overlapping entries
        return x2
    shared = x2.untyped_storage().data_ptr() == logits.untyped_storage().data_ptr()
    if not shared:
        return x2
    # a new buffer, contiguous whatever the strides of the view (the chunked
    # kernels write into it with out= operations)
    return torch.empty(x2.shape, dtype=x2.dtype, device=x2.device)


# ---------------------------------------------------------------------------
# Softmax cross-entropy
# ---------------------------------------------------------------------------
class _Softmax:
    """One softmax batch, flattened to rows (M, C), and its chunked evaluation."""

    def __init__(
        self, args: dict[str, Any], logits: Tensor, gamma: float | None = None
    ) -> None:
        self.ok = False
        self.reduction = _checks.check_reduction(args["reduction"])
        weight_by = check_weight_by(args.get("weight_by", "label"))
        self.gamma = gamma
        axis = args["axis"]
        self.ax = ax = _checks.normalize_axis(axis, logits.ndim)
        ignore = _checks.check_ignore_index(args["ignore_index"])
        self.eps = _checks.check_unit_interval(
            args["label_smoothing"], "label_smoothing"
        )
        be = backend_of(logits)
        self.cdt = cdt = _compute_dtype(logits)
        self.c = c = int(logits.shape[ax])
        self.elem_shape = tuple(logits.shape[:ax]) + tuple(logits.shape[ax + 1 :])
        lab = be.asarray(args["labels"], like=logits)
        kind = be.kind(lab)
        self.labels: Tensor | None = None
        self.targets: Tensor | None = None
        self.ignore = ignore
        if kind == "integer":
            if tuple(lab.shape) != self.elem_shape:
                return
            # gather needs int64 indices; uint8 segmentation masks are common
            self.labels = lab.detach().reshape(-1).to(torch.int64)
            if not self._labels_valid_native(c, ignore):
                _check_class_ids(be, lab, c, ignore, axis)  # raises if invalid
        elif kind == "floating":
            if ignore is not None or tuple(lab.shape) != tuple(logits.shape):
                return
            lo, hi = torch.aminmax(lab.detach())
            if not (bool(lo >= 0) and bool(hi <= 1)):
                return
            self.targets = _rows(lab.detach(), ax, c)
        else:
            return
        if gamma is not None and (self.labels is None or self.eps != 0.0):
            return  # focal loss with a dense target: the generic path
        cw = prepare_class_vector(
            be,
            args["class_weight"],
            "class_weight",
            num_classes=c,
            axis=ax,
            allow_scalar=False,
            like=logits,
            dtype=cdt,
        )
        self.cost = prepare_cost_matrix(
            be, args.get("cost_matrix"), c, like=logits, dtype=cdt
        )
        self.label_weight = cw if weight_by == "label" else None
        self.pred_weight = cw if weight_by == "prediction" else None
        self.dynamic = self.pred_weight is not None or self.cost is not None
        sw = args["sample_weight"]
        self.sample_weight: Tensor | None = None
        if sw is not None:
            v = sample_weight_to(be, sw, self.elem_shape, like=logits, dtype=cdt)
            self.sample_weight = torch.broadcast_to(v, self.elem_shape).reshape(-1)
        self.rows = _prod(self.elem_shape)
        self.device = logits.device
        self.deferred = self.reduction == "weighted_mean" and self.dynamic
        self.den: Tensor | None = None
        if self.reduction in ("mean", "weighted_mean") and not self.deferred:
            self.den = self._static_den()
        one = torch.ones((), dtype=cdt, device=logits.device)
        self.scale = one if self.den is None else 1.0 / _safe(self.den)
        self.out: Tensor | None = None
        if self.reduction == "none":
            self.out = torch.empty(self.rows, dtype=cdt, device=logits.device)
        self.sums: list[Tensor] = []
        self.dens: list[Tensor] = []
        # per-row upstream gradient, for a backward pass that recomputes rows
        self.upstream: Tensor | None = None
        self.ok = True

    def _labels_valid_native(self, c: int, ignore: int | None) -> bool:
        """True when the compiled check finds every label valid (fast path)."""
        y = self.labels
        if y is None or y.device.type != "cpu" or not y.is_contiguous():
            return False
        if _native.library() is None:
            return False
        a = _native.SoftmaxArgs()
        a.rows, a.classes, a.labels = y.numel(), c, _native.ptr(y)
        a.has_ignore = ignore is not None
        a.ignore_index = 0 if ignore is None else ignore
        return _native.count_bad_labels(a) == 0

    def _rows_of(self, sel: slice | Tensor) -> tuple[Any, Any, Any, Any]:
        """Labels (ignored ones as 0), targets, valid mask, static weight of rows."""
        y = t = valid = w = None
        if self.labels is not None:
            y = self.labels[sel]
            if self.ignore is not None:
                valid = y != self.ignore
                y = torch.where(valid, y, 0)
            if self.label_weight is not None:
                w = self.label_weight[y]
                if valid is not None:
                    w = torch.where(valid, w, 0.0)
        else:
            assert self.targets is not None
            t = self.targets[sel].to(self.cdt)
            if self.label_weight is not None:
                w = t @ self.label_weight
        if self.sample_weight is not None:
            sw = self.sample_weight[sel]
            w = sw if w is None else w * sw
        return y, t, valid, w

    def _static_den(self) -> Tensor:
        """The denominator of "mean" and "weighted_mean", from labels and weights."""
        if (
            self.labels is not None
            and self.labels.is_contiguous()
            and _native.supports(self.label_weight, self.sample_weight)
        ):
            a = self._kernel_args(0, self.rows)
            weighted = self.reduction == "weighted_mean"
            a.den_kind = _native.DEN_WEIGHT if weighted else _native.DEN_COUNT
            den = _native.softmax_den(a, self.cdt)
            return torch.tensor(den, dtype=self.cdt, device=self.device)
        step = max(1, (1 << 20) // max(1, self.c if self.targets is not None else 1))
        parts = []
        for s in range(0, self.rows, step):
            e = min(self.rows, s + step)
            if self.reduction == "mean" and self.ignore is None:
                parts.append(torch.tensor(float(e - s), dtype=self.cdt))
                continue
            _, _, valid, w = self._rows_of(slice(s, e))
            if self.reduction == "weighted_mean" and w is not None:
                parts.append((w if valid is None else torch.where(valid, w, 0.0)).sum())
            elif valid is not None:
                parts.append(valid.sum().to(self.cdt))
            else:
                parts.append(torch.tensor(float(e - s), dtype=self.cdt))
        if not parts:  # no rows
            return torch.zeros((), dtype=self.cdt, device=self.device)
        return torch.stack(parts).sum().to(self.device)

    def run(self, x2: Tensor, grad: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """Loss (reduced) and the gradient of ``x2`` written into ``grad``."""
        m, c = x2.shape
        if x2.dtype != self.cdt and _native.supports(self.out):
            # half precision: the compiled kernel on a float32 copy
            x32 = x2.to(self.cdt)
            g32 = None if grad is None else x32
            if self.native_chunk(x32, g32, 0, m):
                if grad is not None:
                    grad.copy_(x32)
                return self.finish()
        elif self.native_chunk(x2, grad, 0, m):
            return self.finish()
        r = max(1, min(CHUNK_ELEMENTS // c, CHUNK_ROWS))
        same = x2.dtype == self.cdt
        scratch: Tensor | None = None
        for s in range(0, m, r):
            e = min(m, s + r)
            xc = x2[s:e]
            if not same:
                buf = xc = xc.to(self.cdt)
            elif grad is not None:
                buf = grad[s:e]
            else:
                if scratch is None:
                    scratch = torch.empty(
                        (min(r, m), c), dtype=x2.dtype, device=x2.device
                    )
                buf = scratch[: e - s]
            self._chunk(xc, buf, s, e, grad is not None)
            if grad is not None and not same:
                grad[s:e].copy_(buf)
        return self.finish()

    def native_chunk(self, xc: Tensor, buf: Tensor | None, s: int, e: int) -> bool:
        """Rows ``s:e`` (``xc``) by the compiled kernel; False where it cannot."""
        if self.labels is None or xc.dtype != self.cdt:
            return False
        extra = (self.label_weight, self.pred_weight, self.cost, self.sample_weight)
        if not _native.supports(xc, buf, self.out, self.upstream, *extra):
            return False
        if not self.labels.is_contiguous():
            return False
        a = self._kernel_args(s, e)
        a.x, a.grad = _native.ptr(xc), _native.ptr(buf)
        a.out = _native.ptr(self.out, s)
        a.pred_weight = _native.ptr(self.pred_weight)
        a.cost = _native.ptr(self.cost)
        a.upstream = _native.ptr(self.upstream, s)
        bad = torch.empty(min(e - s, _native.BAD_CAPACITY), dtype=torch.int64)
        a.bad, a.bad_capacity = _native.ptr(bad), bad.numel()
        a.den_kind = _native.DEN_WEIGHT if self.deferred else _native.DEN_NONE
        a.eps = self.eps
        a.gamma = -1.0 if self.gamma is None else self.gamma
        a.scale = float(self.scale)
        _native.softmax(a, xc.dtype)
        num = torch.tensor(a.num, dtype=torch.float64)
        den = torch.tensor(a.den, dtype=torch.float64)
        if a.nbad:
            if a.nbad <= bad.numel():
                idx = bad[: a.nbad].sort().values
            else:  # rows left untouched: their maximum is still not finite
                hit = ~torch.isfinite(xc.amax(1)) | torch.isnan(xc).any(1)
                if self.ignore is not None:
                    hit &= self.labels[s:e] != self.ignore
                idx = hit.nonzero().squeeze(1)
            n_add, d_add = self._redo_rows(xc, buf, idx, s)
            num, den = num + n_add, den + d_add
        self.sums.append(num.to(self.cdt))
        if self.deferred:
            self.dens.append(den.to(self.cdt))
        return True

    def _kernel_args(self, s: int, e: int) -> _native.SoftmaxArgs:
        """Kernel arguments for rows ``s:e``: labels and static weights."""
        assert self.labels is not None
        a = _native.SoftmaxArgs()
        a.rows, a.classes = e - s, self.c
        a.labels = _native.ptr(self.labels, s)
        a.label_weight = _native.ptr(self.label_weight)
        a.sample_weight = _native.ptr(self.sample_weight, s)
        a.has_ignore = self.ignore is not None
        a.ignore_index = 0 if self.ignore is None else self.ignore
        return a

    def _redo_rows(
        self, xc: Tensor, buf: Tensor | None, idx: Tensor, s: int
    ) -> tuple[Tensor, Tensor]:
        """Rows ``idx`` of ``xc`` by the generic formulas (logits not finite)."""
        saved = xc[idx]
        y, _, valid, w = self._rows_of(idx + s)
        assert y is not None
        need_grad = buf is not None
        if self.gamma is not None:
            loss, g = _focal_reference(saved, y, self.gamma, need_grad)
        else:
            loss, g = _softmax_reference(saved, y, None, self.eps, need_grad)
        if self.dynamic:
            f = self._dynamic(saved.argmax(1), y, None, valid)
            w = f if w is None else w * f
        wl, keep = _weighted(loss, w, valid)
        if self.out is not None:
            self.out[idx + s] = wl
        den = torch.zeros((), dtype=torch.float64)
        if self.deferred:
            assert w is not None
            den = (w if valid is None else w * valid).sum().double()
        if buf is not None and g is not None:
            base = w if w is not None else torch.ones_like(loss)
            coef = base * self.scale
            if keep is not None:
                coef = torch.where(keep, coef, 0.0)
            if self.upstream is not None:
                coef = coef * self.upstream[idx + s]
            ci = coef[:, None]
            buf[idx] = torch.where(ci != 0, ci * g, 0.0).to(buf.dtype)
        return wl.sum().double(), den

    def finish(self) -> tuple[Tensor, Tensor | None]:
        """The reduced loss and the gradient factor left for the backward pass."""
        factor = None
        if self.out is not None:
            return self.out.reshape(self.elem_shape), factor
        zero = torch.zeros((), dtype=self.cdt, device=self.device)
        num = torch.stack(self.sums).sum() if self.sums else zero
        if self.reduction == "sum":
            return num, factor
        den = self.den
        if den is None:
            den = torch.stack(self.dens).sum() if self.dens else zero
            factor = 1.0 / _safe(den)
        return num / _safe(den), factor

    def _chunk(self, xc: Tensor, buf: Tensor, s: int, e: int, need_grad: bool) -> None:
        c, eps = self.c, self.eps
        y, t, valid, w = self._rows_of(slice(s, e))
        pred = xc.argmax(1) if self.dynamic else None
        if y is not None and c <= SMALL_CLASSES:
            method = "exp"
        elif y is not None and eps == 0.0:
            method = "softmax"
        else:
            method = "log_softmax"
        # rows the generic formulas redo: a max that is not finite, or (softmax)
        # a label probability near float32's smallest normal number
        late = method == "softmax" and buf.data_ptr() != xc.data_ptr()
        mx = xc.amax(1) if method == "exp" or not late else None
        idx: Tensor | None = None
        if mx is not None:
            bad = ~torch.isfinite(mx)
            if method == "softmax" or self.gamma is not None:
                assert y is not None
                bad |= (xc.gather(1, y[:, None]).squeeze(1) - mx) < _UNDERFLOW
            idx = bad.nonzero().squeeze(1) if bool(bad.any()) else None
        saved = None if idx is None else xc[idx].clone()

        q: Tensor | None = None
        pscale: Tensor | None = None
        terms: tuple[Tensor, Tensor] | None = None
        if method == "exp":
            assert y is not None and mx is not None
            torch.sub(xc, mx[:, None], out=buf)
            sy = buf.gather(1, y[:, None]).squeeze(1)
            ssum = buf.sum(1) if eps else None
            buf.exp_()
            tot = buf.sum(1)
            log_tot = tot.log()
            loss = log_tot - sy
            if ssum is not None:
                loss = (1 - eps) * loss - (eps / c) * (ssum - c * log_tot)
            else:
                terms = _label_terms(buf, y)
                if self.gamma is None:
                    loss = _label_nll(terms, loss)
            pscale = 1.0 / tot
        elif method == "softmax":
            assert y is not None
            torch.ops.aten._softmax.out(xc, 1, False, out=buf)
            py = buf.gather(1, y[:, None]).squeeze(1)
            loss = torch.rsub(py.log(), 0.0)
            terms = _label_terms(buf, y)
            if self.gamma is None:
                loss = _label_nll(terms, loss)
            if late:
                bad = ~(py > _TINY)
                if bool(bad.any()):
                    idx = bad.nonzero().squeeze(1)
                    saved = xc[idx]
        else:
            torch.ops.aten._log_softmax.out(xc, 1, False, out=buf)
            if y is not None:
                loss = torch.rsub(buf.gather(1, y[:, None]).squeeze(1), 0.0)
                if eps:
                    loss = (1 - eps) * loss - (eps / c) * buf.sum(1)
            else:
                assert t is not None
                q = t if eps == 0.0 else t * (1 - eps) + eps / c
                loss = torch.rsub(q * buf, 0.0).sum(1)
                nan = torch.isnan(loss)
                if bool(nan.any()):
                    # 0 * log 0 = 0: masked classes with no target mass add nothing
                    qn, bn = q[nan], buf[nan]
                    loss[nan] = (qn * torch.where(qn > 0, -bn, 0.0)).sum(1)
            if need_grad:
                buf.exp_()

        focal: Tensor | None = None
        if self.gamma is not None:
            assert terms is not None
            loss, focal = _focal_terms(terms, self.gamma)

        gref: Tensor | None = None
        if idx is not None and saved is not None:
            if self.gamma is not None:
                assert y is not None
                lref, gref = _focal_reference(saved, y[idx], self.gamma, need_grad)
            else:
                lref, gref = _softmax_reference(
                    saved,
                    None if y is None else y[idx],
                    None if t is None else t[idx],
                    eps,
                    need_grad,
                )
            loss[idx] = lref

        if self.dynamic:
            assert pred is not None
            f = self._dynamic(pred, y, t, valid)
            w = f if w is None else w * f
            if self.deferred:
                self.dens.append((w if valid is None else w * valid).sum())
        wl, keep = _weighted(loss, w, valid)
        if self.out is not None:
            self.out[s:e] = wl
        else:
            self.sums.append(wl.sum())
        if not need_grad:
            return

        base = w if w is not None else torch.ones_like(loss)
        coef = base * self.scale
        if keep is not None:
            coef = torch.where(keep, coef, 0.0)
        if self.upstream is not None:
            coef = coef * self.upstream[s:e]
        row_coef = coef
        if focal is not None:
            coef = coef * focal
        if method == "exp":
            assert pscale is not None
            buf.mul_((coef * pscale)[:, None])
        elif q is not None:
            buf.mul_((coef * q.sum(1))[:, None])
            buf.addcmul_(q, coef[:, None], value=-1.0)
        else:
            buf.mul_(coef[:, None])
        if y is not None and terms is not None:
            # p_y - 1 as minus the other classes' mass: exact when p_y rounds to 1
            ey, others = terms
            buf.scatter_(1, y[:, None], (-coef * (others / (ey + others)))[:, None])
        elif y is not None:
            buf.scatter_add_(1, y[:, None], (-(1 - eps) * coef)[:, None])
            if eps:
                buf.sub_((coef * (eps / c))[:, None])
        if idx is not None and gref is not None:
            ci = row_coef[idx][:, None]
            buf[idx] = torch.where(ci != 0, ci * gref, 0.0)

    def _dynamic(
        self, pred: Tensor, y: Tensor | None, t: Tensor | None, valid: Tensor | None
    ) -> Tensor:
        """The class factor taken from the prediction (constant for autodiff)."""
        f: Tensor | None = None
        if self.pred_weight is not None:
            f = self.pred_weight[pred]
        if self.cost is not None:
            if y is not None:
                k = self.cost[y, pred]
                if valid is not None:
                    k = torch.where(valid, k, 0.0)
            else:
                assert t is not None
                k = (t * self.cost.index_select(1, pred).T).sum(1)
            f = k if f is None else f * k
        assert f is not None
        return f


def _softmax_reference(
    x: Tensor, y: Tensor | None, t: Tensor | None, eps: float, need_grad: bool
) -> tuple[Tensor, Tensor | None]:
    """The generic formulas on a few rows: loss and its gradient (unweighted)."""
    be = backend_of(x)
    c = int(x.shape[-1])
    with torch.enable_grad():
        xr = x.detach().requires_grad_(need_grad)
        logp = log_softmax(be, xr)
        if y is not None:
            loss = -logp.gather(1, y[:, None]).squeeze(1)
            if eps:
                loss = (1 - eps) * loss - (eps / c) * logp.sum(1)
        else:
            assert t is not None
            q = t if eps == 0.0 else (1 - eps) * t + eps / c
            loss = -(q * torch.where(q > 0, logp, torch.zeros_like(logp))).sum(1)
        if not need_grad:
            return loss.detach(), None
        (g,) = torch.autograd.grad(loss.sum(), xr)
    return loss.detach(), g


def _label_terms(buf: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """``e_y`` and the sum of the other entries of each row of ``buf``."""
    yi = y[:, None]
    ey = buf.gather(1, yi)
    buf.scatter_(1, yi, 0.0)
    others = buf.sum(1)
    buf.scatter_(1, yi, ey)
    return ey.squeeze(1), others


def _label_nll(terms: tuple[Tensor, Tensor], fallback: Tensor) -> Tensor:
    """``-log p_y = log1p(others / e_y)``: full relative precision near p_y = 1.

    ``fallback`` is kept where ``e_y`` is too small for the ratio.
    """
    ey, others = terms
    return torch.where(ey > _TINY, torch.log1p(others / ey), fallback)


def _focal_terms(terms: tuple[Tensor, Tensor], gamma: float) -> tuple[Tensor, Tensor]:
    """Focal loss ``(1 - p_y) ** gamma * (-log p_y)`` of each row, and the factor A
    with ``d loss / d x = A * (softmax - onehot)``.

    ``buf`` holds the row's exponentials (any positive scale). ``1 - p_y`` is the
    other classes' mass and ``-log p_y = log1p(others / e_y)``, both to full
    relative precision when ``p_y`` is near 1.
    """
    ey, others = terms
    total = ey + others
    p, one_m = ey / total, others / total
    ce = torch.log1p(others / ey)
    focus = one_m.pow(gamma)
    # (1 - p)^g + g p (1 - p)^(g - 1) (-log p), written to stay finite at p = 1
    ratio = torch.where(one_m > 0, ce / one_m, 1.0)
    return focus * ce, focus * (1 + gamma * p * ratio)


def _focal_reference(
    x: Tensor, y: Tensor, gamma: float, need_grad: bool
) -> tuple[Tensor, Tensor | None]:
    """The generic focal loss on a few rows: loss and its gradient (unweighted)."""
    from ..longtail import softmax_focal_loss

    with disabled(), torch.enable_grad():
        xr = x.detach().requires_grad_(need_grad)
        loss = softmax_focal_loss(xr, y, gamma=gamma, reduction="none")
        if not need_grad:
            return loss.detach(), None
        (g,) = torch.autograd.grad(loss.sum(), xr)
    return loss.detach(), g


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _rows(x: Tensor, ax: int, c: int) -> Tensor:
    """(..., C, ...) with the class axis at ``ax`` as rows (M, C)."""
    if ax != x.ndim - 1:
        x = x.movedim(ax, -1)
    return x.reshape(-1, c)


def _softmax_entry(
    args: dict[str, Any], inplace: bool, gamma: float | None = None
) -> Any:
    logits: Tensor = args["logits"]
    plan = _Softmax(args, logits, gamma)
    if not plan.ok:
        return NotImplemented
    ax = plan.ax
    moved_shape = (*plan.elem_shape, plan.c)

    def compute(need_grad: bool) -> tuple[Tensor, Tensor | None, Tensor | None]:
        # rows that are not contiguous (a class axis that is not the last in
        # memory, a transposed batch) are copied once: the copy then takes the
        # gradient, and the compiled kernel can read it
        x2 = _rows(logits.detach(), ax, plan.c).contiguous()
        grad = _grad_buffer(x2, logits, inplace) if need_grad else None
        out, factor = plan.run(x2, grad)
        if grad is not None:
            grad = grad.reshape(moved_shape)
            if ax != logits.ndim - 1:
                grad = grad.movedim(-1, ax)
        return out, grad, factor

    return _run(logits, compute, inplace, ax)


# ---------------------------------------------------------------------------
# Sigmoid cross-entropy
# ---------------------------------------------------------------------------
class _Sigmoid:
    """One sigmoid batch as a matrix (A, K): A leading rows, K = C * trailing.

    ``focal`` is ``(gamma, alpha)`` for the sigmoid focal loss (``alpha`` None for
    no balancing), ``None`` for the cross-entropy.
    """

    def __init__(
        self,
        args: dict[str, Any],
        logits: Tensor,
        focal: tuple[float, float | None] | None = None,
    ) -> None:
        self.ok = False
        self.focal = focal
        self.reduction = _checks.check_reduction(args["reduction"])
        axis = args["axis"]
        ax = _checks.normalize_axis(axis, logits.ndim)
        self.ignore = ignore = _checks.check_ignore_index(args["ignore_index"])
        self.eps = _checks.check_unit_interval(
            args["label_smoothing"], "label_smoothing"
        )
        be = backend_of(logits)
        self.cdt = cdt = _compute_dtype(logits)
        shape = tuple(int(d) for d in logits.shape)
        self.shape = shape
        lab = be.asarray(args["labels"], like=logits)
        if be.kind(lab) not in ("floating", "integer", "bool"):
            return
        if tuple(lab.shape) != shape:
            return
        lab = lab.detach()
        if ignore is None:
            lo, hi = torch.aminmax(lab.to(cdt))
            ok = bool(lo >= 0) and bool(hi <= 1)
        else:
            lf = lab.to(cdt)
            ok = bool((((lf >= 0) & (lf <= 1)) | (lf == ignore)).all())
        if not ok:
            return
        c = shape[ax]
        a = _prod(shape[:ax])
        b = _prod(shape[ax + 1 :])
        self.a, self.k = a, c * b
        self.targets = lab.reshape(a, self.k)
        self.pos_weight = self._per_label(
            be, args.get("pos_weight"), "pos_weight", c, b, ax, logits
        )
        self.class_weight = self._per_label(
            be, args["class_weight"], "class_weight", c, b, ax, logits
        )
        sw = args["sample_weight"]
        # one weight per row of (A, K) when it is constant along the labels
        # (a weight per sample), else one per element
        self.row_weight: Tensor | None = None
        self.sample_weight: Tensor | None = None
        if sw is not None:
            s = sample_weight_to(be, sw, shape, like=logits, dtype=cdt)
            if all(int(d) == 1 for d in s.shape[ax:]):
                lead = torch.broadcast_to(s.reshape(s.shape[:ax]), shape[:ax])
                self.row_weight = lead.reshape(a).contiguous()
            else:
                self.sample_weight = torch.broadcast_to(s, shape).reshape(a, self.k)
        has_weight = (
            self.class_weight is not None
            or self.sample_weight is not None
            or self.row_weight is not None
        )
        self.static = (
            self.reduction in ("sum", "none")
            or (self.reduction == "mean" and ignore is None)
            or (self.reduction == "weighted_mean" and ignore is None and not has_weight)
        )
        n = float(a * self.k)
        self.scale = 1.0 / n if self.reduction.endswith("mean") and self.static else 1.0
        self.ok = True

    def _per_label(
        self, be: Any, value: Any, name: str, c: int, b: int, axis: int, like: Tensor
    ) -> Tensor | None:
        if value is None:
            return None
        w = _checks.as_weight(be, value, name, like=like, dtype=self.cdt)
        _checks.check_class_vector(w, name, c, axis, allow_scalar=True)
        if tuple(w.shape) in ((), (1,)):
            return w.reshape(())
        return w.repeat_interleave(b) if b > 1 else w

    def run(self, z2: Tensor, grad: Tensor | None) -> tuple[Tensor, Tensor | None]:
        a, k = z2.shape
        done = self._run_native(z2, grad)
        if done is not None:
            return done
        # elementwise work with several chunk-sized temporaries: smaller chunks
        chunk = min(CHUNK_ELEMENTS, SIGMOID_CHUNK_ELEMENTS)
        kk = min(k, chunk)
        rr = max(1, chunk // k)
        same = z2.dtype == self.cdt
        out = None
        if self.reduction == "none":
            out = torch.empty((a, k), dtype=self.cdt, device=z2.device)
        sums: list[Tensor] = []
        dens: list[Tensor] = []
        for s in range(0, a, rr):
            e = min(a, s + rr)
            for c0 in range(0, k, kk):
                c1 = min(k, c0 + kk)
                zc = z2[s:e, c0:c1]
                if not same:
                    zc = zc.to(self.cdt)
                buf = None
                if grad is not None:
                    buf = zc if not same else grad[s:e, c0:c1]
                wl, den = self._chunk(zc, buf, s, e, c0, c1)  # minus the loss
                if out is not None:
                    out[s:e, c0:c1] = torch.rsub(wl, 0.0)
                else:
                    sums.append(wl.sum())
                    if den is not None:
                        dens.append(den)
                if grad is not None and not same and buf is not None:
                    grad[s:e, c0:c1].copy_(buf)
        if out is not None:
            return out.reshape(self.shape), None
        num = torch.rsub(torch.stack(sums).sum(), 0.0)
        if self.reduction == "sum":
            return num, None
        if self.static:
            den_t = torch.tensor(float(a * k), dtype=self.cdt, device=z2.device)
            return num / den_t, None
        den_t = torch.stack(dens).sum()
        factor = 1.0 / _safe(den_t)
        return num / _safe(den_t), factor

    def _run_native(
        self, z2: Tensor, grad: Tensor | None
    ) -> tuple[Tensor, Tensor | None] | None:
        """The whole batch by the compiled kernel, or None where it cannot."""
        if z2.dtype != self.cdt:
            # half precision: the compiled kernel on a float32 copy
            if not _native.supports(z2.new_empty((), dtype=self.cdt)):
                return None
            z32 = z2.to(self.cdt)
            done = self._run_native(z32, None if grad is None else z32)
            if done is not None and grad is not None:
                grad.copy_(z32)
            return done
        if not _native.supports(z2):
            return None
        a, k = z2.shape
        # the kernel reads targets of the logits' dtype (others are converted)
        t = self.targets.to(self.cdt).contiguous()
        pw, cw = _cols_full(self.pos_weight, k), _cols_full(self.class_weight, k)
        rw = self.row_weight
        ew = None if self.sample_weight is None else self.sample_weight.contiguous()
        # few labels per row: r rows at a time as one longer row of the kernel,
        # the per-label weights repeated r times (a per-row weight becomes one
        # per element)
        r = 1
        if k < SIGMOID_GROUP:
            r = max(1, SIGMOID_GROUP // k)
            if rw is not None:
                ew = torch.broadcast_to(rw[:, None], (a, k)).contiguous()
                rw = None
        out = None
        if self.reduction == "none":
            out = torch.empty((a, k), dtype=self.cdt, device=z2.device)
        if not _native.supports(z2, grad, t, pw, cw, rw, ew, out):
            return None
        num = den = 0.0
        main = (a // r) * r
        for s, e, rr in ((0, main, r), (main, a, 1)):
            if e <= s:
                continue
            shape = ((e - s) // rr, k * rr)

            def part(
                x: Tensor | None,
                s: int = s,
                e: int = e,
                shape: tuple[int, int] = shape,
            ) -> Tensor | None:
                return None if x is None else x[s:e].reshape(shape)

            args = _native.SigmoidArgs()
            args.rows, args.cols = shape
            args.z, args.t = _native.ptr(part(z2)), _native.ptr(part(t))
            args.grad, args.out = _native.ptr(part(grad)), _native.ptr(part(out))
            # kept in locals: the kernel reads their memory
            pw_r = None if pw is None else pw.repeat(rr)
            cw_r = None if cw is None else cw.repeat(rr)
            args.pos_weight, args.col_weight = _native.ptr(pw_r), _native.ptr(cw_r)
            args.row_weight = _native.ptr(None if rw is None else rw[s:e])
            args.elem_weight = _native.ptr(part(ew))
            args.has_ignore = self.ignore is not None
            args.ignore_value = 0.0 if self.ignore is None else float(self.ignore)
            if self.static:
                args.den_kind = _native.DEN_NONE
            elif self.reduction == "mean":
                args.den_kind = _native.DEN_COUNT
            else:
                args.den_kind = _native.DEN_WEIGHT
            args.eps, args.scale = self.eps, float(self.scale)
            if self.focal is not None:
                args.focal = 1
                args.gamma = self.focal[0]
                args.alpha = -1.0 if self.focal[1] is None else self.focal[1]
            _native.sigmoid(args, z2.dtype)
            num += args.num
            den += args.den
        if out is not None:
            return out.reshape(self.shape), None
        num_t = torch.tensor(num, dtype=self.cdt, device=z2.device)
        if self.reduction == "sum":
            return num_t, None
        if self.static:
            return num_t / float(a * k), None
        den_t = torch.tensor(den, dtype=self.cdt, device=z2.device)
        return num_t / _safe(den_t), 1.0 / _safe(den_t)

    def _chunk(
        self, zc: Tensor, buf: Tensor | None, s: int, e: int, c0: int, c1: int
    ) -> tuple[Tensor, Tensor | None]:
        eps = self.eps
        t = self.targets[s:e, c0:c1].to(self.cdt)
        valid = None
        if self.ignore is not None:
            valid = t != self.ignore
            t = torch.where(valid, t, 0.0)
        q = t if eps == 0.0 else t * (1 - eps) + eps / 2
        pw = None if self.pos_weight is None else _cols(self.pos_weight, c0, c1)
        w = self._chunk_weight(s, e, c0, c1)
        gref = None
        if self.focal is not None:
            # the focal loss: the generic formulas, differentiated by autograd
            loss, gref = self._reference(zc, q, pw, buf is not None)
            neg = torch.rsub(loss, 0.0)
            wl, keep = _weighted(neg, w, valid)
        else:
            pq = q if pw is None else q * pw
            kq = None if pw is None else torch.sub(pq, q).add_(1.0)
            # minus the loss, from the stable tail -log(1 + exp(-|z|)) shared by
            # softplus(z) = relu(z) + tail and softplus(-z) = relu(-z) + tail
            neg = F.logsigmoid(zc.abs())
            rz = zc.relu()
            if kq is not None:
                neg.mul_(kq)
            neg.addcmul_(pq, torch.sub(rz, zc), value=-1.0)
            neg.addcmul_(torch.rsub(q, 1.0), rz, value=-1.0)
            wl, keep = _weighted(neg, w, valid)
            if not bool(torch.isfinite(wl.sum())):
                # a saturated logit: the generic formula leaves out zero coefficients
                loss, gref = self._reference(zc, q, pw, buf is not None)
                neg = torch.rsub(loss, 0.0)
                wl, keep = _weighted(neg, w, valid)
        den = self._chunk_den(neg, w, valid)
        if buf is None:
            return wl, den

        coef = self._chunk_coef(neg, w, keep)
        if gref is not None:
            buf.copy_(torch.where(torch.as_tensor(coef) != 0, gref * coef, 0.0))
            return wl, den
        # minus the gradient, P q - k sigmoid(z), then times minus the weight
        torch.sigmoid(zc, out=buf)
        if kq is not None:
            torch.addcmul(pq, kq, buf, value=-1.0, out=buf)
        else:
            torch.sub(pq, buf, out=buf)
        buf.mul_(-coef)
        return wl, den

    def _reference(
        self, z: Tensor, q: Tensor, pw: Tensor | None, need_grad: bool
    ) -> tuple[Tensor, Tensor | None]:
        """The chunk's loss by the generic formulas, and its gradient by autograd."""
        be = backend_of(z)
        with torch.enable_grad():
            zr = z.detach().clone().requires_grad_(need_grad)
            if self.focal is None:
                loss = sigmoid_terms(be, zr, q, pw)
            else:
                from ..longtail import _sigmoid_focal_terms

                loss = _sigmoid_focal_terms(be, zr, q, *self.focal)
            if not need_grad:
                return loss.detach(), None
            (g,) = torch.autograd.grad(loss.sum(), zr)
        return loss.detach(), g

    def _chunk_weight(self, s: int, e: int, c0: int, c1: int) -> Tensor | None:
        """Class weight times sample weight of the chunk's elements (None: all 1)."""
        w = None if self.class_weight is None else _cols(self.class_weight, c0, c1)
        if self.sample_weight is not None:
            sw = self.sample_weight[s:e, c0:c1]
            w = sw if w is None else w * sw
        elif self.row_weight is not None:
            sw = self.row_weight[s:e, None]
            w = sw if w is None else w * sw
        return w

    def _chunk_den(
        self, neg: Tensor, w: Tensor | None, valid: Tensor | None
    ) -> Tensor | None:
        """The chunk's share of a denominator that depends on the data."""
        if self.static:
            return None
        if self.reduction == "mean":
            assert valid is not None
            return valid.sum().to(self.cdt)
        ww = torch.ones_like(neg) if w is None else w + torch.zeros_like(neg)
        return (ww if valid is None else torch.where(valid, ww, 0.0)).sum()

    def _chunk_coef(
        self, neg: Tensor, w: Tensor | None, keep: Tensor | None
    ) -> Tensor | float:
        """What multiplies each element's gradient: weight / static denominator."""
        if w is None and keep is None:
            return self.scale
        base = torch.full_like(neg, self.scale) if w is None else w * self.scale
        return base if keep is None else torch.where(keep, base, 0.0)


def _cols_full(w: Tensor | None, k: int) -> Tensor | None:
    """A per-label vector of length ``k`` (a scalar repeated), contiguous."""
    if w is None:
        return None
    return (w.expand(k) if w.ndim == 0 else w).contiguous()


def _cols(w: Tensor, c0: int, c1: int) -> Tensor:
    return w if w.ndim == 0 else w[c0:c1]


def _sigmoid_entry(
    args: dict[str, Any],
    inplace: bool,
    focal: tuple[float, float | None] | None = None,
) -> Any:
    logits: Tensor = args["logits"]
    plan = _Sigmoid(args, logits, focal)
    if not plan.ok:
        return NotImplemented

    def compute(need_grad: bool) -> tuple[Tensor, Tensor | None, Tensor | None]:
        z2 = logits.detach().reshape(plan.a, plan.k)
        grad = _grad_buffer(z2, logits, inplace) if need_grad else None
        out, factor = plan.run(z2, grad)
        if grad is not None:
            grad = grad.reshape(plan.shape)
        return out, grad, factor

    return _run(logits, compute, inplace, None)
