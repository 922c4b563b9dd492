"""The test split: 100,000 images with no class, prepared only when asked, into a flat TREE/test/."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pytest

from imagenet_cli import archives, manifest
from imagenet_cli.checks import verify
from imagenet_cli.checks.findings import ProblemKind
from imagenet_cli.trees import prepare

from .conftest import SMALL, copy_of, imagenet


@pytest.fixture(scope="module")
def with_test(official_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The official sample prepared at 32 with all three splits."""
    root = copy_of(official_root, tmp_path_factory.mktemp("with-test"))
    prepare(root, ["32"], splits=["train", "val", "test"], workers=2)
    return root / "32"


def unlabelled_rows(tree: Path) -> list[manifest.Entry]:
    return [entry for entry in manifest.read_manifest(tree) if entry.split == "test"]


def test_by_default_there_is_no_test_split(official_root: Path, tmp_path: Path) -> None:
    root = copy_of(official_root, tmp_path)
    prepare(root, ["32"], workers=2)
    assert not (root / "32" / "test").exists() and unlabelled_rows(root / "32") == []
    assert set(manifest.TreeInfo.read(root / "32").splits) == {"train", "val"}


def test_asked_for_it_is_a_flat_folder_with_no_label_file(with_test: Path) -> None:
    files = sorted(p.relative_to(with_test).as_posix() for p in (with_test / "test").iterdir())
    assert len(files) == SMALL["test_images"]
    assert all(f.startswith("test/ILSVRC2012_test_") and f.endswith(".JPEG") for f in files), files
    assert [entry.path for entry in unlabelled_rows(with_test)] == files
    assert all(entry.wnid == "" for entry in unlabelled_rows(with_test))
    assert not (with_test / "test.txt").exists()
    assert manifest.TreeInfo.read(with_test).splits["test"] == {"images": SMALL["test_images"], "classes": 0}
    report = verify(with_test.parent, paths=[with_test], deep=True)
    assert report.ok, [p for c in report.checks for p in c.problems]


def test_a_test_split_added_later_leaves_train_and_val_as_they_were(official_root: Path, tmp_path: Path) -> None:
    root = copy_of(official_root, tmp_path)
    prepare(root, ["32"], workers=2)
    before = {p: p.stat().st_ino for p in (root / "32" / "train").rglob("*.JPEG")}
    result = prepare(root, ["32"], splits=["test"], workers=2)
    assert result.shards_run == 1
    assert {p: p.stat().st_ino for p in (root / "32" / "train").rglob("*.JPEG")} == before
    assert {e.split for e in manifest.read_manifest(root / "32")} == {"train", "val", "test"}


@pytest.mark.parametrize("layout", ["kaggle_root", "kaggle2019_root", "hub_root", "extracted"])
def test_every_layout_gives_the_same_unlabelled_rows(
    layout: str, with_test: Path, kaggle_root: Path, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if layout == "extracted":
        with zipfile.ZipFile(kaggle_root / "downloads" / archives.KAGGLE_ZIP) as bundle:
            bundle.extractall(tmp_path / "data")
        prepare(tmp_path / "root", ["32"], splits=["test"], source=tmp_path / "data" / "ILSVRC", workers=2)
        root = tmp_path / "root"
    else:
        root = copy_of(request.getfixturevalue(layout), tmp_path / "root")
        prepare(root, ["32"], splits=["test"], workers=2)
    assert unlabelled_rows(root / "32") == unlabelled_rows(with_test)


def test_verify_names_a_class_folder_or_a_stranger_among_the_test_images(with_test: Path, tmp_path: Path) -> None:
    tree = tmp_path / "32"
    shutil.copytree(with_test, tree)
    (tree / "test" / "n01440764").mkdir()
    shutil.copy(next((tree / "train" / "n01440764").iterdir()), tree / "test" / "n01440764_1.JPEG")
    problems = [p for c in verify(tmp_path, paths=[tree]).checks for p in c.problems]
    named = {(p.kind, p.where) for p in problems}
    assert (ProblemKind.STRUCTURE, "test/n01440764/") in named
    assert (ProblemKind.STRUCTURE, "test/n01440764_1.JPEG") in named


def test_cli_info_shows_the_test_column_only_when_a_tree_has_it(with_test: Path) -> None:
    result = imagenet("info", "--root", str(with_test.parent))
    assert result.exit_code == 0, result.output
    header = next(line for line in result.stdout.splitlines() if line.startswith("tree "))
    assert header.split()[:4] == ["tree", "train", "val", "test"]
    assert f"{SMALL['test_images']}" in result.stdout.split(header, 1)[1].splitlines()[1]
    assert "next: imagenet subset" in result.stdout
