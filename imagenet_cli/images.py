"""One image in, a verdict or new bytes out: the per-image work, pure and parallel-safe."""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def describe_error(error: BaseException) -> str:
    """An exception as one deterministic line: the same file gives the same words on every run
    (Pillow names the stream it read, with its memory address: that part is left out)."""
    return _ADDRESS.sub("", f"{type(error).__name__}: {error}")


def decode_problem(data: bytes) -> str | None:
    """Why ``data`` does not decode as a complete image, or None when it does.

    Truncated files are failures (``LOAD_TRUNCATED_IMAGES`` stays off) and decompression bombs are
    refused; the harmless "(Possibly) corrupt EXIF data" warning is silenced.
    """
    from PIL import Image

    if not data:
        return "empty file (0 bytes)"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*orrupt EXIF data.*")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.load()
        except Image.DecompressionBombWarning as warning:
            return f"refused as a decompression bomb ({warning})"
        except Exception as error:  # Pillow raises many kinds for broken files; each is a finding
            return describe_error(error)
    return None


# --- resizing and repairing: the hot path of `prepare` ------------------------------------------

MODES = ("shorter", "center-crop", "squash", "longer")
FORMATS = {"jpeg": ".JPEG", "png": ".png", "webp": ".webp"}
FILTERS = ("fast", "lanczos")
FULL = "full"


class ImageError(Exception):
    """An image that cannot be read: truncated, empty, not an image, or a decompression bomb."""


@dataclass(frozen=True)
class Recipe:
    """What to make of every image: one or more sizes, all from a single decode."""

    sizes: tuple[str, ...]  # "224", "64", … or "full"
    mode: str = "shorter"
    quality: int = 90
    format: str = "jpeg"
    filter: str = "fast"
    upscale: bool = True

    def output_name(self, name: str) -> str:
        """``n01440764_10026.JPEG`` keeps its name as JPEG; other formats change the extension."""
        stem = name.rsplit(".", 1)[0] if "." in name else name
        return stem + FORMATS[self.format]


@dataclass(frozen=True)
class Processed:
    outputs: dict[str, bytes]  # size -> encoded file
    repaired: str | None  # what was wrong with the input ("png", "cmyk", "grayscale", …), None if clean


def process(data: bytes, recipe: Recipe) -> Processed:
    """Decode once, repair to RGB, and encode every requested size."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*orrupt EXIF data.*")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return _process(data, recipe)
        except Image.DecompressionBombWarning as warning:
            raise ImageError(f"refused as a decompression bomb ({warning})") from None
        except ImageError:
            raise
        except Exception as error:  # Pillow raises many kinds for broken files; each is a finding
            raise ImageError(describe_error(error)) from None


def _process(data: bytes, recipe: Recipe) -> Processed:
    from PIL import Image

    if not data:
        raise ImageError("empty file (0 bytes)")
    header = Image.open(io.BytesIO(data))
    repaired = _repair_reason(header)
    width, height = header.size
    keep_original = repaired is None and recipe.format == "jpeg"
    decoded = {}  # DCT scale -> decoded image: sizes that share a scale share one decode

    def decode(scale: int):
        if scale not in decoded:
            decoded[scale] = _decode(data, scale, recipe)
        return decoded[scale]

    outputs = {}
    for size in recipe.sizes:
        if size == FULL:
            image = decode(1)  # decoded even when kept: a truncated original is a failure
            outputs[size] = data if keep_original else _encode(image, recipe, quality_floor=95)
        else:
            scale = _dct_scale(header, width, height, int(size), recipe)
            outputs[size] = _encode(_resized(decode(scale), width, height, int(size), recipe), recipe)
    return Processed(outputs, repaired)


def _dct_scale(header, width: int, height: int, size: int, recipe: Recipe) -> int:
    """The power-of-two scale libjpeg may decode at for one output size, leaving >= 2x its pixels.

    Chosen per size, never from the other sizes of the run, so that several sizes made together
    equal the same sizes made one by one.
    """
    if recipe.filter != "fast" or header.format != "JPEG":
        return 1
    target_width, target_height = _target_size(width, height, size, recipe)
    if recipe.mode in ("squash", "center-crop"):
        target_width, target_height = _covering(width, height, size)
    fits = min(width // max(1, 2 * target_width), height // max(1, 2 * target_height))
    return next((scale for scale in (8, 4, 2) if fits >= scale), 1)


def _covering(width: int, height: int, size: int) -> tuple[int, int]:
    """The size a whole image would have with its shorter side at ``size``."""
    scale = size / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _decode(data: bytes, scale: int, recipe: Recipe):
    from PIL import Image

    image = Image.open(io.BytesIO(data))  # a fresh parser per decode: draft() applies once
    if image.format == "JPEG" and recipe.filter == "fast":
        # Straight to YCbCr when the output is JPEG: skips two colour conversions.
        mode = "YCbCr" if image.mode == "RGB" and recipe.format == "jpeg" else image.mode
        width, height = image.size
        image.draft(mode, (width // scale, height // scale))
    image.load()  # a truncated file fails here: LOAD_TRUNCATED_IMAGES stays off
    if image.mode.startswith("I;16") or image.mode == "I":
        # 16-bit grey: scale to 8 bits (a plain convert would clip everything over 255 to white).
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if image.mode not in ("RGB", "YCbCr"):
        image = image.convert("RGB")  # CMYK (Adobe-inverted ones as Pillow reads them), L, P, RGBA
    return image


def _repair_reason(image) -> str | None:
    if image.format != "JPEG":
        return (image.format or "unknown format").lower()
    return {"RGB": None, "CMYK": "cmyk", "L": "grayscale"}.get(image.mode, image.mode.lower())


def _target_size(width: int, height: int, size: int, recipe: Recipe) -> tuple[int, int]:
    if recipe.mode in ("squash", "center-crop"):
        return size, size
    side = min(width, height) if recipe.mode == "shorter" else max(width, height)
    scale = size / side
    if scale > 1 and not recipe.upscale:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def _resized(image, width: int, height: int, size: int, recipe: Recipe):
    from PIL import Image

    # Coordinates are in the original image; draft() may have decoded it smaller.
    factor = image.size[0] / width
    if recipe.mode == "squash":
        return image.resize((size, size), Image.Resampling.BOX)
    resample = Image.Resampling.LANCZOS if recipe.filter == "lanczos" else Image.Resampling.BILINEAR
    if recipe.mode == "center-crop":
        side = min(width, height)
        left, top = (width - side) / 2, (height - side) / 2
        box = (left * factor, top * factor, (left + side) * factor, (top + side) * factor)
        if side < size and not recipe.upscale:
            return image.crop(tuple(round(v) for v in box))
        return image.resize((size, size), resample, box=box)
    target = _target_size(width, height, size, recipe)
    if target == image.size:
        return image
    return image.resize(target, resample)


def _encode(image, recipe: Recipe, quality_floor: int = 0) -> bytes:
    out = io.BytesIO()
    if recipe.format == "jpeg":
        image.save(out, "JPEG", quality=max(recipe.quality, quality_floor), subsampling="4:2:0")
    else:
        rgb = image.convert("RGB") if image.mode != "RGB" else image
        if recipe.format == "png":
            rgb.save(out, "PNG")
        else:
            rgb.save(out, "WEBP", quality=recipe.quality)
    return out.getvalue()
