"""``imagenet export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..exports import ExportResult, export
from ..exports.formats import ExportFormat
from ..exports.webdataset import brace_pattern
from .common import FromTreeOption, NoWaitOption, Rendering, Session, comma_list, command, its_path

EXAMPLES = """\
Examples:

\b
  imagenet export webdataset                           ROOT/exports/webdataset-224/
  imagenet export webdataset --from ROOT/subsets/imagenette --shard-size 500
  imagenet export webdataset --max-shard-bytes 1000000000 --prefix in1k --seed 1 --out ROOT/exports/in1k
  imagenet export parquet                              ROOT/exports/parquet-224/data/*.parquet
  imagenet export downsampled --from ROOT/full --size 64 --workers 16   ROOT/exports/downsampled64-full/
"""


def _print_result(result: ExportResult) -> None:
    counts = ", ".join(f"{n:,} {split}" for split, n in result.samples.items())
    kept = len(result.shards) - result.written
    typer.echo(
        f"{result.path}: {len(result.shards)} {result.format} files, {counts} samples"
        + (f" ({kept} were already complete)" if kept else "")
    )
    if result.format == ExportFormat.webdataset:  # the names to hand to a reader, exactly as written
        for split in result.samples:
            typer.echo(f"  {split}: {brace_pattern([s.file for s in result.shards if s.split == split])}")


@command("export", Rendering(text=lambda result: _print_result(result), quiet=its_path))
def export_command(
    to: Annotated[ExportFormat, typer.Argument(help="The format to write.", show_default=False, metavar="FORMAT")],
    source: FromTreeOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="The export folder [default: ROOT/exports/<format>-<tree>].",
            file_okay=False,
            show_default=False,
            metavar="DIR",
        ),
    ] = None,
    splits: Annotated[str, typer.Option(help="Splits to export, comma-separated.", metavar="LIST")] = "train,val",
    seed: Annotated[int, typer.Option(help="The shuffle of train samples over shards.", metavar="N")] = 0,
    shard_size: Annotated[
        int | None,
        typer.Option(
            help="Samples per shard [default: webdataset 1,252 train and 782 validation, so the full splits make "
            "timm's 1,024 and 64 shards; parquet 5,000].",
            min=1,
            show_default=False,
            metavar="N",
        ),
    ] = None,
    max_shard_bytes: Annotated[
        int | None,
        typer.Option(
            help="Start a new shard before one would pass this many bytes (at least 64 KiB).",
            show_default=False,
            metavar="N",
        ),
    ] = None,
    prefix: Annotated[
        str | None,
        typer.Option(
            help="webdataset shard names: PREFIX-train-0000.tar, PREFIX-validation-00.tar [default: imagenet1k].",
            show_default=False,
            metavar="NAME",
        ),
    ] = None,
    size: Annotated[
        int | None,
        typer.Option(
            "--size",
            help="downsampled: the images' side in pixels, 8, 16, 32 or 64 [default: 32].",
            show_default=False,
            metavar="N",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="downsampled: decoding processes [default: all cores].", min=1, show_default=False, metavar="N"
        ),
    ] = None,
    no_wait: NoWaitOption = False,
    *,
    ui: Session,
) -> ExportResult:
    """Write a prepared tree or subset in a format people train from.

    webdataset: shards as timm's imagenet-1k-wds (KEY.jpg copied byte for byte, KEY.cls, KEY.json)
    and _info.json with the sample counts.

    parquet: data/train-00000-of-000NN.parquet with the features of Hugging Face's
    ILSVRC/imagenet-1k (image bytes unchanged, label) and a README.md dataset card, for
    datasets.load_dataset(DIR). Needs the parquet extra (pip install '.[parquet]' in the checkout).

    downsampled: Imagenet32/64 as published, train_data_batch_1..10.npz and val_data.npz (data,
    labels as devkit IDs 1..1000, mean), a box resize of full-size images: export from a tree made
    by prepare --size full. Needs the numpy extra (pip install '.[numpy]').

    Labels come from the tree's label tables. Files are written atomically and deterministically;
    a re-run keeps the finished ones.
    """
    return export(
        ui.root,
        to,
        source=source,
        out=out,
        splits=comma_list(splits, "--splits"),
        seed=seed,
        shard_size=shard_size,
        max_shard_bytes=max_shard_bytes,
        prefix=prefix,
        size=size,
        workers=workers,
        wait=not no_wait,
        progress=ui.progress,
    )
