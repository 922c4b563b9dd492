"""Writes that leave either the old file or the complete new one, never half of either."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import socket
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .errors import InsufficientSpaceError

TEMPORARY_SUFFIX = ".tmp"
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def temporary_name(path: Path) -> Path:
    """Where ``path`` is written before it is complete (same directory, so ``os.replace`` is atomic).

    Unique across processes and hosts (host, pid and a random part): two writers on a shared
    filesystem never write into one temporary file.
    """
    unique = f"{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}"
    return path.with_name(f".{path.name}.{unique}{TEMPORARY_SUFFIX}")


def is_temporary(name: str) -> bool:
    """A file name :func:`temporary_name` made: a write that never finished if nobody holds the lock."""
    return name.startswith(".") and name.endswith(TEMPORARY_SUFFIX)


Finish = Callable[[Path, Path], None]


@contextmanager
def atomic_path(path: Path, durable: bool = True, before_rename: Finish | None = None) -> Iterator[Path]:
    """A temporary name to write ``path`` under; the final name appears only when the block ends
    without error, after the bytes are durable (unless ``durable=False``). For writers that open
    the file themselves, as pyarrow's Parquet writer does.

    ``before_rename(temporary, path)`` runs once the bytes are complete and durable, before the
    final name appears: what must exist before a file counts as done (its record) is written there.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(path)
    try:
        with _full_disk_named(path.parent, path.name):
            yield temporary
            if durable:
                _sync(temporary, os.fsync)
            if before_rename is not None:
                before_rename(temporary, path)
            os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def _full_disk_named(folder: Path, what: str) -> Iterator[None]:
    """One message for a full disk, whichever write met it."""
    try:
        yield
    except OSError as error:
        if error.errno in _DISK_FULL:
            raise InsufficientSpaceError(f"the disk holding {folder} is full: {what} could not be written") from error
        raise


@contextmanager
def atomic_writer(path: Path, durable: bool = True, before_rename: Finish | None = None) -> Iterator[BinaryIO]:
    """Open ``path`` for binary writing; the name appears only when the block ends without error.

    ``durable=False`` skips the fsync, for callers that make a whole batch durable at once (one
    fsync per image would dominate writing a million small files). See :func:`atomic_path`.
    """
    with atomic_path(path, durable, before_rename) as temporary, open(temporary, "wb") as file:
        yield file


def make_durable(paths: Iterable[Path]) -> None:
    """Flush written files, and the folders that name them, to disk: the files of one shard, not
    every disk of the machine as ``os.sync()`` would (which stalls every other writer there)."""
    folders: set[Path] = set()
    for path in paths:
        _sync(path, os.fdatasync)
        folders.add(path.parent)
    for folder in sorted(folders):  # the renames that gave the files their names
        _sync(folder, os.fsync)


def start_writeback(fd: int, start: int, length: int) -> None:
    """Have the kernel start writing these bytes of a file to disk now, without waiting for them,
    so that the fsync that makes the file durable finds them written. Written alone at its end,
    a shard's fsync was the tail of an export. On Linux, ``POSIX_FADV_DONTNEED`` starts the
    writeback of dirty pages, then drops the pages already clean: the file's bytes do not push
    other files out of the page cache either. Elsewhere, and where the filesystem refuses it,
    nothing is done: the fsync still does it all."""
    if hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, start, length, os.POSIX_FADV_DONTNEED)


def _sync(path: Path, how: Callable[[int], None]) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        how(fd)
    finally:
        os.close(fd)


def remove_temporaries(folder: Path, recursive: bool = False) -> None:
    """Remove the temporaries killed writers left in ``folder`` (and below it, with ``recursive``);
    call it holding the lock of what the folder holds, so that nobody is writing them."""
    if not folder.is_dir():
        return
    for leftover in list(folder.rglob("*") if recursive else folder.iterdir()):
        if is_temporary(leftover.name):
            _remove(leftover)


def sweep_temporaries(path: Path) -> None:
    """Remove what killed writers of ``path`` left: temporary files, or the temporary folder a
    subset is built in (call it holding ``path``'s lock)."""
    for leftover in path.parent.glob(f".{path.name}.*{TEMPORARY_SUFFIX}"):
        _remove(leftover)


def _remove(leftover: Path) -> None:
    if leftover.is_dir() and not leftover.is_symlink():
        shutil.rmtree(leftover, ignore_errors=True)
    else:
        leftover.unlink(missing_ok=True)


@contextmanager
def scratch_folder(path: Path) -> Iterator[Path]:
    """A folder for a step's scratch files, named as a temporary of ``path`` and removed when the
    block ends. Kept beside the output it serves, not in the system's temporary folder: there a
    killed run's scratch stays for good, here the next run's :func:`remove_temporaries` sweeps it."""
    folder = temporary_name(path)
    try:
        with _full_disk_named(path.parent, f"the scratch files of {path.name}"):
            folder.mkdir(parents=True)
            yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_bytes(path: Path, data: bytes, durable: bool = True) -> None:
    with atomic_writer(path, durable) as file:
        file.write(data)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))
