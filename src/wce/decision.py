"""The decision side of imbalance: move the argmax, not the training loss.

A model trained without weights estimates ``p(y | x)``, which follows the training
prior. Two ways to act on rare classes at prediction time:

* multiply the class scores by weights before the argmax: ``argmax_c w_c p_c``,
  that is ``argmax_c (logits_c + log w_c)``;
* post-hoc logit adjustment (Menon et al. 2021): ``argmax_c (logits_c - tau *
  log prior_c)``, which for ``tau = 1`` turns a model of the training prior into
  one of a uniform prior.
"""

from __future__ import annotations

from typing import Any

from . import _checks
from ._backend import convert
from ._checks import fail
from ._core import (
    along_axis,
    cast_logits,
    class_axis,
    eager,
    finish,
    prepare_class_vector,
)

__all__ = ["adjust_logits"]


def adjust_logits(
    logits: Any,
    *,
    class_weight: Any | None = None,
    prior: Any | None = None,
    tau: float = 1.0,
    axis: int = -1,
) -> Any:
    """Logits shifted so that their argmax weighs classes or removes a prior.

    In short: ``logits + log(class_weight) - tau * log(prior)``.

    Exactly, along ``axis`` for each class ``c``:

    * with ``class_weight``: ``logits_c + log(class_weight_c)``, so that
      ``softmax`` of the result is proportional to ``class_weight_c * p_c`` and its
      argmax is that of the weighted scores. A weight of 0 gives ``-inf``: the
      class is never predicted;
    * with ``prior``: ``logits_c - tau * log(prior_c)``; the prior need not sum to
      1, as a constant shift changes neither the argmax nor the softmax;
    * with both, both shifts; with neither, the logits unchanged (in the compute
      dtype).

    The shift is a constant added to the logits, so the gradient with respect to
    the logits is the identity (and flows to ``class_weight`` and ``prior`` too).

    Args:
        logits: unnormalised scores of shape (N, C), or (N, C, d1, ..., dk) with
            ``axis=1``; any floating dtype (half precision is computed in float32).
        class_weight: non-negative weight per class, shape (C,).
        prior: positive class prior (or class counts), shape (C,), such as
            ``class_counts(train_labels)``.
        tau: the strength of the prior adjustment, >= 0.
        axis: the class axis of ``logits``.

    Returns:
        The adjusted logits, of the shape of ``logits``, same backend and device;
        float32, or float64 for float64 logits.

    Raises:
        ValueError: ``class_weight`` or ``prior`` not of shape (C,), ``tau < 0``,
            ``axis`` out of range; outside tracing, a negative or non-finite
            weight, or a prior entry that is not positive and finite.
        TypeError: non-float logits, boolean or complex weights, non-real ``tau``.

    Examples:
        >>> import numpy as np
        >>> logits = np.log(np.array([[0.7, 0.2, 0.1]]))
        >>> adjust_logits(logits, class_weight=[1.0, 1.0, 8.0]).argmax(-1)
        array([2])
        >>> prior = np.array([0.7, 0.2, 0.1])
        >>> np.exp(adjust_logits(logits, prior=prior)).round(6)
        array([[1., 1., 1.]])
    """
    tau = _checks.check_nonnegative_scalar(tau, "tau")
    be, logits = convert(logits)
    ax = class_axis(logits, axis)
    x, cdt = cast_logits(be, logits)
    xp = be.xp
    num_classes = int(x.shape[ax])

    if class_weight is not None:
        w = prepare_class_vector(
            be,
            class_weight,
            "class_weight",
            num_classes=num_classes,
            axis=axis,
            allow_scalar=False,
            like=logits,
            dtype=cdt,
        )
        zero = xp.zeros_like(w)
        log_w = xp.where(
            w > 0, xp.log(xp.where(w > 0, w, zero + 1)), zero - float("inf")
        )
        x = x + along_axis(be, log_w, x.ndim, ax)
    if prior is not None:
        p = prepare_class_vector(
            be,
            prior,
            "prior",
            num_classes=num_classes,
            axis=axis,
            allow_scalar=False,
            like=logits,
            dtype=cdt,
        )
        if eager(be, p):
            host = be.to_numpy(p)
            if not (host > 0).all():
                bad = int((~(host > 0)).nonzero()[0][0])
                fail(
                    "prior",
                    "positive for every class",
                    f"{host[bad]} for class {bad}",
                    "pass class frequencies or counts, with "
                    "a small positive value for a class that never occurs",
                )
        x = x - tau * along_axis(be, xp.log(p), x.ndim, ax)
    return finish(be, x)
