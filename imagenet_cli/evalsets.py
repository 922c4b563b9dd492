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
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

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
    def size(self) -> int | None:
        """All its files' bytes, if each is published."""
        sizes = [f.size for f in self.files]
        return None if None in sizes else sum(s for s in sizes if s is not None)

    def wnids(self) -> tuple[str, ...]:
        """Its classes in the 1k index (A, R: their 200; O: none of the 1000)."""
        if self.name == "imagenet-o":
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
