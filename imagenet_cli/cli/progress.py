"""Progress bars on stderr, drawn with tqdm, for the library's progress reports."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from ..progress import SILENT, Advance, Progress

NO_PROGRESS_ENV = "IMAGENET_NO_PROGRESS"


class TqdmProgress(Progress):
    @contextmanager
    def task(self, description: str, total: int | None = None, unit: str = "it", initial: int = 0) -> Iterator[Advance]:
        from tqdm import tqdm  # imported here: most invocations never draw a bar

        in_bytes = unit == "B"
        bar = tqdm(
            total=total,
            initial=initial,
            desc=description,
            unit=unit,
            unit_scale=in_bytes,
            unit_divisor=1024 if in_bytes else 1000,
            file=sys.stderr,
            dynamic_ncols=True,
            leave=False,
        )

        def advance(count: int) -> None:
            bar.update(count)

        try:
            yield advance
        finally:
            bar.close()


def progress_for(quiet: bool) -> Progress:
    """Bars only for a person watching: not with --quiet, not into a pipe or file, not when disabled."""
    disabled = os.environ.get(NO_PROGRESS_ENV, "").strip().lower() not in ("", "0", "false", "no")
    if quiet or disabled or not sys.stderr.isatty():
        return SILENT
    return TqdmProgress()
