"""Folders a command made, and the one rule for writing into a folder: only into one's own.

A command that fills a folder (``prepare`` a tree, ``export`` an export, ``subset`` a subset)
leaves a claim in it: a small JSON file naming the options and inputs it was made with. A re-run
writes into the folder only when the claim is there and says the same; an empty or missing
folder is claimed; a folder with anything else in it was not made by the command and is never
written into, so a mistyped ``--out`` cannot spoil someone's files.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import atomic
from .errors import OverwriteRefusedError


def claim_in(folder: Path, claim: str, command: str, parameter: str = "out") -> dict[str, Any] | None:
    """The claim ``command`` left in ``folder``, or None for a folder that is missing or empty;
    a folder holding anything else is refused."""
    path = folder / claim
    if path.is_file():
        existing: dict[str, Any] = json.loads(path.read_text())
        return existing
    if folder.exists() and _holds_a_file(folder):
        raise OverwriteRefusedError(
            f"{folder} exists and was not made by {command}; it will not be written into", parameter
        )
    return None


def own(
    folder: Path,
    claim: str,
    *,
    command: str,
    wanted: dict[str, Any],
    conflict: Callable[[dict[str, Any]], str],
    parameter: str = "out",
) -> None:
    """Claim ``folder`` for ``wanted``, or check that it already is: a claim made with other
    options or inputs is refused with ``conflict(existing)``, the message. ``parameter``: the
    argument that names another folder, for the user's hint."""
    existing = claim_in(folder, claim, command, parameter)
    if existing is None:
        atomic.write_text(folder / claim, json.dumps(wanted) + "\n")
    elif existing != wanted:
        raise OverwriteRefusedError(conflict(existing), parameter)


def _holds_a_file(folder: Path) -> bool:
    """Anything but empty folders and the temporaries of killed writes: a run stopped while it
    claimed the folder (its ``.shards/`` made, the claim half-written) left nothing to protect."""
    return any(
        not path.is_dir() and not any(atomic.is_temporary(part) for part in path.relative_to(folder).parts)
        for path in folder.rglob("*")
    )
