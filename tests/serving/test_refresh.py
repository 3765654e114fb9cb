"""Agent refreshes: coalescing, estimates, limits, replicas sharing the control DB, ``min_freshness``.

Dagster is the fake GraphQL server (``dagster_fake.py``); the real-process version of
these journeys is ``tests/e2e/test_replicas.py``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from serving.app import create_app
from serving.sync import store
from shared.control.db import migrate, session_scope
from shared.control.models import SyncRequestRow, utcnow
from shared.settings import Settings
from tests.conftest import publish_table
from tests.serving import sync_support
from tests.serving.dagster_fake import FakeDagster
from tests.serving.helpers import assert_error
from tests.serving.sync_support import DAYS, EVENTS, EVENTS_BODY, ITEMS, register_body

sync_source = sync_support.sync_source
fake_dagster = sync_support.fake_dagster
app = sync_support.app

Client = TestClient[Litestar]
REFRESH = "/api/v1/data/tables/{}/refresh"


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    """Five refreshes per minute per agent, so the limit is reachable in a test."""
    return dataclasses.replace(settings, query=dataclasses.replace(settings.query, refresh_per_minute=5))


@pytest.fixture
def agent(client: Client, admin_headers: dict[str, str], make_swarm: Callable[..., dict[str, Any]],
          agent_headers: Callable[..., dict[str, str]]) -> dict[str, str]:
    """An agent granted ITEMS and EVENTS, with both tables registered."""
    for body in (register_body(freshness="1h"), EVENTS_BODY):
        r = client.post("/api/v1/sync/tables/register", json=body, headers=admin_headers)
        assert r.status_code == 201, r.text
    return agent_headers(make_swarm([ITEMS, EVENTS])["id"])


def _refresh(client: Client, headers: dict[str, str], table: str = ITEMS, **body: Any) -> Any:
    return client.post(REFRESH.format(table), json=body or None, headers=headers)


def test_refresh_starts_then_coalesces_then_is_fresh(client: Client, agent: dict[str, str],
                                                    fake_dagster: FakeDagster, api_settings: Settings) -> None:
    first = _refresh(client, agent)
    assert first.status_code == 202, first.text
    body = first.json()
    assert body["outcome"] == "started"
    assert body["job_status"] == "queued"
    assert body["eta_s"] > 0
    assert body["eta_basis"].startswith("default")
    assert body["estimated_ready_at"]
    assert body["poll_url"].endswith(body["job_id"])
    assert len(fake_dagster.runs) == 1

    second = _refresh(client, agent, table="synctest.items").json()  # another name for the same table
    assert second["outcome"] == "existing_job"
    assert second["job_id"] == body["job_id"]
    assert len(fake_dagster.runs) == 1

    run_id = next(iter(fake_dagster.runs))
    fake_dagster.finish(run_id, rows=2)
    publish_table(api_settings.served_path, ITEMS, "SELECT 1 AS id")
    polled = client.get(body["poll_url"], headers=agent).json()
    assert polled["status"] == "succeeded"
    assert polled["rows"] == 2
    assert "dagster_url" not in polled  # internal links are for admins

    fresh = _refresh(client, agent)
    assert fresh.status_code == 200
    assert fresh.json()["outcome"] == "already_fresh"
    assert fresh.json()["synced_at"] is not None
    assert fresh.json()["age_s"] < 60
    assert fresh.json()["job_id"] is None
    # asking for younger data than the target forces a new run, with an estimate from history
    forced = _refresh(client, agent, max_age_s=0).json()
    assert forced["outcome"] == "started"
    assert forced["eta_basis"] == "median of 1 recent run"  # from Dagster's run history


def test_max_age_never_joins_a_run_that_already_read_the_source(client: Client, agent: dict[str, str],
                                                                 fake_dagster: FakeDagster) -> None:
    """Data inserted after a run started is not in it: ``max_age_s`` queues a follow-up instead."""
    first = _refresh(client, agent, max_age_s=0).json()
    queued = _refresh(client, agent, max_age_s=0).json()  # not started yet: it will read the source later
    assert queued["outcome"] == "existing_job"
    assert queued["job_id"] == first["job_id"]
    fake_dagster.start(next(iter(fake_dagster.runs)))
    time.sleep(0.05)
    follow_up = _refresh(client, agent, max_age_s=0).json()
    assert follow_up["outcome"] == "started"
    assert follow_up["job_id"] != first["job_id"]
    assert len(fake_dagster.runs) == 2
    joined = _refresh(client, agent, max_age_s=0).json()  # the follow-up is queued: join it
    assert joined["job_id"] == follow_up["job_id"]
    assert len(fake_dagster.runs) == 2


def test_refresh_joins_a_run_launched_elsewhere(client: Client, agent: dict[str, str],
                                                fake_dagster: FakeDagster) -> None:
    scheduled = fake_dagster.add_run(["demo", "synctest", "items"], status="STARTED")
    body = _refresh(client, agent).json()
    assert body["outcome"] == "existing_job"
    assert body["job_status"] == "running"
    assert len(fake_dagster.runs) == 1
    job = store.get(client.app.state.services.control_url, body["job_id"])
    assert job is not None
    assert job.dagster_id == scheduled.run_id
    assert job.reason == "coalesced"


def test_refresh_of_partitioned_table_targets_latest_partition(client: Client, agent: dict[str, str],
                                                               fake_dagster: FakeDagster) -> None:
    body = _refresh(client, agent, table=EVENTS).json()
    assert body["outcome"] == "started"
    run = next(iter(fake_dagster.runs.values()))
    assert run.partition == DAYS[-1]
    assert run.path == ["demo", "synctest", "events"]


def test_refresh_ungranted_is_not_found_and_rate_limited(client: Client, agent: dict[str, str],
                                                         make_swarm: Callable[..., dict[str, Any]],
                                                         agent_headers: Callable[..., dict[str, str]]) -> None:
    other = agent_headers(make_swarm([EVENTS])["id"])
    missing = assert_error(_refresh(client, other, table="demo.synctest.nothing"), 404)
    ungranted = assert_error(_refresh(client, other), 404)
    assert ungranted["code"] == missing["code"]
    assert "items" in ungranted["message"]
    assert "nothing" in missing["message"]
    for _ in range(5):
        assert _refresh(client, agent).status_code in (200, 202)
    limited = assert_error(_refresh(client, agent), 429, rule="refresh_rate_limit")
    assert limited["details"]["limit"] == 5


def test_estimate_is_median_of_recent_syncs(client: Client, agent: dict[str, str], api_settings: Settings) -> None:
    url = api_settings.control_url
    now = utcnow()
    with session_scope(url) as s:
        for i, seconds in enumerate((4.0, 6.0, 30.0)):
            s.add(SyncRequestRow(id=f"old{i}", table_key=ITEMS, kind="run", status="succeeded", reason="refresh",
                                 created_at=now - dt.timedelta(hours=1, seconds=seconds),
                                 finished_at=now - dt.timedelta(hours=1)))
    body = _refresh(client, agent).json()
    assert body["eta_basis"] == "median of 3 recent syncs"
    assert 4.0 <= body["eta_s"] <= 6.0


def test_replica_b_sees_replica_a_refresh(client: Client, agent: dict[str, str], api_settings: Settings,
                                          fake_dagster: FakeDagster) -> None:
    """Two API processes (here two apps) share the control DB: B joins and polls A's job."""
    body = _refresh(client, agent).json()
    replica_b = create_app(api_settings)
    replica_b.state.services.parts["dagster"] = fake_dagster.client(api_settings.dagster)
    with TestClient(replica_b) as b:
        joined = b.post(REFRESH.format(ITEMS), headers=agent).json()
        assert joined["outcome"] == "existing_job"
        assert joined["job_id"] == body["job_id"]
        fake_dagster.finish(next(iter(fake_dagster.runs)), "FAILURE", error="SourceError: cannot connect")
        polled = b.get(body["poll_url"], headers=agent).json()
        assert polled["status"] == "failed"
        assert "cannot connect" in polled["errors"][0]
    assert len(fake_dagster.runs) == 1


def test_a_run_dagster_retries_is_followed_to_its_retry(client: Client, agent: dict[str, str],
                                                      fake_dagster: FakeDagster) -> None:
    """A run whose worker died is re-executed by Dagster's run retries: the agent's job is not
    failed meanwhile, and it follows the retry to its outcome (the rows the retry brings)."""
    body = _refresh(client, agent).json()
    first = next(iter(fake_dagster.runs))
    fake_dagster.finish(first, "FAILURE", error="the run worker died")
    fake_dagster.runs[first].tags["dagster/will_retry"] = "true"
    waiting = client.get(body["poll_url"], headers=agent).json()
    assert waiting["status"] == "running", waiting
    retry = fake_dagster.add_run(fake_dagster.runs[first].path)
    retry.tags["dagster/parent_run_id"] = first
    assert client.get(body["poll_url"], headers=agent).json()["status"] == "running"
    fake_dagster.finish(retry.run_id, "SUCCESS", rows=7)
    done = client.get(body["poll_url"], headers=agent).json()
    assert (done["status"], done["errors"]) == ("succeeded", []), done


def test_a_failed_run_dagster_does_not_retry_fails_the_job_at_once(client: Client, agent: dict[str, str],
                                                                   fake_dagster: FakeDagster) -> None:
    body = _refresh(client, agent).json()
    first = next(iter(fake_dagster.runs))
    fake_dagster.finish(first, "FAILURE", error="SourceError: cannot connect")
    fake_dagster.runs[first].tags["dagster/will_retry"] = "false"
    polled = client.get(body["poll_url"], headers=agent).json()
    assert polled["status"] == "failed"
    assert "cannot connect" in polled["errors"][0]


def test_a_launch_interrupted_by_a_dead_replica_is_given_up(client: Client, agent: dict[str, str],
                                                           api_settings: Settings, fake_dagster: FakeDagster) -> None:
    with session_scope(api_settings.control_url) as s:
        s.add(SyncRequestRow(id="sync_dead", table_key=ITEMS, kind="run", status="launching", reason="refresh",
                             partitions=[], created_at=utcnow() - dt.timedelta(minutes=5)))
    body = _refresh(client, agent).json()
    assert body["outcome"] == "started"
    assert body["job_id"] != "sync_dead"
    dead = store.get(api_settings.control_url, "sync_dead")
    assert dead is not None
    assert dead.status == "failed"
    assert "interrupted" in (dead.error or "")


@pytest.fixture
def claims_url(control_url: str) -> str:
    migrate(control_url)
    return control_url


def test_concurrent_claims_create_one_job(claims_url: str) -> None:
    """Across threads (and, on PostgreSQL, with an advisory lock across processes): one job per table."""
    results: list[tuple[store.SyncJob, bool]] = []
    barrier = threading.Barrier(8)

    def claim() -> None:
        barrier.wait()
        results.append(store.claim(claims_url, table_key="db.s.t", kind="run", partitions=[], requested_by="x",
                                   reason="refresh"))

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(created for _, created in results) == 1
    assert len({job.id for job, _ in results}) == 1


def _query(client: Client, headers: dict[str, str], **extra: Any) -> Any:
    return client.post("/api/v1/queries/execute", json={"query": f"SELECT count(*) AS n FROM {ITEMS}", **extra},
                       headers=headers)


def test_min_freshness_waits_for_the_refresh(client: Client, agent: dict[str, str], api_settings: Settings,
                                             fake_dagster: FakeDagster) -> None:
    publish_table(api_settings.served_path, ITEMS, "SELECT 1 AS id")
    time.sleep(1.2)

    def materialize() -> None:  # what the Dagster run does, a moment later
        deadline = time.monotonic() + 10
        while not fake_dagster.runs and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        publish_table(api_settings.served_path, ITEMS, "SELECT * FROM range(5) t(id)")
        fake_dagster.finish(next(iter(fake_dagster.runs)), rows=5)

    worker = threading.Thread(target=materialize)
    worker.start()
    r = _query(client, agent, min_freshness=1, wait_s=10)
    worker.join()
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == [[5]]
    # already fresh now: no new run
    assert _query(client, agent, min_freshness=60).status_code == 200
    assert len(fake_dagster.runs) == 1


def test_min_freshness_timeout_and_failure_are_clear(client: Client, agent: dict[str, str], api_settings: Settings,
                                                     fake_dagster: FakeDagster) -> None:
    publish_table(api_settings.served_path, ITEMS, "SELECT 1 AS id")
    time.sleep(1.2)
    timeout = assert_error(_query(client, agent, min_freshness=1, wait_s=0.5), 503, rule="freshness_timeout")
    job_id = timeout["details"]["jobs"][ITEMS]
    assert job_id.startswith("sync_")
    fake_dagster.finish(next(iter(fake_dagster.runs)), "FAILURE", error="DagsterAssetCheckFailedError: row count")
    fake_dagster.fail_runs_with = "DagsterAssetCheckFailedError: row count"  # the retry fails too
    failed = assert_error(_query(client, agent, min_freshness=1, wait_s=5), 503, rule="refresh_failed")
    assert "row count" in failed["message"]


def test_store_latest_job_and_failure_never_hides_a_later_success(claims_url: str) -> None:
    now = utcnow()
    with session_scope(claims_url) as s:
        for i in range(3):
            s.add(SyncRequestRow(id=f"j{i}", table_key="db.s.t", kind="run", status="succeeded", reason="refresh",
                                 created_at=now - dt.timedelta(minutes=10 - i)))
        s.add(SyncRequestRow(id="other", table_key="db.s.u", kind="run", status="queued", reason="refresh",
                             created_at=now))
    latest = store.latest(claims_url, ["db.s.t", "db.s.u", "db.s.none"])
    assert {k: j.id for k, j in latest.items()} == {"db.s.t": "j2", "db.s.u": "other"}

    assert store.record_run_failure(claims_url, "db.s.t", "run1", "SourceError: gone", now - dt.timedelta(minutes=1))
    status = store.table_status(claims_url, ["db.s.t"])["db.s.t"]
    assert status.last_run_status == "failed"
    assert status.last_error == "SourceError: gone"
    assert not store.record_run_failure(claims_url, "db.s.t", "run1", "SourceError: gone", now)  # recorded already
    with session_scope(claims_url) as s:
        row = s.get(store.TableStatusRow, "db.s.t")
        row.last_success_at = now
    assert not store.record_run_failure(claims_url, "db.s.t", "run0", "old failure", now - dt.timedelta(minutes=5))


def test_refresh_figures_are_withheld_from_an_agent_under_a_row_filter(  # noqa: PLR0917
        client: Client, admin_headers: dict[str, str], make_swarm: Callable[..., dict[str, Any]],
        agent_headers: Callable[..., dict[str, str]], fake_dagster: FakeDagster, api_settings: Settings) -> None:
    """Table-wide figures (rows written, watermarks) would tell what a row filter hides."""
    assert client.post("/api/v1/sync/tables/register", json=register_body(), headers=admin_headers).status_code == 201
    publish_table(api_settings.served_path, ITEMS, "SELECT range AS id FROM range(10)")
    swarm = make_swarm([ITEMS])
    agent = agent_headers(swarm["id"])
    r = client.put(f"/api/v1/admin/swarms/{swarm['id']}/policies/{ITEMS}", headers=admin_headers,
                   json={"row_filter": "id < 3"})
    assert r.status_code == 200, r.text
    started = _refresh(client, agent, max_age_s=0).json()
    assert started["outcome"] == "started"
    fake_dagster.finish(next(iter(fake_dagster.runs)), rows=10)
    polled = client.get(started["poll_url"], headers=agent).json()
    assert polled["status"] == "succeeded"
    assert polled["rows"] is None
    assert client.get(started["poll_url"], headers=admin_headers).json()["rows"] == 10
