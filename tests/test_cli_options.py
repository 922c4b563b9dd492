"""Every option not exercised elsewhere, through the real CLI, with its effect checked."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from imagenet_cli import archives, hashing
from imagenet_cli.records import DownloadRecord, read_record

from .conftest import imagenet


@pytest.fixture
def root(official_root: Path, tmp_path: Path) -> Path:
    shutil.copytree(official_root / "downloads", tmp_path / "downloads")
    return tmp_path


def test_download_sample_layout_and_seed(tmp_path: Path) -> None:
    result = imagenet(
        "download",
        "--source",
        "sample",
        "--root",
        str(tmp_path),
        "--layout",
        "kaggle-2019",
        "--seed",
        "3",
        "--classes",
        "tench",
        "--per-class",
        "1",
        "--val-per-class",
        "1",
        "--test-images",
        "0",
    )
    assert result.exit_code == 0, result.output
    path = tmp_path / "downloads" / archives.KAGGLE_ZIP
    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == ["imagenet_object_localization_patched2019.tar.gz"]
    assert (
        DownloadRecord.read(path).details["seed"] == 3 and DownloadRecord.read(path).details["layout"] == "kaggle-2019"
    )


def test_verify_algo_and_rehash(root: Path, tmp_path: Path) -> None:
    val = root / "downloads" / archives.VAL_TAR
    sums = tmp_path / "SUMS"
    sums.write_text(f"{hashing.hash_file(val, ['sha256'])['sha256']}  {val.name}\n")
    result = imagenet("verify", str(val), "--checksums", str(sums), "--algo", "sha256", "--json")
    assert result.exit_code == 0, result.output
    assert "sha256 against the checksums file" in json.loads(result.stdout)["checks"][0]["checked"][0]
    wrong = imagenet("verify", str(val), "--checksums", str(sums), "--algo", "md5")
    assert wrong.exit_code == 3 and "md5 is" in wrong.stdout  # the sha256 digest read as an md5 cannot match
    trusted = json.loads(imagenet("verify", str(val), "--json").stdout)["checks"][0]["checked"][0]
    reread = json.loads(imagenet("verify", str(val), "--rehash", "--json").stdout)["checks"][0]["checked"][0]
    assert trusted.startswith("digests as recorded") and not reread.startswith("digests as recorded")


def test_prepare_format_quality_no_upscale_splits_into(root: Path, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere"
    result = imagenet(
        "prepare",
        "--root",
        str(root),
        "--size",
        "600",
        "--format",
        "png",
        "--no-upscale",
        "--splits",
        "val",
        "--into",
        str(out),
        "--workers",
        "1",
    )
    assert result.exit_code == 0, result.output
    tree = out / "600-png-noupscale"
    files = sorted(tree.glob("*/*/*"))
    assert files and {p.parts[-3] for p in files} == {"val"} and all(p.suffix == ".png" for p in files)
    with Image.open(files[0]) as image:
        assert image.format == "PNG" and min(image.size) < 600  # small images kept their size
    low = imagenet(
        "prepare", "--root", str(root), "--size", "64", "--quality", "20", "--splits", "val", "--workers", "1"
    )
    high = imagenet(
        "prepare",
        "--root",
        str(root),
        "--size",
        "64",
        "--quality",
        "95",
        "--splits",
        "val",
        "--workers",
        "1",
        "--into",
        str(tmp_path / "high"),
    )
    assert low.exit_code == high.exit_code == 0

    def size(tree: Path) -> int:
        return sum(p.stat().st_size for p in tree.glob("val/*/*"))

    assert size(root / "64-q20") < size(tmp_path / "high" / "64-q95") / 2


def test_subset_options(root: Path, tmp_path: Path) -> None:
    assert imagenet("prepare", "--root", str(root), "--size", "32", "--workers", "1").exit_code == 0
    out = tmp_path / "mine"
    result = imagenet(
        "subset",
        "--root",
        str(root),
        "--from",
        str(root / "32"),
        "--classes",
        "3",
        "--per-class",
        "5",
        "--allow-short",
        "--val-per-class",
        "1",
        "--seed",
        "2",
        "--link",
        "copy",
        "--out",
        str(out),
        "--json",
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["images"] == {"train": 9, "val": 3} and len(summary["short_classes"]) == 3
    assert all(not p.is_symlink() for p in out.glob("*/*/*"))
    assert json.loads((out / "subset.json").read_text())["arguments"]["seed"] == 2


def test_subset_label_fraction_on_a_tree_without_those_files(root: Path) -> None:
    assert imagenet("prepare", "--root", str(root), "--size", "32", "--workers", "1").exit_code == 0
    refused = imagenet("subset", "--root", str(root), "--images", "1percent")
    assert refused.exit_code == 1 and "the tree lacks 12,811 files of the list" in refused.stderr
    allowed = imagenet("subset", "--root", str(root), "--images", "1percent", "--allow-short")
    assert allowed.exit_code == 0 and "12,811 listed files are not in the tree" in allowed.stdout


def test_prepare_redo_and_verify_record(root: Path) -> None:
    assert imagenet("prepare", "--root", str(root), "--size", "32", "--workers", "1").exit_code == 0
    redo = json.loads(
        imagenet("prepare", "--root", str(root), "--size", "32", "--redo", "--splits", "val", "--json").stdout
    )
    assert (redo["shards_run"], redo["shards_done_before"]) == (13, 0)
    devkit = root / "downloads" / archives.DEVKIT
    (root / "downloads" / f"{archives.DEVKIT}.record.json").unlink()
    sums = root / "SUMS"
    sums.write_text(f"{hashing.hash_file(devkit)['md5']}  {devkit.name}\n")
    assert imagenet("verify", "--root", str(root), str(devkit), "--checksums", str(sums)).exit_code == 0
    assert read_record(devkit) is None, "verify writes nothing by default"
    assert imagenet("verify", "--root", str(root), str(devkit), "--checksums", str(sums), "--record").exit_code == 0
    assert DownloadRecord.read(devkit).source == "local"


def test_export_and_show_options(root: Path, tmp_path: Path) -> None:
    assert imagenet("prepare", "--root", str(root), "--size", "32", "--workers", "1").exit_code == 0
    out = tmp_path / "wds"
    result = imagenet(
        "export",
        "webdataset",
        "--root",
        str(root),
        "--out",
        str(out),
        "--splits",
        "val",
        "--seed",
        "2",
        "--shard-size",
        "20",
        "--max-shard-bytes",
        str(64 << 10),
        "--prefix",
        "in1k",
        "--json",
    )
    assert result.exit_code == 0, result.output
    shards = json.loads(result.stdout)["shards"]
    assert all(s["file"].startswith("in1k-validation-") for s in shards) and len(shards) > 1
    assert sum(s["samples"] for s in shards) == 26
    assert all(s["samples"] <= 20 and s["bytes"] <= 64 << 10 for s in shards)
    sheet = tmp_path / "sheet.png"
    shown = imagenet(
        "show", "--root", str(root), "--split", "train", "--per-class", "2", "--seed", "1", "--out", str(sheet), "3"
    )
    assert shown.exit_code == 0, shown.output
    with Image.open(sheet) as image:
        assert image.format == "PNG"
    failures = json.loads(imagenet("show", "--root", str(root), "--failures", "--json").stdout)
    assert failures["rows"] == 1 and {t["note"] for t in failures["tiles"]} >= {"repaired: png", "repaired: cmyk"}


def test_a_missing_extra_is_named_as_this_copy_was_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """From a checkout (pip records its folder) the line names that folder, else the package."""
    import json
    from importlib import metadata

    from imagenet_cli.errors import install_command

    class Installed:
        def __init__(self, direct: dict[str, Any] | None) -> None:
            self.direct = direct

        def read_text(self, name: str) -> str | None:
            return json.dumps(self.direct) if name == "direct_url.json" and self.direct is not None else None

    monkeypatch.setattr(
        metadata,
        "distributions",
        lambda name: [Installed(None), Installed({"url": "file:///src/my%20checkout", "dir_info": {}})],
    )
    assert install_command("numpy") == "pip install '/src/my checkout[numpy]'"
    monkeypatch.setattr(
        metadata, "distributions", lambda name: [Installed({"url": "https://files.example/imagenet_cli.whl"})]
    )
    assert install_command("numpy") == "pip install 'imagenet-cli[numpy]'"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["prepare", "--quality", "200"],
            "Invalid value for '--quality': must be at most 100 — try `imagenet prepare --help`",
        ),
        (["prepare", "--workers", "0"], "Invalid value for '--workers': must be at least 1 — try"),
        (["subset", "--per-class", "abc"], "Invalid value for '--per-class': must be a whole number — try"),
        (["prepare", "--resize", "bogus"], "'bogus' is not one of 'shorter', 'center-crop', 'squash', 'longer' — try"),
    ],
)
def test_a_bad_value_is_said_in_our_words_not_a_validators(args: list[str], said: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    completed = subprocess.run(
        [sys.executable, "-m", "imagenet_cli", *args, "--root", str(tmp_path)], capture_output=True, text=True
    )
    assert completed.returncode == 2
    [line] = completed.stderr.splitlines()
    assert said in line and "Input should" not in line and "Value error" not in line
