"""One writer per prefix of a bucket: a lease, since object storage has no ``flock``.

The lease is the object ``PREFIX/.lock.json``, naming its holder (host, PID, a random token) and
the time it expires. It is taken with a conditional PUT (``If-None-Match: *``: only where there
is none), renewed by a thread every third of its term with ``If-Match`` on the ETag it last wrote
(so a holder that was paused past its term and lost the lease finds out instead of overwriting its
successor), and deleted when the work is done. A lease whose holder is gone — its time passed, or
its PID no longer running on this very host, as after kill -9 — is taken over the same way, with
``If-Match`` on the stale lease's ETag, so of two processes taking it over only one succeeds.

A writer checks :meth:`Lease.check` before each file it publishes: a lease lost mid-run stops the
run before it can write over its successor's files.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .errors import LockHeldError
from .storage import Bucket

log = logging.getLogger(__name__)

LEASE = ".lock.json"
TERM = 60.0  # seconds a lease lasts unless renewed; renewed every third of it
POLL = 1.0  # seconds between looks at a lease held by another writer


@dataclass(frozen=True)
class Holder:
    host: str
    pid: int
    token: str
    expires: float
    target: str

    def describe(self) -> str:
        here = self.host == socket.gethostname()
        return f"PID {self.pid}" + ("" if here else f" on {self.host}")

    def gone(self, now: float) -> bool:
        """Its time passed, or it was a process of this host that runs no longer."""
        if now > self.expires:
            return True
        return self.host == socket.gethostname() and not _running(self.pid)


class Lease:
    """A held lease, renewed in the background until :meth:`release`."""

    def __init__(self, bucket: Bucket, holder: Holder, etag: str, term: float) -> None:
        self.bucket, self.holder, self.etag, self.term = bucket, holder, etag, term
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="lease-renewal", daemon=True)
        self._thread.start()

    def check(self) -> None:
        """Raise if the lease was lost: another writer now owns the prefix."""
        if self.lost is not None:
            raise LockHeldError(f"{self.bucket} was taken over by another writer ({self.lost}); stopped")

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        if self.lost is None and _read(self.bucket) == (self.holder, self.etag):
            self.bucket.remove([LEASE])

    def _renew(self) -> None:
        while not self._stop.wait(self.term / 3):
            renewed = Holder(**{**self.holder.__dict__, "expires": time.time() + self.term})
            try:
                self.etag = self.bucket.write_bytes(LEASE, _encoded(renewed), IfMatch=self.etag).etag
                self.holder = renewed
            except FileExistsError:
                current = _read(self.bucket)
                self.lost = current[0].describe() if current else "the lease was removed"
                log.error("%s: lease lost to %s", self.bucket, self.lost)
                return
            except Exception as error:  # a store that does not answer for a while: try at the next turn
                log.warning("%s: could not renew the lease (%s)", self.bucket, error)


@contextmanager
def leased(bucket: Bucket, wait: bool = True, term: float = TERM) -> Iterator[Lease]:
    """Hold ``bucket``'s lease while the block runs; wait for another writer's (or, with
    ``wait=False``, raise :class:`LockHeldError` at once)."""
    lease = _take(bucket, wait, term)
    try:
        yield lease
    finally:
        lease.release()


def _take(bucket: Bucket, wait: bool, term: float) -> Lease:
    token, said = secrets.token_hex(8), False
    while True:
        mine = Holder(socket.gethostname(), os.getpid(), token, time.time() + term, bucket.url)
        current = _read(bucket)
        try:
            if current is None:
                etag = bucket.write_bytes(LEASE, _encoded(mine), IfNoneMatch="*").etag
            elif current[0].gone(time.time()):
                log.info("%s: taking over the lease of %s, which is gone", bucket, current[0].describe())
                etag = bucket.write_bytes(LEASE, _encoded(mine), IfMatch=current[1]).etag
            else:
                raise _Busy(current[0])
            return Lease(bucket, mine, etag, term)
        except FileExistsError:
            continue  # another writer took it between our look and our write: look again
        except _Busy as busy:
            what = f"{busy.holder.describe()}, which is writing {bucket}"
            if not wait:
                raise LockHeldError(f"{bucket} is busy: {what}") from None
            if not said:
                log.warning("waiting for %s", what)
                said = True
            time.sleep(POLL)


class _Busy(Exception):
    def __init__(self, holder: Holder) -> None:
        self.holder = holder


def _read(bucket: Bucket) -> tuple[Holder, str] | None:
    """The lease as it is now and its ETag; None when there is none. An unreadable lease (not
    written by us) counts as expired: taken over, not waited for forever."""
    info = bucket.info(LEASE)
    if info is None:
        return None
    data = bucket.read_bytes(LEASE)
    if data is None:
        return None
    try:
        return Holder(**json.loads(data)), info.etag
    except (ValueError, TypeError):
        return Holder("?", 0, "", 0.0, bucket.url), info.etag


def _encoded(holder: Holder) -> bytes:
    return json.dumps(holder.__dict__).encode()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
