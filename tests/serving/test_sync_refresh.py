"""Refresh estimates: every answer says when the data will be there.

Coalescing, limits and ``min_freshness`` are in ``test_refresh.py``; the same journeys
against real Dagster processes are in ``tests/e2e/test_replicas.py``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from shared.control.db import session_scope
from shared.control.models import SyncRequestRow, utcnow
from shared.settings import Settings
from tests.conftest import publish_table
from tests.serving import sync_support
from tests.serving.dagster_fake import FakeDagster
from tests.serving.sync_support import ITEMS, register_body

sync_source = sync_support.sync_source
fake_dagster = sync_support.fake_dagster
app = sync_support.app

Client = TestClient[Litestar]
REFRESH = f"/api/v1/data/tables/{ITEMS}/refresh"


@pytest.fixture
def agent(client: Client, admin_headers: dict[str, str], make_swarm: Callable[..., dict[str, Any]],
          agent_headers: Callable[..., dict[str, str]]) -> dict[str, str]:
    r = client.post("/api/v1/sync/tables/register", json=register_body(freshness="1h"), headers=admin_headers)
    assert r.status_code == 201, r.text
    return agent_headers(make_swarm([ITEMS])["id"])


def _past_jobs(settings: Settings, seconds: list[float]) -> None:
    now = utcnow()
    with session_scope(settings.control_url) as s:
        for i, took in enumerate(seconds):
            s.add(SyncRequestRow(id=f"past{i}", table_key=ITEMS, kind="run", status="succeeded", reason="refresh",
                                 created_at=now - dt.timedelta(hours=2, seconds=took),
                                 finished_at=now - dt.timedelta(hours=2)))


def test_estimate_counts_down_while_the_job_runs(client: Client, agent: dict[str, str], api_settings: Settings,
                                                 fake_dagster: FakeDagster) -> None:
    _past_jobs(api_settings, [18.0, 20.0, 40.0])
    started = client.post(REFRESH, headers=agent).json()
    assert started["outcome"] == "started"
    assert started["eta_basis"] == "median of 3 recent syncs"
    assert 19.0 <= started["eta_s"] <= 20.0
    ready_at = dt.datetime.fromisoformat(started["estimated_ready_at"])
    assert abs((ready_at - dt.datetime.now(dt.UTC)).total_seconds() - started["eta_s"]) < 2.0

    time.sleep(1.2)
    joined = client.post(REFRESH, headers=agent).json()
    assert joined["outcome"] == "existing_job"
    assert joined["job_id"] == started["job_id"]
    assert joined["eta_s"] <= started["eta_s"] - 1.0  # the time already spent is taken off
    assert joined["eta_basis"] == started["eta_basis"]
    assert len(fake_dagster.runs) == 1


def test_dagster_run_history_comes_before_the_control_database(client: Client, agent: dict[str, str],
                                                               api_settings: Settings,
                                                               fake_dagster: FakeDagster) -> None:
    """Runs of the table launched by anyone (schedules too) count: they carry the table tag."""
    _past_jobs(api_settings, [100.0])
    first = client.post(REFRESH, headers=agent).json()
    run = fake_dagster.runs[next(iter(fake_dagster.runs))]
    assert run.tags["agents_data/table"] == ITEMS
    run.created -= 3.0  # the run took three seconds from creation to end
    fake_dagster.finish(run.run_id, rows=2)
    assert client.get(first["poll_url"], headers=agent).json()["status"] == "succeeded"
    again = client.post(REFRESH, json={"max_age_s": 0}, headers=agent).json()
    assert again["outcome"] == "started"
    assert again["eta_basis"] == "median of 1 recent run"
    assert 2.5 <= again["eta_s"] <= 3.5


def test_already_fresh_is_ready_now(client: Client, agent: dict[str, str], api_settings: Settings,
                                    fake_dagster: FakeDagster) -> None:
    publish_table(api_settings.served_path, ITEMS, "SELECT 1 AS id")
    r = client.post(REFRESH, headers=agent)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["outcome"] == "already_fresh"
    assert body["eta_s"] == 0.0
    assert body["eta_basis"].startswith("already fresh")
    assert body["estimated_ready_at"] == body["synced_at"]
    assert body["job_id"] is None
    assert fake_dagster.runs == {}
