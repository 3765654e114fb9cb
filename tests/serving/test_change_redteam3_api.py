"""An agent's refresh after source changes the cursor alone does not show: the answer is never
``already_fresh`` while the source holds rows the served version lacks.

Dagster is the fake GraphQL server; the source is the stand-in (as ``test_refresh_late_data.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from shared.served import Column, publish, write_version
from shared.settings import Settings
from tests.serving import sync_support
from tests.serving.dagster_fake import FakeDagster
from tests.serving.sync_support import (
    DAYS,
    VISITS,
    VISITS_PATH,
    VISITS_REFRESH,
    VISITS_SOURCE,
    register_body,
    source_sql,
)

sync_source = sync_support.sync_source
app = sync_support.app

Client = TestClient[Litestar]


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, query=dataclasses.replace(settings.query, refresh_per_minute=100))


@pytest.fixture
def fake_dagster(api_settings: Settings, sync_source: str) -> FakeDagster:
    """VISITS in the stand-in: one row per day on 2025-01-01..03, the cursor a whole day (DATE)."""
    from shared.control.db import migrate

    migrate(api_settings.control_url)
    source_sql(api_settings, f"CREATE OR REPLACE TABLE {VISITS_SOURCE} (ID NUMBER(10,0), DAY DATE, LOADED_ON DATE)",
               f"INSERT INTO {VISITS_SOURCE} VALUES (1, '2025-01-01', '2025-01-03'), (2, '2025-01-02', '2025-01-03'), "
               "(3, '2025-01-03', '2025-01-03')")
    return FakeDagster(api_settings.control_url, partition_keys={VISITS_PATH: DAYS})


@pytest.fixture
def agent(client: Client, admin_headers: dict[str, str], make_swarm: Callable[..., dict[str, Any]],
          agent_headers: Callable[..., dict[str, str]]) -> dict[str, str]:
    body = register_body("visits", strategy="incremental", incremental_key="loaded_on", primary_key=["id"],
                         freshness="1h", partitioning={"kind": "daily", "column": "day", "start": "2025-01-01"})
    r = client.post("/api/v1/sync/tables/register", json=body, headers=admin_headers)
    assert r.status_code == 201, r.text
    return agent_headers(make_swarm([VISITS])["id"])


def _serve_days(settings: Settings) -> None:
    """The served version a backfill of 2025-01-01..03 leaves: three rows, all loaded on 2025-01-03."""
    with write_version(settings.served_path, VISITS, copy_previous=False) as pending:
        pending.con.execute("CREATE TABLE data (ID BIGINT, DAY DATE, LOADED_ON DATE)")
        pending.con.execute("INSERT INTO data VALUES (1, '2025-01-01', '2025-01-03'), (2, '2025-01-02', '2025-01-03'), "
                            "(3, '2025-01-03', '2025-01-03')")
        columns = [Column("ID", "BIGINT"), Column("DAY", "DATE"), Column("LOADED_ON", "DATE")]
        publish(settings.served_path, pending, strategy="incremental", row_count=3, columns=columns,
                partitions={k: {"rows": 1, "cursor_nulls": 0} for k in DAYS[:3]}, watermark="2025-01-03",
                extra={"watermark_type": "DATE", "lookback_rows": 3, "cursor_column": "LOADED_ON",
                       "primary_key": ["ID"], "partitioning": ["daily", "DAY"], "cursor_nulls": 0})


def test_a_row_loaded_on_the_watermark_day_is_not_already_fresh_and_its_partition_is_rewritten(
        client: Client, agent: dict[str, str], fake_dagster: FakeDagster, api_settings: Settings) -> None:
    """A DATE cursor: every row loaded later on the watermark's day ties with it. The refresh said
    ``already_fresh`` (no row past the watermark) and the late row was never served."""
    _serve_days(api_settings)
    r = client.post(VISITS_REFRESH, headers=agent)
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "already_fresh"
    source_sql(api_settings, f"INSERT INTO {VISITS_SOURCE} VALUES (4, '2025-01-02', '2025-01-03')")  # loaded later that day
    r = client.post(VISITS_REFRESH, headers=agent)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["outcome"] == "started"
    assert body["partitions"] == ["2025-01-02"]
    assert (body["served_watermark"], body["newer_rows"]) == ("2025-01-03", 1)
    assert [run.partition for run in fake_dagster.runs.values()] == ["2025-01-02"]
