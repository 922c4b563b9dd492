"""The ``imagenet`` program: one Typer app, one module per command."""

from __future__ import annotations

import os
import re
import sys
from typing import Annotated

import typer

from ..errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from . import classes, download, export, info, prepare, score, show, subset, verify

app = typer.Typer(
    name="imagenet",
    epilog="Exit codes: 0 ok, 1 error, 2 usage, 3 problems found, 130 interrupted (143 SIGTERM, 129 SIGHUP).",
    no_args_is_help=True,
    add_completion=True,  # --install-completion; the same scripts ship in completions/
    rich_markup_mode=None,  # plain help: fast, stable, and what the README reference shows
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"imagenet {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_print_version, is_eager=True)
    ] = False,
) -> None:
    """ImageNet ILSVRC-2012 from its sources to a training-ready tree: fast, verified, nothing lost."""


# In the order of the pipeline; each command's Examples block is its help epilog.
app.command("download", epilog=download.EXAMPLES)(download.download)
app.command("verify", epilog=verify.EXAMPLES)(verify.verify_command)
app.command("prepare", epilog=prepare.EXAMPLES)(prepare.prepare_command)
app.command("subset", epilog=subset.EXAMPLES)(subset.subset_command)
app.command("export", epilog=export.EXAMPLES)(export.export_command)
app.command("show", epilog=show.EXAMPLES)(show.show_command)
app.command("score", epilog=score.EXAMPLES)(score.score_command)
app.command("info", epilog=info.EXAMPLES)(info.info)
app.command("classes", epilog=classes.EXAMPLES)(classes.classes)


def main(argv: list[str] | None = None) -> None:
    """The ``imagenet`` program: every outcome is one exit code, every error one line on stderr."""
    arguments = sys.argv[1:] if argv is None else argv
    try:  # no arguments: the help, as asked for, not as a usage error
        code = app(args=arguments or ["--help"], prog_name="imagenet", standalone_mode=False)
    except BrokenPipeError:
        _stdout_closed()
        code = EXIT_OK
    except typer.Abort:
        typer.echo("imagenet: interrupted", err=True)
        code = EXIT_INTERRUPTED
    except Exception as error:
        code = _usage_error(error, arguments)
    sys.exit(code or EXIT_OK)


def _usage_error(error: Exception, argv: list[str]) -> int:
    """Click's usage errors (a bad option or value, a missing argument) in our one-line form.

    Typer exposes them only as exceptions carrying ``exit_code`` 2 and ``format_message()``;
    anything else is not ours to format. The hint names the command the user typed.
    """
    if getattr(error, "exit_code", None) != EXIT_USAGE or not hasattr(error, "format_message"):
        raise error
    commands = {command.name for command in app.registered_commands}
    command = next((arg for arg in argv if arg in commands), None)
    where = f"imagenet {command}" if command else "imagenet"
    typer.echo(f"imagenet: error: {_plain(error.format_message())} — try `{where} --help`", err=True)
    return EXIT_USAGE


# Typer checks values with pydantic, whose phrasing is a validator's, not ours.
_VALIDATOR_PHRASES = (
    (re.compile(r"Value error, (.*?)\.?$"), r"\1"),
    (re.compile(r"Input should be less than or equal to (\S+)"), r"must be at most \1"),
    (re.compile(r"Input should be greater than or equal to (\S+)"), r"must be at least \1"),
    (re.compile(r"Input should be less than (\S+)"), r"must be below \1"),
    (re.compile(r"Input should be greater than (\S+)"), r"must be above \1"),
    (re.compile(r"Input should be a valid integer.*"), "must be a whole number"),
    (re.compile(r"Input should be a valid number.*"), "must be a number"),
    (re.compile(r"Input should be (.*)"), r"must be \1"),
)


def _plain(message: str) -> str:
    for pattern, replacement in _VALIDATOR_PHRASES:
        message = pattern.sub(replacement, message)
    return message


def _stdout_closed() -> None:
    """The reader of our stdout went away (``imagenet classes | head``): stop quietly, as Unix tools
    do, and keep Python from complaining when it flushes stdout on the way out."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
