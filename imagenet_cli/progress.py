"""How the library reports progress without printing anything.

Long-running functions take a ``progress`` argument and open one task per thing they measure::

    with progress.task("hashing ILSVRC2012_img_val.tar", total=size, unit="B") as advance:
        advance(len(chunk))

The base class reports nowhere; the CLI passes a subclass that draws tqdm bars on stderr.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

Advance = Callable[[int], None]


def _ignore(_: int) -> None:
    pass


class Progress:
    """A sink for progress reports; this one discards them."""

    @contextmanager
    def task(self, description: str, total: int | None = None, unit: str = "it", initial: int = 0) -> Iterator[Advance]:
        """Report one measured activity; ``initial`` is what an earlier run already did."""
        yield _ignore


SILENT = Progress()
