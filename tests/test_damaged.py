"""Damaged and hostile archives: always named, never a silent short result, never a crash.

Each archive is the sample's, damaged here the way a bad disk, a bad download or a hostile mirror
would: zeros over the middle, duplicate members, absurd sizes, over-long names, a zip bomb.
"""

from __future__ import annotations

import io
import shutil
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from imagenet_cli import archives, hashing, manifest, records
from imagenet_cli.checks import verify
from imagenet_cli.errors import EXIT_PROBLEMS
from imagenet_cli.trees import prepare

from .builders import read_member
from .conftest import imagenet


def copy_root(official_root: Path, root: Path) -> Path:
    shutil.copytree(official_root / "downloads", root / "downloads")
    return root


def class_tars(train: Path) -> list[tarfile.TarInfo]:
    return list(archives.tar_headers(train, lambda where, why: None))


def overwrite(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as file:
        file.seek(offset)
        file.write(data)


@pytest.fixture
def clean_tree(official_root: Path, tmp_path: Path) -> Path:
    root = copy_root(official_root, tmp_path / "clean")
    prepare(root, ["64"], workers=2)
    return root / "64"


# --- zeros over the middle ---------------------------------------------------------------------


def test_zeros_inside_a_class_tar_are_a_named_failure_and_the_repaired_archive_converges(
    official_root: Path, tmp_path: Path, clean_tree: Path
) -> None:
    root = copy_root(official_root, tmp_path / "root")
    train = root / "downloads" / archives.TRAIN_TAR
    good = train.read_bytes()
    victim = class_tars(train)[4]
    with tarfile.open(fileobj=io.BytesIO(good[victim.offset_data : victim.offset_data + victim.size])) as inner:
        second = inner.getmembers()[1]
    # The second image's header and what follows, zeroed: tarfile alone takes it for the end.
    overwrite(train, victim.offset_data + second.offset, bytes(2048))

    result = imagenet("prepare", "--root", str(root), "--size", "64")
    assert result.exit_code == EXIT_PROBLEMS, result.output
    assert (
        f"failed: train/{victim.name.removesuffix('.tar')}/{victim.name}: the class tar ends at byte" in result.stdout
    )
    report = verify(root, paths=[train], deep=True)
    assert any(victim.name in p.where and "data follows" in p.detail for p in report.checks[0].problems)

    train.write_bytes(good)  # fetched again
    again = imagenet("prepare", "--root", str(root), "--size", "64")
    assert again.exit_code == 0, again.output
    assert (root / "64" / "manifest.tsv").read_text() == (clean_tree / "manifest.tsv").read_text()


def test_zeros_over_a_class_tar_header_stop_the_listing_with_its_name(official_root: Path, tmp_path: Path) -> None:
    root = copy_root(official_root, tmp_path / "root")
    train = root / "downloads" / archives.TRAIN_TAR
    victim = class_tars(train)[6]
    overwrite(train, victim.offset, bytes(1024))
    result = imagenet("prepare", "--root", str(root), "--size", "64")
    assert result.exit_code == 1
    [line] = result.stderr.splitlines()
    assert f"{archives.TRAIN_TAR}'s listing ends at byte {victim.offset:,}" in line and "this is a bug" not in line
    assert not (root / "64" / manifest.MANIFEST).exists(), "no short tree"


# --- members that are not what they claim ------------------------------------------------------


def tar_bytes(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            info = tarfile.TarInfo(info.name) if isinstance(info, str) else info
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


Members = list[tuple[tarfile.TarInfo, bytes]]


def read_tar(data: bytes) -> Members:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [(m, read_member(tar, m)) for m in tar if m.isfile()]


def rewrite_class_tar(train: Path, index: int, change: Callable[[Members], Members]) -> str:
    """Rebuild the train tar with class tar number ``index`` changed by ``change(members) -> members``."""
    outer = read_tar(train.read_bytes())
    info, inner = outer[index]
    outer[index] = (info, tar_bytes(change(read_tar(inner))))
    train.write_bytes(tar_bytes(outer))
    return info.name.removesuffix(".tar")


def claims(data: bytes, member: int, size: int) -> bytes:
    """A tar whose ``member``-th header claims ``size`` bytes, with its checksum made right again."""
    offsets = [m.offset for m in tarfile.open(fileobj=io.BytesIO(data))]
    header = bytearray(data[offsets[member] : offsets[member] + 512])
    header[124:136] = f"{size:011o}\0".encode()
    header[148:156] = b" " * 8
    header[148:156] = f"{sum(header):06o}\0 ".encode()
    return data[: offsets[member]] + bytes(header) + data[offsets[member] + 512 :]


def prepare_fails_naming(root: Path, *needles: str) -> str:
    result = imagenet("prepare", "--root", str(root), "--size", "64")
    assert result.exit_code == EXIT_PROBLEMS, result.output
    assert "this is a bug" not in result.output
    for needle in needles:
        assert needle in result.stdout, result.stdout
    return result.stdout


def test_an_image_twice_in_a_class_tar_is_named_and_neither_copy_used(
    official_root: Path, tmp_path: Path, clean_tree: Path
) -> None:
    root = copy_root(official_root, tmp_path / "root")
    train = root / "downloads" / archives.TRAIN_TAR
    good = train.read_bytes()
    twice: list[str] = []

    def doubled(members: Members) -> Members:
        twice.append(members[0][0].name)
        return members + [members[0]]

    wnid = rewrite_class_tar(train, 2, doubled)
    prepare_fails_naming(root, f"failed: train/{wnid}/{twice[0]}: appears twice in the input")
    assert not (root / "64" / "train" / wnid / twice[0]).exists()
    report = verify(root, paths=[train], deep=True)
    assert any(p.kind == "duplicate" and twice[0] in p.where for p in report.checks[0].problems)

    train.write_bytes(good)
    assert imagenet("prepare", "--root", str(root), "--size", "64").exit_code == 0
    assert (root / "64" / "manifest.tsv").read_text() == (clean_tree / "manifest.tsv").read_text()


def test_a_class_tar_twice_in_the_train_tar_is_named(official_root: Path, tmp_path: Path) -> None:
    root = copy_root(official_root, tmp_path / "root")
    train = root / "downloads" / archives.TRAIN_TAR
    outer = read_tar(train.read_bytes())
    train.write_bytes(tar_bytes(outer + [outer[3]]))
    wnid = outer[3][0].name.removesuffix(".tar")
    prepare_fails_naming(root, f"failed: train/{wnid}/", "appears twice in the input")
    assert not (root / "64" / "train" / wnid).exists(), "no image of the class is trusted"
    report = verify(root, paths=[train])
    assert [p.where for p in report.checks[0].problems if p.kind == "duplicate"] == [f"{archives.TRAIN_TAR}:{wnid}.tar"]


def test_a_val_image_twice_is_named(official_root: Path, tmp_path: Path) -> None:
    root = copy_root(official_root, tmp_path / "root")
    val = root / "downloads" / archives.VAL_TAR
    members = read_tar(val.read_bytes())
    misnamed = (tarfile.TarInfo("ILSVRC2012_val_1.JPEG"), members[0][1])
    val.write_bytes(tar_bytes(members + [members[5], misnamed, misnamed]))
    prepare_fails_naming(root, f"{members[5][0].name}: appears twice in the input")
    report = verify(root, paths=[val])
    assert [p.where for p in report.checks[0].problems if p.kind == "duplicate"] == [
        f"{archives.VAL_TAR}:{members[5][0].name}",
        f"{archives.VAL_TAR}:ILSVRC2012_val_1.JPEG",
    ]


def test_an_over_long_image_name_fails_that_image_only(official_root: Path, tmp_path: Path) -> None:
    root = copy_root(official_root, tmp_path / "root")
    train = root / "downloads" / archives.TRAIN_TAR
    long = "n" * 300 + ".JPEG"
    wnid = rewrite_class_tar(train, 1, lambda members: members + [(tarfile.TarInfo(long), members[0][1])])
    out = prepare_fails_naming(root, "filesystems take at most 255")
    assert out.count("failed:") == 1
    assert manifest.TreeInfo.read(root / "64").splits["train"]["images"] == 39, "every other image made"
    assert wnid


@pytest.mark.parametrize("odd", ["\t", "\n"])
def test_an_image_name_with_a_tab_or_line_break_fails_that_image_only(
    official_root: Path, tmp_path: Path, odd: str
) -> None:
    """The tree's manifest and an export's sort hold a path a line, its fields tab-separated."""
    root = copy_root(official_root, tmp_path / "root")
    train = root / "downloads" / archives.TRAIN_TAR
    wnid = rewrite_class_tar(train, 1, lambda members: members + [(tarfile.TarInfo(f"x{odd}y.JPEG"), members[0][1])])
    prepare_fails_naming(root, "a file name with a control character")
    splits = manifest.TreeInfo.read(root / "64").splits
    assert splits["train"]["images"] == 39, "every other image made"
    assert len(list(manifest.read_manifest(root / "64"))) == sum(s["images"] for s in splits.values()), (
        "read back whole"
    )
    assert wnid


def test_a_member_claiming_8_gib_is_refused_unread(official_root: Path, tmp_path: Path) -> None:
    root = copy_root(official_root, tmp_path / "root")
    train = root / "downloads" / archives.TRAIN_TAR
    outer = read_tar(train.read_bytes())
    info, inner = outer[2]
    outer[2] = (info, claims(inner, 1, 8 << 30))
    train.write_bytes(tar_bytes(outer))
    prepare_fails_naming(root, f"train/{info.name.removesuffix('.tar')}/")
    report = imagenet("verify", "--root", str(root), "--deep", str(train))
    assert report.exit_code == EXIT_PROBLEMS and "this is a bug" not in report.output, report.output


# --- the Kaggle zip ----------------------------------------------------------------------------


def rebuilt_zip(source: Path, target: Path, extra: list[tuple[str, bytes]]) -> None:
    """The sample's zip with members added, recorded as the sample (so verify expects its classes)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            new.writestr(info, old.read(info))
        for name, data in extra:
            new.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    details = records.DownloadRecord.read(source).details
    records.write_record(target, hashing.hash_file(target), source="sample", details=details)


def test_a_zip_member_leaving_the_archive_is_named_not_skipped(kaggle_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "downloads").mkdir(parents=True)
    hostile = "ILSVRC/Data/CLS-LOC/train/../../../../evil.JPEG"
    rebuilt_zip(
        kaggle_root / "downloads" / archives.KAGGLE_ZIP, root / "downloads" / archives.KAGGLE_ZIP, [(hostile, b"x")]
    )
    prepare_fails_naming(root, f"{hostile}: refused: a '..' component")
    assert not (tmp_path / "evil.JPEG").exists()


def test_a_zip_bomb_is_refused_without_inflating(kaggle_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "downloads").mkdir(parents=True)
    bomb = "ILSVRC/Data/CLS-LOC/train/n01440764/n01440764_99999.JPEG"
    zeros = bytes(256 << 20)  # 256 MiB of zeros, 255 KiB deflated
    rebuilt_zip(
        kaggle_root / "downloads" / archives.KAGGLE_ZIP, root / "downloads" / archives.KAGGLE_ZIP, [(bomb, zeros)]
    )
    del zeros
    prepare_fails_naming(root, "n01440764_99999.JPEG: damaged zip member", "over the 67,108,864-byte cap")
    report = verify(root, paths=[root / "downloads" / archives.KAGGLE_ZIP], deep=True)
    assert any("cap" in p.detail for p in report.checks[0].problems)


def test_a_member_inflating_past_its_declared_size_stops_at_once(tmp_path: Path) -> None:
    import dataclasses

    from imagenet_cli import zip_entries
    from imagenet_cli.errors import ArchiveError

    path = tmp_path / "lying.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.JPEG", bytes(8 << 20))
    [entry] = zip_entries.entries(path)
    with open(path, "rb") as file, pytest.raises(ArchiveError, match="inflates past its declared 1,000 bytes"):
        zip_entries.read(file, dataclasses.replace(entry, size=1000))


# --- images ------------------------------------------------------------------------------------


def test_a_16_bit_png_is_scaled_to_8_bits_not_clipped() -> None:
    from PIL import Image, ImageStat

    from imagenet_cli.trees.resize import ImageFormat, Recipe, process

    image = Image.new("I;16", (256, 256))
    image.putdata([(x * 256) for _ in range(256) for x in range(256)])  # 0 … 65280, left to right
    data = io.BytesIO()
    image.save(data, "PNG")
    out = process(data.getvalue(), Recipe(("64",), format=ImageFormat.png)).outputs["64"]
    with Image.open(io.BytesIO(out)) as result:
        mean = ImageStat.Stat(result.convert("L")).mean[0]
    assert 120 < mean < 135, f"a grey ramp averages mid-grey, not white ({mean:.1f})"


def test_failure_messages_are_the_same_on_every_run() -> None:
    from imagenet_cli.decode_check import decode_problem
    from imagenet_cli.trees.resize import ImageError, Recipe, process

    messages: set[str] = set()
    for _ in range(2):
        with pytest.raises(ImageError) as raised:
            process(b"not an image at all", Recipe(("64",)))
        messages.add(str(raised.value))
        problem = decode_problem(b"not an image at all")
        assert problem is not None
        messages.add(problem)
    assert len(messages) == 1 and "0x" not in messages.pop()


def test_leftovers_of_killed_runs_are_swept_by_the_next(official_root: Path, tmp_path: Path) -> None:
    root = copy_root(official_root, tmp_path / "root")
    prepare(root, ["64"], workers=2)
    tree = root / "64"
    leftovers = [
        tree / ".shards" / ".train-n01440764.json.host.99.ab12cd34.tmp",
        tree / ".manifest.tsv.host.99.ab12cd34.tmp",
        tree / "train" / "n01440764" / ".n01440764_1.JPEG.host.99.ab12cd34.tmp",
    ]
    for path in leftovers:
        path.write_bytes(b"half")
    assert prepare(root, ["64"], workers=2).shards_run == 0
    assert not any(path.exists() for path in leftovers)


@pytest.mark.parametrize("name", ["ILSVRC2012_val_00050001.JPEG", "ILSVRC2012_val_1.JPEG", "readme.txt"])
def test_a_val_member_with_no_val_name_is_named_and_the_rest_prepared(
    official_root: Path, tmp_path: Path, name: str
) -> None:
    root = copy_root(official_root, tmp_path / "root")
    val = root / "downloads" / archives.VAL_TAR
    members = read_tar(val.read_bytes())
    val.write_bytes(tar_bytes(members + [(tarfile.TarInfo(name), members[0][1])]))
    out = prepare_fails_naming(root, f"{name}: not an ILSVRC2012_val_<8 digits>.JPEG name numbered 1–50,000")
    assert out.count("failed:") == 1
    assert manifest.TreeInfo.read(root / "64").splits["val"]["images"] == len(members), "every other image made"
    assert [p.where for p in verify(root, paths=[val]).checks[0].problems if p.kind == "structure"] == [
        f"{archives.VAL_TAR}:{name}"
    ]


def test_a_kaggle_train_folder_that_is_no_wnid_is_named_and_the_rest_prepared(
    kaggle_root: Path, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    (root / "downloads").mkdir(parents=True)
    stray = "ILSVRC/Data/CLS-LOC/train/n99999999/n99999999_1.JPEG"
    rebuilt_zip(
        kaggle_root / "downloads" / archives.KAGGLE_ZIP, root / "downloads" / archives.KAGGLE_ZIP, [(stray, b"x")]
    )
    out = prepare_fails_naming(root, f"{stray}: not in a class folder named by one of the 1000 WNIDs")
    assert out.count("failed:") == 1
    assert manifest.TreeInfo.read(root / "64").splits["train"]["images"] == 39


def test_a_train_image_inside_another_class_tar_is_named_not_relabelled(official_root: Path, tmp_path: Path) -> None:
    root = copy_root(official_root, tmp_path / "root")
    train = root / "downloads" / archives.TRAIN_TAR
    outer = read_tar(train.read_bytes())
    other = outer[0][0].name.removesuffix(".tar")
    stranger = f"{other}_13401.JPEG"
    wnid = rewrite_class_tar(train, 1, lambda members: members + [(tarfile.TarInfo(stranger), members[0][1])])
    prepare_fails_naming(
        root, f"failed: train/{wnid}/{stranger}: its name says {other}", f"but it is in {wnid}'s images"
    )
    assert not list((root / "64" / "train").glob(f"*/{stranger}"))
    assert verify(root, paths=[root / "64"]).ok


def test_verify_deep_names_a_class_tar_cut_short_inside_and_reads_the_rest(official_root: Path, tmp_path: Path) -> None:
    root = copy_root(official_root, tmp_path / "root")
    train = root / "downloads" / archives.TRAIN_TAR
    outer = read_tar(train.read_bytes())
    info, inner = outer[2]
    last = len(read_tar(inner)) - 1
    outer[2] = (info, claims(inner, last, 50 * len(inner)))  # its last image claims more than the class tar holds
    train.write_bytes(tar_bytes(outer))
    result = imagenet("verify", "--root", str(root), str(train), "--deep")
    assert result.exit_code == EXIT_PROBLEMS, result.output
    assert "this is a bug" not in result.output
    assert (
        f"damaged: {archives.TRAIN_TAR}:{info.name}: {info.name} is not a readable tar (unexpected end of data)"
        in result.stdout
    )
    assert f"{archives.TRAIN_TAR}:{outer[3][0].name}" not in result.stdout, "the classes after it are read as usual"
