"""Where an export's files go: a local folder, or a prefix in object storage.

Every file is made locally, in ``work``, and then published under its final name:

- :class:`Folder`, a local export folder: ``work`` is the folder itself; the format writers write
  under temporary names and rename into place, so publishing only reports what is there.
- :class:`BucketFolder`, a prefix of a bucket (``s3://bucket/imagenet-wds``): ``work`` is a local
  spool under the root; a made file is uploaded whole under its final key (a PUT or a multipart
  upload completed at its end: an object appears whole or not at all), its record
  ``.published/NAME.json`` (size, xxh3, ETag) is written after it, and the local copy is deleted,
  so the spool holds only the files being made. A re-run keeps an object whose size and ETag
  are the ones its record holds, from one listing of the prefix. One writer holds the prefix's
  lease (:mod:`imagenet_cli.leases`) instead of a lock file.

The export code asks a destination, never the disk, whether a file is finished, and writes its
small files (the claim, ``export.json``, ``_info.json``) through it.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import shutil
import threading
from collections.abc import Callable, Container, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from .. import atomic, locks, owned
from ..errors import OverwriteRefusedError
from ..hashing import hash_file
from ..leases import LEASE, Lease, leased
from ..storage import Bucket, ObjectInfo

log = logging.getLogger(__name__)

UPLOADS_AHEAD = 2  # files uploading while the next are made: what the spool holds besides those
PUBLISHED = ".published"  # in a bucket: each published file's record (size, xxh3, ETag)
SPOOL = ".spool"  # under ROOT/exports: the local work folders of exports to buckets


@dataclass(frozen=True)
class Finished:
    """A file under its final name: its size, and its xxh3 where known without reading it."""

    bytes: int
    xxh3_64: str | None


class Destination(Protocol):
    work: Path  # where files are made before they are published

    def __str__(self) -> str: ...

    def held(self, wait: bool) -> contextlib.AbstractContextManager[None]:
        """One writer: the folder's lock, or the prefix's lease."""

    def claim(self, name: str, wanted: dict[str, Any], conflict: Callable[[dict[str, Any]], str]) -> None:
        """Claim the destination for ``wanted`` (see :mod:`imagenet_cli.owned`)."""

    def finished(self, name: str) -> Finished | None:
        """The file ``name`` under its final name, complete; None when it is not."""

    def publish(self, name: str, xxh3_64: str | None) -> Finished:
        """``work/name``, made complete, under its final name; its xxh3 is read back when not given."""

    def open(self, name: str) -> contextlib.AbstractContextManager[BinaryIO]:
        """A finished file, for reading."""

    def read_text(self, name: str) -> str | None: ...

    def write_text(self, name: str, text: str) -> None:
        """A small file, whole under its final name at once."""

    def remove_prefix(self, prefix: str) -> None:
        """Every file under ``prefix/``."""

    def remove_outputs(self, keep: Container[str]) -> int:
        """Every file but those whose first path component is in ``keep``; how many were removed."""


class Folder:
    """A local export folder."""

    def __init__(self, path: Path) -> None:
        self.path = self.work = Path(path)

    def __str__(self) -> str:
        return str(self.path)

    @contextlib.contextmanager
    def held(self, wait: bool) -> Iterator[None]:
        with locks.writing(self.path, wait):
            atomic.remove_temporaries(self.path, recursive=True)  # what killed runs left half-written
            yield

    def claim(self, name: str, wanted: dict[str, Any], conflict: Callable[[dict[str, Any]], str]) -> None:
        owned.own(self.path, name, command="export", wanted=wanted, conflict=conflict)

    def finished(self, name: str) -> Finished | None:
        path = self.path / name
        return Finished(path.stat().st_size, None) if path.is_file() else None

    def publish(self, name: str, xxh3_64: str | None) -> Finished:
        path = self.path / name  # the writer renamed it into place
        return Finished(path.stat().st_size, xxh3_64 or hash_file(path, ["xxh3_64"])["xxh3_64"])

    def open(self, name: str) -> contextlib.AbstractContextManager[BinaryIO]:
        return open(self.path / name, "rb")

    def read_text(self, name: str) -> str | None:
        try:
            return (self.path / name).read_text()
        except FileNotFoundError:
            return None

    def write_text(self, name: str, text: str) -> None:
        atomic.write_text(self.path / name, text)

    def remove_prefix(self, prefix: str) -> None:
        shutil.rmtree(self.path / prefix, ignore_errors=True)

    def remove_outputs(self, keep: Container[str]) -> int:
        removed = 0
        for item in self.path.iterdir():
            if item.name in keep:
                continue
            if item.is_dir():
                shutil.rmtree(item)
            else:
                item.unlink()
            removed += 1
        return removed


class BucketFolder:
    """A prefix of a bucket, its files made in a local spool and uploaded whole."""

    def __init__(self, bucket: Bucket, spool: Path) -> None:
        self.bucket, self.work = bucket, spool
        self.lease: Lease | None = None
        self.objects: dict[str, ObjectInfo] = {}  # the prefix as listed when the lease was taken
        self.uploading: collections.deque[Future[None]] = collections.deque()
        self.uploads: ThreadPoolExecutor | None = None
        self.queue = threading.Lock()  # publish runs on several threads when a tree is exported

    def __str__(self) -> str:
        return self.bucket.url

    @classmethod
    def under(cls, root: Path, bucket: Bucket) -> BucketFolder:
        """The destination ``bucket``, spooled in ``root/exports/.spool/<scheme>/<bucket>/<prefix>``."""
        scheme, _, rest = bucket.url.partition("://")
        return cls(bucket, root / "exports" / SPOOL / scheme / rest)

    @contextlib.contextmanager
    def held(self, wait: bool) -> Iterator[None]:
        self.work.mkdir(parents=True, exist_ok=True)
        with (
            leased(self.bucket, wait) as lease,
            locks.writing(self.work, wait),
            ThreadPoolExecutor(UPLOADS_AHEAD, thread_name_prefix="upload") as self.uploads,
        ):
            self.lease = lease
            atomic.remove_temporaries(self.work, recursive=True)
            self.bucket.abort_uploads()  # a killed run's parts: no object, but kept and billed
            self.objects = self.bucket.listing()
            try:
                yield
                with self.queue:
                    self._settle(0)
            finally:
                for pending in self.uploading:  # stopped: what has not started never will
                    pending.cancel()
                self.uploading.clear()
                self.lease = None
            shutil.rmtree(self.work, ignore_errors=True)  # done: every file is in the bucket

    def claim(self, name: str, wanted: dict[str, Any], conflict: Callable[[dict[str, Any]], str]) -> None:
        text = self.bucket.read_text(name)
        if text is None:
            if any(not key.startswith(".") for key in self.objects):
                raise OverwriteRefusedError(
                    f"{self.bucket} holds objects not written by export; it will not be written into", "out"
                )
            self.write_text(name, json.dumps(wanted) + "\n")
        elif json.loads(text) != wanted:
            raise OverwriteRefusedError(conflict(json.loads(text)), "out")

    def finished(self, name: str) -> Finished | None:
        there = self.objects.get(name)
        if there is None:
            return None
        try:
            record = json.loads(self.bucket.read_text(_record_of(name)) or "null")
        except ValueError:
            record = None
        if not isinstance(record, dict) or (record.get("bytes"), record.get("etag")) != (there.size, there.etag):
            return None  # uploaded, but its record was not written after it (or it changed since)
        return Finished(there.size, record["xxh3_64"])

    def publish(self, name: str, xxh3_64: str | None) -> Finished:
        """Uploaded on a thread of its own while the next files are made; at most
        ``UPLOADS_AHEAD`` wait in the spool, and an upload that failed fails the next publish."""
        self._check_lease()
        local = self.work / name
        size, digest = local.stat().st_size, xxh3_64 or hash_file(local, ["xxh3_64"])["xxh3_64"]
        assert self.uploads is not None, "publish while the destination is held"
        with self.queue:
            self._settle(UPLOADS_AHEAD - 1)
            self.uploading.append(self.uploads.submit(self._upload, name, local, digest))
        return Finished(size, digest)

    def _upload(self, name: str, local: Path, digest: str) -> None:
        """The object, then its record: an object without a record is made again by a re-run."""
        self._check_lease()
        self.adopt(name, self.bucket.upload(local, name), digest)
        local.unlink()

    def adopt(self, name: str, info: ObjectInfo, xxh3_64: str) -> Finished:
        """An object under its final key, uploaded here or by a Dask worker: its record, written
        after it. An object without a record is made again by a re-run."""
        self._check_lease()
        self.bucket.write_text(
            _record_of(name), json.dumps({"bytes": info.size, "xxh3_64": xxh3_64, "etag": info.etag})
        )
        self.objects[name] = info
        return Finished(info.size, xxh3_64)

    def _settle(self, pending: int) -> None:
        """Wait until at most ``pending`` uploads are under way, raising what any of them raised
        (called holding ``queue``)."""
        while len(self.uploading) > pending:
            self.uploading.popleft().result()

    @contextlib.contextmanager
    def open(self, name: str) -> Iterator[BinaryIO]:
        with self.bucket.open(name) as file:
            yield file

    def read_text(self, name: str) -> str | None:
        return self.bucket.read_text(name)

    def write_text(self, name: str, text: str) -> None:
        """A file of the export (``export.json``, ``_info.json``) only once every file before it is
        uploaded: the record written last names files that are there. Hidden bookkeeping at once."""
        self._check_lease()
        if not name.startswith("."):
            with self.queue:
                self._settle(0)
        info = self.bucket.write_bytes(name, text.encode("utf-8"))
        self.objects[name] = info

    def remove_prefix(self, prefix: str) -> None:
        shutil.rmtree(self.work / prefix, ignore_errors=True)
        self._remove([key for key in self.bucket.listing() if key.startswith(prefix + "/")])

    def remove_outputs(self, keep: Container[str]) -> int:
        doomed = [key for key in self.bucket.listing() if key.split("/", 1)[0] not in keep and key != LEASE]
        self._remove(doomed)
        return len(doomed)

    def _remove(self, names: list[str]) -> None:
        self._check_lease()
        self.bucket.remove(names)
        for name in names:
            self.objects.pop(name, None)

    def _check_lease(self) -> None:
        if self.lease is not None:
            self.lease.check()


def _record_of(name: str) -> str:
    return f"{PUBLISHED}/{name}.json"
