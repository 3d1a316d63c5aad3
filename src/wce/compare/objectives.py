"""The losses a comparison can train with, named as on the command line.

A loss is written ``NAME`` or ``NAME:OPTION=VALUE:OPTION=VALUE``, for example
``focal:gamma=1`` or ``logit-adjusted:tau=0.5``. Every one goes through wce's own
PyTorch path. Binary tasks have one logit per row and use the sigmoid losses; the
softmax-only losses (logit adjustment, LDAM, costs) see it as the two logits
``(0, z)``, which gives the same probabilities.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._errors import UsageError
from .data import PreparedData

__all__ = [
    "DEFAULT_LOSSES",
    "LOSSES",
    "LossSpec",
    "Objective",
    "build_objective",
    "parse_losses",
]

DEFAULT_LOSSES = ("ce", "balanced-ce", "focal", "logit-adjusted", "ce-posthoc")

# name -> (what it is, default options, tasks it supports)
_ALL = ("binary", "multiclass", "multilabel")
_SINGLE = ("binary", "multiclass")
LOSSES: dict[str, tuple[str, dict[str, Any], tuple[str, ...]]] = {
    "ce": ("plain cross-entropy", {}, _ALL),
    "balanced-ce": (
        "cross-entropy with class weights (pos_weight = negatives / positives for "
        "sigmoid tasks)",
        {"scheme": "balanced"},
        _ALL,
    ),
    "focal": ("focal loss", {"gamma": 2.0, "alpha": None}, _ALL),
    "logit-adjusted": (
        "cross-entropy of logits + tau * log(prior)",
        {"tau": 1.0},
        _ALL,
    ),
    "ce-posthoc": (
        "plain cross-entropy, decided with logits - tau * log(prior)",
        {"tau": 1.0},
        _ALL,
    ),
    "ldam": ("LDAM margin loss", {"max_margin": 0.5, "scale": 30.0}, _SINGLE),
    "asymmetric": (
        "asymmetric loss",
        {"gamma_pos": 0.0, "gamma_neg": 4.0, "clip": 0.05},
        ("binary", "multilabel"),
    ),
    "cost-ce": (
        "cross-entropy weighted by the cost of the predicted class",
        {},
        _SINGLE,
    ),
    "expected-cost": ("expected cost under the cost matrix", {}, _SINGLE),
}
_NEEDS_COST = ("cost-ce", "expected-cost")
_TEXT_OPTIONS = ("scheme",)


@dataclass(frozen=True)
class LossSpec:
    """One row of the comparison: a loss with its options.

    Attributes:
        name: the row's name, as written on the command line.
        kind: the loss, a key of :data:`LOSSES`.
        options: the options given, the rest taking their defaults.
    """

    name: str
    kind: str
    options: dict[str, Any] = field(default_factory=dict)

    def option(self, key: str) -> Any:
        return self.options.get(key, LOSSES[self.kind][1][key])

    @property
    def training_key(self) -> tuple[str, tuple[tuple[str, Any], ...]]:
        """Rows with the same key train the same model (``ce-posthoc`` and ``ce``)."""
        if self.kind == "ce-posthoc":
            return ("ce", ())
        return (self.kind, tuple(sorted(self.options.items())))


def parse_losses(text: str | None, *, cost_matrix: bool = False) -> list[LossSpec]:
    """Read ``--losses``; ``None`` means the defaults (plus ``expected-cost`` with a
    cost matrix).

    Raises:
        UsageError: an unknown loss or option, a bad option value, a loss listed
            twice, a cost loss without a cost matrix.

    Examples:
        >>> specs = parse_losses("ce,focal:gamma=1")
        >>> [(s.name, s.kind, s.option("gamma") if s.kind == "focal" else None)
        ...  for s in specs]
        [('ce', 'ce', None), ('focal:gamma=1', 'focal', 1.0)]
    """
    if text is None:
        names = list(DEFAULT_LOSSES) + (["expected-cost"] if cost_matrix else [])
    else:
        names = [part.strip() for part in text.split(",") if part.strip()]
        if not names:
            raise UsageError(f"--losses is empty; choose from {', '.join(LOSSES)}")
    specs = [_parse_one(name) for name in names]
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise UsageError(f"loss '{spec.name}' is listed twice in --losses")
        seen.add(spec.name)
        if spec.kind in _NEEDS_COST and not cost_matrix:
            raise UsageError(f"loss '{spec.kind}' needs --cost-matrix FILE")
    return specs


def _parse_one(text: str) -> LossSpec:
    kind, *pairs = text.split(":")
    if kind not in LOSSES:
        raise UsageError(f"unknown loss '{kind}'; choose from {', '.join(LOSSES)}")
    defaults = LOSSES[kind][1]
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if key not in defaults:
            known = ", ".join(defaults) or "none"
            raise UsageError(
                f"loss '{kind}' has no option '{key}'; its options: {known}"
            )
        if not sep or not value.strip():
            raise UsageError(f"option '{key}' of '{kind}' needs a value: {key}=VALUE")
        options[key] = _option_value(kind, key, value.strip())
    return LossSpec(name=text, kind=kind, options=options)


def _option_value(kind: str, key: str, value: str) -> Any:
    if key in _TEXT_OPTIONS:
        return value
    try:
        number = float(value)
    except ValueError:
        raise UsageError(
            f"option '{key}' of '{kind}' must be a number, got '{value}'"
        ) from None
    if not np.isfinite(number):
        raise UsageError(f"option '{key}' of '{kind}' must be finite, got '{value}'")
    return number


@dataclass(frozen=True)
class Objective:
    """How one row trains and decides.

    Attributes:
        loss: ``loss(logits, targets)`` on torch tensors, a 0-d tensor. ``targets``
            are class ids (N,) for multi-class, 0/1 of the logits' shape otherwise.
        decide: maps test logits (NumPy) to the logits the decision is made from.
    """

    loss: Callable[[Any, Any], Any]
    decide: Callable[[np.ndarray], np.ndarray]


def build_objective(
    spec: LossSpec, data: PreparedData, cost_matrix: np.ndarray | None = None
) -> Objective:
    """The loss and decision rule of ``spec`` for ``data``'s task and training split.

    Raises:
        UsageError: the loss does not support the task, or a bad option (such as an
            unknown weighting scheme).
    """
    task = data.task
    if task not in LOSSES[spec.kind][2]:
        supported = " and ".join(LOSSES[spec.kind][2])
        raise UsageError(
            f"loss '{spec.kind}' works on {supported} data, not {task}; "
            "remove it from --losses"
        )
    try:
        return _build(spec, data, cost_matrix)
    except ValueError as err:
        raise UsageError(f"loss '{spec.name}': {err}") from None


def _identity(logits: np.ndarray) -> np.ndarray:
    return logits


def _build(
    spec: LossSpec, data: PreparedData, cost_matrix: np.ndarray | None
) -> Objective:
    builder = _BUILDERS[spec.kind]
    loss = builder(spec, data, cost_matrix)
    if spec.kind == "ce-posthoc":
        tau = float(spec.option("tau"))
        return Objective(loss, _posthoc(data.task, data.train_prior, tau))
    return Objective(loss, _identity)


def _softmax_view(data: PreparedData) -> Callable[[Any, Any], tuple[Any, Any]]:
    """(logits, targets) as a softmax loss takes them: a binary logit ``z`` becomes
    the two logits ``(0, z)`` and its 0/1 target a class id."""
    import torch

    def view(logits: Any, targets: Any) -> tuple[Any, Any]:
        if data.task != "binary":
            return logits, targets
        two = torch.cat([torch.zeros_like(logits), logits], dim=-1)
        return two, targets[:, 0].long()

    return view


def _plain(spec: LossSpec, data: PreparedData, cost: Any) -> Callable[..., Any]:
    import wce

    if data.task == "multiclass":
        return wce.softmax_cross_entropy
    return wce.sigmoid_cross_entropy


def _balanced(spec: LossSpec, data: PreparedData, cost: Any) -> Callable[..., Any]:
    import torch

    import wce

    scheme = str(spec.option("scheme"))
    if data.task == "multiclass":
        counts = wce.class_counts(data.y_train, num_classes=data.num_classes)
        weights = wce.class_weights(counts, scheme=scheme, normalize="mean_sample")
        cw = torch.as_tensor(np.asarray(weights, dtype=np.float32))
        return lambda z, y: wce.softmax_cross_entropy(z, y, class_weight=cw)
    if "scheme" in spec.options:
        # each label as two classes (negatives, positives)
        n = len(data.y_train)
        positives = _positive_rate(data) * n
        ratios = [
            _ratio(wce.class_weights(np.array([n - k, k]), scheme=scheme))
            for k in positives
        ]
        pos = np.array(ratios, dtype=np.float32)
    else:
        pos = np.asarray(wce.pos_weight(data.training_targets), dtype=np.float32)
    pw = torch.as_tensor(pos)
    return lambda z, t: wce.sigmoid_cross_entropy(z, t, pos_weight=pw)


def _focal(spec: LossSpec, data: PreparedData, cost: Any) -> Callable[..., Any]:
    import wce

    gamma, alpha = float(spec.option("gamma")), spec.option("alpha")
    if data.task == "multiclass":
        if alpha is not None:
            raise ValueError("alpha is for binary and multi-label data")
        return lambda z, y: wce.softmax_focal_loss(z, y, gamma=gamma)
    a = None if alpha is None else float(alpha)
    return lambda z, t: wce.sigmoid_focal_loss(z, t, gamma=gamma, alpha=a)


def _logit_adjusted(
    spec: LossSpec, data: PreparedData, cost: Any
) -> Callable[..., Any]:
    import torch

    import wce

    tau = float(spec.option("tau"))
    if data.task == "multilabel":
        shift = torch.as_tensor(
            tau * _log_odds(_positive_rate(data)), dtype=torch.float32
        )
        return lambda z, t: wce.sigmoid_cross_entropy(z + shift, t)
    # single-label: the class frequencies, (negatives, positives) for binary
    prior = torch.as_tensor(data.train_prior, dtype=torch.float32)
    view = _softmax_view(data)
    return lambda z, y: wce.logit_adjusted_cross_entropy(
        *view(z, y), prior=prior, tau=tau
    )


def _ldam(spec: LossSpec, data: PreparedData, cost: Any) -> Callable[..., Any]:
    import torch

    import wce

    counts = torch.as_tensor(data.train_counts, dtype=torch.float32)
    margin, scale = float(spec.option("max_margin")), float(spec.option("scale"))
    view = _softmax_view(data)
    return lambda z, y: wce.ldam_loss(
        *view(z, y), class_counts=counts, max_margin=margin, scale=scale
    )


def _asymmetric(spec: LossSpec, data: PreparedData, cost: Any) -> Callable[..., Any]:
    import wce

    gp, gn = float(spec.option("gamma_pos")), float(spec.option("gamma_neg"))
    clip = float(spec.option("clip"))
    return lambda z, t: wce.asymmetric_loss(z, t, gamma_pos=gp, gamma_neg=gn, clip=clip)


def _cost_ce(spec: LossSpec, data: PreparedData, cost: Any) -> Callable[..., Any]:
    import torch

    import wce

    matrix = torch.as_tensor(cost, dtype=torch.float32)
    view = _softmax_view(data)
    return lambda z, y: wce.softmax_cross_entropy(*view(z, y), cost_matrix=matrix)


def _expected_cost(spec: LossSpec, data: PreparedData, cost: Any) -> Callable[..., Any]:
    import torch

    import wce

    matrix = torch.as_tensor(cost, dtype=torch.float32)
    view = _softmax_view(data)
    return lambda z, y: wce.expected_cost_loss(*view(z, y), cost_matrix=matrix)


_BUILDERS: dict[str, Callable[[LossSpec, PreparedData, Any], Callable[..., Any]]] = {
    "ce": _plain,
    "ce-posthoc": _plain,
    "balanced-ce": _balanced,
    "focal": _focal,
    "logit-adjusted": _logit_adjusted,
    "ldam": _ldam,
    "asymmetric": _asymmetric,
    "cost-ce": _cost_ce,
    "expected-cost": _expected_cost,
}


def _ratio(weights: Any) -> float:
    """pos_weight from the weights of (negatives, positives)."""
    w = np.asarray(weights, dtype=np.float64)
    return float(w[1] / w[0])


def _positive_rate(data: PreparedData) -> np.ndarray:
    """Positive rate per logit of a sigmoid task: shape (1,) for binary."""
    if data.task == "binary":
        return data.train_prior[1:]
    return data.train_prior


def _log_odds(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def _posthoc(
    task: str, prior: np.ndarray, tau: float
) -> Callable[[np.ndarray], np.ndarray]:
    """Post-hoc logit adjustment with the training prior, by ``wce.adjust_logits``.

    A sigmoid logit ``z`` is the two-class logits ``(0, z)``: it is adjusted as
    those are and mapped back to their difference.
    """
    import wce

    if task == "binary":
        prior = prior[1:]
    if task == "multiclass":

        def adjust(logits: np.ndarray) -> np.ndarray:
            return np.asarray(wce.adjust_logits(logits, prior=prior, tau=tau))

        return adjust

    def adjust_each(logits: np.ndarray) -> np.ndarray:
        columns = []
        for c in range(logits.shape[1]):
            two = np.stack([np.zeros_like(logits[:, c]), logits[:, c]], axis=-1)
            label_prior = np.array([1.0 - prior[c], prior[c]])
            moved = np.asarray(wce.adjust_logits(two, prior=label_prior, tau=tau))
            columns.append(moved[:, 1] - moved[:, 0])
        return np.stack(columns, axis=1)

    return adjust_each
