"""WebDataset shards in the layout of timm's ``imagenet-1k-wds``.

``<prefix>-train-0000.tar`` …, ``<prefix>-validation-00.tar`` …; each sample is ``KEY.cls`` (the
label in ASCII digits), ``KEY.jpg`` (the tree's bytes, copied, never re-encoded) and ``KEY.json``
(file name, label, index among the 1000, width, height), adjacent in the tar. ``_info.json`` names
each split's shards and their sample counts, as timm's wds reader reads them. The bytes are
deterministic: fixed member order, mtime 0, uid/gid 0, no user names.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from .. import atomic
from ..hashing import hash_file
from ..progress import Progress
from . import SPLIT_NAMES, ExportResult, Sample, ShardRecord

INFO = "_info.json"


def shard_names(prefix: str, split: str, count: int) -> list[str]:
    width = max(2, len(str(count - 1)))
    return [f"{prefix}-{SPLIT_NAMES[split]}-{i:0{width}d}.tar" for i in range(count)]


def write_split(tree: Path, out: Path, split: str, samples: list[Sample], options: dict, result: ExportResult, progress: Progress) -> None:
    size = options["shard_size"]
    groups = [samples[i : i + size] for i in range(0, len(samples), size)]
    names = shard_names(options["prefix"], split, len(groups))
    with progress.task(f"writing {split} shards", total=len(samples), unit="img") as advance:
        for name, group in zip(names, groups, strict=True):
            path = out / name
            if not path.is_file():  # a shard under its final name is complete
                with atomic.atomic_writer(path) as file:
                    _write_tar(file, tree, group)
                result.written += 1
            digest = hash_file(path, ["xxh3_64"])["xxh3_64"]
            result.shards.append(ShardRecord(name, split, len(group), path.stat().st_size, digest))
            advance(len(group))


def _write_tar(file, tree: Path, samples: list[Sample]) -> None:
    with tarfile.open(fileobj=file, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for sample in samples:
            image = (tree / sample.path).read_bytes()
            extension = sample.path.rsplit(".", 1)[1].lower()
            extension = "jpg" if extension in ("jpeg", "jpg") else extension
            width, height = _size(image)
            meta = {
                "filename": sample.path.split("/", 1)[1], "label": sample.label, "label_1k": sample.label_1k,
                "wnid": sample.wnid, "width": width, "height": height,
            }  # fmt: skip
            for suffix, data in (("cls", str(sample.label).encode()), (extension, image), ("json", json.dumps(meta).encode())):
                _add(tar, f"{sample.key}.{suffix}", data)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def _size(image: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(image)) as opened:  # the header only: no decode
        return opened.size


def write_info(out: Path, result: ExportResult) -> None:
    splits = {}
    for split, name in SPLIT_NAMES.items():
        shards = [s for s in result.shards if s.split == split]
        if shards:
            splits[name] = {
                "name": name,
                "num_samples": sum(s.samples for s in shards),
                "filenames": [s.file for s in shards],
                "shard_lengths": [s.samples for s in shards],
            }
    info = {"name": f"imagenet-cli {result.source.name}", "splits": splits}
    atomic.write_text(out / INFO, json.dumps(info, indent=2) + "\n")
