"""``imagenet show``: a contact sheet — thumbnails of a tree's images with their labels, as one PNG.

People check labels by looking: a row of tench is proof at a glance that val was sorted right. A
sheet has one row per class and one tile per image; under each tile, its WNID, its class name and
its file name. Images are chosen by the same keyed hash as subsets (:mod:`imagenet_cli.selection`),
so the same arguments give the same sheet, byte for byte. ``failures`` shows instead what
``prepare`` repaired (the repaired image) and could not read (a tile naming the error).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import atomic, catalogue, manifest
from .errors import InvalidArgumentError, MissingInputError, OverwriteRefusedError
from .layout import Root
from .selection import choose, select_classes
from .trees.shards import MARKERS, read_marker

if TYPE_CHECKING:  # Pillow is imported when a sheet is drawn, never at startup
    from PIL.Image import Image as Picture

TILE = 160  # pixels, square
CAPTION = 42  # three lines of the default bitmap font
GAP = 4
BACKGROUND, PLACEHOLDER, INK = (255, 255, 255), (236, 236, 236), (20, 20, 20)
MANY_CLASSES = 10  # drawn when a tree has more than 20 classes and none are named


@dataclass(frozen=True)
class Tile:
    wnid: str | None
    name: str  # the file name, or the image's name in the archive for a failure
    path: Path | None  # None: an image that could not be read (``note`` says why)
    note: str = ""  # what prepare repaired or why it failed


@dataclass
class SheetResult:
    path: Path
    tree: Path
    rows: int
    columns: int
    tiles: list[Tile] = field(default_factory=list)


def show(
    root: Path,
    *,
    classes: str | None = None,
    source: Path | None = None,
    split: str = "val",
    per_class: int = 6,
    failures: bool = False,
    seed: int = 0,
    out: Path | None = None,
    force: bool = False,
) -> SheetResult:
    """Draw a contact sheet of ``source`` (default: the only prepared tree under the root) into ``out``.

    ``classes`` reads as ``subset --classes`` does (a count, WNIDs, names, a named list); without
    it, every class of a tree of up to 20, else 10 drawn with ``seed``.
    """
    if split not in ("train", "val"):
        raise InvalidArgumentError(f"{split!r}: a sheet shows train or val", "split")
    if not 1 <= per_class <= 50:
        raise InvalidArgumentError(f"{per_class}: choose 1–50", "per_class")
    tree = source or Root(root).the_prepared_tree()
    if failures:
        rows = _failure_rows(tree)
        what = "failures"
    else:
        rows = _class_rows(tree, split, classes, per_class, seed)
        what = f"{split}-{_classes_label(classes, rows, seed)}"
    destination = out or Root(root).path / "sheets" / f"{tree.name}-{what}.png"
    if out is not None and out.exists() and not force:
        raise OverwriteRefusedError(f"{out} exists; it is not replaced unless forced", "out", forceable=True)
    columns = max((len(row) for row in rows), default=0)
    if not columns:
        raise MissingInputError(
            f"nothing to show in {tree}" + (": prepare repaired and failed nothing" if failures else "")
        )
    atomic.write_bytes(destination, _draw(rows, columns))
    return SheetResult(destination, tree, len(rows), columns, [tile for row in rows for tile in row])


def _class_rows(tree: Path, split: str, classes: str | None, per_class: int, seed: int) -> list[list[Tile]]:
    split_dir = tree / split
    if not split_dir.is_dir():
        raise MissingInputError(f"{tree} has no {split}/ folder")
    present = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and catalogue.is_wnid(p.name))
    if classes is None:
        chosen = present if len(present) <= 20 else sorted(choose(present, seed, MANY_CLASSES))
    else:
        chosen = select_classes(classes, present, seed)
    rows = []
    for wnid in chosen:
        names = sorted(p.name for p in (split_dir / wnid).iterdir() if not p.name.startswith("."))
        picked = sorted(choose(names, seed, per_class))
        rows.append([Tile(wnid, name, split_dir / wnid / name) for name in picked])
    return rows


def _classes_label(classes: str | None, rows: list[list[Tile]], seed: int) -> str:
    wnids = [row[0].wnid for row in rows if row]
    if len(wnids) <= 3:
        return "-".join(w for w in wnids if w) or "empty"
    return f"{len(wnids)}classes-seed{seed}"


def _failure_rows(tree: Path) -> list[list[Tile]]:
    """One row of what prepare repaired (from the shard markers), one of what it could not read."""
    info = manifest.read_tree_info(tree)
    failed = [Tile(f.wnid, f.name, None, f.error) for f in (info.failures if info else [])]
    repaired = []
    for marker in sorted((tree / MARKERS).glob("*-*.json")):
        result = read_marker(marker)
        by_stem = {entry.name.rsplit(".", 1)[0]: entry for entry in result.entries}
        for name, why in sorted(result.repaired.items()):
            entry = by_stem.get(name.rsplit(".", 1)[0])
            if entry is not None:
                repaired.append(Tile(entry.wnid, name, tree / entry.path, f"repaired: {why}"))
    return [row for row in (repaired, failed) if row]


def _draw(rows: list[list[Tile]], columns: int) -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    cell_width, cell_height = TILE + GAP, TILE + CAPTION + GAP
    sheet = Image.new("RGB", (columns * cell_width + GAP, len(rows) * cell_height + GAP), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            left, top = GAP + c * cell_width, GAP + r * cell_height
            sheet.paste(thumbnail(tile), (left, top))
            for line, text in enumerate(_caption(tile)):
                draw.text((left, top + TILE + 2 + 13 * line), text, fill=INK, font=font)
    out = io.BytesIO()
    sheet.save(out, "PNG")  # no timestamps: the same tiles give the same bytes
    return out.getvalue()


def thumbnail(tile: Tile) -> Picture:
    """The tile's image fitted into TILE×TILE on white, centred; grey for an unreadable image."""
    from PIL import Image

    square = Image.new("RGB", (TILE, TILE), BACKGROUND if tile.path else PLACEHOLDER)
    if tile.path is None:
        return square
    with Image.open(tile.path) as opened:
        image = opened.convert("RGB")
        image.thumbnail((TILE, TILE), Image.Resampling.BILINEAR)
        square.paste(image, ((TILE - image.width) // 2, (TILE - image.height) // 2))
    return square


def _caption(tile: Tile) -> list[str]:
    label = f"{tile.wnid} {catalogue.by_wnid(tile.wnid).short_name}" if tile.wnid else "(no class)"
    return [_fit(label), _fit(tile.name), _fit(tile.note)]


def _fit(text: str, width: int = TILE // 6) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
