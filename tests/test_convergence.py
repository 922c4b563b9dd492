"""A tree always matches its inputs: the same ``prepare`` run again converges to what they give.

Changed archives, images that failed, files deleted by hand, stray files, a run of one split on a
complete tree, and ``--redo``: after each, the tree equals a clean run over the current inputs.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest

from imagenet_cli import manifest
from imagenet_cli.checks import verify
from imagenet_cli.download import download_sample
from imagenet_cli.errors import InputChangedError, OverwriteRefusedError
from imagenet_cli.trees import prepare

from .builders import tree_from_official
from .conftest import SMALL


def copy_downloads(source_root: Path, root: Path) -> Path:
    shutil.copytree(source_root / "downloads", root / "downloads", dirs_exist_ok=True)
    return root


def tree_state(tree: Path) -> dict[str, str]:
    """Everything a user trains from or checks: the label files, the manifest and the files on disk."""
    state = {name: (tree / name).read_text() for name in ("manifest.tsv", "train.txt", "val.txt", "classes.txt")}
    state["files"] = "\n".join(sorted(str(p.relative_to(tree)) for p in tree.glob("*/*/*")))
    return state


@pytest.fixture
def prepared(official_root: Path, tmp_path: Path) -> Path:
    root = copy_downloads(official_root, tmp_path / "root")
    prepare(root, ["64"], workers=2)
    return root


def test_changed_archives_give_the_new_tree_and_drop_the_old_classes(
    prepared: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = sorted(p.name for p in (prepared / "64" / "train").iterdir())
    other = ["n01443537", "n01484850", "n01491361"]  # goldfish, great white shark, tiger shark
    download_sample(prepared, classes=other, seed=7, **SMALL)  # replaces every archive
    clean = copy_downloads(prepared, tmp_path / "clean")
    prepare(clean, ["64"], workers=2)

    with caplog.at_level(logging.WARNING, logger="imagenet_cli"):
        result = prepare(prepared, ["64"], workers=2)
    assert result.shards_done_before == 0 and result.shards_run == 6
    assert tree_state(prepared / "64") == tree_state(clean / "64")
    assert sorted(p.name for p in (prepared / "64" / "train").iterdir()) == other != before
    said = caplog.text
    assert f"ILSVRC2012_img_train.tar changed since {prepared / '64'} was made: redoing" in said
    assert "class folders that the inputs no longer give" in said
    assert verify(prepared, paths=[prepared / "64"]).ok


def test_verify_names_a_tree_whose_archive_changed_as_stale(prepared: Path) -> None:
    download_sample(prepared, seed=3, **SMALL)  # the same classes, other images
    report = verify(prepared, paths=[prepared / "64"])
    stale = [p for p in report.checks[0].problems if p.kind == "stale"]
    assert {p.detail.split(" ", 1)[0] for p in stale} >= {"ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"}
    prepare(prepared, ["64"], workers=2)
    assert verify(prepared, paths=[prepared / "64"]).ok


def test_a_deleted_class_folder_and_a_stray_file_are_put_right(
    prepared: Path, official_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tree = prepared / "64"
    expected = tree_state(tree)
    victim = sorted((tree / "train").iterdir())[0]
    shutil.rmtree(victim)
    (tree / "val" / "n01440764" / "stray.JPEG").write_bytes(b"not ours")
    with caplog.at_level(logging.WARNING, logger="imagenet_cli"):
        result = prepare(prepared, ["64"], workers=2)
    assert result.shards_run == 1 and result.images_processed == SMALL["train_per_class"]
    assert "redoing 1 train shard (files of it were missing)" in caplog.text
    assert tree_state(tree) == expected
    assert verify(prepared, paths=[tree]).ok


def test_failed_images_are_retried_once_the_input_is_good(official_root: Path, tmp_path: Path) -> None:
    source = tree_from_official(official_root / "downloads", tmp_path / "source", with_manifest=False)
    victim = sorted((source / "train" / "n02979186").iterdir())[0]
    good = victim.read_bytes()
    stat = victim.stat()
    # Damaged in place: same size, same mtime once restored, so only the failure says "redo".
    victim.write_bytes(bytes(64) + good[64:])  # no JPEG header: unreadable
    root = tmp_path / "root"
    first = prepare(root, ["64"], source=source, workers=2)
    assert [f.name for f in first.trees[0].failures] == [victim.name]

    victim.write_bytes(good)
    os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    second = prepare(root, ["64"], source=source, workers=2)
    assert second.shards_run == 1 and second.trees[0].failures == []
    info = manifest.TreeInfo.read(root / "64")
    assert info.failures == () and info.splits["train"]["images"] == 39
    assert verify(root, paths=[root / "64"]).ok


def test_one_split_on_a_complete_tree_keeps_the_other(prepared: Path) -> None:
    tree = prepared / "64"
    expected = tree_state(tree)
    inputs = manifest.TreeInfo.read(tree).inputs
    result = prepare(prepared, ["64"], splits=["val"], workers=2, redo=True)
    assert result.shards_run == 13 and result.trees[0].images == {"train": 39, "val": 26}
    assert tree_state(tree) == expected
    assert manifest.TreeInfo.read(tree).inputs == inputs
    assert verify(prepared, paths=[tree]).ok


def test_redo_redoes_every_shard_and_changes_nothing(prepared: Path) -> None:
    tree = prepared / "64"
    expected = tree_state(tree)
    result = prepare(prepared, ["64"], workers=2, redo=True)
    assert result.shards_done_before == 0 and result.shards_run == 26
    assert tree_state(tree) == expected


def test_tree_json_names_its_inputs_relative_to_the_tree(prepared: Path) -> None:
    inputs = manifest.TreeInfo.read(prepared / "64").inputs
    assert [i.path for i in inputs["train"]] == ["../downloads/ILSVRC2012_img_train.tar"]
    assert [i.name for i in inputs["val"]] == ["ILSVRC2012_img_val.tar", "ILSVRC2012_devkit_t12.tar.gz"]
    assert all(i.xxh3_64 for i in inputs["train"] + inputs["val"])


T = TypeVar("T")


class ReplacingAfterFirstShard(ThreadPoolExecutor):
    """One worker; when the third shard is handed over, a new train tar lands by rename, as a
    finished download does, while the shards before it may still be reading the old one."""

    def __init__(self, new_archive: Path, target: Path) -> None:
        super().__init__(max_workers=1)
        self.new_archive, self.target, self.submitted = new_archive, target, 0

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        self.submitted += 1
        if self.submitted == 3:
            os.replace(self.new_archive, self.target)
        return super().submit(fn, *args, **kwargs)


@pytest.mark.slow
def test_an_archive_replaced_mid_run_is_never_mixed_into_the_tree(official_root: Path, tmp_path: Path) -> None:
    root = copy_downloads(official_root, tmp_path / "root")
    other = download_sample(tmp_path / "other", classes=["n01443537", "n01484850", "n01491361"], seed=7, **SMALL)
    new_train = other.downloads / "ILSVRC2012_img_train.tar"
    target = root / "downloads" / "ILSVRC2012_img_train.tar"
    with (
        ReplacingAfterFirstShard(new_train, target) as executor,
        pytest.raises(InputChangedError, match="ILSVRC2012_img_train.tar was replaced"),
    ):
        prepare(root, ["64"], workers=1, splits=["train"], executor=executor)
    tree = root / "64"
    misfiled = [p for p in tree.glob("train/*/*") if not p.name.startswith(p.parent.name)]
    assert not misfiled, "an image of the new archive was written under a class of the old one"

    prepare(root, ["64"], workers=2, splits=["train"])
    clean = copy_downloads(root, tmp_path / "clean")
    prepare(clean, ["64"], workers=2, splits=["train"])
    assert (tree / "manifest.tsv").read_text() == (clean / "64" / "manifest.tsv").read_text()
    assert verify(root, paths=[tree]).ok


def test_a_stop_while_the_tree_was_being_claimed_does_not_refuse_the_rerun(official_root: Path, tmp_path: Path) -> None:
    """Killed between making ROOT/64/.shards/ and renaming the claim into it: nothing there to protect."""
    from imagenet_cli import atomic

    root = copy_downloads(official_root, tmp_path / "root")
    markers = root / "64" / ".shards"
    markers.mkdir(parents=True)
    atomic.temporary_name(markers / "recipe.json").write_text('{"mode": "sho')
    prepare(root, ["64"], splits=["val"])
    assert verify(root, paths=[root / "64"]).ok
    (root / "65").mkdir()
    (root / "65" / "notes.txt").write_text("someone's")
    with pytest.raises(OverwriteRefusedError, match="was not made by prepare"):
        prepare(root, ["65"], splits=["val"])


class _Watching(ThreadPoolExecutor):
    """A pool that notes, as each shard is handed to it, whether its tree says it is being changed."""

    def __init__(self, flag: Path) -> None:
        super().__init__(max_workers=2)
        self.flag = flag
        self.seen: list[bool] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.seen.append(self.flag.exists())
        return super().submit(fn, *args, **kwargs)


def test_a_tree_says_it_is_changing_from_its_first_shard_until_its_record_is_written(prepared: Path) -> None:
    tree = prepared / "64"
    flag = tree / ".shards" / "changing"
    with _Watching(flag) as pool:
        prepare(prepared, ["64"], splits=["val"], redo=True, executor=pool)
    assert pool.seen and all(pool.seen)
    assert not flag.exists()


def test_a_run_stopped_before_it_finished_its_tree_is_finished_by_the_next(prepared: Path) -> None:
    """Every shard done, but the manifest not yet merged from them (the flag the stopped run left):
    the next run, with nothing to make, writes the manifest and labels again."""
    tree = prepared / "64"
    expected = tree_state(tree)
    lines = (tree / "manifest.tsv").read_text().splitlines(keepends=True)
    (tree / "manifest.tsv").write_text("".join(lines[:-1]))  # as the stopped run's merge would have changed it
    (tree / ".shards" / "changing").write_text("")
    result = prepare(prepared, ["64"], workers=2)
    assert result.shards_run == 0
    assert tree_state(tree) == expected


def test_a_run_with_nothing_to_do_counts_from_the_manifest_and_sweeps_strays(prepared: Path) -> None:
    tree = prepared / "64"
    before = manifest.TreeInfo.read(tree)
    (tree / "val" / "n01440764" / "stray.JPEG").write_bytes(b"not ours")
    result = prepare(prepared, ["64"], workers=2)
    assert result.shards_run == 0
    assert result.trees[0].images == {split: counts["images"] for split, counts in before.splits.items()}
    assert not (tree / "val" / "n01440764" / "stray.JPEG").exists()
    assert manifest.TreeInfo.read(tree).created_at == before.created_at, "the record is not rewritten"
