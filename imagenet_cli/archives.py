"""Reading the real archives as streams, never unpacking them to disk.

``verify`` reads every input as one stream of :class:`Member` records — (split, wnid, name,
bytes) — whether it is the official train tar of per-class tars, the flat val or test tar, or the
Kaggle zip in either of its historic layouts; ``prepare`` lists the same inputs once
(:func:`tar_headers`, :func:`kaggle_zip_images`) and gives each shard a reader of its share.
Members are read in archive order with constant memory: tar headers are never collected
(``for m in tar``, not ``getmembers()``).

Every member name is checked before use: absolute paths, ``..`` parts, links and devices are
refused and reported through ``refuse`` — CPython 3.11's tarfile filters do not catch them all.
"""

from __future__ import annotations

import collections
import posixpath
import re
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple, cast

from . import catalogue, evalsets, zip_entries
from .errors import ArchiveError
from .storage import Archive, archive_size, open_archive

TRAIN_TAR = "ILSVRC2012_img_train.tar"
VAL_TAR = "ILSVRC2012_img_val.tar"
TEST_TAR = "ILSVRC2012_img_test_v10102019.tar"
DEVKIT = "ILSVRC2012_devkit_t12.tar.gz"
KAGGLE_ZIP = "imagenet-object-localization-challenge.zip"
KAGGLE_INNER_TAR = "imagenet_object_localization_patched2019.tar.gz"
# Hugging Face's ILSVRC/imagenet-1k (its data/ folder, downloaded into ROOT/downloads/): flat JPEGs
# named <official stem>_<wnid>.JPEG; test images have no class.
HUB_TRAIN = tuple(f"train_images_{number}.tar.gz" for number in range(5))
HUB_VAL = "val_images.tar.gz"
HUB_TEST = "test_images.tar.gz"
HUB_BY_SPLIT = {"train": HUB_TRAIN, "val": (HUB_VAL,), "test": (HUB_TEST,)}
GROUND_TRUTH = "ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt"
LOC_FILES = ("LOC_synset_mapping.txt", "LOC_val_solution.csv", "LOC_train_solution.csv", "LOC_sample_submission.csv")

TRAIN_NAME = re.compile(r"(n\d{8})_(\d+)\.JPEG")
VAL_NAME = re.compile(r"ILSVRC2012_val_(\d{8})\.JPEG")
TEST_NAME = re.compile(r"ILSVRC2012_test_(\d{8})\.JPEG")
KAGGLE_DATA = "ILSVRC/Data/CLS-LOC/"

Refuse = Callable[[str, str], None]  # (member, why)

# No ImageNet image is near this (the largest is a few tens of MB): a member claiming more is
# refused without being read or inflated, so a hostile archive cannot exhaust memory or time.
MAX_IMAGE_BYTES = 64 << 20


@dataclass(frozen=True)
class Member:
    split: str  # train, val, test
    wnid: str | None  # None for test images, and for val until labelled
    name: str  # the image's file name, e.g. n01440764_10026.JPEG
    data: bytes
    origin: str  # where it came from, for messages: "ILSVRC2012_img_train.tar:n01440764.tar:n01440764_10026.JPEG"
    damage: str | None = None  # why its bytes could not be read (a zip member failing its CRC); data is then empty


class HubImage(NamedTuple):
    name: str  # the official file name: n01440764_10026.JPEG, ILSVRC2012_val_00000001.JPEG
    wnid: str | None  # from the name's suffix; None where it is none of the 1000
    data: bytes
    origin: str  # the member as it is named in the archive


def hub_images(path: Path, refuse: Refuse) -> Iterator[HubImage]:
    """The images of one of the hub's ``.tar.gz`` files, streamed in their order, each with its
    official name back (``n01440764_10026_n01440764.JPEG`` is ``n01440764_10026.JPEG`` of class
    n01440764)."""
    with tarfile.open(path, mode="r|gz") as tar:
        for member, data in tar_files(tar, path.name, refuse):
            named = posixpath.basename(member.name)
            stem, dot, extension = named.rpartition(".")
            official, _, wnid = stem.rpartition("_")
            if not official or not catalogue.is_wnid(wnid):
                yield HubImage(named, None, data.read(), member.name)
            else:
                yield HubImage(f"{official}{dot}{extension}", wnid, data.read(), member.name)


def role_of(path: Path) -> str:
    """What an archive is, from its name: train, val, test, devkit, kaggle, hub, evalset (a file of
    an evaluation set, in its set's folder) — or unknown."""
    name = path.name
    if name == TRAIN_TAR:
        return "train"
    if name == VAL_TAR:
        return "val"
    if name.startswith("ILSVRC2012_img_test") and name.endswith(".tar"):
        return "test"
    if name.startswith("ILSVRC2012_devkit_t12") and name.endswith((".tar.gz", ".tar")):
        return "devkit"
    if name == KAGGLE_ZIP:
        return "kaggle"
    if hub_split(path) is not None:
        return "hub"
    if evalsets.file_at(path) is not None:
        return "evalset"  # ROOT/downloads/<set>/<file>
    return "unknown"


def hub_split(path: Path) -> str | None:
    """The split one of the Hugging Face hub's files holds (train_images_0.tar.gz: train), or None."""
    return next((split for split, names in HUB_BY_SPLIT.items() if path.name in names), None)


# --- member safety -----------------------------------------------------------------------------


def unsafe_name(name: str) -> str | None:
    """Why a member name must not be used as a path, or None when it is safe."""
    if not name or "\x00" in name:
        return "an empty or NUL-containing name"
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        return "an absolute path"
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        return "a '..' component"
    normal = posixpath.normpath(name)
    if normal.startswith("../") or normal == "..":
        return "a path leaving the archive"
    return None


def tar_member_refusal(member: tarfile.TarInfo) -> str | None:
    """Why a tar member is refused: links, devices, FIFOs and unsafe names; None for files and dirs."""
    if not (member.isfile() or member.isdir()):
        kind = "a symlink" if member.issym() else "a hard link" if member.islnk() else "a device or FIFO"
        return f"{kind}, not a regular file"
    return unsafe_name(member.name)


def zip_member_refusal(entry: zip_entries.ZipEntry) -> str | None:
    if entry.mode and (entry.mode & 0o170000) not in (0, 0o100000, 0o040000):
        return "a symlink or special file, not a regular file"
    return unsafe_name(entry.name)


def tar_files(
    tar: tarfile.TarFile,
    origin: str,
    refuse: Refuse,
    max_size: int | None = MAX_IMAGE_BYTES,
    window: tuple[int, int] | None = None,
) -> Iterator[tuple[tarfile.TarInfo, IO[bytes]]]:
    """Regular files of a tar opened as a stream, in order; anything else is refused or skipped.

    Files over ``max_size`` (images, by default; None for a tar of tars) are refused unread.
    ``window``: only the members whose headers begin from its first offset up to its second (in
    the stream), which ends the reading.
    """
    try:
        for member in _regular_files(tar, origin, refuse, max_size, window):
            yield member, member_data(tar, member)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise ArchiveError(f"{origin} is damaged or truncated ({error})") from error


def _regular_files(
    tar: tarfile.TarFile, origin: str, refuse: Refuse, max_size: int | None, window: tuple[int, int] | None = None
) -> Iterator[tarfile.TarInfo]:
    """The one refusal rule for tars: links, devices, unsafe names and (with ``max_size``) members
    claiming more than an image can hold go to ``refuse``; folders are skipped."""
    for member in _each_member(tar):
        if window is not None and member.offset >= window[1]:
            return
        if window is not None and member.offset < window[0]:
            continue
        why = tar_member_refusal(member)
        if not why and max_size is not None and member.size > max_size:
            why = f"claims {member.size:,} bytes, over the {max_size:,}-byte cap for one image"
        if why:
            refuse(f"{origin}:{member.name}", why)
        elif member.isfile():
            yield member


def _each_member(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """Each member in order, none kept: tarfile's own iteration keeps every header it has read (val's
    50,000 are 25 MB), which reading a tar once through does not need."""
    kept: list[tarfile.TarInfo] = cast(Any, tar).members  # TarFile's list of what next() has read
    while (member := tar.next()) is not None:
        kept.clear()  # next() only appends to it; nothing of ours asks for it
        yield member


def data_after_end(path: Archive, start: int, end: int) -> int | None:
    """Where a non-zero byte lies in ``path`` between ``start`` and ``end``, or None.

    A tar ends with zero blocks; ``tarfile`` stops at the first zero block, and silently at a
    header with a bad checksum. Zeros written over the middle of an archive, or one damaged
    header, would so end it early without an error: its real end holds nothing but zeros.
    """
    with open_archive(path, end=end) as file:
        file.seek(start)
        position = start
        while position < end:
            chunk = file.read(min(1 << 20, end - position))
            if not chunk:
                return None
            stripped = chunk.lstrip(b"\0")
            if stripped:
                return position + len(chunk) - len(stripped)
            position += len(chunk)
    return None


def ended_early(path: Archive, stopped: int, end: int, what: str) -> str | None:
    """Why a tar read from ``path`` up to ``stopped`` (``tar.offset``) ended before ``end``, or None."""
    where = data_after_end(path, stopped, end)
    if where is None:
        return None
    return (
        f"{what} ends at byte {stopped:,} (zeros or a damaged header) but data follows at byte {where:,}: "
        "the archive is damaged there"
    )


# --- the official tars -------------------------------------------------------------------------


NOT_A_CLASS_TAR = "not a <wnid>.tar of an ILSVRC-2012 class"


def class_tar_wnid(name: str) -> str | None:
    """The class a member of the train tar holds (``n01440764.tar``), or None for anything else."""
    wnid = name.removesuffix(".tar")
    return wnid if name.endswith(".tar") and catalogue.is_wnid(wnid) else None


def tar_headers(path: Archive, refuse: Refuse) -> Iterator[tarfile.TarInfo]:
    """Each regular file of an uncompressed tar — name, size, data offset — reading headers only
    (in a bucket, one small ranged read per header: nothing else of the archive is fetched)."""
    try:
        with open_archive(path, buffered=False) as file, tarfile.open(fileobj=file, mode="r:") as tar:
            yield from _regular_files(tar, path.name, refuse, None)
            stopped = tar.offset
    except (tarfile.TarError, EOFError, OSError) as error:
        raise ArchiveError(f"{path.name} is damaged or truncated ({error})") from error
    damage = ended_early(path, stopped, archive_size(path), f"{path.name}'s listing")
    if damage:
        raise ArchiveError(damage)


def train_members(path: Path, refuse: Refuse) -> Iterator[Member]:
    """Every image of the train tar, through its per-class tars, read as streams."""
    with open_tar_stream(path) as outer:
        for inner_info, inner_file in tar_files(outer, path.name, refuse, max_size=None):
            wnid = class_tar_wnid(inner_info.name)
            origin = f"{path.name}:{inner_info.name}"
            if wnid is None:
                refuse(origin, NOT_A_CLASS_TAR)
                continue
            try:  # a damaged class tar is one finding; the other classes are still read
                with tarfile.open(fileobj=inner_file, mode="r|") as inner:
                    for member, data in tar_files(inner, origin, refuse):
                        name = posixpath.basename(member.name)
                        yield Member("train", wnid, name, data.read(), f"{origin}:{member.name}")
                    start = inner_info.offset_data
                    damage = ended_early(path, start + inner.offset, start + inner_info.size, inner_info.name)
            except tarfile.TarError as error:
                damage = f"{inner_info.name} is not a readable tar ({error})"
            if damage:
                yield Member("train", wnid, inner_info.name, b"", origin, damage=damage)
        _check_stream_end(path, outer)


def flat_members(path: Path, split: str, refuse: Refuse) -> Iterator[Member]:
    """Every image of a flat tar (val or test)."""
    with open_tar_stream(path) as tar:
        for member, data in tar_files(tar, path.name, refuse):
            yield Member(split, None, posixpath.basename(member.name), data.read(), f"{path.name}:{member.name}")
        _check_stream_end(path, tar)


def _check_stream_end(path: Path, tar: tarfile.TarFile) -> None:
    """An uncompressed tar (the train, val and test tars) read as a stream must end where its bytes
    end, but for zeros."""
    damage = ended_early(path, tar.offset, path.stat().st_size, f"{path.name}'s listing")
    if damage:
        raise ArchiveError(damage)


def open_tar_stream(path: Path) -> tarfile.TarFile:
    """A tar (or tar.gz) read as a stream; one that cannot be opened is an ArchiveError. Read it with
    :func:`tar_files`, which says so of one damaged further on."""
    try:
        return tarfile.open(path, mode="r|*")
    except (tarfile.TarError, OSError) as error:
        raise ArchiveError(f"{path.name} is not a readable tar ({error})") from error


def member_data(tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    """A regular member's bytes, as a stream."""
    data = tar.extractfile(member)
    if data is None:  # a link or a folder: callers ask for regular files only
        raise ArchiveError(f"{member.name} is not a regular file")
    return data


def devkit_ground_truth_text(path: Archive) -> str:
    """The devkit's ground truth file as it is: line k, the ILSVRC2012_ID of val image k."""
    try:
        with open_archive(path) as file, tarfile.open(fileobj=file, mode="r:*") as tar:
            for member in tar:
                if member.isfile() and member.name.lstrip("./") == GROUND_TRUTH:
                    return member_data(tar, member).read().decode("ascii")
    except (tarfile.TarError, EOFError, OSError, UnicodeDecodeError) as error:
        raise ArchiveError(f"{path.name} is damaged or truncated ({error})") from error
    raise ArchiveError(f"{path.name} has no {GROUND_TRUTH}")


def devkit_ground_truth(path: Path) -> list[int]:
    """The devkit's val labels (ILSVRC2012_IDs, devkit order) as numbers, however many lines."""
    text = devkit_ground_truth_text(path)
    try:
        return [int(line) for line in text.split()]
    except ValueError as error:
        raise ArchiveError(f"{path.name}: the ground truth holds a line that is not a number ({error})") from None


# --- the Kaggle zip ----------------------------------------------------------------------------


@dataclass(frozen=True)
class KaggleBundle:
    """What one pass over the Kaggle zip's central directory finds: its layout and its LOC files."""

    path: Archive
    inner: zip_entries.ZipEntry | None  # the 2019 layout's single tar.gz; None: the tree is in the zip
    loc_files: dict[str, zip_entries.ZipEntry]
    images: dict[str, int] = field(default_factory=dict)  # per split, as kaggle_zip_images lists them


def kaggle_bundle(path: Archive) -> KaggleBundle:
    inner, loc_files, images = None, {}, collections.Counter[str]()
    for entry in zip_entries.entries(path):
        if entry.name.rstrip("/").endswith(KAGGLE_INNER_TAR):
            inner = entry
        elif entry.name in LOC_FILES:
            loc_files[entry.name] = entry
        elif not zip_member_refusal(entry) and (image := _image_of(entry)) is not None:
            images[image[0]] += 1
    return KaggleBundle(path, inner, loc_files, dict(images))


def kaggle_image_split(member: str) -> tuple[str, str | None, str] | None:
    """(split, wnid, file name) of an image under ILSVRC/Data/CLS-LOC/, else None."""
    if not member.startswith(KAGGLE_DATA):
        return None
    parts = member[len(KAGGLE_DATA) :].split("/")
    if len(parts) == 3 and parts[0] == "train" and parts[2]:
        return "train", parts[1], parts[2]
    if len(parts) == 2 and parts[0] in ("val", "test") and parts[1]:
        return parts[0], None, parts[1]
    return None


class ListedImage(NamedTuple):
    """An image the Kaggle zip's central directory lists, not yet read."""

    split: str
    wnid: str | None  # None for val and test
    name: str  # the file name
    entry: zip_entries.ZipEntry


def kaggle_zip_images(path: Archive, refuse: Refuse) -> Iterator[ListedImage]:
    """Every image the current Kaggle layout lists, from one streamed pass over its central
    directory (~2 M records); hostile members go to ``refuse``. verify, prepare and the member
    reader below all list the zip through this."""
    for entry in zip_entries.entries(path):
        why = zip_member_refusal(entry)
        if why:
            refuse(f"{path.name}:{entry.name}", why)
            continue
        if (where := _image_of(entry)) is not None:
            yield ListedImage(*where, entry)


def _image_of(entry: zip_entries.ZipEntry) -> tuple[str, str | None, str] | None:
    """(split, wnid, name) of a member that is an image of the tree (refusals are the caller's)."""
    return None if entry.is_dir else kaggle_image_split(entry.name)


def kaggle_members(bundle: KaggleBundle, refuse: Refuse) -> Iterator[Member]:
    """Every image of the Kaggle zip, either layout, read (and CRC-checked) one at a time."""
    if bundle.inner is not None:
        yield from kaggle_inner_tar_members(bundle, refuse)
        return
    path = bundle.path
    with open_archive(path) as file:
        for split, wnid, name, entry in kaggle_zip_images(path, refuse):
            origin = f"{path.name}:{entry.name}"
            try:
                yield Member(split, wnid, name, zip_entries.read(file, entry, MAX_IMAGE_BYTES), origin)
            except ArchiveError as error:  # one bad member: name it and go on with the rest
                yield Member(split, wnid, name, b"", origin, damage=str(error))


def kaggle_inner_tar_members(bundle: KaggleBundle, refuse: Refuse) -> Iterator[Member]:
    """The 2019 layout's images, streamed through the inner tar.gz from start to end."""
    if bundle.inner is None:  # the current layout: its images are zip members
        return
    origin = f"{bundle.path.name}:{bundle.inner.name}"
    with open_archive(bundle.path) as file, zip_entries.open_member(file, bundle.inner) as raw:
        with tarfile.open(fileobj=raw, mode="r|gz") as tar:
            for member, data in tar_files(tar, origin, refuse):
                where = kaggle_image_split(member.name.lstrip("./"))
                if where is not None:
                    split, wnid, name = where
                    yield Member(split, wnid, name, data.read(), f"{origin}:{member.name}")


def kaggle_text(bundle: KaggleBundle, name: str) -> str | None:
    """A top-level LOC_* file of the Kaggle bundle, from either layout; None when absent."""
    # In a bucket, a LOC file is read by range alone; the 2019 layout's tar.gz streamed from its start.
    with open_archive(bundle.path, buffered=bundle.inner is not None) as file:
        if name in bundle.loc_files:
            return zip_entries.read(file, bundle.loc_files[name]).decode("utf-8")
        if bundle.inner is None:
            return None
        with zip_entries.open_member(file, bundle.inner) as raw, tarfile.open(fileobj=raw, mode="r|gz") as tar:
            for member in tar:  # the LOC files come first in the real tar: this stops early
                if member.isfile() and member.name.lstrip("./") == name:
                    return member_data(tar, member).read().decode("utf-8")
    return None
