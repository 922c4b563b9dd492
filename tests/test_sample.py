"""The built-in sample has the exact shapes of the real archives, read back member by member."""

from __future__ import annotations

import csv
import io
import re
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from imagenet_cli import archives, catalogue, hashing, sample
from imagenet_cli.checks import verify
from imagenet_cli.download import download_sample
from imagenet_cli.errors import InvalidArgumentError, OverwriteRefusedError
from imagenet_cli.records import read_record
from imagenet_cli.sample.images import TINY, tiny_jpeg

from .builders import read_member
from .conftest import SMALL, SampleChoice

TRAIN_NAME = re.compile(r"(n\d{8})_([1-9]\d*)\.JPEG")  # unpadded numbers
VAL_NAME = re.compile(r"ILSVRC2012_val_\d{8}\.JPEG")
TEST_NAME = re.compile(r"ILSVRC2012_test_\d{8}\.JPEG")


def tar_members(data_or_path: bytes | Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    if isinstance(data_or_path, Path):
        tar = tarfile.open(data_or_path)
    else:
        tar = tarfile.open(fileobj=io.BytesIO(data_or_path))
    with tar:
        return [(m, read_member(tar, m) if m.isfile() else b"") for m in tar]


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def official_images(root: Path) -> dict[str, bytes]:
    """Every image of the official-form sample by file name (train, val and test)."""
    downloads = root / "downloads"
    images: dict[str, bytes] = {}
    for _, data in tar_members(downloads / archives.TRAIN_TAR):
        images.update((m.name, d) for m, d in tar_members(data))
    for tar_name in (archives.VAL_TAR, archives.TEST_TAR):
        images.update((m.name, d) for m, d in tar_members(downloads / tar_name))
    return images


def test_train_tar_is_a_gnu_tar_of_per_class_tars(official_root: Path) -> None:
    path = official_root / "downloads" / archives.TRAIN_TAR
    assert path.stat().st_size % 10240 == 0  # whole GNU tar records, as the real one
    outer = tar_members(path)
    names = [m.name for m, _ in outer]
    expected = {f"{w}.tar" for w in sample.default_classes()}
    assert set(names) == expected and len(names) == len(expected)
    assert names != sorted(names), "the real train tar is not in sorted order"
    for member, data in outer:
        assert member.isfile() and member.name.endswith(".tar")
        wnid = member.name.removesuffix(".tar")
        inner = tar_members(data)
        assert len(inner) == SMALL["train_per_class"]
        for m, _ in inner:
            match = TRAIN_NAME.fullmatch(m.name)
            assert match and match.group(1) == wnid, m.name


def test_train_numbers_are_not_consecutive(official_root: Path) -> None:
    numbers = sorted(int(m.group(2)) for n in official_images(official_root) if (m := TRAIN_NAME.fullmatch(n)))
    assert any(b - a > 1 for a, b in zip(numbers, numbers[1:], strict=False))


def test_val_tar_is_flat_unsorted_and_really_labelled(official_root: Path) -> None:
    path = official_root / "downloads" / archives.VAL_TAR
    assert path.stat().st_size % 10240 == 0
    names = [m.name for m, _ in tar_members(path)]
    assert all(VAL_NAME.fullmatch(n) for n in names)
    assert names != sorted(names)
    labels = [catalogue.val_class(n).wnid for n in names]
    assert sorted(set(labels)) == sorted(sample.default_classes())
    assert all(labels.count(w) == SMALL["val_per_class"] for w in set(labels))


def test_test_tar_is_flat_and_unlabelled(official_root: Path) -> None:
    names = [m.name for m, _ in tar_members(official_root / "downloads" / archives.TEST_TAR)]
    assert len(names) == SMALL["test_images"] and all(TEST_NAME.fullmatch(n) for n in names)


def test_devkit_has_the_real_layout_and_ground_truth(official_root: Path) -> None:
    members = {m.name: d for m, d in tar_members(official_root / "downloads" / archives.DEVKIT)}
    top = "ILSVRC2012_devkit_t12"
    assert {top, f"{top}/data", f"{top}/readme.txt", f"{top}/data/ILSVRC2012_validation_ground_truth.txt"} <= set(
        members
    )
    truth = members[f"{top}/data/ILSVRC2012_validation_ground_truth.txt"].decode().splitlines()
    assert len(truth) == 50000 and truth[:3] == ["490", "361", "171"] and truth[-1] == "186"
    # Line k, read through the devkit order, is the label of ILSVRC2012_val_<k>.
    assert all(catalogue.by_devkit_id(int(t)).wnid == w for t, w in zip(truth, catalogue.val_labels(), strict=True))


def test_real_quirk_files_appear_under_their_real_names(official_root: Path) -> None:
    images = official_images(official_root)
    png = images["n02105855_2933.JPEG"]
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert decode(images["n01739381_1309.JPEG"]).mode == "CMYK"
    assert decode(images["ILSVRC2012_val_00019877.JPEG"]).mode == "CMYK"


def test_other_shapes_real_imagenet_has(official_root: Path) -> None:
    decoded = {name: decode(data) for name, data in official_images(official_root).items()}
    modes = {image.mode for image in decoded.values()}
    assert {"RGB", "L", "CMYK"} <= modes
    assert any(image.info.get("progressive") or image.info.get("progression") for image in decoded.values())
    sizes = [image.size for image in decoded.values()]
    assert max(max(s) for s in sizes) >= 3000
    assert (500, 33) in sizes
    assert sizes.count((500, 375)) > len(sizes) // 4  # ImageNet's most common size dominates


def test_images_look_like_photographs_not_flat_colour(official_root: Path) -> None:
    from PIL import ImageStat

    for name, data in list(official_images(official_root).items())[:10]:
        image = decode(data).convert("RGB")
        assert min(ImageStat.Stat(image).stddev) > 10, name
        assert len(data) > 20_000, name  # detail that JPEG has to encode


def test_records_hold_the_checksums_of_what_was_written(official_root: Path) -> None:
    for name in sample.OFFICIAL_FILES:
        path = official_root / "downloads" / name
        record = read_record(path)
        assert record is not None and record.source == "sample" and record.matches(path)
        assert {"md5": record.md5, "xxh3_64": record.xxh3_64} == hashing.hash_file(path)
        assert record.size == path.stat().st_size


def test_same_options_same_bytes(tmp_path: Path) -> None:
    options = sample.SampleOptions(classes=("n01440764",), train_per_class=2, val_per_class=1, test_images=1, seed=7)
    first = sample.write_sample(tmp_path / "a", "official", options)
    second = sample.write_sample(tmp_path / "b", "official", options)
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    other_seed = sample.SampleOptions(classes=("n01440764",), train_per_class=2, val_per_class=1, test_images=1, seed=8)
    third = sample.write_sample(tmp_path / "c", "official", other_seed)
    assert first[0].read_bytes() != third[0].read_bytes()


def test_kaggle_zip_layout(kaggle_root: Path) -> None:
    path = kaggle_root / "downloads" / archives.KAGGLE_ZIP
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None  # every member's CRC-32 holds
        names = archive.namelist()
        top = {n for n in names if "/" not in n}
        assert top == {
            "LOC_synset_mapping.txt",
            "LOC_val_solution.csv",
            "LOC_train_solution.csv",
            "LOC_sample_submission.csv",
        }
        train = [n for n in names if n.startswith("ILSVRC/Data/CLS-LOC/train/")]
        val = [n for n in names if n.startswith("ILSVRC/Data/CLS-LOC/val/")]
        test = [n for n in names if n.startswith("ILSVRC/Data/CLS-LOC/test/")]
        classes = sample.default_classes()
        assert len(train) == len(classes) * SMALL["train_per_class"]
        for name in train:
            wnid, file = name.split("/")[-2:]
            assert (m := TRAIN_NAME.fullmatch(file)) and m.group(1) == wnid
        assert len(val) == len(classes) * SMALL["val_per_class"]
        assert all(VAL_NAME.fullmatch(n.split("/", 4)[4]) for n in val), "val is flat"
        assert all(TEST_NAME.fullmatch(n.split("/", 4)[4]) for n in test)
        for sets_file in ("train_cls.txt", "train_loc.txt", "val.txt", "test.txt"):
            assert f"ILSVRC/ImageSets/CLS-LOC/{sets_file}" in names
        assert any(n.startswith("ILSVRC/Annotations/CLS-LOC/val/") and n.endswith(".xml") for n in names)
        assert archive.read("LOC_synset_mapping.txt").decode().splitlines()[0] == "n01440764 tench, Tinca tinca"
        cls = archive.read("ILSVRC/ImageSets/CLS-LOC/train_cls.txt").decode().splitlines()
        assert re.fullmatch(r"n\d{8}/n\d{8}_\d+ 1", cls[0])
        val_rows = list(csv.reader(io.StringIO(archive.read("LOC_val_solution.csv").decode())))
        train_rows = list(csv.reader(io.StringIO(archive.read("LOC_train_solution.csv").decode())))

    assert val_rows[0] == ["ImageId", "PredictionString"]
    assert len(val_rows) - 1 == len(val)
    for image_id, prediction in val_rows[1:]:
        assert prediction.endswith(" "), "Kaggle's strings end with a space"
        fields = prediction.split()
        assert len(fields) % 5 == 0
        wnids = set(fields[::5])
        assert wnids == {catalogue.val_class(image_id).wnid}
    for image_id, prediction in train_rows[1:]:
        assert prediction.split()[0] == image_id.split("_")[0]


def test_rerun_with_the_same_options_keeps_the_files(tmp_path: Path) -> None:
    options: SampleChoice = {"classes": ["n01440764"], "train_per_class": 2, "val_per_class": 1, "test_images": 0}
    first = download_sample(tmp_path, **options)
    second = download_sample(tmp_path, **options)
    assert {f.status for f in first.files} == {"written"} and {f.status for f in second.files} == {"kept"}
    assert [f.md5 for f in first.files] == [f.md5 for f in second.files]
    third = download_sample(tmp_path, **options, seed=1)
    assert {f.status for f in third.files} == {"written"}


def test_never_overwrites_a_file_it_did_not_make(tmp_path: Path) -> None:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    real = downloads / archives.VAL_TAR
    real.write_bytes(b"someone's real archive")
    with pytest.raises(OverwriteRefusedError, match=archives.VAL_TAR):
        download_sample(tmp_path, classes=["n01440764"], train_per_class=1, val_per_class=1)
    assert real.read_bytes() == b"someone's real archive"


@pytest.mark.parametrize(
    "options",
    [{"classes": ()}, {"train_per_class": 0}, {"val_per_class": 51}, {"classes": ("n01440764", "n01440764")}],
)
def test_invalid_sample_options(options: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgumentError):
        sample.SampleOptions(**options)


def test_kaggle_2019_zip_holds_one_tar_gz_with_the_same_files(kaggle_root: Path, kaggle2019_root: Path) -> None:
    import tarfile

    with zipfile.ZipFile(kaggle2019_root / "downloads" / archives.KAGGLE_ZIP) as archive:
        assert archive.namelist() == ["imagenet_object_localization_patched2019.tar.gz"]
        with archive.open(archive.namelist()[0]) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
            inner = {m.name: read_member(tar, m) for m in tar if m.isfile()}
    with zipfile.ZipFile(kaggle_root / "downloads" / archives.KAGGLE_ZIP) as archive:
        current = {name: archive.read(name) for name in archive.namelist()}
    assert inner == current


def test_devkit_meta_mat_reads_as_torchvision_reads_it(official_root: Path) -> None:
    """torchvision's ImageNet loader: loadmat(squeeze_me=True), leaves by num_children, then ID/WNID/words."""
    import scipy.io

    members = {m.name: d for m, d in tar_members(official_root / "downloads" / archives.DEVKIT)}
    meta = scipy.io.loadmat(io.BytesIO(members["ILSVRC2012_devkit_t12/data/meta.mat"]), squeeze_me=True)["synsets"]
    assert meta.dtype.names == sample.META_FIELDS
    nums_children = list(zip(*meta, strict=True))[4]
    leaves = [meta[i] for i, n in enumerate(nums_children) if n == 0]
    ids, wnids, words = list(zip(*leaves, strict=True))[:3]
    assert len(leaves) == 1000 and list(ids) == list(range(1, 1001))
    assert wnids[0] == "n02119789" and words[0] == "kit fox, Vulpes macrotis"
    assert all(catalogue.by_devkit_id(int(i)).wnid == w for i, w in zip(ids, wnids, strict=True))
    assert all(tuple(w.split(", ")) == catalogue.by_wnid(n).names for n, w in zip(wnids, words, strict=True))


def test_the_real_shaped_train_counts_add_up_to_ilsvrc_2012() -> None:
    counts = sample.real_shaped_train_counts()
    assert sorted(counts) == sorted(catalogue.wnids())
    assert sum(counts.values()) == catalogue.SPLIT_IMAGES["train"]
    assert (min(counts.values()), max(counts.values())) == catalogue.TRAIN_PER_CLASS


def test_at_a_scale_the_sample_has_all_1000_classes_in_the_real_counts_of_tiny_images(tmp_path: Path) -> None:
    scale = 0.002
    download_sample(tmp_path, scale=scale, test_images=0)
    downloads = tmp_path / "downloads"
    per_class, images = {}, []
    with tarfile.open(downloads / archives.TRAIN_TAR) as outer:
        for member in outer:
            with tarfile.open(fileobj=io.BytesIO(read_member(outer, member))) as inner:
                per_class[member.name.removesuffix(".tar")] = [m.name for m in inner]
                images.append(read_member(inner, inner.getmembers()[0]))
    wanted = {w: max(1, round(n * scale)) for w, n in sample.real_shaped_train_counts().items()}
    assert {w: len(names) for w, names in per_class.items()} == wanted
    with tarfile.open(downloads / archives.VAL_TAR) as val:
        assert len(val.getnames()) == 1000  # 50 per class x 0.002, at least one
    assert sum(len(data) < 3000 for data in images) > 900, "tiny images, but the quirks"
    report = verify(tmp_path)
    assert report.ok, [p for c in report.checks for p in c.problems]


def test_tiny_images_differ_by_name_and_decode() -> None:
    a, b = tiny_jpeg("0:n01440764_1.JPEG"), tiny_jpeg("0:n01440764_2.JPEG")
    assert a != b
    for data in (a, b):
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            assert image.size == TINY
