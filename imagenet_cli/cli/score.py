"""``imagenet score``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .. import evalsets
from ..scoring import DATASETS, CorruptionScore, Score, score
from .common import FromTreeOption, Rendering, Session, command, print_table

EXAMPLES = """\
Examples:

\b
  imagenet score predictions.csv                     top-1 and top-5 on the tree's val images
  imagenet score logits.npy --dataset imagenet-real  ReaL accuracy (download --dataset imagenet-real first)
  imagenet score predictions.csv --from ROOT/224 --json
  imagenet score logits-a.npy --dataset imagenet-a   the best of A's 200 classes (prepare --dataset imagenet-a)
  imagenet score logits-c.npy --dataset imagenet-c   error per corruption and severity, CE and mCE
  imagenet score logits-o.npy --dataset imagenet-o   AUPR: ImageNet-O's rows, then val's
"""


def _print(result: Score) -> None:
    scored = f"{result.images:,} images of {result.tree}"
    if result.unlabelled:
        scored += f" ({result.unlabelled:,} without {result.dataset} labels left out)"
    if result.against:
        scored += f", against its {result.against:,} val images"
    typer.echo(f"{result.dataset}: {scored}")
    rows = []
    if result.top1 is not None:
        rows.append(("top-1", _percent(result.top1)))
    if result.top5 is not None:
        rows.append(("top-5", _percent(result.top5)))
    if result.aupr is not None:
        rows.append(("AUPR", _percent(result.aupr)))
    if result.mce is not None:
        rows.append(("mCE", _percent(result.mce)))
    print_table(("metric", "value"), rows)
    if result.corruptions:
        typer.echo("")
        severities = sorted({s for c in result.corruptions.values() for s in c.errors})
        table = [
            (name, *(_percent(c.errors[s]) if s in c.errors else "-" for s in severities), _percent(c.mean), _ce(c))
            for name, c in result.corruptions.items()
        ]
        print_table(("corruption", *(f"error {s}" for s in severities), "mean", "CE"), table)


def _percent(value: float) -> str:
    return f"{100 * value:.2f}%"


def _ce(corruption: CorruptionScore) -> str:
    return _percent(corruption.ce) if corruption.ce is not None else "-"


def _as_json(result: Score) -> dict[str, Any]:
    return {
        "dataset": result.dataset,
        "tree": str(result.tree),
        "images": result.images,
        "unlabelled": result.unlabelled,
        "top1": result.top1,
        "top5": result.top5,
        "per_class": result.per_class,
        "corruptions": {
            name: {"errors": {str(s): e for s, e in c.errors.items()}, "mean": c.mean, "ce": c.ce}
            for name, c in result.corruptions.items()
        },
        "mce": result.mce,
        "aupr": result.aupr,
        "against": result.against,
    }


@command("score", Rendering(text=_print, json=_as_json))
def score_command(
    predictions: Annotated[
        Path,
        typer.Argument(
            help="A CSV of path,class,class,... (best first; indices 0-999 or WNIDs) or an .npy/.npz of "
            "logits over the 1000 classes, one row per image scored in the tree's manifest order (needs the numpy "
            "extra).",
            dir_okay=False,
            metavar="PREDICTIONS",
        ),
    ],
    dataset: Annotated[
        str,
        typer.Option(
            help=f"{evalsets.DEFAULT}: the tree's val images. imagenet-real: the same, by ReaL's labels, over "
            "the images it labels. An evaluation set prepared into the tree (prepare --dataset): its images, "
            "scored as its authors do: imagenet-a and imagenet-r over their 200 classes, imagenet-c by error per "
            "corruption and mCE, imagenet-o by AUPR against the val images (logits only).",
            autocompletion=lambda: list(DATASETS),
            metavar="NAME",
        ),
    ] = evalsets.DEFAULT,
    source: FromTreeOption = None,
    *,
    ui: Session,
) -> Score:
    """Score a model's predictions on a prepared tree's images.

    Top-1 and top-5 accuracy as the set's authors define them, in the sorted-WNID index the tree
    uses; --json adds each class's top-1. Every image scored must be predicted once: a file with
    images missing, extra or from another tree is refused, naming one.
    """
    return score(ui.root, predictions, dataset=dataset, tree=source)
