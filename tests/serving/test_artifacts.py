"""Artifacts in-process: ranged and conditional downloads, list, change, delete, expiry, purge, query results."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import TestClient

from shared.artifacts_store import LocalStore, purge_expired_artifacts
from shared.control.db import session_scope
from shared.control.models import ArtifactRow
from shared.settings import Settings
from tests.serving import artifact_support
from tests.serving.artifact_support import (
    Headers,
    Shared,
    created,
    stored_files,
    upload,
)
from tests.serving.helpers import assert_error

# The artifact modules' fixtures (tests/serving/artifact_support.py), found by pytest under these names.
home, api_settings, swarm, owner, shared = (artifact_support.home, artifact_support.api_settings,
                                            artifact_support.swarm, artifact_support.owner, artifact_support.shared)

# --- downloads -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def blob(shared: Shared) -> tuple[dict[str, Any], bytes]:
    data = bytes(range(256)) * 40  # 10,240 bytes
    return created(shared.client, shared.owner, data, name="blob.bin"), data


@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=0-0", 0, 0), ("bytes=10-19", 10, 19), ("bytes=10240-", None, None), ("bytes=10000-", 10000, 10239),
    ("bytes=-100", 10140, 10239), ("bytes=-99999", 0, 10239), ("bytes=5-999999", 5, 10239), ("bytes=10239-10239", 10239, 10239),
])
def test_single_ranges(shared: Shared, blob: tuple[dict[str, Any], bytes], header: str,
                       start: int | None, end: int | None) -> None:
    art, data = blob
    r = shared.client.get(f"/api/v1/artifacts/{art['id']}/content", headers={**shared.owner, "Range": header})
    if start is None:
        assert_error(r, 416, rule="range_not_satisfiable")
        assert r.headers["content-range"] == f"bytes */{len(data)}"
        return
    assert r.status_code == 206
    assert r.content == data[start:end + 1]  # type: ignore[operator]
    assert r.headers["content-range"] == f"bytes {start}-{end}/{len(data)}"
    assert int(r.headers["content-length"]) == end - start + 1  # type: ignore[operator]


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "items=0-5", "bytes=9-3", "bytes=abc", "bytes=-"])
def test_unsupported_ranges_get_the_whole_object(shared: Shared, blob: tuple[dict[str, Any], bytes], header: str) -> None:
    art, data = blob
    r = shared.client.get(f"/api/v1/artifacts/{art['id']}/content", headers={**shared.owner, "Range": header})
    assert (r.status_code, r.content) == (200, data)


def test_conditional_requests(shared: Shared, blob: tuple[dict[str, Any], bytes]) -> None:
    client, owner = shared.client, shared.owner
    art, data = blob
    url = f"/api/v1/artifacts/{art['id']}/content"
    tag = f'"{art["sha256"]}"'
    for inm in (tag, f"W/{tag}", f'"other", {tag}', "*"):
        r = client.get(url, headers={**owner, "If-None-Match": inm})
        assert (r.status_code, r.content, r.headers["etag"]) == (304, b"", tag)
    assert client.get(url, headers={**owner, "If-None-Match": '"stale"'}).content == data
    r = client.get(url, headers={**owner, "Range": "bytes=0-3", "If-Range": tag})
    assert (r.status_code, r.content) == (206, data[:4])
    r = client.get(url, headers={**owner, "Range": "bytes=0-3", "If-Range": '"stale"'})
    assert (r.status_code, r.content) == (200, data)


def test_empty_artifact(shared: Shared) -> None:
    client, owner = shared.client, shared.owner
    art = created(client, owner, b"")
    assert art["sha256"] == hashlib.sha256(b"").hexdigest()
    r = client.get(f"/api/v1/artifacts/{art['id']}/content", headers=owner)
    assert (r.status_code, r.content) == (200, b"")
    assert_error(client.get(f"/api/v1/artifacts/{art['id']}/content", headers={**owner, "Range": "bytes=0-0"}), 416)


def test_head_answers_the_download_headers_without_a_body(shared: Shared, blob: tuple[dict[str, Any], bytes]) -> None:
    client, owner = shared.client, shared.owner
    art, data = blob
    url = f"/api/v1/artifacts/{art['id']}/content"
    got, r = client.get(url, headers=owner), client.head(url, headers=owner)
    assert (r.status_code, r.content) == (200, b"")
    assert r.headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"' == got.headers["etag"]
    assert int(r.headers["content-length"]) == len(data) == len(got.content)
    assert r.headers["accept-ranges"] == "bytes"
    for name in ("content-type", "content-disposition", "x-content-type-options", "cache-control"):
        assert r.headers[name] == got.headers[name], name
    # Ranges are defined for GET only (RFC 9110): HEAD ignores them, even unsatisfiable ones.
    for rng in ("bytes=0-9", "bytes=999999-"):
        ranged = client.head(url, headers={**owner, "Range": rng})
        assert (ranged.status_code, ranged.content, ranged.headers["content-length"]) == (200, b"", str(len(data)))
        assert "content-range" not in ranged.headers
    tag = r.headers["etag"]
    for inm in (tag, f"W/{tag}", "*"):
        cached = client.head(url, headers={**owner, "If-None-Match": inm})
        assert (cached.status_code, cached.content, cached.headers["etag"]) == (304, b"", tag)
    assert client.head(url, headers={**owner, "If-None-Match": '"stale"'}).status_code == 200


def test_head_follows_the_download_access_rules(shared: Shared) -> None:
    client, owner = shared.client, shared.owner
    art = created(client, owner, b"to be deleted")
    url = f"/api/v1/artifacts/{art['id']}/content"
    assert client.head(url, headers=owner).status_code == 200
    assert client.head(url).status_code == 401
    assert client.delete(f"/api/v1/artifacts/{art['id']}", headers=owner).status_code == 204
    for gone in (url, f"/api/v1/artifacts/art_{'0' * 24}/content", "/api/v1/artifacts/art_%00/content"):
        assert client.head(gone, headers=owner).status_code == 404
        assert_error(client.get(gone, headers=owner), 404)


# --- list, change, delete ------------------------------------------------------------------


def test_list_filters(client: TestClient[Litestar], owner: Headers, swarm: dict[str, Any],
                      agent_headers: Callable[..., Headers]) -> None:
    other = agent_headers(swarm["id"])
    a = created(client, owner, b"1", tags="x,shared", content_type="text/csv", visibility="swarm")
    b = created(client, owner, b"2", tags="y", content_type="application/json", visibility="swarm")
    c = created(client, other, b"3", tags="x", content_type="text/csv", visibility="swarm")

    def ids(**params: Any) -> list[str]:
        r = client.get("/api/v1/artifacts", headers=owner, params=params)
        assert r.status_code == 200, r.text
        return [i["id"] for i in r.json()["items"]]

    assert ids() == [c["id"], b["id"], a["id"]]
    assert ids(tag="x") == [c["id"], a["id"]]
    assert ids(tag="shared") == [a["id"]]
    assert ids(tag="x\"") == []
    assert ids(content_type="text/csv") == [c["id"], a["id"]]
    assert ids(owner=a["owner"]) == [b["id"], a["id"]]
    assert ids(created_after=b["created_at"]) == [c["id"]]
    assert ids(created_before=b["created_at"]) == [a["id"]]
    page = client.get("/api/v1/artifacts", headers=owner, params={"limit": 2}).json()
    assert (page["count"], page["next_offset"]) == (2, 2)
    rest = client.get("/api/v1/artifacts", headers=owner, params={"limit": 2, "offset": 2}).json()
    assert ([i["id"] for i in rest["items"]], rest["next_offset"]) == ([a["id"]], None)
    assert_error(client.get("/api/v1/artifacts", headers=owner, params={"limit": 0}), 400)


def test_patch(client: TestClient[Litestar], owner: Headers, swarm: dict[str, Any],
               agent_headers: Callable[..., Headers]) -> None:
    art = created(client, owner, b"v1")
    url = f"/api/v1/artifacts/{art['id']}"
    r = client.patch(url, headers=owner, json={"name": "renamed.txt", "tags": ["new"], "metadata": {"k": "v"},
                                               "visibility": "swarm", "expires_in": "1d"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["name"], got["tags"], got["metadata"], got["visibility"]) == ("renamed.txt", ["new"], {"k": "v"}, "swarm")
    assert dt.datetime.fromisoformat(got["expires_at"]) - dt.datetime.now(dt.UTC) <= dt.timedelta(days=1)
    assert got["sha256"] == art["sha256"]
    assert got["updated_at"] > art["updated_at"]
    assert client.get(url, headers=owner).json()["name"] == "renamed.txt"
    at = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)).isoformat()
    assert dt.datetime.fromisoformat(client.patch(url, headers=owner, json={"expires_at": at}).json()["expires_at"]) == \
        dt.datetime.fromisoformat(at)
    peer = agent_headers(swarm["id"])
    peer_id = client.get("/api/v1/artifacts", headers=peer).json()["items"][0]["id"]
    assert peer_id == art["id"]
    assert_error(client.patch(url, headers=peer, json={"name": "mine now"}), 403, rule="not_owner")
    for bad in ({"name": "a\x00b"}, {"visibility": "world"}, {"expires_in": -5}, {"unknown": 1},
                {"expires_in": 60, "expires_at": at}, {"expires_at": "2001-01-01T00:00:00Z"}, {"tags": "x"}):
        assert_error(client.patch(url, headers=owner, json=bad), 400)


def test_visibility_list_must_name_agents_of_the_swarm(client: TestClient[Litestar], owner: Headers,
                                                       swarm: dict[str, Any], make_swarm: Callable[..., dict[str, Any]],
                                                       admin_headers: Headers) -> None:
    from tests.serving.helpers import mint_token

    friend = mint_token(client, admin_headers, "agent", swarm["id"])["token_id"]
    stranger = mint_token(client, admin_headers, "agent", make_swarm([])["id"])["token_id"]
    swarm_tok = mint_token(client, admin_headers, "swarm", swarm["id"])["token_id"]
    art = created(client, owner, b"x", visibility=f'["{friend}"]')
    assert (art["visibility"], art["visible_to"]) == ("agents", [friend])
    for ids in ([stranger], [friend, stranger], [swarm_tok]):
        err = assert_error(upload(client, owner, visibility=",".join(ids)), 400, rule="invalid_artifact_field")
        assert err["details"]["field"] == "visibility"


def test_delete_hides_at_once_and_purge_reclaims(client: TestClient[Litestar], owner: Headers, home: Path,
                                                  api_settings: Settings) -> None:
    keep = created(client, owner, b"shared content")
    twin = created(client, owner, b"shared content")  # same object
    solo = created(client, owner, b"only here")
    for art in (twin, solo):
        assert client.delete(f"/api/v1/artifacts/{art['id']}", headers=owner).status_code == 204
        assert_error(client.get(f"/api/v1/artifacts/{art['id']}", headers=owner), 404)
        assert_error(client.get(f"/api/v1/artifacts/{art['id']}/content", headers=owner), 404)
        assert_error(client.delete(f"/api/v1/artifacts/{art['id']}", headers=owner), 404)
    assert [i["id"] for i in client.get("/api/v1/artifacts", headers=owner).json()["items"]] == [keep["id"]]
    # Within the grace period the unreferenced object stays (a concurrent upload may be reusing it) …
    assert purge_expired_artifacts(api_settings) == 2
    assert len(stored_files(home)) == 2
    # … and goes after it; the shared object stays while a live artifact refers to it.
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert purge_expired_artifacts(api_settings, now=later) == 0
    assert stored_files(home) == [LocalStore(home / "artifacts").path_of(keep["sha256"])]
    assert client.get(f"/api/v1/artifacts/{keep['id']}/content", headers=owner).content == b"shared content"


def _expire(url: str, artifact_id: str) -> None:
    with session_scope(url) as s:
        s.get(ArtifactRow, artifact_id).expires_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)  # type: ignore[union-attr]


def test_expired_artifacts_stop_being_served_at_once(client: TestClient[Litestar], owner: Headers, home: Path,
                                                     admin_headers: Headers, api_settings: Settings) -> None:
    gone = created(client, owner, b"expiring")
    live = created(client, owner, b"living")
    _expire(api_settings.control_url, gone["id"])
    for headers in (owner, admin_headers):
        assert_error(client.get(f"/api/v1/artifacts/{gone['id']}", headers=headers), 404)
        assert_error(client.get(f"/api/v1/artifacts/{gone['id']}/content", headers=headers), 404)
        assert [i["id"] for i in client.get("/api/v1/artifacts", headers=headers).json()["items"]] == [live["id"]]
    assert_error(client.patch(f"/api/v1/artifacts/{gone['id']}", headers=owner, json={"expires_in": 3600}), 404)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert purge_expired_artifacts(api_settings, now=later) == 1
    assert stored_files(home) == [LocalStore(home / "artifacts").path_of(live["sha256"])]
    assert purge_expired_artifacts(api_settings, now=later) == 0  # idempotent


def test_expiry_by_the_clock(shared: Shared) -> None:
    """``expires_in`` set at upload: served until then, 404 everywhere from that moment, no purge needed."""
    client, owner = shared.client, shared.owner
    art = created(client, owner, b"short-lived", expires_in="1", tags="short-lived")
    url = f"/api/v1/artifacts/{art['id']}"
    deadline = dt.datetime.fromisoformat(art["expires_at"])
    assert dt.datetime.now(dt.UTC) < deadline
    assert client.get(url + "/content", headers=owner).content == b"short-lived"
    while dt.datetime.now(dt.UTC) <= deadline:
        time.sleep(0.05)
    assert_error(client.get(url, headers=owner), 404)
    assert_error(client.get(url + "/content", headers=owner), 404)
    assert client.head(url + "/content", headers=owner).status_code == 404
    assert_error(client.patch(url, headers=owner, json={"name": "revived"}), 404)
    assert_error(client.delete(url, headers=owner), 404)
    assert client.get("/api/v1/artifacts", headers=owner, params={"tag": "short-lived"}).json()["items"] == []


def test_housekeeping_delegate_finds_the_purge(client: TestClient[Litestar], owner: Headers,
                                               api_settings: Settings) -> None:
    from shared.housekeeping import purge_expired_artifacts as housekeeping_purge

    art = created(client, owner, b"old")
    _expire(api_settings.control_url, art["id"])
    report = housekeeping_purge(api_settings)
    assert report.counts == {"artifacts_deleted": 1}


def test_audit_records_bytes(client: TestClient[Litestar], owner: Headers, flush_audit: Callable[[], None],
                             api_settings: Settings) -> None:
    from shared.control.models import AuditRow

    art = created(client, owner, b"12345")
    client.get(f"/api/v1/artifacts/{art['id']}/content", headers=owner)
    flush_audit()
    with session_scope(api_settings.control_url) as s:
        rows = s.execute(sa.select(AuditRow.method, AuditRow.endpoint, AuditRow.bytes, AuditRow.status_code)
                         .where(AuditRow.endpoint.like("/api/v1/artifacts%"))).all()
    assert ("POST", "/api/v1/artifacts", 5, 201) in rows
    assert ("GET", f"/api/v1/artifacts/{art['id']}/content", 5, 200) in rows


# --- saving a query result ------------------------------------------------------------------


@pytest.mark.parametrize(("output_format", "saved_as"), [("parquet", "csv"), ("arrow", "parquet"), ("csv", "csv"),
                                                         ("parquet", "parquet")])
def test_query_result_becomes_an_artifact(client: TestClient[Litestar], api_settings: Settings,  # noqa: PLR0917
                                          make_swarm: Callable[..., dict[str, Any]], agent_headers: Callable[..., Headers],
                                          output_format: str, saved_as: str) -> None:
    import io

    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from tests.conftest import publish_table

    manifest = publish_table(api_settings.served_path, "demo.public.orders",
                             "SELECT i AS id, 'o' || i::VARCHAR AS label, i * 2.5 AS amount FROM range(500) t(i)")
    swarm_id = make_swarm(["demo.public.orders"])["id"]
    agent, other = agent_headers(swarm_id), agent_headers(swarm_id)
    sql = "SELECT id, label FROM orders WHERE id % 5 = 0 ORDER BY id"
    r = client.post("/api/v1/queries/execute", headers=agent, json={"query": sql, "output_format": output_format})
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["status"] == "succeeded"
    body = {"format": saved_as, "name": "fives", "tags": ["report"], "visibility": "swarm"}
    assert_error(client.post(f"/api/v1/queries/jobs/{job['job_id']}/artifact", headers=other, json=body), 404)
    r = client.post(f"/api/v1/queries/jobs/{job['job_id']}/artifact", headers=agent, json=body)
    assert r.status_code == 201, r.text
    art = r.json()
    assert (art["source_job_id"], art["sql_hash"]) == (job["job_id"], job["sql_hash"])
    assert art["served_versions"] == [{"table": "demo.public.orders", "version": manifest.version,
                                       "synced_at": manifest.published_at}]
    assert art["content_type"] == {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}[saved_as]
    content = client.get(f"/api/v1/artifacts/{art['id']}/content", headers=other)  # swarm-visible
    assert hashlib.sha256(content.content).hexdigest() == art["sha256"]
    reader = pacsv.read_csv if saved_as == "csv" else pq.read_table
    table = reader(io.BytesIO(content.content))
    assert table.column("id").to_pylist() == list(range(0, 500, 5))
    assert table.column("label").to_pylist() == [f"o{i}" for i in range(0, 500, 5)]


def test_query_result_records_every_table_it_read(client: TestClient[Litestar], api_settings: Settings,
                                                  make_swarm: Callable[..., dict[str, Any]],
                                                  agent_headers: Callable[..., Headers]) -> None:
    """A join over two tables: the artifact names both served versions, and the hash of the exact SQL."""
    from tests.conftest import publish_table

    orders = publish_table(api_settings.served_path, "demo.public.orders",
                           "SELECT i AS id, i % 4 AS customer_id FROM range(40) t(i)")
    customers = publish_table(api_settings.served_path, "demo.public.customers",
                              "SELECT i AS customer_id, 'c' || i::VARCHAR AS name FROM range(4) t(i)")
    agent = agent_headers(make_swarm(["demo.public.orders", "demo.public.customers"])["id"])
    sql = "SELECT c.name, count(*) AS n FROM orders o JOIN customers c USING (customer_id) GROUP BY 1 ORDER BY 1"
    job = client.post("/api/v1/queries/execute", headers=agent, json={"query": sql, "output_format": "parquet"}).json()
    assert job["status"] == "succeeded", job
    r = client.post(f"/api/v1/queries/jobs/{job['job_id']}/artifact", headers=agent, json={"format": "csv"})
    assert r.status_code == 201, r.text
    art = r.json()
    assert art["sql_hash"] == hashlib.sha256(sql.encode()).hexdigest()
    assert sorted(art["served_versions"], key=lambda v: v["table"]) == [
        {"table": "demo.public.customers", "version": customers.version, "synced_at": customers.published_at},
        {"table": "demo.public.orders", "version": orders.version, "synced_at": orders.published_at},
    ]
    assert (art["name"], art["content_type"]) == (f"query-{job['job_id']}.csv", "text/csv")
    body = client.get(art["content_url"], headers=agent).content
    assert body.decode().splitlines() == ['"name","n"', '"c0",10', '"c1",10', '"c2",10', '"c3",10']
    assert client.get(f"/api/v1/artifacts/{art['id']}", headers=agent).json()["served_versions"] == art["served_versions"]


def test_query_result_artifact_errors(client: TestClient[Litestar], owner: Headers, api_settings: Settings) -> None:
    from shared.control.models import QueryJobRow

    now = dt.datetime.now(dt.UTC)
    token_id = created(client, owner, b"x")["owner"]
    with session_scope(api_settings.control_url) as s:
        s.add(QueryJobRow(id="job_running", token_id=token_id, sql_text="select 1", sql_hash="h", output_format="csv",
                          status="running", max_rows=1, tables=[]))
        s.add(QueryJobRow(id="job_expired", token_id=token_id, sql_text="select 1", sql_hash="h", output_format="csv",
                          status="succeeded", max_rows=1, tables=[], result_path="gone.csv", finished_at=now,
                          expires_at=now - dt.timedelta(seconds=1)))
        s.add(QueryJobRow(id="job_lost", token_id=token_id, sql_text="select 1", sql_hash="h", output_format="csv",
                          status="succeeded", max_rows=1, tables=[], result_path="../../etc/passwd", finished_at=now,
                          expires_at=now + dt.timedelta(hours=1)))
    url = "/api/v1/queries/jobs/{}/artifact"
    assert_error(client.post(url.format("job_running"), headers=owner, json={}), 409, rule="job_not_finished")
    assert_error(client.post(url.format("job_expired"), headers=owner, json={}), 410)
    assert_error(client.post(url.format("job_lost"), headers=owner, json={}), 410)
    assert_error(client.post(url.format("job_nope"), headers=owner, json={}), 404)
    assert_error(client.post(url.format("job_running"), headers=owner, json={"format": "xlsx"}), 400)
