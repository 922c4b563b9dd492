"""Planning an evaluation set's shards: its archive, as downloaded, listed into class folders.

A set is prepared as a split of a tree, beside ILSVRC-2012's val and with the same recipe (a
model is scored on images made the way its val images were): ``TREE/imagenet-a/<wnid>/``, and
for ImageNet-C ``TREE/imagenet-c/<corruption>/<severity>/<wnid>/``. Every folder is a WNID, so
that ImageFolder's sorted classes and our label files agree: ImageNetV2's index folders (``0``,
``1``, ``10``, which ImageFolder would sort as strings) become the WNIDs they stand for.

Plain tars (A, R, O, C) and Sketch's zip are listed by their headers and central directory and
each class folder read by offset, on any worker; V2's ``.tar.gz`` is a gzip stream, read here
from start to end and cut into runs of one class.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path

from .. import archives, evalsets, zip_entries
from ..errors import MissingInputError
from ..evalsets import EvalSet, Layout, Placed, Unplaced
from ..inputs import InputFile, Snapshot, describe, fingerprint
from .plan import ClassRuns, ListedShards, Plan, Shards, listing_of, warn_refiled
from .readers import Blobs, Item, MemberAt, TarMembers, ZipMember, ZipMembers
from .shards import Shard


def plan_evalset(folder: Path, name: str, tree: Path) -> Plan:
    """The shards of set ``name`` from its files in ``folder`` (``ROOT/downloads/<set>/``): for C,
    the corruption groups downloaded. ``tree``: any of the trees being made, to record inputs
    relative to."""
    chosen = evalsets.evalset(name)
    files = [folder / f.name for f in chosen.files if (folder / f.name).is_file()]
    if not files:
        raise MissingInputError(
            f"no {chosen.title} in {folder}: download it first (imagenet download --dataset {name})"
        )
    inputs = [describe(path, tree) for path in files]
    described = f"{chosen.title} ({', '.join(path.name for path in files)})"
    if chosen.layout is Layout.INDEX_FOLDERS:
        return Plan(described, _StreamedSet(chosen, files[0], inputs[0]), {name: inputs})
    return Plan(described, ListedShards(_listed(chosen, files, inputs)), {name: inputs})


Located = MemberAt | ZipMember  # an image of a plain tar by offset, or of a zip by its record


def _listed(chosen: EvalSet, files: list[Path], inputs: list[InputFile]) -> list[Shard]:
    """One shard per class folder (C: per corruption, severity and class) of each file, and one
    of the members that belong nowhere, named as failures."""
    shards: list[Shard] = []
    unusable: list[Item] = []
    relabelled: list[str] = []

    def refuse(where: str, why: str) -> None:
        unusable.append(Item(where, None, None, f"refused: {why}"))

    for path, identity in zip(files, inputs, strict=True):
        snapshot = Snapshot.of(path.stat())  # before listing: every shard then reads what was listed
        groups: dict[tuple[str, str], list[Located]] = collections.defaultdict(list)
        for member, located in _members(path, refuse):
            placed = _placed(chosen, path.name, member, unusable)
            if placed is None:
                continue
            if placed.sat_in is not None:
                relabelled.append(f"{path.name}:{member}: its label is {placed.wnid}")
            groups[(placed.folder, placed.wnid)].append(located._replace(name=placed.name))
        for (folder, wnid), members in groups.items():
            read = _reader(path, members, snapshot)
            shards.append(Shard(chosen.name, wnid, len(members), read, None, (identity,), fingerprint(members), folder))
    if relabelled:
        warn_refiled(f"{len(relabelled)} images sit under another class than their val label's", relabelled)
    if unusable:
        shards.append(
            Shard(chosen.name, None, len(unusable), Blobs(tuple(unusable)), None, tuple(inputs), listing_of(unusable))
        )
    return sorted(shards, key=lambda shard: shard.key)


def _members(path: Path, refuse: archives.Refuse) -> Iterator[tuple[str, Located]]:
    """Each regular file of a plain tar (by its data's offset) or of the zip (by its record)."""
    if path.suffix != ".zip":
        for member in archives.tar_headers(path, lambda where, why: refuse(where.split(":", 1)[1], why)):
            yield member.name, MemberAt(member.name, member.offset_data, member.size)
        return
    for entry in zip_entries.entries(path):
        if why := archives.zip_member_refusal(entry):
            refuse(entry.name, why)
        elif not entry.is_dir:
            yield entry.name, ZipMember(entry.name, entry)


def _reader(path: Path, members: list[Located], snapshot: Snapshot) -> TarMembers | ZipMembers:
    if path.suffix == ".zip":
        return ZipMembers(path, tuple(m for m in members if isinstance(m, ZipMember)), snapshot)
    return TarMembers(path, tuple(m for m in members if isinstance(m, MemberAt)), snapshot)


def _placed(chosen: EvalSet, file: str, member: str, unusable: list[Item]) -> Placed | None:
    """Where a member goes; a member that belongs nowhere is noted as a failure (a README is no
    image and no failure)."""
    placed = evalsets.place(chosen, file, member)
    if isinstance(placed, Unplaced):
        unusable.append(Item(member, None, None, f"{placed.why}: not used"))
        return None
    return placed


class _StreamedSet(Shards):
    """ImageNetV2's ``.tar.gz``: read from start to end here, each run of one class a shard."""

    spreadable = False

    def __init__(self, chosen: EvalSet, path: Path, identity: InputFile) -> None:
        super().__init__()
        self.chosen, self.path, self.inputs = chosen, path, (identity,)

    def _cut(self) -> Iterator[Shard]:
        runs = ClassRuns(self.inputs, lambda items: Blobs(items), split=self.chosen.name)
        unusable: list[Item] = []

        def refuse(where: str, why: str) -> None:
            unusable.append(Item(where.split(":", 1)[1], None, None, f"refused: {why}"))

        with archives.open_tar_stream(self.path) as tar:
            for member, data in archives.tar_files(tar, self.path.name, refuse):
                placed = _placed(self.chosen, self.path.name, member.name, unusable)
                if placed is not None and (finished := runs.add(placed.wnid, Item(placed.name, None, data.read()))):
                    yield finished
        if finished := runs.flush():
            yield finished
        if unusable:
            yield Shard(
                self.chosen.name, None, len(unusable), Blobs(tuple(unusable)), None, self.inputs, listing_of(unusable)
            )
