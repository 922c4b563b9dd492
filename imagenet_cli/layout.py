"""The data root: where downloads, prepared trees, subsets and exports live.

ROOT/downloads/                 archives exactly as fetched, each with <name>.record.json
ROOT/<size>/{train,val}/<wnid>/ prepared ImageFolder trees, e.g. ROOT/224, ROOT/full, ROOT/64-squash
ROOT/<size>/imagenet-a/<wnid>/  an evaluation set, prepared into the tree beside val
ROOT/subsets/<name>/            subsets of a prepared tree
ROOT/exports/<format>-<tree>/   a tree in a training format, with export.json
ROOT/sheets/                    contact sheets
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import evalsets
from .errors import InvalidArgumentError, MissingInputError
from .manifest import is_labelled

SPLITS = ("train", "val", "test")
# Every folder of a tree that holds images: ILSVRC-2012's splits, and the evaluation sets
# prepared beside them (TREE/imagenet-a/<wnid>/).
IMAGE_SPLITS = (*SPLITS, *evalsets.image_sets())
DOWNLOADS = "downloads"
SUBSETS = "subsets"
EXPORTS = "exports"
DEFAULT_TREE = "224"  # what `imagenet prepare` makes with no --size, and what other commands read by default


@dataclass(frozen=True)
class Root:
    path: Path

    @property
    def downloads(self) -> Path:
        return self.path / DOWNLOADS

    def evalset_downloads(self, name: str) -> Path:
        """An evaluation set's files: ROOT/downloads/<set>/, apart from ILSVRC-2012's archives and
        from each other (ImageNet-C's noise.tar is no name to share a folder with)."""
        return self.downloads / name

    def evalset_folders(self) -> list[Path]:
        """The evaluation sets' download folders that exist."""
        return [self.evalset_downloads(name) for name in evalsets.sets() if self.evalset_downloads(name).is_dir()]

    @property
    def subsets(self) -> Path:
        return self.path / SUBSETS

    def trees(self) -> list[Path]:
        """Prepared trees: folders of the root that hold a split folder."""
        return _image_trees(self.path, exclude={DOWNLOADS, SUBSETS, EXPORTS})

    def subset_trees(self) -> list[Path]:
        return _image_trees(self.subsets, exclude=set())

    def exports(self) -> list[Path]:
        """Export folders (ROOT/exports/*), each with its export.json."""
        folder = self.path / EXPORTS
        if not folder.is_dir():
            return []
        return [child for child in sorted(folder.iterdir()) if (child / "export.json").is_file()]

    def the_prepared_tree(self) -> Path:
        """The tree commands that read a tree default to (``--from`` picks another): the only one,
        or among several the one a plain ``imagenet prepare`` makes (ROOT/224)."""
        trees = self.trees()
        if not trees:
            raise MissingInputError(
                f"no prepared tree under {self.path}: prepare one first, or name one with {{source}}"
            )
        if len(trees) == 1:
            return trees[0]
        if (default := self.path / DEFAULT_TREE) in trees:
            return default
        names = ", ".join(t.name for t in trees)
        raise InvalidArgumentError(
            f"{self.path} holds several prepared trees ({names}) and no {DEFAULT_TREE}/; name one with {{source}}"
        )

    def is_data_root(self) -> bool:
        """A root, not a tree: it has downloads/, subsets/ or prepared trees, and no split folder."""
        path = self.path
        if not path.is_dir() or any((path / split).is_dir() for split in IMAGE_SPLITS):
            return False
        return self.downloads.is_dir() or self.subsets.is_dir() or bool(self.trees())


def _image_trees(parent: Path, exclude: set[str]) -> list[Path]:
    if not parent.is_dir():
        return []
    return [
        child
        for child in sorted(parent.iterdir())
        # Hidden folders are work in progress (a subset being staged), never a finished tree.
        if child.is_dir()
        and not child.name.startswith(".")
        and child.name not in exclude
        and any((child / s).is_dir() for s in IMAGE_SPLITS)
    ]


def free_bytes(path: Path) -> int:
    """Free disk where ``path`` is or would be created (its nearest existing ancestor)."""
    path = path.absolute()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


@dataclass(frozen=True)
class SplitCount:
    classes: int
    images: int
    bytes: int


def count_split(split_dir: Path) -> SplitCount:
    """Class folders, files and bytes of one split of an ImageFolder tree, streaming the listing;
    the test split is flat, its images beside each other."""
    classes = images = size = 0
    with os.scandir(split_dir) as class_entries:
        for class_entry in class_entries:
            if not class_entry.is_dir():
                if not is_labelled(split_dir.name) and class_entry.is_file():
                    images += 1
                    size += class_entry.stat().st_size
                continue
            classes += 1
            with os.scandir(class_entry.path) as files:
                for file in files:
                    if file.is_file():  # follows symlinks, as subsets are made of them
                        images += 1
                        size += file.stat().st_size
    return SplitCount(classes, images, size)
