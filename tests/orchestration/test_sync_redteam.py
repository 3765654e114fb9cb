"""Hostile source tables against real materializations: the served data equals the source, or the run fails.

The tests seed the stand-in through the real connector (one writes a Parquet file source),
materialize in-process with the project's resources and compare the served DuckDB table
with the source exactly (rows, values, NULLs). A run that cannot be correct must fail
naming the cause and leave the last good version served.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from shared.settings import Settings
from tests.orchestration.conftest import Source, current, failure_message, materialize, rows


def _source_rows(source: Source, name: str, where: str = "TRUE") -> list[tuple[Any, ...]]:
    return [tuple(r) for r in source.sql(f"SELECT * FROM {source.table(name)} WHERE {where} ORDER BY 1")]


def _ok(result: Any) -> None:
    assert result.success, failure_message(result)


# -- registered columns gone from the source ------------------------------------------------------------


@pytest.mark.parametrize(("dropped", "role"), [("ID", "primary key"), ("UPDATED_AT", "incremental key"),
                                               ("DAY", "partition")])
def test_a_registered_column_dropped_in_the_source_fails_the_run_and_keeps_the_served_version(
        source: Source, sync_settings: Settings, dropped: str, role: str) -> None:
    """Other dropped columns are drift (kept, NULL from then on); these decide which rows are written.
    A primary key served as NULL merged every new row into one, and the run succeeded."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), UPDATED_AT TIMESTAMP_NTZ, DAY DATE, V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, '2025-01-01 00:00:00', '2025-01-01', 'a'), "
               "(2, '2025-01-01 01:00:00', '2025-01-01', 'b')")
    part = {"partitioning": {"kind": "daily", "column": "DAY", "start": "2025-01-01"}} if dropped == "DAY" else {}
    table = source.register("T", strategy="incremental", incremental_key="UPDATED_AT", primary_key=["ID"], **part)
    key = "2025-01-01" if part else None
    _ok(materialize(table, sync_settings, partition_key=key))
    before = current(sync_settings, table)
    assert before is not None
    served = rows(sync_settings, table)
    source.sql(f"ALTER TABLE {t} DROP COLUMN {dropped}")
    source.sql(f"INSERT INTO {t} SELECT * FROM {t}")  # new rows, every one of them without the column
    failed = materialize(table, sync_settings, partition_key=key)
    message = failure_message(failed)
    assert f"registered {role} column {dropped} " in message, message
    assert "no longer has" in message
    after = current(sync_settings, table)
    assert after is not None
    assert after.version == before.version, "the last good version stays served"
    assert rows(sync_settings, table) == served


# -- static partitions on typed columns -------------------------------------------------------------------


@pytest.mark.parametrize(("ddl", "values", "keys"), [
    ("NUMBER(10,0)", ["1", "2"], ["01", "2"]),
    ("NUMBER(10,2)", ["1.5", "2"], ["1.5", "2.00"]),
    ("BOOLEAN", ["TRUE", "FALSE"], ["TRUE", "false"]),
    ("DATE", ["'2025-01-01'", "'2025-01-02'"], ["2025-01-01", "2025-01-02"]),
    ("VARCHAR", ["'it''s'", "'a/b é \"q\"'"], ["it's", 'a/b é "q"']),
], ids=["number-leading-zero", "decimal", "boolean", "date", "text"])
def test_static_partitions_select_the_rows_the_source_selects_whatever_the_column_type(
        source: Source, sync_settings: Settings, ddl: str, values: list[str], keys: list[str]) -> None:
    """The served side compared a static value as text (CAST(column AS VARCHAR) = value), the source
    as the column's type: the source counted rows the served side never found, and every run of
    '01', '1.5' or 'TRUE' was refused. Each partition twice: a re-run replaces, never duplicates."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), P {ddl}, V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, {values[0]}, 'a'), (2, {values[1]}, 'b'), (3, {values[0]}, NULL), "
               "(4, NULL, 'unplaced')")
    table = source.register("T", partitioning={"kind": "static", "column": "P", "values": keys})
    for _ in range(2):
        for k in keys:
            _ok(materialize(table, sync_settings, partition_key=k))
    assert rows(sync_settings, table) == _source_rows(source, "T", "P IS NOT NULL")
    manifest = current(sync_settings, table)
    assert manifest is not None
    assert {k: v["rows"] for k, v in manifest.partitions.items()} == {keys[0]: 2, keys[1]: 1}


# -- hourly partitions on a DATE column -----------------------------------------------------------------


def test_hourly_partitions_of_a_date_column_serve_the_day_in_its_first_hour(source: Source,
                                                                             sync_settings: Settings) -> None:
    """Snowflake compares a DATE with an hour's bounds as the day's midnight, so the day's rows are
    in hour 00; the served side floored both bounds to the day and found none (every run refused)."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), DAY DATE)")
    source.sql(f"INSERT INTO {t} VALUES (1, '2025-01-01'), (2, '2025-01-01'), (3, '2025-01-02')")
    table = source.register("T", partitioning={"kind": "hourly", "column": "DAY", "start": "2025-01-01"})
    for k in ["2025-01-01-00:00", "2025-01-01-01:00", "2025-01-01-23:00", "2025-01-02-00:00", "2025-01-01-00:00"]:
        _ok(materialize(table, sync_settings, partition_key=k))
    assert rows(sync_settings, table) == _source_rows(source, "T")
    manifest = current(sync_settings, table)
    assert manifest is not None
    assert manifest.partitions["2025-01-01-00:00"]["rows"] == 2
    assert manifest.partitions["2025-01-01-01:00"]["rows"] == 0


def test_the_change_scan_finds_static_partitions_by_the_column_type(source: Source, sync_settings: Settings) -> None:
    """A refresh rewrites the partitions the scan names: a late row in '1.5' (served as 1.50) was
    counted as unplaced, so the refresh never rewrote it and the served partition stayed stale."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), P NUMBER(10,2), UPDATED_AT NUMBER(10,0), V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, 1.5, 10, 'a'), (2, 2, 11, 'b')")
    table = source.register("T", strategy="incremental", incremental_key="UPDATED_AT", primary_key=["ID"],
                            partitioning={"kind": "static", "column": "P", "values": ["1.5", "2", "3"]})
    for k in ["1.5", "2"]:
        _ok(materialize(table, sync_settings, partition_key=k))
    source.sql(f"INSERT INTO {t} VALUES (3, 1.50, 20, 'late'), (4, 7, 21, 'unlisted')")
    found = _scan(source, sync_settings, table)
    assert (found.partitions, found.unplaced_rows, found.newer_rows) == (["1.5"], 1, 2)
    for k in found.partitions:
        _ok(materialize(table, sync_settings, partition_key=k))
    assert rows(sync_settings, table) == _source_rows(source, "T", "P IN (1.5, 2)")


# -- the registration changed since the served version was written ---------------------------------------


def test_a_new_cursor_column_is_not_read_from_the_old_cursors_watermark(source: Source, sync_settings: Settings) -> None:
    """Re-registered with another cursor, a merge started from the old cursor's watermark: rows
    whose new cursor lies below it were never read, and the run succeeded with stale rows."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), UPDATED_AT NUMBER(10,0), VERSION NUMBER(10,0), V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, 1000, 1, 'a'), (2, 1001, 1, 'b')")
    first = source.register("T", strategy="incremental", incremental_key="UPDATED_AT", primary_key=["ID"])
    _ok(materialize(first, sync_settings))
    source.sql(f"UPDATE {t} SET VERSION = 2, V = 'a2' WHERE ID = 1")
    again = source.register("T", strategy="incremental", incremental_key="VERSION", primary_key=["ID"])
    _ok(materialize(again, sync_settings))
    assert rows(sync_settings, again) == _source_rows(source, "T")
    manifest = current(sync_settings, again)
    assert manifest is not None
    assert manifest.watermark == "2"
    from shared import changes

    assert changes.watermark_floor(again, manifest) == 2
    assert changes.watermark_floor(first, manifest) is None, "the old registration's cursor has no watermark here"


def test_a_new_primary_key_is_checked_over_every_served_row(source: Source, sync_settings: Settings) -> None:
    """Re-registered with another key, a merge checked only the keys it staged: served rows that
    repeat the new key stayed, and the table was served as unique on it."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), CODE VARCHAR, UPDATED_AT NUMBER(10,0))")
    source.sql(f"INSERT INTO {t} VALUES (1, 'x', 1), (2, 'x', 2), (3, 'y', 3)")
    first = source.register("T", strategy="incremental", incremental_key="UPDATED_AT", primary_key=["ID"])
    _ok(materialize(first, sync_settings))
    source.sql(f"INSERT INTO {t} VALUES (4, 'z', 4)")
    again = source.register("T", strategy="incremental", incremental_key="UPDATED_AT", primary_key=["CODE"])
    _ok(materialize(again, sync_settings))
    # what a first sync under the new key serves: the newest row per CODE
    assert rows(sync_settings, again) == [(2, "x", 2), (3, "y", 3), (4, "z", 4)]
    manifest = current(sync_settings, again)
    assert manifest is not None
    assert manifest.extra["duplicates_removed"] == 1


def test_a_new_primary_key_of_a_partitioned_table_is_checked_over_every_partition(
        source: Source, sync_settings: Settings) -> None:
    """A partition run checks its own keys against the other partitions, but not the other
    partitions among themselves: under a new key, their duplicates went unseen."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), CODE VARCHAR, DAY DATE)")
    source.sql(f"INSERT INTO {t} VALUES (1, 'x', '2025-01-01'), (2, 'x', '2025-01-01'), (3, 'y', '2025-01-02')")
    part = {"kind": "daily", "column": "DAY", "start": "2025-01-01"}
    first = source.register("T", primary_key=["ID"], partitioning=part)
    for k in ["2025-01-01", "2025-01-02"]:
        _ok(materialize(first, sync_settings, partition_key=k))
    served = current(sync_settings, first)
    again = source.register("T", primary_key=["CODE"], partitioning=part)
    refused = materialize(again, sync_settings, partition_key="2025-01-02")
    assert "primary_key_unique failed (duplicate_rows=1)" in failure_message(refused)
    after = current(sync_settings, again)
    assert after is not None
    assert served is not None
    assert after.version == served.version


def test_a_table_turned_into_a_snapshot_serves_only_snapshots(source: Source, sync_settings: Settings) -> None:
    """A snapshot run copied the full copy served before and added its day: the old rows were
    served beside the snapshot with no snapshot date, every key twice."""
    from orchestration.sync.load import SNAPSHOT_COLUMN
    from shared import partitions as sp

    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, 'a'), (2, 'b')")
    _ok(materialize(source.register("T", primary_key=["ID"]), sync_settings))
    snap = source.register("T", strategy="snapshot", primary_key=["ID"])
    day = sp.latest_key(snap)
    assert day is not None
    for _ in range(2):
        _ok(materialize(snap, sync_settings, partition_key=day))
    served = rows(sync_settings, snap, f'SELECT "{SNAPSHOT_COLUMN}", ID, V FROM data ORDER BY ID')
    assert [(str(d), i, v) for d, i, v in served] == [(day, 1, "a"), (day, 2, "b")]
    manifest = current(sync_settings, snap)
    assert manifest is not None
    assert list(manifest.partitions) == [day]

    # and back: a full copy serves the table once, without the snapshot date
    _ok(materialize(source.register("T", strategy="incremental", incremental_key="ID", primary_key=["ID"]),
                    sync_settings))
    assert rows(sync_settings, snap, "SELECT * FROM data ORDER BY 1") == _source_rows(source, "T")


# -- rows without a cursor -------------------------------------------------------------------------------


def test_rows_without_a_cursor_are_merged_and_seen_as_changes(source: Source, sync_settings: Settings) -> None:
    """A merge read ``cursor >= floor``, which no NULL satisfies: a row inserted without a cursor
    after the first sync was never served, and the change scan called the table fresh."""
    from shared import changes

    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), U NUMBER(10,0), V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, 10, 'a'), (2, NULL, 'b')")
    table = source.register("T", strategy="incremental", incremental_key="U", primary_key=["ID"])
    _ok(materialize(table, sync_settings))
    assert rows(sync_settings, table) == _source_rows(source, "T")
    assert changes.scan(source.con, table, current(sync_settings, table)).fresh

    source.sql(f"INSERT INTO {t} VALUES (3, NULL, 'c')")
    source.sql(f"UPDATE {t} SET V = 'b2' WHERE ID = 2")
    found = changes.scan(source.con, table, current(sync_settings, table))
    assert not found.fresh
    assert found.newer_rows == 1
    _ok(materialize(table, sync_settings))
    assert rows(sync_settings, table) == _source_rows(source, "T")
    assert changes.scan(source.con, table, current(sync_settings, table)).fresh

    # a key served with a cursor keeps it against a copy without one (NULL is the lowest cursor)
    source.sql(f"INSERT INTO {t} VALUES (1, NULL, 'older'), (4, 12, 'd')")
    _ok(materialize(table, sync_settings))
    assert rows(sync_settings, table) == [(1, 10, "a"), (2, None, "b2"), (3, None, "c"), (4, 12, "d")]


# -- drift ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["merge", "partition"])
def test_a_column_renamed_only_in_case_keeps_its_values_and_is_reported(source: Source, sync_settings: Settings,
                                                                        layout: str) -> None:
    """DuckDB compares names without case: the renamed column was added beside the old one, which
    DuckDB refuses, and every run failed with DuckDB's own error. It is now renamed in place."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), U NUMBER(10,0), DAY DATE, V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, 1, '2025-01-01', 'a'), (2, 2, '2025-01-02', 'b')")
    part = {"partitioning": {"kind": "daily", "column": "DAY", "start": "2025-01-01"}} if layout == "partition" else {}
    table = source.register("T", strategy="incremental", incremental_key="U", primary_key=["ID"], **part)
    keys = ["2025-01-01", "2025-01-02"] if part else [None]
    for k in keys:
        _ok(materialize(table, sync_settings, partition_key=k))
    source.sql(f'ALTER TABLE {t} RENAME COLUMN V TO "v"')
    source.sql(f"INSERT INTO {t} VALUES (3, 3, '2025-01-02', 'c')")
    result = materialize(table, sync_settings, partition_key=keys[-1])
    _ok(result)
    manifest = current(sync_settings, table)
    assert manifest is not None
    assert [c.name for c in manifest.columns] == ["ID", "U", "DAY", "v"]
    assert manifest.extra["drift"]["renamed"] == ["V -> v"]
    assert rows(sync_settings, table, 'SELECT ID, U, DAY, "v" FROM data ORDER BY 1') == _source_rows(source, "T")
    checks = {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
              for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    assert checks["no_unexpected_schema_drift"] is False, "the rename is reported (a warning)"


# -- cursors dated in the future ----------------------------------------------------------------------


@pytest.mark.parametrize("ddl", ["TIMESTAMP_NTZ", "TIMESTAMP_TZ", "DATE"])
def test_a_cursor_dated_in_the_future_does_not_hide_the_rows_written_after_it(
        source: Source, sync_settings: Settings, ddl: str) -> None:
    """One row dated 2099 made the watermark 2099, so every later merge read from 2099 minus the
    lookback: rows written afterwards were never served, and the change scan called the table
    fresh. The watermark now stops at the time the source was read."""

    from shared import changes

    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), U {ddl}, V VARCHAR)")
    future = "2099-01-01 00:00:00+00:00" if ddl == "TIMESTAMP_TZ" else "2099-01-01"
    source.sql(f"INSERT INTO {t} VALUES (1, '2025-01-01', 'a'), (2, '{future}', 'b')")
    table = source.register("T", strategy="incremental", incremental_key="U", primary_key=["ID"], lookback=0)
    _ok(materialize(table, sync_settings))
    first = current(sync_settings, table)
    assert first is not None
    assert first.watermark is not None
    assert first.watermark < "2099"
    assert changes.scan(source.con, table, first).fresh, "the served row dated 2099 is no change"

    now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    stamp = now.date().isoformat() if ddl == "DATE" else now.strftime("%Y-%m-%d %H:%M:%S")
    source.sql(f"INSERT INTO {t} VALUES (3, '{stamp}{'+00:00' if ddl == 'TIMESTAMP_TZ' else ''}', 'new')")
    # (DATE: a row dated on the watermark's day is past no watermark, but it is a key new at the watermark)
    found = changes.scan(source.con, table, first)
    assert (found.fresh, found.newer_rows) == (False, 1)
    _ok(materialize(table, sync_settings))
    assert [(r[0], r[2]) for r in rows(sync_settings, table)] == [(1, "a"), (2, "b"), (3, "new")]
    assert changes.scan(source.con, table, current(sync_settings, table)).fresh


def test_a_cursor_without_an_order_is_refused_at_registration_and_by_the_run(source: Source,
                                                                             sync_settings: Settings) -> None:
    """A BOOLEAN cursor's watermark is TRUE after the first TRUE row: rows written FALSE later were
    never read, and every merge succeeded."""
    from shared import registry
    from shared.sources import table_columns

    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), FLAG BOOLEAN, V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, TRUE, 'a')")
    table = source.register("T", strategy="incremental", incremental_key="FLAG", primary_key=["ID"])
    with pytest.raises(registry.RegistrationError, match="FLAG is BOOLEAN"):
        registry.check_against_source(table, table_columns(source.con, table))
    message = failure_message(materialize(table, sync_settings))
    assert "FLAG is BOOLEAN" in message, message
    assert current(sync_settings, table) is None


@pytest.mark.parametrize("poison", ["NaN", "inf"])
def test_a_non_finite_float_cursor_does_not_hide_later_rows(source: Source, sync_settings: Settings,
                                                             poison: str) -> None:
    """NaN (and infinity) order above every number: as the watermark, every later merge read only
    rows at or above it, so rows written afterwards were never served."""
    from shared import changes

    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), U FLOAT, V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, 1.5, 'a'), (2, '{poison}', 'b')")
    table = source.register("T", strategy="incremental", incremental_key="U", primary_key=["ID"], lookback=0)
    _ok(materialize(table, sync_settings))
    first = current(sync_settings, table)
    assert first is not None
    assert first.watermark == "1.5"
    assert changes.scan(source.con, table, first).fresh
    source.sql(f"INSERT INTO {t} VALUES (3, 2.5, 'c')")
    assert changes.scan(source.con, table, first).newer_rows == 1
    _ok(materialize(table, sync_settings))
    assert [(r[0], r[2]) for r in rows(sync_settings, table)] == [(1, "a"), (2, "b"), (3, "c")]
    assert changes.scan(source.con, table, current(sync_settings, table)).fresh


# -- names holding '%' ------------------------------------------------------------------------------------


PCT_TABLE = '"50% off"'
PCT_LAYOUTS = {
    "full": {"primary_key": ['"id%s"']},
    "incremental": {"strategy": "incremental", "incremental_key": '"u%d"', "primary_key": ['"id%s"']},
    "daily": {"strategy": "incremental", "incremental_key": '"u%d"', "primary_key": ['"id%s"'],
              "partitioning": {"kind": "daily", "column": '"d%"', "start": "2025-01-01"}},
    "static": {"partitioning": {"kind": "static", "column": '"v%%"', "values": ["a", "b%s"]}},
}


@pytest.mark.parametrize("layout", list(PCT_LAYOUTS))
def test_names_holding_a_percent_sign_sync_in_every_layout(source: Source, sync_settings: Settings,
                                                           layout: str) -> None:
    """With bound values the connector formats a statement with Python's ``%``: a quoted name
    holding ``%`` ('50% off', 'id%s') failed every run that bound a value (a key range, a
    window, the cursor delta) with 'not enough arguments for format string'."""
    from shared import changes

    t = f"{source.database}.S.{PCT_TABLE}"
    source.sql(f'CREATE TABLE {t} ("id%s" NUMBER(10,0), "u%d" NUMBER(10,0), "d%" DATE, "v%%" VARCHAR)')
    source.sql(f"INSERT INTO {t} VALUES (1, 1, '2025-01-01', 'a'), (2, 2, '2025-01-01', 'b%s'), "
               "(3, 3, '2025-01-02', 'a')")
    table = source.register(PCT_TABLE, **PCT_LAYOUTS[layout])
    keys = {"daily": ["2025-01-01", "2025-01-02"], "static": ["a", "b%s"]}.get(layout, [None])
    for _ in range(2):
        for k in keys:
            _ok(materialize(table, sync_settings, partition_key=k, slice_rows=1))  # key ranges bind values too
    assert rows(sync_settings, table) == [tuple(r) for r in source.sql(f"SELECT * FROM {t} ORDER BY 1")]
    if table.cursor_column:
        source.sql(f"INSERT INTO {t} VALUES (4, 4, '2025-01-02', 'c')")
        found = changes.scan(source.con, table, current(sync_settings, table))
        assert found.newer_rows == 1
        assert found.partitions == (["2025-01-02"] if layout == "daily" else [])


def test_a_file_source_reads_names_holding_a_percent_sign(settings: Settings, tmp_path: Any,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """File sources turned every '%s' into a value marker, inside quoted names too."""
    import dataclasses

    import duckdb

    from shared import registry
    from shared.settings import SourceSettings, get_settings

    roots = tmp_path / "files"
    roots.mkdir()
    monkeypatch.setenv("SOURCE_FILE_ROOTS", str(roots))
    get_settings.cache_clear()
    file_settings = dataclasses.replace(settings, sources=SourceSettings(file_roots=str(roots)))
    con = duckdb.connect()
    con.execute(f"""COPY (SELECT i AS "id%s", i * 10 AS "u%d", 'x%' || i AS "v%%" FROM range(1, 8) t(i))
                    TO '{roots / "p.parquet"}' (FORMAT parquet)""")
    con.close()
    try:
        table = registry.build_registration(
            {"schema_name": "FILES", "table_name": "T", "source": {"kind": "parquet", "path": str(roots / "p.parquet")},
             "strategy": "incremental", "incremental_key": '"u%d"', "primary_key": ['"id%s"']}, default_database="DEMO")
        _ok(materialize(table, file_settings, slice_rows=2))
        assert rows(file_settings, table) == [(i, i * 10, f"x%{i}") for i in range(1, 8)]
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize("special", ["NaN", "inf", "-inf"])
def test_a_float_column_with_non_finite_values_can_split_the_scan(source: Source, sync_settings: Settings,
                                                                  special: str) -> None:
    """The scan of a big table is cut into ranges of an ordered column; a FLOAT column holding NaN
    or an infinity has no width to cut, and the run failed computing the cut points."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (X FLOAT, V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1.5, 'a'), ('{special}', 'b'), (-2.25, 'c'), (NULL, 'd'), (7, 'e')")
    table = source.register("T")
    _ok(materialize(table, sync_settings, slice_rows=2))
    def text(values: list[tuple[Any, ...]]) -> list[tuple[str | None, str]]:  # NaN equals no NaN; its text does
        return [(None if x is None else repr(float(x)), v) for x, v in values]

    served = rows(sync_settings, table, "SELECT X, V FROM data ORDER BY V")
    assert text(served) == text(source.sql(f"SELECT X, V FROM {t} ORDER BY V"))
    assert len(served) == 5


# -- cases that held (regressions) ------------------------------------------------------------------------


def test_tz_partitions_place_each_row_by_its_utc_instant_at_every_edge(source: Source, sync_settings: Settings) -> None:
    """Local days differ from UTC days; midnight belongs to the day it starts; the last microsecond
    to the day before."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), TS TIMESTAMP_TZ)")
    source.sql(f"INSERT INTO {t} VALUES (1, '2025-01-01 23:30:00-08:00'), (2, '2025-01-02 00:30:00+01:00'), "
               "(3, '2025-01-02 00:00:00+00:00'), (4, '2025-01-01 23:59:59.999999+00:00'), (5, NULL)")
    table = source.register("T", partitioning={"kind": "daily", "column": "TS", "start": "2025-01-01"})
    for k in ["2025-01-01", "2025-01-02", "2025-01-01"]:
        _ok(materialize(table, sync_settings, partition_key=k))
    manifest = current(sync_settings, table)
    assert manifest is not None
    assert {k: v["rows"] for k, v in manifest.partitions.items()} == {"2025-01-01": 2, "2025-01-02": 2}
    by_day = rows(sync_settings, table, "SELECT CAST(TS AS DATE), list(ID ORDER BY ID) FROM data GROUP BY 1 ORDER BY 1")
    assert [(str(d), ids) for d, ids in by_day] == [("2025-01-01", [2, 4]), ("2025-01-02", [1, 3])]


@pytest.mark.parametrize("layout", ["merge", "partition"])
def test_composite_keys_with_null_parts_merge_as_one_key(source: Source, sync_settings: Settings, layout: str) -> None:
    """NULL parts compare equal (IS NOT DISTINCT FROM) in the merge, the deduplication and the checks alike."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (A NUMBER(10,0), B VARCHAR, U NUMBER(10,0), DAY DATE, V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, NULL, 1, '2025-01-01', 'a'), (1, 'x', 2, '2025-01-01', 'b'), "
               "(NULL, NULL, 3, '2025-01-01', 'c')")
    part = {"partitioning": {"kind": "daily", "column": "DAY", "start": "2025-01-01"}} if layout == "partition" else {}
    table = source.register("T", strategy="incremental", incremental_key="U", primary_key=["A", "B"], **part)
    key = "2025-01-01" if part else None
    _ok(materialize(table, sync_settings, partition_key=key))
    source.sql(f"UPDATE {t} SET U = 4, V = 'a2' WHERE A = 1 AND B IS NULL")
    source.sql(f"UPDATE {t} SET U = 5, V = 'c2' WHERE A IS NULL")
    _ok(materialize(table, sync_settings, partition_key=key))
    assert rows(sync_settings, table, "SELECT A, B, U, V FROM data ORDER BY U") == [
        (1, "x", 2, "b"), (1, None, 4, "a2"), (None, None, 5, "c2")]


@pytest.mark.parametrize("strategy", ["full", "snapshot"])
def test_a_table_emptied_in_the_source_is_served_empty(source: Source, sync_settings: Settings, strategy: str) -> None:
    from shared import partitions as sp

    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, 'a'), (2, 'b')")
    table = source.register("T", strategy=strategy, primary_key=["ID"])
    key = sp.latest_key(table) if strategy == "snapshot" else None
    _ok(materialize(table, sync_settings, partition_key=key))
    source.sql(f"DELETE FROM {t}")
    _ok(materialize(table, sync_settings, partition_key=key))
    assert rows(sync_settings, table) == []
    manifest = current(sync_settings, table)
    assert manifest is not None
    assert manifest.row_count == 0


def test_wide_decimal_keys_are_cut_into_ranges_without_losing_a_row(source: Source, sync_settings: Settings) -> None:
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(37,0), K NUMBER(38,10), V VARCHAR)")
    for i in range(9):
        source.sql(f"INSERT INTO {t} VALUES ({10**36 + i * 7 * 10**34}, {i}123456789012345678901234567.0123456789, '{i}')")
    for pk in (["ID"], ["K"]):
        _ok(materialize(source.register("T", primary_key=pk), sync_settings, slice_rows=2, full_refresh=True))
        assert rows(sync_settings, source.register("T")) == _source_rows(source, "T")


def test_a_variant_key_merges_equal_json_as_one_key(source: Source, sync_settings: Settings) -> None:
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (K VARIANT, U NUMBER(10,0), V VARCHAR)")
    source.sql(f"INSERT INTO {t} SELECT PARSE_JSON('{{\"a\": 1}}'), 1, 'x'")
    source.sql(f"INSERT INTO {t} SELECT PARSE_JSON('[1, 2]'), 2, 'y'")
    table = source.register("T", strategy="incremental", incremental_key="U", primary_key=["K"])
    _ok(materialize(table, sync_settings))
    source.sql(f"INSERT INTO {t} SELECT PARSE_JSON('{{\"a\":1}}'), 3, 'x2'")
    _ok(materialize(table, sync_settings))
    assert rows(sync_settings, table, "SELECT CAST(K AS VARCHAR), U, V FROM data ORDER BY U") == [
        ("[1,2]", 2, "y"), ('{"a":1}', 3, "x2")]


# -- duplicated keys that tie on the cursor ----------------------------------------------------------------


@pytest.mark.parametrize("layout", ["merge", "partition"])
def test_different_rows_of_a_key_tying_on_the_cursor_are_refused_and_identical_ones_kept_once(
        source: Source, sync_settings: Settings, layout: str) -> None:
    """'Keep the highest cursor' names no row when two different rows share it: the engine kept an
    arbitrary one (possibly another on the next run) and published. Identical copies are one row."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), U NUMBER(10,0), DAY DATE, V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, 5, '2025-01-01', 'a'), (1, 5, '2025-01-01', 'a'), (1, 4, '2025-01-01', 'o'), "
               "(2, 1, '2025-01-01', 'b')")
    part = {"partitioning": {"kind": "daily", "column": "DAY", "start": "2025-01-01"}} if layout == "partition" else {}
    table = source.register("T", strategy="incremental", incremental_key="U", primary_key=["ID"], **part)
    key = "2025-01-01" if part else None
    _ok(materialize(table, sync_settings, partition_key=key))
    assert rows(sync_settings, table) == [(1, 5, dt.date(2025, 1, 1), "a"), (2, 1, dt.date(2025, 1, 1), "b")]
    before = current(sync_settings, table)
    assert before is not None
    assert before.extra["duplicates_removed"] == 2

    source.sql(f"INSERT INTO {t} VALUES (2, 9, '2025-01-01', 'b1'), (2, 9, '2025-01-01', 'b2')")
    message = failure_message(materialize(table, sync_settings, partition_key=key))
    assert "1 primary key value(s) of (ID) have different rows sharing the newest U value" in message, message
    after = current(sync_settings, table)
    assert after is not None
    assert after.version == before.version, "the last good version stays served"


# -- a keyed row moved to another partition of a table without a cursor -----------------------------------


def test_a_moved_row_of_a_keyed_full_table_is_refused_with_the_way_out(source: Source, sync_settings: Settings) -> None:
    """Without a cursor the engine cannot tell a moved row from a duplicated key, so the run is
    refused (the last good version stays) and says which run serves the source exactly."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), DAY DATE, V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, '2025-01-01', 'a'), (2, '2025-01-02', 'b')")
    table = source.register("T", primary_key=["ID"], partitioning={"kind": "daily", "column": "DAY", "start": "2025-01-01"})
    for k in ["2025-01-01", "2025-01-02"]:
        _ok(materialize(table, sync_settings, partition_key=k))
    before = current(sync_settings, table)
    assert before is not None
    source.sql(f"UPDATE {t} SET DAY = '2025-01-02', V = 'a2' WHERE ID = 1")
    message = failure_message(materialize(table, sync_settings, partition_key="2025-01-02"))
    assert "served_in_other_partitions=1" in message, message
    assert "run those partitions in the same run" in message
    after = current(sync_settings, table)
    assert after is not None
    assert after.version == before.version

    from tests.orchestration.conftest import sync

    sync(table, sync_settings, source, partition_keys=["2025-01-01", "2025-01-02"])
    assert rows(sync_settings, table) == _source_rows(source, "T")


# -- the registration changed: partitions ----------------------------------------------------------------


def test_a_partitioned_table_registered_again_without_partitions_is_read_whole(source: Source,
                                                                                sync_settings: Settings) -> None:
    """A partitioned version holds only the partitions that ran; a merge continued from its
    watermark, so the rows of the partitions that never ran were never served."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), U NUMBER(10,0), DAY DATE)")
    source.sql(f"INSERT INTO {t} VALUES (1, 1, '2025-01-01'), (2, 2, '2025-01-02')")
    kw: dict[str, Any] = {"strategy": "incremental", "incremental_key": "U", "primary_key": ["ID"], "lookback": 0}
    partitioned = source.register("T", partitioning={"kind": "daily", "column": "DAY", "start": "2025-01-01"}, **kw)
    _ok(materialize(partitioned, sync_settings, partition_key="2025-01-02"))
    whole = source.register("T", **kw)
    _ok(materialize(whole, sync_settings))
    assert rows(sync_settings, whole) == _source_rows(source, "T")


# -- keyed rows of a partitioned incremental table moved out of every partition --------------------------


def _scan(source: Source, settings: Settings, table: Any) -> Any:
    """The change scan as the refresh and the sensor ask it: with the served version's file."""
    from shared import changes
    from shared.served_storage import ServedStore

    return changes.scan(source.con, table, current(settings, table), served_file=ServedStore(settings.served_path).local_path)


def _refresh(source: Source, settings: Settings, table: Any) -> Any:
    """What a refresh does: scan, then materialize exactly the partitions named (one run each)."""
    found = _scan(source, settings, table)
    for key in found.partitions:
        _ok(materialize(table, settings, partition_key=key))
    return found


MOVED_OUT = {  # where the row's partition column goes: no partition that can be materialized holds it
    "null": ("daily", "NULL"),
    "before-start": ("daily", "'2024-12-31'"),
    "current-window": ("daily", "'{today}'"),
    "future": ("daily", "'2099-01-01'"),
    "unlisted-static": ("static", "'2025-01-09'"),
}


@pytest.mark.parametrize("move", list(MOVED_OUT))
def test_a_key_moved_out_of_every_partition_stops_being_served_in_its_old_one(
        source: Source, sync_settings: Settings, move: str) -> None:
    """The scan placed changed rows where the source now has them: a row moved to NULL, before the
    start, past the newest complete window or to an unlisted value named no partition, so its old
    partition was never rewritten and kept serving it as if the source still had it there."""
    kind, to = MOVED_OUT[move]
    to = to.format(today=dt.datetime.now(dt.UTC).date().isoformat())
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), U NUMBER(10,0), DAY DATE, V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, 1, '2025-01-01', 'a'), (2, 2, '2025-01-01', 'b'), (3, 3, '2025-01-02', 'c')")
    part = ({"kind": "daily", "column": "DAY", "start": "2025-01-01"} if kind == "daily" else
            {"kind": "static", "column": "DAY", "values": ["2025-01-01", "2025-01-02"]})
    table = source.register("T", strategy="incremental", incremental_key="U", primary_key=["ID"], partitioning=part)
    for key in ["2025-01-01", "2025-01-02"]:
        _ok(materialize(table, sync_settings, partition_key=key))
    assert _scan(source, sync_settings, table).fresh

    source.sql(f"UPDATE {t} SET DAY = {to}, U = 10, V = 'moved' WHERE ID = 1")
    found = _refresh(source, sync_settings, table)
    assert (found.partitions, found.moved_out, found.unplaced_rows, found.newer_rows) == (["2025-01-01"], 1, 1, 1)
    placed = "DAY IN ('2025-01-01', '2025-01-02')"
    assert rows(sync_settings, table) == _source_rows(source, "T", placed) == [
        (2, 2, dt.date(2025, 1, 1), "b"), (3, 3, dt.date(2025, 1, 2), "c")]

    again = _scan(source, sync_settings, table)  # nothing left to rewrite: the row waits (or stays) unplaced
    assert (again.partitions, again.moved_out, again.unplaced_rows) == ([], 0, 1)


def test_a_tz_row_moved_past_the_newest_complete_hour_and_a_composite_key_moved_to_null_leave_their_old_hours(
        source: Source, sync_settings: Settings) -> None:
    """Hours are UTC windows of a TIMESTAMP_TZ column (a row written at +05:00 is placed by its
    instant), and a composite key with a NULL part is one key (IS NOT DISTINCT FROM) in the source's
    key query and in the served lookup alike."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (A NUMBER(10,0), B VARCHAR, U NUMBER(10,0), TS TIMESTAMP_TZ, V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, 'x', 1, '2025-01-01 01:30:00+01:00', 'a'), (1, NULL, 2, "
               "'2025-01-01 05:10:00+00:00', 'b'), (2, 'y', 3, '2025-01-01 05:20:00+00:00', 'c')")
    table = source.register("T", strategy="incremental", incremental_key="U", primary_key=["A", "B"],
                            partitioning={"kind": "hourly", "column": "TS", "start": "2025-01-01"})
    for key in ["2025-01-01-00:00", "2025-01-01-05:00"]:
        _ok(materialize(table, sync_settings, partition_key=key))
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2 + 5)).strftime("%Y-%m-%d %H:%M:%S+05:00")  # in 2 h, at +05:00
    source.sql(f"UPDATE {t} SET TS = '{later}', U = 10 WHERE B = 'x'")
    source.sql(f"UPDATE {t} SET TS = NULL, U = 11 WHERE B IS NULL")
    found = _refresh(source, sync_settings, table)
    assert (found.partitions, found.moved_out, found.unplaced_rows) == (["2025-01-01-00:00", "2025-01-01-05:00"], 2, 2)
    assert rows(sync_settings, table, "SELECT A, B, V FROM data") == [(2, "y", "c")]
    assert _scan(source, sync_settings, table).partitions == []


def test_a_key_also_placed_in_a_partition_is_served_there_and_not_named_again(source: Source,
                                                                              sync_settings: Settings) -> None:
    """A key the source holds twice, once in a partition and once in none: the partition's row is
    served, and the unplaced copy names no partition on every scan (no rewrite loop)."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), U NUMBER(10,0), DAY DATE, V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, 1, '2025-01-01', 'a'), (2, 2, '2025-01-02', 'b')")
    table = source.register("T", strategy="incremental", incremental_key="U", primary_key=["ID"],
                            partitioning={"kind": "daily", "column": "DAY", "start": "2025-01-01"})
    for key in ["2025-01-01", "2025-01-02"]:
        _ok(materialize(table, sync_settings, partition_key=key))
    source.sql(f"INSERT INTO {t} VALUES (1, 9, NULL, 'stray')")
    for _ in range(2):
        found = _refresh(source, sync_settings, table)
        assert (found.partitions, found.moved_out, found.unplaced_rows) == ([], 0, 1)
    assert rows(sync_settings, table) == [(1, 1, dt.date(2025, 1, 1), "a"), (2, 2, dt.date(2025, 1, 2), "b")]


# -- rows without a cursor in a partitioned incremental table ---------------------------------------------


def test_rows_without_a_cursor_in_a_partitioned_table_are_seen_as_changes(source: Source,
                                                                         sync_settings: Settings) -> None:
    """The scan named partitions by ``cursor > floor``, which no NULL satisfies: a row inserted, moved
    or deleted without a cursor changed nothing the scan saw, so its partition was never rewritten.
    A version now records, per partition, the source rows without a cursor it was written from."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), U NUMBER(10,0), DAY DATE, V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, 1, '2025-01-01', 'a'), (2, NULL, '2025-01-01', 'b'), "
               "(3, 3, '2025-01-02', 'c'), (4, NULL, '2025-01-03', 'd')")
    table = source.register("T", strategy="incremental", incremental_key="U", primary_key=["ID"],
                            partitioning={"kind": "daily", "column": "DAY", "start": "2025-01-01"})
    for key in ["2025-01-01", "2025-01-02", "2025-01-03"]:
        _ok(materialize(table, sync_settings, partition_key=key))
    manifest = current(sync_settings, table)
    assert manifest is not None
    assert {k: v["cursor_nulls"] for k, v in manifest.partitions.items()} == {
        "2025-01-01": 1, "2025-01-02": 0, "2025-01-03": 1}
    assert _scan(source, sync_settings, table).fresh

    placed = "DAY IS NOT NULL"
    rounds = [  # (change, partitions named, newer_rows)
        (f"INSERT INTO {t} VALUES (5, NULL, '2025-01-02', 'e')", ["2025-01-02"], 1),
        (f"UPDATE {t} SET DAY = '2025-01-03' WHERE ID = 2", ["2025-01-01", "2025-01-03"], 2),  # moved: both
        (f"DELETE FROM {t} WHERE ID = 4", ["2025-01-03"], 1),
        (f"UPDATE {t} SET DAY = NULL WHERE ID = 5", ["2025-01-02"], 1),  # out of every partition
    ]
    for change, named, newer in rounds:
        source.sql(change)
        found = _refresh(source, sync_settings, table)
        assert (found.partitions, found.newer_rows, found.fresh) == (named, newer, False), change
        assert rows(sync_settings, table) == _source_rows(source, "T", placed), change
        assert _scan(source, sync_settings, table).fresh, change
