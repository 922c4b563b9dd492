"""Build ImageFolder trees with manifests from the sample's archives, for the tree checks."""

from __future__ import annotations

from pathlib import Path

from imagenet_cli import archives, catalogue, manifest
from imagenet_cli.hashing import hash_bytes


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
        entries.append(manifest.Entry(f"{member.split}/{wnid}/{member.name}", len(member.data), hash_bytes(member.data), wnid))
    if with_manifest:
        manifest.write_manifest(tree, sorted(entries, key=lambda e: e.path))
        splits = {s: {"images": sum(e.path.startswith(s + "/") for e in entries)} for s in ("train", "val")}
        manifest.write_tree_info(tree, manifest.TreeInfo(made_by={"test": "tree_from_official"}, splits=splits))
    return tree
