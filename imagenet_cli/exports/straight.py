"""An export made straight from the archives: training shards with no tree of 1.28 M files between.

Two steps, each restartable, under the export folder's lock:

1. Staging (:func:`imagenet_cli.trees.stage`): the inputs are read as ``prepare`` reads them, with
   the same refusals, and for each input shard a marker under ``OUT/.staged/`` says where every
   image lies in the archives (``Sink.origins``). Nothing is made yet. Where the images' made sizes
   are needed first (shards cut by ``max_shard_bytes``), where the input is one stream (the 2019
   Kaggle tar.gz), and for Downsampled ImageNet's small rows, they are made now instead, into one
   pack per input shard (``Sink.packs``). A stop keeps the finished input shards; changed inputs
   redo theirs.
2. Merging: the staged samples, in the export's order (train in the seeded shuffle across every
   class, exactly as from a tree of the same images), are cut into shards as a tree export cuts
   them. Their images are made on the workers (local processes, or the Dask cluster's) a chunk at
   a time, and each shard is written here as soon as its images are in, then its record
   (``.staged/.merged/``). Before the first output file, ``OUT/.merged-from.json`` names the
   staged listing the outputs are made from, so a re-run from other images removes them instead
   of keeping any.

To a bucket on a Dask cluster, the workers need no disk shared with this process: the packs are
uploaded to ``OUT/.staged/.packs/`` by the workers that make them, their markers come back here
(:class:`~imagenet_cli.trees.shards.PacksIn`), and each output shard is made and uploaded whole
by a worker (:func:`write_shard_beside`); this process writes the records alone.

Then ``export.json``, written last, records the options, the inputs and the images that could not
be used, and the staging is deleted. The disk sees the output once, and the packs' extra (about
the output's size) only where they are made. A re-run whose inputs are unchanged does nothing.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import xxhash

from .. import tar_index
from ..errors import ArchiveError
from ..hashing import hash_file
from ..inputs import InputFile, changed_since, relative_to
from ..manifest import Failure
from ..progress import SILENT, Progress
from ..storage import ObjectInfo, bucket_for, is_url
from ..trees import Staged, cluster, stage
from ..trees.readers import OriginReader
from ..trees.resize import ImageError, Making
from ..trees.shards import PACKS, PacksIn, Sink, read_marker
from ..workers import local_pool, ordered_map, thread_pool
from . import CLAIM, ExportResult, Job, shard_count, shard_groups
from .destinations import BucketFolder, Destination, Finished
from .formats import SHARDED, ExportFormat, ShardWriter, Writer, shard_writer_for
from .record import RECORD, ExportRecord
from .samples import Sample, StagedSamples

log = logging.getLogger(__name__)

STAGED = ".staged"
MERGED = ".merged"  # in STAGED: the record of each output shard written, with its failures
MERGED_FROM = ".merged-from.json"  # the staged listing the output files were made from
KEPT = (STAGED, MERGED_FROM)  # what a restart keeps in the folder besides the claim and locks


@dataclass(frozen=True)
class Straight:
    """Where an export straight from the archives reads, and how it makes its images."""

    making: Making
    name: str  # the tree the same images would make (224, 64-squash, full), for the export's own files
    source: Path | None  # an extracted Kaggle tree read instead of ROOT/downloads
    dask: str | None
    trust_input_labels: bool
    archives: str | None = None  # a bucket's folder of the official archives, read instead of ROOT/downloads
    storage_options: dict[str, Any] | None = None

    def read_from(self, root: Path) -> str:
        """Where the images are read, in words: a folder, or a URL."""
        return self.archives or str(self.source or Path(root) / "downloads")

    def described(self) -> dict[str, Any]:
        """How the images are made, as JSON values (for the claim and the record)."""
        return {"kind": type(self.making).__name__, **json.loads(json.dumps(asdict(self.making)))}


def run(
    root: Path,
    writer: Writer,
    job_of: Callable[[Path, str], Job],
    options: dict[str, Any],
    straight: Straight,
    *,
    workers: int,
    progress: Progress,
) -> ExportResult:
    """The export into the folder ``job_of(tree, name)``'s jobs write to (locked and claimed by
    the caller), each split written by ``writer``."""
    job = job_of(Path(root) / "downloads", straight.name)
    job.result.source = straight.read_from(root)
    destination, work = job.to, job.out
    done = _unchanged_export(destination)
    if done is not None:
        log.info("%s is complete and its inputs are unchanged", destination)
        destination.remove_prefix(STAGED)  # left by a stop just after the record
        job.result.shards, job.result.failures = list(done.shards), list(done.failures)
        return job.result
    sharded = ExportFormat(options["format"]) in SHARDED
    bucket = destination.bucket if isinstance(destination, BucketFolder) else None
    staged = stage(
        root,
        straight.making,
        work / STAGED,
        splits=options["splits"],
        workers=workers,
        source=straight.source,
        dask=straight.dask,
        progress=progress,
        trust_input_labels=straight.trust_input_labels,
        # Listed only, made as each output shard is written: the images are written once. Shards
        # cut by bytes need the made images' sizes first, so those are made and packed first; so
        # are images in a bucket, where reading a class tar's members twice would fetch it twice.
        sink=Sink.origins
        if sharded and options.get("max_shard_bytes") is None and not straight.archives
        else Sink.packs,
        archives_at=straight.archives,
        storage_options=straight.storage_options,
        # To a bucket: on a cluster, the packs go there too, so the workers need no disk of ours.
        packs_in=PacksIn(f"{bucket.url}/{STAGED}/{PACKS}", bucket.options) if bucket else None,
    )
    listing = _listing(staged)
    _start_merge(destination, listing)
    job = job_of(staged.folder, straight.name)
    job.result.source = straight.read_from(root)
    job.origins = OriginReader(bucket.options if bucket else ())
    twice: list[Failure] = []  # images two shards hold: used by neither
    try:
        for split in options["splits"]:
            with contextlib.closing(StagedSamples(staged, split, options["seed"], spool_in=job.out)) as samples:
                twice += samples.failures
                if not len(samples):
                    continue
                if sharded and straight.dask and isinstance(destination, BucketFolder):
                    _write_shards_beside(job, split, samples, straight, destination)
                elif sharded:
                    _write_shards_on_workers(job, split, samples, straight, workers)
                else:
                    writer.write_split(job, split, samples)
        writer.finish(job)
    finally:
        job.origins.close()
    failures = tuple(staged.failures) + tuple(twice) + tuple(job.result.failures)
    inputs = tuple(_relative(i, staged.folder, work) for files in staged.inputs.values() for i in files)
    trains = [i.path for i in staged.inputs.get("train", ()) if is_url(i.path)]
    record = ExportRecord(
        options,
        listing,
        straight.read_from(root),
        tuple(job.result.shards),
        inputs=inputs,
        failures=failures,
        train_tar_index=tar_index.kept_for(staged.folder, trains[0]) if trains else None,
    )
    destination.write_text(RECORD, record.to_json())
    destination.remove_prefix(STAGED)  # the images are in the shards, their records in the export's
    job.result.failures = list(failures)
    return job.result


# --- output shards: images made on the workers, each shard written as its images come ----------

CHUNK = 32  # images per task: a small export's one shard still spreads over every worker


@dataclass(frozen=True)
class MakeChunk:
    """Images for a worker to make, each from where its bytes are (or read made, out of a pack)."""

    making: Making
    samples: tuple[Sample, ...]
    storage_options: tuple[tuple[str, Any], ...] = dataclasses.field(default=(), repr=False)  # packs in a bucket


@dataclass(frozen=True)
class ShardDone:
    file: str
    samples: int  # written: those that could be made
    xxh3_64: str
    failures: tuple[Failure, ...]


def make_chunk(chunk: MakeChunk) -> list[bytes | str]:
    """Each image made, or why it could not be (a string); runs in a worker."""
    with OriginReader(chunk.storage_options) as origins:
        return [_made_or_why(sample, chunk.making, origins) for sample in chunk.samples]


def _made_or_why(sample: Sample, making: Making, origins: OriginReader) -> bytes | str:
    """The image made, or why it could not be."""
    assert sample.origin is not None  # a staged sample always says where it is
    try:
        data = origins.read(sample.origin)
        if sample.origin.kind == "pack":
            return data  # made when it was staged
        (size,) = making.sizes
        return making.make(data).outputs[size]
    except (ImageError, ArchiveError, OSError) as error:
        return str(error) or type(error).__name__


@dataclass
class _MadeJob(Job):
    """A job whose samples are made already, in memory: what the format's writer is given."""

    made: dict[str, bytes] = dataclasses.field(default_factory=dict)

    def read(self, sample: Sample) -> bytes:
        return self.made[sample.path]


class _Shard:
    """One output shard being gathered: its samples' images arrive chunk by chunk, in order."""

    def __init__(self, file: str, samples: list[Sample], done: tuple[ShardDone, Finished] | None = None) -> None:
        self.file, self.samples = file, samples
        self.done: ShardDone | None = done[0] if done else None  # written before a stop
        self.finished: Finished | None = done[1] if done else None
        self.made: list[bytes | str] = []

    def chunks(self, making: Making, storage_options: tuple[tuple[str, Any], ...]) -> Iterator[MakeChunk]:
        for at in range(0, len(self.samples), CHUNK):
            yield MakeChunk(making, tuple(self.samples[at : at + CHUNK]), storage_options)

    @property
    def complete(self) -> bool:
        return self.done is not None or len(self.made) == len(self.samples)

    def write(self, job: Job, writer: ShardWriter) -> tuple[ShardDone, Finished]:
        """The shard, then its record (under ``.staged/.merged/``): a stop between the two redoes it."""
        digest, samples, failures = _write_made(job, writer, self.file, self.samples, self.made)
        finished = job.publish(self.file, digest)
        assert finished.xxh3_64 is not None
        done = ShardDone(self.file, samples, finished.xxh3_64, failures)
        _record_merged(job, done)
        return done, finished


def _write_made(
    job: Job, writer: ShardWriter, file: str, samples: Sequence[Sample], made: Sequence[bytes | str]
) -> tuple[str | None, int, tuple[Failure, ...]]:
    """The shard ``job.out/file`` written from its images as made: its xxh3 (None: to be read
    back), how many samples it holds, and the failures, the images that could not be made."""
    images, kept, failures = {}, [], []
    for sample, data in zip(samples, made, strict=True):
        split, wnid, name = sample.path.split("/", 2)
        if isinstance(data, str):
            failures.append(Failure(split, wnid, name, data))
            continue
        images[sample.path] = data
        kept.append(dataclasses.replace(sample, bytes=len(data), origin=None))
    writing = _MadeJob(
        job.tree, job.out, job.options, job.result, job.progress, name=job.name, destination=job.to, made=images
    )
    return writer.write_shard(writing, job.out / file, kept), len(kept), tuple(failures)


def _record_merged(job: Job, done: ShardDone) -> None:
    job.to.write_text(_merged_record(done.file), json.dumps(dataclasses.asdict(done)) + "\n")


def _merged_record(file: str) -> str:
    return f"{STAGED}/{MERGED}/{file.replace('/', '__')}.json"


def _finished(job: Job, file: str) -> tuple[ShardDone, Finished] | None:
    """A shard under its final name with its record: written before a stop, kept as it is."""
    finished = job.to.finished(file)
    text = job.to.read_text(_merged_record(file)) if finished else None
    if finished is None or text is None:
        return None
    data = json.loads(text)
    done = ShardDone(data["file"], data["samples"], data["xxh3_64"], tuple(Failure(**f) for f in data["failures"]))
    return done, Finished(finished.bytes, done.xxh3_64)


def _write_shards_on_workers(job: Job, split: str, samples: StagedSamples, straight: Straight, workers: int) -> None:
    """The split's shards, cut as a tree export cuts them. The images are made on the workers (local
    processes, or the Dask cluster's), a chunk per task, and each shard is written here as soon as
    its images are in: the images are decoded once, and the disk sees each shard once."""
    writer = shard_writer_for(job.options["format"])
    size, max_bytes = job.options["shard_sizes"][split], job.options["max_shard_bytes"]
    count = shard_count(samples, size, max_bytes)
    files = writer.names_of(job, split, count)
    waiting: collections.deque[_Shard] = collections.deque()

    def chunks() -> Iterator[MakeChunk]:
        for file, group in zip(files, shard_groups(samples, size, max_bytes), strict=True):
            shard = _Shard(file, group, _finished(job, file))
            waiting.append(shard)
            if shard.done is None:
                yield from shard.chunks(straight.making, job.origins.storage_options)

    def finish_complete_shards() -> None:
        """In shard order, so the record lists them as a clean run does."""
        while waiting and waiting[0].complete:
            shard = waiting.popleft()
            done, finished = (shard.done, shard.finished) if shard.done else shard.write(job, writer)
            assert finished is not None
            job.result.written += shard.done is None
            job.result.failures += done.failures
            job.keep(done.file, split, done.samples, finished)
            advance(len(shard.samples) if shard.done else 0)

    with contextlib.ExitStack() as stack:
        advance = stack.enter_context(job.progress.task(f"writing {split} shards", total=len(samples), unit="img"))
        pool, slots = _pool(stack, straight.dask, workers)
        for made in ordered_map(make_chunk, chunks(), slots, pool=pool):
            next(shard for shard in waiting if shard.done is None and not shard.complete).made += made
            advance(len(made))
            finish_complete_shards()
        finish_complete_shards()


# --- output shards made and uploaded by Dask workers that share no disk with this process ---------

READS_AT_ONCE = 16  # ranged reads of a shard's images in flight on one worker: each waits on the store


@dataclass(frozen=True)
class ShardTask:
    """One output shard for a Dask worker to make and upload whole under its final key."""

    file: str
    samples: tuple[Sample, ...]
    making: Making
    options: dict[str, Any]  # the export's
    name: str  # what the export is of, for the format's files
    to: str  # the bucket's folder the export is in
    storage_options: tuple[tuple[str, Any], ...] = dataclasses.field(default=(), repr=False)  # may hold a secret


def write_shard_beside(task: ShardTask) -> tuple[ShardDone, ObjectInfo]:
    """Runs on a worker: the shard's images read (by range, many at once, where they are packs in
    the bucket) and made, the shard written in a scratch folder and uploaded whole."""
    at_once = READS_AT_ONCE if all(s.origin and is_url(s.origin.path) for s in task.samples) else 1  # a zip: seek
    with OriginReader(task.storage_options) as origins, thread_pool(at_once) as reads:
        made = list(reads.map(lambda sample: _made_or_why(sample, task.making, origins), task.samples))
    with tempfile.TemporaryDirectory(prefix="imagenet-export-") as scratch:
        out = Path(scratch)
        job = Job(out, out, task.options, ExportResult(task.options["format"], out, out), SILENT, name=task.name)
        digest, samples, failures = _write_made(
            job, shard_writer_for(task.options["format"]), task.file, task.samples, made
        )
        digest = digest or hash_file(out / task.file, ["xxh3_64"])["xxh3_64"]
        info = bucket_for(task.to, task.storage_options).upload(out / task.file, task.file)
    return ShardDone(task.file, samples, digest, failures), info


def _write_shards_beside(job: Job, split: str, samples: StagedSamples, straight: Straight, to: BucketFolder) -> None:
    """The split's shards, cut as a tree export cuts them, each made and uploaded by a Dask worker:
    this process sends where the images are and writes each shard's records, in shard order, as
    its upload is reported. No image passes through it."""
    writer = shard_writer_for(job.options["format"])
    size, max_bytes = job.options["shard_sizes"][split], job.options["max_shard_bytes"]
    files = writer.names_of(job, split, shard_count(samples, size, max_bytes))
    waiting: collections.deque[tuple[str, int, tuple[ShardDone, Finished] | None]] = collections.deque()

    def tasks() -> Iterator[ShardTask]:
        url, options = to.bucket.url, to.bucket.options
        for file, group in zip(files, shard_groups(samples, size, max_bytes), strict=True):
            done = _finished(job, file)
            waiting.append((file, len(group), done))
            if done is None:
                yield ShardTask(file, tuple(group), straight.making, job.options, job.name, url, options)

    def keep(file: str, count: int, done: ShardDone, finished: Finished, written: bool) -> None:
        job.result.written += written
        job.result.failures += done.failures
        job.keep(file, split, done.samples, finished)
        advance(count)

    def keep_those_done_before() -> None:
        while waiting and waiting[0][2] is not None:
            file, count, before = waiting.popleft()
            assert before is not None
            keep(file, count, *before, written=False)

    with contextlib.ExitStack() as stack:
        advance = stack.enter_context(job.progress.task(f"writing {split} shards", total=len(samples), unit="img"))
        pool, slots = _pool(stack, straight.dask, 1)
        # At least two in flight: with one, ordered_map would make the shards in this process.
        for done, info in ordered_map(write_shard_beside, tasks(), max(2, slots), pool=pool):
            keep_those_done_before()
            file, count, _ = waiting.popleft()
            assert file == done.file, "results come in shard order"
            finished = to.adopt(file, info, done.xxh3_64)
            _record_merged(job, done)
            keep(file, count, done, finished, written=True)
        keep_those_done_before()


def _pool(stack: contextlib.ExitStack, dask: str | None, workers: int) -> tuple[Callable[[int], Any], int]:
    """Where the images are made: the Dask cluster of ``dask``, or ``workers`` local processes."""
    if dask is None:
        return local_pool, workers
    client = stack.enter_context(cluster.connect(dask))
    executor = client.get_executor(pure=False)
    return (lambda _slots: contextlib.nullcontext(executor)), max(1, sum(client.nthreads().values()))


def _unchanged_export(destination: Destination) -> ExportRecord | None:
    """The finished export's record, when every input it names is there and unchanged (the inputs'
    paths are relative to the folder the export is made in)."""
    text = destination.read_text(RECORD)
    if text is None:
        return None
    record, work = ExportRecord.from_json(text, destination.work / RECORD), destination.work
    if not record.inputs:
        return None
    for recorded in record.inputs:
        there = is_url(recorded.path) or (work / recorded.path).is_file()
        if not there or changed_since(recorded, work) is not None:
            log.warning("%s changed since %s was made: making it again", recorded.name, destination)
            return None
    return record


def _relative(recorded: InputFile, staged: Path, destination: Path) -> InputFile:
    """An input as the staging recorded it, its path made relative to the export folder."""
    if is_url(recorded.path):
        return recorded  # an object of a bucket: its URL
    return dataclasses.replace(recorded, path=relative_to(staged / recorded.path, destination))


def _listing(staged: Staged) -> str:
    """A digest of every staged image (path, bytes, xxh3) and failure: what the outputs are made from."""
    digest = xxhash.xxh3_64()
    for split in sorted(staged.markers):
        for path in staged.markers[split]:
            result = read_marker(path)
            digest.update(path.name.encode())
            _update(digest, (f"{e.path}\t{e.bytes}\t{e.xxh3_64}\t{result.origins.get(e.path)}" for e in result.entries))
            _update(digest, (f.where for f in result.failures))
    return digest.hexdigest()


def _update(digest: Any, lines: Iterable[str]) -> None:
    for line in lines:
        digest.update(line.encode() + b"\n")


def _start_merge(destination: Destination, listing: str) -> None:
    """Outputs made from other staged images are removed before any is written from these."""
    try:
        before = json.loads(destination.read_text(MERGED_FROM) or "null")["listing"]
    except (TypeError, ValueError, KeyError):
        before = None
    if before == listing:
        return  # a stopped merge of the same images: its finished files are kept
    destination.remove_prefix(f"{STAGED}/{MERGED}")  # the records of those outputs
    removed = destination.remove_outputs(KEPT + (CLAIM,))
    if removed:
        log.warning("%s: removed %d files made from other images", destination, removed)
    destination.write_text(MERGED_FROM, json.dumps({"listing": listing}) + "\n")
