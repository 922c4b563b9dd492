"""``imagenet export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..exports import ExportResult, export
from ..exports.formats import ExportFormat
from ..exports.webdataset import brace_pattern
from ..storage import local_or_url, parse_options
from ..trees.resize import Filter, ImageFormat, Mode
from .common import NoWaitOption, Rendering, Session, StorageOptions, comma_list, command

EXAMPLES = """\
Examples:

\b
  imagenet export webdataset                           ROOT/exports/webdataset-224/
  imagenet export webdataset --size 224                from ROOT/downloads/: no tree written
  imagenet export webdataset --size 160 --resize center-crop --quality 95 --dask local:2
  imagenet export webdataset --from ROOT/subsets/imagenette --shard-size 500
  imagenet export webdataset --max-shard-bytes 1000000000 --prefix in1k --seed 1 --out ROOT/exports/in1k
  imagenet export parquet                              ROOT/exports/parquet-224/data/*.parquet
  imagenet export parquet --size 224                   from the archives, as the Hub's layout
  imagenet export downsampled --size 32                Imagenet32 from the archives, no full-size tree
  imagenet export downsampled --from ROOT/full --size 64 --workers 16   ROOT/exports/downsampled64-full/
  imagenet export webdataset --size 224 --out s3://bucket/imagenet-wds   shards uploaded whole, one by one
  imagenet export parquet --size 224 --from s3://bucket/ilsvrc --out s3://bucket/imagenet-hf-224
"""


def _print_result(result: ExportResult) -> None:
    counts = ", ".join(f"{n:,} {split}" for split, n in result.samples.items())
    kept = len(result.shards) - result.written
    typer.echo(
        f"{result.where}: {len(result.shards)} {result.format} files, {counts} samples"
        + (f" ({kept} were already complete)" if kept else "")
    )
    if result.format == ExportFormat.webdataset:  # the names to hand to a reader, exactly as written
        for split in result.samples:
            typer.echo(f"  {split}: {brace_pattern([s.file for s in result.shards if s.split == split])}")
    for failure in result.failures[:50]:
        typer.echo(f"  failed: {failure.where}: {failure.error}")
    if result.failures:
        typer.echo(f"{len(result.failures):,} images could not be used (export.json names each)")


@command(
    "export",
    Rendering(
        text=lambda result: _print_result(result),
        quiet=lambda result: [result.where],
        problems=lambda result: bool(result.failures),
    ),
)
def export_command(
    to: Annotated[ExportFormat, typer.Argument(help="The format to write.", show_default=False, metavar="FORMAT")],
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="A prepared tree or subset to copy, an extracted Kaggle ILSVRC/ tree to make images from, or "
            "the URL of a bucket's folder holding the official archives (s3://bucket/ilsvrc) "
            "[default: the archives in ROOT/downloads/ when an image option is given or no tree is prepared, "
            "else the prepared tree].",
            show_default=False,
            metavar="PATH|URL",
        ),
    ] = None,
    out: Annotated[
        str | None,
        typer.Option(
            help="The export folder, or a URL of S3 or an S3-compatible store (s3://bucket/prefix; needs the s3 "
            "extra) [default: ROOT/exports/<format>-<tree>].",
            show_default=False,
            metavar="DIR|URL",
        ),
    ] = None,
    storage_options: StorageOptions = None,
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
        str | None,
        typer.Option(
            "--size",
            help="The images' size in pixels. downsampled: 8, 16, 32 or 64 [default: 32]; webdataset and parquet "
            "from the archives: N or full, as prepare makes them [default: 224].",
            show_default=False,
            metavar="N",
        ),
    ] = None,
    resize: Annotated[
        Mode | None,
        typer.Option(help="From the archives: how images fit N pixels, as prepare --resize.", show_default=False),
    ] = None,
    no_upscale: Annotated[
        bool, typer.Option("--no-upscale", help="From the archives: leave images smaller than N as they are.")
    ] = False,
    quality: Annotated[
        int | None,
        typer.Option(
            help="From the archives: JPEG/WebP quality [default: 90].", min=1, max=100, show_default=False, metavar="Q"
        ),
    ] = None,
    image_format: Annotated[
        ImageFormat | None,
        typer.Option("--format", help="From the archives: the images' format [default: jpeg].", show_default=False),
    ] = None,
    resampling: Annotated[
        Filter | None,
        typer.Option("--filter", help="From the archives: as prepare --filter [default: fast].", show_default=False),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help=(
                "Processes that write a tree's shards, or decode images (from the archives, or for "
                "downsampled) [default: all cores]."
            ),
            min=1,
            show_default=False,
            metavar="N",
        ),
    ] = None,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            help="From the archives: make the images on a Dask cluster, as prepare --dask. Needs the dask extra.",
            show_default=False,
            metavar="ADDRESS",
        ),
    ] = None,
    trust_input_labels: Annotated[
        bool,
        typer.Option(
            "--trust-input-labels", help="From the archives: sort val by the inputs' labels, as prepare does with it."
        ),
    ] = False,
    no_wait: NoWaitOption = False,
    *,
    ui: Session,
) -> ExportResult:
    """Training shards, straight from the archives or from a tree.

    From the archives (ROOT/downloads/, or --from an extracted Kaggle tree), the images are made as
    prepare makes them (the same --size, --resize, --quality, --format, --filter and repairs) and
    go straight into the shards: no tree is written, and each image is written once, in its
    shard. Images that cannot be used are named (exit 3). A re-run keeps what is done; changed
    archives make it again. From a prepared tree or subset (--from TREE), its files are copied.

    webdataset: shards as timm's imagenet-1k-wds (KEY.jpg copied byte for byte, KEY.cls, KEY.json)
    and _info.json with the sample counts.

    parquet: data/train-00000-of-000NN.parquet with the features of Hugging Face's
    ILSVRC/imagenet-1k (image bytes unchanged, label) and a README.md dataset card, for
    datasets.load_dataset(DIR). Needs the parquet extra (pip install '.[parquet]' in the checkout).

    downsampled: Imagenet32/64 as published, train_data_batch_1..10.npz and val_data.npz (data,
    labels as devkit IDs 1..1000, mean), a box resize of each full-size image: from the archives, or
    from a tree made by prepare --size full. Needs the numpy extra (pip install '.[numpy]').

    Train samples are in a seeded shuffle across all classes. Labels are the 1000-class index (a
    subset's own from its tables). Files are written atomically and deterministically.
    """
    read_from = local_or_url(source) if source is not None else None
    if isinstance(read_from, Path) and not read_from.is_dir():
        raise typer.BadParameter(f"--from {read_from}: no such folder")
    return export(
        ui.root,
        to,
        source=read_from,
        out=out,
        storage_options=parse_options(storage_options),
        splits=comma_list(splits, "--splits"),
        seed=seed,
        shard_size=shard_size,
        max_shard_bytes=max_shard_bytes,
        prefix=prefix,
        size=size,
        mode=resize,
        quality=quality,
        image_format=image_format,
        filter=resampling,
        upscale=False if no_upscale else None,
        workers=workers,
        dask=dask,
        trust_input_labels=trust_input_labels,
        wait=not no_wait,
        progress=ui.progress,
    )
