"""Compare losses on one imbalanced dataset: the library behind ``wce compare``.

Train the same model with each loss on the same split and seeds, and measure each
on the held-out split::

    >>> from wce import compare  # doctest: +SKIP
    >>> data = compare.prepare(dataset="satimage")  # doctest: +SKIP
    >>> result = compare.compare(data, losses="ce,balanced-ce")  # doctest: +SKIP
    >>> result.run("balanced-ce").metrics["worst_class_recall"]  # doctest: +SKIP

Training runs in PyTorch on the CPU through wce's own losses; metrics come from
scikit-learn; :func:`write_report` writes a Markdown report with plots.
"""

from __future__ import annotations

from ._errors import CompareError, DataError, UsageError
from .data import PreparedData, from_dataset, from_table, load_table
from .metrics import METRICS
from .objectives import DEFAULT_LOSSES, LOSSES, LossSpec, parse_losses
from .runner import (
    DEFAULTS,
    CompareResult,
    LossResult,
    compare,
    count_epochs,
    load_cost_matrix,
    prepare,
)
from .training import MODELS

__all__ = [
    "DEFAULTS",
    "DEFAULT_LOSSES",
    "LOSSES",
    "METRICS",
    "MODELS",
    "CompareError",
    "CompareResult",
    "DataError",
    "LossResult",
    "LossSpec",
    "PreparedData",
    "UsageError",
    "compare",
    "count_epochs",
    "from_dataset",
    "from_table",
    "load_cost_matrix",
    "load_table",
    "parse_losses",
    "prepare",
]
