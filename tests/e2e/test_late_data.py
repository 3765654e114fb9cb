"""Late data through the API with real Dagster processes: an agent's refresh serves late rows in old
partitions, updates spread over many days and rows moving between partitions
(``test_snapshot_deletes.py``: deletes on a snapshot table).

After every refresh the served data equals the source in count, key set and newest cursor
(and nothing is served twice), and the next refresh answers ``already_fresh`` with the served
watermark equal to the source's newest cursor. The tests build on each other over one platform.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import shared_platform_fixture
from tests.e2e.platform import Platform, wait_until
from tests.e2e.test_replicas import _poll

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

VISITS = "demo.late.visits"
SRC_VISITS = "DEMO.LATE.VISITS"
DAYS = 12
PER_DAY = 8
RUN_TIMEOUT_S = 300


def _seed(cur: Any) -> None:
    cur.execute("CREATE SCHEMA IF NOT EXISTS DEMO.LATE")
    cur.execute(f"CREATE OR REPLACE TABLE {SRC_VISITS} (VISIT_ID NUMBER(10,0) NOT NULL, VISIT_DATE DATE NOT NULL, "
                "UPDATED_AT TIMESTAMP_NTZ NOT NULL, V VARCHAR)")
    cur.execute(
        f"INSERT INTO {SRC_VISITS} SELECT n + 1, DATEADD(day, FLOOR(n / {PER_DAY}), CAST('2025-01-01' AS DATE)), "
        f"DATEADD(hour, 12, CAST(DATEADD(day, FLOOR(n / {PER_DAY}), CAST('2025-01-01' AS DATE)) AS TIMESTAMP_NTZ)), 'v0' "
        f"FROM (SELECT seq4() AS n FROM TABLE(GENERATOR(ROWCOUNT => {DAYS * PER_DAY})))")


def _prepare(platform: Platform) -> None:
    platform.register(table_name="visits", schema_name="late", strategy="incremental", incremental_key="UPDATED_AT",
                      primary_key=["VISIT_ID"], freshness="1h",
                      partitioning={"kind": "daily", "column": "VISIT_DATE", "start": "2025-01-01"})


e2e_platform = shared_platform_fixture(seed=_seed, prepare=_prepare)


@pytest.fixture(scope="module")
def agent(e2e_platform: Platform) -> dict[str, str]:
    return e2e_platform.agent_headers([VISITS])


def query(api: httpx.Client, agent: dict[str, str], sql: str) -> list[list[Any]]:
    r = api.post("/api/v1/queries/execute", json={"query": sql}, headers=agent)
    assert r.status_code == 200, r.text
    body = r.json()
    assert not body["truncated"]
    return body["rows"]  # type: ignore[no-any-return]


def source(platform: Platform, sql: str) -> list[tuple[Any, ...]]:
    with platform.source() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


def _ts(value: Any) -> dt.datetime:
    return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))


def refresh(api: httpx.Client, agent: dict[str, str], table: str) -> dict[str, Any]:
    r = api.post(f"/api/v1/data/tables/{table}/refresh", headers=agent)
    assert r.status_code in (200, 202), r.text
    return r.json()  # type: ignore[no-any-return]


def refresh_and_wait(api: httpx.Client, agent: dict[str, str], table: str) -> dict[str, Any]:
    body = refresh(api, agent, table)
    assert body["outcome"] == "started", body
    assert body["eta_s"] > 0
    assert body["eta_basis"]
    _poll(api, body["poll_url"], agent, timeout_s=RUN_TIMEOUT_S)
    return body


def _assert_visits_equal_source(platform: Platform, api: httpx.Client, agent: dict[str, str]) -> None:
    [(count, newest)] = source(platform, f"SELECT count(*), max(UPDATED_AT) FROM {SRC_VISITS}")
    placed = sorted((int(k), d.isoformat()) for k, d in source(platform, f"SELECT VISIT_ID, VISIT_DATE FROM {SRC_VISITS}"))
    [[served, served_newest, distinct]] = query(
        api, agent, f"SELECT count(*), max(updated_at), count(DISTINCT visit_id) FROM {VISITS}")
    assert (served, distinct) == (count, count)  # same count, no key twice
    assert _ts(served_newest) == _ts(newest)
    served_placed = sorted((int(k), str(d)[:10]) for k, d in query(api, agent, f"SELECT visit_id, visit_date FROM {VISITS}"))
    assert served_placed == placed  # the same keys, each in the partition the source says
    fresh = refresh(api, agent, VISITS)
    assert fresh["outcome"] == "already_fresh", fresh
    assert fresh["newer_rows"] == 0
    assert _ts(fresh["served_watermark"]) == _ts(fresh["source_watermark"]) == _ts(newest)


def _dates(platform: Platform, where: str) -> list[str]:
    return sorted({d.isoformat() for (d,) in source(platform, f"SELECT VISIT_DATE FROM {SRC_VISITS} WHERE {where}")})


def test_first_refresh_serves_every_partition_with_rows(e2e_platform: Platform, agent: dict[str, str]) -> None:
    with e2e_platform.apis["a"].client() as api:
        body = refresh_and_wait(api, agent, VISITS)
        assert body["partitions"] == [f"2025-01-{d:02d}" for d in range(1, DAYS + 1)]
        assert body["kind"] == "backfill"
        _assert_visits_equal_source(e2e_platform, api, agent)


def test_late_rows_in_old_partitions(e2e_platform: Platform, agent: dict[str, str]) -> None:
    with e2e_platform.apis["a"].client() as api:
        last_two = [f"2025-01-{DAYS - 1:02d}", f"2025-01-{DAYS:02d}"]
        with e2e_platform.source() as cur:
            cur.execute(f"INSERT INTO {SRC_VISITS} SELECT 10000 + seq4(), CASE WHEN seq4() % 2 = 0 THEN "
                        f"CAST('{last_two[0]}' AS DATE) ELSE CAST('{last_two[1]}' AS DATE) END, "
                        "CAST('2025-03-01 08:00:00' AS TIMESTAMP_NTZ), 'late' FROM TABLE(GENERATOR(ROWCOUNT => 50))")
        body = refresh_and_wait(api, agent, VISITS)
        assert body["partitions"] == last_two
        assert body["newer_rows"] == 50
        _assert_visits_equal_source(e2e_platform, api, agent)


def test_updates_spread_over_many_days(e2e_platform: Platform, agent: dict[str, str]) -> None:
    with e2e_platform.apis["a"].client() as api:
        # Every visit of every third day, with a newer cursor: four days, no two adjacent, so
        # the backfill runs four separate ranges (one run each, one at a time per table).
        with e2e_platform.source() as cur:
            cur.execute(f"UPDATE {SRC_VISITS} SET V = 'updated', UPDATED_AT = CAST('2025-03-02 09:00:00' AS TIMESTAMP_NTZ) "
                        "WHERE DAYOFMONTH(VISIT_DATE) % 3 = 1 AND VISIT_ID < 10000")
        changed = _dates(e2e_platform, "V = 'updated'")
        assert changed == ["2025-01-01", "2025-01-04", "2025-01-07", "2025-01-10"]
        body = refresh_and_wait(api, agent, VISITS)
        assert body["partitions"] == changed  # exactly the updated days, not the newest partition
        _assert_visits_equal_source(e2e_platform, api, agent)
        [[updated]] = query(api, agent, f"SELECT count(*) FROM {VISITS} WHERE v = 'updated'")
        assert [(updated,)] == source(e2e_platform, f"SELECT count(*) FROM {SRC_VISITS} WHERE V = 'updated'")


def test_rows_moving_between_partitions(e2e_platform: Platform, agent: dict[str, str]) -> None:
    with e2e_platform.apis["a"].client() as api:
        with e2e_platform.source() as cur:  # three visits from the first days move to day 6
            cur.execute(f"UPDATE {SRC_VISITS} SET VISIT_DATE = CAST('2025-01-06' AS DATE), "
                        "UPDATED_AT = CAST('2025-03-03 10:00:00' AS TIMESTAMP_NTZ) WHERE VISIT_ID IN (1, 2, 12)")
        body = refresh_and_wait(api, agent, VISITS)
        assert body["partitions"] == ["2025-01-06"]
        _assert_visits_equal_source(e2e_platform, api, agent)
        moved = query(api, agent, f"SELECT visit_id, visit_date FROM {VISITS} WHERE visit_id IN (1, 2, 12) ORDER BY 1")
        assert [(int(k), str(d)[:10]) for k, d in moved] == [(1, "2025-01-06"), (2, "2025-01-06"), (12, "2025-01-06")]


def test_a_row_moving_out_of_every_partition_leaves_its_old_one(e2e_platform: Platform, agent: dict[str, str]) -> None:
    """A visit moved before the first partition named no partition, so its old day kept serving it
    and the refresh answered ``already_fresh``. Its old day is now rewritten; moved back, it is served
    again from there."""
    with e2e_platform.apis["a"].client() as api:
        with e2e_platform.source() as cur:
            cur.execute(f"UPDATE {SRC_VISITS} SET VISIT_DATE = CAST('2024-12-31' AS DATE), "
                        "UPDATED_AT = CAST('2025-03-04 10:00:00' AS TIMESTAMP_NTZ) WHERE VISIT_ID = 3")
        body = refresh_and_wait(api, agent, VISITS)
        assert body["partitions"] == ["2025-01-01"]
        assert "1 served row(s) no longer lie in their partition" in body["note"]
        assert query(api, agent, f"SELECT count(*) FROM {VISITS} WHERE visit_id = 3") == [[0]]
        waiting = refresh(api, agent, VISITS)  # nothing left to rewrite; the row waits in no partition
        assert (waiting["outcome"], waiting["newer_rows"]) == ("already_fresh", 1)
        with e2e_platform.source() as cur:
            cur.execute(f"UPDATE {SRC_VISITS} SET VISIT_DATE = CAST('2025-01-01' AS DATE), "
                        "UPDATED_AT = CAST('2025-03-04 11:00:00' AS TIMESTAMP_NTZ) WHERE VISIT_ID = 3")
        assert refresh_and_wait(api, agent, VISITS)["partitions"] == ["2025-01-01"]
        _assert_visits_equal_source(e2e_platform, api, agent)


SENSOR_SELECTOR = {"repositoryLocationName": "agents_data", "repositoryName": "__repository__",
                   "sensorName": "source_change_sensor"}
SENSOR_TICKS = """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) {
  __typename ... on Sensor { sensorState { ticks(limit: 20) { status skipReason runIds timestamp } } } } }"""
SENSOR_ID = """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { __typename ... on Sensor { id } } }"""
RUN_STATUS = """query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status tags { key value } } } }"""


def _ticks(platform: Platform) -> list[dict[str, Any]]:
    sensor = platform.graphql(SENSOR_TICKS, {"s": SENSOR_SELECTOR})["sensorOrError"]
    assert sensor["__typename"] == "Sensor", sensor
    return sensor["sensorState"]["ticks"]  # type: ignore[no-any-return]


def _run(platform: Platform, run_id: str) -> dict[str, Any]:
    run = platform.graphql(RUN_STATUS, {"id": run_id})["runOrError"]
    assert run["__typename"] == "Run", run
    return {"status": run["status"], "tags": {t["key"]: t["value"] for t in run["tags"]}}


@pytest.mark.shared_last  # after every other test on the shared platform: the sensor then watches every table
def test_the_source_change_sensor_materializes_the_late_partitions(e2e_platform: Platform,
                                                                    agent: dict[str, str]) -> None:
    """A sensor tick asks the source which partitions changed and runs exactly those (the sensor
    is stopped again at the end)."""
    started = e2e_platform.graphql("mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename } }",
                                   {"s": SENSOR_SELECTOR})["startSensor"]
    assert started["__typename"] == "Sensor", started
    try:
        _sensor_runs_the_late_partitions(e2e_platform)
    finally:
        sensor = e2e_platform.graphql(SENSOR_ID, {"s": SENSOR_SELECTOR})["sensorOrError"]
        stopped = e2e_platform.graphql("mutation($id: String) { stopSensor(id: $id) { __typename } }",
                                       {"id": sensor["id"]})["stopSensor"]
        assert stopped["__typename"] == "StopSensorMutationResult", stopped
    with e2e_platform.apis["a"].client() as api:
        _assert_visits_equal_source(e2e_platform, api, agent)


def _sensor_runs_the_late_partitions(platform: Platform) -> None:
    # A tick exists from the moment it starts; rows inserted before it has read the source would
    # be part of its baseline and never seen as a change. So wait for the finished baseline tick.
    wait_until(lambda: [t for t in _ticks(platform) if VISITS in (t["skipReason"] or "")
                        and "first signature" in (t["skipReason"] or "")],
               timeout_s=RUN_TIMEOUT_S, interval_s=1.0, message="the sensor's baseline tick")
    with platform.source() as cur:  # late rows in two days that are not adjacent
        cur.execute(f"INSERT INTO {SRC_VISITS} VALUES (20001, '2025-01-03', '2025-03-05 00:00:00', 'sensor'), "
                    "(20002, '2025-01-09', '2025-03-05 00:00:00', 'sensor')")

    def requested() -> list[str]:
        return [r for t in _ticks(platform) for r in t["runIds"]]

    run_ids = wait_until(requested, timeout_s=RUN_TIMEOUT_S, interval_s=1.0, message="a tick requesting runs")

    def finished() -> list[dict[str, Any]] | None:
        runs = [_run(platform, i) for i in run_ids]
        return runs if all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs) else None

    runs = wait_until(finished, timeout_s=RUN_TIMEOUT_S, interval_s=1.0, message="the sensor's runs to finish")
    assert all(r["status"] == "SUCCESS" for r in runs), runs
    assert sorted(r["tags"].get("dagster/partition") for r in runs) == ["2025-01-03", "2025-01-09"]
