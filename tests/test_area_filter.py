"""``prepare --filter area`` (OpenCV): the fast filter's geometry, repairs and failures, its own
resampling."""

from __future__ import annotations

import io
import math
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from imagenet_cli.checks import verify
from imagenet_cli.errors import install_command
from imagenet_cli.exports import export
from imagenet_cli.trees import prepare
from imagenet_cli.trees.resize import Filter, ImageError, ImageFormat, Mode, Recipe, process

from .builders import prepared_by
from .conftest import copy_of
from .test_sample import official_images
from .test_straight import files_of


def psnr(a: Image.Image, b: Image.Image) -> float:
    mse = sum(v * v for v in ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).rms) / 3
    return 99.0 if mse == 0 else 10 * math.log10(255**2 / mse)


def made(data: bytes, recipe: Recipe) -> Image.Image:
    with Image.open(io.BytesIO(recipe.make(data).outputs[recipe.sizes[0]])) as image:
        image.load()
        return image


@pytest.fixture(scope="module")
def trees(official_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = copy_of(official_root, tmp_path_factory.mktemp("area"))
    prepare(root, Recipe(("224",)), workers=2)
    prepare(root, Recipe(("224",), filter=Filter.area), workers=2)
    return root / "224", root / "224-area"


def test_every_image_is_the_fast_filters_in_size_colours_and_repairs(trees: tuple[Path, Path]) -> None:
    fast, area = trees
    files = sorted(p.relative_to(fast) for p in fast.glob("*/*/*"))
    assert files and files == sorted(p.relative_to(area) for p in area.glob("*/*/*"))
    for relative in files:
        with Image.open(fast / relative) as one, Image.open(area / relative) as other:
            assert (other.format, other.mode, other.size) == ("JPEG", "RGB", one.size), relative
            # 34 dB and more here; with red and blue swapped, 14 dB on average (grey images score alike).
            assert psnr(one, other) > 28, relative
    assert prepared_by(area).repaired == prepared_by(fast).repaired == {"png": 1, "cmyk": 2, "grayscale": 3}
    assert verify(area.parent, paths=[area]).ok


@pytest.mark.parametrize(
    ("mode", "size", "upscale"),
    [("shorter", "64", True), ("center-crop", "96", True), ("squash", "32", True), ("longer", "1024", False)],
)
def test_every_mode_gives_the_fast_filters_sizes(official_root: Path, mode: Mode, size: str, upscale: bool) -> None:
    fast, area = (Recipe((size,), mode=mode, upscale=upscale, filter=f) for f in (Filter.fast, Filter.area))
    for name, data in official_images(official_root).items():
        assert made(data, area).size == made(data, fast).size, name


@pytest.mark.parametrize("image_format", [ImageFormat.png, ImageFormat.webp])
def test_other_formats_are_encoded_by_pillow_in_rgb(official_root: Path, image_format: ImageFormat) -> None:
    data = next(d for name, d in sorted(official_images(official_root).items()) if name.startswith("ILSVRC2012_val"))
    fast, area = (made(data, Recipe(("64",), format=image_format, filter=f)) for f in (Filter.fast, Filter.area))
    assert (area.format, area.mode, area.size) == (fast.format, "RGB", fast.size)
    assert psnr(fast, area) > 28


def test_an_export_from_the_archives_holds_the_area_trees_bytes(official_root: Path, tmp_path: Path) -> None:
    root = copy_of(official_root, tmp_path / "root")
    straight = export(root, "webdataset", size=64, filter=Filter.area, shard_size=20)
    assert straight.path.name == "webdataset-64-area-archives" and not straight.failures
    prepare(root, Recipe(("64",), filter=Filter.area), workers=2)
    from_the_tree = export(root, "webdataset", source=root / "64-area", shard_size=20)
    assert files_of(straight.path) == files_of(from_the_tree.path)


def test_a_truncated_jpeg_fails_as_it_does_with_the_fast_filter(official_root: Path) -> None:
    data = next(d for name, d in official_images(official_root).items() if name.endswith(".JPEG"))[:4000]
    failures = []
    for recipe in (Recipe(("64",)), Recipe(("64",), filter=Filter.area)):
        with pytest.raises(ImageError) as failed:
            process(data, recipe)
        failures.append(str(failed.value))
    assert failures[0] == failures[1] and failures[0].startswith("OSError: image file is truncated")


def test_the_exif_orientation_is_left_alone_as_pillow_leaves_it() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° to display
    out = io.BytesIO()
    Image.new("RGB", (300, 200), (200, 30, 30)).save(out, "JPEG", exif=exif.tobytes())
    assert made(out.getvalue(), Recipe(("64",), filter=Filter.area)).size == (96, 64)


def test_without_opencv_the_area_filter_is_one_line_naming_its_extra(official_root: Path, tmp_path: Path) -> None:
    root = copy_of(official_root, tmp_path / "root")
    program = (
        "import sys; sys.modules['cv2'] = None; sys.argv[0] = 'imagenet'\nfrom imagenet_cli.cli.app import main; main()"
    )
    arguments = ["prepare", "--root", str(root), "--size", "64", "--filter", "area"]
    completed = subprocess.run([sys.executable, "-c", program, *arguments], capture_output=True, text=True)
    assert completed.returncode == 1 and len(completed.stderr.strip().splitlines()) == 1, completed.stderr
    assert completed.stderr.startswith(f"imagenet: error: the area filter needs OpenCV: {install_command('opencv')}")
    assert not (root / "64-area").exists(), "refused before anything is written"
