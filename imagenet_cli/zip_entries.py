"""A zip's central directory read as a stream, and members read by their offset.

``zipfile`` keeps a ``ZipInfo`` for every member in memory: for the Kaggle bundle's ~2 M members
that is over a gigabyte before any work starts. Reading the central directory one record at a
time keeps memory flat, and reading a member from its local header needs nothing else — so the
parent and every worker can each read what they need on their own. ZIP64 (any zip over 4 GiB,
which the Kaggle bundle is) is handled.
"""

from __future__ import annotations

import io
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from .errors import ArchiveError
from .storage import Archive, open_archive

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"
_CENTRAL = b"PK\x01\x02"
_LOCAL = b"PK\x03\x04"
_CENTRAL_FORMAT = struct.Struct("<4s6H3I5H2I")  # the 46 fixed bytes of a central directory record
_MAX_EOCD_SEARCH = 22 + 65535  # the record and the longest comment


@dataclass(frozen=True)
class ZipEntry:
    name: str
    offset: int  # of the local header
    method: int  # zipfile.ZIP_STORED or ZIP_DEFLATED
    compressed: int
    size: int
    crc: int
    mode: int  # Unix mode bits, 0 when the zip does not say

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")


def entries(path: Archive) -> Iterator[ZipEntry]:
    """Every member of the zip at ``path``, in central directory order, one record at a time (in a
    bucket: its end records, then its directory, by range; no member is read)."""
    try:
        with open_archive(path) as file:
            offset, size, count = _central_directory(file, path)
            file.seek(offset)
            directory = io.BufferedReader(_Limited(file, size), buffer_size=1 << 20)
            for _ in range(count):
                yield _read_record(directory, path)
    except (OSError, struct.error) as error:
        raise ArchiveError(f"{path.name} is damaged or truncated ({error})") from error


def read(file: BinaryIO, entry: ZipEntry, max_size: int | None = None) -> bytes:
    """One member's bytes, from its local header; raises ArchiveError on a bad CRC-32.

    A member whose declared size is over ``max_size`` is refused before a byte is inflated.
    """
    if max_size is not None and entry.size > max_size:
        raise ArchiveError(f"{entry.name}: claims {entry.size:,} bytes, over the {max_size:,}-byte cap for one image")
    with open_member(file, entry) as member:
        return member.read()


def open_member(file: BinaryIO, entry: ZipEntry) -> BinaryIO:
    """A member as a stream (a 150 GB one too); its CRC-32 and length are checked at its end."""
    file.seek(entry.offset)
    header = file.read(30)
    if len(header) != 30 or header[:4] != _LOCAL:
        raise ArchiveError(f"{entry.name}: no local header where the central directory says")
    if entry.method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise ArchiveError(f"{entry.name}: compression method {entry.method} is not supported")
    name_length, extra_length = struct.unpack("<HH", header[26:30])
    file.seek(name_length + extra_length, os.SEEK_CUR)
    return io.BufferedReader(_Member(file, entry), buffer_size=_CHUNK)


_CHUNK = 1 << 20


class _Member(io.RawIOBase):
    """The bytes of one member, inflated if deflated, checked against its CRC-32 at the end.

    Linear time and bounded memory whatever the member holds: at most one chunk is inflated at a
    time, and inflating past the declared size stops at once (a zip bomb is named, not inflated).
    """

    def __init__(self, file: BinaryIO, entry: ZipEntry) -> None:
        self.raw = _Limited(file, entry.compressed)
        self.entry = entry
        self.inflate = zlib.decompressobj(-15) if entry.method == zipfile.ZIP_DEFLATED else None
        self.crc = self.length = 0
        self.pending, self.taken = b"", 0  # inflated bytes not yet handed out start at pending[taken]
        self.finished = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        while self.taken == len(self.pending):
            if self.finished:
                self._check_end()
                return 0
            self.pending, self.taken = self._next_chunk(), 0
        view = memoryview(buffer).cast("B")
        taken = memoryview(self.pending)[self.taken : self.taken + len(view)]
        view[: len(taken)] = taken
        self.taken += len(taken)
        self.crc = zlib.crc32(taken, self.crc)
        self.length += len(taken)
        if self.length > self.entry.size:
            raise ArchiveError(
                f"{self.entry.name}: inflates past its declared {self.entry.size:,} bytes "
                "(a damaged member or a zip bomb)"
            )
        return len(taken)

    def _next_chunk(self) -> bytes:
        try:
            if self.inflate is None:
                chunk = self.raw.read(_CHUNK)
                self.finished = not chunk
                return chunk
            data = self.inflate.unconsumed_tail or self.raw.read(_CHUNK)
            if not data:
                self.finished = True
                return self.inflate.flush()
            return self.inflate.decompress(data, _CHUNK)
        except zlib.error as error:
            raise ArchiveError(f"{self.entry.name}: damaged ({error})") from error

    def _check_end(self) -> None:
        if self.length != self.entry.size or self.crc != self.entry.crc:
            raise ArchiveError(f"{self.entry.name}: bad CRC-32 or length: its bytes are damaged")


def _central_directory(file: BinaryIO, path: Archive) -> tuple[int, int, int]:
    """(offset, size, record count) of the central directory, from the end records."""
    file.seek(0, os.SEEK_END)
    end = file.tell()
    tail_start = max(0, end - _MAX_EOCD_SEARCH)
    file.seek(tail_start)
    tail = file.read()
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) < at + 22:
        raise ArchiveError(f"{path.name} is not a zip, or is truncated (no end of central directory)")
    _, _, _, count, size, offset, _ = struct.unpack("<4HIIH", tail[at + 4 : at + 22])
    if 0xFFFF in (count,) or 0xFFFFFFFF in (size, offset):
        locator = tail.rfind(_ZIP64_LOCATOR, 0, at)
        if locator < 0:
            raise ArchiveError(f"{path.name}: ZIP64 end records are missing")
        (zip64_offset,) = struct.unpack("<Q", tail[locator + 8 : locator + 16])
        file.seek(zip64_offset)
        record = file.read(56)
        if record[:4] != _ZIP64_EOCD:
            raise ArchiveError(f"{path.name}: damaged ZIP64 end of central directory")
        count, size, offset = struct.unpack("<3Q", record[32:56])
    return offset, size, count


def _read_record(directory: BinaryIO, path: Archive) -> ZipEntry:
    fixed = directory.read(46)
    if len(fixed) != 46:
        raise ArchiveError(f"{path.name}: the central directory ends early")
    (
        signature,
        _,
        _,
        flags,
        method,
        _,
        _,
        crc,
        compressed,
        size,
        name_length,
        extra_length,
        comment_length,
        _,
        _,
        attributes,
        offset,
    ) = _CENTRAL_FORMAT.unpack(fixed)
    if signature != _CENTRAL:
        raise ArchiveError(f"{path.name}: damaged central directory")
    raw_name = directory.read(name_length)
    extra = directory.read(extra_length)
    directory.read(comment_length)
    name = raw_name.decode("utf-8" if flags & 0x800 else "cp437")
    size, compressed, offset = _zip64_fields(extra, size, compressed, offset)
    return ZipEntry(name, offset, method, compressed, size, crc, attributes >> 16)


def _zip64_fields(extra: bytes, size: int, compressed: int, offset: int) -> tuple[int, int, int]:
    """Replace 0xFFFFFFFF placeholders with the 64-bit values of the ZIP64 extra field (id 1)."""
    position = 0
    while position + 4 <= len(extra):
        header_id, length = struct.unpack("<HH", extra[position : position + 4])
        if header_id == 1:
            values = iter(struct.unpack(f"<{length // 8}Q", extra[position + 4 : position + 4 + length // 8 * 8]))
            if size == 0xFFFFFFFF:
                size = next(values)
            if compressed == 0xFFFFFFFF:
                compressed = next(values)
            if offset == 0xFFFFFFFF:
                offset = next(values)
            break
        position += 4 + length
    return size, compressed, offset


class _Limited(io.RawIOBase):
    """At most ``size`` bytes of ``file`` from its current position, as a raw stream."""

    def __init__(self, file: BinaryIO, size: int) -> None:
        self.file, self.left = file, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self.file.read(min(len(view), self.left))
        view[: len(data)] = data
        self.left -= len(data)
        return len(data)
