"""Hugging Face's ``ILSVRC/imagenet-1k`` layout as an input: the tree of the official archives."""

from __future__ import annotations

import gzip
import io
import shutil
import tarfile
from pathlib import Path

from imagenet_cli import archives, manifest, sample
from imagenet_cli.checks import verify
from imagenet_cli.checks.findings import ProblemKind
from imagenet_cli.errors import EXIT_PROBLEMS
from imagenet_cli.exports import export
from imagenet_cli.trees import prepare

from .builders import read_member
from .conftest import SMALL, imagenet


def copy(source: Path, root: Path) -> Path:
    shutil.copytree(source / "downloads", root / "downloads")
    return root


def test_the_hub_layout_has_the_real_names(hub_root: Path) -> None:
    downloads = hub_root / "downloads"
    assert sorted(p.name for p in downloads.glob("*.tar.gz")) == sorted(
        [*archives.HUB_TRAIN, archives.HUB_VAL, archives.HUB_TEST]
    )
    with tarfile.open(downloads / archives.HUB_VAL) as val:
        names = val.getnames()
    assert all(n.startswith("ILSVRC2012_val_") and n.count("_") == 3 and n.endswith(".JPEG") for n in names)
    with tarfile.open(downloads / archives.HUB_TEST) as test:
        assert all(n.startswith("ILSVRC2012_test_") and n.count("_") == 2 for n in test.getnames()), "no class"


def test_a_tree_from_the_hub_is_the_tree_from_the_official_archives(
    hub_root: Path, official_root: Path, tmp_path: Path
) -> None:
    hub = copy(hub_root, tmp_path / "hub")
    result = imagenet("prepare", "--root", str(hub), "--size", "64")
    assert result.exit_code == 0, result.output
    assert "from the Hugging Face hub's tar.gz files" in result.stdout
    official = prepare(copy(official_root, tmp_path / "official"), ["64"], workers=2)
    for name in (manifest.MANIFEST, "train.txt", "val.txt", "classes.txt"):
        assert (hub / "64" / name).read_text() == (official.trees[0].path / name).read_text(), name
    recorded = manifest.TreeInfo.read(hub / "64").inputs
    assert [i.name for i in recorded["train"]] == list(archives.HUB_TRAIN)
    assert [i.name for i in recorded["val"]] == [archives.HUB_VAL]


def test_straight_exports_from_the_hub_are_those_of_the_official_archives(
    hub_root: Path, official_root: Path, tmp_path: Path
) -> None:
    hub = export(copy(hub_root, tmp_path / "hub"), "webdataset", size=32).path
    official = export(copy(official_root, tmp_path / "official"), "webdataset", size=32).path
    for shard in sorted(official.glob("*.tar")):
        assert (hub / shard.name).read_bytes() == shard.read_bytes(), shard.name


def with_member_added(path: Path, name: str) -> None:
    """Add a member called ``name`` (the bytes of the first image) to one of the hub's tar.gz files."""
    with tarfile.open(path) as tar:
        members = [(m, read_member(tar, m)) for m in tar if m.isfile()]
    members.append((tarfile.TarInfo(name), members[0][1]))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for member, data in members:
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    path.write_bytes(gzip.compress(out.getvalue(), mtime=0))
    (path.parent / f"{path.name}.record.json").unlink(missing_ok=True)


def test_a_changed_hub_file_redoes_its_split_and_a_nameless_member_is_named(hub_root: Path, tmp_path: Path) -> None:
    root = copy(hub_root, tmp_path / "root")
    prepare(root, ["32"], workers=2)
    with_member_added(root / "downloads" / archives.HUB_VAL, "ILSVRC2012_val_00000001.JPEG")  # no class suffix
    again = imagenet("prepare", "--root", str(root), "--size", "32")
    assert again.exit_code == 0, again.output
    assert f"{archives.HUB_VAL} changed since" in again.stderr
    assert not any(name in again.stderr for name in archives.HUB_TRAIN), "train is kept"
    assert "carry another class in their names than ILSVRC-2012's label" in again.stderr
    with_member_added(root / "downloads" / archives.HUB_TRAIN[0], "n01440764_99_nothing.JPEG")
    named = imagenet("prepare", "--root", str(root), "--size", "32")
    assert named.exit_code == EXIT_PROBLEMS, named.output
    assert "failed: train/n01440764_99_nothing.JPEG: no WNID of the 1000 after its last underscore" in named.stdout


def test_verify_reads_the_hub_files_only_with_deep_and_then_names_each_bad_name(hub_root: Path, tmp_path: Path) -> None:
    root = copy(hub_root, tmp_path / "hub")
    quick = verify(root)
    assert quick.ok and all(
        "a gzip stream: its images are named, counted and decoded with --deep" in c.checked
        for c in quick.checks
        if c.path.name.endswith(".tar.gz")
    )
    deep = verify(root, deep=True)
    assert deep.ok, [p for c in deep.checks for p in c.problems]
    counted = {c.path.name: c.counts for c in deep.checks}
    assert counted[archives.HUB_VAL]["images"] == len(sample.default_classes()) * SMALL["val_per_class"]
    assert (
        sum(counted[name]["images"] for name in archives.HUB_TRAIN)
        == len(sample.default_classes()) * SMALL["train_per_class"]
    )
    with_member_added(root / "downloads" / archives.HUB_VAL, "ILSVRC2012_val_00000001_n01443537.JPEG")
    with_member_added(root / "downloads" / archives.HUB_VAL, "ILSVRC2012_val_00050001_n01443537.JPEG")
    with_member_added(root / "downloads" / archives.HUB_TRAIN[0], "n01440764_99.JPEG")
    problems = {(p.kind, p.where) for c in verify(root, deep=True).checks for p in c.problems}
    assert (ProblemKind.MISPLACED, f"{archives.HUB_VAL}:ILSVRC2012_val_00000001_n01443537.JPEG") in problems
    assert (ProblemKind.STRUCTURE, f"{archives.HUB_VAL}:ILSVRC2012_val_00050001_n01443537.JPEG") in problems
    assert (ProblemKind.COUNT, archives.HUB_VAL) in problems
    assert (ProblemKind.STRUCTURE, f"{archives.HUB_TRAIN[0]}:n01440764_99.JPEG") in problems
