"""Source shapes the earlier passes left out, through real materializations: NUMBER values wider
than Python's default decimal context (on the stand-in), and nanosecond timestamps (Parquet file
sources: the stand-in keeps microseconds only, docs/local-stand-in.md).

A NUMBER(37,0) or NUMBER(38,s) value has up to 38 digits; arithmetic on it in the default
context is rounded, and ``str`` of a decimal may use an exponent. The engine does arithmetic on
such values twice: the watermark floor of an incremental table (watermark minus lookback) and
the cut points of a scan split into key ranges. (NUMBER(38,0) itself holds only 64-bit values on
the stand-in, docs/local-stand-in.md; NUMBER(37,0) holds wide ones.)
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from orchestration.sync.engine import SyncRequest, sync_table
from shared import changes, registry, sources
from shared.settings import Settings
from tests.orchestration.conftest import Source, current, failure_message, materialize, rows

WIDE = 1234567890123456789012345678901234567  # 37 digits: rounded to 28, it is 98,765,433 larger


def _ok(result: Any) -> None:
    assert result.success, failure_message(result)


def _source_rows(source: Source, name: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in source.sql(f"SELECT * FROM {source.table(name)} ORDER BY 1")]


@pytest.mark.parametrize("lookback", ["0s", "1h"])
def test_rows_past_a_wide_numeric_watermark_are_read(source: Source, sync_settings: Settings, lookback: str) -> None:
    """The floor (watermark minus lookback) was computed in 28 digits: it came out 98,765,433 past the
    watermark, so a row written after it with a cursor below that was never read, and the run
    succeeded. The change scan, which starts from the same floor, did not see it either."""
    t = source.table("W")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), U NUMBER(37,0), V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, {WIDE}, 'a')")
    table = source.register("W", strategy="incremental", incremental_key="U", primary_key=["ID"], lookback=lookback)
    _ok(materialize(table, sync_settings))
    served = current(sync_settings, table)
    assert served is not None
    assert served.watermark == str(WIDE)
    assert changes.watermark_floor(table, served) == WIDE - table.lookback_s
    source.sql(f"INSERT INTO {t} VALUES (2, {WIDE + 5}, 'b')")
    assert changes.scan(source.con, table, served).newer_rows == 1
    _ok(materialize(table, sync_settings))
    assert rows(sync_settings, table) == [(1, WIDE, "a"), (2, WIDE + 5, "b")]


def test_a_decimal_watermark_is_written_and_bound_in_fixed_point(source: Source, sync_settings: Settings) -> None:
    """``str`` wrote a NUMBER(38,10) watermark of 0.0000001 as ``1.000E-7``: the catalog showed that,
    and every later run bound it to the source as that text, which the source must parse as a number."""
    t = source.table("D")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), U NUMBER(38,10), V VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, 0.0000001, 'a'), (2, 0, 'b')")
    table = source.register("D", strategy="incremental", incremental_key="U", primary_key=["ID"])
    _ok(materialize(table, sync_settings))
    served = current(sync_settings, table)
    assert served is not None
    assert served.watermark == "0.0000001000"
    assert changes.bind(changes.watermark_floor(table, served)) == "0.0000001000"
    source.sql(f"INSERT INTO {t} VALUES (3, 0.0000002, 'c')")
    _ok(materialize(table, sync_settings))
    assert [r[0] for r in rows(sync_settings, table)] == [1, 2, 3]


def test_a_key_near_the_maximum_of_a_wide_number_is_cut_into_ranges(source: Source, sync_settings: Settings) -> None:
    """The cut points of a scan split into key ranges were computed in 28 digits: those of a
    NUMBER(38,2) key ending at 999…999.99 rounded to 10^36, which the column's type cannot hold, so
    every run of the table failed once it needed more than one slice."""
    t = source.table("K")
    source.sql(f"CREATE TABLE {t} (K NUMBER(38,2), V VARCHAR)")
    for i in range(7):
        source.sql(f"INSERT INTO {t} VALUES ({10**36 - 1 - i}.99, '{i}')")
    table = source.register("K", primary_key=["K"])
    _ok(materialize(table, sync_settings, slice_rows=2))
    assert rows(sync_settings, table) == _source_rows(source, "K")


# -- nanosecond timestamps ------------------------------------------------------------------------------


@pytest.fixture
def file_settings(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    roots = tmp_path / "files"
    roots.mkdir()
    monkeypatch.setenv("SOURCE_FILE_ROOTS", str(roots))
    monkeypatch.setenv("AGENTS_DATA_HOME", settings.home)
    from shared.settings import SourceSettings, get_settings

    get_settings.cache_clear()
    yield dataclasses.replace(settings, sources=SourceSettings(file_roots=str(roots)))
    get_settings.cache_clear()


def _parquet(settings: Settings, values: str) -> Path:
    """A Parquet file of (ID, TS TIMESTAMP_NS) rows, written as DuckDB writes nanosecond timestamps."""
    path = Path(settings.sources.file_roots) / "ns.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * FROM (VALUES {values}) t(ID, TS)) TO '{path}' (FORMAT parquet)")
    con.close()
    return path


def _sync(settings: Settings, path: Path, **raw: Any) -> Any:
    keys = raw.pop("partition_keys", None)
    reg = registry.build_registration({"schema_name": "FILES", "table_name": "T",
                                       "source": {"kind": "parquet", "path": str(path)}, **raw}, default_database="DEMO")
    sync_table(SyncRequest(table=reg, connect=sources.connector(reg, settings=settings), served_root=settings.served_path,
                           partition_keys=keys))
    return reg


NS_ROWS = ("(1, '2025-01-01 23:59:59.9999995'::TIMESTAMP_NS), (2, '1969-12-31 23:59:59.9999995'::TIMESTAMP_NS), "
           "(3, '2025-01-01 12:00:00.000000999'::TIMESTAMP_NS)")
FLOORED = [(1, dt.datetime(2025, 1, 1, 23, 59, 59, 999999)), (2, dt.datetime(1969, 12, 31, 23, 59, 59, 999999)),
           (3, dt.datetime(2025, 1, 1, 12, 0))]


def test_nanoseconds_are_cut_to_the_microsecond_they_fall_in(file_settings: Settings) -> None:
    """DuckDB's CAST rounds: 2025-01-01 23:59:59.9999995 was served as 2025-01-02 00:00:00, a value of
    the next day, and 12:00:00.000000999 as 12:00:00.000001."""
    reg = _sync(file_settings, _parquet(file_settings, NS_ROWS))
    assert rows(file_settings, reg) == FLOORED


def test_a_daily_partition_serves_the_last_nanoseconds_of_its_day(file_settings: Settings) -> None:
    """The source counts 23:59:59.9999995 in its day; served rounded, it fell in the next one, and the
    day's run was refused at every attempt (source_rows=2, served_rows=1)."""
    reg = _sync(file_settings, _parquet(file_settings, NS_ROWS), partition_keys=["2025-01-01"],
                partitioning={"kind": "daily", "column": "TS", "start": "2025-01-01"})
    assert rows(file_settings, reg) == [FLOORED[0], FLOORED[2]]


def test_a_nanosecond_cursor_does_not_pass_rows_written_after_it(file_settings: Settings) -> None:
    """A cursor of 12:00:00.0000005 served rounded up made the watermark 12:00:00.000001: a row written
    later at 12:00:00.0000007 lay below it and was never read, and the run succeeded."""
    first = "(1, '2025-01-01 12:00:00.0000005'::TIMESTAMP_NS)"
    raw = {"strategy": "incremental", "incremental_key": "TS", "primary_key": ["ID"]}
    reg = _sync(file_settings, _parquet(file_settings, first), **raw)
    served = current(file_settings, reg)
    assert served is not None
    assert served.watermark == "2025-01-01T12:00:00"
    _sync(file_settings, _parquet(file_settings, f"{first}, (2, '2025-01-01 12:00:00.0000007'::TIMESTAMP_NS)"), **raw)
    assert [r[0] for r in rows(file_settings, reg)] == [1, 2]
