"""The class-table files other tools expect, written from the catalogue.

``synsets``  1000 sorted WNIDs, one per line (line i = class i)
``loc``      Kaggle's LOC_synset_mapping.txt: ``<wnid> <names>`` in sorted order
``keras``    Keras' imagenet_class_index.json: ``{"0": ["n01440764", "tench"], …}``
``devkit``   the devkit's map_clsloc.txt: ``<wnid> <ILSVRC2012_ID> <short_name>`` in devkit order
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

from . import atomic, catalogue
from .errors import InvalidArgumentError, OverwriteRefusedError


class ClassFileForm(StrEnum):
    synsets = "synsets"
    loc = "loc"
    keras = "keras"
    devkit = "devkit"


FORMATS = tuple(ClassFileForm)


def class_file(form: str) -> str:
    """The text of one class file format."""
    classes = catalogue.classes()
    if form == "synsets":
        return "".join(f"{c.wnid}\n" for c in classes)
    if form == "loc":
        return "".join(f"{c.wnid} {', '.join(c.names)}\n" for c in classes)
    if form == "keras":
        return json.dumps({str(c.index): [c.wnid, c.short_name] for c in classes}) + "\n"
    if form == "devkit":
        by_id = sorted(classes, key=lambda c: c.devkit_id)
        return "".join(f"{c.wnid} {c.devkit_id} {c.short_name}\n" for c in by_id)
    raise InvalidArgumentError(f"unknown class file format {form!r} (known: {', '.join(FORMATS)})")


def write_class_file(form: str, path: Path, force: bool = False) -> Path:
    """Write one class file format to ``path`` atomically; an existing file only with ``force``."""
    if path.exists() and not force:
        raise OverwriteRefusedError(f"{path} exists; it is not replaced unless forced", "out", forceable=True)
    atomic.write_text(path, class_file(form))
    return path


# Beside every tree: the synsets file, the 1000 WNIDs in the sorted order, line k class k. timm's
# ``class_map=`` reads it as {name: line number}, so any tree's folders get their 1000-class index.
CLASS_MAP = "class_map.txt"


def class_index(tree: Path) -> dict[str, int]:
    """{WNID: index among the 1000 classes} for the class folders of ``tree`` (any split).

    ImageFolder readers (torchvision, timm, ``datasets``) number the folders they find 0..k-1; on
    a partial tree (the sample, a subset) that is not the index a 1000-class model predicts. Map
    their labels through this instead.
    """
    present = sorted(
        {
            p.name
            for split in ("train", "val")
            if (tree / split).is_dir()
            for p in (tree / split).iterdir()
            if p.is_dir()
        }
    )
    return {wnid: catalogue.by_wnid(wnid).index for wnid in present}
