"""Refreshes of a partitioned, cursor-based table: freshness is asked of the source, and a refresh
names exactly the partitions holding rows past the served watermark.

Dagster is the fake GraphQL server; the source is the stand-in. The same journeys through real
Dagster processes are in ``tests/e2e/test_late_data.py``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from shared.served import Column, Manifest, publish, write_version
from shared.settings import Settings
from tests.serving import sync_support
from tests.serving.dagster_fake import FakeDagster
from tests.serving.helpers import assert_error
from tests.serving.sync_support import (
    DAYS,
    SCHEMA,
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
    """The fake Dagster listing VISITS' daily partitions, over a fresh VISITS table in the stand-in:
    rows on 2025-01-01..03 and 2025-01-07, cursor at noon of each day."""
    from shared.control.db import migrate

    migrate(api_settings.control_url)
    source_sql(api_settings,
               f"CREATE OR REPLACE TABLE {VISITS_SOURCE} (ID NUMBER(10,0), DAY DATE, UPDATED_AT TIMESTAMP_NTZ)",
               f"INSERT INTO {VISITS_SOURCE} VALUES (1, '2025-01-01', '2025-01-01 12:00:00'), "
               "(2, '2025-01-02', '2025-01-02 12:00:00'), (3, '2025-01-03', '2025-01-03 12:00:00'), "
               "(4, '2025-01-07', '2025-01-07 12:00:00')")
    return FakeDagster(api_settings.control_url, partition_keys={VISITS_PATH: DAYS})


@pytest.fixture
def agent(client: Client, admin_headers: dict[str, str], make_swarm: Callable[..., dict[str, Any]],
          agent_headers: Callable[..., dict[str, str]]) -> dict[str, str]:
    body = register_body("visits", strategy="incremental", incremental_key="updated_at", primary_key=["id"],
                         freshness="1h", partitioning={"kind": "daily", "column": "day", "start": "2025-01-01"})
    r = client.post("/api/v1/sync/tables/register", json=body, headers=admin_headers)
    assert r.status_code == 201, r.text
    return agent_headers(make_swarm([VISITS])["id"])


def _serve(settings: Settings, watermark: str, partitions: list[str]) -> Manifest:
    """A served version as an incremental partition run leaves it: its watermark and partitions."""
    with write_version(settings.served_path, VISITS, copy_previous=False) as pending:
        pending.con.execute("CREATE TABLE data AS SELECT 1 AS ID")
        return publish(settings.served_path, pending, strategy="incremental", row_count=1,
                       columns=[Column("ID", "INTEGER")], partitions={k: {"rows": 1} for k in partitions},
                       watermark=watermark, extra={"watermark_type": "TIMESTAMP"})


def test_first_refresh_backfills_the_partitions_with_rows_with_an_eta_per_run(
        client: Client, agent: dict[str, str], fake_dagster: FakeDagster) -> None:
    r = client.post(VISITS_REFRESH, headers=agent)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["outcome"] == "started"
    assert body["kind"] == "backfill"
    assert body["partitions"] == ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-07"]
    assert (body["served_watermark"], body["source_watermark"], body["newer_rows"]) == (None, "2025-01-07T12:00:00", 4)
    [backfill] = fake_dagster.backfills.values()
    assert sorted(backfill.partitions) == body["partitions"]
    # two ranges of adjacent partitions: two runs, one after the other
    assert body["eta_basis"].endswith("times 2 runs (one per range of adjacent partitions)")
    assert body["eta_s"] == pytest.approx(20.0, abs=1.0)


def test_fresh_means_no_source_row_past_the_served_watermark_whatever_the_age(
        client: Client, agent: dict[str, str], fake_dagster: FakeDagster, api_settings: Settings) -> None:
    _serve(api_settings, "2025-01-07T12:00:00", ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-07"])
    for body in ({}, {"max_age_s": 0}):
        r = client.post(VISITS_REFRESH, json=body or None, headers=agent)
        assert r.status_code == 200, r.text
        fresh = r.json()
        assert fresh["outcome"] == "already_fresh"
        assert (fresh["newer_rows"], fresh["served_watermark"], fresh["source_watermark"]) == (
            0, "2025-01-07T12:00:00", "2025-01-07T12:00:00")
    assert not fake_dagster.runs
    assert not fake_dagster.backfills


def test_a_late_row_in_an_old_partition_rewrites_that_partition_although_the_sync_is_recent(
        client: Client, agent: dict[str, str], fake_dagster: FakeDagster, api_settings: Settings) -> None:
    _serve(api_settings, "2025-01-07T12:00:00", ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-07"])
    source_sql(api_settings, f"INSERT INTO {VISITS_SOURCE} VALUES (5, '2025-01-02', '2025-02-01 00:00:00')")
    r = client.post(VISITS_REFRESH, headers=agent)
    assert r.status_code == 202, r.text
    body = r.json()
    assert (body["outcome"], body["kind"], body["partitions"], body["newer_rows"]) == (
        "started", "run", ["2025-01-02"], 1)
    [run] = fake_dagster.runs.values()
    assert run.partition == "2025-01-02"
    again = client.post(VISITS_REFRESH, headers=agent).json()  # the same change: join the same job
    assert (again["outcome"], again["job_id"]) == ("existing_job", body["job_id"])


def test_rows_only_in_the_current_window_are_reported_not_launched(
        client: Client, agent: dict[str, str], fake_dagster: FakeDagster, api_settings: Settings) -> None:
    _serve(api_settings, "2025-01-07T12:00:00", DAYS[:7])
    source_sql(api_settings, f"INSERT INTO {VISITS_SOURCE} VALUES (6, '2025-01-11', '2025-02-01 00:00:00')")  # not listed yet
    r = client.post(VISITS_REFRESH, headers=agent)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["outcome"] == "already_fresh"
    assert body["newer_rows"] == 1
    assert "no partition that can be materialized yet" in body["note"]
    assert not fake_dagster.runs
    assert not fake_dagster.backfills


def test_a_row_moved_out_of_every_partition_rewrites_the_partition_still_serving_it(
        client: Client, agent: dict[str, str], fake_dagster: FakeDagster, api_settings: Settings) -> None:
    """The row now lies in no partition (a NULL day), so no partition was named: the refresh answered
    ``already_fresh`` and the old day kept serving it. The served version says where its key is."""
    with write_version(api_settings.served_path, VISITS, copy_previous=False) as pending:
        pending.con.execute("CREATE TABLE data AS SELECT ID, CAST(DAY AS DATE) AS DAY, CAST(U AS TIMESTAMP) AS UPDATED_AT "
                            "FROM (VALUES (1, '2025-01-01', '2025-01-01 12:00:00'), (2, '2025-01-02', '2025-01-02 12:00:00'), "
                            "(3, '2025-01-03', '2025-01-03 12:00:00'), (4, '2025-01-07', '2025-01-07 12:00:00')) t(ID, DAY, U)")
        publish(api_settings.served_path, pending, strategy="incremental", row_count=4,
                columns=[Column("ID", "INTEGER"), Column("DAY", "DATE"), Column("UPDATED_AT", "TIMESTAMP")],
                partitions={k: {"rows": 1} for k in ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-07"]},
                watermark="2025-01-07T12:00:00", extra={"watermark_type": "TIMESTAMP"})
    source_sql(api_settings, f"UPDATE {VISITS_SOURCE} SET DAY = NULL, UPDATED_AT = '2025-02-01 00:00:00' WHERE ID = 2")
    r = client.post(VISITS_REFRESH, headers=agent)
    assert r.status_code == 202, r.text
    body = r.json()
    assert (body["outcome"], body["kind"], body["partitions"], body["newer_rows"]) == ("started", "run", ["2025-01-02"], 1)
    assert "1 served row(s) no longer lie in their partition" in body["note"]
    [run] = fake_dagster.runs.values()
    assert run.partition == "2025-01-02"


def test_a_dropped_source_is_a_clear_409_and_starts_no_run(client: Client, agent: dict[str, str],
                                                            fake_dagster: FakeDagster, api_settings: Settings) -> None:
    """No run can bring newer rows from a table that is gone: the refresh says so (never
    ``already_fresh``, never a run that can only fail), and names the cause."""
    source_sql(api_settings, f"DROP TABLE {VISITS_SOURCE}")
    r = client.post(VISITS_REFRESH, headers=agent)
    assert_error(r, 409, rule="source_missing")
    assert "does not exist in the source" in r.json()["error"]["message"]
    assert not fake_dagster.runs


SNAPS = "demo.synctest.snaps"


@pytest.fixture
def snap_agent(client: Client, admin_headers: dict[str, str], make_swarm: Callable[..., dict[str, Any]],
               agent_headers: Callable[..., dict[str, str]], api_settings: Settings) -> dict[str, str]:
    """SNAPS (three rows) registered as a snapshot table, and an agent granted it."""
    source_sql(api_settings, f"CREATE OR REPLACE TABLE DEMO.{SCHEMA}.SNAPS (ID NUMBER(10,0))",
               f"INSERT INTO DEMO.{SCHEMA}.SNAPS VALUES (1), (2), (3)")
    r = client.post("/api/v1/sync/tables/register", headers=admin_headers,
                    json=register_body("snaps", strategy="snapshot", freshness="1h"))
    assert r.status_code == 201, r.text
    return agent_headers(make_swarm([SNAPS])["id"])


def test_a_snapshot_is_not_fresh_once_the_source_lost_rows(client: Client, snap_agent: dict[str, str],
                                                           fake_dagster: FakeDagster, api_settings: Settings) -> None:
    today = dt.datetime.now(dt.UTC).date().isoformat()
    fake_dagster.partition_keys["demo/synctest/snaps"] = [today]
    with write_version(api_settings.served_path, SNAPS, copy_previous=False) as pending:
        pending.con.execute("CREATE TABLE data AS SELECT 1 AS ID")
        publish(api_settings.served_path, pending, strategy="snapshot", row_count=3, columns=[Column("ID", "INTEGER")],
                partitions={today: {"rows": 3}})
    url = f"/api/v1/data/tables/{SNAPS}/refresh"
    assert client.post(url, headers=snap_agent).json()["outcome"] == "already_fresh"
    source_sql(api_settings, f"DELETE FROM DEMO.{SCHEMA}.SNAPS WHERE ID = 2")
    body = client.post(url, headers=snap_agent).json()
    assert (body["outcome"], body["partitions"]) == ("started", [today])
    [run] = fake_dagster.runs.values()
    assert run.partition == today
