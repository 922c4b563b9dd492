"""``imagenet verify``: every kind of damage is named and gives the problems exit code."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagenet_cli import archives, hashing, manifest, sample
from imagenet_cli.checks import VerifyReport, verify
from imagenet_cli.checks.archives import NumberedNames
from imagenet_cli.checks.findings import ProblemKind
from imagenet_cli.errors import EXIT_PROBLEMS, EXIT_USAGE
from imagenet_cli.progress import Advance, Progress
from imagenet_cli.records import DownloadRecord, read_record

from .builders import set_devkit_line, tree_from_official
from .conftest import imagenet

NUMBERS = st.one_of(st.integers(0, 40), st.integers(NumberedNames.BITS - 3, NumberedNames.BITS + 3), st.none())


@given(st.lists(st.tuples(NUMBERS, st.sampled_from(["a", "b"]))))
def test_names_met_twice_are_found_as_a_set_finds_them(names: list[tuple[int | None, str]]) -> None:
    """A flat tar's numbered names are bits, any other kept whole: each met twice is found as a
    set of the names finds it, for numbers past the bits' limit too."""
    seen, reference = NumberedNames(), set()
    for number, shape in names:
        name = f"{shape}_{number}" if number is not None else shape
        assert seen.met_before(name, number if shape == "a" else None) == (name in reference)
        reference.add(name)


@pytest.fixture
def root(official_root: Path, tmp_path: Path) -> Path:
    """A private copy of the official-form sample, to damage."""
    shutil.copytree(official_root / "downloads", tmp_path / "downloads")
    return tmp_path


@pytest.fixture(scope="module")
def clean_tree(official_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tree_from_official(official_root / "downloads", tmp_path_factory.mktemp("tree") / "full")


@pytest.fixture
def tree(clean_tree: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(clean_tree, tmp_path / "full"))


def problems(report: VerifyReport, kind: str | None = None) -> list[tuple[str, str, str]]:
    return [(p.kind, p.where, p.detail) for c in report.checks for p in c.problems if kind in (None, p.kind)]


def flip_byte(path: Path, offset: int, keep_mtime: bool = False) -> None:
    stat = path.stat()
    with open(path, "r+b") as file:
        file.seek(offset)
        byte = file.read(1)
        file.seek(offset)
        file.write(bytes([byte[0] ^ 0xFF]))
    if keep_mtime:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


# --- archives ----------------------------------------------------------------------------------


def test_the_sample_passes_clean(root: Path) -> None:
    result = imagenet("verify", "--root", str(root), "--deep")
    assert result.exit_code == 0, result.output
    assert "all good in 4 checked" in result.stdout


def test_a_roots_downloads_folder_is_its_archives_not_a_tree(root: Path) -> None:
    report = verify(root, paths=[root / "downloads"])
    assert report.ok and [c.path.name for c in report.checks] == sorted(sample.OFFICIAL_FILES)


def test_the_kaggle_sample_passes_clean(kaggle_root: Path) -> None:
    report = verify(kaggle_root, deep=True)
    assert report.ok, problems(report)
    [check] = report.checks
    assert any("val labels in LOC_val_solution.csv" in c for c in check.checked)


def test_flipped_byte_in_the_middle_of_an_archive(root: Path) -> None:
    val = root / "downloads" / archives.VAL_TAR
    flip_byte(val, val.stat().st_size // 2)
    result = imagenet("verify", "--root", str(root))
    assert result.exit_code == EXIT_PROBLEMS
    assert "ILSVRC2012_img_val.tar: checksum: ILSVRC2012_img_val.tar: md5 is" in result.stdout


def test_flipped_byte_with_the_mtime_kept_needs_rehash(root: Path) -> None:
    val = root / "downloads" / archives.VAL_TAR
    flip_byte(val, val.stat().st_size // 2, keep_mtime=True)
    assert verify(root).ok, "unchanged size and mtime: the recorded digests are trusted"
    assert not verify(root, rehash=True).ok


def test_truncated_archive(root: Path) -> None:
    train = root / "downloads" / archives.TRAIN_TAR
    with open(train, "r+b") as file:
        file.truncate(train.stat().st_size // 2)
    report = verify(root)
    [(kind, where, detail)] = problems(report, "size")
    assert where == archives.TRAIN_TAR and "when it was downloaded" in detail


def test_archive_without_expected_value_is_unknown_not_good(root: Path, tmp_path: Path) -> None:
    other = tmp_path / "something.tar"
    shutil.copy(root / "downloads" / archives.TEST_TAR, other)
    result = imagenet("verify", str(other), "--json")
    assert result.exit_code == 0
    [check] = json.loads(result.stdout)["checks"]
    assert check["status"] == "unknown"
    assert "nothing to compare" in imagenet("verify", str(other)).stdout


def test_checksums_file_with_mixed_algorithms_and_a_missing_entry(root: Path, tmp_path: Path) -> None:
    downloads = root / "downloads"
    val, devkit = downloads / archives.VAL_TAR, downloads / archives.DEVKIT
    sums = tmp_path / "SUMS"
    sums.write_text(
        f"{hashing.hash_file(val)['md5']}  {val.name}\n"
        f"{hashing.hash_file(devkit, ['sha256'])['sha256']} *{devkit.name}\n"
        f"{hashing.hash_file(downloads / archives.TEST_TAR)['xxh3_64']}  {archives.TEST_TAR}\n"
    )  # nothing for the train tar: its download record applies
    report = verify(root, checksums=sums)
    assert report.ok, problems(report)
    by_name = {c.path.name: c.checked[0] for c in report.checks}
    assert "the checksums file" in by_name[archives.DEVKIT] and "sha256" in by_name[archives.DEVKIT]
    assert "download record" in by_name[archives.TRAIN_TAR]

    sums.write_text(f"{'0' * 32}  {val.name}\n")
    result = imagenet("verify", "--root", str(root), "--checksums", str(sums))
    assert result.exit_code == EXIT_PROBLEMS
    assert "the checksums file says 00000000000000000000000000000000" in result.stdout


def test_bad_checksums_file_is_a_usage_error(root: Path, tmp_path: Path) -> None:
    sums = tmp_path / "SUMS"
    sums.write_text("not a checksum line\n")
    result = imagenet("verify", "--root", str(root), "--checksums", str(sums))
    assert result.exit_code == EXIT_USAGE
    assert "is not a '<hex>  <name>' checksum line" in result.stderr


def test_devkit_ground_truth_differing_on_one_line(root: Path) -> None:
    set_devkit_line(root / "downloads" / archives.DEVKIT, 3, "1")  # val 3 is a Shetland sheepdog, not a kit fox
    [label] = problems(verify(root), "label")
    assert "line 3 (ILSVRC2012_val_00000003) says n02119789" in label[2] and "Shetland sheepdog" in label[2]


def test_kaggle_zip_with_a_corrupt_member(kaggle_root: Path, tmp_path: Path) -> None:
    path = tmp_path / "downloads" / archives.KAGGLE_ZIP
    shutil.copytree(kaggle_root / "downloads", path.parent)
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(".JPEG"))
    # Past the 30-byte local header and its name: inside the stored JPEG's bytes.
    flip_byte(path, info.header_offset + 30 + len(info.filename) + 500)
    report = verify(tmp_path, deep=True)
    kinds = {p[0] for p in problems(report)}
    assert "checksum" in kinds
    [(_, where, detail)] = problems(report, "damaged")
    assert where == f"{archives.KAGGLE_ZIP}:{info.filename}" and "bad CRC-32" in detail
    assert report.checks[0].counts["decoded"] == 13 * (3 + 2) + 3 - 1, "the other members were still read"


def test_hostile_members_are_refused_and_named(tmp_path: Path) -> None:
    import io
    import tarfile

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    with tarfile.open(downloads / archives.VAL_TAR, "w") as tar:
        for name in ("../../etc/evil.JPEG", "/abs.JPEG"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        link = tarfile.TarInfo("ILSVRC2012_val_00000001.JPEG")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    refused = problems(verify(tmp_path), "refused")
    assert {w.split(":", 1)[1] for _, w, _ in refused} == {
        "../../etc/evil.JPEG",
        "/abs.JPEG",
        "ILSVRC2012_val_00000001.JPEG",
    }


def test_reverify_trusts_recorded_digests_and_records_a_local_check(root: Path, tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere" / archives.DEVKIT  # checked for its content, which the sample's matches
    copy.parent.mkdir()
    shutil.copy(root / "downloads" / archives.DEVKIT, copy)
    sums = tmp_path / "SUMS"
    sums.write_text(f"{hashing.hash_file(copy)['md5']}  {copy.name}\n")
    unrecorded = verify(root, paths=[copy], checksums=sums)
    assert unrecorded.ok and read_record(copy) is None, "verify writes nothing unless asked"
    assert any("not recorded" in what for what in unrecorded.checks[0].checked)
    first = verify(root, paths=[copy], checksums=sums, record=True)
    assert first.ok and DownloadRecord.read(copy).source == "local"
    second = verify(root, paths=[copy])
    assert second.ok and "recorded" in second.checks[0].checked[0]


# --- trees -------------------------------------------------------------------------------------


def test_a_clean_tree_passes(tree: Path) -> None:
    report = verify(tree.parent, paths=[tree], deep=True)
    assert report.ok, problems(report)
    [check] = report.checks
    assert check.counts["train_images"] == 13 * 3 and check.counts["val_images"] == 13 * 2


def test_file_renamed_into_the_wrong_class_folder(tree: Path) -> None:
    source = next((tree / "train" / "n01440764").iterdir())
    target = tree / "train" / "n02102040" / source.name
    source.rename(target)
    found = problems(verify(tree.parent, paths=[tree]))
    assert ("misplaced", f"train/n02102040/{source.name}", "a n01440764 image in the n02102040 folder") in found
    assert ("misplaced", f"train/n02102040/{source.name}", "the manifest has it in train/n01440764/") in found
    assert not [p for p in found if p[0] in ("missing", "extra")]


def test_val_image_in_the_wrong_class(tree: Path) -> None:
    source = next((tree / "val" / "n01440764").iterdir())
    source.rename(tree / "val" / "n02102040" / source.name)
    found = problems(verify(tree.parent, paths=[tree]), "misplaced")
    assert any("its label is n01440764 (tench), not n02102040" in detail for _, _, detail in found)


def test_extra_and_missing_files(tree: Path) -> None:
    (tree / "train" / "n01440764" / "n01440764_99999999.JPEG").write_bytes(b"stray")
    gone = next((tree / "val" / "n03000684").iterdir())
    gone.unlink()
    found = problems(verify(tree.parent, paths=[tree]))
    assert ("extra", "train/n01440764/n01440764_99999999.JPEG", "not in the manifest") in found
    assert ("missing", f"val/n03000684/{gone.name}", "in the manifest, not on disk") in found
    assert ("count", "val/", f"{13 * 2 - 1} images; tree.json says {13 * 2}") in found


def test_truncated_and_zero_byte_jpegs(tree: Path) -> None:
    truncated, empty = sorted((tree / "train" / "n02979186").iterdir())[:2]
    truncated.write_bytes(truncated.read_bytes()[:5000])
    empty.write_bytes(b"")
    report = verify(tree.parent, paths=[tree], deep=True)
    changed = {w for _, w, _ in problems(report, "changed")}
    assert {f"train/n02979186/{truncated.name}", f"train/n02979186/{empty.name}"} <= changed
    undecodable = dict((w, d) for _, w, d in problems(report, "undecodable"))
    assert undecodable[f"train/n02979186/{empty.name}"] == "empty file (0 bytes)"
    assert f"train/n02979186/{truncated.name}" in undecodable


def test_a_manifest_that_lies(tree: Path) -> None:
    lines = (tree / manifest.MANIFEST).read_text().splitlines()
    fields = lines[1].split("\t")
    fields[2] = "0123456789abcdef"
    lines[1] = "\t".join(fields)
    (tree / manifest.MANIFEST).write_text("\n".join(lines) + "\n")
    [(kind, where, detail)] = problems(verify(tree.parent, paths=[tree]))
    assert kind == "changed" and where == fields[0] and "the manifest says 0123456789abcdef" in detail


def test_a_tree_without_manifest_gets_structure_and_labels(tree: Path) -> None:
    (tree / manifest.MANIFEST).unlink()
    (tree / "train" / "not-a-wnid").mkdir()
    empty = next((tree / "val" / "n01440764").iterdir())
    empty.write_bytes(b"")
    report = verify(tree.parent, paths=[tree], deep=True)
    found = problems(report)
    assert ("structure", "train/not-a-wnid/", "not a WNID: ImageFolder would make it a class") in found
    assert ("undecodable", f"val/n01440764/{empty.name}", "empty file (0 bytes)") in found
    assert "no manifest" in report.checks[0].checked[0]


def test_broken_link_in_a_subset(tree: Path) -> None:
    link = tree / "train" / "n01440764" / "n01440764_1.JPEG"
    link.symlink_to(tree / "nowhere.JPEG")
    found = problems(verify(tree.parent, paths=[tree]), "missing")
    assert any(w == "train/n01440764/n01440764_1.JPEG" and "broken link" in d for _, w, d in found)


def test_verify_everything_under_the_root_through_the_cli(root: Path, clean_tree: Path) -> None:
    shutil.copytree(clean_tree, root / "full")
    result = imagenet("verify", "--root", str(root))
    assert result.exit_code == 0, result.output
    assert "all good in 5 checked" in result.stdout
    (root / "full" / "val" / "n01440764" / "stray.JPEG").write_bytes(b"x")
    result = imagenet("verify", "--root", str(root), "--json")
    assert result.exit_code == EXIT_PROBLEMS
    report = json.loads(result.stdout)
    assert not report["ok"] and report["problem_count"] == 2  # the extra file, and the count
    assert [c["status"] for c in report["checks"]] == ["ok"] * 4 + ["problems"]


def test_nothing_to_verify(tmp_path: Path) -> None:
    result = imagenet("verify", "--root", str(tmp_path))
    assert result.exit_code == 1
    assert "nothing to verify" in result.stderr


def test_the_kaggle_2019_sample_passes_clean(kaggle2019_root: Path) -> None:
    report = verify(kaggle2019_root, deep=True)
    assert report.ok, problems(report)
    assert any("2019 layout" in c for c in report.checks[0].checked)


class Recorder(Progress):
    """A progress sink that keeps every task: [description, total, advanced]."""

    def __init__(self) -> None:
        self.tasks: list[list[Any]] = []

    @contextlib.contextmanager
    def task(self, description: str, total: int | None = None, unit: str = "it", initial: int = 0) -> Iterator[Advance]:
        record: list[Any] = [description, total, initial]
        self.tasks.append(record)

        def advance(n: int) -> None:
            record[2] += n

        yield advance


def test_deep_decoding_shows_progress_with_an_exact_total(root: Path) -> None:
    progress = Recorder()
    verify(root, paths=[root / "downloads" / archives.VAL_TAR], deep=True, progress=progress)
    assert ["decoding ILSVRC2012_img_val.tar", 26, 26] in progress.tasks


def test_prepare_progress_totals_are_exact_or_absent(root: Path, tmp_path: Path) -> None:
    import shutil

    from imagenet_cli.trees import prepare

    work = tmp_path / "work"
    shutil.copytree(root / "downloads", work / "downloads")
    val_only = Recorder()
    prepare(work, ["32"], splits=["val"], workers=1, progress=val_only)
    assert ["preparing images", 26, 26] in val_only.tasks
    both = Recorder()
    prepare(work, ["48"], workers=1, progress=both)
    assert ["preparing images", None, 65] in both.tasks, "a class tar's count is known only once read"


def test_a_rare_problem_is_never_hidden_behind_a_thousand_common_ones(tmp_path: Path) -> None:
    """Caps apply per kind: 1,500 missing files do not hide the one wrong label."""
    from imagenet_cli.checks.findings import MAX_LISTED, Check

    check = Check(tmp_path, "tree")
    for number in range(1500):
        check.add(ProblemKind.MISSING, f"train/n01440764/n01440764_{number}.JPEG", "in the manifest, not on disk")
    check.add(ProblemKind.MISPLACED, "val/n01440764/ILSVRC2012_val_00000001.JPEG", "its label is n01751748")
    assert check.problem_count == 1501
    assert [p.kind for p in check.problems].count(ProblemKind.MISSING) == MAX_LISTED
    assert [p.where for p in check.problems if p.kind == "misplaced"] == ["val/n01440764/ILSVRC2012_val_00000001.JPEG"]
    assert check.counted == {"missing": 1500, "misplaced": 1}
