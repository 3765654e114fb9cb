"""Sync job status is true without polling, with real Dagster processes (PostgreSQL-backed code
server, webserver and daemon) and one API replica: a sync and a backfill are started, nobody
polls their jobs, and the admin listing shows their final status within a bound. On the same
platform, one agent refresh is traced by its request id from the answer to the Dagster run."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.e2e.conftest import shared_platform_fixture
from tests.e2e.platform import Platform, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

RUN_BOUND_S = 180  # a tiny run takes about 12 s end to end here; the reconciler adds at most 1 s
DAYS = ["2025-01-02", "2025-01-03"]


def _seed(cur: Any) -> None:
    cur.execute("CREATE SCHEMA IF NOT EXISTS DEMO.JOBSTATUS")
    cur.execute("CREATE OR REPLACE TABLE DEMO.JOBSTATUS.ITEMS (ID NUMBER(10,0), NAME TEXT)")
    cur.execute("INSERT INTO DEMO.JOBSTATUS.ITEMS VALUES (1, 'a'), (2, 'b')")
    cur.execute("CREATE OR REPLACE TABLE DEMO.JOBSTATUS.EVENTS (ID NUMBER(10,0), DAY DATE)")
    cur.execute("INSERT INTO DEMO.JOBSTATUS.EVENTS VALUES (1, '2025-01-02'), (2, '2025-01-03')")


def _prepare(platform: Platform) -> None:
    platform.register(table_name="items", schema_name="jobstatus")
    platform.register(table_name="events", schema_name="jobstatus",
                      partitioning={"kind": "daily", "column": "DAY", "start": "2025-01-01"})


job_status = shared_platform_fixture(seed=_seed, prepare=_prepare)  # reconciles every 1 s (SHARED_ENV)


def _last_job(api: httpx.Client, headers: dict[str, str], table: str) -> dict[str, Any]:
    r = api.get("/api/v1/sync/tables", headers=headers)
    assert r.status_code == 200, r.text
    return next(t for t in r.json()["tables"] if t["table"] == table)["last_job"]  # type: ignore[no-any-return]


def test_admin_listing_shows_final_status_without_polling(job_status: Platform) -> None:
    headers = job_status.admin_headers()
    with job_status.apis["a"].client() as api:
        run = api.post("/api/v1/sync/start", headers=headers,
                       json={"schema_name": "jobstatus", "table_name": "items"})
        assert run.status_code == 202, run.text
        backfill = api.post("/api/v1/sync/start", headers=headers,
                            json={"schema_name": "jobstatus", "table_name": "events", "partitions": DAYS})
        assert backfill.status_code == 202, backfill.text
        assert backfill.json()["kind"] == "backfill"
        # Only the listing is read (never GET /sync/jobs/{id}): the rows must become true by themselves.
        for table, started in (("demo.jobstatus.items", run.json()), ("demo.jobstatus.events", backfill.json())):
            last = wait_until(lambda t=table: (j := _last_job(api, headers, t))["status"] not in
                              ("launching", "queued", "running") and j,
                              timeout_s=RUN_BOUND_S, interval_s=1.0, message=f"{table} job finished")
            assert last["job_id"] == started["job_id"]
            assert last["status"] == "succeeded", last
        listed = [t for t in api.get("/api/v1/sync/tables", headers=headers).json()["tables"]
                  if t["table"].startswith("demo.jobstatus.")]  # the shared platform lists other modules' tables
        assert len(listed) == 2
        assert all(t["served_version"] for t in listed), listed


def _agent_headers(platform: Platform, api: httpx.Client, admin: dict[str, str], grants: list[str]) -> dict[str, str]:
    swarm = api.post("/api/v1/admin/swarms", headers=admin, json={"name": "ops-trace", "grants": grants})
    assert swarm.status_code == 201, swarm.text
    token = api.post("/api/v1/admin/tokens", headers=admin,
                     json={"type": "agent", "swarm_id": swarm.json()["id"], "name": "tracer"})
    assert token.status_code == 201, token.text
    return {"Authorization": f"Bearer {token.json()['token']}"}


def _audit_row(platform: Platform, request_id: str) -> Any:
    import sqlalchemy as sa

    from shared.control.db import session_scope
    from shared.control.models import AuditRow

    with session_scope(platform.settings.control_url) as s:
        row = s.scalars(sa.select(AuditRow).where(AuditRow.request_id == request_id)).first()
        if row is not None:
            s.expunge(row)
        return row


def test_one_request_id_from_the_agent_to_the_dagster_run(job_status: Platform) -> None:
    """An agent's refresh: the same id in the answer, the audit row, the run's tags and the step's log lines;
    and no secret (password, tokens, signing secret, a query parameter's value) in any process log."""
    import secrets as pysecrets

    from tests.ops_support import leaks

    admin = job_status.admin_headers()
    rid = f"trace-{pysecrets.token_hex(6)}"
    canary = f"qp{pysecrets.token_hex(8)}"
    with job_status.apis["a"].client() as api:
        agent = _agent_headers(job_status, api, admin, ["demo.jobstatus.items"])
        answer = api.post("/api/v1/data/tables/items/refresh", headers={**agent, "X-Request-ID": rid},
                          json={"max_age_s": 0})
        assert answer.status_code == 202, answer.text
        assert answer.headers["x-request-id"] == rid
        job_id = answer.json()["job_id"]
        job = wait_until(lambda: (j := api.get(f"/api/v1/sync/jobs/{job_id}", headers=admin).json())["status"]
                         not in ("launching", "queued", "running") and j,
                         timeout_s=RUN_BOUND_S, interval_s=1.0, message="the refresh finished")
        assert job["status"] == "succeeded", job
        assert job["request_id"] == rid
        run_id = job["dagster_id"]
        # A query parameter's value and the agent's token must not reach any log.
        assert api.get(f"/api/v1/data/tables?note={canary}", headers=agent).status_code == 200

    row = wait_until(lambda: _audit_row(job_status, rid), timeout_s=30, message="the refresh's audit row")
    assert (row.endpoint, row.status_code, row.run_id) == ("/api/v1/data/tables/items/refresh", 202, run_id)

    run = job_status.graphql("query($id: ID!) { runOrError(runId: $id) { ... on Run { tags { key value } } } }",
                             {"id": run_id})["runOrError"]
    assert {t["key"]: t["value"] for t in run["tags"]}["agents_data/request_id"] == rid
    events = job_status.graphql("query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events { "
                                "__typename ... on MessageEvent { message stepKey } } } } }",
                                {"id": run_id})["logsForRun"]["events"]
    step_lines = [e["message"] for e in events if e.get("stepKey") and f"[request_id={rid}]" in (e.get("message") or "")]
    assert any("starts" in m for m in step_lines), step_lines
    assert any("published version" in m for m in step_lines), step_lines

    api_log = job_status.apis["a"].child.log.read_text(errors="replace")
    assert rid in api_log  # the access lines of the refresh
    secret_values = [job_status.env["ADMIN_PASSWORD"], job_status.env["JWT_SECRET"], canary,
                     admin["Authorization"].split()[1], agent["Authorization"].split()[1]]
    assert leaks(sorted(job_status.logs.glob("*.log")), secret_values) == []
