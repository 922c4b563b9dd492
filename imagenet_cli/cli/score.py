"""``imagenet score``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..scoring import DATASETS, Score, score
from .common import FromTreeOption, Rendering, Session, command, print_table

EXAMPLES = """\
Examples:

\b
  imagenet score predictions.csv                     top-1 and top-5 on the tree's val images
  imagenet score logits.npy --dataset real           ReaL accuracy (download --dataset imagenet-real first)
  imagenet score predictions.csv --from ROOT/224 --json
"""


def _print(result: Score) -> None:
    scored = f"{result.images:,} images of {result.tree}"
    if result.unlabelled:
        scored += f" ({result.unlabelled:,} without {result.dataset} labels left out)"
    typer.echo(f"{result.dataset}: {scored}")
    rows = [("top-1", f"{100 * result.top1:.2f}%")]
    if result.top5 is not None:
        rows.append(("top-5", f"{100 * result.top5:.2f}%"))
    print_table(("metric", "accuracy"), rows)


def _as_json(result: Score) -> dict[str, Any]:
    return {
        "dataset": result.dataset,
        "tree": str(result.tree),
        "images": result.images,
        "unlabelled": result.unlabelled,
        "top1": result.top1,
        "top5": result.top5,
        "per_class": result.per_class,
    }


@command("score", Rendering(text=_print, json=_as_json))
def score_command(
    predictions: Annotated[
        Path,
        typer.Argument(
            help="A CSV of path,class,class,... (best first; indices 0-999 or WNIDs) or an .npy/.npz of "
            "logits, one row per val image in the tree's manifest order (.npy needs the numpy extra).",
            dir_okay=False,
            metavar="PREDICTIONS",
        ),
    ],
    dataset: Annotated[
        str,
        typer.Option(
            help="val: the tree's labels. real: ReaL's, over the images it labels.",
            autocompletion=lambda: list(DATASETS),
            metavar="NAME",
        ),
    ] = "val",
    source: FromTreeOption = None,
    *,
    ui: Session,
) -> Score:
    """Score a model's predictions on a prepared tree's val images.

    Top-1 and top-5 accuracy as the set's authors define them, in the sorted-WNID index the tree
    uses; --json adds each class's top-1. Every val image of the tree must be predicted once: a
    file with images missing, extra or from another tree is refused, naming one.
    """
    return score(ui.root, predictions, dataset=dataset, tree=source)
