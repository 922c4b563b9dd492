"""Benchmark of exports to and from object storage, as ratios against the same export on a disk.

    python tests/benchmarks/bucket_bench.py [--per-class 100] [--rounds 2] [--size 64]

An S3 API runs on 127.0.0.1 (moto's server, in this process); each export runs through the real
CLI in a fresh process, from copies of the same archives, alternating folder and bucket, best
round kept:

- ``export webdataset --size SIZE`` (64 by default) into ``ROOT/exports/…`` against ``--out s3://…``: the bucket's
  time as a ratio of the folder's (the work is decode and encode; the upload should not show);
- the peak of the local spool while the bucket export runs (it holds the files being made only);
- the same export from the archives in ``ROOT/downloads`` against ``--from s3://…`` (the same
  archives uploaded): the bucket's speed as a ratio of the disk's (target >= 0.8);
- the raw rates of this server for the same client (s3fs): shard-sized objects PUT, and 8 MiB
  ranges of the train tar read, on 1 and 4 threads. moto is a Python server on the same two
  cores, slower than a real store: these are the floor of what the export meets here, not
  figures of S3.

moto answers a ranged GET by copying the whole object and slicing the copy, so each 8 MiB read
of a 300 MB tar costs two copies of 300 MB: the reads from the bucket then measure moto, not the
export. With ``--ranges as-s3`` (the default) the server reads just the range from the object's
buffer, as a store does; ``--ranges as-moto`` keeps moto's own way, for comparison.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from imagenet_cli.download import download_sample  # noqa: E402
from tests.benchmarks.measure import run_cli  # noqa: E402
from tests.benchmarks.straight_bench import PeakDisk, fresh_root  # noqa: E402
from tests.buckets import S3Server, environment  # noqa: E402

SHARD_BYTES = 8 << 20


def export_times(work: Path, source: Path, s3: S3Server, rounds: int, size: str) -> tuple[float, float, int]:
    """Best wall seconds of the export to a folder and to the bucket, and the spool's peak bytes."""
    best_folder = best_bucket = float("inf")
    spool_peak = 0
    args = ["export", "webdataset", "--size", size, "--shard-size", "200", "-q"]
    for number in range(rounds):
        root = fresh_root(work, source, "folder")
        seconds, _ = run_cli(*args, "--root", str(root))
        best_folder = min(best_folder, seconds)
        root = fresh_root(work, source, "bucket")
        bucket = s3.bucket(f"round-{number}")
        with PeakDisk(root / "exports") as spool:
            seconds, _ = run_cli(*args, "--root", str(root), "--out", f"{bucket}/wds")
        best_bucket = min(best_bucket, seconds)
        spool_peak = max(spool_peak, spool.peak)
    return best_folder, best_bucket, spool_peak


@dataclass
class Reading:
    """Best of the rounds: wall seconds, CPU seconds of the export's processes, and (from the
    bucket) CPU seconds of the server, which runs in this process on the same cores."""

    wall: float = float("inf")
    cpu: float = float("inf")
    server_cpu: float = 0.0

    def keep(self, wall: float, cpu: float, server_cpu: float = 0.0) -> None:
        if wall < self.wall:
            self.wall, self.cpu, self.server_cpu = wall, cpu, server_cpu


def read_times(work: Path, source: Path, s3: S3Server, rounds: int, size: str) -> tuple[Reading, Reading]:
    """The export from local archives, and from the same archives in a bucket."""
    bucket = s3.bucket("archives")
    for archive in (source / "downloads").iterdir():
        if archive.name.endswith((".tar", ".tar.gz")):
            s3.client().upload_file(str(archive), "archives", f"ilsvrc/{archive.name}")
    disk, remote = Reading(), Reading()
    args = ["export", "webdataset", "--size", size, "--shard-size", "200", "-q"]
    for _ in range(rounds):
        before = _children_cpu()
        seconds, _ = run_cli(*args, "--root", str(fresh_root(work, source, "disk")))
        disk.keep(seconds, _children_cpu() - before)
        root = work / "from-bucket"
        shutil.rmtree(root, ignore_errors=True)
        before, server = _children_cpu(), time.process_time()
        seconds, _ = run_cli(*args, "--root", str(root), "--from", f"{bucket}/ilsvrc")
        remote.keep(seconds, _children_cpu() - before, time.process_time() - server)
    return disk, remote


def _children_cpu() -> float:
    """User and system seconds of the finished child processes (the CLI and its workers)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def range_read_rate(threads: int, reads: int = 32) -> float:
    """MB/s of ``reads`` 8 MiB ranges of the uploaded train tar through s3fs on ``threads`` threads."""
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    key = "archives/ilsvrc/ILSVRC2012_img_train.tar"
    size = fs.info(key)["size"]
    starts = [(n * SHARD_BYTES) % max(size - SHARD_BYTES, 1) for n in range(reads)]
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        got = sum(pool.map(lambda at: len(fs.cat_file(key, start=at, end=min(at + SHARD_BYTES, size))), starts))
    return got / (time.perf_counter() - start) / 1e6


def upload_rate(s3: S3Server, threads: int, objects: int = 16) -> float:
    """MB/s of ``objects`` shard-sized PUTs through s3fs on ``threads`` threads."""
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    bucket = s3.bucket(f"rate-{threads}")
    payload = os.urandom(SHARD_BYTES)
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda n: fs.pipe_file(f"{bucket[5:]}/{n}", payload), range(objects)))
    return objects * SHARD_BYTES / (time.perf_counter() - start) / 1e6


class _Range:
    """An object's bytes as moto's range handling asks for them (its length, one slice), read
    from the object's buffer when asked: no copy of the whole object."""

    def __init__(self, key: Any) -> None:
        self.key = key

    def __len__(self) -> int:
        return int(self.key.contentsize)

    def __getitem__(self, part: slice) -> bytes:
        start, stop, _ = part.indices(len(self))
        with self.key.lock:
            self.key._value_buffer.seek(start)
            return bytes(self.key._value_buffer.read(stop - start))


@contextmanager
def ranges_as_s3() -> Iterator[None]:
    """While it lasts, moto serves a GET with a Range header by reading that range only."""
    from moto.s3.models import FakeKey
    from moto.s3.responses import S3Response

    ranged = threading.local()
    whole_value: Any = FakeKey.__dict__["value"]  # the property itself
    get_object: Any = S3Response.get_object

    def value(key: Any) -> Any:
        return _Range(key) if getattr(ranged, "on", False) else whole_value.fget(key)

    def ranged_get(response: Any) -> Any:
        ranged.on = response.headers.get("range") is not None  # werkzeug's headers: any case
        try:
            return get_object(response)
        finally:
            ranged.on = False

    setattr(FakeKey, "value", property(value, whole_value.fset))  # noqa: B010 (mypy: a method is not assigned)
    setattr(S3Response, "get_object", ranged_get)  # noqa: B010
    try:
        yield
    finally:
        setattr(FakeKey, "value", whole_value)  # noqa: B010
        setattr(S3Response, "get_object", get_object)  # noqa: B010


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ranges", choices=["as-s3", "as-moto"], default="as-s3")
    parser.add_argument("--size", default="64", help="the images' size, as export --size takes it")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="imagenet-bucket-bench-"))
    try:
        source = work / "source"
        download_sample(source, classes=["imagenette"], train_per_class=args.per_class, val_per_class=10, test_images=0)
        ranges = ranges_as_s3() if args.ranges == "as-s3" else contextlib.nullcontext()
        with S3Server() as s3, environment(s3.env), ranges:
            folder, bucket, spool = export_times(work, source, s3, args.rounds, args.size)
            disk, remote = read_times(work, source, s3, args.rounds, args.size)
            one, four = upload_rate(s3, 1), upload_rate(s3, 4)
            read_one, read_four = range_read_rate(1), range_read_rate(4)
        images = 10 * (args.per_class + 10)
        print(f"{images:,} images (Imagenette classes, photo-sized JPEGs), {os.cpu_count()} cores")
        print(f"export webdataset {args.size:>4} to a folder {folder:6.1f} s")
        ratio = f"{folder / bucket:.2f}x the folder's speed"
        print(f"export webdataset {args.size:>4} to s3://    {bucket:6.1f} s   = {ratio}")
        print(f"   local spool at its peak: {spool / 1e6:.1f} MB")
        print(f"export from ROOT/downloads         {disk.wall:6.1f} s, its processes' CPU {disk.cpu:5.1f} s")
        ratio = f"{disk.wall / remote.wall:.2f}x the disk's speed (target >= 0.8)"
        print(f"export --from s3://…/ilsvrc        {remote.wall:6.1f} s   = {ratio}")
        print(
            f"   its processes' CPU {remote.cpu:5.1f} s = {disk.cpu / remote.cpu:.2f}x the disk's; "
            f"the server's, on the same cores: {remote.server_cpu:.1f} s"
        )
        print(
            f"8 MiB ranged reads from this server ({args.ranges}): "
            f"{read_one:.0f} MB/s on 1 thread, {read_four:.0f} MB/s on 4"
        )
        print(
            f"PUT of {SHARD_BYTES >> 20} MiB objects to this server: {one:.0f} MB/s on 1 thread, {four:.0f} MB/s on 4"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
