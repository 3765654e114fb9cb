"""Deleting a swarm: tokens revoked, running queries stopped, results expired, artifacts kept for the
admin only for DELETED_SWARM_ARTIFACT_GRACE_S and then deleted by housekeeping."""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
import threading
import time
from typing import Any

import pytest
from sqlalchemy import select

from serving.artifacts.services import get_store
from serving.queries.services import get_jobs
from shared import housekeeping as hk
from shared.artifacts_store import purge_expired_artifacts
from shared.control.db import session_scope
from shared.control.models import ArtifactRow, QueryJobRow
from shared.settings import Settings
from tests.conftest import publish_table
from tests.serving.helpers import assert_error

ORDERS = "demo.public.orders"
GRACE_S = 3600
SLOW = "select count(*) as n from range(20000000000) t(i) where hash(i) % 7 = 3"


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, artifacts=dataclasses.replace(settings.artifacts, deleted_swarm_grace_s=GRACE_S))


@pytest.fixture
def world(client: Any, api_settings: Settings, make_swarm: Any, agent_headers: Any) -> dict[str, Any]:
    publish_table(api_settings.served_path, ORDERS, "select range as id from range(100)")
    doomed, other = make_swarm([ORDERS]), make_swarm([ORDERS])
    return {"swarm": doomed, "a1": agent_headers(doomed["id"]), "a2": agent_headers(doomed["id"]),
            "other": agent_headers(other["id"])}


def _upload(client: Any, headers: dict[str, str], visibility: str = "swarm") -> dict[str, Any]:
    r = client.post("/api/v1/artifacts", headers=headers, data={"visibility": visibility},
                    files={"file": ("notes.txt", secrets.token_bytes(64), "application/octet-stream")})
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def _wait(predicate: Any, timeout_s: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def test_deleting_a_swarm_stops_its_jobs_and_hides_everything(client: Any, services: Any, api_settings: Settings,
                                                              admin_headers: dict[str, str],
                                                              world: dict[str, Any]) -> None:
    a1, a2, other = world["a1"], world["a2"], world["other"]
    art = _upload(client, a1)
    private = _upload(client, a2, visibility="private")
    assert client.get(f"/api/v1/artifacts/{art['id']}", headers=a2).status_code == 200  # shared within the swarm
    done = client.post("/api/v1/queries/execute", headers=a1,
                       json={"query": "select id from orders", "output_format": "csv"}).json()
    assert done["status"] == "succeeded"
    slow = client.post("/api/v1/queries/execute", headers=a1, json={"query": SLOW, "wait_s": 0, "timeout_s": 120}).json()
    running = get_jobs(services).running
    assert slow["job_id"] in running

    started = time.monotonic()
    r = client.delete(f"/api/v1/admin/swarms/{world['swarm']['id']}", headers=admin_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["revoked"]) == 2
    assert body["query_jobs_cancelled"] == 1
    assert body["artifacts_kept"] == 2
    deleted_after = dt.datetime.fromisoformat(body["artifacts_deleted_after"])
    assert abs((deleted_after - dt.datetime.now(dt.UTC)).total_seconds() - GRACE_S) < 60

    # the running query is interrupted at once, not left to its 120 s limit
    _wait(lambda: slow["job_id"] not in running, 10)
    assert time.monotonic() - started < 10
    job = client.get(f"/api/v1/queries/jobs/{slow['job_id']}", headers=admin_headers).json()
    assert job["status"] == "cancelled"
    assert job["error"]["rule"] == "swarm_deleted"
    # the swarm's tokens are refused; its finished result is gone, even for the admin
    assert_error(client.get("/api/v1/artifacts", headers=a1), 401)
    assert_error(client.get(f"/api/v1/queries/jobs/{done['job_id']}/result", headers=admin_headers), 410)
    # artifacts: the admin (only) can still read them during the grace period
    for a in (art, private):
        meta = client.get(f"/api/v1/artifacts/{a['id']}", headers=admin_headers)
        assert meta.status_code == 200
        assert dt.datetime.fromisoformat(meta.json()["expires_at"]) <= deleted_after
        assert client.get(f"/api/v1/artifacts/{a['id']}/content", headers=admin_headers).status_code == 200
        assert_error(client.get(f"/api/v1/artifacts/{a['id']}", headers=other), 404)
        assert_error(client.get(f"/api/v1/artifacts/{a['id']}/content", headers=other), 404)
    assert client.get("/api/v1/artifacts", headers=other).json()["items"] == []
    listed = {i["id"] for i in client.get("/api/v1/artifacts", headers=admin_headers).json()["items"]}
    assert {art["id"], private["id"]} <= listed

    # housekeeping: results now, artifacts (rows and objects) after the grace period
    now = dt.datetime.now(dt.UTC)
    hk.purge_expired_query_results(api_settings, now=now + dt.timedelta(seconds=1))
    assert not list(api_settings.results_path.glob(f"{done['job_id']}*"))
    purge_expired_artifacts(api_settings, now=now + dt.timedelta(seconds=GRACE_S // 2), grace_s=0)
    assert client.get(f"/api/v1/artifacts/{art['id']}", headers=admin_headers).status_code == 200  # not yet
    purge_expired_artifacts(api_settings, now=now + dt.timedelta(seconds=GRACE_S + 60), grace_s=0)
    store = get_store(services)
    for a in (art, private):
        assert_error(client.get(f"/api/v1/artifacts/{a['id']}", headers=admin_headers), 404)
        assert not store.exists(a["sha256"])


def test_a_query_still_waiting_for_its_answer_is_stopped_too(client: Any, services: Any, admin_headers: dict[str, str],
                                                             world: dict[str, Any]) -> None:
    """The request is still inside its wait_s (no job row yet): revoking the token stops the query."""
    answer: dict[str, Any] = {}

    def ask() -> None:
        answer["r"] = client.post("/api/v1/queries/execute", headers=world["a1"],
                                  json={"query": SLOW, "wait_s": 60, "timeout_s": 120})

    asking = threading.Thread(target=ask)
    asking.start()
    running = get_jobs(services).running
    _wait(lambda: bool(running), 10)
    started = time.monotonic()
    assert client.delete(f"/api/v1/admin/swarms/{world['swarm']['id']}", headers=admin_headers).status_code == 200
    asking.join(timeout=15)
    assert not asking.is_alive()
    assert time.monotonic() - started < 10
    assert_error(answer["r"], 409, rule="cancelled")
    assert not running


def test_housekeeping_retires_rows_that_landed_after_the_delete(client: Any, api_settings: Settings,
                                                                 admin_headers: dict[str, str],
                                                                 world: dict[str, Any]) -> None:
    """An upload racing the delete lands with the usual expiry: the next housekeeping pass applies the rule."""
    art = _upload(client, world["a1"])
    assert client.delete(f"/api/v1/admin/swarms/{world['swarm']['id']}", headers=admin_headers).status_code == 200
    late = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    with session_scope(api_settings.control_url) as s:
        row = s.get(ArtifactRow, art["id"])
        row.expires_at = late  # as if it had been created after the delete's transaction
        s.add(QueryJobRow(id="late-job", token_id=None, swarm_id=world["swarm"]["id"], sql_text="select 1",
                          sql_hash="h", output_format="csv", status="running", max_rows=1))
    now = dt.datetime.now(dt.UTC)
    report = hk.retire_deleted_swarms(api_settings, now=now)
    assert report.counts == {"artifacts_expiring": 1, "query_jobs_cancelled": 1}
    with session_scope(api_settings.control_url) as s:
        expires = s.get(ArtifactRow, art["id"]).expires_at
        status = s.scalars(select(QueryJobRow.status).where(QueryJobRow.id == "late-job")).one()
    expires = expires if expires.tzinfo else expires.replace(tzinfo=dt.UTC)
    assert expires <= now + dt.timedelta(seconds=GRACE_S)
    assert status == "cancelled"
    assert hk.retire_deleted_swarms(api_settings, now=now + dt.timedelta(seconds=5)).counts == {}  # idempotent
