"""One comparison: every loss trained on the same split with the same seeds."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import DataError, UsageError
from .data import PreparedData, from_dataset, from_table, load_table
from .metrics import evaluate, predictions, summarise
from .objectives import LossSpec, build_objective, parse_losses
from .training import MODELS, make_model, predict_logits, train

__all__ = [
    "DEFAULTS",
    "CompareResult",
    "LossResult",
    "check_request",
    "compare",
    "count_epochs",
    "load_cost_matrix",
    "prepare",
]

DEFAULT_DATASET = "satimage"


@dataclass(frozen=True)
class _Defaults:
    """Chosen so that ``wce compare`` on satimage takes well under a minute on two
    CPU cores."""

    model: str = "mlp"
    epochs: int = 30
    seeds: tuple[int, ...] = (0, 1, 2)
    max_batch_size: int = 512
    learning_rate: float = 3e-2
    test_size: float = 0.25


DEFAULTS = _Defaults()


@dataclass(frozen=True)
class LossResult:
    """One row of the comparison.

    Attributes:
        loss: the loss as named on the command line.
        metrics: ``{metric: {"mean": x, "std": s}}`` over seeds (lists for the
            per-class metrics).
        per_seed: the metrics of each seed, in the order of the seeds.
        confusion: single-label tasks: the confusion matrix summed over seeds,
            rows the true class; None for multi-label.
        scores: binary tasks: the positive class's held-out probability for each
            seed, shape (n_seeds, n_test); else None.
    """

    loss: str
    metrics: dict[str, dict[str, Any]]
    per_seed: list[dict[str, Any]]
    confusion: np.ndarray | None = None
    scores: np.ndarray | None = None


@dataclass(frozen=True)
class CompareResult:
    """Everything one comparison measured; :meth:`to_dict` is the JSON output."""

    dataset: str
    task: str
    class_names: tuple[str, ...]
    n_train: int
    n_test: int
    n_features: int
    train_counts: tuple[int, ...]
    model: str
    epochs: int
    seeds: tuple[int, ...]
    runs: list[LossResult]
    y_test: np.ndarray = field(repr=False)
    cost_matrix: np.ndarray | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``wce compare --format json``."""
        return {
            "dataset": self.dataset,
            "task": self.task,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "n_features": self.n_features,
            "class_names": list(self.class_names),
            "train_counts": list(self.train_counts),
            "model": self.model,
            "epochs": self.epochs,
            "seeds": list(self.seeds),
            "runs": [{"loss": r.loss, "metrics": r.metrics} for r in self.runs],
        }

    def run(self, loss: str) -> LossResult:
        """The row of ``loss``."""
        for r in self.runs:
            if r.loss == loss:
                return r
        raise KeyError(loss)


def prepare(
    source: str | Path | None = None,
    *,
    dataset: str | None = None,
    target: str | None = None,
    targets: Sequence[str] | None = None,
    test_size: float = DEFAULTS.test_size,
    seed: int = 0,
) -> PreparedData:
    """Load a data file or a built-in dataset (``satimage`` when neither is given),
    split it and encode it.

    Raises:
        UsageError: both a file and a dataset, an unknown dataset, a target for a
            built-in dataset, and whatever :func:`from_table` raises.
        DataError: the dataset's source package is missing (the message says how to
            install it), and whatever :func:`from_table` raises.
    """
    if source is not None:
        if dataset is not None:
            raise UsageError("pass a data file or --dataset, not both")
        path = Path(source)
        return from_table(
            load_table(path),
            target=target,
            targets=targets,
            test_size=test_size,
            seed=seed,
            name=path.name,
        )
    from .. import datasets

    name = dataset or DEFAULT_DATASET
    if name not in datasets.available():
        raise UsageError(
            f"unknown dataset '{name}'; choose from {', '.join(datasets.available())}"
            " or pass a CSV or Parquet file"
        )
    if target is not None or targets:
        raise UsageError(
            f"--target and --targets are for data files; '{name}' has its own"
        )
    try:
        loaded = datasets.load(name)
    except datasets.DatasetUnavailableError as err:
        raise DataError(str(err)) from None
    return from_dataset(loaded, test_size=test_size, seed=seed)


def load_cost_matrix(path: str | Path, num_classes: int) -> np.ndarray:
    """Read a (C, C) cost matrix: rows the true class, columns the prediction.

    A CSV or whitespace-separated text file of numbers, one row per line.

    Raises:
        UsageError: the file is missing, not numbers, not (C, C), or has negative
            or non-finite entries.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"cost matrix file '{path}' not found")
    text = path.read_text()
    try:
        matrix = np.loadtxt(
            text.splitlines(), delimiter="," if "," in text else None, ndmin=2
        )
    except ValueError:
        raise UsageError(
            f"cost matrix '{path.name}' is not a table of numbers; write one row "
            "per true class, comma- or space-separated"
        ) from None
    if matrix.shape != (num_classes, num_classes):
        raise UsageError(
            f"cost matrix '{path.name}' is {matrix.shape[0]}x{matrix.shape[1]} but "
            f"the data has {num_classes} classes; write a {num_classes}x"
            f"{num_classes} matrix"
        )
    if not np.isfinite(matrix).all() or (matrix < 0).any():
        raise UsageError(
            f"cost matrix '{path.name}' has negative or non-finite entries; costs "
            "are finite and >= 0"
        )
    return matrix


def compare(
    data: PreparedData,
    *,
    losses: str | Sequence[str] | None = None,
    model: str = DEFAULTS.model,
    epochs: int = DEFAULTS.epochs,
    seeds: Sequence[int] = DEFAULTS.seeds,
    batch_size: int | None = None,
    learning_rate: float = DEFAULTS.learning_rate,
    cost_matrix: np.ndarray | None = None,
    on_epoch: Callable[[str, int], None] | None = None,
) -> CompareResult:
    """Train one model per loss and seed, and measure each on the held-out split.

    Rows that train the same way (``ce`` and ``ce-posthoc``) share their models.

    Args:
        data: the prepared split (:func:`prepare`).
        losses: ``--losses`` text (``"ce,focal:gamma=1"``), a list of such names,
            or None for the defaults.
        model: ``"linear"`` or ``"mlp"``.
        epochs, batch_size, learning_rate: the training schedule; the batch size
            is by default an eighth of the training rows, between 64 and 512.
        seeds: one training per seed and loss (initialisation and batch order).
        cost_matrix: (C, C) costs; adds the ``mean_cost`` metric.
        on_epoch: ``on_epoch(loss, seed)``, called after each epoch of each
            training (for a progress bar);
            :func:`count_epochs` gives the total.

    Raises:
        UsageError: an unknown model or loss, a loss the task does not support,
            non-positive epochs or batch size, no seeds.
    """
    if batch_size is None:
        batch_size = _batch_size(len(data.y_train))
    specs = check_request(
        losses,
        model=model,
        epochs=epochs,
        seeds=seeds,
        cost_matrix=cost_matrix is not None,
        batch_size=batch_size,
    )
    if cost_matrix is not None and data.task == "multilabel":
        raise UsageError("--cost-matrix is for binary and multi-class data")
    objectives = [build_objective(s, data, cost_matrix) for s in specs]

    start = time.perf_counter()
    outputs = 1 if data.task == "binary" else data.num_classes
    y_test = data.y_test
    per_seed: list[list[dict[str, Any]]] = [[] for _ in specs]
    confusion = [np.zeros((data.num_classes,) * 2, np.int64) for _ in specs]
    scores: list[list[np.ndarray]] = [[] for _ in specs]
    for seed in seeds:
        trained: dict[Any, np.ndarray] = {}
        for i, (spec, objective) in enumerate(zip(specs, objectives, strict=True)):
            key = spec.training_key
            if key not in trained:
                net = make_model(model, data.X_train.shape[1], outputs, seed=seed)
                train(
                    net,
                    objective.loss,
                    data.X_train,
                    data.training_targets,
                    epochs=epochs,
                    batch_size=batch_size,
                    learning_rate=learning_rate,
                    seed=seed,
                    on_epoch=_bind(on_epoch, spec.name, seed),
                )
                trained[key] = predict_logits(net, data.X_test)
            logits = objective.decide(trained[key])
            if not np.isfinite(logits).all():
                raise DataError(
                    f"loss '{spec.name}' diverged (non-finite logits) with seed "
                    f"{seed}; change its options or --epochs"
                )
            predicted, proba = predictions(data.task, logits)
            per_seed[i].append(
                evaluate(
                    data.task,
                    y_test,
                    predicted,
                    proba,
                    num_classes=data.num_classes,
                    cost_matrix=cost_matrix,
                )
            )
            if data.task != "multilabel":
                np.add.at(confusion[i], (y_test, predicted), 1)
            if data.task == "binary":
                scores[i].append(proba)

    runs = [
        LossResult(
            loss=spec.name,
            metrics=summarise(per_seed[i]),
            per_seed=per_seed[i],
            confusion=None if data.task == "multilabel" else confusion[i],
            scores=np.stack(scores[i]) if data.task == "binary" else None,
        )
        for i, spec in enumerate(specs)
    ]
    return CompareResult(
        dataset=data.name,
        task=data.task,
        class_names=data.class_names,
        n_train=len(data.y_train),
        n_test=len(y_test),
        n_features=data.X_train.shape[1],
        train_counts=tuple(int(n) for n in data.train_counts),
        model=model,
        epochs=epochs,
        seeds=tuple(seeds),
        runs=runs,
        y_test=y_test,
        cost_matrix=cost_matrix,
        seconds=time.perf_counter() - start,
    )


def _bind(
    on_epoch: Callable[[str, int], None] | None, loss: str, seed: int
) -> Callable[[], None] | None:
    if on_epoch is None:
        return None
    return lambda: on_epoch(loss, seed)


def count_epochs(
    losses: str | Sequence[str] | None,
    *,
    epochs: int,
    seeds: Sequence[int],
    cost_matrix: bool = False,
) -> int:
    """How many times :func:`compare` calls ``on_epoch``."""
    specs = check_request(
        losses,
        model=DEFAULTS.model,
        epochs=epochs,
        seeds=seeds,
        cost_matrix=cost_matrix,
    )
    return epochs * len(seeds) * len({s.training_key for s in specs})


def _batch_size(n_train: int) -> int:
    """About eight steps an epoch, within [64, max_batch_size]."""
    return int(np.clip(-(-n_train // 8), 64, DEFAULTS.max_batch_size))


def check_request(
    losses: str | Sequence[str] | None,
    *,
    model: str,
    epochs: int,
    seeds: Sequence[int],
    cost_matrix: bool = False,
    batch_size: int = 1,
) -> list[LossSpec]:
    """Check the options of :func:`compare` that do not depend on the data.

    Returns:
        The parsed losses.

    Raises:
        UsageError: an unknown model or loss, non-positive epochs or batch size,
            no seeds or a repeated one.
    """
    if losses is not None and not isinstance(losses, str):
        losses = ",".join(losses)
    specs = parse_losses(losses, cost_matrix=cost_matrix)
    if model not in MODELS:
        raise UsageError(f"unknown --model '{model}'; choose from {', '.join(MODELS)}")
    if epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {epochs}")
    if batch_size < 1:
        raise UsageError(f"batch size must be at least 1, got {batch_size}")
    if not seeds:
        raise UsageError("--seeds needs at least one seed, such as 0,1,2")
    if len(set(seeds)) != len(seeds):
        raise UsageError("--seeds lists a seed twice; give each seed once")
    return specs
