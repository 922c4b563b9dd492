"""Where each shard's images come from, small enough to send to a worker process.

A shard is one class of one split. Planning (in the parent) lists the input once — tar headers,
the zip's central directory, or a directory — and gives every shard a source that a worker can
read on its own, straight from the archive on disk: a region of the train tar (one inner tar),
members of the val tar at known offsets, zip members at known offsets, or plain files. No worker
receives the whole listing, and no archive is ever unpacked to disk.
"""

from __future__ import annotations

import array
import dataclasses
import json
import os
import posixpath
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO, NamedTuple, cast

from .. import archives, catalogue, zip_entries
from ..errors import ArchiveError, InvalidArgumentError
from ..inputs import Snapshot, open_as_planned
from ..storage import Archive, RangedReader, archive_size, is_url, read_range
from ..val_labels import NOT_A_VAL_NAME, label_of


class Origin(NamedTuple):
    """Where one image's bytes are, for any worker to read them later on its own: ``tar`` (a run of
    bytes in an archive: a train or val member), ``zip`` (a member of the Kaggle zip), ``file``,
    or ``pack`` (an image made already, in a shard's pack)."""

    kind: str
    path: str
    offset: int = 0
    size: int = 0
    entry: tuple[Any, ...] = ()  # zip: the member's ZipEntry fields
    snapshot: tuple[int, int, int] | None = None  # the archive as it was listed (inode, size, mtime)


class Item(NamedTuple):
    """One image of a shard as a worker reads it: its bytes, or why there are none."""

    name: str  # the file name
    wnid: str | None  # its class; None: the shard's
    data: bytes | None
    problem: str | None = None  # why it could not be read
    origin: Origin | None = None  # listed, not read (``origins()``): where its bytes are


class MemberAt(NamedTuple):
    """A member of a flat tar: its data's offset and size."""

    name: str
    offset: int
    size: int


class PackedMembers:
    """Members of a flat tar, packed: names in one buffer, offsets and sizes in one array. Val's
    50,000 members are listed before any is read, to be grouped by class; as a MemberAt each they
    held 11 MiB (about 210 bytes a member), packed about 60."""

    def __init__(self) -> None:
        self.names = bytearray()  # each name, then NUL: no tar name holds one
        self.places = array.array("q")  # offset, size, offset, size, …

    def append(self, member: MemberAt) -> None:
        self.names += member.name.encode("utf-8", "surrogateescape") + b"\0"
        self.places.extend((member.offset, member.size))

    def __len__(self) -> int:
        return len(self.places) // 2

    def __iter__(self) -> Iterator[MemberAt]:
        names = self.names.split(b"\0")
        for at, name in enumerate(names[:-1]):
            yield MemberAt(name.decode("utf-8", "surrogateescape"), self.places[2 * at], self.places[2 * at + 1])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PackedMembers) and (self.names, self.places) == (other.names, other.places)

    __hash__ = None  # type: ignore[assignment]  # it grows: not a key


class ZipMember(NamedTuple):
    name: str  # the image's file name
    entry: zip_entries.ZipEntry


class LooseFile(NamedTuple):
    name: str
    path: str


@dataclass(frozen=True)
class TarRegion:
    """An inner tar inside the train tar: ``size`` bytes at ``offset``."""

    path: Archive
    offset: int
    size: int
    origin: str
    snapshot: Snapshot | None = None  # the train tar the offsets were listed from

    def items(self) -> Iterator[Item]:
        return self._walk(read=True)

    def origins(self) -> Iterator[Item]:
        """The members and where their bytes lie in the train tar, none of them read."""
        return self._walk(read=False)

    def _walk(self, read: bool) -> Iterator[Item]:
        refused: list[tuple[str, str]] = []
        with open_as_planned(self.path, self.snapshot, end=self.offset + self.size) as file:
            file.seek(self.offset)
            region = _Window(file, self.size)
            try:
                with tarfile.open(
                    fileobj=cast(IO[bytes], region), mode="r|", bufsize=STREAM_BUFFER
                ) as tar:  # a stream reads only read()
                    for member, data in archives.tar_files(tar, self.origin, lambda w, why: refused.append((w, why))):
                        name = posixpath.basename(member.name)
                        if read:
                            yield Item(name, None, data.read())
                        else:  # the stream skips its bytes
                            at = Origin("tar", str(self.path), self.offset + member.offset_data, member.size)
                            yield Item(name, None, None, None, at._replace(snapshot=self.snapshot))
                        while refused:
                            where, why = refused.pop()
                            yield Item(where.rsplit(":", 1)[-1], None, None, f"refused: {why}")
                    stopped = tar.offset
                damage = archives.ended_early(
                    self.path, self.offset + stopped, self.offset + self.size, "the class tar"
                )
                if damage:  # a short class is a failure, never a smaller class
                    yield Item(self.origin.rsplit(":", 1)[-1], None, None, damage)
            except (tarfile.TarError, ArchiveError) as error:
                yield Item(self.origin, None, None, f"unreadable inner tar ({error})")
        for where, why in refused:
            yield Item(where.rsplit(":", 1)[-1], None, None, f"refused: {why}")


# A zip member's local header as planned: 30 bytes, the name, and room for a usual extra field
# (a longer one is read past the planned end, a small read at a time).
LOCAL_HEADER = 30 + 1024


def _span(members: tuple[ZipMember, ...]) -> tuple[int | None, bool]:
    """Where the last member's bytes end, at most, and whether the members fill most of the span
    from the first (then one buffered pass reads them)."""
    if not members:
        return None, False
    start = min(m.entry.offset for m in members)
    end = max(m.entry.offset + LOCAL_HEADER + len(m.entry.name.encode()) + m.entry.compressed for m in members)
    return end, 2 * sum(m.entry.compressed for m in members) >= end - start


def _read_at(file: BinaryIO, offset: int, size: int) -> bytes:
    """``size`` bytes at ``offset``: one pread of a local file, one ranged read of an object."""
    if isinstance(file, RangedReader):
        file.seek(offset)
        return file.read(size)
    return os.pread(file.fileno(), size, offset)


class _Window:
    """A read-only view of ``size`` bytes of an open file, from its current position."""

    def __init__(self, file: BinaryIO, size: int) -> None:
        self.file, self.left = file, size

    def read(self, n: int | None = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        data = self.file.read(n)
        self.left -= len(data)
        return data


@dataclass(frozen=True)
class TarMembers:
    """Members of a flat tar (val) by offset and size, read with pread (in a bucket, a ranged read
    of each member)."""

    path: Archive
    members: tuple[MemberAt, ...] | PackedMembers
    snapshot: Snapshot | None = None

    def items(self) -> Iterator[Item]:
        with open_as_planned(self.path, self.snapshot, buffered=False) as file:
            for name, offset, size in self.members:
                data = _read_at(file, offset, size)
                yield Item(name, None, data) if len(data) == size else Item(name, None, None, "truncated archive")

    def origins(self) -> Iterator[Item]:
        length = archive_size(self.path)
        for name, offset, size in self.members:
            at = Origin("tar", str(self.path), offset, size, (), self.snapshot)
            yield Item(name, None, None, None if offset + size <= length else "truncated archive", at)


# What tarfile's stream mode reads at a time. Each read it serves (a header, a member) copies the
# rest of its buffer, so a large buffer costs a copy of it per member: 1 MiB made a 110 KB image
# cost 3.1x as long to read as 64 KiB does, a tiny one 7.5x. Its default, 10 KiB, costs Python
# calls instead: 1.25x on photos.
STREAM_BUFFER = 64 << 10
STRETCH = 64 << 20  # bytes of a flat tar in a bucket that one shard reads: val's 6.4 GB in ~100 shards
LOOKBACK = 8 << 10  # before a stretch: where a long name's header for a member just after it begins


@dataclass(frozen=True)
class TarStretch:
    """The members of a flat tar (val) whose headers begin between ``start`` and ``end``, read as
    one stream: a tar in a bucket is read in stretches, a few large requests each and in parallel,
    instead of a request per header and another per member. Each image is labelled by its name
    (``labels``: the WNID of each val image, in order).

    A stretch finds its first header by checksum and ``ustar`` magic, looking from ``LOOKBACK``
    before its start, so that a member whose long-name header begins before the stretch is left to
    the stretch before (extended headers longer than that are not told apart)."""

    path: Archive
    start: int
    end: int
    labels: tuple[str, ...]
    snapshot: Snapshot | None = None

    def items(self) -> Iterator[Item]:
        refused: list[tuple[str, str]] = []
        try:
            yield from self._members(lambda where, why: refused.append((where, why)))
        except ArchiveError as error:
            yield Item(self.path.name, None, None, str(error))
        for where, why in refused:
            yield Item(where.rsplit(":", 1)[-1], None, None, f"refused: {why}")

    def _members(self, refuse: archives.Refuse) -> Iterator[Item]:
        size = archive_size(self.path)
        # Buffered up to the end; the rest of the last member past it, in small reads.
        with open_as_planned(self.path, self.snapshot, end=self.end) as file:
            first = _first_header(file, max(0, self.start - LOOKBACK), self.end)
            if first is None:
                return  # a stretch inside one member's bytes
            file.seek(first)
            with tarfile.open(fileobj=file, mode="r|", bufsize=STREAM_BUFFER) as tar:
                window = (self.start - first, self.end - first)
                for member, data in archives.tar_files(tar, self.path.name, refuse, window=window):
                    name = posixpath.basename(member.name)
                    if (wnid := label_of(self.labels, name)) is None:
                        yield Item(member.name, None, None, NOT_A_VAL_NAME)
                    else:
                        yield Item(name, wnid, data.read())
                stopped = first + tar.offset
        if self.end >= size and (damage := archives.ended_early(self.path, stopped, size, f"{self.path.name}'s end")):
            yield Item(self.path.name, None, None, damage)


def _first_header(file: BinaryIO, begin: int, end: int) -> int | None:
    """Where the first tar header block at or after ``begin`` and before ``end`` is, or None."""
    at = begin - begin % tarfile.BLOCKSIZE
    file.seek(at)
    while at < end:
        block = file.read(tarfile.BLOCKSIZE)
        if len(block) < tarfile.BLOCKSIZE:
            return None
        if _is_header(block):
            return at
        at += tarfile.BLOCKSIZE
    return None


def _is_header(block: bytes) -> bool:
    """A ustar header: its magic, and a checksum that holds (image bytes pass both about never)."""
    if block[257:262] != b"ustar":
        return False
    try:
        tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


@dataclass(frozen=True)
class ZipMembers:
    """Members of the Kaggle zip, read from their local headers; the CRC-32 of each is checked."""

    path: Archive
    members: tuple[ZipMember, ...]
    snapshot: Snapshot | None = None

    def items(self) -> Iterator[Item]:
        end, together = _span(self.members)
        # In a bucket: a class's members lie together, read in large pieces up to the last one's
        # end; members here and there (val's) one request each.
        with open_as_planned(self.path, self.snapshot, end=end, buffered=together) as file:
            for name, entry in self.members:
                try:
                    yield Item(name, None, zip_entries.read(file, entry, archives.MAX_IMAGE_BYTES))
                except ArchiveError as error:
                    yield Item(name, None, None, f"damaged zip member ({error})")

    def origins(self) -> Iterator[Item]:
        for name, entry in self.members:
            too_large = entry.size > archives.MAX_IMAGE_BYTES
            problem = f"claims {entry.size:,} bytes, over the cap for one image" if too_large else None
            at = Origin("zip", str(self.path), 0, entry.size, dataclasses.astuple(entry), self.snapshot)
            yield Item(name, None, None, problem, at)


@dataclass(frozen=True)
class Files:
    """Plain files of an extracted tree."""

    paths: tuple[LooseFile, ...]

    def items(self) -> Iterator[Item]:
        for name, path in self.paths:
            try:
                with open(path, "rb") as file:
                    yield Item(name, None, file.read())
            except OSError as error:
                yield Item(name, None, None, f"unreadable: {error.strerror or error}")

    def origins(self) -> Iterator[Item]:
        for name, path in self.paths:
            try:
                size = os.stat(path).st_size
            except OSError as error:
                yield Item(name, None, None, f"unreadable: {error.strerror or error}")
            else:
                yield Item(name, None, None, None, Origin("file", path, 0, size))


IMAGE_SUFFIXES = ("jpg", "jpeg", "png", "webp")  # what a WebDataset sample's image is stored as


@dataclass(frozen=True)
class WebDatasetShard:
    """One WebDataset shard (timm's ``imagenet-1k-wds`` layout, or an export of ours): samples of
    adjacent ``KEY.jpg`` (or ``.jpeg``, ``.png``, ``.webp``), ``KEY.cls`` (the sorted-WNID index)
    and, where there is one, ``KEY.json`` (the file name and WNID). Each image gets its official
    file name back and its class; a ``cls`` that disagrees with the ``json`` WNID is a failure."""

    path: Path
    snapshot: Snapshot | None = None

    def items(self) -> Iterator[Item]:
        refused: list[tuple[str, str]] = []
        try:
            with (
                open_as_planned(self.path, self.snapshot) as file,
                tarfile.open(fileobj=file, mode="r|", bufsize=STREAM_BUFFER) as tar,
            ):
                key, parts = None, {}
                for member, data in archives.tar_files(tar, self.path.name, lambda w, why: refused.append((w, why))):
                    this, _, suffix = posixpath.basename(member.name).partition(".")
                    if key is not None and this != key:
                        yield _sample(key, parts)
                        parts = {}
                    key, parts[suffix.lower()] = this, data.read()
                if key is not None:
                    yield _sample(key, parts)
        except ArchiveError as error:
            yield Item(self.path.name, None, None, str(error))
        for where, why in refused:
            yield Item(where.rsplit(":", 1)[-1], None, None, f"refused: {why}")


def _sample(key: str, parts: dict[str, bytes]) -> Item:
    """A sample's image with its name and class, or why it cannot be used."""
    suffix = next((s for s in IMAGE_SUFFIXES if s in parts), None)
    meta: dict[str, Any] = {}
    if "json" in parts:
        try:
            meta = json.loads(parts["json"])
        except ValueError:
            return Item(key, None, None, "its .json is not JSON")
    default = f"{key}.JPEG" if suffix in ("jpg", "jpeg") else f"{key}.{suffix}"
    name = posixpath.basename(str(meta.get("filename") or default))
    if suffix is None:
        return Item(name, None, None, f"no image among its members ({', '.join(sorted(parts))})")
    wnid = meta.get("wnid")
    if "cls" in parts:
        try:
            named = catalogue.by_index(int(parts["cls"])).wnid
        except (ValueError, InvalidArgumentError):
            return Item(name, None, None, f"its .cls {parts['cls'][:20]!r} is no class index 0–999")
        if wnid is not None and wnid != named:
            return Item(name, None, None, f"its .cls says {named}, its .json {wnid}: which is right cannot be known")
        wnid = named
    if wnid is None or not catalogue.is_wnid(str(wnid)):
        return Item(name, None, None, "no class: neither a .cls nor a WNID in its .json")
    return Item(name, str(wnid), parts[suffix])


@dataclass(frozen=True)
class ParquetShard:
    """One Parquet file with the features of Hugging Face's ``ILSVRC/imagenet-1k`` (an export of
    ours, or a copy of the hub's): ``image`` {``bytes``, ``path``} and ``label`` (the sorted-WNID
    index). Read a row group at a time; a path ``wnid/name`` whose WNID is not the label's is a
    failure."""

    path: Path
    snapshot: Snapshot | None = None

    def items(self) -> Iterator[Item]:
        from ..exports.parquet import require_pyarrow

        _, pq = require_pyarrow()
        with open_as_planned(self.path, self.snapshot) as file:
            try:
                table = pq.ParquetFile(file)
                for group in range(table.num_row_groups):
                    rows = table.read_row_group(group, columns=["image", "label"]).to_pylist()
                    for row in rows:
                        yield _row(row)
            except (OSError, ValueError, KeyError) as error:  # pyarrow's errors derive from these
                yield Item(self.path.name, None, None, f"unreadable Parquet file ({error})")


def _row(row: dict[str, Any]) -> Item:
    image = row.get("image") or {}
    path = str(image.get("path") or "")
    name = posixpath.basename(path) or "a row without a path"
    if not image.get("bytes"):
        return Item(name, None, None, "no image bytes")
    try:
        wnid = catalogue.by_index(int(row["label"])).wnid
    except (TypeError, ValueError, InvalidArgumentError):
        return Item(name, None, None, f"its label {row.get('label')!r} is no class index 0–999")
    folder = posixpath.dirname(path)
    if catalogue.is_wnid(folder) and folder != wnid:
        return Item(name, None, None, f"its label says {wnid}, its path {folder}: which is right cannot be known")
    return Item(name, wnid, bytes(image["bytes"]))


@dataclass(frozen=True)
class Blobs:
    """Images already read, for inputs that can only be streamed (the 2019 Kaggle tar.gz)."""

    images: tuple[Item, ...]

    def items(self) -> Iterator[Item]:
        yield from self.images


def _read_once(path: Path, offset: int, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)


def read_whole(path: str | Path, size_hint: int = 0) -> bytes:
    """A whole file, in one read when ``size_hint`` is its size (a manifest knows it; else the
    file's own size is asked): for ImageNet's 110 KB images 0.4–0.7 of the time of
    ``Path.read_bytes``, which goes through a buffered file object and reads again to find the
    end. A file of another size is still read whole, to its end."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = size_hint or os.fstat(fd).st_size
        first = os.read(fd, size + 1)
        if len(first) == size:  # all of it, and not a byte past it: this is the end
            return first
        chunks = [first]
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


Reader = TarRegion | TarMembers | TarStretch | ZipMembers | Files | Blobs | WebDatasetShard | ParquetShard
Listable = TarRegion | TarMembers | ZipMembers | Files  # readers that can say where each image is


class OriginReader:
    """Reads images by their origins, each archive opened once (as planned: a replaced archive
    raises :class:`~imagenet_cli.errors.InputChangedError`). Use it as a context manager. A pack
    is opened for each read (a run has thousands); one in a bucket (its path a URL) is read by
    range, with ``storage_options``."""

    def __init__(self, storage_options: tuple[tuple[str, Any], ...] = ()) -> None:
        self.files: dict[str, BinaryIO] = {}
        self.lock = threading.Lock()  # threads may share one: packs and tars are read with pread
        self.storage_options = storage_options

    def __enter__(self) -> OriginReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self.lock:
            for file in self.files.values():
                file.close()
            self.files.clear()

    def read(self, origin: Origin) -> bytes:
        """The image's bytes; raises :class:`~imagenet_cli.errors.ArchiveError` or OSError. A zip
        member is read with seek and read: one thread per reader for those."""
        if origin.kind == "file":
            return read_whole(Path(origin.path), origin.size)
        if origin.kind == "pack" and is_url(origin.path):  # its name holds its digest: it never changes
            return read_range(origin.path, origin.offset, origin.offset + origin.size, self.storage_options)
        if origin.kind == "pack":
            # A pack per shard: 2,000 for ImageNet. Kept open, they passed a common limit of open
            # files (1,024; macOS's 256), and held a buffer each; each read opens its pack.
            data = _read_once(Path(origin.path), origin.offset, origin.size)
        else:
            file = self._open(origin)
            if origin.kind == "zip":
                return zip_entries.read(file, zip_entries.ZipEntry(*origin.entry), archives.MAX_IMAGE_BYTES)
            data = os.pread(file.fileno(), origin.size, origin.offset)
        if len(data) != origin.size:
            raise ArchiveError(f"{Path(origin.path).name} ends before the {origin.size:,} bytes at {origin.offset:,}")
        return data

    def _open(self, origin: Origin) -> BinaryIO:
        with self.lock:
            if origin.path not in self.files:
                snapshot = Snapshot(*origin.snapshot) if origin.snapshot else None
                self.files[origin.path] = open_as_planned(Path(origin.path), snapshot)
            return self.files[origin.path]
