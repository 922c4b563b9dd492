"""Exports written to object storage: a real S3 API (moto's server) on 127.0.0.1.

The export to ``s3://`` must hold the bytes an export to a folder holds, be read back by the
format's own readers straight from the bucket, keep what a re-run finds finished, leave nothing
half-made after kill -9 (no object a clean run would not write, no multipart upload), hold one
writer per prefix with a lease, and say each storage failure in one line without a secret.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagenet_cli import catalogue, leases
from imagenet_cli.errors import LockHeldError, OverwriteRefusedError
from imagenet_cli.exports import export
from imagenet_cli.storage import Bucket
from imagenet_cli.trees import plan

from .buckets import S3Proxy, S3Server, environment
from .conftest import imagenet, imagenet_process
from .test_straight import archives_only, files_of

pytest.importorskip("s3fs")


@pytest.fixture(autouse=True)
def short_stretches(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sample's 2.7 MB val tar in a bucket read in three stretches, not one of 64 MiB."""
    monkeypatch.setattr(plan, "STRETCH", 1 << 20)


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with S3Server() as server, environment(server.env):
        yield server


@pytest.fixture(scope="module")
def root(official_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return archives_only(official_root, tmp_path_factory.mktemp("root"))


@pytest.fixture(scope="module")
def local_export(root: Path) -> Path:
    """The same export to a folder: what every bucket export is compared with."""
    return export(root, "webdataset", size=32, shard_size=20).path


def published(s3: S3Server, bucket: str, prefix: str) -> dict[str, bytes]:
    """The export's files as a reader sees them: every object but the hidden ones and the record."""
    return {
        name: data
        for name, data in s3.objects(bucket, prefix + "/").items()
        if not name.startswith(".") and name != "export.json"
    }


def test_a_straight_export_to_s3_holds_the_folder_exports_bytes(s3: S3Server, root: Path, local_export: Path) -> None:
    s3.bucket("straight")
    result = export(root, "webdataset", size=32, shard_size=20, out="s3://straight/imagenet-wds")
    assert result.where == "s3://straight/imagenet-wds" and not result.failures
    assert published(s3, "straight", "imagenet-wds") == files_of(local_export), "byte for byte"
    record = json.loads(s3.objects("straight", "imagenet-wds/")["export.json"])
    assert [s["file"] for s in record["shards"]] == [s.file for s in result.shards]
    assert not any(name.startswith((".staged/", ".lock")) for name in s3.objects("straight", "imagenet-wds/"))
    assert not any(p.is_file() for p in (root / "exports" / ".spool").rglob("*") if not p.name.endswith(".lock"))

    again = export(root, "webdataset", size=32, shard_size=20, out="s3://straight/imagenet-wds")
    assert again.written == 0 and again.shards == result.shards, "a re-run keeps every finished shard"


def test_webdataset_reads_the_shards_from_the_bucket(s3: S3Server, root: Path) -> None:
    """Through ``pipe:``, as users read buckets with ``aws s3 cp URL -``: here a Python one-liner
    with s3fs and the same environment."""
    webdataset = pytest.importorskip("webdataset")
    s3.bucket("readback")
    result = export(root, "webdataset", size=32, shard_size=20, out="s3://readback/wds")
    reader = f'{sys.executable} -c "import s3fs,sys; sys.stdout.buffer.write(s3fs.S3FileSystem().cat(sys.argv[1]))"'
    urls = [f"pipe:{reader} readback/wds/{shard.file}" for shard in result.shards]
    seen: dict[str, int] = {}
    for sample in webdataset.WebDataset(urls, shardshuffle=False):
        meta = json.loads(sample["json"])
        assert sample["__key__"] not in seen, "every image once"
        seen[sample["__key__"]] = int(sample["cls"])
        assert int(sample["cls"]) == catalogue.by_wnid(meta["wnid"]).index
    assert len(seen) == sum(result.samples.values())


def test_parquet_in_a_bucket_loads_with_datasets_and_storage_options(
    s3: S3Server, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    s3.bucket("hub")
    result = export(root, "parquet", size=32, out="s3://hub/imagenet")
    options = {"endpoint_url": s3.endpoint, "key": "testing", "secret": "testing"}
    files = {"validation": "s3://hub/imagenet/data/validation-*.parquet"}
    loaded = datasets.load_dataset("parquet", data_files=files, split="validation", storage_options=options)
    assert len(loaded) == result.samples["val"]
    assert loaded[0]["image"].size == (32, 32) or min(loaded[0]["image"].size) == 32, "decoded images"
    for row in loaded.cast_column("image", datasets.Image(decode=False)):
        wnid = row["image"]["path"].split("/", 1)[0]
        assert row["label"] == catalogue.by_wnid(wnid).index


def test_a_tree_exported_to_s3_from_the_command_line(s3: S3Server, root: Path, tmp_path: Path) -> None:
    from imagenet_cli.trees import prepare

    tree_root = archives_only(root, tmp_path / "tree")
    prepare(tree_root, ["32"], workers=2)
    s3.bucket("trees")
    done = imagenet("export", "parquet", "--root", str(tree_root), "--out", "s3://trees/p", env=s3.env)
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("s3://trees/p: 2 parquet files")
    local = imagenet("export", "parquet", "--root", str(tree_root), "--out", str(tmp_path / "p"))
    assert local.exit_code == 0, local.output
    assert published(s3, "trees", "p") == files_of(tmp_path / "p")


def test_a_kill_mid_upload_then_a_rerun_gives_the_clean_runs_objects(
    s3: S3Server, root: Path, local_export: Path
) -> None:
    """kill -9 once shards are arriving; a multipart upload left by an earlier killed run waits too.
    The re-run takes over the dead writer's lease at once, aborts the upload and converges."""
    s3.bucket("killed")
    orphan = s3.client().create_multipart_upload(Bucket="killed", Key="wds/imagenet1k-train-0003.tar")
    s3.client().upload_part(Bucket="killed", Key="wds/imagenet1k-train-0003.tar", PartNumber=1,
                            UploadId=orphan["UploadId"], Body=b"x" * 1024)  # fmt: skip
    args = ["export", "webdataset", "--size", "32", "--shard-size", "20", "--workers", "1"]
    process = imagenet_process(*args, "--root", str(root), "--out", "s3://killed/wds", env={**os.environ, **s3.env})
    deadline = time.monotonic() + 60
    while not any(n.endswith(".tar") for n in s3.objects("killed", "wds/")) and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = s3.objects("killed", "wds/")
    assert LEASE_NAME in partial, "the killed writer's lease is still there"
    clean = _clean_run_objects(s3, root)
    finals = {name: data for name, data in partial.items() if not name.startswith(".")}
    assert finals and all(clean[name] == data for name, data in finals.items()), "only whole files a clean run writes"

    again = imagenet(*args, "--root", str(root), "--out", "s3://killed/wds", env=s3.env)
    assert again.exit_code == 0, again.output
    assert published(s3, "killed", "wds") == files_of(local_export)
    assert not s3.client().list_multipart_uploads(Bucket="killed").get("Uploads"), "no upload left behind"
    assert sorted(s3.objects("killed", "wds/")) == sorted(clean), "the same objects, the lease released"


LEASE_NAME = leases.LEASE


def _clean_run_objects(s3: S3Server, root: Path) -> dict[str, bytes]:
    s3.bucket("clean")
    export(root, "webdataset", size=32, shard_size=20, workers=1, out="s3://clean/wds")
    return s3.objects("clean", "wds/")


def test_one_writer_per_prefix(s3: S3Server, root: Path) -> None:
    s3.bucket("leased")
    bucket = Bucket("s3://leased/wds")
    with leases.leased(bucket):
        busy = imagenet("export", "webdataset", "--size", "32", "--root", str(root), "--out", "s3://leased/wds",
                        "--no-wait", env=s3.env)  # fmt: skip
        assert busy.exit_code == 1
        assert f"is busy: PID {os.getpid()}" in busy.stderr and "without --no-wait" in busy.stderr
        with pytest.raises(LockHeldError):
            export(root, "webdataset", size=32, out="s3://leased/wds", wait=False)
    assert bucket.info(leases.LEASE) is None, "released"


def test_a_lease_whose_holder_is_gone_is_taken_over(s3: S3Server) -> None:
    s3.bucket("stale")
    bucket = Bucket("s3://stale/p")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    here = leases.Holder(os.uname().nodename, int(dead.stdout), "t", time.time() + 600, bucket.url)
    bucket.write_bytes(leases.LEASE, json.dumps(here.__dict__).encode())
    with leases.leased(bucket, wait=False) as lease:  # its PID runs no longer on this host
        assert lease.holder.pid == os.getpid()
    elsewhere = leases.Holder("another-host", 1, "t", time.time() + 600, bucket.url)
    bucket.write_bytes(leases.LEASE, json.dumps(elsewhere.__dict__).encode())
    with pytest.raises(LockHeldError, match="PID 1 on another-host"):
        with leases.leased(bucket, wait=False):
            pass
    expired = leases.Holder("another-host", 1, "t", time.time() - 1, bucket.url)
    bucket.write_bytes(leases.LEASE, json.dumps(expired.__dict__).encode())
    with leases.leased(bucket, wait=False) as lease:
        assert lease.holder.host == os.uname().nodename


def test_a_lost_lease_stops_the_writer(s3: S3Server) -> None:
    """Paused past its term, a writer finds its lease taken at the next renewal, and stops."""
    s3.bucket("lost")
    bucket = Bucket("s3://lost/p")
    with leases.leased(bucket, term=0.3) as lease:
        successor = leases.Holder("another-host", 7, "u", time.time() + 600, bucket.url)
        bucket.write_bytes(leases.LEASE, json.dumps(successor.__dict__).encode())
        deadline = time.monotonic() + 10
        while lease.lost is None and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(LockHeldError, match="taken over by another writer.*PID 7 on another-host"):
            lease.check()
    assert json.loads(bucket.read_text(leases.LEASE) or "{}")["host"] == "another-host", "the successor's, kept"


def test_a_prefix_holding_other_objects_is_not_written(s3: S3Server, root: Path) -> None:
    s3.bucket("foreign")
    s3.client().put_object(Bucket="foreign", Key="data/notes.txt", Body=b"mine")
    with pytest.raises(OverwriteRefusedError, match="not written by export"):
        export(root, "webdataset", size=32, out="s3://foreign/data")
    assert s3.objects("foreign") == {"data/notes.txt": b"mine"}


def test_storage_failures_are_one_line_each_and_never_show_a_secret(s3: S3Server, root: Path, tmp_path: Path) -> None:
    base = ["export", "webdataset", "--size", "32", "--root", str(root)]
    missing = imagenet(*base, "--out", "s3://no-such-bucket/x", env=s3.env)
    assert missing.exit_code == 1
    assert missing.stderr.strip() == (
        "imagenet: error: s3://no-such-bucket: no such bucket — try checking the bucket's name, or creating it first"
    )
    secret = "SUPERSECRET-do-not-print"
    options = ["endpoint_url=http://127.0.0.1:9", f"secret={secret}", "key=someone",
               'config_kwargs={"retries": {"max_attempts": 1}}']  # fmt: skip
    for debug in ([], ["--debug"]):
        closed = imagenet_process(*base, "--out", "s3://b/x", *_each("--storage-option", options), *debug)
        stdout, stderr = closed.communicate(timeout=120)
        assert closed.returncode == 1
        assert secret not in stdout + stderr, "not even in a traceback"
        assert debug or stderr.strip() == (
            "imagenet: error: s3://b: the storage endpoint does not answer — try checking AWS_ENDPOINT_URL "
            "(or --storage-option endpoint_url=URL) and the network"
        )
    nobody = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    nobody |= {"AWS_ENDPOINT_URL": s3.endpoint, "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
               "AWS_CONFIG_FILE": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip
    anonymous = imagenet_process(*base, "--out", "s3://b/x", env=nobody)
    _, stderr = anonymous.communicate(timeout=120)
    assert anonymous.returncode == 1
    assert "s3://b: no credentials were found — try AWS_ACCESS_KEY_ID" in stderr, stderr
    with S3Proxy(s3.endpoint, deny=True) as proxy:
        reading = ["export", "webdataset", "--size", "32", "--root", str(tmp_path), "--from", "s3://b/ilsvrc"]
        for command in ([*base, "--out", "s3://b/x"], reading):
            denied = imagenet(*command, env={**s3.env, "AWS_ENDPOINT_URL": proxy.endpoint})
            assert denied.exit_code == 1 and len(denied.stderr.strip().splitlines()) == 1, denied.stderr
            assert denied.stderr.startswith("imagenet: error: s3://b: access denied"), denied.stderr
            assert denied.stderr.strip().endswith("— try credentials allowed to list, read and write that prefix")


def test_a_store_without_conditional_writes_is_not_written_to(root: Path) -> None:
    """fsspec's memory:// stands for gs:// and the rest: no lease can be held there, so no export."""
    done = imagenet("export", "webdataset", "--root", str(root), "--out", "memory://bucket/wds")
    assert done.exit_code == 1, done.output
    assert "memory:// is not written to: one writer per prefix needs conditional writes" in done.stderr
    assert "try an s3:// URL" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_storage_options_need_a_url(root: Path, tmp_path: Path) -> None:
    done = imagenet("export", "webdataset", "--size", "32", "--root", str(root), "--out", str(tmp_path / "x"),
                    "--storage-option", "anon=true")  # fmt: skip
    assert done.exit_code == 2 and "--storage-option applies to a URL of object storage" in done.stderr


def _each(option: str, values: list[str]) -> list[str]:
    return [word for value in values for word in (option, value)]


def test_verify_checks_an_export_in_a_bucket_where_it_is(s3: S3Server, root: Path) -> None:
    s3.bucket("checked")
    result = export(root, "webdataset", size=32, shard_size=20, out="s3://checked/wds")
    good = imagenet("verify", "s3://checked/wds", "--deep", "--json", "--root", str(root), env=s3.env)
    assert good.exit_code == 0, good.output
    (check,) = json.loads(good.stdout)["checks"]
    assert check["url"] == "s3://checked/wds" and check["counts"]["samples"] == sum(result.samples.values())

    client = s3.client()
    first, second = (shard.file for shard in result.shards[:2])
    body = bytearray(client.get_object(Bucket="checked", Key=f"wds/{first}")["Body"].read())
    body[-2000] ^= 0xFF  # same size, other bytes
    client.put_object(Bucket="checked", Key=f"wds/{first}", Body=bytes(body))
    client.delete_object(Bucket="checked", Key=f"wds/{second}")
    client.put_object(Bucket="checked", Key="wds/imagenet1k-train-9999.tar", Body=b"\0" * 1024)
    bad = imagenet("verify", "s3://checked/wds", "--json", "--root", str(root), env=s3.env)
    assert bad.exit_code == 3, bad.output
    found = {(p["kind"], p["where"]) for p in json.loads(bad.stdout)["checks"][0]["problems"]}
    assert found == {("checksum", first), ("missing", second), ("extra", "imagenet1k-train-9999.tar")}
    text = imagenet("verify", "s3://checked/wds", "--root", str(root), env=s3.env)
    assert f"wds: missing: {second}: in export.json, no such object" in text.stdout


def test_info_of_a_bucket_lists_its_exports(s3: S3Server, root: Path) -> None:
    s3.bucket("listed")
    export(root, "parquet", size=32, out="s3://listed/exports/parquet")
    export(root, "webdataset", size=32, shard_size=20, out="s3://listed/exports/wds")
    shown = imagenet("info", "s3://listed/exports", "--json", env=s3.env)
    assert shown.exit_code == 0, shown.output
    listed = json.loads(shown.stdout)
    assert [(e["name"], e["format"], e["path"]) for e in listed["exports"]] == [
        ("parquet", "parquet", "s3://listed/exports/parquet"),
        ("wds", "webdataset", "s3://listed/exports/wds"),
    ]
    one = imagenet("info", "s3://listed/exports/wds", env=s3.env)
    assert "bucket: s3://listed/exports/wds" in one.stdout and "webdataset" in one.stdout
    assert "next: imagenet verify s3://listed/exports/wds" in one.stdout


def test_503s_and_cut_bodies_on_the_way_leave_the_clean_runs_objects(
    s3: S3Server, root: Path, local_export: Path
) -> None:
    """Every third request with a body answered 503 SlowDown, every third response cut in half:
    the client's retries absorb them, and every object is whole."""
    s3.bucket("faulty")
    with S3Proxy(s3.endpoint, every=3) as proxy:
        env = {**s3.env, "AWS_ENDPOINT_URL": proxy.endpoint}
        done = imagenet("export", "webdataset", "--size", "32", "--shard-size", "20", "--root", str(root),
                        "--out", "s3://faulty/wds", env=env)  # fmt: skip
        assert done.exit_code == 0, done.output
        checked = imagenet("verify", "s3://faulty/wds", "--root", str(root), env=env)
        assert checked.exit_code == 0, checked.output
    assert proxy.refused >= 3 and proxy.cut >= 1, (proxy.refused, proxy.cut)
    assert published(s3, "faulty", "wds") == files_of(local_export)


def test_dask_workers_make_and_upload_the_shards_of_local_archives(
    s3: S3Server, root: Path, local_export: Path
) -> None:
    pytest.importorskip("distributed")
    s3.bucket("clustered")
    args = ["export", "webdataset", "--size", "32", "--shard-size", "20", "--dask", "local:2", "--root", str(root)]
    done = imagenet_process(*args, "--out", "s3://clustered/wds", env={**os.environ, **s3.env})
    _, stderr = done.communicate(timeout=300)
    assert done.returncode == 0, stderr
    assert published(s3, "clustered", "wds") == files_of(local_export)


def test_parquet_made_and_uploaded_by_dask_workers_is_the_folder_exports(s3: S3Server, root: Path) -> None:
    pytest.importorskip("distributed")
    s3.bucket("parquet-dask")
    export(root, "parquet", size=32, shard_size=40, dask="local:2", out="s3://parquet-dask/hf")
    local = export(root, "parquet", size=32, shard_size=40)
    assert published(s3, "parquet-dask", "hf") == files_of(local.path)


def test_trees_stay_local_and_a_missing_store_package_is_named(tmp_path: Path) -> None:
    for args in (
        ["prepare", "--size", "32", "--root", "s3://bucket/root"],
        ["subset", "--classes", "5", "--out", "gs://b/x"],
    ):
        done = imagenet(*args)
        assert done.exit_code == 2 and "must be a local folder: trees stay on a local disk" in done.stderr
    root = str(tmp_path / "root")
    for scheme, package, extra in (("gs", "gcsfs", "[gcs]'"), ("az", "adlfs", "")):
        if importlib.util.find_spec(package) is not None:
            continue  # installed: the store would be asked for real, which no test does
        done = imagenet("export", "webdataset", "--root", root, "--out", f"{scheme}://bucket/x")
        assert done.exit_code == 1
        assert f"{scheme}:// storage needs {package}: pip install " in done.stderr and extra in done.stderr


def test_changed_archives_make_the_bucket_export_again(s3: S3Server, official_root: Path, tmp_path: Path) -> None:
    """Other images in the archives: every object made from the old ones goes, the new ones come."""
    from imagenet_cli.download import download_sample

    root = archives_only(official_root, tmp_path / "root")
    s3.bucket("changed")
    export(root, "webdataset", size=32, shard_size=20, out="s3://changed/wds")
    download_sample(root, seed=5, train_per_class=3, val_per_class=2, test_images=3)
    remade = export(root, "webdataset", size=32, shard_size=20, out="s3://changed/wds")
    assert remade.written == len(remade.shards)
    clean = export(archives_only(root, tmp_path / "clean"), "webdataset", size=32, shard_size=20)
    assert published(s3, "changed", "wds") == files_of(clean.path), "nothing of the old export is left"
    assert not [name for name in s3.objects("changed", "wds/") if name.startswith(".staged/")]


# --- the archives in a bucket ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def archives_bucket(s3: S3Server, official_root: Path) -> dict[str, int]:
    """The sample's official archives uploaded to ``s3://archives/ilsvrc/``; their sizes by name."""
    s3.bucket("archives")
    sizes = {}
    for archive in sorted((official_root / "downloads").iterdir()):
        if archive.name.endswith((".tar", ".tar.gz")):
            s3.client().upload_file(str(archive), "archives", f"ilsvrc/{archive.name}")
            sizes[archive.name] = archive.stat().st_size
    return sizes


def test_archives_in_a_bucket_give_the_local_archives_shards(
    s3: S3Server, archives_bucket: dict[str, int], local_export: Path, official_root: Path, tmp_path: Path
) -> None:
    """Read by range through a proxy that counts every byte served: the archives once, at most
    (the train tar's 1000 headers, each class tar's range, val's members, the devkit)."""
    root = tmp_path / "root"
    with S3Proxy(s3.endpoint) as proxy, environment({"AWS_ENDPOINT_URL": proxy.endpoint}):
        result = export(root, "webdataset", size=32, shard_size=20, source="s3://archives/ilsvrc")
    assert files_of(result.path) == files_of(local_export), "byte for byte the local archives' export"
    assert not (root / "downloads").exists() and not list(root.rglob("*.tar.gz")), "nothing fetched whole"
    read = sum(proxy.served.values())
    used = sum(size for name, size in archives_bucket.items() if "test" not in name)  # test: not asked for
    assert read <= 1.05 * used, f"{read:,} bytes read for {used:,} bytes of archives"
    record = json.loads((result.path / "export.json").read_text())
    assert record["source"] == "s3://archives/ilsvrc"
    assert {i["path"] for i in record["inputs"]} >= {"s3://archives/ilsvrc/ILSVRC2012_img_train.tar"}
    index = record["train_tar_index"]
    with tarfile.open(official_root / "downloads" / "ILSVRC2012_img_train.tar") as train:
        class_tars = [[m.name, m.offset_data, m.size] for m in train.getmembers()]
    assert index["url"] == "s3://archives/ilsvrc/ILSVRC2012_img_train.tar" and index["members"] == class_tars

    again = export(root, "webdataset", size=32, shard_size=20, source="s3://archives/ilsvrc")
    assert again.written == 0, "a re-run with the same objects does nothing"


def test_slow_bytes_from_the_store_give_the_same_shards(
    s3: S3Server, archives_bucket: dict[str, int], local_export: Path, tmp_path: Path
) -> None:
    with S3Proxy(s3.endpoint, slow=True) as proxy, environment({"AWS_ENDPOINT_URL": proxy.endpoint}):
        result = export(tmp_path / "root", "webdataset", size=32, shard_size=20, source="s3://archives/ilsvrc")
    assert files_of(result.path) == files_of(local_export) and proxy.pauses > 100


def test_a_val_image_in_two_stretches_is_used_by_neither(s3: S3Server, official_root: Path, tmp_path: Path) -> None:
    """The first val image again at the val tar's end, in another stretch than the first copy:
    neither is exported and the image is named, as from the same archives on a disk."""
    local = archives_only(official_root, tmp_path / "local")
    val = local / "downloads" / "ILSVRC2012_img_val.tar"
    with tarfile.open(val) as tar:
        members = [(member, tar.extractfile(member).read()) for member in tar.getmembers()]  # type: ignore[union-attr]
    with tarfile.open(val, "w", format=tarfile.GNU_FORMAT) as tar:
        for member, data in [*members, members[0]]:
            tar.addfile(member, io.BytesIO(data))
    s3.bucket("twice")
    for archive in (local / "downloads").glob("ILSVRC2012_[di]*"):
        s3.client().upload_file(str(archive), "twice", f"ilsvrc/{archive.name}")
    remote = export(tmp_path / "root", "webdataset", size=32, shard_size=20, source="s3://twice/ilsvrc")
    disk = export(local, "webdataset", size=32, shard_size=20)
    assert files_of(remote.path) == files_of(disk.path)
    name = members[0][0].name.rsplit("/", 1)[-1]
    assert [f.where for f in remote.failures if f.name == name] == [f.where for f in disk.failures if f.name == name]
    assert [f.error for f in remote.failures if f.name == name] == ["appears twice in the input: neither copy is used"]


def test_val_alone_reads_no_train_byte(s3: S3Server, archives_bucket: dict[str, int], tmp_path: Path) -> None:
    with S3Proxy(s3.endpoint) as proxy, environment({"AWS_ENDPOINT_URL": proxy.endpoint}):
        done = imagenet("export", "parquet", "--size", "32", "--splits", "val", "--from", "s3://archives/ilsvrc",
                        "--root", str(tmp_path / "root"), "--out", "s3://archives/val-only")  # fmt: skip
    assert done.exit_code == 0, done.output
    assert not [path for path in proxy.served if "img_train" in path], "not one byte of the train tar"
    assert any("img_val" in path for path in proxy.served)


def test_a_bucket_export_from_a_bucket_under_faults_and_on_a_cluster(
    s3: S3Server, archives_bucket: dict[str, int], local_export: Path, tmp_path: Path
) -> None:
    """503s and bodies cut in half on every third request, reads and uploads alike, with the
    images made on a local Dask cluster whose workers read their ranges from the bucket."""
    pytest.importorskip("distributed")
    s3.bucket("both")
    with S3Proxy(s3.endpoint, every=3) as proxy:
        args = ["export", "webdataset", "--size", "32", "--shard-size", "20", "--dask", "local:2"]
        env = {**os.environ, **s3.env, "AWS_ENDPOINT_URL": proxy.endpoint}
        where = ["--from", "s3://archives/ilsvrc", "--out", "s3://both/wds", "--root", str(tmp_path / "root")]
        done = imagenet_process(*args, *where, env=env)
        _, stderr = done.communicate(timeout=300)
        assert done.returncode == 0, stderr
    assert proxy.cut >= 1 and proxy.refused >= 1
    assert published(s3, "both", "wds") == files_of(local_export)


def test_a_cluster_sharing_only_the_bucket_makes_the_shards(
    s3: S3Server, archives_bucket: dict[str, int], local_export: Path, tmp_path: Path
) -> None:
    """Dask workers that may open nothing under this test's folder (the client's root, its spool
    and staging: an audit hook refuses it) and reach the store through a proxy of their own. They
    read the archives' ranges, put the packs and the shards in the bucket; the client's own
    requests carry no image: the train tar's headers, val's, the devkit and small records."""
    distributed = pytest.importorskip("distributed")
    s3.bucket("apart")
    with (
        S3Proxy(s3.endpoint) as theirs,
        S3Proxy(s3.endpoint) as ours,
        distributed.LocalCluster(  # one worker thread: still no shard made here
            n_workers=1,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=":0",
            env={"AWS_ENDPOINT_URL": theirs.endpoint},
        ) as cluster,
        distributed.Client(cluster) as client,
        environment({"AWS_ENDPOINT_URL": ours.endpoint}),
    ):
        client.run(refuse_paths_under, str(tmp_path))
        with pytest.raises(Exception, match="refused"):  # the hook bites
            client.submit(Path.read_bytes, tmp_path / "anything", pure=False).result()
        source, out = "s3://archives/ilsvrc", "s3://apart/wds"
        result = export(tmp_path / "root", "webdataset", size=32, shard_size=20, source=source, out=out,
                        dask=cluster.scheduler_address)  # fmt: skip
    assert published(s3, "apart", "wds") == files_of(local_export) and not result.failures
    shards = [f"/apart/wds/{name}" for name in published(s3, "apart", "wds") if name.endswith(".tar")]
    assert all(theirs.received[path] for path in shards), "every shard uploaded by a worker"
    assert not [path for path in ours.received if "/.packs/" in path or path in shards]
    assert [path for path in theirs.received if "/.staged/.packs/" in path], "the packs, by the workers"
    assert not [path for path in ours.served if "/.packs/" in path]
    for name, size in archives_bucket.items():
        if "devkit" not in name:
            assert ours.served[f"/archives/ilsvrc/{name}"] < 0.2 * size, f"{name}: headers at most"
    assert not s3.objects("apart", "wds/.staged/"), "the staging is gone from the bucket"


def test_a_pack_gone_from_the_bucket_is_made_again(
    s3: S3Server, archives_bucket: dict[str, int], tmp_path: Path
) -> None:
    """Staged on a cluster with the packs in the bucket: a pack that went from there (a lifecycle
    rule, a hand) is missed in one listing, and its shard alone is made again, under its name."""
    pytest.importorskip("distributed")
    from imagenet_cli.trees import Staged, stage
    from imagenet_cli.trees.resize import Recipe
    from imagenet_cli.trees.shards import PacksIn, Sink

    s3.bucket("packs")
    making, folder = Recipe(("32",)).applied_to("32"), tmp_path / "staged"

    def staged() -> Staged:
        return stage(tmp_path / "root", making, folder, splits=["val"], dask="local:1", sink=Sink.packs,
                     archives_at="s3://archives/ilsvrc", packs_in=PacksIn("s3://packs/staging"))  # fmt: skip

    first = staged()
    packs = s3.objects("packs", "staging/")
    assert first.result.shards_run == len(packs) > 1 and not list(folder.rglob("*.pack"))
    s3.client().delete_object(Bucket="packs", Key=f"staging/{min(packs)}")
    again = staged()
    assert again.result.shards_run == 1
    assert s3.objects("packs", "staging/") == packs


def test_a_stopped_staging_reads_the_tars_index_not_their_headers(
    s3: S3Server, archives_bucket: dict[str, int], tmp_path: Path
) -> None:
    """The train tar's 1000 headers cost a request each: listed once, kept as JSON beside the
    staging for the very object read, not read again by a re-run (val is read in stretches)."""
    from imagenet_cli.trees import stage
    from imagenet_cli.trees.resize import Recipe

    making, folder = Recipe(("32",)).applied_to("32"), tmp_path / "staged"
    stage(tmp_path / "root", making, folder, archives_at="s3://archives/ilsvrc", workers=1)
    assert [p.name for p in (folder / ".index").iterdir()] == ["ILSVRC2012_img_train.tar.json"]
    with S3Proxy(s3.endpoint) as proxy, environment({"AWS_ENDPOINT_URL": proxy.endpoint}):
        again = stage(tmp_path / "root", making, folder, archives_at="s3://archives/ilsvrc", workers=1)
    assert again.result.shards_run == 0
    assert not [path for path in proxy.served if "_img_train" in path], "no header read again"


def refuse_paths_under(folder: str) -> None:
    """Runs on each worker: from now on, opening, listing or making anything under ``folder`` raises."""

    def hook(event: str, args: tuple[object, ...]) -> None:
        watched = ("open", "os.listdir", "os.scandir", "os.mkdir", "os.rename", "os.remove")
        if event in watched and args and isinstance(args[0], str | Path) and str(args[0]).startswith(folder):
            raise PermissionError(f"{event} {args[0]}: refused, no disk is shared with the client")

    sys.addaudithook(hook)


def test_an_object_rewritten_while_it_is_read_fails_that_read(s3: S3Server) -> None:
    """Each ranged read asks for the version listed (If-Match): no bytes of two versions mix."""
    from imagenet_cli.errors import InputChangedError
    from imagenet_cli.storage import RemoteFolder

    s3.bucket("rewritten")
    Bucket("s3://rewritten/x").write_bytes("a.tar", b"0" * 100_000)
    with (RemoteFolder("s3://rewritten/x") / "a.tar").open(buffered=False) as file:
        assert file.read(10) == b"0" * 10
        Bucket("s3://rewritten/x").write_bytes("a.tar", b"1" * 100_000)
        with pytest.raises(InputChangedError, match="a.tar was rewritten while it was read"):
            file.read(10)


def test_reading_ahead_fetches_each_byte_once_and_follows_seeks(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """While one piece is worked on the next is fetched: a stream reads each byte once, and a seek
    (within the piece read ahead, or elsewhere) still reads what is there."""
    from imagenet_cli import storage

    monkeypatch.setattr(storage, "CHUNK", 64 << 10)
    s3.bucket("ahead")
    data = os.urandom(300_000)
    Bucket("s3://ahead/x").write_bytes("blob", data)
    with S3Proxy(s3.endpoint) as proxy, environment({"AWS_ENDPOINT_URL": proxy.endpoint}):
        remote = storage.RemoteFolder("s3://ahead/x") / "blob"
        with remote.open() as file:
            assert b"".join(iter(lambda: file.read(10_000), b"")) == data
        assert proxy.served["/ahead/x/blob"] == len(data)
        with remote.open() as file:
            for at, size in ((70_000, 1000), (140_000, 70_000), (10, 5), (299_990, 100)):
                file.seek(at)
                assert file.read(size) == data[at : at + size]


def test_a_changed_archive_object_makes_the_export_again(s3: S3Server, official_root: Path, tmp_path: Path) -> None:
    from imagenet_cli.download import download_sample

    s3.bucket("moving")
    upload = s3.client().upload_file
    for archive in (official_root / "downloads").glob("ILSVRC2012_[id]*"):
        upload(str(archive), "moving", f"ilsvrc/{archive.name}")
    root = tmp_path / "root"
    export(root, "webdataset", size=32, shard_size=20, source="s3://moving/ilsvrc")
    other = tmp_path / "other"
    download_sample(other, seed=5, train_per_class=3, val_per_class=2, test_images=0)
    upload(str(other / "downloads" / "ILSVRC2012_img_train.tar"), "moving", "ilsvrc/ILSVRC2012_img_train.tar")
    upload(str(other / "downloads" / "ILSVRC2012_img_val.tar"), "moving", "ilsvrc/ILSVRC2012_img_val.tar")
    remade = imagenet("export", "webdataset", "--size", "32", "--shard-size", "20", "--from", "s3://moving/ilsvrc",
                      "--root", str(root), env=s3.env)  # fmt: skip
    assert remade.exit_code == 0, remade.output
    assert "changed since" in remade.stderr and "making it again" in remade.stderr
    local = export(archives_only(other, tmp_path / "local"), "webdataset", size=32, shard_size=20)
    mine = root / "exports" / "webdataset-32-archives"
    assert {k: v for k, v in files_of(mine).items() if "train" in k} == {
        k: v for k, v in files_of(local.path).items() if "train" in k
    }


def test_the_kaggle_zip_in_a_bucket_is_read_by_its_directory_and_ranges(
    s3: S3Server, kaggle_root: Path, tmp_path: Path
) -> None:
    """The zip's end records and central directory, then each class's members in one pass up to
    the last one's end and val's one by one: the bytes of the local zip's export, the zip once."""
    zip_path = kaggle_root / "downloads" / "imagenet-object-localization-challenge.zip"
    s3.bucket("kaggle")
    s3.client().upload_file(str(zip_path), "kaggle", f"bundle/{zip_path.name}")
    with S3Proxy(s3.endpoint) as proxy, environment({"AWS_ENDPOINT_URL": proxy.endpoint}):
        result = export(tmp_path / "root", "webdataset", size=32, shard_size=20, source="s3://kaggle/bundle")
    local = export(archives_only(kaggle_root, tmp_path / "local"), "webdataset", size=32, shard_size=20)
    assert files_of(result.path) == files_of(local.path) and not result.failures
    read, size = sum(proxy.served.values()), zip_path.stat().st_size
    assert read <= 1.05 * size, f"{read:,} bytes read of a {size:,}-byte zip"


def test_workers_that_cannot_reach_the_bucket_are_named_before_any_work(
    s3: S3Server, archives_bucket: dict[str, int], tmp_path: Path
) -> None:
    """Workers whose environment names another endpoint (a closed port here): the export stops at
    the worker check, naming the worker and the object, with nothing made."""
    distributed = pytest.importorskip("distributed")
    from imagenet_cli.errors import ClusterError

    elsewhere = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1"}
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, host="127.0.0.1", dashboard_address=":0", env=elsewhere
    ) as local:
        with pytest.raises(ClusterError, match=r"Dask worker .* cannot reach s3://archives/ilsvrc/ILSVRC2012_img_"):
            export(
                tmp_path / "root", "webdataset", size=32, source="s3://archives/ilsvrc", dask=local.scheduler_address
            )
    assert not list((tmp_path / "root").rglob("*.tar"))
