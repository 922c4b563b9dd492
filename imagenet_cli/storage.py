"""Object storage: a prefix in a bucket (any fsspec URL, ``s3://``, ``gs://``, …) that exports are
written to whole (:class:`Bucket`), and archives in a bucket read by range where a path to a
local archive would be read (:class:`RemoteFolder`, :class:`RemoteFile`, :class:`RangedReader`;
:data:`Archive` is either kind of input).

A bucket has no rename and no half-written object: a PUT (or a completed multipart upload) makes
an object appear whole under its key or not at all, which is what an atomic rename gives on a
disk. So a file is made locally under a temporary name and then uploaded under its final key;
an upload that dies leaves nothing there (its parts, at most, which :meth:`Bucket.abort_uploads`
clears). Every call to the store goes through :func:`_translated`, so the errors a user meets —
no credentials, access denied, no such bucket, an endpoint that does not answer — are one line
each, and nothing of the credentials is ever part of a message.

fsspec and the store's own package (s3fs for ``s3://``, gcsfs for ``gs://``) are imported only
when a URL is used; a missing one is named with the extra that brings it. Credentials and
endpoints come from where those packages look (the botocore chain, ``AWS_ENDPOINT_URL``, fsspec's
config files and ``FSSPEC_*`` variables) and from ``storage_options``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from .errors import (
    InputChangedError,
    InvalidArgumentError,
    MissingExtraError,
    StorageAccessDeniedError,
    StorageCredentialsError,
    StorageError,
    StorageNotFoundError,
    StorageUnreachableError,
    StorageUnsupportedError,
)

log = logging.getLogger(__name__)

# The package each kind of URL needs, and the extra of ours that installs it.
EXTRAS = {"s3": ("s3fs", "s3"), "s3a": ("s3fs", "s3"), "gs": ("gcsfs", "gcs"), "gcs": ("gcsfs", "gcs")}


def is_url(location: str | Path) -> bool:
    """A location in object storage (``s3://bucket/prefix``); a path or a ``file://`` URL is local."""
    scheme = urlsplit(str(location)).scheme if isinstance(location, str) else ""
    return len(scheme) > 1 and scheme != "file"  # one letter: a Windows drive


def local_or_url(location: str | Path) -> Path | str:
    """A ``file://`` URL or a path as a Path; any other URL as it is."""
    if isinstance(location, Path):
        return location
    if location.startswith("file://"):
        return Path(urlsplit(location).path)
    return location if is_url(location) else Path(location)


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` pairs as fsspec storage options; a value that reads as JSON (a number, true,
    an object) is taken as that, so ``anon=true`` or ``client_kwargs={"region_name": "eu"}`` work."""
    options: dict[str, Any] = {}
    for pair in pairs or ():
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise InvalidArgumentError(f"{key or pair!r} is not KEY=VALUE", "storage_options")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options


@dataclass(frozen=True)
class ObjectInfo:
    size: int
    etag: str  # changes whenever the object's bytes do (a version, for stores without ETags)


class Bucket:
    """A prefix of a bucket: the objects under it named relative to it (``data/x.parquet``)."""

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self.options = tuple(sorted((storage_options or {}).items()))  # for a worker to open it too
        self.fs, self.root = _filesystem(self.url, dict(storage_options or {}))

    def __str__(self) -> str:
        return self.url

    def key(self, name: str) -> str:
        return f"{self.root}/{name}"

    def listing(self) -> dict[str, ObjectInfo]:
        """Every object under the prefix, by name: one listing, however many objects."""
        found = self._unless_missing(lambda: self.fs.find(self.root, detail=True)) or {}
        files = ((path, entry) for path, entry in found.items() if entry.get("type") != "directory")
        return {path[len(self.root) + 1 :]: _info(entry) for path, entry in files}

    def info(self, name: str) -> ObjectInfo | None:
        found = self._unless_missing(lambda: self.fs.info(self.key(name)))
        return None if found is None else _info(found)

    def read_bytes(self, name: str) -> bytes | None:
        found = self._unless_missing(lambda: self.fs.cat_file(self.key(name)))
        return None if found is None else bytes(found)

    def read_text(self, name: str) -> str | None:
        data = self.read_bytes(name)
        return None if data is None else data.decode("utf-8")

    def write_bytes(self, name: str, data: bytes, **conditions: str) -> ObjectInfo:
        """One PUT: the object appears whole. ``conditions`` (``IfNoneMatch="*"``, ``IfMatch=ETAG``)
        make it conditional; a condition that fails raises :class:`FileExistsError`. Only S3's
        package takes them: elsewhere they raise :class:`StorageUnsupportedError`."""
        if conditions and not _speaks_s3(self.fs):
            scheme = self.url.split("://", 1)[0]
            raise StorageUnsupportedError(
                f"{scheme}:// is not written to: one writer per prefix needs conditional writes, "
                "which imagenet-cli makes on S3 and S3-compatible stores only"
            )
        with _translated(self.url):
            try:
                answer = self.fs.pipe_file(self.key(name), data, **conditions)
            except OSError as error:
                if conditions and _precondition_failed(error):
                    raise FileExistsError(self.key(name)) from None
                raise
        if isinstance(answer, dict) and answer.get("ETag"):  # S3 answers a PUT with the new ETag
            return ObjectInfo(len(data), str(answer["ETag"]).strip('"'))
        return self.info(name) or ObjectInfo(len(data), "")

    def write_text(self, name: str, text: str) -> None:
        self.write_bytes(name, text.encode("utf-8"))

    def upload(self, local: Path, name: str) -> ObjectInfo:
        """``local`` under ``name``: in one PUT, or as a multipart upload completed only at its end."""
        with _translated(self.url):
            self.fs.put_file(str(local), self.key(name))
        info = self.info(name)
        if info is None or info.size != local.stat().st_size:
            raise StorageError(f"{self.url}/{name}: the upload did not arrive whole")
        return info

    def download(self, name: str, local: Path) -> None:
        with _translated(self.url):
            self.fs.get_file(self.key(name), str(local))

    def open(self, name: str) -> Any:
        """A file object reading ``name`` sequentially (in large blocks)."""
        with _translated(self.url):
            return self.fs.open(self.key(name), "rb")

    def remove(self, names: list[str]) -> None:
        if names:
            with _translated(self.url):
                self.fs.rm([self.key(name) for name in names])

    def abort_uploads(self) -> int:
        """Abort the multipart uploads under the prefix that were never completed (a killed run's):
        they hold no object, but a store keeps and bills their parts. Only S3 has them."""
        call = getattr(self.fs, "call_s3", None)
        if call is None:
            return 0
        bucket, _, prefix = self.root.partition("/")
        with _translated(self.url):
            pending = call("list_multipart_uploads", Bucket=bucket, Prefix=prefix + "/").get("Uploads", [])
            for upload in pending:
                call("abort_multipart_upload", Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        if pending:
            log.info("%s: aborted %d unfinished uploads", self.url, len(pending))
        return len(pending)

    def _unless_missing(self, call: Callable[[], Any]) -> Any:
        """What ``call`` returns; None where it finds no such object."""
        try:
            with _translated(self.url):
                return call()
        except FileNotFoundError:
            return None


READ_ATTEMPTS = 5  # a ranged read that fails is tried again from the byte it reached, this often
CHUNK = 8 << 20  # bytes one buffered read of an archive asks for: a class tar in a few requests
PAST_END = 64 << 10  # what one read past a region's planned end may fetch


@dataclass(frozen=True)
class RemoteFile:
    """An object of a bucket standing where a path to an archive would: listed once by the
    planner, then read by range by whichever process runs a shard (it is small and picklable; each
    process opens its own connection). ``exists`` False: a name the folder does not hold."""

    url: str
    size: int
    etag: str
    options: tuple[tuple[str, Any], ...] = field(default=(), repr=False)  # storage options: may hold a secret
    exists: bool = True

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return self.url

    def is_file(self) -> bool:
        return self.exists

    def bucket(self) -> Bucket:
        return bucket_for(self.url.rsplit("/", 1)[0], self.options)

    def open(self, buffered: bool = True, end: int | None = None) -> BinaryIO:
        """The object as a read-only, seekable file whose reads are ranged GETs: buffered in
        ``CHUNK`` pieces for streaming, or unbuffered for reading headers here and there. ``end``:
        no read goes past this byte (a region's end), so the buffer fetches nothing beyond it."""
        raw = RangedReader(self, self.size if end is None else min(end, self.size), read_ahead=buffered)
        return io.BufferedReader(raw, CHUNK) if buffered else raw  # type: ignore[return-value]

    def now(self) -> ObjectInfo | None:
        return self.bucket().info(self.name)


_BUCKETS: dict[tuple[Any, ...], Bucket] = {}
_STORE_VARIABLES = ("AWS_", "FSSPEC_", "GOOGLE_", "GCSFS_")  # what the stores' packages read


def bucket_for(folder: str, options: tuple[tuple[str, Any], ...] = ()) -> Bucket:
    """This process's connection to ``folder`` (a forked worker makes its own: a client's
    connections and event loop do not survive a fork), made anew when the variables that
    configure the store change (a library caller pointing ``AWS_ENDPOINT_URL`` elsewhere)."""
    configured = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(_STORE_VARIABLES)))
    key = (os.getpid(), folder.rstrip("/"), options, configured)
    if key not in _BUCKETS:
        _BUCKETS[key] = Bucket(folder, dict(options))
    return _BUCKETS[key]


class RemoteFolder:
    """A prefix of a bucket holding archives, as ``ROOT/downloads`` holds them: one listing."""

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.options = tuple(sorted((storage_options or {}).items()))
        self.bucket = bucket_for(url, self.options)  # the one its files read through, here
        self.url = self.bucket.url
        self.objects = self.bucket.listing()

    def __str__(self) -> str:
        return self.url

    def __truediv__(self, name: str) -> RemoteFile:
        found = self.objects.get(name)
        url = f"{self.url}/{name}"
        if found is None:
            return RemoteFile(url, 0, "", self.options, exists=False)
        return RemoteFile(url, found.size, found.etag, self.options)


Archive = Path | RemoteFile  # an input file, on a disk or in a bucket
# Failures another try would meet again.
_FINAL = (FileNotFoundError, StorageCredentialsError, StorageAccessDeniedError, StorageNotFoundError)


def open_archive(path: Archive, buffered: bool = True, end: int | None = None) -> BinaryIO:
    """An input for reading: a local file, or an object read by range (``buffered`` False: every
    read one request of just its bytes, for headers read here and there; ``end``: nothing past it
    is fetched)."""
    return path.open(buffered, end) if isinstance(path, RemoteFile) else open(path, "rb")


def archive_size(path: Archive) -> int:
    return path.size if isinstance(path, RemoteFile) else path.stat().st_size


class RangedReader(io.RawIOBase):
    """Reads of an object by range, each from the position reached: a transient failure (a reset,
    a 503 the client gave up on) is tried again from there, with backoff.

    ``read_ahead`` (a buffered reader streaming a region): while the caller works on one piece, the
    next one up to ``end`` is fetched on a thread of the reader's own, so the store's latency and
    transfer overlap the decoding instead of adding to it. A seek within that piece takes its
    bytes; one elsewhere drops it. Nothing past ``end`` is read ahead."""

    def __init__(self, remote: RemoteFile, end: int, read_ahead: bool = False) -> None:
        self.remote, self.position, self.end = remote, 0, end
        self.fs, self.key = remote.bucket().fs, remote.bucket().key(remote.name)
        self.read_ahead = read_ahead
        self.ahead: tuple[int, int, Future[bytes]] | None = None  # start, end, the bytes coming
        self.fetcher: ThreadPoolExecutor | None = None

    def close(self) -> None:
        if self.fetcher is not None:
            self.fetcher.shutdown(wait=False, cancel_futures=True)
        self.ahead = None
        super().close()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.remote.size}[whence]
        self.position = max(0, base + offset)
        return self.position

    def readinto(self, buffer: Any) -> int:
        # Up to ``end`` as asked; past it (a member's header longer than planned for), in small
        # reads of just what is asked, so a buffer never fetches far beyond where it was told.
        ahead = self.end - self.position
        wanted = min(len(buffer), ahead if ahead > 0 else PAST_END, self.remote.size - self.position)
        if wanted <= 0:
            return 0
        data = self._fetched_ahead(self.position, wanted) or self._fetch(self.position, self.position + wanted)
        buffer[: len(data)] = data
        self.position += len(data)
        if self.read_ahead and self.position < self.end and self.ahead is None:
            start = self.position
            self.fetcher = self.fetcher or ThreadPoolExecutor(1, thread_name_prefix="read-ahead")
            ahead_end = min(start + wanted, self.end)
            self.ahead = (start, ahead_end, self.fetcher.submit(self._fetch, start, ahead_end))
        return len(data)

    def _fetched_ahead(self, start: int, wanted: int) -> bytes | None:
        """At most ``wanted`` bytes from ``start`` out of the piece read ahead, when it holds them;
        what it holds beyond stays for the next read."""
        if self.ahead is None:
            return None
        begin, end, coming = self.ahead
        if not begin <= start < end:
            self.ahead = None  # a seek elsewhere
            return None
        data = coming.result()[start - begin :]
        if len(data) > wanted:
            rest: Future[bytes] = Future()
            rest.set_result(data[wanted:])
            self.ahead = (start + wanted, end, rest)
            return data[:wanted]
        self.ahead = None
        return data

    def _fetch(self, start: int, end: int) -> bytes:
        return _fetched(self.fs, self.key, self.remote.url, start, end, self.remote.etag)


def read_range(url: str, start: int, end: int, options: tuple[tuple[str, Any], ...] = ()) -> bytes:
    """Bytes ``start`` to ``end`` of the object ``url``, in one ranged read (tried again on a
    transient failure), through this process's connection to its folder."""
    folder, name = url.rsplit("/", 1)
    bucket = bucket_for(folder, options)
    data = _fetched(bucket.fs, bucket.key(name), url, start, end)
    if len(data) != end - start:
        raise StorageError(f"{url} ends before byte {end:,}")
    return data


def _fetched(fs: Any, key: str, url: str, start: int, end: int, etag: str = "") -> bytes:
    for attempt in range(READ_ATTEMPTS):
        try:
            with _translated(url):
                return _ranged_get(fs, key, url, start, end, etag)
        except (*_FINAL, InputChangedError):
            raise
        except Exception as error:  # a reset, a body cut short, a 503 the client gave up on
            if attempt == READ_ATTEMPTS - 1:
                raise
            log.info("%s: read at byte %d failed (%s); trying again", url.rsplit("/", 1)[-1], start, error)
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _ranged_get(fs: Any, key: str, url: str, start: int, end: int, etag: str) -> bytes:
    """One ranged read. On S3, of the version ``etag`` names only (If-Match): an object rewritten
    while a shard reads it fails that read, rather than give bytes of two versions. Other stores
    are checked when each shard opens its input."""
    if not etag or not _speaks_s3(fs):
        return bytes(fs.cat_file(key, start=start, end=end))
    from fsspec.asyn import sync

    bucket, name = key.split("/", 1)
    try:
        return bytes(sync(fs.loop, _s3_ranged_get, fs, bucket, name, f"bytes={start}-{end - 1}", f'"{etag}"'))
    except OSError as error:
        if _precondition_failed(error):
            name = url.rsplit("/", 1)[-1]
            raise InputChangedError(f"{name} was rewritten while it was read; it is read again") from None
        raise


def _speaks_s3(fs: Any) -> bool:
    """s3fs: the one store package whose requests take S3's conditions (If-Match, If-None-Match)."""
    return hasattr(fs, "_call_s3")


async def _s3_ranged_get(fs: Any, bucket: str, key: str, byte_range: str, etag: str) -> bytes:
    answer = await fs._call_s3("get_object", Bucket=bucket, Key=key, Range=byte_range, IfMatch=etag)
    try:
        return bytes(await answer["Body"].read())
    finally:
        answer["Body"].close()


def _filesystem(url: str, options: dict[str, Any]) -> tuple[Any, str]:
    scheme = urlsplit(url).scheme
    try:
        import fsspec
        from fsspec.registry import known_implementations
    except ImportError:
        package, extra = EXTRAS.get(scheme, ("fsspec", "s3"))
        raise MissingExtraError.of(f"{scheme}:// storage", package, extra) from None
    if scheme not in known_implementations and scheme not in fsspec.registry:
        raise InvalidArgumentError(f"{scheme}:// is not a kind of storage fsspec knows", "out")
    # A filesystem of our own, with no listings kept: fsspec shares instances (and their caches of
    # listings and ETags) across a process, and an object another process rewrote must be seen.
    options = {"skip_instance_cache": True, "use_listings_cache": False, **options}
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
    except ImportError:
        if scheme in EXTRAS:
            package, extra = EXTRAS[scheme]
            raise MissingExtraError.of(f"{scheme}:// storage", package, extra) from None
        package = str(known_implementations.get(scheme, {}).get("class", "fsspec")).split(".", 1)[0]
        raise MissingExtraError(f"{scheme}:// storage needs {package}: pip install {package}") from None
    except TypeError as error:  # an option the store does not take
        raise InvalidArgumentError(f"{scheme}:// does not take that option ({error})", "storage_options") from None
    return fs, str(path).rstrip("/")


def _info(entry: Mapping[str, Any]) -> ObjectInfo:
    tag = entry.get("ETag") or entry.get("etag") or entry.get("md5Hash") or entry.get("generation") or ""
    return ObjectInfo(int(entry.get("size") or 0), str(tag).strip('"'))


def _precondition_failed(error: OSError) -> bool:
    return isinstance(error, FileExistsError) or "pre-condition" in str(error) or "Precondition" in str(error)


@contextlib.contextmanager
def _translated(url: str) -> Iterator[None]:
    """The store's errors as ours, one line each; the message never holds a credential."""
    bucket = "/".join(url.split("/", 3)[:3])
    try:
        yield
    except FileNotFoundError as error:
        if "bucket does not exist" in str(error) or "NoSuchBucket" in str(error):
            raise StorageNotFoundError(f"{bucket}: no such bucket") from None
        raise  # a missing object: asked about by the caller
    except FileExistsError:
        raise  # a condition not met: asked about by the caller
    except PermissionError as error:
        raise StorageAccessDeniedError(f"{bucket}: access denied ({_reason(error)})") from None
    except OSError as error:
        text = str(error)
        if "NoSuchBucket" in text or "bucket does not exist" in text:
            raise StorageNotFoundError(f"{bucket}: no such bucket") from None
        if "InvalidAccessKeyId" in text or "SignatureDoesNotMatch" in text:
            raise StorageCredentialsError(f"{bucket}: the store does not accept these credentials") from None
        raise
    except Exception as error:  # the store's own exceptions, told apart by name (no import of them)
        name = type(error).__name__
        if name in ("NoCredentialsError", "PartialCredentialsError", "DefaultCredentialsError"):
            raise StorageCredentialsError(f"{bucket}: no credentials were found") from None
        if name in ("EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError", "ConnectionError"):
            raise StorageUnreachableError(f"{bucket}: the storage endpoint does not answer") from None
        raise


def _reason(error: OSError) -> str:
    return str(error.args[-1] if error.args else error).split("\n", 1)[0][:120]
