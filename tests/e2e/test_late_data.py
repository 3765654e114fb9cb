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

from tests.e2e.conftest import platform_fixture
from tests.e2e.platform import Platform
from tests.e2e.test_replicas import _poll
from tests.serving.helpers import bearer, create_swarm, mint_token

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.xdist_group("e2e_late_data")]

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


e2e_platform = platform_fixture(replicas=("a",), seed=_seed, prepare=_prepare,
                                extra_env={"AGENT_REFRESHES_PER_MINUTE": "1000"})


@pytest.fixture(scope="module")
def agent(e2e_platform: Platform) -> dict[str, str]:
    admin = e2e_platform.admin_headers()
    with e2e_platform.apis["a"].client() as api:
        swarm = create_swarm(api, admin, [VISITS])
        return bearer(mint_token(api, admin, "agent", swarm["id"])["token"])


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


def _assert_visits_equalsource(platform: Platform, api: httpx.Client, agent: dict[str, str]) -> None:
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
        _assert_visits_equalsource(e2e_platform, api, agent)


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
        _assert_visits_equalsource(e2e_platform, api, agent)


def test_updates_spread_over_many_days(e2e_platform: Platform, agent: dict[str, str]) -> None:
    with e2e_platform.apis["a"].client() as api:
        with e2e_platform.source() as cur:  # every visit of every other day, with a newer cursor
            cur.execute(f"UPDATE {SRC_VISITS} SET V = 'updated', UPDATED_AT = CAST('2025-03-02 09:00:00' AS TIMESTAMP_NTZ) "
                        "WHERE DAYOFMONTH(VISIT_DATE) % 2 = 1 AND VISIT_ID < 10000")
        changed = _dates(e2e_platform, "V = 'updated'")
        assert len(changed) == DAYS // 2
        body = refresh_and_wait(api, agent, VISITS)
        assert body["partitions"] == changed  # exactly the updated days, not the newest partition
        _assert_visits_equalsource(e2e_platform, api, agent)
        [[updated]] = query(api, agent, f"SELECT count(*) FROM {VISITS} WHERE v = 'updated'")
        assert [(updated,)] == source(e2e_platform, f"SELECT count(*) FROM {SRC_VISITS} WHERE V = 'updated'")


def test_rows_moving_between_partitions(e2e_platform: Platform, agent: dict[str, str]) -> None:
    with e2e_platform.apis["a"].client() as api:
        with e2e_platform.source() as cur:  # three visits from the first days move to day 6
            cur.execute(f"UPDATE {SRC_VISITS} SET VISIT_DATE = CAST('2025-01-06' AS DATE), "
                        "UPDATED_AT = CAST('2025-03-03 10:00:00' AS TIMESTAMP_NTZ) WHERE VISIT_ID IN (1, 2, 12)")
        body = refresh_and_wait(api, agent, VISITS)
        assert body["partitions"] == ["2025-01-06"]
        _assert_visits_equalsource(e2e_platform, api, agent)
        moved = query(api, agent, f"SELECT visit_id, visit_date FROM {VISITS} WHERE visit_id IN (1, 2, 12) ORDER BY 1")
        assert [(int(k), str(d)[:10]) for k, d in moved] == [(1, "2025-01-06"), (2, "2025-01-06"), (12, "2025-01-06")]
