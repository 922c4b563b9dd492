"""Shards: the unit of work, of parallelism and of restart for ``prepare``.

A shard is one class of one split (or the members a split could not use, as failures). A worker
process reads the shard's images from its reader (:mod:`imagenet_cli.trees.readers`),
writes every output file atomically, makes them durable, and only then writes the shard's
completion marker — ``TREE/.shards/<split>-<wnid>.json``, holding the shard's manifest entries,
failures, and the inputs it was made from. A re-run skips a shard only when its marker is there,
names the same inputs and listing, records no failures, and all its files are on disk; it redoes
every other shard, so a run killed at any moment and re-run leaves the same tree as an
uninterrupted one, and new inputs give the tree they make.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from .. import atomic, catalogue, evalsets
from ..errors import ShardCrashError
from ..hashing import hash_bytes, hash_file
from ..inputs import InputFile, changed_names
from ..layout import SPLITS
from ..manifest import APPEARS_TWICE, Entry, Failure, is_labelled
from ..storage import Bucket, bucket_for, is_url
from ..workers import kill_local_workers, local_pool
from .readers import Listable, Reader
from .resize import ImageError, Making

log = logging.getLogger(__name__)

MARKERS = ".shards"
PACKS = ".packs"  # packed shards (see run_shard)
MARKER_SCHEMA = 1
# In MARKERS, from a run's first shard until its tree's record is written again: the markers may
# hold what tree.json and the manifest do not yet (a run stopped before it finished the tree).
CHANGING = "changing"


@dataclass(frozen=True)
class Shard:
    split: str
    wnid: str | None  # None: images of several classes (a stretch of a streamed val split), or refused members
    images: int | None  # as listed; None where only reading the shard tells (a class tar's members)
    reader: Reader
    part: int | None = None  # numbers the stretches of a streamed split, or a class's later runs
    inputs: tuple[InputFile, ...] = ()  # the files it reads (none for loose files: see listing)
    listing: str = ""  # fingerprint of what it reads from them: members, offsets, labels
    folder: str = ""  # between the split and the class: ImageNet-C's <corruption>/<severity>

    @property
    def key(self) -> str:
        """Its marker's name. Keys sort as the shards' folders do (no corruption's name begins
        another's), so that one-class markers read in name order give the manifest's path order."""
        split = f"{self.split}-{self.folder.replace('/', '+')}" if self.folder else self.split
        if self.part is None:
            return f"{split}-{self.wnid or 'refused'}"
        return f"{split}-{self.wnid or 'part'}-{self.part:06d}"

    @property
    def directory(self) -> str:
        """Where its images go: ``split``, ``split/wnid``, or ``split/<folder>/wnid``."""
        return "/".join(p for p in (self.split, self.folder, self.wnid) if p)


_PART = re.compile(r"-\d{6}$")


def split_of(key: str) -> str:
    """The split a marker's name (a shard's key) belongs to: the longest split name it begins
    with, since evaluation sets' names hold dashes (``imagenet-v2-top-images-n01440764``)."""
    return next((split for split in _longest_first() if key.startswith(f"{split}-")), key.split("-", 1)[0])


@functools.cache
def _longest_first() -> tuple[str, ...]:
    return tuple(sorted((*SPLITS, *evalsets.image_sets()), key=len, reverse=True))


def is_whole_class(key: str) -> bool:
    """A marker of one class folder (or of refused members), not a stretch or a later run."""
    return _PART.search(key) is None


@dataclass
class ShardResult:
    """What one shard made in one tree; saved as its completion marker, written last."""

    split: str
    wnid: str | None
    entries: list[Entry] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    repaired: dict[str, str] = field(default_factory=dict)  # file name -> what was wrong
    inputs: list[InputFile] = field(default_factory=list)  # each input it read
    listing: str = ""
    schema: int = MARKER_SCHEMA
    pack: str | None = None  # packed: the file under PACKS holding every entry's bytes, in a row
    offsets: dict[str, int] = field(default_factory=dict)  # packed: entry path -> where its bytes start
    origins: dict[str, list[Any]] = field(default_factory=dict)  # listed: entry path -> its Origin, as a list

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ShardResult:
        data = json.loads(text)
        return cls(
            data["split"],
            data["wnid"],
            [Entry(**e) for e in data["entries"]],
            [Failure(**f) for f in data["failures"]],
            data["repaired"],
            [InputFile.from_dict(i) for i in data.get("inputs", [])],
            data.get("listing", ""),
            data.get("schema", 1),
            data.get("pack"),
            data.get("offsets", {}),
            data.get("origins", {}),
        )


def marker_path(tree: Path, shard: Shard) -> Path:
    return tree / MARKERS / f"{shard.key}.json"


class Redo(StrEnum):
    """Why a shard is not done; its value is the reason in words."""

    NEW = "new"
    INPUT_CHANGED = "an input changed"
    LISTING = "the images it holds changed"
    FAILED = "it had failed images"
    MISSING = "files of it were missing"
    DAMAGED = "its completion marker was unreadable"
    ASKED = "asked to redo"


class ShardState(NamedTuple):
    reason: Redo
    changed: tuple[str, ...] = ()  # with INPUT_CHANGED: the names of the inputs that differ


def shard_state(tree: Path, shard: Shard) -> ShardState | None:
    """None when ``shard`` is done in ``tree`` for the current inputs; else why it must be (re)done.

    Read as plain JSON, without an object per entry: a re-run asks this of every shard (1,300
    entries each, 1.28 M in all), and needs no more of an entry than its path."""
    try:
        data = json.loads(marker_path(tree, shard).read_text())
        recorded = [InputFile.from_dict(i) for i in data.get("inputs", [])]
        paths = [entry["path"] for entry in data["entries"]]
        listing, failures, pack = data.get("listing", ""), data["failures"], data.get("pack")
    except FileNotFoundError:
        return ShardState(Redo.NEW)
    except (ValueError, KeyError, TypeError):  # not written by this version, or damaged by hand
        return ShardState(Redo.DAMAGED)
    if changed := changed_names(recorded, shard.inputs):
        return ShardState(Redo.INPUT_CHANGED, tuple(changed))
    if listing != shard.listing:
        return ShardState(Redo.LISTING)
    if failures:
        return ShardState(Redo.FAILED)
    if data.get("origins") and not pack:
        return None  # only listed: nothing of it is on disk to miss
    whole = _pack_whole(tree, read_marker(marker_path(tree, shard))) if pack else _all_on_disk(tree, paths)
    return None if whole else ShardState(Redo.MISSING)


def _pack_whole(tree: Path, result: ShardResult) -> bool:
    """The shard's pack is there, and long enough for every entry it holds. A pack in a bucket is
    checked by the run that reads it, from one listing (see ``trees.stage``)."""
    if result.pack and is_url(result.pack):
        return True
    try:
        length = (tree / PACKS / result.pack).stat().st_size if result.pack else 0
    except FileNotFoundError:
        return False
    return all(result.offsets[e.path] + e.bytes <= length for e in result.entries)


def _all_on_disk(tree: Path, paths: list[str]) -> bool:
    """One directory listing per class folder, not a stat per file."""
    listed: dict[str, set[str]] = {}
    for path in paths:
        directory, name = path.rsplit("/", 1)
        if directory not in listed:
            try:
                listed[directory] = set(os.listdir(tree / directory))
            except FileNotFoundError:
                return False
        if name not in listed[directory]:
            return False
    return True


def read_marker(path: Path) -> ShardResult:
    return ShardResult.from_json(path.read_text())


class Sink(StrEnum):
    """Where a shard's images go: files of a tree, one pack per shard, or nowhere yet (``origins``:
    only where each image lies in the inputs is noted, for the export that makes it later)."""

    files = "files"
    packs = "packs"
    origins = "origins"


def run_shard(shard: Shard, recipe: Making, trees: dict[str, str], sink: Sink = Sink.files) -> int:
    """Make every size of one shard; runs in a worker process. Returns the images handled.

    An item that cannot be used is a failure of the shard, never an error of the run: unreadable
    or refused bytes, an image that does not decode, a name no filesystem takes, or a name that
    appears twice (then neither copy is used: which one is right cannot be known).

    ``Sink.packs``: instead of a file per image, each tree gets one file for the shard, its images'
    bytes in a row (``TREE/.packs/<shard>.pack``), and the marker says where each one starts;
    that is what an export made straight from the archives reads (no tree of 1.28 M files).
    ``Sink.origins``: nothing is made, the marker says where each image's bytes lie in the inputs;
    a reader that cannot say (a stream read whole, as the 2019 Kaggle tar.gz) makes a pack instead.
    """
    inputs = list(shard.inputs)
    results = {
        size: ShardResult(shard.split, shard.wnid, inputs=inputs, listing=shard.listing) for size in recipe.sizes
    }
    listing = sink is Sink.origins and isinstance(shard.reader, Listable)
    with contextlib.ExitStack() as stack:
        packs = _open_packs(stack, shard, trees, results) if sink is not Sink.files and not listing else {}
        handled, written = _make_items(shard, recipe, trees, results, packs, listing)
    written += [Path(trees[size]) / PACKS / r.pack for size, r in results.items() if r.pack]
    # The images are on disk before any marker says so (a name taken back by _drop is gone).
    atomic.make_durable(path for path in written if path.exists())
    for size, result in results.items():
        result.entries.sort(key=lambda e: e.path)
        marker = marker_path(Path(trees[size]), shard)
        atomic.write_text(marker, result.to_json())
    return handled


def _open_packs(
    stack: contextlib.ExitStack, shard: Shard, trees: dict[str, str], results: dict[str, ShardResult]
) -> dict[str, BinaryIO]:
    packs = {}
    for size, result in results.items():
        result.pack = f"{shard.key}.pack"
        packs[size] = stack.enter_context(atomic.atomic_writer(Path(trees[size]) / PACKS / result.pack))
    return packs


def _make_items(
    shard: Shard,
    recipe: Making,
    trees: dict[str, str],
    results: dict[str, ShardResult],
    packs: dict[str, BinaryIO],
    listing: bool,
) -> tuple[int, list[Path]]:
    """Each item of the shard made into every size: its files written (or appended to the packs;
    or, ``listing``, its origin noted) and its entries and failures noted in ``results``. Returns
    the items handled and the files written."""
    seen: set[str] = set()
    written: list[Path] = []
    handled = 0
    # Temporaries of a killed attempt are not swept here: on a cluster, another host may still be
    # writing this shard. The tree's finish sweeps them, when no shard runs any more.
    items = shard.reader.origins() if listing and isinstance(shard.reader, Listable) else shard.reader.items()
    # Test images have no class: their split is one flat folder, each filed under no label.
    unlabelled = not is_labelled(shard.split)
    for name, item_wnid, data, problem, origin in items:
        handled += 1
        wnid = item_wnid or shard.wnid
        filed = wnid is not None or unlabelled
        relative = "/".join(p for p in (shard.split, shard.folder, wnid, recipe.output_name(name)) if p)
        # A failure is named by its folder: C's images come 95 times under one class.
        failed_in = "/".join(p for p in (shard.folder, wnid) if p) or None
        problem = problem or unusable_name(name) or _in_another_class(shard.split, wnid, name)
        if problem is None and relative in seen:
            problem = APPEARS_TWICE
            _drop(results, trees, relative, name)
        seen.add(relative)
        if listing and problem is None and origin is not None and filed:
            for result in results.values():
                result.origins[relative] = list(origin)
                result.entries.append(Entry(relative, origin.size, "", wnid or ""))
            continue
        processed = None
        if problem is None and data is not None and filed:  # a refused item has a problem instead
            try:
                processed = recipe.make(data)
            except ImageError as error:
                problem = str(error)
        if processed is None or not filed:
            for result in results.values():
                result.failures.append(Failure(shard.split, failed_in, name, problem or "no bytes"))
            continue
        for size, encoded in processed.outputs.items():
            if packs:
                results[size].offsets[relative] = packs[size].tell()
                packs[size].write(encoded)
            else:
                written.append(Path(trees[size]) / relative)
                atomic.write_bytes(written[-1], encoded, durable=False)
            results[size].entries.append(Entry(relative, len(encoded), hash_bytes(encoded), wnid or ""))
            if processed.repaired:
                results[size].repaired[name] = processed.repaired
    return handled, written


MAX_NAME_BYTES = 255  # what ext4, XFS, NTFS and most others take
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def unusable_name(name: str) -> str | None:
    """Why an image's file name cannot be written into a tree, or None."""
    if len(name.encode()) > MAX_NAME_BYTES:
        return f"a file name of {len(name.encode())} bytes: filesystems take at most {MAX_NAME_BYTES}"
    if name.startswith(".") or "/" in name or "\\" in name:
        return "a hidden or path-like file name"
    if _CONTROL.search(name):  # a manifest, a marker or a sort's spool holds one path a line, its fields tab-separated
        return "a file name with a control character (a tab, a line break…)"
    return None


def _in_another_class(split: str, wnid: str | None, name: str) -> str | None:
    """A train image whose name carries another class's WNID (``n02655020_13401.JPEG`` in the
    n04146614 tar): which of the two is right cannot be known here, so it is not used."""
    named = name.split("_", 1)[0]
    if split != "train" or wnid is None or named == wnid or not catalogue.is_wnid(named):
        return None
    return f"its name says {named} ({catalogue.by_wnid(named).name}), but it is in {wnid}'s images: not used"


def _drop(results: dict[str, ShardResult], trees: dict[str, str], relative: str, name: str) -> None:
    """Take back an image written earlier in this shard (its name came again)."""
    for size, result in results.items():
        result.entries = [e for e in result.entries if e.path != relative]
        result.repaired.pop(name, None)
        result.origins.pop(relative, None)
        if result.pack:  # its bytes stay in the pack, unreferenced
            result.offsets.pop(relative, None)
        else:
            (Path(trees[size]) / relative).unlink(missing_ok=True)


@dataclass(frozen=True)
class Engine:
    """Where shards run: any ``concurrent.futures.Executor`` (a process pool, Dask's), how many
    shards it runs at once, which errors mean a shard killed the worker that ran it, and how to
    stop everything at once on Ctrl-C."""

    executor: Executor
    slots: int
    crashes: tuple[type[BaseException], ...] = ()
    stop: Callable[[], None] = lambda: None


@dataclass(frozen=True)
class PacksIn:
    """A bucket's folder that packs go to, for a cluster whose workers share no disk with the
    client: each worker makes its shard's pack in a scratch folder of its own, uploads it under a
    name holding its digest (an attempt Dask runs twice never overwrites another's), and sends the
    marker back for the client to write."""

    url: str
    options: tuple[tuple[str, Any], ...] = field(default=(), repr=False)  # may hold a secret

    def bucket(self) -> Bucket:
        return bucket_for(self.url, self.options)


class ShardJob(NamedTuple):
    """One shard to make, with the recipe and the trees (size -> path) to make it into."""

    shard: Shard
    recipe: Making
    trees: dict[str, str]
    sink: Sink = Sink.files
    packs_in: PacksIn | None = None  # packs to a bucket, markers back to the client (see PacksIn)


class ShardOutcome(NamedTuple):
    handled: int  # images
    markers: dict[str, str]  # size -> marker, for the client to write; empty when written already


def run_job(job: ShardJob) -> ShardOutcome:
    if job.packs_in is not None:
        return _run_shard_beside(job, job.packs_in)
    return ShardOutcome(run_shard(job.shard, job.recipe, job.trees, job.sink), {})


def _run_shard_beside(job: ShardJob, packs_in: PacksIn) -> ShardOutcome:
    """The shard made in a scratch folder of this worker, its packs uploaded (see PacksIn)."""
    markers = {}
    with tempfile.TemporaryDirectory(prefix="imagenet-shard-") as scratch:
        trees = {size: os.path.join(scratch, size) for size in job.trees}
        handled = run_shard(job.shard, job.recipe, trees, job.sink)
        for size, tree in trees.items():
            result = read_marker(marker_path(Path(tree), job.shard))
            if result.pack:
                made = Path(tree) / PACKS / result.pack
                name = f"{job.shard.key}.{hash_file(made, ['xxh3_64'])['xxh3_64']}.pack"
                packs_in.bucket().upload(made, name)
                result.pack = f"{packs_in.url}/{name}"
            markers[size] = result.to_json()
    return ShardOutcome(handled, markers)


def run_shards(
    jobs: Iterable[ShardJob], workers: int, on_done: Callable[[Shard, int], None], engine: Engine | None = None
) -> None:
    """Run jobs on ``engine``, or on a pool of ``workers`` local processes (in this process when
    1), calling ``on_done`` for each. At most two jobs per slot are queued: the plan streams.

    Shards that crash their workers (``engine.crashes``) do not stop the others: they are named
    together at the end in a :class:`ShardCrashError`.
    """
    if engine is not None:
        _drive(engine, iter(jobs), on_done)
    elif workers == 1:
        for job in jobs:
            outcome = run_job(job)
            _write_markers(job, outcome)
            on_done(job.shard, outcome.handled)
    else:
        with local_pool(workers) as pool:
            _drive(Engine(pool, workers, stop=kill_local_workers), iter(jobs), on_done)


def _drive(engine: Engine, queue: Iterator[ShardJob], on_done: Callable[[Shard, int], None]) -> None:
    running: dict[Future[ShardOutcome], ShardJob] = {}
    crashed: list[str] = []

    def submit(count: int) -> None:
        for job in itertools.islice(queue, count):
            running[engine.executor.submit(run_job, job)] = job

    try:
        submit(2 * engine.slots)
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                job = running.pop(future)
                try:
                    outcome = future.result()
                except engine.crashes as error:
                    log.warning("shard %s kept killing the workers that ran it (%s)", job.shard.key, error)
                    crashed.append(job.shard.key)
                else:
                    _write_markers(job, outcome)
                    on_done(job.shard, outcome.handled)
                submit(1)
    except BaseException as error:
        for future in running:
            future.cancel()
        if isinstance(error, KeyboardInterrupt):  # Ctrl-C, or SIGTERM/SIGHUP (errors.Stopped)
            # Stop now rather than after the shards in flight: their files are written
            # atomically and their markers last, so a re-run simply redoes them.
            engine.stop()
        raise
    if crashed:
        raise ShardCrashError(
            f"{len(crashed)} shard{'s' if len(crashed) != 1 else ''} kept killing the workers that ran "
            f"{'them' if len(crashed) != 1 else 'it'}: {', '.join(crashed[:10])}; every other shard is done"
        )


def _write_markers(job: ShardJob, outcome: ShardOutcome) -> None:
    """The markers a worker sent back: written here, last, as a worker writes its own."""
    for size, text in outcome.markers.items():
        atomic.write_text(marker_path(Path(job.trees[size]), job.shard), text)
