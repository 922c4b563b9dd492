"""``imagenet export parquet`` and ``downsampled``, read back by their formats' own readers; the
``datasets`` WebDataset reader; and a kill -9 in the middle of every format."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest
import xxhash
from hypothesis import given
from hypothesis import strategies as st

from imagenet_cli import catalogue, manifest
from imagenet_cli.errors import InvalidArgumentError, install_command
from imagenet_cli.exports import export
from imagenet_cli.exports.parquet import binary_column
from imagenet_cli.exports.samples import SplitSamples
from imagenet_cli.subsets import subset

from .builders import read_member
from .conftest import imagenet, prepared_copy

np = pytest.importorskip("numpy")


@pytest.fixture(scope="module")
def root(official_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample prepared at full size (originals kept) and at 64 pixels."""
    made = prepared_copy(official_root, tmp_path_factory.mktemp("formats"), "full")
    from imagenet_cli.trees import prepare

    prepare(made, ["64"], workers=2)
    return made


@pytest.fixture
def hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Hugging Face caches under the test's folder, and never the network."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    return tmp_path / "hf"


def tree_rows(tree: Path, split: str) -> list[manifest.Entry]:
    return [e for e in manifest.read_manifest(tree) if e.path.startswith(split + "/")]


# --- parquet ------------------------------------------------------------------------------------


def test_parquet_rows_hold_the_bytes_and_the_sorted_index(root: Path, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    result = export(root, "parquet", source=root / "64", out=tmp_path / "pq", shard_size=20)
    assert [s.file for s in result.shards] == [
        "data/train-00000-of-00002.parquet",
        "data/train-00001-of-00002.parquet",
        "data/validation-00000-of-00002.parquet",
        "data/validation-00001-of-00002.parquet",
    ]
    for shard in result.shards:  # hashed as written, never read back: the digest is of the file's bytes
        assert shard.xxh3_64 == xxhash.xxh3_64_hexdigest((tmp_path / "pq" / shard.file).read_bytes())
    for split, name in (("train", "train"), ("val", "validation")):
        table = pq.read_table(sorted((tmp_path / "pq" / "data").glob(f"{name}-*.parquet")))
        assert table.schema.field("label").type == "int64"
        rows = {row["image"]["path"]: (row["image"]["bytes"], row["label"]) for row in table.to_pylist()}
        expected = tree_rows(root / "64", split)
        assert len(rows) == table.num_rows == len(expected), "every image once"
        for entry in expected:
            data, label = rows[f"{entry.wnid}/{entry.name}"]
            assert label == catalogue.by_wnid(entry.wnid).index
            assert data == (root / "64" / entry.path).read_bytes(), "copied, never re-encoded"


@given(st.lists(st.binary(max_size=600), max_size=40))
def test_a_binary_column_built_from_its_buffers_equals_pyarrows_own(values: list[bytes]) -> None:
    pa = pytest.importorskip("pyarrow")
    column = binary_column(pa, values)
    column.validate(full=True)
    assert column.equals(pa.array(values, pa.binary()))


def test_datasets_loads_parquet_by_folder_and_by_data_dir_with_class_names(
    root: Path, tmp_path: Path, hf_home: Path
) -> None:
    datasets = pytest.importorskip("datasets")
    export(root, "parquet", source=root / "64", out=tmp_path / "pq", shard_size=20)
    expected = {f"{e.wnid}/{e.name}": catalogue.by_wnid(e.wnid).index for e in tree_rows(root / "64", "val")}
    for loaded in (
        datasets.load_dataset(str(tmp_path / "pq"), cache_dir=str(hf_home)),
        datasets.load_dataset("parquet", data_dir=str(tmp_path / "pq" / "data"), cache_dir=str(hf_home)),
    ):
        assert sorted(loaded) == ["train", "validation"]
        labels = loaded["validation"].features["label"]
        assert labels.num_classes == 1000 and len(set(labels.names)) == 1000, "unique class names"
        assert labels.names[0] == "tench" and "crane (n02012849)" in labels.names
        assert loaded["train"].num_rows == len(tree_rows(root / "64", "train"))
        seen = {}
        for row in loaded["validation"].cast_column("image", datasets.Image(decode=False)):
            seen[row["image"]["path"]] = row["label"]
        assert seen == expected
        first = loaded["validation"][0]["image"]
        assert first.size[0] > 0 and first.mode == "RGB", "decoded as an image"


def test_a_subset_in_parquet_has_its_own_index_and_names(root: Path, tmp_path: Path, hf_home: Path) -> None:
    datasets = pytest.importorskip("datasets")
    made = subset(root, classes="4", source=root / "64", seed=1)
    export(root, "parquet", source=made.path, out=tmp_path / "pq")
    loaded = datasets.load_dataset(str(tmp_path / "pq"), cache_dir=str(hf_home))
    table = [line.split("\t") for line in (made.path / "classes.txt").read_text().splitlines()]
    assert loaded["train"].features["label"].names == [catalogue.by_wnid(wnid).name for _, wnid, _, _ in table]
    own = {wnid: int(index) for index, wnid, _, _ in table}
    for row in loaded["train"].cast_column("image", datasets.Image(decode=False)):
        assert row["label"] == own[row["image"]["path"].split("/")[0]]


# --- webdataset through Hugging Face datasets -----------------------------------------------------


def test_datasets_reads_the_webdataset_shards_with_the_right_labels(root: Path, tmp_path: Path, hf_home: Path) -> None:
    datasets = pytest.importorskip("datasets")
    export(root, source=root / "64", out=tmp_path / "wds", shard_size=40)
    loaded = datasets.load_dataset(
        "webdataset", data_files={"train": str(tmp_path / "wds" / "imagenet1k-train-*.tar")}, cache_dir=str(hf_home)
    )["train"]
    expected = {e.name.split(".")[0]: catalogue.by_wnid(e.wnid).index for e in tree_rows(root / "64", "train")}
    found = {row["__key__"]: int(row["cls"]) for row in loaded}
    assert found == expected and loaded.num_rows == len(expected), "every image once, with its label"


# --- downsampled ----------------------------------------------------------------------------------


def originals(downloads: Path) -> dict[str, bytes]:
    """{file name: bytes} of every train and val image, read from the official archives."""
    found = {}
    with tarfile.open(downloads / "ILSVRC2012_img_train.tar") as outer:
        for class_tar in outer:
            with tarfile.open(fileobj=outer.extractfile(class_tar)) as inner:
                found.update({m.name: read_member(inner, m) for m in inner if m.isfile()})
    with tarfile.open(downloads / "ILSVRC2012_img_val.tar") as val:
        found.update({m.name: read_member(val, m) for m in val if m.isfile()})
    return found


def published_pixels(data: bytes, size: int) -> Any:
    """The published files' recipe, as the issue states it."""
    from PIL import Image

    image = Image.open(io.BytesIO(data)).convert("RGB").resize((size, size), Image.Resampling.BOX)
    return np.asarray(image, dtype=np.float64).transpose(2, 0, 1)


def load_like_the_authors(folder: Path, name: str, size: int) -> tuple[Any, Any, Any]:
    """The Imagenet32 authors' loader, unpickle-free: N x 3 x s x s, labels made 0-based."""
    arrays = np.load(folder / f"{name}.npz")
    data = arrays["data"].reshape(-1, 3, size, size)
    return data, arrays["labels"] - 1, (arrays["mean"] if "mean" in arrays else None)


@pytest.mark.parametrize("size", [32, 8])
def test_downsampled_is_the_published_recipe_with_devkit_labels(root: Path, tmp_path: Path, size: int) -> None:
    result = export(root, "downsampled", source=root / "full", out=tmp_path / "ds", size=size, workers=2)
    assert sorted(s.file for s in result.shards) == sorted(
        [f"train_data_batch_{i}.npz" for i in range(1, 11)] + ["val_data.npz"]
    )
    train_count = len(tree_rows(root / "full", "train"))
    reference = originals(root / "downloads")
    by_class: dict[int, list[str]] = {}
    for entry in tree_rows(root / "full", "train") + tree_rows(root / "full", "val"):
        by_class.setdefault(catalogue.by_wnid(entry.wnid).devkit_id - 1, []).append(entry.name)
    used, rows, means = set(), [], []
    for name in [f"train_data_batch_{i}" for i in range(1, 11)] + ["val_data"]:
        data, labels, mean = load_like_the_authors(tmp_path / "ds", name, size)
        expected_rows = train_count // 10 + (train_count % 10 if name.endswith("_10") else 0)
        assert (
            len(data) == len(labels) == (expected_rows if name != "val_data" else len(tree_rows(root / "full", "val")))
        )
        assert (mean is None) == (name == "val_data")
        if mean is not None:
            means.append(mean)
            rows.append(data.reshape(len(data), -1))
        for image, label in zip(data, labels, strict=True):
            # The right class, and within it the image whose published pixels these are.
            errors = {
                n: np.abs(published_pixels(reference[n], size) - image).mean() for n in by_class[label] if n not in used
            }
            best = min(errors, key=lambda n: errors[n])
            assert errors[best] <= 0.5, f"{best}: {errors[best]:.2f} grey levels from the published recipe"
            used.add(best)
    assert len(used) == len(reference), "every image once"
    everything = np.concatenate(rows).astype(np.float64)
    assert all(np.array_equal(m, means[0]) for m in means) and np.allclose(means[0], everything.mean(axis=0))


def test_a_downsampled_batch_lost_is_made_again_from_its_own_rows(root: Path, tmp_path: Path) -> None:
    """Batches already there are passed over in the row stream, so the batch made again is the
    one that was lost, byte for byte, not the next batch's rows."""
    out = tmp_path / "ds"
    export(root, "downsampled", source=root / "full", out=out, size=8, workers=2)
    lost = (out / "train_data_batch_3.npz").read_bytes()
    (out / "train_data_batch_3.npz").unlink()
    (out / "export.json").unlink()
    export(root, "downsampled", source=root / "full", out=out, size=8, workers=2)
    assert (out / "train_data_batch_3.npz").read_bytes() == lost


def test_downsampled_labels_stay_devkit_ids_for_a_subset(root: Path, tmp_path: Path) -> None:
    made = subset(root, classes="3", source=root / "full", seed=2)
    export(root, "downsampled", source=made.path, out=tmp_path / "ds", size=8, workers=1)
    wnids = {line.split("\t")[1] for line in (made.path / "classes.txt").read_text().splitlines()}
    _, labels, _ = load_like_the_authors(tmp_path / "ds", "val_data", 8)
    assert {catalogue.by_devkit_id(int(label) + 1).wnid for label in labels} == wnids


def test_downsampled_refuses_a_resized_tree_naming_the_prepare_command(root: Path) -> None:
    result = imagenet("export", "downsampled", "--root", str(root), "--from", str(root / "64"))
    assert result.exit_code == 1
    assert "64-pixel jpeg images" in result.stderr and "`imagenet prepare --size full`" in result.stderr
    assert not (root / "exports" / "downsampled32-64").exists() or not any(
        (root / "exports" / "downsampled32-64").glob("*.npz")
    )


@pytest.mark.parametrize(
    ("arguments", "wrong"),
    [
        ({"to": "downsampled", "shard_size": 10}, "^shard_size: downsampled writes"),
        ({"to": "downsampled", "size": 48}, "^size 48: Downsampled ImageNet is"),
        ({"to": "parquet", "size": 32}, "^size applies to making images from the archives; .* is a prepared tree"),
    ],
)
def test_options_of_another_format_are_refused(
    root: Path, tmp_path: Path, arguments: dict[str, Any], wrong: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=wrong):
        export(root, source=root / "full", out=tmp_path / "x", **arguments)


def test_the_cli_names_the_refused_options_as_typed(root: Path, tmp_path: Path) -> None:
    said = imagenet("export", "downsampled", "--root", str(root), "--from", str(root / "full"), "--shard-size", "10")
    assert said.exit_code == 2 and "imagenet: error: --shard-size: downsampled writes 10 train batches" in said.stderr


def test_a_bad_argument_is_named_by_its_parameter_in_python_and_by_its_option_on_the_cli(
    root: Path, tmp_path: Path
) -> None:
    """The library names no option: the CLI puts the one the user typed in the parameter's place."""
    with pytest.raises(InvalidArgumentError) as raised:
        export(root, "parquet", source=root / "full", out=tmp_path / "x", size=32)
    assert raised.value.parameter == "size" and "--" not in str(raised.value)
    said = imagenet("export", "parquet", "--root", str(root), "--from", str(root / "full"), "--size", "32")
    assert said.exit_code == 2 and said.stderr.startswith("imagenet: error: --size applies to making images from")
    bad = imagenet("prepare", "--root", str(root), "--size", "huge", "--from", str(root / "full"))
    assert bad.exit_code == 2 and "--size 'huge' is neither 'full' nor a number of pixels" in bad.stderr


def test_the_cli_names_the_default_folder_with_the_size(root: Path) -> None:
    result = imagenet(
        *[
            "export",
            "downsampled",
            "--root",
            str(root),
            "--from",
            str(root / "full"),
            "--size",
            "16",
            "--splits",
            "val",
            "-q",
        ],
        env={"IMAGENET_NO_PROGRESS": "1"},
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{root / 'exports' / 'downsampled16-full'}\n"
    verified = imagenet("verify", "--root", str(root), "--deep", str(root / "exports" / "downsampled16-full"))
    assert verified.exit_code == 0, verified.output


@pytest.mark.parametrize(
    ("format", "module", "extra"), [("parquet", "pyarrow", "parquet"), ("downsampled", "numpy", "numpy")]
)
def test_without_its_extra_a_format_is_one_line_naming_it(
    root: Path, tmp_path: Path, format: str, module: str, extra: str
) -> None:
    program = (
        f"import sys; sys.modules[{module!r}] = None; sys.argv[0] = 'imagenet'\n"
        "from imagenet_cli.cli.app import main; main()"
    )
    arguments = ["export", format, "--root", str(root), "--from", str(root / "full"), "--out", str(tmp_path / "x")]
    completed = subprocess.run([sys.executable, "-c", program, *arguments], capture_output=True, text=True)
    assert completed.returncode == 1 and len(completed.stderr.strip().splitlines()) == 1
    assert completed.stderr.startswith(
        f"imagenet: error: export {format} needs {module}: {install_command(extra)} — try"
    )
    assert not (tmp_path / "x").exists(), "refused before anything is written"


# --- every format: the same bytes twice, and after a kill -9 ---------------------------------------

FORMAT_RUNS = {
    "webdataset": ["--from", "64", "--shard-size", "8"],
    "parquet": ["--from", "64", "--shard-size", "8"],
    "downsampled": ["--from", "full", "--size", "16", "--workers", "1"],
}


def _cli(root: Path, format: str, out: Path) -> list[str]:
    options = [str(root / o) if o in ("64", "full") else o for o in FORMAT_RUNS[format]]
    return [sys.executable, "-m", "imagenet_cli", "export", format, "--root", str(root), "--out", str(out), *options]


def _run(root: Path, format: str, out: Path) -> None:
    done = subprocess.run(
        _cli(root, format, out), capture_output=True, text=True, env={**os.environ, "IMAGENET_NO_PROGRESS": "1"}
    )
    assert done.returncode == 0, done.stderr


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def _finished_inodes(folder: Path) -> set[int]:
    """Files a re-run should keep: shards under their final names, and staged train batches."""
    return {
        p.stat().st_ino
        for p in folder.rglob("*")
        if p.suffix in (".tar", ".parquet", ".npz") and not p.name.endswith(".tmp")
    }


@pytest.mark.slow
@pytest.mark.parametrize("format", sorted(FORMAT_RUNS))
def test_a_kill_9_mid_export_and_a_rerun_give_the_bytes_of_a_clean_run(root: Path, tmp_path: Path, format: str) -> None:
    pytest.importorskip("pyarrow")
    _run(root, format, tmp_path / "clean")
    _run(root, format, tmp_path / "again")
    assert _files(tmp_path / "again") == _files(tmp_path / "clean"), "deterministic bytes"

    # A named pipe in place of an image halfway through train holds the export there.
    tree = root / ("full" if format == "downsampled" else "64")
    in_order = list(SplitSamples(tree, "train", 0))
    victim = tree / in_order[len(in_order) // 2].path
    saved = tmp_path / "saved"
    shutil.copy2(victim, saved)
    victim.unlink()
    os.mkfifo(victim)
    try:
        stopped = subprocess.Popen(_cli(root, format, tmp_path / "killed"), stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while len(_finished_inodes(tmp_path / "killed")) < 2:
            assert time.monotonic() < deadline and stopped.poll() is None, "the export should be held by the pipe"
            time.sleep(0.05)
        time.sleep(0.5)
        stopped.send_signal(signal.SIGKILL)
        stopped.wait()
    finally:
        victim.unlink()
        shutil.copy2(saved, victim)
    kept = _finished_inodes(tmp_path / "killed")
    assert not (tmp_path / "killed" / "export.json").exists()
    _run(root, format, tmp_path / "killed")
    assert _files(tmp_path / "killed") == _files(tmp_path / "clean")
    assert kept <= _finished_inodes(tmp_path / "killed"), "what was finished before the kill was kept, not redone"
    assert not [p for p in (tmp_path / "killed").rglob("*") if p.name.endswith(".tmp") or p.name == ".staging"]


def test_info_lists_exports_finished_and_unfinished(root: Path, tmp_path: Path) -> None:
    """`imagenet info` shows each export with its format and samples, and one a stop left unfinished."""
    pytest.importorskip("pyarrow")
    work = tmp_path / "root"
    shutil.copytree(root / "64", work / "64", symlinks=True)
    export(work, "parquet", out=work / "exports" / "parquet-64")
    export(work, "webdataset", out=work / "exports" / "halfway", splits=["val"])
    (work / "exports" / "halfway" / "export.json").unlink()  # as a run stopped before its record
    shown = imagenet("info", "--root", str(work), "--json")
    assert shown.exit_code == 0, shown.output
    exports = {e["name"]: e for e in json.loads(shown.stdout)["exports"]}
    assert exports["parquet-64"]["format"] == "parquet" and exports["parquet-64"]["finished"]
    assert exports["parquet-64"]["samples"] == {
        "train": len(tree_rows(root / "64", "train")),
        "val": len(tree_rows(root / "64", "val")),
    }
    assert exports["halfway"] == {
        "name": "halfway",
        "path": str(work / "exports" / "halfway"),
        "format": None,
        "finished": False,
        "samples": {},
        "bytes": 0,
    }
    text = imagenet("info", "--root", str(work)).stdout
    assert "exports (exports/):" in text and "unfinished: run the same export again" in text


def test_verify_deep_of_a_parquet_export_without_pyarrow_names_the_extra(root: Path, tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    export(root, "parquet", source=root / "64", out=tmp_path / "pq", splits=["val"])
    program = (
        "import sys; sys.modules['pyarrow'] = None; sys.argv[0] = 'imagenet'\n"
        "from imagenet_cli.cli.app import main; main()"
    )
    completed = subprocess.run(
        [sys.executable, "-c", program, "verify", "--deep", str(tmp_path / "pq")], capture_output=True, text=True
    )
    assert completed.returncode == 1 and len(completed.stderr.strip().splitlines()) == 1
    assert install_command("parquet") in completed.stderr


@pytest.mark.parametrize("apart", [[], ["--shard-size", "5", "--workers", "2"]], ids=["here", "on-workers"])
def test_an_image_missing_from_the_tree_is_one_line_naming_verify(root: Path, tmp_path: Path, apart: list[str]) -> None:
    work = tmp_path / "root"
    shutil.copytree(root / "64", work / "64")
    gone = tree_rows(work / "64", "val")[0]
    (work / "64" / gone.path).unlink()
    result = imagenet("export", "webdataset", "--root", str(work), "--splits", "val", *apart)
    assert result.exit_code == 1
    assert (
        result.stderr.startswith(f"imagenet: error: cannot read {work / '64' / gone.path}")
        and "imagenet verify" in result.stderr
    )
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_second_export_into_the_same_folder_waits_or_says_who_holds_it(root: Path, tmp_path: Path) -> None:
    """Two processes, one export folder: with --no-wait the second says who is writing it (exit 1);
    waiting, it finds the work done and keeps every shard. The first is held mid-train by a pipe."""
    work = tmp_path / "root"
    shutil.copytree(root / "64", work / "64")
    out = work / "exports" / "webdataset-64"
    in_order = list(SplitSamples(work / "64", "train", 0))
    victim = work / "64" / in_order[len(in_order) // 2].path
    saved = victim.read_bytes()
    victim.unlink()
    os.mkfifo(victim)
    command = [sys.executable, "-m", "imagenet_cli", "export", "webdataset", "--root", str(work), "--shard-size", "8"]
    env = {**os.environ, "IMAGENET_NO_PROGRESS": "1"}
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(out.glob("*.tar")):
        assert time.monotonic() < deadline and first.poll() is None, "the first export never started"
        time.sleep(0.05)
    refused = subprocess.run([*command, "--no-wait"], env=env, capture_output=True, text=True)
    assert refused.returncode == 1
    [line] = refused.stderr.splitlines()
    assert line.startswith(f"imagenet: error: {out} is busy: PID {first.pid}, which is writing")
    second = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with open(victim, "wb") as pipe:  # let the first one go on: it reads the image through the pipe
        pipe.write(saved)
    assert first.stderr is not None and second.stderr is not None and second.stdout is not None
    assert first.wait(timeout=60) == 0, first.stderr.read()
    inodes = {p.name: p.stat().st_ino for p in out.glob("*.tar")}
    assert second.wait(timeout=60) == 0, second.stderr.read()
    assert "already complete" in second.stdout.read()
    assert {p.name: p.stat().st_ino for p in out.glob("*.tar")} == inodes, "the waiting one rewrote nothing"
    victim.unlink()
    victim.write_bytes(saved)
