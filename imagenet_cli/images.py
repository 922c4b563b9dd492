"""One image in, a verdict or new bytes out: the per-image work, pure and parallel-safe."""

from __future__ import annotations

import io
import warnings


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
            return f"{type(error).__name__}: {error}"
    return None
