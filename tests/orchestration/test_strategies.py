"""Strategies end to end through Dagster: full, partitioned (daily/hourly/monthly/static), incremental, snapshot."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from orchestration.sync.verdicts import PRIMARY_KEY_CHECK, BlockingCheckError
from shared import partitions as sp
from shared.served import read_current
from shared.settings import Settings
from tests.orchestration.conftest import Source, current, materialization, materialize, rows, sync

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def _hourly_rows(source: Source, name: str, *, days: int = 4) -> None:
    """One row per hour from 2025-01-01, ids 1..24*days."""
    source.sql(f"CREATE TABLE {source.table(name)} (ID NUMBER(10,0) NOT NULL, TS TIMESTAMP_NTZ NOT NULL, AMOUNT NUMBER(10,2))")
    source.sql(
        f"INSERT INTO {source.table(name)} SELECT n + 1, DATEADD(hour, n, CAST('2025-01-01' AS TIMESTAMP_NTZ)), n / 4 "
        f"FROM (SELECT seq4() AS n FROM TABLE(GENERATOR(ROWCOUNT => {24 * days})))"
    )


def _days(settings: Settings, table: Any) -> dict[str, int]:
    return dict(rows(settings, table, "SELECT strftime(TS, '%Y-%m-%d') AS d, count(*) FROM data GROUP BY d ORDER BY d"))


def test_daily_partition_is_exactly_its_window_and_a_rerun_replaces_it(source: Source, sync_settings: Settings) -> None:
    _hourly_rows(source, "EV")
    table = source.register("EV", partitioning={"kind": "daily", "column": "TS", "start": "2025-01-01"}, primary_key=["ID"])
    result = materialize(table, sync_settings, partition_key="2025-01-02")
    assert result.success
    meta = materialization(result)
    assert (meta["dagster/row_count"], meta["source_rows"], meta["rows_written"]) == (24, 24, 24)
    assert _days(sync_settings, table) == {"2025-01-02": 24}

    source.sql(f"INSERT INTO {source.table('EV')} VALUES (1000, '2025-01-02 12:30:00', 1)")
    for _ in range(2):  # re-running replaces the window, never duplicates it
        assert materialize(table, sync_settings, partition_key="2025-01-02").success
        assert _days(sync_settings, table) == {"2025-01-02": 25}
    assert materialize(table, sync_settings, partition_key="2025-01-01").success
    assert _days(sync_settings, table) == {"2025-01-01": 24, "2025-01-02": 25}
    assert rows(sync_settings, table, "SELECT count(*) - count(DISTINCT ID) FROM data") == [(0,)]
    manifest = current(sync_settings, table)
    assert manifest is not None
    assert sorted(manifest.partitions) == ["2025-01-01", "2025-01-02"]
    assert manifest.partitions["2025-01-02"]["rows"] == 25


def test_a_partition_range_runs_in_one_run_packing_small_partitions(source: Source, sync_settings: Settings) -> None:
    _hourly_rows(source, "EV")
    table = source.register("EV", partitioning={"kind": "daily", "column": "TS", "start": "2025-01-01"})
    tags = {RANGE_START: "2025-01-01", RANGE_END: "2025-01-03"}
    result = materialize(table, sync_settings, tags=tags)
    assert result.success
    mats = result.get_asset_materialization_events()
    assert sorted(m.partition for m in mats) == ["2025-01-01", "2025-01-02", "2025-01-03"]  # one event per partition
    meta = {k: v.value for k, v in mats[0].materialization.metadata.items()}
    assert (meta["rows_written"], meta["slices"]) == (72, 1)  # three small partitions, one source query
    assert _days(sync_settings, table) == {"2025-01-01": 24, "2025-01-02": 24, "2025-01-03": 24}

    meta = {k: v.value for k, v in materialize(table, sync_settings, tags=tags, slice_rows=30)
            .get_asset_materialization_events()[0].materialization.metadata.items()}
    assert (meta["rows_written"], meta["slices"]) == (72, 3)  # 24 + 24 > 30: one partition per slice
    meta = {k: v.value for k, v in materialize(table, sync_settings, tags=tags, slice_rows=10)
            .get_asset_materialization_events()[0].materialization.metadata.items()}
    assert meta["rows_written"] == 72
    assert meta["slices"] >= 9  # each partition is bigger than a slice: split by key ranges
    assert _days(sync_settings, table) == {"2025-01-01": 24, "2025-01-02": 24, "2025-01-03": 24}
    manifest = current(sync_settings, table)
    assert manifest is not None
    assert {k: v["rows"] for k, v in manifest.partitions.items()} == {"2025-01-01": 24, "2025-01-02": 24, "2025-01-03": 24}


def test_hourly_and_monthly_windows_are_exact(source: Source, sync_settings: Settings) -> None:
    _hourly_rows(source, "EV", days=40)
    hourly = source.register("EV", partitioning={"kind": "hourly", "column": "TS", "start": "2025-01-01"})
    outcome = sync(hourly, sync_settings, source, partition_keys=["2025-01-02-05:00"])
    assert rows(sync_settings, hourly, "SELECT ID, TS FROM data") == [(30, dt.datetime(2025, 1, 2, 5))]
    assert outcome.partition_keys == ["2025-01-02-05:00"]

    monthly = dataclasses.replace(hourly, table="EV", partition_kind="monthly")
    sync(monthly, sync_settings, source, partition_keys=["2025-02-01"], full_refresh=True)
    assert rows(sync_settings, monthly, "SELECT count(*), min(TS), max(TS) FROM data") == [
        (9 * 24, dt.datetime(2025, 2, 1), dt.datetime(2025, 2, 9, 23))]


def test_static_partitions_copy_one_value_each(source: Source, sync_settings: Settings) -> None:
    source.sql(f"CREATE TABLE {source.table('SALES')} (ID NUMBER(10,0), REGION VARCHAR(8), AMOUNT NUMBER(10,2))")
    source.sql(f"INSERT INTO {source.table('SALES')} VALUES (1, 'eu', 1.5), (2, 'us', 2.5), (3, 'eu', 3.5), (4, 'apac', 4)")
    table = source.register("SALES", partitioning={"kind": "static", "column": "REGION", "values": ["eu", "us"]})
    assert materialize(table, sync_settings, partition_key="eu").success
    assert rows(sync_settings, table, "SELECT ID FROM data ORDER BY ID") == [(1,), (3,)]
    assert materialize(table, sync_settings, partition_key="us").success
    assert materialize(table, sync_settings, partition_key="eu").success
    assert rows(sync_settings, table, "SELECT ID FROM data ORDER BY ID") == [(1,), (2,), (3,)]


def test_full_table_is_sliced_by_key_ranges_and_replaced(source: Source, sync_settings: Settings) -> None:
    name = source.table("WIDE")
    source.sql(f"CREATE TABLE {name} (K NUMBER(10,0), NAME VARCHAR)")
    source.sql(f"INSERT INTO {name} SELECT IFF(MOD(n, 10) = 0, NULL, n), 'row ' || n "
               "FROM (SELECT seq4() AS n FROM TABLE(GENERATOR(ROWCOUNT => 1000)))")
    table = source.register("WIDE")
    result = materialize(table, sync_settings, slice_rows=150)
    meta = materialization(result)
    assert meta["slices"] >= 8  # ranges of K plus one slice for K IS NULL
    assert meta["dagster/row_count"] == 1000
    assert rows(sync_settings, table, "SELECT count(*) FROM data WHERE K IS NULL") == [(100,)]

    source.sql(f"DELETE FROM {name} WHERE K < 200")
    source.sql(f"INSERT INTO {name} VALUES (5000, 'new'), (NULL, 'new null')")
    assert materialize(table, sync_settings, slice_rows=150).success
    want = sorted(source.sql(f"SELECT K, NAME FROM {name}"), key=str)
    assert sorted(rows(sync_settings, table, "SELECT K, NAME FROM data"), key=str) == want


def test_incremental_merges_on_the_key_keeping_the_highest_cursor(source: Source, sync_settings: Settings) -> None:
    name = source.table("INC")
    source.sql(f"CREATE TABLE {name} (ID NUMBER(10,0) NOT NULL, UPDATED_AT TIMESTAMP_NTZ NOT NULL, V VARCHAR)")
    source.sql(f"INSERT INTO {name} SELECT n, DATEADD(hour, n, CAST('2025-01-01' AS TIMESTAMP_NTZ)), 'v' || n "
               "FROM (SELECT seq4() + 1 AS n FROM TABLE(GENERATOR(ROWCOUNT => 10)))")  # ID n at n:00
    source.sql(f"INSERT INTO {name} VALUES (3, '2025-01-01 00:30', 'older 3')")  # duplicate key, lower cursor
    table = source.register("INC", strategy="incremental", incremental_key="UPDATED_AT", primary_key=["ID"], lookback="1h")
    meta = materialization(materialize(table, sync_settings))
    assert meta["watermark"] == "2025-01-01T10:00:00"
    assert rows(sync_settings, table, "SELECT count(*), count(DISTINCT ID) FROM data") == [(10, 10)]
    assert rows(sync_settings, table, "SELECT V FROM data WHERE ID = 3") == [("v3",)]

    source.sql(f"UPDATE {name} SET V = 'v5 new', UPDATED_AT = '2025-01-01 10:20' WHERE ID = 5")
    source.sql(f"INSERT INTO {name} VALUES (11, '2025-01-01 10:30', 'first 11'), (11, '2025-01-01 10:31', 'second 11'), "
               "(12, '2025-01-01 09:40', 'late, inside the lookback'), (13, '2025-01-01 08:00', 'late, outside the lookback')")
    meta = materialization(materialize(table, sync_settings))
    assert meta["watermark"] == "2025-01-01T10:31:00"
    assert meta["rows_written"] == 6  # IDs 9 and 10 (inside the lookback), 5, 11 twice, 12: the delta only
    got = dict(rows(sync_settings, table, "SELECT ID, V FROM data"))
    assert got[5] == "v5 new"
    assert got[11] == "second 11"
    assert got[12] == "late, inside the lookback"
    assert 13 not in got
    assert len(got) == 12
    assert rows(sync_settings, table, "SELECT count(*) - count(DISTINCT ID) FROM data") == [(0,)]
    assert current(sync_settings, table).watermark == "2025-01-01T10:31:00"  # type: ignore[union-attr]


def test_snapshot_appends_a_dated_copy_and_replaces_todays(source: Source, sync_settings: Settings) -> None:
    name = source.table("PRICES")
    source.sql(f"CREATE TABLE {name} (ID NUMBER(10,0), PRICE NUMBER(10,2))")
    source.sql(f"INSERT INTO {name} VALUES (1, 1.00), (2, 2.00)")
    table = dataclasses.replace(source.register("PRICES", strategy="snapshot"), registered_at="2025-03-01")
    day1, day2 = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC), dt.datetime(2025, 3, 2, 12, tzinfo=dt.UTC)
    sync(table, sync_settings, source, partition_keys=["2025-03-01"], now=day1)
    source.sql(f"UPDATE {name} SET PRICE = 1.50 WHERE ID = 1")
    source.sql(f"INSERT INTO {name} VALUES (3, 3.00)")
    for _ in range(2):  # re-taking today's snapshot replaces it
        sync(table, sync_settings, source, partition_keys=["2025-03-02"], now=day2)
    got = rows(sync_settings, table, "SELECT strftime(_SNAPSHOT_DATE, '%Y-%m-%d'), ID, PRICE FROM data ORDER BY 1, 2")
    assert [(d, i, float(p)) for d, i, p in got] == [
        ("2025-03-01", 1, 1.0), ("2025-03-01", 2, 2.0), ("2025-03-02", 1, 1.5), ("2025-03-02", 2, 2.0), ("2025-03-02", 3, 3.0)]
    with pytest.raises(sp.PartitionKeyError, match=r"only today's partition \(2025-03-02\)"):
        sync(table, sync_settings, source, partition_keys=["2025-03-01"], now=day2)


def test_snapshot_asset_takes_todays_partition(source: Source, sync_settings: Settings) -> None:
    source.sql(f"CREATE TABLE {source.table('P')} (ID NUMBER(10,0))")
    source.sql(f"INSERT INTO {source.table('P')} VALUES (1), (2)")
    table = source.register("P", strategy="snapshot")
    today = sp.latest_key(table)
    meta = materialization(materialize(table, sync_settings, partition_key=today))
    assert meta["dagster/row_count"] == 2
    assert meta["mode"] == "snapshot"


def _refused_duplicates(run: Callable[[], object]) -> int:
    """Duplicate keys a run found; a blocking check refuses to publish, so they come back in the error."""
    with pytest.raises(BlockingCheckError) as refused:
        run()
    [verdict] = [v for v in refused.value.verdicts if v.name == PRIMARY_KEY_CHECK]
    assert not verdict.passed
    assert verdict.blocking
    return int(verdict.metadata["duplicate_rows"])


def test_primary_key_duplicates_are_found_in_and_across_the_written_window(source: Source, sync_settings: Settings) -> None:
    name = source.table("DUP")
    source.sql(f"CREATE TABLE {name} (ID NUMBER(10,0), D DATE)")
    source.sql(f"INSERT INTO {name} VALUES (1, '2025-01-01'), (2, '2025-01-01'), (2, '2025-01-02'), (3, '2025-01-02')")
    table = source.register("DUP", primary_key=["ID"], partitioning={"kind": "daily", "column": "D", "start": "2025-01-01"})
    assert sync(table, sync_settings, source, partition_keys=["2025-01-01"]).duplicate_keys == 0
    version = read_current(sync_settings.served_path, table.key)
    # ID 2 in both days
    assert _refused_duplicates(lambda: sync(table, sync_settings, source, partition_keys=["2025-01-02"])) == 1
    source.sql(f"INSERT INTO {name} VALUES (3, '2025-01-02')")
    # and twice inside
    assert _refused_duplicates(lambda: sync(table, sync_settings, source, partition_keys=["2025-01-02"])) == 2
    assert read_current(sync_settings.served_path, table.key) == version, "refused versions are never published"

    snap = dataclasses.replace(source.register("DUP", strategy="snapshot", primary_key=["ID"]), registered_at="2025-03-01")
    first = _refused_duplicates(lambda: sync(snap, sync_settings, source, partition_keys=["2025-03-01"],
                                             now=dt.datetime(2025, 3, 1, 9, tzinfo=dt.UTC), full_refresh=True))
    assert first == 2  # ID 2 and ID 3 each twice in the source: refused
    source.sql(f"DELETE FROM {name}")
    source.sql(f"INSERT INTO {name} VALUES (1, '2025-01-01'), (2, '2025-01-01'), (3, '2025-01-02')")
    day1 = sync(snap, sync_settings, source, partition_keys=["2025-03-01"], now=dt.datetime(2025, 3, 1, 9, tzinfo=dt.UTC),
                full_refresh=True)
    day2 = sync(snap, sync_settings, source, partition_keys=["2025-03-02"], now=dt.datetime(2025, 3, 2, 9, tzinfo=dt.UTC))
    # Unique per snapshot day, not across days: every ID is served twice now, and that is not a duplicate.
    assert day1.duplicate_keys == day2.duplicate_keys == 0
    assert day2.manifest.row_count == 6


def test_a_source_written_during_the_sync_still_publishes(source: Source, sync_settings: Settings) -> None:
    """Rows inserted between the plan's count and the extraction are served, and the row-count
    check recounts the source instead of refusing a correct copy of a moving table."""
    from contextlib import contextmanager

    from orchestration.sync.engine import SyncRequest, sync_table
    from orchestration.sync.verdicts import ROW_COUNT_CHECK
    from tests.orchestration.conftest import connector

    name = source.table("GROW")
    source.sql(f"CREATE TABLE {name} (ID NUMBER(10,0), D DATE)")
    source.sql(f"INSERT INTO {name} VALUES (1, '2025-01-01'), (2, '2025-01-01')")
    table = source.register("GROW", primary_key=["ID"])
    base = connector(source.port, source.database)
    calls: list[int] = []

    @contextmanager
    def connect():  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:  # the first extraction session: a writer got in after the plan counted
            source.sql(f"INSERT INTO {name} VALUES (3, '2025-01-02')")
        with base() as con:
            yield con

    out = sync_table(SyncRequest(table=table, connect=connect, served_root=sync_settings.served_path))
    [count] = [v for v in out.verdicts if v.name == ROW_COUNT_CHECK]
    assert count.passed
    assert count.metadata == {"source_rows": 2, "served_rows": 3, "source_rows_after_sync": 3}
    assert out.manifest.row_count == 3


def test_a_partition_written_during_the_sync_is_recounted_without_planning_again(
        source: Source, sync_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The recount of a partition run counts the windows the plan decided; the source's
    columns are read once, before the write, never again under the table's lock."""
    from contextlib import contextmanager

    from orchestration.sync import plan
    from orchestration.sync.engine import SyncRequest, sync_table
    from orchestration.sync.verdicts import ROW_COUNT_CHECK
    from tests.orchestration.conftest import connector

    name = source.table("GROWP")
    source.sql(f"CREATE TABLE {name} (ID NUMBER(10,0), D DATE)")
    source.sql(f"INSERT INTO {name} VALUES (1, '2025-01-01'), (2, '2025-01-01'), (9, '2025-01-02')")
    table = source.register("GROWP", primary_key=["ID"], partitioning={"kind": "daily", "column": "D", "start": "2025-01-01"})
    base = connector(source.port, source.database)
    sessions: list[int] = []
    column_reads: list[str] = []
    real_columns = plan.table_columns
    monkeypatch.setattr(plan, "table_columns", lambda con, reg: column_reads.append(reg.table) or real_columns(con, reg))

    @contextmanager
    def connect():  # type: ignore[no-untyped-def]
        sessions.append(1)
        if len(sessions) == 2:  # the first extraction session: a writer got in after the plan counted
            source.sql(f"INSERT INTO {name} VALUES (3, '2025-01-01'), (10, '2025-01-02')")
        with base() as con:
            yield con

    out = sync_table(SyncRequest(table=table, connect=connect, served_root=sync_settings.served_path,
                                 partition_keys=["2025-01-01"]))
    [count] = [v for v in out.verdicts if v.name == ROW_COUNT_CHECK]
    assert count.passed
    assert count.metadata == {"source_rows": 2, "served_rows": 3, "source_rows_after_sync": 3}, \
        "the recount covers the run's window only, not the row added to another partition"
    assert column_reads == ["GROWP"], "the source is planned once"


def test_row_count_tolerates_a_moving_source_but_not_lost_rows() -> None:
    from orchestration.sync.verdicts import row_count_passes

    assert row_count_passes(10, 10, None)
    assert row_count_passes(12, 10, 15), "a read at an instant between the two counts"
    assert row_count_passes(12, 15, 10), "rows deleted while syncing"
    assert not row_count_passes(9, 10, None)
    assert not row_count_passes(9, 10, 10), "the source did not move: a row was lost"
    assert not row_count_passes(16, 10, 15)


def test_a_refused_range_run_names_the_partitions_that_fail(source: Source, sync_settings: Settings) -> None:
    name = source.table("RANGED")
    source.sql(f"CREATE TABLE {name} (ID NUMBER(10,0), D DATE)")
    source.sql(f"INSERT INTO {name} VALUES (1, '2025-01-01'), (2, '2025-01-02'), (2, '2025-01-02'), (3, '2025-01-03')")
    table = source.register("RANGED", primary_key=["ID"],
                            partitioning={"kind": "daily", "column": "D", "start": "2025-01-01"})
    with pytest.raises(BlockingCheckError) as refused:
        sync(table, sync_settings, source, partition_keys=["2025-01-01", "2025-01-02", "2025-01-03"])
    assert refused.value.partitions == ["2025-01-02"]
    assert "failing partition(s): 2025-01-02" in str(refused.value)
    assert "re-run them on their own" in str(refused.value)
    assert read_current(sync_settings.served_path, table.key) is None
    ok = sync(table, sync_settings, source, partition_keys=["2025-01-01"])  # the others do publish on their own
    assert ok.manifest.row_count == 1


def test_a_partition_run_checks_its_written_rows_once_against_the_kept_ones(source: Source,
                                                                          sync_settings: Settings) -> None:
    name = source.table("DAYS")
    source.sql(f"CREATE TABLE {name} (ID NUMBER(10,0), D DATE)")
    source.sql(f"INSERT INTO {name} VALUES (1, '2025-01-01'), (2, '2025-01-01'), (3, '2025-01-02')")
    table = source.register("DAYS", partitioning={"kind": "daily", "column": "D", "start": "2025-01-01"},
                            primary_key=["ID"])
    sync(table, sync_settings, source, partition_keys=["2025-01-01"])
    outcome = sync(table, sync_settings, source, partition_keys=["2025-01-02"])
    assert (outcome.served_scope_rows, outcome.duplicate_keys) == (1, 0)
    assert "profile of partition 2025-01-02 (1 rows)" in (outcome.profile_markdown or "")
    # The temp copy of the written rows is never part of the published file.
    assert rows(sync_settings, table, "SELECT table_name FROM information_schema.tables") == [("data",)]
    source.sql(f"INSERT INTO {name} VALUES (2, '2025-01-02')")  # a key already served in another partition
    with pytest.raises(BlockingCheckError) as refused:
        sync(table, sync_settings, source, partition_keys=["2025-01-02"])
    [pk] = [v for v in refused.value.verdicts if v.name == PRIMARY_KEY_CHECK]
    assert (pk.metadata["duplicate_rows"], pk.metadata["served_in_other_partitions"]) == (1, 1)
    assert rows(sync_settings, table, "SELECT ID FROM data ORDER BY ID") == [(1,), (2,), (3,)]
