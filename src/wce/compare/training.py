"""The model and the training loop: PyTorch on the CPU, one loss at a time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["MODELS", "make_model", "predict_logits", "train"]

MODELS = ("linear", "mlp")
HIDDEN = 64


def make_model(kind: str, n_features: int, n_outputs: int, *, seed: int) -> Any:
    """A linear model or a one-hidden-layer MLP, initialised from ``seed``.

    The global torch random state is left as it was.
    """
    import torch
    from torch import nn

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "linear":
            return nn.Linear(n_features, n_outputs)
        if kind == "mlp":
            return nn.Sequential(
                nn.Linear(n_features, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, n_outputs)
            )
    raise ValueError(f"unknown model {kind!r}; choose from {', '.join(MODELS)}")


def train(
    model: Any,
    loss: Callable[[Any, Any], Any],
    X: np.ndarray,
    targets: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    on_epoch: Callable[[], None] | None = None,
) -> None:
    """Minimise ``loss(model(X), targets)`` with AdamW over shuffled mini-batches.

    Runs on one CPU thread (restored afterwards): for models this small, more
    threads are slower.

    Args:
        model: a torch module mapping (B, n_features) to (B, n_outputs).
        loss: ``loss(logits, targets)`` on tensors, a 0-d tensor.
        X: float32 features of shape (N, n_features).
        targets: class ids (N,) or 0/1 floats (N, n_outputs).
        epochs, batch_size, learning_rate: the schedule (the learning rate decays
            to zero along a cosine).
        seed: seed of the batch order.
        on_epoch: called after every epoch.
    """
    import torch

    features = torch.from_numpy(X)
    labels = torch.from_numpy(targets)
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=learning_rate, weight_decay=1e-4
    )
    steps = epochs * -(-len(X) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps)
    order = torch.Generator().manual_seed(seed)
    threads = torch.get_num_threads()
    # small matrices: a second thread costs more than it gives
    torch.set_num_threads(1)
    model.train()
    try:
        for _ in range(epochs):
            for rows in torch.randperm(len(X), generator=order).split(batch_size):
                optimiser.zero_grad(set_to_none=True)
                value = loss(model(features[rows]), labels[rows])
                value.backward()
                optimiser.step()
                schedule.step()
            if on_epoch is not None:
                on_epoch()
    finally:
        torch.set_num_threads(threads)


def predict_logits(model: Any, X: np.ndarray) -> np.ndarray:
    """The model's logits for ``X``, as float64 NumPy."""
    import torch

    model.eval()
    with torch.no_grad():
        out = model(torch.from_numpy(X))
    return out.numpy().astype(np.float64)
