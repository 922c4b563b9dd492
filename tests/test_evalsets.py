"""The evaluation sets: their table, their miniatures' shapes, and ``download --dataset``."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest
from typer.testing import Result

from imagenet_cli import catalogue, evalsets, hashing
from imagenet_cli.checks import verify
from imagenet_cli.checks.findings import ProblemKind
from imagenet_cli.download import download_evalset_sample
from imagenet_cli.errors import EXIT_ERROR, EXIT_USAGE
from imagenet_cli.records import DownloadRecord, write_record
from imagenet_cli.sample.evalsets import write_evalset

from .conftest import imagenet
from .servers import FileServer

# ImageNet-C's miniature is 19 corruptions x 5 severities of classes x per_class 224-pixel JPEGs.
C_CLASSES, C_PER_CLASS = 2, 1


def miniature(name: str, folder: Path, classes: int = 4, per_class: int = 2, seed: int = 0) -> dict[str, bytes]:
    written = write_evalset(folder, name, classes=classes, per_class=per_class, seed=seed)
    return {path.name: path.read_bytes() for path in written}


def download(mirror: FileServer, root: Path, *arguments: str) -> Result:
    return imagenet("download", "--root", str(root), "--base-url", mirror.base_url, *arguments)


def tar_names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [m.name + ("/" if m.isdir() else "") for m in tar]


def test_the_table_knows_every_set_with_its_published_facts() -> None:
    table = evalsets.sets()
    assert list(table) == [
        "imagenet-v2",
        "imagenet-v2-threshold-0.7",
        "imagenet-v2-top-images",
        "imagenet-real",
        "imagenet-a",
        "imagenet-r",
        "imagenet-sketch",
        "imagenet-o",
        "imagenet-c",
    ]
    assert table["imagenet-a"].files[0].md5 == "c3e55429088dc681f30d81f4726b6595"
    assert table["imagenet-v2"].size == 1_264_079_360
    assert [f.name for f in table["imagenet-c"].files] == [f"{group}.tar" for group in evalsets.CORRUPTIONS]
    a, r = set(table["imagenet-a"].wnids()), set(table["imagenet-r"].wnids())
    assert len(a) == len(r) == 200 and a != r and a | r <= set(catalogue.wnids())
    assert sum(len(c) for c in evalsets.CORRUPTIONS.values()) == 19


def test_v2_folders_are_the_1k_index_including_those_imagefolder_misorders(tmp_path: Path) -> None:
    [(name, data)] = miniature("imagenet-v2", tmp_path).items()
    assert name == "imagenetv2-matched-frequency.tar.gz"
    names = tar_names(gzip.decompress(data))
    top = "imagenetv2-matched-frequency-format-val/"
    assert names[0] == top and all(n.startswith(top) for n in names)
    folders = {n.split("/")[1] for n in names if n.count("/") == 2 and n.endswith("/")}
    assert {"0", "1", "2", "10", "100"} <= folders and sorted(folders) != sorted(folders, key=int), "the trap"
    images = [n for n in names if n.endswith(".jpeg")]
    assert len(images) == len(folders) * 2 and all(len(n.rsplit("/", 1)[1]) == len("0" * 40 + ".jpeg") for n in images)


def test_real_json_lists_every_val_image_some_empty_and_indexed_from_file_1(tmp_path: Path) -> None:
    lists = json.loads(miniature("imagenet-real", tmp_path)["real.json"])
    assert len(lists) == catalogue.NUM_VAL_IMAGES
    assert any(entry == [] for entry in lists) and any(len(entry) == 2 for entry in lists)
    assert all(0 <= label < 1000 for entry in lists for label in entry)
    # Entry i is ILSVRC2012_val_<i+1>: most lists hold that image's ILSVRC label.
    truth = [catalogue.by_wnid(w).index for w in catalogue.val_labels()]
    agree = sum(truth[i] in entry for i, entry in enumerate(lists))
    shifted = sum(truth[i + 1] in entry for i, entry in enumerate(lists[:-1]))
    assert agree > 0.85 * len(lists) and shifted < 0.05 * len(lists)


@pytest.mark.parametrize("name", ["imagenet-a", "imagenet-r", "imagenet-o"])
def test_a_r_and_o_are_wnid_folders_with_a_readme(name: str, tmp_path: Path) -> None:
    names = tar_names(miniature(name, tmp_path)[f"{name}.tar"])
    assert names[:2] == [f"{name}/", f"{name}/README.txt"]
    wnids = {n.split("/")[1] for n in names if n.count("/") == 2 and n.endswith("/")}
    if name == "imagenet-o":
        assert not any(catalogue.is_wnid(w) for w in wnids), "O's classes are outside the 1000"
    else:
        assert wnids <= set(evalsets.evalset(name).wnids())
    assert sum(n.endswith(".jpg") for n in names) == 4 * 2


def test_sketch_is_a_zip_under_sketch(tmp_path: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(miniature("imagenet-sketch", tmp_path)["ImageNet-Sketch.zip"])) as archive:
        names = archive.namelist()
    assert names[0] == "sketch/" and all(n.startswith("sketch/") for n in names)
    assert sorted(n.rsplit("/", 1)[1] for n in names if n.endswith(".JPEG"))[:2] == ["1.JPEG", "1.JPEG"]


def test_c_is_corruption_severity_wnid_folders_of_val_names(tmp_path: Path) -> None:
    files = miniature("imagenet-c", tmp_path, classes=C_CLASSES, per_class=C_PER_CLASS)
    assert list(files) == [f"{group}.tar" for group in evalsets.CORRUPTIONS]
    names = [n for n in tar_names(files["noise.tar"]) if n.endswith(".JPEG")]
    assert len(names) == 3 * 5 * 2
    for name in names:
        corruption, severity, wnid, file = name.split("/")
        assert corruption in evalsets.CORRUPTIONS["noise"] and severity in "12345"
        assert catalogue.val_class(file).wnid == wnid


def test_the_same_options_give_the_same_bytes(tmp_path: Path) -> None:
    assert miniature("imagenet-a", tmp_path / "one") == miniature("imagenet-a", tmp_path / "two")
    assert miniature("imagenet-a", tmp_path / "three", seed=1) != miniature("imagenet-a", tmp_path / "one")


def test_download_from_a_mirror_records_what_arrived(tmp_path: Path) -> None:
    served = miniature("imagenet-c", tmp_path / "made", classes=C_CLASSES, per_class=C_PER_CLASS)
    with FileServer(served) as mirror:
        result = download(mirror, tmp_path / "root", "--dataset", "imagenet-c", "--corruptions", "noise,blur", "--json")
    assert result.exit_code == 0, result.output
    assert [f["name"] for f in json.loads(result.stdout)["files"]] == ["noise.tar", "blur.tar"]
    folder = tmp_path / "root" / "downloads" / "imagenet-c"
    for name in ("noise.tar", "blur.tar"):
        assert (folder / name).read_bytes() == served[name]
        record = DownloadRecord.read(folder / name)
        assert record.source == "imagenet-c" and record.details == {"dataset": "imagenet-c"}
    assert not (folder / "weather.tar").exists()


def test_a_file_that_is_not_the_published_one_is_refused(tmp_path: Path) -> None:
    # The miniature is not the published imagenet-a.tar: its size and MD5 are not the table's.
    served = miniature("imagenet-a", tmp_path / "made")
    with FileServer(served) as mirror:
        result = download(mirror, tmp_path / "root", "--dataset", "imagenet-a")
    assert result.exit_code == EXIT_ERROR, result.output
    [line] = result.stderr.strip().splitlines()
    assert "imagenet-a.tar" in line and "687,552,512" in line.replace(" ", ""), line
    assert not (tmp_path / "root" / "downloads" / "imagenet-a" / "imagenet-a.tar").exists()


def test_dry_run_names_the_files_and_fetches_nothing(tmp_path: Path) -> None:
    served = miniature("imagenet-c", tmp_path / "made", classes=C_CLASSES, per_class=C_PER_CLASS)
    with FileServer(served) as mirror:
        result = download(mirror, tmp_path / "root", "--dataset", "imagenet-c", "--corruptions", "extra", "--dry-run")
        assert not [r for r in mirror.requests if r[0] == "GET" and r[2] is None], "no whole-file GET"
    assert result.exit_code == 0, result.output
    assert "extra.tar" in result.stdout and "would fetch" in result.stdout
    assert not (tmp_path / "root" / "downloads" / "imagenet-c" / "extra.tar").exists()


def test_the_miniature_is_written_where_the_set_goes_and_kept_on_a_rerun(tmp_path: Path) -> None:
    first = download_evalset_sample(tmp_path, "imagenet-r")
    assert [f.status for f in first.files] == ["written"]
    assert first.files[0].path == tmp_path / "downloads" / "imagenet-r" / "imagenet-r.tar"
    assert [f.status for f in download_evalset_sample(tmp_path, "imagenet-r").files] == ["kept"]
    assert [f.status for f in download_evalset_sample(tmp_path, "imagenet-r", per_class=3).files] == ["written"]


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["--dataset", "imagenet-x"], "'imagenet-x' is not a dataset this tool knows (known: ilsvrc-2012, imagenet-v2"),
        (["--dataset", "imagenet-a", "--corruptions", "noise"], "--corruptions applies to imagenet-c only"),
        (["--dataset", "imagenet-c", "--corruptions", "rain"], "rain: the groups are noise, blur, weather"),
        (["--corruptions", "noise"], "--corruptions only applies to --dataset imagenet-c"),
        (["--dataset", "imagenet-a", "--source", "hf"], "comes from its publisher (or --base-url): drop --source hf"),
        (["--dataset", "imagenet-a", "--source", "sample", "--layout", "hf"], "--layout do not apply to --dataset"),
    ],
)
def test_options_that_do_not_fit_a_set_are_usage_errors(arguments: list[str], said: str, tmp_path: Path) -> None:
    result = imagenet("download", "--root", str(tmp_path), *arguments)
    assert result.exit_code == EXIT_USAGE and said in result.stderr, result.output


@pytest.fixture(scope="module")
def miniatures(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root holding the miniature of every set (C: one group), as download --source sample writes them."""
    root = tmp_path_factory.mktemp("evalsets")
    for name in evalsets.sets():
        if name == "imagenet-c":
            download_evalset_sample(root, name, corruptions=["noise"], classes=C_CLASSES, per_class=C_PER_CLASS)
        else:
            download_evalset_sample(root, name)
    return root


def problems_of(root: Path, deep: bool = False) -> set[tuple[ProblemKind, str]]:
    return {(p.kind, p.where) for c in verify(root, deep=deep).checks for p in c.problems}


def test_verify_checks_every_set_it_finds_and_deep_decodes_every_image(miniatures: Path) -> None:
    quick = verify(miniatures)
    assert quick.ok, [p for c in quick.checks for p in c.problems]
    assert sorted(c.path.parent.name for c in quick.checks) == sorted(evalsets.sets())
    counts = {c.path.parent.name: c.counts for c in quick.checks}
    assert counts["imagenet-a"]["images"] == 4 * 2 and counts["imagenet-a"]["classes"] == 4
    assert counts["imagenet-c"]["images"] == 3 * 5 * 2
    assert "images" not in counts["imagenet-v2"], "a gzip stream is listed only with --deep"
    deep = verify(miniatures, deep=True)
    assert deep.ok, [p for c in deep.checks for p in c.problems]
    decoded = {c.path.parent.name: c.counts.get("decoded") for c in deep.checks}
    assert decoded["imagenet-v2"] == 5 * 2 and decoded["imagenet-sketch"] == 4 * 2


def with_members_added(path: Path, extra: list[tuple[str, bytes]]) -> None:
    """The tar (or tar.gz) at ``path`` with ``extra`` members added, recorded again as the same
    miniature: what is found wrong is its structure, not its bytes."""
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else b"") for m in tar]  # type: ignore[union-attr]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for member, data in [*members, *((tarfile.TarInfo(n), d) for n, d in extra)]:
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    path.write_bytes(gzip.compress(buffer.getvalue(), mtime=0) if path.name.endswith(".gz") else buffer.getvalue())
    details = DownloadRecord.read(path).details
    write_record(path, hashing.hash_file(path), source="sample", details=details)


def test_verify_names_each_member_out_of_place_and_each_count_short(miniatures: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(miniatures, root)
    downloads = root / "downloads"
    image = b"\xff\xd8 not really"
    v2 = "imagenetv2-matched-frequency-format-val"
    with_members_added(
        downloads / "imagenet-v2" / "imagenetv2-matched-frequency.tar.gz", [(f"{v2}/1000/x.jpeg", image)]
    )
    with_members_added(downloads / "imagenet-a" / "imagenet-a.tar", [("imagenet-a/n01440764/tench.jpg", image)])
    with_members_added(downloads / "imagenet-o" / "imagenet-o.tar", [("imagenet-o/n01440764/tench.jpg", image)])
    stray = "gaussian_noise/3/n01440764/ILSVRC2012_val_00000001.JPEG"
    with_members_added(downloads / "imagenet-c" / "noise.tar", [(stray, image)])
    (downloads / "imagenet-real" / "real.json").write_text(json.dumps([[1]] * 49_999 + [[1000]]))
    found = problems_of(root, deep=True)
    assert (ProblemKind.STRUCTURE, f"imagenetv2-matched-frequency.tar.gz:{v2}/1000/x.jpeg") in found
    assert (ProblemKind.EXTRA, "imagenet-a.tar:imagenet-a/n01440764/tench.jpg") in found
    assert (ProblemKind.EXTRA, "imagenet-o.tar:imagenet-o/n01440764/tench.jpg") in found
    assert (ProblemKind.MISPLACED, f"noise.tar:{stray}") in found, "val 1 is a snake, not a tench"
    assert (ProblemKind.COUNT, "noise.tar:gaussian_noise/3") in found
    assert (ProblemKind.UNDECODABLE, f"noise.tar:{stray}") in found
    assert (ProblemKind.STRUCTURE, "real.json:50000") in found


def test_info_lists_the_sets_apart_from_the_archives(miniatures: Path) -> None:
    shown = imagenet("info", "--root", str(miniatures), "--json")
    assert shown.exit_code == 0, shown.output
    state = json.loads(shown.stdout)
    assert state["archives"] == [] and state["next_step"] == "download", "the sets are no ILSVRC-2012 to prepare"
    names = [f["name"] for f in state["evalset_files"]]
    assert "imagenet-a/imagenet-a.tar" in names and "imagenet-c/noise.tar" in names and len(names) == 9, (
        "8 sets of one file, C's noise.tar"
    )


def test_a_set_file_without_a_record_is_held_to_its_published_md5(miniatures: Path, tmp_path: Path) -> None:
    folder = tmp_path / "downloads" / "imagenet-a"
    folder.mkdir(parents=True)
    shutil.copy(miniatures / "downloads" / "imagenet-a" / "imagenet-a.tar", folder)  # the miniature: not the real one
    [check] = verify(tmp_path).checks
    assert [(p.kind, p.where) for p in check.problems if p.kind is ProblemKind.CHECKSUM] == [
        (ProblemKind.CHECKSUM, "imagenet-a.tar")
    ]
    assert any("c3e55429088dc681f30d81f4726b6595" in p.detail for p in check.problems)
