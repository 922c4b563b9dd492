"""``imagenet score``: a model's predictions on a prepared tree's val images, scored as each
set's authors score them.

Predictions come in the tree's own terms, so that they cannot be scored against the wrong images
or the wrong class order: a CSV of ``path,class,class,…`` (best first; a class is a sorted-WNID
index 0..999 or a WNID; the path as the manifest has it, or the file name alone), or an ``.npy`` /
``.npz`` of logits with one row per val image in the manifest's order. Every val image must be
predicted once, and nothing else.

- ``val``: top-1 and top-5 accuracy against the tree's labels, and each class's top-1;
- ``real``: ReaL accuracy (Beyer et al., 2020): a prediction is right when it is among the
  image's ReaL labels; images ReaL left without labels are not counted. ``real.json``'s entry
  ``i`` belongs to ``ILSVRC2012_val_<i+1>``: the file's order, never the manifest's.
"""

from __future__ import annotations

import collections
import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import catalogue, manifest
from .errors import InvalidArgumentError, MissingExtraError, MissingInputError
from .layout import Root

DATASETS = ("val", "real")
TOP = 5  # the most predictions per image that are scored


@dataclass(frozen=True)
class Score:
    dataset: str
    tree: Path
    images: int  # images scored
    unlabelled: int  # ReaL: val images it left without labels, not scored
    top1: float
    top5: float | None  # None when the predictions rank fewer than five classes
    per_class: dict[str, float] = field(default_factory=dict)  # WNID: top-1 over its images


def score(root: Path, predictions: Path, *, dataset: str = "val", tree: Path | None = None) -> Score:
    """Score ``predictions`` (see the module docstring) of the val images of ``tree`` (default:
    the root's prepared tree) on ``dataset``: ``val``, or ``real`` with the labels in
    ``ROOT/downloads/imagenet-real/real.json``."""
    if dataset not in DATASETS:
        raise InvalidArgumentError(f"{dataset!r} is not one of {', '.join(DATASETS)}", "dataset")
    layout = Root(root)
    tree = tree or layout.the_prepared_tree()
    images = [(entry.path, entry.wnid) for entry in manifest.read_manifest(tree) if entry.split == "val"]
    if not images:
        raise MissingInputError(f"{tree} has no val images to score")
    ranked = list(_ranked(predictions, [path for path, _ in images]))
    if dataset == "val":
        index = {wnid: i for i, wnid in enumerate(catalogue.wnids())}
        truth = [{index[wnid]} for _, wnid in images]
    else:
        truth = _real_labels(layout.evalset_downloads("imagenet-real") / "real.json", [p for p, _ in images])
    return _scored(dataset, tree, images, ranked, truth)


def _scored(
    dataset: str, tree: Path, images: list[tuple[str, str]], ranked: list[list[int]], truth: list[set[int]]
) -> Score:
    hits1 = hits5 = scored = 0
    per_class: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for (_, wnid), guesses, labels in zip(images, ranked, truth, strict=True):
        if not labels:
            continue
        scored += 1
        first = bool(guesses) and guesses[0] in labels
        hits1 += first
        hits5 += any(g in labels for g in guesses[:TOP])
        per_class[wnid][0] += first
        per_class[wnid][1] += 1
    top5 = hits5 / scored if scored and min(len(g) for g in ranked) >= TOP else None
    return Score(
        dataset,
        tree,
        scored,
        len(images) - scored,
        hits1 / scored if scored else 0.0,
        top5,
        {wnid: hit / count for wnid, (hit, count) in sorted(per_class.items())},
    )


# --- predictions -------------------------------------------------------------------------------


def _ranked(predictions: Path, paths: list[str]) -> Iterator[list[int]]:
    """The classes predicted for each of ``paths``, best first, in their order."""
    if not predictions.is_file():
        raise MissingInputError(f"{predictions}: no such file")
    if predictions.suffix in (".npy", ".npz"):
        yield from _ranked_logits(predictions, len(paths))
    else:
        yield from _ranked_csv(predictions, paths)


def _ranked_logits(predictions: Path, count: int) -> Iterator[list[int]]:
    try:
        import numpy
    except ImportError:
        raise MissingExtraError.of("score of .npy logits", "numpy", "numpy") from None
    loaded = numpy.load(predictions, allow_pickle=False)
    if hasattr(loaded, "files"):  # an .npz: its one array
        if len(loaded.files) != 1:
            raise InvalidArgumentError(f"{predictions} holds {len(loaded.files)} arrays; one of logits is scored")
        loaded = loaded[loaded.files[0]]
    if loaded.ndim != 2 or loaded.shape[1] != len(catalogue.wnids()):
        raise InvalidArgumentError(f"{predictions} holds an array of shape {loaded.shape}; (images, 1000) is scored")
    if loaded.shape[0] != count:
        raise InvalidArgumentError(
            f"{predictions} has {loaded.shape[0]:,} rows but the tree has {count:,} val images: "
            "logits from another tree, or another order"
        )
    for start in range(0, count, 4096):  # a block at a time: memory stays flat
        block = loaded[start : start + 4096]
        best = numpy.argsort(-block, axis=1, kind="stable")[:, :TOP]
        yield from (row.tolist() for row in best)


def _ranked_csv(predictions: Path, paths: list[str]) -> Iterator[list[int]]:
    by_path = {path: i for i, path in enumerate(paths)}
    by_name = {path.rsplit("/", 1)[-1]: i for i, path in enumerate(paths)}
    found: dict[int, list[int]] = {}
    with predictions.open(newline="") as file:
        for number, row in enumerate(csv.reader(file), start=1):
            if not row or (number == 1 and row[0].strip().lower() == "path"):
                continue
            where = f"{predictions.name}:{number}"
            position = by_path.get(row[0].strip(), by_name.get(row[0].strip()))
            if position is None:
                raise InvalidArgumentError(
                    f"{where}: {row[0]} is not a val image of the tree: predictions of another tree?"
                )
            if position in found:
                raise InvalidArgumentError(f"{where}: {row[0]} is predicted twice")
            found[position] = [_class_index(value, where) for value in row[1 : 1 + TOP] if value.strip()]
    if len(found) != len(paths):
        first = next(path for i, path in enumerate(paths) if i not in found)
        raise InvalidArgumentError(
            f"{predictions} predicts {len(found):,} of the tree's {len(paths):,} val images; {first} is not among them"
        )
    return (found[i] for i in range(len(paths)))


def _class_index(value: str, where: str) -> int:
    text = value.strip()
    if text.isdigit() and int(text) < len(catalogue.wnids()):
        return int(text)
    if catalogue.is_wnid(text):
        return catalogue.by_wnid(text).index
    raise InvalidArgumentError(f"{where}: {text!r} is neither a class index 0..999 nor one of the 1000 WNIDs")


# --- ReaL --------------------------------------------------------------------------------------


def _real_labels(path: Path, paths: list[str]) -> list[set[int]]:
    """Each image's ReaL labels, by its val number: entry i of real.json is ILSVRC2012_val_<i+1>."""
    if not path.is_file():
        raise MissingInputError(f"no ReaL labels at {path}: download the imagenet-real dataset first")
    lists: Any = json.loads(path.read_bytes())
    if not isinstance(lists, list) or len(lists) != catalogue.NUM_VAL_IMAGES:
        raise InvalidArgumentError(f"{path} is not ReaL's list of 50,000 label lists")
    return [set(lists[catalogue.val_number(p.rsplit("/", 1)[-1]) - 1]) for p in paths]
