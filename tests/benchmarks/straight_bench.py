"""Benchmark of exports made straight from the archives, as ratios against the way through a tree.

    python tests/benchmarks/straight_bench.py [--per-class 100] [--rounds 2]

Two pairs, each run in fresh processes through the real CLI on copies of the same archives,
alternating, best round kept:

- ``export webdataset --size 224`` against ``prepare --size 224`` then ``export webdataset``
  (targets: >= 1.5x faster, <= 0.5x the bytes written);
- ``export downsampled --size 32`` against ``prepare --size full`` then ``export downsampled``
  (targets: >= 1.5x faster, disk used <= 1.1x the output).

Bytes written are what the run's files took on disk at their peak (a walk every 50 ms while it
runs: staging included, though it is gone at the end); peak RSS is each process's VmHWM. Then the
straight webdataset export at 10x the images, for the growth of its peak RSS (target: within 10%).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from imagenet_cli.download import download_sample  # noqa: E402
from tests.benchmarks.measure import run_cli  # noqa: E402


class PeakDisk:
    """The largest total size of the files under ``folder`` while the block runs."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.peak, self.stop = folder, 0, threading.Event()

    def __enter__(self) -> PeakDisk:
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, self._size())

    def _watch(self) -> None:
        while not self.stop.wait(0.05):
            self.peak = max(self.peak, self._size())

    def _size(self) -> int:
        total = 0
        for directory, _, names in os.walk(self.folder):
            for name in names:
                try:
                    total += os.stat(os.path.join(directory, name)).st_size
                except FileNotFoundError:
                    pass  # renamed or removed while we looked
        return total


def fresh_root(work: Path, source: Path, name: str) -> Path:
    root = work / name
    shutil.rmtree(root, ignore_errors=True)
    (root / "downloads").mkdir(parents=True)
    for archive in (source / "downloads").iterdir():  # hard links: the inputs cost no disk
        os.link(archive, root / "downloads" / archive.name)
    return root


def measured(root: Path, steps: list[list[str]]) -> tuple[float, int, int, int]:
    """(wall seconds, peak bytes on disk besides the archives, bytes at the end, peak RSS KiB)."""
    inputs = sum(p.stat().st_size for p in (root / "downloads").iterdir())
    wall, rss = 0.0, 0
    with PeakDisk(root) as disk:
        for step in steps:
            arguments = [word.replace("ROOT", str(root)) for word in step]
            seconds, peak = run_cli(*arguments, "--root", str(root), "-q", exit_codes=(0, 3))
            wall, rss = wall + seconds, max(rss, peak)
    final = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    return wall, disk.peak - inputs, final - inputs, rss


def output_size(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "exports").rglob("*") if p.is_file())


def compare(work: Path, source: Path, label: str, straight: list[str], tree: list[list[str]], rounds: int) -> None:
    best: dict[str, tuple[float, int, int, int]] = {}
    outputs: dict[str, int] = {}
    for _ in range(rounds):
        for name, steps in (("straight", [straight]), ("tree", tree)):
            root = fresh_root(work, source, name)
            result = measured(root, steps)
            outputs[name] = output_size(root)
            if name not in best or result[0] < best[name][0]:
                best[name] = result
    (s_wall, s_peak, s_final, s_rss), (t_wall, t_peak, t_final, t_rss) = best["straight"], best["tree"]
    mb: Callable[[int], str] = lambda n: f"{n / 1e6:7.1f} MB"  # noqa: E731
    print(f"\n{label}")
    print(f"   straight  {s_wall:6.1f} s   peak disk {mb(s_peak)}   at the end {mb(s_final)}   RSS {s_rss // 1024} MiB")
    print(f"   via tree  {t_wall:6.1f} s   peak disk {mb(t_peak)}   at the end {mb(t_final)}   RSS {t_rss // 1024} MiB")
    print(f"   = {t_wall / s_wall:.2f}x faster (target >= 1.5)")
    print(f"   bytes written {s_peak / t_peak:.2f}x (target <= 0.5)")
    print(f"   disk used at the end {s_final / outputs['straight']:.2f}x the output (target <= 1.1)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="imagenet-straight-bench-"))
    try:
        source = work / "source"
        download_sample(source, classes=["imagenette"], train_per_class=args.per_class, val_per_class=10, test_images=0)
        images = 10 * (args.per_class + 10)
        print(f"{images:,} images (Imagenette classes, photo-sized JPEGs), {os.cpu_count()} cores")
        compare(
            work,
            source,
            "webdataset 224",
            ["export", "webdataset", "--size", "224"],
            [["prepare", "--size", "224"], ["export", "webdataset"]],
            args.rounds,
        )
        compare(
            work,
            source,
            "downsampled 32",
            ["export", "downsampled", "--size", "32"],
            [["prepare", "--size", "full"], ["export", "downsampled", "--from", "ROOT/full"]],
            args.rounds,
        )
        small = measured(fresh_root(work, source, "small"), [["export", "webdataset", "--size", "64"]])
        large_source = work / "large"
        download_sample(
            large_source, classes=["imagenette"], train_per_class=10 * args.per_class, val_per_class=10, test_images=0
        )
        large = measured(fresh_root(work, large_source, "large-run"), [["export", "webdataset", "--size", "64"]])
        print(
            f"\npeak RSS of the straight webdataset 64: {small[3] // 1024} MiB; "
            f"at 10x the train images {large[3] // 1024} MiB"
        )
        print(f"   = {large[3] / small[3]:.2f}x (target <= 1.1)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
