"""Finishing a tree: the shards' markers merged, in path order, into its manifest and labels.

Everything no manifest row names is swept from the splits a run made, and ``tree.json`` records
how the tree was made and from what. A tree nothing changed is not rewritten.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import logging
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import atomic, catalogue, class_files, manifest
from ..inputs import changed_names
from ..layout import SPLITS
from ..manifest import Entry, Failure, Prepared
from .plan import Plan
from .resize import Recipe
from .shards import (
    CHANGING,
    MARKERS,
    Shard,
    ShardResult,
    is_whole_class,
    marker_path,
    read_marker,
    split_of,
)

log = logging.getLogger(__name__)


@dataclass
class TreeSummary:
    size: str
    path: Path
    images: dict[str, int]  # per split, written
    failures: list[Failure]
    repaired: dict[str, int]  # what was wrong -> how many


# --- finishing a tree --------------------------------------------------------------------------


def finish_tree(
    tree: Path,
    *,
    size: str,
    shards: list[Shard],
    splits: tuple[str, ...],
    recipe: Recipe,
    plan: Plan,
    label_source: str,
    ran: bool,
) -> TreeSummary:
    """Merge the shard markers, in path order, into manifest.tsv, tree.json and the label files.

    The splits this run made come from its shards: markers of shards the inputs no longer give are
    removed, and so are files and class folders no manifest row names. Splits not asked for this
    time keep their markers, rows, labels and recorded inputs. When nothing ran and nothing
    changed, nothing is rewritten: a finished tree on a read-only mount re-runs cleanly.
    """
    images: collections.Counter[str] = collections.Counter()
    classes: dict[str, set[str]] = collections.defaultdict(set)
    failures: list[Failure] = []
    repaired: collections.Counter[str] = collections.Counter()
    markers, dropped = _markers_by_split(tree, shards, splits)
    previous = manifest.read_tree_info(tree)
    inputs = dict(previous.inputs) if previous is not None else {}
    inputs.update({split: tuple(plan.inputs.get(split, [])) for split in splits})
    up_to_date = (
        not ran
        and not dropped
        and not (tree / MARKERS / CHANGING).exists()
        and manifest.has_manifest(tree)
        and previous is not None
        and not any(
            changed_names(previous.inputs.get(split, ()), plan.inputs.get(split, []))
            for split in splits
            if split in previous.splits
        )
    )

    def results(paths: list[Path]) -> Iterator[list[Entry]]:
        for path in paths:
            result: ShardResult = read_marker(path)
            failures.extend(result.failures)
            repaired.update(result.repaired.values())
            images[result.split] += len(result.entries)
            classes[result.split].update(e.wnid for e in result.entries if e.wnid)
            yield result.entries

    def entries() -> Iterator[Entry]:
        # In the manifest's path order: imagenet-v2-top-images/ sorts before imagenet-v2/.
        for split in sorted(markers, key=lambda split: split + "/"):
            paths = sorted(markers[split], key=lambda p: p.name)
            if all(is_whole_class(p.stem) for p in paths):  # one marker per class: already in order
                for shard_entries in results(paths):
                    yield from shard_entries
            else:  # shards that share classes (streamed stretches, a class's later runs): merge by path
                yield from heapq.merge(*results(paths), key=lambda e: e.path)

    sweep = _Sweep(tree, splits)
    if up_to_date and previous is not None:
        # The manifest is what the markers would merge to: one stream instead of every marker again.
        # It counts the images and sweeps strays as it goes; the files stay as they are, so a
        # read-only mount re-runs cleanly.
        for entry in sweep.alongside(manifest.read_manifest(tree)):
            images[entry.split] += 1
        sweep.finish()
        made = previous.made_by
        return TreeSummary(
            size, tree, dict(images), list(previous.failures), made.repaired if isinstance(made, Prepared) else {}
        )
    _write_labels_and_manifest(tree, sweep.alongside(_without_duplicates(tree, entries(), failures)))
    sweep.finish()
    summary = TreeSummary(size, tree, dict(images), failures, dict(repaired))
    described, label_source = _made_from(previous, splits, plan.described, label_source)
    info = manifest.TreeInfo(
        made_by=manifest.Prepared(
            inputs_described=described,
            val_labels=label_source,
            size=size,
            mode=recipe.mode,
            quality=recipe.quality,
            format=recipe.format,
            filter=recipe.filter,
            upscale=recipe.upscale,
            repaired=dict(repaired),
        ),
        splits={split: {"images": images[split], "classes": len(classes[split])} for split in sorted(images)},
        failures=tuple(failures),
        inputs={split: inputs[split] for split in sorted(inputs) if split in images},
    )
    manifest.write_tree_info(tree, info)
    (tree / MARKERS / CHANGING).unlink(missing_ok=True)  # the record says what the markers hold again
    return summary


def _made_from(
    previous: manifest.TreeInfo | None, splits: tuple[str, ...], described: str, label_source: str
) -> tuple[str, str]:
    """What the tree says it was made from: an evaluation set prepared into a tree of ILSVRC-2012
    leaves the tree's words as they were (each split's inputs are recorded apart)."""
    made = previous.made_by if previous is not None else None
    if isinstance(made, manifest.Prepared) and not set(splits) & set(SPLITS):
        return made.inputs_described, made.val_labels
    return described, label_source


def _without_duplicates(tree: Path, entries: Iterable[Entry], failures: list[Failure]) -> Iterator[Entry]:
    """Entries in path order, without any path that two shards both wrote (a class tar or class
    run that comes twice): neither copy is kept, and the image is named as a failure."""
    for path, same in itertools.groupby(entries, key=lambda e: e.path):
        entry, *copies = same  # a path holds one entry, or two when the input had it twice
        if not copies:
            yield entry
            continue
        failures.append(Failure(entry.split, entry.wnid or None, entry.name, manifest.APPEARS_TWICE))
        (tree / path).unlink(missing_ok=True)


def _markers_by_split(tree: Path, shards: list[Shard], splits: tuple[str, ...]) -> tuple[dict[str, list[Path]], int]:
    """The markers the tree is made of (this run's shards, and whatever the other splits hold),
    and how many were dropped: markers of this run's splits that no current shard has (a class the
    new inputs lack) are deleted, and what they listed is swept as no longer in the inputs.
    """
    current = {marker_path(tree, shard) for shard in shards}
    by_split: dict[str, list[Path]] = collections.defaultdict(list)
    dropped = 0
    for path in (tree / MARKERS).glob("*-*.json"):
        split = split_of(path.stem)
        if split not in splits:
            by_split[split].append(path)
        elif path not in current:
            log.info("%s: %s is no longer in the inputs", tree, path.stem)
            path.unlink()
            dropped += 1
    for path in current:
        by_split[split_of(path.stem)].append(path)
    return by_split, dropped


class _Sweep:
    """Removes what no manifest row names from the splits a run made: files of classes redone with
    fewer images, class folders the inputs no longer have, temporary files of killed runs.

    It follows the manifest as it is written (rows come in path order, one folder after another),
    so it holds one folder's names at a time.
    """

    def __init__(self, tree: Path, splits: tuple[str, ...]) -> None:
        self.tree, self.splits = tree, set(splits)
        self.folders: dict[str, set[str]] = collections.defaultdict(set)  # split -> class folders kept
        self.between: dict[str, set[str]] = collections.defaultdict(set)  # split -> C's corruption/severity
        self.removed_files = self.removed_folders = 0

    def alongside(self, entries: Iterable[Entry]) -> Iterator[Entry]:
        folder: str | None = None
        names: set[str] = set()
        for entry in entries:
            if entry.directory != folder:
                self._sweep_folder(folder, names)
                folder, names = entry.directory, set()
            names.add(entry.name)
            yield entry
        self._sweep_folder(folder, names)

    def _sweep_folder(self, folder: str | None, names: set[str]) -> None:
        if folder is None:
            return
        split, _, wnid = folder.partition("/")
        if split not in self.splits:
            return
        # A class folder is kept whole; a flat split (test) keeps the files its rows name.
        self.folders[split].update([wnid] if wnid else names)
        parts = wnid.split("/")[:-1]  # C's class folders are <corruption>/<severity>/<wnid>
        self.between[split].update("/".join(parts[: n + 1]) for n in range(len(parts)))
        try:
            listing = os.scandir(self.tree / folder)
        except FileNotFoundError:  # deleted while we ran: the next run finds its files missing
            return
        with listing:
            for item in listing:
                if item.name not in names:
                    self._remove(item)

    def finish(self) -> None:
        for split in self.splits:
            self._sweep_level(self.tree / split, split, "")
        if self.removed_files or self.removed_folders:
            log.warning(
                "%s: removed %d files and %d class folders that the inputs no longer give",
                self.tree,
                self.removed_files,
                self.removed_folders,
            )

    def _sweep_level(self, directory: Path, split: str, prefix: str) -> None:
        if not directory.is_dir():
            return
        with os.scandir(directory) as listing:
            for item in listing:
                relative = prefix + item.name
                if relative in self.folders[split]:
                    continue
                if relative in self.between[split] and item.is_dir(follow_symlinks=False):
                    self._sweep_level(Path(item.path), split, relative + "/")
                else:
                    self._remove(item)

    def _remove(self, item: os.DirEntry[str]) -> None:
        if item.is_dir(follow_symlinks=False):
            shutil.rmtree(item.path)
            self.removed_folders += 1
        else:
            os.unlink(item.path)
            if not atomic.is_temporary(item.name):  # a killed run's leftover is no news
                self.removed_files += 1


def _write_labels_and_manifest(tree: Path, entries: Iterable[Entry]) -> None:
    """manifest.tsv and train.txt/val.txt in one pass over the entries; classes.txt beside them."""
    manifest.write_labels_and_manifest(tree, entries, lambda entry: catalogue.by_wnid(entry.wnid).index)
    classes = "".join(f"{c.index}\t{c.wnid}\t{c.name}\n" for c in catalogue.classes())
    atomic.write_text(tree / "classes.txt", classes)
    atomic.write_text(tree / class_files.CLASS_MAP, class_files.class_file("synsets"))
