"""Benchmark of `imagenet verify`, as ratios against baselines measured in the same run.

    python tests/benchmarks/verify_bench.py [--large-mb 1024] [--files 100000]

1. One large file: MD5 + xxh3 in one read against `md5sum` alone (target >= 0.95 x its rate).
2. Three archives at once (train, val, devkit sizes in ImageNet's proportions) against the largest
   alone (target: wall time <= 1.1 x).
3. Re-verifying archives with recorded digests: seconds, whatever their size.
4. A tree of small files with a manifest against a plain read of the same files with `cat`
   (target >= 0.8 x its rate), and peak memory for 1 % and 100 % of that tree (within 10 %).

Files are read once before timing, so every contender reads from the page cache. Machines here
are shared and noisy: read the ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from imagenet_cli import catalogue, hashing, manifest  # noqa: E402
from imagenet_cli.checks import VerifyReport, verify  # noqa: E402
from tests.benchmarks.measure import run_cli  # noqa: E402


def timed(function: Callable[[], object]) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def best_of(runs: int, function: Callable[[], object]) -> float:
    return min(timed(function) for _ in range(runs))


def write_random(path: Path, size: int) -> Path:
    with open(path, "wb") as file:
        remaining = size
        while remaining:
            block = os.urandom(min(remaining, 16 << 20))
            file.write(block)
            remaining -= len(block)
    return path


def warm(*paths: Path) -> None:
    for path in paths:
        subprocess.run(["cat", str(path)], stdout=subprocess.DEVNULL, check=True)


def sums_file(directory: Path, paths: list[Path]) -> Path:
    out = directory / "SUMS"
    out.write_text("".join(f"{hashing.hash_file(p)['md5']}  {p.name}\n" for p in paths))
    return out


def make_tree(tree: Path, files: int, file_bytes: int) -> None:
    """``files`` images over 1000 class folders of train/, with manifest.tsv."""
    entries = []
    payload = os.urandom(file_bytes + 1000)
    wnids = catalogue.wnids()
    for i in range(files):
        wnid = wnids[i % 1000]
        data = payload[i % 1000 : i % 1000 + file_bytes]
        relative = f"train/{wnid}/{wnid}_{i}.JPEG"
        path = tree / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        entries.append(manifest.Entry(relative, len(data), hashing.hash_bytes(data), wnid))
    manifest.write_manifest(tree, sorted(entries, key=lambda e: e.path))


def peak_rss_kib(tree: Path) -> int:
    # 3: the bench tree has all 1000 classes but not ImageNet's counts, which verify reports.
    return run_cli("verify", str(tree), "--quiet", exit_codes=(0, 3))[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large-mb", type=int, default=1024, help="size of the large file / train stand-in")
    parser.add_argument("--files", type=int, default=100_000, help="files in the tree")
    parser.add_argument("--file-kb", type=int, default=8, help="size of each tree file")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="imagenet-verify-bench-"))
    try:
        large = write_random(work / "ILSVRC2012_img_train.tar", args.large_mb << 20)
        warm(large)
        print(f"1. one {args.large_mb} MB file")
        md5sum = best_of(3, lambda: subprocess.run(["md5sum", str(large)], stdout=subprocess.DEVNULL, check=True))
        ours = best_of(3, lambda: hashing.hash_file(large))
        print(
            f"   md5sum alone {args.large_mb / md5sum:7.0f} MB/s   ours, MD5 + xxh3 {args.large_mb / ours:7.0f} MB/s"
            f"   = {md5sum / ours:.2f} x md5sum's rate (target >= 0.95)"
        )

        print("\n2. train + val + devkit at once (ImageNet's proportions) against the largest alone")
        downloads = work / "root" / "downloads"
        downloads.mkdir(parents=True)
        train = large.rename(downloads / large.name)
        val = write_random(downloads / "ILSVRC2012_img_val.tar", (args.large_mb << 20) * 67 // 1479)
        devkit = write_random(downloads / "ILSVRC2012_devkit_t12.tar.gz", 2_568_145)
        sums = sums_file(work, [train, val, devkit])
        warm(train, val, devkit)

        def verify_paths(paths: list[Path], rehash: bool = True) -> VerifyReport:
            return verify(work / "root", paths=paths, checksums=sums, rehash=rehash)

        alone = best_of(3, lambda: verify_paths([train]))
        together = best_of(3, lambda: verify_paths([train, val, devkit]))
        print(
            f"   largest alone {alone:.2f} s   all three {together:.2f} s   = {together / alone:.2f} x (target <= 1.1)"
        )

        print("\n3. re-verify with recorded digests (no --rehash)")
        verify_paths([train, val, devkit])  # leaves records
        again = best_of(3, lambda: verify(work / "root", paths=[train, val, devkit]))
        print(f"   {again:.3f} s for {(train.stat().st_size + val.stat().st_size) >> 20} MB of archives")
        shutil.rmtree(work / "root")

        print(f"\n4. a tree of {args.files:,} files of {args.file_kb} KB with a manifest")
        tree = work / "tree"
        make_tree(tree, args.files, args.file_kb << 10)
        small = work / "small"
        make_tree(small, max(1000, args.files // 100), args.file_kb << 10)
        cat = ["sh", "-c", f"find {tree}/train -type f -print0 | xargs -0 cat > /dev/null"]
        subprocess.run(cat, check=True)  # warm the cache
        plain = best_of(3, lambda: subprocess.run(cat, check=True))
        checked = best_of(3, lambda: verify(tree, paths=[tree]))

        def rate(seconds: float) -> float:
            return float(args.files) / seconds

        print(
            f"   cat {rate(plain):8.0f} files/s   verify {rate(checked):8.0f} files/s   "
            f"= {plain / checked:.2f} x cat's rate"
            f" (target >= 0.8)"
        )
        small_rss, large_rss = peak_rss_kib(small), peak_rss_kib(tree)
        print(
            f"   peak RSS: {max(1000, args.files // 100):,} files {small_rss / 1024:.0f} MiB, {args.files:,} files "
            f"{large_rss / 1024:.0f} MiB = {large_rss / small_rss:.2f} x (target <= 1.10)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
