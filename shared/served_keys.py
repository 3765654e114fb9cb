"""Where a served version holds given keys: the served half of the change scan's question about
rows that left every partition.

Why the served version is asked: the source can tell which changed rows now lie in no partition
that can be materialized (a NULL partition value, a day before the start, past the newest
complete window, an unlisted static value), but not where their keys were served; only the
served version knows that. The change scan (``shared/changes.py``) hands the keys of those rows
here and gets back, grouped in DuckDB, how many served rows each served partition holds of them,
so a refresh rewrites exactly those partitions and the old copies stop being served.

Buckets are the scan's own (``changes._bucket``): the truncated time of a time partition, or the
position of a static value, compared as the served column's type as the engine selects a
partition's served rows. A version is immutable and is attached read-only, as queries attach it;
with a handful of keys the lookup reads a few row groups (DuckDB's zone maps filter the join), and
a key's lowest and highest served values come from the file's statistics.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from shared import partitions as sp
from shared.micros import to_micros
from shared.registry import RegisteredTable
from shared.served import DATA_TABLE, Manifest, ServedDataError

_ALIAS = "srv"
_KEYS = "_keys"


def _q(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@contextlib.contextmanager
def _reading(what: object) -> Iterator[None]:
    """DuckDB's errors reading the served version as ``ServedDataError`` (the caller's to explain)."""
    try:
        yield
    except duckdb.Error as e:
        raise ServedDataError(f"reading the served version ({what}) failed: {e}") from e


@contextlib.contextmanager
def opened(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB session with the served version at ``path`` attached read-only."""
    con = duckdb.connect()
    try:
        with _reading(path):
            con.execute("SET TimeZone = 'UTC'")  # partition windows are UTC
            con.execute("SET memory_limit = '256MB'")  # the changed rows' keys, held while they are looked up
            con.execute("SET threads = 1")
            con.execute(f"ATTACH {_literal(str(path))} AS {_ALIAS} (READ_ONLY)")
        yield con
    finally:
        con.close()


def _data() -> str:
    return f"{_ALIAS}.{_q(DATA_TABLE)}"


def key_range(con: duckdb.DuckDBPyConnection, column: str) -> tuple[Any, Any]:
    """The lowest and highest served value of ``column`` (both None for an empty table)."""
    with _reading(DATA_TABLE):
        row = con.execute(f"SELECT min({_q(column)}), max({_q(column)}) FROM {_data()}").fetchone()
    return (row[0], row[1]) if row else (None, None)


def _bucket(table: RegisteredTable, column: str, duck_type: str) -> tuple[str, list[Any]]:
    """The partition of a served row, as ``changes._bucket`` names a source row's."""
    c = f"d.{_q(column)}"
    kind = sp.time_kind(table)
    if kind is not None:
        return f"date_trunc('{sp.TRUNC_UNITS[kind].lower()}', {c})", []
    # A static value compared as the column's type, as the engine selects the partition's served rows
    # (orchestration/sync/load.py); JSON and binary values have no such cast and compare as text.
    test = f"CAST({c} AS VARCHAR) = ?" if duck_type in ("JSON", "BLOB") else f"{c} = CAST(? AS {duck_type})"
    whens = " ".join(f"WHEN {test} THEN {i}" for i in range(len(table.partition_values)))
    return f"CASE {whens} END", list(table.partition_values)


def can_hold(table: RegisteredTable, manifest: Manifest) -> bool:
    """Whether ``manifest``'s version serves ``table``'s primary key and partition column at all."""
    names = {c.name for c in manifest.columns}
    return bool(table.primary_key) and all(n in names for n in (*table.primary_key, str(table.partition_column or "")))


def partitions_holding(con: duckdb.DuckDBPyConnection, table: RegisteredTable, manifest: Manifest,
                       keys: Iterable[pa.RecordBatch | pa.Table]) -> list[tuple[Any, int]]:
    """``(bucket, served rows)`` of the served rows whose primary key is among ``keys``.

    ``keys``: batches with one column per part of ``table``'s primary key, in its order (any
    names); each part is cast to its served type before it is compared (NULL parts compare
    equal, as the merge compares them). Empty when the served version lacks a key or the
    partition column (written under other columns: nothing of it can be matched).
    """
    if not can_hold(table, manifest):
        return []
    types = {c.name: c.type for c in manifest.columns}
    names, part = list(table.primary_key), str(table.partition_column)
    cols = [f"k{i}" for i in range(len(names))]
    ddl = ", ".join(f"{c} {types[n]}" for c, n in zip(cols, names, strict=True))
    casts = ", ".join(f"CAST({c} AS {types[n]})" for c, n in zip(cols, names, strict=True))
    with _reading(DATA_TABLE):
        con.execute(f"CREATE OR REPLACE TEMP TABLE {_KEYS} ({ddl})")
    for batch in keys:  # streamed from the source: only the keys are held here, in a temp table
        if batch.num_rows:
            with _reading(DATA_TABLE):
                con.from_arrow(to_micros(batch.rename_columns(cols))).query(
                    "_batch", f"INSERT INTO {_KEYS} SELECT {casts} FROM _batch")
    same = " AND ".join(f"d.{_q(n)} IS NOT DISTINCT FROM k.{c}" for c, n in zip(cols, names, strict=True))
    bucket, params = _bucket(table, part, types[part])
    with _reading(DATA_TABLE):
        rows = con.execute(f"SELECT {bucket} AS bucket, count(*) FROM {_data()} AS d "
                           f"WHERE EXISTS (SELECT 1 FROM {_KEYS} AS k WHERE {same}) GROUP BY 1", params).fetchall()
    return [(bucket_value, int(n)) for bucket_value, n in rows]


def rows_between(con: duckdb.DuckDBPyConnection, table: RegisteredTable, manifest: Manifest, column: str,
                 *, low: str, high: str) -> list[tuple[Any, int]]:
    """``(bucket, served rows)`` of the served rows whose ``column`` lies from ``low`` to ``high``
    (text cast to the served type), for the change scan's rows inside the lookback
    (``changes._new_in_lookback``)."""
    types = {c.name: c.type for c in manifest.columns}
    if column not in types or str(table.partition_column) not in types:
        return []
    bucket, params = _bucket(table, str(table.partition_column), types[str(table.partition_column)])
    c, t = f"d.{_q(column)}", types[column]
    with _reading(DATA_TABLE):
        rows = con.execute(f"SELECT {bucket} AS bucket, count(*) FROM {_data()} AS d "
                           f"WHERE {c} >= CAST(? AS {t}) AND {c} <= CAST(? AS {t}) GROUP BY 1",
                           [*params, low, high]).fetchall()
    return [(bucket_value, int(n)) for bucket_value, n in rows]
