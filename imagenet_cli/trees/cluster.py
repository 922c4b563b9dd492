"""A Dask cluster as the engine that runs ``prepare``'s shards (the optional ``[dask]`` extra).

The shard runner takes any ``concurrent.futures.Executor``; this module supplies Dask's
(``Client.get_executor()``), so a cluster runs exactly the code the local process pool runs, one
task per shard. What it adds is what a cluster needs before the first task: a client (a local
cluster, a running scheduler, or the one Dask's configuration names), and a check of every worker
(the same ``imagenet-cli`` version, the inputs readable and the trees writable at the same paths),
so a misconfigured node is named in one line before any work starts.

``distributed`` is imported only here, and only when a cluster is asked for.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ..errors import ClusterError, ClusterUnreachableError, InvalidArgumentError, MissingExtraError
from ..storage import Bucket, RemoteFile
from .shards import Engine

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

LOCAL = "local"
AUTO = "auto"  # the scheduler Dask's own configuration names (DASK_SCHEDULER_ADDRESS)


def _distributed() -> ModuleType:
    try:
        import distributed
    except ImportError:
        raise MissingExtraError.of("{dask}", "Dask's distributed package", "dask") from None
    return distributed


@contextmanager
def connect(address: str) -> Iterator[Client]:
    """A client for ``address``: ``local`` or ``local:N`` (a cluster of N single-threaded worker
    processes on this machine, N = cores by default), ``auto`` (Dask's configured scheduler), or a
    scheduler address such as ``tcp://host:8786``."""
    distributed = _distributed()
    scheme, _, count = address.partition(":")
    if scheme == LOCAL and (not count or count.isdigit()):
        workers = int(count) if count else os.cpu_count() or 1
        if workers < 1:
            raise InvalidArgumentError("local:N needs at least one worker", "dask")
        with contextlib.ExitStack() as stack:
            with _ctrl_c_ignored():  # while the worker processes start: they inherit it
                # Our own lines report what went wrong in a shard; Dask's logs of a busy worker (a
                # late heartbeat on an overloaded machine) are noise to the user, tracebacks and all.
                cluster = stack.enter_context(
                    distributed.LocalCluster(
                        n_workers=workers,
                        threads_per_worker=1,
                        processes=True,
                        host="127.0.0.1",
                        dashboard_address=":0",
                        silence_logs=logging.CRITICAL,
                    )
                )
            yield stack.enter_context(distributed.Client(cluster))
        return
    if address == AUTO:
        import dask

        address = dask.config.get("scheduler-address", None)
        if not address:
            raise InvalidArgumentError(
                "auto: Dask's configuration names no scheduler (set DASK_SCHEDULER_ADDRESS)", "dask"
            )
    try:
        # Dask's own setting (distributed.comm.timeouts.connect, 30 s unless configured) decides
        # how long a scheduler that is still starting is waited for.
        client = distributed.Client(address)
    except (OSError, TimeoutError, ValueError) as error:
        raise ClusterUnreachableError(f"cannot reach the Dask scheduler at {address} ({error})") from None
    with client:
        yield client


@contextmanager
def _ctrl_c_ignored() -> Iterator[None]:
    """Ctrl-C reaches every process of the terminal's group, and a local cluster's worker processes
    would each print a KeyboardInterrupt traceback. Started while SIGINT is ignored, they keep it
    ignored (a new process inherits the disposition, and Python and asyncio leave it so); this
    process alone answers Ctrl-C, by cancelling the shards and closing the cluster. The cost: a
    Ctrl-C in the second or so the workers take to start is not seen (the next one is). Blocking
    the signal instead would hold it, but spawned workers do not inherit a blocked mask (tried)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def check_workers(
    client: Client,
    version: str,
    *,
    inputs: list[Path],
    outputs: list[Path],
    objects: Sequence[RemoteFile] = (),
    buckets: Sequence[Bucket] = (),
) -> int:
    """Check every worker once before any work; returns how many there are.

    Raises :class:`ClusterError` naming the first worker that fails: another version, an input it
    cannot read, an output folder it cannot write (the paths must be the same on every node), an
    object of a bucket it cannot reach with its own credentials and endpoint, a bucket's folder it
    cannot write to.
    """
    readable = [str(p.absolute()) for p in inputs]
    writable = [str(p.absolute()) for p in outputs]
    folders = [(bucket.url, bucket.options) for bucket in buckets]
    answers = client.run(_check_this_worker, version, readable, writable, list(objects), folders, on_error="return")
    if not answers:
        raise ClusterError("the Dask cluster has no workers")
    for worker, answer in sorted(answers.items()):
        if isinstance(answer, BaseException):
            raise ClusterError(f"Dask worker {worker} cannot run imagenet-cli ({type(answer).__name__}: {answer})")
        if answer is not None:
            raise ClusterError(f"Dask worker {worker} {answer}")
    return len(answers)


def _check_this_worker(
    version: str,
    readable: list[str],
    writable: list[str],
    objects: list[RemoteFile],
    folders: list[tuple[str, tuple[tuple[str, Any], ...]]],
) -> str | None:
    """Runs on each worker: why it cannot take shards, or None (and its allocator tuned)."""
    from .. import __version__
    from ..errors import ImagenetError

    host = socket.gethostname()
    if __version__ != version:
        return f"(on {host}) runs imagenet-cli {__version__}, the client {version}: install the same version"
    for path in readable:
        if not os.access(path, os.R_OK):
            return f"(on {host}) cannot read {path}: inputs must be at the same path on every worker"
    for remote in objects:
        try:
            there = remote.now()
        except ImagenetError as error:
            return f"(on {host}) cannot reach {remote.url}: {error}"
        if there is None or there.size != remote.size:
            return f"(on {host}) does not see {remote.url} as the client does: the same store and endpoint for all"
    for url, options in folders:
        if (cannot := _cannot_write_to(url, options, host)) is not None:
            return cannot
    for folder in writable:
        probe = Path(folder) / f".write-test.{host}.{os.getpid()}"
        try:
            probe.parent.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            return (
                f"(on {host}) cannot write {folder} ({error.strerror}): "
                "outputs must be on a filesystem every worker mounts"
            )
    _undo_eager_trimming()
    return None


def _cannot_write_to(url: str, options: tuple[tuple[str, Any], ...], host: str) -> str | None:
    """Why this worker cannot write objects under ``url`` (an empty probe, removed again), or None."""
    from ..errors import ImagenetError
    from ..storage import bucket_for

    probe = f".write-test.{host}.{os.getpid()}"
    try:
        bucket = bucket_for(url, options)
        bucket.write_bytes(probe, b"")
        bucket.remove([probe])
    except ImagenetError as error:
        return f"(on {host}) cannot write to {url}: {error}"
    return None


def _undo_eager_trimming() -> None:
    """Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which also fixes glibc's
    mmap threshold: every decoded image is then mmapped and unmapped again, page faults and all
    (measured: 1.5x the local pool's time). Heap allocation up to 32 MiB, trimmed past 64 MiB,
    gives the local pool's speed back."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes  # only on a worker, when a cluster is asked for

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 32 << 20)
    libc.mallopt(m_trim_threshold, 64 << 20)


def engine(client: Any) -> Engine:  # a distributed.Client, whose methods carry no annotations
    """The cluster as the shard runner's engine: one task per shard, as many in flight as it has
    worker threads; a shard Dask gave up on (KilledWorker) is named, not fatal to the rest."""
    distributed = _distributed()
    executor = client.get_executor(pure=False)  # a shard redone after a change is a new task
    slots = max(1, sum(client.nthreads().values()))
    return Engine(executor, slots, crashes=(distributed.KilledWorker,), stop=lambda: executor.shutdown(wait=False))
