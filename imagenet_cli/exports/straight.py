"""An export made straight from the archives: training shards with no tree of 1.28 M files between.

Two steps, each restartable, under the export folder's lock:

1. Staging (:func:`imagenet_cli.trees.stage`): the inputs are read as ``prepare`` reads them and
   each image made as the format needs it (a JPEG of the recipe's size, or Downsampled ImageNet's
   row of raw pixels), with the same repairs and failures, but each shard's images go into one
   pack file under ``OUT/.staged/`` beside a marker naming the inputs it read. A stop keeps the
   finished shards; changed inputs redo theirs.
2. Merging: the staged samples, in the export's order (train in the seeded shuffle across every
   class, exactly as from a tree of the same images), are written by the format's writer. Before
   the first output file, ``OUT/.merged-from.json`` names the staged listing the outputs are made
   from, so a re-run from other images removes them instead of keeping any.

Then ``export.json``, written last, records the options, the inputs and the images that could not
be used, and the staging is deleted: the extra disk a run takes is the staged images, about the
output's size. A re-run whose inputs are unchanged does nothing.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import xxhash

from .. import atomic
from ..inputs import InputFile, changed_since, describe
from ..progress import Progress
from ..trees import Staged, stage
from ..trees.resize import Making
from ..trees.shards import read_marker
from . import CLAIM, ExportResult, Job, StagedSamples
from .formats import Writer
from .record import RECORD, ExportRecord

log = logging.getLogger(__name__)

STAGED = ".staged"
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
    destination = job.out
    done = _unchanged_export(destination)
    if done is not None:
        log.info("%s is complete and its inputs are unchanged", destination)
        job.result.shards, job.result.failures = list(done.shards), list(done.failures)
        return job.result
    staged = stage(
        root,
        straight.making,
        destination / STAGED,
        splits=options["splits"],
        workers=workers,
        source=straight.source,
        dask=straight.dask,
        progress=progress,
        trust_input_labels=straight.trust_input_labels,
    )
    listing = _listing(staged)
    _start_merge(destination, listing)
    job = job_of(staged.folder, straight.name)
    job.result.source = Path(straight.source or Path(root) / "downloads")
    try:
        for split in options["splits"]:
            samples = StagedSamples(staged, split, options["seed"])
            if len(samples):
                writer.write_split(job, split, samples)
        writer.finish(job)
    finally:
        job.packs.close()
    failures = tuple(staged.failures)
    inputs = tuple(_relative(i, staged.folder, destination) for files in staged.inputs.values() for i in files)
    source = str(straight.source or Path(root) / "downloads")
    record = ExportRecord(options, listing, source, tuple(job.result.shards), inputs=inputs, failures=failures)
    atomic.write_text(destination / RECORD, record.to_json())
    shutil.rmtree(staged.folder)  # the images are in the shards now
    job.result.failures = list(failures)
    return job.result


def _unchanged_export(destination: Path) -> ExportRecord | None:
    """The finished export's record, when every input it names is there and unchanged."""
    if not (destination / RECORD).is_file():
        return None
    record = ExportRecord.read(destination)
    if not record.inputs:
        return None
    for recorded in record.inputs:
        if not (destination / recorded.path).is_file() or changed_since(recorded, destination) is not None:
            log.warning("%s changed since %s was made: making it again", recorded.name, destination)
            return None
    return record


def _relative(recorded: InputFile, staged: Path, destination: Path) -> InputFile:
    """An input as the staging recorded it, its path made relative to the export folder."""
    return describe((staged / recorded.path).resolve(), destination)


def _listing(staged: Staged) -> str:
    """A digest of every staged image (path, bytes, xxh3) and failure: what the outputs are made from."""
    digest = xxhash.xxh3_64()
    for split in sorted(staged.markers):
        for path in staged.markers[split]:
            result = read_marker(path)
            digest.update(path.name.encode())
            _update(digest, (f"{e.path}\t{e.bytes}\t{e.xxh3_64}" for e in result.entries))
            _update(digest, (f.where for f in result.failures))
    return digest.hexdigest()


def _update(digest: Any, lines: Iterable[str]) -> None:
    for line in lines:
        digest.update(line.encode() + b"\n")


def _start_merge(destination: Path, listing: str) -> None:
    """Outputs made from other staged images are removed before any is written from these."""
    marker = destination / MERGED_FROM
    try:
        before = json.loads(marker.read_text())["listing"]
    except (FileNotFoundError, ValueError, KeyError):
        before = None
    if before == listing:
        return  # a stopped merge of the same images: its finished files are kept
    removed = _remove_outputs(destination)
    if removed:
        log.warning("%s: removed %d files made from other images", destination, removed)
    atomic.write_text(marker, json.dumps({"listing": listing}) + "\n")


def _remove_outputs(destination: Path) -> int:
    removed = 0
    for item in destination.iterdir():
        if item.name in KEPT or item.name == CLAIM:
            continue
        if item.is_dir():
            shutil.rmtree(item)
        else:
            item.unlink()
        removed += 1
    return removed
