"""ImageNet-ReaL (Beyer et al., 2020): new labels for ILSVRC-2012's val images.

``real.json`` is one list of 1k indices per val image, in file order: entry ``i`` belongs to
``ILSVRC2012_val_<i+1>`` (the repository's own README snippet reads it off by one). An empty list
means ReaL's raters agreed on no label: the image is left out of ReaL accuracy.

``TREE/val_real.txt`` is that file in the tree's terms, for a data loader: one line per val image
of the tree, in the manifest's order, its path and then its ReaL indices (none: no label)::

    val/n01440764/ILSVRC2012_val_00000293.JPEG 0
    val/n01440764/ILSVRC2012_val_00002138.JPEG 0 391
    val/n01440764/ILSVRC2012_val_00003014.JPEG
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import atomic, catalogue, manifest
from .errors import ArchiveError, MissingInputError

REAL_JSON = "real.json"
LABELS_FILE = "val_real.txt"


def read_real(path: Path) -> list[list[int]]:
    """ReaL's 50,000 label lists, checked: each a list of class indices 0..999."""
    if not path.is_file():
        raise MissingInputError(
            f"no ReaL labels at {path}: download them first (imagenet download --dataset imagenet-real)"
        )
    try:
        lists: Any = json.loads(path.read_bytes())
    except ValueError as error:
        raise ArchiveError(f"{path} is not JSON ({error})") from None
    if not isinstance(lists, list) or len(lists) != catalogue.NUM_VAL_IMAGES:
        raise ArchiveError(f"{path} is not ReaL's list of {catalogue.NUM_VAL_IMAGES:,} label lists")
    for number, entry in enumerate(lists, start=1):
        if not isinstance(entry, list) or not all(isinstance(i, int) and 0 <= i < catalogue.NUM_CLASSES for i in entry):
            raise ArchiveError(f"{path}: entry {number} ({str(entry)[:40]}) is not a list of class indices")
    return lists


def labels_of(lists: list[list[int]], path: str) -> list[int]:
    """The ReaL labels of the val image at ``path`` (``val/<wnid>/ILSVRC2012_val_<n>.JPEG``): entry
    n-1, by the number in its name, never by its place in a listing."""
    return lists[catalogue.val_number(path.rsplit("/", 1)[-1]) - 1]


def write_labels_file(tree: Path, real_json: Path) -> tuple[int, int]:
    """Write ``TREE/val_real.txt`` for the tree's val images; returns (images, those labelled)."""
    lists = read_real(real_json)
    images = labelled = 0
    with atomic.atomic_writer(tree / LABELS_FILE) as file:
        for entry in manifest.read_manifest(tree):
            if entry.split != "val":
                continue
            labels = labels_of(lists, entry.path)
            file.write(" ".join([entry.path, *map(str, labels)]).encode() + b"\n")
            images, labelled = images + 1, labelled + bool(labels)
    if not images:
        (tree / LABELS_FILE).unlink()
        raise MissingInputError(f"{tree} has no val images: prepare val first (imagenet prepare --splits val)")
    return images, labelled
