"""The class-table files other tools expect, written from the catalogue.

``synsets``  1000 sorted WNIDs, one per line (line i = class i)
``loc``      Kaggle's LOC_synset_mapping.txt: ``<wnid> <names>`` in sorted order
``keras``    Keras' imagenet_class_index.json: ``{"0": ["n01440764", "tench"], …}``
``devkit``   the devkit's map_clsloc.txt: ``<wnid> <ILSVRC2012_ID> <short_name>`` in devkit order
"""

from __future__ import annotations

import json
from pathlib import Path

from . import atomic, catalogue
from .errors import InvalidArgumentError

FORMATS = ("synsets", "loc", "keras", "devkit")


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


def write_class_file(form: str, path: Path) -> Path:
    """Write one class file format to ``path`` atomically."""
    atomic.write_text(path, class_file(form))
    return path
