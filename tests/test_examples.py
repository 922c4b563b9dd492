"""Every documented command line runs: each command's ``Examples:`` and each shell line of the README.

They run in the order the docs give them, through the real program (a subprocess), in a scratch
folder whose ``./imagenet`` is the default root, on the built-in sample. A line is changed only
where it cannot run here, and each change is in the table below:

- a line that downloads from image-net.org or a mirror goes to a server on 127.0.0.1 that serves
  the sample's archives (``IMAGENET_BASE_URL``, or in place of the example's mirror host);
- ``s3://bucket/…`` is a bucket of an S3 API on 127.0.0.1 (moto's server), named to every line by
  ``AWS_ENDPOINT_URL`` and test keys, as a user's environment names theirs, and the README's own
  store's endpoint is that server's;
- a line that needs Kaggle or Hugging Face credentials, an evaluation set's publisher or a running
  cluster runs with ``--help``; a local cluster (``--dask local:8``) has this machine's two workers;
- example paths (``ROOT``, ``/data/ILSVRC``, ``/scratch``) become folders of the scratch root;
- a subset asking for more images than the sample has (260 per class, the 1% list) runs with
  ``--allow-short``, the option its message names.

Before the first ``prepare``, the sample is widened to 110 classes (two train images each), so that
the examples that draw 100 classes have them.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from imagenet_cli import archives, catalogue, evalsets, manifest, sample

from . import docs
from .buckets import S3Server
from .servers import FileServer

pytestmark = pytest.mark.slow

# Lines that cannot run here as written: they need credentials or a cluster we do not have.
NEEDS_HELP = (
    re.compile(r"^imagenet download\s*$"),  # the Kaggle bundle: Kaggle credentials
    re.compile(r"^imagenet download --source hf"),  # the hub: a token, and the dataset's terms accepted
    re.compile(r"^imagenet download --dataset"),  # an evaluation set's publisher: the internet
    re.compile(r"--dask (tcp://|auto)"),  # a running scheduler
)
MIRROR = "https://mirror.example.org/imagenet/"
# More images than the sample has: what the full dataset gives, accepted short here.
NEEDS_FULL_COUNTS = re.compile(r"^imagenet subset .*(--per-class \d{3}|--images )")
# Shell lines of the README that are not `imagenet` commands: installing, testing, linting and
# benchmarking the project. CI runs the Quickstart's; the others are for developers by hand.
NOT_COMMANDS = ("pip install", "python3 -m venv", "ruff ", "python tests/", "python -m pytest")


# The order a user runs the commands in: each needs what the ones before it made.
PIPELINE = ("download", "prepare", "verify", "subset", "export", "show", "score", "info", "classes")


def example_lines() -> list[tuple[str, str]]:
    """(where, line) of every ``imagenet`` line the help texts and the README show, in order;
    a line shown in both places runs once."""
    assert sorted(PIPELINE) == sorted(docs.command_names()), "a new command: place it in PIPELINE"
    lines = []
    for name in PIPELINE:
        epilog = docs._run([name, "--help"]).split("Examples:", 1)
        for line in epilog[1].splitlines() if len(epilog) > 1 else []:
            if line.strip().startswith("imagenet "):
                lines.append((f"imagenet {name} --help", re.split(r"\s{2,}", line.strip())[0]))
    for line in readme_shell_lines():
        if line.startswith("imagenet "):
            lines.append(("README.md", line.split("#", 1)[0].strip()))
    first: dict[str, str] = {}
    for where, line in lines:
        first.setdefault(line, where)  # a line in several places runs once
    return [(where, line) for line, where in first.items()]


LOOP = re.compile(r"for (\w+) in ([^;]+); do (imagenet [^;]+); done")


def readme_shell_lines() -> list[str]:
    """Every line of the README's sh blocks; a ``for x in …; do imagenet …; done`` loop as the
    commands it runs, in order."""
    text = docs.README.read_text()
    blocks = re.findall(r"```sh\n(.*?)```", text, re.DOTALL)
    lines = []
    for line in (line.strip() for block in blocks for line in block.splitlines() if line.strip()):
        loop = LOOP.fullmatch(line)
        values = loop.group(2).split() if loop else []
        lines += [loop.group(3).replace(f"${loop.group(1)}", value) for value in values] if loop else [line]
    return lines


def test_every_readme_shell_line_is_a_command_or_a_known_developer_line() -> None:
    for line in readme_shell_lines():
        assert line.startswith("imagenet ") or line.startswith(NOT_COMMANDS), (
            f"a README shell line nothing runs: {line}"
        )


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder whose ./imagenet holds the sample, an extracted Kaggle tree beside it, and the
    files the examples name (cookies.txt, MD5SUMS; the score examples' predictions are written
    once the tree they predict exists)."""
    folder = tmp_path_factory.mktemp("examples")
    run_line(folder, "imagenet download --source sample")
    kaggle = tmp_path_factory.mktemp("kaggle")
    run_line(kaggle, f"{WIDER_SAMPLE} --layout kaggle")  # the same classes as the root's, once widened
    with zipfile.ZipFile(kaggle / "imagenet" / "downloads" / archives.KAGGLE_ZIP) as bundle:
        bundle.extractall(folder / "data")
    (folder / "cookies.txt").write_text("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\tabc\n")
    write_md5sums(folder)
    return folder


def write_md5sums(folder: Path) -> None:
    """``MD5SUMS`` of the root's official archives, as a mirror publishes its own."""
    downloads = folder / "imagenet" / "downloads"
    (folder / "MD5SUMS").write_text(
        "".join(f"{hashlib.md5((downloads / n).read_bytes()).hexdigest()}  {n}\n" for n in sample.OFFICIAL_FILES)
    )


PREDICTIONS = "predictions.csv"


def write_predictions(tree: Path) -> None:
    """The files the score examples name, beside the root: a model that is always right, as a
    CSV of each val image's five best classes and as logits in the manifest's order."""
    import numpy

    val = [catalogue.by_wnid(e.wnid).index for e in manifest.read_manifest(tree) if e.split == "val"]
    paths = [e.path for e in manifest.read_manifest(tree) if e.split == "val"]
    rows = [
        f"{p},{label},{(label + 1) % 1000},{(label + 2) % 1000},{(label + 3) % 1000},{(label + 4) % 1000}"
        for p, label in zip(paths, val, strict=True)
    ]
    (tree.parent.parent / PREDICTIONS).write_text("path,1,2,3,4,5\n" + "\n".join(rows) + "\n")
    logits = numpy.zeros((len(val), 1000), dtype=numpy.float32)
    logits[numpy.arange(len(val)), val] = 1.0
    numpy.save(tree.parent.parent / "logits.npy", logits)


def wider_sample() -> str:
    """The sample's own classes, goldfish and shark, and more up to 110 in sorted order."""
    chosen = dict.fromkeys([*sample.default_classes(), "n01443537", *catalogue.wnids()])
    return ",".join(list(chosen)[:110])


WIDER_SAMPLE = f"imagenet download --source sample --classes {wider_sample()} --per-class 2 --val-per-class 1"


STORE = "https://minio.lan:9000"  # the README's S3-compatible store


def runnable(line: str, folder: Path, mirror: str, store: str) -> str:
    """The line as it runs here (see the module docstring)."""
    if any(pattern.search(line) for pattern in NEEDS_HELP):
        return f"{line} --help"
    if NEEDS_FULL_COUNTS.search(line):
        line += " --allow-short"
    line = (
        line.replace(MIRROR, mirror)
        .replace(STORE, store)
        .replace("/data/imagenet", "imagenet")
        .replace("/data/ILSVRC", str(folder / "data" / "ILSVRC"))
    )
    line = line.replace("/scratch/", f"{folder}/scratch/")
    line = re.sub(r"--dask local:\d+", "--dask local:2", line)  # a cluster as large as this machine
    return re.sub(r"\bROOT\b", "imagenet", line)


BUCKET_EXPORT = "imagenet export webdataset --size 224 --out s3://bucket/imagenet-wds"


def _make_ready(line: str, scratch: Path, **env: str) -> None:
    """What a prepare or score line of an evaluation set takes for granted: the set downloaded
    (from its publisher in the docs; its miniature here), prepared at 224 for score, and the
    logits file it names, of a model that is always right, one row per image it scores. A line
    that reads the bucket's export (``verify``, documented before ``export``) finds it made, and
    one that reads archives from the bucket finds the root's there."""
    if "s3://bucket/imagenet-wds" in line and not line.startswith("imagenet export"):
        assert run_line(scratch, BUCKET_EXPORT, **env).returncode == 0
    if "--from s3://bucket/ilsvrc" in line:  # the archives, as a user keeps them in a bucket
        upload = S3Server.uploader(env)
        for name in sample.OFFICIAL_FILES:
            upload(scratch / "imagenet" / "downloads" / name, "bucket", f"ilsvrc/{name}")
    named = re.search(r"--dataset (imagenet-[\w.-]+)", line)
    if not named or not line.startswith(("imagenet prepare", "imagenet score")):
        return
    name, root = named.group(1), scratch / "imagenet"
    if not (root / "downloads" / name).is_dir():
        assert run_line(scratch, f"imagenet download --source sample --dataset {name}").returncode == 0
    if not line.startswith("imagenet score") or name not in evalsets.image_sets():
        return
    if not (root / "224" / name).is_dir():
        assert run_line(scratch, f"imagenet prepare --size 224 --dataset {name}").returncode == 0
    logits = scratch / line.split()[2]
    if not logits.exists():
        import numpy

        splits = (name, "val") if name == "imagenet-o" else (name,)
        rows = [e for e in manifest.read_manifest(root / "224") if e.split in splits]
        scores = numpy.zeros((len(rows), 1000), dtype=numpy.float32)
        for number, entry in enumerate(rows):
            if catalogue.is_wnid(entry.wnid):
                scores[number, catalogue.by_wnid(entry.wnid).index] = 1.0
        numpy.save(logits, scores)


def run_line(folder: Path, line: str, **env: str) -> subprocess.CompletedProcess[str]:
    words = shlex.split(line)
    assert words[0] == "imagenet"
    environment = {**os.environ, "IMAGENET_NO_PROGRESS": "1", **env}
    environment.pop("IMAGENET_ROOT", None)
    return subprocess.run(
        [sys.executable, "-m", "imagenet_cli", *words[1:]],
        cwd=folder,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_every_example_runs_in_order(scratch: Path) -> None:
    downloads = scratch / "imagenet" / "downloads"
    served = {name: (downloads / name).read_bytes() for name in sample.OFFICIAL_FILES}
    failed = []
    widened = False
    with FileServer(served) as mirror, S3Server() as s3:
        s3.bucket("bucket")  # the examples' bucket, on an S3 API of 127.0.0.1 (AWS_ENDPOINT_URL)
        for where, line in example_lines():
            if line.startswith("imagenet prepare") and not widened:
                assert run_line(scratch, WIDER_SAMPLE).returncode == 0
                write_md5sums(scratch)
                widened = True
            _make_ready(line, scratch, **s3.env)
            if line.startswith("imagenet score") and not (scratch / PREDICTIONS).exists():
                write_predictions(scratch / "imagenet" / "224")
            command = runnable(line, scratch, mirror.base_url, s3.endpoint)
            # Downloads from the local mirror: the sample is not the published ImageNet, so its own sums apply.
            if command.startswith("imagenet download --source official") and "--help" not in command:
                command += f" --checksums {scratch / 'MD5SUMS'}"
            completed = run_line(scratch, command, IMAGENET_BASE_URL=mirror.base_url, **s3.env)
            if completed.returncode != 0 or "Traceback" in completed.stderr:
                failed.append(
                    f"{where}: {line}\n  ran: {command}\n"
                    f"  exit {completed.returncode}: {completed.stderr.strip()[-400:]}"
                )
    assert not failed, "\n".join(failed)
