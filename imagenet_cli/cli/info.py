"""``imagenet info``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ..info import BucketState, ExportState, RootState, TreeState, describe_bucket, describe_root
from ..layout import IMAGE_SPLITS
from ..manifest import LABELLED_SPLITS, Prepared, made_by_to_dict
from ..storage import local_or_url, parse_options
from .common import Rendering, Session, StorageOptions, command, human_bytes, print_table

EXAMPLES = """\
Examples:

\b
  imagenet info
  imagenet info --root /data/imagenet --json
  imagenet info /data/ILSVRC                         an extracted Kaggle tree: what reads it
  imagenet info s3://bucket                          the exports in a bucket
"""


@command(
    "info",
    Rendering(
        text=lambda state: _print_bucket(state) if isinstance(state, BucketState) else _print_state(state),
        json=lambda state: _bucket_json(state) if isinstance(state, BucketState) else _as_json(state),
        quiet=lambda state: (
            [str(tree.path) for tree in ([] if isinstance(state, BucketState) else state.trees + state.subsets)]
            + [e.where for e in state.exports if e.finished]
        ),
    ),
)
def info(
    path: Annotated[
        str | None,
        typer.Argument(
            help="The data root to describe (the same as --root), or a URL of object storage holding exports.",
            show_default=False,
            metavar="[ROOT|URL]",
        ),
    ] = None,
    storage_options: StorageOptions = None,
    *,
    ui: Session,
) -> RootState | BucketState:
    """Show what the root holds and what to run next.

    Archives in downloads/ (size, source, whether their checksums are recorded), prepared trees and
    subsets (images per split, size on disk), exports (format, samples), and the free disk. A
    folder that is itself an input (WebDataset or Parquet shards, an extracted Kaggle ILSVRC/
    tree) is named as one, with the prepare --from that makes a tree of it.
    """
    where = local_or_url(path) if path is not None else ui.root
    if isinstance(where, str):
        return describe_bucket(where, parse_options(storage_options))
    return describe_root(where)


def _as_json(state: RootState) -> dict[str, Any]:
    return {
        "root": str(state.root),
        "exists": state.exists,
        "free_bytes": state.free_bytes,
        "archives": state.archives,
        "evalset_files": state.evalset_files,
        "partial": state.partial,
        "trees": [_tree_json(t) for t in state.trees],
        "subsets": [_tree_json(t) for t in state.subsets],
        "exports": [_export_json(e) for e in state.exports],
        "input_folder": state.input_folder,
        "next_step": state.next_step,
        "next_command": next_command(state),
    }


def _export_json(export: ExportState) -> dict[str, Any]:
    return {
        "name": export.name,
        "path": export.where,
        "format": export.format,
        "finished": export.finished,
        "samples": export.samples,
        "bytes": export.bytes,
    }


def _bucket_json(state: BucketState) -> dict[str, Any]:
    return {"url": state.url, "exports": [_export_json(e) for e in state.exports]}


def _tree_json(tree: TreeState) -> dict[str, Any]:
    return {
        "name": tree.name,
        "path": tree.path,
        "images": tree.images,
        "bytes": tree.bytes,
        "splits": tree.splits,
        "made_by": made_by_to_dict(tree.made_by),
    }


def _how_made(tree: TreeState) -> str:
    made = tree.made_by
    if isinstance(made, Prepared) and made.size == "full":
        if made.format == "jpeg":
            return "originals as published; repaired files as jpeg q95"
        return f"originals as {made.format}"
    if isinstance(made, Prepared):
        return f"{made.mode} {made.size}, {made.format} q{made.quality}, {made.filter} filter"
    return made.command if made is not None else "-"


INPUT_FOLDERS = {
    "webdataset": "WebDataset shards (timm's imagenet-1k-wds layout, or an export)",
    "parquet": "Parquet files with the Hugging Face hub's features",
    "kaggle-tree": "an extracted Kaggle ILSVRC/ tree",
}


def _print_state(state: RootState) -> None:
    typer.echo(f"root: {state.root} ({human_bytes(state.free_bytes)} free)")
    if state.input_folder is not None:
        what = INPUT_FOLDERS[state.input_folder]
        typer.echo(f"this folder holds {what}: prepare --from makes a tree of it")
    elif not state.archives and not state.evalset_files and not state.trees and not state.subsets:
        typer.echo("nothing here yet; start with `imagenet download`")
    record_words = {"ok": "recorded", "stale": "changed since recorded", "none": "not recorded"}
    for title, files in (("archives", state.archives), ("evaluation sets", state.evalset_files)):
        if files:
            typer.echo(f"\n{title} (downloads/):")
            rows = [(a.name, human_bytes(a.bytes), a.source or "-", record_words[a.record]) for a in files]
            print_table(("archive", "size", "source", "checksums"), rows)
    if state.partial:
        typer.echo("\nunfinished downloads (run `imagenet download` again to resume):")
        partial = [
            (p.name, human_bytes(p.have_bytes), human_bytes(p.total_bytes) if p.total_bytes is not None else "?")
            for p in state.partial
        ]
        print_table(("archive", "have", "of"), partial)
    for title, trees in (("prepared trees", state.trees), ("subsets (subsets/)", state.subsets)):
        if trees:
            typer.echo(f"\n{title}:")
            # test and the evaluation sets are prepared only when asked: a column only when a tree has it
            splits = [s for s in IMAGE_SPLITS if s in LABELLED_SPLITS or any(s in t.splits for t in trees)]
            made = [
                (
                    t.name,
                    *(t.splits[s].images if s in t.splits else "-" for s in splits),
                    human_bytes(t.bytes),
                    _how_made(t),
                )
                for t in trees
            ]
            print_table(("tree", *splits, "size", "made"), made)
    if state.exports:
        typer.echo("\nexports (exports/):")
        _print_exports(state.exports)
    if command := next_command(state):
        typer.echo(f"\nnext: {command}")


def _print_exports(exports: list[ExportState]) -> None:
    rows = [
        (e.name, e.format or "-", *(e.samples.get(s, "-") for s in ("train", "val")), human_bytes(e.bytes))
        if e.finished
        else (e.name, "-", "-", "-", "unfinished: run the same export again")
        for e in exports
    ]
    print_table(("export", "format", "train", "val", "size"), rows)


def _print_bucket(state: BucketState) -> None:
    typer.echo(f"bucket: {state.url}")
    if not state.exports:
        typer.echo("no export here (an export's prefix holds export.json)")
        return
    typer.echo("\nexports:")
    _print_exports(state.exports)
    if finished := [e for e in state.exports if e.finished]:
        typer.echo(f"\nnext: imagenet verify {finished[0].where}  (each file against its export.json)")


def next_command(state: RootState) -> str | None:
    """The command line for the root's next step, one that works on the root as it is."""
    step = state.next_step
    if step == "download":
        if state.partial:
            return "imagenet download  (again, with the same options: it resumes)"
        return "imagenet download  (Kaggle; --source official for image-net.org, --source sample to try it offline)"
    if step == "prepare" and state.input_folder is not None:  # an input, not a root: the tree goes elsewhere
        # Shards hold images made already: kept as they are. A Kaggle tree holds the originals.
        size = "224" if state.input_folder == "kaggle-tree" else "full"
        return f"imagenet prepare --from {state.root} --size {size}  (into ./imagenet, or --root DIR)"
    if step == "prepare":
        return "imagenet prepare --size 224"
    if step == "subset" and (suggestion := state.subset_to_suggest()) is not None:
        tree, count = suggestion
        return f"imagenet subset{f' --from {tree}' if tree is not None else ''} --classes {count}"
    return None
