"""The artifact access matrix: every endpoint × caller × visibility.

Callers: the owner (agent of swarm S1), a peer agent of S1, an agent of S1 named in the
artifact's visibility list, an agent of another swarm, S1's swarm token, the admin and
a revoked agent token of S1 (also named in the list). An artifact a caller may not see
answers exactly like an id that does not exist.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from serving.app import create_app
from shared.control.db import session_scope
from shared.control.models import QueryJobRow
from shared.settings import Settings
from tests.serving.helpers import admin_token, assert_error, bearer, create_swarm, mint_token

ACTORS = ("owner", "peer", "listed", "other_swarm", "swarm_token", "admin", "revoked")
VISIBILITIES = ("private", "swarm", "agents")
READERS = {
    "private": {"owner", "admin"},
    "swarm": {"owner", "admin", "peer", "listed", "swarm_token"},
    "agents": {"owner", "admin", "listed"},
}


@dataclasses.dataclass
class World:
    client: TestClient[Litestar]
    settings: Settings
    headers: dict[str, dict[str, str]]
    ids: dict[str, str]  # actor -> token id
    artifacts: dict[str, dict[str, Any]]  # visibility -> artifact JSON
    content: bytes


def _settings(home: Path) -> Settings:
    home.mkdir(parents=True)
    return Settings.from_env({"AGENTS_DATA_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'control.db'}",
                              "JWT_SECRET": "test-secret-" + "y" * 32, "ADMIN_PASSWORD": "admin-password"})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = _settings(tmp_path_factory.mktemp("access") / "home")
    with TestClient(create_app(settings)) as client:
        admin = bearer(admin_token(client))
        s1 = create_swarm(client, admin, [])["id"]
        s2 = create_swarm(client, admin, [])["id"]
        minted = {name: mint_token(client, admin, "agent", s1) for name in ("owner", "peer", "listed", "revoked")}
        minted["other_swarm"] = mint_token(client, admin, "agent", s2)
        minted["swarm_token"] = mint_token(client, admin, "swarm", s1)
        headers = {name: bearer(m["token"]) for name, m in minted.items()} | {"admin": admin}
        ids = {name: m["token_id"] for name, m in minted.items()}
        content = os.urandom(4096)
        artifacts = {v: _upload(client, headers["owner"], content, v, ids) for v in VISIBILITIES}
        r = client.delete(f"/api/v1/admin/tokens/{ids['revoked']}", headers=admin)
        assert r.status_code in (200, 204), r.text
        yield World(client, settings, headers, ids, artifacts, content)


def _upload(client: TestClient[Litestar], headers: dict[str, str], content: bytes, visibility: str,
            ids: dict[str, str]) -> dict[str, Any]:
    vis = f'["{ids["listed"]}", "{ids["revoked"]}"]' if visibility == "agents" else visibility
    r = client.post("/api/v1/artifacts", headers=headers, files={"file": ("f.bin", content, "application/octet-stream")},
                    data={"visibility": vis, "tags": "matrix"})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _missing(world: World, actor: str, method: str, suffix: str = "", **kw: Any) -> Any:
    """The answer for an id that does not exist, as a baseline for "not visible"."""
    return world.client.request(method, f"/api/v1/artifacts/art_{'0' * 24}{suffix}", headers=world.headers[actor], **kw)


def _same_as_missing(world: World, actor: str, r: Any, method: str, suffix: str = "", **kw: Any) -> None:
    assert_error(r, 404, code="not_found")
    baseline = _missing(world, actor, method, suffix, **kw)
    assert (r.status_code, r.json(), r.headers.get("content-type")) == \
        (baseline.status_code, baseline.json(), baseline.headers.get("content-type"))


def _swap_id(body: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """``body`` with the id in its message swapped, to compare two not-found answers."""
    error = dict(body["error"], message=body["error"]["message"].replace(old, new))
    return {"error": error}


CASES = [(a, v) for a in ACTORS for v in VISIBILITIES]


@pytest.mark.parametrize(("actor", "visibility"), CASES)
def test_metadata(world: World, actor: str, visibility: str) -> None:
    art = world.artifacts[visibility]
    r = world.client.get(f"/api/v1/artifacts/{art['id']}", headers=world.headers[actor])
    if actor == "revoked":
        assert_error(r, 401)
    elif actor in READERS[visibility]:
        assert (r.status_code, r.json()["sha256"]) == (200, art["sha256"])
    else:
        _same_as_missing(world, actor, r, "GET")


@pytest.mark.parametrize(("actor", "visibility"), CASES)
def test_content(world: World, actor: str, visibility: str) -> None:
    art = world.artifacts[visibility]
    r = world.client.get(f"/api/v1/artifacts/{art['id']}/content", headers=world.headers[actor])
    if actor == "revoked":
        assert_error(r, 401)
    elif actor in READERS[visibility]:
        assert r.status_code == 200
        assert hashlib.sha256(r.content).hexdigest() == art["sha256"] == r.headers["etag"].strip('"')
    else:
        _same_as_missing(world, actor, r, "GET", "/content")


@pytest.mark.parametrize(("actor", "visibility"), CASES)
def test_content_head(world: World, actor: str, visibility: str) -> None:
    art = world.artifacts[visibility]
    url = f"/api/v1/artifacts/{art['id']}/content"
    r = world.client.head(url, headers=world.headers[actor])
    if actor == "revoked":
        assert r.status_code == 401
    elif actor in READERS[visibility]:
        assert (r.status_code, r.content) == (200, b"")
        assert (r.headers["etag"], r.headers["content-length"]) == (f'"{art["sha256"]}"', str(len(world.content)))
    else:
        # Not visible answers exactly like an id that does not exist (HEAD carries no body to compare).
        missing = world.client.head(f"/api/v1/artifacts/art_{'0' * 24}/content", headers=world.headers[actor])
        assert (r.status_code, r.headers.get("etag"), r.headers.get("content-length")) == \
            (missing.status_code, missing.headers.get("etag"), missing.headers.get("content-length")) == \
            (404, None, missing.headers.get("content-length"))


@pytest.mark.parametrize("actor", ACTORS)
def test_list(world: World, actor: str) -> None:
    r = world.client.get("/api/v1/artifacts", headers=world.headers[actor], params={"tag": "matrix"})
    if actor == "revoked":
        assert_error(r, 401)
        return
    assert r.status_code == 200
    listed = {i["id"] for i in r.json()["items"]}
    assert listed == {world.artifacts[v]["id"] for v in VISIBILITIES if actor in READERS[v]}


@pytest.mark.parametrize(("actor", "visibility"), CASES)
def test_patch(world: World, actor: str, visibility: str) -> None:
    art = world.artifacts[visibility]
    r = world.client.patch(f"/api/v1/artifacts/{art['id']}", headers=world.headers[actor], json={"tags": ["matrix"]})
    if actor == "revoked":
        assert_error(r, 401)
    elif actor == "owner":
        assert (r.status_code, r.json()["tags"]) == (200, ["matrix"])
    elif actor in READERS[visibility]:
        assert_error(r, 403, rule="not_owner")
    else:
        _same_as_missing(world, actor, r, "PATCH", json={"tags": ["matrix"]})


@pytest.mark.parametrize(("actor", "visibility"), CASES)
def test_delete(world: World, actor: str, visibility: str) -> None:
    art = _upload(world.client, world.headers["owner"], os.urandom(64), visibility, world.ids)
    r = world.client.delete(f"/api/v1/artifacts/{art['id']}", headers=world.headers[actor])
    if actor == "revoked":
        assert_error(r, 401)
    elif actor in ("owner", "admin"):
        assert r.status_code == 204
        assert_error(world.client.get(f"/api/v1/artifacts/{art['id']}", headers=world.headers["owner"]), 404)
        return
    elif actor in READERS[visibility]:
        assert_error(r, 403, rule="not_owner")
    else:
        _same_as_missing(world, actor, r, "DELETE")
    assert world.client.get(f"/api/v1/artifacts/{art['id']}", headers=world.headers["owner"]).status_code == 200


@pytest.mark.parametrize("actor", ACTORS)
def test_upload(world: World, actor: str) -> None:
    r = world.client.post("/api/v1/artifacts", headers=world.headers[actor], files={"file": ("x", b"x", "text/plain")})
    expected = {"revoked": 401, "admin": 403, "swarm_token": 403}.get(actor, 201)
    assert r.status_code == expected, r.text


@pytest.fixture(scope="module")
def job(world: World) -> str:
    """A succeeded query job of the owner, with a Parquet result under <home>/results."""
    results = world.settings.results_path
    results.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"x": [1, 2, 3]}), results / "job-matrix.parquet")
    with session_scope(world.settings.control_url) as s:
        s.add(QueryJobRow(id="job_matrix", token_id=world.ids["owner"], swarm_id=None, sql_text="select 1",
                          sql_hash="h" * 64, output_format="parquet", status="succeeded", max_rows=10, row_count=3,
                          tables=[], result_path=str(results / "job-matrix.parquet"),
                          finished_at=dt.datetime.now(dt.UTC)))
    return "job_matrix"


@pytest.mark.parametrize("actor", ACTORS)
def test_save_query_result(world: World, job: str, actor: str) -> None:
    r = world.client.post(f"/api/v1/queries/jobs/{job}/artifact", headers=world.headers[actor], json={"format": "csv"})
    if actor == "revoked":
        assert_error(r, 401)
    elif actor in ("admin", "swarm_token"):
        assert_error(r, 403, rule="requires_agent")
    elif actor == "owner":
        assert r.status_code == 201, r.text
    else:
        baseline = world.client.post("/api/v1/queries/jobs/job_missing/artifact", headers=world.headers[actor],
                                     json={"format": "csv"})
        assert_error(r, 404)
        assert r.json() == _swap_id(baseline.json(), "job_missing", job)
