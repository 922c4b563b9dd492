"""``imagenet show``: a contact sheet whose every tile is the image it names."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageChops

from imagenet_cli.contact_sheet import CAPTION, GAP, TILE, Tile, show, thumbnail
from imagenet_cli.selection import choose

from .conftest import imagenet, prepared_copy


@pytest.fixture(scope="module")
def root(official_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepared_copy(official_root, tmp_path_factory.mktemp("show"), "224")


def tile_at(sheet: Image.Image, row: int, column: int) -> Image.Image:
    left, top = GAP + column * (TILE + GAP), GAP + row * (TILE + CAPTION + GAP)
    return sheet.crop((left, top, left + TILE, top + TILE))


def test_every_tile_is_the_image_the_seed_chose(root: Path, tmp_path: Path) -> None:
    wnids = ["n01440764", "n02102040"]  # tench, English springer
    result = show(root, classes=",".join(wnids), split="train", per_class=2, seed=5, out=tmp_path / "sheet.png")
    with Image.open(result.path) as sheet:
        assert sheet.format == "PNG"
        assert sheet.size == (2 * (TILE + GAP) + GAP, 2 * (TILE + CAPTION + GAP) + GAP)
        for row, wnid in enumerate(wnids):
            folder = root / "224" / "train" / wnid
            expected = sorted(choose(sorted(p.name for p in folder.iterdir()), 5, 2))
            for column, name in enumerate(expected):
                want = thumbnail(Tile(wnid, name, folder / name))
                assert ImageChops.difference(tile_at(sheet, row, column), want).getbbox() is None, (wnid, name)
    assert [t.wnid for t in result.tiles] == ["n01440764", "n01440764", "n02102040", "n02102040"]


def test_the_same_arguments_draw_the_same_bytes(root: Path, tmp_path: Path) -> None:
    first = show(root, classes="3", seed=1, out=tmp_path / "a.png")
    second = show(root, classes="3", seed=1, out=tmp_path / "b.png")
    assert first.path.read_bytes() == second.path.read_bytes() and first.rows == 3


def test_failures_show_the_repaired_images(root: Path) -> None:
    result = show(root, failures=True)
    notes = {t.name: t.note for t in result.tiles}
    assert notes["n02105855_2933.JPEG"] == "repaired: png" and notes["n01739381_1309.JPEG"] == "repaired: cmyk"
    assert result.path == root / "sheets" / "224-failures.png"


def test_the_cli_never_replaces_a_file_without_force(root: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine.png"
    out.write_bytes(b"mine")
    args = ["show", "tench", "--root", str(root), "--out", str(out)]
    refused = imagenet(*args)
    assert refused.exit_code == 1 and out.read_bytes() == b"mine"
    done = imagenet(*args, "--force")
    assert done.exit_code == 0 and str(out) in done.stdout
    with Image.open(out) as sheet:
        assert sheet.size[1] == TILE + CAPTION + 2 * GAP
