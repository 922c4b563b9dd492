"""``imagenet export webdataset``: read back by the real ``webdataset`` reader, with the right labels."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import unittest.mock
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import xxhash
from hypothesis import given, settings
from hypothesis import strategies as st

from imagenet_cli import atomic, catalogue, manifest
from imagenet_cli.errors import OverwriteRefusedError
from imagenet_cli.exports import export, shard_file
from imagenet_cli.exports.samples import Row, SplitSamples, key_of, sorted_on_disk
from imagenet_cli.subsets import subset
from imagenet_cli.trees.readers import read_whole

wds = pytest.importorskip("webdataset")
from .conftest import imagenet, prepared_copy  # noqa: E402


@pytest.fixture(scope="module")
def root(official_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepared_copy(official_root, tmp_path_factory.mktemp("export"), "64")


def read_back(folder: Path, split: str) -> dict[str, tuple[bytes, int, dict[str, Any]]]:
    """{key: (image bytes, cls, json)} through webdataset's own reader, shards from _info.json."""
    info = json.loads((folder / "_info.json").read_text())["splits"][split]
    urls = [str(folder / name) for name in info["filenames"]]
    found = {}
    for sample in wds.WebDataset(urls, shardshuffle=False):
        assert sample["__key__"] not in found, "every image once"
        found[sample["__key__"]] = (sample["jpg"], int(sample["cls"]), json.loads(sample["json"]))
    assert len(found) == info["num_samples"] == sum(info["shard_lengths"])
    return found


def test_every_image_once_with_its_sorted_index_and_its_bytes(root: Path, tmp_path: Path) -> None:
    result = export(root, out=tmp_path / "wds", shard_size=10)
    assert result.samples == {"train": 39, "val": 26} and len(result.shards) == 4 + 3
    for split, name in (("train", "train"), ("val", "validation")):
        found = read_back(tmp_path / "wds", name)
        rows = [e for e in manifest.read_manifest(root / "64") if e.path.startswith(split + "/")]
        assert sorted(found) == sorted(e.name.split(".")[0] for e in rows)
        for entry in rows:
            image, label, meta = found[entry.name.split(".")[0]]
            assert label == catalogue.by_wnid(entry.wnid).index == meta["label"]
            assert image == (root / "64" / entry.path).read_bytes(), "copied, never re-encoded"
            assert meta["filename"] == f"{entry.wnid}/{entry.name}" and meta["width"] > 0
    train_shards = [s for s in result.shards if s.split == "train"]
    assert all(len({w for w in _wnids(tmp_path / "wds" / s.file)}) > 1 for s in train_shards), "shards mix classes"


def _wnids(shard: Path) -> set[str]:
    return {json.loads(s["json"])["wnid"] for s in wds.WebDataset(str(shard), shardshuffle=False)}


def test_a_subset_exports_its_own_index_and_keeps_the_1000_class_one(root: Path, tmp_path: Path) -> None:
    made = subset(root, classes="3")
    export(root, source=made.path, out=tmp_path / "wds")
    own = {
        line.split("\t")[1]: int(line.split("\t")[0]) for line in (made.path / "classes.txt").read_text().splitlines()
    }
    for _image, label, meta in read_back(tmp_path / "wds", "validation").values():
        assert label == own[meta["wnid"]] and meta["label_1k"] == catalogue.by_wnid(meta["wnid"]).index


def test_the_same_tree_and_seed_give_the_same_bytes_and_a_rerun_keeps_shards(root: Path, tmp_path: Path) -> None:
    first = export(root, out=tmp_path / "a", shard_size=10, seed=3)
    second = export(root, out=tmp_path / "b", shard_size=10, seed=3)

    def digest(folder: Path) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.glob("*.tar")}

    assert digest(tmp_path / "a") == digest(tmp_path / "b") and len(digest(tmp_path / "a")) == 7
    victim = tmp_path / "a" / first.shards[2].file
    victim.unlink()  # as a killed run leaves it: that shard never got its name
    (tmp_path / "a" / f".{victim.name}.host.1.abcd.tmp").write_bytes(b"half")
    again = export(root, out=tmp_path / "a", shard_size=10, seed=3)
    assert again.written == 1 and digest(tmp_path / "a") == digest(tmp_path / "b")
    with pytest.raises(OverwriteRefusedError):
        export(root, out=tmp_path / "a", shard_size=10, seed=4)
    assert second.written == 7


@settings(max_examples=60, deadline=None)
@given(parts=st.lists(st.binary(max_size=3000), max_size=40), most=st.integers(1, 5000))
def test_a_shard_file_gets_every_byte_when_it_takes_fewer_than_given(parts: list[bytes], most: int) -> None:
    real = os.writev

    def taking_at_most_most(fd: int, buffers: Sequence[bytes]) -> int:
        given = b"".join(buffers)
        return real(fd, [given[:most]]) if given else 0

    with tempfile.TemporaryFile() as file, unittest.mock.patch.object(os, "writev", taking_at_most_most):
        shard_file.write_all(file.fileno(), parts)
        file.seek(0)
        assert file.read() == b"".join(parts)


@given(data=st.binary(max_size=3000), hint=st.integers(0, 4000))
def test_a_file_is_read_whole_whatever_size_it_was_said_to_have(data: bytes, hint: int) -> None:
    with tempfile.NamedTemporaryFile() as file:
        file.write(data)
        file.flush()
        assert read_whole(file.name, hint) == data
        assert read_whole(Path(file.name)) == data


class _SmallBatches(shard_file.ShardFile):
    BATCH_BYTES, BATCH_PARTS = 7, 3  # a large part is written in slices, several small ones at once


@given(calls=st.lists(st.lists(st.binary(max_size=40), max_size=5), max_size=20))
def test_a_shard_file_writes_and_hashes_every_part_given_in_order(calls: list[list[bytes]]) -> None:
    everything = b"".join(b"".join(parts) for parts in calls)
    with tempfile.TemporaryFile() as file:
        out = _SmallBatches(file)
        for parts in calls:
            assert out.write(*parts) == sum(map(len, parts))
        assert out.tell() == len(everything)
        assert out.xxh3_64() == xxhash.xxh3_64_hexdigest(everything)
        file.seek(0)
        assert file.read() == everything


def test_shards_sent_to_disk_as_they_are_written_hold_the_same_bytes(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    export(root, out=tmp_path / "once", shard_size=10)
    started: list[tuple[int, int, int]] = []
    real = atomic.start_writeback

    def counted(fd: int, start: int, length: int) -> None:
        started.append((fd, start, length))
        real(fd, start, length)

    monkeypatch.setattr(shard_file, "WRITEBACK_BYTES", 1)
    monkeypatch.setattr(shard_file.ShardFile, "BATCH_BYTES", 1)  # a write, then a writeback, per part
    monkeypatch.setattr(atomic, "start_writeback", counted)
    export(root, out=tmp_path / "as-written", shard_size=10, workers=1)  # written here, where it is counted
    shards = sorted((tmp_path / "once").glob("*.tar"))
    assert sum(length for _fd, _start, length in started) == sum(s.stat().st_size for s in shards), "each byte once"
    for shard in shards:
        assert (tmp_path / "as-written" / shard.name).read_bytes() == shard.read_bytes()


def test_shards_written_on_worker_processes_are_the_ones_one_process_writes(root: Path, tmp_path: Path) -> None:
    alone = export(root, out=tmp_path / "alone", shard_size=10, workers=1)
    apart = export(root, out=tmp_path / "apart", shard_size=10, workers=2)
    assert apart.shards == alone.shards and apart.written == alone.written == 7
    for shard in alone.shards:
        assert (tmp_path / "apart" / shard.file).read_bytes() == (tmp_path / "alone" / shard.file).read_bytes()


def test_the_train_shuffle_is_the_same_in_one_bucket_or_256(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = root / "64"
    one = [sample.path for sample in SplitSamples(tree, "train", 7)]
    monkeypatch.setattr(SplitSamples, "BUCKET_SAMPLES", 0)  # as many buckets as there may be
    assert [sample.path for sample in SplitSamples(tree, "train", 7)] == one and len(one) == 39


rows = st.builds(
    Row,
    path=st.text("ab/_.", max_size=6).map(lambda name: f"val/n0/{name}"),
    bytes=st.integers(0, 10**12),
    wnid=st.sampled_from(["n01440764", "n15075141"]),
    origin=st.sampled_from(["", '["pack", "p/0001.pack", 512, 100]']),
)


@given(st.lists(rows, max_size=40), st.integers(1, 7))
@settings(max_examples=60, deadline=None)
def test_a_sort_on_disk_is_a_stable_sort_whatever_the_runs(given_rows: list[Row], run_rows: int) -> None:
    with tempfile.TemporaryDirectory() as spool:
        on_disk = list(sorted_on_disk(given_rows, key_of_row, Path(spool), run_rows))
        assert len(os.listdir(spool)) == -(-len(given_rows) // run_rows), "runs of run_rows each"
    assert on_disk == sorted(given_rows, key=key_of_row)


def key_of_row(row: Row) -> str:
    return key_of(row.path)


def test_val_by_name_is_the_same_in_one_run_or_many(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    val = SplitSamples(root / "64", "val", 7, spool_in=tmp_path)
    one = [sample.path for sample in val.by_name()]
    monkeypatch.setattr(SplitSamples, "RUN_ROWS", 3)
    assert [sample.path for sample in val.by_name()] == one and len(one) == len(val) > 3 * 3
    assert one == sorted(one, key=key_of) != sorted(one)
    assert not any(tmp_path.iterdir()), "the spool is gone"


def test_the_shuffle_spools_beside_the_export_and_a_killed_runs_spool_is_swept(root: Path, tmp_path: Path) -> None:
    from imagenet_cli.exports.destinations import Folder

    out = tmp_path / "wds"
    out.mkdir()
    shuffled = iter(SplitSamples(root / "64", "train", 7, spool_in=out))
    next(shuffled)  # the buckets are written, the first taken: a run killed here leaves them
    (spool,) = out.iterdir()
    assert atomic.is_temporary(spool.name) and spool.name.startswith(".shuffle.") and any(spool.iterdir())
    with Folder(out).held(wait=False):  # the next run, holding the folder: a killed run's spool goes
        assert not spool.exists()
    assert len(list(shuffled)) == 38  # a run that ends removes its own
    assert not any(out.iterdir())


def test_closing_the_samples_ends_their_streams_and_removes_the_spools(root: Path, tmp_path: Path) -> None:
    train, val = (SplitSamples(root / "64", split, 7, spool_in=tmp_path) for split in ("train", "val"))
    streams = [iter(train), val.by_name()]
    for stream in streams:
        next(stream)  # stopped here, as an error would stop the export: the spools are still there
    assert len(list(tmp_path.iterdir())) == 2
    train.close()
    val.close()
    assert not any(tmp_path.iterdir())
    with pytest.raises(StopIteration):
        next(streams[0])


def test_the_cli_writes_under_the_root_and_says_where(root: Path) -> None:
    result = imagenet("export", "webdataset", "--root", str(root), "-q")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{root / 'exports' / 'webdataset-64'}\n"
    record = json.loads((root / "exports" / "webdataset-64" / "export.json").read_text())
    assert [s["samples"] for s in record["shards"]] == [39, 26]


def test_verify_checks_an_export_against_its_record(root: Path, tmp_path: Path) -> None:
    from imagenet_cli.checks import verify

    out = tmp_path / "wds"
    result = export(root, out=out, shard_size=10)
    assert verify(root, paths=[out], deep=True).ok
    changed = out / result.shards[0].file
    data = bytearray(changed.read_bytes())
    data[600] ^= 0xFF  # a flipped byte inside the first sample
    changed.write_bytes(bytes(data))
    (out / result.shards[1].file).unlink()
    (out / "imagenet1k-train-9999.tar").write_bytes(b"")
    report = verify(root, paths=[out])
    kinds = {(p.kind, p.where) for p in report.checks[0].problems}
    assert kinds == {
        ("checksum", result.shards[0].file),
        ("missing", result.shards[1].file),
        ("extra", "imagenet1k-train-9999.tar"),
    }


def test_verify_of_the_root_finds_its_exports(official_root: Path, tmp_path: Path) -> None:
    from imagenet_cli.checks import verify

    root = prepared_copy(official_root, tmp_path, "32")
    made = export(root)
    report = verify(root)
    assert report.ok and [c.path for c in report.checks if c.kind == "export"] == [made.path]


def test_max_shard_bytes_keeps_every_shard_under_it(root: Path, tmp_path: Path) -> None:
    limit = 64 << 10
    result = export(root, out=tmp_path / "wds", shard_size=1000, max_shard_bytes=limit, splits=["train"])
    sizes = [s.bytes for s in result.shards]
    assert len(sizes) > 1 and max(sizes) <= limit and result.samples == {"train": 39}
    read_back(tmp_path / "wds", "train")


def test_default_shards_are_named_and_counted_as_timms(root: Path, tmp_path: Path) -> None:
    """The sample: one shard per split, under the names a full export starts with."""
    result = imagenet("export", "webdataset", "--root", str(root), "--out", str(tmp_path / "wds"))
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "wds" / "_info.json").read_text())["splits"]
    assert info["train"]["filenames"] == ["imagenet1k-train-0000.tar"]
    assert info["validation"]["filenames"] == ["imagenet1k-validation-00.tar"]
    assert "train: imagenet1k-train-0000.tar" in result.stdout


@pytest.mark.parametrize(
    ("split", "images", "shards", "pattern"),
    [
        ("train", catalogue.SPLIT_IMAGES["train"], 1024, "imagenet1k-train-{0000..1023}.tar"),
        ("val", catalogue.SPLIT_IMAGES["val"], 64, "imagenet1k-validation-{00..63}.tar"),
    ],
)
def test_the_full_splits_make_timms_1024_and_64_shards(split: str, images: int, shards: int, pattern: str) -> None:
    from imagenet_cli.exports.webdataset import SHARD_SIZES, brace_pattern, shard_names

    per_shard = SHARD_SIZES[split]
    count = -(-images // per_shard)
    assert count == shards and (count - 1) * per_shard < images <= count * per_shard
    assert brace_pattern(shard_names("imagenet1k", split, count)) == pattern


def test_shard_numbers_widen_only_past_their_width() -> None:
    from imagenet_cli.exports.webdataset import brace_pattern, shard_names

    assert brace_pattern(shard_names("in1k", "val", 101)) == "in1k-validation-{000..100}.tar"
    assert shard_names("in1k", "train", 3) == ["in1k-train-0000.tar", "in1k-train-0001.tar", "in1k-train-0002.tar"]


def test_the_readmes_webdataset_lines_read_every_train_sample(root: Path, tmp_path: Path) -> None:
    from . import docs

    block = next(
        b for b in re.findall(r"```python\n(.*?)```", docs.README.read_text(), re.DOTALL) if "import webdataset" in b
    )
    folder = tmp_path / "wds"
    export(root, out=folder)
    namespace: dict[str, Any] = {}
    exec(block.replace("ROOT/exports/webdataset-224", str(folder)), namespace)  # noqa: S102 - the README's own lines
    samples = list(namespace["train"])
    assert len(samples) == json.loads((folder / "_info.json").read_text())["splits"]["train"]["num_samples"] == 39
    assert all(isinstance(label, int) for _, label in samples)


def test_export_json_round_trips_through_its_one_record_type_and_a_damaged_one_is_one_line(
    root: Path, tmp_path: Path
) -> None:
    from imagenet_cli.exports.record import SCHEMA, ExportRecord

    result = export(root, out=tmp_path / "wds", splits=["val"])
    record = ExportRecord.read(tmp_path / "wds")
    assert record.schema == SCHEMA and record.format == "webdataset" and record.samples() == result.samples
    assert list(record.shards) == result.shards
    assert ExportRecord.from_json(record.to_json(), tmp_path) == record
    (tmp_path / "wds" / "export.json").write_text('{"options": {}}')
    said = imagenet("verify", "--root", str(root), str(tmp_path / "wds"))
    assert said.exit_code == 1 and "is not an export record (KeyError" in said.stderr and "bug" not in said.stderr
