"""Where each shard's images come from, small enough to send to a worker process.

A shard is one class of one split. Planning (in the parent) lists the input once — tar headers,
the zip's central directory, or a directory — and gives every shard a source that a worker can
read on its own, straight from the archive on disk: a region of the train tar (one inner tar),
members of the val tar at known offsets, zip members at known offsets, or plain files. No worker
receives the whole listing, and no archive is ever unpacked to disk.
"""

from __future__ import annotations

import os
import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import archives, zip_entries

# (file name, its WNID or None for the shard's, bytes or None, why it could not be read or None)
Item = tuple[str, str | None, bytes | None, str | None]


@dataclass(frozen=True)
class TarRegion:
    """An inner tar inside the train tar: ``size`` bytes at ``offset``."""

    path: Path
    offset: int
    size: int
    origin: str

    def items(self) -> Iterator[Item]:
        refused: list[tuple[str, str]] = []
        with open(self.path, "rb") as file:
            file.seek(self.offset)
            region = _Window(file, self.size)
            try:
                # A large buffer: the default 10 KiB reads cost ~10% of a shard's time in Python calls.
                with tarfile.open(fileobj=region, mode="r|", bufsize=1 << 20) as tar:
                    for member, data in archives.tar_files(tar, self.origin, lambda w, why: refused.append((w, why))):
                        yield posixpath.basename(member.name), None, data.read(), None
                        while refused:
                            where, why = refused.pop()
                            yield where.rsplit(":", 1)[-1], None, None, f"refused: {why}"
                    stopped = tar.offset
                damage = archives.ended_early(self.path, self.offset + stopped, self.offset + self.size, "the class tar")
                if damage:  # a short class is a failure, never a smaller class
                    yield self.origin.rsplit(":", 1)[-1], None, None, damage
            except (tarfile.TarError, archives.ArchiveError) as error:
                yield self.origin, None, None, f"unreadable inner tar ({error})"
        for where, why in refused:
            yield where.rsplit(":", 1)[-1], None, None, f"refused: {why}"


class _Window:
    """A read-only view of ``size`` bytes of an open file, from its current position."""

    def __init__(self, file, size: int) -> None:
        self.file, self.left = file, size

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.file.read(n)
        self.left -= len(data)
        return data


@dataclass(frozen=True)
class TarMembers:
    """Members of a flat tar (val) by offset and size, read with pread."""

    path: Path
    members: tuple[tuple[str, int, int], ...]  # (name, offset of data, size)

    def items(self) -> Iterator[Item]:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for name, offset, size in self.members:
                data = os.pread(fd, size, offset)
                yield (name, None, data, None) if len(data) == size else (name, None, None, "truncated archive")
        finally:
            os.close(fd)


@dataclass(frozen=True)
class ZipMembers:
    """Members of the Kaggle zip, read from their local headers; the CRC-32 of each is checked."""

    path: Path
    members: tuple[tuple[str, zip_entries.ZipEntry], ...]  # (file name, entry)

    def items(self) -> Iterator[Item]:
        with open(self.path, "rb") as file:
            for name, entry in self.members:
                try:
                    yield name, None, zip_entries.read(file, entry, archives.MAX_IMAGE_BYTES), None
                except archives.ArchiveError as error:
                    yield name, None, None, f"damaged zip member ({error})"


@dataclass(frozen=True)
class Files:
    """Plain files of an extracted tree."""

    paths: tuple[tuple[str, str], ...]  # (name, path)

    def items(self) -> Iterator[Item]:
        for name, path in self.paths:
            try:
                with open(path, "rb") as file:
                    yield name, None, file.read(), None
            except OSError as error:
                yield name, None, None, f"unreadable: {error.strerror or error}"


@dataclass(frozen=True)
class Blobs:
    """Images already read, for inputs that can only be streamed (the 2019 Kaggle tar.gz)."""

    images: tuple[Item, ...]

    def items(self) -> Iterator[Item]:
        yield from self.images


Source = TarRegion | TarMembers | ZipMembers | Files | Blobs
