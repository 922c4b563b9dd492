"""A shard's file as a writer fills it: hashed as it goes, written several parts at a time, and
sent on to the disk as it is written, so that the fsync that makes it durable waits for little."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import BinaryIO

import xxhash

from .. import atomic

# A shard's bytes are sent to disk as they are written, this many at a time: the smaller, the
# steadier the disk's queue and the less its fsync waits for (export_bench.py, 10,100 images: 0.85x
# tar -cf at 8 MiB, 0.91-0.93x at 2 MiB and 1 MiB; 2 MiB is two of the 1 MiB writes below).
WRITEBACK_BYTES = 2 << 20


class ShardFile:
    """An open file, written with ``os.writev``: the parts of several samples in one call, never
    joined into one copy first, each hashed as it goes (the shard's xxh3 without reading it back),
    and sent on to the disk as they go (see :func:`atomic.start_writeback`).

    It is also enough of a file for pyarrow's writers to write into (``write``, ``tell``,
    ``flush``, ``close``, ``closed``); ``close`` writes what is pending and leaves the file open
    to its owner. A large part is written in slices, so that it too goes to disk steadily."""

    BATCH_BYTES, BATCH_PARTS = 1 << 20, 512  # far below IOV_MAX (1,024 on Linux and macOS)
    closed = False

    def __init__(self, file: BinaryIO) -> None:
        self.fd, self.digest = file.fileno(), xxhash.xxh3_64()
        self.parts: list[bytes | memoryview] = []
        self.pending = self.offset = self.written_back = 0

    def write(self, *parts: bytes) -> int:
        """Take ``parts``, in order; how many bytes they hold."""
        for part in parts:
            self.digest.update(part)
            if len(part) <= self.BATCH_BYTES:
                self._take(part)
                continue
            view = memoryview(part)  # slices of it, not copies
            for start in range(0, len(view), self.BATCH_BYTES):
                self._take(view[start : start + self.BATCH_BYTES])
        return sum(map(len, parts))

    def _take(self, piece: bytes | memoryview) -> None:
        if piece:
            self.parts.append(piece)
            self.pending += len(piece)
        if self.pending >= self.BATCH_BYTES or len(self.parts) >= self.BATCH_PARTS:
            self.flush()

    def tell(self) -> int:
        """Bytes given so far, written or pending."""
        return self.offset + self.pending

    def flush(self) -> None:
        write_all(self.fd, self.parts)
        self.offset += self.pending
        self.parts, self.pending = [], 0
        if self.offset - self.written_back >= WRITEBACK_BYTES:
            atomic.start_writeback(self.fd, self.written_back, self.offset - self.written_back)
            self.written_back = self.offset

    def close(self) -> None:
        self.flush()

    def xxh3_64(self) -> str:
        """The digest of every byte given, once they are all written."""
        self.flush()
        return self.digest.hexdigest()


def write_all(fd: int, parts: Sequence[bytes | memoryview]) -> None:
    """``os.writev`` until every byte is written: a file may take fewer than it is given."""
    views, first = [memoryview(part) for part in parts], 0
    while first < len(views):
        written = os.writev(fd, views[first:])
        while first < len(views) and written >= len(views[first]):
            written -= len(views[first])
            first += 1
        if written:
            views[first] = views[first][written:]
