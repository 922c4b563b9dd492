"""Benchmark of `imagenet subset` on a full-shaped tree of tiny files.

    python tests/benchmarks/subset_bench.py

1. 100 classes x 260 images as symlinks (target: a few seconds).
2. The SimCLR 10% subset, 128,116 files (target: well under a minute), against the 1% subset:
   time and peak memory (memory should not grow with the subset).

The tree holds every file of the 10% list plus 300 files in each of 100 classes, each a few bytes,
with a manifest, so that only the subset's own work is measured.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from imagenet_cli import catalogue, hashing, manifest  # noqa: E402
from tests.benchmarks.measure import run_cli  # noqa: E402


def build_tree(tree: Path) -> int:
    names: dict[str, set[str]] = {}
    for file in catalogue.label_fraction("10percent"):
        names.setdefault(file.split("_", 1)[0], set()).add(file)
    for wnid in catalogue.wnids()[:100]:
        names[wnid].update(f"{wnid}_{900000 + i}.JPEG" for i in range(300))
    entries = []
    for wnid in sorted(names):
        folder = tree / "train" / wnid
        folder.mkdir(parents=True)
        for name in sorted(names[wnid]):
            data = name.encode()
            (folder / name).write_bytes(data)
            entries.append(manifest.Entry(f"train/{wnid}/{name}", len(data), hashing.hash_bytes(data), wnid))
    manifest.write_manifest(tree, entries)
    return len(entries)


def run(root: Path, *args: str) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of `imagenet subset` in a fresh process."""
    return run_cli("subset", "--root", str(root), "--quiet", *args)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="imagenet-subset-bench-"))
    try:
        started = time.perf_counter()
        count = build_tree(work / "root" / "full")
        creation_rate = count / (time.perf_counter() - started)
        print(f"tree of {count:,} files built at {creation_rate:,.0f} files/s: this filesystem's baseline\n")
        hundred = work / "hundred.txt"  # the classes with 300+ files
        hundred.write_text("\n".join(catalogue.wnids()[:100]) + "\n")
        seconds, _ = run(work / "root", "--classes", str(hundred), "--per-class", "260")
        print(
            f"1. 100 classes --per-class 260 (26,000 symlinks): {seconds:.1f} s "
            f"= {26_000 / seconds / creation_rate:.2f} x the baseline's files/s"
        )
        one, one_rss = run(work / "root", "--images", "1percent")
        ten, ten_rss = run(work / "root", "--images", "10percent")
        print(f"2. --images 1percent (12,811 files): {one:.1f} s, {one_rss / 1024:.0f} MiB peak")
        print(
            f"   --images 10percent (128,116 files): {ten:.1f} s, {ten_rss / 1024:.0f} MiB peak "
            f"= {ten_rss / one_rss:.2f} x the memory of 1%"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
