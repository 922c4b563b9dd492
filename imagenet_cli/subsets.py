"""``imagenet subset``: class-balanced, reproducible subsets of a prepared tree.

Every choice is a sort by a keyed hash — xxh3-64 of the class or file name, seeded with the seed —
never by ``random``'s algorithm or by directory listing order. So a subset depends only on the
tree, the arguments and the seed, on any machine and Python version, and subsets nest: for one
seed, the 10-class subset's classes are the first 10 of the 100-class subset's, and K=10 images
per class are the first 10 of K=50.

A subset is a tree of links (or copies) under ``ROOT/subsets/<name>/`` with ``subset.json`` (the
arguments, the seed, the source tree and its manifest's hash), ``classes.txt``, ``train.txt`` and
``val.txt`` (the 1000-class index), ``train_subset_index.txt`` and ``val_subset_index.txt`` (the
subset's own 0..k-1), ``manifest.tsv`` and ``tree.json``. It is built in a temporary folder and renamed into
place when complete.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import xxhash

from . import atomic, catalogue, class_files, hashing, locks, manifest, owned
from .errors import (
    DamagedTreeError,
    InvalidArgumentError,
    MissingInputError,
    OverwriteRefusedError,
    ShardsNotATreeError,
)
from .layout import Root
from .progress import SILENT, Progress
from .selection import choose, select_classes
from .trees.plan import is_parquet, is_webdataset

log = logging.getLogger(__name__)


class LinkMode(StrEnum):
    symlink = "symlink"
    hardlink = "hardlink"
    copy = "copy"


LINKS = tuple(LinkMode)
SUBSET_FILE = "subset.json"


@dataclass
class SubsetResult:
    path: Path
    source: Path
    classes: int
    images: dict[str, int]
    status: str  # "written", "kept" (the same subset was already there), "dry run"
    missing: list[str] = field(default_factory=list)  # files a named list wants that the tree lacks
    short_classes: dict[str, int] = field(default_factory=dict)  # WNID -> images, when fewer than asked


def fraction_count(fraction: float, available: int) -> int:
    """round(F × count), halves rounding up (Python's round() would send 0.5 to 0)."""
    return math.floor(fraction * available + 0.5)


def subset(
    root: Path,
    *,
    classes: str | None = None,
    per_class: int | None = None,
    fraction: float | None = None,
    images: str | None = None,
    val_per_class: int | None = None,
    seed: int = 0,
    source: Path | None = None,
    out: Path | None = None,
    link: str = "symlink",
    allow_short: bool = False,
    dry_run: bool = False,
    wait: bool = True,
    progress: Progress = SILENT,
) -> SubsetResult:
    """Make a subset; ``classes`` is a count ("100"), a named list, a file of WNIDs, or WNIDs/names.

    The subset folder is locked while it is made (a second run waits, or with ``wait=False``
    raises), and its source tree is read-locked: no ``prepare`` rewrites it meanwhile.
    """
    _check_options(per_class, fraction, images, val_per_class, link)
    if classes is not None and not classes.replace(",", "").strip():
        raise InvalidArgumentError(f"{classes!r} names no class", "classes")
    tree = source or Root(root).the_prepared_tree()
    arguments = {
        "classes": classes,
        "per_class": per_class,
        "fraction": fraction,
        "images": images,
        "val_per_class": val_per_class,
        "seed": seed,
        "link": link,
        "allow_short": allow_short,
    }
    destination = out or Root(root).subsets / subset_name(arguments)
    with locks.writing(destination, wait), locks.reading(tree, wait):
        chosen = select_classes(classes, _classes_in(tree), seed)
        log.info(
            "from %s: %d classes chosen (%s%s)",
            tree,
            len(chosen),
            ", ".join(chosen[:5]),
            ", …" if len(chosen) > 5 else "",
        )
        record = SubsetRecord(arguments, _source_name(tree, root), _manifest_hash(tree), tuple(chosen))
        existing = _existing_subset(destination)
        if existing is not None:
            if not existing.same_subset_as(record, root):
                raise OverwriteRefusedError(f"{destination} holds a different subset", "out")
            info = manifest.read_tree_info(destination)
            counts = {s: v["images"] for s, v in info.splits.items()} if info else {}
            return SubsetResult(destination, tree, len(chosen), counts, "kept")

        # A label-fraction list asked for on its own is the whole list: files of classes the tree
        # lacks are missing too. With --classes, only those classes' part of the list is wanted.
        listed_classes = set(chosen) if classes is not None else set(catalogue.wnids())
        selection = _Selection(
            tree, chosen, seed, per_class, fraction, images, val_per_class, allow_short, listed_classes
        )
        if dry_run:
            for _ in selection.files():
                pass
            selection.check_shortfalls()
            return SubsetResult(
                destination, tree, len(chosen), dict(selection.counts), "dry run", selection.missing, selection.short
            )
        _write(destination, tree, selection, record, link, progress)
        return SubsetResult(
            destination, tree, len(chosen), dict(selection.counts), "written", selection.missing, selection.short
        )


def subset_name(arguments: dict[str, Any]) -> str:
    """A folder name that says what the subset is: ``imagenette``, ``classes100-k260-seed0``, ``1percent``."""
    parts = []
    classes = arguments["classes"]
    if classes is not None:
        if classes.isdigit():
            parts.append(f"classes{classes}")
        elif classes in catalogue.NAMED_SUBSETS:
            parts.append(classes)
        else:
            parts.append(f"classes-{xxhash.xxh3_64_hexdigest(classes.encode())[:8]}")
    if arguments["images"]:
        parts.append(arguments["images"])
    if arguments["per_class"] is not None:
        parts.append(f"k{arguments['per_class']}")
    if arguments["fraction"] is not None:
        parts.append(f"f{arguments['fraction']:g}")
    if arguments["val_per_class"] is not None:
        parts.append(f"val{arguments['val_per_class']}")
    if arguments["link"] != "symlink":
        parts.append(arguments["link"])
    random = (
        classes is not None
        and classes.isdigit()
        or arguments["per_class"]
        or arguments["fraction"]
        or arguments["val_per_class"]
    )
    if random:
        parts.append(f"seed{arguments['seed']}")
    return "-".join(parts) or "all"


# --- options and inputs ------------------------------------------------------------------------


def _check_options(
    per_class: int | None, fraction: float | None, images: str | None, val_per_class: int | None, link: str
) -> None:
    if sum(x is not None for x in (per_class, fraction, images)) > 1:
        raise InvalidArgumentError("choose one of {per_class}, {fraction} and {images}")
    if per_class is not None and per_class < 1:
        raise InvalidArgumentError("must be at least 1", "per_class")
    if fraction is not None and not 0 < fraction <= 1:
        raise InvalidArgumentError("must be within (0, 1]", "fraction")
    if images is not None and images not in catalogue.LABEL_FRACTIONS:
        raise InvalidArgumentError(f"{images!r} is not one of {', '.join(catalogue.LABEL_FRACTIONS)}", "images")
    if val_per_class is not None and val_per_class < 0:
        raise InvalidArgumentError("must be at least 0", "val_per_class")
    if link not in LINKS:
        raise InvalidArgumentError(f"{link!r} is not one of {', '.join(LINKS)}", "link")


def _classes_in(tree: Path) -> list[str]:
    train = tree / "train"
    if not train.is_dir():
        if is_webdataset(tree) or is_parquet(tree):
            raise ShardsNotATreeError(f"{tree} holds shards, not a tree: a subset links a tree's files", tree)
        raise MissingInputError(f"{tree} has no train/ folder: it is not an ImageFolder tree")
    return sorted(p.name for p in train.iterdir() if p.is_dir() and catalogue.is_wnid(p.name))


def _manifest_hash(tree: Path) -> str | None:
    return hashing.hash_file(tree / manifest.MANIFEST, ["xxh3_64"])["xxh3_64"] if manifest.has_manifest(tree) else None


def _source_name(tree: Path, root: Path) -> str:
    """The source tree as ``subset.json`` names it: relative to the root when inside it, so a moved
    root keeps its subsets valid."""
    resolved, base = tree.resolve(), root.resolve()
    return resolved.relative_to(base).as_posix() if resolved.is_relative_to(base) else str(resolved)


@dataclass(frozen=True)
class SubsetRecord:
    """``subset.json``: what a subset was made with and from; also its folder's claim."""

    arguments: dict[str, Any]  # subset()'s arguments, seed among them
    source: str  # the tree it links into, relative to the root when inside it
    source_manifest_xxh3: str | None  # that tree's manifest (None: a tree without one)
    classes: tuple[str, ...]  # the chosen WNIDs, in the subset's own index order
    schema: int = 1

    def same_subset_as(self, other: SubsetRecord, root: Path) -> bool:
        """The same arguments, classes and source content; the source compared as a place,
        however it is written (subsets made before names were relative hold absolute paths)."""
        same = (self.arguments, self.classes, self.source_manifest_xxh3) == (
            other.arguments,
            other.classes,
            other.source_manifest_xxh3,
        )
        return same and (root / self.source).resolve() == (root / other.source).resolve()

    def to_json(self) -> str:
        fields = {k: v for k, v in asdict(self).items() if k != "schema"}
        return json.dumps({"schema": self.schema, **fields}, indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: Path) -> SubsetRecord:
        try:
            classes = tuple(data["classes"])
            return cls(
                data["arguments"], str(data["source"]), data["source_manifest_xxh3"], classes, data.get("schema", 1)
            )
        except (KeyError, TypeError) as error:
            raise DamagedTreeError(f"{where} is not a subset record ({type(error).__name__}: {error})") from None


def _existing_subset(destination: Path) -> SubsetRecord | None:
    claim = owned.claim_in(destination, SUBSET_FILE, "subset")
    return None if claim is None else SubsetRecord.from_dict(claim, destination / SUBSET_FILE)


# --- choosing files ----------------------------------------------------------------------------


class _Selection:
    """Streams the chosen files, one class folder at a time, from the source manifest or a scan."""

    def __init__(
        self,
        tree: Path,
        chosen: Iterable[str],
        seed: int,
        per_class: int | None,
        fraction: float | None,
        images: str | None,
        val_per_class: int | None,
        allow_short: bool,
        listed_classes: set[str],
    ) -> None:
        self.tree, self.chosen, self.seed = tree, set(chosen), seed
        self.per_class, self.fraction, self.val_per_class = per_class, fraction, val_per_class
        self.allow_short = allow_short
        self.listed = _label_fraction(images, listed_classes) if images else None
        self.counts: dict[str, int] = {"train": 0, "val": 0}
        self.missing: list[str] = []
        self.short: dict[str, int] = {}

    def files(self) -> Iterator[manifest.Entry]:
        for directory, entries in _directories(self.tree):
            split, _, wnid = directory.partition("/")  # the test split is flat: no class to choose
            if wnid not in self.chosen or split not in self.counts:
                continue
            for entry in self._choose(split, wnid, entries):
                self.counts[split] += 1
                yield entry
        if self.listed is not None:
            self.missing = sorted(f for names in self.listed.values() for f in names)

    def _choose(self, split: str, wnid: str, entries: dict[str, manifest.Entry]) -> list[manifest.Entry]:
        names = sorted(entries)
        if split == "val":
            picked = choose(names, self.seed, self.val_per_class)
        elif self.listed is not None:
            wanted = self.listed.pop(wnid, set())
            by_stem = {n.rsplit(".", 1)[0]: n for n in names}
            picked = [by_stem[s] for s in sorted(wanted) if s in by_stem]
            self.listed[wnid] = {s for s in wanted if s not in by_stem}
            if not self.listed[wnid]:
                del self.listed[wnid]
        else:
            count = fraction_count(self.fraction, len(names)) if self.fraction is not None else self.per_class
            picked = choose(names, self.seed, count)
            if self.per_class is not None and len(names) < self.per_class:
                self.short[wnid] = len(names)
        return [entries[n] for n in sorted(picked)]

    def check_shortfalls(self) -> None:
        if self.allow_short:
            return
        if self.short:
            listed = ", ".join(f"{w} ({n})" for w, n in sorted(self.short.items())[:5])
            raise MissingInputError(
                f"{len(self.short)} classes have fewer than {self.per_class} train images: {listed} "
                "({allow_short} takes them as they are)"
            )
        if self.missing:
            raise MissingInputError(
                f"the tree lacks {len(self.missing):,} files of the list, e.g. {', '.join(self.missing[:3])} "
                "({allow_short} makes the subset without them)"
            )


def _label_fraction(name: str, classes: set[str]) -> dict[str, set[str]]:
    """The list's file stems by class, for the chosen classes only."""
    wanted: dict[str, set[str]] = {}
    for file in catalogue.label_fraction(name):
        wnid = file.split("_", 1)[0]
        if wnid in classes:
            wanted.setdefault(wnid, set()).add(file.rsplit(".", 1)[0])
    return wanted


def _directories(tree: Path) -> Iterator[tuple[str, dict[str, manifest.Entry]]]:
    """(``split/wnid``, {name: entry}) for each class folder, from the manifest or by scanning."""
    if manifest.has_manifest(tree):
        yield from manifest.manifest_by_directory(tree)
        return
    for split in ("train", "val"):
        split_dir = tree / split
        if not split_dir.is_dir():
            continue
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            entries = {}
            for path in sorted(class_dir.iterdir()):
                if path.is_file():
                    data = path.read_bytes()
                    entries[path.name] = manifest.Entry(
                        f"{split}/{class_dir.name}/{path.name}", len(data), hashing.hash_bytes(data), class_dir.name
                    )
            yield f"{split}/{class_dir.name}", entries


# --- writing -----------------------------------------------------------------------------------


def _write(
    destination: Path, tree: Path, selection: _Selection, record: SubsetRecord, link: str, progress: Progress
) -> None:
    staging = atomic.temporary_name(destination)
    atomic.sweep_temporaries(destination)  # left by an interrupted run (we hold the lock)
    staging.mkdir(parents=True)
    try:
        subset_index = {wnid: i for i, wnid in enumerate(record.classes)}
        placer = _Placer(tree.resolve(), staging, _resolved(destination), link)
        with progress.task(f"linking {destination.name}", unit="file") as advance:

            def linked() -> Iterator[manifest.Entry]:
                for entry in selection.files():
                    placer.place(entry.path)
                    advance(1)
                    yield entry

            manifest.write_labels_and_manifest(
                staging,
                linked(),
                lambda entry: catalogue.by_wnid(entry.wnid).index,
                lambda entry: subset_index[entry.wnid],
            )
        selection.check_shortfalls()
        _write_descriptions(staging, selection, record)
        if destination.exists():
            destination.rmdir()  # an empty folder someone made for us
        os.replace(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class _Placer:
    """Puts one file of the source tree into the staged subset, by link or copy.

    Paths are resolved once per run and folders created once each: per-file ``resolve()`` and
    ``mkdir()`` calls would cost more system calls than the links themselves.
    """

    def __init__(self, source: Path, staging: Path, destination: Path, link: str) -> None:
        self.source, self.staging, self.destination, self.link = source, staging, destination, link
        # Relative links (computed from the final place) when source and subset share the root, so
        # the root can be moved as a whole; absolute otherwise, so the subset can be moved alone.
        self.relative = destination.is_relative_to(source.parent)
        self.made: set[str] = set()

    def place(self, relative_path: str) -> None:
        folder = relative_path.rsplit("/", 1)[0]
        if folder not in self.made:
            (self.staging / folder).mkdir(parents=True, exist_ok=True)
            self.made.add(folder)
        source, staged = self.source / relative_path, self.staging / relative_path
        if self.link == "symlink":
            target = os.path.relpath(source, self.destination / folder) if self.relative else source
            os.symlink(target, staged)
        elif self.link == "hardlink":
            try:
                os.link(source, staged)
            except OSError as error:
                if error.errno == errno.EXDEV:
                    raise InvalidArgumentError(
                        f"{source} and {self.destination} are on different filesystems: hard links cannot cross "
                        "them (choose symlink or copy for {link})"
                    ) from None
                raise
        else:
            shutil.copyfile(source, staged)


def _resolved(path: Path) -> Path:
    """Like ``resolve()`` for a path that does not exist yet: resolve its nearest existing ancestor."""
    existing, rest = path, []
    while not existing.exists():
        rest.append(existing.name)
        existing = existing.parent
    return existing.resolve().joinpath(*reversed(rest))


def _write_descriptions(staging: Path, selection: _Selection, record: SubsetRecord) -> None:
    atomic.write_text(staging / SUBSET_FILE, record.to_json())
    rows = [(i, catalogue.by_wnid(w)) for i, w in enumerate(record.classes)]
    atomic.write_text(staging / "classes.txt", "".join(f"{i}\t{c.wnid}\t{c.name}\t{c.index}\n" for i, c in rows))
    atomic.write_text(staging / class_files.CLASS_MAP, class_files.class_file("synsets"))  # the 1000-class index
    info = manifest.TreeInfo(
        made_by=manifest.CutFrom(record.source, record.arguments),
        splits={s: {"images": n, "classes": len(record.classes)} for s, n in selection.counts.items() if n},
    )
    manifest.write_tree_info(staging, info)
