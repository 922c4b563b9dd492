"""``imagenet prepare``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .. import evalsets
from ..trees import PrepareResult, prepare
from ..trees.resize import Filter, ImageFormat, Mode, Recipe
from .common import NoWaitOption, Rendering, Session, comma_list, command, local_folder, print_table

EXAMPLES = """\
Examples:

\b
  imagenet prepare --size 224                        ROOT/224/{train,val}/<wnid>/
  imagenet prepare --size 64 --size 224              both from one decode of each image
  imagenet prepare --size full                       originals, repaired where needed
  imagenet prepare --size 32 --resize squash         32x32 JPEGs (ROOT/32-squash); Imagenet32: export downsampled
  imagenet prepare --size 224 --filter area          ROOT/224-area: OpenCV's area resize, fastest (extra [opencv])
  imagenet prepare --size 224 --from /data/ILSVRC    an already extracted Kaggle tree
  imagenet prepare --size 224 --dask tcp://head:8786 on a Dask cluster (paths shared by all)
  imagenet prepare --size 224 --redo --splits val    make val again, keep train
  imagenet prepare --size 32 --splits test          the unlabelled test images, flat: ROOT/32/test/
  imagenet prepare --size 224 --trust-input-labels   sort val by the devkit where it differs from ours
  imagenet prepare --size 224 --dataset imagenet-a   ROOT/224/imagenet-a/<wnid>/, made as val is
  imagenet prepare --size 224 --dataset imagenet-real  ROOT/224/val_real.txt: ReaL's labels of val
"""


@command(
    "prepare",
    Rendering(
        text=lambda result: _print_result(result),
        quiet=lambda result: [str(tree.path) for tree in result.trees] + [str(path) for path in result.label_files],
        problems=lambda result: bool(result.failed),
    ),
)
def prepare_command(
    size: Annotated[
        list[str] | None,
        typer.Option(
            help="Output size in pixels, or 'full' for the originals (repeatable) [default: 224].",
            show_default=False,
            metavar="N|full",
        ),
    ] = None,
    resize: Annotated[
        Mode,
        typer.Option(
            help="shorter: shorter side N, aspect kept; center-crop: NxN from the centre; squash: NxN, box "
            "filter (not the published Downsampled ImageNet pixels: "
            "see export downsampled); longer: longer side N (FFCV)."
        ),
    ] = Mode.shorter,
    no_upscale: Annotated[bool, typer.Option("--no-upscale", help="Leave images smaller than N as they are.")] = False,
    quality: Annotated[int, typer.Option(help="JPEG/WebP quality (JPEG at 4:2:0).", min=1, max=100, metavar="Q")] = 90,
    image_format: Annotated[ImageFormat, typer.Option("--format", help="Output format.")] = ImageFormat.jpeg,
    resampling: Annotated[
        Filter,
        typer.Option(
            "--filter",
            help="fast: reduced decode + bilinear; lanczos: full decode, reference quality; area: reduced "
            "decode + OpenCV's area resampling, the fastest (extra [opencv]).",
        ),
    ] = Filter.fast,
    splits: Annotated[
        str | None,
        typer.Option(
            help="Splits to prepare, comma-separated: train, val, test (no class: a flat TREE/test/, only when asked) "
            "[default: train,val].",
            show_default=False,
            metavar="LIST",
        ),
    ] = None,
    dataset: Annotated[
        str,
        typer.Option(
            help=f"{evalsets.DEFAULT} (its --splits), or an evaluation set fetched with download --dataset, made "
            "with the same options into a folder of the tree beside val: TREE/<set>/<wnid>/ (imagenet-c: "
            "TREE/imagenet-c/<corruption>/<severity>/<wnid>/). imagenet-real writes TREE/val_real.txt beside a "
            "prepared val.",
            autocompletion=lambda: [evalsets.DEFAULT, *evalsets.sets()],
            metavar="NAME",
        ),
    ] = evalsets.DEFAULT,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes [default: all cores].", min=1, show_default=False, metavar="N")
    ] = None,
    into: Annotated[
        Path | None,
        typer.Option(
            help="The folder the trees go into: DIR/<size>/ [default: the root].",
            file_okay=False,
            show_default=False,
            metavar="DIR",
        ),
    ] = None,
    source: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Read an extracted Kaggle ILSVRC/ tree, an ImageFolder tree, WebDataset shards (timm's "
            "imagenet-1k-wds layout, or an export) or Parquet files (the hub's features) instead of ROOT/downloads/.",
            file_okay=False,
            exists=True,
            show_default=False,
            metavar="PATH",
        ),
    ] = None,
    dask: Annotated[
        str | None,
        typer.Option(
            "--dask",
            help="Run the shards on a Dask cluster: local, local:N (N worker processes here), auto (the scheduler "
            "Dask's config names), or a scheduler address such as tcp://host:8786. Needs the dask extra.",
            show_default=False,
            metavar="ADDRESS",
        ),
    ] = None,
    redo: Annotated[
        bool, typer.Option("--redo", help="Redo every shard of the splits asked for, even those already done.")
    ] = False,
    trust_input_labels: Annotated[
        bool,
        typer.Option(
            "--trust-input-labels",
            help="Sort val by the devkit's ground truth or LOC_val_solution.csv where they differ from the shipped "
            "labels of all 50,000 images (each difference is named either way; by default the shipped ones are used).",
        ),
    ] = False,
    no_wait: NoWaitOption = False,
    *,
    ui: Session,
) -> PrepareResult:
    """Make training-ready ImageFolder trees from the archives.

    Reads the archives in ROOT/downloads/ as streams (nothing is unpacked), sorts val into class
    folders, repairs the PNG, CMYK and grayscale files, resizes, and writes ROOT/<size>/ with a
    manifest and label files (sorted-WNID indices). A re-run converges to what the current inputs
    give: finished shards are kept; shards whose archive changed, that had failed images or lost
    files are redone; files no longer in the inputs are removed. One run writes a tree at a time
    (others wait). Exit code 3 when some images could not be read (they are named).
    """
    return prepare(
        ui.root,
        Recipe(
            tuple(size or ["224"]),
            mode=resize,
            quality=quality,
            format=image_format,
            filter=resampling,
            upscale=not no_upscale,
        ),
        splits=comma_list(splits, "--splits"),
        workers=workers,
        into=local_folder(into, "--into") if into is not None else None,
        source=source,
        redo=redo,
        wait=not no_wait,
        dask=dask,
        progress=ui.progress,
        trust_input_labels=trust_input_labels,
        dataset=dataset,
    )


def _print_result(result: PrepareResult) -> None:
    for path, (images, labelled) in result.label_files.items():  # --dataset imagenet-real
        typer.echo(f"{path}: ReaL labels for {labelled:,} of its {images:,} val images (the rest have none)")
    if result.label_files:
        return
    made = {split for t in result.trees for split in t.images}
    splits = sorted(made & set(evalsets.sets())) or ["train", "val"]  # an evaluation set is made on its own
    rows = [
        (str(t.path), *(t.images.get(split, 0) for split in splits), sum(t.repaired.values()), len(t.failures))
        for t in result.trees
    ]
    print_table(("tree", *splits, "repaired", "failed"), rows)
    for failure in result.trees[0].failures[:50] if result.trees else []:
        typer.echo(f"  failed: {failure.where}: {failure.error}")
    typer.echo(
        f"\nfrom {result.source}; val labels from {result.label_source}; "
        f"{result.images_processed:,} images in {result.seconds:.1f} s ({result.images_per_second:,.0f}/s)"
        + (f"; {result.shards_done_before} shards were already done" if result.shards_done_before else "")
    )
