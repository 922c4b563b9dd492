"""``imagenet download``."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from ..download import DownloadResult, download_sample
from .common import (
    DEFAULT_ROOT,
    DebugOption,
    JsonOption,
    QuietOption,
    RootOption,
    VerboseOption,
    comma_list,
    human_bytes,
    print_json,
    print_table,
    session,
)

EXAMPLES = """\
Examples:

\b
  imagenet download --source sample
  imagenet download --source sample --layout kaggle
  imagenet download --source sample --classes imagewoof --per-class 20 --seed 1
"""


class Source(str, Enum):
    sample = "sample"


class Layout(str, Enum):
    official = "official"
    kaggle = "kaggle"


def download(
    source: Annotated[
        Source,
        typer.Option(help="Where the archives come from. sample: a miniature ILSVRC-2012 generated offline."),
    ],
    layout: Annotated[
        Layout,
        typer.Option(help="sample: the official archives (train/val/test tars, devkit) or Kaggle's zip."),
    ] = Layout.official,
    classes: Annotated[
        str | None,
        typer.Option(
            help="sample: classes to include, comma-separated WNIDs, names or lists (imagenette, imagewoof, "
            "imagenet100). Default: Imagenette plus the classes of the known-bad files.",
            show_default=False,
            metavar="LIST",
        ),
    ] = None,
    per_class: Annotated[int, typer.Option(help="sample: train images per class (1–1300).", min=1, max=1300, metavar="N")] = 10,
    val_per_class: Annotated[int, typer.Option(help="sample: val images per class (0–50).", min=0, max=50, metavar="N")] = 5,
    test_images: Annotated[int, typer.Option(help="sample: unlabelled test images.", min=0, max=100_000, metavar="N")] = 10,
    seed: Annotated[int, typer.Option(help="sample: the same seed gives the same bytes.", metavar="N")] = 0,
    root: RootOption = DEFAULT_ROOT,
    json_output: JsonOption = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = False,
    debug: DebugOption = False,
) -> None:
    """Fetch the archives into ROOT/downloads/.

    Each archive appears under its final name only when complete, beside a record of its size and
    checksums (NAME.record.json) that `info` reads. A re-run keeps what is already there.
    """
    with session(quiet, verbose, debug) as ui:
        result = download_sample(
            root,
            layout=layout.value,
            classes=comma_list(classes),
            train_per_class=per_class,
            val_per_class=val_per_class,
            test_images=test_images,
            seed=seed,
            progress=ui.progress,
        )
        if json_output:
            print_json(result)
        else:
            _print_result(result)


def _print_result(result: DownloadResult) -> None:
    rows = [(f.name, human_bytes(f.bytes), f.md5, "kept" if f.skipped else "written") for f in result.files]
    print_table(("archive", "size", "md5", "status"), rows)
    typer.echo(f"\n{len(result.files)} archives in {result.downloads}")
