"""``imagenet score``: hand-computed accuracies on the sample's val images, and refusals."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy
import pytest

from imagenet_cli import catalogue, manifest
from imagenet_cli.errors import EXIT_USAGE, InvalidArgumentError
from imagenet_cli.scoring import score

from .conftest import imagenet, prepared_copy


@pytest.fixture(scope="module")
def root(official_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return prepared_copy(official_root, tmp_path_factory.mktemp("score"), "32")


def val_images(root: Path) -> list[tuple[str, int]]:
    """(path, true index) of each val image, in the manifest's order."""
    return [(e.path, catalogue.by_wnid(e.wnid).index) for e in manifest.read_manifest(root / "32") if e.split == "val"]


def other_than(label: int, count: int) -> list[int]:
    return [(label + 1 + k) % 1000 for k in range(count)]


def write_csv(path: Path, rows: list[tuple[str, Sequence[int | str]]], header: bool = True) -> Path:
    lines = ["path,top1,top2,top3,top4,top5"] if header else []
    lines += [",".join([name, *map(str, classes)]) for name, classes in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_top1_and_top5_are_what_the_predictions_say(root: Path, tmp_path: Path) -> None:
    images = val_images(root)
    assert len(images) == 26
    rows: list[tuple[str, Sequence[int | str]]] = []
    for number, (path, label) in enumerate(images):
        if number < 10:  # right first
            rows.append((path, [label, *other_than(label, 4)]))
        elif number < 16:  # right third, and by WNID, by file name alone
            guesses: list[int | str] = [
                *other_than(label, 2),
                catalogue.by_index(label).wnid,
                *other_than(label + 5, 2),
            ]
            rows.append((path.rsplit("/", 1)[-1], guesses))
        else:  # wrong
            rows.append((path, other_than(label, 5)))
    result = score(root, write_csv(tmp_path / "p.csv", rows))
    assert (result.images, result.top1, result.top5) == (26, 10 / 26, 16 / 26)
    first_class = images[0][0].split("/")[1]
    firsts = [n for n, (p, _) in enumerate(images) if p.split("/")[1] == first_class]
    assert result.per_class[first_class] == sum(n < 10 for n in firsts) / len(firsts)


def test_logits_in_manifest_order_score_the_same(root: Path, tmp_path: Path) -> None:
    images = val_images(root)
    logits = numpy.full((len(images), 1000), -10.0, dtype=numpy.float32)
    for row, (_, label) in enumerate(images):
        if row % 2 == 0:
            logits[row, label] = 5.0  # right
        else:
            logits[row, (label + 7) % 1000] = 5.0
            logits[row, label] = -20.0  # the least likely: not in the top five either
    numpy.save(tmp_path / "logits.npy", logits)
    result = score(root, tmp_path / "logits.npy")
    assert result.top1 == 13 / 26 and result.top5 == 13 / 26
    numpy.savez(tmp_path / "logits.npz", logits=logits)
    assert score(root, tmp_path / "logits.npz").top1 == 13 / 26


def test_real_counts_labelled_images_only_and_reads_entry_i_as_image_i_plus_1(root: Path, tmp_path: Path) -> None:
    images = val_images(root)
    lists: list[list[int]] = [[] for _ in range(catalogue.NUM_VAL_IMAGES)]
    predicted = {}
    for number, (path, label) in enumerate(images):
        entry = catalogue.val_number(path.rsplit("/", 1)[-1]) - 1
        predicted[path] = label
        if number < 4:
            lists[entry] = []  # ReaL left it out
        elif number < 20:
            lists[entry] = [label, (label + 1) % 1000]  # right under ReaL
        else:
            lists[entry] = [(label + 1) % 1000]  # ReaL disagrees with ILSVRC: wrong under ReaL
        # the README's off-by-one reading (entry i for image i) would find this list instead
        if entry + 1 < len(lists) and not lists[entry + 1]:
            lists[entry + 1] = [(label + 500) % 1000]
    real = root / "downloads" / "imagenet-real"
    real.mkdir(parents=True, exist_ok=True)
    (real / "real.json").write_text(json.dumps(lists))
    rows: list[tuple[str, Sequence[int | str]]] = [(p, [predicted[p]]) for p, _ in images]
    result = score(root, write_csv(tmp_path / "p.csv", rows, header=False), dataset="imagenet-real")
    assert (result.images, result.unlabelled, result.top1, result.top5) == (22, 4, 16 / 22, None)
    plain = score(root, tmp_path / "p.csv")
    assert plain.top1 == 1.0 and plain.top5 is None, "one guess each: no top-5"


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ("drop", "predicts 25 of the tree's 26 val images"),
        ("stranger", "ILSVRC2012_val_00000000.JPEG is not one of the tree's val images: predictions of another tree?"),
        ("twice", "is predicted twice"),
        ("unknown", "'n99999999' is neither a class index 0..999 nor one of the 1000 WNIDs"),
    ],
)
def test_a_file_that_does_not_fit_the_tree_is_refused_naming_the_line(
    root: Path, tmp_path: Path, change: str, said: str
) -> None:
    rows: list[tuple[str, Sequence[int | str]]] = [(p, [label]) for p, label in val_images(root)]
    if change == "drop":
        rows.pop()
    elif change == "stranger":
        rows.append(("ILSVRC2012_val_00000000.JPEG", [0]))
    elif change == "twice":
        rows.append(rows[0])
    else:
        rows[3] = (rows[3][0], ["n99999999"])
    with pytest.raises(InvalidArgumentError, match=said.replace("?", r"\?").replace("(", r"\(")):
        score(root, write_csv(tmp_path / "p.csv", rows))


def test_logits_of_another_size_are_refused(root: Path, tmp_path: Path) -> None:
    numpy.save(tmp_path / "short.npy", numpy.zeros((25, 1000)))
    with pytest.raises(InvalidArgumentError, match="25 rows but the tree has 26 val images"):
        score(root, tmp_path / "short.npy")
    numpy.save(tmp_path / "narrow.npy", numpy.zeros((26, 200)))
    with pytest.raises(InvalidArgumentError, match=r"shape \(26, 200\)"):
        score(root, tmp_path / "narrow.npy")


def test_cli_prints_percentages_and_json_per_class(root: Path, tmp_path: Path) -> None:
    rows: list[tuple[str, Sequence[int | str]]] = [(p, [label, *other_than(label, 4)]) for p, label in val_images(root)]
    predictions = write_csv(tmp_path / "p.csv", rows)
    shown = imagenet("score", str(predictions), "--root", str(root))
    assert shown.exit_code == 0, shown.output
    assert "ilsvrc-2012: 26 images of" in shown.stdout and "top-1   100.00%" in shown.stdout
    parsed = json.loads(imagenet("score", str(predictions), "--root", str(root), "--json").stdout)
    assert parsed["top5"] == 1.0 and len(parsed["per_class"]) == 13
    wrong = imagenet("score", str(predictions), "--root", str(root), "--dataset", "v3")
    assert wrong.exit_code == EXIT_USAGE and "--dataset 'v3' is not one of ilsvrc-2012, imagenet-v2," in wrong.stderr
