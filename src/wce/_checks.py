"""Input checks shared by every public function, with one message template.

Static checks (shapes, dtypes, scalar ranges) always run, so they also guard
traced code under ``jax.jit``, ``torch.compile`` and ``tf.function``. Checks that
must read the data (labels in range, weights non-negative) run only on concrete
arrays; the public docstrings say which those are.
"""

from __future__ import annotations

import numbers
from typing import Any

from ._backend import Backend

REDUCTIONS = ("none", "sum", "mean", "weighted_mean")


def message(argument: str, expected: str, received: str, fix: str) -> str:
    """``argument`` must be ``expected``, got ``received``; ``fix``."""
    return f"{argument} must be {expected}, got {received}; {fix}"


def fail(
    argument: str, expected: str, received: str, fix: str, *, cls: type = ValueError
) -> None:
    raise cls(message(argument, expected, received, fix))


def normalize_axis(axis: Any, ndim: int, argument: str = "axis") -> int:
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        fail(
            argument,
            "an int",
            repr(axis),
            "pass the index of the class axis",
            cls=TypeError,
        )
    if not -ndim <= axis < ndim:
        fail(
            argument,
            f"in [-{ndim}, {ndim - 1}] for logits of rank {ndim}",
            str(axis),
            "pass the index of the class axis (-1 for (N, C), 1 for (N, C, H, W))",
        )
    return int(axis) % ndim


def check_reduction(reduction: Any) -> str:
    if reduction not in REDUCTIONS:
        fail(
            "reduction",
            "one of " + ", ".join(repr(r) for r in REDUCTIONS),
            repr(reduction),
            "'mean' divides by the number of counted elements, "
            "'weighted_mean' by the sum of their weights",
        )
    return str(reduction)


def check_unit_interval(
    value: Any, argument: str, fix: str = "0 turns it off"
) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        fail(
            argument,
            "a float in [0, 1]",
            repr(value),
            "pass a Python float",
            cls=TypeError,
        )
    if not 0.0 <= float(value) <= 1.0:
        fail(argument, "in [0, 1]", repr(value), fix)
    return float(value)


def check_nonnegative_scalar(value: Any, argument: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        fail(
            argument,
            "a non-negative float",
            repr(value),
            "pass a Python float",
            cls=TypeError,
        )
    if not float(value) >= 0.0:
        fail(argument, "a non-negative float", repr(value), "pass a value >= 0")
    return float(value)


def check_ignore_index(ignore_index: Any) -> int | None:
    if ignore_index is None:
        return None
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        fail(
            "ignore_index",
            "an int or None",
            repr(ignore_index),
            "pass the label value to leave out, such as -100",
            cls=TypeError,
        )
    return int(ignore_index)


def as_weight(
    be: Backend,
    value: Any,
    argument: str,
    *,
    like: Any,
    dtype: Any,
) -> Any:
    """A weight array on ``like``'s backend and device, cast to ``dtype``.

    Integer and half-precision weights are cast; boolean and complex weights raise
    ``TypeError``; negative or non-finite entries raise ``ValueError`` (eager only).
    """
    w = be.asarray(value, like=like)
    kind = be.kind(w)
    if kind in ("bool", "complex"):
        fail(
            argument,
            "a real-valued array",
            f"dtype {be.dtype_name(w.dtype)}",
            "cast it to float (a boolean mask belongs in ignore_index or "
            "sample_weight as 0.0 and 1.0)",
            cls=TypeError,
        )
    if kind not in ("floating", "integer"):
        fail(
            argument,
            "a real-valued array",
            f"dtype {be.dtype_name(w.dtype)}",
            "cast it to float",
            cls=TypeError,
        )
    w = be.xp.astype(w, dtype)
    if not be.is_traced(w) and not be.is_traced(like):
        host = be.to_numpy(w)
        if host.size and not (host >= 0).all():
            bad = host[~(host >= 0)].ravel()[0]
            fail(
                argument,
                "non-negative and finite (checked outside jit/compile)",
                f"an entry equal to {bad}",
                "weights scale a loss and cannot be negative or NaN",
            )
        if host.size and not (host < float("inf")).all():
            fail(
                argument,
                "finite (checked outside jit/compile)",
                "an infinite entry",
                "use a large finite weight instead",
            )
    return w


def check_class_vector(
    w: Any, argument: str, num_classes: int, axis: int, *, allow_scalar: bool
) -> None:
    shape = tuple(w.shape)
    if allow_scalar and shape in ((), (1,)):
        return
    if shape != (num_classes,):
        what = "a scalar or shape" if allow_scalar else "shape"
        fail(
            argument,
            f"{what} ({num_classes},), one entry per class on axis {axis} of logits",
            f"shape {shape}",
            "pass one weight per class along the class axis (set axis= if the "
            "classes are on another axis)",
        )


def fmt_shape(shape: Any) -> str:
    return (
        "("
        + ", ".join(str(int(s)) if s is not None else "None" for s in shape)
        + ("," if len(shape) == 1 else "")
        + ")"
    )
