"""``imagenet prepare`` on the sample in both forms: labels, geometry, repairs, restarts."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from imagenet_cli import archives, catalogue, manifest, sample
from imagenet_cli.checks import verify
from imagenet_cli.errors import EXIT_PROBLEMS, LabelConflictError, OverwriteRefusedError
from imagenet_cli.trees import prepare
from imagenet_cli.trees.resize import Filter, ImageFormat, Mode, Recipe

from .builders import prepared_by, rewrite_ground_truth, set_devkit_line
from .conftest import SMALL, copy_of, imagenet, imagenet_process


def copy_downloads(source_root: Path, root: Path) -> Path:
    shutil.copytree(source_root / "downloads", root / "downloads", dirs_exist_ok=True)
    return root


@pytest.fixture(scope="module")
def prepared_official(official_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_downloads(official_root, tmp_path_factory.mktemp("prepared"))
    prepare(root, ["224"], workers=2)
    return root / "224"


def tree_files(tree: Path) -> dict[str, Path]:
    return {str(p.relative_to(tree)): p for p in sorted(tree.glob("*/*/*")) if p.is_file()}


def test_every_image_lands_under_its_true_wnid(prepared_official: Path) -> None:
    files = tree_files(prepared_official)
    train = [k for k in files if k.startswith("train/")]
    val = [k for k in files if k.startswith("val/")]
    classes = sample.default_classes()
    assert len(train) == len(classes) * SMALL["train_per_class"]
    assert len(val) == len(classes) * SMALL["val_per_class"]
    for relative in train:
        _, wnid, name = relative.split("/")
        assert name.startswith(wnid + "_")
    for relative in val:
        _, wnid, name = relative.split("/")
        assert catalogue.val_class(name).wnid == wnid


def test_outputs_are_rgb_jpegs_with_shorter_side_224(prepared_official: Path) -> None:
    for relative, path in tree_files(prepared_official).items():
        with Image.open(path) as image:
            assert image.format == "JPEG" and image.mode == "RGB", relative
            assert min(image.size) == 224, (relative, image.size)


def test_quirk_files_come_out_repaired(prepared_official: Path) -> None:
    assert prepared_by(prepared_official).repaired == {"png": 1, "cmyk": 2, "grayscale": 3}
    for relative in (
        "train/n02105855/n02105855_2933.JPEG",
        "train/n01739381/n01739381_1309.JPEG",
        "val/n13133613/ILSVRC2012_val_00019877.JPEG",
    ):
        with Image.open(prepared_official / relative) as image:
            assert (image.format, image.mode) == ("JPEG", "RGB")


def test_label_files_use_the_sorted_index_and_imagefolder_agrees(prepared_official: Path) -> None:
    # torchvision's ImageFolder: sorted class folders, enumerated. For a full tree that is the
    # catalogue's index; for any subset of classes the order must at least be the catalogue's.
    folders = sorted(p.name for p in (prepared_official / "train").iterdir())
    assert [catalogue.by_wnid(w).index for w in folders] == sorted(catalogue.by_wnid(w).index for w in folders)
    for line in (prepared_official / "train.txt").read_text().splitlines() + (
        prepared_official / "val.txt"
    ).read_text().splitlines():
        relative, label = line.rsplit(" ", 1)
        assert catalogue.by_wnid(relative.split("/")[1]).index == int(label)
    classes = (prepared_official / "classes.txt").read_text().splitlines()
    assert classes[0] == "0\tn01440764\ttench" and len(classes) == 1000


def test_the_tree_verifies_clean(prepared_official: Path) -> None:
    report = verify(prepared_official.parent, paths=[prepared_official], deep=True)
    assert report.ok, [p for c in report.checks for p in c.problems]


def test_kaggle_form_gives_the_same_tree(prepared_official: Path, kaggle_root: Path, tmp_path: Path) -> None:
    root = copy_downloads(kaggle_root, tmp_path)
    result = prepare(root, ["224"], workers=2)
    assert (
        result.source == "the Kaggle zip"
        and result.label_source == "the shipped table (checked against Kaggle's LOC_val_solution.csv)"
    )
    assert (root / "224" / manifest.MANIFEST).read_text() == (prepared_official / manifest.MANIFEST).read_text()


def test_second_run_is_a_no_op(prepared_official: Path) -> None:
    before = {k: p.stat().st_mtime_ns for k, p in tree_files(prepared_official).items()}
    result = prepare(prepared_official.parent, ["224"], workers=2)
    assert result.shards_run == 0 and result.shards_done_before == 2 * len(sample.default_classes())
    assert {k: p.stat().st_mtime_ns for k, p in tree_files(prepared_official).items()} == before


def test_several_sizes_in_one_run_equal_separate_runs(official_root: Path, tmp_path: Path) -> None:
    together = copy_downloads(official_root, tmp_path / "together")
    prepare(together, ["64", "full"], workers=2)
    apart = copy_downloads(official_root, tmp_path / "apart")
    prepare(apart, ["64"], workers=1)
    prepare(apart, ["full"], workers=1)
    for size in ("64", "full"):
        assert (together / size / manifest.MANIFEST).read_text() == (apart / size / manifest.MANIFEST).read_text()


def test_full_keeps_clean_files_byte_identical(official_root: Path, tmp_path: Path) -> None:
    from .test_sample import official_images

    root = copy_downloads(official_root, tmp_path)
    prepare(root, ["full"], workers=2)
    originals = official_images(official_root)
    repaired = {"n02105855_2933.JPEG", "n01739381_1309.JPEG", "ILSVRC2012_val_00019877.JPEG"}
    for relative, path in tree_files(root / "full").items():
        name = relative.rsplit("/", 1)[1]
        with Image.open(io.BytesIO(originals[name])) as image:
            clean = image.format == "JPEG" and image.mode == "RGB"
        assert (path.read_bytes() == originals[name]) == clean, name
        assert clean or name in repaired or Image.open(path).mode == "RGB"


@pytest.mark.parametrize(
    ("mode", "size", "check"),
    [
        ("center-crop", "96", lambda w, h: (w, h) == (96, 96)),
        ("squash", "32", lambda w, h: (w, h) == (32, 32)),
        ("longer", "128", lambda w, h: max(w, h) == 128),
    ],
)
def test_resize_modes(
    official_root: Path, tmp_path: Path, mode: Mode, size: str, check: Callable[[int, int], bool]
) -> None:
    root = copy_downloads(official_root, tmp_path)
    result = prepare(root, Recipe((size,), mode=mode), workers=2)
    tree = result.trees[0].path
    assert tree.name == f"{size}-{mode}"
    for relative, path in tree_files(tree).items():
        with Image.open(path) as image:
            assert check(*image.size), (relative, image.size)


def test_no_upscale_leaves_small_images_small(official_root: Path, tmp_path: Path) -> None:
    from .test_sample import official_images

    root = copy_downloads(official_root, tmp_path)
    prepare(root, Recipe(("1024",), upscale=False), workers=2)
    originals = {name: Image.open(io.BytesIO(data)).size for name, data in official_images(official_root).items()}
    for relative, path in tree_files(root / "1024").items():
        original = originals[relative.rsplit("/", 1)[1]]
        with Image.open(path) as image:
            if min(original) <= 1024:
                assert image.size == original, relative
            else:  # the 2592x3888 one
                assert min(image.size) == 1024, relative


def test_changed_options_never_mix_into_a_tree(official_root: Path, tmp_path: Path) -> None:
    """A folder claimed by another recipe (an older version named trees by fewer options) is refused."""
    root = copy_downloads(official_root, tmp_path)
    prepare(root, ["64"], splits=["val"])
    claim = root / "64" / ".shards" / "recipe.json"
    claim.write_text(claim.read_text().replace('"quality": 90', '"quality": 80'))
    with pytest.raises(OverwriteRefusedError, match="quality 80 → 90") as refused:
        prepare(root, ["64"], splits=["val"])
    assert refused.value.parameter == "into"


def image_folder(tmp_path: Path, official_root: Path) -> Path:
    from .builders import tree_from_official

    return tree_from_official(official_root / "downloads", tmp_path / "source", with_manifest=False)


def test_truncated_jpeg_is_named_and_the_run_finishes(official_root: Path, tmp_path: Path) -> None:
    source = image_folder(tmp_path, official_root)
    victim = sorted((source / "train" / "n02979186").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:4000])
    result = imagenet("prepare", "--root", str(tmp_path / "root"), "--from", str(source), "--size", "64")
    assert result.exit_code == EXIT_PROBLEMS, result.output
    assert f"failed: train/n02979186/{victim.name}: OSError: image file is truncated" in result.stdout
    info = manifest.TreeInfo.read(tmp_path / "root" / "64")
    assert [f.name for f in info.failures] == [victim.name]
    assert info.splits["train"]["images"] == len(sample.default_classes()) * SMALL["train_per_class"] - 1


def test_image_folder_and_kaggle_tree_inputs(official_root: Path, tmp_path: Path, prepared_official: Path) -> None:
    source = image_folder(tmp_path, official_root)
    result = prepare(tmp_path / "root", ["224"], source=source, workers=2)
    assert result.source.startswith("an ImageFolder tree")
    assert (tmp_path / "root" / "224" / manifest.MANIFEST).read_text() == (
        prepared_official / manifest.MANIFEST
    ).read_text()


def test_hostile_members_write_nothing_outside(tmp_path: Path) -> None:
    downloads = tmp_path / "root" / "downloads"
    downloads.mkdir(parents=True)
    good = io.BytesIO()
    Image.new("RGB", (300, 200), "red").save(good, "JPEG")
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w") as tar:
        for name in ("../../../escaped.JPEG", "/tmp/absolute.JPEG", "n01440764_1.JPEG"):
            info = tarfile.TarInfo(name)
            info.size = len(good.getvalue())
            tar.addfile(info, io.BytesIO(good.getvalue()))
    with tarfile.open(downloads / archives.TRAIN_TAR, "w") as tar:
        info = tarfile.TarInfo("n01440764.tar")
        info.size = len(inner.getvalue())
        tar.addfile(info, io.BytesIO(inner.getvalue()))
    result = prepare(tmp_path / "root", ["64"], splits=["train"], workers=1)
    failures = {f.name: f.error for f in result.trees[0].failures}
    assert set(failures) == {"../../../escaped.JPEG", "/tmp/absolute.JPEG"}
    assert all(e.startswith("refused:") for e in failures.values())
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.JPEG"))
    assert written == ["root/64/train/n01440764/n01440764_1.JPEG"]


def swap_first_val_label(root: Path) -> tuple[str, str, str]:
    """The devkit of ``root`` says another class for the first val image of the sample: its name,
    the true WNID and the one the devkit now says."""
    name = tree_files_names(root)[0]
    true = catalogue.val_class(name)
    other = catalogue.by_devkit_id(1 if true.devkit_id != 1 else 2)
    set_devkit_line(root / "downloads" / archives.DEVKIT, catalogue.val_number(name), str(other.devkit_id))
    return name, true.wnid, other.wnid


def test_the_shipped_val_labels_win_over_a_wrong_devkit_and_the_row_is_named(
    official_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = copy_downloads(official_root, tmp_path)
    name, true, said = swap_first_val_label(root)
    with caplog.at_level(logging.WARNING, logger="imagenet_cli"):
        result = prepare(root, ["64"])
    assert (root / "64" / "val" / true / name).is_file() and not (root / "64" / "val" / said).exists()
    assert (
        "the devkit's ground truth labels 1 val image otherwise than the shipped table "
        f"({name}: it says {said}, the table {true})" in caplog.text
    )
    assert result.trees[0].failures == []


def test_trusted_input_labels_are_used_and_two_inputs_must_agree(
    official_root: Path, kaggle_root: Path, tmp_path: Path
) -> None:
    root = copy_downloads(official_root, tmp_path / "official")
    name, _true, said = swap_first_val_label(root)
    prepare(root, ["64"], trust_input_labels=True)
    assert (root / "64" / "val" / said / name).is_file()

    both = copy_downloads(root, tmp_path / "both")
    copy_downloads(kaggle_root, both)
    with pytest.raises(LabelConflictError, match=f"{name}: the devkit's ground truth says {said}"):
        prepare(both, ["64"], trust_input_labels=True)


@pytest.mark.parametrize(
    ("line", "value", "message"),
    [
        (7, "1001", "line 7: '1001' is not an ILSVRC2012_ID"),
        (8, "tench", "line 8: 'tench' is not an ILSVRC2012_ID"),
        (None, None, "has 49,999 lines; a ground truth has one per val image, 50,000"),
    ],
)
def test_a_damaged_ground_truth_is_one_line_naming_file_and_line(
    official_root: Path, tmp_path: Path, line: int | None, value: str, message: str
) -> None:
    root = copy_downloads(official_root, tmp_path)
    devkit = root / "downloads" / archives.DEVKIT
    if line is None:
        rewrite_ground_truth(devkit, lambda lines: lines[:-1])
    else:
        set_devkit_line(devkit, line, value)
    result = imagenet("prepare", "--root", str(root), "--size", "64")
    assert result.exit_code == 1, result.output
    [said] = result.stderr.splitlines()
    assert said.startswith(
        f"imagenet: error: {archives.DEVKIT}:ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt "
    )
    assert message in said and "this is a bug" not in said
    train_only = imagenet("prepare", "--root", str(root), "--size", "64", "--splits", "train")
    assert train_only.exit_code == 0, "a run without val reads no label file"


def tree_files_names(root: Path) -> list[str]:
    with tarfile.open(root / "downloads" / archives.VAL_TAR) as tar:
        return sorted(m.name for m in tar)


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_equals_a_clean_run(tmp_path: Path) -> None:
    from imagenet_cli.download import download_sample

    source = tmp_path / "source"
    download_sample(source, classes=["imagenette"], train_per_class=40, val_per_class=5, test_images=0)
    clean = copy_downloads(source, tmp_path / "clean")
    prepare(clean, Recipe(("64",), filter=Filter.lanczos), workers=2)

    killed = copy_downloads(source, tmp_path / "killed")
    markers = killed / "64-lanczos" / ".shards"
    command = [
        sys.executable,
        "-m",
        "imagenet_cli",
        "prepare",
        "--root",
        str(killed),
        "--size",
        "64",
        "--filter",
        "lanczos",
        "--workers",
        "1",
    ]
    process = subprocess.Popen(command, env={**os.environ, "IMAGENET_NO_PROGRESS": "1"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(markers.glob("train-*.json"))) < 3:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert 3 <= len(list(markers.glob("*-*.json"))) < 20, "killed midway"

    result = prepare(killed, Recipe(("64",), filter=Filter.lanczos), workers=2)
    assert result.shards_done_before >= 3
    assert (killed / "64-lanczos" / manifest.MANIFEST).read_text() == (
        clean / "64-lanczos" / manifest.MANIFEST
    ).read_text()
    assert not list((killed / "64-lanczos").rglob(".*.tmp")), "no leftovers of the killed run"
    assert verify(killed, paths=[killed / "64-lanczos"]).ok


def test_cli_prepare_on_the_sample(official_root: Path, tmp_path: Path) -> None:
    root = copy_downloads(official_root, tmp_path)
    result = imagenet("prepare", "--root", str(root), "--size", "32", "--resize", "squash", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["trees"][0]["path"] == str(root / "32-squash")
    assert summary["trees"][0]["images"] == {"train": 39, "val": 26}
    again = imagenet("prepare", "--root", str(root), "--size", "32", "--resize", "squash")
    assert again.exit_code == 0 and "shards were already done" in again.stdout
    info = imagenet("info", "--root", str(root), "--json")
    [tree] = json.loads(info.stdout)["trees"]
    assert tree["images"] == 65 and tree["splits"]["val"]["classes"] == 13
    assert (tree["made_by"]["mode"], tree["made_by"]["size"]) == ("squash", "32")
    assert "squash 32, jpeg q90" in imagenet("info", "--root", str(root)).stdout


def test_cli_bad_size_is_a_usage_error(tmp_path: Path) -> None:
    result = imagenet("prepare", "--root", str(tmp_path), "--size", "huge")
    assert result.exit_code == 2 and "neither 'full' nor a number" in result.stderr


def test_kaggle_2019_layout_gives_the_same_tree(prepared_official: Path, kaggle2019_root: Path, tmp_path: Path) -> None:
    root = copy_downloads(kaggle2019_root, tmp_path)
    result = prepare(root, ["224"], workers=2)
    assert (
        result.source == "the Kaggle zip"
        and result.label_source == "the shipped table (checked against Kaggle's LOC_val_solution.csv)"
    )
    assert (root / "224" / manifest.MANIFEST).read_text() == (prepared_official / manifest.MANIFEST).read_text()
    again = prepare(root, ["224"], workers=2)
    assert again.shards_run == 0 and again.shards_done_before == result.shards_run


def test_a_stray_file_in_val_is_named(official_root: Path, tmp_path: Path) -> None:
    source = image_folder(tmp_path, official_root)
    (source / "val" / "n01440764" / "notes.txt").write_text("not an image")
    result = imagenet("prepare", "--root", str(tmp_path / "root"), "--from", str(source), "--size", "64")
    assert result.exit_code == EXIT_PROBLEMS, result.output
    assert "val/n01440764/notes.txt: not an ILSVRC2012_val_<8 digits>.JPEG name numbered 1–50,000" in result.stdout
    assert len(list((tmp_path / "root" / "64" / "val").glob("*/*"))) == len(list((source / "val").glob("*/*.JPEG")))


@pytest.mark.slow
def test_ctrl_c_reaches_every_worker_and_exits_130_cleanly(imagenette_root: Path, tmp_path: Path) -> None:
    copy_of(imagenette_root, tmp_path)
    markers = tmp_path / "64-lanczos" / ".shards"
    # Lanczos from a full decode: slow enough per image that the run is still going when signalled.
    command = [
        "prepare",
        "--root",
        str(tmp_path),
        "--size",
        "64",
        "--filter",
        "lanczos",
        "--workers",
        "2",
    ]
    # A session of its own, so the signal goes to the whole group, as a terminal's Ctrl-C does.
    process = imagenet_process(*command, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(markers.glob("*-*.json"))) < 2:  # shard markers, not recipe.json
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr.strip() == "imagenet: interrupted — try the same command again: finished work is kept"
    result = prepare(tmp_path, Recipe(("64",), filter=Filter.lanczos), workers=2)
    assert result.shards_done_before >= 2 and verify(tmp_path, paths=[tmp_path / "64-lanczos"]).ok


@pytest.mark.parametrize(
    ("recipe", "name"),
    [
        (Recipe(("224",)), "224"),
        (Recipe(("64",), mode=Mode.squash, filter=Filter.lanczos), "64-squash-lanczos"),
        (Recipe(("64",), mode=Mode.squash), "64-squash"),
        (Recipe(("224",), quality=95, upscale=False), "224-q95-noupscale"),
        (Recipe(("full",), format=ImageFormat.png, filter=Filter.lanczos, mode=Mode.squash), "full-png"),
    ],
)
def test_every_option_off_its_default_is_in_the_tree_name(recipe: Recipe, name: str) -> None:
    from imagenet_cli.trees import tree_name

    assert tree_name(recipe.sizes[0], recipe) == name


def test_a_lanczos_squash_tree_leaves_the_default_squash_free(official_root: Path, tmp_path: Path) -> None:
    root = copy_downloads(official_root, tmp_path)
    prepare(root, Recipe(("64",), mode=Mode.squash, filter=Filter.lanczos), splits=["val"])
    result = imagenet("prepare", "--root", str(root), "--size", "64", "--resize", "squash", "--splits", "val")
    assert result.exit_code == 0, result.output
    assert (root / "64-squash" / manifest.MANIFEST).is_file() and (
        root / "64-squash-lanczos" / manifest.MANIFEST
    ).is_file()


def test_a_val_image_in_another_class_folder_of_a_tree_is_named_and_filed_by_its_label(
    official_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = image_folder(tmp_path, official_root)
    image = sorted((source / "val").glob("*/*.JPEG"))[0]
    label = image.parent.name
    other = next(p for p in sorted((source / "val").iterdir()) if p.name != label)
    image.rename(other / image.name)
    with caplog.at_level(logging.WARNING, logger="imagenet_cli"):
        prepare(tmp_path / "root", ["64"], source=source, splits=["val"])
    assert (
        f"1 val image sits in another class's folder than its label ({other.name}/{image.name}: its label is {label})"
        in caplog.text
    )
    assert (tmp_path / "root" / "64" / "val" / label / image.name).is_file()
