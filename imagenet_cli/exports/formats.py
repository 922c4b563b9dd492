"""The export formats: each one :class:`Writer`, a module named as its :class:`ExportFormat`.

``export`` writes through the writer, and ``verify`` and ``info`` ask the writer what its files
are and how many samples one holds; nothing else knows a format by name. A format is a module of
this package whose top-level names satisfy the protocol; it is imported only when it is used, so
its extra (pyarrow, numpy) is needed only then. A new format is a module, a member of the enum
and an entry in the tuple mypy checks below.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

if TYPE_CHECKING:
    from . import Job, downsampled, parquet, webdataset
    from .record import ShardRecord
    from .samples import Sample, SplitSamples


class ExportFormat(StrEnum):
    webdataset = "webdataset"  # timm's imagenet-1k-wds
    parquet = "parquet"  # Hugging Face's ILSVRC/imagenet-1k
    downsampled = "downsampled"  # Imagenet32/64 as published


class Writer(Protocol):
    SUFFIX: str  # of the files that hold samples (shards, batches)
    SHARD_SIZES: dict[str, int]  # samples per file by default, per split; empty: the format fixes its files

    def check_source(self, tree: Path, root: Path) -> None:
        """Refuse a tree the format cannot be made from (a resized tree for Downsampled ImageNet)."""

    def write_split(self, job: Job, split: str, samples: SplitSamples) -> None:
        """Write one split's files not already complete, keeping each in ``job.result``."""

    def finish(self, job: Job) -> None:
        """Write the format's own files once every split is written (``_info.json``, a card)."""

    def count_samples(self, path: Path) -> int:
        """Samples in one written file: what ``verify --deep`` compares with the record."""

    def own_file_problems(self, folder: Path, shards: Sequence[ShardRecord]) -> list[tuple[str, str, str]]:
        """(kind, where, detail) of each way the format's own files disagree with the record; kind is
        a ProblemKind value (checks.findings)."""


class ShardWriter(Writer, Protocol):
    """A format whose files are shards of samples, each written on its own: they can be written
    anywhere (by the worker that made its images), given the job's options."""

    def names_of(self, job: Job, split: str, count: int) -> list[str]:
        """The names of a split's ``count`` shards, relative to the export folder."""

    def write_shard(self, job: Job, path: Path, group: list[Sample]) -> str | None:
        """Write one shard of ``group`` at ``path`` (atomically); its xxh3, or None to read it back."""


SHARDED = (ExportFormat.webdataset, ExportFormat.parquet)


def shard_writer_for(name: str) -> ShardWriter:
    if ExportFormat(name) not in SHARDED:
        raise ValueError(f"{name} does not write shards one by one")
    return cast(ShardWriter, writer_for(name))


if TYPE_CHECKING:  # mypy holds each module to the protocol; at run time they load on first use
    _WRITERS: tuple[Writer, ...] = (webdataset, parquet, downsampled)
    _SHARD_WRITERS: tuple[ShardWriter, ...] = (webdataset, parquet)


def writer_for(name: str) -> Writer:
    """The writer of the format ``name`` (an :class:`ExportFormat` or its value): the module of
    this package named as the format, loaded now."""
    return cast(Writer, importlib.import_module(f"{__package__}.{ExportFormat(name).value}"))
