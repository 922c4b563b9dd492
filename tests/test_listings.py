"""How a plan holds what it listed: val's members packed, and each shard's listing digest the same
whether it is made at once or a member at a time (a tree made before keeps its val shards)."""

from __future__ import annotations

import pickle
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from imagenet_cli import archives, catalogue
from imagenet_cli.inputs import Fingerprint, describe, fingerprint
from imagenet_cli.trees import plan
from imagenet_cli.trees.readers import MemberAt, PackedMembers, TarMembers

# A tar name holds no NUL; anything else may come, undecodable bytes included (surrogateescape).
NAMES = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=40) | st.just("caf\udce9.JPEG")
MEMBERS = st.lists(st.builds(MemberAt, NAMES, st.integers(0, 2**40), st.integers(0, 2**31)), max_size=30)


@given(MEMBERS)
def test_packed_members_give_back_each_member_as_it_was_added(members: list[MemberAt]) -> None:
    packed = PackedMembers()
    for member in members:
        packed.append(member)
    assert list(packed) == members and len(packed) == len(members)
    assert pickle.loads(pickle.dumps(packed)) == packed  # as a worker receives it


@given(st.lists(st.one_of(MEMBERS, st.text(), st.integers(), st.tuples(st.text(), st.integers()))))
def test_a_fingerprint_made_a_part_at_a_time_is_the_one_made_at_once(parts: list[object]) -> None:
    made = Fingerprint()
    for part in parts:
        made.add(part)
    assert made.digest() == fingerprint(parts)


def test_val_shards_hold_their_members_packed_with_the_listing_they_always_had(official_root: Path) -> None:
    downloads = official_root / "downloads"
    wnids = catalogue.wnids()
    labels = tuple(wnids[number % 3] for number in range(catalogue.NUM_VAL_IMAGES))
    val = downloads / archives.VAL_TAR
    planned = plan._plan_official({"val": val}, labels, {"val": [describe(val, downloads)]}, downloads)
    shards = [shard for shard in planned if shard.wnid is not None]
    held = 0
    for shard in shards:
        reader = shard.reader
        assert isinstance(reader, TarMembers) and isinstance(reader.members, PackedMembers)
        assert shard.listing == fingerprint(list(reader.members)), "as the listing of a tuple of MemberAt was"
        assert {labels[int(member.name[15:23]) - 1] for member in reader.members} == {shard.wnid}
        held += len(reader.members)
    assert len(shards) == 3 and held == sum(1 for _ in archives.tar_headers(val, lambda *_: None))
