"""The ``wce`` command line: a thin typed shell over the library.

Each command lives in its own module and registers itself on :data:`app`.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="wce",
    help="Weighted cross-entropy for imbalanced data: compare losses, compute "
    "class weights.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from . import compare_cmd, weights_cmd

    weights_cmd.register(app)
    compare_cmd.register(app)


def main() -> None:
    """Entry point of the ``wce`` script."""
    _register()
    app()
