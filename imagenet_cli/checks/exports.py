"""Checks of one export folder against its ``export.json``: every shard there, whole and unchanged.

Each file listed must exist with its recorded size and xxh3-64; a shard of the format not listed
is extra; a WebDataset's ``_info.json`` must give the same shards and sample counts. With
``--deep`` every file is read and its samples counted (tar members, Parquet rows, npz rows).
"""

from __future__ import annotations

from pathlib import Path

from ..exports.formats import Writer, writer_for
from ..exports.record import RECORD, ExportRecord, ShardRecord
from ..hashing import hash_file
from ..progress import SILENT, Progress
from .findings import Check, ProblemKind


def is_export(path: Path) -> bool:
    return (path / RECORD).is_file()


def check_export(folder: Path, deep: bool = False, progress: Progress = SILENT) -> Check:
    check = Check(folder, "export")
    record = ExportRecord.read(folder)
    shards = record.shards
    writer = writer_for(record.format)
    with progress.task(f"checking {folder.name}", total=len(shards), unit="shard") as advance:
        for shard in shards:
            _check_shard(check, folder, shard, writer if deep else None)
            advance(1)
    listed = {shard.file for shard in shards}
    written = (
        p.relative_to(folder).as_posix() for p in folder.rglob(f"*{writer.SUFFIX}") if not p.name.startswith(".")
    )
    for extra in sorted(written):
        if extra not in listed:
            check.add(ProblemKind.EXTRA, extra, f"not in {RECORD}")
    for kind, where, detail in writer.own_file_problems(folder, shards):
        check.add(ProblemKind(kind), where, detail)
    check.counts["samples"] = sum(record.samples().values())
    check.counts["bytes"] = record.bytes()
    check.note(f"{len(shards)} shards against {RECORD} (size, xxh3)" + ("; every sample counted" if deep else ""))
    if record.failures:  # known when it was made, and named there: not a problem of the files
        check.note(f"{len(record.failures):,} images of its inputs could not be used ({RECORD} names each)")
    return check


def _check_shard(check: Check, folder: Path, shard: ShardRecord, counting: Writer | None) -> None:
    """Size and xxh3 against the record; with ``counting`` (``--deep``), its samples too, read
    through the format's writer (whose extra, if missing, is named in one line)."""
    path = folder / shard.file
    if not path.is_file():
        check.add(ProblemKind.MISSING, shard.file, f"in {RECORD}, not on disk")
        return
    if path.stat().st_size != shard.bytes:
        check.add(ProblemKind.SIZE, shard.file, f"{path.stat().st_size:,} bytes; {RECORD} says {shard.bytes:,}")
        return
    digest = hash_file(path, ["xxh3_64"])["xxh3_64"]
    if digest != shard.xxh3_64:
        check.add(ProblemKind.CHECKSUM, shard.file, f"xxh3 is {digest}; {RECORD} says {shard.xxh3_64}")
    if counting is not None:
        counted = counting.count_samples(path)
        if counted != shard.samples:
            check.add(ProblemKind.COUNT, shard.file, f"{counted:,} samples; {RECORD} says {shard.samples:,}")
