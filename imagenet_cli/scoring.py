"""``imagenet score``: a model's predictions on a prepared tree's images, scored as each set's
authors score them.

Predictions come in the tree's own terms, so that they cannot be scored against the wrong images
or the wrong class order: a CSV of ``path,class,class,…`` (best first; a class is a sorted-WNID
index 0..999 or a WNID; the path as the manifest has it, or the file name alone where the tree
holds that name once), or an ``.npy`` / ``.npz`` of logits over the 1000 classes with one row per
image scored, in the manifest's order. Every image scored must be predicted once, and nothing else.

- ``ilsvrc-2012``: top-1 and top-5 accuracy on the val images, and each class's top-1; likewise
  ``imagenet-v2`` (each variant) and ``imagenet-sketch`` on their own images;
- ``imagenet-real``: ReaL accuracy (Beyer et al., 2020) on the val images: a prediction is right
  when it is among the image's ReaL labels; images ReaL left without labels are not counted;
- ``imagenet-a``, ``imagenet-r``: the prediction is the best of the set's 200 classes only (the
  1000 logits restricted to them; a CSV's classes outside them are passed over);
- ``imagenet-c``: top-1 error per corruption and severity, each corruption's mean over its
  severities, its corruption error (CE: that mean over AlexNet's) and mCE, the mean CE of the 15
  benchmark corruptions (Hendrycks & Dietterich, 2019), when all 15 are in the tree;
- ``imagenet-o``: AUPR (average precision) of telling ImageNet-O's images (the positives) from the
  tree's val images by the max softmax probability, the lower the more anomalous (Hendrycks et al.,
  2021). It needs logits: the rows are the tree's imagenet-o images then its val images, the
  manifest's order.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import catalogue, evalsets, manifest, real
from .errors import InvalidArgumentError, MissingExtraError, MissingInputError
from .layout import Root

DATASETS = (evalsets.DEFAULT, *evalsets.sets())
TOP = 5  # the most predictions per image that are scored
BLOCK = 4096  # logits rows at a time: memory stays flat


@dataclass(frozen=True)
class CorruptionScore:
    errors: dict[int, float]  # severity -> top-1 error
    mean: float  # over the severities
    ce: float | None  # mean / AlexNet's; None for the 4 extra corruptions (no AlexNet figure)


@dataclass(frozen=True)
class Score:
    dataset: str
    tree: Path
    images: int  # images scored
    unlabelled: int  # ReaL: val images it left without labels, not scored
    top1: float | None  # None for ImageNet-O (scored by AUPR)
    top5: float | None  # None when the predictions rank fewer than five classes
    per_class: dict[str, float] = field(default_factory=dict)  # WNID: top-1 over its images
    corruptions: dict[str, CorruptionScore] = field(default_factory=dict)  # ImageNet-C
    mce: float | None = None  # ImageNet-C, with all 15 benchmark corruptions
    aupr: float | None = None  # ImageNet-O
    against: int = 0  # ImageNet-O: the val images its AUPR is taken against


def score(root: Path, predictions: Path, *, dataset: str = evalsets.DEFAULT, tree: Path | None = None) -> Score:
    """Score ``predictions`` (see the module docstring) of the images of ``tree`` (default: the
    root's prepared tree) on ``dataset``: ILSVRC-2012's val, or an evaluation set prepared into the
    tree (``imagenet prepare --dataset NAME``); ReaL's labels are read from
    ``ROOT/downloads/imagenet-real/real.json``."""
    if dataset not in DATASETS:
        raise InvalidArgumentError(f"{dataset!r} is not one of {', '.join(DATASETS)}", "dataset")
    layout = Root(root)
    tree = tree or layout.the_prepared_tree()
    split = _split_scored(dataset)
    splits = (split, "val") if dataset == "imagenet-o" else (split,)
    images = [(entry.path, entry.wnid) for entry in manifest.read_manifest(tree) if entry.split in splits]
    if not any(path.startswith(f"{split}/") for path, _ in images):
        hint = "" if split == "val" else f": prepare them first (imagenet prepare --dataset {dataset})"
        raise MissingInputError(f"{tree} has no {split} images to score{hint}")
    what = " and ".join(splits) + " images"  # in messages: "val images", "imagenet-o and val images"
    if dataset == "imagenet-o":
        return _scored_ood(tree, images, _max_softmax(predictions, len(images), what))
    ranked = list(_ranked(predictions, [path for path, _ in images], _mask(dataset), what))
    if dataset == "imagenet-real":
        lists = real.read_real(layout.evalset_downloads("imagenet-real") / real.REAL_JSON)
        truth = [set(real.labels_of(lists, path)) for path, _ in images]
    else:
        index = {wnid: i for i, wnid in enumerate(catalogue.wnids())}
        truth = [{index[wnid]} for _, wnid in images]
    scored = _scored(dataset, tree, images, ranked, truth)
    if dataset == "imagenet-c":
        corruptions = _corruption_scores(images, ranked, truth)
        return dataclasses.replace(scored, corruptions=corruptions, mce=_mce(corruptions))
    return scored


def _split_scored(dataset: str) -> str:
    """The tree's folder whose images a dataset scores: ILSVRC-2012's val for it and ReaL."""
    return "val" if dataset in (evalsets.DEFAULT, "imagenet-real") else dataset


def _mask(dataset: str) -> list[int] | None:
    """A's and R's 200 classes, as 1k indices; None: all 1000 count."""
    if dataset not in ("imagenet-a", "imagenet-r"):
        return None
    return sorted(catalogue.by_wnid(wnid).index for wnid in evalsets.evalset(dataset).wnids())


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


# --- ImageNet-C --------------------------------------------------------------------------------


@functools.cache
def alexnet_errors() -> dict[str, float]:
    """AlexNet's error on each benchmark corruption, over its severities (package data)."""
    return {corruption: float(error) for corruption, error in catalogue.data_rows("imagenet_c_alexnet_errors.tsv")}


def _corruption_scores(
    images: list[tuple[str, str]], ranked: list[list[int]], truth: list[set[int]]
) -> dict[str, CorruptionScore]:
    """Top-1 error per ``imagenet-c/<corruption>/<severity>/`` folder, and per corruption."""
    counts: dict[tuple[str, int], list[int]] = collections.defaultdict(lambda: [0, 0])
    for (path, _), guesses, labels in zip(images, ranked, truth, strict=True):
        _, corruption, severity, _ = path.split("/", 3)
        counts[(corruption, int(severity))][0] += bool(guesses) and guesses[0] in labels
        counts[(corruption, int(severity))][1] += 1
    scores = {}
    for corruption in [c for group in evalsets.CORRUPTIONS.values() for c in group]:
        errors = {s: 1 - hit / n for (c, s), (hit, n) in sorted(counts.items()) if c == corruption}
        if errors:
            mean = sum(errors.values()) / len(errors)
            alexnet = alexnet_errors().get(corruption)
            scores[corruption] = CorruptionScore(errors, mean, mean / alexnet if alexnet else None)
    return scores


def _mce(corruptions: dict[str, CorruptionScore]) -> float | None:
    """The mean CE of the 15 benchmark corruptions, each with all 5 severities; else None."""
    benchmark = alexnet_errors()
    whole = [c for c in benchmark if c in corruptions and len(corruptions[c].errors) == len(evalsets.SEVERITIES)]
    if len(whole) != len(benchmark):
        return None
    return sum(corruptions[c].ce or 0.0 for c in whole) / len(whole)


# --- ImageNet-O --------------------------------------------------------------------------------


def _scored_ood(tree: Path, images: list[tuple[str, str]], confidence: list[float]) -> Score:
    anomalous = [path.startswith("imagenet-o/") for path, _ in images]
    if all(anomalous):
        raise MissingInputError(f"{tree} has no val images: ImageNet-O is scored against them (prepare val)")
    aupr = average_precision([-c for c in confidence], anomalous)
    positives = sum(anomalous)
    return Score("imagenet-o", tree, positives, 0, None, None, aupr=aupr, against=len(images) - positives)


def average_precision(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """The area under the precision-recall curve as a step sum: Σ (Rₖ − Rₖ₋₁)·Pₖ over the distinct
    scores from the highest down (tied scores are one threshold), as scikit-learn computes it."""
    total = sum(positive)
    if not total:
        raise InvalidArgumentError("no positives: average precision is undefined")
    ranked = sorted(zip(scores, positive, strict=True), key=lambda pair: -pair[0])
    area = recall_before = 0.0
    hits = seen = 0
    for position, (value, is_positive) in enumerate(ranked):
        hits += is_positive
        seen += 1
        if position + 1 < len(ranked) and ranked[position + 1][0] == value:
            continue  # a tie: one threshold for all of them
        recall = hits / total
        area += (recall - recall_before) * hits / seen
        recall_before = recall
    return area


def _max_softmax(predictions: Path, count: int, what: str) -> list[float]:
    """Each row's largest softmax probability, from logits."""
    if predictions.suffix not in (".npy", ".npz"):
        raise InvalidArgumentError(
            f"{predictions}: ImageNet-O is scored by softmax confidence: give logits (.npy or .npz), not classes"
        )
    numpy = _numpy()
    loaded = _logits(predictions, count, what)
    confidence: list[float] = []
    for start in range(0, count, BLOCK):
        block = numpy.asarray(loaded[start : start + BLOCK], dtype=numpy.float64)
        shifted = numpy.exp(block - block.max(axis=1, keepdims=True))
        confidence += (1.0 / shifted.sum(axis=1)).tolist()  # the largest is exp(0) = 1 over the sum
    return confidence


# --- predictions -------------------------------------------------------------------------------


def _ranked(predictions: Path, paths: list[str], mask: list[int] | None, what: str) -> Iterator[list[int]]:
    """The classes predicted for each of ``paths``, best first, in their order (only those in
    ``mask``, when given)."""
    if not predictions.is_file():
        raise MissingInputError(f"{predictions}: no such file")
    if predictions.suffix in (".npy", ".npz"):
        yield from _ranked_logits(predictions, len(paths), mask, what)
    else:
        yield from _ranked_csv(predictions, paths, mask, what)


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        raise MissingExtraError.of("score of .npy logits", "numpy", "numpy") from None
    return numpy


def _logits(predictions: Path, count: int, what: str) -> Any:
    """The (images, 1000) array, checked; an .npy is mapped, not read whole."""
    numpy = _numpy()
    if not predictions.is_file():
        raise MissingInputError(f"{predictions}: no such file")
    loaded = numpy.load(predictions, allow_pickle=False, mmap_mode="r" if predictions.suffix == ".npy" else None)
    if hasattr(loaded, "files"):  # an .npz: its one array
        if len(loaded.files) != 1:
            raise InvalidArgumentError(f"{predictions} holds {len(loaded.files)} arrays; one of logits is scored")
        loaded = loaded[loaded.files[0]]
    if loaded.ndim != 2 or loaded.shape[1] != catalogue.NUM_CLASSES:
        raise InvalidArgumentError(f"{predictions} holds an array of shape {loaded.shape}; (images, 1000) is scored")
    if loaded.shape[0] != count:
        raise InvalidArgumentError(
            f"{predictions} has {loaded.shape[0]:,} rows but the tree has {count:,} {what}: "
            "logits from another tree, or another order"
        )
    return loaded


def _ranked_logits(predictions: Path, count: int, mask: list[int] | None, what: str) -> Iterator[list[int]]:
    numpy = _numpy()
    loaded = _logits(predictions, count, what)
    columns = numpy.asarray(mask if mask is not None else range(catalogue.NUM_CLASSES))
    for start in range(0, count, BLOCK):
        block = numpy.asarray(loaded[start : start + BLOCK])[:, columns]
        best = numpy.argsort(-block, axis=1, kind="stable")[:, :TOP]
        yield from (row.tolist() for row in columns[best])


def _ranked_csv(predictions: Path, paths: list[str], mask: list[int] | None, what: str) -> Iterator[list[int]]:
    by_path = {path: i for i, path in enumerate(paths)}
    names = collections.Counter(path.rsplit("/", 1)[-1] for path in paths)
    by_name = {path.rsplit("/", 1)[-1]: i for i, path in enumerate(paths)}
    allowed = set(mask) if mask is not None else None
    found: dict[int, list[int]] = {}
    with predictions.open(newline="") as file:
        for number, row in enumerate(csv.reader(file), start=1):
            if not row or (number == 1 and row[0].strip().lower() == "path"):
                continue
            where, given = f"{predictions.name}:{number}", row[0].strip()
            if given not in by_path and names[given] > 1:
                raise InvalidArgumentError(f"{where}: {given} is the name of {names[given]:,} images: give its path")
            position = by_path.get(given, by_name.get(given))
            if position is None:
                raise InvalidArgumentError(
                    f"{where}: {given} is not one of the tree's {what}: predictions of another tree?"
                )
            if position in found:
                raise InvalidArgumentError(f"{where}: {given} is predicted twice")
            classes = [_class_index(value, where) for value in row[1:] if value.strip()]
            found[position] = [c for c in classes if allowed is None or c in allowed][:TOP]
    if len(found) != len(paths):
        first = next(path for i, path in enumerate(paths) if i not in found)
        raise InvalidArgumentError(
            f"{predictions} predicts {len(found):,} of the tree's {len(paths):,} {what}; {first} is not among them"
        )
    return (found[i] for i in range(len(paths)))


def _class_index(value: str, where: str) -> int:
    text = value.strip()
    if text.isdigit() and int(text) < catalogue.NUM_CLASSES:
        return int(text)
    if catalogue.is_wnid(text):
        return catalogue.by_wnid(text).index
    raise InvalidArgumentError(f"{where}: {text!r} is neither a class index 0..999 nor one of the 1000 WNIDs")
