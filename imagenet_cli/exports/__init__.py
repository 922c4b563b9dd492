"""``imagenet export FORMAT``: a tree this tool made, in the format people train from.

Any prepared tree or subset is read from its manifest (never by listing folders) and labelled
from its own label tables (never by folder order): the sorted-WNID index of the 1000 classes for a
prepared tree, the subset's own index (its ``classes.txt``) for a subset. Output files are written
under temporary names and renamed when complete, so a file under its final name is finished and a
re-run keeps it; ``export.json`` (the options, the source and every file with its size, xxh3 and
sample count) is written last.

Formats, one module each: ``webdataset`` (timm's imagenet-1k-wds), ``parquet`` (Hugging Face's
ILSVRC/imagenet-1k) and ``downsampled`` (Imagenet32/64 as published).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import catalogue, locks, manifest
from ..errors import ArchiveError, DamagedTreeError, InvalidArgumentError, MissingInputError
from ..hashing import hash_file
from ..layout import DEFAULT_TREE, EXPORTS, Root
from ..manifest import Failure
from ..progress import SILENT, Progress
from ..storage import Bucket, local_or_url
from ..trees.plan import is_parquet, is_webdataset
from ..trees.readers import OriginReader, read_whole
from ..trees.resize import BoxRows, Filter, ImageFormat, Mode, Recipe
from ..workers import local_pool, ordered_map, thread_pool
from .destinations import BucketFolder, Destination, Finished, Folder
from .formats import ExportFormat, shard_writer_for, writer_for
from .record import RECORD, ExportRecord, ShardRecord, samples_per_split
from .samples import Sample, SplitSamples, labels_of

if TYPE_CHECKING:
    from .straight import Straight

log = logging.getLogger(__name__)


FORMATS = tuple(ExportFormat)
DOWNSAMPLED_SIZES = (8, 16, 32, 64)
CLAIM = ".export-claim.json"  # the options and source an export folder is for (see owned.py)
SPLIT_NAMES = catalogue.SHARD_SPLIT_NAMES  # as timm's imagenet-1k-wds and the Hub name them


@dataclass
class ExportResult:
    format: str
    path: Path
    source: Path | str  # a tree or folder of archives, or the URL of a bucket's
    shards: list[ShardRecord] = field(default_factory=list)
    written: int = 0  # files written by this run; the rest were already complete
    failures: list[Failure] = field(default_factory=list)  # straight from the archives: images not used
    url: str | None = None  # written to object storage: its URL (``path`` is then the local spool)

    @property
    def where(self) -> str:
        """Where the export is, as a user names it: its folder or its URL."""
        return self.url or str(self.path)

    @property
    def samples(self) -> dict[str, int]:
        return samples_per_split(self.shards)


@dataclass
class Job:
    """One export as a format module sees it: where to read, where to write, with what options."""

    tree: Path  # the tree read, or the staging folder of an export made straight from the archives
    out: Path
    options: dict[str, Any]
    result: ExportResult
    progress: Progress
    workers: int = 1
    name: str = ""  # what the export is of, in its own files (_info.json, the dataset card): the tree's name
    origins: OriginReader = field(default_factory=OriginReader)
    destination: Destination | None = None  # where files are published; None: ``out`` itself

    def __post_init__(self) -> None:
        self.name = self.name or self.tree.name
        self.destination = self.destination or Folder(self.out)

    @property
    def to(self) -> Destination:
        assert self.destination is not None  # set by __post_init__
        return self.destination

    def read(self, sample: Sample) -> bytes:
        """A sample's bytes as exported: a tree's file, or a staged image out of its pack."""
        if sample.origin is not None:
            try:
                return self.origins.read(sample.origin)
            except (OSError, ArchiveError) as error:
                raise DamagedTreeError(f"cannot read {sample.path} from {sample.origin.path}: {error}") from None
        try:
            return read_whole(self.tree / sample.path, sample.bytes)
        except OSError as error:
            raise DamagedTreeError(f"cannot read {self.tree / sample.path}: {error.strerror or error}") from None

    def keep(self, name: str, split: str, samples: int, finished: Finished) -> None:
        """Record a finished file (its digest as written, or read back when it was already there)."""
        digest = finished.xxh3_64 or hash_file(self.out / name, ["xxh3_64"])["xxh3_64"]
        self.result.shards.append(ShardRecord(name, split, samples, finished.bytes, digest))

    def publish(self, name: str, digest: str | None = None) -> Finished:
        """``out/name``, just written, under its final name (uploaded, for a bucket)."""
        return self.to.publish(name, digest)


def export(
    root: Path,
    to: str = "webdataset",
    *,
    source: Path | str | None = None,
    out: Path | str | None = None,
    storage_options: dict[str, Any] | None = None,
    splits: list[str] | None = None,
    seed: int = 0,
    shard_size: int | None = None,
    max_shard_bytes: int | None = None,
    prefix: str | None = None,
    size: int | str | None = None,
    mode: Mode | None = None,
    quality: int | None = None,
    image_format: ImageFormat | None = None,
    filter: Filter | None = None,
    upscale: bool | None = None,
    workers: int | None = None,
    dask: str | None = None,
    trust_input_labels: bool = False,
    wait: bool = True,
    progress: Progress = SILENT,
) -> ExportResult:
    """Write images in the format ``to`` into ``out`` (default: ``ROOT/exports/<format>-<tree>``,
    ``downsampled32-<tree>`` for size 32), from a prepared tree or straight from the archives.

    The source: ``source`` when it is a tree this tool prepared (its files are copied); otherwise
    the archives, read as ``prepare`` reads them, from ``ROOT/downloads`` or from ``source`` when
    it is an extracted Kaggle tree. Without ``source``, webdataset and parquet read the archives
    when an image option is given (``size``, ``mode``, ``quality``, ``image_format``, ``filter``,
    ``upscale``) or the root holds no prepared tree, else they copy the prepared tree (``ROOT/224``
    among several); downsampled reads ``ROOT/full`` when it is there, else the archives. An
    export from the archives is ``ROOT/exports/<format>-<tree it would be>-archives`` by default.

    webdataset and parquet: a shard holds ``shard_size`` samples, or fewer where
    ``max_shard_bytes`` would be passed; from a tree, shards are written on ``workers`` processes
    (default: every core); from the archives, the images are made as ``prepare`` would make them
    (default: 224 pixels). downsampled: ``size`` pixels square (default 32),
    decoded on ``workers`` processes (default: every core). From the archives, the images are
    made on ``workers`` processes or on the Dask cluster ``dask`` (see ``prepare``), and images
    that cannot be used are in the result's ``failures``.

    ``source`` may be the URL of a bucket's folder that holds the official archives
    (``s3://bucket/ilsvrc``): the train tar's 1000 class tars are found from its headers alone, and
    each is read by range on the worker that makes its images; nothing is downloaded whole.
    ``out`` may be a URL of S3 or an S3-compatible store (``s3://bucket/prefix``, opened with
    ``storage_options``): each file is made in a local spool under the root, uploaded whole under
    its final key and deleted, and ``export.json`` is written last (see ``destinations``).
    """
    chosen = _format_named(to)
    image_options = {"mode": mode, "quality": quality, "format": image_format, "filter": filter, "upscale": upscale}
    read_from = local_or_url(source) if source is not None else None
    archives_at, source = (read_from, None) if isinstance(read_from, str) else (None, read_from)
    from_tree = _tree_to_read(root, source, chosen, size, image_options)
    options = _options(chosen, seed, shard_size, max_shard_bytes, prefix, size, splits)
    chosen_out = _destination(root, out, storage_options, reading_a_bucket=archives_at is not None)
    if from_tree is not None:
        if dask is not None or trust_input_labels:
            given = "dask" if dask is not None else "trust_input_labels"
            raise InvalidArgumentError(f"applies to making images from the archives; {from_tree} is a tree", given)
        return _export_tree(root, chosen, from_tree, options, chosen_out, wait, workers, progress)
    straight = _straight(chosen, size, image_options, source, dask, trust_input_labels)
    straight = dataclasses.replace(straight, archives=archives_at, storage_options=storage_options)
    given = archives_at or (str(source) if source else "downloads")
    options["from"] = {"archives": given, "images": straight.described()}
    destination = chosen_out or Folder(
        Root(root).path / EXPORTS / f"{_export_name(chosen, options)}-{straight.name}-archives"
    )
    writer = writer_for(chosen)
    # The extra a format needs, before the work (downsampled's check is of a tree's recipe).
    if chosen is ExportFormat.downsampled:
        from .downsampled import require_numpy

        require_numpy()
    else:
        writer.check_source(destination.work, Root(root).path)
    with destination.held(wait):
        _claim(destination, {"options": options})
        from . import straight as straight_export  # it builds on this package

        def job_of(tree: Path, name: str) -> Job:
            result = ExportResult(to, destination.work, tree, url=_url(destination))
            cores = workers or os.cpu_count() or 1
            return Job(tree, destination.work, options, result, progress, cores, name, destination=destination)

        return straight_export.run(
            root, writer, job_of, options, straight, workers=workers or os.cpu_count() or 1, progress=progress
        )


def _export_tree(
    root: Path,
    to: ExportFormat,
    tree: Path,
    options: dict[str, Any],
    out: Destination | None,
    wait: bool,
    workers: int | None,
    progress: Progress,
) -> ExportResult:
    if not manifest.has_manifest(tree):
        raise MissingInputError(f"{tree} has no {manifest.MANIFEST}: a tree is copied only when this tool made it")
    destination = out or Folder(Root(root).path / EXPORTS / f"{_export_name(to, options)}-{tree.name}")
    writer = writer_for(to)
    writer.check_source(tree, Root(root).path)
    with destination.held(wait), locks.reading(tree, wait):
        source_manifest = hash_file(tree / manifest.MANIFEST, ["xxh3_64"])["xxh3_64"]
        wanted = {"options": options, "source_manifest_xxh3": source_manifest}
        _claim(destination, wanted)
        result = ExportResult(to, destination.work, tree, url=_url(destination))
        cores = workers or os.cpu_count() or 1
        job = Job(tree, destination.work, options, result, progress, cores, destination=destination)
        for split in options["splits"]:
            with contextlib.closing(SplitSamples(tree, split, options["seed"], spool_in=job.out)) as samples:
                if len(samples):
                    writer.write_split(job, split, samples)
        writer.finish(job)
        record = ExportRecord(options, source_manifest, str(tree), tuple(job.result.shards))
        destination.write_text(RECORD, record.to_json())
        return job.result


def _destination(
    root: Path, out: Path | str | None, storage_options: dict[str, Any] | None, reading_a_bucket: bool = False
) -> Destination | None:
    """The folder or the bucket (spooled under the root) ``out`` names; None when it names none."""
    where = local_or_url(out) if out is not None else None
    if isinstance(where, str):
        return BucketFolder.under(Root(root).path, Bucket(where, storage_options))
    if storage_options and not reading_a_bucket:
        raise InvalidArgumentError("applies to a URL of object storage; the export is to a folder", "storage_options")
    return Folder(where) if where is not None else None


def _url(destination: Destination) -> str | None:
    return None if isinstance(destination, Folder) else str(destination)


def _export_name(to: ExportFormat, options: dict[str, Any]) -> str:
    return f"downsampled{options['size']}" if to is ExportFormat.downsampled else to.value


def _tree_to_read(
    root: Path, source: Path | None, to: ExportFormat, size: int | str | None, image_options: dict[str, Any]
) -> Path | None:
    """The prepared tree the export copies, or None when it makes its images from the archives."""
    given = [name for name, value in image_options.items() if value is not None]
    given += ["size"] if size is not None and to is not ExportFormat.downsampled else []
    if source is not None and manifest.has_manifest(source):
        if given:
            raise InvalidArgumentError(
                f"applies to making images from the archives; {source} is a prepared tree, copied as it is",
                "image_format" if given[0] == "format" else given[0],
            )
        return source
    if source is not None:
        return None  # an extracted Kaggle tree (or another ImageFolder tree): its images are made anew
    if to is ExportFormat.downsampled:
        full = Root(root).path / "full"
        return full if full in Root(root).trees() else None
    if given or not Root(root).trees():
        return None
    return Root(root).the_prepared_tree()


def _straight(
    to: ExportFormat,
    size: int | str | None,
    image_options: dict[str, Any],
    source: Path | None,
    dask: str | None,
    trust_input_labels: bool,
) -> Straight:
    """How an export made from the archives makes its images: as ``prepare`` would for a JPEG
    format, as the published files were for Downsampled ImageNet."""
    from ..trees import tree_name
    from .straight import Straight

    if to is ExportFormat.downsampled:
        if given := [name for name, value in image_options.items() if value is not None]:
            raise InvalidArgumentError(
                "applies to JPEG exports: Downsampled ImageNet is a box resize of each original", given[0]
            )
        return Straight(BoxRows(int(size or 32)), "full", source, dask, trust_input_labels)
    chosen = {key: value for key, value in image_options.items() if value is not None}
    # Shards hold images made already: their bytes are kept unless a size is asked for.
    shards = source is not None and (is_webdataset(source) or is_parquet(source))
    recipe = Recipe((str(size or ("full" if shards else DEFAULT_TREE)),), **chosen)
    recipe.require_extras()
    size_name = recipe.sizes[0]
    return Straight(recipe.applied_to(size_name), tree_name(size_name, recipe), source, dask, trust_input_labels)


def _format_named(to: str) -> ExportFormat:
    try:
        return ExportFormat(to)
    except ValueError:
        raise InvalidArgumentError(f"export format {to!r} is not one of {', '.join(FORMATS)}") from None


def _options(
    to: ExportFormat,
    seed: int,
    shard_size: int | None,
    max_shard_bytes: int | None,
    prefix: str | None,
    size: int | str | None,
    splits: list[str] | None,
) -> dict[str, Any]:
    """Checked options, with each format's defaults filled in; those of another format refused."""
    chosen = list(dict.fromkeys(splits or ("train", "val")))
    if unknown := [s for s in chosen if s not in SPLIT_NAMES]:
        raise InvalidArgumentError(f"{', '.join(unknown)}: a tree has train and val", "splits")
    options: dict[str, Any] = {"format": to.value, "splits": chosen, "seed": seed}
    if to is ExportFormat.downsampled:
        given = [
            o
            for o, v in (("{shard_size}", shard_size), ("{max_shard_bytes}", max_shard_bytes), ("{prefix}", prefix))
            if v is not None
        ]
        if given:
            raise InvalidArgumentError(
                f"{', '.join(given)}: downsampled writes 10 train batches and val_data, as the published files"
            )
        if (size := 32 if size is None else _whole(size)) not in DOWNSAMPLED_SIZES:
            raise InvalidArgumentError(
                f"{size}: Downsampled ImageNet is {', '.join(map(str, DOWNSAMPLED_SIZES))} pixels", "size"
            )
        return {**options, "size": size}
    if shard_size is not None and shard_size < 1:
        raise InvalidArgumentError("must be at least 1", "shard_size")
    if max_shard_bytes is not None and max_shard_bytes < 64 << 10:
        raise InvalidArgumentError("must be at least 64 KiB", "max_shard_bytes")
    defaults = writer_for(to).SHARD_SIZES
    sizes = {split: shard_size or defaults[split] for split in chosen}
    return {**options, "shard_sizes": sizes, "max_shard_bytes": max_shard_bytes, "prefix": prefix or "imagenet1k"}


def _whole(size: int | str) -> int | str:
    return int(size) if isinstance(size, int) or size.isdigit() else size


def _claim(destination: Destination, wanted: dict[str, Any]) -> None:
    """One export folder, one set of options and one source: a re-run keeps finished shards only
    when they are what it would write."""
    other = f"{destination} holds an export made with other options or from another tree"
    destination.claim(CLAIM, wanted, lambda existing: other)


def write_shards(job: Job, split: str, samples: SplitSamples) -> None:
    """Cut ``samples`` into shards, and write each one not already complete with the format's
    ``write_shard``.

    Shards are written on ``job.workers`` processes, each driven by a thread here that publishes
    what its process wrote. Threads alone could not: the interpreter lock let one shard's
    per-sample work run at a time, and three threads ran no faster than one.
    """
    writer = shard_writer_for(job.options["format"])
    size, max_bytes = job.options["shard_sizes"][split], job.options["max_shard_bytes"]
    # A first pass counts the shards (their names say how many); the second writes them.
    count = shard_count(samples, size, max_bytes)
    apart = job.workers > 1 and count > 1

    with local_pool(job.workers) if apart else contextlib.nullcontext() as processes:

        def write(name: str, group: list[Sample]) -> str | None:
            if processes is None:
                return writer.write_shard(job, job.out / name, group)
            task = ShardWrite(job.tree, job.out, job.options, job.name, name, group)
            return processes.submit(write_shard_apart, task).result()

        def write_missing(shard: tuple[str, list[Sample]]) -> tuple[str, list[Sample], bool, Finished]:
            name, group = shard
            if finished := job.to.finished(name):  # a shard under its final name is complete
                return name, group, False, finished
            return name, group, True, job.publish(name, write(name, group))

        shards = zip(writer.names_of(job, split, count), shard_groups(samples, size, max_bytes), strict=True)
        with job.progress.task(f"writing {split} shards", total=len(samples), unit="img") as advance:
            threads = min(job.workers, count)
            for name, group, written, finished in ordered_map(write_missing, shards, threads, pool=thread_pool):
                job.result.written += written
                job.keep(name, split, len(group), finished)
                advance(len(group))


@dataclass(frozen=True)
class ShardWrite:
    """One shard for a worker process to write: the plain parts of its job, nothing of the parent's."""

    tree: Path
    out: Path
    options: dict[str, Any]
    name: str
    file: str
    samples: list[Sample]


def write_shard_apart(task: ShardWrite) -> str | None:
    """In a worker process: the shard written (under its final name, as ``write_shard`` does); its xxh3."""
    result = ExportResult(task.options["format"], task.out, task.tree)
    job = Job(task.tree, task.out, task.options, result, SILENT, name=task.name)
    return shard_writer_for(task.options["format"]).write_shard(job, task.out / task.file, task.samples)


# Per sample, besides the image: a tar's three headers, a .cls block, a .json under 1 KiB, padding.
SAMPLE_OVERHEAD = 7 * 512
SHARD_OVERHEAD = 20 * 512  # a tar's end and its padding to a whole record


def shard_count(samples: SplitSamples, size: int, max_bytes: int | None) -> int:
    """How many shards ``shard_groups`` cuts (a pass over the samples when bytes decide)."""
    return -(-len(samples) // size) if max_bytes is None else sum(1 for _ in shard_groups(samples, size, max_bytes))


def shard_groups(samples: Iterable[Sample], size: int, max_bytes: int | None) -> Iterator[list[Sample]]:
    """Consecutive runs of at most ``size`` samples and at most ``max_bytes`` bytes each (a shard
    of one sample excepted), counting each format's overhead as a tar's."""
    group: list[Sample] = []
    total = SHARD_OVERHEAD
    for sample in samples:
        cost = sample.bytes + SAMPLE_OVERHEAD
        if group and (len(group) == size or (max_bytes is not None and total + cost > max_bytes)):
            yield group
            group, total = [], SHARD_OVERHEAD
        group.append(sample)
        total += cost
    if group:
        yield group


def class_names(tree: Path) -> list[str]:
    """The exported labels' class names, in label order, unique: the first synonym, with the WNID
    added where two classes share it ("crane" is a bird and a machine, "maillot" two garments)."""
    labels = labels_of(tree)
    wnids = sorted(labels, key=lambda wnid: labels[wnid][0])
    first = [catalogue.by_wnid(wnid).name for wnid in wnids]
    shared = {name for name, count in collections.Counter(first).items() if count > 1}
    return [f"{name} ({wnid})" if name in shared else name for name, wnid in zip(first, wnids, strict=True)]


def prepared_by(tree: Path, root: Path) -> manifest.Prepared | None:
    """How the prepared tree beneath ``tree`` was made, a subset followed back to the tree it was
    cut from; None for a tree this tool did not prepare."""
    seen: set[Path] = set()
    while (info := manifest.read_tree_info(tree)) is not None and isinstance(info.made_by, manifest.CutFrom):
        seen.add(tree.resolve())
        tree = root / info.made_by.tree  # relative to the root, or absolute
        if tree.resolve() in seen:
            return None
    return info.made_by if info is not None and isinstance(info.made_by, manifest.Prepared) else None
