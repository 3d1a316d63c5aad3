"""``wce compare``: train one model per loss on imbalanced data, side by side.

A thin shell over :mod:`wce.compare`: it parses the options, shows a progress bar
on an interactive terminal, and prints a table or JSON. A problem with the request
exits with 2, a problem with the data with 1, each with one line on stderr.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from ..compare import _errors
from ..compare.objectives import DEFAULT_LOSSES, LOSSES
from ..compare.runner import DEFAULTS

__all__ = ["compare_command", "register"]

FORMATS = ("table", "json")
_DEFAULT_SEEDS = ",".join(map(str, DEFAULTS.seeds))
HELP = (
    "Train the same model with each loss on the same split and seeds, and report "
    "per-class results side by side.\n\n"
    "With no arguments it runs on the built-in satimage dataset. Default losses: "
    f"{', '.join(DEFAULT_LOSSES)}. All losses: {', '.join(LOSSES)}."
)


def register(app: typer.Typer) -> None:
    """Add the ``compare`` command to ``app``."""
    app.command("compare", help=HELP, no_args_is_help=False)(compare_command)


def compare_command(
    data: Annotated[
        Path | None,
        typer.Argument(
            help="CSV or Parquet file with your data (needs --target or --targets).",
            metavar="DATA",
            show_default=False,
        ),
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(help="Built-in dataset instead of a file (default: satimage)."),
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
            "(focal:gamma=1). Default: " + ", ".join(DEFAULT_LOSSES) + "."
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
    ] = _DEFAULT_SEEDS,
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
            data,
            dataset=dataset,
            target=target,
            targets=targets,
            losses=losses,
            cost_matrix=cost_matrix,
            model=model,
            epochs=epochs,
            seeds=seeds,
            test_size=test_size,
            out=out,
            output_format=output_format,
        )
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
    cmp.check_request(
        losses,
        model=model,
        epochs=epochs,
        seeds=seed_list,
        cost_matrix=cost_matrix is not None,
    )
    if cost_matrix is not None and cost_matrix.is_dir():
        raise _errors.UsageError(
            f"cost matrix '{cost_matrix}' is a directory; pass a CSV file of costs"
        )
    if cost_matrix is not None and not cost_matrix.is_file():
        raise _errors.UsageError(f"cost matrix file '{cost_matrix}' not found")
    created = [] if out is None else _make_out(out)
    try:
        _compare(
            data,
            dataset=dataset,
            target=target,
            targets=targets,
            losses=losses,
            cost_matrix=cost_matrix,
            model=model,
            epochs=epochs,
            seeds=seed_list,
            test_size=test_size,
            out=out,
            output_format=output_format,
        )
    except BaseException:
        _remove_empty(created)
        raise


def _compare(
    data: Path | None,
    *,
    dataset: str | None,
    target: str | None,
    targets: str | None,
    losses: str | None,
    cost_matrix: Path | None,
    model: str,
    epochs: int,
    seeds: list[int],
    test_size: float,
    out: Path | None,
    output_format: str,
) -> None:
    from .. import compare as cmp

    label_columns = _split_names(targets) if targets is not None else None
    prepared = cmp.prepare(
        data,
        dataset=dataset,
        target=target,
        targets=label_columns,
        test_size=test_size,
        seed=seeds[0],
    )
    costs = None
    if cost_matrix is not None:
        costs = cmp.load_cost_matrix(cost_matrix, prepared.num_classes)
    total = cmp.count_epochs(
        losses, epochs=epochs, seeds=seeds, cost_matrix=costs is not None
    )
    with _Progress(total) as advance:
        result = cmp.compare(
            prepared,
            losses=losses,
            model=model,
            epochs=epochs,
            seeds=seeds,
            cost_matrix=costs,
            on_epoch=advance,
        )

    if out is not None:
        from ..compare.report import write_report

        try:
            report = write_report(result, out)
        except OSError as err:
            raise _errors.DataError(
                f"cannot write the report into '{out}': {err.strerror or err}"
            ) from None
        typer.echo(f"Report written to {report}", err=True)
    if output_format == "json":
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        from ..compare.report import print_table

        print_table(result)


def _make_out(out: Path) -> list[Path]:
    """Create the ``--out`` folder and check that it takes files, before training.

    Returns the folders it created, deepest first, for a failed run to remove.
    """
    if out.exists() and not out.is_dir():
        raise _errors.UsageError(f"--out '{out}' is a file; pass a folder")
    created = [p for p in (out, *out.parents) if not p.exists()]
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".wce-"):
            pass
    except OSError as err:
        _remove_empty(created)
        verb = "create" if created else "write into"
        raise _errors.UsageError(
            f"cannot {verb} --out '{out}' ({err.strerror or err}); pass a folder "
            "you can write to"
        ) from None
    return created


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def _parse_seeds(text: str) -> list[int]:
    parts = _split_names(text)
    try:
        seeds = [int(p) for p in parts]
    except ValueError:
        raise _errors.UsageError(
            f"--seeds takes comma-separated integers such as 0,1,2, got '{text}'"
        ) from None
    return seeds


def _split_names(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


class _Progress:
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
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("epochs"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.bar.start()
        task = self.bar.add_task("training", total=self.total)

        def advance(loss: str, seed: int) -> None:
            self.bar.update(task, advance=1, description=f"{loss}, seed {seed}")

        return advance

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
