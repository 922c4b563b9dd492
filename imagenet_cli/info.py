"""``imagenet info``: what a data root holds, and what to run next."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .download.transfer import Journal, Plan, Remote
from .exports import CLAIM as EXPORT_CLAIM
from .exports.record import RECORD as EXPORT_RECORD
from .exports.record import ExportRecord
from .layout import EXPORTS, IMAGE_SPLITS, Root, SplitCount, count_split, free_bytes
from .manifest import LABELLED_SPLITS, MadeBy, has_manifest, read_manifest, read_tree_info
from .records import JOURNAL_SUFFIX, archives_in, partial_downloads_in, read_record
from .storage import Bucket
from .trees.plan import is_kaggle_tree, is_parquet, is_webdataset


@dataclass(frozen=True)
class ArchiveState:
    name: str
    bytes: int
    source: str | None  # from its record; None when nothing recorded it
    record: str  # "ok": hashes recorded and the file unchanged since; "stale": it changed; "none"


@dataclass(frozen=True)
class PartialDownload:
    name: str
    have_bytes: int  # chunks the journal says are done
    total_bytes: int | None


@dataclass(frozen=True)
class TreeState:
    name: str
    path: Path
    splits: dict[str, SplitCount]
    made_by: MadeBy | None = None  # from tree.json, for trees this tool wrote

    @property
    def images(self) -> int:
        return sum(s.images for s in self.splits.values())

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.splits.values())


@dataclass(frozen=True)
class ExportState:
    name: str
    path: Path
    format: str | None  # None for an export that never finished: only its claim is there
    samples: dict[str, int]  # per split, as export.json records them
    bytes: int
    url: str | None = None  # in object storage: its URL (``path`` is then the bucket and prefix)

    @property
    def finished(self) -> bool:
        return self.format is not None

    @property
    def where(self) -> str:
        return self.url or str(self.path)


@dataclass(frozen=True)
class BucketState:
    """What a prefix of object storage holds: the export there, or the exports one level below."""

    url: str
    exports: list[ExportState]


@dataclass(frozen=True)
class RootState:
    root: Path
    exists: bool
    free_bytes: int
    archives: list[ArchiveState] = field(default_factory=list)
    evalset_files: list[ArchiveState] = field(default_factory=list)  # named <set>/<file>
    partial: list[PartialDownload] = field(default_factory=list)
    trees: list[TreeState] = field(default_factory=list)
    subsets: list[TreeState] = field(default_factory=list)
    exports: list[ExportState] = field(default_factory=list)
    # The folder is itself an input for prepare --from: "webdataset", "parquet" or "kaggle-tree".
    input_folder: str | None = None

    @property
    def next_step(self) -> str | None:
        """The stage the root is ready for: download, prepare (of the root's archives, or of the
        input the folder is), subset — or None when all are done."""
        if self.input_folder is not None and not self.trees:
            return "prepare"
        if (not self.archives and not self.trees) or self.partial:
            return "download"
        if not self.trees:
            return "prepare"
        if not self.subsets:
            return "subset"
        return None

    def subset_to_suggest(self) -> tuple[Path | None, int] | None:
        """A subset that will work on this root as it is: the tree to name (None: the default
        one) and a class count no more than the tree holds; None when its trees are too small."""
        tree = self.trees[0]
        classes = min((count.classes for split, count in tree.splits.items() if split in LABELLED_SPLITS), default=0)
        if classes < 2:
            return None
        return (tree.path if len(self.trees) > 1 else None), (100 if classes > 100 else classes // 2)


def describe_root(root: Path) -> RootState:
    layout = Root(root)
    if not root.is_dir():
        return RootState(root, exists=False, free_bytes=free_bytes(root))
    return RootState(
        root,
        exists=True,
        free_bytes=free_bytes(root),
        archives=[_archive_state(path) for path in archives_in(layout.downloads)],
        evalset_files=[
            _archive_state(path, f"{folder.name}/{path.name}")
            for folder in layout.evalset_folders()
            for path in archives_in(folder)
        ],
        partial=[_partial_state(path) for path in partial_downloads_in(layout.downloads)],
        trees=[_tree_state(path) for path in layout.trees()],
        subsets=[_tree_state(path) for path in layout.subset_trees()],
        exports=_export_states(layout.path / EXPORTS),
        input_folder=_input_folder(root),
    )


def describe_bucket(url: str, storage_options: dict[str, Any] | None = None) -> BucketState:
    """The export at ``url``, or each export in a folder of it (one listing of the prefix)."""
    bucket = Bucket(url, storage_options)
    listed = bucket.listing()
    folders = sorted({name.rsplit("/", 1)[0] if "/" in name else "" for name in listed if _marks_export(name)})
    states = []
    for folder in folders:
        record = bucket.read_text(f"{folder}/{EXPORT_RECORD}" if folder else EXPORT_RECORD)
        where = f"{bucket.url}/{folder}" if folder else bucket.url
        name, path = where.rsplit("/", 1)[-1], Path(bucket.root) / folder
        if record is None:
            states.append(ExportState(name, path, None, {}, 0, url=where))
            continue
        made = ExportRecord.from_json(record, path / EXPORT_RECORD)
        states.append(ExportState(name, path, made.format, made.samples(), made.bytes(), url=where))
    return BucketState(bucket.url, states)


def _marks_export(name: str) -> bool:
    """An export's record or claim, at the prefix or one folder below it."""
    return name.count("/") <= 1 and name.rsplit("/", 1)[-1] in (EXPORT_RECORD, EXPORT_CLAIM)


def _input_folder(root: Path) -> str | None:
    """What kind of input for prepare --from the folder is, if it is one."""
    if is_webdataset(root):
        return "webdataset"
    if is_parquet(root):
        return "parquet"
    if is_kaggle_tree(root):
        return "kaggle-tree"
    return None


def _archive_state(path: Path, name: str | None = None) -> ArchiveState:
    record = read_record(path)
    if record is None:
        state = "none"
    else:
        state = "ok" if record.matches(path) else "stale"
    return ArchiveState(name or path.name, path.stat().st_size, record.source if record else None, state)


def _partial_state(path: Path) -> PartialDownload:
    journal = Journal.load(path.with_name(path.name + JOURNAL_SUFFIX))
    if journal is None:
        return PartialDownload(path.name, 0, None)
    plan = Plan(Remote(path.name, journal.identity.url), path, journal.identity, journal.chunk_size, journal.done)
    return PartialDownload(path.name, plan.have_bytes, journal.identity.size)


def _export_states(folder: Path) -> list[ExportState]:
    """Every export under ``folder``: finished ones from their export.json, unfinished ones (a
    claim without a record: the run stopped) with nothing counted yet."""
    if not folder.is_dir():
        return []
    states = []
    for path in sorted(p for p in folder.iterdir() if p.is_dir()):
        if (path / EXPORT_RECORD).is_file():
            record = ExportRecord.read(path)
            states.append(ExportState(path.name, path, record.format, record.samples(), record.bytes()))
        elif (path / EXPORT_CLAIM).is_file():
            states.append(ExportState(path.name, path, None, {}, 0))
    return states


def _tree_state(path: Path) -> TreeState:
    info = read_tree_info(path)
    if has_manifest(path):
        splits = _counts_from_manifest(path)  # one streamed file instead of a stat per image
    else:
        splits = {split: count_split(path / split) for split in IMAGE_SPLITS if (path / split).is_dir()}
    return TreeState(path.name, path, splits, info.made_by if info else None)


def _counts_from_manifest(tree: Path) -> dict[str, SplitCount]:
    classes: dict[str, set[str]] = {}
    images: dict[str, int] = {}
    size: dict[str, int] = {}
    for entry in read_manifest(tree):
        split = entry.split
        classes.setdefault(split, set()).update([entry.wnid] if entry.wnid else [])
        images[split] = images.get(split, 0) + 1
        size[split] = size.get(split, 0) + entry.bytes
    return {split: SplitCount(len(classes[split]), images[split], size[split]) for split in sorted(images)}
