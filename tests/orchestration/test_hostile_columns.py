"""Source columns may take any name: the engine's SQL never depends on a name a column can shadow.

DuckDB's ``rowid`` pseudo-column, the engine's helper columns and tables (the snapshot
date, the stage, the Arrow slice, the profile scope, window aliases) and reserved words are
all walked through every strategy with real materializations on the stand-in; the served
data must equal the source, and a duplicated key must be removed and reported (incremental)
or refused (a primary key that is not unique in a full copy).
"""

from __future__ import annotations

from typing import Any

import pytest

from orchestration.sync import load
from orchestration.sync.engine import SNAPSHOT_DESCRIPTION
from orchestration.sync.verdicts import PRIMARY_KEY_CHECK, ROW_COUNT_CHECK
from shared import partitions as sp
from shared.settings import Settings
from tests.orchestration.conftest import Source, current, failure_message, materialization, materialize, rows

# Every helper name the engine uses, DuckDB's pseudo-column, window/aggregate aliases and reserved words.
HOSTILE = ["ROWID", "_row_number", load.SNAPSHOT_COLUMN, load.STAGE_TABLE, "_slice", "_profile_scope", "rid", "rn",
           "n", "data", "s", "d", "select", "group", "order", "from", "_dedupe_0"]
LOWER_ROWID = ["rowid", "Rowid_2"]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _create(source: Source, name: str, hostile: list[str]) -> list[str]:
    """ID, the hostile columns (all set to 7, so a rowid read would see duplicates), UPDATED_AT, DAY.

    Five rows: ID 1 twice (the newer with V='new'), IDs 2, 3, 4."""
    cols = ["ID", *hostile, "UPDATED_AT", "DAY", "V"]
    ddl = ", ".join([f"{_q('ID')} NUMBER(10,0)", *(f"{_q(h)} NUMBER(10,0)" for h in hostile),
                     f"{_q('UPDATED_AT')} TIMESTAMP_NTZ", f"{_q('DAY')} DATE", f"{_q('V')} VARCHAR"])
    source.sql(f"CREATE TABLE {source.table(name)} ({ddl})")
    sevens = ", ".join("7" for _ in hostile)
    for ident, ts, day, v in [(1, "2025-01-01 01:00:00", "2025-01-01", "old"),
                                             (1, "2025-01-01 02:00:00", "2025-01-01", "new"),
                                             (2, "2025-01-01 03:00:00", "2025-01-01", "b"),
                                             (3, "2025-01-02 04:00:00", "2025-01-02", "c"),
                                             (4, "2025-01-02 05:00:00", "2025-01-02", "d")]:
        source.sql(f"INSERT INTO {source.table(name)} VALUES ({ident}, {sevens}, '{ts}', '{day}', '{v}')")
    return cols


def _source_rows(source: Source, name: str, cols: list[str], where: str = "TRUE") -> list[tuple[Any, ...]]:
    return [tuple(r) for r in source.sql(
        f"SELECT {', '.join(_q(c) for c in cols)} FROM {source.table(name)} WHERE {where} ORDER BY 1, {_q('UPDATED_AT')}")]


def _served(settings: Settings, table: Any, cols: list[str], where: str = "TRUE") -> list[tuple[Any, ...]]:
    return rows(settings, table, f"SELECT {', '.join(_q(c) for c in cols)} FROM data WHERE {where} "
                                 f"ORDER BY 1, {_q('UPDATED_AT')}")


def _latest_per_id(source: Source, name: str, cols: list[str]) -> list[tuple[Any, ...]]:
    return [r for r in _source_rows(source, name, cols) if not (r[0] == 1 and r[cols.index("V")] == "old")]


@pytest.mark.parametrize("hostile", [HOSTILE, LOWER_ROWID], ids=["helpers-and-reserved", "lower-rowid"])
def test_full_copy_serves_every_row_whatever_the_columns_are_called(source: Source, sync_settings: Settings,
                                                                    hostile: list[str]) -> None:
    cols = _create(source, "T", hostile)
    table = source.register("T")
    result = materialize(table, sync_settings)
    assert result.success, failure_message(result)
    assert _served(sync_settings, table, cols) == _source_rows(source, "T", cols)
    keyed = source.register("T", primary_key=["ID"])
    refused = materialize(keyed, sync_settings, full_refresh=True)
    assert PRIMARY_KEY_CHECK in failure_message(refused), "a duplicated key in a full copy is refused"


@pytest.mark.parametrize("hostile", [HOSTILE, LOWER_ROWID], ids=["helpers-and-reserved", "lower-rowid"])
def test_incremental_removes_exactly_the_duplicates_and_reports_them(source: Source, sync_settings: Settings,
                                                                     hostile: list[str]) -> None:
    cols = _create(source, "T", hostile)
    table = source.register("T", strategy="incremental", incremental_key="UPDATED_AT", primary_key=["ID"])
    result = materialize(table, sync_settings)
    assert result.success, failure_message(result)
    assert _served(sync_settings, table, cols) == _latest_per_id(source, "T", cols)
    manifest = current(sync_settings, table)
    assert manifest is not None
    assert (manifest.extra["source_rows"], manifest.extra["duplicates_removed"], manifest.row_count) == (5, 1, 4)
    meta = materialization(result)
    assert meta["duplicates_removed"] == 1

    # A merge (served data exists): a new key, a newer version of ID 2 and a duplicated new key.
    sevens = ", ".join("7" for _ in hostile)
    for ident, ts, v in [(5, "2025-01-03 01:00:00", "e1"), (5, "2025-01-03 02:00:00", "e2"), (2, "2025-01-03 03:00:00", "b2")]:
        source.sql(f"INSERT INTO {source.table('T')} VALUES ({ident}, {sevens}, '{ts}', '2025-01-03', '{v}')")
    assert materialize(table, sync_settings).success
    served = _served(sync_settings, table, cols)
    assert [(r[0], r[cols.index("V")]) for r in served] == [(1, "new"), (2, "b2"), (3, "c"), (4, "d"), (5, "e2")]
    assert all(r[1] == 7 for r in served), "the hostile columns keep their values"


def test_partitioned_runs_serve_each_window_exactly(source: Source, sync_settings: Settings) -> None:
    cols = _create(source, "T", HOSTILE)
    part = {"kind": "daily", "column": "DAY", "start": "2025-01-01"}
    table = source.register("T", partitioning=part)
    for day in ("2025-01-01", "2025-01-02"):
        result = materialize(table, sync_settings, partition_key=day)
        assert result.success, failure_message(result)
    assert _served(sync_settings, table, cols) == _source_rows(source, "T", cols)

    merged = source.register("T", partitioning=part, strategy="incremental", incremental_key="UPDATED_AT",
                             primary_key=["ID"])
    for day in ("2025-01-01", "2025-01-02", "2025-01-01"):  # the re-run merges into served data
        result = materialize(merged, sync_settings, partition_key=day, full_refresh=False)
        assert result.success, failure_message(result)
    assert _served(sync_settings, merged, cols) == _latest_per_id(source, "T", cols)
    checks = {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
              for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    assert checks[ROW_COUNT_CHECK].passed


def test_snapshot_date_column_never_takes_a_source_column_name(source: Source, sync_settings: Settings) -> None:
    cols = _create(source, "T", HOSTILE)
    table = source.register("T", strategy="snapshot")
    day = sp.latest_key(table)  # once: two runs either side of midnight UTC would snapshot two days
    for _ in range(2):  # the re-run keeps the name it chose
        result = materialize(table, sync_settings, partition_key=day)
    assert result.success, failure_message(result)
    manifest = current(sync_settings, table)
    assert manifest is not None
    snap = manifest.columns[0]
    assert snap.name == f"{load.SNAPSHOT_COLUMN}_2"
    assert snap.description == SNAPSHOT_DESCRIPTION
    assert manifest.extra["snapshot_column"] == snap.name
    assert _served(sync_settings, table, cols) == _source_rows(source, "T", cols)


def test_helper_names_are_generated_against_the_columns() -> None:
    assert load.helper_name("_X", ["a", "b"]) == "_X"
    assert load.helper_name("_X", ["_x", "_X_2"]) == "_X_3", "compared as DuckDB compares names (ASCII case)"
    assert load.helper_name("_K", ["_\u212a"]) == "_K", "the Kelvin sign is another name to DuckDB"


def _rowid_dedupe(con: Any, table: str, key: Any, cursor: Any) -> int:
    """The old deduplication, by DuckDB's ``rowid``, which a source column named ROWID shadows."""
    row = con.execute(
        f"DELETE FROM {_q(table)} WHERE rowid IN (SELECT rid FROM (SELECT rowid AS rid, row_number() OVER "
        f"(PARTITION BY {', '.join(_q(k) for k in key)} ORDER BY {_q(cursor)} DESC) AS rn FROM {_q(table)}) "
        "WHERE rn > 1)").fetchone()
    return 1 if row and row[0] else 0  # and it claims the one duplicate it should have removed


@pytest.mark.parametrize("strategy", ["incremental", "incremental-partitioned"])
def test_an_unexplained_row_count_is_refused_for_incremental_tables_too(
        source: Source, sync_settings: Settings, monkeypatch: pytest.MonkeyPatch, strategy: str) -> None:
    from orchestration.sync.verdicts import BlockingCheckError
    from tests.orchestration.conftest import sync

    _create(source, "T", ["ROWID"])
    extra: dict[str, Any] = {"partitioning": {"kind": "daily", "column": "DAY", "start": "2025-01-01"}} \
        if strategy.endswith("partitioned") else {}
    table = source.register("T", strategy="incremental", incremental_key="UPDATED_AT", primary_key=["ID"], **extra)
    monkeypatch.setattr(load, "dedupe", _rowid_dedupe)
    keys = {"partition_keys": ["2025-01-01"]} if extra else {}
    with pytest.raises(BlockingCheckError, match=ROW_COUNT_CHECK) as refused:
        sync(table, sync_settings, source, **keys)
    [count] = [v for v in refused.value.verdicts if v.name == ROW_COUNT_CHECK]
    assert count.metadata["duplicates_removed"] == 1
    assert count.metadata["served_rows"] < count.metadata["expected_rows"]
    assert current(sync_settings, table) is None, "nothing was published"
