"""``imagenet export FORMAT``: a tree this tool made, in the format people train from.

Any prepared tree or subset is read from its manifest (never by listing folders) and labelled
from its own label tables (never by folder order): the sorted-WNID index of the 1000 classes for a
prepared tree, the subset's own index (its ``classes.txt``) for a subset. Output shards are written
under temporary names and renamed when complete, so a shard under its final name is finished and a
re-run keeps it; ``export.json`` (the options, the source and every shard with its size, xxh3 and
sample count) is written last.

Formats: ``webdataset`` (:mod:`imagenet_cli.export.webdataset`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import atomic, catalogue, locks, manifest
from ..errors import InvalidArgumentError, MissingInputError, OverwriteRefusedError
from ..hashing import hash_file
from ..layout import EXPORTS, Root
from ..progress import SILENT, Progress
from ..selection import rank

log = logging.getLogger(__name__)

FORMATS = ("webdataset",)
RECORD = "export.json"
SPLIT_NAMES = {"train": "train", "val": "validation"}  # as timm's imagenet-1k-wds names them


@dataclass(frozen=True)
class Sample:
    path: str  # relative to the tree: split/wnid/name
    bytes: int
    wnid: str
    label: int  # the exported label: sorted-WNID index, or the subset's own
    label_1k: int  # the index among the 1000 classes

    @property
    def key(self) -> str:
        return self.path.rsplit("/", 1)[1].split(".", 1)[0]


@dataclass
class ShardRecord:
    file: str
    split: str
    samples: int
    bytes: int
    xxh3_64: str


@dataclass
class ExportResult:
    format: str
    path: Path
    source: Path
    shards: list[ShardRecord] = field(default_factory=list)
    written: int = 0  # shards written by this run; the rest were already complete

    @property
    def samples(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for shard in self.shards:
            counts[shard.split] = counts.get(shard.split, 0) + shard.samples
        return counts


def export(
    root: Path,
    format: str = "webdataset",
    source: Path | None = None,
    out: Path | None = None,
    splits: list[str] | None = None,
    seed: int = 0,
    shard_size: int = 1250,
    max_shard_bytes: int | None = None,
    prefix: str = "imagenet1k",
    wait: bool = True,
    progress: Progress = SILENT,
) -> ExportResult:
    """Write ``source`` (default: the only prepared tree under the root) as ``format`` into ``out``
    (default: ``ROOT/exports/<format>-<tree name>``). A shard holds ``shard_size`` samples, or
    fewer where ``max_shard_bytes`` would be passed."""
    if format not in FORMATS:
        raise InvalidArgumentError(f"export format {format!r} is not one of {', '.join(FORMATS)}")
    if shard_size < 1:
        raise InvalidArgumentError("--shard-size must be at least 1")
    if max_shard_bytes is not None and max_shard_bytes < 64 << 10:
        raise InvalidArgumentError("--max-shard-bytes must be at least 64 KiB")
    chosen = tuple(dict.fromkeys(splits or ("train", "val")))
    if unknown := [s for s in chosen if s not in SPLIT_NAMES]:
        raise InvalidArgumentError(f"--splits {', '.join(unknown)}: a tree has train and val")
    tree = source or Root(root).the_prepared_tree()
    if not manifest.has_manifest(tree):
        raise MissingInputError(f"{tree} has no {manifest.MANIFEST}: export reads trees this tool made")
    destination = out or Root(root).path / EXPORTS / f"{format}-{tree.name}"
    options = {
        "format": format, "splits": list(chosen), "seed": seed, "shard_size": shard_size,
        "max_shard_bytes": max_shard_bytes, "prefix": prefix,
    }  # fmt: skip
    with locks.writing(destination, wait), locks.reading(tree, wait):
        wanted = {"options": options, "source_manifest_xxh3": hash_file(tree / manifest.MANIFEST, ["xxh3_64"])["xxh3_64"]}
        _claim(destination, wanted)
        from . import webdataset

        result = ExportResult(format, destination, tree)
        for split in chosen:
            samples = _samples(tree, split, seed)
            if samples:
                webdataset.write_split(tree, destination, split, samples, options, result, progress)
        webdataset.write_info(destination, result)
        record = {**wanted, "source": str(tree), "shards": [asdict(s) for s in result.shards]}
        atomic.write_text(destination / RECORD, json.dumps(record, indent=2) + "\n")
        return result


def _claim(destination: Path, wanted: dict) -> None:
    """One export folder, one set of options and one source: a re-run keeps finished shards only
    when they are what it would write."""
    claim = destination / ".export-claim.json"
    if claim.is_file():
        if json.loads(claim.read_text()) != wanted:
            raise OverwriteRefusedError(f"{destination} holds an export made with other options or from another tree")
        return
    if destination.exists() and any(destination.iterdir()):
        raise OverwriteRefusedError(f"{destination} exists and was not made by export; it will not be written into")
    atomic.write_text(claim, json.dumps(wanted) + "\n")


def labels_of(tree: Path) -> dict[str, tuple[int, int]]:
    """{WNID: (exported label, index among the 1000)}: a subset's own index from its classes.txt,
    else the sorted-WNID index."""
    table = tree / "classes.txt"
    if (tree / "subset.json").is_file() and table.is_file():
        labels = {}
        for line in table.read_text().splitlines():
            own, wnid, _name, full = line.split("\t")
            labels[wnid] = (int(own), int(full))
        return labels
    return {c.wnid: (c.index, c.index) for c in catalogue.classes()}


def _samples(tree: Path, split: str, seed: int) -> list[Sample]:
    """The split's samples from the manifest; train in a seeded shuffle (shards mix classes)."""
    labels = labels_of(tree)
    samples = [
        Sample(entry.path, entry.bytes, entry.wnid, *labels[entry.wnid])
        for entry in _entries(tree, split)
    ]
    if split == "train":
        samples.sort(key=lambda s: (rank(seed, s.path), s.path))
    return samples


def _entries(tree: Path, split: str) -> Iterator[manifest.Entry]:
    for entry in manifest.read_manifest(tree):
        if entry.path.startswith(split + "/"):
            yield entry
