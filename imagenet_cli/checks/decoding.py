"""Every image of an archive decoded (``verify --deep``), on all cores, with memory flat."""

from __future__ import annotations

import collections
import os
from collections.abc import Iterator

from .. import archives
from ..decode_check import decode_problem
from ..progress import Advance, Progress
from ..workers import ordered_map, thread_pool
from .findings import Check, ProblemKind


def decode_members(
    check: Check, members: Iterator[archives.Member], progress: Progress, name: str, total: int | None
) -> collections.Counter[str]:
    """Decode every image (on all cores); count train images per class."""
    with progress.task(f"decoding {name}", total=total, unit="img") as advance:
        return _counted(check, members, advance)


def _counted(check: Check, members: Iterator[archives.Member], advance: Advance) -> collections.Counter[str]:
    per_class: collections.Counter[str] = collections.Counter()
    decoded = 0
    # Names within one class tar (or one run of a class in the zip): exact, and memory stays flat.
    run: str | None = None
    names: set[str] = set()
    for member, problem in _decoded(members):
        advance(1)
        if member.damage:
            check.add(ProblemKind.DAMAGED, member.origin, member.damage)
            continue
        if member.split == "train":
            if member.wnid != run:
                run, names = member.wnid, set()
            if member.name in names:
                check.add(ProblemKind.DUPLICATE, member.origin, f"a second {member.name} in class {member.wnid}")
            names.add(member.name)
        if member.split == "train" and member.wnid is not None:
            match = archives.TRAIN_NAME.fullmatch(member.name)
            if not match or match.group(1) != member.wnid:
                check.add(ProblemKind.MISPLACED, member.origin, f"not an image of class {member.wnid}")
            per_class[member.wnid] += 1
        if problem:
            check.add(ProblemKind.UNDECODABLE, member.origin, problem)
        decoded += 1
    check.counts["decoded"] = decoded
    check.note(f"{decoded:,} images decoded")
    return per_class


def _decoded(members: Iterator[archives.Member]) -> Iterator[tuple[archives.Member, str | None]]:
    """(member, why it does not decode) in archive order, decoded by a thread pool.

    Pillow releases the GIL while decoding, so threads use every core; at most two images per
    thread are in flight, so memory stays flat however large the archive.
    """

    def decoded(member: archives.Member) -> tuple[archives.Member, str | None]:
        return member, None if member.damage else decode_problem(member.data)

    yield from ordered_map(decoded, members, os.cpu_count() or 1, pool=thread_pool)
