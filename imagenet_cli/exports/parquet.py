"""Parquet shards with the features of Hugging Face's ``ILSVRC/imagenet-1k``.

``data/train-00000-of-000NN.parquet`` …, ``data/validation-…``; each row is ``image`` (a struct of
the tree's file ``bytes``, unchanged, and its ``path``, ``wnid/name``) and ``label`` (int64: the
sorted-WNID index, or a subset's own). The Arrow schema carries the ``datasets`` features (an
``Image`` and a ``ClassLabel`` with unique class names), and ``README.md`` is a dataset card whose
YAML names the features, splits and files, so ``datasets.load_dataset("parquet", data_dir=…)`` and
``datasets.load_dataset(DIR)`` both give decoded, labelled images. Needs the ``[parquet]`` extra.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from .. import atomic
from ..errors import MissingExtraError
from . import SPLIT_NAMES, Job, class_names, write_shards
from .record import ShardRecord
from .samples import Sample, SplitSamples
from .shard_file import ShardFile

SUFFIX = ".parquet"
SHARD_SIZES = {"train": 5000, "val": 5000}  # rows per file: about 500 MB of full-size JPEGs
CARD = "README.md"
ROW_GROUP_BYTES = 128 << 20  # row groups of at most ~128 MB: readers stream a group at a time


def require_pyarrow() -> tuple[ModuleType, ModuleType]:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise MissingExtraError.of("export parquet", "pyarrow", "parquet") from None
    return pyarrow, pyarrow.parquet


def check_source(tree: Path, root: Path) -> None:
    """Any tree will do (the bytes are copied), once pyarrow is there to write them."""
    require_pyarrow()


def shard_names(split: str, count: int) -> list[str]:
    return [f"data/{SPLIT_NAMES[split]}-{i:05d}-of-{count:05d}.parquet" for i in range(count)]


def features(names: list[str]) -> dict[str, Any]:
    """The ``datasets`` features, as its own ``Features.to_dict()`` writes them."""
    return {"image": {"_type": "Image"}, "label": {"names": names, "_type": "ClassLabel"}}


def write_split(job: Job, split: str, samples: SplitSamples) -> None:
    write_shards(job, split, samples)


def names_of(job: Job, split: str, count: int) -> list[str]:
    return shard_names(split, count)


def write_shard(job: Job, path: Path, group: list[Sample]) -> str:
    pa, pq = require_pyarrow()
    metadata = {"huggingface": json.dumps({"info": {"features": features(class_names(job.tree))}})}
    schema = pa.schema(
        [("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])), ("label", pa.int64())],
        metadata=metadata,
    )
    # JPEG does not compress: leaving compression off saves the time and changes nothing. Nor
    # does a dictionary find two images alike, and looking for one hashes every image's bytes:
    # without it the writer copies twice as fast.
    with atomic.atomic_writer(path) as file:
        out = ShardFile(file)
        with pq.ParquetWriter(out, schema, compression="none", use_dictionary=False) as writer:
            for rows in _row_groups(group):
                images = pa.StructArray.from_arrays(
                    [
                        binary_column(pa, [job.read(sample) for sample in rows]),
                        pa.array([sample.filename for sample in rows], pa.string()),
                    ],
                    names=["bytes", "path"],
                )
                labels = pa.array([sample.label for sample in rows], pa.int64())
                writer.write_table(pa.Table.from_arrays([images, labels], schema=schema), row_group_size=len(rows))
        return out.xxh3_64()


def binary_column(pa: ModuleType, values: list[bytes]) -> Any:
    """``pa.array(values, pa.binary())``, built from its two buffers: the bytes copied once into
    one buffer of the right size, where pyarrow's builder grows its buffer by copies as it goes
    (a 128 MB row group of images took 1.5-2.5x as long that way)."""
    offsets = pa.array(itertools.accumulate(map(len, values), initial=0), pa.int32())
    data = pa.allocate_buffer(offsets[-1].as_py())
    view, start = memoryview(data).cast("B"), 0
    for value in values:
        view[start : start + len(value)] = value
        start += len(value)
    return pa.Array.from_buffers(pa.binary(), len(values), [None, offsets.buffers()[1], data])


def _row_groups(samples: list[Sample]) -> list[list[Sample]]:
    groups: list[list[Sample]] = [[]]
    size = 0
    for sample in samples:
        if groups[-1] and size + sample.bytes > ROW_GROUP_BYTES:
            groups.append([])
            size = 0
        groups[-1].append(sample)
        size += sample.bytes
    return groups


def finish(job: Job) -> None:
    """The dataset card: ``load_dataset(DIR)`` reads its YAML for the features and the files."""
    names = class_names(job.tree)
    label_names = "".join(f"          '{i}': {json.dumps(name)}\n" for i, name in enumerate(names))
    splits = [
        (SPLIT_NAMES[split], count, sum(s.bytes for s in job.result.shards if s.split == split))
        for split, count in job.result.samples.items()
    ]
    split_lines = "".join(
        f"  - name: {name}\n    num_bytes: {size}\n    num_examples: {count}\n" for name, count, size in splits
    )
    file_lines = "".join(f"    - split: {name}\n      path: data/{name}-*\n" for name, _, _ in splits)
    card = (
        "---\n"
        "dataset_info:\n"
        "  features:\n"
        "  - name: image\n"
        "    dtype: image\n"
        "  - name: label\n"
        "    dtype:\n"
        "      class_label:\n"
        "        names:\n"
        f"{label_names}"
        "  splits:\n"
        f"{split_lines}"
        "configs:\n"
        "  - config_name: default\n"
        "    data_files:\n"
        f"{file_lines}"
        "---\n\n"
        f"# {job.name}, exported by imagenet-cli\n\n"
        f"ImageNet ILSVRC-2012 images from `{job.name}` with {len(names)} classes, as Parquet with the\n"
        "features of `ILSVRC/imagenet-1k`: `image` (the JPEG bytes, unchanged, and the path `wnid/name`)\n"
        "and `label`. Use is subject to the ImageNet terms of access.\n\n"
        "```python\n"
        "from datasets import load_dataset\n"
        'dataset = load_dataset("path/to/this/folder")\n'
        "```\n"
    )
    job.to.write_text(CARD, card)


def count_samples(path: Path) -> int:
    _, parquet = require_pyarrow()
    return int(parquet.ParquetFile(path).metadata.num_rows)


def own_file_problems(folder: Path, shards: Sequence[ShardRecord]) -> list[tuple[str, str, str]]:
    """The dataset card is written last by ``finish``: the shards say all there is to check."""
    return []
