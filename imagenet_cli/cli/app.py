"""The ``imagenet`` program: one Typer app, one module per command."""

from __future__ import annotations

from typing import Annotated

import typer

from . import classes, download, info, prepare, subset, verify

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
app.command("info", epilog=info.EXAMPLES)(info.info)
app.command("classes", epilog=classes.EXAMPLES)(classes.classes)


def main() -> None:
    app(prog_name="imagenet")
