"""Deletes on a snapshot table become visible after an agent's refresh (real Dagster processes).

A snapshot table has no cursor: its refresh keeps the time rule (synced within the freshness
target is fresh) but is also not fresh when the source holds another number of rows than the
newest served snapshot, so a delete in the source is taken up by the next refresh.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from tests.e2e.conftest import shared_platform_fixture
from tests.e2e.platform import Platform
from tests.e2e.test_late_data import query, refresh, refresh_and_wait, source

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

SNAP = "demo.late.snap"
SRC_SNAP = "DEMO.LATE.SNAP"


def _seed(cur: Any) -> None:
    cur.execute("CREATE SCHEMA IF NOT EXISTS DEMO.LATE")
    cur.execute(f"CREATE OR REPLACE TABLE {SRC_SNAP} (ID NUMBER(10,0), V VARCHAR)")
    cur.execute(f"INSERT INTO {SRC_SNAP} SELECT seq4() + 1, 'row' FROM TABLE(GENERATOR(ROWCOUNT => 50))")


def _prepare(platform: Platform) -> None:
    platform.register(table_name="snap", schema_name="late", strategy="snapshot", freshness="1h")


e2e_platform = shared_platform_fixture(seed=_seed, prepare=_prepare)


@pytest.fixture(scope="module")
def agent(e2e_platform: Platform) -> dict[str, str]:
    return e2e_platform.agent_headers([SNAP])


def test_deletes_on_a_snapshot_table_are_served_after_a_refresh(e2e_platform: Platform, agent: dict[str, str]) -> None:
    latest = f"SELECT count(*), count(DISTINCT id) FROM {SNAP} WHERE _snapshot_date = (SELECT max(_snapshot_date) FROM {SNAP})"

    def assert_equal() -> None:
        [[served, distinct]] = query(api, agent, latest)
        ids = {int(r[0]) for r in query(api, agent, f"SELECT id FROM {SNAP} WHERE _snapshot_date = "
                                                        f"(SELECT max(_snapshot_date) FROM {SNAP})")}
        source_ids = {int(r[0]) for r in source(e2e_platform, f"SELECT ID FROM {SRC_SNAP}")}
        assert (served, distinct) == (len(source_ids), len(source_ids))
        assert ids == source_ids

    with e2e_platform.apis["a"].client() as api:
        refresh_and_wait(api, agent, SNAP)
        assert_equal()
        fresh = refresh(api, agent, SNAP)  # within the freshness target and unchanged: nothing to do
        assert fresh["outcome"] == "already_fresh", fresh
        with e2e_platform.source() as cur:
            cur.execute(f"DELETE FROM {SRC_SNAP} WHERE ID % 5 = 0")
        body = refresh_and_wait(api, agent, SNAP)  # within the target, but the source lost rows
        assert body["partitions"] == [dt.datetime.now(dt.UTC).date().isoformat()]
        assert_equal()
