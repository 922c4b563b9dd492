"""``imagenet verify``: are the archives intact, and the trees complete and correctly labelled?

With no paths, everything under the root: each archive in ``downloads/``, each prepared tree and
each subset. Archives are checked in parallel (hashing releases the GIL), trees one after another
with their folders spread over all cores.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import hashing, locks, manifest
from ..errors import InvalidArgumentError, MissingInputError
from ..layout import DOWNLOADS, EXPORTS, IMAGE_SPLITS, Root
from ..progress import SILENT, Progress
from ..records import archives_in
from .archives import check_archive
from .exports import check_export, check_export_at, is_export
from .findings import Check, ProblemKind
from .trees import check_tree

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VerifyReport:
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(check.problem_count == 0 for check in self.checks)

    @property
    def problem_count(self) -> int:
        return sum(check.problem_count for check in self.checks)


def verify(
    root: Path,
    *,
    paths: Sequence[Path | str] | None = None,
    storage_options: dict[str, Any] | None = None,
    checksums: Path | None = None,
    algorithm: str | None = None,
    deep: bool = False,
    rehash: bool = False,
    workers: int | None = None,
    record: bool = False,
    progress: Progress = SILENT,
) -> VerifyReport:
    """Check archives and trees; problems come back in the report, never as exceptions.

    ``checksums`` is an md5sum/sha256sum/xxhsum-style file whose digests take precedence for the
    archives it names; ``algorithm`` overrides what the digest lengths suggest. Read-only unless
    ``record``: then archives hashed without a valid record get one. An export in object storage
    is named by its URL among ``paths`` (opened with ``storage_options``).
    """
    if algorithm is not None and algorithm not in hashing.ALGORITHMS:
        raise InvalidArgumentError(f"unknown algorithm {algorithm!r} (known: {', '.join(hashing.ALGORITHMS)})")
    sums = hashing.read_checksums(checksums, algorithm) if checksums else None
    urls = [path for path in paths or () if isinstance(path, str)]
    local = [Path(path) for path in paths or () if not isinstance(path, str)]
    # Only URLs named: those alone, not the root's contents too.
    archive_paths, tree_paths = ([], []) if urls and not local else _targets(root, local or None)
    if not archive_paths and not tree_paths and not urls:
        raise MissingInputError(f"nothing to verify under {root}: no archives in downloads/ and no trees")
    workers = workers or os.cpu_count() or 1
    log.info(
        "checking %d archives and %d trees%s",
        len(archive_paths),
        len(tree_paths),
        " (deep: every member decoded)" if deep else "",
    )

    def archive_check(path: Path) -> Check:
        return check_archive(path, checksums=sums, deep=deep, rehash=rehash, record=record, progress=progress)

    checks = _in_parallel(archive_check, archive_paths, workers)
    for path in tree_paths:
        if writer := locks.writer_of(path):
            checks.append(_being_written(path, writer))
        else:
            checks.append(
                check_export(path, deep, progress)
                if is_export(path)
                else check_tree(path, deep=deep, workers=workers, progress=progress)
            )
    checks += [check_export_at(url, storage_options, deep=deep, progress=progress) for url in urls]
    return VerifyReport(checks)


def _being_written(path: Path, writer: str) -> Check:
    """A tree or export another run is writing: unfinished, whatever its files say so far."""
    check = Check(path, "export" if is_export(path) else "tree")
    check.add(ProblemKind.UNFINISHED, str(path), f"being written by {writer}: verify it once that run has finished")
    return check


def _targets(root: Path, paths: list[Path] | None) -> tuple[list[Path], list[Path]]:
    if not paths:
        layout = Root(root)
        files = [*archives_in(layout.downloads), *(f for d in layout.evalset_folders() for f in archives_in(d))]
        return files, layout.trees() + layout.subset_trees() + layout.exports()
    archive_paths, tree_paths = [], []
    for path in paths:
        if path.is_file():
            archive_paths.append(path)
        elif Root(path).is_data_root():  # everything under that root, as with no paths
            archives, trees = _targets(path, None)
            archive_paths += archives
            tree_paths += trees
        elif path.name == DOWNLOADS and path.is_dir():  # a root's downloads: the archives in it
            archive_paths += [
                *archives_in(path),
                *(f for d in Root(path.parent).evalset_folders() for f in archives_in(d)),
            ]
        elif path.is_dir():
            _refuse_wrong_level(path)
            tree_paths.append(path)
        else:
            raise MissingInputError(f"{path} does not exist")
    return archive_paths, tree_paths


def _refuse_wrong_level(path: Path) -> None:
    """A split folder of a tree, or the folder that holds the exports, is a mistyped path, not a
    damaged tree: say which level to check."""
    if path.name in IMAGE_SPLITS and (
        manifest.has_manifest(path.parent) or (path.parent / manifest.TREE_INFO).is_file()
    ):
        raise InvalidArgumentError(f"{path} is the {path.name} split of the tree {path.parent}: verify the tree")
    if path.name == EXPORTS and any(is_export(child) for child in path.iterdir() if child.is_dir()):
        raise InvalidArgumentError(f"{path} holds exports: verify one of them, or the data root {path.parent}")


def _in_parallel(function: Callable[[Path], Check], paths: list[Path], workers: int) -> list[Check]:
    if len(paths) <= 1 or workers == 1:
        return [function(path) for path in paths]
    with ThreadPoolExecutor(max_workers=min(workers, len(paths))) as pool:
        return list(pool.map(function, paths))
