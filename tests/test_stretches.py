"""A flat tar read in stretches (val from a bucket): cut anywhere, every member comes once.

Each stretch finds its first header by checksum and magic, reads its members as a stream and
leaves the member whose headers begin past its end to the next one. Whatever the cut, the
stretches together give every member of the tar once, in order, with its bytes, long names
(GNU and pax extended headers) included.
"""

from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from imagenet_cli.trees.readers import TarStretch
from imagenet_cli.val_labels import NOT_A_VAL_NAME

LABELS = tuple(f"n{number:08d}" for number in range(50_000))  # any table of 50,000 WNIDs
LONG = "a-folder-name-long-enough-that-the-member-needs-an-extended-header/" * 2


def member_names(numbers: list[int], long: list[bool], odd: list[bool] | None = None) -> list[str]:
    """Val images' names, some under a folder long enough to need an extended header, some no val
    image's name (``odd``)."""
    return [
        f"{LONG if far else ''}{'not-a-val-image' if strange else 'ILSVRC2012_val'}_{n:08d}.JPEG"
        for n, far, strange in zip(numbers, long, odd or [False] * len(numbers), strict=True)
    ]


def write_tar(path: Path, names: list[str], sizes: list[int], tar_format: int) -> None:
    with tarfile.open(path, "w", format=tar_format) as tar:
        for number, (name, size) in enumerate(zip(names, sizes, strict=True)):
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, io.BytesIO(bytes([number % 251]) * size))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 6000), st.booleans(), st.booleans()), min_size=1, max_size=40),
    st.integers(1, 40),
    st.sampled_from([tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT]),
)
def test_stretches_give_every_member_once_in_order(
    members: list[tuple[int, bool, bool]], blocks: int, tar_format: int
) -> None:
    sizes = [size for size, _, _ in members]
    long = [far and tar_format != tarfile.USTAR_FORMAT for _, far, _ in members]  # ustar: short names only
    odd = [strange for _, _, strange in members]
    names = member_names(list(range(1, len(members) + 1)), long, odd)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "val.tar"
        write_tar(path, names, sizes, tar_format)
        length, stretch = path.stat().st_size, blocks * tarfile.BLOCKSIZE
        read = [
            item
            for start in range(0, length, stretch)
            for item in TarStretch(path, start, min(start + stretch, length), LABELS).items()
        ]
    expected = [
        name if strange else f"{LABELS[number - 1]}/{name.rsplit('/', 1)[-1]}"
        for number, (name, strange) in enumerate(zip(names, odd, strict=True), 1)
    ]
    assert [item.name if item.problem else f"{item.wnid}/{item.name}" for item in read] == expected
    for number, (item, size) in enumerate(zip(read, sizes, strict=True)):
        assert item.problem == (NOT_A_VAL_NAME if odd[number] else None)
        assert item.problem or item.data == bytes([number % 251]) * size


def test_a_damaged_end_is_named_by_the_last_stretch(tmp_path: Path) -> None:
    path = tmp_path / "val.tar"
    write_tar(path, member_names([1, 2], [False, False]), [700, 900], tarfile.GNU_FORMAT)
    with path.open("ab") as file:
        file.write(b"\1" * 512)  # bytes after the end-of-archive zeros
    length = path.stat().st_size
    last = list(TarStretch(path, 1024, length, LABELS).items())
    assert [item.name for item in last] == ["ILSVRC2012_val_00000002.JPEG", "val.tar"]
    assert last[-1].problem is not None and "damaged" in last[-1].problem
