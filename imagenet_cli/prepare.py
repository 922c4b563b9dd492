"""``imagenet prepare``: archives to training-ready ImageFolder trees, one streaming pass, in parallel.

Input, found automatically in ``ROOT/downloads/``: the official archives (train tar of per-class
tars, val tar, and the devkit for labels) or the Kaggle zip; or, with ``source``, an extracted
Kaggle ``ILSVRC/`` tree or an existing ImageFolder tree. Output: ``OUT/<size>/{train,val}/<wnid>/``
for each size, with ``manifest.tsv``, ``tree.json``, ``classes.txt``, ``train.txt`` and ``val.txt``.

Val images go into the folder of their label: from the devkit's ground truth, else Kaggle's
``LOC_val_solution.csv``, else the catalogue; when two sources are present they must agree.
Class folders are WNIDs and every label file uses the sorted-WNID index, never the devkit's.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import heapq
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import archives, atomic, catalogue, manifest, zip_entries
from .errors import (
    ArchiveError,
    InvalidArgumentError,
    LabelConflictError,
    MissingInputError,
    OverwriteRefusedError,
)
from .images import FILTERS, FORMATS, FULL, MODES, Recipe
from .layout import Root
from .progress import SILENT, Progress
from .shard_sources import Blobs, Files, TarMembers, TarRegion, ZipMembers
from .shards import (
    MARKERS,
    Shard,
    ShardResult,
    is_done,
    marker_path,
    read_marker,
    run_shards,
)

SPLITS = ("train", "val")
RECIPE_FILE = "recipe.json"


@dataclass
class TreeSummary:
    size: str
    path: Path
    images: dict[str, int]  # per split, written
    failures: list[dict]
    repaired: dict[str, int]  # what was wrong -> how many


@dataclass
class PrepareResult:
    source: str  # what was read, in words
    label_source: str
    trees: list[TreeSummary] = field(default_factory=list)
    shards_done_before: int = 0
    shards_run: int = 0
    seconds: float = 0.0
    images_processed: int = 0

    @property
    def failed(self) -> int:
        return max((len(t.failures) for t in self.trees), default=0)

    @property
    def images_per_second(self) -> float:
        return self.images_processed / self.seconds if self.seconds else 0.0


def tree_name(size: str, recipe: Recipe) -> str:
    """``224``, ``full``; a non-default mode or format is part of the name: ``64-squash``, ``224-png``."""
    parts = [size]
    if recipe.mode != "shorter" and size != FULL:
        parts.append(recipe.mode)
    if recipe.format != "jpeg":
        parts.append(recipe.format)
    return "-".join(parts)


def prepare(
    root: Path,
    sizes: list[str],
    mode: str = "shorter",
    quality: int = 90,
    format: str = "jpeg",
    filter: str = "fast",
    upscale: bool = True,
    splits: list[str] | None = None,
    workers: int | None = None,
    out: Path | None = None,
    source: Path | None = None,
    progress: Progress = SILENT,
) -> PrepareResult:
    """Write one tree per size under ``out`` (default: the root); see the module docstring.

    Re-running with the same options finishes what an interrupted run left and does nothing when
    all is done. Unreadable images are listed in the result's trees (``failures``), not raised.
    """
    recipe = _recipe(sizes, mode, quality, format, filter, upscale)
    splits = _splits(splits)
    started = time.monotonic()
    out = out or root
    downloads = Root(root).downloads
    # One pass over the Kaggle zip's ~2 M-record directory serves both the labels and the plan.
    zip_path = downloads / archives.KAGGLE_ZIP
    kaggle = archives.kaggle_bundle(zip_path) if source is None and zip_path.is_file() else None
    labels, label_source = _val_labels(downloads, source, kaggle)
    described, shards = _plan(downloads, source, splits, labels, kaggle)
    trees = {size: out / tree_name(size, recipe) for size in recipe.sizes}
    for tree in trees.values():
        _claim(tree, recipe)

    workers = workers or os.cpu_count() or 1
    if isinstance(shards, _ShardStream):
        result = PrepareResult(described, label_source)
        with progress.task("preparing images", total=shards.total(), unit="img") as advance:
            skipped = lambda shard: advance(shard.images)  # noqa: E731 - done before: the bar moves on
            run_shards(shards.pending(trees, skipped), recipe, trees, workers, _counting(result, advance))
        shards = shards.seen
        result.shards_done_before = len(shards) - result.shards_run
    else:
        result = _run_listed(shards, recipe, trees, workers, progress, described, label_source)
    for size, tree in trees.items():
        result.trees.append(_finish_tree(tree, size, shards, recipe, described, label_source))
    result.seconds = time.monotonic() - started
    return result


def _counting(result: PrepareResult, advance):
    def on_done(shard: Shard, handled: int) -> None:
        result.shards_run += 1
        result.images_processed += handled
        advance(handled)

    return on_done


def _run_listed(shards, recipe, trees, workers, progress, described, label_source) -> PrepareResult:
    pending = [s for s in shards if not all(is_done(tree, s) for tree in trees.values())]
    result = PrepareResult(described, label_source, shards_done_before=len(shards) - len(pending))
    with progress.task("preparing images", total=sum(s.images for s in pending), unit="img") as advance:
        on_done = _counting(result, advance)
        for shard in pending:  # a shard finished in some trees only is redone for the others
            sizes_left = tuple(size for size, tree in trees.items() if not is_done(tree, shard))
            if sizes_left != recipe.sizes:
                run_shards([shard], _with_sizes(recipe, sizes_left), {s: trees[s] for s in sizes_left}, 1, on_done)
        full_pending = [s for s in pending if not any(is_done(tree, s) for tree in trees.values())]
        run_shards(full_pending, recipe, trees, workers, on_done)
    return result


def _with_sizes(recipe: Recipe, sizes: tuple[str, ...]) -> Recipe:
    return dataclasses.replace(recipe, sizes=sizes)


# --- options -----------------------------------------------------------------------------------


def _recipe(sizes, mode, quality, format, filter, upscale) -> Recipe:
    if not sizes:
        raise InvalidArgumentError("give at least one --size (a number of pixels, or 'full')")
    for size in sizes:
        if size != FULL and not (size.isdigit() and 8 <= int(size) <= 4096):
            raise InvalidArgumentError(f"--size {size!r} is neither 'full' nor a number of pixels within 8–4096")
    checks = ((mode, MODES, "--resize"), (format, tuple(FORMATS), "--format"), (filter, FILTERS, "--filter"))
    for value, allowed, option in checks:
        if value not in allowed:
            raise InvalidArgumentError(f"{option} {value!r} is not one of {', '.join(allowed)}")
    if not 1 <= quality <= 100:
        raise InvalidArgumentError(f"--quality {quality} is outside 1–100")
    return Recipe(tuple(dict.fromkeys(sizes)), mode, quality, format, filter, upscale)


def _splits(splits: list[str] | None) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(splits or SPLITS))
    unknown = [s for s in chosen if s not in SPLITS]
    if unknown:
        raise InvalidArgumentError(f"--splits {', '.join(unknown)}: prepare makes train and val trees")
    return chosen


def _claim(tree: Path, recipe: Recipe) -> None:
    """Tie the tree folder to one recipe: different options never mix in one tree."""
    path = tree / MARKERS / RECIPE_FILE
    wanted = {k: v for k, v in asdict(recipe).items() if k != "sizes"}
    if path.is_file():
        existing = json.loads(path.read_text())
        if existing != wanted:
            changed = ", ".join(f"{k} {existing.get(k)!r} → {v!r}" for k, v in wanted.items() if existing.get(k) != v)
            raise OverwriteRefusedError(f"{tree} was prepared with other options ({changed}); it will not be mixed")
        return
    if tree.exists() and any(tree.iterdir()):
        raise OverwriteRefusedError(f"{tree} exists and was not made by prepare; it will not be written into")
    atomic.write_text(path, json.dumps(wanted) + "\n")


# --- val labels --------------------------------------------------------------------------------


def _val_labels(downloads: Path, source: Path | None, kaggle: archives.KaggleBundle | None) -> tuple[tuple[str, ...], str]:
    """The WNID of every val image, and where it came from; two sources present must agree."""
    found: list[tuple[str, dict[int, str]]] = []
    devkit = downloads / archives.DEVKIT
    if source is None and devkit.is_file():
        truth = archives.devkit_ground_truth(devkit)
        found.append(("the devkit's ground truth", {k: catalogue.by_devkit_id(i).wnid for k, i in enumerate(truth, 1)}))
    kaggle_text = _loc_val_solution(source, kaggle)
    if kaggle_text is not None:
        found.append(("Kaggle's LOC_val_solution.csv", archives.val_solution_labels(kaggle_text)))
    if len(found) == 2:
        (first_name, first), (second_name, second) = found
        for number in sorted(set(first) & set(second)):
            if first[number] != second[number]:
                raise LabelConflictError(
                    f"{catalogue.val_file_name(number)}: {first_name} says {first[number]}, "
                    f"{second_name} says {second[number]}"
                )
    if not found:
        return catalogue.val_labels(), "the catalogue"
    name, labels = found[0]
    merged = list(catalogue.val_labels())
    for number, wnid in labels.items():
        merged[number - 1] = wnid
    return tuple(merged), name


def _loc_val_solution(source: Path | None, kaggle: archives.KaggleBundle | None) -> str | None:
    if source is not None:
        for candidate in (source / "LOC_val_solution.csv", source.parent / "LOC_val_solution.csv"):
            if candidate.is_file():
                return candidate.read_text()
        return None
    return archives.kaggle_text(kaggle, "LOC_val_solution.csv") if kaggle is not None else None


# --- planning ----------------------------------------------------------------------------------


def _plan(downloads: Path, source: Path | None, splits, labels, kaggle) -> tuple[str, list[Shard] | _ShardStream]:
    if source is not None:
        return _plan_tree(source, splits, labels)
    train, val = downloads / archives.TRAIN_TAR, downloads / archives.VAL_TAR
    if ("train" not in splits or train.is_file()) and ("val" not in splits or val.is_file()):
        return "the official archives", _plan_official(train, val, splits, labels)
    if kaggle is not None:
        return "the Kaggle zip", _plan_kaggle(kaggle, splits, labels)
    raise MissingInputError(
        f"no archives to prepare in {downloads}: it needs {archives.TRAIN_TAR} and {archives.VAL_TAR}, "
        f"or {archives.KAGGLE_ZIP}"
    )


def _val_label(labels: tuple[str, ...], name: str, where: str) -> str:
    """The WNID of a val image from its file name; anything else in a val folder is an input error."""
    try:
        return labels[catalogue.val_number(name) - 1]
    except InvalidArgumentError:
        raise ArchiveError(f"{where}: not an ILSVRC2012_val_<8 digits>.JPEG file, so it has no label") from None


def _refuse_listing(where: str, why: str) -> None:
    raise ArchiveError(f"{where}: refused: {why}")


def _plan_official(train: Path, val: Path, splits, labels) -> list[Shard]:
    shards = []
    if "train" in splits:
        for member in archives.tar_headers(train, _refuse_listing):
            wnid = member.name.removesuffix(".tar")
            if not (member.name.endswith(".tar") and catalogue.is_wnid(wnid)):
                raise ArchiveError(f"{train.name}:{member.name} is not a <wnid>.tar of an ILSVRC-2012 class")
            # ~1/1000 of the outer tar is one class: an estimate good enough for a progress bar.
            estimate = max(1, member.size // 110_000)
            shards.append(Shard("train", wnid, estimate, TarRegion(train, member.offset_data, member.size, f"{train.name}:{member.name}")))
    if "val" in splits:
        by_class = collections.defaultdict(list)
        for member in archives.tar_headers(val, _refuse_listing):
            name = member.name.rsplit("/", 1)[-1]
            by_class[_val_label(labels, name, f"{val.name}:{member.name}")].append((name, member.offset_data, member.size))
        shards += [Shard("val", w, len(m), TarMembers(val, tuple(m))) for w, m in by_class.items()]
    return sorted(shards, key=lambda s: (s.split, s.wnid))


def _plan_kaggle(bundle: archives.KaggleBundle, splits, labels) -> _ShardStream:
    if bundle.inner is not None:
        return _KaggleTarGzShards(bundle, splits, labels)
    return _KaggleZipShards(bundle, splits, labels)


class _ShardStream:
    """Shards cut while the input is read, for inputs too large to list in memory first.

    The Kaggle bundle has ~2 M members: its central directory (or, in the 2019 layout, its inner
    tar.gz) is read once, as a stream. A train class becomes a shard when its members end — the
    bundle keeps each class folder together — so memory holds one class at a time.
    """

    def __init__(self, bundle: archives.KaggleBundle, splits, labels) -> None:
        self.bundle, self.splits, self.labels = bundle, splits, labels
        self.seen: list[Shard] = []

    def pending(self, trees: dict[str, Path], on_skip=lambda shard: None):
        """The shards not yet done in every tree; all of them are remembered in ``seen``."""
        for shard in self._cut():
            self.seen.append(shard)
            if all(is_done(tree, shard) for tree in trees.values()):
                on_skip(shard)
            else:
                yield shard

    def _cut(self):
        raise NotImplementedError

    def total(self) -> int | None:
        """How many images there are to go through, when that can be known cheaply."""
        return None


class _ClassRuns:
    """Cuts a stream of train items into runs of one class, each run a shard.

    The bundle keeps each class folder together, so a class is normally one run; should a class
    come back later, its later runs become shards of their own (numbered, so a re-run cuts the same
    ones) and the tree's manifest merges them by path.
    """

    def __init__(self) -> None:
        self.current, self.items = None, []
        self.runs: collections.Counter[str] = collections.Counter()

    def add(self, wnid: str, item) -> Shard | None:
        """Adds an item; returns the previous run's shard when this item starts a new run."""
        done = self.flush() if wnid != self.current else None
        if wnid != self.current:
            self.current, self.items = wnid, []
        self.items.append(item)
        return done

    def flush(self) -> Shard | None:
        if self.current is None:
            return None
        earlier = self.runs[self.current]
        self.runs[self.current] += 1
        shard = Shard("train", self.current, len(self.items), self.source(tuple(self.items)), earlier or None)
        self.current = None
        return shard

    def source(self, items: tuple):
        raise NotImplementedError


class _ZipRuns(_ClassRuns):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def source(self, items: tuple) -> ZipMembers:
        return ZipMembers(self.path, items)


class _BlobRuns(_ClassRuns):
    def source(self, items: tuple) -> Blobs:
        return Blobs(items)


class _KaggleZipShards(_ShardStream):
    """The current layout: zip members listed from the central directory, read by offset."""

    def total(self) -> int:
        # One more pass over the central directory (~10 s for 2 M members) buys the progress bar an ETA.
        return sum(
            1
            for entry in zip_entries.entries(self.bundle.path)
            if not entry.is_dir and (where := archives.kaggle_image_split(entry.name)) and where[0] in self.splits
        )

    def _cut(self):
        path = self.bundle.path
        runs, val = _ZipRuns(path), collections.defaultdict(list)
        for entry in zip_entries.entries(path):
            where = archives.kaggle_image_split(entry.name)
            if where is None or entry.is_dir or where[0] not in self.splits:
                continue
            why = archives.zip_member_refusal(entry)
            if why:
                _refuse_listing(f"{path.name}:{entry.name}", why)
            split, wnid, name = where
            if split == "val":
                val[_val_label(self.labels, name, f"{path.name}:{entry.name}")].append((name, entry))
                continue
            if not catalogue.is_wnid(wnid):
                raise ArchiveError(f"{path.name}:{entry.name} is not in a class folder named by WNID")
            if finished := runs.add(wnid, (name, entry)):
                yield finished
        if finished := runs.flush():
            yield finished
        for wnid, members in sorted(val.items()):  # 50,000 small records at most
            yield Shard("val", wnid, len(members), ZipMembers(path, tuple(members)))


class _KaggleTarGzShards(_ShardStream):
    """The 2019 layout: one inner tar.gz, read from start to end; val cut in stretches of VAL_PART."""

    VAL_PART = 500

    def _cut(self):
        runs, val_items, part = _BlobRuns(), [], 0
        refused: list = []
        for member in archives.kaggle_inner_tar_members(self.bundle, lambda where, why: refused.append((where, why))):
            if member.split not in self.splits:
                continue
            if member.split == "train":
                if finished := runs.add(member.wnid, (member.name, None, member.data, None)):
                    yield finished
            else:
                wnid = _val_label(self.labels, member.name, member.origin)
                val_items.append((member.name, wnid, member.data, None))
                if len(val_items) == self.VAL_PART:
                    yield Shard("val", None, len(val_items), Blobs(tuple(val_items)), part)
                    val_items, part = [], part + 1
        if finished := runs.flush():
            yield finished
        if val_items:
            yield Shard("val", None, len(val_items), Blobs(tuple(val_items)), part)
        if refused:
            raise ArchiveError(f"{refused[0][0]}: refused: {refused[0][1]} ({len(refused)} members refused)")


def _plan_tree(source: Path, splits, labels) -> tuple[str, list[Shard]]:
    """An extracted Kaggle ``ILSVRC/`` tree (flat val) or an ImageFolder tree (val in class folders)."""
    base = next((p for p in (source / "Data" / "CLS-LOC", source / "ILSVRC" / "Data" / "CLS-LOC", source) if (p / "train").is_dir() or (p / "val").is_dir()), None)
    if base is None:
        raise MissingInputError(f"{source} has neither train/ nor val/ (nor ILSVRC/Data/CLS-LOC/)")
    shards = []
    for split in splits:
        by_class = collections.defaultdict(list)
        split_dir = base / split
        if not split_dir.is_dir():
            raise MissingInputError(f"{source} has no {split}/ folder")
        for dirpath, _, names in os.walk(split_dir):
            for name in sorted(names):
                if split == "val":
                    wnid = _val_label(labels, name, os.path.join(dirpath, name))
                else:
                    wnid = Path(dirpath).name
                    if not catalogue.is_wnid(wnid):
                        raise ArchiveError(f"{dirpath} is not a class folder named by WNID")
                by_class[wnid].append((name, os.path.join(dirpath, name)))
        shards += [Shard(split, w, len(p), Files(tuple(p))) for w, p in sorted(by_class.items())]
    kind = "an extracted Kaggle tree" if base != source else "an ImageFolder tree"
    return f"{kind} at {source}", shards


# --- finishing a tree --------------------------------------------------------------------------


def _finish_tree(tree: Path, size: str, shards: list[Shard], recipe: Recipe, described: str, label_source: str) -> TreeSummary:
    """Merge the shard markers, in path order, into manifest.tsv, tree.json and the label files."""
    images: collections.Counter[str] = collections.Counter()
    classes: dict[str, set[str]] = collections.defaultdict(set)
    failures: list[dict] = []
    repaired: collections.Counter[str] = collections.Counter()

    def results(split_shards):
        for shard in split_shards:
            result: ShardResult = read_marker(marker_path(tree, shard))
            failures.extend(result.failures)
            repaired.update(result.repaired.values())
            images[shard.split] += len(result.entries)
            classes[shard.split].update(e.wnid for e in result.entries)
            yield result.entries

    def entries():
        for split in sorted({s.split for s in shards}):
            split_shards = sorted((s for s in shards if s.split == split), key=lambda s: s.key)
            if all(s.wnid is not None and s.part is None for s in split_shards):
                for shard_entries in results(split_shards):  # one class at a time, already in order
                    yield from shard_entries
            else:  # shards that share classes (streamed stretches, a class's later runs): merge by path
                yield from heapq.merge(*results(split_shards), key=lambda e: e.path)

    _write_labels_and_manifest(tree, entries())
    info = manifest.TreeInfo(
        made_by={"command": "prepare", "source": described, "val_labels": label_source, "size": size, **asdict(recipe)},
        splits={split: {"images": images[split], "classes": len(classes[split])} for split in sorted(images)},
        failures=failures,
    )
    info.made_by["repaired"] = dict(repaired)
    manifest.write_tree_info(tree, info)
    return TreeSummary(size, tree, dict(images), failures, dict(repaired))


def _write_labels_and_manifest(tree: Path, entries) -> None:
    """manifest.tsv and train.txt/val.txt in one pass over the entries; classes.txt beside them."""
    with contextlib.ExitStack() as stack:
        label_files = {split: stack.enter_context(atomic.atomic_writer(tree / f"{split}.txt")) for split in SPLITS}

        def labelled():
            for entry in entries:
                split = entry.path.split("/", 1)[0]
                label_files[split].write(f"{entry.path} {catalogue.by_wnid(entry.wnid).index}\n".encode())
                yield entry

        manifest.write_manifest(tree, labelled())
    classes = "".join(f"{c.index}\t{c.wnid}\t{c.name}\n" for c in catalogue.classes())
    atomic.write_text(tree / "classes.txt", classes)
