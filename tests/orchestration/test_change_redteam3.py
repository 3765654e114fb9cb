"""Source changes after a sync against real materializations and real change scans: a run that
succeeds serves the source, and a scan that calls a table fresh has nothing left to read.

The tests seed the stand-in through the real connector, materialize in-process with the
project's resources, and ask ``shared.changes.scan`` what a refresh or the source-change
sensor would ask.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import snowflake.connector

from shared import changes
from shared import partitions as sp
from shared.served_storage import ServedStore
from shared.settings import Settings
from tests.orchestration.conftest import Source, connect_kwargs, current, failure_message, materialize, rows


def _ok(result: Any) -> None:
    assert result.success, failure_message(result)


def _scan(source: Source, settings: Settings, table: Any) -> changes.SourceChanges:
    con = snowflake.connector.connect(**connect_kwargs(source.port, database=source.database))
    try:
        return changes.scan(con, table, current(settings, table), served_file=ServedStore(settings.served_path).local_path)
    finally:
        con.close()


# -- a merge re-reads every row past the floor: what it read is the source ------------------------------


@pytest.mark.parametrize("change", ["cursor moved back", "key deleted and inserted again"])
def test_a_row_whose_cursor_moved_back_inside_the_lookback_is_served_as_the_source_has_it(
        source: Source, sync_settings: Settings, change: str) -> None:
    """The merge reads every source row at or past watermark minus lookback, so a served row of a
    key whose cursor is in that range and differs from the staged one is no longer in the source.
    The merge kept it anyway ("a newer row of its key is served"): the run succeeded, the row
    count check agreed (``kept_newer``), and the old values stayed served."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0) NOT NULL, UPDATED_AT TIMESTAMP_NTZ NOT NULL, V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, '2025-01-01 10:00:00', 'a'), (2, '2025-01-01 11:00:00', 'b')")
    table = source.register("T", strategy="incremental", incremental_key="UPDATED_AT", primary_key=["ID"],
                            lookback="2h")
    _ok(materialize(table, sync_settings))
    if change == "cursor moved back":  # a correction written with the business time it belongs to
        source.sql(f"UPDATE {t} SET UPDATED_AT = '2025-01-01 10:30:00', V = 'b corrected' WHERE ID = 2")
    else:
        source.sql(f"DELETE FROM {t} WHERE ID = 2")
        source.sql(f"INSERT INTO {t} VALUES (2, '2025-01-01 10:30:00', 'b corrected')")
    _ok(materialize(table, sync_settings))
    assert rows(sync_settings, table, "SELECT ID, CAST(UPDATED_AT AS VARCHAR), V FROM data ORDER BY 1") == [
        (1, "2025-01-01 10:00:00", "a"), (2, "2025-01-01 10:30:00", "b corrected")]
    manifest = current(sync_settings, table)
    assert manifest is not None
    assert manifest.watermark == "2025-01-01T10:30:00"  # the highest cursor the source holds


def test_a_served_row_older_than_the_floor_is_kept_against_a_source_row_without_a_cursor(
        source: Source, sync_settings: Settings) -> None:
    """The one case where the served row may still be the source's: its cursor is below the floor
    (not re-read), and the staged row of its key has no cursor (a full read keeps the row with a
    cursor over the one without). The merge keeps it, as a full read would."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0) NOT NULL, UPDATED_AT TIMESTAMP_NTZ, V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, '2025-01-01 01:00:00', 'old'), (2, '2025-01-01 11:00:00', 'b')")
    table = source.register("T", strategy="incremental", incremental_key="UPDATED_AT", primary_key=["ID"],
                            lookback="1h")
    _ok(materialize(table, sync_settings))
    source.sql(f"INSERT INTO {t} (ID, V) VALUES (1, 'no cursor')")  # the key's second row, no cursor
    _ok(materialize(table, sync_settings))
    assert rows(sync_settings, table, "SELECT ID, V FROM data ORDER BY 1") == [(1, "old"), (2, "b")]


# -- rows committed after the sync with a cursor equal to the watermark -----------------------------------


@pytest.mark.parametrize(("ddl", "value", "later"), [
    ("DATE", "'2025-01-03'", "'2025-01-03'"),
    ("NUMBER(10,0)", "7", "7"),  # a load batch number
    ("TIMESTAMP_NTZ", "'2025-01-03 10:00:00'", "'2025-01-03 10:00:00'"),  # a cursor written to the second
    ("TIMESTAMP_TZ", "'2025-01-03 10:00:00+00:00'", "'2025-01-03 11:00:00+01:00'"),  # the same instant
    ("VARCHAR", "'batch-0007'", "'batch-0007'"),
], ids=["date", "number", "timestamp", "timestamp-tz", "text"])
def test_a_row_inserted_at_the_watermark_after_the_sync_is_not_fresh_and_the_next_merge_serves_it(
        source: Source, sync_settings: Settings, ddl: str, value: str, later: str) -> None:
    """"Fresh" meant no source row past the watermark (``>``). A cursor with coarse values (a day,
    a batch number, whole seconds) gets more rows at the watermark after a sync; every scan
    called the table fresh (refresh: already_fresh) until a row with a higher cursor came."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0) NOT NULL, C {ddl} NOT NULL, V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, {value}, 'a'), (2, {value}, 'b')")
    table = source.register("T", strategy="incremental", incremental_key="C", primary_key=["ID"])
    _ok(materialize(table, sync_settings))
    assert _scan(source, sync_settings, table).fresh, "nothing changed yet"
    source.sql(f"INSERT INTO {t} VALUES (3, {later}, 'c')")
    found = _scan(source, sync_settings, table)
    assert not found.fresh
    assert found.newer_rows == 1
    _ok(materialize(table, sync_settings))  # the merge re-reads from the watermark (>=)
    assert rows(sync_settings, table, "SELECT ID, V FROM data ORDER BY 1") == [(1, "a"), (2, "b"), (3, "c")]
    assert _scan(source, sync_settings, table).fresh


def test_identical_source_rows_at_the_watermark_served_once_are_still_fresh(
        source: Source, sync_settings: Settings) -> None:
    """Keys, not rows, are compared at the watermark: a key repeated by identical rows is served once."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), C DATE NOT NULL, V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, '2025-01-03', 'a'), (1, '2025-01-03', 'a'), (NULL, '2025-01-03', 'n')")
    table = source.register("T", strategy="incremental", incremental_key="C", primary_key=["ID"])
    _ok(materialize(table, sync_settings))
    assert _scan(source, sync_settings, table).fresh


def test_a_late_row_at_the_watermark_in_an_old_partition_names_that_partition(
        source: Source, sync_settings: Settings) -> None:
    """A partitioned table without a lookback scans partitions past the floor (the watermark): a row
    at the watermark in an old partition named none, and the refresh had nothing to rewrite."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0) NOT NULL, DAY DATE NOT NULL, C NUMBER(10,0) NOT NULL, V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, '2025-01-01', 5, 'a'), (2, '2025-01-02', 5, 'b')")
    table = source.register("T", strategy="incremental", incremental_key="C", primary_key=["ID"],
                            partitioning={"kind": "daily", "column": "DAY", "start": "2025-01-01"})
    for day in ("2025-01-01", "2025-01-02"):
        _ok(materialize(table, sync_settings, partition_key=day))
    assert _scan(source, sync_settings, table).fresh
    source.sql(f"INSERT INTO {t} VALUES (3, '2025-01-01', 5, 'late, same batch')")
    found = _scan(source, sync_settings, table)
    assert not found.fresh
    assert found.partitions == ["2025-01-01"]
    _ok(materialize(table, sync_settings, partition_key="2025-01-01"))
    assert rows(sync_settings, table, "SELECT ID, V FROM data ORDER BY 1") == [
        (1, "a"), (2, "b"), (3, "late, same batch")]
    assert _scan(source, sync_settings, table).fresh


# -- a table registered again with another partitioning --------------------------------------------------


def test_partitions_served_under_another_layout_are_not_counted_as_this_layouts(
        source: Source, sync_settings: Settings) -> None:
    """Daily keys and monthly keys are both ``YYYY-MM-DD`` (hourly ones sort among them): a table
    re-registered monthly counted its served daily partitions as served months, and the first
    monthly run carried the daily keys forward. With two days served, January and February (a
    month never read) were "every partition served": fresh, and a refresh had nothing to fill."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0) NOT NULL, DAY DATE NOT NULL, V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, '2025-01-01', 'a'), (2, '2025-01-02', 'b'), (3, '2025-02-10', 'c')")
    daily = source.register("T", strategy="full", partitioning={"kind": "daily", "column": "DAY", "start": "2025-01-01"})
    for day in ("2025-01-01", "2025-01-02"):
        _ok(materialize(daily, sync_settings, partition_key=day))
    monthly = source.register("T", strategy="full",
                              partitioning={"kind": "monthly", "column": "DAY", "start": "2025-01-01"})
    now = dt.datetime(2025, 3, 15, tzinfo=dt.UTC)  # January and February are complete
    found = sp.freshness_coverage(monthly, current(sync_settings, monthly), now)["partitions"]
    assert (found["expected"], found["served"], found["missing"]) == (2, 0, 2)
    _ok(materialize(monthly, sync_settings, partition_key="2025-01-01"))
    manifest = current(sync_settings, monthly)
    assert manifest is not None
    assert sorted(manifest.partitions) == ["2025-01-01"]  # the month, not the old days
    found = sp.freshness_coverage(monthly, manifest, now)["partitions"]
    assert (found["served"], found["missing"], found["missing_keys"]) == (1, 1, ["2025-02-01"])
    assert rows(sync_settings, monthly, "SELECT ID FROM data ORDER BY 1") == [(1,), (2,)]  # February is not served


# -- a column added or renamed in the source of a merged table --------------------------------------------


@pytest.mark.parametrize("change", ["added with a default", "renamed"])
def test_a_column_whose_values_the_merge_would_not_read_makes_the_next_run_read_the_whole_table(
        source: Source, sync_settings: Settings, change: str) -> None:
    """A column added with a default (Snowflake fills every existing row) or renamed has values in
    rows the merge never re-reads (below the floor): the merge added the column and served NULL
    there, the run succeeded, and every scan called the table fresh (no row past the watermark)."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0) NOT NULL, UPDATED_AT TIMESTAMP_NTZ NOT NULL, V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, '2025-01-01 10:00:00', 'a'), (2, '2025-01-01 11:00:00', 'b')")
    table = source.register("T", strategy="incremental", incremental_key="UPDATED_AT", primary_key=["ID"])
    _ok(materialize(table, sync_settings))
    if change == "renamed":
        source.sql(f"ALTER TABLE {t} RENAME COLUMN V TO W")
    else:
        source.sql(f"ALTER TABLE {t} ADD COLUMN W VARCHAR DEFAULT 'filled'")
    found = _scan(source, sync_settings, table)
    assert not found.fresh
    assert found.newer_rows == 1  # row 1; row 2 is at the floor, which the merge re-reads
    _ok(materialize(table, sync_settings))
    expected = [(1, "a"), (2, "b")] if change == "renamed" else [(1, "filled"), (2, "filled")]
    assert rows(sync_settings, table, "SELECT ID, W FROM data ORDER BY 1") == expected
    assert _scan(source, sync_settings, table).fresh


def test_a_column_added_without_values_keeps_the_merge(source: Source, sync_settings: Settings) -> None:
    """A column added empty (NULL in every existing row) is served right by the merge: no whole read."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0) NOT NULL, UPDATED_AT TIMESTAMP_NTZ NOT NULL, V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, '2025-01-01 10:00:00', 'a'), (2, '2025-01-01 11:00:00', 'b')")
    table = source.register("T", strategy="incremental", incremental_key="UPDATED_AT", primary_key=["ID"])
    _ok(materialize(table, sync_settings))
    source.sql(f"ALTER TABLE {t} ADD COLUMN W VARCHAR")
    source.sql(f"INSERT INTO {t} VALUES (3, '2025-01-01 12:00:00', 'c', 'w')")
    _ok(materialize(table, sync_settings))
    manifest = current(sync_settings, table)
    assert manifest is not None
    assert manifest.extra["mode"] == "merge"
    assert rows(sync_settings, table, "SELECT ID, W FROM data ORDER BY 1") == [(1, None), (2, None), (3, "w")]
    assert _scan(source, sync_settings, table).fresh


# -- served rows dated past the read (a clock ahead, local wall-clock time in a naive column) -------------


def test_a_row_dated_past_the_read_moved_further_on_is_a_change(source: Source, sync_settings: Settings) -> None:
    """Served rows dated past the read that wrote them stay past the (capped) watermark, so the scan
    subtracts their number. A source writing local time ahead of UTC into a naive column dates
    every recent row so: an update of one (its cursor moved on, the count the same) read as
    fresh. Rows past the highest cursor served are new whatever their number."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0) NOT NULL, U TIMESTAMP_NTZ NOT NULL, V VARCHAR)")
    ahead = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0) + dt.timedelta(hours=5)
    source.sql(f"INSERT INTO {t} VALUES (1, '2025-01-01 00:00:00', 'a'), (2, '{ahead}', 'b'), "
               f"(3, '{ahead + dt.timedelta(minutes=1)}', 'c')")
    table = source.register("T", strategy="incremental", incremental_key="U", primary_key=["ID"])
    _ok(materialize(table, sync_settings))
    assert _scan(source, sync_settings, table).fresh
    source.sql(f"UPDATE {t} SET U = '{ahead + dt.timedelta(minutes=30)}', V = 'b updated' WHERE ID = 2")
    found = _scan(source, sync_settings, table)
    assert (found.fresh, found.newer_rows) == (False, 1)
    _ok(materialize(table, sync_settings))
    assert rows(sync_settings, table, "SELECT ID, V FROM data ORDER BY 1") == [(1, "a"), (2, "b updated"), (3, "c")]
    assert _scan(source, sync_settings, table).fresh


# -- a partitioned table registered again over fewer partitions ------------------------------------------


@pytest.mark.parametrize("layout", ["static", "daily"])
def test_rows_of_partitions_no_longer_registered_stop_being_served(
        source: Source, sync_settings: Settings, layout: str) -> None:
    """A static value dropped from the registration, or a start moved later, leaves partitions no run
    can write again: their rows stayed served for ever, as of their last run, beside fresh ones,
    and the catalog counted the table complete. The next partition run removes them."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0) NOT NULL, REGION VARCHAR, DAY DATE, V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, 'EU', '2025-01-01', 'a'), (2, 'US', '2025-01-02', 'b')")
    if layout == "static":
        before = {"kind": "static", "column": "REGION", "values": ["EU", "US"]}
        after, keys, kept = {**before, "values": ["US"]}, ["EU", "US"], "US"
    else:
        before = {"kind": "daily", "column": "DAY", "start": "2025-01-01"}
        after, keys, kept = {**before, "start": "2025-01-02"}, ["2025-01-01", "2025-01-02"], "2025-01-02"
    table = source.register("T", strategy="full", partitioning=before)
    for key in keys:
        _ok(materialize(table, sync_settings, partition_key=key))
    source.sql(f"DELETE FROM {t} WHERE ID = 1")  # gone from the source too: nothing can rewrite its partition
    narrowed = source.register("T", strategy="full", partitioning=after)
    _ok(materialize(narrowed, sync_settings, partition_key=kept))
    assert rows(sync_settings, narrowed, "SELECT ID, V FROM data ORDER BY 1") == [(2, "b")]
    manifest = current(sync_settings, narrowed)
    assert manifest is not None
    assert sorted(manifest.partitions) == [kept]


# -- a column with values added to a partitioned table ---------------------------------------------------


@pytest.mark.parametrize("strategy", ["full", "incremental"])
def test_partitions_a_new_column_has_values_in_are_not_served_until_rewritten(
        source: Source, sync_settings: Settings, strategy: str) -> None:
    """A column added with a default fills every existing row; a partition run adds it to the served
    table, and the partitions it did not rewrite served NULL there, counted as served and fresh.
    They are now partitions to rewrite: missing in the coverage, named by the change scan."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0) NOT NULL, DAY DATE NOT NULL, U NUMBER(10,0) NOT NULL, V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, '2025-01-01', 1, 'a'), (2, '2025-01-02', 1, 'b'), "
               "(3, '2025-01-03', 1, 'c')")
    cursor = {"incremental_key": "U", "primary_key": ["ID"]} if strategy == "incremental" else {}
    table = source.register("T", strategy=strategy, partitioning={"kind": "daily", "column": "DAY", "start": "2025-01-01"},
                            **cursor)
    days = ["2025-01-01", "2025-01-02", "2025-01-03"]
    for day in days:
        _ok(materialize(table, sync_settings, partition_key=day))
    source.sql(f"ALTER TABLE {t} ADD COLUMN W VARCHAR DEFAULT 'filled'")
    source.sql(f"UPDATE {t} SET U = 2, V = 'b2' WHERE ID = 2")
    _ok(materialize(table, sync_settings, partition_key="2025-01-02"))
    now = dt.datetime(2025, 1, 4, 12, tzinfo=dt.UTC)
    found = sp.freshness_coverage(table, current(sync_settings, table), now)["partitions"]
    assert (found["served"], found["missing"], sorted(found["missing_keys"])) == (1, 2, ["2025-01-01", "2025-01-03"])
    if strategy == "incremental":
        scanned = _scan(source, sync_settings, table)
        assert not scanned.fresh
        assert scanned.partitions == ["2025-01-01", "2025-01-03"]
    for day in ("2025-01-01", "2025-01-03"):
        _ok(materialize(table, sync_settings, partition_key=day))
    assert rows(sync_settings, table, "SELECT ID, W FROM data ORDER BY 1") == [(1, "filled"), (2, "filled"), (3, "filled")]
    found = sp.freshness_coverage(table, current(sync_settings, table), now)["partitions"]
    assert found["missing"] == 0
    if strategy == "incremental":
        assert _scan(source, sync_settings, table).fresh


# -- rows committed late inside the lookback, with nothing newer --------------------------------------------


@pytest.mark.parametrize("partitioned", [False, True])
def test_a_row_committed_late_inside_the_lookback_is_not_fresh(
        source: Source, sync_settings: Settings, partitioned: bool) -> None:
    """The lookback is for rows committed late with an older cursor; the merge and the partition
    runs re-read them, but "fresh" only looked past the watermark: with nothing newer, a late row
    inside the lookback left the table fresh (refresh: already_fresh) until a newer row came."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0) NOT NULL, DAY DATE NOT NULL, U TIMESTAMP_NTZ NOT NULL, V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, '2025-01-01', '2025-01-01 12:00:00', 'a'), "
               "(2, '2025-01-02', '2025-01-02 12:00:00', 'b')")
    part = {"partitioning": {"kind": "daily", "column": "DAY", "start": "2025-01-01"}} if partitioned else {}
    table = source.register("T", strategy="incremental", incremental_key="U", primary_key=["ID"], lookback="1d", **part)
    keys = ["2025-01-01", "2025-01-02"] if partitioned else [None]
    for key in keys:
        _ok(materialize(table, sync_settings, partition_key=key))
    assert _scan(source, sync_settings, table).fresh
    source.sql(f"INSERT INTO {t} VALUES (3, '2025-01-01', '2025-01-02 01:00:00', 'late')")  # inside the lookback
    found = _scan(source, sync_settings, table)
    assert (found.fresh, found.newer_rows) == (False, 1)
    if partitioned:
        assert found.partitions == ["2025-01-01", "2025-01-02"]  # the lookback re-reads the watermark's day too
    for key in (["2025-01-01"] if partitioned else [None]):
        _ok(materialize(table, sync_settings, partition_key=key))
    assert rows(sync_settings, table, "SELECT ID, V FROM data ORDER BY 1") == [(1, "a"), (2, "b"), (3, "late")]
    assert _scan(source, sync_settings, table).fresh
