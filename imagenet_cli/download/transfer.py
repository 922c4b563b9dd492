"""The HTTP engine: ranged, resumable, parallel, hashing as it goes.

One file is fetched in three steps:

1. :func:`plan_transfer` probes the server (``GET`` of byte 0 only: signed storage URLs refuse
   ``HEAD``) for the file's identity — size, ETag or Last-Modified, Range support, any ``x-goog-hash``
   MD5 — and reads what an earlier run left in ``NAME.part`` and its journal ``NAME.part.json``.
2. :func:`run_transfer` records the identity in the journal before byte one, then fetches the
   missing chunks over several connections, each chunk a ``Range`` request carrying ``If-Range``,
   written with ``pwrite`` into the preallocated ``.part``. A chunk counts as done only when its
   bytes are on disk and the journal says so; file size never means progress. A hasher follows the
   contiguous done prefix, so MD5 and xxh3 are ready moments after the last byte arrives.
3. Only a complete file whose hash matches the published MD5 is renamed to its final name.

Servers without Range support get one plain stream (resume then restarts from zero). A 200 where a
206 was asked for, a 416, or a different ETag means the file changed: the partial bytes are
discarded and the file starts over — two versions are never spliced.
"""

from __future__ import annotations

import base64
import dataclasses
import errno
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar
from urllib.parse import urlsplit, urlunsplit

from .. import atomic
from ..errors import (
    AccessDeniedError,
    ChecksumMismatchError,
    DownloadError,
    InsufficientSpaceError,
    RemoteChangedError,
    RemoteNotFoundError,
)
from ..hashing import ALGORITHMS, DEFAULT_ALGORITHMS, Digest
from ..layout import free_bytes
from ..progress import SILENT, Advance, Progress
from ..records import JOURNAL_SUFFIX, MISMATCH_SUFFIX, PART_SUFFIX

if TYPE_CHECKING:
    import http.cookiejar

    import httpx

T = TypeVar("T")

log = logging.getLogger(__name__)

MIN_CHUNK = 1 << 20
MAX_CHUNK = 64 << 20
HASH_READ_BYTES = 4 << 20
SPACE_MARGIN = 256 << 20  # left free beyond the download itself: logs, temp files, the journal
RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}


# --- identity ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Remote:
    """A file to fetch and what its publisher says it is."""

    name: str
    url: str
    expected: dict[str, str] = field(default_factory=dict)  # {algorithm: hex}, checked before the final name
    size: int | None = None  # the published size
    details: dict[str, str] = field(default_factory=dict)  # what else it says (the hub's commit), recorded


@dataclass(frozen=True)
class Identity:
    """What the server says the file is; two responses are the same file only if these agree."""

    url: str  # without the query string: signed URLs change, the object does not
    size: int | None
    etag: str | None
    last_modified: str | None
    ranges: bool
    md5: str | None = None  # from x-goog-hash, when the storage publishes one

    @property
    def validator(self) -> str | None:
        """What ``If-Range`` carries: a strong ETag, else Last-Modified."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified

    def same_file(self, other: Identity) -> bool:
        if self.size != other.size or self.validator is None:
            return False
        if self.etag or other.etag:
            return self.etag == other.etag
        return self.last_modified == other.last_modified


def url_without_query(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


# --- retries -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff with full jitter; the budget counts failures without progress."""

    attempts: int = 8
    total_attempts: int = 64  # failures of one operation in all, progress or not: no endless retrying
    base_delay: float = 1.0
    max_delay: float = 60.0
    max_retry_after: float = 900.0

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (failures - 1)))


class Retryable(Exception):
    """A failure worth another try: a dropped connection, HTTP 429 or 5xx."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class _Expired(Exception):
    """403 from storage on a URL that can be renewed (signed URLs expire)."""


class _Stopped(Exception):
    """Another part of the transfer failed or was interrupted; this worker stops."""


class _RangesRefused(Exception):
    """A range request answered with the whole, unchanged file (some servers ignore If-Range)."""


def retry(
    operation: Callable[[], T],
    policy: RetryPolicy,
    what: Callable[[], str],
    progressed: Callable[[], bool] = lambda: False,
    stop: threading.Event | None = None,
    renew: Callable[[], None] | None = None,
) -> T:
    """Run ``operation`` until it succeeds, retrying what is worth retrying (:class:`Retryable`):
    the one retry loop of every HTTP call this package makes. ``what()`` names the server in
    messages.

    ``progressed`` tells whether bytes arrived since the last failure; if so the failure budget
    starts again, so a long download survives many brief outages but not a dead server. An
    expired signed URL is renewed (``renew``) up to three times in a row without counting as a
    failure. ``stop`` ends the waiting at once when another part of the transfer failed.
    """
    stop = stop or threading.Event()
    failures = renewals = total = 0
    while True:
        if stop.is_set():
            raise _Stopped()
        try:
            return operation()
        except _Expired as error:
            renewals = 1 if progressed() else renewals + 1
            if renew is None or renewals > 3:
                raise AccessDeniedError(f"{what()} keeps answering HTTP 403") from error
            renew()
        except Retryable as error:
            failures = 1 if progressed() else failures + 1
            total += 1
            if total > policy.total_attempts:
                raise DownloadError(f"{what()}: gave up after {total - 1} failed attempts ({error})") from error
            if failures > policy.attempts:
                raise DownloadError(
                    f"{what()}: gave up after {policy.attempts} failed attempts in a row ({error})"
                ) from error
            delay = policy.delay(failures, error.retry_after)
            log.info("%s: %s; retrying in %.1fs", what(), error, delay)
            if stop.wait(delay):
                raise _Stopped() from error


def retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header in seconds: a number of seconds, or an HTTP date."""
    if value is None:
        return None
    if value.strip().isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


# --- the endpoint: a client, the current URL, and how to renew it --------------------------------


def http_client(
    connections: int,
    headers: dict[str, str] | None = None,
    cookies: http.cookiejar.CookieJar | None = None,
    home: str | None = None,
    trusted_hosts: frozenset[str] = frozenset(),
) -> httpx.Client:
    """The HTTP client of every download: our User-Agent, redirects followed, a pool of
    ``connections``, and timeouts that notice a dead connection without cutting a slow one.

    ``headers`` and ``cookies`` are the user's credentials: they go to ``home`` (the origin of the
    URL they were given for) and to ``trusted_hosts`` only. A redirect elsewhere gets neither, nor
    an ``Authorization``, as curl behaves; httpx alone would forward every header but that one.
    """
    import httpx

    from .. import __version__

    secret = {name.lower() for name in headers or {}} | {"authorization", "cookie", "proxy-authorization"}
    home_origin = _origin(httpx.URL(home)) if home else None

    def keep_credentials_home(request: httpx.Request) -> None:
        if home_origin is None or _origin(request.url) == home_origin or request.url.host in trusted_hosts:
            for name, value in (headers or {}).items():  # httpx drops Authorization on any redirect
                request.headers.setdefault(name, value)
            return
        for name in secret:
            request.headers.pop(name, None)

    return httpx.Client(
        headers={"User-Agent": f"imagenet-cli/{__version__}", **(headers or {})},
        cookies=cookies,
        follow_redirects=True,
        timeout=httpx.Timeout(60.0, connect=30.0),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        event_hooks={"request": [keep_credentials_home]},
    )


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """Scheme, host and port: a change of any of them is a change of host, as curl counts it."""
    return url.scheme, url.host, url.port


@dataclass
class Endpoint:
    client: httpx.Client
    url: str
    renew: Callable[[], str] | None = None  # a fresh signed URL, for sources whose URLs expire
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    stop: threading.Event = field(default_factory=threading.Event)
    answered: bool = False  # the server has answered once: from then on, connection errors are retried
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def get(self, headers: dict[str, str]) -> Iterator[httpx.Response]:
        """A streamed GET of the current URL; transport errors and retryable statuses raise Retryable."""
        import httpx

        url = self.url
        try:
            with self.client.stream("GET", url, headers={"Accept-Encoding": "identity", **headers}) as response:
                self.answered = True
                self._check_status(response, url)
                yield response
        except httpx.ConnectError as error:
            if not self.answered:  # no such host, or nothing listening: retrying will not change that
                host = urlsplit(url).netloc
                raise DownloadError(f"cannot connect to {host} ({error or type(error).__name__})") from error
            raise Retryable(f"{type(error).__name__}: {error}") from error
        except httpx.TransportError as error:
            raise Retryable(f"{type(error).__name__}: {error}") from error
        except httpx.HTTPError as error:  # too many redirects, an invalid URL: retrying cannot help
            raise DownloadError(f"{url_without_query(url)}: {error}") from error

    def _check_status(self, response: httpx.Response, url: str) -> None:
        status = response.status_code
        if status in RETRYABLE_STATUS:
            raise Retryable(f"HTTP {status}", retry_after(response.headers.get("Retry-After")))
        if status in (401, 403):
            if self.renew is not None and status == 403:
                raise _Expired(url)
            raise AccessDeniedError(f"{url_without_query(url)} answered HTTP {status} (access denied)")
        if status in (404, 410):
            raise RemoteNotFoundError(f"{url_without_query(url)} answered HTTP {status} (no such file)")
        if status >= 400 and status != 416:  # 416 means the file changed: the caller decides
            raise DownloadError(f"{url_without_query(url)} answered HTTP {status}")

    def retrying(self, operation: Callable[[], T], progressed: Callable[[], bool] = lambda: False) -> T:
        """``operation`` under :func:`retry`, renewing the URL when a signed one expires."""
        return retry(operation, self.policy, lambda: url_without_query(self.url), progressed, self.stop, self.renew_url)

    def renew_url(self) -> None:
        """Fetch a fresh URL once for all workers; the object behind it must be the same file."""
        stale = self.url
        with self._lock:
            if self.url != stale:  # another worker renewed it already
                return
            if self.renew is None:
                raise AccessDeniedError(f"{url_without_query(stale)} answered HTTP 403")
            log.info("%s: the signed URL expired; asking for a fresh one", url_without_query(stale))
            self.url = self.renew()


# --- probing and planning ----------------------------------------------------------------------


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


def _content_range(response: httpx.Response) -> tuple[int, int, int | None]:
    match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
    if not match:
        raise RemoteChangedError(f"{url_without_query(str(response.url))}: 206 without a usable Content-Range")
    first, last, total = match.groups()
    return int(first), int(last), None if total == "*" else int(total)


def _goog_md5(response: httpx.Response) -> str | None:
    for part in response.headers.get_list("x-goog-hash", split_commas=True):
        algorithm, _, value = part.strip().partition("=")
        if algorithm == "md5":
            return base64.b64decode(value).hex()
    return None


def probe(endpoint: Endpoint) -> Identity:
    """Ask the server what the file is, fetching at most one byte of it."""

    def once() -> Identity:
        with endpoint.get({"Range": "bytes=0-0"}) as response:
            if response.status_code not in (200, 206):
                raise DownloadError(
                    f"{url_without_query(endpoint.url)} answered HTTP {response.status_code} to a request for byte 0"
                )
            ranges = response.status_code == 206
            if ranges:
                size = _content_range(response)[2]
            else:
                length = response.headers.get("Content-Length")
                size = int(length) if length is not None else None
            return Identity(
                url=url_without_query(str(response.url)),
                size=size,
                etag=response.headers.get("ETag"),
                last_modified=response.headers.get("Last-Modified"),
                ranges=ranges and size is not None,
                md5=_goog_md5(response),
            )

    return endpoint.retrying(once)


def choose_chunk_size(size: int, connections: int) -> int:
    """About four chunks per connection, a power of two within 1–64 MiB."""
    target = max(1, size // (connections * 4))
    chunk = MIN_CHUNK
    while chunk < target and chunk < MAX_CHUNK:
        chunk *= 2
    return chunk


@dataclass
class Journal:
    """``NAME.part.json``: the identity being fetched and which chunks of ``NAME.part`` are done."""

    identity: Identity
    chunk_size: int
    done: set[int] = field(default_factory=set)

    def save(self, path: Path) -> None:
        data = {
            "identity": dataclasses.asdict(self.identity),
            "chunk_size": self.chunk_size,
            "done": sorted(self.done),
        }
        atomic.write_text(path, json.dumps(data) + "\n")

    @classmethod
    def load(cls, path: Path) -> Journal | None:
        try:
            data = json.loads(path.read_text())
            return cls(Identity(**data["identity"]), int(data["chunk_size"]), set(data["done"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("%s is unreadable; starting that file over", path)
            return None


@dataclass
class Plan:
    remote: Remote
    path: Path  # the final name
    identity: Identity
    chunk_size: int
    done: set[int]  # chunks already in .part from an earlier run

    @property
    def part(self) -> Path:
        return self.path.with_name(self.path.name + PART_SUFFIX)

    @property
    def journal(self) -> Path:
        return self.path.with_name(self.path.name + JOURNAL_SUFFIX)

    @property
    def chunks(self) -> int:
        size = self.identity.size or 0
        return -(-size // self.chunk_size)

    def chunk_span(self, index: int) -> tuple[int, int]:
        """First and last byte of a chunk, inclusive, as Range headers count."""
        first = index * self.chunk_size
        return first, min(first + self.chunk_size, self.identity.size or 0) - 1

    @property
    def have_bytes(self) -> int:
        return sum(self.chunk_span(i)[1] - self.chunk_span(i)[0] + 1 for i in self.done)

    @property
    def missing_bytes(self) -> int | None:
        return None if self.identity.size is None else self.identity.size - self.have_bytes

    @property
    def expected(self) -> dict[str, str]:
        """Digests the file must have: what the publisher says, else what the storage says."""
        from_storage = {"md5": self.identity.md5} if self.identity.md5 else {}
        return {**from_storage, **self.remote.expected}

    @property
    def algorithms(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(DEFAULT_ALGORITHMS + tuple(self.expected)))


def plan_transfer(remote: Remote, downloads: Path, endpoint: Endpoint, connections: int) -> Plan:
    """Probe the server and pick up whatever an earlier run of the same file left behind."""
    identity = probe(endpoint)
    if remote.size is not None and identity.size is not None and remote.size != identity.size:
        raise RemoteChangedError(
            f"{identity.url} is {identity.size:,} bytes; the published {remote.name} is {remote.size:,} bytes"
        )
    path = downloads / remote.name
    journal = Journal.load(path.with_name(path.name + JOURNAL_SUFFIX))
    part = path.with_name(path.name + PART_SUFFIX)
    if journal and identity.ranges and journal.identity.same_file(identity) and part.exists():
        log.info("%s: resuming, %d chunks already here", remote.name, len(journal.done))
        return Plan(remote, path, identity, journal.chunk_size, journal.done)
    if journal:
        log.info("%s: the partial download is of another version of the file; starting over", remote.name)
    chunk = choose_chunk_size(identity.size, connections) if identity.size else MAX_CHUNK
    return Plan(remote, path, identity, chunk, set())


def check_free_space(plans: list[Plan], downloads: Path) -> None:
    """Fail before the first byte when the disk cannot hold what is left to fetch."""
    needed = sum(_bytes_to_allocate(p) for p in plans)
    free = free_bytes(downloads)
    if needed + SPACE_MARGIN > free:
        short = needed + SPACE_MARGIN - free
        raise InsufficientSpaceError(
            f"{downloads} has {free / 2**30:.1f} GiB free; the downloads need {needed / 2**30:.1f} GiB more "
            f"plus a {SPACE_MARGIN >> 20} MiB margin ({short / 2**30:.1f} GiB short)"
        )


def _bytes_to_allocate(plan: Plan) -> int:
    size = plan.identity.size or 0
    try:
        allocated = plan.part.stat().st_blocks * 512 if plan.done else 0
    except FileNotFoundError:
        allocated = 0
    return max(0, size - allocated)


# --- running -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransferResult:
    path: Path
    digests: dict[str, str]
    transferred: int  # bytes received in this run
    resumed: bool


def run_transfer(
    plan: Plan,
    endpoint: Endpoint,
    connections: int,
    progress: Progress = SILENT,
    before_rename: Callable[[Plan, dict[str, str]], None] | None = None,
) -> TransferResult:
    """Fetch what is missing, check it, and give the file its final name.

    ``before_rename(plan, digests)`` runs when the bytes in ``plan.part`` are complete and checked,
    before the final name appears (``plan`` as it ended: a restart after the file changed on the
    server has a new identity), so the caller's record exists whenever the file does.
    """
    plan.path.parent.mkdir(parents=True, exist_ok=True)
    resumed = bool(plan.done)
    for attempt in (1, 2):
        try:
            digests, transferred = _fetch(plan, endpoint, connections, progress)
            break
        except RemoteChangedError:
            if attempt == 2:
                raise
            log.warning("%s changed on the server during the download; starting it over", plan.remote.name)
            plan = dataclasses.replace(plan, identity=probe(endpoint), done=set())
            resumed = False
        except _RangesRefused:
            if attempt == 2:
                raise DownloadError(f"{plan.identity.url} refuses range requests") from None
            log.warning(
                "%s: the server answers range requests with the whole file; fetching it in one stream", plan.remote.name
            )
            plan = dataclasses.replace(plan, identity=dataclasses.replace(plan.identity, ranges=False), done=set())
            resumed = False
    _check_expected(plan, digests)
    if before_rename is not None:
        before_rename(plan, digests)
    os.replace(plan.part, plan.path)
    plan.journal.unlink(missing_ok=True)
    return TransferResult(plan.path, digests, transferred, resumed)


def _fetch(plan: Plan, endpoint: Endpoint, connections: int, progress: Progress) -> tuple[dict[str, str], int]:
    journal = Journal(plan.identity, plan.chunk_size, set(plan.done))
    if not plan.done:
        plan.part.unlink(missing_ok=True)
    journal.save(plan.journal)  # the identity is on disk before byte one
    received = _Counter()
    with (
        plan.part.open("r+b" if plan.done else "w+b") as file,
        progress.task(plan.remote.name, total=plan.identity.size, unit="B", initial=plan.have_bytes) as advance,
    ):

        def count(n: int) -> None:
            received.add(n)
            advance(n)

        if plan.identity.ranges and plan.identity.size is not None:  # ranges are used only with a known size
            _preallocate(file.fileno(), plan.identity.size)
            digests = _fetch_chunks(plan, journal, endpoint, file.fileno(), connections, count)
        else:
            digests = _fetch_stream(plan, endpoint, file, count)
    return digests, received.value


class _Counter:
    def __init__(self) -> None:
        self.value = 0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self.value += n


def _preallocate(fd: int, size: int) -> None:
    try:
        os.posix_fallocate(fd, 0, size)  # claims the disk now: ENOSPC at the start, not at 90%
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise
        os.ftruncate(fd, size)  # filesystems without fallocate (some network ones)


def _fetch_chunks(
    plan: Plan, journal: Journal, endpoint: Endpoint, fd: int, connections: int, advance: Advance
) -> dict[str, str]:
    hasher = _OrderedHasher(plan, fd)
    for index in sorted(plan.done):
        hasher.complete(index)
    pending = [i for i in range(plan.chunks) if i not in plan.done]
    try:
        with ThreadPoolExecutor(max_workers=connections, thread_name_prefix="imagenet-fetch") as pool:
            futures = {pool.submit(_fetch_chunk, plan, endpoint, fd, i, advance): i for i in pending}
            try:
                while futures:
                    # A timeout, so Ctrl-C reaches this thread while the workers are busy.
                    finished, _ = wait(futures, timeout=0.25, return_when=FIRST_COMPLETED)
                    for future in finished:
                        index = futures.pop(future)
                        future.result()
                        os.fdatasync(fd)  # the bytes are on disk before the journal says so
                        journal.done.add(index)
                        journal.save(plan.journal)
                        hasher.complete(index)
            except BaseException:
                endpoint.stop.set()  # the other workers finish their current read and leave
                for future in futures:
                    future.cancel()
                raise
    finally:
        endpoint.stop.clear()
    return hasher.hexdigests()


def _fetch_chunk(plan: Plan, endpoint: Endpoint, fd: int, index: int, advance: Advance) -> None:
    first, last = plan.chunk_span(index)
    position = first
    mark = position  # where the last failure happened: progress beyond it resets the retry budget

    def attempt() -> None:
        nonlocal position
        headers = {"Range": f"bytes={position}-{last}"}
        if plan.identity.validator:
            headers["If-Range"] = plan.identity.validator
        with endpoint.get(headers) as response:
            _check_ranged_response(response, plan.identity, position, last)
            # No chunk_size: httpx would hold up to that many bytes back, and lose them on a cut.
            for data in response.iter_raw():
                if endpoint.stop.is_set():
                    raise _Stopped()
                _pwrite_all(fd, data, position)
                position += len(data)
                advance(len(data))
        if position <= last:
            raise Retryable(f"connection closed at byte {position:,} of chunk {first:,}-{last:,}")

    def progressed() -> bool:
        nonlocal mark
        moved, mark = position > mark, position
        return moved

    endpoint.retrying(attempt, progressed)


def _check_ranged_response(response: httpx.Response, identity: Identity, first: int, last: int) -> None:
    where = identity.url
    if response.status_code == 200 and _same_file(response, identity):
        raise _RangesRefused(where)
    if response.status_code in (200, 416):
        # If-Range failed (200: the validator changed) or the range no longer exists (416).
        raise RemoteChangedError(f"{where} answered {response.status_code} to a range request: the file changed")
    if response.status_code != 206:
        raise DownloadError(f"{where} answered HTTP {response.status_code} to a range request")
    got_first, got_last, total = _content_range(response)
    if (got_first, got_last) != (first, last) or (total is not None and total != identity.size):
        raise RemoteChangedError(
            f"{where} sent bytes {got_first}-{got_last}/{total} for a request of {first}-{last}/{identity.size}"
        )
    etag = response.headers.get("ETag")
    if identity.etag and etag and etag != identity.etag:
        raise RemoteChangedError(f"{where}: ETag changed from {identity.etag} to {etag}")


def _same_file(response: httpx.Response, identity: Identity) -> bool:
    """A whole-file answer that is still the probed file: same length and validators."""
    length = response.headers.get("Content-Length")
    if length is None or identity.size is None or int(length) != identity.size:
        return False
    etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
    return (etag or None) == identity.etag and (modified or None) == identity.last_modified


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _fetch_stream(plan: Plan, endpoint: Endpoint, file: BinaryIO, advance: Advance) -> dict[str, str]:
    """One plain GET for servers without Range support: nothing to resume, so any failure restarts."""
    digests: dict[str, Digest] = {}
    furthest = best = 0  # bytes of the file reached: this attempt's, and the most of any before

    def attempt() -> None:
        digests.clear()
        digests.update({name: ALGORITHMS[name]() for name in plan.algorithms})
        nonlocal furthest
        file.seek(0)
        file.truncate()
        furthest = 0
        with endpoint.get({}) as response:
            if response.status_code != 200:
                raise DownloadError(f"{plan.identity.url} answered HTTP {response.status_code}")
            for data in response.iter_raw():
                file.write(data)
                for digest in digests.values():
                    digest.update(data)
                furthest += len(data)
                advance(len(data))
        file.flush()
        os.fsync(file.fileno())
        if plan.identity.size is not None and file.tell() != plan.identity.size:
            raise Retryable(f"got {file.tell():,} of {plan.identity.size:,} bytes")

    def progressed() -> bool:
        # Each attempt starts over: only reaching further than ever before is progress, so a body
        # that always ends short (a Content-Length it never meets) exhausts the budget.
        nonlocal best
        moved, best = furthest > best, max(best, furthest)
        return moved

    endpoint.retrying(attempt, progressed)
    return {name: digest.hexdigest() for name, digest in digests.items()}


class _OrderedHasher:
    """Hashes chunks in file order as they complete, reading them back from the (cached) file."""

    def __init__(self, plan: Plan, fd: int) -> None:
        self.plan, self.fd = plan, fd
        self.digests = {name: ALGORITHMS[name]() for name in plan.algorithms}
        self.cursor = 0
        self.complete_chunks: set[int] = set()

    def complete(self, index: int) -> None:
        self.complete_chunks.add(index)
        while self.cursor in self.complete_chunks:
            self.complete_chunks.discard(self.cursor)
            self._hash_chunk(self.cursor)
            self.cursor += 1

    def _hash_chunk(self, index: int) -> None:
        first, last = self.plan.chunk_span(index)
        offset = first
        while offset <= last:
            data = os.pread(self.fd, min(HASH_READ_BYTES, last + 1 - offset), offset)
            if not data:
                raise DownloadError(f"{self.plan.part} is shorter than its journal says")
            for digest in self.digests.values():
                digest.update(data)
            offset += len(data)

    def hexdigests(self) -> dict[str, str]:
        if self.cursor != self.plan.chunks:
            raise DownloadError(f"{self.plan.remote.name}: {self.plan.chunks - self.cursor} chunks were never hashed")
        return {name: digest.hexdigest() for name, digest in self.digests.items()}


def _check_expected(plan: Plan, digests: dict[str, str]) -> None:
    wrong = [(a, hexdigest) for a, hexdigest in plan.expected.items() if digests[a] != hexdigest.lower()]
    if not wrong:
        return
    algorithm, expected = wrong[0]
    aside = plan.path.with_name(plan.path.name + MISMATCH_SUFFIX)
    os.replace(plan.part, aside)
    plan.journal.unlink(missing_ok=True)
    raise ChecksumMismatchError(
        f"{plan.remote.name} has {algorithm} {digests[algorithm]}, but the expected {algorithm} is {expected}; "
        f"the bytes are kept aside as {aside}"
    )
