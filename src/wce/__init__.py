"""wce: weighted cross-entropy for imbalanced data, on NumPy, PyTorch, JAX and
TensorFlow.

The losses, class weights and decision rule are here; TensorFlow's names are in
:mod:`wce.compat`. The framework adapters import their framework, so they are
imported by name: ``import wce.torch``, ``import wce.keras``, ``import
wce.distributed``.
"""

from . import compat as compat
from ._fused import linear_cross_entropy, use_fused_kernels
from .decision import adjust_logits
from .longtail import (
    asymmetric_loss,
    drw_weights,
    expected_cost_loss,
    ldam_loss,
    logit_adjusted_cross_entropy,
    sigmoid_focal_loss,
    softmax_focal_loss,
)
from .losses import sigmoid_cross_entropy, softmax_cross_entropy
from .weights import ClassCounter, class_counts, class_weights, pos_weight

__all__ = [
    "ClassCounter",
    "adjust_logits",
    "asymmetric_loss",
    "class_counts",
    "class_weights",
    "drw_weights",
    "expected_cost_loss",
    "ldam_loss",
    "linear_cross_entropy",
    "logit_adjusted_cross_entropy",
    "pos_weight",
    "sigmoid_cross_entropy",
    "sigmoid_focal_loss",
    "softmax_cross_entropy",
    "softmax_focal_loss",
    "use_fused_kernels",
]
__version__ = "0.1.0"
