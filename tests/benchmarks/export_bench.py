"""Benchmark of `imagenet export webdataset`, as a ratio against `tar -cf` over the same files.

    python tests/benchmarks/export_bench.py [--per-class 100] [--rounds 3]

Exporting is a copy, not a decode: the target is >= 0.8x the rate of `tar -cf` writing the same
tree's files into one tar, measured in the same run, alternating, best round kept.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from imagenet_cli.download import download_sample  # noqa: E402
from imagenet_cli.export import export  # noqa: E402
from imagenet_cli.prepare import prepare  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="imagenet-export-bench-"))
    try:
        download_sample(work, classes=["imagenette"], train_per_class=args.per_class, val_per_class=10, test_images=0)
        prepare(work, ["full"], workers=2)
        tree = work / "full"
        files = sorted(str(p.relative_to(tree)) for p in tree.glob("*/*/*"))
        size = sum((tree / f).stat().st_size for f in files)
        best_tar = best_ours = float("inf")
        for _ in range(args.rounds):
            out = work / "plain.tar"
            start = time.perf_counter()
            subprocess.run(["tar", "-cf", str(out), "-C", str(tree), *files], check=True)
            best_tar = min(best_tar, time.perf_counter() - start)
            out.unlink()
            start = time.perf_counter()
            export(work, out=work / "wds")
            best_ours = min(best_ours, time.perf_counter() - start)
            shutil.rmtree(work / "wds")
        mb = size / 1e6
        print(f"{len(files):,} files, {mb:.0f} MB")
        print(f"tar -cf {mb / best_tar:6.0f} MB/s   export webdataset {mb / best_ours:6.0f} MB/s   = {best_tar / best_ours:.2f} x (target >= 0.8)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
