"""The comparison for people: a terminal table, and a Markdown report with plots.

Plots are drawn on bare matplotlib figures (the Agg canvas), so the global
backend and pyplot's state are left alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .runner import CompareResult, LossResult

__all__ = ["format_stat", "print_table", "write_report"]

# (metric, column title, higher is better)
_HEADLINE = (
    ("accuracy", "accuracy", True),
    ("balanced_accuracy", "bal. acc.", True),
    ("macro_f1", "macro F1", True),
    ("worst_class_recall", "worst recall", True),
    ("log_loss", "log-loss", False),
    ("pr_auc", "PR-AUC", True),
    ("roc_auc", "ROC-AUC", True),
    ("mean_cost", "mean cost", False),
)
_PALETTE = (
    "#4C72B0",
    "#DD8452",
    "#55A868",
    "#C44E52",
    "#8172B3",
    "#937860",
    "#DA8BC3",
    "#8C8C8C",
    "#CCB974",
    "#64B5CD",
)
_PER_CLASS_COLUMNS = 4
_TABLE_METRICS = (
    "balanced_accuracy",
    "macro_f1",
    "worst_class_recall",
    "log_loss",
    "pr_auc",
    "mean_cost",
)
_PIPE_WIDTH = 120


def format_stat(stat: dict[str, Any], digits: int = 3) -> str:
    """``mean ± std`` of a summarised metric.

    Examples:
        >>> format_stat({"mean": 0.91234, "std": 0.0041})
        '0.912 ± 0.004'
    """
    return f"{stat['mean']:.{digits}f} ± {stat['std']:.{digits}f}"


def _headline(result: CompareResult) -> list[tuple[str, str, bool]]:
    present = result.runs[0].metrics
    return [h for h in _HEADLINE if h[0] in present]


def _best(result: CompareResult, metric: str, higher: bool) -> float:
    values = [r.metrics[metric]["mean"] for r in result.runs]
    return max(values) if higher else min(values)


def _describe(result: CompareResult) -> str:
    counts = np.asarray(result.train_counts, dtype=float)
    n = result.n_train
    if result.task == "binary":
        shape = (
            f"binary, positive class '{result.class_names[1]}' "
            f"{100 * counts[1] / n:.1f}% of training rows"
        )
    elif result.task == "multiclass":
        shape = (
            f"{len(counts)} classes, largest/smallest "
            f"{counts.max() / max(counts.min(), 1):,.0f}:1"
        )
    else:
        shape = (
            f"{len(counts)} labels, positive rates "
            f"{100 * counts.min() / n:.1f}% to {100 * counts.max() / n:.1f}%"
        )
    seeds = ",".join(str(s) for s in result.seeds)
    return (
        f"{result.dataset}: {shape}; {result.n_train:,} training and "
        f"{result.n_test:,} test rows, {result.n_features} features; "
        f"{result.model}, {result.epochs} epochs, seeds {seeds}"
    )


def print_table(result: CompareResult, console: Any = None) -> None:
    """Print the comparison as a rich table (mean ±std over seeds) to stdout.

    The columns are the metrics that matter on imbalanced data (accuracy and
    ROC-AUC are in the JSON and the report); the best mean in each is green.
    Recall per class gets its own columns when there are at most four classes.
    """
    from rich import box
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console(highlight=False)
        if not console.is_terminal:
            console = Console(highlight=False, width=_PIPE_WIDTH)
    console.print(_describe(result), soft_wrap=True)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("loss", style="bold", no_wrap=True)
    headline = [h for h in _headline(result) if h[0] in _TABLE_METRICS]
    per_class = len(result.class_names) <= _PER_CLASS_COLUMNS
    titles = [title for _, title, _ in headline]
    if per_class:
        titles += [f"recall {_short(name)}" for name in result.class_names]
    for title in titles:
        table.add_column(title, justify="right")
    # mean and std on two lines where one would not fit
    width = max(len(r.loss) for r in result.runs) + 14 * len(titles) + 2
    stacked = console.width < width
    for run in result.runs:
        cells = [run.loss]
        for metric, _, higher in headline:
            best = np.isclose(
                run.metrics[metric]["mean"], _best(result, metric, higher)
            )
            cells.append(_cell(run.metrics[metric], best, stacked))
        if per_class:
            stat = run.metrics["recall_per_class"]
            cells += [
                _cell({"mean": m, "std": s}, False, stacked)
                for m, s in zip(stat["mean"], stat["std"], strict=True)
            ]
        table.add_row(*cells)
    console.print(table)
    console.print(
        f"[dim]mean ±std over {len(result.seeds)} seed(s) on the held-out split; "
        f"best in green; {result.seconds:.0f} s of training[/dim]"
    )


def _cell(stat: dict[str, Any], best: bool, stacked: bool) -> Any:
    from rich.text import Text

    std = f"{stat['std']:.3f}".removeprefix("0")
    return Text.assemble(
        (f"{stat['mean']:.3f}", "bold green" if best else ""),
        (("\n" if stacked else "") + f"±{std}", "dim"),
    )


# ---------------------------------------------------------------------------
# Markdown report
# ---------------------------------------------------------------------------
def write_report(result: CompareResult, out_dir: str | Path) -> Path:
    """Write ``report.md`` and its PNG plots into ``out_dir`` (created if needed).

    Plots: ``summary.png`` (headline metrics by loss), ``recall_by_class.png``,
    ``confusion_matrices.png`` (single-label) and ``precision_recall.png``
    (binary). Also writes ``results.json``, the ``--format json`` object.

    Returns:
        The path of ``report.md``.
    """
    import json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    images = {"summary.png": _plot_summary(result)}
    images["recall_by_class.png"] = _plot_recall(result)
    if result.task != "multilabel":
        images["confusion_matrices.png"] = _plot_confusions(result)
    if result.task == "binary":
        images["precision_recall.png"] = _plot_pr_curves(result)
    for name, fig in images.items():
        fig.savefig(out / name, dpi=110)
    (out / "results.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    path = out / "report.md"
    path.write_text(_markdown(result, list(images)))
    return path


def _markdown(result: CompareResult, images: Sequence[str]) -> str:
    kind = "label" if result.task == "multilabel" else "class"
    headline = _headline(result)
    header = [title for _, title, _ in headline]
    rows = []
    for run in result.runs:
        cells = []
        for metric, _, higher in headline:
            text = format_stat(run.metrics[metric])
            if np.isclose(run.metrics[metric]["mean"], _best(result, metric, higher)):
                text = f"**{text}**"
            cells.append(text)
        rows.append((run.loss, cells))
    counts = ", ".join(
        f"{name} {n:,}"
        for name, n in zip(result.class_names, result.train_counts, strict=True)
    )
    sections = {
        "summary.png": [
            "## Headline metrics",
            "",
            *_md_table(header, rows),
            "",
            "![Headline metrics](summary.png)",
            "",
            "Each group is one metric, each bar one loss (mean over seeds, the "
            "whisker one standard deviation); higher is better for all of them. "
            "In the table the best mean of each column is in bold.",
        ],
        "recall_by_class.png": [
            f"## Recall and precision per {kind}",
            "",
            f"![Recall per {kind}](recall_by_class.png)",
            "",
            f"Recall is the share of each {kind}'s test rows that the model finds. "
            "Losses for imbalanced data trade a little recall on the large "
            "classes for much more on the small ones, and pay for it in "
            "precision on the small ones.",
            "",
            *_md_table(
                [f"recall {c}" for c in result.class_names],
                [(r.loss, _per_class(r, "recall_per_class")) for r in result.runs],
            ),
            "",
            *_md_table(
                [f"precision {c}" for c in result.class_names],
                [(r.loss, _per_class(r, "precision_per_class")) for r in result.runs],
            ),
        ],
        "confusion_matrices.png": [
            "## Confusion matrices",
            "",
            "![Confusion matrices](confusion_matrices.png)",
            "",
            "Rows are the true class, columns the prediction, summed over seeds; "
            "each cell shows the share of its row (the diagonal is the recall) "
            "and the average count per seed.",
        ],
        "precision_recall.png": [
            "## Precision-recall curves",
            "",
            "![Precision-recall curves](precision_recall.png)",
            "",
            "One curve per loss (first seed), for the positive class. The dot is "
            "where the loss actually predicts (probability 0.5, or adjusted logit "
            "0 for ce-posthoc). ce-posthoc is drawn dashed: it ranks exactly like "
            "ce, so it shares ce's curve and only moves the dot. The grey line "
            "is the precision of guessing.",
        ],
    }
    lines = [
        f"# Loss comparison on {result.dataset}",
        "",
        _describe(result) + ".",
        "",
        f"Training rows per {kind}: {counts}. Every loss trains the same model on "
        "the same split with the same seeds; each number is the mean ± standard "
        "deviation over the seeds, measured on the held-out split.",
        "",
    ]
    for image in images:
        lines += [*sections[image], ""]
    lines += [
        "## Reading the numbers",
        "",
        "- *balanced accuracy*: the mean of the per-class recalls; 0.5 is chance "
        "for two classes whatever the imbalance.",
        "- *macro F1*: the mean over classes of F1, so small classes count as "
        "much as large ones.",
        "- *worst recall*: the recall of the class the model serves worst.",
        "- *log-loss*: how good the predicted probabilities are (lower is better); "
        "class weights and post-hoc adjustment trade it for recall on small "
        "classes, since their probabilities no longer match the data's "
        "frequencies.",
    ]
    if result.task == "binary":
        lines.append(
            "- *PR-AUC* (average precision) and *ROC-AUC*: how well the scores rank "
            "positives above negatives, whatever the threshold."
        )
    if result.cost_matrix is not None:
        lines.append(
            "- *mean cost*: the average cost of the predictions under the "
            "cost matrix (lower is better)."
        )
    lines.append("")
    return "\n".join(lines)


def _md_table(
    header: Sequence[str], rows: Sequence[tuple[str, list[str]]]
) -> list[str]:
    lines = ["| loss | " + " | ".join(header) + " |", "|---|" + "---:|" * len(header)]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows]
    return lines


def _per_class(run: LossResult, metric: str) -> list[str]:
    stat = run.metrics[metric]
    pairs = zip(stat["mean"], stat["std"], strict=True)
    return [format_stat({"mean": m, "std": s}) for m, s in pairs]


# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------
def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig


def _style(ax: Any) -> None:
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", color="#dddddd", linewidth=0.8)
    ax.set_axisbelow(True)


def _colours(runs: Sequence[LossResult]) -> list[str]:
    return [_PALETTE[i % len(_PALETTE)] for i in range(len(runs))]


def _grouped_bars(
    ax: Any,
    groups: Sequence[str],
    runs: Sequence[LossResult],
    means: np.ndarray,
    stds: np.ndarray,
    annotate: bool,
) -> None:
    """Bars for ``means[loss, group]``, one colour per loss."""
    n_runs, n_groups = means.shape
    width = 0.8 / n_runs
    x = np.arange(n_groups)
    for i, (run, colour) in enumerate(zip(runs, _colours(runs), strict=True)):
        pos = x - 0.4 + width * (i + 0.5)
        ax.bar(
            pos,
            means[i],
            width * 0.92,
            # whiskers of one standard deviation, kept inside [0, 1]
            yerr=np.stack(
                [np.minimum(stds[i], means[i]), np.minimum(stds[i], 1 - means[i])]
            ),
            color=colour,
            label=run.loss,
            capsize=2,
            error_kw={"elinewidth": 0.8, "ecolor": "#333333"},
        )
        if annotate:
            upper = np.minimum(stds[i], 1 - means[i])
            for px, m, sd in zip(pos, means[i], upper, strict=True):
                ax.text(
                    px,
                    m + sd + 0.015,
                    f"{m:.2f}",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    rotation=90 if n_runs > 3 else 0,
                )
    ax.set_xticks(x, groups)
    ax.set_ylim(0, 1.12)
    _style(ax)


def _plot_summary(result: CompareResult) -> Any:
    metrics = [(m, t) for m, t, higher in _headline(result) if higher]
    means = np.array([[r.metrics[m]["mean"] for m, _ in metrics] for r in result.runs])
    stds = np.array([[r.metrics[m]["std"] for m, _ in metrics] for r in result.runs])
    fig = _figure(max(7.0, 1.5 * len(metrics) + 2), 4.2)
    ax = fig.add_subplot()
    _grouped_bars(ax, [t for _, t in metrics], result.runs, means, stds, True)
    ax.set_ylabel("score (higher is better)")
    ax.set_title(f"{result.dataset}: headline metrics by loss", loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, title="loss")
    return fig


def _plot_recall(result: CompareResult) -> Any:
    names = [
        f"{name}\n(n={n:,})"
        for name, n in zip(result.class_names, result.train_counts, strict=True)
    ]
    recall = [r.metrics["recall_per_class"] for r in result.runs]
    means = np.array([s["mean"] for s in recall])
    stds = np.array([s["std"] for s in recall])
    n = len(names)
    width = 0.9 * n * max(1.0, len(result.runs) / 4) + 2.5
    fig = _figure(min(max(7.0, width), 15.0), 4.4)
    ax = fig.add_subplot()
    _grouped_bars(ax, names, result.runs, means, stds, n <= 4)
    if n > 6:
        ax.tick_params(axis="x", labelrotation=45)
    kind = "label" if result.task == "multilabel" else "class"
    ax.set_ylabel("recall")
    ax.set_xlabel(f"{kind} (training rows)")
    ax.set_title(f"{result.dataset}: recall per {kind} by loss", loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, title="loss")
    return fig


def _plot_confusions(result: CompareResult) -> Any:
    runs = result.runs
    n = len(result.class_names)
    cols = min(len(runs), 3 if n > 4 else 5)
    rows = -(-len(runs) // cols)
    size = 2.6 if n <= 4 else 0.42 * n + 1.2
    # room under each row for rotated class names
    fig = _figure(size * cols + 1.0, (size + (0.8 if n > 2 else 0.3)) * rows + 0.6)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    per_seed = len(result.seeds)
    image = None
    labels = [_short(c) for c in result.class_names]
    for index, (ax, run) in enumerate(zip(axes, runs, strict=False)):
        assert run.confusion is not None
        counts = run.confusion.astype(float)
        share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        if n <= 12:
            for i in range(n):
                for j in range(n):
                    text = f"{share[i, j]:.0%}"
                    if n <= 4:
                        text += f"\n{counts[i, j] / per_seed:,.0f}"
                    ax.text(
                        j,
                        i,
                        text,
                        ha="center",
                        va="center",
                        fontsize=9 if n <= 4 else 6,
                        color="white" if share[i, j] > 0.6 else "#222222",
                    )
        ax.set_xticks(
            range(n),
            labels,
            rotation=45 if n > 2 else 0,
            ha="right" if n > 2 else "center",
            fontsize=8,
        )
        first_column = index % cols == 0
        ax.set_yticks(range(n), labels if first_column else [], fontsize=8)
        ax.set_title(run.loss, fontsize=10)
        ax.set_xlabel("predicted", fontsize=8)
        if first_column:
            ax.set_ylabel("true", fontsize=8)
    for ax in axes[len(runs) :]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(
            image,
            ax=list(axes[: len(runs)]),
            shrink=0.8,
            label="share of the true class",
        )
    fig.suptitle(f"{result.dataset}: confusion matrices (rows: true class)")
    return fig


def _plot_pr_curves(result: CompareResult) -> Any:
    from sklearn.metrics import precision_recall_curve

    y = result.y_test
    fig = _figure(6.8, 4.8)
    ax = fig.add_subplot()
    prevalence = float(np.mean(y))
    ax.axhline(
        prevalence,
        color="#999999",
        linestyle="--",
        linewidth=1,
        label=f"guessing ({prevalence:.2f})",
    )
    for run, colour in zip(result.runs, _colours(result.runs), strict=True):
        assert run.scores is not None
        scores = run.scores[0]
        precision, recall, _ = precision_recall_curve(y, scores)
        ap = run.metrics["pr_auc"]
        # post-hoc adjustment keeps the ranking: same curve as ce, drawn dashed
        style = "--" if run.loss.startswith("ce-posthoc") else "-"
        ax.plot(
            recall,
            precision,
            style,
            color=colour,
            linewidth=1.6,
            label=f"{run.loss}  (AP {ap['mean']:.3f})",
        )
        predicted = scores > 0.5
        tp = float(np.sum(predicted & (y == 1)))
        point_recall = tp / max(float(np.sum(y == 1)), 1.0)
        point_precision = tp / max(float(np.sum(predicted)), 1.0)
        ax.plot(
            point_recall,
            point_precision,
            "o",
            color=colour,
            markersize=9,
            markeredgecolor="black",
            markeredgewidth=0.8,
            zorder=5,
        )
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(f"recall of '{result.class_names[1]}'")
    ax.set_ylabel("precision")
    ax.set_title(
        f"{result.dataset}: precision-recall (dots: operating points)", loc="left"
    )
    ax.grid(color="#eeeeee")
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(loc="lower left", frameon=False, fontsize=9)
    return fig


def _short(name: str, limit: int = 14) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"
