"""Moments when a stop signal must wait: the forking of worker processes.

A stop raises an exception wherever the main thread happens to be. Inside fork's own callbacks
(logging re-arms its lock in the parent), that exception is printed and swallowed: the stop is
lost and the run goes on, a worker blocked for good. While :func:`held` is open, the handlers
note a stop instead of raising it; it is raised, as if it came then, when the block ends.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

_held: list[int] | None = None  # stops noted while held; None: not holding


def holding(number: int) -> bool:
    """For a stop handler: True when the stop is noted for later and must not be raised now."""
    if _held is None:
        return False
    _held.append(number)
    return True


@contextmanager
def held() -> Iterator[None]:
    global _held
    if _held is not None:  # already holding: the outer block delivers
        yield
        return
    _held = []
    try:
        yield
    finally:
        noted, _held = _held, None
        for number in dict.fromkeys(noted):
            signal.raise_signal(number)
