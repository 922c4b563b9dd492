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
is appended to each as it moves to its final name. A stopped run keeps what it staged. Rows are
written into the file as they are made, a chunk at a time: at the full count a batch is 128,000
rows (390 MB at 32 pixels, 1.5 GB at 64), and memory holds none of it.
"""

from __future__ import annotations

import functools
import io
import itertools
import os
import shutil
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from .. import atomic, catalogue
from ..errors import DamagedTreeError, MissingExtraError, UnsuitableTreeError
from ..trees.resize import BoxRows, ImageError
from ..workers import ordered_map
from . import Job, prepared_by
from .record import ShardRecord
from .samples import Sample, SplitSamples

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
        finished = job.to.finished("val_data.npz")
        if finished is None:
            _write_rows(job.out / "val_data.npz", job, "val", samples.by_name(), len(samples))
            finished = job.publish("val_data.npz")
            job.result.written += 1
        job.keep("val_data.npz", split, len(samples), finished)
        return
    batches = _batches(len(samples))
    stream = iter(samples)
    for name, count in batches:  # each batch's rows read from the stream as they are written
        _stage(job, name, itertools.islice(stream, count), count)
    mean = None
    for name, count in batches:
        finished = job.to.finished(f"{name}.npz")
        if finished is None:
            mean = _mean(job, batches) if mean is None else mean
            _finish_batch(job, name, mean)
            finished = job.publish(f"{name}.npz")
            job.result.written += 1
        job.keep(f"{name}.npz", split, count, finished)


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


def _stage(job: Job, name: str, rows: Iterable[Sample], count: int) -> None:
    """Decode a batch's rows unless they are staged or final already; the sum is written after the
    batch, so a staged batch with its sum is whole (the stream is consumed either way)."""
    staged, total = job.out / STAGING / f"{name}.npz", job.out / STAGING / f"{name}.sum.npy"
    if job.to.finished(f"{name}.npz") or (staged.is_file() and total.is_file()):
        for _skipped in rows:  # the stream moves on to the next batch's rows
            pass
        return
    np = require_numpy()
    pixel_sum = _write_rows(staged, job, name, rows, count)
    # Through a buffer: numpy writes straight to a real file with tofile(), whose short write on
    # a full disk is an OSError without errno ("N requested and M written"), not ENOSPC.
    encoded = io.BytesIO()
    np.lib.format.write_array(encoded, pixel_sum, allow_pickle=False)
    with atomic.atomic_writer(total) as file:
        file.write(encoded.getvalue())


def _mean(job: Job, batches: list[tuple[str, int]]) -> Any:
    """The mean train row, from the staged sums (exact integers, so any order gives the same); or,
    where batches are final already (their sums swept), the mean they hold."""
    np = require_numpy()
    final = next((f"{name}.npz" for name, _ in batches if job.to.finished(f"{name}.npz")), None)
    if final is not None:
        with job.to.open(final) as file, np.load(file) as arrays:
            return arrays["mean"]
    total = sum(np.load(job.out / STAGING / f"{name}.sum.npy") for name, _ in batches)
    count = sum(rows for _, rows in batches)
    return total.astype(np.float64) / max(count, 1)


def _finish_batch(job: Job, name: str, mean: Any) -> None:
    """Move the staged batch to a temporary name, add ``mean``, then give it its final name."""
    with atomic.atomic_path(job.out / f"{name}.npz") as temporary:
        os.replace(job.out / STAGING / f"{name}.npz", temporary)
        with zipfile.ZipFile(temporary, "a") as archive:
            _add_array(archive, "mean", mean)


def _add_array(archive: zipfile.ZipFile, key: str, array: Any) -> None:
    np = require_numpy()
    info = zipfile.ZipInfo(f"{key}.npy", date_time=_EPOCH)
    with archive.open(info, "w", force_zip64=True) as member:
        np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)


def _write_rows(path: Path, job: Job, what: str, rows: Iterable[Sample], count: int) -> Any:
    """Write ``path``, an ``.npz`` of ``data`` (``count`` rows, each written as it is made) and
    ``labels``, as ``numpy.savez`` would; returns the rows' per-pixel sum."""
    np = require_numpy()
    width = 3 * job.options["size"] ** 2
    labels = np.zeros(count, dtype=np.int64)  # 8 bytes a row, where a list of ints held 36
    written = 0
    pixel_sum = np.zeros(width, dtype=np.uint64)
    header = {
        "descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)),
        "fortran_order": False,
        "shape": (count, width),
    }
    with atomic.atomic_writer(path) as file, zipfile.ZipFile(file, "w") as archive:
        info = zipfile.ZipInfo("data.npy", date_time=_EPOCH)
        with archive.open(info, "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(member, header)
            with job.progress.task(f"downsampling {what}", total=count, unit="img") as advance:
                for chunk, block in _made_rows(job, rows, width):
                    if written + len(chunk) > count:
                        raise DamagedTreeError(f"{what}: more images than the {count:,} listed")
                    member.write(block.tobytes())
                    pixel_sum += block.sum(axis=0, dtype=np.uint64)
                    labels[written : written + len(chunk)] = [catalogue.by_wnid(s.wnid).devkit_id for s in chunk]
                    written += len(chunk)
                    advance(len(chunk))
        if written != count:
            raise DamagedTreeError(f"{what}: {written:,} images where {count:,} were listed")
        _add_array(archive, "labels", labels)
    return pixel_sum


def _made_rows(job: Job, rows: Iterable[Sample], width: int) -> Iterator[tuple[list[Sample], Any]]:
    """The rows a chunk at a time, with their samples: decoded on ``job.workers`` processes, or
    read as staged when the export is made straight from the archives (each row made as it was
    read)."""
    np = require_numpy()
    stream = iter(rows)
    chunks = iter(lambda: list(itertools.islice(stream, CHUNK)), [])
    first = next(chunks, None)
    if first is None:
        return
    chunks = itertools.chain([first], chunks)
    if first[0].origin is not None:
        for chunk in chunks:
            yield chunk, np.frombuffer(b"".join(job.read(s) for s in chunk), dtype=np.uint8).reshape(len(chunk), width)
        return
    listed: list[list[Sample]] = []  # the chunks sent out, in order, until their rows come back

    def paths() -> Iterator[list[str]]:
        for chunk in chunks:
            listed.append(chunk)
            yield [str(job.tree / s.path) for s in chunk]

    for pixels in ordered_map(functools.partial(downsample_files, size=job.options["size"]), paths(), job.workers):
        yield listed.pop(0), np.frombuffer(pixels, dtype=np.uint8).reshape(-1, width)


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
