"""The record kept beside every archive in ``ROOT/downloads/``.

``<archive>.record.json`` says where the archive came from and what its bytes hash to, as computed
when it was written. ``verify`` and ``info`` read it; a record whose size or mtime no longer match
the file is stale (the file changed since it was recorded).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import atomic
from .errors import ArchiveError, no_record

RECORD_SUFFIX = ".record.json"
SCHEMA = 1


@dataclass(frozen=True)
class DownloadRecord:
    name: str
    size: int
    md5: str
    xxh3_64: str
    source: str  # "sample", "official", "kaggle"
    mtime_ns: int  # of the file when it was recorded: a cheap "unchanged since" check
    recorded_at: str  # UTC, ISO 8601
    url: str | None = None  # without the query string (signed URLs expire)
    etag: str | None = None
    last_modified: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # source-specific, e.g. the sample's parameters
    schema: int = SCHEMA

    def matches(self, path: Path) -> bool:
        """True when the file still has the size and mtime it had when it was recorded."""
        try:
            stat = path.stat()
        except FileNotFoundError:
            return False
        return stat.st_size == self.size and stat.st_mtime_ns == self.mtime_ns

    def to_json(self) -> str:
        fields = {k: v for k, v in dataclasses.asdict(self).items() if k != "schema"}
        return json.dumps({"schema": self.schema, **fields}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: Path) -> DownloadRecord:
        """Fields a later version added are ignored; a record without ``schema`` is schema 1."""
        try:
            data = json.loads(text)
            known = {f.name for f in dataclasses.fields(cls)}
            return cls(**{k: v for k, v in data.items() if k in known})
        except (ValueError, TypeError, AttributeError) as error:
            raise ArchiveError(f"{where} is not a download record ({type(error).__name__}: {error})") from None

    @classmethod
    def read(cls, archive: Path) -> DownloadRecord:
        """``archive``'s record; raises :class:`~imagenet_cli.errors.ArchiveError` when it has none."""
        return read_record(archive) or no_record(record_path(archive))


def record_path(archive: Path) -> Path:
    return archive.with_name(archive.name + RECORD_SUFFIX)


def write_record(
    archive: Path, digests: dict[str, str], source: str, content: Path | None = None, **extra: Any
) -> DownloadRecord:
    """Record ``archive``; ``content`` is where its bytes are while the name does not exist yet
    (a temporary file about to be renamed, which keeps its size and mtime)."""
    stat = (content or archive).stat()
    record = DownloadRecord(
        name=archive.name,
        size=stat.st_size,
        md5=digests["md5"],
        xxh3_64=digests["xxh3_64"],
        source=source,
        mtime_ns=stat.st_mtime_ns,
        recorded_at=_now(),
        **extra,
    )
    atomic.write_text(record_path(archive), record.to_json())
    return record


def refresh_record(archive: Path, record: DownloadRecord) -> DownloadRecord:
    """The same record, re-stamped with the file's current mtime after its content was re-checked."""
    fresh = dataclasses.replace(record, mtime_ns=archive.stat().st_mtime_ns, recorded_at=_now())
    atomic.write_text(record_path(archive), fresh.to_json())
    return fresh


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def read_record(archive: Path) -> DownloadRecord | None:
    """``archive``'s record, or None when it has none."""
    path = record_path(archive)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise ArchiveError(f"cannot read the record {path}: {error}") from error
    return DownloadRecord.from_json(text, path)


# Files beside the archives that are not archives: partial downloads, their journals, bytes kept
# aside after a checksum mismatch, and the marker the kaggle tool leaves on a half-finished zip.
PART_SUFFIX = ".part"
JOURNAL_SUFFIX = ".part.json"
MISMATCH_SUFFIX = ".md5-mismatch"
KAGGLE_PARTIAL_SUFFIX = ".kaggle-partial"
NOT_ARCHIVES = (RECORD_SUFFIX, PART_SUFFIX, JOURNAL_SUFFIX, MISMATCH_SUFFIX, KAGGLE_PARTIAL_SUFFIX)


def archives_in(downloads: Path) -> Iterator[Path]:
    """The archive files in a downloads folder (not records, not temporary files), sorted by name."""
    if not downloads.is_dir():
        return
    for path in sorted(downloads.iterdir()):
        if path.is_file() and not path.name.startswith(".") and not path.name.endswith(NOT_ARCHIVES):
            yield path


def partial_downloads_in(downloads: Path) -> Iterator[Path]:
    """Final paths of downloads that were started and not finished (``NAME.part`` exists)."""
    if not downloads.is_dir():
        return
    for path in sorted(downloads.glob("*" + PART_SUFFIX)):
        yield path.with_name(path.name.removesuffix(PART_SUFFIX))
