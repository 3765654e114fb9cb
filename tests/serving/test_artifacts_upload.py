"""Artifact uploads in-process: fields, the size limit while streaming, malformed bodies, names as metadata."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import TestClient

from shared.control.db import session_scope
from shared.control.models import ArtifactRow
from tests.serving import artifact_support
from tests.serving.artifact_support import (
    LIMIT,
    Headers,
    Shared,
    created,
    make_settings,
    multipart_head,
    stored_files,
    upload,
)
from tests.serving.helpers import assert_error

# The artifact modules' fixtures (tests/serving/artifact_support.py), found by pytest under these names.
home, api_settings, swarm, owner, shared = (artifact_support.home, artifact_support.api_settings,
                                            artifact_support.swarm, artifact_support.owner, artifact_support.shared)

# --- upload ------------------------------------------------------------------------------


def test_upload_records_checksum_and_fields(client: TestClient[Litestar], owner: Headers, home: Path) -> None:
    data = os.urandom(50_000)
    art = created(client, owner, data, name="report.csv", content_type="text/csv", tags='["q3", "sales"]',
                  metadata='{"rows": 12, "source": {"table": "demo.public.orders"}}', expires_in="2h")
    assert art["sha256"] == hashlib.sha256(data).hexdigest()
    assert art["size"] == len(data)
    assert (art["name"], art["content_type"], art["tags"]) == ("report.csv", "text/csv", ["q3", "sales"])
    assert art["metadata"] == {"rows": 12, "source": {"table": "demo.public.orders"}}
    assert art["visibility"] == "private"
    expires = dt.datetime.fromisoformat(art["expires_at"])
    assert dt.timedelta(minutes=119) < expires - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=2)
    files = stored_files(home)
    assert files == [home / "artifacts" / "objects" / art["sha256"][:2] / art["sha256"]]
    r = client.get(f"/api/v1/artifacts/{art['id']}/content", headers=owner)
    assert r.status_code == 200
    assert r.content == data
    assert hashlib.sha256(r.content).hexdigest() == r.headers["etag"].strip('"') == art["sha256"]
    assert r.headers["x-content-type-options"] == "nosniff"


def test_defaults_come_from_the_file_part(shared: Shared) -> None:
    api_settings = make_settings(shared.home)
    art = created(shared.client, shared.owner, b"x", filename="notes.md", part_type="text/markdown", tags="a, b ,a")
    assert (art["name"], art["content_type"], art["tags"]) == ("notes.md", "text/markdown", ["a", "b"])
    ttl = dt.datetime.fromisoformat(art["expires_at"]) - dt.datetime.fromisoformat(art["created_at"])
    assert ttl == dt.timedelta(seconds=api_settings.artifacts.default_ttl_s)


@pytest.mark.parametrize(("fields", "field"), [
    ({"metadata": "{not json"}, "metadata"),
    ({"metadata": "[1, 2]"}, "metadata"),
    ({"tags": '["ok", 3]'}, "tags"),
    ({"tags": ",".join(f"t{i}" for i in range(40))}, "tags"),
    ({"visibility": "everyone"}, "visibility"),
    ({"visibility": '["not an id!"]'}, "visibility"),
    ({"visibility": '["tok_doesnotexist"]'}, "visibility"),
    ({"expires_in": "0"}, "expires_in"),
    ({"expires_in": "soon"}, "expires_in"),
    ({"expires_in": str(400 * 86400)}, "expires_in"),
    ({"content_type": "text/html\r\nX-Evil: 1"}, "content_type"),
    ({"content_type": "nonsense"}, "content_type"),
    ({"colour": "blue"}, "colour"),
])
def test_invalid_fields_are_refused_and_nothing_is_kept(shared: Shared, fields: dict[str, str], field: str) -> None:
    before = stored_files(shared.home)
    err = assert_error(upload(shared.client, shared.owner, os.urandom(100), **fields), 400, rule="invalid_artifact_field")
    assert err["details"]["field"] == field
    assert stored_files(shared.home) == before


def test_exactly_the_limit_is_accepted(shared: Shared) -> None:
    client, owner = shared.client, shared.owner
    data = os.urandom(LIMIT)
    art = created(client, owner, data)
    assert art["size"] == LIMIT
    assert client.get(f"/api/v1/artifacts/{art['id']}/content", headers=owner).content == data


def test_limit_plus_one_byte_is_refused_and_leaves_nothing(client: TestClient[Litestar], owner: Headers, home: Path) -> None:
    err = assert_error(upload(client, owner, os.urandom(LIMIT + 1)), 413, rule="artifact_too_large")
    assert err["details"]["max_bytes"] == LIMIT
    assert list(stored_files(home)) == []
    with session_scope(client.app.state.services.control_url) as s:  # type: ignore[attr-defined]
        assert s.scalar(sa.select(sa.func.count()).select_from(ArtifactRow)) == 0


def _call_upload(client: TestClient[Litestar], headers: Headers, declared: int | None,  # noqa: PLR0917
                 total: int, chunk: int = 64 * 1024, disconnect_after: int | None = None) -> tuple[int, int, bytes]:
    """Drive the ASGI app directly with a body of ``total`` bytes; return (status, bytes read by the app, body).

    ``disconnect_after``: the client vanishes (``http.disconnect``) once that many file bytes were sent.
    """
    boundary = "xYzBoundary"
    head = multipart_head(boundary, {"name": "huge.bin"})
    read = [0]
    sent = [head]
    remaining = [total]

    async def receive() -> dict[str, Any]:
        if disconnect_after is not None and total - remaining[0] >= disconnect_after:
            return {"type": "http.disconnect"}
        if sent:
            body = sent.pop()
        else:
            n = min(chunk, remaining[0])
            remaining[0] -= n
            body = b"\0" * n
        read[0] += len(body)
        return {"type": "http.request", "body": body, "more_body": remaining[0] > 0}

    out: dict[str, Any] = {"body": b""}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        elif message["type"] == "http.response.body":
            out["body"] += message.get("body", b"")

    raw_headers = [(b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
                   *((k.lower().encode(), v.encode()) for k, v in headers.items())]
    if declared is not None:
        raw_headers.append((b"content-length", str(declared).encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/api/v1/artifacts", "raw_path": b"/api/v1/artifacts", "root_path": "", "query_string": b"",
             "headers": raw_headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "state": {}}

    async def run() -> None:
        await client.app(scope, receive, send)  # type: ignore[arg-type]

    client.blocking_portal.call(run)
    return out["status"], read[0], out["body"]


def test_five_gigabytes_are_refused_after_the_limit_plus_one_chunk(shared: Shared) -> None:
    client, owner = shared.client, shared.owner
    before = stored_files(shared.home)
    five_gb = 5 * 1024**3
    chunk = 64 * 1024
    status, read, _ = _call_upload(client, owner, declared=None, total=five_gb, chunk=chunk)
    assert status == 413
    head = len(multipart_head("xYzBoundary", {"name": "huge.bin"}))
    assert read <= head + LIMIT + chunk, read
    # Declared up front: refused before a single body byte is read.
    status, read, _ = _call_upload(client, owner, declared=five_gb, total=five_gb)
    assert (status, read) == (413, 0)
    assert stored_files(shared.home) == before


@pytest.mark.parametrize("declared", [True, False])
def test_client_disconnect_mid_upload_leaves_nothing(client: TestClient[Litestar], owner: Headers, home: Path,
                                                    declared: bool) -> None:
    """The client vanishes half-way: no artifact row, no object, no temporary file, and the app keeps serving."""
    total = LIMIT - 1000
    status, read, _ = _call_upload(client, owner, declared=total + 500 if declared else None, total=total,
                                   disconnect_after=LIMIT // 2)
    assert status == 400  # what the app answers; the client is gone and never sees it
    assert LIMIT // 2 <= read < total
    assert stored_files(home) == []  # neither objects/ nor tmp/ holds anything
    with session_scope(client.app.state.services.control_url) as s:  # type: ignore[attr-defined]
        assert s.scalar(sa.select(sa.func.count()).select_from(ArtifactRow)) == 0
    assert client.get("/api/v1/artifacts", headers=owner).json()["items"] == []
    art = created(client, owner, b"after the disconnect")
    assert client.get(art["content_url"], headers=owner).content == b"after the disconnect"


@pytest.mark.parametrize(("body", "ctype", "status", "rule"), [
    (b"plain body", "text/plain", 415, "multipart_required"),
    (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nhalf", "multipart/form-data; boundary=b",
     400, "malformed_multipart"),
    (b"--b\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nx\r\n--b--\r\n", "multipart/form-data; boundary=b",
     400, "file_missing"),
    (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n1\r\n"
     b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b\"\r\n\r\n2\r\n--b--\r\n",
     "multipart/form-data; boundary=b", 400, "malformed_multipart"),
    (b"--b\r\nContent-Disposition: form-data\r\n\r\n1\r\n--b--\r\n", "multipart/form-data; boundary=b",
     400, "malformed_multipart"),
    (b"", "multipart/form-data", 400, "malformed_multipart"),
])
def test_malformed_bodies(shared: Shared, body: bytes, ctype: str, status: int, rule: str) -> None:
    before = stored_files(shared.home)
    r = shared.client.post("/api/v1/artifacts", headers={**shared.owner, "Content-Type": ctype}, content=body)
    assert_error(r, status, rule=rule)
    assert stored_files(shared.home) == before


def test_oversized_form_fields_are_refused(shared: Shared) -> None:
    assert_error(upload(shared.client, shared.owner, metadata='{"a": "' + "x" * 70_000 + '"}'), 413, rule="fields_too_large")


def test_uploads_need_an_agent_token(client: TestClient[Litestar], admin_headers: Headers,
                                     swarm_headers: Callable[[str], Headers], swarm: dict[str, Any]) -> None:
    assert_error(upload(client, admin_headers), 403, rule="requires_agent")
    assert_error(upload(client, swarm_headers(swarm["id"])), 403, rule="requires_agent")
    assert_error(upload(client, {}), 401)


# --- names are metadata only --------------------------------------------------------------

KEPT_NAMES = [
    "../../etc/passwd", "/etc/passwd", "..\\..\\windows\\system32\\cmd.exe", "C:\\boot.ini", "./.hidden",
    "．．／．．／etc／passwd",  # fullwidth dots and slashes (NFKC: ../../etc/passwd)
    "ﬁle.txt",  # NFKC folds the ligature
    "report\u0301.csv",  # combining accent (stored NFC)
    "名前.csv", "a" * 255, "%2e%2e%2fsecret", "file:///etc/shadow", "~root/.ssh/id_rsa", "CON", "nul.txt",
]
REFUSED_NAMES = [
    "evil\x00.txt", "line\nbreak", "tab\there", "bell\x07", "invoice\u202egpj.exe", "isolate\u2066x", "a" * 256,
    "   ", "del\x7f",
]


@pytest.mark.parametrize("name", KEPT_NAMES)
def test_path_like_names_are_kept_as_metadata(shared: Shared, name: str) -> None:
    import unicodedata

    root = shared.home.parent
    before = {p for p in root.rglob("*") if not p.name.startswith("control.db")}
    art = created(shared.client, shared.owner, name.encode() + os.urandom(8), name=name)
    assert art["name"] == unicodedata.normalize("NFC", name)
    new = {p for p in root.rglob("*") if not p.name.startswith("control.db")} - before
    objects = shared.home / "artifacts" / "objects"
    assert new <= {objects / art["sha256"][:2], objects / art["sha256"][:2] / art["sha256"]}, new
    r = shared.client.get(f"/api/v1/artifacts/{art['id']}/content", headers=shared.owner)
    disposition = r.headers["content-disposition"]
    ascii_part = disposition.split('filename="', 1)[1].split('"', 1)[0]
    assert "/" not in ascii_part
    assert "\\" not in ascii_part
    assert not ascii_part.startswith(".")
    assert "\r" not in disposition
    assert "\n" not in disposition


@pytest.mark.parametrize("name", REFUSED_NAMES)
def test_control_and_bidi_names_are_refused(shared: Shared, name: str) -> None:
    before = stored_files(shared.home)
    assert_error(upload(shared.client, shared.owner, os.urandom(64), name=name), 400, rule="invalid_artifact_field")
    assert stored_files(shared.home) == before


def test_client_filename_with_traversal_is_only_a_name(shared: Shared) -> None:
    before = stored_files(shared.home)
    art = created(shared.client, shared.owner, os.urandom(16), filename="../../../../tmp/pwned.sh")
    assert art["name"] == "../../../../tmp/pwned.sh"
    objects = shared.home / "artifacts" / "objects"
    assert stored_files(shared.home) == sorted([*before, objects / art["sha256"][:2] / art["sha256"]])
