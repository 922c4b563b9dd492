"""``imagenet show``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..contact_sheet import SheetResult, show
from .common import ForceOption, FromTreeOption, Rendering, Session, command, file_option, its_path

EXAMPLES = """\
Examples:

\b
  imagenet show n01440764 --out tench.png              one class: is it all tench?
  imagenet show --from ROOT/subsets/imagenette --per-class 6
  imagenet show 10 --split train                       10 classes drawn with seed 0
  imagenet show --failures                             what prepare repaired or could not read
"""


@command("show", Rendering(text=lambda result: _print_result(result), quiet=its_path))
def show_command(
    classes: Annotated[
        str | None,
        typer.Argument(
            help="Classes to show, as subset --classes reads them: a count, or WNIDs, names or a named list, "
            "comma-separated [default: every class of a small tree, else 10 drawn].",
            show_default=False,
            metavar="[CLASSES]",
        ),
    ] = None,
    source: FromTreeOption = None,
    split: Annotated[str, typer.Option(help="train or val.", metavar="SPLIT")] = "val",
    per_class: Annotated[int, typer.Option(help="Images per class (1–50).", metavar="N")] = 6,
    failures: Annotated[
        bool, typer.Option("--failures", help="Show what prepare repaired and what it could not read.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Which images (and classes) are drawn.", metavar="N")] = 0,
    out: Annotated[
        Path | None,
        file_option("The PNG to write [default: ROOT/sheets/<tree>-<what>.png]."),
    ] = None,
    force: ForceOption = False,
    *,
    ui: Session,
) -> SheetResult:
    """Draw a contact sheet of a tree's images with their labels.

    Thumbnails with their WNID, class name and file name, one row per class: a row of tench under
    n01440764 is proof at a glance (on the real dataset: the built-in sample's images are generated
    pictures). The same arguments draw the same images.
    """
    return show(
        ui.root,
        classes=classes,
        source=source,
        split=split,
        per_class=per_class,
        failures=failures,
        seed=seed,
        out=out,
        force=force,
    )


def _print_result(result: SheetResult) -> None:
    typer.echo(f"{result.path}  ({result.rows} rows × {result.columns} images of {result.tree})")
