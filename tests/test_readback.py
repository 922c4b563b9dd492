"""Shards read back into trees: our WebDataset exports and timm's layout, with their labels checked."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from imagenet_cli import catalogue, manifest
from imagenet_cli.errors import EXIT_PROBLEMS
from imagenet_cli.exports import export
from imagenet_cli.trees import prepare

from .conftest import imagenet, prepared_copy


@pytest.fixture(scope="module")
def exported(official_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample's 64-pixel tree and its WebDataset export, in small shards."""
    root = prepared_copy(official_root, tmp_path_factory.mktemp("readback"), "64")
    export(root, "webdataset", source=root / "64", shard_size=10)
    return root


def rows(tree: Path) -> list[manifest.Entry]:
    return list(manifest.read_manifest(tree))


def test_an_export_read_back_is_the_tree_it_was_made_from(exported: Path, tmp_path: Path) -> None:
    """tree → export webdataset → prepare --from the export → the same manifest, row for row."""
    result = imagenet(
        "prepare",
        "--root",
        str(tmp_path),
        "--from",
        str(exported / "exports" / "webdataset-64"),
        "--size",
        "full",
    )
    assert result.exit_code == 0, result.output
    assert "the WebDataset shards at" in result.stdout
    assert rows(tmp_path / "full") == rows(exported / "64")
    assert (tmp_path / "full" / "val.txt").read_text() == (exported / "64" / "val.txt").read_text()


def write_timm_shard(path: Path, samples: list[tuple[str, bytes, int]]) -> None:
    """A shard as timm's imagenet-1k-wds holds one, written by webdataset's own TarWriter: KEY.jpg
    and KEY.cls, no json, keys without extension."""
    wds = pytest.importorskip("webdataset")
    with wds.TarWriter(str(path)) as sink:
        for key, image, label in samples:
            sink.write({"__key__": key, "jpg": image, "cls": label})


def test_timm_shards_without_json_give_official_names_and_true_labels(exported: Path, tmp_path: Path) -> None:
    tree = exported / "64"
    train = [e for e in rows(tree) if e.path.startswith("train/")][:12]
    val = [e for e in rows(tree) if e.path.startswith("val/")][:6]
    source = tmp_path / "imagenet-1k-wds"
    source.mkdir()

    def samples(entries: list[manifest.Entry]) -> list[tuple[str, bytes, int]]:
        return [
            (e.name.rsplit(".", 1)[0], (tree / e.path).read_bytes(), catalogue.by_wnid(e.wnid).index) for e in entries
        ]

    write_timm_shard(source / "imagenet1k-train-0000.tar", samples(train))
    write_timm_shard(source / "imagenet1k-validation-00.tar", samples(val))
    prepare(tmp_path / "root", ["full"], source=source, workers=1)
    made = tmp_path / "root" / "full"
    assert rows(made) == sorted(train + val, key=lambda e: e.path)


def test_a_sample_whose_cls_and_json_disagree_is_named(exported: Path, tmp_path: Path) -> None:
    source = tmp_path / "wds"
    source.mkdir()
    entry = next(e for e in rows(exported / "64") if e.path.startswith("train/"))
    key = entry.name.rsplit(".", 1)[0]
    with tarfile.open(source / "x-train-0000.tar", "w") as tar:
        other = (catalogue.by_wnid(entry.wnid).index + 1) % 1000
        meta = json.dumps({"filename": f"{entry.wnid}/{entry.name}", "wnid": entry.wnid}).encode()
        for suffix, data in (
            ("cls", str(other).encode()),
            ("jpg", (exported / "64" / entry.path).read_bytes()),
            ("json", meta),
        ):
            info = tarfile.TarInfo(f"{key}.{suffix}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    result = imagenet(
        "prepare", "--root", str(tmp_path / "root"), "--from", str(source), "--size", "full", "--splits", "train"
    )
    assert result.exit_code == EXIT_PROBLEMS, result.output
    assert f"failed: train/{entry.name}: its .cls says {catalogue.by_index(other).wnid}, its .json {entry.wnid}" in (
        result.stdout
    )


def test_a_parquet_export_read_back_is_its_tree(exported: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    out = export(exported, "parquet", source=exported / "64", out=tmp_path / "pq", shard_size=10).path
    result = imagenet("prepare", "--root", str(tmp_path / "root"), "--from", str(out), "--size", "full")
    assert result.exit_code == 0, result.output
    assert "the Parquet files at" in result.stdout
    assert rows(tmp_path / "root" / "full") == rows(exported / "64")


def test_shards_convert_to_another_format_with_their_bytes_kept(exported: Path, tmp_path: Path) -> None:
    """export parquet --from WebDataset shards: the images made already are copied, not re-encoded."""
    pq = pytest.importorskip("pyarrow.parquet")
    result = export(exported, "parquet", source=exported / "exports" / "webdataset-64", out=tmp_path / "pq")
    assert not result.failures
    tree = exported / "64"
    found = {}
    for file in sorted((tmp_path / "pq" / "data").glob("*.parquet")):
        for row in pq.read_table(file).to_pylist():
            found[row["image"]["path"]] = (row["image"]["bytes"], row["label"])
    assert found == {
        e.path.split("/", 1)[1]: ((tree / e.path).read_bytes(), catalogue.by_wnid(e.wnid).index) for e in rows(tree)
    }


def test_info_of_a_shard_folder_suggests_the_prepare_that_reads_it(exported: Path, tmp_path: Path) -> None:
    folder = exported / "exports" / "webdataset-64"
    shown = imagenet("info", "--root", str(folder), "--json")
    assert shown.exit_code == 0, shown.output
    state = json.loads(shown.stdout)
    assert state["input_folder"] == "webdataset" and state["next_step"] == "prepare"
    command = state["next_command"].split("  (", 1)[0].split()
    assert command[:2] == ["imagenet", "prepare"]
    ran = imagenet(*command[1:], "--root", str(tmp_path / "root"))
    assert ran.exit_code == 0, ran.output
    assert rows(tmp_path / "root" / "full") == rows(exported / "64")


def test_a_subset_of_shards_says_to_make_a_tree_of_them_first(exported: Path, tmp_path: Path) -> None:
    folder = exported / "exports" / "webdataset-64"
    refused = imagenet("subset", "--root", str(exported), "--from", str(folder), "--classes", "3")
    assert refused.exit_code == 1 and refused.stdout == ""
    [line] = refused.stderr.strip().splitlines()
    assert line == (
        f"imagenet: error: {folder} holds shards, not a tree: a subset links a tree's files"
        f" — try `imagenet prepare --from {folder} --size full` to make a tree of them first"
    )
