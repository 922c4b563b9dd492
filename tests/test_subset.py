"""``imagenet subset``: balanced, reproducible, nested, self-describing subsets."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from imagenet_cli import catalogue
from imagenet_cli.checks import verify
from imagenet_cli.errors import InvalidArgumentError, MissingInputError, OverwriteRefusedError
from imagenet_cli.selection import choose
from imagenet_cli.subsets import fraction_count, subset
from imagenet_cli.trees import prepare

from .conftest import imagenet, prepared_copy


@pytest.fixture(scope="module")
def prepared_root(official_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root with the sample (13 classes, 3 train and 2 val each) prepared at 64 px."""
    return prepared_copy(official_root, tmp_path_factory.mktemp("subset-root"), "64")


@pytest.fixture
def root(prepared_root: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "root"
    shutil.copytree(prepared_root, copy, symlinks=True)
    return copy


def files(tree: Path, split: str = "train") -> dict[str, list[str]]:
    return {d.name: sorted(f.name for f in d.iterdir()) for d in sorted((tree / split).iterdir())}


def test_classes_drawn_with_all_their_images(root: Path) -> None:
    result = subset(root, classes="5")
    assert result.path == root / "subsets" / "classes5-seed0" and result.classes == 5
    chosen = files(result.path)
    assert len(chosen) == 5 and all(len(names) == 3 for names in chosen.values())
    assert set(files(result.path, "val")) == set(chosen)
    assert result.images == {"train": 15, "val": 10}


def test_seed_reproducibility_and_sensitivity(root: Path, tmp_path: Path) -> None:
    first = set(files(subset(root, classes="5", seed=3).path))
    again = set(files(subset(root, classes="5", seed=3, out=tmp_path / "again").path))
    other = set(files(subset(root, classes="5", seed=4).path))
    assert first == again
    assert first != other


def test_nested_across_class_counts_and_k(root: Path) -> None:
    small = set(files(subset(root, classes="3").path))
    large = set(files(subset(root, classes="8").path))
    assert small < large
    k1 = files(subset(root, per_class=1).path)
    k2 = files(subset(root, per_class=2).path)
    assert all(set(k1[w]) < set(k2[w]) for w in k1)
    assert all(len(v) == 2 for v in k2.values())


@given(
    st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=40, unique=True),
    st.integers(0, 2**64 - 1),
    st.randoms(),
)
def test_choice_ignores_listing_order(names: list[str], seed: int, rng: random.Random) -> None:
    shuffled = list(names)
    rng.shuffle(shuffled)
    assert choose(names, seed, 5) == choose(shuffled, seed, 5)
    assert choose(names, seed, 3) == choose(names, seed, 5)[:3]  # nested by construction


def test_fraction_rounds_half_up_per_class(root: Path) -> None:
    assert [fraction_count(f, n) for f, n in [(0.5, 3), (0.1, 25), (0.1, 24), (0.34, 3), (1.0, 7)]] == [2, 3, 2, 1, 7]
    result = subset(root, fraction=0.5)
    assert all(len(v) == 2 for v in files(result.path).values())  # round(0.5 x 3) = 2


def test_named_lists_resolve_to_their_wnids(root: Path) -> None:
    result = subset(root, classes="imagenette")
    assert sorted(files(result.path)) == sorted(catalogue.named_subset("imagenette"))
    assert result.path.name == "imagenette"
    woof = catalogue.named_subset("imagewoof")
    assert len(woof) == 10 and all(catalogue.by_wnid(w).index < 300 for w in woof), "imagewoof: all dogs"


def test_classes_by_name_and_file(root: Path, tmp_path: Path) -> None:
    by_name = subset(root, classes="tench,chain saw")
    assert sorted(files(by_name.path)) == ["n01440764", "n03000684"]
    listing = tmp_path / "wnids.txt"
    listing.write_text("n03000684\nn01440764\n")
    assert sorted(files(subset(root, classes=str(listing)).path)) == ["n01440764", "n03000684"]
    with pytest.raises(MissingInputError, match="no folder for 1 chosen classes: n01443537"):
        subset(root, classes="goldfish")


def test_short_classes_need_allow_short(root: Path) -> None:
    with pytest.raises(MissingInputError, match="13 classes have fewer than 5 train images"):
        subset(root, per_class=5)
    assert not (root / "subsets" / "k5-seed0").exists()
    result = subset(root, per_class=5, allow_short=True)
    assert len(result.short_classes) == 13 and result.images["train"] == 39


def test_label_fraction_list_on_a_tree_with_only_some_of_its_files(tmp_path: Path) -> None:
    listed = [f for f in catalogue.label_fraction("1percent") if f.startswith(("n01440764_", "n01443537_"))]
    tree = tmp_path / "root" / "full"
    pixel = io.BytesIO()
    Image.new("RGB", (8, 8)).save(pixel, "JPEG")
    for name in listed[1:] + ["n01440764_999999.JPEG"]:  # one listed file absent, one unlisted present
        path = tree / "train" / name.split("_")[0] / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pixel.getvalue())
    two = "n01440764,n01443537"
    with pytest.raises(MissingInputError, match=f"lacks 1 files of the list, e.g. {listed[0].removesuffix('.JPEG')}"):
        subset(tmp_path / "root", images="1percent", classes=two)
    result = subset(tmp_path / "root", images="1percent", classes=two, allow_short=True)
    assert result.missing == [listed[0].removesuffix(".JPEG")]
    assert sum(len(v) for v in files(result.path).values()) == len(listed) - 1
    # Asked for on its own, the list is all 1000 classes: the other 998 classes' files are missing too.
    whole = subset(tmp_path / "root", images="1percent", allow_short=True)
    assert len(whole.missing) == 12811 - (len(listed) - 1)


def test_link_modes(root: Path) -> None:
    source = root / "64"
    sym = subset(root, classes="2").path
    some = next((sym / "train").rglob("*.JPEG"))
    assert some.is_symlink() and not os.path.isabs(os.readlink(some))
    hard = subset(root, classes="2", link="hardlink").path
    relative = some.relative_to(sym)
    assert (hard / relative).stat().st_ino == (source / relative).stat().st_ino
    copy = subset(root, classes="2", link="copy").path
    assert not (copy / relative).is_symlink() and (copy / relative).read_bytes() == (source / relative).read_bytes()
    assert (copy / relative).stat().st_ino != (source / relative).stat().st_ino


@pytest.mark.skipif(
    not os.path.isdir("/dev/shm") or os.stat("/dev/shm").st_dev == os.stat("/tmp").st_dev,
    reason="needs a second filesystem",
)
def test_hardlink_across_filesystems_is_a_clear_error(root: Path) -> None:
    import tempfile

    with tempfile.TemporaryDirectory(dir="/dev/shm") as elsewhere:
        with pytest.raises(
            InvalidArgumentError, match=r"hard links cannot cross them \(choose symlink or copy for link\)$"
        ):
            subset(root, classes="2", link="hardlink", out=Path(elsewhere) / "s")
        said = imagenet(
            "subset", "--root", str(root), "--classes", "2", "--link", "hardlink", "--out", f"{elsewhere}/t"
        )
        assert "(choose symlink or copy for --link) — try" in said.stderr, said.stderr


def test_rerun_is_a_no_op_and_a_different_subset_is_refused(root: Path) -> None:
    first = subset(root, classes="4")
    stamp = (first.path / "subset.json").stat().st_mtime_ns
    again = subset(root, classes="4")
    assert again.status == "kept" and (first.path / "subset.json").stat().st_mtime_ns == stamp
    with pytest.raises(OverwriteRefusedError, match="holds a different subset"):
        subset(root, classes="4", seed=1, out=first.path)


def test_self_describing_and_verifiable(root: Path) -> None:
    result = subset(root, classes="3", per_class=2, val_per_class=1)
    record = json.loads((result.path / "subset.json").read_text())
    assert record["arguments"]["per_class"] == 2 and record["arguments"]["seed"] == 0
    assert record["source"] == "64" and len(record["source_manifest_xxh3"]) == 16  # relative to the root
    classes = [line.split("\t") for line in (result.path / "classes.txt").read_text().splitlines()]
    assert [c[0] for c in classes] == ["0", "1", "2"]
    assert all(catalogue.by_wnid(c[1]).index == int(c[3]) for c in classes)
    for line in (result.path / "train_subset_index.txt").read_text().splitlines():
        path, label = line.split(" ")
        assert classes[int(label)][1] == path.split("/")[1]
    assert verify(root, paths=[result.path]).ok


def test_every_label_file_uses_the_1000_class_index(root: Path) -> None:
    """train.txt and val.txt of a tree and of a subset: the sorted-WNID index a pretrained model
    predicts; a subset's own 0..k-1 numbering only in the files named for it."""
    sub = subset(root, classes="imagenette").path
    for tree in (root / "64", sub):
        for split in ("train", "val"):
            lines = (tree / f"{split}.txt").read_text().splitlines()
            assert lines and len(lines) == len(list((tree / split).glob("*/*")))
            for line in lines:
                path, label = line.split(" ")
                assert int(label) == catalogue.by_wnid(path.split("/")[1]).index, line
    assert "n02102040 217" in " ".join(
        f"{p.split('/')[1]} {lbl}"
        for p, lbl in (line.split(" ") for line in (sub / "train.txt").read_text().splitlines())
    )
    own = {line.split("\t")[1]: int(line.split("\t")[0]) for line in (sub / "classes.txt").read_text().splitlines()}
    assert sorted(own.values()) == list(range(10))
    for line in (sub / "val_subset_index.txt").read_text().splitlines():
        path, label = line.split(" ")
        assert own[path.split("/")[1]] == int(label)


def test_moving_the_root_keeps_the_links_and_a_rerun_is_a_no_op(root: Path, tmp_path: Path) -> None:
    subset(root, classes="3")
    moved = tmp_path / "moved"
    root.rename(moved)
    assert verify(moved, paths=[moved / "subsets" / "classes3-seed0"], deep=True).ok
    assert subset(moved, classes="3").status == "kept"


def test_a_subset_recorded_with_an_absolute_source_is_still_recognised(root: Path) -> None:
    """subset.json files written before sources were named relative to the root."""
    made = subset(root, classes="3")
    path = made.path / "subset.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "source": str((root / "64").resolve())}))
    assert subset(root, classes="3").status == "kept"


def test_an_interrupted_subset_leaves_nothing_that_counts(root: Path) -> None:
    staged = root / "subsets" / ".classes3-seed0.999.tmp" / "train" / "n01440764"
    staged.mkdir(parents=True)  # what a run killed while linking leaves behind
    assert verify(root).ok and len(verify(root).checks) == 5  # 4 archives and the 64 tree, no staging
    result = subset(root, classes="3")
    assert not staged.parent.parent.exists(), "the next run clears it"
    assert verify(root, paths=[result.path]).ok


def test_subset_of_a_subset(root: Path) -> None:
    outer = subset(root, classes="6")
    inner = subset(root, classes="3", source=outer.path, out=root / "subsets" / "inner")
    assert set(files(inner.path)) < set(files(outer.path))
    assert verify(root, paths=[inner.path]).ok


def test_several_prepared_trees_need_from(root: Path) -> None:
    prepare(root, ["32"], workers=1)
    with pytest.raises(InvalidArgumentError, match=r"several prepared trees \(32, 64\)"):
        subset(root, classes="2")


def test_cli(root: Path) -> None:
    result = imagenet("subset", "--root", str(root), "--classes", "5", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["images"] == {"train": 15, "val": 10}
    dry = imagenet("subset", "--root", str(root), "--classes", "7", "--dry-run")
    assert dry.exit_code == 0 and dry.stdout.startswith("would write")
    assert not (root / "subsets" / "classes7-seed0").exists()
    bad = imagenet("subset", "--root", str(root), "--per-class", "2", "--fraction", "0.5")
    assert bad.exit_code == 2 and "choose one of --per-class, --fraction and --images" in bad.stderr


def test_class_index_fixes_what_image_folder_readers_number(root: Path) -> None:
    """torchvision's ImageFolder, timm and datasets number the folders present 0..k-1; on a
    subset that is wrong for a 1000-class model, and class_index / class_map.txt set it right."""
    from imagenet_cli import class_index

    made = subset(root, classes="3")
    folders = sorted(p.name for p in (made.path / "val").iterdir() if p.is_dir())
    image_folder = {wnid: label for label, wnid in enumerate(folders)}  # what ImageFolder does
    true = {wnid: catalogue.by_wnid(wnid).index for wnid in folders}
    assert image_folder != true, "the readers' own numbering is not the 1000-class index"
    index = class_index(made.path)
    assert {wnid: index[folders[label]] for wnid, label in image_folder.items()} == true
    timm_map = {name: line for line, name in enumerate((made.path / "class_map.txt").read_text().split())}
    assert {wnid: timm_map[wnid] for wnid in folders} == true
    assert (root / "64" / "class_map.txt").read_text() == (made.path / "class_map.txt").read_text()


def test_subset_json_is_one_typed_record_and_a_damaged_one_is_one_line(root: Path) -> None:
    from imagenet_cli.subsets import SubsetRecord

    made = subset(root, classes="3")
    record = SubsetRecord.from_dict(json.loads((made.path / "subset.json").read_text()), made.path)
    assert record.schema == 1 and len(record.classes) == 3 and record.source == "64"
    assert subset(root, classes="3").status == "kept"
    (made.path / "subset.json").write_text('{"arguments": {}}')
    said = imagenet("subset", "--root", str(root), "--classes", "3")
    assert said.exit_code == 1 and "is not a subset record (KeyError" in said.stderr
