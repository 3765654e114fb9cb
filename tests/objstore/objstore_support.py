"""Served data in object storage, for tests: settings, a real S3 server (moto) and a proxy in front of it.

The proxy forwards every request to the moto server unchanged, except what a test asks for:
corrupt the body of the next object downloads (one byte flipped, length kept, the server's
checksum headers dropped so only our own sha256 check can notice), or hold the parts of multipart uploads until
released, so a writer can be killed while its upload is in flight.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import secrets
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shared.control.db import migrate
from shared.served import Column, Manifest
from shared.served_storage import ServedStore
from shared.settings import Settings

JWT_SECRET = "objstore-test-secret-" + "x" * 32


def objstore_env(home: Path, control_url: str, endpoint: str, bucket: str, **extra: str) -> dict[str, str]:
    return {
        "AGENTS_DATA_HOME": str(home),
        "DATABASE_URL": control_url,
        "SERVED_STORAGE": "s3",
        "SERVED_S3_BUCKET": bucket,
        "SERVED_S3_ENDPOINT_URL": endpoint,
        "SERVED_POLL_INTERVAL_S": "0.2",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "JWT_SECRET": JWT_SECRET,
        "ADMIN_PASSWORD": "admin-password",
        **extra,
    }


def objstore_settings(home: Path, control_url: str, endpoint: str, bucket: str, **extra: str) -> Settings:
    home.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env(objstore_env(home, control_url, endpoint, bucket, **extra))
    migrate(settings.control_url)
    return settings


def new_bucket(client: Any) -> str:
    bucket = "served-" + secrets.token_hex(4)
    client.create_bucket(Bucket=bucket)
    return bucket


def publish_rows(store: ServedStore, key: str, rows: int, *, tag: str = "v", copy_previous: bool = False) -> Manifest:
    """Publish a version of ``key`` holding ``rows`` rows (ids and an md5 per id) through ``store``:
    the same write_version/publish calls a materialization makes."""
    with store.write_version(key, copy_previous=copy_previous) as pending:
        if copy_previous and pending.previous is not None:
            pending.con.execute(
                "INSERT INTO data SELECT range + (SELECT count(*) FROM data), md5(?||range::VARCHAR) FROM range(?)", [tag, rows]
            )
        else:
            pending.con.execute("CREATE TABLE data AS SELECT range AS id, md5(?||range::VARCHAR) AS s FROM range(?)", [tag, rows])
        count = int(pending.con.execute("SELECT count(*) FROM data").fetchone()[0])
        columns = [Column("id", "BIGINT"), Column("s", "VARCHAR")]
        return store.publish(pending, strategy="full", row_count=count, columns=columns)


_DROP = ("content-length", "transfer-encoding", "connection", "keep-alive")


class S3Proxy:
    """A forwarding proxy to an S3 server that can corrupt downloads and hold uploads (see module doc)."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.corrupt_next = 0
        self.corrupted = 0
        self.object_gets = 0
        self.hold = threading.Event()  # set: uploads of multipart parts wait
        self.held = threading.Event()  # an upload is being held
        self.release = threading.Event()
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                proxy.forward(self)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def forward(self, h: http.server.BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        if self.hold.is_set() and h.command == "PUT" and "partNumber=" in h.path:
            self.held.set()
            self.release.wait(timeout=120)
            h.close_connection = True
            return
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            headers = {k: v for k, v in h.headers.items() if k.lower() not in ("connection",)}
            conn.request(h.command, h.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        is_object = h.command == "GET" and "/objects/" in h.path and resp.status == 200
        if is_object:
            with self._lock:
                self.object_gets += 1
                if self.corrupt_next > 0 and data:
                    self.corrupt_next -= 1
                    self.corrupted += 1
                    data = data[: len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF]) + data[len(data) // 2 + 1 :]
        h.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() in _DROP or k.lower().startswith("x-amz-checksum"):
                continue
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(data)) if h.command != "HEAD" else resp.getheader("Content-Length", "0"))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)

    def __enter__(self) -> S3Proxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def s3_proxy(upstream: str) -> Iterator[S3Proxy]:
    with S3Proxy(upstream) as proxy:
        yield proxy
