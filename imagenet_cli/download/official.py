"""The official archives at image-net.org, or the same file names on a mirror."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .. import catalogue
from ..errors import InvalidArgumentError
from .transfer import Remote

if TYPE_CHECKING:
    import http.cookiejar

BASE_URL = "https://image-net.org/data/ILSVRC/2012/"
DEFAULT_FILES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar", "ILSVRC2012_devkit_t12.tar.gz")


def official_remotes(
    base_url: str, files: list[str] | None = None, checksums: dict[str, tuple[str, str]] | None = None
) -> list[Remote]:
    """The archives to fetch, each with its published size and MD5 from the catalogue.

    ``checksums`` (from a mirror's own checksum file) replace the published values for the files
    they name: a mirror that says what it serves is believed over the catalogue.
    """
    checksums = checksums or {}
    known = catalogue.official_archives()
    names = list(files) if files else list(DEFAULT_FILES)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidArgumentError(
            f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not official ILSVRC-2012 archives "
            f"(known: {', '.join(known)})"
        )
    if not base_url.startswith(("http://", "https://")):
        raise InvalidArgumentError(f"{base_url!r} is not an http(s) URL", "base_url")
    base = base_url.rstrip("/") + "/"
    remotes = []
    for name in dict.fromkeys(names):
        if name in checksums:
            algorithm, hexdigest = checksums[name]
            remotes.append(Remote(name, base + name, {algorithm: hexdigest}))
        else:
            remotes.append(Remote(name, base + name, {"md5": known[name].md5}, known[name].size))
    return remotes


def parse_header(text: str) -> tuple[str, str]:
    """``"Name: value"`` as a pair, as curl's ``-H`` takes it."""
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
        raise InvalidArgumentError(f"{text!r} is not in the form 'Name: value'", "headers")
    return name.strip(), value.strip()


def load_cookies(path: Path) -> http.cookiejar.CookieJar:
    """A Netscape ``cookies.txt``, as browsers' export extensions and curl/wget write it."""
    import http.cookiejar

    jar = http.cookiejar.MozillaCookieJar(str(path))
    try:
        jar.load(ignore_discard=True, ignore_expires=True)
    except FileNotFoundError:
        raise InvalidArgumentError(f"{path}: no such file", "cookies") from None
    except (http.cookiejar.LoadError, OSError) as error:
        raise InvalidArgumentError(f"{path} is not a Netscape cookies.txt file ({error})", "cookies") from None
    for cookie in jar:
        if cookie.expires == 0:  # exporters write 0 for session cookies; cookiejar reads it as 1970
            cookie.expires, cookie.discard = None, True
    return jar
