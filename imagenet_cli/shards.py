"""Shards: the unit of work, of parallelism and of restart for ``prepare``.

A shard is one class of one split. A worker process reads the shard's images from its source,
writes every output file atomically, makes them durable, and only then writes the shard's
completion marker — ``TREE/.shards/<split>-<wnid>.json``, holding the shard's manifest entries,
failures, and the inputs it was made from. A re-run skips a shard only when its marker is there,
names the same inputs and listing, records no failures, and all its files are on disk; it redoes
every other shard, so a run killed at any moment and re-run leaves the same tree as an
uninterrupted one, and new inputs give the tree they make.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import atomic
from .hashing import hash_bytes
from .images import ImageError, Recipe, process
from .inputs import InputFile
from .manifest import Entry
from .shard_sources import Source

MARKERS = ".shards"


@dataclass(frozen=True)
class Shard:
    split: str
    wnid: str | None  # None: images of several classes (a stretch of a streamed val split), or refused members
    images: int  # as listed; what the progress bar counts
    source: Source
    part: int | None = None  # numbers the stretches of a streamed split, or a class's later runs
    inputs: tuple[InputFile, ...] = ()  # the files it reads (none for loose files: see listing)
    listing: str = ""  # fingerprint of what it reads from them: members, offsets, labels

    @property
    def key(self) -> str:
        if self.part is None:
            return f"{self.split}-{self.wnid or 'refused'}"
        return f"{self.split}-{self.wnid or 'part'}-{self.part:06d}"


@dataclass
class ShardResult:
    split: str
    wnid: str | None
    entries: list[Entry] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)  # {"split", "wnid", "name", "error"}
    repaired: dict[str, str] = field(default_factory=dict)  # file name -> what was wrong
    inputs: list[dict] = field(default_factory=list)  # InputFile.as_dict() of each input read
    listing: str = ""


def marker_path(tree: Path, shard: Shard) -> Path:
    return tree / MARKERS / f"{shard.key}.json"


# Why a shard is not done (None: it is).
NEW = "new"
FAILED = "it had failed images"
MISSING = "files of it were missing"
LISTING = "the images it holds changed"


def shard_state(tree: Path, shard: Shard) -> str | None:
    """None when ``shard`` is done in ``tree`` for the current inputs; else why it must be (re)done:
    one of the constants above, or ``"<input name> changed"``."""
    try:
        result = read_marker(marker_path(tree, shard))
    except FileNotFoundError:
        return NEW
    recorded = {i["name"]: InputFile.from_dict(i) for i in result.inputs}
    for current in shard.inputs:
        before = recorded.get(current.name)
        if before is None or not before.same_content(current):
            return f"{current.name} changed"
    if result.listing != shard.listing:
        return LISTING
    if result.failures:
        return FAILED
    if not _all_on_disk(tree, result.entries):
        return MISSING
    return None


def _all_on_disk(tree: Path, entries: list[Entry]) -> bool:
    """One directory listing per class folder, not a stat per file."""
    listed: dict[str, set[str]] = {}
    for entry in entries:
        directory = entry.directory
        if directory not in listed:
            try:
                listed[directory] = set(os.listdir(tree / directory))
            except FileNotFoundError:
                return False
        if entry.name not in listed[directory]:
            return False
    return True


def read_marker(path: Path) -> ShardResult:
    data = json.loads(path.read_text())
    return ShardResult(
        data["split"],
        data["wnid"],
        [Entry(**e) for e in data["entries"]],
        data["failures"],
        data["repaired"],
        data.get("inputs", []),
        data.get("listing", ""),
    )


def run_shard(shard: Shard, recipe: Recipe, trees: dict[str, str]) -> int:
    """Make every size of one shard; runs in a worker process. Returns the images handled.

    An item that cannot be used is a failure of the shard, never an error of the run: unreadable
    or refused bytes, an image that does not decode, a name no filesystem takes, or a name that
    appears twice (then neither copy is used: which one is right cannot be known).
    """
    inputs = [i.as_dict() for i in shard.inputs]
    results = {size: ShardResult(shard.split, shard.wnid, inputs=inputs, listing=shard.listing) for size in recipe.sizes}
    cleaned: set[str] = set()
    seen: set[str] = set()
    handled = 0
    for name, item_wnid, data, problem in shard.source.items():
        handled += 1
        wnid = item_wnid or shard.wnid
        if wnid is not None and wnid not in cleaned:
            for tree in trees.values():
                _remove_leftovers(Path(tree) / shard.split / wnid)
            cleaned.add(wnid)
        relative = f"{shard.split}/{wnid}/{recipe.output_name(name)}"
        problem = problem or unusable_name(name)
        if problem is None and relative in seen:
            problem = "appears twice in the input: neither copy is used"
            _drop(results, trees, relative, name)
        seen.add(relative)
        if problem is None:
            try:
                processed = process(data, recipe)
            except ImageError as error:
                problem = str(error)
        if problem is not None:
            for result in results.values():
                result.failures.append({"split": shard.split, "wnid": wnid, "name": name, "error": problem})
            continue
        for size, encoded in processed.outputs.items():
            atomic.write_bytes(Path(trees[size]) / relative, encoded, durable=False)
            results[size].entries.append(Entry(relative, len(encoded), hash_bytes(encoded), wnid))
            if processed.repaired:
                results[size].repaired[name] = processed.repaired
    os.sync()  # the images are on disk before any marker says so
    for size, result in results.items():
        result.entries.sort(key=lambda e: e.path)
        marker = marker_path(Path(trees[size]), shard)
        atomic.write_text(marker, json.dumps(asdict(result)))
    return handled


MAX_NAME_BYTES = 255  # what ext4, XFS, NTFS and most others take


def unusable_name(name: str) -> str | None:
    """Why an image's file name cannot be written into a tree, or None."""
    if len(name.encode()) > MAX_NAME_BYTES:
        return f"a file name of {len(name.encode())} bytes: filesystems take at most {MAX_NAME_BYTES}"
    if name.startswith(".") or "/" in name or "\\" in name:
        return "a hidden or path-like file name"
    return None


def _drop(results: dict[str, ShardResult], trees: dict[str, str], relative: str, name: str) -> None:
    """Take back an image written earlier in this shard (its name came again)."""
    for size, result in results.items():
        result.entries = [e for e in result.entries if e.path != relative]
        result.repaired.pop(name, None)
        (Path(trees[size]) / relative).unlink(missing_ok=True)


def _remove_leftovers(directory: Path) -> None:
    """Temporary files of a run that was killed mid-write: never part of the tree."""
    if directory.is_dir():
        for leftover in directory.glob(".*.tmp"):
            leftover.unlink(missing_ok=True)


def run_shards(
    shards: Iterable[Shard],
    recipe: Recipe,
    trees: dict[str, Path],
    workers: int,
    on_done: Callable[[Shard, int], None],
) -> None:
    """Run shards over ``workers`` processes, at most two per worker queued, calling ``on_done`` for each."""
    paths = {size: str(path) for size, path in trees.items()}
    if workers == 1:
        for shard in shards:
            on_done(shard, run_shard(shard, recipe, paths))
        return
    queue: Iterator[Shard] = iter(shards)
    with ProcessPoolExecutor(max_workers=workers, initializer=_leave_ctrl_c_to_the_parent) as pool:
        running: dict[Future, Shard] = {}
        try:
            for shard in _take(queue, 2 * workers):
                running[pool.submit(run_shard, shard, recipe, paths)] = shard
            while running:
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    shard = running.pop(future)
                    on_done(shard, future.result())
                    for following in _take(queue, 1):
                        running[pool.submit(run_shard, following, recipe, paths)] = following
        except BaseException as error:
            for future in running:
                future.cancel()
            if isinstance(error, KeyboardInterrupt):  # Ctrl-C, or SIGTERM/SIGHUP (errors.Stopped)
                # Stop now rather than after the shards in flight: their files are written
                # atomically and their markers last, so a re-run simply redoes them. SIGKILL,
                # because workers ignore the stop signals (the parent alone decides).
                for worker in multiprocessing.active_children():
                    worker.kill()
            raise


def _leave_ctrl_c_to_the_parent() -> None:
    """Workers ignore the stop signals: a Ctrl-C or a scheduler's SIGTERM reaches the whole process
    group, and the parent alone decides. Should the parent die without stopping them (SIGKILL),
    they notice within half a second and exit: no worker outlives its run."""
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_IGN)
    parent = os.getppid()

    def exit_with_the_parent() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=exit_with_the_parent, name="parent-watcher", daemon=True).start()


def _take(iterator: Iterator[Shard], count: int) -> list[Shard]:
    taken = []
    for shard in iterator:
        taken.append(shard)
        if len(taken) == count:
            break
    return taken
