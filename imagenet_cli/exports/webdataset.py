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
import tarfile
from collections.abc import Sequence
from pathlib import Path

from .. import atomic
from . import SPLIT_NAMES, Job, write_shards
from .record import ShardRecord
from .samples import Sample, SplitSamples
from .shard_file import ShardFile

SUFFIX = ".tar"
# Samples per shard by default: the full splits make exactly timm's 1,024 train and 64 validation
# shards (ceil(1,281,167 / 1,252), ceil(50,000 / 782)), and a smaller export its share of them.
SHARD_SIZES = {"train": 1252, "val": 782}
INFO = "_info.json"
_BLOCK, _RECORD = 512, 20 * 512


def check_source(tree: Path, root: Path) -> None:
    """Any tree will do: its files are copied as they are."""


# timm's numbering: imagenet1k-train-{0000..1023}.tar, imagenet1k-validation-{00..63}.tar. The
# width is fixed, so names do not change with the count; only past 9,999 (or 99) shards it grows.
NUMBER_WIDTH = {"train": 4, "val": 2}


def shard_names(prefix: str, split: str, count: int) -> list[str]:
    width = max(NUMBER_WIDTH[split], len(str(count - 1)))
    return [f"{prefix}-{SPLIT_NAMES[split]}-{i:0{width}d}.tar" for i in range(count)]


def brace_pattern(names: list[str]) -> str:
    """The shards as one brace pattern (``imagenet1k-train-{0000..1023}.tar``), as webdataset,
    timm and the shell expand it; one name when there is one shard."""
    if len(names) == 1:
        return names[0]
    stem, first = names[0].rsplit("-", 1)
    last = names[-1].rsplit("-", 1)[1]
    return f"{stem}-{{{first.removesuffix('.tar')}..{last.removesuffix('.tar')}}}.tar"


def write_split(job: Job, split: str, samples: SplitSamples) -> None:
    write_shards(job, split, samples)


def names_of(job: Job, split: str, count: int) -> list[str]:
    return shard_names(job.options["prefix"], split, count)


def write_shard(job: Job, path: Path, group: list[Sample]) -> str:
    with atomic.atomic_writer(path) as file:
        return _write_tar(ShardFile(file), job, group)


def _write_tar(out: ShardFile, job: Job, samples: list[Sample]) -> str:
    """A plain ustar archive, written directly (tarfile's per-member overhead, and then a write
    per header, were most of the time): three members per sample, several samples per write."""
    for sample in samples:
        image = job.read(sample)
        key, extension = sample.key, sample.path.rsplit(".", 1)[1].lower()
        extension = "jpg" if extension in ("jpeg", "jpg") else extension
        width, height = image_size(image)
        meta = {
            "filename": sample.filename,
            "label": sample.label,
            "label_1k": sample.label_1k,
            "wnid": sample.wnid,
            "width": width,
            "height": height,
        }
        label, described = str(sample.label).encode(), json.dumps(meta).encode()
        out.write(
            *_member(f"{key}.cls", label),
            *_member(f"{key}.{extension}", image),
            *_member(f"{key}.json", described),
        )
    end = 2 * _BLOCK  # two zero blocks, then padding to a whole record, as tar writes it
    out.write(bytes(end + (-(out.tell() + end)) % _RECORD))
    return out.xxh3_64()


def _header_template() -> bytes:
    """A ustar header's constant fields: mode 0644, uid/gid 0, mtime 0, a regular file, no user
    names (the same bytes every time); name, size and checksum are filled in per member."""
    header = bytearray(_BLOCK)
    header[100:108] = b"0000644\0"
    header[108:116] = header[116:124] = b"0000000\0"
    header[136:148] = b"00000000000\0"
    header[148:156] = b" " * 8  # the checksum is summed with its own field as spaces
    header[156:157] = b"0"
    header[257:265] = b"ustar\x0000"
    return bytes(header)


_TEMPLATE = _header_template()
_TEMPLATE_SUM = sum(_TEMPLATE)
_ZEROS = bytes(_BLOCK)


def _member(name: str, data: bytes) -> tuple[bytes, bytes, bytes]:
    """One regular file: its header, its data, and the padding to a whole block."""
    encoded, size = name.encode(), f"{len(data):011o}\0".encode()
    checksum = f"{_TEMPLATE_SUM + sum(encoded) + sum(size):06o}\0 ".encode()
    header = encoded + _TEMPLATE[len(encoded) : 124] + size + _TEMPLATE[136:148] + checksum + _TEMPLATE[156:]
    return header, data, _ZEROS[: -len(data) % _BLOCK]


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


def finish(job: Job) -> None:
    """``_info.json``: each split's shards and sample counts, as timm's wds reader reads them."""
    result = job.result
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
    info = {"name": f"imagenet-cli {job.name}", "splits": splits}
    job.to.write_text(INFO, json.dumps(info, indent=2) + "\n")


def count_samples(path: Path) -> int:
    """Samples in one shard: the distinct keys of its members."""
    with tarfile.open(path) as tar:
        return len({member.name.split(".", 1)[0] for member in tar if member.isfile()})


def own_file_problems(folder: Path, shards: Sequence[ShardRecord]) -> list[tuple[str, str, str]]:
    """timm reads sample counts from ``_info.json``: they must be the ones the record holds."""
    try:
        info = json.loads((folder / INFO).read_text())
    except FileNotFoundError:
        return [("missing", INFO, "the shard list timm's reader needs")]
    said = {
        name: count
        for split in info.get("splits", {}).values()
        for name, count in zip(split["filenames"], split["shard_lengths"], strict=True)
    }
    if said != {shard.file: shard.samples for shard in shards}:
        return [("count", INFO, "its shards and counts differ from the export's record")]
    return []
