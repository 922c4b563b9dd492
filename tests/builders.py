"""Test data built from the sample: ImageFolder trees with manifests, damaged devkits."""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path

from imagenet_cli import archives, catalogue, manifest
from imagenet_cli.hashing import hash_bytes


def read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    """A file member's bytes."""
    file = tar.extractfile(member)
    assert file is not None, f"{member.name} is not a file"
    return file.read()


def tree_from_official(downloads: Path, tree: Path, with_manifest: bool = True) -> Path:
    """train/<wnid>/ and val/<wnid>/ with the original bytes, as extract + valprep would leave them."""
    refuse = lambda where, why: (_ for _ in ()).throw(AssertionError(f"{where}: {why}"))  # noqa: E731
    members = list(archives.train_members(downloads / archives.TRAIN_TAR, refuse))
    members += archives.flat_members(downloads / archives.VAL_TAR, "val", refuse)
    entries = []
    for member in members:
        wnid = member.wnid or catalogue.val_class(member.name).wnid
        path = tree / member.split / wnid / member.name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(member.data)
        entries.append(
            manifest.Entry(f"{member.split}/{wnid}/{member.name}", len(member.data), hash_bytes(member.data), wnid)
        )
    if with_manifest:
        manifest.write_manifest(tree, sorted(entries, key=lambda e: e.path))
        splits = {s: {"images": sum(e.path.startswith(s + "/") for e in entries)} for s in ("train", "val")}
        manifest.write_tree_info(tree, manifest.TreeInfo(made_by=None, splits=splits))
    return tree


def set_devkit_line(devkit: Path, number: int, value: str) -> None:
    """Rewrite line ``number`` of the devkit's ground truth (1-based), keeping everything else."""

    def change(lines: list[str]) -> list[str]:
        lines[number - 1] = value
        return lines

    rewrite_ground_truth(devkit, change)


def rewrite_ground_truth(devkit: Path, change: Callable[[list[str]], list[str]]) -> None:
    """The devkit with its ground truth's lines passed through ``change``, everything else kept."""
    import gzip
    import io

    with tarfile.open(devkit) as tar:
        members = [(m, read_member(tar, m) if m.isfile() else None) for m in tar]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for member, data in members:
            if member.name.endswith("ground_truth.txt"):
                assert data is not None
                data = ("\n".join(change(data.decode().splitlines())) + "\n").encode()
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    devkit.write_bytes(gzip.compress(out.getvalue()))


def prepared_by(tree: Path) -> manifest.Prepared:
    """How ``prepare`` made ``tree``, from its ``tree.json``."""
    made = manifest.TreeInfo.read(tree).made_by
    assert isinstance(made, manifest.Prepared), made
    return made
