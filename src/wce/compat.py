"""TensorFlow's cross-entropy functions, with its argument names, on every backend.

Each returns the unreduced loss, as ``tf.nn`` does, for NumPy, PyTorch, JAX and
TensorFlow arrays alike. They differ from ``tf.nn`` only where it gives NaN: a
``-inf`` logit with zero target mass adds 0, and saturated logits (``+-inf``) give
the exact finite loss where there is one. Half-precision logits are computed, and
returned, in float32.

Not checked, as in TensorFlow: targets of the sigmoid functions outside [0, 1] and
probabilities that do not sum to 1 are used as given. Probabilities outside [0, 1]
and class ids out of range raise, as in :func:`wce.softmax_cross_entropy`.
"""

from __future__ import annotations

from typing import Any

from ._backend import convert
from ._checks import fail, fmt_shape
from ._core import cast_logits, finish, sigmoid_terms
from .losses import softmax_cross_entropy

__all__ = [
    "sigmoid_cross_entropy_with_logits",
    "softmax_cross_entropy_with_logits",
    "sparse_softmax_cross_entropy_with_logits",
    "weighted_cross_entropy_with_logits",
]


def _sigmoid(labels: Any, logits: Any, pos_weight: Any | None) -> Any:
    be, logits = convert(logits)
    z, cdt = cast_logits(be, logits)
    t = be.xp.astype(be.asarray(labels, like=logits), cdt)
    if tuple(t.shape) != tuple(z.shape):
        fail(
            "labels",
            f"the logits' shape {fmt_shape(z.shape)}",
            f"shape {fmt_shape(t.shape)}",
            "pass one target per logit",
        )
    if pos_weight is not None:
        pos_weight = be.xp.astype(be.asarray(pos_weight, like=logits), cdt)
    return finish(be, sigmoid_terms(be, z, t, pos_weight))


def sigmoid_cross_entropy_with_logits(labels: Any, logits: Any) -> Any:
    """``tf.nn.sigmoid_cross_entropy_with_logits``: elementwise, unreduced.

    ``labels * -log(sigmoid(logits)) + (1 - labels) * -log(1 - sigmoid(logits))``.

    Args:
        labels: targets of the shape of ``logits``.
        logits: any shape.

    Returns:
        The loss of the shape of ``logits``.

    Examples:
        >>> import numpy as np
        >>> sigmoid_cross_entropy_with_logits(np.array([1.0, 0.0]),
        ...                                   np.array([0.0, np.inf]))
        array([0.69314718,        inf])
    """
    return _sigmoid(labels, logits, None)


def weighted_cross_entropy_with_logits(
    labels: Any, logits: Any, pos_weight: Any
) -> Any:
    """``tf.nn.weighted_cross_entropy_with_logits``: the positive term times
    ``pos_weight``.

    ``pos_weight * labels * -log(sigmoid(logits)) + (1 - labels) * -log(1 -
    sigmoid(logits))``; ``pos_weight`` broadcasts against ``logits`` by the usual
    trailing-axis rule, as in TensorFlow (use :func:`wce.sigmoid_cross_entropy`
    for a check against the label axis).

    Examples:
        >>> import numpy as np
        >>> weighted_cross_entropy_with_logits(np.array([1.0]), np.array([0.0]), 3.0)
        array([2.07944154])
    """
    return _sigmoid(labels, logits, pos_weight)


def softmax_cross_entropy_with_logits(labels: Any, logits: Any, axis: int = -1) -> Any:
    """``tf.nn.softmax_cross_entropy_with_logits``: probability labels, unreduced.

    ``-sum_c labels_c * log softmax(logits)_c`` along ``axis``.

    Args:
        labels: class probabilities of the shape of ``logits``.
        logits: unnormalised scores.
        axis: the class axis.

    Returns:
        The loss of the shape of ``logits`` without ``axis``.

    Examples:
        >>> import numpy as np
        >>> softmax_cross_entropy_with_logits(np.array([[0.0, 1.0]]),
        ...                                   np.array([[-np.inf, 0.0]]))
        array([0.])
    """
    be, probs = convert(labels)
    if be.kind(probs) == "integer":
        probs = be.xp.astype(probs, be.xp.float32)
    return softmax_cross_entropy(logits, probs, axis=axis, reduction="none")


def sparse_softmax_cross_entropy_with_logits(labels: Any, logits: Any) -> Any:
    """``tf.nn.sparse_softmax_cross_entropy_with_logits``: class ids, unreduced.

    ``-log softmax(logits)[labels]`` along the last axis.

    Args:
        labels: integer class ids of shape ``logits.shape[:-1]``.
        logits: unnormalised scores, classes last.

    Returns:
        The loss of the shape of ``labels``.

    Examples:
        >>> import numpy as np
        >>> sparse_softmax_cross_entropy_with_logits(np.array([1]),
        ...                                          np.array([[1e9, 1e9]]))
        array([0.69314718])
    """
    return softmax_cross_entropy(logits, labels, reduction="none")
