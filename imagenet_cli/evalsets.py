"""The evaluation sets models are scored on beside ILSVRC-2012's val: what each holds and where.

Each set is scored in the 1000-class sorted-WNID index (the one our trees use), however its
archive names its classes: ImageNetV2 by that index as a folder name (0..999, which ImageFolder
sorts as strings: wrong labels), A, R, Sketch and C by WNID folders, ReaL by a JSON list of
indices per val image. A and R hold 200 classes each, two different 200; O holds classes outside
the 1000 (it measures out-of-distribution detection). C is 19 corruptions x 5 severities of the
val images, in five tars by group.

The files (URL, size and MD5 where their publishers or TFDS give them) are package data,
``data/evaluation_sets.tsv``; a file without a published digest is recorded as it arrives.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple

from . import catalogue
from .errors import InvalidArgumentError


class Layout(StrEnum):
    """How a set's archive names its images' classes."""

    INDEX_FOLDERS = "index-folders"  # <top>/<k>/<sha1>.jpeg: k is the 1k index, as a decimal string
    WNID_FOLDERS = "wnid-folders"  # <top>/<wnid>/<name>
    CORRUPTIONS = "corruptions"  # <corruption>/<severity 1..5>/<wnid>/<ILSVRC val name>
    LABELS = "labels"  # no images: a JSON list of 50,000 lists of 1k indices, one per val image


@dataclass(frozen=True)
class EvalFile:
    name: str  # as its host names it
    url: str
    size: int | None  # bytes, where published
    md5: str | None  # where published


@dataclass(frozen=True)
class EvalSet:
    name: str  # as --dataset takes it: imagenet-a
    title: str  # as papers write it: ImageNet-A
    layout: Layout
    top: str  # the folder the archive's images are under ("" for C: its tars hold corruption folders)
    images: int  # images in the set (C: per corruption and severity; ReaL: val images labelled or not)
    class_list: str | None  # the package-data list of its WNIDs, when not all 1000 (O: none of them)
    files: tuple[EvalFile, ...]

    @property
    def has_images(self) -> bool:
        """ReaL is labels for ILSVRC-2012's val images, not images of its own."""
        return self.layout is not Layout.LABELS

    @property
    def in_index(self) -> bool:
        """Its classes are among the 1000 (all but O's), so its images have a 1k label."""
        return self.name != "imagenet-o"

    @property
    def size(self) -> int | None:
        """All its files' bytes, if each is published."""
        sizes = [f.size for f in self.files]
        return None if None in sizes else sum(s for s in sizes if s is not None)

    def wnids(self) -> tuple[str, ...]:
        """Its classes in the 1k index (A, R: their 200; O: none of the 1000)."""
        if not self.in_index:
            return ()
        if self.class_list is None:
            return catalogue.wnids()
        return tuple(line for line in catalogue.data_text(self.class_list).split() if line)

    def files_for(self, corruptions: list[str] | None = None) -> tuple[EvalFile, ...]:
        """The files to fetch: all of them, or for C the tars of the corruption groups named."""
        if corruptions is None:
            return self.files
        if self.layout is not Layout.CORRUPTIONS:
            raise InvalidArgumentError(f"applies to imagenet-c only, not {self.name}", "corruptions")
        unknown = [group for group in corruptions if group not in CORRUPTIONS]
        if unknown:
            raise InvalidArgumentError(f"{', '.join(unknown)}: the groups are {', '.join(CORRUPTIONS)}", "corruptions")
        return tuple(f for f in self.files if f.name.removesuffix(".tar") in corruptions)


# ImageNet-C's corruptions by the tar that holds them: the 15 of the benchmark, then the 4 extra.
CORRUPTIONS = {
    "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
    "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
    "weather": ("snow", "frost", "fog", "brightness"),
    "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression"),
    "extra": ("speckle_noise", "gaussian_blur", "spatter", "saturate"),
}
SEVERITIES = (1, 2, 3, 4, 5)
DEFAULT = "ilsvrc-2012"  # --dataset's default: the dataset itself, not one of these

_SHAPES = {  # name: (title, layout, top folder, images, class list)
    "imagenet-v2": (
        "ImageNetV2 MatchedFrequency",
        Layout.INDEX_FOLDERS,
        "imagenetv2-matched-frequency-format-val",
        10_000,
        None,
    ),
    "imagenet-v2-threshold-0.7": (
        "ImageNetV2 Threshold0.7",
        Layout.INDEX_FOLDERS,
        "imagenetv2-threshold0.7-format-val",
        10_000,
        None,
    ),
    "imagenet-v2-top-images": (
        "ImageNetV2 TopImages",
        Layout.INDEX_FOLDERS,
        "imagenetv2-top-images-format-val",
        10_000,
        None,
    ),
    "imagenet-real": ("ImageNet-ReaL", Layout.LABELS, "", catalogue.NUM_VAL_IMAGES, None),
    "imagenet-a": ("ImageNet-A", Layout.WNID_FOLDERS, "imagenet-a", 7_500, "imagenet_a_wnids.txt"),
    "imagenet-r": ("ImageNet-R", Layout.WNID_FOLDERS, "imagenet-r", 30_000, "imagenet_r_wnids.txt"),
    "imagenet-sketch": ("ImageNet-Sketch", Layout.WNID_FOLDERS, "sketch", 50_889, None),
    "imagenet-o": ("ImageNet-O", Layout.WNID_FOLDERS, "imagenet-o", 2_000, None),
    "imagenet-c": ("ImageNet-C", Layout.CORRUPTIONS, "", catalogue.NUM_VAL_IMAGES, None),
}


@functools.cache
def sets() -> dict[str, EvalSet]:
    """Every evaluation set by name, in the order of the table."""
    files: dict[str, list[EvalFile]] = {name: [] for name in _SHAPES}
    for name, file, size, md5, url, _source in catalogue.data_rows("evaluation_sets.tsv"):
        files[name].append(EvalFile(file, url, None if size == "-" else int(size), None if md5 == "-" else md5))
    return {name: EvalSet(name, *shape, files=tuple(files[name])) for name, shape in _SHAPES.items()}


def image_sets() -> tuple[str, ...]:
    """The sets with images of their own: each is prepared as a folder of a tree, beside val."""
    return tuple(name for name, chosen in sets().items() if chosen.has_images)


README = "README.txt"  # A, R and O have one beside their class folders: not an image
_WNID_SHAPE = re.compile(r"n\d{8}")  # O's classes are WordNet nouns outside the 1000


class Placed(NamedTuple):
    """Where a member of a set's archive goes in a tree: ``folder`` (C's ``<corruption>/<severity>``,
    else "") and ``wnid``, or why it goes nowhere."""

    folder: str
    wnid: str
    name: str  # the image's file name
    sat_in: str | None = None  # C: the other class folder it sat in (it goes by its val label)


class Unplaced(NamedTuple):
    why: str
    kind: str  # "structure" (not where the set's images are), "extra" (a class not of the set)


def place(chosen: EvalSet, file: str, member: str) -> Placed | Unplaced | None:
    """Where ``member`` of the set's ``file`` belongs (its 1k WNID, for V2 from its index folder),
    why it belongs nowhere, or None for a member that is no image and no problem (A's README)."""
    parts = member.split("/")
    if chosen.layout is Layout.CORRUPTIONS:
        return _corruption_place(file, parts)
    if len(parts) == 2 and parts[0] == chosen.top and parts[1] == README:
        return None
    if len(parts) != 3 or parts[0] != chosen.top or not parts[2]:
        return Unplaced(f"not under {chosen.top}/<class>/", "structure")
    folder, name = parts[1], parts[2]
    if chosen.layout is Layout.INDEX_FOLDERS:
        if not folder.isdigit() or not 0 <= int(folder) < catalogue.NUM_CLASSES or folder != str(int(folder)):
            return Unplaced("not in a folder named by a class index 0..999", "structure")
        return Placed("", catalogue.by_index(int(folder)).wnid, name)
    if not chosen.in_index:
        if catalogue.is_wnid(folder):
            return Unplaced(f"a class of the 1000: {chosen.title} holds none of them", "extra")
        if not _WNID_SHAPE.fullmatch(folder):
            return Unplaced("not in a folder named by a WNID", "structure")
        return Placed("", folder, name)
    if folder not in _classes(chosen.name):
        return Unplaced(f"not one of {chosen.title}'s classes", "extra")
    return Placed("", folder, name)


@functools.cache
def _classes(name: str) -> frozenset[str]:
    return frozenset(evalset(name).wnids())


def _corruption_place(file: str, parts: list[str]) -> Placed | Unplaced:
    group = CORRUPTIONS.get(file.removesuffix(".tar"), ())
    if len(parts) != 4 or parts[0] not in group or parts[1] not in {str(s) for s in SEVERITIES}:
        return Unplaced(f"not <{'|'.join(group)}>/<severity 1..5>/<wnid>/<val image>", "structure")
    corruption, severity, wnid, name = parts
    try:
        label = catalogue.val_class(name).wnid
    except InvalidArgumentError:
        return Unplaced("not an ILSVRC2012_val_<8 digits>.JPEG name", "structure")
    return Placed(f"{corruption}/{severity}", label, name, wnid if wnid != label else None)


def file_at(path: Path) -> EvalFile | None:
    """The set's file ``path`` is, where downloads put it (``ROOT/downloads/<set>/<file>``), or None."""
    chosen = sets().get(path.parent.name)
    return next((f for f in chosen.files if f.name == path.name), None) if chosen else None


def evalset(name: str) -> EvalSet:
    """The set called ``name``; an error listing the names otherwise."""
    try:
        return sets()[name]
    except KeyError:
        known = ", ".join([DEFAULT, *sets()])
        raise InvalidArgumentError(f"{name!r} is not a dataset this tool knows (known: {known})", "dataset") from None
