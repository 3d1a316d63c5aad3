"""One array namespace per framework, so the maths is written once.

NumPy, PyTorch and JAX go through ``array_api_compat``; TensorFlow goes through a
small shim over ``tf`` and ``tf.experimental.numpy`` that offers the same names.
The few things the array API has no word for (stopping gradients, telling a traced
value from a concrete one) are methods of :class:`Backend`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import array_api_compat.numpy as _compat_numpy
import numpy as np

__all__ = ["Backend", "backend_of", "convert"]

_HALF_NAMES = frozenset({"float16", "bfloat16"})


def _module_loaded(name: str) -> ModuleType | None:
    return sys.modules.get(name)


def _is_tf_tensor(x: Any) -> bool:
    tf = _module_loaded("tensorflow")
    if tf is None:
        return False
    return isinstance(x, (tf.Tensor, tf.Variable))


def _is_keras_tensor(x: Any) -> bool:
    keras = _module_loaded("keras")
    return keras is not None and type(x).__name__ == "KerasTensor"


def _skip_autograph() -> None:
    """Keep tf.function's autograph out of wce, which has no tensor-dependent
    Python control flow: traced as plain Python, the code runs as written."""
    try:
        from tensorflow.python.autograph.core import config, config_lib
    except ImportError:  # a TensorFlow without this layout: autograph converts
        return
    rule = config_lib.DoNotConvert("wce")
    if not any(getattr(r, "_prefix", None) == "wce" for r in config.CONVERSION_RULES):
        config.CONVERSION_RULES = (rule, *config.CONVERSION_RULES)


class _TensorFlowNamespace:
    """The subset of the array API that wce uses, on TensorFlow tensors."""

    def __init__(self) -> None:
        import tensorflow as tf
        import tensorflow.experimental.numpy as tnp

        _skip_autograph()

        self._tf = tf
        self._tnp = tnp
        self.float16 = tf.float16
        self.bfloat16 = tf.bfloat16
        self.float32 = tf.float32
        self.float64 = tf.float64
        self.int32 = tf.int32
        self.int64 = tf.int64
        self.bool = tf.bool

    # creation and conversion
    def asarray(self, x: Any, dtype: Any = None, device: Any = None) -> Any:
        del device
        if isinstance(x, (self._tf.Tensor, self._tf.Variable)):
            t = self._tf.convert_to_tensor(x)
            return t if dtype is None else self._tf.cast(t, dtype)
        return self._tf.convert_to_tensor(np.asarray(x), dtype=dtype)

    def astype(self, x: Any, dtype: Any, copy: bool = True) -> Any:
        del copy
        return self._tf.cast(x, dtype)

    def zeros_like(self, x: Any, dtype: Any = None) -> Any:
        return self._tf.zeros_like(x, dtype=dtype)

    def ones_like(self, x: Any, dtype: Any = None) -> Any:
        return self._tf.ones_like(x, dtype=dtype)

    # shape
    def reshape(self, x: Any, shape: tuple[int, ...]) -> Any:
        return self._tf.reshape(x, shape)

    def moveaxis(self, x: Any, source: int, destination: int) -> Any:
        return self._tnp.moveaxis(x, source, destination)

    def expand_dims(self, x: Any, axis: int = 0) -> Any:
        return self._tf.expand_dims(x, axis)

    def broadcast_to(self, x: Any, shape: tuple[int, ...]) -> Any:
        return self._tf.broadcast_to(x, shape)

    # elementwise
    def where(self, cond: Any, a: Any, b: Any) -> Any:
        return self._tf.where(cond, a, b)

    def exp(self, x: Any) -> Any:
        return self._tf.exp(x)

    def log(self, x: Any) -> Any:
        return self._tf.math.log(x)

    def log1p(self, x: Any) -> Any:
        return self._tf.math.log1p(x)

    def expm1(self, x: Any) -> Any:
        return self._tf.math.expm1(x)

    def sqrt(self, x: Any) -> Any:
        return self._tf.sqrt(x)

    def maximum(self, a: Any, b: Any) -> Any:
        return self._tf.maximum(a, b)

    def isfinite(self, x: Any) -> Any:
        return self._tf.math.is_finite(x)

    def logical_and(self, a: Any, b: Any) -> Any:
        return self._tf.logical_and(a, b)

    def logical_not(self, a: Any) -> Any:
        return self._tf.logical_not(a)

    # reductions
    def sum(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return self._tf.reduce_sum(x, axis=axis, keepdims=keepdims)

    def max(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return self._tf.reduce_max(x, axis=axis, keepdims=keepdims)

    def min(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        return self._tf.reduce_min(x, axis=axis, keepdims=keepdims)

    def argmax(self, x: Any, axis: int = -1, keepdims: bool = False) -> Any:
        out = self._tf.argmax(x, axis=axis)
        return self._tf.expand_dims(out, axis) if keepdims else out

    def matmul(self, a: Any, b: Any) -> Any:
        return self._tf.linalg.matmul(a, b)

    def take(self, x: Any, indices: Any, axis: int = 0) -> Any:
        return self._tf.gather(x, indices, axis=axis)


_TF_NAMESPACE: _TensorFlowNamespace | None = None


@dataclass(frozen=True)
class Backend:
    """The framework that owns an array, with the operations wce needs."""

    name: str  # "numpy", "torch", "jax" or "tensorflow"
    xp: Any

    # -- traced or concrete -------------------------------------------------
    def is_traced(self, x: Any) -> bool:
        """True inside jit/compile/tf.function, where data checks must not run."""
        if self.name == "jax":
            import jax

            return isinstance(x, jax.core.Tracer)
        if self.name == "torch":
            import torch

            if torch.compiler.is_compiling() or torch.jit.is_scripting():
                return True
            if torch._C._functorch.is_functorch_wrapped_tensor(x):
                return True  # torch.func.grad, vmap, ...
            return type(x).__name__ in {"FakeTensor", "FunctionalTensor"}
        if self.name == "tensorflow":
            import tensorflow as tf

            return not tf.executing_eagerly() or not hasattr(x, "numpy")
        return False

    def stop_gradient(self, x: Any) -> Any:
        if self.name == "torch":
            return x.detach()
        if self.name == "jax":
            import jax

            return jax.lax.stop_gradient(x)
        if self.name == "tensorflow":
            return self.xp._tf.stop_gradient(x)
        return x

    # -- dtypes ---------------------------------------------------------------
    def dtype_name(self, dtype: Any) -> str:
        if self.name == "tensorflow":
            return str(self.xp._tf.as_dtype(dtype).name)
        if self.name == "torch":
            return str(dtype).removeprefix("torch.")
        return np.dtype(dtype).name

    def kind(self, x: Any) -> str:
        """One of "floating", "integer", "bool", "complex"."""
        name = self.dtype_name(x.dtype)
        if name in _HALF_NAMES or name.startswith("float"):
            return "floating"
        if name.startswith(("int", "uint")):
            return "integer"
        if name == "bool":
            return "bool"
        if name.startswith("complex"):
            return "complex"
        return name

    def compute_dtype(self, x: Any) -> Any:
        """The promotion of ``x``'s dtype with float32 (float64 stays float64)."""
        if self.dtype_name(x.dtype) == "float64":
            return self.xp.float64
        return self.xp.float32

    # -- conversion -------------------------------------------------------------
    def asarray(self, value: Any, *, like: Any, dtype: Any = None) -> Any:
        """``value`` as an array of this backend, on the device of ``like``."""
        xp = self.xp
        if self.name == "tensorflow":
            return xp.asarray(value, dtype=dtype)
        if self.name == "torch":
            import torch

            if isinstance(value, torch.Tensor):
                return value.to(device=like.device, dtype=dtype)
            if isinstance(value, (bool, int, float, list, tuple)):
                # Python values without NumPy, so torch.compile can trace them
                return torch.as_tensor(value, dtype=dtype, device=like.device)
            arr = np.asarray(_to_host(value))
            t = torch.from_numpy(np.ascontiguousarray(arr))
            return t.to(device=like.device, dtype=dtype)
        if self.name == "jax":
            import jax
            import jax.numpy as jnp

            if not isinstance(value, jax.Array):
                value = np.asarray(_to_host(value))
            return jnp.asarray(value, dtype=dtype)
        return np.asarray(_to_host(value), dtype=dtype)

    def to_numpy(self, x: Any) -> np.ndarray:
        """A host copy, for eager checks and messages only."""
        return np.asarray(_to_host(x))


def _to_host(value: Any) -> Any:
    mod = type(value).__module__
    if mod.startswith("torch"):
        return value.detach().cpu().numpy()
    if _is_tf_tensor(value):
        return value.numpy()
    if mod.startswith("dask"):
        return value.compute()
    return value


def backend_of(x: Any) -> Backend:
    """The backend that owns ``x``; NumPy for lists, scalars and NumPy arrays."""
    if _is_tf_tensor(x) or _is_keras_tensor(x):
        global _TF_NAMESPACE
        if _TF_NAMESPACE is None:
            _TF_NAMESPACE = _TensorFlowNamespace()
        return Backend("tensorflow", _TF_NAMESPACE)
    torch = _module_loaded("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        import array_api_compat.torch as compat_torch

        return Backend("torch", compat_torch)
    jax = _module_loaded("jax")
    if jax is not None and isinstance(x, jax.Array):
        import jax.numpy as jnp

        return Backend("jax", jnp)
    return Backend("numpy", _compat_numpy)


def convert(x: Any) -> tuple[Backend, Any]:
    """The backend of ``x`` and ``x`` as one of its arrays (lists become NumPy)."""
    be = backend_of(x)
    if be.name == "numpy" and not isinstance(x, np.ndarray):
        x = np.asarray(x)
    elif be.name == "tensorflow" and not _is_keras_tensor(x):
        x = be.xp.asarray(x)  # a tf.Variable reads as a tensor, gradients intact
    return be, x
