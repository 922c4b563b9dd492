"""A split's samples in the order an export writes them, from a tree's manifest or from what an
export straight from the archives staged: train in a seeded shuffle, val in path order or by file
name. Every reordering is made on disk, a few thousand rows in memory at a time, in a spool that
lives in the export's own folder while it runs.
"""

from __future__ import annotations

import collections
import contextlib
import heapq
import itertools
import json
import tempfile
import weakref
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from .. import atomic, catalogue, manifest
from ..manifest import Failure
from ..selection import rank
from ..storage import is_url
from ..trees import Staged
from ..trees.readers import Origin
from ..trees.shards import PACKS, read_marker


@dataclass(frozen=True)
class Sample:
    path: str  # relative to the tree: split/wnid/name
    bytes: int
    wnid: str
    label: int  # the exported label: sorted-WNID index, or the subset's own
    label_1k: int  # the index among the 1000 classes
    origin: Origin | None = None  # made straight from the archives: where its bytes are (see readers.Origin)

    @property
    def key(self) -> str:
        return key_of(self.path)

    @property
    def filename(self) -> str:
        """``wnid/name``: the path without its split."""
        return self.path.split("/", 1)[1]


def key_of(path: str) -> str:
    """A sample's key: its file name without the extension (``ILSVRC2012_val_00000001``)."""
    return path.rsplit("/", 1)[1].split(".", 1)[0]


def labels_of(tree: Path) -> dict[str, tuple[int, int]]:
    """{WNID: (exported label, index among the 1000)}: a subset's own index from its classes.txt,
    else the sorted-WNID index."""
    table = tree / "classes.txt"
    if (tree / "subset.json").is_file() and table.is_file():
        labels = {}
        for line in table.read_text().splitlines():
            own, wnid, _name, full = line.split("\t")
            labels[wnid] = (int(own), int(full))
        return labels
    return {c.wnid: (c.index, c.index) for c in catalogue.classes()}


class Row(NamedTuple):
    path: str
    bytes: int
    wnid: str
    origin: str  # JSON of a readers.Origin, or "" for a file of the tree


class SplitSamples:
    """A split's samples in export order, from the manifest: train in a seeded shuffle (so that any
    shard holds a mix of classes), val in manifest order. Iterated as a stream, any number of times.

    Every reordering is made on disk, so that memory holds a few thousand rows, never the split.
    The shuffle is a sort by a keyed hash of each path, in buckets by the hash's top bits: each
    bucket sorted, in order, is the whole sort whatever their number (about 5,000 rows each: one
    file for a small export, 256 for the full train set). Other orders (val by file name) are
    sorted runs of RUN_ROWS, merged.
    """

    BUCKET_SAMPLES, MAX_BUCKET_BITS = 5000, 8
    BUCKET_BUFFER = 2048  # bytes, for each bucket's file
    RUN_ROWS = 5000

    def __init__(
        self, tree: Path, split: str, seed: int, count: int | None = None, spool_in: Path | None = None
    ) -> None:
        """``count``: the samples, where the caller knows it (else they are counted). ``spool_in``:
        the folder sorts keep their rows in while they run, the export's own (a killed run's are
        swept from there); without it, the system's temporary folder."""
        self.tree, self.split, self.seed, self.spool_in = tree, split, seed, spool_in
        self._streams: weakref.WeakSet[Generator[Sample, None, None]] = weakref.WeakSet()
        self.labels = labels_of(tree)
        self.count = sum(1 for _ in self._rows()) if count is None else count

    def __len__(self) -> int:
        return self.count

    def _rows(self) -> Iterator[Row]:
        """The split's samples in path order."""
        for entry in _entries(self.tree, self.split):
            yield Row(entry.path, entry.bytes, entry.wnid, "")

    def __iter__(self) -> Iterator[Sample]:
        return self._open(self._shuffled(self._rows()) if self.split == "train" else self._rows())

    def by_name(self) -> Iterator[Sample]:
        """In file-name order (val's ILSVRC2012_val_00000001 first)."""
        return self._open(self._sorted_on_disk(self._rows(), key=lambda row: key_of(row.path)))

    def close(self) -> None:
        """End the streams still running, as when an error stopped the export: their spools' files
        are closed and removed now, not whenever the streams are collected."""
        for stream in list(self._streams):
            stream.close()

    def _open(self, rows: Iterator[Row]) -> Iterator[Sample]:
        stream = (self._sample(row) for row in rows)
        self._streams.add(stream)
        return stream

    def _shuffled(self, rows: Iterable[Row]) -> Iterator[Row]:
        """By the seeded hash of each path (a tie, two paths of one 64-bit hash, in the order given):
        the same on every machine."""
        bits = 0  # buckets: the fewest, as a power of two, that hold BUCKET_SAMPLES each
        while bits < self.MAX_BUCKET_BITS and self.count > self.BUCKET_SAMPLES << bits:
            bits += 1
        with self._spool("shuffle") as spool, contextlib.ExitStack() as stack:
            # Bytes through a small buffer each: as text files, the 256 buckets' buffers (8 KiB for
            # the file, as much again for the text) added 2.3 MiB to the full count's peak memory.
            buckets = [
                stack.enter_context(open(spool / f"{i:03d}", "w+b", buffering=self.BUCKET_BUFFER))
                for i in range(1 << bits)
            ]
            for number, row in enumerate(rows):
                key = rank(self.seed, row.path)
                buckets[key >> (64 - bits)].write(_spooled(f"{key:020d}", number, row).encode())
            for bucket in buckets:
                bucket.seek(0)
                lines = (line.decode() for line in bucket)
                for _key, _number, row in sorted(map(_unspooled, lines)):
                    yield row

    def _sorted_on_disk(self, rows: Iterable[Row], key: Callable[[Row], str]) -> Iterator[Row]:
        with self._spool("sort") as spool:
            yield from sorted_on_disk(rows, key, spool, self.RUN_ROWS)

    @contextlib.contextmanager
    def _spool(self, name: str) -> Iterator[Path]:
        if self.spool_in is None:
            with tempfile.TemporaryDirectory(prefix=f"imagenet-{name}-") as spool:
                yield Path(spool)
        else:
            with atomic.scratch_folder(self.spool_in / name) as spool:
                yield spool

    def _sample(self, row: Row) -> Sample:
        origin = Origin(*json.loads(row.origin)) if row.origin else None
        return Sample(row.path, row.bytes, row.wnid, *self.labels[row.wnid], origin)


class StagedSamples(SplitSamples):
    """A split's samples as an export straight from the archives staged them (``trees.stage``):
    the same order as from a tree of the same images, each read out of its shard's pack. An image
    that two shards hold (a class tar that comes twice, a val name in two stretches) is not used,
    as ``prepare`` leaves it out of a tree: it is among the ``failures``."""

    def __init__(self, staged: Staged, split: str, seed: int, spool_in: Path | None = None) -> None:
        self.markers, self.packs = staged.markers.get(split, []), staged.folder / PACKS
        super().__init__(staged.folder, split, seed, 0, spool_in)
        self.twice, self.count = _held_twice(self._paths_in_order())  # counted in the same pass

    def _paths_in_order(self) -> Iterator[str]:
        """Every path the shards hold, sorted: a class's in memory (its shards are named alike and
        come together), val's on disk (its stretches hold no class)."""
        results = (read_marker(path) for path in self.markers)
        if self.split == "train":
            for _wnid, shards in itertools.groupby(results, lambda result: result.wnid):
                yield from sorted(entry.path for result in shards for entry in result.entries)
        else:
            listed = (Row(entry.path, 0, "", "") for result in results for entry in result.entries)
            yield from (row.path for row in self._sorted_on_disk(listed, key=lambda row: row.path))

    @property
    def failures(self) -> list[Failure]:
        where = (path.split("/", 2) for path in sorted(self.twice))
        return [Failure(split, wnid, name, manifest.APPEARS_TWICE) for split, wnid, name in where]

    def _rows(self) -> Iterator[Row]:
        if self.split == "train":  # shuffled after: any order will do, one marker in memory at a time
            yield from self._rows_of_markers()
        else:  # in path order across the stretches of val, which hold no class
            yield from self._sorted_on_disk(self._rows_of_markers(), key=lambda row: row.path)

    def _rows_of_markers(self) -> Iterator[Row]:
        for path in self.markers:
            result = read_marker(path)
            for entry in result.entries:
                if entry.path in self.twice:
                    continue
                if entry.path in result.origins:  # listed: made when its shard is written
                    origin = result.origins[entry.path]
                else:  # made already, in the shard's pack (here, or in a bucket: its URL)
                    pack = str(result.pack) if is_url(str(result.pack)) else str(self.packs / str(result.pack))
                    origin = list(Origin("pack", pack, result.offsets[entry.path], entry.bytes))
                yield Row(entry.path, entry.bytes, entry.wnid, json.dumps(origin))


def sorted_on_disk(rows: Iterable[Row], key: Callable[[Row], str], spool: Path, run_rows: int) -> Iterator[Row]:
    """``rows`` in the order of ``key``, ties in the order given, with ``run_rows`` of them in
    memory: sorted runs of that many are written to files in ``spool``, then merged."""
    with contextlib.ExitStack() as stack:
        runs: list[Iterator[tuple[str, int, Row]]] = []
        numbered = enumerate(rows)
        while batch := sorted((key(row), number, row) for number, row in itertools.islice(numbered, run_rows)):
            run = stack.enter_context(open(spool / f"{len(runs):05d}", "w+", encoding="utf-8"))
            run.writelines(_spooled(*item) for item in batch)
            run.seek(0)
            runs.append(map(_unspooled, run))
        for _key, _number, row in heapq.merge(*runs):
            yield row


def _spooled(key: str, number: int, row: Row) -> str:
    """A row as a line of a sort's spool, with its sort key and its place in the input."""
    return f"{key}\t{number}\t{row.path}\t{row.bytes}\t{row.wnid}\t{row.origin}\n"


def _unspooled(line: str) -> tuple[str, int, Row]:
    key, number, path, size, wnid, origin = line.rstrip("\n").split("\t")
    return key, int(number), Row(path, int(size), wnid, origin)


def _held_twice(paths: Iterable[str]) -> tuple[set[str], int]:
    """From ``paths`` in sorted order: those that come more than once, and how many are left without them."""
    extra: collections.Counter[str] = collections.Counter()  # copies of a path after its first
    entries, previous = 0, None
    for path in paths:
        entries += 1
        if path == previous:
            extra[path] += 1
        previous = path
    return set(extra), entries - len(extra) - sum(extra.values())


def _entries(tree: Path, split: str) -> Iterator[manifest.Entry]:
    for entry in manifest.read_manifest(tree):
        if entry.path.startswith(split + "/"):
            yield entry
