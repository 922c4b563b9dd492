"""Does an image decode? The check ``verify --deep`` runs on every image, pure and parallel-safe."""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def describe_error(error: BaseException) -> str:
    """An exception as one deterministic line: the same file gives the same words on every run
    (Pillow names the stream it read, with its memory address: that part is left out)."""
    return _ADDRESS.sub("", f"{type(error).__name__}: {error}")


@contextmanager
def bomb_warnings_raised() -> Iterator[None]:
    """Pillow's decompression-bomb warning raised as an error (an image that large is refused,
    never decoded), and the harmless "(Possibly) corrupt EXIF data" warning silenced."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*orrupt EXIF data.*")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def decode_problem(data: bytes) -> str | None:
    """Why ``data`` does not decode as a complete image, or None when it does.

    Truncated files are failures (``LOAD_TRUNCATED_IMAGES`` stays off) and decompression bombs are
    refused; the harmless "(Possibly) corrupt EXIF data" warning is silenced.
    """
    from PIL import Image

    if not data:
        return "empty file (0 bytes)"
    with bomb_warnings_raised():
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.load()
        except Image.DecompressionBombWarning as warning:
            return f"refused as a decompression bomb ({warning})"
        except Exception as error:  # Pillow raises many kinds for broken files; each is a finding
            return describe_error(error)
    return None
