"""Every way a ``prepare`` can be stopped: SIGTERM and SIGHUP as Ctrl-C, and SIGKILL of the parent.

Real processes and real signals; worker processes are found by PID in /proc and must be gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imagenet_cli.checks import verify
from imagenet_cli.download import download_sample
from imagenet_cli.trees import prepare
from imagenet_cli.trees.resize import Filter, Recipe

from .conftest import copy_of, imagenet_process

LANCZOS_64 = "64-lanczos"  # the tree --size 64 --filter lanczos makes

pytestmark = pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="finds worker PIDs in /proc (Linux)")


def children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(p) for p in (task / "children").read_text().split()}
    return found


def alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status  # a zombie has exited: only its exit status is left


def start_prepare(root: Path) -> subprocess.Popen[str]:
    """A prepare slow enough (Lanczos from a full decode) to be stopped while its 2 workers run."""
    command = [
        "prepare",
        "--root",
        str(root),
        "--size",
        "64",
        "--filter",
        "lanczos",
        "--workers",
        "2",
    ]
    return imagenet_process(*command)


def wait_for_workers(process: subprocess.Popen[str], root: Path) -> set[int]:
    markers = root / LANCZOS_64 / ".shards"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        workers = children(process.pid)
        if len(workers) >= 2 and len(list(markers.glob("*-*.json"))) >= 1:
            return workers
        time.sleep(0.02)
    raise AssertionError("the run never got going")


def wait_until_gone(pids: set[int], seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.05)
    return {pid for pid in pids if alive(pid)}


@pytest.fixture
def sample_root(imagenette_root: Path, tmp_path: Path) -> Path:
    return copy_of(imagenette_root, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("number, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_stop_workers_and_exit_128_plus_signal(sample_root: Path, number: int, code: int) -> None:
    process = start_prepare(sample_root)
    workers = wait_for_workers(process, sample_root)
    process.send_signal(number)  # to the main process only, as a scheduler does
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code
    name = signal.Signals(number).name
    assert stderr.strip() == f"imagenet: stopped by {name} — try the same command again: finished work is kept"
    assert wait_until_gone(workers, 5) == set(), "no worker outlives its run"
    result = prepare(sample_root, Recipe(("64",), filter=Filter.lanczos), workers=2)
    assert result.shards_done_before >= 1 and verify(sample_root, paths=[sample_root / LANCZOS_64]).ok


@pytest.mark.slow
def test_workers_exit_within_seconds_when_the_parent_is_killed(sample_root: Path) -> None:
    process = start_prepare(sample_root)
    workers = wait_for_workers(process, sample_root)
    process.kill()
    process.communicate(timeout=30)
    assert wait_until_gone(workers, 5) == set(), "workers noticed their parent died"
    prepare(sample_root, Recipe(("64",), filter=Filter.lanczos), workers=2)
    assert verify(sample_root, paths=[sample_root / LANCZOS_64]).ok


@pytest.mark.slow
def test_sigterm_stops_export_downsampled_and_its_decoding_workers(tmp_path: Path) -> None:
    """Downsampled decoding runs on a process pool: a stop ends it at once, workers and all, and
    the batches staged before it are kept. A named pipe in place of one image holds the run there."""
    from imagenet_cli.exports.samples import SplitSamples

    # 700 train images: batches of 70 rows, so each batch is two chunks for the two workers.
    download_sample(tmp_path, classes=["imagenette"], train_per_class=70, val_per_class=1, test_images=0)
    prepare(tmp_path, ["full"], workers=2)
    in_order = list(SplitSamples(tmp_path / "full", "train", 0))
    victim = tmp_path / "full" / in_order[5 * 70 + 10].path  # in the sixth batch
    saved = victim.read_bytes()
    victim.unlink()
    os.mkfifo(victim)
    out = tmp_path / "exports" / "ds"
    command = [
        sys.executable,
        "-m",
        "imagenet_cli",
        "export",
        "downsampled",
        "--root",
        str(tmp_path),
        "--from",
        str(tmp_path / "full"),
        "--out",
        str(out),
        "--size",
        "8",
        "--workers",
        "2",
    ]
    process = subprocess.Popen(
        command, env={**os.environ, "IMAGENET_NO_PROGRESS": "1"}, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while len(list((out / ".staging").glob("*.npz"))) < 5 or len(children(process.pid)) < 2:
        assert time.monotonic() < deadline and process.poll() is None, "the export never reached the pipe"
        time.sleep(0.05)
    workers = children(process.pid)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=30)
    victim.unlink()
    victim.write_bytes(saved)
    assert process.returncode == 143 and stderr.startswith("imagenet: stopped by SIGTERM")
    assert wait_until_gone(workers, 5) == set(), "no decoding worker outlives its run"
    staged = {p.name: p.stat().st_ino for p in (out / ".staging").glob("*.npz")}
    assert len(staged) == 5
    from imagenet_cli.exports import export

    result = export(tmp_path, "downsampled", source=tmp_path / "full", out=out, size=8, workers=2)
    assert result.samples == {"train": 700, "val": 10}
    assert staged["train_data_batch_1.npz"] == (out / "train_data_batch_1.npz").stat().st_ino, (
        "staged batches were kept"
    )


def wait_for_stop_handlers(pid: int) -> None:
    """Until the process catches SIGHUP, the last of the stops the entry point takes (the kernel's
    SigCgt mask in /proc): from then on, our code answers every stop."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        caught = int(next(line for line in status.splitlines() if line.startswith("SigCgt:")).split()[1], 16)
        if caught & (1 << (signal.SIGHUP - 1)):
            return
        time.sleep(0.001)
    raise AssertionError("the entry point never took the stop signals")


@pytest.mark.slow
@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_stop_at_any_moment_is_one_line_and_128_plus_signal(official_root: Path, tmp_path: Path, number: int) -> None:
    """From the first moment our code runs (the entry point's handlers in: before that only
    Python's own start-up runs, where no code of ours can answer), through Typer reading the
    options, to the work itself."""
    root = copy_of(official_root, tmp_path / "root")
    command = ["prepare", "--root", str(root), "--size", "32", "--redo"]
    for delay in (0.0, 0.08, 0.15, 0.25, 0.4, 0.7):  # after the handlers are in: 0, the moment they are
        process = imagenet_process(*command)
        # Counted from the handlers, not the start: on a loaded machine Python's own start-up can
        # outlast a fixed delay, and a stop then is the interpreter's to answer, not ours.
        wait_for_stop_handlers(process.pid)
        time.sleep(delay)
        process.send_signal(number)
        _, stderr = process.communicate(timeout=60)
        if process.returncode == 0:  # finished before the signal came
            continue
        assert process.returncode == 128 + number, (delay, stderr)
        assert "Traceback" not in stderr, (delay, stderr)
        what = "interrupted" if number == signal.SIGINT else f"stopped by {signal.Signals(number).name}"
        assert stderr.splitlines()[-1].startswith(f"imagenet: {what} — try the same command again"), (delay, stderr)
    prepare(root, ["32"])
    assert verify(root, paths=[root / "32"]).ok


def test_a_signal_the_process_was_started_ignoring_stays_ignored(official_root: Path, tmp_path: Path) -> None:
    """``nohup imagenet prepare &``: the SIGHUP of a closed terminal must not stop the run."""
    copy_of(official_root, tmp_path)
    command = ["prepare", "--root", str(tmp_path), "--size", "32"]
    process = imagenet_process(*command, preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    for delay in (0.05, 0.3, 0.6):
        time.sleep(delay)
        if process.poll() is None:
            process.send_signal(signal.SIGHUP)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert verify(tmp_path, paths=[tmp_path / "32"]).ok


def test_a_stop_while_workers_are_forked_is_held_and_delivered_after() -> None:
    """Raised inside fork's own callbacks, a stop would be swallowed and the run go on: while the
    pool forks, the handlers note a stop, and it comes as soon as the workers are up."""
    from imagenet_cli import stops

    got: list[int] = []

    def handler(number: int, _frame: object) -> None:
        if not stops.holding(number):
            got.append(number)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        with stops.held():
            signal.raise_signal(signal.SIGTERM)
            assert got == [], "held back"
        assert got == [signal.SIGTERM], "delivered once the block ends"
    finally:
        signal.signal(signal.SIGTERM, previous)
