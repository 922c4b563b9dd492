"""One writer at a time: advisory locks on archives, trees and subsets, which say who holds them.

The lock of ``PARENT/NAME`` is the hidden file ``PARENT/.NAME.lock`` beside it (beside, not inside:
a subset does not exist until it is renamed into place, and a tree stays exactly its files). A
writer holds it exclusively for as long as it writes and leaves its PID, host and what it is doing
in it, so a second process can say whom it waits for. Readers (``subset`` reading a tree) hold it
shared: they wait for a writer, and a writer waits for them.

The locks are ``flock`` locks: the kernel drops them when their process ends, however it ends, so
a killed run never leaves a lock behind. On NFS, Linux maps ``flock`` to POSIX locks, which the
server arbitrates between hosts. Lock files are never deleted: removing one while another process
waits on it would let a third lock a new file of the same name.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from .errors import LockHeldError

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".lock"
# Where no lock file can be created, nobody can write either: there is no writer to keep out.
_UNLOCKABLE = (errno.EROFS, errno.EACCES, errno.EPERM)


def lock_path(target: Path) -> Path:
    return target.with_name(f".{target.name}{LOCK_SUFFIX}")


@contextmanager
def writing(target: Path, wait: bool = True) -> Iterator[None]:
    """Hold ``target``'s lock alone while writing it; waits for other writers and readers.

    With ``wait=False`` a held lock raises :class:`LockHeldError` at once.
    """
    with _held(target, fcntl.LOCK_EX, wait) as fd:
        if fd is None:
            yield
            return
        _describe_holder(fd, target)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # a waiting process must not name us once we are done


@contextmanager
def writing_all(targets: Iterable[Path], wait: bool = True) -> Iterator[None]:
    """Hold the locks of several targets, taken in sorted order so that two runs never deadlock."""
    with ExitStack() as held:
        for target in sorted(set(targets)):
            held.enter_context(writing(target, wait))
        yield


@contextmanager
def reading(target: Path, wait: bool = True) -> Iterator[None]:
    """Hold ``target``'s lock shared while reading it: no writer changes it meanwhile."""
    with _held(target, fcntl.LOCK_SH, wait):
        yield


@contextmanager
def _held(target: Path, mode: int, wait: bool) -> Iterator[int | None]:
    """The open lock file, locked in ``mode``; None where no lock file can be had (read-only)."""
    fd = _open(target, readers_too=mode == fcntl.LOCK_SH)
    if fd is None:
        yield None
        return
    try:
        _acquire(fd, target, mode, wait)
        yield fd
    finally:
        os.close(fd)  # releases the lock


def writer_of(target: Path) -> str | None:
    """Who is writing ``target`` right now, in words; None when nobody holds its lock. Only
    looks: no lock is kept, and no lock file is made where there is none."""
    try:
        fd = os.open(lock_path(target), os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return holder(target) or "another process"
    finally:
        os.close(fd)  # releases the shared lock, if it was had
    return None


def holder(target: Path) -> str | None:
    """Who holds ``target``'s lock for writing, in words, as its holder described itself."""
    try:
        text = lock_path(target).read_text("utf-8")
        about = json.loads(text) if text else None
    except (OSError, ValueError):
        return None
    if not about:
        return None
    return f"PID {about['pid']} on {about['host']}" if about["host"] != socket.gethostname() else f"PID {about['pid']}"


def _open(target: Path, readers_too: bool) -> int | None:
    path = lock_path(target)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        if error.errno not in _UNLOCKABLE:
            raise
    if readers_too:  # a read-only root: a lock file someone made before can still be shared
        try:
            return os.open(path, os.O_RDONLY)
        except OSError:
            pass
    log.debug("no lock for %s: %s is not writable here", target, path.parent)
    return None


def _acquire(fd: int, target: Path, mode: int, wait: bool) -> None:
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    who = holder(target)
    what = f"{who}, which is writing {target}" if who else f"another process using {target}"
    if not wait:
        raise LockHeldError(f"{target} is busy: {what}")
    log.warning("waiting for %s", what)
    started = time.monotonic()
    fcntl.flock(fd, mode)  # Ctrl-C and SIGTERM still interrupt this wait
    log.info("%s: got the lock after %.1f s", target, time.monotonic() - started)


def _describe_holder(fd: int, target: Path) -> None:
    about = {"pid": os.getpid(), "host": socket.gethostname(), "target": str(target), "since": time.time()}
    data = json.dumps(about).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
