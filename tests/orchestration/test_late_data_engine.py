"""Late rows and updates in partitioned incremental tables: which partitions changed, and the rewrite.

``shared.changes.scan`` is asked against the fakesnow server, and the partitions it
names are written by the engine (no Dagster: the e2e module drives the same path through
the API and real Dagster processes). After each round the served table must equal the
source in count, key set and newest cursor, with no key served twice.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from shared import changes
from shared.registry import RegisteredTable
from shared.served import Column, Manifest
from shared.served_storage import ServedStore
from shared.settings import Settings
from tests.orchestration.conftest import Source, current, rows, sync

NOW = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC)


def _visits(source: Source, name: str = "VISITS", *, days: int = 20, per_day: int = 5) -> None:
    """VISIT_ID 1.., VISIT_DATE from 2025-01-01, UPDATED_AT = the visit day at noon."""
    source.sql(f"CREATE TABLE {source.table(name)} (VISIT_ID NUMBER(10,0) NOT NULL, VISIT_DATE DATE NOT NULL, "
               "UPDATED_AT TIMESTAMP_NTZ NOT NULL, V VARCHAR)")
    source.sql(
        f"INSERT INTO {source.table(name)} SELECT n + 1, DATEADD(day, FLOOR(n / {per_day}), CAST('2025-01-01' AS DATE)), "
        f"DATEADD(hour, 12, CAST(DATEADD(day, FLOOR(n / {per_day}), CAST('2025-01-01' AS DATE)) AS TIMESTAMP_NTZ)), 'v0' "
        f"FROM (SELECT seq4() AS n FROM TABLE(GENERATOR(ROWCOUNT => {days * per_day})))")


def _register(source: Source, name: str = "VISITS", **extra: Any) -> RegisteredTable:
    raw: dict[str, Any] = {"strategy": "incremental", "incremental_key": "UPDATED_AT", "primary_key": ["VISIT_ID"],
                           "partitioning": {"kind": "daily", "column": "VISIT_DATE", "start": "2025-01-01"}, **extra}
    return source.register(name, **raw)


def _scan(source: Source, settings: Settings, table: RegisteredTable) -> changes.SourceChanges:
    return changes.scan(source.con, table, current(settings, table), now=NOW,
                        served_file=ServedStore(settings.served_path).local_path)


def _assert_served_equals_source(source: Source, settings: Settings, table: RegisteredTable) -> None:
    src = source.sql(f"SELECT count(*), max(UPDATED_AT) FROM {source.table(table.table)}")[0]
    src_keys = {r[0] for r in source.sql(f"SELECT VISIT_ID FROM {source.table(table.table)}")}
    served_count, served_max, dupes = rows(settings, table, "SELECT count(*), max(UPDATED_AT), count(*) - count(DISTINCT "
                                                             "VISIT_ID) FROM data")[0]
    served_keys = {r[0] for r in rows(settings, table, "SELECT VISIT_ID FROM data")}
    assert dupes == 0
    assert (served_count, served_max) == (src[0], src[1])
    assert served_keys == src_keys
    manifest = current(settings, table)
    assert manifest is not None
    assert manifest.watermark == src[1].isoformat()
    # served rows sit in the partition the source says (moved rows left their old partition)
    placed = rows(settings, table, "SELECT VISIT_ID, VISIT_DATE FROM data ORDER BY 1")
    assert placed == sorted(source.sql(f"SELECT VISIT_ID, VISIT_DATE FROM {source.table(table.table)}"))


def _refresh(source: Source, settings: Settings, table: RegisteredTable) -> changes.SourceChanges:
    found = _scan(source, settings, table)
    if found.partitions:
        sync(table, settings, source, partition_keys=found.partitions, now=NOW)
    return found


def test_first_scan_names_every_partition_with_rows_and_then_nothing_is_newer(source: Source,
                                                                             sync_settings: Settings) -> None:
    _visits(source, days=4)
    table = _register(source)
    first = _scan(source, sync_settings, table)
    assert first.partitions == ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04"]
    assert (first.served_watermark, first.newer_rows, first.fresh) == (None, 20, False)
    sync(table, sync_settings, source, partition_keys=first.partitions, now=NOW)
    _assert_served_equals_source(source, sync_settings, table)
    again = _scan(source, sync_settings, table)
    assert again.fresh
    assert (again.partitions, again.newer_rows) == ([], 0)
    assert again.served_watermark == again.source_newest == "2025-01-04T12:00:00"


def test_late_rows_updates_and_moves_rewrite_exactly_their_partitions(source: Source, sync_settings: Settings) -> None:
    _visits(source)
    table = _register(source)
    _refresh(source, sync_settings, table)
    t = source.table("VISITS")

    # late rows in the last two days of data, with a newer cursor
    source.sql(f"INSERT INTO {t} SELECT 1000 + seq4(), CASE WHEN seq4() % 2 = 0 THEN CAST('2025-01-19' AS DATE) "
               "ELSE CAST('2025-01-20' AS DATE) END, CAST('2025-02-10 08:00:00' AS TIMESTAMP_NTZ), 'late' "
               "FROM TABLE(GENERATOR(ROWCOUNT => 30))")
    found = _refresh(source, sync_settings, table)
    assert found.partitions == ["2025-01-19", "2025-01-20"]
    assert found.newer_rows == 30
    _assert_served_equals_source(source, sync_settings, table)

    # updates spread over many days (every third visit)
    source.sql(f"UPDATE {t} SET V = 'upd', UPDATED_AT = CAST('2025-02-11 09:30:00' AS TIMESTAMP_NTZ) "
               "WHERE VISIT_ID % 3 = 0 AND VISIT_ID < 1000")
    found = _refresh(source, sync_settings, table)
    expected = sorted({r[0].isoformat() for r in source.sql(f"SELECT DISTINCT VISIT_DATE FROM {t} WHERE V = 'upd'")})
    assert found.partitions == expected
    assert len(expected) == 20
    _assert_served_equals_source(source, sync_settings, table)
    assert rows(sync_settings, table, "SELECT count(*) FROM data WHERE V = 'upd'") == \
        source.sql(f"SELECT count(*) FROM {t} WHERE V = 'upd'")

    # rows move between partitions: only their new partition is named; their old copies go
    source.sql(f"UPDATE {t} SET VISIT_DATE = CAST('2025-01-05' AS DATE), "
               "UPDATED_AT = CAST('2025-02-12 10:00:00' AS TIMESTAMP_NTZ) WHERE VISIT_ID IN (1, 2, 96)")
    found = _refresh(source, sync_settings, table)
    assert found.partitions == ["2025-01-05"]
    _assert_served_equals_source(source, sync_settings, table)
    assert _refresh(source, sync_settings, table).fresh


def test_a_moved_key_never_stays_in_its_old_partition_even_with_a_higher_served_cursor(
        source: Source, sync_settings: Settings) -> None:
    """The source is the truth for a key written by a partition rewrite, whatever its cursor says."""
    _visits(source, days=3)
    table = _register(source)
    _refresh(source, sync_settings, table)
    t = source.table("VISITS")
    # key 1 moves from 01-01 to 01-03 while its cursor goes *back*; another row of 01-03 changes
    source.sql(f"UPDATE {t} SET VISIT_DATE = CAST('2025-01-03' AS DATE), "
               "UPDATED_AT = CAST('2024-12-01 00:00:00' AS TIMESTAMP_NTZ) WHERE VISIT_ID = 1")
    source.sql(f"UPDATE {t} SET UPDATED_AT = CAST('2025-02-01 00:00:00' AS TIMESTAMP_NTZ) WHERE VISIT_ID = 11")
    sync(table, sync_settings, source, partition_keys=["2025-01-03"], now=NOW)
    assert rows(sync_settings, table, "SELECT VISIT_DATE FROM data WHERE VISIT_ID = 1") == [(dt.date(2025, 1, 3),)]
    assert rows(sync_settings, table, "SELECT count(*) - count(DISTINCT VISIT_ID) FROM data") == [(0,)]


def test_lookback_and_rows_outside_every_partition(source: Source, sync_settings: Settings) -> None:
    _visits(source, days=5)
    table = _register(source, lookback="1d")
    _refresh(source, sync_settings, table)  # watermark 2025-01-05 12:00
    t = source.table("VISITS")
    # committed late with a cursor inside the lookback (older than the watermark): found by the lookback only
    source.sql(f"INSERT INTO {t} VALUES (500, '2025-01-02', '2025-01-05 01:00:00', 'late-commit')")
    # a row in the current, incomplete window and one before the first partition: no partition holds them
    source.sql(f"INSERT INTO {t} VALUES (501, '2025-03-01', '2025-03-01 10:00:00', 'today'), "
               "(502, '2024-12-31', '2025-03-01 10:00:00', 'before start')")
    found = _scan(source, sync_settings, table)
    # the two unplaceable rows (strictly newer than the watermark) and the late commit inside the lookback
    assert found.newer_rows == 3
    assert found.unplaced_rows == 2
    assert "2025-01-02" in found.partitions  # the lookback re-reads partitions with rows from 2025-01-04 12:00 on
    assert set(found.partitions) == {"2025-01-02", "2025-01-05"}


def test_new_windows_with_rows_are_named_whatever_their_cursor(source: Source, sync_settings: Settings) -> None:
    _visits(source, days=3)
    table = _register(source)
    _refresh(source, sync_settings, table)
    source.sql(f"INSERT INTO {source.table('VISITS')} VALUES (600, '2025-01-07', '2024-06-01 00:00:00', 'old cursor')")
    found = _scan(source, sync_settings, table)
    assert found.new == ("2025-01-07",)
    assert found.partitions == ["2025-01-07"]
    assert found.newer_rows == 0


def test_hourly_tz_and_static_layouts_with_hostile_names(source: Source, sync_settings: Settings) -> None:
    """Quoted identifiers (a reserved word as the cursor), a TIMESTAMP_TZ partition column bucketed in UTC,
    and static partitions by value."""
    t = source.table("EV")
    source.sql(f'CREATE TABLE {t} (ID NUMBER(10,0), TS TIMESTAMP_TZ, "ORDER" NUMBER(10,0), REGION VARCHAR)')
    source.sql(f"INSERT INTO {t} VALUES (1, '2025-01-01 00:30:00', 1, 'eu'), (2, '2025-01-01 05:10:00', 2, 'us'), "
               "(3, '2025-01-01 05:50:00', 3, 'xx')")
    hourly = source.register("EV", strategy="incremental", incremental_key="ORDER", primary_key=["ID"],
                             partitioning={"kind": "hourly", "column": "TS", "start": "2025-01-01"})
    assert _scan(source, sync_settings, hourly).partitions == ["2025-01-01-00:00", "2025-01-01-05:00"]
    static = source.register("EV", strategy="incremental", incremental_key="ORDER", primary_key=["ID"],
                             partitioning={"kind": "static", "column": "REGION", "values": ["us", "eu"]})
    found = _scan(source, sync_settings, static)
    assert found.partitions == ["eu", "us"]
    assert found.unplaced_rows == 1  # 'xx' is no registered value
    manifest = Manifest(table_key=static.key, version="v", file="f", published_at=NOW.isoformat(), strategy="incremental",
                        row_count=3, bytes=0, columns=[Column("ORDER", "DECIMAL(10,0)")], partitions={"eu": {}, "us": {}},
                        watermark="1", extra={"watermark_type": "DECIMAL(10,0)"})
    later = changes.scan(source.con, static, manifest, now=NOW)
    assert (later.partitions, later.newer_rows, later.source_newest) == (["us"], 2, "3")


def test_contiguous_ranges_split_at_gaps_and_at_the_run_size() -> None:
    from shared.registry import build_registration

    daily = build_registration({"schema_name": "S", "table_name": "T", "strategy": "incremental", "incremental_key": "U",
                                "primary_key": ["ID"], "partitioning": {"kind": "daily", "column": "D",
                                                                        "start": "2025-01-01"}}, default_database="DB")
    keys = ["2025-01-03", "2025-01-01", "2025-01-02", "2025-01-05", "2025-02-01"]
    assert changes.contiguous_ranges(daily, keys) == [("2025-01-01", "2025-01-03"), ("2025-01-05", "2025-01-05"),
                                                       ("2025-02-01", "2025-02-01")]
    month = [f"2025-01-{d:02d}" for d in range(1, 32)]
    assert changes.contiguous_ranges(daily, month, max_len=30) == [("2025-01-01", "2025-01-30"),
                                                                   ("2025-01-31", "2025-01-31")]
    static = build_registration({"schema_name": "S", "table_name": "T", "partitioning": {
        "kind": "static", "column": "R", "values": ["b", "a", "c"]}}, default_database="DB")
    assert changes.contiguous_ranges(static, ["c", "b"]) == [("b", "b"), ("c", "c")]
    assert changes.contiguous_ranges(static, ["a", "b"]) == [("b", "a")]


@pytest.mark.parametrize("kind", ["full", "snapshot"])
def test_tables_without_a_cursor_are_not_scanned(kind: str) -> None:
    from shared.registry import build_registration

    table = build_registration({"schema_name": "S", "table_name": "T", "strategy": kind}, default_database="DB")
    assert not changes.cursor_based(table)
    with pytest.raises(changes.ChangeScanError):
        changes.scan(object(), table, None)


@pytest.mark.parametrize("cursor_type", ["TIMESTAMP_LTZ", "TIMESTAMP_TZ", "NUMBER(18,0)", "DATE"])
def test_cursor_types_round_trip_through_the_served_watermark(source: Source, sync_settings: Settings,
                                                               cursor_type: str) -> None:
    """The watermark the engine writes is read back and compared in the source's own type."""
    t = source.table("CT")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), D DATE, U {cursor_type})")
    first = "1" if cursor_type.startswith("NUMBER") else "'2025-01-02'"
    later = "5" if cursor_type.startswith("NUMBER") else "'2025-02-02'"
    source.sql(f"INSERT INTO {t} VALUES (1, '2025-01-01', {first}), (2, '2025-01-02', {first}), (3, '2025-01-03', {first})")
    table = source.register("CT", strategy="incremental", incremental_key="U", primary_key=["ID"],
                            partitioning={"kind": "daily", "column": "D", "start": "2025-01-01"})
    sync(table, sync_settings, source, partition_keys=_scan(source, sync_settings, table).partitions, now=NOW)
    assert _scan(source, sync_settings, table).fresh
    source.sql(f"UPDATE {t} SET U = {later} WHERE ID = 2")
    found = _scan(source, sync_settings, table)
    assert (found.partitions, found.newer_rows) == (["2025-01-02"], 1)
    sync(table, sync_settings, source, partition_keys=found.partitions, now=NOW)
    after = _scan(source, sync_settings, table)
    assert after.fresh
    assert after.served_watermark == after.source_newest
