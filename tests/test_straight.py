"""Exports made straight from the archives: the shards a tree would give, with no tree written.

Each is compared with the export of a tree prepared from the same archives, read back by the
format's own reader, stopped by kill -9 in each of its two steps and re-run, and run on a root
that holds nothing but the archives.
"""

from __future__ import annotations

import collections
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from imagenet_cli import archives, catalogue
from imagenet_cli.errors import EXIT_PROBLEMS, ArchiveError, InvalidArgumentError
from imagenet_cli.exports import export
from imagenet_cli.trees import prepare
from imagenet_cli.trees.readers import Origin, OriginReader

from .builders import read_member
from .conftest import imagenet


def archives_only(source_root: Path, root: Path) -> Path:
    shutil.copytree(source_root / "downloads", root / "downloads")
    return root


def files_of(folder: Path) -> dict[str, bytes]:
    """Every file of an export but its records (export.json names the source, which differs)."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".") and p.name != "export.json"
    }


def wds_samples(folder: Path) -> dict[str, tuple[int, str]]:
    """{key: (cls, WNID)} of every sample of every shard, through tarfile."""
    found: dict[str, tuple[int, str]] = {}
    for shard in sorted(folder.glob("*.tar")):
        with tarfile.open(shard) as tar:
            members = {m.name: read_member(tar, m) for m in tar if m.isfile()}
        for name, data in members.items():
            if name.endswith(".json"):
                key = name.removesuffix(".json")
                assert key not in found, f"{key} twice"
                found[key] = (int(members[f"{key}.cls"]), json.loads(data)["wnid"])
    return found


@pytest.fixture(scope="module")
def through_a_tree(official_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample prepared at 64 pixels and at full size, then exported from the trees."""
    root = archives_only(official_root, tmp_path_factory.mktemp("tree"))
    prepare(root, ["64", "full"], workers=2)
    export(root, "webdataset", source=root / "64", shard_size=20)
    export(root, "parquet", source=root / "64", shard_size=20)
    return root


def test_webdataset_straight_is_the_tree_exports_bytes_without_a_tree(
    official_root: Path, through_a_tree: Path, tmp_path: Path
) -> None:
    root = archives_only(official_root, tmp_path / "root")
    result = export(root, "webdataset", size=64, shard_size=20)
    assert result.path == root / "exports" / "webdataset-64-archives" and not result.failures
    assert files_of(result.path) == files_of(through_a_tree / "exports" / "webdataset-64"), "byte for byte"
    assert sorted(p.name for p in root.iterdir()) == ["downloads", "exports"], "no tree anywhere"
    assert not (result.path / ".staged").exists(), "the staging is gone once the shards hold the images"
    labels = wds_samples(result.path)
    assert len(labels) == sum(result.samples.values())
    assert all(label == catalogue.by_wnid(wnid).index for label, wnid in labels.values())


def test_train_shards_mix_every_class(tmp_path: Path) -> None:
    """A shard is never a run of one class tar: 13 classes of 10, in shards of 13, each a mix of at
    least 5 classes, none more than 6 of its 13 (a seeded shuffle, not a quota)."""
    from imagenet_cli.download import download_sample

    root = tmp_path / "root"
    download_sample(root, train_per_class=10, val_per_class=1, test_images=0)
    result = export(root, "webdataset", size=32, shard_size=13, splits=["train"])
    for shard in sorted(result.path.glob("*.tar")):
        with tarfile.open(shard) as tar:
            classes = collections.Counter(m.name.split("_", 1)[0] for m in tar if m.name.endswith(".cls"))
        assert max(classes.values()) <= 6 and len(classes) >= 5, f"{shard.name}: {classes}"


def test_parquet_straight_loads_with_datasets_as_the_tree_export(
    official_root: Path, through_a_tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    root = archives_only(official_root, tmp_path / "root")
    result = export(root, "parquet", size=64, shard_size=20)
    assert files_of(result.path) == files_of(through_a_tree / "exports" / "parquet-64")
    loaded = datasets.load_dataset(str(result.path), split="validation")
    names = loaded.features["label"].names
    for row in loaded:
        wnid = row["image"]["path"].split("/", 1)[0] if isinstance(row["image"], dict) else None
        assert wnid is None or names[row["label"]].startswith(catalogue.by_wnid(wnid).name)
    assert len(loaded) == result.samples["val"]


def test_downsampled_straight_is_the_published_recipe_of_each_original(official_root: Path, tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    from PIL import Image

    root = archives_only(official_root, tmp_path / "root")
    result = imagenet("export", "downsampled", "--root", str(root), "--size", "16", "--json")
    assert result.exit_code == 0, result.output
    out = Path(json.loads(result.stdout)["path"])
    assert not (root / "full").exists()
    originals = {}
    with tarfile.open(root / "downloads" / archives.VAL_TAR) as val:
        for member in val:
            originals[member.name] = read_member(val, member)
    with np.load(out / "val_data.npz") as arrays:
        data, labels = arrays["data"], arrays["labels"]
    names = sorted(originals)
    assert len(names) == len(data)
    for name, row, label in zip(names, data, labels, strict=True):
        assert label == catalogue.val_class(name).devkit_id
        box = Image.open(io.BytesIO(originals[name])).convert("RGB").resize((16, 16), Image.Resampling.BOX)
        assert (np.asarray(box).transpose(2, 0, 1).reshape(-1) == row).all(), name


def test_a_rerun_keeps_everything_and_a_changed_archive_makes_it_again(official_root: Path, tmp_path: Path) -> None:
    root = archives_only(official_root, tmp_path / "root")
    first = export(root, "webdataset", size=32, shard_size=20)
    inodes = {p.name: p.stat().st_ino for p in first.path.glob("*.tar")}
    again = export(root, "webdataset", size=32, shard_size=20)
    assert again.written == 0 and again.shards == first.shards
    assert {p.name: p.stat().st_ino for p in first.path.glob("*.tar")} == inodes
    from imagenet_cli.download import download_sample

    download_sample(root, seed=5, train_per_class=3, val_per_class=2, test_images=3)  # other images
    remade = imagenet("export", "webdataset", "--root", str(root), "--size", "32", "--shard-size", "20")
    assert remade.exit_code == 0, remade.output
    assert "changed since" in remade.stderr and "making it again" in remade.stderr
    clean = archives_only(root, tmp_path / "clean")
    assert files_of(first.path) == files_of(export(clean, "webdataset", size=32, shard_size=20).path)


KILL_AFTER = """
import os, signal, sys
from pathlib import Path
from imagenet_cli.exports import Job, export
from imagenet_cli.trees import shards

step, after = sys.argv[2], int(sys.argv[3])
done = []

def counted(function):
    def wrapper(*args, **kwargs):
        value = function(*args, **kwargs)
        done.append(1)
        if len(done) == after:
            os.kill(os.getpid(), signal.SIGKILL)
        return value
    return wrapper

if step == "stage":
    shards.run_job = counted(shards.run_job)
else:
    Job.keep = counted(Job.keep)
export(Path(sys.argv[1]), "webdataset", size=32, shard_size=4, workers=1)
"""


@pytest.mark.parametrize("step", ["stage", "merge"])
def test_a_kill_9_in_either_step_and_a_rerun_give_the_bytes_of_a_clean_run(
    official_root: Path, tmp_path: Path, step: str
) -> None:
    clean = export(archives_only(official_root, tmp_path / "clean"), "webdataset", size=32, shard_size=4)
    root = archives_only(official_root, tmp_path / "root")
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER, str(root), step, "5"], capture_output=True)
    assert killed.returncode == -9, killed.stderr
    out = root / "exports" / "webdataset-32-archives"
    assert not (out / "export.json").exists()
    kept = {p.name: p.stat().st_ino for p in out.glob("*.tar")}
    assert (5 <= len(kept) < len(clean.shards)) if step == "merge" else not kept
    again = imagenet("export", "webdataset", "--root", str(root), "--size", "32", "--shard-size", "4")
    assert again.exit_code == 0, again.output
    assert files_of(out) == files_of(clean.path)
    assert {name: (out / name).stat().st_ino for name in kept} == kept, "finished shards were kept, not redone"
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")] and not (out / ".staged").exists()


def test_a_class_tar_that_comes_twice_gives_neither_copy(official_root: Path, tmp_path: Path) -> None:
    """Its images come from two shards: none is exported, each is named, as prepare leaves them out."""
    root = archives_only(official_root, tmp_path / "root")
    train = root / "downloads" / archives.TRAIN_TAR
    with tarfile.open(train) as tar:
        class_tars = [(member, read_member(tar, member)) for member in tar.getmembers()]
    with tarfile.open(train, "w") as tar:
        for member, data in [*class_tars, class_tars[0]]:
            tar.addfile(member, io.BytesIO(data))
    wnid = class_tars[0][0].name.removesuffix(".tar")
    result = export(root, "webdataset", size=32, shard_size=20, splits=["train"])
    twice = sorted(f.name for f in result.failures if f.error == "appears twice in the input: neither copy is used")
    with tarfile.open(fileobj=io.BytesIO(class_tars[0][1])) as inner:
        assert twice == sorted(m.name for m in inner.getmembers()) and twice
    assert wnid not in {found for _, found in wds_samples(result.path).values()}


def test_a_damaged_class_tar_is_named_and_every_other_image_exported(official_root: Path, tmp_path: Path) -> None:
    root = archives_only(official_root, tmp_path / "root")
    train = root / "downloads" / archives.TRAIN_TAR
    victim = list(archives.tar_headers(train, lambda where, why: None))[4]
    with tarfile.open(train) as outer:
        inner = tarfile.open(fileobj=io.BytesIO(read_member(outer, outer.getmember(victim.name))))
        second = inner.getmembers()[1]
    with open(train, "r+b") as file:  # the second image's header and what follows, zeroed
        file.seek(victim.offset_data + second.offset)
        file.write(bytes(2048))
    result = imagenet("export", "webdataset", "--root", str(root), "--size", "32")
    assert result.exit_code == EXIT_PROBLEMS, result.output
    assert f"failed: train/{victim.name.removesuffix('.tar')}/{victim.name}: the class tar ends" in result.stdout
    record = json.loads((root / "exports" / "webdataset-32-archives" / "export.json").read_text())
    assert [f["name"] for f in record["failures"]] == [victim.name]
    exported = sum(s["samples"] for s in record["shards"] if s["split"] == "train")
    assert exported == 12 * 3 + 1, "the other 12 classes whole, and the image read before the damage"
    again = imagenet("export", "webdataset", "--root", str(root), "--size", "32")
    assert again.exit_code == EXIT_PROBLEMS and "failed:" in again.stdout, "a re-run says it again"
    checked = imagenet("verify", str(root / "exports" / "webdataset-32-archives"), "--json")
    assert checked.exit_code == 0, checked.output
    assert "1 images of its inputs could not be used (export.json names each)" in checked.stdout


def test_the_kaggle_zip_gives_the_official_archives_shards(
    official_root: Path, kaggle_root: Path, tmp_path: Path
) -> None:
    official = export(archives_only(official_root, tmp_path / "official"), "webdataset", size=32)
    kaggle = export(archives_only(kaggle_root, tmp_path / "kaggle"), "webdataset", size=32)
    assert files_of(kaggle.path) == files_of(official.path)


def test_image_options_name_the_tree_and_refuse_a_tree_to_copy(official_root: Path, tmp_path: Path) -> None:
    root = archives_only(official_root, tmp_path / "root")
    result = imagenet(
        "export", "webdataset", "--root", str(root), "--size", "48", "--resize", "squash", "--quality", "80", "-q"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{root / 'exports' / 'webdataset-48-squash-q80-archives'}\n"
    prepare(root, ["32"], workers=2)
    with pytest.raises(InvalidArgumentError, match="applies to making images from the archives"):
        export(root, "webdataset", source=root / "32", quality=80)
    refused = imagenet("export", "webdataset", "--root", str(root), "--from", str(root / "32"), "--resize", "squash")
    assert refused.exit_code == 2 and "--resize applies to making images from the archives" in refused.stderr
    copied = imagenet("export", "webdataset", "--root", str(root), "-q")
    assert copied.stdout == f"{root / 'exports' / 'webdataset-32'}\n", "a prepared tree and no image option: copied"


@pytest.mark.slow
def test_dask_makes_the_local_runs_bytes(official_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    local = export(archives_only(official_root, tmp_path / "local"), "webdataset", size=32, shard_size=20)
    root = archives_only(official_root, tmp_path / "dask")
    env = {**os.environ, "IMAGENET_NO_PROGRESS": "1"}
    command = [sys.executable, "-m", "imagenet_cli", "export", "webdataset", "--root", str(root)]
    done = subprocess.run(
        [*command, "--size", "32", "--shard-size", "20", "--dask", "local:2"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    assert files_of(root / "exports" / "webdataset-32-archives") == files_of(local.path)


def test_an_image_that_does_not_decode_is_named_and_its_shard_holds_the_rest(
    official_root: Path, tmp_path: Path
) -> None:
    """Images are listed first and made as their shard is written: one that does not decode is a
    named failure there, and the shards stay cut as a clean run cuts them (one is one short)."""
    root = archives_only(official_root, tmp_path / "root")
    train = root / "downloads" / archives.TRAIN_TAR
    with tarfile.open(train) as outer:
        classes = [(m, read_member(outer, m)) for m in outer if m.isfile()]
    info, data = classes[2]
    with tarfile.open(fileobj=io.BytesIO(data)) as inner:
        images = [(m, read_member(inner, m)) for m in inner if m.isfile()]
    broken = images[0][0].name
    images[0] = (images[0][0], b"\xff\xd8 not a jpeg after all" + bytes(images[0][0].size - 22))
    classes[2] = (info, _tar([*images]))
    train.write_bytes(_tar(classes))
    result = imagenet("export", "webdataset", "--root", str(root), "--size", "32", "--shard-size", "10")
    assert result.exit_code == EXIT_PROBLEMS, result.output
    assert f"failed: train/{info.name.removesuffix('.tar')}/{broken}:" in result.stdout
    record = json.loads((root / "exports" / "webdataset-32-archives" / "export.json").read_text())
    assert [f["name"] for f in record["failures"]] == [broken]
    train_shards = [s["samples"] for s in record["shards"] if s["split"] == "train"]
    assert sorted(train_shards) == [9, 9, 10, 10], "39 images cut 10, 10, 10, 9, then one of a shard not made"


def _tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for member, data in members:
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return out.getvalue()


def test_every_image_option_of_an_export_from_the_archives_is_taken_by_the_cli(
    official_root: Path, tmp_path: Path
) -> None:
    root = archives_only(official_root, tmp_path / "root")
    made = imagenet(
        *["export", "webdataset", "--root", str(root), "--size", "40", "--format", "png", "--filter", "lanczos"],
        *["--no-upscale", "--trust-input-labels", "--workers", "1", "-q"],
    )
    assert made.exit_code == 0, made.output
    out = root / "exports" / "webdataset-40-png-lanczos-noupscale-archives"
    assert made.stdout == f"{out}\n"
    with tarfile.open(sorted(out.glob("*.tar"))[0]) as tar:
        assert any(m.name.endswith(".png") for m in tar), "the images are PNG"
    record = json.loads((out / "export.json").read_text())
    assert record["options"]["from"]["images"]["upscale"] is False


def test_images_read_out_of_thousands_of_packs_hold_no_file_open(tmp_path: Path) -> None:
    """ImageNet stages 2,000 packs: kept open, they passed a common limit of open files (1,024)."""
    packs = [tmp_path / f"train-n{number:08d}.pack" for number in range(1500)]
    for number, pack in enumerate(packs):
        pack.write_bytes(b"before" + number.to_bytes(4, "big") + b"after")
    open_before = len(os.listdir("/proc/self/fd"))
    with OriginReader() as origins:
        read = [origins.read(Origin("pack", str(pack), 6, 4)) for pack in packs]
        assert len(os.listdir("/proc/self/fd")) == open_before
        with pytest.raises(ArchiveError, match="ends before the 40 bytes at 6"):
            origins.read(Origin("pack", str(packs[0]), 6, 40))
    assert read == [number.to_bytes(4, "big") for number in range(len(packs))]
