"""``prepare --dask``: the same tree on a Dask cluster as on the local pool, on 127.0.0.1.

A LocalCluster of two single-threaded worker processes for the equality tests; a scheduler and
workers started as separate processes for the worker killed by PID.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

distributed = pytest.importorskip("distributed")

from imagenet_cli import manifest  # noqa: E402
from imagenet_cli.download import download_evalset_sample  # noqa: E402
from imagenet_cli.errors import ClusterError, ShardCrashError, install_command  # noqa: E402
from imagenet_cli.trees import cluster, prepare  # noqa: E402
from imagenet_cli.trees.resize import Filter, Recipe  # noqa: E402

from .builders import tree_from_official  # noqa: E402


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
    ) as local:
        yield local.scheduler_address


def copy_downloads(source_root: Path, root: Path) -> Path:
    shutil.copytree(source_root / "downloads", root / "downloads")
    return root


def same_trees(a: Path, b: Path, sizes: tuple[str, ...] = ("64", "224")) -> None:
    for size in sizes:
        assert (a / size / manifest.MANIFEST).read_text() == (b / size / manifest.MANIFEST).read_text(), size
        for labels in ("train.txt", "val.txt"):
            assert (a / size / labels).read_text() == (b / size / labels).read_text()


@pytest.mark.parametrize("layout", ["official", "kaggle"])
def test_the_cluster_makes_the_local_pools_tree(
    layout: str, official_root: Path, kaggle_root: Path, scheduler: str, tmp_path: Path
) -> None:
    source = official_root if layout == "official" else kaggle_root
    local = copy_downloads(source, tmp_path / "local")
    prepare(local, ["64", "224"], workers=2)
    remote = copy_downloads(source, tmp_path / "dask")
    result = prepare(remote, ["64", "224"], dask=scheduler)
    assert result.shards_run == 26
    same_trees(local, remote)
    again = prepare(remote, ["64", "224"], dask=scheduler)
    assert again.shards_run == 0 and again.shards_done_before == 26


def test_the_cluster_prepares_from_an_image_folder(official_root: Path, scheduler: str, tmp_path: Path) -> None:
    source = tree_from_official(official_root / "downloads", tmp_path / "source", with_manifest=False)
    prepare(tmp_path / "local", ["64", "224"], source=source, workers=2)
    prepare(tmp_path / "dask", ["64", "224"], source=source, dask=scheduler)
    same_trees(tmp_path / "local", tmp_path / "dask")


def test_the_cluster_prepares_an_evaluation_set_as_the_local_pool_does(scheduler: str, tmp_path: Path) -> None:
    """Sketch's zip members and A's tar members by offset on the workers; V2's gzip stream here."""
    local, remote = tmp_path / "local", tmp_path / "dask"
    for name in ("imagenet-sketch", "imagenet-a", "imagenet-v2"):
        download_evalset_sample(local, name)
        prepare(local, ["64"], dataset=name, workers=2)
        download_evalset_sample(remote, name)
        prepare(remote, ["64"], dataset=name, dask=scheduler)
    local, remote = local / "64", remote / "64"
    assert (local / manifest.MANIFEST).read_text() == (remote / manifest.MANIFEST).read_text()
    assert (local / "imagenet-sketch.txt").read_text() == (remote / "imagenet-sketch.txt").read_text()


def test_a_worker_on_another_version_or_without_the_inputs_is_named(scheduler: str, tmp_path: Path) -> None:
    with distributed.Client(scheduler) as client:
        with pytest.raises(
            ClusterError, match=r"Dask worker tcp://127\.0\.0\.1:\d+ \(on .+\) runs imagenet-cli .+, the client 0\.0\.0"
        ):
            cluster.check_workers(client, "0.0.0", inputs=[], outputs=[])
        from imagenet_cli import __version__

        missing = tmp_path / "not-mounted" / "ILSVRC2012_img_train.tar"
        with pytest.raises(ClusterError, match=f"cannot read {missing}"):
            cluster.check_workers(client, __version__, inputs=[missing], outputs=[])
        assert cluster.check_workers(client, __version__, inputs=[], outputs=[tmp_path / "out"]) == 2


def test_without_the_extra_dask_is_one_line_naming_it(official_root: Path, tmp_path: Path) -> None:
    root = copy_downloads(official_root, tmp_path / "root")
    program = (
        "import sys; sys.modules['distributed'] = None; sys.argv[0] = 'imagenet'\n"
        "from imagenet_cli.cli.app import main; main()"
    )
    completed = subprocess.run(
        [sys.executable, "-c", program, "prepare", "--root", str(root), "--dask", "local"],
        capture_output=True,
        text=True,
        env={**os.environ, "IMAGENET_NO_PROGRESS": "1"},
    )
    assert completed.returncode == 1
    assert completed.stderr.strip().startswith(
        f"imagenet: error: --dask needs Dask's distributed package: {install_command('dask')}"
    )


@pytest.mark.slow
def test_a_worker_killed_mid_run_still_gives_the_identical_tree(imagenette_root: Path, tmp_path: Path) -> None:
    local = copy_downloads(imagenette_root, tmp_path / "local")
    prepare(local, Recipe(("64",), filter=Filter.lanczos), workers=2)

    remote = copy_downloads(imagenette_root, tmp_path / "dask")
    file = tmp_path / "scheduler.json"
    quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(file),
            ],
            **quiet,
        )
    ]
    try:
        while not file.exists():
            time.sleep(0.1)
        for _ in range(2):
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "distributed.cli.dask_worker",
                        "--scheduler-file",
                        str(file),
                        "--nthreads",
                        "1",
                        "--no-nanny",
                        "--no-dashboard",
                        "--host",
                        "127.0.0.1",
                    ],
                    **quiet,
                )
            )
        address = json.loads(file.read_text())["address"]
        with distributed.Client(address) as client:
            client.wait_for_workers(2, timeout=60)
            pids = list(client.run(os.getpid).values())
        command = [
            sys.executable,
            "-m",
            "imagenet_cli",
            "prepare",
            "--root",
            str(remote),
            "--size",
            "64",
            "--filter",
            "lanczos",
            "--dask",
            address,
            "--json",
        ]
        run = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "IMAGENET_NO_PROGRESS": "1"},
        )
        markers = remote / "64-lanczos" / ".shards"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list(markers.glob("*-*.json"))) < 3:
            time.sleep(0.02)
        os.kill(pids[0], signal.SIGKILL)
        stdout, stderr = run.communicate(timeout=180)
        assert run.returncode == 0, stderr
        assert json.loads(stdout)["shards_run"] == 20
    finally:
        for process in processes:
            process.kill()
            process.wait()
    assert (remote / "64-lanczos" / manifest.MANIFEST).read_text() == (
        local / "64-lanczos" / manifest.MANIFEST
    ).read_text()


@pytest.mark.slow
def test_a_shard_that_kills_every_worker_is_named_and_the_rest_are_done(official_root: Path, tmp_path: Path) -> None:
    """An image whose decode needs more memory than a worker may use: the nanny kills each worker
    that tries it, and Dask gives the task up (KilledWorker)."""
    from PIL import Image

    source = tree_from_official(official_root / "downloads", tmp_path / "source", with_manifest=False)
    big = source / "train" / "n01440764" / "n01440764_99999.JPEG"
    with io.BytesIO() as data:
        Image.new("RGB", (9400, 9400), (90, 120, 30)).save(data, "PNG")  # 265 MB decoded, 260 KB stored
        big.write_bytes(data.getvalue())
    import dask

    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        with distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",
            memory_limit="250MiB",
        ) as local:
            with pytest.raises(ShardCrashError) as raised:
                prepare(tmp_path / "root", ["64"], source=source, dask=local.scheduler_address)
    # Dask blames every task that was on a worker when it died, so a queued neighbour may be named too.
    named = str(raised.value).split(": ", 1)[1].split(";")[0].split(", ")
    assert "train-n01440764" in named and "every other shard is done" in str(raised.value)
    markers = {p.stem for p in (tmp_path / "root" / "64" / ".shards").glob("*-*.json")}
    assert len(markers) == 26 - len(named) and not markers & set(named)

    big.unlink()
    result = prepare(tmp_path / "root", ["64"], source=source, workers=2)
    assert result.shards_run == len(named) and result.trees[0].failures == []


@pytest.mark.slow
def test_ctrl_c_cancels_the_cluster_work_and_exits_130(imagenette_root: Path, tmp_path: Path) -> None:
    """Ctrl-C as a terminal sends it: to every process of the group, the cluster's workers too."""
    from .conftest import copy_of, imagenet_process

    copy_of(imagenette_root, tmp_path)
    command = [
        "prepare",
        "--root",
        str(tmp_path),
        "--size",
        "64",
        "--filter",
        "lanczos",
        "--dask",
        "local:2",
    ]
    process = imagenet_process(*command, start_new_session=True)
    markers = tmp_path / "64-lanczos" / ".shards"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and len(list(markers.glob("*-*.json"))) < 2:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.strip() == "imagenet: interrupted — try the same command again: finished work is kept", stderr
    result = prepare(tmp_path, Recipe(("64",), filter=Filter.lanczos), workers=2)
    assert result.shards_done_before >= 2 and result.shards_done_before + result.shards_run == 20
