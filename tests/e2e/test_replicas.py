"""The production topology without Docker: PostgreSQL-backed Dagster (code server, webserver,
daemon) and two API replicas sharing the control database and served data.

One platform for the whole module (tests run in file order and build on each other):
tables registered before start are loaded once by the code server; an agent's refresh through
replica A becomes fresh data visible through both (coalesced: B joins A's job, then answers
``already_fresh``); refreshes are rate-limited per agent; ``kill -9`` of A while a refresh is
pending loses nothing (B joins and polls it), and its estimate comes from Dagster's past run
durations; ``min_freshness`` waits for a refresh; admin syncs of partitions and backfills
(bad keys name the format, unknown tables are 404); registration through the API reloads
the code location; a failing run carries Dagster's message into the job and the catalog;
deleting a table removes its asset; Dagster going away leaves reads working while sync
endpoints answer 503 and /ready reports the replica ``degraded``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import platform_fixture
from tests.e2e.platform import Platform, wait_until
from tests.serving.helpers import assert_error, bearer, create_swarm, mint_token

# The tests build on each other over one platform; every e2e test runs on one xdist worker
# (tests/conftest.py), in file order.
pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

ITEMS = "demo.e2e.items"
EVENTS = "demo.e2e.events"
BROKEN = "demo.e2e.broken"
RUN_TIMEOUT_S = 180
MIN_FRESHNESS_WAIT_S = 120
JOIN_WINDOW_S = 3


def _insert(cur: Any, start: int, count: int) -> None:
    cur.execute("INSERT INTO DEMO.E2E.ITEMS SELECT seq4() + %s, 'item', current_timestamp() "
                "FROM TABLE(GENERATOR(ROWCOUNT => %s))", (start, count))


def _insert_items(platform: Platform, start: int, count: int) -> None:
    with platform.source() as cur:
        _insert(cur, start, count)


def _seed(cur: Any) -> None:
    cur.execute("CREATE SCHEMA IF NOT EXISTS DEMO.E2E")
    cur.execute("CREATE OR REPLACE TABLE DEMO.E2E.ITEMS (ID NUMBER(10,0), NAME TEXT, UPDATED_AT TIMESTAMP_NTZ)")
    _insert(cur, 1, 100)
    cur.execute("CREATE OR REPLACE TABLE DEMO.E2E.EVENTS (ID NUMBER(10,0), DAY DATE, KIND TEXT)")
    cur.execute("INSERT INTO DEMO.E2E.EVENTS VALUES (1, '2025-01-02', 'a'), (2, '2025-01-02', 'b'), "
                "(3, '2025-01-03', 'c'), (4, '2025-01-04', 'd')")
    cur.execute("CREATE OR REPLACE TABLE DEMO.E2E.BROKEN (ID NUMBER(10,0))")
    cur.execute("INSERT INTO DEMO.E2E.BROKEN VALUES (1)")


def _prepare(platform: Platform) -> None:
    """ITEMS and EVENTS are registered before Dagster starts (the code location loads them once);
    BROKEN is registered through the API in its test, which proves the reload path."""
    platform.register(table_name="items", schema_name="e2e", strategy="FULL", freshness="1h")
    platform.register(table_name="events", schema_name="e2e", strategy="full",
                      partitioning={"kind": "Daily", "column": "DAY", "start": "2025-01-01"})


e2e_platform = platform_fixture(seed=_seed, prepare=_prepare)


def _count(client: httpx.Client, headers: dict[str, str], table: str = ITEMS, **extra: Any) -> int:
    r = client.post("/api/v1/queries/execute", json={"query": f"SELECT count(*) FROM {table}", **extra},
                    headers=headers)
    assert r.status_code == 200, r.text
    return int(r.json()["rows"][0][0])


def _asset_keys(platform: Platform) -> set[str]:
    nodes = platform.graphql("{ assetNodes { assetKey { path } } }")["assetNodes"]
    return {".".join(n["assetKey"]["path"]) for n in nodes}


def _poll(client: httpx.Client, url: str, headers: dict[str, str], *, until: tuple[str, ...] = ("succeeded",),
          timeout_s: float = RUN_TIMEOUT_S) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        r = client.get(url, headers=headers)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        if body["status"] in ("failed", "canceled") and body["status"] not in until:
            raise AssertionError(f"job ended {body['status']}: {body}")
        return body if body["status"] in until else None

    result: dict[str, Any] = wait_until(done, timeout_s=timeout_s, interval_s=0.3, message=f"{url} to finish")
    return result


@pytest.fixture(scope="module")
def agent(e2e_platform: Platform, e2e_admin: dict[str, str]) -> dict[str, str]:
    """An agent granted ITEMS and EVENTS (minted through replica A)."""
    assert {ITEMS, EVENTS} <= _asset_keys(e2e_platform)
    with e2e_platform.apis["a"].client() as a:
        swarm = create_swarm(a, e2e_admin, [ITEMS, EVENTS])
        return bearer(mint_token(a, e2e_admin, "agent", swarm["id"])["token"])


def test_refresh_through_a_is_visible_through_both(e2e_platform: Platform, agent: dict[str, str]) -> None:
    a, b = e2e_platform.apis["a"].client(), e2e_platform.apis["b"].client()
    with a, b:
        started = a.post(f"/api/v1/data/tables/{ITEMS}/refresh", headers=agent)
        assert started.status_code == 202, started.text
        body = started.json()
        assert body["outcome"] == "started"
        assert body["eta_s"] > 0
        assert body["eta_basis"]
        joined = b.post(f"/api/v1/data/tables/{ITEMS}/refresh", headers=agent)
        assert joined.status_code == 202, joined.text
        assert joined.json()["outcome"] == "existing_job"  # a run takes seconds: still queued or running
        assert joined.json()["job_id"] == body["job_id"]
        assert joined.json()["job_status"] in ("launching", "queued", "running")
        state = _poll(b, body["poll_url"], agent)
        assert state["rows"] == 100
        assert _count(a, agent) == 100
        assert _count(b, agent) == 100
        fresh = b.post(f"/api/v1/data/tables/{ITEMS}/refresh", headers=agent)
        assert fresh.status_code == 200, fresh.text
        assert fresh.json()["outcome"] == "already_fresh"
        assert fresh.json()["job_id"] is None
        synced_at = dt.datetime.fromisoformat(fresh.json()["synced_at"])
        assert dt.timedelta(0) <= dt.datetime.now(dt.UTC) - synced_at < dt.timedelta(seconds=RUN_TIMEOUT_S)
        # The catalog carries Dagster's own freshness verdict (freshnessStatusInfo) beside ours.
        entry = b.get(f"/api/v1/data/tables/{ITEMS}", headers=agent).json()
        assert entry["freshness"]["status"] == "fresh"
        assert entry["freshness"]["dagster_status"] in ("HEALTHY", "WARNING", "DEGRADED", "UNKNOWN")


def test_a_policy_set_through_a_applies_through_b_and_is_lifted(e2e_platform: Platform, agent: dict[str, str],
                                                                 e2e_admin: dict[str, str]) -> None:
    """A grant policy and a classification override set through replica A bind the agent on replica B on its
    next request after TOKEN_CACHE_TTL_S, over a version Dagster classified as it materialized it."""
    a, b = e2e_platform.apis["a"].client(), e2e_platform.apis["b"].client()
    with a, b:
        entry = b.get(f"/api/v1/data/tables/{ITEMS}", headers=agent).json()
        verdicts = {c["name"]: c["classification"] for c in entry["columns"]}
        assert set(verdicts) == {"ID", "NAME", "UPDATED_AT"}
        assert not any(v["personal"] for v in verdicts.values())  # classified by the run, nothing personal
        assert "sampled" in verdicts["NAME"]["evidence"]
        swarm = next(s["id"] for s in a.get("/api/v1/admin/swarms", headers=e2e_admin).json() if ITEMS in s["grants"])
        r = a.put(f"/api/v1/admin/swarms/{swarm}/policies/{ITEMS}", headers=e2e_admin,
                  json={"exclude": ["UPDATED_AT"], "row_filter": "ID <= 10"})
        assert r.status_code == 200, r.text
        r = a.put(f"/api/v1/admin/classifications/{ITEMS}/NAME", headers=e2e_admin,
                  json={"personal": True, "reason": "e2e: names are personal here"})
        assert r.status_code == 200, r.text
        time.sleep(1.5)  # TOKEN_CACHE_TTL_S (1 s)
        got = b.post("/api/v1/queries/execute", headers=agent, json={"query": f"SELECT * FROM {ITEMS} ORDER BY ID"})
        assert got.status_code == 200, got.text
        assert [c["name"] for c in got.json()["columns"]] == ["ID", "NAME"]
        assert [row[0] for row in got.json()["rows"]] == list(range(1, 11))
        assert all(re.fullmatch(r"[0-9a-f]{16}", row[1]) for row in got.json()["rows"])
        assert b.get(f"/api/v1/data/tables/{ITEMS}", headers=agent).json()["row_count"] == 10
        assert a.delete(f"/api/v1/admin/swarms/{swarm}/policies/{ITEMS}", headers=e2e_admin).status_code == 200
        assert a.delete(f"/api/v1/admin/classifications/{ITEMS}/NAME", headers=e2e_admin).status_code == 200
        time.sleep(1.5)
        assert _count(b, agent) == 100


def test_refreshes_are_rate_limited_per_agent(e2e_platform: Platform, e2e_admin: dict[str, str]) -> None:
    """Each agent token may ask AGENT_REFRESHES_PER_MINUTE times a minute; another token is unaffected."""
    limit = e2e_platform.settings.query.refresh_per_minute
    with e2e_platform.apis["b"].client() as b:
        swarm = create_swarm(b, e2e_admin, [ITEMS])
        eager, other = (bearer(mint_token(b, e2e_admin, "agent", swarm["id"])["token"]) for _ in range(2))
        for _ in range(limit):
            assert b.post(f"/api/v1/data/tables/{ITEMS}/refresh", headers=eager).json()["outcome"] == "already_fresh"
        limited = b.post(f"/api/v1/data/tables/{ITEMS}/refresh", headers=eager)
        error = assert_error(limited, 429, rule="refresh_rate_limit")
        assert error["details"]["limit"] == limit
        assert int(limited.headers["retry-after"]) >= 1
        assert b.post(f"/api/v1/data/tables/{ITEMS}/refresh", headers=other).status_code == 200


def test_replica_killed_while_refresh_pending(e2e_platform: Platform, agent: dict[str, str]) -> None:
    _insert_items(e2e_platform, 1001, 50)
    time.sleep(JOIN_WINDOW_S + 3)  # the served data (from the first test) is now older than B will accept
    with e2e_platform.apis["a"].client() as a:
        body = a.post(f"/api/v1/data/tables/{ITEMS}/refresh", json={"max_age_s": 0}, headers=agent).json()
    assert body["outcome"] == "started", body
    # The estimate comes from the table's earlier run, read back from Dagster's run history.
    assert re.fullmatch(r"median of \d+ recent runs?", body["eta_basis"]), body
    assert 0 < body["eta_s"] < RUN_TIMEOUT_S
    e2e_platform.kill_api("a")  # kill -9 while the run is queued or running
    with e2e_platform.apis["b"].client() as b:
        # B wants data younger than a few seconds: the served version is older, while A's job (created a
        # moment ago, its run takes longer than that) qualifies, so B joins it while it is pending.
        joined = b.post(f"/api/v1/data/tables/{ITEMS}/refresh", json={"max_age_s": JOIN_WINDOW_S},
                        headers=agent).json()
        assert joined["outcome"] == "existing_job", joined
        assert joined["job_id"] == body["job_id"]
        _poll(b, body["poll_url"], agent)
        assert _count(b, agent) == 150
    restarted = e2e_platform.start_api("a")
    with restarted.client() as a:
        assert _count(a, agent) == 150
        assert a.get(body["poll_url"], headers=agent).json()["status"] == "succeeded"


def test_min_freshness_waits_for_fresh_rows(e2e_platform: Platform, agent: dict[str, str]) -> None:
    _insert_items(e2e_platform, 2001, 25)
    time.sleep(1.5)  # the served version is now older than the one second asked for
    with e2e_platform.apis["b"].client() as b:
        # A run takes about 5 s here; the wait is generous for a loaded CI machine, and bounded.
        assert _count(b, agent, min_freshness=1, wait_s=MIN_FRESHNESS_WAIT_S) == 175
        assert _count(b, agent, min_freshness=60) == 175  # fresh now: answered without another run


def test_admin_syncs_partition_runs_and_backfills(e2e_platform: Platform, e2e_admin: dict[str, str]) -> None:
    with e2e_platform.apis["b"].client() as b:
        browse = b.get("/api/v1/sync/snowflake/tables", params={"schema_name": "e2e"}, headers=e2e_admin).json()
        assert {t["table_name"]: t["row_count"] for t in browse["tables"]}["EVENTS"] == 4
        start = {"table_name": "events", "schema_name": "e2e"}
        for bad in ({"partitions": ["2025-1-2"]}, {"partition_range": {"start": "2025-01-02", "end": "01/04/2025"}}):
            error = assert_error(b.post("/api/v1/sync/start", json={**start, **bad}, headers=e2e_admin),
                                 400, rule="invalid_partition")
            assert "YYYY-MM-DD" in error["message"]
        missing = assert_error(b.post("/api/v1/sync/start", json={"table_name": "nope", "schema_name": "e2e"},
                                      headers=e2e_admin), 404)
        assert "nope" in missing["message"]
        assert_error(b.get("/api/v1/sync/status/e2e/nope", headers=e2e_admin), 404)
        launched = b.post("/api/v1/sync/start", json={**start, "partitions": ["2025-01-02"], "strategy": "FULL"},
                          headers=e2e_admin)
        assert launched.status_code == 202, launched.text
        run = launched.json()
        assert run["kind"] == "run"
        assert run["status"] in ("queued", "running")
        assert run["dagster_url"].startswith(f"http://127.0.0.1:{e2e_platform.webserver_port}/dagster/runs/")
        backfill = b.post("/api/v1/sync/start", json={**start, "partition_range": {"start": "2025-01-03",
                                                                                   "end": "2025-01-04"}},
                          headers=e2e_admin).json()
        assert backfill["kind"] == "backfill"
        state = _poll(b, f"/api/v1/sync/jobs/{run['job_id']}", e2e_admin)
        assert state["partitions"]["done"] == ["2025-01-02"]
        assert state["rows"] == 2
        assert state["started_at"]
        assert state["finished_at"]
        filled = _poll(b, f"/api/v1/sync/jobs/{backfill['job_id']}", e2e_admin, timeout_s=180)
        assert filled["partitions"]["done"] == ["2025-01-03", "2025-01-04"]
        assert filled["partitions"]["pending"] == []
        status = b.get("/api/v1/sync/status/e2e/events", headers=e2e_admin).json()
        assert status["served_version"]
        assert status["row_count"] == 4
        listed = {t["table"] for t in b.get("/api/v1/sync/tables", headers=e2e_admin).json()["tables"]}
        assert {ITEMS, EVENTS} <= listed


def test_a_backfill_refused_by_a_blocking_check_fails_its_partitions(e2e_platform: Platform,
                                                                      e2e_admin: dict[str, str]) -> None:
    """A duplicate primary key in one day fails the run that covers it (a backfill run spans a
    range of partitions, published together or not at all): every partition of it is failed,
    the job carries Dagster's message naming the check, and nothing is served."""
    with e2e_platform.source() as cur:
        cur.execute("CREATE OR REPLACE TABLE DEMO.E2E.DUPES (ID NUMBER(10,0), DAY DATE)")
        cur.execute("INSERT INTO DEMO.E2E.DUPES VALUES (1, '2025-01-02'), (2, '2025-01-03'), (2, '2025-01-03'), "
                    "(3, '2025-01-04')")
    with e2e_platform.apis["b"].client() as b:
        r = b.post("/api/v1/sync/tables/register", headers=e2e_admin, json={
            "table_name": "dupes", "schema_name": "e2e", "primary_key": ["ID"],
            "partitioning": {"kind": "daily", "column": "DAY", "start": "2025-01-01"}})
        assert r.status_code == 201, r.text
        job = b.post("/api/v1/sync/start", headers=e2e_admin, json={
            "table_name": "dupes", "schema_name": "e2e",
            "partition_range": {"start": "2025-01-02", "end": "2025-01-04"}}).json()
        assert job["kind"] == "backfill"
        failed = _poll(b, f"/api/v1/sync/jobs/{job['job_id']}", e2e_admin, until=("failed",), timeout_s=RUN_TIMEOUT_S)
        assert sorted(failed["partitions"]["failed"]) == ["2025-01-02", "2025-01-03", "2025-01-04"], json.dumps(failed)
        assert failed["partitions"]["done"] == []
        assert "primary_key_unique" in " ".join(failed["errors"]), failed
        assert "failing partition(s): 2025-01-03" in " ".join(failed["errors"]), failed
        status = b.get("/api/v1/sync/status/e2e/dupes", headers=e2e_admin).json()
        assert status["served_version"] is None, "a refused version is never published"
        assert b.delete("/api/v1/sync/tables/e2e/dupes", headers=e2e_admin).status_code == 200


def test_register_fail_and_delete_through_the_api(e2e_platform: Platform, e2e_admin: dict[str, str]) -> None:
    """Registration reloads the real code location (the asset exists on return); a run failing
    carries Dagster's message into the job and the catalog; deletion removes the asset."""
    with e2e_platform.apis["a"].client() as a:
        r = a.post("/api/v1/sync/tables/register", json={"table_name": "broken", "schema_name": "E2E"},
                   headers=e2e_admin)
        assert r.status_code == 201, r.text
        assert BROKEN in _asset_keys(e2e_platform)
        with e2e_platform.source() as cur:
            cur.execute("DROP TABLE DEMO.E2E.BROKEN")
        job = a.post("/api/v1/sync/start", json={"table_name": "broken", "schema_name": "e2e"},
                     headers=e2e_admin).json()
        failed = _poll(a, f"/api/v1/sync/jobs/{job['job_id']}", e2e_admin, until=("failed",))
        assert failed["errors"], failed
        assert "broken" in " ".join(failed["errors"]).lower()
        catalog = a.get(f"/api/v1/data/tables/{BROKEN}", headers=e2e_admin).json()
        assert catalog["freshness"]["status"] == "failing"
        assert "broken" in catalog["freshness"]["reason"].lower()

        deleted = a.delete("/api/v1/sync/tables/e2e/broken", headers=e2e_admin)
        assert deleted.status_code == 200, deleted.text
        assert BROKEN not in _asset_keys(e2e_platform)


def test_dagster_down_reads_work_sync_503_ready_reports(e2e_platform: Platform, e2e_admin: dict[str, str],
                                                       agent: dict[str, str]) -> None:
    e2e_platform.stop("dagster-webserver")  # last test: the platform is torn down after it
    with e2e_platform.apis["b"].client() as b:
        assert _count(b, agent) == 175
        assert b.get(f"/api/v1/data/tables/{ITEMS}", headers=agent).status_code == 200
        assert b.get("/api/v1/sync/tables", headers=e2e_admin).status_code == 200
        error = assert_error(b.post("/api/v1/sync/start", json={"table_name": "items", "schema_name": "e2e"},
                                    headers=e2e_admin), 503, rule="dagster_unavailable")
        assert "Dagster" in error["message"]
        assert_error(b.post(f"/api/v1/data/tables/{ITEMS}/refresh", json={"max_age_s": 0}, headers=agent), 503)
        # A finished job is answered from the control database while Dagster is away.
        last = b.get("/api/v1/sync/status/e2e/events", headers=e2e_admin).json()["last_job"]
        finished = b.get(f"/api/v1/sync/jobs/{last['job_id']}", headers=e2e_admin)
        assert finished.status_code == 200, finished.text
        assert finished.json()["status"] == "succeeded"
        assert finished.json()["dagster_reachable"] is False
        # /ready reports each dependency; Dagster down only degrades it, since reads keep working.
        ready = b.get("/ready")
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "degraded"
        checks = {c["name"]: c for c in ready.json()["checks"]}
        assert checks["dagster"]["ok"] is False
        assert checks["dagster"]["required"] is False
        assert "unreachable" in checks["dagster"]["detail"]
        assert checks["control_db"]["ok"] is True
        assert checks["served_data"]["ok"] is True
