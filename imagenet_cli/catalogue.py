"""The ILSVRC-2012 class table and the facts that ship with the package.

Two class orders exist and are never mixed:

* ``index`` — sorted WNID order, 0-based (0 = n01440764 tench). torchvision's ImageFolder, Kaggle,
  timm and Hugging Face use it, and so does every label file this project writes.
* ``devkit_id`` — the devkit's ILSVRC2012_ID, 1-based (1 = n02119789 kit fox; tench is 449).
  ``meta.mat`` and the validation ground truth use it.

Everything is read from ``imagenet_cli/data`` on first use and cached; importing this module
reads nothing.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources

from .errors import InvalidArgumentError, UnknownClassError

NUM_CLASSES = 1000
NUM_VAL_IMAGES = 50_000
VAL_IMAGES_PER_CLASS = 50
# ILSVRC-2012 in full: images per split, and the fewest and most train images of a class.
# A split's name in published shard sets (timm's imagenet-1k-wds, the Hugging Face hub's Parquet).
SHARD_SPLIT_NAMES = {"train": "train", "val": "validation"}
SPLIT_IMAGES = {"train": 1_281_167, "val": NUM_VAL_IMAGES, "test": 100_000}
TRAIN_PER_CLASS = (732, 1300)

_WNID = re.compile(r"n\d{8}")
_VAL_NAME = re.compile(r"ILSVRC2012_val_(\d{8})(?:\.JPEG)?")

NAMED_SUBSETS = {
    "imagenette": "imagenette.txt",
    "imagewoof": "imagewoof.txt",
    "imagenet100": "imagenet100_cmc.txt",
}


class LabelFraction(StrEnum):
    """The SimCLR / TFDS label-fraction lists of train images."""

    one_percent = "1percent"
    ten_percent = "10percent"


LABEL_FRACTIONS = {
    LabelFraction.one_percent: "simclr_1percent.txt.gz",
    LabelFraction.ten_percent: "simclr_10percent.txt.gz",
}


@dataclass(frozen=True)
class ImageNetClass:
    index: int  # sorted-WNID order, 0-based
    wnid: str
    devkit_id: int  # ILSVRC2012_ID, 1-based
    short_name: str  # the devkit's one-word name, e.g. "great_white_shark"
    names: tuple[str, ...]  # every synonym, as in LOC_synset_mapping.txt

    @property
    def name(self) -> str:
        """The first synonym: the human-readable name most tools show."""
        return self.names[0]


@dataclass(frozen=True)
class KnownBadImage:
    file: str
    split: str
    problem: str  # "png" or "cmyk"
    source: str


@dataclass(frozen=True)
class OfficialArchive:
    name: str
    size: int | None  # bytes, where a source publishes it
    md5: str
    source: str


def data_text(name: str) -> str:
    raw = resources.files(__package__).joinpath("data").joinpath(name).read_bytes()
    if name.endswith(".gz"):
        raw = gzip.decompress(raw)
    return raw.decode("utf-8")


def data_rows(name: str) -> Iterator[list[str]]:
    """Rows of a tab-separated data file, skipping its ``#`` header."""
    for row in csv.reader(io.StringIO(data_text(name)), delimiter="\t"):
        if row and not row[0].startswith("#"):
            yield row


@functools.cache
def classes() -> tuple[ImageNetClass, ...]:
    """All 1000 classes in sorted-WNID order: ``classes()[i].index == i``."""
    devkit = {}
    for line in data_text("map_clsloc.txt").splitlines():
        wnid, number, short_name = line.split(" ", 2)
        devkit[wnid] = (int(number), short_name)
    table = []
    for index, line in enumerate(data_text("LOC_synset_mapping.txt").splitlines()):
        wnid, names = line.split(" ", 1)
        devkit_id, short_name = devkit[wnid]
        table.append(ImageNetClass(index, wnid, devkit_id, short_name, tuple(n.strip() for n in names.split(","))))
    return tuple(table)


@functools.cache
def _by_wnid() -> dict[str, ImageNetClass]:
    return {c.wnid: c for c in classes()}


@functools.cache
def _by_devkit_id() -> dict[int, ImageNetClass]:
    return {c.devkit_id: c for c in classes()}


def wnids() -> tuple[str, ...]:
    """The 1000 WNIDs in sorted order (the ``synsets.txt`` people pass around)."""
    return tuple(c.wnid for c in classes())


def is_wnid(text: str) -> bool:
    return _WNID.fullmatch(text) is not None and text in _by_wnid()


def by_wnid(wnid: str) -> ImageNetClass:
    try:
        return _by_wnid()[wnid]
    except KeyError:
        raise UnknownClassError(f"{wnid!r} is not one of the 1000 ILSVRC-2012 WNIDs") from None


def by_index(index: int) -> ImageNetClass:
    if not 0 <= index < NUM_CLASSES:
        raise UnknownClassError(f"class index {index} is outside 0–999 (sorted-WNID order)")
    return classes()[index]


def by_devkit_id(devkit_id: int) -> ImageNetClass:
    try:
        return _by_devkit_id()[devkit_id]
    except KeyError:
        raise UnknownClassError(f"ILSVRC2012_ID {devkit_id} is outside 1–1000 (devkit order)") from None


def val_number(file_name: str) -> int:
    """1-based number of a val image, from ``ILSVRC2012_val_00000001.JPEG`` (or without extension)."""
    match = _VAL_NAME.fullmatch(file_name)
    if not match or not 1 <= int(match.group(1)) <= NUM_VAL_IMAGES:
        raise InvalidArgumentError(f"{file_name!r} is not an ILSVRC-2012 val file name")
    return int(match.group(1))


def val_file_name(number: int) -> str:
    return f"ILSVRC2012_val_{number:08d}.JPEG"


@functools.cache
def val_labels() -> tuple[str, ...]:
    """WNID of every val image: ``val_labels()[k - 1]`` labels ``ILSVRC2012_val_<k>``."""
    labels = tuple(data_text("val_ground_truth_wnids.txt.gz").split())
    assert len(labels) == NUM_VAL_IMAGES, "package data damaged: val labels"
    return labels


def val_class(file_name: str) -> ImageNetClass:
    return by_wnid(val_labels()[val_number(file_name) - 1])


def lookup(key: str | int) -> ImageNetClass:
    """One class from a WNID, a sorted index (int or digits) or a val file name.

    ILSVRC2012_IDs are deliberately not accepted here — a bare number is ambiguous between the two
    orders; use :func:`by_devkit_id` for those.
    """
    if isinstance(key, int):
        return by_index(key)
    key = key.strip()
    if key.isdigit():
        return by_index(int(key))
    if _WNID.fullmatch(key):
        return by_wnid(key)
    if key.startswith("ILSVRC2012_val_"):
        return val_class(key)
    raise UnknownClassError(f"{key!r} is neither a WNID, a class index nor a val file name")


def search(words: str) -> list[ImageNetClass]:
    """Classes whose names contain every word of ``words`` (whole words first, then parts of words).

    "crane" finds both cranes (the bird and the machine); "shark" every shark.
    """
    terms = [w for w in re.split(r"[\s_,]+", words.lower()) if w]
    if not terms:
        return []

    def name_words(c: ImageNetClass) -> set[str]:
        text = " ".join(c.names + (c.short_name,)).lower()
        return set(re.split(r"[\s_,'\-]+", text))

    whole = [c for c in classes() if all(t in name_words(c) for t in terms)]
    if whole:
        return whole
    return [c for c in classes() if all(any(t in w for w in name_words(c)) for t in terms)]


def find(query: str) -> list[ImageNetClass]:
    """What ``imagenet classes QUERY`` shows: an exact key if it is one, else a name search."""
    try:
        return [lookup(query)]
    except UnknownClassError:
        if query.strip().isdigit() or _WNID.fullmatch(query.strip()):
            raise
    matches = search(query)
    if not matches:
        raise UnknownClassError(f"no class matches {query!r}")
    return matches


def resolve_classes(items: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """WNIDs from a mix of WNIDs, sorted indices, named lists ("imagenette") and unambiguous names.

    Order is kept, repeats dropped. A name matching several classes ("crane") is an error that
    lists them, so the user can pick the WNID.
    """
    chosen: dict[str, None] = {}
    for item in (i.strip() for i in items):
        if not item:
            continue
        if item in NAMED_SUBSETS:
            chosen.update(dict.fromkeys(named_subset(item)))
            continue
        matches = find(item)
        if len(matches) > 1:
            listed = ", ".join(f"{c.wnid} ({c.name})" for c in matches[:5])
            raise UnknownClassError(
                f"{item!r} matches {len(matches)} classes: {listed}{' …' if len(matches) > 5 else ''}"
            )
        chosen[matches[0].wnid] = None
    return tuple(chosen)


@functools.cache
def known_bad_images() -> tuple[KnownBadImage, ...]:
    return tuple(KnownBadImage(*row) for row in data_rows("known_bad_images.tsv"))


@functools.cache
def official_archives() -> dict[str, OfficialArchive]:
    """The official archives by file name, with their published sizes and MD5s."""
    table = {}
    for name, size, md5, source in data_rows("official_archives.tsv"):
        table[name] = OfficialArchive(name, None if size == "-" else int(size), md5, source)
    return table


def named_subset(name: str) -> tuple[str, ...]:
    """The WNIDs of a named class list: imagenette, imagewoof or imagenet100 (CMC)."""
    try:
        file = NAMED_SUBSETS[name]
    except KeyError:
        known = ", ".join(NAMED_SUBSETS)
        raise InvalidArgumentError(f"no named class list {name!r} (known: {known})") from None
    return tuple(data_text(file).split())


def label_fraction(name: str) -> Iterator[str]:
    """Train file names of a SimCLR label-fraction subset ("1percent" or "10percent")."""
    try:
        file = LABEL_FRACTIONS[LabelFraction(name)]
    except ValueError:
        known = ", ".join(LABEL_FRACTIONS)
        raise InvalidArgumentError(f"no label-fraction list {name!r} (known: {known})") from None
    for line in data_text(file).splitlines():
        wnid, *numbers = line.split()
        for number in numbers:
            yield f"{wnid}_{number}.JPEG"
