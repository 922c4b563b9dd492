"""``export.json``: what an export folder holds, written last; ``verify`` and ``info`` read it here.

One typed record, one parser: the options and source it was made with, and every file with its
split, sample count, size and xxh3. ``schema`` numbers the layout; a record from before it was
numbered is schema 1.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import DamagedTreeError
from ..inputs import InputFile
from ..manifest import Failure
from ..tar_index import TarIndex

RECORD = "export.json"
SCHEMA = 1


@dataclass(frozen=True)
class ShardRecord:
    file: str  # relative to the export folder
    split: str
    samples: int
    bytes: int
    xxh3_64: str


def samples_per_split(shards: Iterable[ShardRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for shard in shards:
        counts[shard.split] = counts.get(shard.split, 0) + shard.samples
    return counts


@dataclass(frozen=True)
class ExportRecord:
    options: dict[str, Any]  # the export's checked options, "format" among them
    source_manifest_xxh3: str  # the manifest of the tree it was made from, or the staged images' listing
    source: str  # that tree's path, or the folder of the archives
    shards: tuple[ShardRecord, ...]
    schema: int = SCHEMA
    # Made straight from the archives: the files read (paths relative to the export), and the
    # images that could not be used.
    inputs: tuple[InputFile, ...] = ()
    failures: tuple[Failure, ...] = ()
    # Read from a bucket: the train tar's members (its class tars) with their byte ranges.
    train_tar_index: TarIndex | None = None

    @property
    def format(self) -> str:
        return str(self.options["format"])

    def samples(self) -> dict[str, int]:
        return samples_per_split(self.shards)

    def bytes(self) -> int:
        return sum(shard.bytes for shard in self.shards)

    def to_json(self) -> str:
        data = asdict(self)
        for name in ("inputs", "failures", "train_tar_index"):  # a tree's export has none of them
            if not data[name]:
                del data[name]
        return json.dumps({"schema": data.pop("schema"), **data}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: Path) -> ExportRecord:
        try:
            data = json.loads(text)
            shards = tuple(ShardRecord(**shard) for shard in data["shards"])
            return cls(
                data["options"],
                data["source_manifest_xxh3"],
                data["source"],
                shards,
                data.get("schema", 1),
                tuple(InputFile.from_dict(i) for i in data.get("inputs", [])),
                tuple(Failure(**f) for f in data.get("failures", [])),
                TarIndex.from_dict(data["train_tar_index"]) if data.get("train_tar_index") else None,
            )
        except (ValueError, KeyError, TypeError) as error:
            raise DamagedTreeError(f"{where} is not an export record ({type(error).__name__}: {error})") from None

    @classmethod
    def read(cls, folder: Path) -> ExportRecord:
        return cls.from_json((folder / RECORD).read_text(), folder / RECORD)
