"""Move test data between NumPy and each backend."""

from __future__ import annotations

from typing import Any

import numpy as np


def _tf_dtype(dtype: Any) -> Any:
    import tensorflow as tf

    return tf.as_dtype(np.dtype(dtype).name if dtype != "bfloat16" else tf.bfloat16)


def to(backend: str, x: Any, dtype: Any = None) -> Any:
    """``x`` (nested lists or a NumPy array) as an array of ``backend``.

    ``dtype`` may be a NumPy dtype or the strings "float16" and "bfloat16".
    """
    arr = np.asarray(x)
    if dtype is None:
        dtype = arr.dtype
    if backend == "numpy":
        if dtype == "bfloat16":
            import ml_dtypes

            return arr.astype(ml_dtypes.bfloat16)
        return arr.astype(dtype)
    if backend == "torch":
        import torch

        if dtype == "bfloat16":
            return torch.tensor(arr.astype(np.float32)).to(torch.bfloat16)
        return torch.from_numpy(np.ascontiguousarray(arr.astype(dtype)))
    if backend == "jax":
        import jax.numpy as jnp

        if dtype == "bfloat16":
            return jnp.asarray(arr, dtype=jnp.bfloat16)
        return jnp.asarray(arr.astype(dtype))
    if backend == "tensorflow":
        import tensorflow as tf

        if dtype == "bfloat16":
            return tf.cast(tf.constant(arr.astype(np.float32)), tf.bfloat16)
        return tf.constant(arr.astype(dtype))
    raise ValueError(backend)


def host(x: Any) -> np.ndarray:
    """A NumPy copy of any backend's array (bfloat16 widened to float32)."""
    mod = type(x).__module__
    if mod.startswith("torch"):
        x = x.detach()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        return x.cpu().numpy()
    if hasattr(x, "numpy") and not isinstance(x, np.ndarray):
        x = x.numpy()
    arr = np.asarray(x)
    if arr.dtype.name == "bfloat16":
        arr = arr.astype(np.float32)
    return arr


def grad(backend: str, fn: Any, x: Any, upstream: Any = None) -> np.ndarray:
    """The gradient (or vector-Jacobian product) of ``fn`` at ``x`` on ``backend``.

    ``x`` is already an array of ``backend``; the result is a NumPy array.
    """
    if backend == "torch":
        import torch

        x = x.detach().clone().requires_grad_(True)
        out = fn(x)
        g = (
            torch.ones_like(out)
            if upstream is None
            else torch.as_tensor(np.asarray(upstream), dtype=out.dtype)
        )
        (gx,) = torch.autograd.grad(out, x, g)
        return host(gx)
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        out, vjp = jax.vjp(fn, x)
        g = (
            jnp.ones_like(out)
            if upstream is None
            else jnp.asarray(upstream, dtype=out.dtype)
        )
        return host(vjp(g)[0])
    if backend == "tensorflow":
        import tensorflow as tf

        v = tf.Variable(x)
        with tf.GradientTape() as tape:
            out = fn(v)
        g = None if upstream is None else tf.constant(upstream, dtype=out.dtype)
        return host(tape.gradient(out, v, output_gradients=g))
    raise ValueError(f"no autodiff on {backend}")
