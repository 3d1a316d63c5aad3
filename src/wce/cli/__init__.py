"""The ``wce`` command line: a thin typed shell over the library.

Each command lives in its own module and registers itself on :data:`app`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

try:  # typer >= 0.22 ships its own copy of click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError
except ImportError:  # pragma: no cover - older typer uses click itself
    from click.exceptions import (  # type: ignore[assignment]
        ClickException,
        NoArgsIsHelpError,
    )


class PlainErrors(TyperGroup):
    """A typer group whose parse errors are plain lines on stderr, not a box.

    An option value of the wrong type, an unknown option or a missing argument
    prints ``Error: ...`` and, for a usage error, ``Try 'wce CMD --help' for
    help.``, then exits with the error's code (2 for usage). Help keeps its
    rich layout.
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        def run(standalone: bool) -> Any:
            return super(PlainErrors, self).main(
                args,
                prog_name,
                complete_var,
                standalone,
                windows_expand_args,
                **extra,
            )

        if not standalone_mode:
            return run(False)
        try:
            code = run(False)
        except NoArgsIsHelpError as err:
            if err.format_message():  # rich help is already printed
                err.show()
            sys.exit(err.exit_code)
        except ClickException as err:
            _show(err)
            sys.exit(err.exit_code)
        except typer.Abort:
            typer.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def _show(err: ClickException) -> None:
    text = err.format_message()
    rejected = _rejected_value(err)
    if rejected is not None and repr(rejected) not in text:
        text = f"{text}; got {rejected!r}"
    typer.echo(f"Error: {text}", err=True)
    ctx = getattr(err, "ctx", None)
    if ctx is not None and ctx.command.get_help_option(ctx) is not None:
        hint = f"Try '{ctx.command_path} {ctx.help_option_names[0]}' for help."
        typer.echo(hint, err=True)


def _rejected_value(err: BaseException) -> str | None:
    """The text typer's validator rejected, which its message leaves out."""
    errors = getattr(err.__cause__, "errors", None)
    if not callable(errors):
        return None
    try:
        value = errors()[0].get("input")
    except (IndexError, KeyError, TypeError, AttributeError):
        return None
    return value if isinstance(value, str) else None


app = typer.Typer(
    name="wce",
    cls=PlainErrors,
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
