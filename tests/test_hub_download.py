"""``download --source hf`` through the real ``huggingface_hub`` client, against a hub on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imagenet_cli import archives
from imagenet_cli.download import download_sample
from imagenet_cli.errors import EXIT_ERROR
from imagenet_cli.records import DownloadRecord

from .conftest import SMALL, imagenet, imagenet_process
from .servers import FakeHub

pytest.importorskip("huggingface_hub")

WANTED = [*archives.HUB_TRAIN, archives.HUB_VAL]


@pytest.fixture(scope="module")
def hub_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("hub-files")
    download_sample(root, layout="hf", **SMALL)
    return {name: (root / "downloads" / name).read_bytes() for name in (*WANTED, archives.HUB_TEST)}


@pytest.fixture
def hub_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """A clean Hugging Face home: no cached token, no cache; the token given by HF_TOKEN."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return {"HF_TOKEN": "hf_good"}


def test_the_dataset_files_arrive_checked_and_recorded_and_a_rerun_keeps_them(
    hub_files: dict[str, bytes], hub_env: dict[str, str], tmp_path: Path
) -> None:
    with FakeHub(hub_files) as hub:
        env = {**hub_env, "HF_ENDPOINT": hub.base_url.split("/datasets/")[0]}
        result = imagenet("download", "--source", "hf", "--root", str(tmp_path), "--json", env=env)
        assert result.exit_code == 0, result.output
        assert [f["status"] for f in json.loads(result.stdout)["files"]] == ["downloaded"] * len(WANTED)
        for name in WANTED:
            path = tmp_path / "downloads" / name
            assert path.read_bytes() == hub_files[name]
            record = DownloadRecord.read(path)
            assert record.source == "hf" and record.details == {
                "repo": "ILSVRC/imagenet-1k",
                "revision": "main",
                "commit": FakeHub.COMMIT,
                "sha256": hashlib.sha256(hub_files[name]).hexdigest(),
            }
            assert record.url == f"{hub.base_url}{name}"
        assert sorted(p.name for p in (tmp_path / "downloads").iterdir() if not p.name.startswith(".")) == sorted(
            [*WANTED, *(f"{name}.record.json" for name in WANTED)]
        ), "nothing left behind"
        fetched = len([r for r in hub.requests if r[0] == "GET"])
        again = imagenet("download", "--source", "hf", "--root", str(tmp_path), "--json", env=env)
        assert {f["status"] for f in json.loads(again.stdout)["files"]} == {"kept"}
        assert len([r for r in hub.requests if r[0] == "GET"]) == fetched, "kept without a transfer"
    prepared = imagenet("prepare", "--root", str(tmp_path), "--size", "32")
    assert prepared.exit_code == 0 and "Hugging Face hub" in prepared.stdout


@pytest.mark.parametrize(
    ("token", "accepted", "said"),
    [
        ("hf_wrong", True, "without a valid token: log in (hf auth login, or HF_TOKEN)"),
        ("hf_good", False, "its terms are not accepted for this account; accept them on"),
    ],
)
def test_a_refusal_is_one_line_naming_the_datasets_page(
    hub_files: dict[str, bytes], hub_env: dict[str, str], tmp_path: Path, token: str, accepted: bool, said: str
) -> None:
    with FakeHub(hub_files) as hub:
        hub.terms_accepted = accepted
        env = {"HF_TOKEN": token, "HF_ENDPOINT": hub.base_url.split("/datasets/")[0]}
        result = imagenet("download", "--source", "hf", "--root", str(tmp_path), "--files", archives.HUB_VAL, env=env)
    assert result.exit_code == EXIT_ERROR, result.output
    [line] = result.stderr.strip().splitlines()
    assert said in line and "https://huggingface.co/datasets/ILSVRC/imagenet-1k" in line
    assert "hf_good" not in line and "hf_wrong" not in line


def test_bytes_that_are_not_the_published_sha256_are_refused(
    hub_files: dict[str, bytes], hub_env: dict[str, str], tmp_path: Path
) -> None:
    with FakeHub(hub_files) as hub:
        hub.sha256[archives.HUB_VAL] = "0" * 64
        env = {**hub_env, "HF_ENDPOINT": hub.base_url.split("/datasets/")[0]}
        result = imagenet("download", "--source", "hf", "--root", str(tmp_path), "--files", archives.HUB_VAL, env=env)
    assert result.exit_code == EXIT_ERROR, result.output
    assert f"{archives.HUB_VAL} has sha256" in result.stderr and "the expected sha256 is 0000" in result.stderr
    assert not (tmp_path / "downloads" / archives.HUB_VAL).exists()


def test_a_revision_is_asked_for_by_name(hub_files: dict[str, bytes], hub_env: dict[str, str], tmp_path: Path) -> None:
    with FakeHub({archives.HUB_VAL: hub_files[archives.HUB_VAL]}, revision="v1.0") as hub:
        env = {**hub_env, "HF_ENDPOINT": hub.base_url.split("/datasets/")[0]}
        command = ["download", "--source", "hf", "--root", str(tmp_path), "--files", archives.HUB_VAL]
        assert imagenet(*command, env=env).exit_code == EXIT_ERROR, "main is not there"
        assert imagenet(*command, "--revision", "v1.0", env=env).exit_code == 0
    assert (tmp_path / "downloads" / archives.HUB_VAL).read_bytes() == hub_files[archives.HUB_VAL]
    assert DownloadRecord.read(tmp_path / "downloads" / archives.HUB_VAL).details["revision"] == "v1.0"


def test_a_file_the_hub_changed_is_fetched_again_and_an_unchanged_one_kept_anywhere(
    hub_files: dict[str, bytes], hub_env: dict[str, str], tmp_path: Path
) -> None:
    command = ["download", "--source", "hf", "--root", str(tmp_path), "--files", archives.HUB_VAL, "--json"]
    old, new = hub_files[archives.HUB_VAL], hub_files[archives.HUB_TEST]
    with FakeHub({archives.HUB_VAL: old}) as hub:
        env = {**hub_env, "HF_ENDPOINT": hub.base_url.split("/datasets/")[0]}
        assert imagenet(*command, env=env).exit_code == 0
    with FakeHub({archives.HUB_VAL: old}) as mirror:  # the same file from another address: kept as it is
        env = {**hub_env, "HF_ENDPOINT": mirror.base_url.split("/datasets/")[0]}
        kept = imagenet(*command, env=env)
        assert json.loads(kept.stdout)["files"][0]["status"] == "kept", kept.output
        assert not [r for r in mirror.requests if r[0] == "GET"]
        mirror.replace(archives.HUB_VAL, new)  # main moves on: the hub publishes other bytes under the name
        mirror.sha256[archives.HUB_VAL] = hashlib.sha256(new).hexdigest()
        again = imagenet(*command, env=env)
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["files"][0]["status"] == "downloaded"
    assert f"{archives.HUB_VAL} changed at" in again.stderr
    path = tmp_path / "downloads" / archives.HUB_VAL
    assert path.read_bytes() == new and DownloadRecord.read(path).details["sha256"] == hashlib.sha256(new).hexdigest()


def test_a_download_killed_mid_file_resumes_where_it_stopped(
    hub_files: dict[str, bytes], hub_env: dict[str, str], tmp_path: Path
) -> None:
    data = hub_files[archives.HUB_VAL]
    with FakeHub({archives.HUB_VAL: data}) as hub:
        hub.faults.rate = len(data) / 4  # four seconds for the whole file
        env = {**os.environ, **hub_env, "HF_ENDPOINT": hub.base_url.split("/datasets/")[0], "IMAGENET_NO_PROGRESS": "1"}
        # One connection, killed past its first 1 MiB chunk: the chunks the journal has are kept.
        command = ["download", "--source", "hf", "--root", str(tmp_path), "--files", archives.HUB_VAL]
        command += ["--connections", "1"]
        killed = imagenet_process(*command, env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while hub.sent_bytes < len(data) * 3 // 5:
            assert time.monotonic() < deadline and killed.poll() is None
            time.sleep(0.05)
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        sent_before = hub.settled_bytes()
        hub.faults.rate = None
        assert imagenet(*command, env=hub_env | {"HF_ENDPOINT": env["HF_ENDPOINT"]}).exit_code == 0
        assert hub.sent_bytes - sent_before < len(data) - (1 << 19), "the first chunk was not fetched again"
        assert any(r[0] == "GET" and r[2] for r in hub.requests), "with a Range request"
    assert (tmp_path / "downloads" / archives.HUB_VAL).read_bytes() == data


def test_without_its_extra_the_hub_is_one_line_naming_it(tmp_path: Path) -> None:
    from imagenet_cli.errors import install_command

    program = (
        "import sys; sys.modules['huggingface_hub'] = None; sys.argv[0] = 'imagenet'\n"
        "from imagenet_cli.cli.app import main; main()"
    )
    arguments = ["download", "--source", "hf", "--root", str(tmp_path)]
    completed = subprocess.run([sys.executable, "-c", program, *arguments], capture_output=True, text=True)
    assert completed.returncode == 1 and len(completed.stderr.strip().splitlines()) == 1
    assert completed.stderr.startswith(
        f"imagenet: error: download --source hf needs huggingface_hub: {install_command('hf')} — try"
    )


def test_the_cli_writes_the_sample_in_the_hubs_layout(tmp_path: Path) -> None:
    made = imagenet("download", "--source", "sample", "--layout", "hf", "--per-class", "2", "--root", str(tmp_path))
    assert made.exit_code == 0, made.output
    assert sorted(p.name for p in (tmp_path / "downloads").glob("*.tar.gz")) == sorted([*WANTED, archives.HUB_TEST])
