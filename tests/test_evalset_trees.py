"""``prepare --dataset`` and ``score --dataset``: the evaluation sets as folders of a tree, in the
1000-class index, read back as ImageFolder reads them, and scored on hand-computed numbers."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import tarfile
from pathlib import Path

import numpy
import pytest

from imagenet_cli import catalogue, evalsets, manifest, scoring
from imagenet_cli.checks import verify
from imagenet_cli.checks.findings import ProblemKind
from imagenet_cli.download import download_evalset_sample
from imagenet_cli.errors import EXIT_ERROR, EXIT_PROBLEMS, EXIT_USAGE, InvalidArgumentError
from imagenet_cli.sample.evalsets import write_evalset
from imagenet_cli.trees import prepare

from .conftest import imagenet

SETS = ("imagenet-v2", "imagenet-a", "imagenet-r", "imagenet-sketch", "imagenet-o", "imagenet-c")


@pytest.fixture(scope="module")
def root(official_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample's val prepared at 32, and every set's miniature prepared beside it (C: all five
    groups, 19 corruptions x 5 severities of 2 classes x 1 image)."""
    root = tmp_path_factory.mktemp("evaltrees")
    shutil.copytree(official_root / "downloads", root / "downloads")
    prepare(root, ["32"], splits=["val"], workers=2)
    for name in SETS:
        shape = {"classes": 2, "per_class": 1} if name == "imagenet-c" else {}
        download_evalset_sample(root, name, classes=shape.get("classes", 4), per_class=shape.get("per_class", 2))
        prepare(root, ["32"], dataset=name, workers=2)
    download_evalset_sample(root, "imagenet-real")
    return root


def archive_truth(root: Path, name: str) -> dict[str, str]:
    """Each image of the set's archives, by the path prepare gives it, with its true WNID, read
    straight from the archives as their authors lay them out."""
    chosen = evalsets.evalset(name)
    truth = {}
    for file in chosen.files:
        path = root / "downloads" / name / file.name
        for member in _member_names(path):
            parts = member.split("/")
            stem = parts[-1].rsplit(".", 1)[0]
            if chosen.layout is evalsets.Layout.INDEX_FOLDERS and len(parts) == 3:  # V2: <top>/<k>/<sha1>.jpeg
                truth[f"{name}/{catalogue.by_index(int(parts[1])).wnid}/{stem}.JPEG"] = catalogue.by_index(
                    int(parts[1])
                ).wnid
            elif chosen.layout is evalsets.Layout.CORRUPTIONS and len(parts) == 4:
                truth[f"{name}/{parts[0]}/{parts[1]}/{parts[2]}/{stem}.JPEG"] = parts[2]
            elif len(parts) == 3 and parts[2] != "":  # <top>/<wnid>/<name>
                truth[f"{name}/{parts[1]}/{stem}.JPEG"] = parts[1]
    return truth


def _member_names(path: Path) -> list[str]:
    if path.suffix == ".zip":
        import zipfile

        with zipfile.ZipFile(path) as bundle:
            return [n for n in bundle.namelist() if not n.endswith("/")]
    data = path.read_bytes()
    data = gzip.decompress(data) if path.name.endswith(".gz") else data
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [m.name for m in tar if m.isfile() and not m.name.endswith("README.txt")]


def image_folder(folder: Path) -> list[tuple[str, int]]:
    """What torchvision's ImageFolder gives for ``folder``: classes are its sub-folders in sorted
    order, numbered 0..k-1, each file a sample (``find_classes`` and ``make_dataset``)."""
    classes = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    return [
        (str((folder / wnid / name).relative_to(folder.parent)), index)
        for index, wnid in enumerate(classes)
        for name in sorted(os.listdir(folder / wnid))
    ]


@pytest.mark.parametrize("name", ["imagenet-v2", "imagenet-a", "imagenet-r", "imagenet-sketch"])
def test_imagefolder_and_our_class_map_give_each_image_its_true_1k_label(root: Path, name: str) -> None:
    tree = root / "32"
    class_map = (tree / "class_map.txt").read_text().split()
    truth = archive_truth(root, name)
    read = image_folder(tree / name)
    assert sorted(path for path, _ in read) == sorted(truth)
    classes = sorted(entry.name for entry in os.scandir(tree / name) if entry.is_dir())
    for path, target in read:  # ImageFolder's target, through our class map, is the 1k index
        assert class_map.index(classes[target]) == catalogue.by_wnid(truth[path]).index
    labels = dict(line.rsplit(" ", 1) for line in (tree / f"{name}.txt").read_text().splitlines())
    assert {path: int(label) for path, label in labels.items()} == {
        path: catalogue.by_wnid(wnid).index for path, wnid in truth.items()
    }


def test_v2_index_folders_become_the_wnids_they_stand_for(root: Path) -> None:
    folders = sorted(os.listdir(root / "32" / "imagenet-v2"))
    # 0, 1, 2, 10 and 100: as strings ImageFolder would order them 0, 1, 10, 100, 2
    assert folders == sorted(catalogue.by_index(k).wnid for k in (0, 1, 2, 10, 100))


def test_c_nests_corruption_and_severity_and_files_each_val_image_by_its_label(root: Path) -> None:
    tree = root / "32"
    truth = archive_truth(root, "imagenet-c")
    assert len(truth) == 19 * 5 * 2
    rows = [e for e in manifest.read_manifest(tree) if e.split == "imagenet-c"]
    assert sorted(e.path for e in rows) == sorted(truth)
    for entry in rows:
        assert entry.wnid == catalogue.val_class(entry.name).wnid
    assert image_folder(tree / "imagenet-c" / "fog" / "3")  # an ImageFolder per corruption and severity


def test_o_keeps_its_own_wnids_and_has_no_1k_label_file(root: Path) -> None:
    tree = root / "32"
    assert sorted(archive_truth(root, "imagenet-o")) == sorted(
        e.path for e in manifest.read_manifest(tree) if e.split == "imagenet-o"
    )
    assert not any(catalogue.is_wnid(folder) for folder in os.listdir(tree / "imagenet-o"))
    assert not (tree / "imagenet-o.txt").exists()


def test_the_tree_records_each_set_and_verifies_clean(root: Path) -> None:
    info = manifest.TreeInfo.read(root / "32")
    assert {name: info.splits[name]["images"] for name in SETS} == {
        "imagenet-v2": 10,
        "imagenet-a": 8,
        "imagenet-r": 8,
        "imagenet-sketch": 8,
        "imagenet-o": 8,
        "imagenet-c": 190,
    }
    assert info.splits["val"]["images"] == 26, "val, prepared first, is kept"
    assert isinstance(info.made_by, manifest.Prepared)
    assert info.made_by.inputs_described == "the official archives", "the tree's words stay ILSVRC-2012's"
    report = verify(root, paths=[root / "32"])
    assert report.ok, [p for c in report.checks for p in c.problems]
    c_classes = {e.wnid for e in manifest.read_manifest(root / "32") if e.split == "imagenet-c"}
    assert report.checks[0].counts["imagenet-c_classes"] == len(c_classes)


def test_a_moved_c_image_is_named_misplaced(root: Path, tmp_path: Path) -> None:
    tree = shutil.copytree(root / "32", tmp_path / "32", symlinks=True)
    row = next(e for e in manifest.read_manifest(tree) if e.split == "imagenet-c")
    other = next(w for w in os.listdir(tree / row.directory.rsplit("/", 1)[0]) if w != row.wnid)
    moved = f"{row.directory.rsplit('/', 1)[0]}/{other}/{row.name}"
    os.rename(tree / row.path, tree / moved)
    problems = {(p.kind, p.where) for c in verify(tmp_path, paths=[tree]).checks for p in c.problems}
    assert (ProblemKind.MISPLACED, moved) in problems


def test_a_rerun_skips_every_shard_and_changed_inputs_redo_only_their_set(root: Path, tmp_path: Path) -> None:
    copy = tmp_path / "root"
    shutil.copytree(root, copy, symlinks=True)
    again = prepare(copy, ["32"], dataset="imagenet-a", workers=2)
    assert again.shards_run == 0
    val_inode = os.stat(copy / "32" / "val.txt").st_ino
    first_val = next(e.path for e in manifest.read_manifest(copy / "32") if e.split == "val")
    before = os.stat(copy / "32" / first_val).st_ino
    write_evalset(copy / "downloads" / "imagenet-a", "imagenet-a", classes=3, per_class=2, seed=7)
    redone = prepare(copy, ["32"], dataset="imagenet-a", workers=2)
    assert redone.shards_run == 3
    assert sorted(archive_truth(copy, "imagenet-a")) == sorted(
        e.path for e in manifest.read_manifest(copy / "32") if e.split == "imagenet-a"
    )
    assert len(os.listdir(copy / "32" / "imagenet-a")) == 3, "the old classes' folders are swept"
    assert os.stat(copy / "32" / first_val).st_ino == before, "val is not touched"
    assert os.stat(copy / "32" / "val.txt").st_ino != val_inode  # the label files are rewritten whole
    assert verify(copy, paths=[copy / "32"]).ok


def test_members_that_belong_nowhere_are_failures_and_the_rest_is_made(root: Path, tmp_path: Path) -> None:
    copy = tmp_path / "root"
    shutil.copytree(root / "downloads", copy / "downloads")
    v2 = copy / "downloads" / "imagenet-v2" / "imagenetv2-matched-frequency.tar.gz"
    top = evalsets.evalset("imagenet-v2").top
    buffer = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(gzip.decompress(v2.read_bytes()))) as old,
        tarfile.open(fileobj=buffer, mode="w") as new,
    ):
        for member in old:
            new.addfile(member, old.extractfile(member) if member.isfile() else None)
        for name, data in ((f"{top}/1000/a.jpeg", b"x"), (f"{top}/7/broken.jpeg", b"not a jpeg")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            new.addfile(info, io.BytesIO(data))
    v2.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))
    result = imagenet("prepare", "--root", str(copy), "--size", "32", "--dataset", "imagenet-v2")
    assert result.exit_code == EXIT_PROBLEMS, result.output
    assert f"{top}/1000/a.jpeg: not in a folder named by a class index 0..999" in result.stdout
    assert f"imagenet-v2/{catalogue.by_index(7).wnid}/broken.jpeg" in result.stdout
    rows = [e for e in manifest.read_manifest(copy / "32") if e.split == "imagenet-v2"]
    assert len(rows) == 10


def test_real_labels_file_follows_the_val_tree_and_reads_entry_i_as_image_i_plus_1(root: Path, tmp_path: Path) -> None:
    copy = tmp_path / "root"
    shutil.copytree(root / "downloads", copy / "downloads")
    shutil.copytree(root / "32", copy / "32", symlinks=True)
    val = [e.path for e in manifest.read_manifest(copy / "32") if e.split == "val"]
    real_json = copy / "downloads" / "imagenet-real" / "real.json"
    lists = json.loads(real_json.read_text())
    lists[catalogue.val_number(val[0].rsplit("/", 1)[1]) - 1] = []  # an image ReaL left without labels
    real_json.write_text(json.dumps(lists))
    result = imagenet("prepare", "--root", str(copy), "--size", "32", "--dataset", "imagenet-real")
    assert result.exit_code == 0, result.output
    lines = (copy / "32" / "val_real.txt").read_text().splitlines()
    assert [line.split(" ")[0] for line in lines] == val
    for line in lines:
        path, *labels = line.split(" ")
        number = int(path.rsplit("_", 1)[1].split(".")[0])
        assert [int(label) for label in labels] == lists[number - 1]
    labelled = sum(1 for line in lines if " " in line)
    assert f"ReaL labels for {labelled} of its {len(val)} val images" in result.stdout
    assert lines[0] == val[0], "no labels: the bare path, kept"


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["--dataset", "imagenet-a", "--splits", "train"], "--splits are ILSVRC-2012's"),
        (["--dataset", "imagenet-real", "--splits", "val"], "--splits are ILSVRC-2012's"),
        (["--dataset", "imagenet-a", "--from", "."], "is read from ROOT/downloads/imagenet-a/"),
        (["--dataset", "imagenet-z"], "'imagenet-z' is not a dataset this tool knows"),
    ],
)
def test_options_that_do_not_fit_a_set_are_usage_errors(arguments: list[str], said: str, tmp_path: Path) -> None:
    result = imagenet("prepare", "--root", str(tmp_path), "--size", "32", *arguments)
    assert result.exit_code == EXIT_USAGE and said in result.stderr, result.output


def test_a_set_not_downloaded_says_how_to_get_it(tmp_path: Path) -> None:
    result = imagenet("prepare", "--root", str(tmp_path), "--size", "32", "--dataset", "imagenet-r")
    assert result.exit_code == EXIT_ERROR
    assert "download it first (imagenet download --dataset imagenet-r)" in result.stderr


# --- score ---------------------------------------------------------------------------------------


def rows_of(root: Path, *splits: str) -> list[manifest.Entry]:
    return [e for e in manifest.read_manifest(root / "32") if e.split in splits]


def one_hot(labels: list[int], scale: float = 10.0) -> numpy.ndarray:
    logits = numpy.zeros((len(labels), 1000), dtype=numpy.float32)
    logits[numpy.arange(len(labels)), labels] = scale
    return logits


def test_v2_and_sketch_score_top1_over_the_1000(root: Path, tmp_path: Path) -> None:
    for name in ("imagenet-v2", "imagenet-sketch"):
        rows = rows_of(root, name)
        truth = [catalogue.by_wnid(e.wnid).index for e in rows]
        guesses = [label if n % 2 == 0 else (label + 1) % 1000 for n, label in enumerate(truth)]
        numpy.save(tmp_path / f"{name}.npy", one_hot(guesses))
        result = scoring.score(root, tmp_path / f"{name}.npy", dataset=name)
        assert (result.images, result.top1) == (len(rows), sum(n % 2 == 0 for n in range(len(rows))) / len(rows))


def test_a_and_r_take_the_best_of_their_200_classes(root: Path, tmp_path: Path) -> None:
    rows = rows_of(root, "imagenet-a")
    outside = next(i for i, w in enumerate(catalogue.wnids()) if w not in evalsets.evalset("imagenet-a").wnids())
    logits = one_hot([catalogue.by_wnid(e.wnid).index for e in rows], scale=5.0)
    logits[:, outside] = 9.0  # the best of the 1000 is outside A's 200 for every image
    logits[0, catalogue.by_wnid(rows[0].wnid).index] = 0.0  # and image 0's own class is not the best of the 200
    numpy.save(tmp_path / "a.npy", logits)
    result = scoring.score(root, tmp_path / "a.npy", dataset="imagenet-a")
    assert result.top1 == (len(rows) - 1) / len(rows)
    csv = tmp_path / "a.csv"  # a CSV's classes outside the 200 are passed over
    csv.write_text("".join(f"{e.path},{outside},{e.wnid}\n" for e in rows))
    assert scoring.score(root, csv, dataset="imagenet-a").top1 == 1.0


def test_c_gives_errors_per_corruption_and_mce_on_known_numbers(root: Path, tmp_path: Path) -> None:
    rows = rows_of(root, "imagenet-c")
    # Right at severities up to a corruption's own threshold, wrong above: known errors per severity.
    threshold = {c: n % 6 for n, c in enumerate(c for group in evalsets.CORRUPTIONS.values() for c in group)}
    guesses = []
    for entry in rows:
        _, corruption, severity, _ = entry.path.split("/", 3)
        label = catalogue.by_wnid(entry.wnid).index
        guesses.append(label if int(severity) <= threshold[corruption] else (label + 1) % 1000)
    numpy.save(tmp_path / "c.npy", one_hot(guesses))
    result = scoring.score(root, tmp_path / "c.npy", dataset="imagenet-c")
    alexnet = scoring.alexnet_errors()
    for corruption, scored in result.corruptions.items():
        expected_mean = (5 - threshold[corruption]) / 5
        assert scored.errors == {s: float(s > threshold[corruption]) for s in range(1, 6)}
        assert scored.mean == pytest.approx(expected_mean)
        assert scored.ce == (pytest.approx(expected_mean / alexnet[corruption]) if corruption in alexnet else None)
    assert len(result.corruptions) == 19
    assert result.mce == pytest.approx(sum((5 - threshold[c]) / 5 / alexnet[c] for c in alexnet) / 15)
    printed = imagenet("score", str(tmp_path / "c.npy"), "--root", str(root), "--dataset", "imagenet-c")
    assert printed.exit_code == 0 and "mCE" in printed.stdout and "jpeg_compression" in printed.stdout


def test_c_by_file_name_alone_is_refused_as_ambiguous(root: Path, tmp_path: Path) -> None:
    rows = rows_of(root, "imagenet-c")
    csv = tmp_path / "c.csv"
    csv.write_text("".join(f"{e.name},{e.wnid}\n" for e in rows))
    with pytest.raises(InvalidArgumentError, match=r"is the name of \d+ images: give its path"):
        scoring.score(root, csv, dataset="imagenet-c")


def test_average_precision_on_hand_computed_rankings() -> None:
    # P@1 = 1 at recall 1/2, P@3 = 2/3 at recall 1: 1/2 + 1/2 x 2/3
    assert scoring.average_precision([0.9, 0.8, 0.7, 0.6], [True, False, True, False]) == pytest.approx(5 / 6)
    # a tie at the top is one threshold: P = 1/2 at recall 1/2, then 2/3 at recall 1
    assert scoring.average_precision([1.0, 1.0, 0.0], [True, False, True]) == pytest.approx(0.25 + 1 / 3)


def test_o_is_scored_by_aupr_of_max_softmax_against_val(root: Path, tmp_path: Path) -> None:
    rows = rows_of(root, "imagenet-o", "val")
    assert rows[0].split == "imagenet-o", "the manifest's order: imagenet-o/ before val/"
    logits = numpy.zeros((len(rows), 1000), dtype=numpy.float32)
    for n, entry in enumerate(rows):  # val confident, O flat: every O image ranks as the most anomalous
        logits[n, 0] = 12.0 if entry.split == "val" else 0.5
    numpy.save(tmp_path / "o.npy", logits)
    result = scoring.score(root, tmp_path / "o.npy", dataset="imagenet-o")
    assert (result.images, result.against, result.aupr, result.top1) == (8, 26, 1.0, None)
    first_val = next(n for n, e in enumerate(rows) if e.split == "val")
    logits[first_val, 0] = 0.0  # one val image now less confident than every O image
    numpy.save(tmp_path / "o.npy", logits)
    assert scoring.score(root, tmp_path / "o.npy", dataset="imagenet-o").aupr == pytest.approx(8 / 9)
    csv = tmp_path / "o.csv"
    csv.write_text("".join(f"{e.path},0\n" for e in rows))
    refused = imagenet("score", str(csv), "--root", str(root), "--dataset", "imagenet-o")
    assert refused.exit_code == EXIT_USAGE and "give logits (.npy or .npz)" in refused.stderr


def test_a_set_not_prepared_is_named_with_the_command_that_prepares_it(root: Path, tmp_path: Path) -> None:
    numpy.save(tmp_path / "x.npy", numpy.zeros((1, 1000), dtype=numpy.float32))
    result = imagenet("score", str(tmp_path / "x.npy"), "--root", str(root), "--dataset", "imagenet-v2-top-images")
    assert result.exit_code == EXIT_ERROR
    assert "no imagenet-v2-top-images images to score: prepare them first" in result.stderr
