"""``imagenet download``: fetch archives into ``ROOT/downloads/``, recording their checksums.

Every archive lands under its final name only when complete, with ``<name>.record.json`` beside
it. A re-run skips what is already there and recorded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from . import catalogue, hashing
from .errors import OverwriteRefusedError
from .layout import Root
from .progress import SILENT, Progress
from .records import DownloadRecord, read_record, write_record
from .sources import sample

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FetchedFile:
    name: str
    path: Path
    bytes: int
    md5: str
    xxh3_64: str
    skipped: bool  # already complete and recorded: nothing was written


@dataclass(frozen=True)
class DownloadResult:
    source: str
    downloads: Path
    files: list[FetchedFile]


def _fetched(path: Path, record: DownloadRecord, skipped: bool) -> FetchedFile:
    return FetchedFile(path.name, path, record.size, record.md5, record.xxh3_64, skipped)


def download_sample(
    root: Path,
    layout: str = "official",
    classes: list[str] | None = None,
    train_per_class: int = 10,
    val_per_class: int = 5,
    test_images: int = 10,
    seed: int = 0,
    progress: Progress = SILENT,
) -> DownloadResult:
    """Write the built-in miniature ILSVRC-2012 (see :mod:`imagenet_cli.sources.sample`).

    ``classes`` takes WNIDs, named lists (``imagenette``) or unambiguous class names; the default
    is Imagenette plus the classes of the real quirk files. Files a previous run made with the same options are kept as they are; files this tool did
    not make are never overwritten.
    """
    options = sample.SampleOptions(
        **({"classes": catalogue.resolve_classes(classes)} if classes else {}),
        train_per_class=train_per_class,
        val_per_class=val_per_class,
        test_images=test_images,
        seed=seed,
    )
    wanted = sample.options_record(layout, options)
    downloads = Root(root).downloads
    names = sample.OFFICIAL_FILES if layout == "official" else (sample.KAGGLE_ZIP,)
    paths = [downloads / name for name in names]

    records = {path: _existing_sample_record(path) for path in paths}
    if all(r is not None and r.details == wanted and r.matches(p) for p, r in records.items()):
        log.info("the sample in %s was generated with these options already: keeping it", downloads)
        return DownloadResult("sample", downloads, [_fetched(p, r, skipped=True) for p, r in records.items()])

    log.info("generating a %s-layout sample of %d classes in %s", layout, len(options.classes), downloads)
    files = []
    for path in sample.write_sample(downloads, layout, options, progress):
        digests = hashing.hash_file(path, progress=progress)
        record = write_record(path, digests, source="sample", details=wanted)
        files.append(_fetched(path, record, skipped=False))
    return DownloadResult("sample", downloads, files)


def _existing_sample_record(path: Path) -> DownloadRecord | None:
    """The record of a sample file already at ``path``; refuses to go near anything else."""
    if not path.exists():
        return None
    record = read_record(path)
    if record is None or record.source != "sample":
        raise OverwriteRefusedError(
            f"{path} exists and is not a sample this tool generated; the sample will not overwrite it"
        )
    return record
