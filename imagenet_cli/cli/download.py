"""``imagenet download``."""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import evalsets, sample
from ..download import (
    DEFAULT_CONNECTIONS,
    DownloadResult,
    download_evalset,
    download_evalset_sample,
    download_hf,
    download_kaggle,
    download_official,
    download_sample,
)
from ..download.official import BASE_URL
from .common import NoWaitOption, Rendering, Session, comma_list, command, file_option, human_bytes, plural, print_table

EXAMPLES = """\
Examples:

\b
  imagenet download                                   the Kaggle bundle (~155 GB)
  imagenet download --source official                 train, val and devkit from image-net.org
  imagenet download --source official --files ILSVRC2012_img_val.tar,ILSVRC2012_devkit_t12.tar.gz
  imagenet download --source official --base-url https://mirror.example.org/imagenet/ --dry-run
  imagenet download --source official --cookies cookies.txt --connections 8
  imagenet download --source official --header 'Authorization: Bearer TOKEN' --trust-host cdn.example.org
  imagenet download --source hf                       Hugging Face's ILSVRC/imagenet-1k (hf auth login first)
  imagenet download --source sample                   a miniature ImageNet, offline, in seconds
  imagenet download --source sample --layout kaggle --classes imagewoof --per-class 20
  imagenet download --dataset imagenet-a              an evaluation set, from its publisher
  imagenet download --dataset imagenet-c --corruptions noise,blur --dry-run
  imagenet download --source sample --dataset imagenet-real  a miniature of the set, offline
"""


class Source(StrEnum):
    kaggle = "kaggle"
    official = "official"
    hf = "hf"
    sample = "sample"


def _dataset_list() -> str:
    """The evaluation sets with their sizes, for --dataset's help."""
    listed = []
    for name, chosen in evalsets.sets().items():
        size = chosen.size
        listed.append(
            f"{name} ({human_bytes(size) if size is not None else EVALSET_SIZES.get(name, 'size unpublished')})"
        )
    return ", ".join(listed)


# Sizes their hosts give only roughly (hendrycks/robustness's README; the JSON is small).
EVALSET_SIZES = {"imagenet-c": "about 62 GB in 5 tars, see --corruptions", "imagenet-real": "a few MB"}


@command(
    "download",
    Rendering(text=lambda result: _print_result(result), quiet=lambda result: [str(f.path) for f in result.files]),
)
def download(
    source: Annotated[
        Source,
        typer.Option(
            help="kaggle: the competition bundle, via Kaggle's API. official: image-net.org or a mirror. "
            "hf: Hugging Face's ILSVRC/imagenet-1k (a token, and its terms accepted; the hf extra). "
            "sample: a miniature ILSVRC-2012 generated offline."
        ),
    ] = Source.kaggle,
    dataset: Annotated[
        str,
        typer.Option(
            help=f"{evalsets.DEFAULT}, or an evaluation set from its publisher: {_dataset_list()}.",
            autocompletion=lambda: [evalsets.DEFAULT, *evalsets.sets()],
            metavar="NAME",
        ),
    ] = evalsets.DEFAULT,
    corruptions: Annotated[
        str | None,
        typer.Option(
            help=f"imagenet-c: the corruption groups to fetch, comma-separated: {', '.join(evalsets.CORRUPTIONS)} "
            "[default: all].",
            show_default=False,
            metavar="LIST",
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            help=f"official: where the archives are ($IMAGENET_BASE_URL when not given, else {BASE_URL}). With "
            "--dataset: a mirror of the set's files, by name.",
            show_default=False,
            metavar="URL",
        ),
    ] = None,
    files: Annotated[
        str | None,
        typer.Option(
            help="official and hf: files to fetch, comma-separated (default: train and val, and the devkit).",
            show_default=False,
            metavar="N|LIST",
        ),
    ] = None,
    cookies: Annotated[
        Path | None,
        file_option("official: a Netscape cookies.txt to send, for a logged-in session."),
    ] = None,
    header: Annotated[
        list[str] | None,
        typer.Option(
            help="official: an extra request header 'Name: value' (repeatable).", show_default=False, metavar="TEXT"
        ),
    ] = None,
    trust_host: Annotated[
        list[str] | None,
        typer.Option(
            help="official: a host that may also receive --header and --cookies when a redirect leads there "
            "(repeatable); without it, a redirect to another host gets no credentials.",
            show_default=False,
            metavar="HOST",
        ),
    ] = None,
    checksums: Annotated[
        Path | None,
        file_option(
            "official: a mirror's md5sum-style file; its sums replace the published ones for the files it names."
        ),
    ] = None,
    connections: Annotated[
        int, typer.Option(help="Parallel ranged connections per file.", min=1, max=16, metavar="N")
    ] = DEFAULT_CONNECTIONS,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be fetched, its size and the free disk; fetch nothing.")
    ] = False,
    revision: Annotated[
        str | None,
        typer.Option(
            help="hf: the dataset's branch, tag or commit [default: main].", show_default=False, metavar="REV"
        ),
    ] = None,
    layout: Annotated[
        sample.Layout | None,
        typer.Option(
            help="sample: the official archives, Kaggle's zip, Kaggle's older zip of one tar.gz, or the "
            "Hugging Face hub's ILSVRC/imagenet-1k tar.gz files (hf) [default: official].",
            show_default=False,
        ),
    ] = None,
    classes: Annotated[
        str | None,
        typer.Option(
            help="sample: as subset --classes: a count N (N classes drawn with --seed), or comma-separated WNIDs, "
            "indices, names or lists (imagenette, imagewoof, imagenet100) [default: Imagenette plus the classes "
            "of the known-bad files].",
            show_default=False,
            metavar="LIST",
        ),
    ] = None,
    per_class: Annotated[
        int | None,
        typer.Option(
            help="sample: train images per class, 1–1300 [default: 10].",
            min=1,
            max=1300,
            show_default=False,
            metavar="N",
        ),
    ] = None,
    val_per_class: Annotated[
        int | None,
        typer.Option(
            help="sample: val images per class, 0–50 [default: 5].", min=0, max=50, show_default=False, metavar="N"
        ),
    ] = None,
    test_images: Annotated[
        int | None,
        typer.Option(
            help="sample: unlabelled test images [default: 10].", min=0, max=100_000, show_default=False, metavar="N"
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="sample: the same seed gives the same bytes [default: 0].", show_default=False, metavar="N"),
    ] = None,
    no_wait: NoWaitOption = False,
    *,
    ui: Session,
) -> DownloadResult:
    """Fetch the archives into ROOT/downloads/.

    Each archive appears under its final name only when complete and checked against its published
    MD5, beside a record of its size and checksums (NAME.record.json). Interrupted downloads
    resume where they stopped; a re-run keeps what is already complete. Two downloads of one
    file never both fetch it: the second waits, then finds it complete.
    """
    official_only = {
        "--cookies": cookies,
        "--header": header,
        "--trust-host": trust_host,
        "--checksums": checksums,
    }
    sample_only = {
        "--layout": layout,
        "--classes": classes,
        "--per-class": per_class,
        "--val-per-class": val_per_class,
        "--test-images": test_images,
        "--seed": seed,
    }
    _refuse_options_of_other_sources(source, official_only, Source.official)
    _refuse_options_of_other_sources(source, sample_only, Source.sample)
    _refuse_options_of_other_sources(source, {"--revision": revision}, Source.hf)
    if files is not None and source not in (Source.official, Source.hf):
        raise typer.BadParameter("--files only applies to --source official and hf", param_hint="'--files'")
    if source is Source.sample and dry_run:
        raise typer.BadParameter("the sample is generated, not fetched: drop --dry-run", param_hint="'--dry-run'")

    root = ui.root
    if dataset != evalsets.DEFAULT:
        if source not in (Source.kaggle, Source.sample):  # kaggle: the default, not asked for
            raise typer.BadParameter(
                f"--dataset {dataset} comes from its publisher (or --base-url): drop --source {source.value}",
                param_hint="'--source'",
            )
        # Other sources' options were refused above; these shape ILSVRC-2012's sample, not a set's.
        sample_layout = {"--layout": layout, "--val-per-class": val_per_class, "--test-images": test_images}
        _refuse_options_of_other_sources(source, sample_layout, None)
        chosen = comma_list(corruptions, "--corruptions")
        if source is Source.sample:
            return download_evalset_sample(
                root,
                dataset,
                corruptions=chosen,
                wait=not no_wait,
                progress=ui.progress,
                **{
                    k: v
                    for k, v in {"classes": _count(classes), "per_class": per_class, "seed": seed}.items()
                    if v is not None
                },
            )
        return download_evalset(
            root,
            dataset,
            corruptions=chosen,
            base_url=base_url,
            connections=connections,
            dry_run=dry_run,
            wait=not no_wait,
            progress=ui.progress,
        )
    if corruptions is not None:
        raise typer.BadParameter("--corruptions only applies to --dataset imagenet-c", param_hint="'--corruptions'")
    if source is Source.sample:
        given = {"train_per_class": per_class, "val_per_class": val_per_class, "test_images": test_images, "seed": seed}
        return download_sample(
            root,
            layout=layout.value if layout else "official",
            classes=comma_list(classes, "--classes"),
            wait=not no_wait,
            progress=ui.progress,
            **{k: v for k, v in given.items() if v is not None},
        )
    if source is Source.official:
        return download_official(
            root,
            files=comma_list(files, "--files"),
            base_url=base_url or os.environ.get("IMAGENET_BASE_URL") or BASE_URL,
            headers=header,
            cookies=cookies,
            trusted_hosts=trust_host,
            checksums=checksums,
            connections=connections,
            dry_run=dry_run,
            wait=not no_wait,
            progress=ui.progress,
        )
    if source is Source.hf:
        return download_hf(
            root,
            files=comma_list(files, "--files"),
            revision=revision or "main",
            connections=connections,
            dry_run=dry_run,
            wait=not no_wait,
            progress=ui.progress,
        )
    return download_kaggle(root, connections=connections, dry_run=dry_run, wait=not no_wait, progress=ui.progress)


def _refuse_options_of_other_sources(source: Source, options: dict[str, Any], owner: Source | None) -> None:
    """Options given that only ``owner`` takes (None: ILSVRC-2012's, given with --dataset) are a usage error."""
    given = [name for name, value in options.items() if value is not None]
    if owner is None and given:
        raise typer.BadParameter(f"{', '.join(given)} do not apply to --dataset", param_hint=f"'{given[0]}'")
    if source is not owner and given:
        raise typer.BadParameter(f"{', '.join(given)} only apply to --source {owner}", param_hint=f"'{given[0]}'")


def _count(classes: str | None) -> int | None:
    """--classes for an evaluation set's miniature: a number of classes."""
    if classes is None:
        return None
    if not classes.isdigit() or int(classes) < 1:
        raise typer.BadParameter("a miniature evaluation set takes a number of classes", param_hint="'--classes'")
    return int(classes)


def _print_result(result: DownloadResult) -> None:
    rows = [
        (
            f.name,
            human_bytes(f.bytes) if f.bytes is not None else "?",
            f.status,
            human_bytes(f.transferred),
            f.md5 or "-",
        )
        for f in result.files
    ]
    print_table(("archive", "size", "status", "fetched now", "md5"), rows)
    if result.dry_run:
        typer.echo(
            f"\nwould fetch {human_bytes(result.to_fetch_bytes)} into {result.downloads}; "
            f"{human_bytes(result.free_bytes)} free there"
        )
    else:
        typer.echo(f"\n{plural(len(result.files), 'archive')} in {result.downloads}")
