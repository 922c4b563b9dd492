"""What a tree was made from: the identity of each input file, and of each shard's share of it.

A tree is a function of its recipe and its inputs. ``tree.json`` records the inputs of each split
(``inputs``: the archives, or a ``--from`` tree's manifest) and every shard's completion marker
records the inputs it read and a fingerprint of its listing (which members, at which offsets,
under which label). A re-run compares both with the current inputs: a shard whose input changed
is redone, and ``verify`` reports a tree whose recorded inputs changed as stale.

An input's content is known by its xxh3-64: taken from its download record while the record still
matches the file, else computed for files under 1 GiB (the devkit, a manifest). A large archive
without a valid record is known by its size and mtime: hashing 150 GB is not a price a re-run pays.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

import xxhash

from .errors import InputChangedError
from .hashing import hash_file
from .records import read_record
from .storage import Archive, RemoteFile, is_url


@dataclass(frozen=True)
class InputFile:
    name: str
    path: str  # relative to the tree that records it, so a moved root still finds it
    size: int
    mtime_ns: int
    xxh3_64: str | None = None  # from the download record, while it matches the file

    def same_content(self, other: InputFile) -> bool:
        if self.size != other.size:
            return False
        if self.xxh3_64 and other.xxh3_64:
            return self.xxh3_64 == other.xxh3_64
        return self.mtime_ns == other.mtime_ns

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputFile:
        return cls(**{k: data[k] for k in ("name", "path", "size", "mtime_ns", "xxh3_64")})


HASHED_BELOW = 1 << 30


def relative_to(path: Path, tree: Path) -> str:
    """``path`` as ``tree`` records it: relative, '/'-separated, so a moved root still finds it."""
    return os.path.relpath(path.absolute(), tree.absolute()).replace(os.sep, "/")


def describe(path: Archive, tree: Path) -> InputFile:
    """The identity of the input at ``path`` as seen from ``tree`` (an object of a bucket: its URL,
    and its ETag standing for the mtime, which a bucket does not keep reliably)."""
    if isinstance(path, RemoteFile):
        return InputFile(path.name, path.url, path.size, _etag_number(path.etag))
    stat = path.stat()
    record = read_record(path)
    digest = record.xxh3_64 if record is not None and record.matches(path) else None
    if digest is None and stat.st_size < HASHED_BELOW:
        digest = hash_file(path, ("xxh3_64",))["xxh3_64"]
    return InputFile(path.name, relative_to(path, tree), stat.st_size, stat.st_mtime_ns, digest)


def by_size_and_mtime(path: Path, tree: Path) -> InputFile:
    """An input known without reading it: one of many shard files, whose hashing would read the
    dataset once more."""
    stat = path.stat()
    return InputFile(path.name, relative_to(path, tree), stat.st_size, stat.st_mtime_ns)


def changed_since(recorded: InputFile, tree: Path) -> InputFile | None:
    """The input as it is now, when it differs from what ``tree`` recorded; None when it is the
    same or no longer there (archives are often deleted once a tree is made: that is not a change)."""
    if is_url(recorded.path):
        there = RemoteFile(recorded.path, 0, "").now()
        if there is None:
            return None
        current = InputFile(recorded.name, recorded.path, there.size, _etag_number(there.etag))
        return None if recorded.same_content(current) else current
    path = tree / recorded.path
    if not path.is_file():
        return None
    if recorded.xxh3_64 is None:  # known by size and mtime when recorded: compared so, unread
        stat = path.stat()
        now = InputFile(recorded.name, recorded.path, stat.st_size, stat.st_mtime_ns)
    else:
        now = describe(path, tree)
    return None if recorded.same_content(now) else now


def changed_names(recorded: Iterable[InputFile], current: Iterable[InputFile]) -> list[str]:
    """The inputs that are not what was recorded: changed, new, or gone."""
    before = {i.name: i for i in recorded}
    now = list(current)
    names = [i.name for i in now if i.name not in before or not before[i.name].same_content(i)]
    return names + [name for name in before if name not in {i.name for i in now}]


class Snapshot(NamedTuple):
    """An input file as a run's planning saw it. A file replaced by rename (a finished download
    landing) has another inode even with the same size; one rewritten in place, another mtime.
    The device is left out: a shared filesystem shows one file under different devices on
    different hosts, never under different inodes."""

    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, stat: os.stat_result) -> Snapshot:
        return cls(stat.st_ino, stat.st_size, stat.st_mtime_ns)

    @classmethod
    def of_input(cls, path: Archive) -> Snapshot:
        """A file's, from its status; an object's, from its size and ETag as listed."""
        if isinstance(path, RemoteFile):
            return cls(0, path.size, _etag_number(path.etag))
        return cls.of(path.stat())


def _etag_number(etag: str) -> int:
    """An ETag as a number where an mtime would be: equal for one version, different for another."""
    return xxhash.xxh3_64_intdigest(etag.encode()) >> 1


def open_as_planned(
    path: Archive, snapshot: Snapshot | None, end: int | None = None, buffered: bool = True
) -> BinaryIO:
    """``path`` opened for reading, once it is known to be the file that was planned from: the
    open file is read to the end even if the path is replaced meanwhile, so a shard reads one
    version; a different file raises :class:`~imagenet_cli.errors.InputChangedError`. An object of
    a bucket is asked for its ETag now (a rewritten object has another), and read no further
    than ``end``; unbuffered, each read is one request of just its bytes (members here and there)."""
    if isinstance(path, RemoteFile):
        now = path.now()
        if snapshot is not None and (now is None or Snapshot(0, now.size, _etag_number(now.etag)) != snapshot):
            raise InputChangedError(f"{path.name} was replaced or changed since it was listed; it is read again")
        return path.open(buffered, end)
    file = open(path, "rb")
    if snapshot is not None and Snapshot.of(os.fstat(file.fileno())) != snapshot:
        file.close()
        raise InputChangedError(
            f"{path.name} was replaced or changed while it was being read; nothing of the new version was mixed in"
        )
    return file


def fingerprint(parts: Iterable[object]) -> str:
    """A short, stable digest of a shard's listing (names, offsets, sizes, labels)."""
    listing = Fingerprint()
    for part in parts:
        listing.add(part)
    return listing.digest()


class Fingerprint:
    """:func:`fingerprint` made a part at a time, for listings whose parts are not kept."""

    def __init__(self) -> None:
        self._digest = xxhash.xxh3_64()

    def add(self, part: object) -> None:
        self._digest.update(repr(part).encode())
        self._digest.update(b"\0")

    def digest(self) -> str:
        return self._digest.hexdigest()
