"""Artifacts against the API as a real uvicorn process: wire-level uploads, disconnects, concurrency, S3.

Uses raw sockets where a client library would hide what is being tested (chunked
bodies without Content-Length, a client vanishing mid-upload, a 5 GB body).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import os
import secrets
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.settings import Settings
from tests.serving.artifact_support import api_server, multipart_head, multipart_tail
from tests.serving.helpers import admin_token, bearer, create_swarm, mint_token

LIMIT = 1024 * 1024


@dataclasses.dataclass
class Api:
    url: str
    home: Path
    env: dict[str, str]
    headers: dict[str, str]

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)


def _env(home: Path, **extra: str) -> dict[str, str]:
    return {"AGENTS_DATA_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'control.db'}",
            "JWT_SECRET": "test-secret-" + "z" * 32, "ADMIN_PASSWORD": "admin-password",
            "ARTIFACT_MAX_BYTES": str(LIMIT), **extra}


@contextlib.contextmanager
def _api(workdir: Path, **extra: str) -> Iterator[Api]:
    home = workdir / "home"
    home.mkdir(parents=True)
    env = _env(home, **extra)
    with api_server(env, workdir) as (url, _pid), httpx.Client(base_url=url, timeout=30) as c:
        admin = bearer(admin_token(c))
        swarm_id = create_swarm(c, admin, [])["id"]
        yield Api(url, home, env, bearer(mint_token(c, admin, "agent", swarm_id)["token"]))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with _api(tmp_path_factory.mktemp("api")) as a:
        yield a


def _objects(home: Path) -> list[Path]:
    return sorted(p for p in (home / "artifacts" / "objects").rglob("*") if p.is_file())


def _temps(home: Path) -> list[Path]:
    return sorted((home / "artifacts" / "tmp").glob("*"))


def _read_response(sock: socket.socket, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    with contextlib.suppress(OSError):
        while b"\r\n\r\n" not in data:
            block = sock.recv(65536)
            if not block:
                break
            data += block
    return data


def _request_head(api: Api, boundary: str, extra: str) -> bytes:
    auth = api.headers["Authorization"]
    return (f"POST /api/v1/artifacts HTTP/1.1\r\nHost: 127.0.0.1:{api.port}\r\nAuthorization: {auth}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n{extra}\r\n").encode()


def test_chunked_upload_without_content_length(api: Api) -> None:
    data = os.urandom(LIMIT - 1000)
    boundary = "b" + secrets.token_hex(8)

    def body() -> Iterator[bytes]:
        yield multipart_head(boundary, {"name": "chunked.bin", "tags": "chunked"})
        for i in range(0, len(data), 50_000):
            yield data[i:i + 50_000]
        yield multipart_tail(boundary)

    headers = {**api.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    r = httpx.post(f"{api.url}/api/v1/artifacts", headers=headers, content=body(), timeout=30)
    assert "content-length" not in r.request.headers
    assert r.request.headers["transfer-encoding"] == "chunked"
    assert r.status_code == 201, r.text
    art = r.json()
    assert art["sha256"] == hashlib.sha256(data).hexdigest()
    got = httpx.get(f"{api.url}{art['content_url']}", headers=api.headers)
    assert hashlib.sha256(got.content).hexdigest() == got.headers["etag"].strip('"') == art["sha256"]


def test_five_gigabytes_declared_are_refused_before_reading(api: Api) -> None:
    boundary = "b5gb"
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as sock:
        sock.sendall(_request_head(api, boundary, f"Content-Length: {5 * 1024**3}\r\n"))
        sock.sendall(multipart_head(boundary, {}))
        response = _read_response(sock)
    assert response.startswith(b"HTTP/1.1 413"), response[:200]


def test_five_gigabytes_chunked_are_refused_after_the_limit(api: Api) -> None:
    """No Content-Length: the server must stop reading at the limit and answer 413."""
    boundary = "b5gbc"
    chunk = b"\0" * 65536
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as sock:
        sock.sendall(_request_head(api, boundary, "Transfer-Encoding: chunked\r\n"))
        head = multipart_head(boundary, {})
        sock.sendall(f"{len(head):x}\r\n".encode() + head + b"\r\n")
        sock.setblocking(False)
        deadline = time.monotonic() + 20
        while sent < 5 * 1024**3 and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 0.5)
            if readable:
                break
            if writable:
                try:
                    sent += sock.send(frame)
                except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                    break
        sock.setblocking(True)
        response = _read_response(sock)
    assert response.startswith(b"HTTP/1.1 413"), response[:300]
    # What the client managed to push includes kernel socket buffers on both sides.
    assert sent < LIMIT + 16 * 1024**2, sent
    assert _temps(api.home) == []


def test_client_disconnect_mid_upload_leaves_nothing(api: Api) -> None:
    boundary = "bdisc"
    before = _objects(api.home)
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as sock:
        sock.sendall(_request_head(api, boundary, f"Content-Length: {LIMIT}\r\n"))
        sock.sendall(multipart_head(boundary, {"name": "vanishing.bin", "tags": "vanishing"}))
        sock.sendall(os.urandom(LIMIT // 3))
        time.sleep(0.3)  # the server is now mid-upload, with a temporary object open
    deadline = time.monotonic() + 10
    while _temps(api.home) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _temps(api.home) == []
    assert _objects(api.home) == before
    r = httpx.get(f"{api.url}/api/v1/artifacts", headers=api.headers, params={"tag": "vanishing"})
    assert r.json()["items"] == []
    assert httpx.get(f"{api.url}/health").status_code == 200


def test_concurrent_uploads(api: Api) -> None:
    payloads = [os.urandom(100_000 + i) for i in range(6)]

    def one(data: bytes) -> dict[str, str]:
        r = httpx.post(f"{api.url}/api/v1/artifacts", headers=api.headers, timeout=30,
                       files={"file": ("c.bin", data, "application/octet-stream")}, data={"tags": "concurrent"})
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        arts = list(pool.map(one, payloads))
    for art, data in zip(arts, payloads, strict=True):
        assert art["sha256"] == hashlib.sha256(data).hexdigest()
        got = httpx.get(f"{api.url}{art['content_url']}", headers=api.headers)
        assert got.content == data
    listed = httpx.get(f"{api.url}/api/v1/artifacts", headers=api.headers, params={"tag": "concurrent"}).json()
    assert {i["id"] for i in listed["items"]} == {a["id"] for a in arts}


def _raw_response(sock: socket.socket, request: bytes) -> tuple[bytes, dict[str, str]]:
    """Send one request and read exactly one response head; return (status line, headers)."""
    sock.sendall(request)
    head = _read_response(sock)
    lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        assert name.lower() not in headers, f"duplicate header {name}"
        headers[name.lower()] = value.strip()
    assert head.split(b"\r\n\r\n", 1)[1] == b"", "bytes after the head of a HEAD response"
    return lines[0].encode(), headers


def test_head_on_the_wire_sends_headers_only(api: Api) -> None:
    """HEAD through uvicorn: the real Content-Length and ETag, no body bytes, and the connection stays usable."""
    data = os.urandom(200_000)
    r = httpx.post(f"{api.url}/api/v1/artifacts", headers=api.headers, files={"file": ("h.bin", data, "x/y")})
    assert r.status_code == 201, r.text
    art = r.json()
    auth = api.headers["Authorization"]

    def head(path: str, extra: str = "") -> bytes:
        return f"HEAD {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n{extra}\r\n".encode()

    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as sock:
        status, headers = _raw_response(sock, head(art["content_url"]))
        assert status == b"HTTP/1.1 200 OK"
        assert (headers["content-length"], headers["etag"]) == (str(len(data)), f'"{hashlib.sha256(data).hexdigest()}"')
        assert (headers["accept-ranges"], headers["content-type"]) == ("bytes", "x/y")
        time.sleep(0.2)  # would a body follow? nothing may arrive before the next response
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            assert sock.recv(1) == b"", "a body followed the HEAD response"
        sock.setblocking(True)
        status, headers = _raw_response(sock, head(art["content_url"], f'If-None-Match: "{art["sha256"]}"\r\n'))
        assert status.startswith(b"HTTP/1.1 304")
        status, _ = _raw_response(sock, head(f"/api/v1/artifacts/art_{'0' * 24}/content"))
        assert status.startswith(b"HTTP/1.1 404")
    got = httpx.get(f"{api.url}{art['content_url']}", headers=api.headers)
    assert hashlib.sha256(got.content).hexdigest() == art["sha256"]


@pytest.mark.parametrize(("size", "status"), [(LIMIT, 201), (LIMIT + 1, 413)])
def test_chunked_at_the_limit(api: Api, size: int, status: int) -> None:
    """Without Content-Length only the bytes read decide: exactly the limit passes, one more byte is refused."""
    data = os.urandom(size)
    boundary = "b" + secrets.token_hex(8)
    tag = f"edge{size}"

    def body() -> Iterator[bytes]:
        yield multipart_head(boundary, {"tags": tag})
        for i in range(0, len(data), 65_536):
            yield data[i:i + 65_536]
        yield multipart_tail(boundary)

    before = _objects(api.home)
    headers = {**api.headers, "Content-Type": f"multipart/form-data; boundary={boundary}"}
    r = httpx.post(f"{api.url}/api/v1/artifacts", headers=headers, content=body(), timeout=30)
    assert "content-length" not in r.request.headers
    assert r.status_code == status, r.text
    listed = httpx.get(f"{api.url}/api/v1/artifacts", headers=api.headers, params={"tag": tag}).json()["items"]
    if status == 201:
        assert r.json()["size"] == size
        assert r.json()["sha256"] == hashlib.sha256(data).hexdigest()
        assert [i["id"] for i in listed] == [r.json()["id"]]
    else:
        assert r.json()["error"]["rule"] == "artifact_too_large"
        assert listed == []
        assert _objects(api.home) == before
    assert _temps(api.home) == []


def test_concurrent_uploads_of_identical_content(api: Api) -> None:
    """Eight uploads of the same bytes race to publish one object: all succeed, each is its own artifact."""
    data = os.urandom(300_000)
    digest = hashlib.sha256(data).hexdigest()
    barrier = threading.Barrier(8)

    def one(i: int) -> dict[str, str]:
        barrier.wait()
        r = httpx.post(f"{api.url}/api/v1/artifacts", headers=api.headers, timeout=30,
                       files={"file": (f"same-{i}.bin", data, "application/octet-stream")}, data={"tags": "identical"})
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        arts = list(pool.map(one, range(8)))
    assert {a["sha256"] for a in arts} == {digest}
    assert len({a["id"] for a in arts}) == 8
    assert [p.name for p in _objects(api.home)].count(digest) == 1
    assert _temps(api.home) == []
    for art in arts:
        got = httpx.get(f"{api.url}{art['content_url']}", headers=api.headers)
        assert hashlib.sha256(got.content).hexdigest() == got.headers["etag"].strip('"') == digest
