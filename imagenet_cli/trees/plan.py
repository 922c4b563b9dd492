"""Planning a tree: which shards there are, what each reads, and the label of every val image.

The inputs are listed once (tar headers, the zip's central directory, a folder) and cut into
shards, each with a reader of its share (:mod:`imagenet_cli.trees.readers`), the inputs it reads
and a fingerprint of its listing. Members that cannot be used become a shard of failures.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .. import archives, catalogue, manifest, tar_index, val_labels
from ..errors import (
    ArchiveError,
    MissingInputError,
)
from ..inputs import Fingerprint, InputFile, Snapshot, by_size_and_mtime, describe, fingerprint
from ..storage import Archive, RemoteFile, RemoteFolder
from ..val_labels import NOT_A_VAL_NAME, ValLabels, label_of
from .readers import (
    STRETCH,
    Blobs,
    Files,
    Item,
    LooseFile,
    MemberAt,
    PackedMembers,
    ParquetShard,
    Reader,
    TarMembers,
    TarRegion,
    TarStretch,
    WebDatasetShard,
    ZipMember,
    ZipMembers,
)
from .shards import (
    Shard,
)

log = logging.getLogger(__name__)


# --- val labels --------------------------------------------------------------------------------


def val_labels_for(
    downloads: Path | RemoteFolder,
    *,
    source: Path | None,
    kaggle: archives.KaggleBundle | None,
    trust: bool,
    splits: tuple[str, ...],
) -> ValLabels:
    """The WNID of every val image: the shipped table's, checked against every label file the
    inputs hold (the devkit's ground truth, LOC_val_solution.csv), or theirs when trusted. A run
    without val reads no label file: a damaged devkit does not stop a train tree."""
    if "val" not in splits:
        return val_labels.choose([], trust)
    found = []
    devkit = downloads / archives.DEVKIT
    if source is None and devkit.is_file():
        where = f"{devkit.name}:{archives.GROUND_TRUTH}"
        found.append(val_labels.devkit_labels(archives.devkit_ground_truth_text(devkit), where))
    kaggle_text = _loc_val_solution(source, kaggle)
    if kaggle_text is not None:
        found.append(val_labels.loc_solution_labels(kaggle_text, "LOC_val_solution.csv"))
    chosen = val_labels.choose(found, trust)
    for line in chosen.warnings(trust):
        log.warning("%s", line)
    return chosen


def _loc_val_solution(source: Path | None, kaggle: archives.KaggleBundle | None) -> str | None:
    if source is not None:
        for candidate in (source / "LOC_val_solution.csv", source.parent / "LOC_val_solution.csv"):
            if candidate.is_file():
                return candidate.read_text()
        return None
    return archives.kaggle_text(kaggle, "LOC_val_solution.csv") if kaggle is not None else None


# --- planning ----------------------------------------------------------------------------------


@dataclass
class Plan:
    described: str  # what is read, in words
    shards: Shards
    inputs: dict[str, list[InputFile]]  # per split: the files its shards are made from


def make_plan(
    downloads: Path | RemoteFolder,
    *,
    source: Path | None,
    splits: tuple[str, ...],
    labels: tuple[str, ...],
    kaggle: archives.KaggleBundle | None,
    tree: Path,
) -> Plan:
    """``tree``: any of the trees being made (they share a parent), to record inputs relative to."""
    if source is not None:
        if is_webdataset(source):
            return _plan_webdataset(source, splits, tree)
        if is_parquet(source):
            return _plan_parquet(source, splits, tree)
        return _plan_tree(source, splits, labels, tree)
    official = {split: downloads / name for split, name in OFFICIAL_TARS.items() if split in splits}
    if all(path.is_file() for path in official.values()):
        if kaggle is not None:
            log.warning(
                "%s holds the official archives and %s: preparing from the official archives; the zip is not read",
                downloads,
                kaggle.path.name,
            )
        inputs: dict[str, list[InputFile]] = {split: [describe(path, tree)] for split, path in official.items()}
        devkit = downloads / archives.DEVKIT
        if "val" in splits and devkit.is_file():
            inputs["val"].append(describe(devkit, tree))
        shards = _plan_official(official, labels, inputs, index_in=tree)
        return Plan("the official archives", ListedShards(shards), inputs)
    if kaggle is not None:
        bundle = describe(kaggle.path, tree)
        return Plan("the Kaggle zip", _plan_kaggle(kaggle, splits, labels, bundle), {s: [bundle] for s in splits})
    if isinstance(downloads, RemoteFolder):
        raise MissingInputError(
            f"{downloads} has no {' and '.join(p.name for p in official.values())}, nor {archives.KAGGLE_ZIP}: "
            "from a bucket, those are read (the hub's tar.gz files only from a disk, for now)"
        )
    hub = {
        split: [downloads / name for name in names] for split, names in archives.HUB_BY_SPLIT.items() if split in splits
    }
    if all(path.is_file() for paths in hub.values() for path in paths):
        inputs = {split: [describe(path, tree) for path in paths] for split, paths in hub.items()}
        return Plan("the Hugging Face hub's tar.gz files", _HubShards(hub, labels, inputs), inputs)
    raise MissingInputError(
        f"no archives to prepare in {downloads}: it needs {' and '.join(p.name for p in official.values())}, "
        f"or {archives.KAGGLE_ZIP}"
    )


OFFICIAL_TARS = {"train": archives.TRAIN_TAR, "val": archives.VAL_TAR, "test": archives.TEST_TAR}


NOT_A_CLASS_FOLDER = "not in a class folder named by one of the 1000 WNIDs: not used"
NO_CLASS_SUFFIX = "no WNID of the 1000 after its last underscore (<name>_<wnid>.JPEG): not used"
NOT_A_TEST_NAME = "not an ILSVRC2012_test_<8 digits>.JPEG name: not used"


def _is_test_name(name: str) -> bool:
    return archives.TEST_NAME.fullmatch(name) is not None


Stretched = TypeVar("Stretched", MemberAt, ZipMember, Item, LooseFile)


def _stretches(
    split: str,
    items: Iterable[Stretched],
    reader: Callable[[tuple[Stretched, ...]], Reader],
    inputs: tuple[InputFile, ...],
    listing: Callable[[tuple[Stretched, ...]], str],
) -> Iterator[Shard]:
    """A split no class cuts (test; a val read as one stream) in stretches of VAL_PART, numbered
    in the order read: the same inputs give the same shards."""
    iterator = iter(items)
    for part in itertools.count():
        stretch = tuple(itertools.islice(iterator, VAL_PART))
        if not stretch:
            return
        yield Shard(split, None, len(stretch), reader(stretch), part, inputs, listing(stretch))


def _unusable(split: str, items: list[Item], inputs: tuple[InputFile, ...] = ()) -> list[Shard]:
    """Members that cannot be prepared (no label to file them under), as one shard of failures:
    each is named in the tree's failures, and every other image is prepared."""
    return [Shard(split, None, len(items), Blobs(tuple(items)), None, inputs, listing_of(items))] if items else []


def warn_refiled(what: str, examples: list[str]) -> None:
    """One warning for the images filed by their label rather than where the input had them: how
    many, the first three, and that."""
    log.warning("%s (%s%s): filed by the label", what, "; ".join(examples[:3]), "; …" if len(examples) > 3 else "")


def _refuse_listing(where: str, why: str) -> None:
    raise ArchiveError(f"{where}: refused: {why}")


def _plan_official(
    official: dict[str, Archive], labels: tuple[str, ...], inputs: dict[str, list[InputFile]], index_in: Path
) -> list[Shard]:
    """``index_in``: where the train tar's index is kept when it is in a bucket (see
    :mod:`imagenet_cli.tar_index`)."""
    shards = []
    if "train" in official:
        train = official["train"]
        read = (inputs["train"][0],)
        copies: collections.Counter[str] = collections.Counter()
        snapshot = Snapshot.of_input(train)  # before listing: every shard then reads what was listed
        odd: list[Item] = []
        for member in tar_index.headers(train, _refuse_listing, index_in):
            wnid = archives.class_tar_wnid(member.name)
            if wnid is None:
                odd.append(Item(member.name, None, None, f"{archives.NOT_A_CLASS_TAR}: not used"))
                continue
            region = TarRegion(train, member.offset_data, member.size, f"{train.name}:{member.name}", snapshot)
            listing = fingerprint((member.name, member.offset_data, member.size))
            # A class tar that comes twice becomes a second shard of the class; its images then
            # come twice, and the manifest names each as a failure (see _without_duplicates).
            part = copies[wnid] or None
            copies[wnid] += 1
            shards.append(Shard("train", wnid, None, region, part, read, listing))
        shards += _unusable("train", odd, read)
    if "val" in official and isinstance(official["val"], RemoteFile):
        shards += _val_stretches(official["val"], labels, (inputs["val"][0],))
    elif "val" in official:
        val = official["val"]
        # Every class is open until the listing ends: each keeps its members packed, and the digest
        # of its listing (as fingerprint() makes it) grows as they come.
        by_class: dict[str, tuple[PackedMembers, Fingerprint]] = {}
        snapshot = Snapshot.of_input(val)
        unlabelled: list[Item] = []
        for image in archives.tar_headers(val, _refuse_listing):
            name = image.name.rsplit("/", 1)[-1]
            if (label := label_of(labels, name)) is None:
                unlabelled.append(Item(image.name, None, None, NOT_A_VAL_NAME))
                continue
            if label not in by_class:
                by_class[label] = PackedMembers(), Fingerprint()
            packed, digest = by_class[label]
            at = MemberAt(name, image.offset_data, image.size)
            packed.append(at)
            digest.add(at)
        read = (inputs["val"][0],)
        shards += _unusable("val", unlabelled, read)
        shards += [
            Shard("val", w, len(m), TarMembers(val, m, snapshot), inputs=read, listing=digest.digest())
            for w, (m, digest) in by_class.items()
        ]
    if "test" in official:
        shards += _plan_test_tar(official["test"], (inputs["test"][0],))
    return sorted(shards, key=lambda s: (s.split, s.wnid or "", s.part or 0))


def _val_stretches(val: RemoteFile, labels: tuple[str, ...], read: tuple[InputFile, ...]) -> list[Shard]:
    """Val in a bucket, in stretches read as streams (see :class:`~.readers.TarStretch`): its
    50,000 headers are not listed first, one request each."""
    snapshot, table = Snapshot.of_input(val), fingerprint(labels)
    return [
        Shard(
            "val",
            None,
            None,
            TarStretch(val, start, min(start + STRETCH, val.size), labels, snapshot),
            part=number,
            inputs=read,
            listing=fingerprint((start, STRETCH, table)),
        )
        for number, start in enumerate(range(0, val.size, STRETCH))
    ]


def _plan_test_tar(test: Archive, read: tuple[InputFile, ...]) -> list[Shard]:
    snapshot = Snapshot.of_input(test)
    members, odd = [], []
    for member in archives.tar_headers(test, _refuse_listing):
        name = member.name.rsplit("/", 1)[-1]
        if _is_test_name(name):
            members.append(MemberAt(name, member.offset_data, member.size))
        else:
            odd.append(Item(member.name, None, None, NOT_A_TEST_NAME))
    stretches = _stretches("test", members, lambda m: TarMembers(test, m, snapshot), read, fingerprint)
    return [*stretches, *_unusable("test", odd, read)]


def _plan_kaggle(
    bundle: archives.KaggleBundle, splits: tuple[str, ...], labels: tuple[str, ...], identity: InputFile
) -> Shards:
    if bundle.inner is not None:
        return _KaggleTarGzShards(bundle, splits, labels, identity)
    return _KaggleZipShards(bundle, splits, labels, identity)


SizesNeeding = Callable[[Shard], tuple[str, ...]]


class Shards:
    """A plan's shards, handed out as they are found, with the sizes each still lacks.

    ``listed``: the whole list is known before any work (the official archives, a folder). The
    Kaggle bundle has ~2 M members: its central directory (or, in the 2019 layout, its inner
    tar.gz) is read once, as a stream, and a train class becomes a shard when its members end, so
    memory holds one class at a time. ``spreadable``: shards can run on other hosts (a stretch of
    a tar.gz read from its start cannot). Every shard handed out or skipped is kept in ``seen``.
    """

    listed = False
    spreadable = True

    def __init__(self) -> None:
        self.seen: list[Shard] = []

    def pending(
        self, sizes_needing: SizesNeeding, on_skip: Callable[[Shard], None]
    ) -> Iterator[tuple[Shard, tuple[str, ...]]]:
        for shard in self._cut():
            self.seen.append(shard)
            if sizes := sizes_needing(shard):
                yield shard, sizes
            else:
                on_skip(shard)

    def _cut(self) -> Iterator[Shard]:
        raise NotImplementedError

    def total(self) -> int | None:
        """How many images there are to go through, when that is known exactly and cheaply (a
        class tar's images are known only once it is read)."""
        return None


class ListedShards(Shards):
    listed = True

    def __init__(self, shards: list[Shard]) -> None:
        super().__init__()
        self.shards = shards

    def _cut(self) -> Iterator[Shard]:
        return iter(self.shards)

    def total(self) -> int | None:
        counts = [shard.images for shard in self.shards]
        return None if None in counts else sum(c or 0 for c in counts)


class _KaggleShards(Shards):
    def __init__(
        self, bundle: archives.KaggleBundle, splits: tuple[str, ...], labels: tuple[str, ...], identity: InputFile
    ) -> None:
        super().__init__()
        self.bundle, self.splits, self.labels = bundle, splits, labels
        self.inputs = (identity,)


Listed = ZipMember | Item  # what a shard's listing is made of


class ClassRuns:
    """Cuts a stream of train items (or another split's) into runs of one class, each run a shard.

    The bundle keeps each class folder together, so a class is normally one run; should a class
    come back later, its later runs become shards of their own (numbered, so a re-run cuts the same
    ones) and the tree's manifest merges them by path.
    """

    def __init__(
        self, inputs: tuple[InputFile, ...], reader: Callable[[tuple[Any, ...]], Reader], split: str = "train"
    ) -> None:
        self.inputs, self.reader, self.split = inputs, reader, split
        self.current: str | None = None
        self.items: list[Listed] = []
        self.runs: collections.Counter[str] = collections.Counter()

    def add(self, wnid: str, item: Listed) -> Shard | None:
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
        items = tuple(self.items)
        shard = Shard(
            self.split, self.current, len(items), self.reader(items), earlier or None, self.inputs, listing_of(items)
        )
        self.current = None
        return shard


def listing_of(items: Iterable[Listed]) -> str:
    """A shard's listing: the members' names and where they are (never their bytes)."""
    return fingerprint((item[0], item[1]) for item in items)


class _KaggleZipShards(_KaggleShards):
    """The current layout: zip members listed from the central directory, read by offset."""

    def total(self) -> int:
        # Counted in the pass that found the bundle's layout: no second pass over ~2 M records.
        return sum(count for split, count in self.bundle.images.items() if split in self.splits)

    def _cut(self) -> Iterator[Shard]:
        path = self.bundle.path
        snapshot = Snapshot.of_input(path)
        runs = ClassRuns(self.inputs, lambda items: ZipMembers(path, items, snapshot))
        val: dict[str, list[ZipMember]] = collections.defaultdict(list)
        test: list[ZipMember] = []  # 100,000 small records at most
        refused: list[Item] = []  # named as failures, never skipped: one may be where an image should be

        def refuse(where: str, why: str) -> None:
            refused.append(Item(where.split(":", 1)[1], None, None, f"refused: {why}"))

        for split, wnid, name, entry in archives.kaggle_zip_images(path, refuse):
            if split not in self.splits:
                continue
            if split == "val":
                if (label := label_of(self.labels, name)) is None:
                    refused.append(Item(entry.name, None, None, NOT_A_VAL_NAME))
                else:
                    val[label].append(ZipMember(name, entry))
                continue
            if split == "test":
                if _is_test_name(name):
                    test.append(ZipMember(name, entry))
                else:
                    refused.append(Item(entry.name, None, None, NOT_A_TEST_NAME))
                continue
            if wnid is None or not catalogue.is_wnid(wnid):
                refused.append(Item(entry.name, None, None, NOT_A_CLASS_FOLDER))
                continue
            if finished := runs.add(wnid, ZipMember(name, entry)):
                yield finished
        if finished := runs.flush():
            yield finished
        for wnid, members in sorted(val.items()):  # 50,000 small records at most
            items = tuple(members)
            yield Shard(
                "val", wnid, len(items), ZipMembers(path, items, snapshot), None, self.inputs, listing_of(items)
            )
        yield from _stretches("test", test, lambda m: ZipMembers(path, m, snapshot), self.inputs, listing_of)
        if refused:
            yield Shard(
                self.splits[0], None, len(refused), Blobs(tuple(refused)), None, self.inputs, listing_of(refused)
            )


VAL_PART = 500  # val images per shard of a stream read whole (no class order to cut it by)


class _StreamedStretches:
    """Images of a split no class cuts (val, test), from a stream read whole: kept in stretches
    of VAL_PART as they come, with the members that cannot be used as one shard of failures."""

    def __init__(self, split: str, inputs: tuple[InputFile, ...]) -> None:
        self.split, self.inputs = split, inputs
        self.items: list[Item] = []
        self.unusable: list[Item] = []
        self.part = 0

    def add(self, item: Item) -> Shard | None:
        self.items.append(item)
        return self._cut() if len(self.items) == VAL_PART else None

    def refuse(self, origin: str, why: str) -> None:
        self.unusable.append(Item(origin, None, None, why))

    def _cut(self) -> Shard:
        items, self.items = tuple(self.items), []
        shard = Shard(self.split, None, len(items), Blobs(items), self.part, self.inputs, listing_of(items))
        self.part += 1
        return shard

    def finish(self) -> Iterator[Shard]:
        if self.items:
            yield self._cut()
        yield from _unusable(self.split, self.unusable, self.inputs)


class _KaggleTarGzShards(_KaggleShards):
    """The 2019 layout: one inner tar.gz, read from start to end; val cut in stretches of VAL_PART."""

    spreadable = False

    def _cut(self) -> Iterator[Shard]:
        runs = ClassRuns(self.inputs, lambda items: Blobs(items))
        streamed = {split: _StreamedStretches(split, self.inputs) for split in ("val", "test")}
        refused: list[tuple[str, str]] = []
        for member in archives.kaggle_inner_tar_members(self.bundle, lambda where, why: refused.append((where, why))):
            if member.split not in self.splits:
                continue
            if member.split == "train" and member.wnid is not None:
                if finished := runs.add(member.wnid, Item(member.name, None, member.data)):
                    yield finished
            elif stretch := _streamed_image(
                streamed[member.split], self.labels, member.name, member.data, member.origin
            ):
                yield stretch
        if finished := runs.flush():
            yield finished
        for split in self.splits:
            if split in streamed:
                yield from streamed[split].finish()
        if refused:
            raise ArchiveError(f"{refused[0][0]}: refused: {refused[0][1]} ({len(refused)} members refused)")


def _streamed_image(
    stretches: _StreamedStretches, labels: tuple[str, ...], name: str, data: bytes, origin: str
) -> Shard | None:
    """A val image gets its label from its number, a test image none; names neither split has are
    failures."""
    if stretches.split == "test":
        if not _is_test_name(name):
            stretches.refuse(origin, NOT_A_TEST_NAME)
            return None
        return stretches.add(Item(name, None, data))
    wnid = label_of(labels, name)
    if wnid is None:
        stretches.refuse(origin, NOT_A_VAL_NAME)
        return None
    return stretches.add(Item(name, wnid, data))


class _HubShards(Shards):
    """Hugging Face's ``ILSVRC/imagenet-1k``: each ``.tar.gz`` read from start to end here, train
    cut in runs of one class (a class that straddles two files is two runs), val in stretches.
    The names get their official form back, so the tree is the one the official archives make."""

    spreadable = False

    def __init__(
        self, files: dict[str, list[Path]], labels: tuple[str, ...], inputs: dict[str, list[InputFile]]
    ) -> None:
        super().__init__()
        self.files, self.labels, self.inputs = files, labels, {s: tuple(i) for s, i in inputs.items()}

    def _cut(self) -> Iterator[Shard]:
        refused: list[Item] = []

        def refuse(where: str, why: str) -> None:
            refused.append(Item(where.rsplit(":", 1)[-1], None, None, f"refused: {why}"))

        if "train" in self.files:
            yield from self._train(refuse, refused)
        for split in ("val", "test"):
            if split in self.files:
                yield from self._streamed(split, refuse)
        yield from _unusable(next(iter(self.files)), refused, self.inputs[next(iter(self.files))])

    def _train(self, refuse: Callable[[str, str], None], refused: list[Item]) -> Iterator[Shard]:
        runs = ClassRuns(self.inputs["train"], lambda items: Blobs(items))
        for path in self.files["train"]:
            for image in archives.hub_images(path, refuse):
                if image.wnid is None:
                    refused.append(Item(image.origin, None, None, NO_CLASS_SUFFIX))
                elif finished := runs.add(image.wnid, Item(image.name, None, image.data)):
                    yield finished
        if finished := runs.flush():
            yield finished

    def _streamed(self, split: str, refuse: Callable[[str, str], None]) -> Iterator[Shard]:
        stretches = _StreamedStretches(split, self.inputs[split])
        differing: list[str] = []
        for image in archives.hub_images(self.files[split][0], refuse):
            # The shipped label, as for every input; the name's suffix only checked against it.
            if split == "val" and (wnid := label_of(self.labels, image.name)) and image.wnid != wnid:
                differing.append(f"{image.origin}: ILSVRC-2012's label is {wnid}")
            if stretch := _streamed_image(stretches, self.labels, image.name, image.data, image.origin):
                yield stretch
        yield from stretches.finish()
        if differing:
            what = f"{len(differing)} val images carry another class in their names than ILSVRC-2012's label"
            warn_refiled(what, differing)


WEBDATASET_INFO = "_info.json"


def is_webdataset(source: Path) -> bool:
    """A folder of WebDataset shards: timm's ``_info.json``, or ``*-train-*.tar`` / ``*-validation-*.tar``."""
    return (source / WEBDATASET_INFO).is_file() or any(
        next(source.glob(f"*-{name}-*.tar"), None) is not None for name in catalogue.SHARD_SPLIT_NAMES.values()
    )


def _plan_webdataset(source: Path, splits: tuple[str, ...], tree: Path) -> Plan:
    files = {split: _webdataset_files(source, split) for split in splits}
    return _plan_sample_files(f"the WebDataset shards at {source}", source, files, WebDatasetShard, tree)


def is_parquet(source: Path) -> bool:
    """A folder of Parquet files as the hub lays them out: ``data/train-*.parquet``, ``data/validation-*``."""
    return any(
        next(_parquet_folder(source).glob(f"{name}-*.parquet"), None) for name in catalogue.SHARD_SPLIT_NAMES.values()
    )


def _parquet_folder(source: Path) -> Path:
    return source / "data" if (source / "data").is_dir() else source


def _plan_parquet(source: Path, splits: tuple[str, ...], tree: Path) -> Plan:
    folder = _parquet_folder(source)
    files = {split: sorted(folder.glob(f"{catalogue.SHARD_SPLIT_NAMES[split]}-*.parquet")) for split in splits}
    return _plan_sample_files(f"the Parquet files at {source}", source, files, ParquetShard, tree)


def _plan_sample_files(
    described: str,
    source: Path,
    files: dict[str, list[Path]],
    reader: Callable[[Path, Snapshot], Reader],
    tree: Path,
) -> Plan:
    """One shard of the plan per file of samples (a WebDataset tar, a Parquet file): its images
    come with their names and classes."""
    shards, inputs = [], {}
    for split, paths in files.items():
        if not paths:
            raise MissingInputError(f"{source} has no {catalogue.SHARD_SPLIT_NAMES[split]} files")
        inputs[split] = [by_size_and_mtime(path, tree) for path in paths]
        for number, (path, identity) in enumerate(zip(paths, inputs[split], strict=True)):
            listing = fingerprint([path.name, identity.size, identity.mtime_ns])
            shards.append(
                Shard(split, None, None, reader(path, Snapshot.of(path.stat())), number, (identity,), listing)
            )
    return Plan(described, ListedShards(shards), inputs)


def _webdataset_files(source: Path, split: str) -> list[Path]:
    """A split's shards: as ``_info.json`` lists them, else by name."""
    name = catalogue.SHARD_SPLIT_NAMES[split]
    info = source / WEBDATASET_INFO
    if info.is_file():
        try:
            listed = json.loads(info.read_text())["splits"].get(name, {}).get("filenames", [])
        except (ValueError, KeyError, AttributeError) as error:
            raise ArchiveError(f"{info} is not a WebDataset shard list ({error})") from None
        return [source / file for file in listed]
    return sorted(source.glob(f"*-{name}-*.tar"))


def _kaggle_base(source: Path) -> Path | None:
    """Where an extracted Kaggle tree's ``Data/CLS-LOC`` is, given its ``ILSVRC/`` or the folder above."""
    return next((p for p in (source / "Data" / "CLS-LOC", source / "ILSVRC" / "Data" / "CLS-LOC") if p.is_dir()), None)


def is_kaggle_tree(source: Path) -> bool:
    return _kaggle_base(source) is not None


def _plan_tree(source: Path, splits: tuple[str, ...], labels: tuple[str, ...], tree: Path) -> Plan:
    """An extracted Kaggle ``ILSVRC/`` tree (flat val) or an ImageFolder tree (val in class folders)."""
    candidates = (_kaggle_base(source) or source, source)
    base = next((p for p in candidates if (p / "train").is_dir() or (p / "val").is_dir()), None)
    if base is None:
        raise MissingInputError(f"{source} has neither train/ nor val/ (nor ILSVRC/Data/CLS-LOC/)")
    shards = []
    for split in splits:
        by_class: dict[str, list[LooseFile]] = collections.defaultdict(list)
        split_dir = base / split
        if not split_dir.is_dir():
            raise MissingInputError(f"{source} has no {split}/ folder")
        unusable: list[Item] = []
        if not manifest.is_labelled(split):
            shards += _plan_flat_folder(split_dir)
            continue
        refiled: list[str] = []  # val images in another class's folder than their label's
        for dirpath, _, names in os.walk(split_dir):
            folder = Path(dirpath).name
            for name in sorted(names):
                path = os.path.join(dirpath, name)
                if split == "val":
                    wnid = label_of(labels, name)
                    if wnid is not None and catalogue.is_wnid(folder) and folder != wnid:
                        refiled.append(f"{folder}/{name}: its label is {wnid}")
                else:
                    wnid = folder if catalogue.is_wnid(folder) else None
                if wnid is None:
                    unusable.append(Item(path, None, None, NOT_A_VAL_NAME if split == "val" else NOT_A_CLASS_FOLDER))
                else:
                    by_class[wnid].append(LooseFile(name, path))
        if refiled:
            images = "1 val image sits" if len(refiled) == 1 else f"{len(refiled):,} val images sit"
            warn_refiled(f"{split_dir}: {images} in another class's folder than its label", refiled)
        shards += [
            Shard(split, w, len(p), Files(tuple(p)), listing=_files_listing(p)) for w, p in sorted(by_class.items())
        ]
        shards += _unusable(split, unusable)
    kind = "an extracted Kaggle tree" if base != source else "an ImageFolder tree"
    # A tree this tool made is known by its manifest; loose files by the listing of each shard.
    recorded = [describe(source / manifest.MANIFEST, tree)] if manifest.has_manifest(source) else []
    return Plan(f"{kind} at {source}", ListedShards(shards), {split: recorded for split in splits})


def _plan_flat_folder(split_dir: Path) -> list[Shard]:
    """The test split of an extracted tree: its images side by side, in stretches by name."""
    files, odd = [], []
    for dirpath, _, names in os.walk(split_dir):
        for name in sorted(names):
            path = os.path.join(dirpath, name)
            if dirpath == str(split_dir) and _is_test_name(name):
                files.append(LooseFile(name, path))
            else:
                odd.append(Item(path, None, None, NOT_A_TEST_NAME))
    split = split_dir.name
    return [*_stretches(split, files, Files, (), _files_listing), *_unusable(split, odd)]


def _files_listing(paths: Sequence[LooseFile]) -> str:
    """Loose files are known by name, size and mtime: a stat each, no read."""

    def identity(name: str, path: str) -> tuple[Any, ...]:
        try:
            stat = os.stat(path)
        except OSError:  # the shard names it as a failure when it reads it
            return name, None
        return name, stat.st_size, stat.st_mtime_ns

    return fingerprint(identity(name, path) for name, path in paths)
