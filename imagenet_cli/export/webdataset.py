"""WebDataset shards in the layout of timm's ``imagenet-1k-wds``.

``<prefix>-train-0000.tar`` …, ``<prefix>-validation-00.tar`` …; each sample is ``KEY.cls`` (the
label in ASCII digits), ``KEY.jpg`` (the tree's bytes, copied, never re-encoded) and ``KEY.json``
(file name, label, index among the 1000, width, height), adjacent in the tar. ``_info.json`` names
each split's shards and their sample counts, as timm's wds reader reads them. The bytes are
deterministic: fixed member order, mtime 0, uid/gid 0, no user names; any tar reader reads them.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import xxhash

from .. import atomic
from ..hashing import hash_file
from ..progress import Progress
from . import SPLIT_NAMES, ExportResult, Sample, ShardRecord

INFO = "_info.json"


def shard_names(prefix: str, split: str, count: int) -> list[str]:
    width = max(2, len(str(count - 1)))
    return [f"{prefix}-{SPLIT_NAMES[split]}-{i:0{width}d}.tar" for i in range(count)]


def write_split(tree: Path, out: Path, split: str, samples: list[Sample], options: dict, result: ExportResult, progress: Progress) -> None:
    groups = list(_shards(samples, options["shard_size"], options["max_shard_bytes"]))
    names = shard_names(options["prefix"], split, len(groups))
    with progress.task(f"writing {split} shards", total=len(samples), unit="img") as advance:
        for name, group in zip(names, groups, strict=True):
            path = out / name
            if path.is_file():  # a shard under its final name is complete
                digest = hash_file(path, ["xxh3_64"])["xxh3_64"]
            else:
                with atomic.atomic_writer(path) as file:
                    digest = _write_tar(_Hashing(file), tree, group)
                result.written += 1
            result.shards.append(ShardRecord(name, split, len(group), path.stat().st_size, digest))
            advance(len(group))


_BLOCK, _RECORD = 512, 20 * 512
# Per sample, besides the image: three headers, a .cls block, a .json under 1 KiB, the image's padding.
_SAMPLE_OVERHEAD = 7 * _BLOCK


def _shards(samples: list[Sample], size: int, max_bytes: int | None):
    """Consecutive runs of at most ``size`` samples and at most ``max_bytes`` bytes each (a shard
    of one sample excepted), counting the tar's end and its padding to a whole record."""
    group: list[Sample] = []
    total = _RECORD
    for sample in samples:
        cost = sample.bytes + _SAMPLE_OVERHEAD
        if group and (len(group) == size or (max_bytes is not None and total + cost > max_bytes)):
            yield group
            group, total = [], _RECORD
        group.append(sample)
        total += cost
    if group:
        yield group


class _Hashing:
    """A file that hashes what is written to it: the shard's xxh3 without reading it back."""

    def __init__(self, file) -> None:
        self.file, self.digest = file, xxhash.xxh3_64()

    def write(self, data: bytes) -> None:
        self.file.write(data)
        self.digest.update(data)


def _write_tar(out: _Hashing, tree: Path, samples: list[Sample]) -> str:
    """A plain ustar archive, written directly (tarfile's per-member overhead was most of the time)."""
    written = 0
    for sample in samples:
        image = (tree / sample.path).read_bytes()
        extension = sample.path.rsplit(".", 1)[1].lower()
        extension = "jpg" if extension in ("jpeg", "jpg") else extension
        width, height = image_size(image)
        meta = {
            "filename": sample.path.split("/", 1)[1], "label": sample.label, "label_1k": sample.label_1k,
            "wnid": sample.wnid, "width": width, "height": height,
        }  # fmt: skip
        for suffix, data in (("cls", str(sample.label).encode()), (extension, image), ("json", json.dumps(meta).encode())):
            written += _member(out, f"{sample.key}.{suffix}", data)
    end = 2 * _BLOCK  # two zero blocks, then padding to a whole record, as tar writes it
    out.write(bytes(end + (-(written + end)) % _RECORD))
    return out.digest.hexdigest()



def _member(out: _Hashing, name: str, data: bytes) -> int:
    """One regular file: mode 0644, uid/gid 0, mtime 0, no user names (the same bytes every time)."""
    header = bytearray(_BLOCK)
    header[0:100] = name.encode().ljust(100, b"\0")
    header[100:108] = b"0000644\0"
    header[108:116] = header[116:124] = b"0000000\0"
    header[124:136] = f"{len(data):011o}\0".encode()
    header[136:148] = b"00000000000\0"
    header[148:156] = b" " * 8
    header[156:157] = b"0"
    header[257:265] = b"ustar\x0000"
    header[148:156] = f"{sum(header):06o}\0 ".encode()
    out.write(bytes(header))
    out.write(data)
    padding = -len(data) % _BLOCK
    out.write(bytes(padding))
    return _BLOCK + len(data) + padding


def image_size(image: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's frame header, else from Pillow's parser (no decode either way)."""
    at = 2
    while image[:2] == b"\xff\xd8" and at + 9 < len(image) and image[at] == 0xFF:
        marker, length = image[at + 1], int.from_bytes(image[at + 2 : at + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start of frame
            return int.from_bytes(image[at + 7 : at + 9], "big"), int.from_bytes(image[at + 5 : at + 7], "big")
        at += 2 + length
    from PIL import Image

    with Image.open(io.BytesIO(image)) as opened:
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
