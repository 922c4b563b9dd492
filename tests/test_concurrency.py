"""Two processes on one root, a full disk, a read-only mount: each leaves a state the next run repairs.

Real processes, a real loopback server, and real mounts (a small tmpfs, a read-only bind mount)
where the test may make them; skipped where it may not.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from imagenet_cli import archives, atomic, locks, manifest, sample
from imagenet_cli.download import download_official, download_sample
from imagenet_cli.errors import InsufficientSpaceError, LockHeldError
from imagenet_cli.records import DownloadRecord, read_record, record_path
from imagenet_cli.subsets import subset
from imagenet_cli.trees import prepare
from imagenet_cli.trees.resize import Recipe

from .builders import prepared_by
from .conftest import SMALL, imagenet, imagenet_process
from .servers import FileServer


def mount(*args: str) -> None:
    if shutil.which("mount") is None:
        pytest.skip("no mount command here")
    completed = subprocess.run(["mount", *args], capture_output=True, text=True)
    if completed.returncode != 0:
        pytest.skip(f"cannot mount here: {completed.stderr.strip()}")


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 10 MiB tmpfs: the sample's train tar (9.3 MB) fits, the rest does not."""
    point = tmp_path / "tmpfs"
    point.mkdir()
    mount("-t", "tmpfs", "-o", "size=10m", "tmpfs", str(point))
    yield point
    subprocess.run(["umount", str(point)], check=True)


@pytest.fixture
def read_only(tmp_path: Path) -> Iterator[Callable[[Path], Path]]:
    """``read_only(path)`` bind-mounts ``path`` read-only at a new place and returns that place."""
    points: list[Path] = []

    def make(path: Path) -> Path:
        point = tmp_path / f"ro{len(points)}"
        point.mkdir()
        mount("--bind", str(path), str(point))
        points.append(point)
        mount("-o", "remount,ro,bind", str(point))
        return point

    yield make
    for point in reversed(points):
        subprocess.run(["umount", str(point)], check=True)


# --- locks -----------------------------------------------------------------------------------


@contextlib.contextmanager
def held_by_another_process(target: Path) -> Iterator[int]:
    """Another process holding ``target``'s write lock until the block ends; yields its PID."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import time; from pathlib import Path; from imagenet_cli import locks\n"
                f"with locks.writing(Path({str(target)!r})):\n print('held', flush=True); time.sleep(60)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_a_held_lock_names_its_holder_and_no_wait_refuses(tmp_path: Path) -> None:
    target = tmp_path / "224"
    with held_by_another_process(target) as pid:
        with pytest.raises(LockHeldError, match=f"PID {pid}, which is writing {target}"):
            with locks.writing(target, wait=False):
                pass
        with pytest.raises(LockHeldError):
            with locks.reading(target, wait=False):
                pass
    with locks.writing(target, wait=False):  # the kernel dropped the dead holder's lock
        assert locks.holder(target) is not None


def test_no_wait_on_the_cli_is_one_line_and_exit_1(official_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(official_root / "downloads", root / "downloads")
    with held_by_another_process(root / "64") as pid:
        result = imagenet("prepare", "--root", str(root), "--size", "64", "--no-wait")
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert line.startswith(f"imagenet: error: {root / '64'} is busy: PID {pid}, which is writing")


def test_verify_of_a_tree_being_written_says_so_never_all_good(official_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(official_root / "downloads", root / "downloads")
    prepare(root, ["64"], workers=2)  # complete on disk: only the lock says it is being rewritten
    with held_by_another_process(root / "64") as pid:
        result = imagenet("verify", str(root / "64"), "--root", str(root))
    assert result.exit_code == 3, result.output
    assert f"unfinished: {root / '64'}: being written by PID {pid}" in result.stdout
    assert "all good" not in result.stdout
    assert imagenet("verify", str(root / "64"), "--root", str(root)).exit_code == 0


@pytest.mark.slow
def test_two_prepares_of_one_tree_make_it_once(official_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(official_root / "downloads", root / "downloads")
    clean = tmp_path / "clean"
    shutil.copytree(official_root / "downloads", clean / "downloads")
    prepare(clean, ["64"], workers=2)

    args = ("prepare", "--root", str(root), "--size", "64", "--workers", "1", "--json")
    with locks.writing(root / "64"):  # both start while the tree is busy, so they surely overlap
        first, second = imagenet_process(*args), imagenet_process(*args)
        time.sleep(2)
    outputs = [p.communicate(timeout=120) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outputs
    runs = sorted(json.loads(out)["shards_run"] for out, _ in outputs)
    assert runs == [0, 26], "one made the tree, the other found it done"
    assert all(f"waiting for PID {os.getpid()}, which is writing {root / '64'}" in err for _, err in outputs)
    assert (root / "64" / "manifest.tsv").read_text() == (clean / "64" / "manifest.tsv").read_text()


@pytest.mark.slow
def test_two_prepares_with_other_options_write_two_trees_never_one_mixed(official_root: Path, tmp_path: Path) -> None:
    """Every option off its default is in the tree's name: two recipes at once never meet in one folder."""
    root = tmp_path / "root"
    shutil.copytree(official_root / "downloads", root / "downloads")
    with locks.writing(root / "64"), locks.writing(root / "64-q50"):  # both start while their trees are busy
        processes = [
            imagenet_process("prepare", "--root", str(root), "--size", "64", "--quality", q, "--workers", "1")
            for q in ("90", "50")
        ]
        time.sleep(2)
    outputs = [p.communicate(timeout=120) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    clean = tmp_path / "clean"
    shutil.copytree(official_root / "downloads", clean / "downloads")
    for quality, tree in ((90, "64"), (50, "64-q50")):
        prepare(clean, Recipe(("64",), quality=quality), workers=1)
        assert prepared_by(root / tree).quality == quality
        assert (root / tree / "manifest.tsv").read_text() == (clean / tree / "manifest.tsv").read_text()


def test_a_subset_waits_for_the_prepare_writing_its_tree(official_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(official_root / "downloads", root / "downloads")
    prepare(root, ["64"], workers=2)
    with locks.writing(root / "64"):
        with pytest.raises(LockHeldError):
            subset(root, classes="3", wait=False)
    assert subset(root, classes="3").images == {"train": 9, "val": 6}


def test_two_identical_subsets_make_one(official_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(official_root / "downloads", root / "downloads")
    prepare(root, ["64"], workers=2)
    args = ("subset", "--root", str(root), "--classes", "5", "--json")
    processes = [imagenet_process(*args), imagenet_process(*args)]
    outputs = [p.communicate(timeout=60) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    assert sorted(json.loads(out)["status"] for out, _ in outputs) == ["kept", "written"]


# --- downloads -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def train_tar(official_root: Path) -> bytes:
    return (official_root / "downloads" / archives.TRAIN_TAR).read_bytes()


def sums_for(path: Path, files: dict[str, bytes]) -> Path:
    path.write_text("".join(f"{hashlib.md5(d).hexdigest()}  {n}\n" for n, d in files.items()))
    return path


@pytest.mark.slow
def test_two_downloads_of_one_file_fetch_it_once(train_tar: bytes, tmp_path: Path) -> None:
    files = {archives.TRAIN_TAR: train_tar}
    sums = sums_for(tmp_path / "MD5SUMS", files)
    with FileServer(files) as server:
        args = (
            "download",
            "--source",
            "official",
            "--files",
            archives.TRAIN_TAR,
            "--checksums",
            str(sums),
            "--root",
            str(tmp_path / "root"),
            "--base-url",
            server.base_url,
            "--json",
        )
        with locks.writing(tmp_path / "root" / "downloads" / archives.TRAIN_TAR):  # both start while it is busy
            first, second = imagenet_process(*args), imagenet_process(*args)
            time.sleep(5)  # long enough for both to start and reach the lock on a loaded 2-core machine
        outputs = [p.communicate(timeout=120) for p in (first, second)]
        sent = server.settled_bytes()
    assert [p.returncode for p in (first, second)] == [0, 0], outputs
    statuses = sorted(json.loads(out)["files"][0]["status"] for out, _ in outputs)
    assert statuses == ["downloaded", "kept"]
    assert all("waiting for PID" in err for _, err in outputs)
    assert sent <= len(train_tar) + 2, "the bytes crossed the wire once (plus a probe byte)"
    downloads = tmp_path / "root" / "downloads"
    assert (downloads / archives.TRAIN_TAR).read_bytes() == train_tar
    left = sorted(p.name for p in downloads.iterdir() if not p.name.startswith("."))
    assert left == [archives.TRAIN_TAR, archives.TRAIN_TAR + ".record.json"], "no stale .part or .part.json"


def test_a_mirror_download_is_kept_on_a_rerun_without_its_checksums(train_tar: bytes, tmp_path: Path) -> None:
    files = {archives.TRAIN_TAR: train_tar}
    root = tmp_path / "root"
    with FileServer(files) as server:
        download_official(
            root, files=[archives.TRAIN_TAR], base_url=server.base_url, checksums=sums_for(tmp_path / "MD5SUMS", files)
        )
        before = server.settled_bytes()
        again = download_official(root, files=[archives.TRAIN_TAR], base_url=server.base_url)
        assert server.settled_bytes() == before, "nothing fetched"
    assert [f.status for f in again.files] == ["kept"]


# --- a full disk -------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_full_disk_leaves_nothing_under_a_final_name_and_the_rerun_finishes(
    small_tmpfs: Path, tmp_path: Path
) -> None:
    with pytest.raises(InsufficientSpaceError, match=f"the disk holding {small_tmpfs / 'downloads'} is full") as raised:
        download_sample(small_tmpfs, **SMALL)
    assert isinstance(raised.value.__cause__, OSError) and raised.value.__cause__.errno == errno.ENOSPC
    downloads = small_tmpfs / "downloads"
    for path in downloads.iterdir():
        if not path.name.startswith(".") and not path.name.endswith(".record.json"):
            assert read_record(path) is not None and DownloadRecord.read(path).matches(path), (
                f"{path.name} has its record"
            )
    assert not list(downloads.glob(".*.tmp")), "the partial archive is gone"
    assert not (downloads / archives.VAL_TAR).exists()

    subprocess.run(["mount", "-o", "remount,size=40m", str(small_tmpfs)], check=True)  # space freed
    result = download_sample(small_tmpfs, **SMALL)
    reference = tmp_path / "reference"
    download_sample(reference, **SMALL)
    for name in sample.OFFICIAL_FILES:
        assert (downloads / name).read_bytes() == (reference / "downloads" / name).read_bytes()
        assert DownloadRecord.read(downloads / name).matches(downloads / name)
    assert {f.status for f in result.files} <= {"written", "kept"}


def test_scratch_files_on_a_full_disk_are_a_full_disk_and_are_removed(small_tmpfs: Path) -> None:
    out = small_tmpfs / "export"
    with pytest.raises(InsufficientSpaceError, match=f"the disk holding {out} is full: the scratch files of sort"):
        with atomic.scratch_folder(out / "sort") as scratch:
            (scratch / "00000").write_bytes(bytes(11 << 20))
    assert not any(out.iterdir()), "nothing left"


def test_export_downsampled_on_a_full_disk_says_so_every_time_and_the_rerun_leaves_no_staging(
    official_root: Path, tmp_path: Path
) -> None:
    pytest.importorskip("numpy")
    from imagenet_cli.exports import export

    root = tmp_path / "root"
    shutil.copytree(official_root / "downloads", root / "downloads")
    prepare(root, ["full"], workers=2)
    point = tmp_path / "small"
    point.mkdir()
    mount("-t", "tmpfs", "-o", "size=300k", "tmpfs", str(point))  # the staged batches do not fit
    try:
        for _ in range(2):  # the re-run on a disk still full says the same
            result = imagenet(
                *[
                    "export",
                    "downsampled",
                    "--root",
                    str(root),
                    "--from",
                    str(root / "full"),
                    "--out",
                    str(point / "ds"),
                ],
                env={"IMAGENET_NO_PROGRESS": "1"},
            )
            assert result.exit_code == 1, result.output
            [line] = result.stderr.splitlines()
            assert f"the disk holding {point / 'ds'}" in line and "is full" in line and "freeing disk space" in line, (
                line
            )
        subprocess.run(["mount", "-o", "remount,size=40m", str(point)], check=True)  # space freed
        export(root, "downsampled", source=root / "full", out=point / "ds")
        clean = export(root, "downsampled", source=root / "full", out=tmp_path / "clean")
        assert not (point / "ds" / ".staging").exists() and not list((point / "ds").rglob("*.tmp"))
        for shard in clean.shards:
            assert (point / "ds" / shard.file).read_bytes() == (clean.path / shard.file).read_bytes()
    finally:
        subprocess.run(["umount", str(point)], check=True)


# --- a read-only root --------------------------------------------------------------------------


def test_verify_and_a_finished_prepare_on_a_read_only_root(
    official_root: Path, tmp_path: Path, read_only: Callable[[Path], Path]
) -> None:
    root = tmp_path / "root"
    shutil.copytree(official_root / "downloads", root / "downloads")
    prepare(root, ["64"], workers=2)
    subset(root, classes="3")
    devkit = root / "downloads" / archives.DEVKIT
    os.utime(devkit, ns=(0, 10**18))  # a stale record: verify once re-stamped it, a write
    recorded = record_path(devkit).read_text()
    mounted = read_only(root)

    result = imagenet("verify", "--root", str(mounted), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and len(report["checks"]) == 6  # 4 archives, the tree, the subset
    assert record_path(devkit).read_text() == recorded

    again = imagenet("prepare", "--root", str(mounted), "--size", "64", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["shards_run"] == 0
    assert manifest.TreeInfo.read(mounted / "64").splits["train"]["images"] == 39
