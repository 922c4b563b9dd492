"""``imagenet export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..export import FORMATS, ExportResult, export
from .common import FromTreeOption, NoWaitOption, Rendering, Session, choices, comma_list, command

EXAMPLES = """\
Examples:

\b
  imagenet export webdataset                           ROOT/exports/webdataset-224/
  imagenet export webdataset --from ROOT/subsets/imagenette --shard-size 500
  imagenet export webdataset --max-shard-bytes 1000000000 --prefix in1k --seed 1
"""

Format = choices("Format", FORMATS)


def _print_result(result: ExportResult) -> None:
    counts = ", ".join(f"{n:,} {split}" for split, n in result.samples.items())
    kept = len(result.shards) - result.written
    typer.echo(
        f"{result.path}: {len(result.shards)} {result.format} shards, {counts} samples"
        + (f" ({kept} were already complete)" if kept else "")
    )


@command("export", Rendering(text=lambda result: _print_result(result), quiet=lambda result: [str(result.path)]))
def export_command(
    format: Annotated[Format, typer.Argument(help="The format to write.", show_default=False)],
    source: FromTreeOption = None,
    out: Annotated[
        Path | None,
        typer.Option(help="The export folder [default: ROOT/exports/<format>-<tree>].", file_okay=False, show_default=False, metavar="DIR"),
    ] = None,
    splits: Annotated[str, typer.Option(help="Splits to export, comma-separated.", metavar="LIST")] = "train,val",
    seed: Annotated[int, typer.Option(help="The shuffle of train samples over shards.", metavar="N")] = 0,
    shard_size: Annotated[int, typer.Option(help="Samples per shard (1,250 makes 1,024 train shards).", min=1, metavar="N")] = 1250,
    max_shard_bytes: Annotated[
        int | None,
        typer.Option(help="Start a new shard before one would pass this many bytes (at least 64 KiB).", show_default=False, metavar="N"),
    ] = None,
    prefix: Annotated[str, typer.Option(help="Shard names: PREFIX-train-0000.tar, PREFIX-validation-00.tar.", metavar="NAME")] = "imagenet1k",
    no_wait: NoWaitOption = False,
    *,
    ui: Session,
) -> ExportResult:
    """Write a prepared tree or subset in a format people train from.

    webdataset: shards as timm's imagenet-1k-wds (KEY.jpg copied byte for byte, KEY.cls, KEY.json)
    and _info.json with the sample counts. Labels come from the tree's label tables. Shards are
    written atomically and deterministically; a re-run keeps the finished ones.
    """
    return export(
        ui.root,
        format.value,
        source=source,
        out=out,
        splits=comma_list(splits, "--splits"),
        seed=seed,
        shard_size=shard_size,
        max_shard_bytes=max_shard_bytes,
        prefix=prefix,
        wait=not no_wait,
        progress=ui.progress,
    )
