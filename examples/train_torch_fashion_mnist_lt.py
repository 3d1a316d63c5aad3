"""Train a small MLP on long-tailed Fashion-MNIST with class-balanced weights.

The training set keeps 6,000 images of the commonest class and 60 of the rarest
(imbalance factor 100); the test set is balanced, so its accuracy is the
balanced accuracy. Class weights come from a ``wce.ClassCounter`` fed batch by
batch, as it would be from any ``DataLoader``; the loss is
``wce.torch.SoftmaxCrossEntropy`` (or a long-tail loss with ``--loss``).

Runs in about a minute on two CPU cores with the defaults; ``--epochs`` and
``--limit`` make it shorter or longer. Needs the Debian package
``dataset-fashion-mnist``.

Usage:
    python examples/train_torch_fashion_mnist_lt.py --epochs 3
    python examples/train_torch_fashion_mnist_lt.py --loss plain   # no weights
    python examples/train_torch_fashion_mnist_lt.py --loss ldam --scheme none
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

import wce
import wce.torch as wt
from wce import datasets

LOSSES = ("weighted", "plain", "focal", "logit-adjusted", "ldam")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help="use at most this many training images (a random subset)",
    )
    p.add_argument(
        "--test-limit",
        type=int,
        default=None,
        help="evaluate on at most this many test images",
    )
    p.add_argument("--imbalance-factor", type=float, default=100)
    p.add_argument("--loss", choices=LOSSES, default="weighted")
    p.add_argument(
        "--scheme",
        default="effective_number",
        help="class-weight scheme of ClassCounter.weights, or 'none'",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args(argv)


def class_weights(loader: DataLoader, num_classes: int, scheme: str) -> np.ndarray:
    """Counts from one pass over the labels, then weights with mean sample 1."""
    counter = wce.ClassCounter(num_classes)
    for _, labels in loader:
        counter.update(labels)
    print("class counts:", counter.counts.astype(int).tolist())
    return counter.weights(scheme=scheme, normalize="mean_sample")


def make_criterion(
    name: str, weights: np.ndarray | None, counts: np.ndarray
) -> torch.nn.Module:
    if name == "plain":
        return wt.SoftmaxCrossEntropy()
    if name == "weighted":
        return wt.SoftmaxCrossEntropy(class_weight=weights)
    if name == "focal":
        return wt.SoftmaxFocalLoss(gamma=1.0, class_weight=weights)
    if name == "logit-adjusted":
        return wt.LogitAdjustedCrossEntropy(prior=counts, class_weight=weights)
    return wt.LDAMLoss(class_counts=counts, scale=10.0, class_weight=weights)


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Recall of each class."""
    model.eval()
    with torch.no_grad():
        pred = model(x).argmax(dim=1)
    model.train()
    hits = np.bincount(y[pred == y].numpy(), minlength=10)
    return np.asarray(hits / np.maximum(np.bincount(y.numpy(), minlength=10), 1))


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)

    data = datasets.load("fashion-mnist-lt", imbalance_factor=args.imbalance_factor)
    x, y = data.X, data.y
    if args.limit is not None and args.limit < len(y):
        keep = np.sort(rng.choice(len(y), size=args.limit, replace=False))
        x, y = x[keep], y[keep]
    assert data.X_test is not None and data.y_test is not None
    x_test, y_test = data.X_test, data.y_test
    if args.test_limit is not None:
        x_test, y_test = x_test[: args.test_limit], y_test[: args.test_limit]

    train = TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y))
    loader = DataLoader(train, batch_size=args.batch_size, shuffle=True)
    counts = np.bincount(y, minlength=10).astype(np.float64)
    if np.any(counts == 0):
        raise SystemExit("a class has no training image; raise --limit")
    weights = None
    if args.scheme != "none":
        weights = class_weights(loader, 10, args.scheme)
        print("class weights:", np.round(weights, 3).tolist())
    criterion = make_criterion(args.loss, weights, counts)
    print("loss:", criterion)

    model = torch.nn.Sequential(
        torch.nn.Linear(784, args.hidden),
        torch.nn.ReLU(),
        torch.nn.Linear(args.hidden, 10),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    xt = torch.tensor(x_test, dtype=torch.float32)
    yt = torch.tensor(y_test)

    start = time.perf_counter()
    for epoch in range(args.epochs):
        total, n = 0.0, 0
        for xb, yb in loader:
            loss = criterion(model(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(yb)
            n += len(yb)
        recall = evaluate(model, xt, yt)
        print(
            f"epoch {epoch + 1}: train loss {total / n:.4f}, balanced test "
            f"accuracy {recall.mean():.4f}, rarest-class recall {recall[-1]:.3f}"
        )
    recall = evaluate(model, xt, yt)
    print("test recall per class:", np.round(recall, 3).tolist())
    print(f"{time.perf_counter() - start:.1f} s")
    return {"balanced_accuracy": float(recall.mean()), "train_loss": total / n}


if __name__ == "__main__":
    main()
