"""Photo-like images for the built-in sample, in every encoding that trips up naive ImageNet code.

Content is a smooth colour field with blurred shapes and sensor-like noise, so JPEG sizes and
decode costs resemble real photographs (flat colour would compress to nothing and hide bugs).
Everything is drawn from a seeded RNG: the same image spec gives the same pixels.
"""

from __future__ import annotations

import functools
import io
import random
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Pillow is imported when images are drawn, never at startup
    from PIL.Image import Image as Picture

# What an image is encoded as; the quirks are the ones found in the real ILSVRC-2012 files.
RGB = "rgb"  # baseline JPEG, 4:4:4, quality ~90–96, like most of ImageNet
GRAY = "gray"  # single-channel JPEG
PROGRESSIVE = "progressive"  # progressive JPEG
CMYK = "cmyk"  # Adobe CMYK JPEG (22 train files and one val file)
PNG = "png"  # a PNG file named .JPEG (n02105855_2933.JPEG)


TINY = (32, 24)  # the full-count sample's plain images: decode costs that do not hide the tool's own


@dataclass(frozen=True)
class ImageSpec:
    width: int
    height: int
    encoding: str
    seed: str  # any string; images with the same spec are identical


def render(spec: ImageSpec) -> bytes:
    """The encoded file for ``spec``."""
    picture = _paint(spec.width, spec.height, random.Random(spec.seed))
    return _encode(picture, spec.encoding, random.Random(spec.seed + ":encode"))


def tiny_jpeg(seed: str) -> bytes:
    """A TINY JPEG for ``seed``: one of a few drawn ones, made unique by a comment segment holding
    the seed (rendering each of 1.28 M images would take hours)."""
    base = _tiny_palette()[zlib.crc32(seed.encode()) % len(_tiny_palette())]
    comment = seed.encode()[:60000]
    return base[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + base[2:]


@functools.cache
def _tiny_palette() -> tuple[bytes, ...]:
    return tuple(render(ImageSpec(*TINY, RGB, f"tiny:{n}")) for n in range(32))


def _paint(width: int, height: int, rng: random.Random) -> Picture:
    from PIL import Image, ImageDraw, ImageFilter

    # The smooth part is drawn at half the size and enlarged: out of focus, it loses nothing, and
    # it costs a quarter (the blur was a third of the time of making a sample).
    half = (max(1, width // 2), max(1, height // 2))

    # A colour field: each channel a gradient at its own angle, stretched to the frame.
    channels = []
    for _ in range(3):
        gradient = Image.linear_gradient("L").rotate(rng.uniform(0, 360), resample=Image.Resampling.BILINEAR)
        low, high = sorted(rng.randrange(256) for _ in range(2))
        channels.append(gradient.resize(half).point(lambda v, lo=low, hi=high: lo + v * (hi - lo) // 255))
    picture = Image.merge("RGB", channels)

    # Objects: overlapping shapes, softened like an out-of-focus photograph.
    draw = ImageDraw.Draw(picture)
    for _ in range(rng.randint(6, 18)):
        box = sorted(rng.randrange(half[0]) for _ in range(2)), sorted(rng.randrange(half[1]) for _ in range(2))
        (x0, x1), (y0, y1) = box
        colour = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
        else:
            points = [(rng.randrange(half[0]), rng.randrange(half[1])) for _ in range(rng.randint(3, 6))]
            draw.polygon(points, fill=colour)
    picture = picture.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.25)))
    picture = picture.resize((width, height), Image.Resampling.BILINEAR)

    # Grain, as camera sensors add, so the JPEG has real detail to encode. Drawn from our own
    # RNG: Pillow's effect_noise uses the C library's unseeded rand().
    grain = Image.frombytes("L", (width, height), rng.randbytes(width * height)).convert("RGB")
    return Image.blend(picture, grain, rng.uniform(0.10, 0.22))


def _encode(picture: Picture, encoding: str, rng: random.Random) -> bytes:
    out = io.BytesIO()
    quality = rng.randint(88, 96)
    if encoding == PNG:
        picture.save(out, "PNG")
    elif encoding == GRAY:
        picture.convert("L").save(out, "JPEG", quality=quality)
    elif encoding == CMYK:
        picture.convert("CMYK").save(out, "JPEG", quality=quality)
    elif encoding == PROGRESSIVE:
        picture.save(out, "JPEG", quality=quality, progressive=True, subsampling="4:2:0")
    elif encoding == RGB:
        picture.save(out, "JPEG", quality=quality, subsampling="4:4:4")
    else:
        raise ValueError(f"unknown image encoding {encoding!r}")
    return out.getvalue()
