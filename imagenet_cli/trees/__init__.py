"""``imagenet prepare``: archives to training-ready ImageFolder trees, one streaming pass, in parallel.

Input, found automatically in ``ROOT/downloads/``: the official archives (train tar of per-class
tars, val tar, and the devkit for labels) or the Kaggle zip; or, with ``source``, an extracted
Kaggle ``ILSVRC/`` tree or an existing ImageFolder tree. Output: ``INTO/<size>/{train,val}/<wnid>/``
for each size, with ``manifest.tsv``, ``tree.json``, ``classes.txt``, ``train.txt`` and ``val.txt``.

Val images go into the folder of their label: the shipped table's, checked row by row against
the devkit's ground truth and Kaggle's ``LOC_val_solution.csv`` (:mod:`imagenet_cli.val_labels`).
Class folders are WNIDs and every label file uses the sorted-WNID index, never the devkit's.

The stage in modules: this one runs a prepare (options, locks, the shards, the reasons a shard is
redone); :mod:`.plan` lists the inputs into shards; :mod:`.shards` makes one; :mod:`.finish`
merges the markers into the tree's manifest and labels.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__, archives, atomic, evalsets, locks, manifest, owned, real
from ..errors import InvalidArgumentError, MissingInputError
from ..inputs import InputFile, changed_names
from ..layout import SPLITS, Root
from ..manifest import Failure
from ..progress import SILENT, Progress
from ..storage import RemoteFolder, is_url
from . import cluster
from .evalset_plan import plan_evalset
from .finish import TreeSummary, finish_tree
from .plan import Plan, make_plan, val_labels_for
from .resize import Making, Recipe
from .shards import (
    CHANGING,
    MARKERS,
    PACKS,
    Engine,
    PacksIn,
    Redo,
    Shard,
    ShardJob,
    ShardState,
    Sink,
    marker_path,
    read_marker,
    run_shards,
    shard_state,
    split_of,
)

log = logging.getLogger(__name__)

DEFAULT_SPLITS = manifest.LABELLED_SPLITS  # test images have no class: prepared only when asked
RECIPE_FILE = "recipe.json"


@dataclass
class PrepareResult:
    source: str  # what was read, in words
    label_source: str
    trees: list[TreeSummary] = field(default_factory=list)
    shards_done_before: int = 0
    shards_run: int = 0
    seconds: float = 0.0
    images_processed: int = 0
    label_files: dict[Path, tuple[int, int]] = field(default_factory=dict)  # ReaL's: (val images, labelled)

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
    applied, default = recipe.applied_to(size), Recipe(recipe.sizes)
    parts = [size]
    parts += [applied.mode] if applied.mode != default.mode else []
    parts += [applied.format] if applied.format != default.format else []
    parts += [applied.filter] if applied.filter != default.filter else []
    parts += [f"q{applied.quality}"] if applied.quality != default.quality else []
    parts += ["noupscale"] if not applied.upscale else []
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
    dataset: str | None = None,
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

    ``dataset``: an evaluation set (:mod:`imagenet_cli.evalsets`) instead of ILSVRC-2012's splits,
    from ``ROOT/downloads/<set>/``, made with the same recipe into a split of the same trees
    (``TREE/imagenet-a/<wnid>/``; see :mod:`imagenet_cli.trees.evalset_plan`); for ImageNet-ReaL, the
    label file ``TREE/val_real.txt`` beside a prepared val (see :mod:`imagenet_cli.real`).
    """
    recipe = Recipe.of(recipe)
    recipe.require_extras()
    started = time.monotonic()
    trees = {size: (into or root) / tree_name(size, recipe) for size in recipe.sizes}
    if dataset is not None and dataset != evalsets.DEFAULT and source is not None:
        raise InvalidArgumentError(f"{dataset} is read from ROOT/downloads/{dataset}/, not from a folder", "source")
    chosen = _splits(splits, dataset)
    if dataset is not None and dataset != evalsets.DEFAULT and not evalsets.evalset(dataset).has_images:
        return _label_files(Root(root), trees, wait, started)
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
            return _prepare_locked(root, chosen, run, recipe, started)


def _label_files(root: Root, trees: dict[str, Path], wait: bool, started: float) -> PrepareResult:
    """ReaL's labels written beside each tree's val images: ``TREE/val_real.txt``."""
    real_json = root.evalset_downloads("imagenet-real") / real.REAL_JSON
    result = PrepareResult(f"ImageNet-ReaL ({real.REAL_JSON})", "ReaL")
    with locks.writing_all(trees.values(), wait):
        for tree in trees.values():
            if not manifest.has_manifest(tree):
                raise MissingInputError(f"no prepared tree at {tree}: prepare its val images first")
            result.label_files[tree / real.LABELS_FILE] = real.write_labels_file(tree, real_json)
    result.seconds = time.monotonic() - started
    return result


@dataclass
class Staged:
    """What ``stage`` made: under ``folder``, a pack file and a marker per shard (``.packs/``,
    ``.shards/``), and no tree."""

    folder: Path
    markers: dict[str, list[Path]]  # per split, the markers of the current shards, by name
    inputs: dict[str, list[InputFile]]  # per split, the files read
    result: PrepareResult  # what was read, the label source, the shards run and skipped

    @property
    def failures(self) -> list[Failure]:
        return [f for paths in self.markers.values() for path in paths for f in read_marker(path).failures]


def stage(
    root: Path,
    making: Making,
    folder: Path,
    *,
    splits: Sequence[str] | None = None,
    workers: int | None = None,
    source: Path | None = None,
    dask: str | None = None,
    executor: Executor | None = None,
    progress: Progress = SILENT,
    trust_input_labels: bool = False,
    sink: Sink = Sink.packs,
    archives_at: str | None = None,
    storage_options: dict[str, Any] | None = None,
    packs_in: PacksIn | None = None,
) -> Staged:
    """Make every image of the inputs (read as ``prepare`` reads them) as ``making`` says, each
    shard's images into one pack file under ``folder`` instead of a tree, or with ``Sink.origins``
    note where each image lies in the inputs, for the caller to make it; the caller holds
    ``folder``'s lock. Re-running keeps the shards done for the same inputs and redoes the others,
    as ``prepare`` does; markers of shards the inputs no longer have are removed. ``archives_at``:
    the URL of a bucket's folder holding the official archives or the Kaggle zip, read by range
    instead of ``ROOT/downloads`` (opened with ``storage_options``). ``packs_in``: on a Dask
    cluster, the packs go to that bucket's folder and the markers come back here (see
    :class:`~imagenet_cli.trees.shards.PacksIn`): the workers need no disk shared with this one."""
    chosen = _splits(splits)
    started = time.monotonic()
    (folder / MARKERS).mkdir(parents=True, exist_ok=True)
    _remove_temporaries(folder)
    atomic.remove_temporaries(folder / PACKS)
    if packs_in is not None:
        _forget_lost_packs(folder, packs_in, on_a_cluster=dask is not None)
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(cluster.connect(dask)) if dask else None
        (size,) = making.sizes
        run = _Run(
            making,
            {size: folder},
            workers or os.cpu_count() or 1,
            False,
            progress,
            client,
            executor,
            source,
            trust_input_labels,
            sink=sink,
            archives=RemoteFolder(archives_at, storage_options) if archives_at else None,
            packs_in=packs_in,
        )
        plan, result = _make_shards(root, chosen, run)
    current = {marker_path(folder, shard) for shard in plan.shards.seen}
    for stale in (folder / MARKERS).glob("*-*.json"):
        if stale not in current:
            log.info("%s is no longer in the inputs", stale.stem)
            stale.unlink()
            (folder / PACKS / f"{stale.stem}.pack").unlink(missing_ok=True)
    markers: dict[str, list[Path]] = {split: [] for split in chosen}
    for path in sorted(current):
        markers[split_of(path.stem)].append(path)
    result.seconds = time.monotonic() - started
    return Staged(folder, markers, {s: list(plan.inputs.get(s, [])) for s in chosen}, result)


def _forget_lost_packs(folder: Path, packs_in: PacksIn, on_a_cluster: bool) -> None:
    """Markers whose pack is not in the bucket whole (removed, or never uploaded) are removed, so
    their shards are made again: one listing of the packs, not a request per shard. On a cluster,
    so are markers of packs on this disk (a run here stopped before), which no worker could read."""
    there = {f"{packs_in.url}/{name}": info.size for name, info in packs_in.bucket().listing().items()}
    for path in (folder / MARKERS).glob("*-*.json"):
        try:
            result = read_marker(path)
        except (ValueError, KeyError, TypeError):
            continue  # damaged: redone anyway
        if not result.pack or not (is_url(result.pack) or on_a_cluster):
            continue
        length = there.get(result.pack)
        if length is None or any(result.offsets[e.path] + e.bytes > length for e in result.entries):
            path.unlink()


@dataclass
class _Run:
    """How this run works: what it makes, where its shards run, and how it reports."""

    recipe: Making
    trees: dict[str, Path]
    workers: int
    redo: bool
    progress: Progress
    client: Any | None  # a distributed.Client, with --dask
    executor: Executor | None
    from_tree: Path | None  # --from: an extracted tree read instead of the archives
    trust_input_labels: bool  # val labels from the inputs where they differ from the shipped table
    sink: Sink = Sink.files  # where the images go: a tree's files, or packs or origins (see stage)
    archives: RemoteFolder | None = None  # a bucket's folder of archives, read instead of ROOT/downloads
    packs_in: PacksIn | None = None  # on a cluster: packs to a bucket, markers back here (see stage)

    def engine(self, plan: Plan) -> Engine | None:
        if self.executor is not None:
            return Engine(self.executor, self.workers)
        if self.client is None:
            return None
        if not plan.shards.spreadable:
            log.warning("%s is read as one stream, start to end: it cannot be spread over a cluster", plan.described)
            return None
        inputs = [
            tree / i.path
            for tree in self.trees.values()
            for files in plan.inputs.values()
            for i in files
            if not is_url(i.path)  # an object of a bucket: each worker reads it from there
        ]
        inputs += [self.from_tree] if self.from_tree is not None else []
        bucket = self.archives
        objects = [bucket / i.name for files in plan.inputs.values() for i in files if bucket and is_url(i.path)]
        # Packs to a bucket: the workers write nothing here, but must write there.
        outputs = [tree / MARKERS for tree in self.trees.values()] if self.packs_in is None else []
        writes_to = [self.packs_in.bucket()] if self.packs_in is not None else []
        count = cluster.check_workers(
            self.client, __version__, inputs=inputs, outputs=outputs, objects=objects, buckets=writes_to
        )
        log.info("running the shards on %d Dask workers", count)
        return cluster.engine(self.client)


def _prepare_locked(root: Path, splits: tuple[str, ...], run: _Run, recipe: Recipe, started: float) -> PrepareResult:
    plan, result = _make_shards(root, splits, run)
    for size, tree in run.trees.items():
        result.trees.append(
            finish_tree(
                tree,
                size=size,
                shards=plan.shards.seen,
                splits=splits,
                recipe=recipe,
                plan=plan,
                label_source=result.label_source,
                ran=result.shards_run > 0,
            )
        )
    result.seconds = time.monotonic() - started
    return result


def _make_shards(root: Path, splits: tuple[str, ...], run: _Run) -> tuple[Plan, PrepareResult]:
    """List the inputs into shards and make those the trees lack: the work of a prepare before
    its trees are finished, and all of what a packed run (``stage``) does."""
    downloads = run.archives or Root(root).downloads
    # One pass over the Kaggle zip's ~2 M-record directory serves both the labels and the plan.
    zip_path = downloads / archives.KAGGLE_ZIP
    kaggle = archives.kaggle_bundle(zip_path) if run.from_tree is None and zip_path.is_file() else None
    chosen = val_labels_for(downloads, source=run.from_tree, kaggle=kaggle, trust=run.trust_input_labels, splits=splits)
    labels, label_source = chosen.wnids, chosen.source
    tree = next(iter(run.trees.values()))
    if splits[0] in evalsets.image_sets():  # an evaluation set: prepared on its own
        plan = plan_evalset(Root(root).evalset_downloads(splits[0]), splits[0], tree)
    else:
        plan = make_plan(downloads, source=run.from_tree, splits=splits, labels=labels, kaggle=kaggle, tree=tree)
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
            _logplan(len(plan.shards.seen), len(listed))
            work = iter(listed)
        # On a cluster, the packs go to the bucket even from shards run here (a stream that cannot
        # be spread): the workers that make the output from them share no disk with this process.
        packs_in = run.packs_in if run.client is not None else None
        run_shards(_jobs(work, run.recipe, run.trees, run.sink, packs_in), run.workers, on_done, engine)
    shards = plan.shards.seen
    result.shards_done_before = len(shards) - result.shards_run
    if not plan.shards.listed:
        reasons.announce()
        _logplan(len(shards), result.shards_run)
    return plan, result


def _logplan(shards: int, to_make: int) -> None:
    log.info("%d shards: %d to make, %d already done (skipped)", shards, to_make, shards - to_make)


def _jobs(
    work: Iterable[tuple[Shard, tuple[str, ...]]],
    recipe: Making,
    trees: dict[str, Path],
    sink: Sink,
    packs_in: PacksIn | None,
) -> Iterator[ShardJob]:
    """Each pending shard with the sizes it lacks: a shard finished in some trees only is made
    again for the others alone."""
    paths = {size: str(path) for size, path in trees.items()}
    marked: set[str] = set()
    for shard, sizes in work:
        for size in set(sizes) - marked:  # before its first shard: the tree's record will be behind
            atomic.write_text(trees[size] / MARKERS / CHANGING, "")
            marked.add(size)
        if sizes == recipe.sizes:
            yield ShardJob(shard, recipe, paths, sink, packs_in)
        else:
            assert isinstance(recipe, Recipe)  # a recipe of one size is made whole or not at all
            yield ShardJob(shard, dataclasses.replace(recipe, sizes=sizes), {s: paths[s] for s in sizes}, sink)


class _Reasons:
    """Decides which shards each tree needs, and tells in one line per cause why shards are redone."""

    def __init__(self, trees: dict[str, Path], redo: bool, inputs: dict[str, list[InputFile]]) -> None:
        self.trees, self.redo = trees, redo
        self.counts: collections.Counter[tuple[Path, str, Redo, str]] = collections.Counter()
        self.changed = {tree: _changed_inputs(tree, inputs) for tree in trees.values()}

    def sizes_needing(self, shard: Shard) -> tuple[str, ...]:
        needing = []
        for size, tree in self.trees.items():
            state = shard_state(tree, shard)
            if state is None and self.redo:
                state = ShardState(Redo.ASKED)
            if state is None:
                continue
            needing.append(size)
            changed = self.changed[tree].get(shard.split)
            if changed:  # new inputs: every shard of the split run is theirs, new classes too
                self.counts[(tree, shard.split, Redo.INPUT_CHANGED, changed)] += 1
            elif state.reason is Redo.INPUT_CHANGED:
                self.counts[(tree, shard.split, Redo.INPUT_CHANGED, " and ".join(state.changed))] += 1
            elif state.reason is not Redo.NEW:
                self.counts[(tree, shard.split, state.reason, "")] += 1
        return tuple(needing)

    def announce(self) -> None:
        for (tree, split, reason, changed), count in sorted(self.counts.items()):
            shards = f"{count} {split} shard{'s' if count != 1 else ''}"
            if reason is Redo.INPUT_CHANGED:
                log.warning("%s changed since %s was made: redoing %s", changed, tree, shards)
            else:
                log.warning("%s: redoing %s (%s)", tree, shards, reason)
        self.counts.clear()


def _changed_inputs(tree: Path, inputs: dict[str, list[InputFile]]) -> dict[str, str]:
    """Per split, the names of the inputs that differ from those ``tree.json`` recorded, in words."""
    info = manifest.read_tree_info(tree) if (tree / manifest.TREE_INFO).is_file() else None
    if info is None:
        return {}
    changed = {}
    for split, current in inputs.items():
        recorded = info.inputs.get(split, ())
        if recorded and (names := changed_names(recorded, current)):
            changed[split] = " and ".join(names)
    return changed


# --- options -----------------------------------------------------------------------------------


def _splits(splits: Sequence[str] | None, dataset: str | None = None) -> tuple[str, ...]:
    """The splits a run makes: ILSVRC-2012's asked for, or an evaluation set's images (a split of
    their own, ``TREE/<set>/``), never both in one run."""
    if dataset is not None and dataset != evalsets.DEFAULT:
        if splits:
            raise InvalidArgumentError(f"--splits are ILSVRC-2012's; {dataset} is prepared whole", "splits")
        evalsets.evalset(dataset)  # an unknown name is told with the known ones
        return (dataset,)
    chosen = tuple(dict.fromkeys(splits or DEFAULT_SPLITS))
    unknown = [s for s in chosen if s not in SPLITS]
    if unknown:
        raise InvalidArgumentError(f"{', '.join(unknown)}: the splits are train, val and test", "splits")
    return chosen


def _claim(tree: Path, size: str, recipe: Recipe) -> None:
    """Tie the tree folder to one recipe: different options never mix in one tree. Options that
    do not apply to the size (resizing ones, for ``full``) are claimed at their defaults."""
    applied = recipe.applied_to(size)
    wanted = json.loads(json.dumps({k: v for k, v in asdict(applied).items() if k != "sizes"}))  # plain JSON values

    def conflict(existing: dict[str, Any]) -> str:
        changed = ", ".join(f"{k} {existing.get(k)!r} → {v!r}" for k, v in wanted.items() if existing.get(k) != v)
        return f"{tree} was prepared with other options ({changed}); it will not be mixed"

    owned.own(tree, f"{MARKERS}/{RECIPE_FILE}", command="prepare", wanted=wanted, conflict=conflict, parameter="into")


def _remove_temporaries(tree: Path) -> None:
    """What killed runs left half-written beside the manifest and among the markers (the class
    folders are swept when the tree is finished). Safe: we hold the tree's lock."""
    for folder in (tree, tree / MARKERS):
        atomic.remove_temporaries(folder)
