"""Local worker processes: how they start, how they stop, and an ordered map that streams.

Workers ignore the stop signals (Ctrl-C and a scheduler's SIGTERM reach the whole process group):
the parent alone decides, and kills them when it stops. Should the parent die without doing so
(SIGKILL), each worker notices within half a second and exits: none outlives its run.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from typing import TypeVar

from . import stops

Item = TypeVar("Item")
Result = TypeVar("Result")


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def leave_stops_to_the_parent() -> None:
    """A worker's initializer: ignore stop signals, and exit with the parent."""
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_IGN)
    parent = os.getppid()

    def exit_with_the_parent() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=exit_with_the_parent, name="parent-watcher", daemon=True).start()


def kill_local_workers() -> None:
    """SIGKILL, because workers ignore the stop signals."""
    for worker in multiprocessing.active_children():
        worker.kill()


@contextmanager
def local_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """A pool of ``workers`` processes; stopped by Ctrl-C or SIGTERM, its workers are killed at once
    rather than left to finish what they hold (every write they make is atomic)."""
    with ProcessPoolExecutor(max_workers=workers, initializer=leave_stops_to_the_parent) as pool:
        with stops.held():  # a stop during the forks comes when they are done (see stops.py)
            pool.submit(os.getpid).result()  # with fork, the first task starts every worker
        try:
            yield pool
        except KeyboardInterrupt:
            kill_local_workers()
            raise


def ordered_map(
    function: Callable[[Item], Result],
    items: Iterable[Item],
    workers: int,
    pool: Callable[[int], AbstractContextManager[Executor]] = local_pool,
) -> Iterator[Result]:
    """``function(item)`` for each item, in order, on a ``pool`` of ``workers`` (processes by
    default; in this process when 1), at most two items per worker in flight: results stream,
    memory stays flat, and a stop waits for no more than those."""
    if workers == 1:
        yield from map(function, items)
        return
    with pool(workers) as executor:
        pending: deque[Future[Result]] = deque()
        try:
            for item in items:
                pending.append(executor.submit(function, item))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def thread_pool(workers: int) -> ThreadPoolExecutor:
    """A pool of threads, for work that waits on the disk rather than the CPU."""
    return ThreadPoolExecutor(max_workers=workers)
