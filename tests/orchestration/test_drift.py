"""Schema drift: new columns appear, safe widenings apply, incompatible changes fail naming the column."""

from __future__ import annotations

from shared.settings import Settings
from tests.orchestration.conftest import Source, current, failure_message, materialization, materialize, rows, served_files


def test_a_new_source_column_appears_at_the_next_materialization(source: Source, sync_settings: Settings) -> None:
    name = source.table("D")
    source.sql(f"CREATE TABLE {name} (ID NUMBER(10,0), A VARCHAR)")
    source.sql(f"INSERT INTO {name} VALUES (1, 'a')")
    table = source.register("D")
    assert materialize(table, sync_settings).success
    source.sql(f"ALTER TABLE {name} ADD COLUMN B NUMBER(12,2)")
    source.sql(f"INSERT INTO {name} VALUES (2, 'b', 2.5)")
    meta = materialization(materialize(table, sync_settings))
    assert meta["schema_drift"]["added"] == ["B"]
    assert [c.name for c in meta["dagster/column_schema"].columns] == ["ID", "A", "B"]
    got = [(i, a, float(b) if b is not None else None) for i, a, b in rows(sync_settings, table)]
    assert got == [(1, "a", None), (2, "b", 2.5)]


def test_partitioned_copy_gets_the_new_column_and_keeps_old_partitions(source: Source, sync_settings: Settings) -> None:
    name = source.table("P")
    source.sql(f"CREATE TABLE {name} (ID NUMBER(10,0), D DATE, AMOUNT NUMBER(10,2), GONE VARCHAR)")
    source.sql(f"INSERT INTO {name} VALUES (1, '2025-01-01', 1.5, 'x'), (2, '2025-01-02', 2.5, 'y')")
    table = source.register("P", partitioning={"kind": "daily", "column": "D", "start": "2025-01-01"})
    assert materialize(table, sync_settings, partition_key="2025-01-01").success
    # New column, a widened decimal, and a dropped column, all at once: each is safe for the rows already served.
    source.sql(f"CREATE OR REPLACE TABLE {name} (ID NUMBER(10,0), D DATE, AMOUNT NUMBER(14,3), EXTRA VARCHAR)")
    source.sql(f"INSERT INTO {name} VALUES (2, '2025-01-02', 2.125, 'new')")
    meta = materialization(materialize(table, sync_settings, partition_key="2025-01-02"))
    assert meta["schema_drift"] == {"added": ["EXTRA"], "removed": ["GONE"], "nullable": [],
                                    "widened": ["AMOUNT: DECIMAL(10,2) -> DECIMAL(14,3)"]}
    types = dict(rows(sync_settings, table, "SELECT column_name, data_type FROM information_schema.columns"))
    assert types == {"ID": "BIGINT", "D": "DATE", "AMOUNT": "DECIMAL(14,3)", "GONE": "VARCHAR", "EXTRA": "VARCHAR"}
    got = rows(sync_settings, table, "SELECT ID, CAST(AMOUNT AS VARCHAR), GONE, EXTRA FROM data ORDER BY ID")
    assert got == [(1, "1.500", "x", None), (2, "2.125", None, "new")]


def test_an_incompatible_type_change_fails_naming_the_column_and_leaves_served_data(
    source: Source, sync_settings: Settings
) -> None:
    name = source.table("X")
    source.sql(f"CREATE TABLE {name} (ID NUMBER(10,0), AMOUNT NUMBER(10,2))")
    source.sql(f"INSERT INTO {name} VALUES (1, 1.5)")
    table = source.register("X")
    assert materialize(table, sync_settings).success
    before, files = current(sync_settings, table), served_files(sync_settings, table)
    source.sql(f"CREATE OR REPLACE TABLE {name} (ID NUMBER(10,0), AMOUNT VARCHAR)")
    source.sql(f"INSERT INTO {name} VALUES (1, 'one and a half')")
    result = materialize(table, sync_settings)
    message = failure_message(result)
    assert "column AMOUNT changed from DECIMAL(10,2) to VARCHAR" in message
    assert f"still version {before.version}" in message  # type: ignore[union-attr]
    assert current(sync_settings, table) == before
    assert served_files(sync_settings, table) == files  # nothing new, nothing left behind
    assert rows(sync_settings, table, "SELECT CAST(AMOUNT AS VARCHAR) FROM data") == [("1.50",)]

    assert materialize(table, sync_settings, full_refresh=True).success  # an explicit rebuild accepts the change
    assert rows(sync_settings, table, "SELECT AMOUNT FROM data") == [("one and a half",)]
