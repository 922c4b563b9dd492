"""The manifest every tree this project writes carries, and how to read it back.

``TREE/manifest.tsv`` lists every file of the tree, sorted by path, one per line::

    # imagenet-manifest 1	path	bytes	xxh3_64	wnid
    train/n01440764/n01440764_10026.JPEG	110592	9c1a3f0b2d4e5f60	n01440764

``TREE/tree.json`` says how the tree was made and what it holds: the format version, the command
and options that made it, image counts per split, the images that could not be written
(``failures``), and the files each split was made from (``inputs``, see :mod:`imagenet_cli.inputs`).
``verify`` checks a tree against both; ``info`` reads ``tree.json``.

Both are read and written as streams: a tree of 1.3 M files never sits in memory.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from itertools import groupby
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

from . import atomic, evalsets
from .errors import ArchiveError, no_record
from .inputs import InputFile

MANIFEST = "manifest.tsv"
LABELLED_SPLITS = ("train", "val")  # each has a label file, TREE/<split>.txt; test images have no class
OWN_INDEX_SUFFIX = "_subset_index"  # a subset's own 0..k-1 labels: TREE/<split>_subset_index.txt
TREE_INFO = "tree.json"
TREE_INFO_SCHEMA = 2  # 1: before 0.1.0, made_by a flat dict
FORMAT = 1
HEADER = f"# imagenet-manifest {FORMAT}\tpath\tbytes\txxh3_64\twnid\n"


def is_labelled(split: str) -> bool:
    """Train and val images, and an evaluation set's (``imagenet-a``), are filed by class
    (``split/wnid/name``; ImageNet-C's ``imagenet-c/<corruption>/<severity>/wnid/name``); test
    images have none (``test/name``, an empty ``wnid`` in the manifest)."""
    return split in LABELLED_SPLITS or split in evalsets.image_sets()


def has_label_file(split: str) -> bool:
    """A split whose classes are among the 1000 has ``TREE/<split>.txt`` (path and 1k index per
    line); ImageNet-O's classes are outside them, and test images have no class."""
    return split in LABELLED_SPLITS or (split in evalsets.image_sets() and evalsets.evalset(split).in_index)


@dataclass(frozen=True)
class Entry:
    path: str  # relative to the tree, '/'-separated: split/wnid/name, or test/name
    bytes: int
    xxh3_64: str
    wnid: str  # "" for a test image

    @property
    def split(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def directory(self) -> str:
        return self.path.rsplit("/", 1)[0]

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[1]


APPEARS_TWICE = "appears twice in the input: neither copy is used"  # which one is right cannot be known


@dataclass(frozen=True)
class Failure:
    """An image that is not in the tree, and why: data for the summary, never an exception."""

    split: str
    wnid: str | None  # None where even the class is unknown (a refused member of a streamed input);
    # ImageNet-C's: <corruption>/<severity>/<wnid>, the folder that names it
    name: str
    error: str

    @property
    def where(self) -> str:
        return "/".join(part for part in (self.split, self.wnid, self.name) if part)


@dataclass(frozen=True)
class Prepared:
    """How ``prepare`` made a tree: what it read and the recipe of this size."""

    inputs_described: str  # what was read, in words: "the official archives", "an extracted Kaggle tree"
    val_labels: str  # where the val labels came from, in words
    size: str  # "224", … or "full"
    mode: str  # the recipe's fields (see trees.resize.Recipe), as words
    quality: int
    format: str
    filter: str
    upscale: bool
    repaired: dict[str, int]  # what was wrong -> how many images were repaired
    command: ClassVar[str] = "prepare"


@dataclass(frozen=True)
class CutFrom:
    """How ``subset`` made a tree: the tree its files link into, and subset()'s arguments."""

    tree: str  # relative to the root when inside it, else absolute
    arguments: dict[str, Any]  # JSON values, seed among them
    command: ClassVar[str] = "subset"


MadeBy = Prepared | CutFrom


def made_by_to_dict(made_by: MadeBy | None) -> dict[str, Any] | None:
    return None if made_by is None else {"command": made_by.command, **asdict(made_by)}


def _made_by_from_dict(data: dict[str, Any] | None, schema: int) -> MadeBy | None:
    """Schema 1 (before 0.1.0) kept a flat dict whose ``source`` was words for ``prepare`` and a
    path for ``subset``; schema 2 names each and nests a subset's arguments."""
    data = dict(data or {})
    command = data.pop("command", None)
    if command == Prepared.command:
        if schema == 1:
            data["inputs_described"] = data.pop("source")
        known = {f.name for f in fields(Prepared)}
        return Prepared(**{k: v for k, v in data.items() if k in known})
    if command == CutFrom.command:
        if schema == 1:
            tree = data.pop("source")
            return CutFrom(tree, data)
        return CutFrom(data["tree"], data["arguments"])
    return None  # a tree made by something else: nothing is known of how


@dataclass(frozen=True)
class TreeInfo:
    """``tree.json``: how a tree was made, what it holds, and what each split was made from."""

    made_by: MadeBy | None  # None: a tree this tool did not make
    splits: dict[str, dict[str, int]] = field(default_factory=dict)  # {"train": {"images": n, "classes": k}}
    failures: tuple[Failure, ...] = ()
    inputs: dict[str, tuple[InputFile, ...]] = field(default_factory=dict)  # per split
    format: int = FORMAT  # of the manifest beside it
    created_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    schema: int = TREE_INFO_SCHEMA

    def to_json(self) -> str:
        data = {
            "schema": self.schema,
            "format": self.format,
            "made_by": made_by_to_dict(self.made_by),
            "splits": self.splits,
            "failures": [asdict(f) for f in self.failures],
            "inputs": {split: [asdict(i) for i in files] for split, files in self.inputs.items()},
            "created_at": self.created_at,
        }
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: Path) -> TreeInfo:
        try:
            data = json.loads(text)
            schema = int(data.get("schema", 1))
            return cls(
                made_by=_made_by_from_dict(data.get("made_by"), schema),
                splits=data.get("splits", {}),
                failures=tuple(Failure(**f) for f in data.get("failures", [])),
                inputs={s: tuple(InputFile.from_dict(i) for i in files) for s, files in data.get("inputs", {}).items()},
                format=data.get("format", FORMAT),
                created_at=data.get("created_at", ""),
                schema=schema,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ArchiveError(f"{where} is not a tree record ({type(error).__name__}: {error})") from None

    @classmethod
    def read(cls, tree: Path) -> TreeInfo:
        """``tree``'s record; raises :class:`~imagenet_cli.errors.ArchiveError` when it has none."""
        return read_tree_info(tree) or no_record(tree / TREE_INFO)


def write_manifest(tree: Path, entries: Iterable[Entry]) -> int:
    """Write ``manifest.tsv`` atomically from entries given in path order; returns how many."""
    count, previous = 0, ""
    with atomic.atomic_writer(tree / MANIFEST) as file:
        file.write(HEADER.encode())
        for entry in entries:
            if entry.path <= previous:
                raise ValueError(f"manifest entries out of order: {entry.path!r} after {previous!r}")
            file.write(f"{entry.path}\t{entry.bytes}\t{entry.xxh3_64}\t{entry.wnid}\n".encode())
            previous, count = entry.path, count + 1
    return count


def write_labels_and_manifest(
    tree: Path,
    entries: Iterable[Entry],
    label_of: Callable[[Entry], int],
    own_label_of: Callable[[Entry], int] | None = None,
) -> int:
    """``manifest.tsv`` and the label files ``train.txt``, ``val.txt`` (and ``imagenet-a.txt``
    for an evaluation set: see :func:`has_label_file`) as ``relative/path label``, the label
    ``label_of`` gives: always the 1000-class sorted-WNID index, in one pass over entries given in
    path order; returns how many. With ``own_label_of`` (a subset's 0..k-1 numbering, for
    training a k-class head), also ``train_subset_index.txt`` and its val twin."""
    with contextlib.ExitStack() as stack:
        files: dict[str, BinaryIO] = {}

        def label_file(split: str, suffix: str) -> BinaryIO:
            if split + suffix not in files:
                files[split + suffix] = stack.enter_context(atomic.atomic_writer(tree / f"{split}{suffix}.txt"))
            return files[split + suffix]

        for split in LABELLED_SPLITS:  # always there, empty or not: loaders open them by name
            label_file(split, "")
            if own_label_of is not None:
                label_file(split, OWN_INDEX_SUFFIX)

        def labelled() -> Iterator[Entry]:
            for entry in entries:
                split = entry.split
                if not has_label_file(split):
                    yield entry
                    continue
                label_file(split, "").write(f"{entry.path} {label_of(entry)}\n".encode())
                if own_label_of is not None:
                    label_file(split, OWN_INDEX_SUFFIX).write(f"{entry.path} {own_label_of(entry)}\n".encode())
                yield entry

        return write_manifest(tree, labelled())


def has_manifest(tree: Path) -> bool:
    return (tree / MANIFEST).is_file()


def read_manifest(tree: Path) -> Iterator[Entry]:
    """The manifest's entries in path order, streamed."""
    path = tree / MANIFEST
    with open(path, encoding="utf-8") as file:
        header = file.readline()
        if not header.startswith("# imagenet-manifest "):
            raise ArchiveError(f"{path} is not an imagenet manifest (first line {header[:40]!r})")
        version = header.split("\t", 1)[0].rsplit(" ", 1)[1]
        if version != str(FORMAT):
            raise ArchiveError(f"{path} is manifest format {version}; this version reads format {FORMAT}")
        for number, line in enumerate(file, 2):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 4 or not fields[1].isdigit():
                raise ArchiveError(f"{path}:{number} is not a manifest line")
            yield Entry(fields[0], int(fields[1]), fields[2], fields[3])


def manifest_by_directory(tree: Path) -> Iterator[tuple[str, dict[str, Entry]]]:
    """(``split/wnid``, {file name: entry}) for each directory, in order: one class in memory at a time."""
    for directory, entries in groupby(read_manifest(tree), key=lambda e: e.directory):
        yield directory, {entry.name: entry for entry in entries}


def write_tree_info(tree: Path, info: TreeInfo) -> None:
    atomic.write_text(tree / TREE_INFO, info.to_json())


def read_tree_info(tree: Path) -> TreeInfo | None:
    """``tree``'s record, or None when it has none."""
    path = tree / TREE_INFO
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ArchiveError(f"cannot read {path}: {error}") from error
    return TreeInfo.from_json(text, path)
