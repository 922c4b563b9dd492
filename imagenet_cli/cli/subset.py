"""``imagenet subset``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..catalogue import LabelFraction
from ..subsets import LinkMode, SubsetResult, subset
from .common import FromTreeOption, NoWaitOption, Rendering, Session, command, its_path, local_folder, plural

EXAMPLES = """\
Examples:

\b
  imagenet subset --classes 100                      100 classes drawn with seed 0, all their images
  imagenet subset --classes 100 --per-class 260      ... and exactly 260 train images each
  imagenet subset --classes imagenette               a named list (imagenette, imagewoof, imagenet100)
  imagenet subset --classes n01440764,goldfish --fraction 0.1
  imagenet subset --images 1percent                  SimCLR's 1% label fraction (12,811 files)
  imagenet subset --classes 10 --link copy --out /scratch/in10
"""


@command("subset", Rendering(text=lambda result: _print_result(result), quiet=its_path))
def subset_command(
    classes: Annotated[
        str | None,
        typer.Option(
            help="A number of classes to draw, a named list (imagenette, imagewoof, imagenet100), a file of "
            "WNIDs, or WNIDs/names comma-separated [default: every class].",
            show_default=False,
            metavar="N|NAME|FILE|LIST",
        ),
    ] = None,
    per_class: Annotated[
        int | None, typer.Option(help="Exactly K train images in every class.", min=1, show_default=False, metavar="K")
    ] = None,
    fraction: Annotated[
        float | None,
        typer.Option(
            help="round(F x count) train images per class.", min=0.0, max=1.0, show_default=False, metavar="F"
        ),
    ] = None,
    images: Annotated[
        LabelFraction | None, typer.Option(help="The SimCLR/TFDS label-fraction file lists.", show_default=False)
    ] = None,
    val_per_class: Annotated[
        int | None, typer.Option(help="Val images per class [default: all].", min=0, show_default=False, metavar="K")
    ] = None,
    seed: Annotated[int, typer.Option(help="The same tree, arguments and seed give the same files.", metavar="S")] = 0,
    source: FromTreeOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where the subset goes [default: ROOT/subsets/<a name from the arguments>].",
            file_okay=False,
            show_default=False,
            metavar="DIR",
        ),
    ] = None,
    link: Annotated[LinkMode, typer.Option(help="How files get into the subset.")] = LinkMode.symlink,
    allow_short: Annotated[
        bool,
        typer.Option(
            "--allow-short", help="Accept classes with fewer than K images, and lists the tree only partly has."
        ),
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what the subset would hold; write nothing.")] = False,
    no_wait: NoWaitOption = False,
    *,
    ui: Session,
) -> SubsetResult:
    """Make a class-balanced, reproducible subset of a prepared tree.

    Choices sort by a hash of (seed, name), so subsets are the same on every machine and nest:
    10 classes are among the 100 of the same seed, K=10 images among K=50. The subset holds links,
    subset.json, classes.txt, train.txt and val.txt (labels in the 1000-class index, as everywhere),
    train_subset_index.txt and val_subset_index.txt (its own 0..k-1) and a manifest `verify` checks.
    """
    return subset(
        ui.root,
        classes=classes,
        per_class=per_class,
        fraction=fraction,
        images=images.value if images else None,
        val_per_class=val_per_class,
        seed=seed,
        source=source,
        out=local_folder(out, "--out") if out is not None else None,
        link=link.value,
        allow_short=allow_short,
        dry_run=dry_run,
        wait=not no_wait,
        progress=ui.progress,
    )


def _print_result(result: SubsetResult) -> None:
    counts = ", ".join(f"{n:,} {split}" for split, n in result.images.items())
    verb = {"written": "wrote", "kept": "already there:", "dry run": "would write"}[result.status]
    typer.echo(f"{verb} {result.path}: {plural(result.classes, 'class')}, {counts} images (from {result.source})")
    if result.short_classes:
        typer.echo(f"{plural(len(result.short_classes), 'class')} had fewer images than asked (--allow-short)")
    if result.missing:
        typer.echo(f"{len(result.missing):,} listed files are not in the tree, e.g. {', '.join(result.missing[:3])}")
