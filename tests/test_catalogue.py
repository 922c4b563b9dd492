"""The catalogue against the facts in FORMATS.md (first and last classes, val labels, duplicates)."""

from __future__ import annotations

import collections
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagenet_cli import catalogue
from imagenet_cli.class_files import FORMATS, class_file
from imagenet_cli.errors import InvalidArgumentError, UnknownClassError
from imagenet_cli.sample import devkit_ground_truth


def test_sorted_order_is_torchvision_order() -> None:
    classes = catalogue.classes()
    assert len(classes) == 1000
    assert [c.index for c in classes] == list(range(1000))
    assert [c.wnid for c in classes] == sorted(c.wnid for c in classes)
    assert (classes[0].wnid, classes[0].name) == ("n01440764", "tench")
    assert classes[999].wnid == "n15075141"


def test_devkit_order() -> None:
    assert catalogue.by_devkit_id(1).wnid == "n02119789"  # kit fox
    assert catalogue.by_devkit_id(1).short_name == "kit_fox"
    assert catalogue.by_wnid("n01440764").devkit_id == 449
    assert sorted(c.devkit_id for c in catalogue.classes()) == list(range(1, 1001))


@pytest.mark.parametrize(
    ("number", "wnid", "name"),
    [
        (1, "n01751748", "sea snake"),
        (2, "n09193705", "alp"),
        (3, "n02105855", "Shetland sheepdog"),
        (50000, "n02437616", "llama"),
    ],
)
def test_val_labels(number: int, wnid: str, name: str) -> None:
    found = catalogue.val_class(catalogue.val_file_name(number))
    assert (found.wnid, found.name) == (wnid, name)


def test_fifty_val_images_per_class() -> None:
    counts = collections.Counter(catalogue.val_labels())
    assert len(counts) == 1000 and set(counts.values()) == {50}


def test_devkit_ground_truth_matches_the_real_file() -> None:
    lines = devkit_ground_truth().splitlines()
    assert len(lines) == 50000
    assert lines[:6] == ["490", "361", "171", "822", "297", "482"]
    assert lines[-1] == "186"


def test_duplicate_short_names() -> None:
    assert [c.wnid for c in catalogue.search("crane")] == ["n02012849", "n03126707"]
    assert [c.wnid for c in catalogue.search("maillot")] == ["n03710637", "n03710721"]


def test_search_falls_back_to_parts_of_words() -> None:
    assert {c.name for c in catalogue.search("retriev")} >= {"golden retriever", "Labrador retriever"}
    assert catalogue.search("no-such-thing-anywhere") == []


@given(st.integers(0, 999))
def test_every_key_maps_to_the_same_class(index: int) -> None:
    c = catalogue.by_index(index)
    assert catalogue.lookup(c.wnid) == catalogue.lookup(index) == catalogue.lookup(str(index)) == c
    assert catalogue.by_devkit_id(c.devkit_id) == c


@given(st.integers(1, 50000))
def test_val_file_names_round_trip(number: int) -> None:
    name = catalogue.val_file_name(number)
    assert catalogue.val_number(name) == number
    assert catalogue.val_number(name.removesuffix(".JPEG")) == number
    assert catalogue.lookup(name).wnid == catalogue.val_labels()[number - 1]


@pytest.mark.parametrize("bad", ["n00000000", "1000", "-1", "ILSVRC2012_val_00050001.JPEG", "kitten"])
def test_unknown_keys_are_errors(bad: str) -> None:
    with pytest.raises(InvalidArgumentError):
        catalogue.lookup(bad)


def test_devkit_id_out_of_range() -> None:
    with pytest.raises(UnknownClassError):
        catalogue.by_devkit_id(1001)


def test_resolve_classes_mixes_wnids_names_and_lists() -> None:
    resolved = catalogue.resolve_classes(["imagenette", "goldfish", "n01440764", "0"])
    assert resolved[:10] == catalogue.named_subset("imagenette")
    assert resolved[10:] == ("n01443537",)  # tench is already in imagenette: no repeats
    with pytest.raises(UnknownClassError, match="matches 2 classes"):
        catalogue.resolve_classes(["crane"])


def test_known_bad_images() -> None:
    bad = catalogue.known_bad_images()
    assert collections.Counter(b.problem for b in bad) == {"png": 1, "cmyk": 23}
    assert ("n02105855_2933.JPEG", "png") in {(b.file, b.problem) for b in bad}
    assert {b.file for b in bad if b.split == "val"} == {"ILSVRC2012_val_00019877.JPEG"}


def test_official_archives() -> None:
    archives = catalogue.official_archives()
    train = archives["ILSVRC2012_img_train.tar"]
    assert (train.size, train.md5) == (147_897_477_120, "1d675b47d978889d74fa0da5fadfb00e")
    assert archives["ILSVRC2012_img_val.tar"].size == 6_744_924_160
    assert archives["ILSVRC2012_devkit_t12.tar.gz"].md5 == "fa75699e90414af021442c21a62c3abf"
    assert all(a.size is None or a.size % 10240 == 0 for a in archives.values() if a.name.endswith(".tar"))


def test_named_subsets() -> None:
    assert len(catalogue.named_subset("imagenette")) == 10
    assert len(catalogue.named_subset("imagewoof")) == 10
    assert len(set(catalogue.named_subset("imagenet100"))) == 100
    assert catalogue.named_subset("imagenette")[0] == "n01440764"
    with pytest.raises(InvalidArgumentError):
        catalogue.named_subset("imagenet-200")


@pytest.mark.parametrize(("name", "count"), [("1percent", 12811), ("10percent", 128116)])
def test_label_fractions(name: str, count: int) -> None:
    files = list(catalogue.label_fraction(name))
    assert len(files) == len(set(files)) == count
    assert {f.split("_")[0] for f in files} == set(catalogue.wnids())
    assert all(f.endswith(".JPEG") for f in files)


def test_class_files() -> None:
    synsets = class_file("synsets").splitlines()
    assert synsets == list(catalogue.wnids())
    loc = class_file("loc").splitlines()
    assert loc[0] == "n01440764 tench, Tinca tinca" and len(loc) == 1000
    keras = json.loads(class_file("keras"))
    assert keras["0"] == ["n01440764", "tench"] and keras["999"][0] == "n15075141"
    devkit = class_file("devkit").splitlines()
    assert devkit[0] == "n02119789 1 kit_fox" and devkit[448] == "n01440764 449 tench"
    assert set(FORMATS) == {"synsets", "loc", "keras", "devkit"}
