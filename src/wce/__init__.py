"""wce: weighted cross-entropy for imbalanced data, on NumPy, PyTorch, JAX and
TensorFlow."""

from .losses import sigmoid_cross_entropy, softmax_cross_entropy

__all__ = ["sigmoid_cross_entropy", "softmax_cross_entropy"]
__version__ = "0.1.0"
