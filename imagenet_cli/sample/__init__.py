"""The built-in sample: a miniature ILSVRC-2012 with the exact shapes of the real archives.

Official form (what image-net.org serves):

* ``ILSVRC2012_img_train.tar`` — GNU tar of uncompressed ``<wnid>.tar`` in unsorted order, each
  holding flat ``<wnid>_<n>.JPEG`` with unpadded, non-consecutive ``n``;
* ``ILSVRC2012_img_val.tar`` — flat ``ILSVRC2012_val_<8 digits>.JPEG``, unsorted, using the real
  file names of the chosen classes so the real ground truth labels them;
* ``ILSVRC2012_img_test_v10102019.tar`` — flat, unlabelled ``ILSVRC2012_test_<8 digits>.JPEG``;
* ``ILSVRC2012_devkit_t12.tar.gz`` — ``ILSVRC2012_devkit_t12/`` with the real 50,000-line
  ``data/ILSVRC2012_validation_ground_truth.txt`` (ILSVRC2012_IDs, devkit order).

Kaggle form: ``imagenet-object-localization-challenge.zip`` with the four ``LOC_*`` files and the
``ILSVRC/`` tree (flat val folder, PASCAL-VOC box annotations, ImageSets lists).

The real quirks appear under their real names where their class is chosen: the PNG
``n02105855_2933.JPEG``, the CMYK ``n01739381_1309.JPEG`` and ``ILSVRC2012_val_00019877.JPEG``;
grayscale and progressive JPEGs, one huge and one 500×33 image are spread over the rest.

At ``scale`` (a full-count benchmark's source) the sample has ILSVRC-2012's own counts times the
scale, all 1000 classes: train per class shaped as the real ones are (732 to 1,300, 1,281,167 in
all at scale 1), 50 val images per class; its plain images are tiny JPEGs, each made unique by a
comment naming it, so that the whole dataset builds in minutes.

Same options, same bytes: archive metadata (mtimes, owners, gzip headers, member order) is fixed
or drawn from the seeded RNG.
"""

from __future__ import annotations

import functools
import gzip
import io
import random
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, TypeVar

from .. import catalogue
from ..archives import (
    DEVKIT,
    HUB_TEST,
    HUB_TRAIN,
    HUB_VAL,
    KAGGLE_INNER_TAR,
    KAGGLE_ZIP,
    TEST_TAR,
    TRAIN_TAR,
    VAL_TAR,
)
from ..atomic import Finish, atomic_writer
from ..class_files import class_file
from ..errors import InvalidArgumentError
from ..progress import SILENT, Advance, Progress
from .images import CMYK, GRAY, PNG, PROGRESSIVE, RGB, TINY, ImageSpec, render, tiny_jpeg
from .matlab import Value, struct_array_file

T = TypeVar("T")


class Layout(StrEnum):
    official = "official"  # the archives of image-net.org
    kaggle = "kaggle"  # the competition zip as Kaggle serves it now
    kaggle_2019 = "kaggle-2019"  # the older zip: one inner tar.gz
    hf = "hf"  # Hugging Face's ILSVRC/imagenet-1k: five train tar.gz, val and test, flat, class in the name


LAYOUTS = tuple(Layout)
OFFICIAL_FILES = (TRAIN_TAR, VAL_TAR, TEST_TAR, DEVKIT)
HUB_FILES = (*HUB_TRAIN, HUB_VAL, HUB_TEST)


class Quirks(NamedTuple):
    """The real quirk files the sample carries under their real names, so that repairs are tested
    on the real names: the first of each kind in the catalogue's table of known bad images."""

    png_train: tuple[str, int]  # (wnid, number): n02105855_2933.JPEG is a PNG
    cmyk_train: tuple[str, int]  # n01739381_1309.JPEG is CMYK
    cmyk_val: int  # ILSVRC2012_val_00019877.JPEG is CMYK (class n13133613)


@functools.cache
def quirks() -> Quirks:
    """Read when a sample is planned, not when the CLI starts (``imagenet --help`` reads no file)."""

    def first(problem: str, split: str) -> str:
        return next(b.file for b in catalogue.known_bad_images() if b.problem == problem and b.split == split)

    def train_file(name: str) -> tuple[str, int]:
        wnid, number = name.removesuffix(".JPEG").split("_")
        return wnid, int(number)

    png, cmyk = train_file(first("png", "train")), train_file(first("cmyk", "train"))
    return Quirks(png, cmyk, catalogue.val_number(first("cmyk", "val")))


ARCHIVE_MTIME = 1_336_608_000  # 2012-05-10: every member gets it, so archives are reproducible
ZIP_DATE = (2019, 4, 1, 0, 0, 0)
HUGE_SIZE = (2592, 3888)  # the largest ImageNet image
THIN_SIZE = (500, 33)  # the most extreme aspect ratio
COMMON_SIZES = [(500, 375)] * 6 + [(375, 500)] * 2 + [(500, 333), (500, 500), (400, 300), (640, 480)]


def default_classes() -> tuple[str, ...]:
    """Imagenette's 10 classes plus the classes of the real quirk files, sorted."""
    known = quirks()
    quirk_classes = {known.png_train[0], known.cmyk_train[0], catalogue.val_labels()[known.cmyk_val - 1]}
    return tuple(sorted(set(catalogue.named_subset("imagenette")) | quirk_classes))


@dataclass(frozen=True)
class SampleOptions:
    classes: tuple[str, ...] = field(default_factory=default_classes)
    train_per_class: int = 10
    val_per_class: int = 5
    test_images: int = 10
    seed: int = 0
    scale: float | None = None  # ILSVRC-2012's counts times this, of tiny images; None: the counts above

    def __post_init__(self) -> None:
        if self.scale is not None:
            if not 0 < self.scale <= 1:
                raise InvalidArgumentError(f"a scale of {self.scale} is outside (0, 1]: 1 is the real dataset's counts")
            object.__setattr__(self, "classes", catalogue.wnids())
        for wnid in self.classes:
            catalogue.by_wnid(wnid)
        if not self.classes:
            raise InvalidArgumentError("the sample needs at least one class")
        if len(set(self.classes)) != len(self.classes):
            raise InvalidArgumentError("the sample's classes repeat a WNID")
        if not 1 <= self.train_per_class <= 1300:
            raise InvalidArgumentError("train images per class must be within 1–1300, as in ImageNet")
        if not 0 <= self.val_per_class <= catalogue.VAL_IMAGES_PER_CLASS:
            raise InvalidArgumentError("val images per class must be within 0–50, as in ImageNet")
        if not 0 <= self.test_images <= 100_000:
            raise InvalidArgumentError("test images must be within 0–100000")


@dataclass(frozen=True)
class SampleImage:
    split: str  # train, val, test
    wnid: str | None  # None for test images: they are unlabelled
    name: str  # file name, e.g. n01440764_10026.JPEG
    spec: ImageSpec

    @property
    def stem(self) -> str:
        return self.name.removesuffix(".JPEG")


def plan(options: SampleOptions) -> list[SampleImage]:
    """Every image of the sample, in a fixed order (archives shuffle it themselves)."""
    rng = random.Random(f"imagenet-sample:{options.seed}")
    train = [image for wnid in sorted(options.classes) for image in _plan_train(wnid, options, rng)]
    val = [image for wnid in sorted(options.classes) for image in _plan_val(wnid, options, rng)]
    test = _plan_test(options, rng)
    train = _spread_quirks(train, rng, huge=1, thin=1, gray=2, progressive=2)
    val = _spread_quirks(val, rng, huge=0, thin=0, gray=1, progressive=1)
    return train + val + test


def _spec(name: str, encoding: str, rng: random.Random, options: SampleOptions) -> ImageSpec:
    width, height = rng.choice(COMMON_SIZES) if options.scale is None else TINY
    return ImageSpec(width, height, encoding, f"{options.seed}:{name}")


@functools.cache
def real_shaped_train_counts() -> dict[str, int]:
    """Train images per class shaped as ILSVRC-2012's are: most classes 1,300, a tail of fewer
    down to 732, 1,281,167 in all (which classes are short is drawn, not the real ones)."""
    wnids = list(catalogue.wnids())
    low, high = catalogue.TRAIN_PER_CLASS
    tail = 66  # classes short of 1,300: with counts spread evenly over low..high, the deficit is near the real one
    short = random.Random("imagenet-sample:train-counts").sample(wnids, tail)
    counts = dict.fromkeys(wnids, high)
    for i, wnid in enumerate(short):
        counts[wnid] = round(low + (high - 1 - low) * i / (tail - 1))
    excess = sum(counts.values()) - catalogue.SPLIT_IMAGES["train"]
    for wnid in [w for w in wnids if counts[w] == high][: abs(excess)]:  # the remainder, one image each
        counts[wnid] -= 1 if excess > 0 else -1
    return counts


def _train_count(wnid: str, options: SampleOptions) -> int:
    if options.scale is None:
        return options.train_per_class
    return max(1, round(real_shaped_train_counts()[wnid] * options.scale))


def expected_counts(details: dict[str, Any]) -> tuple[tuple[int, int], int]:
    """The fewest and most train images per class, and the val images per class, of the sample
    a download record's ``details`` describe."""
    options = SampleOptions(
        tuple(details["classes"]),
        details["train_per_class"],
        details["val_per_class"],
        details["test_images"],
        details["seed"],
        details.get("scale"),
    )
    counts = [_train_count(wnid, options) for wnid in options.classes]
    return (min(counts), max(counts)), _val_count(options)


def _val_count(options: SampleOptions) -> int:
    if options.scale is None:
        return options.val_per_class
    return max(1, round(catalogue.VAL_IMAGES_PER_CLASS * options.scale))


def _plan_train(wnid: str, options: SampleOptions, rng: random.Random) -> Iterator[SampleImage]:
    real_quirks = {quirks().png_train: PNG, quirks().cmyk_train: CMYK}
    forced = {number: encoding for (quirk_wnid, number), encoding in real_quirks.items() if quirk_wnid == wnid}
    # Real numbers are unpadded and sparse (n01440764_10026, n09399592_115824).
    count = _train_count(wnid, options)
    numbers = list(forced)[:count]
    pool = [n for n in rng.sample(range(1, 40_000), count + len(forced)) if n not in forced]
    numbers += pool[: count - len(numbers)]
    for number in sorted(numbers):
        name = f"{wnid}_{number}.JPEG"
        yield SampleImage("train", wnid, name, _spec(name, forced.get(number, RGB), rng, options))


def _plan_val(wnid: str, options: SampleOptions, rng: random.Random) -> Iterator[SampleImage]:
    labels = catalogue.val_labels()
    mine = [k for k in range(1, catalogue.NUM_VAL_IMAGES + 1) if labels[k - 1] == wnid]
    cmyk = quirks().cmyk_val
    count = _val_count(options)
    chosen = [k for k in mine if k == cmyk][:count]
    chosen += rng.sample([k for k in mine if k not in chosen], count - len(chosen))
    for number in sorted(chosen):
        name = catalogue.val_file_name(number)
        encoding = CMYK if number == cmyk else RGB
        yield SampleImage("val", wnid, name, _spec(name, encoding, rng, options))


def _plan_test(options: SampleOptions, rng: random.Random) -> list[SampleImage]:
    numbers = sorted(rng.sample(range(1, 100_001), options.test_images))
    names = [f"ILSVRC2012_test_{n:08d}.JPEG" for n in numbers]
    return [SampleImage("test", None, name, _spec(name, RGB, rng, options)) for name in names]


def _spread_quirks(
    images: list[SampleImage], rng: random.Random, *, huge: int, thin: int, gray: int, progressive: int
) -> list[SampleImage]:
    """Turn some plain RGB images into the other shapes real ImageNet has."""
    plain = [i for i, image in enumerate(images) if image.spec.encoding == RGB]
    rng.shuffle(plain)

    def sized(size: tuple[int, int]) -> Callable[[ImageSpec], ImageSpec]:
        return lambda spec: ImageSpec(*size, spec.encoding, spec.seed)

    def encoded(encoding: str) -> Callable[[ImageSpec], ImageSpec]:
        return lambda spec: ImageSpec(spec.width, spec.height, encoding, spec.seed)

    changes = (
        [sized(HUGE_SIZE)] * huge
        + [sized(THIN_SIZE)] * thin
        + [encoded(GRAY)] * gray
        + [encoded(PROGRESSIVE)] * progressive
    )
    result = list(images)
    for i, change in zip(plain, changes, strict=False):  # more plain images than changes
        result[i] = SampleImage(result[i].split, result[i].wnid, result[i].name, change(result[i].spec))
    return result


# --- writing archives -------------------------------------------------------------------------


def write_sample(
    downloads: Path,
    layout: str,
    options: SampleOptions,
    *,
    progress: Progress = SILENT,
    before_rename: Finish | None = None,
) -> list[Path]:
    """Generate the sample's archives in ``downloads``; returns their paths (each written atomically,
    ``before_rename`` called for each when its bytes are complete, before its name appears)."""
    if layout not in LAYOUTS:
        raise InvalidArgumentError(f"unknown sample layout {layout!r} (known: {', '.join(LAYOUTS)})")
    images = plan(options)
    rng = random.Random(f"imagenet-sample-archives:{options.seed}")
    with progress.task("generating sample images", total=len(images), unit="img") as advance:
        if layout == "official":
            return _write_official(downloads, images, rng, advance, before_rename)
        if layout == "hf":
            return _write_hub(downloads, images, rng, advance, before_rename)
        write = _write_kaggle if layout == "kaggle" else _write_kaggle_2019
        return [write(downloads / KAGGLE_ZIP, images, rng, advance, before_rename)]


def _rendered(images: Iterable[SampleImage], advance: Advance) -> Iterator[tuple[SampleImage, bytes]]:
    for image in images:
        spec = image.spec
        tiny = (spec.width, spec.height) == TINY and spec.encoding == RGB
        data = tiny_jpeg(spec.seed) if tiny else render(spec)
        advance(1)
        yield image, data


def _shuffled(items: Iterable[T], rng: random.Random) -> list[T]:
    shuffled = list(items)
    rng.shuffle(shuffled)
    return shuffled


def _tar_info(name: str, size: int, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = 0 if directory else size
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    info.mtime = ARCHIVE_MTIME
    info.uname = info.gname = "imagenet"
    return info


def _tar_bytes(members: Iterable[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    _write_tar(buffer, members)
    return buffer.getvalue()


def _write_tar(file: BinaryIO, members: Iterable[tuple[str, bytes]]) -> None:
    """A GNU tar of regular files; names ending in ``/`` become directories."""
    with tarfile.open(fileobj=file, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in members:
            if name.endswith("/"):
                tar.addfile(_tar_info(name.rstrip("/"), 0, directory=True))
            else:
                tar.addfile(_tar_info(name, len(data)), io.BytesIO(data))


def _write_official(
    downloads: Path, images: list[SampleImage], rng: random.Random, advance: Advance, before_rename: Finish | None
) -> list[Path]:
    by_split: dict[str, list[SampleImage]] = {"train": [], "val": [], "test": []}
    for image in images:
        by_split[image.split].append(image)

    def inner_tars() -> Iterator[tuple[str, bytes]]:
        by_class: dict[str, list[SampleImage]] = {}
        for image in by_split["train"]:
            by_class.setdefault(image.wnid or "", []).append(image)
        for wnid in _shuffled(sorted(by_class), rng):
            members = _shuffled(by_class[wnid], rng)
            inner = _tar_bytes((image.name, data) for image, data in _rendered(members, advance))
            yield f"{wnid}.tar", inner

    def flat(split: str) -> Iterator[tuple[str, bytes]]:
        for image, data in _rendered(_shuffled(by_split[split], rng), advance):
            yield image.name, data

    written = []
    for name, members in ((TRAIN_TAR, inner_tars()), (VAL_TAR, flat("val")), (TEST_TAR, flat("test"))):
        with atomic_writer(downloads / name, before_rename=before_rename) as file:
            _write_tar(file, members)
        written.append(downloads / name)
    with atomic_writer(downloads / DEVKIT, before_rename=before_rename) as file:
        file.write(devkit_bytes())
    written.append(downloads / DEVKIT)
    return written


def devkit_ground_truth() -> str:
    """The devkit's validation ground truth: line k is the ILSVRC2012_ID of ILSVRC2012_val_<k>."""
    return "".join(f"{catalogue.by_wnid(wnid).devkit_id}\n" for wnid in catalogue.val_labels())


META_FIELDS = (
    "ILSVRC2012_ID",
    "WNID",
    "words",
    "gloss",
    "num_children",
    "children",
    "wordnet_height",
    "num_train_images",
)


def devkit_meta() -> bytes:
    """``data/meta.mat``: the ``synsets`` struct array with the real fields, for the 1000 classes.

    What the package does not know is left empty or zero: the WordNet glosses, the 860 ancestor
    synsets (records 1001–1860 of the real file) and the real train counts. torchvision's loader
    reads only the leaves' ID, WNID and words, which are real.
    """
    records: list[dict[str, Value]] = [
        {
            "ILSVRC2012_ID": c.devkit_id,
            "WNID": c.wnid,
            "words": ", ".join(c.names),
            "gloss": "",
            "num_children": 0,
            "children": (),
            "wordnet_height": 0,
            "num_train_images": 0,
        }
        for c in sorted(catalogue.classes(), key=lambda c: c.devkit_id)
    ]
    return struct_array_file("synsets", META_FIELDS, records)


def devkit_bytes() -> bytes:
    """``ILSVRC2012_devkit_t12.tar.gz`` in the real folder layout (gzip header without a timestamp)."""
    top = "ILSVRC2012_devkit_t12"
    readme = (
        "Sample ILSVRC2012 devkit, generated by the imagenet command-line tool.\n"
        "The layout, data/ILSVRC2012_validation_ground_truth.txt and the leaf records of\n"
        "data/meta.mat (ID, WNID, words) match the real devkit; glosses and ancestors are left out;\n"
        "get the real one from https://image-net.org/.\n"
    )
    members = [
        (f"{top}/", b""),
        (f"{top}/readme.txt", readme.encode()),
        (f"{top}/data/", b""),
        (f"{top}/data/ILSVRC2012_validation_ground_truth.txt", devkit_ground_truth().encode()),
        (f"{top}/data/meta.mat", devkit_meta()),
    ]
    tar = _tar_bytes(members)
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, filename="") as gz:
        gz.write(tar)
    return buffer.getvalue()


# --- Kaggle ------------------------------------------------------------------------------------


def _box(image: SampleImage, rng: random.Random) -> tuple[int, int, int, int]:
    width, height = image.spec.width, image.spec.height
    x0, x1 = sorted(rng.sample(range(width), 2))
    y0, y1 = sorted(rng.sample(range(height), 2))
    return x0, y0, x1, y1


def _prediction_string(wnid: str, boxes: list[tuple[int, int, int, int]]) -> str:
    # Kaggle's files end the string with a space after the last box.
    return "".join(f"{wnid} {x0} {y0} {x1} {y1} " for x0, y0, x1, y1 in boxes)


def _voc_xml(folder: str, image: SampleImage, boxes: list[tuple[int, int, int, int]]) -> bytes:
    objects = "".join(
        f"\t<object>\n\t\t<name>{image.wnid}</name>\n\t\t<pose>Unspecified</pose>\n"
        f"\t\t<truncated>0</truncated>\n\t\t<difficult>0</difficult>\n\t\t<bndbox>\n"
        f"\t\t\t<xmin>{x0}</xmin>\n\t\t\t<ymin>{y0}</ymin>\n\t\t\t<xmax>{x1}</xmax>\n\t\t\t<ymax>{y1}</ymax>\n"
        f"\t\t</bndbox>\n\t</object>\n"
        for x0, y0, x1, y1 in boxes
    )
    depth = 1 if image.spec.encoding == GRAY else 3
    return (
        f"<annotation>\n\t<folder>{folder}</folder>\n\t<filename>{image.stem}</filename>\n"
        f"\t<source>\n\t\t<database>ILSVRC_2012</database>\n\t</source>\n"
        f"\t<size>\n\t\t<width>{image.spec.width}</width>\n\t\t<height>{image.spec.height}</height>\n"
        f"\t\t<depth>{depth}</depth>\n\t</size>\n\t<segmented>0</segmented>\n{objects}</annotation>\n"
    ).encode()


def _kaggle_members(
    images: list[SampleImage], rng: random.Random, advance: Advance
) -> Iterator[tuple[str, bytes, bool]]:
    """(name, bytes, worth compressing) of every file of the Kaggle bundle, in the bundle's order."""
    data_dir, boxes_dir, sets_dir = "ILSVRC/Data/CLS-LOC", "ILSVRC/Annotations/CLS-LOC", "ILSVRC/ImageSets/CLS-LOC"
    train = [i for i in images if i.split == "train"]
    val = [i for i in images if i.split == "val"]
    test = [i for i in images if i.split == "test"]
    # About 40% of train images have boxes (544,546 of 1,281,167 in the real set); all val do.
    boxed_train = [i for i in train if rng.random() < 0.4]
    boxes = {i.name: [_box(i, rng) for _ in range(rng.randint(1, 3))] for i in boxed_train + val}

    yield "LOC_synset_mapping.txt", class_file("loc").encode(), True
    yield "LOC_train_solution.csv", _solution_csv(boxed_train, boxes, rng), True
    yield "LOC_val_solution.csv", _solution_csv(val, boxes, rng), True
    yield "LOC_sample_submission.csv", _sample_submission(test), True
    for image, data in _rendered(train, advance):
        yield f"{data_dir}/train/{image.wnid}/{image.name}", data, False
    for image, data in _rendered(val, advance):
        yield f"{data_dir}/val/{image.name}", data, False
    for image, data in _rendered(test, advance):
        yield f"{data_dir}/test/{image.name}", data, False
    for image in boxed_train:
        yield (
            f"{boxes_dir}/train/{image.wnid}/{image.stem}.xml",
            _voc_xml(image.wnid or "", image, boxes[image.name]),
            True,
        )
    for image in val:
        yield f"{boxes_dir}/val/{image.stem}.xml", _voc_xml("val", image, boxes[image.name]), True
    yield f"{sets_dir}/train_cls.txt", _lines(f"{i.wnid}/{i.stem} {n}" for n, i in enumerate(train, 1)), True
    yield f"{sets_dir}/train_loc.txt", _lines(f"{i.wnid}/{i.stem} {n}" for n, i in enumerate(boxed_train, 1)), True
    yield f"{sets_dir}/val.txt", _lines(f"{i.stem} {n}" for n, i in enumerate(val, 1)), True
    yield f"{sets_dir}/test.txt", _lines(f"{i.stem} {n}" for n, i in enumerate(test, 1)), True


def _add_to_zip(archive: zipfile.ZipFile, name: str, data: bytes, compress: bool) -> None:
    info = zipfile.ZipInfo(name, ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    info.external_attr = 0o644 << 16
    archive.writestr(info, data)


def _write_hub(
    downloads: Path, images: list[SampleImage], rng: random.Random, advance: Advance, before_rename: Finish | None
) -> list[Path]:
    """The hub's layout: train in five gzipped tars, classes in a shuffled order cut across them
    (a class can straddle two), val and test beside them; every image flat, its class after the
    last underscore (``n01440764_10026_n01440764.JPEG``), test images without one."""
    classes = sorted({i.wnid for i in images if i.split == "train" and i.wnid is not None})
    train = [i for wnid in _shuffled(classes, rng) for i in images if i.split == "train" and i.wnid == wnid]
    cut = -(-len(train) // len(HUB_TRAIN))
    parts = [train[at : at + cut] for at in range(0, len(HUB_TRAIN) * cut, cut)]
    groups = [*zip(HUB_TRAIN, parts, strict=True), (HUB_VAL, [i for i in images if i.split == "val"])]
    groups.append((HUB_TEST, [i for i in images if i.split == "test"]))
    written = []
    for name, members in groups:
        shuffled = _shuffled(members, rng) if name in (HUB_VAL, HUB_TEST) else members
        tar = _tar_bytes((_hub_name(image), data) for image, data in _rendered(shuffled, advance))
        with atomic_writer(downloads / name, before_rename=before_rename) as file:
            with gzip.GzipFile(fileobj=file, mode="wb", mtime=0, filename="") as gz:
                gz.write(tar)
        written.append(downloads / name)
    return written


def _hub_name(image: SampleImage) -> str:
    return f"{image.stem}_{image.wnid}.JPEG" if image.wnid else image.name


def _write_kaggle(
    path: Path, images: list[SampleImage], rng: random.Random, advance: Advance, before_rename: Finish | None
) -> Path:
    """The current layout: the tree and the LOC files directly in the zip."""
    with atomic_writer(path, before_rename=before_rename) as file, zipfile.ZipFile(file, "w") as archive:
        for name, data, compress in _kaggle_members(images, rng, advance):
            _add_to_zip(archive, name, data, compress)
    return path


def _write_kaggle_2019(
    path: Path, images: list[SampleImage], rng: random.Random, advance: Advance, before_rename: Finish | None
) -> Path:
    """The older layout: one imagenet_object_localization_patched2019.tar.gz inside the zip."""
    tar = _tar_bytes((name, data) for name, data, _ in _kaggle_members(images, rng, advance))
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, filename="") as gz:
        gz.write(tar)
    with atomic_writer(path, before_rename=before_rename) as file, zipfile.ZipFile(file, "w") as archive:
        _add_to_zip(archive, KAGGLE_INNER_TAR, buffer.getvalue(), compress=False)
    return path


def _lines(lines: Iterable[str]) -> bytes:
    return "".join(f"{line}\n" for line in lines).encode()


def _solution_csv(
    images: list[SampleImage], boxes: dict[str, list[tuple[int, int, int, int]]], rng: random.Random
) -> bytes:
    rows = (f"{i.stem},{_prediction_string(i.wnid or '', boxes[i.name])}" for i in _shuffled(images, rng))
    return _lines(["ImageId,PredictionString", *rows])


def _sample_submission(test: list[SampleImage]) -> bytes:
    first = catalogue.classes()[0].wnid
    return _lines(["ImageId,PredictionString", *(f"{i.stem},{first} 0 0 0 0" for i in test)])


def options_record(layout: str, options: SampleOptions) -> dict[str, Any]:
    """What the download record keeps about a sample, to recognise it on a re-run."""
    return {"layout": layout, **asdict(options), "classes": list(options.classes)}
