"""Every step at ILSVRC-2012's real file count: how time and memory grow with the dataset.

    python tests/benchmarks/full_count.py [--fractions 0.01,0.1,1] [--workdir DIR] [--keep]
                                          [--first N | --only WORD[,WORD…]]

For each fraction, a source with the real layout is generated (the built-in sample at ``scale``: all
1000 class tars, train per class shaped as the real counts, 50 val per class, the devkit; tiny
JPEGs, so 1.0 is 1,281,167 train images in about 3 GB), and the real CLI runs each step in a fresh
process, at every fraction before the next step (a step's runs are minutes apart, so the shared
machine's drifting load weighs alike on them): verify of the archives, prepare --size 32, the same
prepare again (nothing to do), verify of the tree, a subset, every export from the tree and straight
from the archives (and one again), and info. Printed per step: wall seconds, CPU seconds of the
step's processes, peak RSS of its main process and of its largest worker, the main process's own
user time, and, between the last two fractions, how each grew.

Targets (#25): CPU time grows at most 11x for 10x the images; peak RSS flat (within 10%); the
no-op re-runs at 1.0 under 10 s; no temporary file left. Machines here are shared and noisy: read
the growth ratios, not the absolute times.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from imagenet_cli import atomic  # noqa: E402
from imagenet_cli.download import download_sample  # noqa: E402

# The step's own process: its time, its peak RSS (VmHWM: ru_maxrss would carry the benchmark's
# over exec), and those of the workers it waited for (RUSAGE_CHILDREN), on stderr's last line.
_MEASURED = (
    "import re, resource, sys\nfrom imagenet_cli.cli.app import main\n"
    "try:\n    main()\nfinally:\n"
    "    me, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))\n"
    "    hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
    "    system = me.ru_stime + kids.ru_stime\n"
    "    print(me.ru_utime + kids.ru_utime + system, hwm, kids.ru_maxrss, system, me.ru_utime, file=sys.stderr)"
)


@dataclass(frozen=True)
class Measured:
    wall: float
    cpu: float
    main_kib: int
    worker_kib: int
    system: float  # of cpu: in the kernel (file systems, page cache)
    main_user: float  # of cpu: the main process's own, outside the kernel (listing, ordering, merging)


def steps(root: Path) -> list[tuple[str, list[str]]]:
    r = ["--root", str(root), "--quiet"]
    tree = str(root / "32")
    return [
        ("verify archives", ["verify", *r, str(root / "downloads")]),
        ("prepare --size 32", ["prepare", *r, "--size", "32"]),
        ("prepare again (no-op)", ["prepare", *r, "--size", "32"]),
        ("verify tree", ["verify", *r, tree]),
        ("subset --classes 100", ["subset", *r, "--classes", "100", "--from", tree]),
        ("export webdataset (tree)", ["export", "webdataset", *r, "--from", tree]),
        ("export parquet (tree)", ["export", "parquet", *r, "--from", tree]),
        ("export webdataset --size 32 (straight)", ["export", "webdataset", *r, "--size", "32"]),
        ("export again (no-op)", ["export", "webdataset", *r, "--size", "32"]),
        ("export downsampled --size 32 (straight)", ["export", "downsampled", *r, "--size", "32"]),
        ("info", ["info", *r]),
    ]


def measure(arguments: list[str], exit_codes: tuple[int, ...] = (0,)) -> Measured:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _MEASURED, *arguments], capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - start
    if done.returncode not in exit_codes:
        raise RuntimeError(f"imagenet {' '.join(arguments)} exited {done.returncode}: {done.stderr[-800:]}")
    cpu, main_kib, worker_kib, system, main_user = done.stderr.split("\n")[-2].split()
    return Measured(wall, float(cpu), int(main_kib), int(worker_kib), float(system), float(main_user))


def user(measured: Measured) -> float:
    return measured.cpu - measured.system


def temporaries(root: Path) -> list[Path]:
    """What a finished run must not leave: our temporary names, partial downloads, staging."""
    left = []
    for folder, names, files in os.walk(root):
        left += [Path(folder) / n for n in files if atomic.is_temporary(n) or n.endswith(".part")]
        left += [Path(folder) / n for n in names if n in (".staged", ".packs")]
    return left


def chosen(root: Path, first: int | None, only: str | None) -> list[tuple[str, list[str]]]:
    """The first N steps, or those whose names hold one of the words (steps that need a tree
    built by an earlier step are left to ``--first``)."""
    if only is None:
        return steps(root)[:first]
    words = only.split(",")
    return [(name, arguments) for name, arguments in steps(root) if any(word in name for word in words)]


def generate(fraction: float, workdir: Path) -> Path:
    root = workdir / f"root-{fraction:g}"
    shutil.rmtree(root, ignore_errors=True)
    started = time.perf_counter()
    download_sample(root, scale=fraction, test_images=0)
    size = sum(p.stat().st_size for p in (root / "downloads").iterdir())
    print(f"fraction {fraction:g}: source generated in {time.perf_counter() - started:.0f} s, {size / 1e9:.2f} GB")
    return root


def run_interleaved(
    fractions: list[float], workdir: Path, first: int | None = None, only: str | None = None
) -> dict[float, dict[str, Measured]]:
    """Each step at every fraction before the next step: a step's runs minutes apart, not the
    length of a whole run, so that the machine's drifting load weighs alike on each."""
    roots = {fraction: generate(fraction, workdir) for fraction in fractions}
    plans = {fraction: dict(chosen(root, first, only)) for fraction, root in roots.items()}
    runs: dict[float, dict[str, Measured]] = {fraction: {} for fraction in fractions}
    for name in plans[fractions[0]]:
        print(f"\n{name}", flush=True)
        for fraction in fractions:
            arguments = plans[fraction][name]
            # A tree of all 1000 classes is held to ILSVRC-2012's counts: below 1.0, verify names them (exit 3).
            partial = name == "verify tree" and fraction < 1
            runs[fraction][name] = measured = measure(arguments, (0, 3) if partial else (0,))
            print(
                f"  {fraction:<5g} {measured.wall:8.1f} s wall {measured.cpu:8.1f} s CPU ({measured.system:6.1f} "
                f"system, {measured.main_user:6.1f} main user) "
                f"{measured.main_kib / 1024:7.0f} MiB main {measured.worker_kib / 1024:7.0f} MiB worker",
                flush=True,
            )
    for fraction, root in roots.items():
        left = temporaries(root)
        print(
            f"fraction {fraction:g}: temporaries left: {len(left)}"
            + (f" ({', '.join(map(str, left[:3]))})" if left else "")
        )
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fractions", default="0.01,0.1,1", help="comma-separated fractions of the real counts")
    parser.add_argument("--workdir", type=Path, default=None, help="where the roots go [default: a temporary folder]")
    parser.add_argument("--keep", action="store_true", help="keep the roots")
    steps_wanted = parser.add_mutually_exclusive_group()
    steps_wanted.add_argument("--first", type=int, default=None, metavar="N", help="run only the first N steps")
    steps_wanted.add_argument(
        "--only", default=None, metavar="WORDS", help="run only the steps whose names hold one of these words"
    )
    options = parser.parse_args()
    fractions = [float(f) for f in options.fractions.split(",")]
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="imagenet-full-count-"))
    try:
        runs = run_interleaved(fractions, workdir, options.first, options.only)
    finally:
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if len(fractions) < 2:
        return
    small, large = fractions[-2], fractions[-1]
    print(f"\ngrowth {small:g} -> {large:g} ({large / small:g}x the images): CPU (target <= 11x), peak RSS (<= 1.1x)")
    for name in runs[large]:
        a, b = runs[small][name], runs[large][name]
        print(
            f"  {name:40s} CPU {b.cpu / max(a.cpu, 0.01):6.2f} x   user {user(b) / max(user(a), 0.01):6.2f} x   "
            f"system {b.system / max(a.system, 0.01):6.2f} x   "
            f"main user {b.main_user / max(a.main_user, 0.01):6.2f} x   main RSS {b.main_kib / a.main_kib:5.2f} x   "
            f"worker RSS {b.worker_kib / max(a.worker_kib, 1):5.2f} x"
        )


if __name__ == "__main__":
    main()
