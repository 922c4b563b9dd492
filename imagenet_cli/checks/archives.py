"""Checks of one archive: its bytes against expected digests, its structure against ILSVRC-2012.

Expected digests, first match wins: a ``--checksums`` file, the record ``download`` wrote, the
published MD5s in the catalogue. Without any, the archive's content is "unknown", not good.
Structure is read from headers (tar) or the central directory (zip); ``--deep`` also reads every
member: each inner tar, each zip member's CRC-32, each image decoded.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from .. import archives, catalogue, evalsets, hashing, sample, val_labels
from ..errors import ArchiveError, UnknownClassError
from ..progress import SILENT, Progress
from ..records import DownloadRecord, read_record, refresh_record, write_record
from .decoding import decode_members
from .evalsets import check_evalset_file
from .findings import Check, ProblemKind


def check_archive(
    path: Path,
    *,
    checksums: dict[str, tuple[str, str]] | None = None,
    deep: bool = False,
    rehash: bool = False,
    record: bool = False,
    progress: Progress = SILENT,
) -> Check:
    """Check one archive; with ``record``, a successful hash is written down as its record
    (``NAME.record.json``) so the next check of the unchanged file is instant. Otherwise nothing
    is written: a read-only root gets its full report."""
    check = Check(path, "archive")
    existing = read_record(path)
    _check_bytes(check, path, existing, checksums or {}, rehash, record, progress)
    try:
        _check_structure(check, path, archives.role_of(path), existing, deep, progress)
    except ArchiveError as error:
        check.add(ProblemKind.STRUCTURE, path.name, str(error))
    return check


def _check_structure(
    check: Check, path: Path, kind: str, existing: DownloadRecord | None, deep: bool, progress: Progress
) -> None:
    """What the archive holds, checked as its kind should hold it (an unknown kind: nothing)."""
    if kind == "evalset":  # its expectations are its set's, or a miniature's record
        check_evalset_file(check, path, existing, deep, progress)
        return
    structure = {
        "train": _check_train_tar,
        "val": _check_flat_tar,
        "test": _check_flat_tar,
        "devkit": _check_devkit,
        "kaggle": _check_kaggle_zip,
        "hub": _check_hub_file,
    }.get(kind)
    if structure is not None:
        structure(check, path, _expected_contents(existing), deep, progress)


# --- bytes -------------------------------------------------------------------------------------


class DigestSource(Enum):
    """Where the digests an archive is held to came from: the first of these that has any."""

    CHECKSUMS_FILE = "checksums file"  # --checksums
    DOWNLOAD_RECORD = "download record"  # NAME.record.json, written as it was downloaded
    PUBLISHED = "published"  # the official MD5 in the catalogue
    NONE = "none"  # nothing to compare with: the check is structure only


@dataclass(frozen=True)
class Expected:
    digests: dict[str, str]  # algorithm -> hex digest
    source: DigestSource
    words: str  # the source in a message: "the published MD5"


def _expected_digests(path: Path, record: DownloadRecord | None, checksums: dict[str, tuple[str, str]]) -> Expected:
    if path.name in checksums:
        algorithm, hexdigest = checksums[path.name]
        return Expected({algorithm: hexdigest}, DigestSource.CHECKSUMS_FILE, "the checksums file")
    if record is not None:
        return Expected(
            {"md5": record.md5, "xxh3_64": record.xxh3_64},
            DigestSource.DOWNLOAD_RECORD,
            f"its {record.source} download record",
        )
    published = catalogue.official_archives().get(path.name)
    if published is not None:
        return Expected({"md5": published.md5}, DigestSource.PUBLISHED, "the published MD5")
    evaluation = evalsets.file_at(path)
    if evaluation is not None and evaluation.md5 is not None:
        return Expected({"md5": evaluation.md5}, DigestSource.PUBLISHED, "the published MD5")
    return Expected({}, DigestSource.NONE, "")


def _check_bytes(
    check: Check,
    path: Path,
    record: DownloadRecord | None,
    checksums: dict[str, tuple[str, str]],
    rehash: bool,
    record_digests: bool,
    progress: Progress,
) -> None:
    expected = _expected_digests(path, record, checksums)
    size = path.stat().st_size
    check.counts["bytes"] = size
    published = catalogue.official_archives().get(path.name)
    if (
        expected.source is DigestSource.PUBLISHED
        and published is not None
        and published.size is not None
        and size != published.size
    ):
        check.add(ProblemKind.SIZE, path.name, f"{size:,} bytes; the published file is {published.size:,} bytes")
        return  # hashing a file of the wrong size can only fail, slowly
    if record is not None and not record.matches(path) and expected.source is DigestSource.DOWNLOAD_RECORD:
        if size != record.size:
            check.add(ProblemKind.SIZE, path.name, f"{size:,} bytes; {record.size:,} when it was downloaded")
            return
    recorded = {"md5": record.md5, "xxh3_64": record.xxh3_64} if record is not None else {}
    against = f" against {expected.words}" if expected.words else ""
    if record is not None and record.matches(path) and not rehash and set(expected.digests) <= set(recorded):
        digests = recorded  # unchanged since its digests were taken: no need to read it again
        check.note(f"digests as recorded (size and mtime unchanged){against}" if against else "recorded digests")
    else:
        algorithms = tuple(dict.fromkeys(hashing.DEFAULT_ALGORITHMS + tuple(expected.digests)))
        digests = hashing.hash_file(path, algorithms, progress)
        check.note(f"{', '.join(expected.digests) or 'digests'}{against}" if against else "hashed")
    if expected.source is DigestSource.NONE:
        check.unknown = True
        return
    wrong = [a for a, h in expected.digests.items() if digests.get(a) != h.lower()]
    for algorithm in wrong:
        check.add(
            ProblemKind.CHECKSUM,
            path.name,
            f"{algorithm} is {digests[algorithm]}; {expected.words} says {expected.digests[algorithm]}",
        )
    if not wrong and (record is None or not record.matches(path)):
        if not record_digests:
            check.note("not recorded (recording it makes the next check of the unchanged file instant)")
            return
        if record is None:
            write_record(path, digests, source="local")
        else:
            refresh_record(path, record)


# --- structure ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contents:
    """What an archive should hold: the real dataset, or what the sample was generated with."""

    full: bool
    classes: set[str]
    sample_train: tuple[int, int] | None  # the sample's fewest and most per class; the real classes hold 732–1300
    val: int
    test: int

    def images(self, split: str) -> int:
        return self.val if split == "val" else self.test

    @property
    def train_range(self) -> tuple[int, int]:
        """The fewest and most train images a class may hold."""
        if self.full or self.sample_train is None:
            return catalogue.TRAIN_PER_CLASS
        return self.sample_train


def _expected_contents(record: DownloadRecord | None) -> Contents:
    if record is not None and record.source == "sample":
        details = record.details
        classes = set(details["classes"])
        train, val_per_class = sample.expected_counts(details)
        return Contents(False, classes, train, val_per_class * len(classes), details["test_images"])
    return Contents(True, set(catalogue.wnids()), None, catalogue.SPLIT_IMAGES["val"], catalogue.SPLIT_IMAGES["test"])


def _refuser(check: Check) -> archives.Refuse:
    return lambda where, why: check.add(ProblemKind.REFUSED, where, f"refused: {why}")


def _check_train_tar(check: Check, path: Path, expected: Contents, deep: bool, progress: Progress) -> None:
    refuse = _refuser(check)
    found = set()
    for member in archives.tar_headers(path, refuse):
        name = member.name
        wnid = archives.class_tar_wnid(name)
        if wnid is None:
            check.add(ProblemKind.STRUCTURE, f"{path.name}:{name}", archives.NOT_A_CLASS_TAR)
            continue
        if wnid in found:
            check.add(ProblemKind.DUPLICATE, f"{path.name}:{name}", f"a second {name}, at byte {member.offset:,}")
        found.add(wnid)
    for wnid in sorted(expected.classes - found):
        check.add(ProblemKind.MISSING, f"{path.name}:{wnid}.tar", "class tar missing")
    for wnid in sorted(found - expected.classes):
        check.add(ProblemKind.EXTRA, f"{path.name}:{wnid}.tar", "a class this archive should not hold")
    check.counts["classes"] = len(found)
    check.note(f"{len(found)} class tars present")
    if deep:
        per_class = decode_members(check, archives.train_members(path, refuse), progress, path.name, None)
        low, high = expected.train_range
        for wnid, count in sorted(per_class.items()):
            if not low <= count <= high:
                check.add(ProblemKind.COUNT, f"{path.name}:{wnid}.tar", f"{count} images; expected {low}–{high}")
        if expected.full and sum(per_class.values()) != catalogue.SPLIT_IMAGES["train"]:
            check.add(
                ProblemKind.COUNT,
                path.name,
                f"{sum(per_class.values()):,} images; ILSVRC-2012 has {catalogue.SPLIT_IMAGES['train']:,}",
            )


def _check_flat_tar(check: Check, path: Path, expected: Contents, deep: bool, progress: Progress) -> None:
    split = archives.role_of(path)
    pattern = archives.VAL_NAME if split == "val" else archives.TEST_NAME
    refuse = _refuser(check)
    count = 0
    seen = NumberedNames()
    for member in archives.tar_headers(path, refuse):
        name = member.name
        count += 1
        base, where = name.rsplit("/", 1)[-1], f"{path.name}:{name}"
        numbered = pattern.fullmatch(base)
        number = int(numbered[1]) if numbered else None
        if seen.met_before(base, number):
            check.add(ProblemKind.DUPLICATE, where, f"a second {base}, at byte {member.offset:,}")
        if number is None:
            check.add(ProblemKind.STRUCTURE, where, f"not an ILSVRC2012 {split} file name")
        elif split == "val" and not 1 <= number <= catalogue.NUM_VAL_IMAGES:
            check.add(
                ProblemKind.STRUCTURE,
                where,
                f"numbered outside 1–{catalogue.NUM_VAL_IMAGES:,}: no ILSVRC2012 val image",
            )
        elif split == "val" and catalogue.val_class(base).wnid not in expected.classes:
            check.add(ProblemKind.EXTRA, where, "an image of a class this archive should not hold")
    check.counts["images"] = count
    if count != expected.images(split):
        check.add(ProblemKind.COUNT, path.name, f"{count:,} images; expected {expected.images(split):,}")
    check.note(f"{count:,} {split} images named as ILSVRC-2012 names them")
    if deep:
        decode_members(check, archives.flat_members(path, split, refuse), progress, path.name, count)


class NumberedNames:
    """The names met so far in a flat tar, to find one met twice. Val's and test's names are
    numbered: a number is one bit of a bytearray (test's 100,000 take 12.5 KB, where a set of their
    names took 11 MiB), so memory stays flat however many there are. A name of another shape is a
    finding already, and kept whole, as is one numbered past any split's count."""

    BITS = 1 << 20  # the bytearray's limit, 128 KiB, whatever numbers a hostile tar's names hold

    def __init__(self) -> None:
        self._numbers = bytearray()
        self._others: set[str] = set()

    def met_before(self, name: str, number: int | None) -> bool:
        """Whether ``name`` (numbered ``number``, if it is) was met already; it is met now."""
        if number is None or number >= self.BITS:
            met = name in self._others
            self._others.add(name)
            return met
        byte, bit = divmod(number, 8)
        if byte >= len(self._numbers):
            self._numbers.extend(bytes(byte + 1 - len(self._numbers)))
        met = bool(self._numbers[byte] >> bit & 1)
        self._numbers[byte] |= 1 << bit
        return met


def _check_hub_file(check: Check, path: Path, expected: Contents, deep: bool, progress: Progress) -> None:
    """One of the hub's ``.tar.gz`` files: a gzip stream has no index, so its names are read, like
    its images, only by decompressing it whole, which ``--deep`` does."""
    split = archives.hub_split(path)
    assert split is not None, path
    if not deep:
        check.note("a gzip stream: its images are named, counted and decoded with --deep")
        return
    count = 0
    names: set[str] = set()  # one file's names: 260,000 at most

    def members() -> Iterator[archives.Member]:
        nonlocal count
        for image in archives.hub_images(path, _refuser(check)):
            count += 1
            where = f"{path.name}:{image.origin}"
            if image.name in names:
                check.add(ProblemKind.DUPLICATE, where, f"a second {image.name}")
            names.add(image.name)
            _check_hub_name(check, split, image, where, expected)
            yield archives.Member(split, image.wnid if split == "train" else None, image.name, image.data, where)

    per_class = decode_members(check, members(), progress, path.name, None)
    check.counts["images"] = count
    if split == "train":
        check.counts["classes"] = len(per_class)
        check.note(f"{count:,} train images of {len(per_class)} classes, each named <name>_<wnid>.JPEG")
        return
    if count != expected.images(split):
        check.add(ProblemKind.COUNT, path.name, f"{count:,} images; expected {expected.images(split):,}")
    check.note(f"{count:,} {split} images named as the hub names them")


def _check_hub_name(check: Check, split: str, image: archives.HubImage, where: str, expected: Contents) -> None:
    """A hub name is the official one plus ``_<wnid>`` (test: no class): each part as it should be."""
    if split == "train":
        if image.wnid is None:
            check.add(ProblemKind.STRUCTURE, where, "no _<wnid> class suffix")
        elif image.wnid not in expected.classes:
            check.add(ProblemKind.EXTRA, where, "an image of a class this archive should not hold")
    elif split == "val":
        named = archives.VAL_NAME.fullmatch(image.name)
        wnid = val_labels.label_of(catalogue.val_labels(), image.name) if named else None  # None past 50,000
        if image.wnid is None or wnid is None:
            check.add(
                ProblemKind.STRUCTURE, where, "not an ILSVRC2012_val_<8 digits>_<wnid>.JPEG name numbered 1–50,000"
            )
        elif wnid != image.wnid:
            check.add(ProblemKind.MISPLACED, where, f"named {image.wnid}; ILSVRC-2012's label is {wnid}")
        elif wnid not in expected.classes:
            check.add(ProblemKind.EXTRA, where, "an image of a class this archive should not hold")
    elif not archives.TEST_NAME.fullmatch(image.name):
        check.add(ProblemKind.STRUCTURE, where, "not an ILSVRC2012_test_<8 digits>.JPEG name")


def _check_devkit(check: Check, path: Path, expected: Contents, deep: bool, progress: Progress) -> None:
    truth = archives.devkit_ground_truth(path)
    if len(truth) != catalogue.NUM_VAL_IMAGES:
        check.add(ProblemKind.COUNT, f"{path.name}:{archives.GROUND_TRUTH}", f"{len(truth):,} lines; expected 50,000")
    _compare_val_labels(check, f"{path.name}:{archives.GROUND_TRUTH}", _devkit_labels(truth), "line")
    check.note("validation ground truth against the catalogue, line by line")


def _devkit_labels(truth: list[int]) -> Iterator[tuple[int, str]]:
    for number, devkit_id in enumerate(truth, 1):
        try:
            yield number, catalogue.by_devkit_id(devkit_id).wnid
        except UnknownClassError:
            yield number, f"ILSVRC2012_ID {devkit_id}"


def _compare_val_labels(check: Check, where: str, labels: Iterable[tuple[int, str]], unit: str) -> None:
    known = catalogue.val_labels()
    for number, wnid in labels:
        if not 1 <= number <= catalogue.NUM_VAL_IMAGES:
            check.add(ProblemKind.LABEL, where, f"{unit} {number}: no such val image")
        elif wnid != known[number - 1]:
            ours = catalogue.by_wnid(known[number - 1])
            check.add(
                ProblemKind.LABEL,
                where,
                f"{unit} {number} (ILSVRC2012_val_{number:08d}) says "
                f"{wnid}; the catalogue says {ours.wnid} ({ours.name})",
            )


def _check_kaggle_zip(check: Check, path: Path, expected: Contents, deep: bool, progress: Progress) -> None:
    refuse = _refuser(check)
    bundle = archives.kaggle_bundle(path)
    if bundle.inner is None:
        _check_kaggle_listing(check, path, expected, refuse)
    else:
        check.note(f"the 2019 layout: {bundle.inner.name}")
    texts = {name: archives.kaggle_text(bundle, name) for name in archives.LOC_FILES}
    for name, text in texts.items():
        if text is None:
            check.add(ProblemKind.MISSING, f"{path.name}:{name}", "missing from the bundle")
    solution = texts["LOC_val_solution.csv"]
    if solution is not None:
        where = f"{path.name}:LOC_val_solution.csv"
        try:
            labels = val_labels.loc_solution_labels(solution, where).labels
        except ArchiveError as error:
            check.add(ProblemKind.DAMAGED, where, str(error).removeprefix(f"{where} "))
        else:
            _compare_val_labels(check, where, sorted(labels.items()), "val image")
            check.note(f"{len(labels):,} val labels in LOC_val_solution.csv against the catalogue")
    mapping = texts["LOC_synset_mapping.txt"]
    if mapping is not None and [line.split(" ", 1)[0] for line in mapping.splitlines()] != list(catalogue.wnids()):
        check.add(
            ProblemKind.LABEL, f"{path.name}:LOC_synset_mapping.txt", "its class order is not the sorted WNID order"
        )
    if deep:
        listed = sum(v for k, v in check.counts.items() if k.endswith("_images")) or None
        counted = decode_members(check, archives.kaggle_members(bundle, refuse), progress, path.name, listed)
        check.note("every member read: CRC-32 checked")
        if bundle.inner is not None:
            _check_class_counts(check, path, expected, counted)


def _check_kaggle_listing(check: Check, path: Path, expected: Contents, refuse: archives.Refuse) -> None:
    """Counts per split and class from the central directory, read as a stream."""
    per_class: collections.Counter[str] = collections.Counter()
    splits: collections.Counter[str] = collections.Counter()
    for split, wnid, name, entry in archives.kaggle_zip_images(path, refuse):
        splits[split] += 1
        if split == "train" and wnid is not None:
            per_class[wnid] += 1
            match = archives.TRAIN_NAME.fullmatch(name)
            if not match or match.group(1) != wnid:
                check.add(ProblemKind.MISPLACED, f"{path.name}:{entry.name}", f"not an image of class {wnid}")
        elif not (archives.VAL_NAME if split == "val" else archives.TEST_NAME).fullmatch(name):
            check.add(ProblemKind.STRUCTURE, f"{path.name}:{entry.name}", f"not an ILSVRC2012 {split} file name")
    check.counts.update({f"{s}_images": n for s, n in splits.items()})
    _check_class_counts(check, path, expected, per_class)
    for split in ("val", "test"):
        if splits[split] != expected.images(split):
            check.add(
                ProblemKind.COUNT,
                f"{path.name}:{archives.KAGGLE_DATA}{split}/",
                f"{splits[split]:,} images; expected {expected.images(split):,}",
            )
    check.note(f"{sum(splits.values()):,} images listed: {', '.join(f'{n:,} {s}' for s, n in sorted(splits.items()))}")


def _check_class_counts(check: Check, path: Path, expected: Contents, per_class: collections.Counter[str]) -> None:
    for wnid in sorted(expected.classes - set(per_class)):
        check.add(ProblemKind.MISSING, f"{path.name}:{archives.KAGGLE_DATA}train/{wnid}/", "class folder missing")
    low, high = expected.train_range
    for wnid, count in sorted(per_class.items()):
        if wnid not in expected.classes:
            check.add(
                ProblemKind.EXTRA,
                f"{path.name}:{archives.KAGGLE_DATA}train/{wnid}/",
                "a class this archive should not hold",
            )
        elif not low <= count <= high:
            check.add(
                ProblemKind.COUNT,
                f"{path.name}:{archives.KAGGLE_DATA}train/{wnid}/",
                f"{count} images; expected {low}–{high}",
            )
