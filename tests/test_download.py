"""``imagenet download`` end to end through the real CLI, against servers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from imagenet_cli import archives, sample
from imagenet_cli.download import kaggle
from imagenet_cli.download.kaggle import find_credentials
from imagenet_cli.errors import EXIT_ERROR, EXIT_USAGE
from imagenet_cli.records import DownloadRecord

from .conftest import imagenet, imagenet_process
from .servers import FakeKaggle, FileServer

OFFICIAL_DEFAULT = [archives.TRAIN_TAR, archives.VAL_TAR, archives.DEVKIT]


@pytest.fixture(scope="module")
def official_files(official_root: Path) -> dict[str, bytes]:
    """The sample's official archives: what a mirror of the real ones would serve."""
    return {name: (official_root / "downloads" / name).read_bytes() for name in sample.OFFICIAL_FILES}


@pytest.fixture
def checksums(official_files: dict[str, bytes], tmp_path: Path) -> Path:
    """The mirror's own MD5SUMS: the sample is not the published ImageNet, so its sums are its own."""
    path = tmp_path / "MD5SUMS"
    path.write_text("".join(f"{hashlib.md5(d).hexdigest()}  {n}\n" for n, d in official_files.items()))
    return path


def test_official_from_a_static_mirror_is_exact(
    official_files: dict[str, bytes], checksums: Path, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    with FileServer(official_files) as server:
        result = imagenet(
            "download",
            "--source",
            "official",
            "--base-url",
            server.base_url,
            "--checksums",
            str(checksums),
            "--root",
            str(root),
            "--json",
        )
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)
        assert [f["name"] for f in summary["files"]] == OFFICIAL_DEFAULT
        assert {f["status"] for f in summary["files"]} == {"downloaded"}
        for name in OFFICIAL_DEFAULT:
            path = root / "downloads" / name
            assert path.read_bytes() == official_files[name]
            record = DownloadRecord.read(path)
            assert record.source == "official" and record.md5 == hashlib.md5(official_files[name]).hexdigest()
            assert record.etag == server.etags[name] and record.url == server.url(name)

        requests_before = len(server.requests)
        again = imagenet(
            "download",
            "--source",
            "official",
            "--base-url",
            server.base_url,
            "--checksums",
            str(checksums),
            "--root",
            str(root),
        )
        assert again.exit_code == 0 and again.stdout.count("kept") == 3
        assert len(server.requests) == requests_before, "complete, recorded files are kept without any request"

    info = json.loads(imagenet("info", "--root", str(root), "--json").stdout)
    assert {a["name"]: a["record"] for a in info["archives"]} == dict.fromkeys(OFFICIAL_DEFAULT, "ok")


def test_published_md5_is_checked_by_default(official_files: dict[str, bytes], tmp_path: Path) -> None:
    """Without the mirror's sums the catalogue's published MD5 applies, and the sample fails it."""
    with FileServer(official_files) as server:
        result = imagenet(
            "download",
            "--source",
            "official",
            "--base-url",
            server.base_url,
            "--files",
            archives.DEVKIT,
            "--root",
            str(tmp_path),
        )
    assert result.exit_code == EXIT_ERROR
    [line] = result.stderr.splitlines()
    assert "published" not in line or "md5" in line
    assert "ILSVRC2012_devkit_t12.tar.gz has md5" in line and "fa75699e90414af021442c21a62c3abf" in line
    assert not (tmp_path / "downloads" / archives.DEVKIT).exists()
    assert (tmp_path / "downloads" / f"{archives.DEVKIT}.md5-mismatch").exists()


def test_published_size_mismatch_through_the_cli(official_files: dict[str, bytes], tmp_path: Path) -> None:
    with FileServer(official_files) as server:
        result = imagenet(
            "download",
            "--source",
            "official",
            "--base-url",
            server.base_url,
            "--files",
            archives.VAL_TAR,
            "--root",
            str(tmp_path),
        )
    assert result.exit_code == EXIT_ERROR
    assert "the published ILSVRC2012_img_val.tar is 6,744,924,160 bytes" in result.stderr
    assert "--checksums" in result.stderr


def test_dry_run_fetches_nothing(official_files: dict[str, bytes], checksums: Path, tmp_path: Path) -> None:
    with FileServer(official_files) as server:
        result = imagenet(
            "download",
            "--source",
            "official",
            "--base-url",
            server.base_url,
            "--checksums",
            str(checksums),
            "--root",
            str(tmp_path),
            "--dry-run",
        )
        assert all(r[2] == "bytes=0-0" for r in server.requests), "only probes"
    assert result.exit_code == 0, result.output
    assert result.stdout.count("would fetch") == 4  # three rows and the summary
    assert "free there" in result.stdout
    assert not (tmp_path / "downloads").exists() or not any((tmp_path / "downloads").iterdir())


def test_headers_and_cookies_are_sent(official_files: dict[str, bytes], checksums: Path, tmp_path: Path) -> None:
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tsessionid\tabc123\n")
    seen = []

    class Recording(FileServer):
        def handle_other(self, handler: BaseHTTPRequestHandler) -> bool:
            seen.append((handler.headers.get("X-Token"), handler.headers.get("Cookie")))
            return False

    with Recording(official_files) as server:
        result = imagenet(
            "download",
            "--source",
            "official",
            "--base-url",
            server.base_url,
            "--files",
            archives.DEVKIT,
            "--checksums",
            str(checksums),
            "--cookies",
            str(cookies),
            "--header",
            "X-Token: t0k",
            "--root",
            str(tmp_path),
        )
    assert result.exit_code == 0, result.output
    assert seen and all(s == ("t0k", "sessionid=abc123") for s in seen)


class Redirecting(FileServer):
    """A mirror whose every file answers 302 to the same path on another host."""

    def __init__(self, files: dict[str, bytes], to: FileServer) -> None:
        super().__init__(files)
        self.to = to

    def handle_other(self, handler: BaseHTTPRequestHandler) -> bool:
        handler.send_response(302)
        handler.send_header("Location", self.to.base_url + handler.path.lstrip("/"))
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return True


class Recording(FileServer):
    def __init__(self, files: dict[str, bytes], host: str) -> None:
        super().__init__(files, host=host)
        self.seen: list[tuple[str | None, str | None, str | None]] = []

    def handle_other(self, handler: BaseHTTPRequestHandler) -> bool:
        self.seen.append(
            (handler.headers.get("X-Auth-Token"), handler.headers.get("Authorization"), handler.headers.get("Cookie"))
        )
        return False


@pytest.mark.parametrize("trusted", [False, True])
def test_a_redirect_to_another_host_gets_no_credentials(
    official_files: dict[str, bytes], checksums: Path, tmp_path: Path, trusted: bool
) -> None:
    """Like curl: --header, Authorization and cookies stay with the host they were given for."""
    cookies = tmp_path / "cookies.txt"
    cookies.write_text("# Netscape HTTP Cookie File\n127.0.0.2\tFALSE\t/\tFALSE\t0\tsessionid\tabc123\n")
    credentials = [
        "--header",
        "X-Auth-Token: s3cret",
        "--header",
        "Authorization: Bearer t0k",
        "--cookies",
        str(cookies),
    ]
    trust = ["--trust-host", "127.0.0.2"] if trusted else []
    try:
        other_host = Recording(official_files, host="127.0.0.2")
    except OSError:
        pytest.skip("127.0.0.2 is not a loopback address here")
    with other_host as storage, Redirecting(official_files, to=storage) as mirror:
        result = imagenet(
            "download",
            "--source",
            "official",
            "--base-url",
            mirror.base_url,
            "--files",
            archives.DEVKIT,
            "--checksums",
            str(checksums),
            *credentials,
            *trust,
            "--root",
            str(tmp_path),
        )
        assert result.exit_code == 0, result.output
        assert mirror.requests and storage.seen
        expected = ("s3cret", "Bearer t0k", "sessionid=abc123") if trusted else (None, None, None)
        assert set(storage.seen) == {expected}
    assert (tmp_path / "downloads" / archives.DEVKIT).read_bytes() == official_files[archives.DEVKIT]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--header", "no colon"], "is not in the form 'Name: value'"),
        (["--files", "ILSVRC2012_img_everything.tar"], "not official ILSVRC-2012 archives"),
        (["--base-url", "ftp://example.org/"], "is not an http(s) URL"),
        (["--cookies", "/nonexistent/cookies.txt"], "no such file"),
    ],
)
def test_bad_official_options_are_usage_errors(args: list[str], message: str, tmp_path: Path) -> None:
    result = imagenet("download", "--source", "official", "--root", str(tmp_path), *args)
    assert result.exit_code == EXIT_USAGE
    assert message in result.stderr


def test_404_says_to_check_the_base_url(official_files: dict[str, bytes], tmp_path: Path) -> None:
    with FileServer(official_files, path_prefix="/other/") as server:
        result = imagenet(
            "download",
            "--source",
            "official",
            "--base-url",
            server.base_url.replace("/other/", "/"),
            "--files",
            archives.DEVKIT,
            "--root",
            str(tmp_path),
        )
    assert result.exit_code == EXIT_ERROR
    assert "HTTP 404" in result.stderr and "try checking --base-url" in result.stderr


@pytest.mark.slow
def test_kill_9_midway_then_resume_fetches_only_the_rest(
    official_files: dict[str, bytes], checksums: Path, tmp_path: Path
) -> None:
    files = {archives.TRAIN_TAR: official_files[archives.TRAIN_TAR]}
    size = len(files[archives.TRAIN_TAR])
    command = [
        sys.executable,
        "-m",
        "imagenet_cli",
        "download",
        "--source",
        "official",
        "--files",
        archives.TRAIN_TAR,
        "--checksums",
        str(checksums),
        "--root",
        str(tmp_path),
        "--connections",
        "2",
    ]
    journal = tmp_path / "downloads" / f"{archives.TRAIN_TAR}.part.json"
    with FileServer(files) as server:
        server.faults.rate = 2 << 20  # per connection: the first run takes several seconds
        env = {**os.environ, "IMAGENET_NO_PROGRESS": "1"}
        process = subprocess.Popen([*command, "--base-url", server.base_url], env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if journal.exists() and len(json.loads(journal.read_text())["done"]) >= 2:
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        server.settled_bytes()  # handlers still writing to the dead client's sockets must not count later
        done = json.loads(journal.read_text())
        assert done["done"] and not (tmp_path / "downloads" / archives.TRAIN_TAR).exists()
        info = json.loads(imagenet("info", "--root", str(tmp_path), "--json").stdout)
        [partial] = info["partial"]
        assert partial["name"] == archives.TRAIN_TAR and 0 < partial["have_bytes"] < size == partial["total_bytes"]
        assert info["next_step"] == "download" and info["archives"] == []

        server.faults.rate = None
        have = sum(min((i + 1) * done["chunk_size"], size) - i * done["chunk_size"] for i in done["done"])
        dry = imagenet(*command[3:], "--base-url", server.base_url, "--dry-run", "--json")
        [planned] = json.loads(dry.stdout)["files"]
        assert (planned["status"], planned["transferred"]) == ("would resume", size - have)
        sent_first = server.settled_bytes()  # the dry run's probe included
        completed = subprocess.run(
            [*command, "--base-url", server.base_url, "--json"], env=env, capture_output=True, text=True, timeout=120
        )
        assert completed.returncode == 0, completed.stderr
        [fetched] = json.loads(completed.stdout)["files"]
        sent_total = server.settled_bytes()

    assert (tmp_path / "downloads" / archives.TRAIN_TAR).read_bytes() == files[archives.TRAIN_TAR]
    assert fetched["status"] == "resumed"
    assert fetched["transferred"] == size - have
    # The server sent the rest once: what the journal lacked, plus the probe's byte.
    assert sent_total - sent_first == size - have + 1


def test_ctrl_c_stops_cleanly_keeps_the_state_and_exits_130(
    official_files: dict[str, bytes], checksums: Path, tmp_path: Path
) -> None:
    files = {archives.TRAIN_TAR: official_files[archives.TRAIN_TAR]}
    journal = tmp_path / "downloads" / f"{archives.TRAIN_TAR}.part.json"
    with FileServer(files) as server:
        server.faults.rate = 2 << 20
        command = [
            "download",
            "--source",
            "official",
            "--files",
            archives.TRAIN_TAR,
            "--checksums",
            str(checksums),
            "--root",
            str(tmp_path),
            "--base-url",
            server.base_url,
        ]
        process = imagenet_process(*command)
        deadline = time.monotonic() + 60
        while not (journal.exists() and json.loads(journal.read_text())["done"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.strip() == "imagenet: interrupted — try the same command again: finished work is kept"
    assert json.loads(journal.read_text())["done"]
    assert (tmp_path / "downloads" / f"{archives.TRAIN_TAR}.part").exists()


# --- Kaggle ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kaggle_zip(kaggle_root: Path) -> bytes:
    return (kaggle_root / "downloads" / kaggle.ZIP_NAME).read_bytes()


@pytest.fixture
def fake_kaggle(kaggle_zip: bytes, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeKaggle]:
    """The real kagglesdk client, pointed at a fake Kaggle API on 127.0.0.1; a clean HOME."""
    from kagglesdk.kaggle_env import KaggleEnv, _env_to_endpoint

    with FakeKaggle({kaggle.ZIP_NAME: kaggle_zip}) as server:
        monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "LOCALHOST")
        monkeypatch.setitem(_env_to_endpoint, KaggleEnv.LOCAL, server.api_endpoint)
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        for name in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR"):
            monkeypatch.delenv(name, raising=False)
        yield server


def kaggle_json(home: Path, username: str = "alice", key: str = "secret") -> None:
    (home / ".kaggle").mkdir(parents=True)
    (home / ".kaggle" / "kaggle.json").write_text(json.dumps({"username": username, "key": key}))


def test_kaggle_end_to_end(fake_kaggle: FakeKaggle, kaggle_zip: bytes, tmp_path: Path) -> None:
    kaggle_json(tmp_path / "home")
    result = imagenet("download", "--root", str(tmp_path / "root"), "--json")
    assert result.exit_code == 0, result.output
    [fetched] = json.loads(result.stdout)["files"]
    path = tmp_path / "root" / "downloads" / kaggle.ZIP_NAME
    assert path.read_bytes() == kaggle_zip
    assert fetched["md5"] == hashlib.md5(kaggle_zip).hexdigest()
    record = DownloadRecord.read(path)
    assert record.source == "kaggle" and record.url and "?" not in record.url, "the signature is not recorded"

    calls = fake_kaggle.api_calls
    again = imagenet("download", "--root", str(tmp_path / "root"))
    assert again.exit_code == 0 and "kept" in again.stdout
    assert fake_kaggle.api_calls == calls, "a recorded bundle needs no API call"


def test_the_kaggle_token_never_reaches_the_storage_host(
    fake_kaggle: FakeKaggle, kaggle_zip: bytes, tmp_path: Path
) -> None:
    """The API redirects to signed storage on another host: neither the SDK's request nor ours carries the token."""
    kaggle_json(tmp_path / "home")
    try:
        bucket = Recording({kaggle.ZIP_NAME: kaggle_zip}, host="127.0.0.2")
    except OSError:
        pytest.skip("127.0.0.2 is not a loopback address here")
    with bucket:
        fake_kaggle.storage = bucket
        result = imagenet("download", "--root", str(tmp_path / "root"))
        assert result.exit_code == 0, result.output
        assert bucket.seen and {authorization for _, authorization, _ in bucket.seen} == {None}
    assert (tmp_path / "root" / "downloads" / kaggle.ZIP_NAME).read_bytes() == kaggle_zip


def test_kaggle_credentials_from_the_environment(
    fake_kaggle: FakeKaggle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("KAGGLE_USERNAME", "alice")
    monkeypatch.setenv("KAGGLE_KEY", "secret")
    assert imagenet("download", "--root", str(tmp_path)).exit_code == 0


def test_kaggle_api_token_as_a_bearer(fake_kaggle: FakeKaggle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("secret\n")
    monkeypatch.setenv("KAGGLE_API_TOKEN", str(token))  # a file holding the token
    assert imagenet("download", "--root", str(tmp_path)).exit_code == 0


def test_kaggle_without_credentials_is_one_line(fake_kaggle: FakeKaggle, tmp_path: Path) -> None:
    result = imagenet("download", "--root", str(tmp_path))
    assert result.exit_code == EXIT_ERROR
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("imagenet: error: no Kaggle credentials") and "kaggle.json" in line
    assert fake_kaggle.api_calls == 0


def test_kaggle_rules_not_accepted(fake_kaggle: FakeKaggle, tmp_path: Path) -> None:
    kaggle_json(tmp_path / "home")
    fake_kaggle.rules_accepted = False
    result = imagenet("download", "--root", str(tmp_path))
    assert result.exit_code == EXIT_ERROR
    [line] = result.stderr.splitlines()
    assert kaggle.RULES_URL in line and "accept" in line


def test_kaggle_bad_credentials(fake_kaggle: FakeKaggle, tmp_path: Path) -> None:
    kaggle_json(tmp_path / "home", key="wrong")
    result = imagenet("download", "--root", str(tmp_path))
    assert result.exit_code == EXIT_ERROR
    [line] = result.stderr.splitlines()
    assert "Kaggle rejected the credentials" in line and "HTTP 401" in line


def test_kaggle_429_waits_and_asks_again(fake_kaggle: FakeKaggle, tmp_path: Path) -> None:
    kaggle_json(tmp_path / "home")
    fake_kaggle.api_queue = [429]
    assert imagenet("download", "--root", str(tmp_path)).exit_code == 0
    assert fake_kaggle.api_calls == 2


def test_kaggle_expired_url_gets_a_fresh_one(fake_kaggle: FakeKaggle, kaggle_zip: bytes, tmp_path: Path) -> None:
    kaggle_json(tmp_path / "home")
    fake_kaggle.faults.expire_after = 0.3
    fake_kaggle.faults.rate = 8 << 20
    result = imagenet("download", "--root", str(tmp_path), "--connections", "2")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "downloads" / kaggle.ZIP_NAME).read_bytes() == kaggle_zip
    assert fake_kaggle.api_calls >= 2


def test_kaggle_storage_md5_mismatch_is_caught(
    fake_kaggle: FakeKaggle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kaggle_json(tmp_path / "home")
    monkeypatch.setattr(
        fake_kaggle, "extra_headers", lambda name, data: {"x-goog-hash": "md5=AAAAAAAAAAAAAAAAAAAAAA=="}
    )
    result = imagenet("download", "--root", str(tmp_path))
    assert result.exit_code == EXIT_ERROR
    assert "expected md5 is 00000000000000000000000000000000" in result.stderr


def test_credentials_order(tmp_path: Path) -> None:
    home = tmp_path / "home"
    kaggle_json(home, username="from-file")
    config = tmp_path / "config"
    config.mkdir()
    (config / "kaggle.json").write_text(json.dumps({"username": "from-config-dir", "key": "k"}))
    env = {"KAGGLE_API_TOKEN": "tok", "KAGGLE_USERNAME": "u", "KAGGLE_KEY": "k", "KAGGLE_CONFIG_DIR": str(config)}
    assert find_credentials(env, home).token == "tok"
    del env["KAGGLE_API_TOKEN"]
    assert find_credentials(env, home).username == "u"
    del env["KAGGLE_KEY"]
    assert find_credentials(env, home).username == "from-config-dir"
    del env["KAGGLE_CONFIG_DIR"]
    assert find_credentials(env, home).username == "from-file"
    assert "secret" not in repr(find_credentials({}, home)), "kaggle.json's key never shows in a repr"
    assert "s3cr3t" not in repr(find_credentials({"KAGGLE_USERNAME": "u", "KAGGLE_KEY": "s3cr3t"}, home))


def test_kaggle_partial_file_is_never_overwritten(fake_kaggle: FakeKaggle, tmp_path: Path) -> None:
    kaggle_json(tmp_path / "home")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / kaggle.ZIP_NAME).write_bytes(b"half")
    (downloads / f"{kaggle.ZIP_NAME}.kaggle-partial").write_bytes(b"")
    result = imagenet("download", "--root", str(tmp_path))
    assert result.exit_code == EXIT_ERROR
    assert "the kaggle tool left it half-downloaded" in result.stderr
    assert (downloads / kaggle.ZIP_NAME).read_bytes() == b"half"


def test_a_host_that_refuses_connections_fails_in_seconds_with_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    result = imagenet(
        "download",
        "--source",
        "official",
        "--root",
        str(tmp_path),
        "--dry-run",
        "--base-url",
        f"http://127.0.0.1:{port}/",
    )
    assert time.monotonic() - started < 10
    assert result.exit_code == EXIT_ERROR
    [line] = result.stderr.splitlines()
    assert line.startswith(f"imagenet: error: cannot connect to 127.0.0.1:{port}")
