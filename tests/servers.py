"""Real HTTP servers on 127.0.0.1 for the download tests, scripted per fault.

``FileServer`` serves files with Range/If-Range like a static server or a storage bucket, and can
be told to misbehave: cut a body at byte N, ignore Range, change an ETag, answer 416, 429 with
Retry-After, bursts of 503, 403 once a signed URL expires, or trickle bytes at a fixed rate.
``FakeKaggle`` adds Kaggle's API in front of it: the real kagglesdk client talks to it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients hanging up mid-body is what these tests do on purpose


@dataclass
class Faults:
    cut_at: int | None = None  # close the connection after sending this many body bytes…
    cuts_left: int = 0  # …this many times
    ignore_range: bool = False  # answer 200 with the whole body to every request
    queued: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # next responses: (status, headers)
    rate: float | None = None  # bytes per second per connection
    expire_after: float | None = None  # signed URLs older than this many seconds get 403
    no_validators: bool = False  # send neither ETag nor Last-Modified
    break_after: int | None = None  # after this many file responses, answer 503 to everything


class FileServer:
    def __init__(self, files: dict[str, bytes], path_prefix: str = "/", host: str = "127.0.0.1") -> None:
        self.files = dict(files)
        self.prefix = path_prefix
        self.etags = {name: f'"{hashlib.md5(data).hexdigest()[:16]}-1"' for name, data in files.items()}
        self.faults = Faults()
        self.sent_bytes = 0
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range)
        self.lock = threading.Lock()
        self.httpd = _QuietServer((host, 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # -- life cycle

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}{self.prefix}"

    def url(self, name: str) -> str:
        return self.base_url + name

    def signed_url(self, name: str) -> str:
        return f"{self.url(name)}?X-Goog-Signature=abc&issued={time.time():.3f}"

    # -- scripting

    def replace(self, name: str, data: bytes) -> None:
        """A new version of a file: new bytes, new ETag."""
        with self.lock:
            self.files[name] = data
            self.etags[name] = f'"{hashlib.md5(data).hexdigest()[:16]}-2"'

    def queue(self, *responses: tuple[int, dict[str, str]]) -> None:
        with self.lock:
            self.faults.queued.extend(responses)

    def _next_queued(self) -> tuple[int, dict[str, str]] | None:
        with self.lock:
            return self.faults.queued.pop(0) if self.faults.queued else None

    def _take_cut(self) -> int | None:
        with self.lock:
            if self.faults.cut_at is not None and self.faults.cuts_left > 0:
                self.faults.cuts_left -= 1
                return self.faults.cut_at
        return None

    def settled_bytes(self) -> int:
        """Bytes sent, once sending has stopped: a handler counts a chunk only after writing it, so
        a client can be done before the count is, and handlers of a killed client write on a while."""
        previous = -1
        while self.sent_bytes != previous:
            previous = self.sent_bytes
            time.sleep(0.2)
        return previous

    def _broken(self) -> bool:
        with self.lock:
            if self.faults.break_after is None:
                return False
            self.faults.break_after -= 1
            return self.faults.break_after < 0

    def _count(self, n: int) -> None:
        with self.lock:
            self.sent_bytes += n

    def extra_headers(self, name: str, data: bytes) -> dict[str, str]:
        return {}

    def handle_other(self, handler: BaseHTTPRequestHandler) -> bool:
        """Subclasses answer other paths here; True when handled."""
        return False

    # -- serving

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                server.requests.append(("HEAD", self.path, None))
                if not server.handle_other(self):
                    self.send_error(405)

            def do_POST(self) -> None:
                server.requests.append(("POST", self.path, None))
                if not server.handle_other(self):
                    self.send_error(404)

            def do_GET(self) -> None:
                server.requests.append(("GET", self.path, self.headers.get("Range")))
                if server.handle_other(self):
                    return
                url = urlsplit(self.path)
                name = url.path.removeprefix(server.prefix)
                queued = server._next_queued()
                if queued is not None:
                    status, headers = queued
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if name not in server.files:
                    self.send_error(404)
                    return
                if server._broken():
                    self.send_error(503)
                    return
                issued = parse_qs(url.query).get("issued")
                if server.faults.expire_after is not None and issued:
                    if time.time() - float(issued[0]) > server.faults.expire_after:
                        self.send_error(403, "Request has expired")
                        return
                self._send_file(name)

            def _send_file(self, name: str) -> None:
                with server.lock:
                    data, etag = server.files[name], server.etags[name]
                first, last, status = 0, len(data) - 1, 200
                asked = self.headers.get("Range")
                if_range = self.headers.get("If-Range")
                if asked and not server.faults.ignore_range and (if_range is None or if_range == etag):
                    match = _RANGE.fullmatch(asked.strip())
                    if match:
                        first = int(match.group(1))
                        last = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
                        if first >= len(data):
                            self.send_response(416)
                            self.send_header("Content-Range", f"bytes */{len(data)}")
                            self.send_header("Content-Length", "0")
                            self.end_headers()
                            return
                        status = 206
                self.send_response(status)
                if not server.faults.ignore_range:
                    self.send_header("Accept-Ranges", "bytes")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {first}-{last}/{len(data)}")
                if not server.faults.no_validators:
                    self.send_header("ETag", etag)
                    self.send_header("Last-Modified", "Thu, 10 May 2012 00:00:00 GMT")
                for key, value in server.extra_headers(name, data).items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(last - first + 1))
                self.end_headers()
                self._send_body(data[first : last + 1])

            def _send_body(self, body: bytes) -> None:
                cut = server._take_cut()
                limit = len(body) if cut is None else min(cut, len(body))
                piece = 16 << 10
                started = time.monotonic()
                sent = 0
                try:
                    while sent < limit:
                        chunk = body[sent : min(sent + piece, limit)]
                        self.wfile.write(chunk)
                        sent += len(chunk)
                        server._count(len(chunk))
                        if server.faults.rate:
                            ahead = sent / server.faults.rate - (time.monotonic() - started)
                            if ahead > 0:
                                time.sleep(ahead)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                    return
                if cut is not None:
                    self.close_connection = True

        return Handler


class FakeKaggle(FileServer):
    """Kaggle's API (the one RPC ``download`` uses) in front of a storage bucket holding the zip."""

    def __init__(self, files: dict[str, bytes], username: str = "alice", key: str = "secret") -> None:
        super().__init__(files, path_prefix="/storage/")
        self.username, self.key = username, key
        self.rules_accepted = True
        self.api_calls = 0
        self.api_queue: list[int] = []  # statuses to answer the next API calls with
        self.storage: FileServer | None = None  # a bucket on another host to redirect to; None: this one

    @property
    def api_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def extra_headers(self, name: str, data: bytes) -> dict[str, str]:
        # Storage publishes hashes of non-composite objects; crc32c is left out (no stdlib crc32c).
        return {"x-goog-hash": "md5=" + base64.b64encode(hashlib.md5(data).digest()).decode()}

    def _authorised(self, handler: BaseHTTPRequestHandler) -> bool:
        basic = base64.b64encode(f"{self.username}:{self.key}".encode()).decode()
        return handler.headers.get("Authorization") in (f"Basic {basic}", f"Bearer {self.key}")

    def handle_other(self, handler: BaseHTTPRequestHandler) -> bool:
        path = urlsplit(handler.path).path
        if not path.startswith("/api/v1/competitions.CompetitionApiService/DownloadDataFiles"):
            return False
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length) or b"{}")
        self.api_calls += 1
        queued = self.api_queue.pop(0) if self.api_queue else None
        if queued is not None:
            self._json(handler, queued, {"code": queued, "message": "Too many requests"}, {"Retry-After": "0"})
        elif not self._authorised(handler):
            self._json(handler, 401, {"code": 401, "message": "Unauthenticated"})
        elif not self.rules_accepted:
            message = "You must accept this competition's rules before you'll be able to download files."
            self._json(handler, 403, {"code": 403, "message": message})
        elif body.get("competitionName") + ".zip" not in self.files:
            self._json(handler, 404, {"code": 404, "message": "Not found"})
        else:
            handler.send_response(302)
            bucket = self.storage or self
            handler.send_header("Location", bucket.signed_url(body["competitionName"] + ".zip"))
            handler.send_header("Content-Length", "0")
            handler.end_headers()
        return True

    @staticmethod
    def _json(
        handler: BaseHTTPRequestHandler, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


class FakeHub(FileServer):
    """The Hugging Face hub for one gated dataset, ``ILSVRC/imagenet-1k``: the routes
    ``huggingface_hub`` calls to fetch a file (HEAD, then GET with Range, of
    ``/datasets/REPO/resolve/REVISION/data/NAME``), with the headers it reads (the commit, the LFS
    sha256 as the linked ETag, the size). No valid token: 401; terms not accepted: 403."""

    COMMIT = "0123456789abcdef0123456789abcdef01234567"
    RESOLVE = "/datasets/ILSVRC/imagenet-1k/resolve/"

    def __init__(self, files: dict[str, bytes], revision: str = "main", token: str = "hf_good") -> None:
        super().__init__(files, path_prefix=f"{self.RESOLVE}{revision}/data/")
        self.token, self.terms_accepted = token, True
        self.sha256 = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}

    def extra_headers(self, name: str, data: bytes) -> dict[str, str]:
        return {
            "X-Repo-Commit": self.COMMIT,
            "X-Linked-Etag": f'"{self.sha256[name]}"',
            "X-Linked-Size": str(len(data)),
        }

    def handle_other(self, handler: BaseHTTPRequestHandler) -> bool:
        path = urlsplit(handler.path).path
        if not path.startswith(self.RESOLVE):
            return False
        refusal = self._refusal(handler, path)
        if refusal is not None:
            status, code = refusal
            handler.send_response(status)
            handler.send_header("X-Error-Code", code)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return True
        if handler.command == "HEAD":
            name = path.removeprefix(self.prefix)
            data = self.files[name]
            handler.send_response(200)
            for key, value in {**self.extra_headers(name, data), "ETag": self.etags[name]}.items():
                handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            return True
        return False  # a GET the file server answers, ranges and all

    def _refusal(self, handler: BaseHTTPRequestHandler, path: str) -> tuple[int, str] | None:
        if handler.headers.get("Authorization") != f"Bearer {self.token}":
            return 401, "RepoNotFound"
        if not self.terms_accepted:
            return 403, "GatedRepo"
        if not path.startswith(self.prefix):
            return 404, "RevisionNotFound"
        if path.removeprefix(self.prefix) not in self.files:
            return 404, "EntryNotFound"
        return None
