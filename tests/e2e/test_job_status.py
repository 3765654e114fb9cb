"""Sync job status is true without polling, with real Dagster processes (PostgreSQL-backed code
server, webserver and daemon) and one API replica: a sync and a backfill are started, nobody
polls their jobs, and the admin listing shows their final status within a bound."""

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
