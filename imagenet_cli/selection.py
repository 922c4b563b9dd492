"""Choosing classes and files by a keyed hash: the same choice on any machine, nested across sizes.

Every choice is a sort by xxh3-64 of the name, seeded with the seed — never ``random``'s algorithm
and never directory order — so it depends only on the names, the seed and the count: the first 10
of a seed's ranking are inside its first 100.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import xxhash

from . import catalogue
from .errors import InvalidArgumentError, MissingInputError


def rank(seed: int, name: str) -> int:
    """The sort key of a class or file name for a seed: stable everywhere, independent of order."""
    return xxhash.xxh3_64_intdigest(name.encode(), seed=seed % 2**64)


def choose(names: Iterable[str], seed: int, count: int | None) -> list[str]:
    """The first ``count`` names by rank (all of them when count is None), in rank order."""
    ordered = sorted(names, key=lambda n: (rank(seed, n), n))
    return ordered if count is None else ordered[:count]


def select_classes(spec: str | None, present: list[str], seed: int) -> list[str]:
    """The classes ``--classes SPEC`` names among ``present``, sorted: a count draws that many with
    ``seed``; otherwise a file of WNIDs, or WNIDs, indices, names and named lists, comma-separated.
    None: all of them."""
    if spec is None:
        return present
    if spec.strip().isdigit():
        count = int(spec)
        if not 1 <= count <= len(present):
            raise InvalidArgumentError(f"{count}: the tree has {len(present)} classes", "classes")
        return sorted(choose(present, seed, count))
    path = Path(spec)
    items = path.read_text().split() if path.is_file() else [c.strip() for c in spec.split(",")]
    wanted = catalogue.resolve_classes(items)
    if not wanted:
        raise InvalidArgumentError(f"{spec!r} names no class", "classes")
    absent = [w for w in wanted if w not in present]
    if absent:
        raise MissingInputError(f"the tree has no folder for {len(absent)} chosen classes: {', '.join(absent[:5])}")
    return sorted(wanted)
