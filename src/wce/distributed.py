"""Exact normalisation across data-parallel workers and micro-batches.

A ``"mean"`` or ``"weighted_mean"`` loss divides a sum ``S`` by a denominator
``D``: the number of counted elements, or the sum of their weights. When a batch is
split across workers (or micro-batches), averaging each part's ``S_k / D_k`` is not
``sum_k S_k / sum_k D_k``, and its gradient is biased towards the parts with few
counted elements or small weights. The normalizers here make every part divide by
the global denominator. A normalizer is ``normalizer(be, num, den) -> (num, den)``,
passed as the ``normalizer=`` keyword of every loss; ``den`` is ``None`` for
``"sum"``.

JAX (``shard_map`` or ``pmap``): pass ``axis_name=`` to the loss, which uses
:func:`axis_normalizer`. Both ``S`` and ``D`` are summed over the mapped axis, so
the loss value is the global loss on every device, and:

* under ``jax.shard_map`` (default ``check_vma=True``), ``jax.grad`` with respect
  to replicated parameters is already the exact gradient of the global batch: JAX
  sums the per-device contributions itself. Do not ``psum`` or ``pmean`` it again.
* under ``jax.pmap`` or ``shard_map(..., check_vma=False)``, each device's
  gradient is ``n_devices`` times its share; ``jax.lax.pmean(grads, axis_name)``
  (the usual recipe) gives the exact gradient.

PyTorch (``torch.distributed`` with ``DistributedDataParallel``): pass
``sync_normalizer=True`` to a :mod:`wce.torch` module, or
``normalizer=process_group_normalizer()`` to a function. Each rank's loss is
``(S + K * (s - stop_gradient(s))) / D`` with ``s`` its own sum, ``S`` and ``D``
the sums over the ``K`` ranks: its value is the global loss, and its gradient is
``K`` times the rank's share, so DDP's average over ranks is the exact gradient of
the concatenated batch.

Micro-batches (gradient accumulation): :class:`GradientAccumulator` (PyTorch)
back-propagates each micro-batch's weighted sum and divides the accumulated
gradients once by the total denominator; :func:`sum_and_denominator` gives the two
parts of a loss on any backend (see ``docs/adapters.md`` for JAX); and
:func:`fixed_denominator` divides every micro-batch by a global denominator known
in advance.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ._backend import Backend
from ._checks import fail
from ._core import Normalizer

__all__ = [
    "GradientAccumulator",
    "axis_normalizer",
    "fixed_denominator",
    "process_group_normalizer",
    "sum_and_denominator",
]


def axis_normalizer(axis_name: Any) -> Normalizer:
    """A normalizer that sums the numerator and denominator over a JAX mapped axis.

    Used by every loss given ``axis_name=``. The loss value is the global loss on
    every device; see the module docstring for the gradient recipe under
    ``shard_map`` and ``pmap``.

    Args:
        axis_name: the name of the mapped axis (``shard_map`` mesh axis, ``pmap``
            or ``vmap`` ``axis_name``), or a tuple of names.

    Returns:
        The normalizer ``(be, num, den) -> (psum(num), psum(den))``.
    """

    def normalize(be: Backend, num: Any, den: Any) -> tuple[Any, Any]:
        if be.name != "jax":
            fail(
                "axis_name",
                "None for non-JAX arrays",
                repr(axis_name),
                "use process_group_normalizer() or sync_normalizer=True for "
                "torch.distributed",
                cls=TypeError,
            )
        import jax

        num = jax.lax.psum(num, axis_name)
        if den is not None:
            den = jax.lax.psum(den, axis_name)
        return num, den

    return normalize


def _torch_group_sums(num: Any, den: Any, group: Any) -> tuple[Any, Any, int] | None:
    """(sum of num, sum of den, world size) over the group; None if not distributed."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return None
    size = dist.get_world_size(group)
    parts = [num.detach()] + ([] if den is None else [den.detach()])
    stats = torch.stack([p.to(num.dtype) for p in parts])
    dist.all_reduce(stats, op=dist.ReduceOp.SUM, group=group)
    return stats[0], (None if den is None else stats[1]), size


def process_group_normalizer(group: Any = None) -> Normalizer:
    """A normalizer for ``torch.distributed`` data parallelism (DDP).

    Every rank must call the loss (the sums are an all-reduce). With ``K`` ranks,
    ``s`` and ``d`` this rank's sum and denominator, ``S`` and ``D`` their sums
    over the group, the loss is ``(S + K (s - s.detach())) / (D + K (d -
    d.detach()))``: its value is ``S / D``, the loss of the concatenated batch, and
    the average of the ranks' gradients (what DDP computes) is its exact gradient.
    Outside ``torch.distributed`` (not initialised) it changes nothing.

    Args:
        group: the process group; ``None`` is the default group.

    Returns:
        The normalizer.
    """

    def normalize(be: Backend, num: Any, den: Any) -> tuple[Any, Any]:
        if be.name != "torch":
            fail(
                "normalizer",
                "used with PyTorch tensors",
                f"{be.name} arrays",
                "use axis_name= with JAX",
                cls=TypeError,
            )
        sums = _torch_group_sums(num, den, group)
        if sums is None:
            return num, den
        total, total_den, size = sums
        num = total + size * (num - num.detach())
        if den is not None:
            den = total_den + size * (den - den.detach())
        return num, den

    return normalize


def fixed_denominator(total: Any) -> Normalizer:
    """A normalizer that divides by a denominator known in advance.

    For micro-batches whose global denominator is known before the first
    backward pass (``"mean"`` without ignored elements: the number of elements
    of the whole batch; ``"weighted_mean"``: the sum of the weights), each
    micro-batch's loss ``s_m / total`` then adds up to the batch's loss, and so do
    the gradients.

    Args:
        total: the denominator of the whole batch (a number or a 0-d array).

    Returns:
        The normalizer ``(be, num, den) -> (num, total)``.

    Examples:
        >>> import numpy as np
        >>> import wce
        >>> z, y = np.zeros((4, 2)), np.array([0, 1, 1, 0])
        >>> halves = [wce.softmax_cross_entropy(z[i:i + 2], y[i:i + 2],
        ...                                     normalizer=fixed_denominator(4))
        ...           for i in (0, 2)]
        >>> float(sum(halves)), float(wce.softmax_cross_entropy(z, y))
        (0.6931..., 0.6931...)
    """

    def normalize(be: Backend, num: Any, den: Any) -> tuple[Any, Any]:
        if den is None:
            return num, None
        return num, be.asarray(total, like=num, dtype=num.dtype)

    return normalize


def sum_and_denominator(
    loss: Callable[..., Any], logits: Any, labels: Any, **kwargs: Any
) -> tuple[Any, Any]:
    """The weighted sum and the denominator of a reduced loss, for any backend.

    ``loss(logits, labels, **kwargs)`` equals ``num / den`` where the denominator
    is positive (``den`` is ``None`` for ``reduction="sum"``). ``num`` carries the
    gradient; under ``jax.jit`` or ``jax.grad`` both are traced values of the
    calling function. Summing ``num`` and ``den`` (and the gradients of ``num``)
    over micro-batches and dividing once gives the exact loss of the whole batch.

    Args:
        loss: a wce loss function, such as :func:`wce.softmax_cross_entropy`.
        logits: passed to ``loss``.
        labels: passed to ``loss``.
        **kwargs: its keywords; ``reduction`` must not be ``"none"``.

    Returns:
        ``(num, den)``.

    Examples:
        >>> import numpy as np
        >>> import wce
        >>> num, den = sum_and_denominator(
        ...     wce.softmax_cross_entropy, np.zeros((3, 2)), np.array([0, 1, -1]),
        ...     ignore_index=-1)
        >>> float(num), float(den)
        (1.3862..., 2.0)
    """
    if kwargs.get("reduction") == "none":
        fail(
            "reduction",
            "'sum', 'mean' or 'weighted_mean'",
            "'none'",
            "an unreduced loss has no denominator",
        )
    if "normalizer" in kwargs or kwargs.get("axis_name") is not None:
        fail(
            "normalizer",
            "not given to sum_and_denominator",
            "a normalizer",
            "combine the returned sums yourself",
        )
    parts: list[Any] = []

    def capture(be: Backend, num: Any, den: Any) -> tuple[Any, Any]:
        parts.extend((num, den))
        return num, (None if den is None else be.xp.ones_like(den))

    loss(logits, labels, normalizer=capture, **kwargs)
    return parts[0], parts[1]


class GradientAccumulator:
    """Exact ``"mean"`` and ``"weighted_mean"`` over PyTorch micro-batches.

    Pass it as ``normalizer=`` to a loss or a :mod:`wce.torch` module. Each
    micro-batch's loss is then its weighted sum (backward it as usual; do not
    divide by the number of micro-batches), while the accumulator adds up the
    denominators. :meth:`step` divides the accumulated gradients by the total, so
    they equal the gradient of the loss of the whole batch, and returns that loss.

    With ``sync=True`` under ``torch.distributed`` the totals are also summed over
    the process group, and the gradients are taken to be averaged by DDP (as in
    ``no_sync()`` accumulation): the result is the exact gradient of all ranks'
    micro-batches together.

    Example::

        acc = GradientAccumulator()
        criterion = wce.torch.SoftmaxCrossEntropy(class_weight=w,
                                                  reduction="weighted_mean",
                                                  normalizer=acc)
        for x, y in micro_batches:
            criterion(model(x), y).backward()
        loss = acc.step(model.parameters())   # gradients now exact
        optimizer.step()
        optimizer.zero_grad()

    Not supported: sample weights or class weights that require a gradient (the
    denominators are treated as constants). The bookkeeping is Python state,
    meant for eager mode; under ``torch.compile`` compile the model, not the loss.
    """

    def __init__(self, *, sync: bool = False, group: Any = None) -> None:
        self.sync = bool(sync)
        self.group = group
        self._num: Any = None
        self._den: Any = None

    def __call__(self, be: Backend, num: Any, den: Any) -> tuple[Any, Any]:
        if be.name != "torch":
            fail(
                "normalizer",
                "used with PyTorch tensors",
                f"{be.name} arrays",
                "use sum_and_denominator for other backends",
                cls=TypeError,
            )
        if den is None:
            fail(
                "reduction",
                "'mean' or 'weighted_mean' with GradientAccumulator",
                "'sum'",
                "a sum needs no normalisation: backward it directly",
            )
        n, d = num.detach(), den.detach()
        self._num = n if self._num is None else self._num + n
        self._den = d if self._den is None else self._den + d
        return num, be.xp.ones_like(den)

    @property
    def denominator(self) -> Any:
        """The denominator accumulated so far on this rank (``None`` before any)."""
        return self._den

    def reset(self) -> None:
        """Forget the accumulated sums (:meth:`step` does this)."""
        self._num = None
        self._den = None

    def step(self, parameters: Iterable[Any]) -> Any:
        """Divide the parameters' gradients by the total denominator; reset.

        Args:
            parameters: the parameters whose ``.grad`` holds the accumulated
                gradients of the micro-batch sums.

        Returns:
            The loss of the whole batch (0-d tensor, detached).
        """
        import torch

        if self._den is None:
            fail(
                "GradientAccumulator.step",
                "called after at least one loss",
                "no loss",
                "compute the micro-batch losses with normalizer=acc",
            )
        num, den, scale = self._num, self._den, 1.0
        if self.sync:
            sums = _torch_group_sums(num, den, self.group)
            if sums is not None:
                num, den, size = sums
                scale = float(size)
        safe = torch.where(den > 0, den, torch.ones_like(den))
        factor = scale / safe
        with torch.no_grad():
            for p in parameters:
                if p.grad is not None:
                    p.grad.mul_(factor.to(device=p.grad.device, dtype=p.grad.dtype))
        self.reset()
        return num / safe
