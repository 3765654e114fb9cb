"""The source-change sensor on partitioned, cursor-based tables: it requests the partitions with rows
past the served watermark (as ranges of adjacent partitions), not the newest partition."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import dagster as dg

from orchestration import sensors
from shared import changes
from shared.dagster_names import RANGE_END_TAG, RANGE_START_TAG
from shared.registry import RegisteredTable, build_registration
from shared.served_storage import ServedStore
from shared.settings import Settings
from tests.orchestration.conftest import Source, sync
from tests.orchestration.test_sensors import SourceResource

NOW = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC)


def _incremental(table: str = "visits", **extra: Any) -> RegisteredTable:
    raw = {"table_name": table, "schema_name": "public", "strategy": "incremental", "incremental_key": "UPDATED_AT",
           "primary_key": ["ID"], "partitioning": {"kind": "daily", "column": "D", "start": "2025-01-01"}, **extra}
    return build_registration(raw, default_database="demo")


def _found(*partitions: str) -> changes.SourceChanges:
    return changes.SourceChanges(served_watermark="2025-01-01T00:00:00", source_newest="2025-02-01T00:00:00",
                                 newer_rows=len(partitions), changed=tuple(partitions))


def _evaluate(table: RegisteredTable, scan: Any) -> dg.SensorResult:
    sig = {("DEMO", "PUBLIC", table.table): "1970|2"}
    return sensors.evaluate_source_changes([table], json.dumps({table.key: "1970|1"}), sig, now=NOW, scan=scan)


def test_changed_partitions_are_requested_as_ranges_of_adjacent_partitions() -> None:
    table = _incremental()
    result = _evaluate(table, lambda t: _found("2025-01-02", "2025-01-03", "2025-01-04", "2025-01-09"))
    reqs = result.run_requests
    assert len(reqs) == 2
    rng, single = reqs
    assert (rng.tags[RANGE_START_TAG], rng.tags[RANGE_END_TAG]) == ("2025-01-02", "2025-01-04")
    assert rng.partition_key is None
    assert rng.run_key == f"{table.key}|1970|2|2025-01-02..2025-01-04"
    assert single.partition_key == "2025-01-09"
    assert single.run_key == f"{table.key}|1970|2|2025-01-09"
    assert all(r.asset_selection == [dg.AssetKey(table.asset_key_path)] for r in reqs)
    assert json.loads(result.cursor) == {table.key: "1970|2"}


def test_long_ranges_are_split_at_the_run_size() -> None:
    days = [(dt.date(2025, 1, 1) + dt.timedelta(days=i)).isoformat() for i in range(45)]
    reqs = _evaluate(_incremental(), lambda t: _found(*days)).run_requests
    assert [(r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in reqs] == [
        ("2025-01-01", "2025-01-30"), ("2025-01-31", "2025-02-14")]


def test_no_newer_row_requests_nothing_and_says_why() -> None:
    table = _incremental()
    result = _evaluate(table, lambda t: changes.SourceChanges("2025-02-01T00:00:00", "2025-02-01T00:00:00", 0))
    assert not result.run_requests
    assert "no row is newer than the served watermark" in result.skip_reason.skip_message
    assert json.loads(result.cursor) == {table.key: "1970|2"}


def test_a_failed_scan_keeps_the_previous_signature_so_the_next_tick_asks_again() -> None:
    table = _incremental()

    def scan(t: RegisteredTable) -> changes.SourceChanges:
        raise changes.ChangeScanError("cursor column UPDATED_AT does not exist")

    result = _evaluate(table, scan)
    assert not result.run_requests
    assert "could not ask the source" in result.skip_reason.skip_message
    assert "UPDATED_AT" in result.skip_reason.skip_message
    assert json.loads(result.cursor) == {table.key: "1970|1"}


def test_tables_without_a_cursor_keep_the_newest_partition() -> None:
    full = build_registration({"table_name": "ev", "schema_name": "public",
                               "partitioning": {"kind": "daily", "column": "D", "start": "2025-01-01"}},
                              default_database="demo")
    scanned: list[str] = []
    result = _evaluate(full, lambda t: scanned.append(t.key) or _found("2025-01-02"))
    [req] = result.run_requests
    assert req.partition_key == "2025-02-28"
    assert scanned == []


def test_sensor_asks_the_stand_in_and_requests_the_late_partitions(source: Source, sync_settings: Settings,
                                                                    tmp_path: Path) -> None:
    """A real tick: the served watermark from the manifest, the partitions from the stand-in."""
    t = source.table("VISITS")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), D DATE, UPDATED_AT TIMESTAMP_NTZ)")
    source.sql(f"INSERT INTO {t} VALUES (1, '2025-01-01', '2025-01-01 10:00:00'), (2, '2025-01-02', "
               "'2025-01-02 10:00:00'), (3, '2025-01-03', '2025-01-03 10:00:00'), (4, '2025-01-04', '2025-01-04 10:00:00')")
    table = source.register("VISITS", strategy="incremental", incremental_key="UPDATED_AT", primary_key=["ID"],
                            partitioning={"kind": "daily", "column": "D", "start": "2025-01-01"})
    sync(table, sync_settings, source, partition_keys=["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04"])
    sensor = sensors.build_source_change_sensor(tables=[table], served=lambda: ServedStore(sync_settings.served_path))
    resources = {"snowflake": SourceResource(port=source.port)}
    with dg.build_sensor_context(cursor=None, resources=resources) as ctx:
        baseline = sensor(ctx)
    source.sql(f"INSERT INTO {t} VALUES (5, '2025-01-01', '2025-02-01 00:00:00')")  # a late row in the oldest day
    source.sql(f"UPDATE {t} SET UPDATED_AT = '2025-02-01 00:00:00' WHERE ID = 3")
    with dg.build_sensor_context(cursor=baseline.cursor, resources=resources) as ctx:
        result = sensor(ctx)
    assert sorted(r.partition_key for r in result.run_requests) == ["2025-01-01", "2025-01-03"]


def test_sensor_requests_the_partitions_of_rows_moved_out_or_without_a_cursor(source: Source, sync_settings: Settings,
                                                                              tmp_path: Path) -> None:
    """Dagster's path asks the same scan: a row moved to a NULL day (with a newer cursor) named no
    partition, so the day that served it was never requested; a row inserted without a cursor
    changed nothing the scan saw. Both days are requested, and their runs serve the source."""
    t = source.table("VISITS")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), D DATE, UPDATED_AT TIMESTAMP_NTZ)")
    source.sql(f"INSERT INTO {t} VALUES (1, '2025-01-01', '2025-01-01 10:00:00'), (2, '2025-01-02', "
               "'2025-01-02 10:00:00'), (3, '2025-01-03', '2025-01-03 10:00:00')")
    table = source.register("VISITS", strategy="incremental", incremental_key="UPDATED_AT", primary_key=["ID"],
                            partitioning={"kind": "daily", "column": "D", "start": "2025-01-01"})
    days = ["2025-01-01", "2025-01-02", "2025-01-03"]
    sync(table, sync_settings, source, partition_keys=days)
    sensor = sensors.build_source_change_sensor(tables=[table], served=lambda: ServedStore(sync_settings.served_path))
    resources = {"snowflake": SourceResource(port=source.port)}
    with dg.build_sensor_context(cursor=None, resources=resources) as ctx:
        baseline = sensor(ctx)
    source.sql(f"UPDATE {t} SET D = NULL, UPDATED_AT = '2025-02-01 00:00:00' WHERE ID = 1")
    source.sql(f"INSERT INTO {t} VALUES (4, '2025-01-03', NULL)")
    with dg.build_sensor_context(cursor=baseline.cursor, resources=resources) as ctx:
        result = sensor(ctx)
    requested = sorted(r.partition_key for r in result.run_requests)
    assert requested == ["2025-01-01", "2025-01-03"]
    sync(table, sync_settings, source, partition_keys=requested)
    served = {r[0] for r in source.sql(f"SELECT ID FROM {t} WHERE D IS NOT NULL")}
    assert served == {2, 3, 4}
    from tests.orchestration.conftest import rows

    assert {r[0] for r in rows(sync_settings, table, "SELECT ID FROM data")} == served
