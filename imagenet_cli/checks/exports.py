"""Checks of one export folder against its ``export.json``: every shard there, whole and unchanged.

Each file listed must exist with its recorded size and xxh3-64; a shard of the format not listed
is extra; a WebDataset's ``_info.json`` must give the same shards and sample counts. With
``--deep`` every file is read and its samples counted (tar members, Parquet rows, npz rows).
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

from ..exports import RECORD
from ..hashing import hash_file
from ..progress import SILENT, Progress
from .findings import Check


def is_export(path: Path) -> bool:
    return (path / RECORD).is_file()


def check_export(folder: Path, deep: bool = False, progress: Progress = SILENT) -> Check:
    check = Check(folder, "export")
    record = json.loads((folder / RECORD).read_text())
    shards, kind = record["shards"], record["options"]["format"]
    with progress.task(f"checking {folder.name}", total=len(shards), unit="shard") as advance:
        for shard in shards:
            _check_shard(check, folder, shard, deep and kind)
            advance(1)
    listed = {shard["file"] for shard in shards}
    for extra in sorted(
        p.relative_to(folder).as_posix() for p in folder.rglob(f"*{_SUFFIXES[kind]}") if not p.name.startswith(".")
    ):
        if extra not in listed:
            check.add("extra", extra, f"not in {RECORD}")
    if kind == "webdataset":
        _check_info(check, folder, shards)
    check.counts["samples"] = sum(shard["samples"] for shard in shards)
    check.counts["bytes"] = sum(shard["bytes"] for shard in shards)
    check.note(f"{len(shards)} shards against {RECORD} (size, xxh3)" + ("; every sample counted" if deep else ""))
    return check


_SUFFIXES = {"webdataset": ".tar", "parquet": ".parquet", "downsampled": ".npz"}


def _check_shard(check: Check, folder: Path, shard: dict[str, Any], deep: str | bool) -> None:
    path = folder / shard["file"]
    if not path.is_file():
        check.add("missing", shard["file"], f"in {RECORD}, not on disk")
        return
    if path.stat().st_size != shard["bytes"]:
        check.add("size", shard["file"], f"{path.stat().st_size:,} bytes; {RECORD} says {shard['bytes']:,}")
        return
    digest = hash_file(path, ["xxh3_64"])["xxh3_64"]
    if digest != shard["xxh3_64"]:
        check.add("checksum", shard["file"], f"xxh3 is {digest}; {RECORD} says {shard['xxh3_64']}")
    if deep:
        counted = _count_samples(path, str(deep))
        if counted != shard["samples"]:
            check.add("count", shard["file"], f"{counted:,} samples; {RECORD} says {shard['samples']:,}")


def _count_samples(path: Path, kind: str) -> int:
    # The format's extra, imported here only: without it, one line names it (not a traceback).
    if kind == "parquet":
        from ..exports.parquet import require_pyarrow

        _, parquet = require_pyarrow()
        return int(parquet.ParquetFile(path).metadata.num_rows)
    if kind == "downsampled":
        from ..exports.downsampled import require_numpy

        with require_numpy().load(path) as arrays:
            return len(arrays["labels"])
    with tarfile.open(path) as tar:
        return len({member.name.split(".", 1)[0] for member in tar if member.isfile()})


def _check_info(check: Check, folder: Path, shards: list[dict[str, Any]]) -> None:
    """timm reads sample counts from _info.json: they must be the ones export.json records."""
    try:
        info = json.loads((folder / "_info.json").read_text())
    except FileNotFoundError:
        check.add("missing", "_info.json", "the shard list timm's reader needs")
        return
    said = {
        name: count
        for split in info.get("splits", {}).values()
        for name, count in zip(split["filenames"], split["shard_lengths"], strict=True)
    }
    recorded = {shard["file"]: shard["samples"] for shard in shards}
    if said != recorded:
        check.add("count", "_info.json", f"its shards and counts differ from {RECORD}")
