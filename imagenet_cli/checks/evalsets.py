"""Checks of an evaluation set's file (``ROOT/downloads/<set>/``) against what its authors published.

The counts expected are the set's (ImageNet-A: 7,500 images of its 200 classes; C: 50,000 per
corruption and severity) or, for a miniature, those its record says it was made with. Tar and zip
listings come from headers and the central directory; ImageNetV2's ``.tar.gz`` is a gzip stream
with no index, read only with ``--deep``, which also decodes every image of every set.
"""

from __future__ import annotations

import collections
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

from .. import archives, evalsets
from ..evalsets import EvalSet, Layout
from ..progress import Progress
from ..records import DownloadRecord
from .decoding import decode_members
from .findings import Check, ProblemKind


def check_evalset_file(check: Check, path: Path, record: DownloadRecord | None, deep: bool, progress: Progress) -> None:
    chosen = evalsets.evalset(path.parent.name)
    miniature = record is not None and record.source == "sample"
    expected = int(record.details["images"]) if miniature and record is not None else chosen.images
    if chosen.layout is Layout.LABELS:
        _check_real(check, path, expected)
        return
    if path.name.endswith(".tar.gz") and not deep:
        check.note("a gzip stream: its images are named, counted and decoded with --deep")
        return
    members = _members(path, deep, lambda where, why: check.add(ProblemKind.REFUSED, where, f"refused: {why}"))
    counts: collections.Counter[str] = collections.Counter()

    def counted(name: str) -> bool:
        place = _place(check, chosen, path.name, name)
        if place is not None:
            counts[place] += 1
        return place is not None

    def images() -> Iterator[archives.Member]:
        for name, data in members:
            if counted(name) and data is not None:
                yield archives.Member("val", None, name.rsplit("/", 1)[-1], data, f"{path.name}:{name}")

    if deep:
        decode_members(check, images(), progress, path.name, None)
    else:
        for name, _ in members:
            counted(name)
    _check_counts(check, chosen, path, counts, expected)


def _members(path: Path, deep: bool, refuse: archives.Refuse) -> Iterator[tuple[str, bytes | None]]:
    """(name, bytes, or None for a listing) of each regular file."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as bundle:
            for info in bundle.infolist():
                if not info.is_dir():
                    yield info.filename, bundle.read(info) if deep else None
        return
    if not deep:
        for member in archives.tar_headers(path, refuse):
            yield member.name, None
        return
    with archives.open_tar_stream(path) as tar:
        for member, data in archives.tar_files(tar, path.name, refuse):
            yield member.name, data.read()


def _place(check: Check, chosen: EvalSet, file: str, name: str) -> str | None:
    """Where an image counts (``<wnid>``, or ``<corruption>/<severity>`` for C), or None for a
    member that is no image of the set (named as a problem, unless it is a README)."""
    where = f"{file}:{name}"
    placed = evalsets.place(chosen, file, name)
    if placed is None:
        return None
    if isinstance(placed, evalsets.Unplaced):
        check.add(ProblemKind.EXTRA if placed.kind == "extra" else ProblemKind.STRUCTURE, where, placed.why)
        return None
    if placed.sat_in is not None:
        check.add(ProblemKind.MISPLACED, where, f"its label is {placed.wnid}, not {placed.sat_in}")
    return placed.folder or placed.wnid


def _check_counts(check: Check, chosen: EvalSet, path: Path, counts: collections.Counter[str], expected: int) -> None:
    if chosen.layout is Layout.CORRUPTIONS:
        for corruption in evalsets.CORRUPTIONS[path.name.removesuffix(".tar")]:
            for severity in evalsets.SEVERITIES:
                found = counts[f"{corruption}/{severity}"]
                if found != expected:
                    check.add(
                        ProblemKind.COUNT,
                        f"{path.name}:{corruption}/{severity}",
                        f"{found:,} images; expected {expected:,}",
                    )
        check.counts["images"] = sum(counts.values())
        check.note(f"{len(counts)} corruption and severity folders of {expected:,} val images each")
        return
    images = sum(counts.values())
    check.counts.update(images=images, classes=len(counts))
    if images != expected:
        check.add(ProblemKind.COUNT, path.name, f"{images:,} images; {chosen.title} has {expected:,}")
    check.note(f"{images:,} images in {len(counts)} class folders, as {chosen.title} lays them out")


def _check_real(check: Check, path: Path, expected: int) -> None:
    """ReaL's JSON: one list of 1k indices per val image, in file order (entry i is image i+1)."""
    try:
        lists = json.loads(path.read_bytes())
    except ValueError as error:
        check.add(ProblemKind.STRUCTURE, path.name, f"not JSON ({error})")
        return
    if not isinstance(lists, list) or not all(isinstance(entry, list) for entry in lists):
        check.add(ProblemKind.STRUCTURE, path.name, "not a list of label lists")
        return
    if len(lists) != expected:
        check.add(ProblemKind.COUNT, path.name, f"{len(lists):,} lists; expected one per val image, {expected:,}")
    for number, entry in enumerate(lists, start=1):
        if not all(isinstance(label, int) and 0 <= label < 1000 for label in entry):
            check.add(ProblemKind.STRUCTURE, f"{path.name}:{number}", f"{entry} holds a value that is no class index")
    labelled = sum(1 for entry in lists if entry)
    check.counts.update(images=len(lists), labelled=labelled)
    check.note(f"{labelled:,} of {len(lists):,} val images labelled; the rest are left out of ReaL accuracy")
