"""``imagenet classes``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import catalogue
from ..class_files import ClassFileForm, class_file, write_class_file
from .common import ForceOption, Rendering, Session, command, file_option, print_table

EXAMPLES = """\
Examples:

\b
  imagenet classes crane                  both cranes: the bird and the machine
  imagenet classes n01440764              by WNID
  imagenet classes 0                      by sorted index (torchvision, Kaggle, timm)
  imagenet classes --devkit-id 449        by ILSVRC2012_ID (devkit, meta.mat)
  imagenet classes ILSVRC2012_val_00000001.JPEG   the label of a val image
  imagenet classes --export keras --out imagenet_class_index.json
"""


@dataclass(frozen=True)
class Exported:
    format: str
    path: Path | None  # written there; None: the text goes to stdout
    text: str | None


def _print(result: list[catalogue.ImageNetClass] | Exported) -> None:
    if isinstance(result, Exported):
        if result.text is not None:
            typer.echo(result.text, nl=False)
        else:
            typer.echo(f"wrote {result.path}", err=True)
        return
    print_table(
        ("index", "wnid", "devkit_id", "name"), [(c.index, c.wnid, c.devkit_id, ", ".join(c.names)) for c in result]
    )


def _as_json(result: list[catalogue.ImageNetClass] | Exported) -> Any:
    if isinstance(result, Exported):
        return {"format": result.format, "path": result.path, "text": result.text}
    return [_as_dict(c) for c in result]


def _quiet(result: list[catalogue.ImageNetClass] | Exported) -> list[str]:
    """WNIDs, one per line; an export is its own result (the file's path, or its text)."""
    if isinstance(result, Exported):
        return [str(result.path)] if result.path else [(result.text or "").rstrip("\n")]
    return [c.wnid for c in result]


@command("classes", Rendering(text=_print, json=_as_json, quiet=_quiet), uses_root=False)
def classes(
    query: Annotated[
        str | None,
        typer.Argument(
            help="A WNID, a sorted index 0–999, a val file name, or words from the class names.",
            show_default=False,
            metavar="QUERY",
        ),
    ] = None,
    devkit_id: Annotated[
        int | None,
        typer.Option(
            "--devkit-id", help="Look up by the devkit's ILSVRC2012_ID (1–1000).", show_default=False, metavar="N"
        ),
    ] = None,
    export: Annotated[
        ClassFileForm | None,
        typer.Option(
            help="Write a whole class file: synsets (sorted WNIDs), loc (Kaggle LOC_synset_mapping.txt), "
            "keras (imagenet_class_index.json), devkit (map_clsloc.txt).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        file_option("With --export: the file to write (default: stdout)."),
    ] = None,
    force: ForceOption = False,
    *,
    ui: Session,
) -> list[catalogue.ImageNetClass] | Exported:
    """Look up classes; export class files.

    Shows the sorted index (0-based: torchvision, Kaggle, timm) and the devkit ILSVRC2012_ID
    (1-based: meta.mat, val ground truth) of each class, or writes a whole class table in the
    format another tool expects.
    """
    if export is not None and (query is not None or devkit_id is not None):
        raise typer.BadParameter("--export writes the whole table; drop QUERY and --devkit-id", param_hint="'--export'")
    if out is not None and export is None:
        raise typer.BadParameter("--out needs --export FORMAT", param_hint="'--out'")
    if force and out is None:
        raise typer.BadParameter("--force applies to --out FILE", param_hint="'--force'")
    if query is not None and devkit_id is not None:
        raise typer.BadParameter("give either QUERY or --devkit-id", param_hint="'--devkit-id'")
    if export is not None:
        if out is None:
            return Exported(export.value, None, class_file(export.value))
        return Exported(export.value, write_class_file(export.value, out, force), None)
    if devkit_id is not None:
        return [catalogue.by_devkit_id(devkit_id)]
    if query is not None:
        return catalogue.find(query)
    return list(catalogue.classes())


def _as_dict(c: catalogue.ImageNetClass) -> dict[str, Any]:
    return {
        "index": c.index,
        "wnid": c.wnid,
        "devkit_id": c.devkit_id,
        "short_name": c.short_name,
        "names": list(c.names),
    }
