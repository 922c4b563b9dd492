"""Downsampled ImageNet (Chrabaszcz, Loshchilov & Hutter 2017) as its published ``.npz`` files.

``train_data_batch_1.npz`` … ``train_data_batch_10.npz`` and ``val_data.npz``, each holding
``data`` (uint8, N × 3·s·s: every red value, then every green, then every blue, rows of the image
top to bottom) and ``labels`` (the devkit's ILSVRC2012_ID, 1..1000, whatever the tree's own
index); every train batch also holds ``mean`` (float64, the mean of all train rows). Train rows
come in a seeded shuffle, N//10 per batch, the last taking the rest; val rows in file-name order.

Pixels are a box resize of the full-resolution decode, ``Image.open(f).convert("RGB").resize((s,
s), Image.BOX)``, which is how the published files were made, so only a tree of full-size images
can give them. Decoding runs on every core.

A train batch is written in two steps, because the mean needs every batch: its rows go to
``.staging/NAME.npz`` with their per-pixel sum beside it, and once every batch is staged the mean
is appended to each as it moves to its final name. A stopped run keeps what it staged.
"""

from __future__ import annotations

import functools
import io
import itertools
import os
import shutil
import zipfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from .. import atomic, catalogue
from ..errors import DamagedTreeError, MissingExtraError, UnsuitableTreeError
from ..trees.resize import BoxRows, ImageError
from ..workers import ordered_map
from . import Job, Sample, SplitSamples, prepared_by
from .record import ShardRecord

SUFFIX = ".npz"
SHARD_SIZES: dict[str, int] = {}  # the published files: 10 train batches and val_data, whatever the count
BATCHES = 10
STAGING = ".staging"
CHUNK = 64  # images per task: large enough to amortise the trip to a worker, small enough to stream
_EPOCH = (1980, 1, 1, 0, 0, 0)  # zip member times: the same bytes on every run


def require_numpy() -> ModuleType:
    try:
        import numpy
    except ImportError:
        raise MissingExtraError.of("export downsampled", "numpy", "numpy") from None
    return numpy


def check_source(tree: Path, root: Path) -> None:
    """Only full-size images give the published pixels: the originals (JPEG kept byte for byte) or
    a lossless re-encoding of them (PNG)."""
    require_numpy()
    made = prepared_by(tree, root)
    if made is None or made.size != "full" or made.format not in ("jpeg", "png"):
        what = f"{made.size}-pixel {made.format} images" if made else "images this tool did not prepare"
        raise UnsuitableTreeError(
            f"{tree} holds {what}; Downsampled ImageNet is a box resize of the full-size originals, "
            "which a resized or lossy tree cannot give"
        )


def write_split(job: Job, split: str, samples: SplitSamples) -> None:
    if split == "val":
        if not (job.out / "val_data.npz").is_file():
            rows = sorted(samples, key=lambda s: s.key)  # ILSVRC2012_val_00000001 first; 50,000 at most
            data, labels, _ = _downsample(job, "val", rows)
            _write_npz(job.out / "val_data.npz", {"data": data, "labels": labels})
            job.result.written += 1
        job.keep("val_data.npz", split, len(samples))
        return
    batches = _batches(len(samples))
    stream = iter(samples)
    for name, count in batches:  # one batch of rows in memory at a time
        rows = list(itertools.islice(stream, count))
        _stage(job, name, rows)
    mean = None
    for name, count in batches:
        if not (job.out / f"{name}.npz").is_file():
            mean = _mean(job, batches) if mean is None else mean
            _finish_batch(job, name, mean)
            job.result.written += 1
        job.keep(f"{name}.npz", split, count)


def finish(job: Job) -> None:
    """Every batch is under its final name: the staged sums have served."""
    shutil.rmtree(job.out / STAGING, ignore_errors=True)


def _batches(total: int) -> list[tuple[str, int]]:
    """Each train batch's name and row count: total // 10 each, the last taking the rest."""
    per = total // BATCHES
    return [
        (f"train_data_batch_{number + 1}", per if number < BATCHES - 1 else total - per * (BATCHES - 1))
        for number in range(BATCHES)
    ]


def _stage(job: Job, name: str, rows: list[Sample]) -> None:
    """Decode a batch's rows unless they are staged or final already; the sum is written first,
    so a staged batch always has one."""
    staged, total = job.out / STAGING / f"{name}.npz", job.out / STAGING / f"{name}.sum.npy"
    if (job.out / f"{name}.npz").is_file() or (staged.is_file() and total.is_file()):
        return
    np = require_numpy()
    data, labels, pixel_sum = _downsample(job, name, rows)
    # Through a buffer: numpy writes straight to a real file with tofile(), whose short write on
    # a full disk is an OSError without errno ("N requested and M written"), not ENOSPC.
    encoded = io.BytesIO()
    np.lib.format.write_array(encoded, pixel_sum, allow_pickle=False)
    with atomic.atomic_writer(total) as file:
        file.write(encoded.getvalue())
    _write_npz(staged, {"data": data, "labels": labels})


def _mean(job: Job, batches: list[tuple[str, int]]) -> Any:
    """The mean train row, from the staged sums (exact integers, so any order gives the same)."""
    np = require_numpy()
    total = sum(np.load(job.out / STAGING / f"{name}.sum.npy") for name, _ in batches)
    count = sum(rows for _, rows in batches)
    return total.astype(np.float64) / max(count, 1)


def _finish_batch(job: Job, name: str, mean: Any) -> None:
    """Move the staged batch to a temporary name, add ``mean``, then give it its final name."""
    with atomic.atomic_path(job.out / f"{name}.npz") as temporary:
        os.replace(job.out / STAGING / f"{name}.npz", temporary)
        with zipfile.ZipFile(temporary, "a") as archive:
            _add_array(archive, "mean", mean)


def _write_npz(path: Path, arrays: dict[str, Any]) -> None:
    """What ``numpy.savez`` writes, but with fixed member times: the same arrays, the same bytes."""
    with atomic.atomic_writer(path) as file, zipfile.ZipFile(file, "w") as archive:
        for key, array in arrays.items():
            _add_array(archive, key, array)


def _add_array(archive: zipfile.ZipFile, key: str, array: Any) -> None:
    np = require_numpy()
    info = zipfile.ZipInfo(f"{key}.npy", date_time=_EPOCH)
    with archive.open(info, "w", force_zip64=True) as member:
        np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)


def _downsample(job: Job, what: str, rows: list[Sample]) -> tuple[Any, Any, Any]:
    """(data, labels, per-pixel sum) for ``rows``: decoded on ``job.workers`` processes, or read as
    staged when the export is made straight from the archives (each row made as it was read)."""
    np = require_numpy()
    size = job.options["size"]
    data = np.empty((len(rows), 3 * size * size), dtype=np.uint8)
    if rows and rows[0].origin is not None:
        for at, sample in enumerate(rows):
            data[at] = np.frombuffer(job.read(sample), dtype=np.uint8)
    else:
        _decode_into(data, job, what, rows)
    labels = np.array([catalogue.by_wnid(s.wnid).devkit_id for s in rows], dtype=np.int64)
    return data, labels, data.sum(axis=0, dtype=np.uint64)


def _decode_into(data: Any, job: Job, what: str, rows: list[Sample]) -> None:
    np = require_numpy()
    size = job.options["size"]
    chunks = [[str(job.tree / s.path) for s in rows[at : at + CHUNK]] for at in range(0, len(rows), CHUNK)]
    with job.progress.task(f"downsampling {what}", total=len(rows), unit="img") as advance:
        done = 0
        for pixels in ordered_map(
            functools.partial(downsample_files, size=size), chunks, min(job.workers, max(1, len(chunks)))
        ):
            count = len(pixels) // data.shape[1]
            data[done : done + count] = np.frombuffer(pixels, dtype=np.uint8).reshape(count, -1)
            done += count
            advance(count)


def downsample_files(paths: Sequence[str], size: int) -> bytes:
    """Each image as one row, as :class:`~imagenet_cli.trees.resize.BoxRows` makes it."""
    recipe, rows = BoxRows(size), []
    for path in paths:
        try:
            rows.append(recipe.make(Path(path).read_bytes()).outputs[str(size)])
        except (OSError, ImageError) as error:
            raise DamagedTreeError(f"cannot decode {path}: {error}") from None
    return b"".join(rows)


def count_samples(path: Path) -> int:
    with require_numpy().load(path) as arrays:
        return len(arrays["labels"])


def own_file_problems(folder: Path, shards: Sequence[ShardRecord]) -> list[tuple[str, str, str]]:
    """The batches are all there is: each holds its rows and the mean."""
    return []
