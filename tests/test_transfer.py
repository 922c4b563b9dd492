"""The download engine against real loopback servers, one scripted fault at a time.

Every test ends in one of two states: a file byte-identical to the one served, or a clear error
with the partial state kept for the next run.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from imagenet_cli.download.transfer import (
    Endpoint,
    Identity,
    Plan,
    Remote,
    RetryPolicy,
    TransferResult,
    check_free_space,
    choose_chunk_size,
    http_client,
    plan_transfer,
    run_transfer,
)
from imagenet_cli.errors import (
    AccessDeniedError,
    ChecksumMismatchError,
    DownloadError,
    InsufficientSpaceError,
    RemoteChangedError,
    RemoteNotFoundError,
)

from .servers import FileServer

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, max_retry_after=3)
NAME = "ILSVRC2012_devkit_t12.tar.gz"
SIZE = 5 * (1 << 20) + 12345  # six 1 MiB chunks with 4 connections, the last one short


@pytest.fixture(scope="module")
def payload() -> bytes:
    return random.Random(1).randbytes(SIZE)


@pytest.fixture
def server(payload: bytes) -> Iterator[FileServer]:
    with FileServer({NAME: payload}) as running:
        yield running


def fetch(
    server: FileServer,
    downloads: Path,
    connections: int = 4,
    expected: dict[str, str] | None = None,
    renew: Callable[[], str] | None = None,
    policy: RetryPolicy = FAST,
) -> tuple[Plan, TransferResult]:
    remote = Remote(NAME, server.url(NAME), expected or {})
    with http_client(connections, {}, None) as client:
        endpoint = Endpoint(client, remote.url, renew=renew, policy=policy)
        plan = plan_transfer(remote, downloads, endpoint, connections)
        return plan, run_transfer(plan, endpoint, connections)


def fail_midway(server: FileServer, downloads: Path, after_responses: int = 3) -> dict[str, Any]:
    """A first run that dies after some chunks, leaving .part and its journal behind."""
    server.faults.break_after = after_responses
    with pytest.raises(DownloadError, match="gave up after 3 failed attempts"):
        fetch(server, downloads, connections=1)
    server.faults.break_after = None
    journal: dict[str, Any] = json.loads((downloads / f"{NAME}.part.json").read_text())
    assert journal["done"] and not (downloads / NAME).exists()
    return journal


@pytest.mark.parametrize("connections", [1, 4])
def test_plain_download_is_exact(server: FileServer, payload: bytes, tmp_path: Path, connections: int) -> None:
    plan, result = fetch(server, tmp_path, connections, expected={"md5": hashlib.md5(payload).hexdigest()})
    assert (tmp_path / NAME).read_bytes() == payload
    assert result.digests["md5"] == hashlib.md5(payload).hexdigest()
    assert result.transferred == SIZE and not result.resumed
    assert plan.identity.ranges and plan.identity.etag == server.etags[NAME]
    assert sorted(p.name for p in tmp_path.iterdir()) == [NAME], "no .part or journal left behind"


def test_parallel_chunks_use_ranges_with_if_range(server: FileServer, tmp_path: Path) -> None:
    fetch(server, tmp_path, connections=4)
    ranges = [r for method, path, r in server.requests if r and r != "bytes=0-0"]
    assert len(ranges) == 6  # one request per chunk
    assert sorted(ranges) == sorted(f"bytes={i << 20}-{min((i + 1) << 20, SIZE) - 1}" for i in range(6))


def test_body_cut_midway_is_resumed_within_the_chunk(server: FileServer, payload: bytes, tmp_path: Path) -> None:
    server.faults.cut_at, server.faults.cuts_left = 300_000, 5
    _, result = fetch(server, tmp_path, connections=2)
    assert (tmp_path / NAME).read_bytes() == payload
    assert server.settled_bytes() <= SIZE + 1, "nothing was fetched twice"
    assert result.transferred == SIZE


def test_server_ignoring_range_gets_one_plain_stream(server: FileServer, payload: bytes, tmp_path: Path) -> None:
    server.faults.ignore_range = True
    plan, _ = fetch(server, tmp_path, connections=4)
    assert not plan.identity.ranges
    assert (tmp_path / NAME).read_bytes() == payload


def test_resume_fetches_only_the_missing_bytes(server: FileServer, payload: bytes, tmp_path: Path) -> None:
    journal = fail_midway(server, tmp_path)
    chunk = journal["chunk_size"]
    have = sum(min((i + 1) * chunk, SIZE) - i * chunk for i in journal["done"])
    sent_before = server.settled_bytes()
    _, result = fetch(server, tmp_path, connections=4)
    assert (tmp_path / NAME).read_bytes() == payload
    assert result.resumed and result.transferred == SIZE - have
    assert server.settled_bytes() - sent_before == SIZE - have + 1  # + the one-byte probe


def test_changed_etag_between_runs_starts_over_never_splices(server: FileServer, tmp_path: Path) -> None:
    fail_midway(server, tmp_path)
    new_version = random.Random(2).randbytes(SIZE)
    server.replace(NAME, new_version)
    _, result = fetch(server, tmp_path)
    assert (tmp_path / NAME).read_bytes() == new_version
    assert not result.resumed and result.transferred == SIZE


def test_416_during_the_download_restarts_it(server: FileServer, payload: bytes, tmp_path: Path) -> None:
    remote = Remote(NAME, server.url(NAME))
    with http_client(1, {}, None) as client:
        endpoint = Endpoint(client, remote.url, policy=FAST)
        plan = plan_transfer(remote, tmp_path, endpoint, 1)
        # The first chunk request is answered 416: the file is no longer what was probed.
        server.queue((416, {"Content-Range": f"bytes */{SIZE}"}))
        result = run_transfer(plan, endpoint, 1)
    assert (tmp_path / NAME).read_bytes() == payload
    assert not result.resumed


def test_if_range_mismatch_is_detected(server: FileServer, tmp_path: Path) -> None:
    """A server that changed the file answers 200 to If-Range: the engine must not append it."""
    fail_midway(server, tmp_path)
    server.replace(NAME, b"x" * SIZE)  # same size, new ETag
    fetch(server, tmp_path)
    assert (tmp_path / NAME).read_bytes() == b"x" * SIZE


def test_429_with_retry_after_then_success(server: FileServer, payload: bytes, tmp_path: Path) -> None:
    server.queue((429, {"Retry-After": "1"}))
    fetch(server, tmp_path)
    assert (tmp_path / NAME).read_bytes() == payload


def test_retry_after_is_honoured_and_capped() -> None:
    assert FAST.delay(1, retry_after=2.0) == 2.0
    assert FAST.delay(1, retry_after=3600.0) == FAST.max_retry_after
    assert all(0 <= RetryPolicy().delay(n) <= RetryPolicy().max_delay for n in range(1, 30))


def test_a_burst_of_503_is_survived(server: FileServer, payload: bytes, tmp_path: Path) -> None:
    server.queue(*[(503, {})] * 3)
    fetch(server, tmp_path, connections=1)
    assert (tmp_path / NAME).read_bytes() == payload


def test_a_dead_server_fails_clearly_and_keeps_the_partial_state(server: FileServer, tmp_path: Path) -> None:
    fail_midway(server, tmp_path)
    assert (tmp_path / f"{NAME}.part").exists()


def test_expired_signed_url_is_renewed_for_the_same_file(server: FileServer, payload: bytes, tmp_path: Path) -> None:
    server.faults.expire_after = 0.2
    server.faults.rate = 4 << 20  # ~0.65 s in all over two connections: the first URL expires midway
    renewals = []

    def renew() -> str:
        renewals.append(1)
        return server.signed_url(NAME)

    remote = Remote(NAME, server.signed_url(NAME))
    with http_client(2, {}, None) as client:
        endpoint = Endpoint(client, remote.url, renew=renew, policy=FAST)
        plan = plan_transfer(remote, tmp_path, endpoint, 2)
        run_transfer(plan, endpoint, 2)
    assert (tmp_path / NAME).read_bytes() == payload
    assert renewals, "the URL expired at least once"


def test_403_without_a_way_to_renew_is_access_denied(server: FileServer, tmp_path: Path) -> None:
    server.queue((403, {}))
    with pytest.raises(AccessDeniedError, match="HTTP 403"):
        fetch(server, tmp_path)


def test_404_is_not_found(server: FileServer, tmp_path: Path) -> None:
    remote = Remote("nothing.tar", server.url("nothing.tar"))
    with http_client(1, {}, None) as client, pytest.raises(RemoteNotFoundError):
        plan_transfer(remote, tmp_path, Endpoint(client, remote.url, policy=FAST), 1)


def test_published_md5_mismatch_keeps_the_bytes_aside(server: FileServer, payload: bytes, tmp_path: Path) -> None:
    with pytest.raises(ChecksumMismatchError, match="expected md5 is 0+"):
        fetch(server, tmp_path, expected={"md5": "0" * 32})
    assert not (tmp_path / NAME).exists()
    assert (tmp_path / f"{NAME}.md5-mismatch").read_bytes() == payload


def test_published_size_mismatch_is_caught_before_downloading(server: FileServer, tmp_path: Path) -> None:
    remote = Remote(NAME, server.url(NAME), size=SIZE + 1)
    with http_client(1, {}, None) as client, pytest.raises(RemoteChangedError, match="published"):
        plan_transfer(remote, tmp_path, Endpoint(client, remote.url, policy=FAST), 1)


def test_free_disk_preflight_names_the_shortfall(tmp_path: Path) -> None:
    identity = Identity("http://x/y", size=1 << 60, etag='"e"', last_modified=None, ranges=True)
    plan = Plan(Remote("huge.tar", "http://x/y"), tmp_path / "huge.tar", identity, 64 << 20, set())
    with pytest.raises(InsufficientSpaceError, match=r"GiB short"):
        check_free_space([plan], tmp_path)


@pytest.mark.parametrize(
    ("size", "connections", "chunk"),
    [(1, 4, 1 << 20), (SIZE, 4, 1 << 20), (150 << 30, 8, 64 << 20), (100 << 20, 4, 8 << 20)],
)
def test_chunk_size(size: int, connections: int, chunk: int) -> None:
    assert choose_chunk_size(size, connections) == chunk


# --- servers that misbehave for good ------------------------------------------------------------


class ShortBody(FileServer):
    """Always says the file is 1 MiB longer than the body it sends, then closes."""

    def handle_other(self, handler: BaseHTTPRequestHandler) -> bool:
        data = self.files[NAME]
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data) + (1 << 20)))
        handler.end_headers()
        handler.wfile.write(data)
        handler.close_connection = True
        return True


class WholeFileToRanges(FileServer):
    """Honours a bare Range, but answers any request carrying If-Range with the whole, unchanged file
    (as servers do that hold only weak validators)."""

    def handle_other(self, handler: BaseHTTPRequestHandler) -> bool:
        if handler.headers.get("If-Range") is None:
            return False
        del handler.headers["Range"]
        return False


class RedirectLoop(FileServer):
    def handle_other(self, handler: BaseHTTPRequestHandler) -> bool:
        handler.send_response(302)
        handler.send_header("Location", handler.path)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return True


def test_a_body_that_never_meets_its_content_length_fails_within_the_budget(payload: bytes, tmp_path: Path) -> None:
    with ShortBody({NAME: payload}) as server:
        with pytest.raises(DownloadError, match=f"gave up after {FAST.attempts} failed attempts"):
            fetch(server, tmp_path)
        requests = len(server.requests)
    assert requests <= 1 + FAST.attempts + 1, "a probe and the attempts: never an endless loop"


def test_whole_file_answers_to_range_requests_fall_back_to_one_stream(payload: bytes, tmp_path: Path) -> None:
    with WholeFileToRanges({NAME: payload}) as server:
        _, result = fetch(server, tmp_path)
    assert result.path.read_bytes() == payload


def test_a_redirect_loop_is_a_download_error(payload: bytes, tmp_path: Path) -> None:
    with RedirectLoop({NAME: payload}) as server, pytest.raises(DownloadError, match="redirect"):
        fetch(server, tmp_path)
