"""Write Arrow slices into the pending DuckDB version: replace, replace a window, or merge.

Why these operations: a full load starts from an empty file; a partition or merge write
starts from a copy of the current version (the served contract's copy-on-write), deletes
exactly what it replaces, and inserts — so a re-run replaces and never duplicates. A merge
keeps, per primary key, the row with the highest cursor, whether it was already served
or arrives now.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from orchestration.sync.sql import qi, qlist
from orchestration.sync.types import cast_expr, column_ddl
from shared.identifiers import unused_name
from shared.micros import to_micros
from shared.partitions import Window
from shared.served import DATA_TABLE, Column

STAGE_TABLE = "_stage"
WRITTEN_TABLE = "_written"  # a temp copy of the rows a partition run wrote (orchestration/sync/write.py)
SNAPSHOT_COLUMN = "_SNAPSHOT_DATE"  # the default name; ``helper_name`` picks another if a source column has it
# The writer's own budget: DuckDB spills beyond it, so a big merge cannot grow RSS unbounded.
WRITER_MEMORY_LIMIT = "64MB"
WRITER_THREADS = 2


def prepare(con: duckdb.DuckDBPyConnection) -> None:
    """Session settings of the writer connection: UTC, bounded memory."""
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{WRITER_MEMORY_LIMIT}'")
    con.execute(f"SET threads = {WRITER_THREADS}")
    con.execute("SET preserve_insertion_order = true")


def create_table(con: duckdb.DuckDBPyConnection, name: str, columns: Sequence[Column], *, temp: bool = False) -> None:
    ddl = ", ".join(column_ddl(c) for c in columns)
    con.execute(f"CREATE {'TEMP ' if temp else ''}TABLE {qi(name)} ({ddl})")
    if not temp:
        for c in columns:
            if c.description:
                con.execute(f"COMMENT ON COLUMN {qi(name)}.{qi(c.name)} IS {_sql_string(c.description)}")


def _sql_string(text: str) -> str:
    """COMMENT ON takes no parameters; this is its only literal, quoted by doubling quotes."""
    return "'" + text.replace("'", "''") + "'"


def insert_batch(
    con: duckdb.DuckDBPyConnection, target: str, columns: Sequence[Column], batch: pa.Table | pa.RecordBatch,
    *, constants: dict[str, Any] | None = None,
) -> int:
    """Insert one Arrow batch, casting every column to its served type; returns rows inserted.

    ``constants`` fills columns the source does not have (the snapshot date, or NULL for a
    column the source dropped), bound as values.

    Why a relation over the batch and not a registered view: the extraction inserts every
    slice inside one transaction (``write.py``), and a view dropped inside a transaction
    keeps its Arrow batch alive until the commit, so every slice of the run would stay in
    memory. The relation's name lives for this call only.
    """
    constants = constants or {}
    batch = to_micros(batch)
    present = set(batch.schema.names)
    exprs: list[duckdb.Expression] = []
    for c in columns:
        if c.name in constants:
            expr = duckdb.ConstantExpression(constants[c.name]).cast(duckdb.sqltype(c.type))
        elif c.name in present:
            expr = duckdb.SQLExpression(cast_expr(c))
        else:
            expr = duckdb.SQLExpression(f"CAST(NULL AS {c.type})")
        exprs.append(expr.alias(c.name))
    typed = con.from_arrow(batch).select(*exprs)
    typed.query("_slice", f"INSERT INTO {qi(target)} ({qlist(c.name for c in columns)}) SELECT * FROM _slice")
    return batch.num_rows


def _window_predicate(column: Column, w: Window) -> tuple[str, list[Any]]:
    """The served rows of one partition, chosen as the source chose them (``extract.window_slices``).

    A static value is compared as the column's type, as Snowflake compares ``column = 'value'``:
    compared as text, ``'01'`` on a number, ``'1.5'`` on a NUMBER(10,2) or ``'TRUE'`` on a
    boolean would match source rows but no served row, so the window's rows could never be
    counted or replaced. JSON and binary values have no such cast and stay compared as text.
    """
    c = qi(column.name)
    if w.value is not None:
        if column.type in ("JSON", "BLOB"):
            return f"CAST({c} AS VARCHAR) = ?", [w.value]
        return f"{c} = CAST(? AS {column.type})", [w.value]
    assert w.start is not None
    assert w.end is not None
    return f"{c} >= ? AND {c} < ?", [_bound(column, w.start), _bound(column, w.end)]


def delete_windows(con: duckdb.DuckDBPyConnection, column: Column, windows: Sequence[Window]) -> int:
    """Delete exactly the rows of ``windows`` from the served table; returns rows deleted."""
    deleted = 0
    for w in windows:
        where, params = _window_predicate(column, w)
        row = con.execute(f"DELETE FROM {qi(DATA_TABLE)} WHERE {where}", params).fetchone()
        deleted += int(row[0]) if row else 0
    return deleted


def delete_unregistered(con: duckdb.DuckDBPyConnection, column: Column, windows: Sequence[Window],
                        start: dt.datetime | None) -> int:
    """Delete the served rows in no registered partition: none of the static values' ``windows``,
    or before the first time window's ``start``; returns rows deleted."""
    if start is not None:
        row = con.execute(f"DELETE FROM {qi(DATA_TABLE)} WHERE {qi(column.name)} < ?", [_bound(column, start)]).fetchone()
    else:
        where, params = windows_predicate(column, windows)
        row = con.execute(f"DELETE FROM {qi(DATA_TABLE)} WHERE NOT coalesce(({where}), false)", params).fetchone()
    return int(row[0]) if row else 0


def count_windows(con: duckdb.DuckDBPyConnection, column: Column, windows: Sequence[Window], *,
                  table: str = DATA_TABLE) -> int:
    """Served rows inside ``windows`` (the same predicate a re-run deletes), in ``table``."""
    total = 0
    for w in windows:
        where, params = _window_predicate(column, w)
        row = con.execute(f"SELECT count(*) FROM {qi(table)} WHERE {where}", params).fetchone()
        total += int(row[0]) if row else 0
    return total


def _bound(column: Column, instant: dt.datetime) -> Any:
    """A window boundary compared with ``column``'s values.

    A DATE compared with a boundary inside a day (an hourly window) is compared as Snowflake
    compares it, as that day's midnight: ``day >= 01:00`` holds from the next day on, so the
    boundary is the next day. Flooring it instead would make every hourly window of a DATE
    column empty here while the source counts the day's rows in its first hour.
    """
    if column.type == "DATE":
        day = instant.date()
        return day if instant.time() == dt.time(0) else day + dt.timedelta(days=1)
    if column.type == "TIMESTAMP":
        return instant.replace(tzinfo=None)
    return instant


def helper_name(base: str, taken: Sequence[str]) -> str:
    """A name for a column the engine adds, unequal (as DuckDB compares names) to every name in
    ``taken``: ``base``, else ``base_2``, ``base_3`` … Source columns may take any name."""
    return unused_name(base, taken)


class TiedKeyError(ValueError):
    """Rows of one primary key differ but tie on the newest cursor: no row can be chosen."""


def _refuse_ties(con: duckdb.DuckDBPyConnection, table: str, key: Sequence[str], cursor: str | None) -> None:
    """Raise ``TiedKeyError`` when a key's newest rows (by ``cursor``) are not all the same row.

    Why: keeping "the row with the highest cursor" names no row when two different rows share
    it, and keeping either would serve an arbitrary one (another on the next run). Identical
    rows are one row and pass. Values are not quoted in the message: keys may be personal.
    """
    order = f" ORDER BY {qi(cursor)} DESC NULLS LAST" if cursor else ""
    row = con.execute(
        f"SELECT count(*) FROM (SELECT {qlist(key)} FROM (SELECT DISTINCT * FROM {qi(table)} "
        f"QUALIFY rank() OVER (PARTITION BY {qlist(key)}{order}) = 1) GROUP BY ALL HAVING count(*) > 1)").fetchone()
    tied = int(row[0]) if row else 0
    if tied:
        on = f"the newest {cursor} value" if cursor else "no cursor"
        raise TiedKeyError(
            f"{tied} primary key value(s) of ({', '.join(key)}) have different rows sharing {on}, so no row can be "
            "chosen to serve; make the cursor distinguish them or add a column to the primary key")


def dedupe(con: duckdb.DuckDBPyConnection, table: str, key: Sequence[str], cursor: str | None) -> int:
    """Keep one row per key in ``table``: one with the highest cursor (NULL lowest).

    Raises ``TiedKeyError`` when different rows of a key tie on the highest cursor.

    Returns the duplicates counted (rows beyond the first per key) before removing them: the
    row-count check compares the rows left against the source's minus this figure, so a
    removal that took other rows than the duplicates is refused.

    Why no ``rowid`` and no helper column: a source column may be called ``rowid`` (which
    then shadows DuckDB's pseudo-column) or take any helper's name. The duplicates are
    counted with GROUP BY; only when there are some is the table rebuilt from a
    ``QUALIFY`` copy (a table in the temp schema, whose name no column can shadow),
    keeping the table's own definition (types, NOT NULL, comments).
    """
    counted = duplicate_keys(con, key, table=table)
    if not counted:
        return 0
    _refuse_ties(con, table, key, cursor)
    order = f" ORDER BY {qi(cursor)} DESC NULLS LAST" if cursor else ""
    keep = qi(f"_dedupe_{secrets.token_hex(4)}")
    con.execute(f"CREATE TEMP TABLE {keep} AS SELECT * FROM {qi(table)} "
                f"QUALIFY row_number() OVER (PARTITION BY {qlist(key)}{order}) = 1")
    try:
        con.execute(f"DELETE FROM {qi(table)}")
        con.execute(f"INSERT INTO {qi(table)} SELECT * FROM {keep}")
    finally:
        con.execute(f"DROP TABLE IF EXISTS {keep}")
    return counted


def merge_stage(
    con: duckdb.DuckDBPyConnection, columns: Sequence[Column], key: Sequence[str], cursor: str | None,
    *, source_wins: bool = False, reread_from: Any = None,
) -> dict[str, int]:
    """Merge the staged rows into the served table on ``key``, keeping the highest cursor.

    Also returns the figures that explain the served row count: ``expected_rows`` (rows
    served before, plus staged rows after removing their duplicates, minus staged rows whose
    key was already served) and ``kept_newer`` (staged rows not taken because a newer row of
    their key is served).

    ``source_wins``: the staged rows are the source's current rows of their keys (a
    partition rewrite), so every served copy of a staged key is replaced whatever its
    cursor; a row whose partition column changed then never stays in its old partition.
    """
    dropped = dedupe(con, STAGE_TABLE, key, cursor)
    same_key = " AND ".join(f"d.{qi(k)} IS NOT DISTINCT FROM s.{qi(k)}" for k in key)
    served_before, staged = count_rows(con), count_rows(con, STAGE_TABLE)
    row = con.execute(f"SELECT count(*) FROM {qi(STAGE_TABLE)} AS s WHERE EXISTS "
                      f"(SELECT 1 FROM {qi(DATA_TABLE)} AS d WHERE {same_key})").fetchone()
    matched = int(row[0]) if row else 0
    newer, params = "", []
    if cursor and not source_wins:
        d = f"d.{qi(cursor)}"
        reread = f" OR {d} >= ?" if reread_from is not None else ""
        params = [reread_from] if reread_from is not None else []
        newer = f" AND ({d} IS NULL OR {d} <= s.{qi(cursor)}{reread})"
    row = con.execute(f"DELETE FROM {qi(DATA_TABLE)} AS d USING {qi(STAGE_TABLE)} AS s WHERE {same_key}{newer}",
                      params).fetchone()
    replaced = int(row[0]) if row else 0
    names = qlist(c.name for c in columns)
    row = con.execute(
        f"INSERT INTO {qi(DATA_TABLE)} ({names}) SELECT {', '.join('s.' + qi(c.name) for c in columns)} "
        f"FROM {qi(STAGE_TABLE)} AS s WHERE NOT EXISTS (SELECT 1 FROM {qi(DATA_TABLE)} AS d WHERE {same_key})"
    ).fetchone()
    inserted = int(row[0]) if row else 0
    dupes = duplicate_keys(con, key, scope=stage_predicate(key), across=False)
    con.execute(f"DROP TABLE {qi(STAGE_TABLE)}")
    return {"duplicates_dropped": dropped, "replaced": replaced, "inserted": inserted - replaced, "merged": inserted,
            "duplicate_keys": dupes, "staged": staged, "kept_newer": staged - inserted,
            "expected_rows": served_before + staged - matched}


def max_value(con: duckdb.DuckDBPyConnection, column: str, *, finite: bool = False) -> Any:
    """The column's highest value (``finite``: of a DOUBLE, the highest finite one)."""
    only = f" WHERE isfinite({qi(column)})" if finite else ""
    row = con.execute(f"SELECT max({qi(column)}) FROM {qi(DATA_TABLE)}{only}").fetchone()
    return row[0] if row else None


def count_above(con: duckdb.DuckDBPyConnection, column: str, value: Any) -> int:
    row = con.execute(f"SELECT count(*) FROM {qi(DATA_TABLE)} WHERE {qi(column)} > ?", [value]).fetchone()
    return int(row[0]) if row else 0


def count_between(con: duckdb.DuckDBPyConnection, column: str, low: Any, high: Any) -> int:
    row = con.execute(f"SELECT count(*) FROM {qi(DATA_TABLE)} WHERE {qi(column)} >= ? AND {qi(column)} <= ?",
                      [low, high]).fetchone()
    return int(row[0]) if row else 0


def count_nulls(con: duckdb.DuckDBPyConnection, column: str) -> int:
    row = con.execute(f"SELECT count(*) FROM {qi(DATA_TABLE)} WHERE {qi(column)} IS NULL").fetchone()
    return int(row[0]) if row else 0


def count_rows(con: duckdb.DuckDBPyConnection, table: str = DATA_TABLE) -> int:
    row = con.execute(f"SELECT count(*) FROM {qi(table)}").fetchone()
    return int(row[0]) if row else 0


def windows_predicate(column: Column, windows: Sequence[Window]) -> tuple[str, list[Any]]:
    """One predicate selecting the rows of all ``windows``."""
    parts, params = [], []
    for w in windows:
        where, values = _window_predicate(column, w)
        parts.append(f"({where})")
        params += values
    return " OR ".join(parts) or "FALSE", params


def stage_predicate(key: Sequence[str]) -> tuple[str, list[Any]]:
    """Rows of the served table whose key is among the staged keys (call before the stage is dropped)."""
    same = " AND ".join(f"{qi(DATA_TABLE)}.{qi(k)} IS NOT DISTINCT FROM s.{qi(k)}" for k in key)
    return f"EXISTS (SELECT 1 FROM {qi(STAGE_TABLE)} AS s WHERE {same})", []


def duplicate_keys(con: duckdb.DuckDBPyConnection, key: Sequence[str], *, scope: tuple[str, list[Any]] | None = None,
                   across: bool = True, table: str = DATA_TABLE, written: str | None = None) -> int:
    """Rows beyond the first per primary key (0 when the key is unique).

    Without ``scope`` the whole table is grouped. With ``scope`` (a predicate over the rows
    this run wrote) only their keys are checked: duplicates among them and, if ``across``,
    older rows sharing one of their keys. That keeps a partition run's check proportional
    to the partition. GROUP BY, unlike count(DISTINCT), spills, so it fits the memory limit.
    """
    keys, quoted = qlist(key), qi(table)
    if scope is None:
        sql = f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {quoted} GROUP BY {keys} HAVING count(*) > 1)"
        row = con.execute(sql).fetchone()
        return int(row[0]) if row else 0
    where, params = scope
    # ``written``: a temp copy of exactly the rows in scope (a partition run's), read instead of filtering the table.
    scoped, scoped_params = (f"{qi(written)}", []) if written else (f"{quoted} WHERE {where}", params)
    inside = (f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {scoped} "
              f"GROUP BY {keys} HAVING count(*) > 1)")
    row = con.execute(inside, scoped_params).fetchone()
    dupes = int(row[0]) if row else 0
    if across:
        dupes += served_elsewhere(con, key, scope=scope, table=table, written=written)
    return dupes


def served_elsewhere(con: duckdb.DuckDBPyConnection, key: Sequence[str], *, scope: tuple[str, list[Any]],
                     table: str = DATA_TABLE, written: str | None = None) -> int:
    """Rows of ``table`` outside ``scope`` whose key is the key of a row in ``scope`` (``written``:
    a temp copy of exactly the rows in scope, read instead of filtering the table)."""
    where, params = scope
    scoped, scoped_params = (f"{qi(written)}", []) if written else (f"{qi(table)} WHERE {where}", params)
    same = " AND ".join(f"o.{qi(k)} IS NOT DISTINCT FROM f.{qi(k)}" for k in key)
    outside = (f"SELECT count(*) FROM (SELECT * FROM {qi(table)} WHERE NOT coalesce(({where}), false)) AS o "
               f"SEMI JOIN (SELECT DISTINCT {qlist(key)} FROM {scoped}) AS f ON {same}")
    row = con.execute(outside, params + scoped_params).fetchone()
    return int(row[0]) if row else 0
