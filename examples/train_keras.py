"""Train a Keras 3 model with a wce loss, save it, and load it back.

The loss goes where Keras expects one, ``model.compile(loss=...)``; its class
weights come from a ``wce.ClassCounter``. The model outputs logits. After training
the model is saved to a ``.keras`` file and reloaded with the same loss, which only
needs ``import wce.keras`` before ``keras.models.load_model``.

Pick the backend with ``KERAS_BACKEND`` (``tensorflow`` or ``jax``). The default
dataset, ``fashion-mnist-lt``, needs the Debian package ``dataset-fashion-mnist``;
``--dataset satimage`` ships with wce. Runs in about a minute on two CPU cores.

Usage:
    KERAS_BACKEND=jax python examples/train_keras.py --epochs 3
    python examples/train_keras.py --loss focal --dataset satimage
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import keras
import numpy as np

import wce
import wce.keras as wk
from wce import datasets


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--dataset",
        choices=("fashion-mnist-lt", "satimage"),
        default="fashion-mnist-lt",
    )
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help="use at most this many training rows (a random subset)",
    )
    p.add_argument(
        "--loss", choices=("weighted", "plain", "focal", "ldam"), default="weighted"
    )
    p.add_argument("--scheme", default="effective_number")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def split(name: str, limit: int | None, seed: int) -> tuple[np.ndarray, ...]:
    """Train and test arrays: the balanced test set, or a stratified 30% split."""
    data = datasets.load(name)
    x, y = np.asarray(data.X, dtype=np.float32), data.y
    rng = np.random.default_rng(seed)
    if data.X_test is not None and data.y_test is not None:
        x_test, y_test = np.asarray(data.X_test, dtype=np.float32), data.y_test
    else:
        test = np.zeros(len(y), dtype=bool)
        for c in np.unique(y):
            rows = np.flatnonzero(y == c)
            test[rng.choice(rows, size=int(0.3 * len(rows)), replace=False)] = True
        x_test, y_test, x, y = x[test], y[test], x[~test], y[~test]
        mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
        x, x_test = (x - mean) / std, (x_test - mean) / std
    if limit is not None and limit < len(y):
        keep = np.sort(rng.choice(len(y), size=limit, replace=False))
        x, y = x[keep], y[keep]
    return x, y, x_test, y_test


def make_loss(name: str, counter: wce.ClassCounter, scheme: str) -> keras.Loss:
    weights = counter.weights(scheme=scheme, normalize="mean_sample")
    print("class weights:", np.round(weights, 3).tolist())
    if name == "plain":
        return wk.SoftmaxCrossEntropy()
    if name == "weighted":
        return wk.SoftmaxCrossEntropy(class_weight=weights)
    if name == "focal":
        return wk.SoftmaxFocalLoss(gamma=1.0, class_weight=weights)
    return wk.LDAMLoss(class_counts=counter.counts, scale=10.0, class_weight=weights)


def balanced_accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    pred = np.asarray(model.predict(x, batch_size=1024, verbose=0)).argmax(axis=1)
    c = int(y.max()) + 1
    recall = np.bincount(y[pred == y], minlength=c) / np.bincount(y, minlength=c)
    return float(recall.mean())


def main(argv: list[str] | None = None) -> dict[str, float]:
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    print("Keras backend:", keras.backend.backend())
    x, y, x_test, y_test = split(args.dataset, args.limit, args.seed)
    num_classes = int(max(y.max(), y_test.max())) + 1

    counter = wce.ClassCounter(num_classes)
    for i in range(0, len(y), args.batch_size):  # batch by batch, as from a pipeline
        counter.update(y[i : i + args.batch_size])
    print("class counts:", counter.counts.astype(int).tolist())
    loss = make_loss(args.loss, counter, args.scheme)

    model = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(num_classes),  # logits: no softmax
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    start = time.perf_counter()
    model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs, verbose=2)
    score = balanced_accuracy(model, x_test, y_test)
    print(f"balanced test accuracy {score:.4f} ({time.perf_counter() - start:.1f} s)")

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        again = keras.models.load_model(path)
    assert again.loss.get_config() == loss.get_config()
    print("reloaded loss:", type(again.loss).__name__, again.loss.get_config())
    return {"balanced_accuracy": score}


if __name__ == "__main__":
    main()
