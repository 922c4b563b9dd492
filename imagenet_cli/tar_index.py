"""The member index of a tar in a bucket: each regular file's name, data offset and size.

Listing a tar in a bucket costs one small ranged read per header: 1000 for the train tar's class
tars (val's are never listed so: it is read in stretches, see ``trees.readers.TarStretch``).
The index is kept as JSON (``INDEX/<name>.json``, never a pickle)
in the folder of the work made from the tar, for the very object it was read from (its URL, size
and ETag): a stopped export run again reads it instead of the headers, and an object rewritten
since is listed anew. The export's record carries the train tar's (its class tars' byte ranges).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

from . import archives, atomic
from .archives import Refuse
from .storage import Archive, RemoteFile

log = logging.getLogger(__name__)

INDEX = ".index"  # in the folder of the work made from the tars


class Header(NamedTuple):
    """A regular file of a tar: where its data starts and how long it is."""

    name: str
    offset_data: int
    size: int


@dataclass(frozen=True)
class TarIndex:
    url: str
    bytes: int
    etag: str
    members: tuple[Header, ...]
    refused: tuple[tuple[str, str], ...] = ()  # (where, why) of each member the listing refused

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TarIndex:
        members = tuple(Header(*member) for member in data["members"])
        refused = tuple((str(where), str(why)) for where, why in data.get("refused", ()))
        return cls(str(data["url"]), int(data["bytes"]), str(data["etag"]), members, refused)

    def describes(self, remote: RemoteFile) -> bool:
        return (self.url, self.bytes, self.etag) == (remote.url, remote.size, remote.etag)


def headers(path: Archive, refuse: Refuse, folder: Path | None = None) -> Iterator[Header]:
    """The tar's regular files, as :func:`~imagenet_cli.archives.tar_headers` lists them; for an
    object of a bucket with a ``folder`` to keep the index in, from the index kept there for this
    object, else listed and kept (from an index, what the listing refused is told first)."""
    if not isinstance(path, RemoteFile) or folder is None:
        yield from (Header(m.name, m.offset_data, m.size) for m in archives.tar_headers(path, refuse))
        return
    index = kept(folder, path)
    if index is None:
        index = _listed(path)
        atomic.write_text(folder / INDEX / f"{path.name}.json", index.to_json())
    else:
        log.info("%s: its %d members from the index kept in %s", path.name, len(index.members), folder)
    for where, why in index.refused:
        refuse(where, why)
    yield from index.members


def kept(folder: Path, remote: RemoteFile) -> TarIndex | None:
    """The index kept in ``folder`` for this very object, or None (none, another object's, damaged)."""
    index = kept_for(folder, remote.url)
    return index if index is not None and index.describes(remote) else None


def kept_for(folder: Path, url: str) -> TarIndex | None:
    """The index kept in ``folder`` for the object at ``url`` as it was when listed, or None."""
    try:
        index = TarIndex.from_dict(json.loads((folder / INDEX / f"{url.rsplit('/', 1)[-1]}.json").read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return index if index.url == url else None


def _listed(remote: RemoteFile) -> TarIndex:
    refused: list[tuple[str, str]] = []
    members = tuple(
        Header(m.name, m.offset_data, m.size)
        for m in archives.tar_headers(remote, lambda where, why: refused.append((where, why)))
    )
    return TarIndex(remote.url, remote.size, remote.etag, members, tuple(refused))
