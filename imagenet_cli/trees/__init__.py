"""``imagenet prepare``: archives to training-ready ImageFolder trees, one streaming pass, in parallel.

Input, found automatically in ``ROOT/downloads/``: the official archives (train tar of per-class
tars, val tar, and the devkit for labels) or the Kaggle zip; or, with ``source``, an extracted
Kaggle ``ILSVRC/`` tree or an existing ImageFolder tree. Output: ``INTO/<size>/{train,val}/<wnid>/``
for each size, with ``manifest.tsv``, ``tree.json``, ``classes.txt``, ``train.txt`` and ``val.txt``.

Val images go into the folder of their label: from the devkit's ground truth, else Kaggle's
``LOC_val_solution.csv``, else the catalogue; when two sources are present they must agree.
Class folders are WNIDs and every label file uses the sorted-WNID index, never the devkit's.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import heapq
import itertools
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__, archives, atomic, catalogue, class_files, locks, manifest, owned, val_labels
from ..errors import (
    ArchiveError,
    InvalidArgumentError,
    MissingInputError,
)
from ..inputs import InputFile, Snapshot, changed_names, describe, fingerprint
from ..layout import Root
from ..manifest import Entry, Failure
from ..progress import SILENT, Progress
from ..val_labels import ValLabels
from . import cluster
from .readers import Blobs, Files, Item, LooseFile, MemberAt, Reader, TarMembers, TarRegion, ZipMember, ZipMembers
from .resize import FULL, Recipe
from .shards import (
    MARKERS,
    NEW,
    Engine,
    Shard,
    ShardJob,
    ShardResult,
    marker_path,
    read_marker,
    run_shards,
    shard_state,
)

log = logging.getLogger(__name__)

SPLITS = ("train", "val")
RECIPE_FILE = "recipe.json"


@dataclass
class TreeSummary:
    size: str
    path: Path
    images: dict[str, int]  # per split, written
    failures: list[Failure]
    repaired: dict[str, int]  # what was wrong -> how many


@dataclass
class PrepareResult:
    source: str  # what was read, in words
    label_source: str
    trees: list[TreeSummary] = field(default_factory=list)
    shards_done_before: int = 0
    shards_run: int = 0
    seconds: float = 0.0
    images_processed: int = 0

    @property
    def failed(self) -> int:
        return max((len(t.failures) for t in self.trees), default=0)

    @property
    def images_per_second(self) -> float:
        return self.images_processed / self.seconds if self.seconds else 0.0


def tree_name(size: str, recipe: Recipe) -> str:
    """``224``, ``full``; every option not at its default is part of the name, so that two recipes
    never claim one folder: ``64-squash``, ``224-png``, ``64-squash-lanczos``, ``224-q95``,
    ``224-noupscale``. Resizing options do not apply to ``full``."""
    default = Recipe(recipe.sizes)
    resized = size != FULL
    parts = [size]
    parts += [recipe.mode] if resized and recipe.mode != default.mode else []
    parts += [recipe.format] if recipe.format != default.format else []
    parts += [recipe.filter] if resized and recipe.filter != default.filter else []
    parts += [f"q{recipe.quality}"] if recipe.quality != default.quality else []
    parts += ["noupscale"] if resized and not recipe.upscale else []
    return "-".join(parts)


def prepare(
    root: Path,
    recipe: Recipe | Sequence[str],
    *,
    splits: Sequence[str] | None = None,
    workers: int | None = None,
    into: Path | None = None,
    source: Path | None = None,
    redo: bool = False,
    wait: bool = True,
    dask: str | None = None,
    executor: Executor | None = None,
    progress: Progress = SILENT,
    trust_input_labels: bool = False,
) -> PrepareResult:
    """Write one tree per size of ``recipe`` into the folder ``into`` (default: the root); see the
    module docstring. ``recipe`` is a :class:`~imagenet_cli.trees.resize.Recipe`, or sizes alone
    (``["224"]``) for the default one.

    Re-running converges to the tree the current inputs give: finished shards are kept, shards
    whose input changed or that had failed images or lost files are redone, and files no longer in
    the inputs are removed. ``redo`` redoes every shard of the splits asked for. Each tree is
    locked while it is written: a second run waits (or, with ``wait=False``, raises
    :class:`~imagenet_cli.errors.LockHeldError`). Unreadable images are listed in the result's
    trees (``failures``), not raised.

    Shards run on ``workers`` local processes, or on a Dask cluster: ``dask`` is ``local``,
    ``local:N``, ``auto`` or a scheduler address (see :mod:`imagenet_cli.trees.cluster`); or on any
    ``executor`` (``concurrent.futures``) whose workers see the same paths.

    Val labels are the shipped table's; where the devkit's ground truth or LOC_val_solution.csv
    says otherwise, each such image is named in a warning. ``trust_input_labels`` uses the
    inputs' labels instead (see :mod:`imagenet_cli.val_labels`).
    """
    recipe = Recipe.of(recipe)
    chosen = _splits(splits)
    started = time.monotonic()
    trees = {size: (into or root) / tree_name(size, recipe) for size in recipe.sizes}
    with locks.writing_all(trees.values(), wait):
        for size, tree in trees.items():
            _claim(tree, size, recipe)
            _remove_temporaries(tree)
        with contextlib.ExitStack() as stack:
            # The cluster is started before the inputs are read: a bad address fails at once.
            client = stack.enter_context(cluster.connect(dask)) if dask else None
            run = _Run(
                recipe,
                trees,
                workers or os.cpu_count() or 1,
                redo,
                progress,
                client,
                executor,
                source,
                trust_input_labels,
            )
            return _prepare_locked(root, chosen, run, started)


@dataclass
class _Run:
    """How this run works: what it makes, where its shards run, and how it reports."""

    recipe: Recipe
    trees: dict[str, Path]
    workers: int
    redo: bool
    progress: Progress
    client: Any | None  # a distributed.Client, with --dask
    executor: Executor | None
    from_tree: Path | None  # --from: an extracted tree read instead of the archives
    trust_input_labels: bool  # val labels from the inputs where they differ from the shipped table

    def engine(self, plan: _Plan) -> Engine | None:
        if self.executor is not None:
            return Engine(self.executor, self.workers)
        if self.client is None:
            return None
        if not plan.shards.spreadable:
            log.warning(
                "the older Kaggle layout (one tar.gz read from start to "
                "end) cannot be spread over a cluster: preparing it here"
            )
            return None
        inputs = [tree / i.path for tree in self.trees.values() for files in plan.inputs.values() for i in files]
        inputs += [self.from_tree] if self.from_tree is not None else []
        count = cluster.check_workers(
            self.client, __version__, inputs, [tree / MARKERS for tree in self.trees.values()]
        )
        log.info("running the shards on %d Dask workers", count)
        return cluster.engine(self.client)


def _prepare_locked(root: Path, splits: tuple[str, ...], run: _Run, started: float) -> PrepareResult:
    downloads = Root(root).downloads
    # One pass over the Kaggle zip's ~2 M-record directory serves both the labels and the plan.
    zip_path = downloads / archives.KAGGLE_ZIP
    kaggle = archives.kaggle_bundle(zip_path) if run.from_tree is None and zip_path.is_file() else None
    chosen = _val_labels(downloads, run.from_tree, kaggle, run.trust_input_labels)
    labels, label_source = chosen.wnids, chosen.source
    plan = _plan(downloads, run.from_tree, splits, labels, kaggle, next(iter(run.trees.values())))
    log.info("reading %s; val labels from %s", plan.described, label_source)
    reasons = _Reasons(run.trees, run.redo, plan.inputs)
    engine = run.engine(plan)
    result = PrepareResult(plan.described, label_source)
    with run.progress.task("preparing images", total=plan.shards.total(), unit="img") as advance:

        def on_done(shard: Shard, handled: int) -> None:
            result.shards_run += 1
            result.images_processed += handled
            advance(handled)

        def skipped(shard: Shard) -> None:  # done before: the bar moves on
            advance(shard.images or 0)

        work = plan.shards.pending(reasons.sizes_needing, skipped)
        if plan.shards.listed:  # the whole plan is known before the work: say what is redone first
            listed = list(work)
            reasons.announce()
            _log_plan(len(plan.shards.seen), len(listed))
            work = iter(listed)
        run_shards(_jobs(work, run.recipe, run.trees), run.workers, on_done, engine)
    shards = plan.shards.seen
    result.shards_done_before = len(shards) - result.shards_run
    if not plan.shards.listed:
        reasons.announce()
        _log_plan(len(shards), result.shards_run)
    for size, tree in run.trees.items():
        result.trees.append(
            _finish_tree(tree, size, shards, splits, run.recipe, plan, label_source, result.shards_run > 0)
        )
    result.seconds = time.monotonic() - started
    return result


def _log_plan(shards: int, to_make: int) -> None:
    log.info("%d shards: %d to make, %d already done (skipped)", shards, to_make, shards - to_make)


def _jobs(work: Iterable[tuple[Shard, tuple[str, ...]]], recipe: Recipe, trees: dict[str, Path]) -> Iterator[ShardJob]:
    """Each pending shard with the sizes it lacks: a shard finished in some trees only is made
    again for the others alone."""
    paths = {size: str(path) for size, path in trees.items()}
    for shard, sizes in work:
        if sizes == recipe.sizes:
            yield ShardJob(shard, recipe, paths)
        else:
            yield ShardJob(shard, dataclasses.replace(recipe, sizes=sizes), {s: paths[s] for s in sizes})


class _Reasons:
    """Decides which shards each tree needs, and tells in one line per cause why shards are redone."""

    def __init__(self, trees: dict[str, Path], redo: bool, inputs: dict[str, list[InputFile]]) -> None:
        self.trees, self.redo = trees, redo
        self.counts: collections.Counter[tuple[Path, str, str]] = collections.Counter()
        self.changed = {tree: _changed_inputs(tree, inputs) for tree in trees.values()}

    def sizes_needing(self, shard: Shard) -> tuple[str, ...]:
        needing = []
        for size, tree in self.trees.items():
            why = shard_state(tree, shard)
            if why is None and self.redo:
                why = "--redo"
            if why is None:
                continue
            needing.append(size)
            changed = self.changed[tree].get(shard.split)
            if changed:  # new inputs: every shard of the split run is theirs, new classes too
                self.counts[(tree, shard.split, f"{changed} changed")] += 1
            elif why != NEW:
                self.counts[(tree, shard.split, why)] += 1
        return tuple(needing)

    def announce(self) -> None:
        for (tree, split, why), count in sorted(self.counts.items()):
            shards = f"{count} {split} shard{'s' if count != 1 else ''}"
            if why.endswith(" changed"):
                log.warning("%s since %s was made: redoing %s", why, tree, shards)
            else:
                log.warning("%s: redoing %s (%s)", tree, shards, why)
        self.counts.clear()


def _changed_inputs(tree: Path, inputs: dict[str, list[InputFile]]) -> dict[str, str]:
    """Per split, the names of the inputs that differ from those ``tree.json`` recorded, in words."""
    info = manifest.read_tree_info(tree) if (tree / manifest.TREE_INFO).is_file() else None
    if info is None:
        return {}
    changed = {}
    for split, current in inputs.items():
        recorded = info.inputs.get(split, [])
        if recorded and (names := changed_names(recorded, current)):
            changed[split] = " and ".join(names)
    return changed


# --- options -----------------------------------------------------------------------------------


def _splits(splits: Sequence[str] | None) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(splits or SPLITS))
    unknown = [s for s in chosen if s not in SPLITS]
    if unknown:
        raise InvalidArgumentError(f"--splits {', '.join(unknown)}: prepare makes train and val trees")
    return chosen


def _claim(tree: Path, size: str, recipe: Recipe) -> None:
    """Tie the tree folder to one recipe: different options never mix in one tree. Options that
    do not apply to the size (resizing ones, for ``full``) are claimed at their defaults."""
    if size == FULL:
        default = Recipe(recipe.sizes)
        recipe = dataclasses.replace(recipe, mode=default.mode, filter=default.filter, upscale=default.upscale)
    wanted = json.loads(json.dumps({k: v for k, v in asdict(recipe).items() if k != "sizes"}))  # plain JSON values

    def conflict(existing: dict[str, Any]) -> str:
        changed = ", ".join(f"{k} {existing.get(k)!r} → {v!r}" for k, v in wanted.items() if existing.get(k) != v)
        return f"{tree} was prepared with other options ({changed}); it will not be mixed"

    owned.own(tree, f"{MARKERS}/{RECIPE_FILE}", "prepare", wanted, conflict, parameter="into")


def _remove_temporaries(tree: Path) -> None:
    """What killed runs left half-written beside the manifest and among the markers (the class
    folders are swept when the tree is finished). Safe: we hold the tree's lock."""
    for folder in (tree, tree / MARKERS):
        atomic.remove_temporaries(folder)


# --- val labels --------------------------------------------------------------------------------


def _val_labels(downloads: Path, source: Path | None, kaggle: archives.KaggleBundle | None, trust: bool) -> ValLabels:
    """The WNID of every val image: the shipped table's, checked against every label file the
    inputs hold (the devkit's ground truth, LOC_val_solution.csv), or theirs when trusted."""
    found = []
    devkit = downloads / archives.DEVKIT
    if source is None and devkit.is_file():
        where = f"{devkit.name}:{archives.GROUND_TRUTH}"
        found.append(val_labels.devkit_labels(archives.devkit_ground_truth_text(devkit), where))
    kaggle_text = _loc_val_solution(source, kaggle)
    if kaggle_text is not None:
        found.append(val_labels.loc_solution_labels(kaggle_text, "LOC_val_solution.csv"))
    chosen = val_labels.choose(found, trust)
    for line in chosen.warnings(trust):
        log.warning("%s", line)
    return chosen


def _loc_val_solution(source: Path | None, kaggle: archives.KaggleBundle | None) -> str | None:
    if source is not None:
        for candidate in (source / "LOC_val_solution.csv", source.parent / "LOC_val_solution.csv"):
            if candidate.is_file():
                return candidate.read_text()
        return None
    return archives.kaggle_text(kaggle, "LOC_val_solution.csv") if kaggle is not None else None


# --- planning ----------------------------------------------------------------------------------


@dataclass
class _Plan:
    described: str  # what is read, in words
    shards: _Shards
    inputs: dict[str, list[InputFile]]  # per split: the files its shards are made from


def _plan(
    downloads: Path,
    source: Path | None,
    splits: tuple[str, ...],
    labels: tuple[str, ...],
    kaggle: archives.KaggleBundle | None,
    tree: Path,
) -> _Plan:
    """``tree``: any of the trees being made (they share a parent), to record inputs relative to."""
    if source is not None:
        return _plan_tree(source, splits, labels, tree)
    train, val = downloads / archives.TRAIN_TAR, downloads / archives.VAL_TAR
    if ("train" not in splits or train.is_file()) and ("val" not in splits or val.is_file()):
        if kaggle is not None:
            log.warning(
                "%s holds the official archives and %s: preparing from the official archives; the zip is not read",
                downloads,
                kaggle.path.name,
            )
        inputs: dict[str, list[InputFile]] = {"train": [describe(train, tree)] if "train" in splits else [], "val": []}
        if "val" in splits:
            devkit = downloads / archives.DEVKIT
            inputs["val"] = [describe(val, tree)] + ([describe(devkit, tree)] if devkit.is_file() else [])
        return _Plan("the official archives", _ListedShards(_plan_official(train, val, splits, labels, inputs)), inputs)
    if kaggle is not None:
        bundle = describe(kaggle.path, tree)
        return _Plan("the Kaggle zip", _plan_kaggle(kaggle, splits, labels, bundle), {s: [bundle] for s in splits})
    raise MissingInputError(
        f"no archives to prepare in {downloads}: it needs {archives.TRAIN_TAR} and {archives.VAL_TAR}, "
        f"or {archives.KAGGLE_ZIP}"
    )


NOT_A_VAL_NAME = "not an ILSVRC2012_val_<8 digits>.JPEG name numbered 1–50,000, so it has no label: not used"
NOT_A_CLASS_FOLDER = "not in a class folder named by one of the 1000 WNIDs: not used"


def _val_label(labels: tuple[str, ...], name: str) -> str | None:
    """The WNID of a val image from its file name; None for a name no val image has."""
    try:
        return labels[catalogue.val_number(name) - 1]
    except InvalidArgumentError:
        return None


def _unusable(split: str, items: list[Item], inputs: tuple[InputFile, ...] = ()) -> list[Shard]:
    """Members that cannot be prepared (no label to file them under), as one shard of failures:
    each is named in the tree's failures, and every other image is prepared."""
    return [Shard(split, None, len(items), Blobs(tuple(items)), None, inputs, _listing_of(items))] if items else []


def _refuse_listing(where: str, why: str) -> None:
    raise ArchiveError(f"{where}: refused: {why}")


def _plan_official(
    train: Path, val: Path, splits: tuple[str, ...], labels: tuple[str, ...], inputs: dict[str, list[InputFile]]
) -> list[Shard]:
    shards = []
    if "train" in splits:
        read = (inputs["train"][0],)
        copies: collections.Counter[str] = collections.Counter()
        snapshot = Snapshot.of(train.stat())  # before listing: every shard then reads what was listed
        odd: list[Item] = []
        for member in archives.tar_headers(train, _refuse_listing):
            wnid = archives.class_tar_wnid(member.name)
            if wnid is None:
                odd.append(Item(member.name, None, None, f"{archives.NOT_A_CLASS_TAR}: not used"))
                continue
            region = TarRegion(train, member.offset_data, member.size, f"{train.name}:{member.name}", snapshot)
            listing = fingerprint((member.name, member.offset_data, member.size))
            # A class tar that comes twice becomes a second shard of the class; its images then
            # come twice, and the manifest names each as a failure (see _without_duplicates).
            part = copies[wnid] or None
            copies[wnid] += 1
            shards.append(Shard("train", wnid, None, region, part, read, listing))
        shards += _unusable("train", odd, read)
    if "val" in splits:
        by_class: dict[str, list[MemberAt]] = collections.defaultdict(list)
        snapshot = Snapshot.of(val.stat())
        unlabelled: list[Item] = []
        for member in archives.tar_headers(val, _refuse_listing):
            name = member.name.rsplit("/", 1)[-1]
            if (label := _val_label(labels, name)) is None:
                unlabelled.append(Item(member.name, None, None, NOT_A_VAL_NAME))
            else:
                by_class[label].append(MemberAt(name, member.offset_data, member.size))
        read = (inputs["val"][0],)
        shards += _unusable("val", unlabelled, read)
        shards += [
            Shard("val", w, len(m), TarMembers(val, tuple(m), snapshot), inputs=read, listing=fingerprint(m))
            for w, m in by_class.items()
        ]
    return sorted(shards, key=lambda s: (s.split, s.wnid or ""))


def _plan_kaggle(
    bundle: archives.KaggleBundle, splits: tuple[str, ...], labels: tuple[str, ...], identity: InputFile
) -> _Shards:
    if bundle.inner is not None:
        return _KaggleTarGzShards(bundle, splits, labels, identity)
    return _KaggleZipShards(bundle, splits, labels, identity)


SizesNeeding = Callable[[Shard], tuple[str, ...]]


class _Shards:
    """A plan's shards, handed out as they are found, with the sizes each still lacks.

    ``listed``: the whole list is known before any work (the official archives, a folder). The
    Kaggle bundle has ~2 M members: its central directory (or, in the 2019 layout, its inner
    tar.gz) is read once, as a stream, and a train class becomes a shard when its members end, so
    memory holds one class at a time. ``spreadable``: shards can run on other hosts (a stretch of
    a tar.gz read from its start cannot). Every shard handed out or skipped is kept in ``seen``.
    """

    listed = False
    spreadable = True

    def __init__(self) -> None:
        self.seen: list[Shard] = []

    def pending(
        self, sizes_needing: SizesNeeding, on_skip: Callable[[Shard], None]
    ) -> Iterator[tuple[Shard, tuple[str, ...]]]:
        for shard in self._cut():
            self.seen.append(shard)
            if sizes := sizes_needing(shard):
                yield shard, sizes
            else:
                on_skip(shard)

    def _cut(self) -> Iterator[Shard]:
        raise NotImplementedError

    def total(self) -> int | None:
        """How many images there are to go through, when that is known exactly and cheaply (a
        class tar's images are known only once it is read)."""
        return None


class _ListedShards(_Shards):
    listed = True

    def __init__(self, shards: list[Shard]) -> None:
        super().__init__()
        self.shards = shards

    def _cut(self) -> Iterator[Shard]:
        return iter(self.shards)

    def total(self) -> int | None:
        counts = [shard.images for shard in self.shards]
        return None if None in counts else sum(c or 0 for c in counts)


class _KaggleShards(_Shards):
    def __init__(
        self, bundle: archives.KaggleBundle, splits: tuple[str, ...], labels: tuple[str, ...], identity: InputFile
    ) -> None:
        super().__init__()
        self.bundle, self.splits, self.labels = bundle, splits, labels
        self.inputs = (identity,)


Listed = ZipMember | Item  # what a shard's listing is made of


class _ClassRuns:
    """Cuts a stream of train items into runs of one class, each run a shard.

    The bundle keeps each class folder together, so a class is normally one run; should a class
    come back later, its later runs become shards of their own (numbered, so a re-run cuts the same
    ones) and the tree's manifest merges them by path.
    """

    def __init__(self, inputs: tuple[InputFile, ...], reader: Callable[[tuple[Any, ...]], Reader]) -> None:
        self.inputs, self.reader = inputs, reader
        self.current: str | None = None
        self.items: list[Listed] = []
        self.runs: collections.Counter[str] = collections.Counter()

    def add(self, wnid: str, item: Listed) -> Shard | None:
        """Adds an item; returns the previous run's shard when this item starts a new run."""
        done = self.flush() if wnid != self.current else None
        if wnid != self.current:
            self.current, self.items = wnid, []
        self.items.append(item)
        return done

    def flush(self) -> Shard | None:
        if self.current is None:
            return None
        earlier = self.runs[self.current]
        self.runs[self.current] += 1
        items = tuple(self.items)
        shard = Shard(
            "train", self.current, len(items), self.reader(items), earlier or None, self.inputs, _listing_of(items)
        )
        self.current = None
        return shard


def _listing_of(items: Iterable[Listed]) -> str:
    """A shard's listing: the members' names and where they are (never their bytes)."""
    return fingerprint((item[0], item[1]) for item in items)


class _KaggleZipShards(_KaggleShards):
    """The current layout: zip members listed from the central directory, read by offset."""

    def total(self) -> int:
        # One more pass over the central directory (~10 s for 2 M members) buys the progress bar an ETA.
        return sum(
            1
            for image in archives.kaggle_zip_images(self.bundle.path, lambda where, why: None)
            if image.split in self.splits
        )

    def _cut(self) -> Iterator[Shard]:
        path = self.bundle.path
        snapshot = Snapshot.of(path.stat())
        runs = _ClassRuns(self.inputs, lambda items: ZipMembers(path, items, snapshot))
        val: dict[str, list[ZipMember]] = collections.defaultdict(list)
        refused: list[Item] = []  # named as failures, never skipped: one may be where an image should be

        def refuse(where: str, why: str) -> None:
            refused.append(Item(where.split(":", 1)[1], None, None, f"refused: {why}"))

        for split, wnid, name, entry in archives.kaggle_zip_images(path, refuse):
            if split not in self.splits:
                continue
            if split == "val":
                if (label := _val_label(self.labels, name)) is None:
                    refused.append(Item(entry.name, None, None, NOT_A_VAL_NAME))
                else:
                    val[label].append(ZipMember(name, entry))
                continue
            if wnid is None or not catalogue.is_wnid(wnid):
                refused.append(Item(entry.name, None, None, NOT_A_CLASS_FOLDER))
                continue
            if finished := runs.add(wnid, ZipMember(name, entry)):
                yield finished
        if finished := runs.flush():
            yield finished
        for wnid, members in sorted(val.items()):  # 50,000 small records at most
            items = tuple(members)
            yield Shard(
                "val", wnid, len(items), ZipMembers(path, items, snapshot), None, self.inputs, _listing_of(items)
            )
        if refused:
            yield Shard(
                self.splits[0], None, len(refused), Blobs(tuple(refused)), None, self.inputs, _listing_of(refused)
            )


class _KaggleTarGzShards(_KaggleShards):
    """The 2019 layout: one inner tar.gz, read from start to end; val cut in stretches of VAL_PART."""

    VAL_PART = 500
    spreadable = False

    def _cut(self) -> Iterator[Shard]:
        runs = _ClassRuns(self.inputs, lambda items: Blobs(items))
        val_items: list[Item] = []
        part = 0
        refused: list[tuple[str, str]] = []
        unlabelled: list[Item] = []
        for member in archives.kaggle_inner_tar_members(self.bundle, lambda where, why: refused.append((where, why))):
            if member.split not in self.splits:
                continue
            if member.split == "train" and member.wnid is not None:
                if finished := runs.add(member.wnid, Item(member.name, None, member.data)):
                    yield finished
            else:
                wnid = _val_label(self.labels, member.name)
                if wnid is None:
                    unlabelled.append(Item(member.origin, None, None, NOT_A_VAL_NAME))
                    continue
                val_items.append(Item(member.name, wnid, member.data))
                if len(val_items) == self.VAL_PART:
                    yield self._val_part(val_items, part)
                    val_items, part = [], part + 1
        if finished := runs.flush():
            yield finished
        if val_items:
            yield self._val_part(val_items, part)
        yield from _unusable("val", unlabelled, self.inputs)
        if refused:
            raise ArchiveError(f"{refused[0][0]}: refused: {refused[0][1]} ({len(refused)} members refused)")

    def _val_part(self, items: list[Item], part: int) -> Shard:
        listing = fingerprint((item.name, item.wnid) for item in items)
        return Shard("val", None, len(items), Blobs(tuple(items)), part, self.inputs, listing)


def _plan_tree(source: Path, splits: tuple[str, ...], labels: tuple[str, ...], tree: Path) -> _Plan:
    """An extracted Kaggle ``ILSVRC/`` tree (flat val) or an ImageFolder tree (val in class folders)."""
    candidates = (source / "Data" / "CLS-LOC", source / "ILSVRC" / "Data" / "CLS-LOC", source)
    base = next((p for p in candidates if (p / "train").is_dir() or (p / "val").is_dir()), None)
    if base is None:
        raise MissingInputError(f"{source} has neither train/ nor val/ (nor ILSVRC/Data/CLS-LOC/)")
    shards = []
    for split in splits:
        by_class: dict[str, list[LooseFile]] = collections.defaultdict(list)
        split_dir = base / split
        if not split_dir.is_dir():
            raise MissingInputError(f"{source} has no {split}/ folder")
        unusable: list[Item] = []
        refiled: list[str] = []  # val images in another class's folder than their label's
        for dirpath, _, names in os.walk(split_dir):
            folder = Path(dirpath).name
            for name in sorted(names):
                path = os.path.join(dirpath, name)
                if split == "val":
                    wnid = _val_label(labels, name)
                    if wnid is not None and catalogue.is_wnid(folder) and folder != wnid:
                        refiled.append(f"{folder}/{name}: its label is {wnid}")
                else:
                    wnid = folder if catalogue.is_wnid(folder) else None
                if wnid is None:
                    unusable.append(Item(path, None, None, NOT_A_VAL_NAME if split == "val" else NOT_A_CLASS_FOLDER))
                else:
                    by_class[wnid].append(LooseFile(name, path))
        if refiled:
            images = "1 val image sits" if len(refiled) == 1 else f"{len(refiled):,} val images sit"
            log.warning(
                "%s: %s in another class's folder than its label (%s%s): filed by the label",
                split_dir,
                images,
                "; ".join(refiled[:3]),
                "; …" if len(refiled) > 3 else "",
            )
        shards += [
            Shard(split, w, len(p), Files(tuple(p)), listing=_files_listing(p)) for w, p in sorted(by_class.items())
        ]
        shards += _unusable(split, unusable)
    kind = "an extracted Kaggle tree" if base != source else "an ImageFolder tree"
    # A tree this tool made is known by its manifest; loose files by the listing of each shard.
    recorded = [describe(source / manifest.MANIFEST, tree)] if manifest.has_manifest(source) else []
    return _Plan(f"{kind} at {source}", _ListedShards(shards), {split: recorded for split in splits})


def _files_listing(paths: list[LooseFile]) -> str:
    """Loose files are known by name, size and mtime: a stat each, no read."""

    def identity(name: str, path: str) -> tuple[Any, ...]:
        try:
            stat = os.stat(path)
        except OSError:  # the shard names it as a failure when it reads it
            return name, None
        return name, stat.st_size, stat.st_mtime_ns

    return fingerprint(identity(name, path) for name, path in paths)


# --- finishing a tree --------------------------------------------------------------------------


def _finish_tree(
    tree: Path,
    size: str,
    shards: list[Shard],
    splits: tuple[str, ...],
    recipe: Recipe,
    plan: _Plan,
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
    inputs.update({split: [i.as_dict() for i in plan.inputs.get(split, [])] for split in splits})
    up_to_date = (
        not ran
        and not dropped
        and manifest.has_manifest(tree)
        and previous is not None
        and not any(
            changed_names(previous.inputs.get(split, []), plan.inputs.get(split, []))
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
            classes[result.split].update(e.wnid for e in result.entries)
            yield result.entries

    def entries() -> Iterator[Entry]:
        for split in sorted(markers):
            paths = sorted(markers[split], key=lambda p: p.name)
            if all(p.stem.count("-") == 1 for p in paths):  # one marker per class: already in order
                for shard_entries in results(paths):
                    yield from shard_entries
            else:  # shards that share classes (streamed stretches, a class's later runs): merge by path
                yield from heapq.merge(*results(paths), key=lambda e: e.path)

    sweep = _Sweep(tree, splits)
    rows = sweep.alongside(_without_duplicates(tree, entries(), failures))
    if up_to_date:
        collections.deque(rows, maxlen=0)  # counts, and strays swept
        sweep.finish()
        return TreeSummary(size, tree, dict(images), failures, dict(repaired))
    _write_labels_and_manifest(tree, rows)
    sweep.finish()
    info = manifest.TreeInfo(
        made_by={
            "command": "prepare",
            "source": plan.described,
            "val_labels": label_source,
            "size": size,
            **asdict(recipe),
        },
        splits={split: {"images": images[split], "classes": len(classes[split])} for split in sorted(images)},
        failures=failures,
        inputs={split: inputs[split] for split in sorted(inputs) if split in images},
    )
    info.made_by["repaired"] = dict(repaired)
    manifest.write_tree_info(tree, info)
    return TreeSummary(size, tree, dict(images), failures, dict(repaired))


def _without_duplicates(tree: Path, entries: Iterable[Entry], failures: list[Failure]) -> Iterator[Entry]:
    """Entries in path order, without any path that two shards both wrote (a class tar or class
    run that comes twice): neither copy is kept, and the image is named as a failure."""
    for path, same in itertools.groupby(entries, key=lambda e: e.path):
        entry, *copies = same  # a path holds one entry, or two when the input had it twice
        if not copies:
            yield entry
            continue
        split = path.split("/", 1)[0]
        failures.append(Failure(split, entry.wnid, entry.name, "appears twice in the input: neither copy is used"))
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
        split = path.name.split("-", 1)[0]
        if split not in splits:
            by_split[split].append(path)
        elif path not in current:
            log.info("%s: %s is no longer in the inputs", tree, path.stem)
            path.unlink()
            dropped += 1
    for path in current:
        by_split[path.name.split("-", 1)[0]].append(path)
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
        split, wnid = folder.split("/", 1)
        if split not in self.splits:
            return
        self.folders[split].add(wnid)
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
            split_dir = self.tree / split
            if split_dir.is_dir():
                with os.scandir(split_dir) as listing:
                    for item in listing:
                        if item.name not in self.folders[split]:
                            self._remove(item)
        if self.removed_files or self.removed_folders:
            log.warning(
                "%s: removed %d files and %d class folders that the inputs no longer give",
                self.tree,
                self.removed_files,
                self.removed_folders,
            )

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
