"""Request ids, access lines, the audit row's request and run ids, and /metrics, through the in-process API."""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from litestar import Litestar, Request, get
from litestar.testing import TestClient

from serving.app import create_app
from serving.lib.audit import annotate
from serving.lib.caller import Caller
from shared.control.db import session_scope
from shared.control.models import AuditRow
from shared.settings import ObservabilitySettings, Settings
from tests.ops_support import sample
from tests.serving import sync_support
from tests.serving.dagster_fake import FakeDagster
from tests.serving.helpers import assert_error, bearer, mint_token
from tests.serving.sync_support import ITEMS, register_body

ORDERS = "demo.public.orders"
sync_source = sync_support.sync_source
fake_dagster = sync_support.fake_dagster


@get("/test/ops-probe/{n:int}", sync_to_thread=False)
def ops_probe(request: Request[Any, Any, Any], caller: Caller, n: int) -> dict[str, int]:
    """Stands in for a query handler: annotates rows, bytes and tables like the queries feature."""
    annotate(request, sql_text="select 1", tables=[{"table": ORDERS, "version": "v1"}], rows=n, bytes=10 * n)
    return {"n": n}


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, observability=ObservabilitySettings(metrics="admin"))


@pytest.fixture
def app(api_settings: Settings, fake_dagster: FakeDagster) -> Litestar:
    app = create_app(api_settings)
    app.register(ops_probe)
    app.state.services.parts["dagster"] = fake_dagster.client(api_settings.dagster)
    app.state.services.parts["load_check"] = sync_support.in_process_load_check
    return app


def _audit(settings: Settings, request_id: str) -> list[AuditRow]:
    with session_scope(settings.control_url) as s:
        return list(s.scalars(sa.select(AuditRow).where(AuditRow.request_id == request_id)))


def test_a_well_formed_request_id_is_kept_and_recorded(client: TestClient[Litestar], admin_headers: dict[str, str],
                                                       flush_audit: Callable[[], None], api_settings: Settings) -> None:
    r = client.get("/api/v1/auth/whoami", headers={**admin_headers, "X-Request-ID": "agent-7.trace:42"})
    assert r.status_code == 200, r.text
    assert r.headers["x-request-id"] == "agent-7.trace:42"
    flush_audit()
    [row] = _audit(api_settings, "agent-7.trace:42")
    assert (row.endpoint, row.status_code, row.run_id) == ("/api/v1/auth/whoami", 200, None)


@pytest.mark.parametrize("sent", [None, "", "has space", "x" * 129, "-starts-with-dash", "semi;colon", "ünïcode"])
def test_a_missing_or_malformed_request_id_is_replaced(client: TestClient[Litestar], sent: str | None) -> None:
    headers = {} if sent is None else {"X-Request-ID": sent.encode()}
    r = client.get("/health", headers=headers)
    assert r.status_code == 200
    made = r.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made), made
    assert made != sent
    assert client.get("/health").headers["x-request-id"] != made  # one id per request


def test_unmatched_routes_and_errors_carry_the_request_id_too(client: TestClient[Litestar]) -> None:
    r = client.get("/no/such/route", headers={"X-Request-ID": "req-404"})
    assert_error(r, 404)
    assert r.headers["x-request-id"] == "req-404"


def test_one_access_line_per_request_with_the_facts(client: TestClient[Litestar], admin_headers: dict[str, str],
                                                    make_swarm: Callable[..., dict[str, Any]],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    swarm = make_swarm([ORDERS])
    agent = mint_token(client, admin_headers, "agent", swarm["id"])
    with caplog.at_level(logging.INFO, logger="agents_data.access"):
        caplog.clear()
        ok = client.get("/test/ops-probe/7?secret_param=hunter2", headers={**bearer(agent["token"]),
                                                                          "X-Request-ID": "probe-1"})
        refused = client.get("/api/v1/admin/swarms", headers={**bearer(agent["token"]), "X-Request-ID": "probe-2"})
    assert ok.status_code == 200
    assert_error(refused, 403)
    lines = {r.request_id: r for r in caplog.records if r.name == "agents_data.access"}  # type: ignore[attr-defined]
    assert set(lines) == {"probe-1", "probe-2"}, [r.getMessage() for r in caplog.records]
    line = lines["probe-1"]
    assert (line.method, line.route, line.status) == ("GET", "/test/ops-probe/{n}", 200)  # type: ignore[attr-defined]
    assert (line.caller_kind, line.caller_id, line.swarm_id) == ("agent", agent["token_id"], swarm["id"])  # type: ignore[attr-defined]
    assert (line.rows, line.bytes, line.tables) == (7, 70, [ORDERS])  # type: ignore[attr-defined]
    assert line.duration_ms > 0  # type: ignore[attr-defined]
    assert "hunter2" not in line.getMessage()
    assert "secret_param" not in str(line.__dict__)
    denied = lines["probe-2"]
    assert (denied.route, denied.status, denied.rule) == ("/api/v1/admin/swarms", 403, "requires_admin")  # type: ignore[attr-defined]


def test_a_sync_started_through_the_api_tags_its_run_and_names_it_in_the_audit_row(
        client: TestClient[Litestar], admin_headers: dict[str, str], fake_dagster: FakeDagster,
        flush_audit: Callable[[], None], api_settings: Settings) -> None:
    r = client.post("/api/v1/sync/tables/register", json=register_body(), headers=admin_headers)
    assert r.status_code in (200, 201), r.text
    started = client.post("/api/v1/sync/start", json={"table_name": "items", "schema_name": "synctest"},
                          headers={**admin_headers, "X-Request-ID": "ops-sync-1"})
    assert started.status_code == 202, started.text
    assert started.headers["x-request-id"] == "ops-sync-1"
    run = fake_dagster.runs[started.json()["dagster_url"].rsplit("/", 1)[1]]
    assert run.tags["agents_data/request_id"] == "ops-sync-1"
    assert run.tags["agents_data/table"] == ITEMS
    job = client.get(f"/api/v1/sync/jobs/{started.json()['job_id']}", headers=admin_headers).json()
    assert (job["dagster_id"], job["request_id"]) == (run.run_id, "ops-sync-1")
    flush_audit()
    [row] = _audit(api_settings, "ops-sync-1")
    assert (row.endpoint, row.run_id) == ("/api/v1/sync/start", run.run_id)
    # Searching by either finds the other: the admin audit by run id names the request, and by request id the run.
    [by_run] = client.get("/api/v1/admin/audit", params={"run_id": run.run_id}, headers=admin_headers).json()["items"]
    assert by_run["request_id"] == "ops-sync-1"
    [by_request] = client.get("/api/v1/admin/audit", params={"request_id": "ops-sync-1"},
                              headers=admin_headers).json()["items"]
    assert by_request["run_id"] == run.run_id


def test_metrics_count_requests_by_route_template_and_need_the_admin(
        client: TestClient[Litestar], admin_headers: dict[str, str], make_swarm: Callable[..., dict[str, Any]]) -> None:
    swarm = make_swarm([ORDERS])
    agent = bearer(mint_token(client, admin_headers, "agent", swarm["id"])["token"])
    before = client.get("/metrics", headers=admin_headers)
    assert before.status_code == 200, before.text
    assert before.headers["content-type"].startswith("text/plain")
    route = "/test/ops-probe/{n}"
    count0 = sample(before.text, "agents_data_http_requests_total", route=route, status="200")
    for n in range(5):
        assert client.get(f"/test/ops-probe/{n}", headers=agent).status_code == 200
    assert_error(client.get("/metrics", headers=agent), 403)
    text = client.get("/metrics", headers=admin_headers).text
    assert sample(text, "agents_data_http_requests_total", route=route, status="200") == count0 + 5
    assert sample(text, "agents_data_http_request_duration_seconds_count", route=route) >= count0 + 5
    assert "/test/ops-probe/3" not in text  # route templates, never paths
    assert sample(text, "agents_data_control_db_up") == 1
    for family in ("agents_data_table_freshness", "agents_data_sync_jobs", "agents_data_artifact_bytes",
                   "agents_data_housekeeping_deletions", "agents_data_query_slots_in_use"):
        assert f"# TYPE {family}" in text, family


def test_metrics_are_not_served_when_off(api_settings: Settings, admin_headers: dict[str, str]) -> None:
    off = create_app(dataclasses.replace(api_settings, observability=ObservabilitySettings(metrics="off")))
    with TestClient(off) as c:
        from tests.serving.helpers import admin_token

        assert_error(c.get("/metrics", headers=bearer(admin_token(c))), 404, rule="metrics_not_here")


def test_refreshes_are_counted_by_outcome(client: TestClient[Litestar], admin_headers: dict[str, str]) -> None:
    assert client.post("/api/v1/sync/tables/register", json=register_body(), headers=admin_headers).status_code in (200, 201)
    before = client.get("/metrics", headers=admin_headers).text
    started = client.post(f"/api/v1/data/tables/{ITEMS}/refresh", headers=admin_headers, json={"max_age_s": 0})
    assert started.status_code == 202, started.text
    assert_error(client.post("/api/v1/data/tables/demo.synctest.nothing/refresh", headers=admin_headers), 404)
    text = client.get("/metrics", headers=admin_headers).text
    for outcome in ("started", "refused"):
        assert sample(text, "agents_data_refresh_requests_total", outcome=outcome) == \
            sample(before, "agents_data_refresh_requests_total", outcome=outcome) + 1
    assert "_created" not in text
