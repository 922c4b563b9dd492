"""What ``prepare`` makes of one image: decode once, repair to RGB, resize and encode every size.

Pure and parallel-safe: the hot path of ``prepare``, run in worker processes. Pillow does the work,
except with the ``area`` filter: OpenCV then decodes clean JPEGs (at a reduced DCT scale, as
Pillow's ``draft`` would), resizes with its area resampling and encodes; images that need a repair
are decoded by Pillow and repaired as always, then resized and encoded by OpenCV.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass, replace
from enum import StrEnum
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from ..decode_check import bomb_warnings_raised, describe_error
from ..errors import ImagenetError, InvalidArgumentError, MissingExtraError

_T = TypeVar("_T")

if TYPE_CHECKING:  # Pillow is imported where images are made, never at startup
    from PIL.Image import Image as Picture


class Mode(StrEnum):
    """How an image is fitted to N pixels."""

    shorter = "shorter"  # the shorter side is N, aspect kept
    center_crop = "center-crop"  # N x N from the centre
    squash = "squash"  # N x N, box filter
    longer = "longer"  # the longer side is N (FFCV's way)


class ImageFormat(StrEnum):
    jpeg = "jpeg"
    png = "png"
    webp = "webp"


class Filter(StrEnum):
    fast = "fast"  # a reduced-scale JPEG decode, then bilinear
    lanczos = "lanczos"  # a full decode, then Lanczos: reference quality
    area = "area"  # a reduced-scale JPEG decode, then OpenCV's area resampling: extra [opencv]


MODES, FILTERS = tuple(Mode), tuple(Filter)
FORMATS = {ImageFormat.jpeg: ".JPEG", ImageFormat.png: ".png", ImageFormat.webp: ".webp"}
FULL = "full"


class ImageError(Exception):
    """An image that cannot be read: truncated, empty, not an image, or a decompression bomb."""


@dataclass(frozen=True)
class Recipe:
    """What to make of every image: one or more sizes, all from a single decode."""

    sizes: tuple[str, ...]  # "224", "64", … or "full"
    _: KW_ONLY
    mode: Mode = Mode.shorter
    quality: int = 90
    format: ImageFormat = ImageFormat.jpeg
    filter: Filter = Filter.fast
    upscale: bool = True

    def __post_init__(self) -> None:
        """Checked when made: a recipe that exists can be carried out."""
        if not self.sizes:
            raise InvalidArgumentError("is empty: give at least one size (a number of pixels, or 'full')", "sizes")
        for size in self.sizes:
            if size != FULL and not (size.isdigit() and 8 <= int(size) <= 4096):
                raise InvalidArgumentError(f"{size!r} is neither 'full' nor a number of pixels within 8–4096", "sizes")
        checks = ((self.mode, MODES, "mode"), (self.format, tuple(FORMATS), "format"), (self.filter, FILTERS, "filter"))
        for value, allowed, parameter in checks:
            if value not in allowed:
                raise InvalidArgumentError(f"{value!r} is not one of {', '.join(allowed)}", parameter)
        if not 1 <= self.quality <= 100:
            raise InvalidArgumentError(f"{self.quality} is outside 1–100", "quality")
        # Each size once, in the order given; the choices as enums, however they were spelled.
        object.__setattr__(self, "sizes", tuple(dict.fromkeys(self.sizes)))
        object.__setattr__(self, "mode", Mode(self.mode))
        object.__setattr__(self, "format", ImageFormat(self.format))
        object.__setattr__(self, "filter", Filter(self.filter))

    @classmethod
    def of(cls, sizes: Recipe | Sequence[str]) -> Recipe:
        """A recipe as given, or the default recipe at ``sizes``."""
        return sizes if isinstance(sizes, Recipe) else cls(tuple(sizes))

    def applied_to(self, size: str) -> Recipe:
        """The recipe as it applies to one size: ``full`` is not resized, so its resizing options
        (mode, filter, upscale) are the defaults whatever was asked. A tree's name and claim are
        made from this, so asking ``full`` for another filter finds the same tree."""
        if size != FULL:
            return self
        default = Recipe(self.sizes)
        return replace(self, mode=default.mode, filter=default.filter, upscale=default.upscale)

    def make(self, data: bytes) -> Processed:
        return process(data, self)

    def require_extras(self) -> None:
        """Raise :class:`MissingExtraError` unless what this recipe runs on is installed: checked
        before any work, so that a missing extra is one line, not a failure per image."""
        if self.filter == Filter.area and any(size != FULL for size in self.sizes):
            opencv()

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
    return _decoding(_process, data, recipe)


@dataclass(frozen=True)
class BoxRows:
    """Downsampled ImageNet's recipe, for making it straight from the archives: each image one row
    of raw pixels (side·side red values, then green, then blue, rows top to bottom), a box resize
    of its full-resolution decode, ``Image.open(f).convert("RGB").resize((s, s), Image.BOX)``, as
    the published files were made. Nothing is repaired first: that call is the recipe."""

    side: int

    @property
    def sizes(self) -> tuple[str, ...]:
        return (str(self.side),)

    def output_name(self, name: str) -> str:
        return name

    def make(self, data: bytes) -> Processed:
        return _decoding(_box_rows, data, self.side)


def _box_rows(data: bytes, side: int) -> Processed:
    from PIL import Image

    if not data:
        raise ImageError("empty file (0 bytes)")
    with Image.open(io.BytesIO(data)) as image:
        small = image.convert("RGB").resize((side, side), Image.Resampling.BOX)
    return Processed({str(side): b"".join(band.tobytes() for band in small.split())}, None)


def _decoding(make: Callable[[bytes, _T], Processed], data: bytes, how: _T) -> Processed:
    """``make(data, how)``, every way an image can fail to decode turned into an ImageError."""
    from PIL import Image

    with bomb_warnings_raised():
        try:
            return make(data, how)
        except Image.DecompressionBombWarning as warning:
            raise ImageError(f"refused as a decompression bomb ({warning})") from None
        except (ImageError, ImagenetError):  # a missing extra stops the run, it is no image's fault
            raise
        except Exception as error:  # Pillow raises many kinds for broken files; each is a finding
            raise ImageError(describe_error(error)) from None


Making = Recipe | BoxRows  # what a shard makes of each image


def _process(data: bytes, recipe: Recipe) -> Processed:
    from PIL import Image

    if not data:
        raise ImageError("empty file (0 bytes)")
    header = Image.open(io.BytesIO(data))
    repaired = _repair_reason(header)
    width, height = header.size
    keep_original = repaired is None and recipe.format == "jpeg"
    # (DCT scale, as an array) -> decoded image: sizes that share a scale share one decode
    decoded: dict[tuple[int, bool], Any] = {}

    def decode(scale: int, as_array: bool = False) -> Any:
        if (scale, as_array) not in decoded:
            pillow_decode = functools.partial(_decode, data, scale, recipe)
            made = _decode_bgr(data, scale, repaired, pillow_decode) if as_array else pillow_decode()
            decoded[scale, as_array] = made
        return decoded[scale, as_array]

    outputs: dict[str, bytes] = {}
    for size in recipe.sizes:
        if size == FULL:
            image = decode(1)  # decoded even when kept: a truncated original is a failure
            outputs[size] = data if keep_original else _encode(image, recipe, quality_floor=95)
        elif recipe.filter == Filter.area:
            scale = _dct_scale(header, width, height, int(size), recipe)
            resized = _resized_bgr(decode(scale, as_array=True), width, height, int(size), recipe)
            outputs[size] = _encode_bgr(resized, recipe)
        else:
            scale = _dct_scale(header, width, height, int(size), recipe)
            outputs[size] = _encode(_resized(decode(scale), width, height, int(size), recipe), recipe)
    return Processed(outputs, repaired)


def _dct_scale(header: Picture, width: int, height: int, size: int, recipe: Recipe) -> int:
    """The power-of-two scale libjpeg may decode at for one output size, leaving >= 2x its pixels.

    Chosen per size, never from the other sizes of the run, so that several sizes made together
    equal the same sizes made one by one.
    """
    if recipe.filter == Filter.lanczos or header.format != "JPEG":
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


def _decode(data: bytes, scale: int, recipe: Recipe) -> Picture:
    from PIL import Image

    image: Picture = Image.open(io.BytesIO(data))  # a fresh parser per decode: draft() applies once
    if image.format == "JPEG" and recipe.filter != Filter.lanczos:
        # Straight to YCbCr when Pillow encodes a JPEG of it: skips two colour conversions.
        ycbcr = image.mode == "RGB" and recipe.format == "jpeg" and recipe.filter == Filter.fast
        mode = "YCbCr" if ycbcr else image.mode
        width, height = image.size
        image.draft(mode, (width // scale, height // scale))
    image.load()  # a truncated file fails here: LOAD_TRUNCATED_IMAGES stays off
    if image.mode.startswith("I;16") or image.mode == "I":
        # 16-bit grey: scale to 8 bits (a plain convert would clip everything over 255 to white).
        image = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
    if image.mode not in ("RGB", "YCbCr"):
        image = image.convert("RGB")  # CMYK (Adobe-inverted ones as Pillow reads them), L, P, RGBA
    return image


def _repair_reason(image: Picture) -> str | None:
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


def _resized(image: Picture, width: int, height: int, size: int, recipe: Recipe) -> Picture:
    from PIL import Image

    # Coordinates are in the original image; draft() may have decoded it smaller.
    factor = image.size[0] / width
    if recipe.mode == "squash":
        return image.resize((size, size), Image.Resampling.BOX)
    resample = Image.Resampling.LANCZOS if recipe.filter == "lanczos" else Image.Resampling.BILINEAR
    if recipe.mode == "center-crop":
        box = _centre_square(width, height, factor)
        if min(width, height) < size and not recipe.upscale:
            left, top, right, bottom = (round(edge) for edge in box)
            return image.crop((left, top, right, bottom))
        return image.resize((size, size), resample, box=box)
    target = _target_size(width, height, size, recipe)
    if target == image.size:
        return image
    return image.resize(target, resample)


def _centre_square(width: int, height: int, factor: float) -> tuple[float, float, float, float]:
    """The centre square of a ``width`` x ``height`` image, as a box (left, top, right, bottom) in
    the image as decoded, ``factor`` times its size."""
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    return left * factor, top * factor, (left + side) * factor, (top + side) * factor


def _encode(image: Picture, recipe: Recipe, quality_floor: int = 0) -> bytes:
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


# --- the area filter, through OpenCV ----------------------------------------------------------------


@functools.cache
def opencv() -> ModuleType:
    """OpenCV, on one thread: the workers are one process per core already."""
    try:
        import cv2
    except ImportError:
        raise MissingExtraError.of("the area filter", "OpenCV", "opencv") from None
    cv2.setNumThreads(1)
    return cv2


_END_OF_IMAGE = b"\xff\xd9"
_REDUCED = {1: "IMREAD_COLOR", 2: "IMREAD_REDUCED_COLOR_2", 4: "IMREAD_REDUCED_COLOR_4", 8: "IMREAD_REDUCED_COLOR_8"}


def _decode_bgr(data: bytes, scale: int, repaired: str | None, pillow_decode: Callable[[], Picture]) -> Any:
    """The image as a BGR array (OpenCV's order), decoded at ``scale``: a clean JPEG by OpenCV,
    leaving its EXIF orientation alone as Pillow does; anything else by Pillow, repaired to RGB.
    What OpenCV cannot decode, Pillow tries: it decodes it, or names what is wrong as it would.

    Only a JPEG that ends in its end-of-image marker goes to OpenCV: OpenCV 4 fills a truncated
    one with grey and returns it (5 returns nothing), where a truncated file must fail. A marker
    cannot appear by chance in the compressed data, where every 0xFF byte is escaped."""
    import numpy

    cv2 = opencv()
    if repaired is None and data.endswith(_END_OF_IMAGE):
        flags = getattr(cv2, _REDUCED[scale]) | cv2.IMREAD_IGNORE_ORIENTATION
        decoded = cv2.imdecode(numpy.frombuffer(data, dtype=numpy.uint8), flags)
        if decoded is not None:
            return decoded
    rgb = numpy.asarray(pillow_decode().convert("RGB"))
    return numpy.ascontiguousarray(rgb[:, :, ::-1])


def _resized_bgr(image: Any, width: int, height: int, size: int, recipe: Recipe) -> Any:
    """As :func:`_resized`, on an array: area resampling to shrink, bilinear to enlarge."""
    if recipe.mode == "center-crop":  # coordinates are in the original image, as in _resized
        left, top, right, bottom = (round(edge) for edge in _centre_square(width, height, image.shape[1] / width))
        image = image[top:bottom, left:right]
        if min(width, height) < size and not recipe.upscale:
            return image
    return _area_resize(image, _target_size(width, height, size, recipe))


def _area_resize(image: Any, target: tuple[int, int]) -> Any:
    cv2 = opencv()
    height, width = image.shape[:2]
    if target == (width, height):
        return image
    shrinking = target[0] <= width and target[1] <= height
    return cv2.resize(image, target, interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def _encode_bgr(image: Any, recipe: Recipe) -> bytes:
    """JPEG by OpenCV at 4:2:0, as Pillow writes it; PNG and WebP by Pillow."""
    from PIL import Image

    cv2 = opencv()
    if recipe.format != "jpeg":
        return _encode(Image.fromarray(image[:, :, ::-1].copy()), recipe)
    settings = [cv2.IMWRITE_JPEG_QUALITY, recipe.quality]
    settings += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420]
    done, encoded = cv2.imencode(".jpg", image, settings)
    if not done:
        raise ImageError("OpenCV could not encode it as JPEG")
    return bytes(encoded)
