"""``wce compare``: train one model per loss on imbalanced data, side by side.

A thin shell over :mod:`wce.compare`: it parses the options, shows a progress bar
on an interactive terminal, and prints a table or JSON. A problem with the request
exits with 2, a problem with the data with 1, each with one line on stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..compare import _errors
from ..compare.objectives import DEFAULT_LOSSES, LOSSES
from ..compare.runner import DEFAULTS

__all__ = ["compare_command", "register"]

FORMATS = ("table", "json")
HELP = f"""Train the same model with each loss on the same split and seeds, and report
per-class results side by side.

With no arguments it runs on the built-in satimage dataset. The default losses are
{", ".join(DEFAULT_LOSSES)}; all losses: {", ".join(LOSSES)}.
"""


def register(app: typer.Typer) -> None:
    """Add the ``compare`` command to ``app``."""
    app.command("compare", help=HELP, no_args_is_help=False)(compare_command)


def compare_command(
    data: Annotated[
        Path | None,
        typer.Argument(
            help="CSV or Parquet file with your data (needs --target or --targets).",
            show_default=False,
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(help="Built-in dataset instead of a file [default: satimage]."),
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="Class column of a single-label data file.")
    ] = None,
    targets: Annotated[
        str | None,
        typer.Option(help="Comma-separated 0/1 columns of a multi-label data file."),
    ] = None,
    losses: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated losses, each NAME or NAME:OPTION=VALUE "
            "(focal:gamma=1) [default: " + ",".join(DEFAULT_LOSSES) + "]."
        ),
    ] = None,
    cost_matrix: Annotated[
        Path | None,
        typer.Option(
            help="CSV of costs, row = true class, column = prediction; adds the "
            "expected-cost loss and the mean_cost metric.",
            show_default=False,
        ),
    ] = None,
    model: Annotated[str, typer.Option(help="linear or mlp.")] = DEFAULTS.model,
    epochs: Annotated[int, typer.Option(help="Training epochs.")] = DEFAULTS.epochs,
    seeds: Annotated[
        str, typer.Option(help="Comma-separated seeds, one training per seed.")
    ] = ",".join(str(s) for s in DEFAULTS.seeds),
    test_size: Annotated[
        float, typer.Option(help="Held-out fraction (stratified split).")
    ] = DEFAULTS.test_size,
    out: Annotated[
        Path | None,
        typer.Option(help="Write a Markdown report with plots into this folder."),
    ] = None,
    output_format: Annotated[
        str, typer.Option("--format", help="table or json.")
    ] = "table",
) -> None:
    try:
        _run(
            data, dataset=dataset, target=target, targets=targets, losses=losses,
            cost_matrix=cost_matrix, model=model, epochs=epochs, seeds=seeds,
            test_size=test_size, out=out, output_format=output_format,
        )  # fmt: skip
    except _errors.CompareError as err:
        typer.echo(f"Error: {err}", err=True)
        raise typer.Exit(err.exit_code) from None


def _run(
    data: Path | None,
    *,
    dataset: str | None,
    target: str | None,
    targets: str | None,
    losses: str | None,
    cost_matrix: Path | None,
    model: str,
    epochs: int,
    seeds: str,
    test_size: float,
    out: Path | None,
    output_format: str,
) -> None:
    from .. import compare as cmp

    if output_format not in FORMATS:
        raise _errors.UsageError(
            f"unknown --format '{output_format}'; choose table or json"
        )
    seed_list = _parse_seeds(seeds)
    cmp.parse_losses(losses, cost_matrix=cost_matrix is not None)
    if model not in cmp.MODELS:
        raise _errors.UsageError(f"unknown --model '{model}'; choose linear or mlp")
    if epochs < 1:
        raise _errors.UsageError(f"--epochs must be at least 1, got {epochs}")
    if cost_matrix is not None and not cost_matrix.is_file():
        raise _errors.UsageError(f"cost matrix file '{cost_matrix}' not found")
    label_columns = _split_names(targets) if targets is not None else None

    prepared = cmp.prepare(
        data, dataset=dataset, target=target, targets=label_columns,
        test_size=test_size, seed=seed_list[0],
    )  # fmt: skip
    costs = None
    if cost_matrix is not None:
        costs = cmp.load_cost_matrix(cost_matrix, prepared.num_classes)
    total = cmp.count_epochs(
        losses, epochs=epochs, seeds=seed_list, cost_matrix=costs is not None
    )
    with _progress(total) as advance:
        result = cmp.compare(
            prepared, losses=losses, model=model, epochs=epochs, seeds=seed_list,
            cost_matrix=costs, on_epoch=advance,
        )  # fmt: skip

    if out is not None:
        from ..compare.report import write_report

        report = write_report(result, out)
        typer.echo(f"Report written to {report}", err=True)
    if output_format == "json":
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        from ..compare.report import print_table

        print_table(result)


def _parse_seeds(text: str) -> list[int]:
    parts = _split_names(text)
    try:
        seeds = [int(p) for p in parts]
    except ValueError:
        raise _errors.UsageError(
            f"--seeds takes comma-separated integers such as 0,1,2, got '{text}'"
        ) from None
    if not seeds:
        raise _errors.UsageError("--seeds needs at least one seed, such as 0,1,2")
    if len(set(seeds)) != len(seeds):
        raise _errors.UsageError(f"--seeds lists a seed twice: '{text}'")
    return seeds


def _split_names(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


class _progress:
    """A progress bar on stderr when it is a terminal; otherwise nothing."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.bar: Any = None

    def __enter__(self) -> Any:
        if not sys.stderr.isatty():
            return None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(
            TextColumn("training"), BarColumn(), MofNCompleteColumn(),
            TextColumn("epochs"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=True,
        )  # fmt: skip
        self.bar.start()
        task = self.bar.add_task("training", total=self.total)
        return lambda: self.bar.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
