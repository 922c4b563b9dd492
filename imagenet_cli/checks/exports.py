"""Checks of one export against its ``export.json``: every shard there, whole and unchanged.

Each file listed must exist with its recorded size and xxh3-64; a shard of the format not listed
is extra; a WebDataset's ``_info.json`` must give the same shards and sample counts. With
``--deep`` every file is read and its samples counted (tar members, Parquet rows, npz rows).

An export is checked where it is: a local folder, or a prefix of a bucket (``s3://…``), whose
objects are listed once and streamed for their digests; only ``--deep`` copies a shard to local
disk, one at a time, for the format's reader.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from ..exports.formats import Writer, writer_for
from ..exports.record import RECORD, ExportRecord, ShardRecord
from ..hashing import hash_file, hash_stream
from ..progress import SILENT, Progress
from ..storage import Bucket
from .findings import Check, ProblemKind


def is_export(path: Path) -> bool:
    return (path / RECORD).is_file()


class _Files(Protocol):
    """An export's files, wherever they are."""

    absent: str  # how a missing file is said

    def record(self) -> str | None: ...

    def sizes(self) -> dict[str, int]:
        """Every file's size, by name relative to the export."""

    def xxh3(self, name: str) -> str: ...

    def local(self, name: str) -> contextlib.AbstractContextManager[Path]:
        """The file as a local path, for a format's reader."""

    def own_files(self) -> contextlib.AbstractContextManager[Path]:
        """A local folder holding the format's own small files (``_info.json``, a card)."""


class _Folder:
    absent = "not on disk"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def record(self) -> str | None:
        return (self.folder / RECORD).read_text() if is_export(self.folder) else None

    def sizes(self) -> dict[str, int]:
        files = (p for p in self.folder.rglob("*") if p.is_file())
        return {p.relative_to(self.folder).as_posix(): p.stat().st_size for p in files}

    def xxh3(self, name: str) -> str:
        return hash_file(self.folder / name, ["xxh3_64"])["xxh3_64"]

    def local(self, name: str) -> contextlib.AbstractContextManager[Path]:
        return contextlib.nullcontext(self.folder / name)

    def own_files(self) -> contextlib.AbstractContextManager[Path]:
        return contextlib.nullcontext(self.folder)


class _Prefix:
    absent = "no such object"

    def __init__(self, bucket: Bucket) -> None:
        self.bucket = bucket
        self.listed: dict[str, int] | None = None

    def record(self) -> str | None:
        return self.bucket.read_text(RECORD)

    def sizes(self) -> dict[str, int]:
        if self.listed is None:
            self.listed = {name: info.size for name, info in self.bucket.listing().items()}
        return self.listed

    def xxh3(self, name: str) -> str:
        with self.bucket.open(name) as file:
            return hash_stream(file, ["xxh3_64"])["xxh3_64"]

    @contextlib.contextmanager
    def local(self, name: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="imagenet-verify-") as scratch:
            path = Path(scratch) / Path(name).name
            self.bucket.download(name, path)
            yield path

    @contextlib.contextmanager
    def own_files(self) -> Iterator[Path]:
        """The small files beside the shards (not the shards, not our hidden records)."""
        with tempfile.TemporaryDirectory(prefix="imagenet-verify-") as scratch:
            for name, size in self.sizes().items():
                if "/" not in name and not name.startswith(".") and size < 1 << 20:
                    self.bucket.download(name, Path(scratch) / name)
            yield Path(scratch)


def check_export(folder: Path, deep: bool = False, progress: Progress = SILENT) -> Check:
    """The export in ``folder``."""
    return _check(Check(folder, "export"), _Folder(folder), deep, progress)


def check_export_at(url: str, storage_options: dict[str, Any] | None = None, *, deep: bool = False,
                    progress: Progress = SILENT) -> Check:  # fmt: skip
    """The export at the URL ``url`` of object storage."""
    bucket = Bucket(url, storage_options)
    return _check(Check(Path(bucket.root), "export", url=bucket.url), _Prefix(bucket), deep, progress)


def _check(check: Check, files: _Files, deep: bool, progress: Progress) -> Check:
    text = files.record()
    if text is None:
        check.add(ProblemKind.MISSING, RECORD, "not an export, or one whose run has not finished")
        return check
    record = ExportRecord.from_json(text, Path(check.where) / RECORD)
    shards = record.shards
    writer = writer_for(record.format)
    sizes = files.sizes()
    with progress.task(f"checking {check.name}", total=len(shards), unit="shard") as advance:
        for shard in shards:
            _check_shard(check, files, sizes.get(shard.file), shard, writer if deep else None)
            advance(1)
    listed = {shard.file for shard in shards}
    written = (name for name in sizes if name.endswith(writer.SUFFIX) and not _hidden(name))
    for extra in sorted(written):
        if extra not in listed:
            check.add(ProblemKind.EXTRA, extra, f"not in {RECORD}")
    with files.own_files() as own:
        for kind, where, detail in writer.own_file_problems(own, shards):
            check.add(ProblemKind(kind), where, detail)
    check.counts["samples"] = sum(record.samples().values())
    check.counts["bytes"] = record.bytes()
    check.note(f"{len(shards)} shards against {RECORD} (size, xxh3)" + ("; every sample counted" if deep else ""))
    if record.failures:  # known when it was made, and named there: not a problem of the files
        check.note(f"{len(record.failures):,} images of its inputs could not be used ({RECORD} names each)")
    return check


def _hidden(name: str) -> bool:
    """Under a hidden folder, or hidden itself: our records, a spool, a killed run's temporary."""
    return any(part.startswith(".") for part in name.split("/"))


def _check_shard(check: Check, files: _Files, size: int | None, shard: ShardRecord, counting: Writer | None) -> None:
    """Size and xxh3 against the record; with ``counting`` (``--deep``), its samples too, read
    through the format's writer (whose extra, if missing, is named in one line)."""
    if size is None:
        check.add(
            ProblemKind.MISSING,
            shard.file,
            f"in {RECORD}, {files.absent}",
        )
        return
    if size != shard.bytes:
        check.add(ProblemKind.SIZE, shard.file, f"{size:,} bytes; {RECORD} says {shard.bytes:,}")
        return
    digest = files.xxh3(shard.file)
    if digest != shard.xxh3_64:
        check.add(ProblemKind.CHECKSUM, shard.file, f"xxh3 is {digest}; {RECORD} says {shard.xxh3_64}")
    if counting is not None:
        with files.local(shard.file) as path:
            counted = counting.count_samples(path)
        if counted != shard.samples:
            check.add(ProblemKind.COUNT, shard.file, f"{counted:,} samples; {RECORD} says {shard.samples:,}")
