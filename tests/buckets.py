"""A real S3 API on 127.0.0.1 for the object-storage tests: moto's server, started by the tests.

``S3Server`` runs ``ThreadedMotoServer`` on a free port of 127.0.0.1 (never 0.0.0.0) and gives the
environment a client needs to reach it the standard way (``AWS_ENDPOINT_URL`` and test keys), so
the code under test is configured exactly as a user's would be, with no option of ours.
"""

from __future__ import annotations

import collections
import http.client
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from moto.moto_server.threaded_moto_server import ThreadedMotoServer

KEYS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


class S3Server:
    def __init__(self) -> None:
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)

    def __enter__(self) -> S3Server:
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request on the test's stderr
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to use this server as its S3: the endpoint and test keys."""
        return {**KEYS, "AWS_ENDPOINT_URL": self.endpoint}

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, **_boto_keys())

    @staticmethod
    def uploader(env: dict[str, str]) -> Any:
        """``upload(path, bucket, key)`` for the server an environment names."""
        import boto3

        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], **_boto_keys())
        return lambda path, bucket, key: client.upload_file(str(path), bucket, key)

    def bucket(self, name: str) -> str:
        """A new, empty bucket; its URL."""
        self.client().create_bucket(Bucket=name)
        return f"s3://{name}"

    def objects(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        client = self.client()
        found: dict[str, bytes] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                found[item["Key"][len(prefix) :]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        return found


class S3Proxy:
    """An HTTP proxy of our own in front of the S3 server, that counts the bytes of every object it
    serves (``served``, by path) and of every upload it relays (``received``, by path, a multipart
    upload's parts under the object's path), and, given ``every``, misbehaves on purpose: it answers 503
    SlowDown to every ``every``-th request with a body (an upload, a record), and resets the
    connection in the middle of every ``every``-th response body it relays. ``deny``: every request
    is answered 403 AccessDenied, as S3 answers credentials without the rights. ``slow``: every
    body is relayed in pieces of ``SLOW_PIECE`` bytes with a pause after each."""

    SLOW_PIECE = 16 << 10

    def __init__(self, upstream: str, every: int | None = None, deny: bool = False, slow: bool = False) -> None:
        self.upstream, self.every, self.deny, self.slow = upstream.removeprefix("http://"), every, deny, slow
        self.pauses = 0
        self.requests = self.refused = self.cut = 0
        self.served: collections.Counter[str] = collections.Counter()
        self.received: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # answers botocore's Expect: 100-continue at once

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy.relay(self)

            do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True

    def __enter__(self) -> S3Proxy:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def endpoint(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def relay(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        with self.lock:
            self.requests += 1
            turn = self.every is not None and self.requests % self.every == 0
            if handler.command in ("PUT", "POST"):
                self.received[handler.path.split("?", 1)[0]] += len(body)
        if self.deny:
            self.refuse(handler, 403, "AccessDenied", "Access Denied")
            return
        if turn and body:
            self.refused += 1
            self.refuse(handler, 503, "SlowDown", "Please reduce your request rate.")
            return
        connection = http.client.HTTPConnection(self.upstream, timeout=30)
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "expect")}
        connection.request(handler.command, handler.path, body=body or None, headers={**headers, "Host": self.upstream})
        answer = connection.getresponse()
        data = answer.read()
        handler.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "server", "date"):
                handler.send_header(key, value)
        handler.end_headers()
        if turn and handler.command == "GET" and len(data) > 1:
            self.cut += 1
            handler.wfile.write(data[: len(data) // 2])
            handler.close_connection = True  # the rest never comes: the client sees a short body
            return
        pieces = range(0, len(data), self.SLOW_PIECE) if self.slow else range(1)
        for at in pieces:
            handler.wfile.write(data[at : at + self.SLOW_PIECE] if self.slow else data)
            if self.slow:
                handler.wfile.flush()
                self.pauses += 1
                time.sleep(0.002)
        if handler.command == "GET" and "?" not in handler.path:  # an object's bytes, not a listing
            with self.lock:
                self.served[handler.path] += len(data)

    @staticmethod
    def refuse(handler: BaseHTTPRequestHandler, status: int, code: str, message: str) -> None:
        error = f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/xml")
        handler.send_header("Content-Length", str(len(error)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(error)


def _boto_keys() -> dict[str, str]:
    return {
        "aws_access_key_id": KEYS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": KEYS["AWS_SECRET_ACCESS_KEY"],
        "region_name": KEYS["AWS_DEFAULT_REGION"],
    }


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` in this process's environment while the block runs (for library calls)."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
