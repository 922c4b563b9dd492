"""Checks of one ImageFolder tree (``split/wnid/file``) against its manifest and against ILSVRC-2012.

With a manifest: missing, extra, changed (size or xxh3) and misplaced files. Always: class folders
are real WNIDs, val images sit in the folder of their catalogue label, train images in the folder
of their own WNID, counts per split (and, for a full tree, the real ones), links resolve, and with
``--deep`` every image decodes.

Work goes one class folder at a time: folders are hashed in parallel threads (reading, xxh3 and
decoding release the GIL) while the manifest is read alongside as a stream, so memory stays flat
however large the tree.
"""

from __future__ import annotations

import collections
import functools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import catalogue, evalsets, manifest
from ..decode_check import decode_problem
from ..evalsets import Layout
from ..hashing import hash_bytes
from ..inputs import InputFile, changed_since
from ..layout import IMAGE_SPLITS
from ..progress import SILENT, Progress
from ..trees.readers import read_whole
from ..workers import ordered_map
from .findings import Check, ProblemKind

_VAL_STEM = re.compile(r"ILSVRC2012_val_(\d{8})")
_TRAIN_STEM = re.compile(r"(n\d{8})_\d+")
_TEST_STEM = re.compile(r"ILSVRC2012_test_\d{8}")
_WNID = re.compile(r"n\d{8}")


@dataclass(frozen=True)
class Seen:
    """One file as found on disk."""

    name: str
    bytes: int
    xxh3_64: str | None  # None for a broken link
    problem: str | None  # why it does not decode (deep), or that it is a broken link


def check_tree(tree: Path, *, deep: bool = False, workers: int | None = None, progress: Progress = SILENT) -> Check:
    check = Check(tree, "tree")
    has_manifest = manifest.has_manifest(tree)
    directories = _class_directories(tree, check)
    expected = manifest.manifest_by_directory(tree) if has_manifest else iter(())
    missing: dict[str, tuple[str, manifest.Entry]] = {}  # name -> (directory, entry), to pair with extras
    extra: dict[str, tuple[str, Seen]] = {}
    per_class: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    listed = 0

    with progress.task(f"checking {tree.name}", total=len(directories), unit="class") as advance:
        # Folders in order, at most two per process in flight: memory stays bounded. Processes,
        # not threads: reading and hashing a small file is mostly the interpreter's work, which
        # threads take turns at (verify_bench.py, 100,000 files of 8 KB: 0.59x `cat` on threads).
        scan = functools.partial(_scan_class, tree, deep)
        scanned = ordered_map(scan, directories, workers or os.cpu_count() or 1)
        wanted = next(expected, None)
        for directory, seen in scanned:
            # Manifest folders that sort before this one are missing from disk entirely.
            while wanted is not None and wanted[0] < directory:
                missing.update((name, (wanted[0], entry)) for name, entry in wanted[1].items())
                listed += len(wanted[1])
                wanted = next(expected, None)
            entries: dict[str, manifest.Entry] = {}
            if wanted is not None and wanted[0] == directory:
                entries = wanted[1]
                listed += len(entries)
                wanted = next(expected, None)
            _compare_directory(check, directory, seen, entries, has_manifest, missing, extra)
            split, _ = _split_and_class(directory)
            per_class[split][directory] = len(seen)
            advance(1)
        while wanted is not None:
            missing.update((name, (wanted[0], entry)) for name, entry in wanted[1].items())
            listed += len(wanted[1])
            wanted = next(expected, None)

    _pair_misplaced(check, missing, extra)
    _check_counts(check, tree, per_class, listed if has_manifest else None)
    check.note(
        ("against manifest.tsv (size, xxh3)" if has_manifest else "no manifest: structure, names and labels only")
        + (", every image decoded" if deep else "")
    )
    return check


def _class_directories(tree: Path, check: Check) -> list[str]:
    """``split/wnid`` of every class folder (ImageNet-C's ``imagenet-c/<corruption>/<severity>/wnid``;
    and ``test``, a flat folder of images), sorted as the manifest sorts its paths."""
    found = []
    for split in IMAGE_SPLITS:
        split_dir = tree / split
        if not split_dir.is_dir():
            continue
        if not manifest.is_labelled(split):
            found.append(split)
            for entry in _sorted_entries(split_dir):
                if entry.is_dir():
                    check.add(ProblemKind.STRUCTURE, f"{split}/{entry.name}/", "test images have no class folders")
            continue
        levels = 3 if split in evalsets.image_sets() and evalsets.evalset(split).layout is Layout.CORRUPTIONS else 1
        found += _class_folders(check, split_dir, split, levels, _is_class(split))
    if not found:
        check.add(ProblemKind.STRUCTURE, str(tree), "no split folder (train/, val/, test/) with class folders")
    return sorted(found)


def _class_folders(
    check: Check, folder: Path, relative: str, levels: int, is_class: Callable[[str], bool]
) -> list[str]:
    """The class folders ``levels`` down from ``folder`` (C's have a corruption and a severity above)."""
    found = []
    for entry in _sorted_entries(folder):
        where = f"{relative}/{entry.name}"
        if not entry.is_dir():
            check.add(ProblemKind.EXTRA, where, "a file outside any class folder")
        elif levels > 1:
            found += _class_folders(check, Path(entry.path), where, levels - 1, is_class)
        elif not is_class(entry.name):
            check.add(ProblemKind.STRUCTURE, f"{where}/", "not a WNID: ImageFolder would make it a class")
        else:
            found.append(where)
    return found


def _sorted_entries(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as entries:
        return sorted(entries, key=lambda e: e.name)


def _is_class(split: str) -> Callable[[str], bool]:
    """ImageNet-O's classes are WordNet nouns outside the 1000; every other split's are among them."""
    if split in evalsets.image_sets() and not evalsets.evalset(split).in_index:
        return lambda name: _WNID.fullmatch(name) is not None
    return catalogue.is_wnid


def _split_and_class(directory: str) -> tuple[str, str]:
    """``imagenet-c/fog/3/n01440764`` → (``imagenet-c``, ``n01440764``); ``test`` → (``test``, "")."""
    split = directory.split("/", 1)[0]
    return split, directory.rsplit("/", 1)[1] if "/" in directory else ""


def _scan_class(tree: Path, deep: bool, directory: str) -> tuple[str, dict[str, Seen]]:
    return directory, _scan_directory(tree / directory, deep)


def _scan_directory(directory: Path, deep: bool) -> dict[str, Seen]:
    seen: dict[str, Seen] = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_symlink() and not os.path.exists(entry.path):
                seen[entry.name] = Seen(entry.name, 0, None, f"broken link to {os.readlink(entry.path)}")
                continue
            if not entry.is_file():
                continue
            data = read_whole(entry.path)
            problem = decode_problem(data) if deep else None
            seen[entry.name] = Seen(entry.name, len(data), hash_bytes(data), problem)
    return seen


def _compare_directory(
    check: Check,
    directory: str,
    seen: dict[str, Seen],
    entries: dict[str, manifest.Entry],
    has_manifest: bool,
    missing: dict[str, tuple[str, manifest.Entry]],
    extra: dict[str, tuple[str, Seen]],
) -> None:
    split, wnid = _split_and_class(directory)
    for name, found in seen.items():
        where = f"{directory}/{name}"
        if found.xxh3_64 is None:
            check.add(ProblemKind.MISSING, where, found.problem or "a broken link")
            continue
        if found.problem:
            check.add(ProblemKind.UNDECODABLE, where, found.problem)
        _check_label(check, split, wnid, name, where)
        entry = entries.get(name)
        if entry is None:
            if has_manifest:
                extra[name] = (directory, found)
        elif entry.bytes != found.bytes:
            check.add(ProblemKind.CHANGED, where, f"{found.bytes:,} bytes; the manifest says {entry.bytes:,}")
        elif entry.xxh3_64 != found.xxh3_64:
            check.add(ProblemKind.CHANGED, where, f"xxh3 {found.xxh3_64}; the manifest says {entry.xxh3_64}")
        elif entry.wnid != wnid:
            check.add(ProblemKind.MISPLACED, where, f"the manifest files it under {entry.wnid}")
    for name, entry in entries.items():
        if name not in seen:
            missing[name] = (directory, entry)


def _check_label(check: Check, split: str, wnid: str, name: str, where: str) -> None:
    stem = name.rsplit(".", 1)[0]
    if split in ("val", "imagenet-c") and (match := _VAL_STEM.fullmatch(stem)):  # C's images are val's, corrupted
        number = int(match.group(1))
        if 1 <= number <= catalogue.NUM_VAL_IMAGES and catalogue.val_labels()[number - 1] != wnid:
            label = catalogue.by_wnid(catalogue.val_labels()[number - 1])
            check.add(ProblemKind.MISPLACED, where, f"its label is {label.wnid} ({label.name}), not {wnid}")
    elif split == "train" and (match := _TRAIN_STEM.fullmatch(stem)) and match.group(1) != wnid:
        check.add(ProblemKind.MISPLACED, where, f"a {match.group(1)} image in the {wnid} folder")
    elif split == "test" and not _TEST_STEM.fullmatch(stem):
        check.add(ProblemKind.STRUCTURE, where, "not an ILSVRC2012_test_<8 digits> name")


def _pair_misplaced(
    check: Check, missing: dict[str, tuple[str, manifest.Entry]], extra: dict[str, tuple[str, Seen]]
) -> None:
    """A file missing from one folder and extra in another, with the same bytes, was moved."""
    for name, (directory, found) in sorted(extra.items()):
        moved_from = missing.get(name)
        if moved_from is not None and moved_from[1].xxh3_64 == found.xxh3_64:
            del missing[name]
            check.add(ProblemKind.MISPLACED, f"{directory}/{name}", f"the manifest has it in {moved_from[0]}/")
        else:
            check.add(ProblemKind.EXTRA, f"{directory}/{name}", "not in the manifest")
    for name, (directory, _) in sorted(missing.items()):
        check.add(ProblemKind.MISSING, f"{directory}/{name}", "in the manifest, not on disk")


def _check_inputs(check: Check, tree: Path, info: manifest.TreeInfo | None) -> None:
    """A tree whose recorded inputs have changed since is stale: it no longer matches them."""
    if info is None:
        return
    for split, recorded in sorted(info.inputs.items()):
        for before in recorded:
            now = changed_since(before, tree)
            if now is not None:
                check.add(
                    ProblemKind.STALE,
                    f"{split}/",
                    f"{before.name} changed since the tree was made ({_identity(before)} then, {_identity(now)} now); "
                    "the same prepare command brings the tree up to date",
                )


def _identity(file: InputFile) -> str:
    return (
        f"{file.size:,} bytes, xxh3 {file.xxh3_64}" if file.xxh3_64 else f"{file.size:,} bytes, mtime {file.mtime_ns}"
    )


def _check_counts(check: Check, tree: Path, per_class: dict[str, collections.Counter[str]], listed: int | None) -> None:
    info = manifest.read_tree_info(tree)
    _check_inputs(check, tree, info)
    for split, counts in sorted(per_class.items()):
        images = sum(counts.values())
        check.counts[f"{split}_images"] = images
        if manifest.is_labelled(split):
            check.counts[f"{split}_classes"] = len({folder.rsplit("/", 1)[1] for folder in counts})
        if info is not None and split in info.splits and info.splits[split].get("images") != images:
            check.add(
                ProblemKind.COUNT,
                f"{split}/",
                f"{images:,} images; {manifest.TREE_INFO} says {info.splits[split]['images']:,}",
            )
        if len(counts) == catalogue.NUM_CLASSES and split in ("train", "val"):
            _check_full_split(check, split, counts, images)
    if listed is not None:
        check.counts["manifest_entries"] = listed


def _check_full_split(check: Check, split: str, counts: collections.Counter[str], images: int) -> None:
    """All 1000 classes present: hold the split to the real dataset's numbers."""
    if images != catalogue.SPLIT_IMAGES[split]:
        check.add(
            ProblemKind.COUNT, f"{split}/", f"{images:,} images; ILSVRC-2012 has {catalogue.SPLIT_IMAGES[split]:,}"
        )
    low, high = catalogue.TRAIN_PER_CLASS if split == "train" else (catalogue.VAL_IMAGES_PER_CLASS,) * 2
    for folder, count in sorted(counts.items()):  # by class folder: split/wnid
        if not low <= count <= high:
            check.add(ProblemKind.COUNT, f"{folder}/", f"{count} images; expected {low}–{high}")
