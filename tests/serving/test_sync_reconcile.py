"""Sync job status is true without polling: the API's reconciler observes unfinished jobs itself.

Against the fake Dagster (the real client code runs); the same is checked with real Dagster
processes in ``tests/e2e/test_job_status.py``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from shared.settings import Settings
from tests.serving import sync_support
from tests.serving.dagster_fake import FakeDagster
from tests.serving.sync_support import DAYS, EVENTS_BODY, SCHEMA, register_body

sync_source = sync_support.sync_source
fake_dagster = sync_support.fake_dagster
app = sync_support.app
Client = TestClient[Litestar]
BOUND_S = 5.0


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, dagster=dataclasses.replace(settings.dagster, sync_reconcile_s=0.2))


def _last_job(client: Client, headers: dict[str, str], table: str) -> dict[str, Any]:
    tables = client.get("/api/v1/sync/tables", headers=headers).json()["tables"]
    return next(t for t in tables if t["table_name"] == table)["last_job"]  # type: ignore[no-any-return]


def _eventually(client: Client, headers: dict[str, str], table: str, status: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < BOUND_S:
        if _last_job(client, headers, table)["status"] == status:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"last_job of {table} is still {_last_job(client, headers, table)} after {BOUND_S}s")


def test_listing_shows_the_final_status_without_anyone_polling_the_job(
        client: Client, admin_headers: dict[str, str], fake_dagster: FakeDagster) -> None:
    assert client.post("/api/v1/sync/tables/register", json=register_body(), headers=admin_headers).status_code == 201
    job = client.post("/api/v1/sync/start", json={"table_name": "items", "schema_name": SCHEMA},
                      headers=admin_headers).json()
    assert _last_job(client, admin_headers, "ITEMS")["status"] == "queued"
    run_id = next(iter(fake_dagster.runs))
    fake_dagster.finish(run_id, rows=2)  # nobody asks GET /sync/jobs/{id}
    _eventually(client, admin_headers, "ITEMS", "succeeded")
    assert _last_job(client, admin_headers, "ITEMS")["job_id"] == job["job_id"]

    client.post("/api/v1/sync/start", json={"table_name": "items", "schema_name": SCHEMA}, headers=admin_headers)
    failing = next(r for r in fake_dagster.runs if r != run_id)
    fake_dagster.finish(failing, "FAILURE", error="SourceError: gone")
    _eventually(client, admin_headers, "ITEMS", "failed")
    status = client.get(f"/api/v1/sync/status/{SCHEMA}/items", headers=admin_headers).json()
    assert status["freshness"]["status"] == "failing"  # the failure is recorded on the table too


def test_a_backfill_reaches_its_final_status_without_polling(client: Client, admin_headers: dict[str, str],
                                                             fake_dagster: FakeDagster) -> None:
    assert client.post("/api/v1/sync/tables/register", json=EVENTS_BODY, headers=admin_headers).status_code == 201
    body = {"table_name": "events", "schema_name": SCHEMA, "partitions": DAYS[:2]}
    assert client.post("/api/v1/sync/start", json=body, headers=admin_headers).status_code == 202
    for run in list(fake_dagster.runs.values()):
        fake_dagster.finish(run.run_id, rows=1)
    _eventually(client, admin_headers, "EVENTS", "succeeded")


def test_reconciling_survives_dagster_being_down(client: Client, admin_headers: dict[str, str],
                                                 fake_dagster: FakeDagster) -> None:
    client.post("/api/v1/sync/tables/register", json=register_body(), headers=admin_headers)
    client.post("/api/v1/sync/start", json={"table_name": "items", "schema_name": SCHEMA}, headers=admin_headers)
    fake_dagster.down = True
    time.sleep(1.0)  # several passes fail to reach Dagster
    assert _last_job(client, admin_headers, "ITEMS")["status"] == "queued"
    fake_dagster.down = False
    fake_dagster.finish(next(iter(fake_dagster.runs)))
    _eventually(client, admin_headers, "ITEMS", "succeeded")
