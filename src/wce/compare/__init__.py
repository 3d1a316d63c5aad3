"""Compare losses on one imbalanced dataset: the library behind ``wce compare``.

Train the same model with each loss on the same split and seeds, and measure each
on the held-out split::

    from wce import compare

    data = compare.prepare(dataset="satimage")  # or prepare("data.csv", target="y")
    result = compare.compare(data, losses="ce,balanced-ce")
    result.run("balanced-ce").metrics["worst_class_recall"]  # {"mean": .., "std": ..}
    compare.write_report(result, "report")

Training runs in PyTorch on the CPU through wce's own losses; metrics come from
scikit-learn; :func:`write_report` writes a Markdown report with plots.
"""

from __future__ import annotations

from ._errors import CompareError, DataError, UsageError
from .data import PreparedData, from_dataset, from_table, load_table
from .metrics import METRICS
from .objectives import DEFAULT_LOSSES, LOSSES, LossSpec, parse_losses
from .report import print_table, write_report
from .runner import (
    DEFAULTS,
    CompareResult,
    LossResult,
    check_request,
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
    "check_request",
    "compare",
    "count_epochs",
    "from_dataset",
    "from_table",
    "load_cost_matrix",
    "load_table",
    "parse_losses",
    "prepare",
    "print_table",
    "write_report",
]
