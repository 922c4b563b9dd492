"""Reading a zip's central directory as a stream, and members by offset, ZIP64 included."""

from __future__ import annotations

import io
import random
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from imagenet_cli import zip_entries
from imagenet_cli.checks import verify
from imagenet_cli.errors import ArchiveError
from imagenet_cli.trees import prepare


def make_zip(path: Path, files: dict[str, bytes], zip64: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if zip64:  # force every ZIP64 record a 150 GB bundle has, on a small file
        monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 1000)
        monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 10)
    with zipfile.ZipFile(path, "w") as archive:
        for i, (name, data) in enumerate(files.items()):
            archive.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED if i % 2 else zipfile.ZIP_STORED)
    monkeypatch.undo()


@pytest.fixture
def files() -> dict[str, bytes]:
    rng = random.Random(0)
    contents = {
        f"dir/file{i}.bin": rng.randbytes(rng.randint(0, 4000)) + b"z" * rng.randint(0, 4000) for i in range(40)
    }
    contents["nom-accentué.txt"] = "é".encode() * 500
    return contents


@pytest.mark.parametrize("zip64", [False, True])
def test_entries_and_members_match_zipfile(
    tmp_path: Path, files: dict[str, bytes], zip64: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.zip"
    make_zip(path, files, zip64, monkeypatch)
    assert (b"PK\x06\x06" in path.read_bytes()) == zip64
    found = list(zip_entries.entries(path))
    assert [e.name for e in found] == list(files)
    with open(path, "rb") as file:
        assert {e.name: zip_entries.read(file, e) for e in found} == files
        big = max(found, key=lambda e: e.size)
        with zip_entries.open_member(file, big) as stream:  # read in small pieces
            assert b"".join(iter(lambda: stream.read(777), b"")) == files[big.name]


def test_a_damaged_member_fails_its_crc(
    tmp_path: Path, files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.zip"
    make_zip(path, files, False, monkeypatch)
    entry = next(e for e in zip_entries.entries(path) if e.method == zipfile.ZIP_STORED and e.size > 100)
    data = bytearray(path.read_bytes())
    data[entry.offset + 30 + len(entry.name.encode()) + 50] ^= 0xFF
    path.write_bytes(bytes(data))
    with open(path, "rb") as file, pytest.raises(ArchiveError, match="bad CRC-32"):
        zip_entries.read(file, entry)


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "a.zip"
    path.write_bytes(b"not a zip at all" * 10)
    with pytest.raises(ArchiveError, match="no end of central directory"):
        list(zip_entries.entries(path))


def test_a_kaggle_zip_with_a_class_split_in_two_still_prepares(tmp_path: Path) -> None:
    pixel = io.BytesIO()
    Image.new("RGB", (16, 16), "blue").save(pixel, "JPEG")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with zipfile.ZipFile(downloads / "imagenet-object-localization-challenge.zip", "w") as archive:
        for wnid, n in (("n01440764", 1), ("n01443537", 2), ("n01440764", 3)):
            archive.writestr(f"ILSVRC/Data/CLS-LOC/train/{wnid}/{wnid}_{n}.JPEG", pixel.getvalue())
    result = prepare(tmp_path, ["16"], splits=["train"], workers=1)
    assert result.trees[0].images == {"train": 3}
    paths = [line.split("\t")[0] for line in (tmp_path / "16" / "manifest.tsv").read_text().splitlines()[1:]]
    assert (
        paths
        == sorted(paths)
        == [
            "train/n01440764/n01440764_1.JPEG",
            "train/n01440764/n01440764_3.JPEG",
            "train/n01443537/n01443537_2.JPEG",
        ]
    )
    assert verify(tmp_path, paths=[tmp_path / "16"]).ok
    assert prepare(tmp_path, ["16"], splits=["train"], workers=1).shards_run == 0  # the runs are cut alike again
