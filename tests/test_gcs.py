"""Archives read from Google Cloud Storage (gs://) through gcsfs, against a GCS emulator on 127.0.0.1.

gcp-storage-emulator speaks GCS's JSON API: listings, objects, ranged reads. It has no gRPC, so
gcsfs's probe of a bucket's layout over gRPC (on by default in recent gcsfs) is turned off with
its own switch, ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false``. It does not hold writes to their
preconditions either, which is why no test here writes an export to gs:// (and why the tool
refuses to: one writer per prefix needs them).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import imagenet_process
from .test_straight import archives_only, files_of

# Not imported here: gcsfs reads its switch when it is imported, in the export's own process.
if importlib.util.find_spec("gcsfs") is None:
    pytest.skip("gcsfs is not installed", allow_module_level=True)
emulator = pytest.importorskip("gcp_storage_emulator.server")


@pytest.fixture(scope="module")
def gcs() -> Iterator[dict[str, str]]:
    """The emulator on a free port of 127.0.0.1 with the bucket ``archives``; the environment a
    process needs to use it as its GCS."""
    server = emulator.create_server("127.0.0.1", 0, in_memory=True, default_bucket="archives")
    server.start()
    try:
        server._api.is_running.wait(10)
        host, port = server._api._httpd.server_address
        yield {"STORAGE_EMULATOR_HOST": f"http://{host}:{port}", "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}
    finally:
        server.stop()


def test_archives_in_gcs_give_the_local_archives_shards(
    gcs: dict[str, str], official_root: Path, tmp_path: Path
) -> None:
    upload = f"{gcs['STORAGE_EMULATOR_HOST']}/upload/storage/v1/b/archives/o"
    for archive in (official_root / "downloads").glob("ILSVRC2012_[di]*"):
        query = {"uploadType": "media", "name": f"ilsvrc/{archive.name}"}
        httpx.post(upload, params=query, content=archive.read_bytes(), timeout=60).raise_for_status()
    args = ["export", "webdataset", "--size", "32", "--shard-size", "20", "--from", "gs://archives/ilsvrc"]
    done = imagenet_process(*args, "--storage-option", "token=anon", "--root", str(tmp_path / "root"),
                            env={**os.environ, **gcs})  # fmt: skip
    _, stderr = done.communicate(timeout=300)
    assert done.returncode == 0, stderr[-2000:]
    local = archives_only(official_root, tmp_path / "local")
    from imagenet_cli.exports import export

    expected = export(local, "webdataset", size=32, shard_size=20).path
    made = tmp_path / "root" / "exports" / "webdataset-32-archives"
    assert files_of(made) == files_of(expected)
