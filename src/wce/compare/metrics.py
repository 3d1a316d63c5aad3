"""Held-out metrics from scikit-learn, and their mean and spread over seeds."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["METRICS", "evaluate", "predictions", "summarise"]

# every metric in the order of the report; which ones a task gets is in `evaluate`
METRICS = (
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "worst_class_recall",
    "recall_per_class",
    "precision_per_class",
    "log_loss",
    "pr_auc",
    "roc_auc",
    "mean_cost",
)


def predictions(task: str, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predicted labels, probabilities) from logits.

    Binary: the positive class's probability, shape (N,), predicted 1 above 0.5.
    Multi-class: softmax of shape (N, C), predicted by argmax. Multi-label: a
    sigmoid per label of shape (N, C), each predicted 1 above 0.5.
    """
    if task == "multiclass":
        shifted = logits - logits.max(axis=1, keepdims=True)
        proba = np.exp(shifted)
        proba /= proba.sum(axis=1, keepdims=True)
        return logits.argmax(axis=1), proba
    proba = 0.5 * (1.0 + np.tanh(0.5 * logits))  # overflow-free sigmoid
    predicted = (logits > 0).astype(np.int64)
    if task == "binary":
        return predicted[:, 0], proba[:, 0]
    return predicted, proba


def evaluate(
    task: str,
    y_true: np.ndarray,
    predicted: np.ndarray,
    proba: np.ndarray,
    *,
    num_classes: int,
    cost_matrix: np.ndarray | None = None,
) -> dict[str, Any]:
    """The metrics of one trained model on the held-out split.

    ``predicted`` and ``proba`` are what :func:`predictions` makes of its logits.

    Multi-label: ``accuracy`` is the exact-match ratio, ``balanced_accuracy`` the
    mean over labels of each label's balanced accuracy, ``log_loss`` the mean over
    labels of the binary log-loss, and the per-class lists are per label.
    """
    from sklearn import metrics as skm

    per_class = {
        "labels": None if task == "multilabel" else range(num_classes),
        "average": None,
        "zero_division": 0.0,
    }
    recall = skm.recall_score(y_true, predicted, **per_class)
    precision = skm.precision_score(y_true, predicted, **per_class)
    out: dict[str, Any] = {"accuracy": skm.accuracy_score(y_true, predicted)}
    if task == "multilabel":
        out["balanced_accuracy"] = np.mean(
            [
                skm.balanced_accuracy_score(y_true[:, c], predicted[:, c])
                for c in range(num_classes)
            ]
        )
    else:
        out["balanced_accuracy"] = skm.balanced_accuracy_score(y_true, predicted)
    out["macro_f1"] = skm.f1_score(
        y_true, predicted, average="macro", zero_division=0.0
    )
    out["worst_class_recall"] = float(np.min(recall))
    out["recall_per_class"] = [float(r) for r in recall]
    out["precision_per_class"] = [float(p) for p in precision]
    if task == "multilabel":
        out["log_loss"] = np.mean(
            [
                skm.log_loss(y_true[:, c], proba[:, c], labels=[0, 1])
                for c in range(num_classes)
            ]
        )
    else:
        out["log_loss"] = skm.log_loss(y_true, proba, labels=list(range(num_classes)))
    if task == "binary":
        out["pr_auc"] = skm.average_precision_score(y_true, proba)
        out["roc_auc"] = skm.roc_auc_score(y_true, proba)
    if cost_matrix is not None and task != "multilabel":
        out["mean_cost"] = np.mean(cost_matrix[y_true, predicted])
    return {k: (v if isinstance(v, list) else float(v)) for k, v in out.items()}


def summarise(runs: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Mean and standard deviation over seeds of every metric.

    The standard deviation is the sample one (``ddof=1``), 0 for a single seed.
    Lists (per-class metrics) are summarised element by element.
    """
    out: dict[str, dict[str, Any]] = {}
    for name in METRICS:
        if name not in runs[0]:
            continue
        values = np.array([run[name] for run in runs], dtype=np.float64)
        mean = values.mean(axis=0)
        std = values.std(axis=0, ddof=1) if len(runs) > 1 else np.zeros_like(mean)
        out[name] = {"mean": _plain(mean), "std": _plain(std)}
    return out


def _plain(value: np.ndarray) -> Any:
    if value.ndim == 0:
        return float(value)
    return [float(v) for v in value]
