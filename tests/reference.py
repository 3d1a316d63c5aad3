"""An independent reference of the contract in ../shared/design/semantics.md.

Written element by element in 40-digit mpmath straight from the formulas, sharing
no code with wce, so it can disagree with it.
"""

from __future__ import annotations

from typing import Any

import mpmath
import numpy as np

mpmath.mp.dps = 40


def _sample_weights(sample_weight: Any, elem_shape: tuple[int, ...]) -> np.ndarray:
    """Leading-dimension alignment: (N,) weighs every element of sample n."""
    if sample_weight is None:
        return np.ones(elem_shape)
    sw = np.asarray(sample_weight, dtype=np.float64)
    sw = sw.reshape(sw.shape + (1,) * (len(elem_shape) - sw.ndim))
    return np.broadcast_to(sw, elem_shape)


def _reduce(losses: list, weights: list, valid: list, reduction: str) -> Any:
    wl = [
        w * loss if (ok and w != 0) else mpmath.mpf(0)
        for loss, w, ok in zip(losses, weights, valid, strict=True)
    ]
    if reduction == "none":
        return np.array([float(x) for x in wl])
    total = mpmath.fsum(wl)
    if reduction == "sum":
        return float(total)
    if reduction == "mean":
        den = mpmath.mpf(int(sum(bool(v) for v in valid)))
    else:
        den = mpmath.fsum(w for w, v in zip(weights, valid, strict=True) if v)
    return 0.0 if den == 0 else float(total / den)


def softmax_cross_entropy(
    logits: Any,
    labels: Any,
    *,
    class_weight: Any = None,
    weight_by: str = "label",
    cost_matrix: Any = None,
    sample_weight: Any = None,
    label_smoothing: float = 0.0,
    ignore_index: int | None = None,
    axis: int = -1,
    reduction: str = "mean",
) -> Any:
    x = np.moveaxis(np.asarray(logits, dtype=np.float64), axis, -1)
    labels = np.asarray(labels)
    hard = labels.dtype.kind in "iu"
    c = x.shape[-1]
    elem_shape = x.shape[:-1]
    rows = x.reshape(-1, c)
    if hard:
        ids = labels.reshape(-1)
        targets = None
    else:
        targets = np.moveaxis(labels.astype(np.float64), axis, -1).reshape(-1, c)
    sw = _sample_weights(sample_weight, elem_shape).reshape(-1)
    eps = mpmath.mpf(label_smoothing)
    losses, weights, valid = [], [], []
    for i, row in enumerate(rows):
        z = [mpmath.mpf(float(v)) for v in row]
        lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in z))
        logp = [v - lse for v in z]
        if hard:
            ok = ignore_index is None or int(ids[i]) != ignore_index
            t = [mpmath.mpf(int(k == ids[i])) for k in range(c)]
        else:
            ok = True
            t = [mpmath.mpf(float(v)) for v in targets[i]]
        q = [(1 - eps) * tk + eps / c for tk in t]
        loss = -mpmath.fsum(qk * lp for qk, lp in zip(q, logp, strict=True) if qk != 0)
        pred = int(np.argmax(row))
        a = mpmath.mpf(1)
        if class_weight is not None:
            cw = [mpmath.mpf(float(v)) for v in class_weight]
            if weight_by == "label":
                a = mpmath.fsum(w * tk for w, tk in zip(cw, t, strict=True))
            else:
                a = cw[pred]
        if cost_matrix is not None:
            cm = np.asarray(cost_matrix, dtype=np.float64)
            a *= mpmath.fsum(t[k] * mpmath.mpf(cm[k, pred]) for k in range(c))
        losses.append(loss)
        weights.append(a * mpmath.mpf(float(sw[i])))
        valid.append(ok)
    out = _reduce(losses, weights, valid, reduction)
    return out.reshape(elem_shape) if reduction == "none" else out


def sigmoid_cross_entropy(
    logits: Any,
    labels: Any,
    *,
    pos_weight: Any = None,
    class_weight: Any = None,
    sample_weight: Any = None,
    label_smoothing: float = 0.0,
    ignore_index: int | None = None,
    axis: int = -1,
    reduction: str = "mean",
) -> Any:
    z = np.asarray(logits, dtype=np.float64)
    t = np.asarray(labels, dtype=np.float64)
    shape = z.shape

    def along(v: Any) -> np.ndarray:
        if v is None:
            return np.ones(shape)
        v = np.asarray(v, dtype=np.float64)
        if v.ndim == 0:
            return np.broadcast_to(v, shape)
        view = [1] * z.ndim
        view[axis] = v.shape[0]
        return np.broadcast_to(v.reshape(view), shape)

    pw, cw = along(pos_weight).ravel(), along(class_weight).ravel()
    sw = _sample_weights(sample_weight, shape).ravel()
    eps = mpmath.mpf(label_smoothing)
    losses, weights, valid = [], [], []
    for zi, ti, p, c, s in zip(z.ravel(), t.ravel(), pw, cw, sw, strict=True):
        ok = bool(ignore_index is None or ti != ignore_index)
        tt = mpmath.mpf(float(ti)) if ok else mpmath.mpf(0)
        q = (1 - eps) * tt + eps / 2
        zz = mpmath.mpf(float(zi))
        loss = mpmath.mpf(0)
        if q != 0:
            loss += mpmath.mpf(float(p)) * q * mpmath.log1p(mpmath.exp(-zz))
        if q != 1:
            loss += (1 - q) * mpmath.log1p(mpmath.exp(zz))
        losses.append(loss)
        weights.append(mpmath.mpf(float(c)) * mpmath.mpf(float(s)))
        valid.append(ok)
    out = _reduce(losses, weights, valid, reduction)
    return out.reshape(shape) if reduction == "none" else out
