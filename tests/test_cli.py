"""The real CLI: commands, output streams, the error table and exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagenet_cli.cli.errors import ERROR_TABLE, message_for, rule_for
from imagenet_cli.errors import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE, ImagenetError

from .conftest import default_stop_signals, imagenet
from .docs import command_names


def test_help_lists_every_command_with_a_summary() -> None:
    result = imagenet("--help")
    assert result.exit_code == 0
    assert command_names() == ["download", "verify", "prepare", "subset", "export", "show", "score", "info", "classes"]
    for name in command_names():
        line = next(line for line in result.output.splitlines() if line.startswith(f"  {name} "))
        assert len(line.split(None, 1)[1]) > 10 and not line.endswith("...")


@pytest.mark.parametrize(
    "name", ["download", "verify", "prepare", "subset", "export", "show", "score", "info", "classes"]
)
def test_every_command_help_has_examples(name: str) -> None:
    result = imagenet(name, "--help")
    assert result.exit_code == 0
    examples = result.output.split("Examples:", 1)[1]
    assert f"imagenet {name}" in examples
    for option in ("--root", "--quiet", "--verbose", "--debug"):
        if name != "classes" or option != "--root":
            assert option in result.output


def test_version() -> None:
    from imagenet_cli import __version__

    result = imagenet("--version")
    assert result.exit_code == 0 and result.stdout == f"imagenet {__version__}\n"


def test_no_arguments_shows_help() -> None:
    result = imagenet()
    assert "Usage: imagenet" in result.output


def test_startup_imports_no_heavy_library() -> None:
    code = (
        "import sys, imagenet_cli.cli.app\n"
        "print(sorted(m for m in ('PIL', 'httpx', 'kaggle', 'tqdm') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_python_dash_m_runs_the_same_program() -> None:
    completed = subprocess.run([sys.executable, "-m", "imagenet_cli", "classes", "0"], capture_output=True, text=True)
    assert completed.returncode == 0 and "n01440764" in completed.stdout


# --- classes ---------------------------------------------------------------------------------


def test_classes_finds_both_cranes() -> None:
    result = imagenet("classes", "crane")
    assert result.exit_code == 0
    assert "n02012849" in result.stdout and "n03126707" in result.stdout


@pytest.mark.parametrize(
    ("args", "wnid"),
    [
        (["n01440764"], "n01440764"),
        (["0"], "n01440764"),
        (["--devkit-id", "1"], "n02119789"),
        (["ILSVRC2012_val_00000001.JPEG"], "n01751748"),
    ],
)
def test_classes_json(args: list[str], wnid: str) -> None:
    result = imagenet("classes", *args, "--json")
    assert result.exit_code == 0
    [found] = json.loads(result.stdout)
    assert found["wnid"] == wnid
    assert set(found) == {"index", "wnid", "devkit_id", "short_name", "names"}


def test_classes_without_query_lists_all() -> None:
    result = imagenet("classes", "--json")
    assert len(json.loads(result.stdout)) == 1000


@pytest.mark.parametrize("form", ["synsets", "loc", "keras", "devkit"])
def test_classes_export_to_stdout_and_file(form: str, tmp_path: Path) -> None:
    to_stdout = imagenet("classes", "--export", form)
    assert to_stdout.exit_code == 0
    out = tmp_path / "labels.txt"
    to_file = imagenet("classes", "--export", form, "--out", str(out))
    assert to_file.exit_code == 0 and to_file.stdout == ""
    assert out.read_text() == to_stdout.stdout
    if form == "keras":
        assert json.loads(out.read_text())["0"] == ["n01440764", "tench"]
    else:
        assert len(out.read_text().splitlines()) == 1000


@pytest.mark.parametrize(
    "args",
    [
        ["classes", "--export", "loc", "tench"],
        ["classes", "--out", "x.txt"],
        ["classes", "tench", "--devkit-id", "3"],
        ["info", "--quiet", "--verbose"],
        ["download", "--source", "nowhere"],
        ["download", "--source", "kaggle", "--files", "ILSVRC2012_img_val.tar"],
        ["download", "--source", "official", "--per-class", "3"],
        ["download", "--source", "sample", "--dry-run"],
        ["download", "--source", "official", "--connections", "0"],
    ],
)
def test_usage_errors_exit_2(args: list[str], tmp_path: Path) -> None:
    result = imagenet(*args, "--root", str(tmp_path)) if args[0] != "classes" else imagenet(*args)
    assert result.exit_code == EXIT_USAGE
    assert "Traceback" not in result.output


# --- the error table ---------------------------------------------------------------------------


def test_unknown_class_is_one_line_with_a_hint() -> None:
    result = imagenet("classes", "n00000000")
    assert result.exit_code == EXIT_USAGE
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("imagenet: error: 'n00000000' is not one of the 1000") and " — try " in line


def test_debug_shows_the_traceback() -> None:
    result = imagenet("classes", "n00000000", "--debug")
    assert result.exit_code == EXIT_ERROR  # the exception escapes, as Python reports it
    assert isinstance(result.exception, ImagenetError)


def _subclasses(kind: type[ImagenetError]) -> Iterator[type[ImagenetError]]:
    for sub in kind.__subclasses__():
        yield sub
        yield from _subclasses(sub)


@pytest.mark.parametrize("kind", [ImagenetError, *_subclasses(ImagenetError)])
def test_every_library_error_has_its_own_row(kind: type[ImagenetError]) -> None:
    rule = rule_for(kind("something happened"))
    assert rule.error is kind, f"{kind.__name__} falls through to {rule.error.__name__}"
    line = message_for(kind("something happened"))
    assert "\n" not in line and line.startswith("imagenet: error: something happened — try ")


def test_os_errors_and_bugs_are_one_line_too() -> None:
    import errno

    assert "freeing disk space" in message_for(OSError(errno.ENOSPC, "No space left on device"))
    assert "permissions" in message_for(PermissionError(13, "Permission denied"))
    assert "this is a bug" in message_for(ZeroDivisionError("division by zero"))
    assert rule_for(KeyboardInterrupt()).exit_code == EXIT_INTERRUPTED
    assert len({rule.error for rule in ERROR_TABLE if rule.errno is None}) == len(
        [r for r in ERROR_TABLE if r.errno is None]
    )


def test_overwrite_refusal_through_the_cli(tmp_path: Path) -> None:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "ILSVRC2012_img_train.tar").write_bytes(b"real data")
    result = imagenet("download", "--source", "sample", "--root", str(tmp_path), "--classes", "tench")
    assert result.exit_code == EXIT_ERROR
    assert "is not a sample this tool generated" in result.stderr and "Traceback" not in result.output
    assert (downloads / "ILSVRC2012_img_train.tar").read_bytes() == b"real data"


def test_bad_class_for_the_sample_is_a_usage_error(tmp_path: Path) -> None:
    result = imagenet("download", "--source", "sample", "--root", str(tmp_path), "--classes", "crane")
    assert result.exit_code == EXIT_USAGE
    assert "matches 2 classes" in result.stderr


# --- download and info -------------------------------------------------------------------------


def test_info_on_a_missing_root_is_friendly(tmp_path: Path) -> None:
    result = imagenet("info", "--root", str(tmp_path / "nothing"))
    assert result.exit_code == 0
    assert "nothing here yet; start with `imagenet download`" in result.stdout


def test_root_from_the_environment(tmp_path: Path) -> None:
    result = imagenet("info", "--json", env={"IMAGENET_ROOT": str(tmp_path)})
    assert json.loads(result.stdout)["root"] == str(tmp_path)


def test_download_sample_then_info(tmp_path: Path) -> None:
    args = ["--source", "sample", "--root", str(tmp_path), "--classes", "imagenette", "--per-class", "2"]
    result = imagenet("download", *args, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["source"] == "sample"
    assert [f["name"] for f in summary["files"]] == [
        "ILSVRC2012_img_train.tar",
        "ILSVRC2012_img_val.tar",
        "ILSVRC2012_img_test_v10102019.tar",
        "ILSVRC2012_devkit_t12.tar.gz",
    ]
    again = imagenet("download", *args)
    assert again.exit_code == 0 and again.stdout.count("kept") == 4

    info = json.loads(imagenet("info", "--root", str(tmp_path), "--json").stdout)
    assert [a["record"] for a in info["archives"]] == ["ok"] * 4
    assert info["next_step"] == "prepare"
    text = imagenet("info", "--root", str(tmp_path))
    assert "ILSVRC2012_img_train.tar" in text.stdout and "recorded" in text.stdout

    (tmp_path / "downloads" / "ILSVRC2012_img_val.tar").write_bytes(b"changed")
    info = json.loads(imagenet("info", "--root", str(tmp_path), "--json").stdout)
    assert {a["name"]: a["record"] for a in info["archives"]}["ILSVRC2012_img_val.tar"] == "stale"


def test_info_counts_a_prepared_tree(tmp_path: Path) -> None:
    for split, count in (("train", 3), ("val", 2)):
        folder = tmp_path / "224" / split / "n01440764"
        folder.mkdir(parents=True)
        for i in range(count):
            (folder / f"{i}.JPEG").write_bytes(b"x" * 10)
    info = json.loads(imagenet("info", "--root", str(tmp_path), "--json").stdout)
    [tree] = info["trees"]
    assert (tree["name"], tree["images"], tree["bytes"]) == ("224", 5, 50)
    assert tree["splits"]["train"] == {"classes": 1, "images": 3, "bytes": 30}
    assert info["next_step"] == "subset"


def test_ctrl_c_exits_130_and_leaves_no_partial_archive(tmp_path: Path) -> None:
    env = {**os.environ, "IMAGENET_NO_PROGRESS": "1"}
    command = [
        sys.executable,
        "-m",
        "imagenet_cli",
        "download",
        "--source",
        "sample",
        "--root",
        str(tmp_path),
        "--per-class",
        "300",
        "--classes",
        "imagenette",
    ]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_stop_signals
    )
    downloads = tmp_path / "downloads"
    deadline = time.monotonic() + 60
    while not (downloads.is_dir() and any(downloads.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == EXIT_INTERRUPTED, stderr
    assert stderr.strip().startswith("imagenet: interrupted — try the same command again")
    assert "Traceback" not in stderr
    left = [p.name for p in downloads.iterdir() if not p.name.endswith(".lock")]  # locks stay, unheld
    assert left == [], "no temporary or half-written file is left"


def test_verbose_says_more_on_stderr_and_quiet_says_nothing(tmp_path: Path) -> None:
    args = [
        "download",
        "--source",
        "sample",
        "--root",
        str(tmp_path),
        "--classes",
        "tench",
        "--per-class",
        "1",
        "--val-per-class",
        "1",
        "--test-images",
        "0",
    ]
    first = imagenet(*args, "-v")
    assert first.exit_code == 0 and "imagenet: generating the sample (official layout, 1 classes)" in first.stderr
    again = imagenet(*args, "-v")
    assert "was generated with these options already: keeping it" in again.stderr
    assert "archive" in again.stdout, "results stay on stdout"
    quiet = imagenet(*args, "-q")
    assert quiet.stderr == ""


def imagenet_process(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imagenet_cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "IMAGENET_NO_PROGRESS": "1"},
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["prepare", "--size"], "Option '--size' requires an argument."),
        (["subset", "--per-class", "x"], "Invalid value for '--per-class'"),
        (["prepare", "--bogus"], "No such option: --bogus"),
    ],
)
def test_usage_errors_are_one_line_naming_the_command(args: list[str], message: str) -> None:
    completed = imagenet_process(*args)
    assert completed.returncode == EXIT_USAGE
    [line] = completed.stderr.splitlines()
    assert line.startswith(f"imagenet: error: {message}") and line.endswith(f"— try `imagenet {args[0]} --help`")


def test_a_library_usage_error_names_the_command_in_its_hint(tmp_path: Path) -> None:
    result = imagenet("prepare", "--root", str(tmp_path), "--size", "huge")
    assert result.exit_code == EXIT_USAGE and "— try `imagenet prepare --help`" in result.stderr


def test_a_closed_stdout_ends_the_command_quietly() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "imagenet_cli", "classes", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # as `| head` does once it has its lines
    stderr = process.stderr.read()
    process.wait(timeout=30)
    assert stderr == "" and process.returncode == 1  # as Typer ends on EPIPE: quietly, exit 1


def test_verify_and_info_take_a_data_root_as_the_root(official_root: Path) -> None:
    verified = imagenet("verify", str(official_root))
    assert verified.exit_code == 0, verified.output
    assert "no split folder" not in verified.output and "4 checked" in verified.stdout
    described = imagenet("info", str(official_root), "--json")
    assert described.exit_code == 0 and len(json.loads(described.stdout)["archives"]) == 4


def test_problems_of_one_cause_are_one_line_and_json_keeps_each(tmp_path: Path) -> None:
    from imagenet_cli.download import download_sample
    from imagenet_cli.records import record_path

    download_sample(tmp_path, classes=["n01440764", "n01443537"], train_per_class=2, val_per_class=1, test_images=1)
    train = tmp_path / "downloads" / "ILSVRC2012_img_train.tar"
    record_path(train).unlink()  # now it is held to the real ILSVRC-2012: 998 class tars missing
    result = imagenet("verify", "--root", str(tmp_path), str(train))
    assert result.exit_code == 3
    lines = [line for line in result.stdout.splitlines() if "missing" in line]
    assert len(lines) == 1 and "998 × missing: class tar missing: n01484850.tar" in lines[0]
    report = json.loads(imagenet("verify", "--root", str(tmp_path), str(train), "--json").stdout)
    assert sum(p["kind"] == "missing" for p in report["checks"][0]["problems"]) == 998


@pytest.mark.parametrize(
    "args",
    [
        ["prepare", "--splits", ""],
        ["download", "--source", "official", "--files", ",", "--dry-run"],
        ["download", "--source", "sample", "--classes", ""],
        ["subset", "--classes", ""],
    ],
)
def test_lists_that_name_nothing_are_usage_errors(args: list[str], tmp_path: Path) -> None:
    completed = imagenet_process(*args, "--root", str(tmp_path))
    assert completed.returncode == EXIT_USAGE, completed.stderr
    [line] = completed.stderr.splitlines()
    assert "names no" in line or "names nothing" in line


def test_the_sample_reads_a_class_count_as_subset_does(tmp_path: Path) -> None:
    from imagenet_cli import catalogue
    from imagenet_cli.download import download_sample
    from imagenet_cli.selection import choose

    result = download_sample(tmp_path, classes=["5"], seed=4, train_per_class=1, val_per_class=1, test_images=0)
    details = json.loads((tmp_path / "downloads" / "ILSVRC2012_img_train.tar.record.json").read_text())["details"]
    assert details["classes"] == sorted(choose(catalogue.wnids(), 4, 5)) and len(result.files) == 4


def test_classes_export_never_replaces_a_file_without_force(tmp_path: Path) -> None:
    out = tmp_path / "mine.txt"
    out.write_text("my notes")
    refused = imagenet("classes", "--export", "synsets", "--out", str(out))
    assert refused.exit_code == 1 and out.read_text() == "my notes" and "--force" in refused.stderr
    assert imagenet("classes", "--export", "synsets", "--out", str(out), "--force").exit_code == 0
    assert len(out.read_text().splitlines()) == 1000


def test_info_suggests_a_command_that_works_on_the_root(official_root: Path, tmp_path: Path) -> None:
    import shlex
    import shutil

    shutil.copytree(official_root / "downloads", tmp_path / "downloads")
    assert imagenet("prepare", "--root", str(tmp_path), "--size", "32").exit_code == 0
    suggested = json.loads(imagenet("info", "--root", str(tmp_path), "--json").stdout)["next_command"]
    assert suggested == "imagenet subset --classes 6", "the sample has 13 classes, not 100"
    result = imagenet(*shlex.split(suggested)[1:], "--root", str(tmp_path))
    assert result.exit_code == 0, result.output


def test_info_of_an_extracted_kaggle_tree_suggests_the_prepare_that_reads_it(kaggle_root: Path, tmp_path: Path) -> None:
    import shlex
    import zipfile

    from imagenet_cli import archives

    with zipfile.ZipFile(kaggle_root / "downloads" / archives.KAGGLE_ZIP) as bundle:
        bundle.extractall(tmp_path / "data")
    state = json.loads(imagenet("info", "--root", str(tmp_path / "data" / "ILSVRC"), "--json").stdout)
    assert state["input_folder"] == "kaggle-tree" and state["next_step"] == "prepare"
    command = shlex.split(state["next_command"].split("  (", 1)[0])
    assert command[1:] == ["prepare", "--from", str(tmp_path / "data" / "ILSVRC"), "--size", "224"]
    ran = imagenet(*command[1:], "--root", str(tmp_path / "root"))
    assert ran.exit_code == 0, ran.output


def test_quiet_prints_only_the_result_paths_and_verbose_tells_what_was_read(
    official_root: Path, tmp_path: Path
) -> None:
    import shutil

    shutil.copytree(official_root / "downloads", tmp_path / "downloads")
    quiet = imagenet_process("prepare", "-q", "--size", "32", "--root", str(tmp_path))
    assert quiet.returncode == 0 and quiet.stdout == f"{tmp_path / '32'}\n" and quiet.stderr == ""
    verbose = imagenet_process("prepare", "-v", "--size", "32", "--root", str(tmp_path))
    assert (
        "reading the official archives; val labels from the shipped table (checked against the devkit's ground truth)"
        in verbose.stderr
    )
    assert "26 shards: 0 to make, 26 already done (skipped)" in verbose.stderr
    subset = imagenet_process("subset", "-q", "--classes", "3", "--root", str(tmp_path))
    assert subset.stdout == f"{tmp_path / 'subsets' / 'classes3-seed0'}\n"
    listed = imagenet_process("info", "-q", "--root", str(tmp_path)).stdout.splitlines()
    assert listed == [str(tmp_path / "32"), str(tmp_path / "subsets" / "classes3-seed0")]


@pytest.mark.parametrize(
    "text",
    [
        "400 Client Error: Bad Request for url: https://storage.googleapis.com/kaggle/imagenet.zip?X-Goog-Signature=SECRET&X-Goog-Credential=SECRET",
        "https://mirror.example/ILSVRC2012_img_val.tar?token=SECRET#frag answered HTTP 500",
    ],
)
def test_no_message_prints_a_query_string(text: str) -> None:
    """A signed URL's query is a credential: whatever error carries one, the line shows none."""
    from imagenet_cli.errors import DownloadError

    line = message_for(DownloadError(text), "download")
    assert "SECRET" not in line and "?" not in line
    assert "https://" in line and ("imagenet.zip" in line or "ILSVRC2012_img_val.tar" in line)


@pytest.mark.parametrize("order", ["api first", "modules first"])
def test_every_module_imports_and_the_api_stays_functions_in_any_order(order: str) -> None:
    """The stages are packages named by nouns (trees, checks, exports, subsets): no submodule is
    named like a function of the API, so importing them never hides one, in either order."""
    program = (
        "import importlib, pkgutil, types\n"
        "import imagenet_cli as inet\n"
        "def api():\n"
        "    return {n: getattr(inet, n) for n in inet.__all__}\n"
        "def modules():\n"
        "    for info in pkgutil.walk_packages(inet.__path__, 'imagenet_cli.'):\n"
        "        if info.name != 'imagenet_cli.__main__':\n"
        "            importlib.import_module(info.name)\n"
        f"first, second = (api, modules) if {order!r} == 'api first' else (modules, api)\n"
        "first(); second()\n"
        "for name, value in api().items():\n"
        "    if name != 'catalogue':\n"
        "        assert not isinstance(value, types.ModuleType), name\n"
        "assert all(callable(getattr(inet, n)) for n in ('prepare', 'verify', 'subset', 'export', 'download_sample'))\n"
        "from imagenet_cli import prepare, verify\n"
        "assert inet.prepare is prepare and callable(verify)\n"
    )
    completed = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr


def test_with_both_layouts_in_downloads_prepare_says_which_it_reads(
    official_root: Path, kaggle_root: Path, tmp_path: Path
) -> None:
    import shutil

    for source in (official_root, kaggle_root):
        shutil.copytree(source / "downloads", tmp_path / "downloads", dirs_exist_ok=True)
    result = imagenet("prepare", "--root", str(tmp_path), "--size", "64", "--splits", "val")
    assert result.exit_code == 0, result.output
    assert "preparing from the official archives; the zip is not read" in result.stderr


@pytest.mark.parametrize("level", ["64/val", "exports"])
def test_verify_of_the_wrong_level_is_a_usage_error(official_root: Path, tmp_path: Path, level: str) -> None:
    import shutil

    from imagenet_cli.exports import export
    from imagenet_cli.trees import prepare

    shutil.copytree(official_root / "downloads", tmp_path / "downloads")
    prepare(tmp_path, ["64"], splits=["val"])
    export(tmp_path, splits=["val"])
    result = imagenet("verify", "--root", str(tmp_path), str(tmp_path / level))
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    expected = "the val split of the tree" if level == "64/val" else "holds exports: verify one of them"
    assert expected in line and "— try" in line


def test_a_refused_overwrite_names_the_option_that_picks_another_place(tmp_path: Path) -> None:
    first = imagenet("classes", "--export", "keras", "--out", str(tmp_path / "index.json"))
    assert first.exit_code == 0
    again = imagenet("classes", "--export", "keras", "--out", str(tmp_path / "index.json"))
    assert again.exit_code == 1
    assert again.stderr.strip().endswith("— try --force to replace it, or another --out")


def test_an_unreachable_scheduler_is_not_blamed_on_the_workers(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    command = [sys.executable, "-m", "imagenet_cli", "prepare", "--root", str(tmp_path), "--dask", "tcp://127.0.0.1:9"]
    quick = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "1s"}  # Dask's own setting
    result = subprocess.run(command, capture_output=True, text=True, env=quick)
    assert result.returncode == 1, result.stderr
    assert "cannot reach the Dask scheduler" in result.stderr and "scheduler runs at that address" in result.stderr
    assert "version" not in result.stderr.split("— try", 1)[1]


def test_bare_imagenet_prints_its_help_not_an_error() -> None:
    import subprocess
    import sys

    completed = subprocess.run([sys.executable, "-m", "imagenet_cli"], capture_output=True, text=True)
    assert completed.returncode == 0 and completed.stdout.startswith("Usage: imagenet") and completed.stderr == ""


def test_info_says_a_full_tree_holds_originals_and_counts_read_as_english(official_root: Path, tmp_path: Path) -> None:
    import shutil

    from imagenet_cli.cli.common import plural
    from imagenet_cli.trees import prepare

    shutil.copytree(official_root / "downloads", tmp_path / "downloads")
    prepare(tmp_path, ["full"], splits=["val"])
    result = imagenet("info", "--root", str(tmp_path))
    assert "originals as published; repaired files as jpeg q95" in result.stdout and "shorter full" not in result.stdout
    assert [plural(n, w) for n, w in ((1, "archive"), (4, "archive"), (1, "class"), (13, "class"))] == [
        "1 archive",
        "4 archives",
        "1 class",
        "13 classes",
    ]


def test_a_library_message_names_parameters_and_the_cli_spells_them_as_options() -> None:
    from imagenet_cli.errors import InvalidArgumentError, MissingInputError

    choice = InvalidArgumentError("choose one of {per_class}, {fraction} and {images}")
    assert str(choice) == "choose one of per_class, fraction and images"
    assert message_for(choice, "subset").startswith(
        "imagenet: error: choose one of --per-class, --fraction and --images"
    )
    named = MissingInputError("no tree here; name one with {source}")
    assert str(named) == "no tree here; name one with source"
    assert "name one with --from — try" in message_for(named, "export")
    shards = "shards {0000..0099} and {}"  # brace patterns and empty braces are not parameters
    assert str(ImagenetError(shards)) == shards
