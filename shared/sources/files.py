"""File sources (a DuckDB database file, a folder or glob of Parquet files) read through DuckDB.

Why through DuckDB, speaking the connector's cursor API: the sync engine plans and
extracts with Snowflake SQL over a connector-like cursor (``execute(sql, params)`` with
``%s`` values, ``fetchone``, ``fetch_arrow_batches``). A file source opens an in-memory
DuckDB where the source table is one relation named ``src``, and each statement is
transpiled from Snowflake to DuckDB by sqlglot with the registered table's name replaced
by ``src``. Partition windows, key-range slices, counts and the cursor scan then run
unchanged, and the extract/plan code has no per-kind branch.

Why a file list fixed at connect: the Parquet files a connection reads are the ones
listed when it opened, so counts and slices of one plan agree even while files arrive.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

import duckdb
import pyarrow as pa

from shared.snowflake import SourceColumn, SourceError, qmark

SOURCE_RELATION = "src"
ARROW_BATCH_ROWS = 65_536

# DuckDB type -> (Snowflake type, precision, scale): the served type is then decided by the
# same rules as for a Snowflake column (orchestration/sync/types.py).
_INTEGERS = {
    "TINYINT": 3,
    "UTINYINT": 3,
    "SMALLINT": 5,
    "USMALLINT": 5,
    "INTEGER": 10,
    "UINTEGER": 10,
    "BIGINT": 18,
    "UBIGINT": 20,
    "HUGEINT": 38,
    "UHUGEINT": 38,
}
_SIMPLE = {
    "FLOAT": "FLOAT",
    "DOUBLE": "FLOAT",
    "VARCHAR": "TEXT",
    "UUID": "TEXT",
    "BOOLEAN": "BOOLEAN",
    "DATE": "DATE",
    "TIME": "TIME",
    "TIMESTAMP": "TIMESTAMP_NTZ",
    "TIMESTAMP_S": "TIMESTAMP_NTZ",
    "TIMESTAMP_MS": "TIMESTAMP_NTZ",
    "TIMESTAMP_NS": "TIMESTAMP_NTZ",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMP_TZ",
    "BLOB": "BINARY",
    "JSON": "VARIANT",
}


class FileSourceError(SourceError):
    """A file source is missing, unreadable, locked by a writer, or refused a statement."""


def source_column(name: str, duck_type: str, nullable: bool = True, comment: str | None = None) -> SourceColumn:
    """A DuckDB column described in the source vocabulary (Snowflake's type names).

    Nested values (STRUCT, LIST, MAP, arrays) become VARIANT and are served as JSON text,
    as a Snowflake VARIANT is; anything else without an exact counterpart keeps its DuckDB
    name, which the sync refuses with a message naming the column.
    """
    kind = duck_type.upper().strip()
    if kind in _INTEGERS:
        return SourceColumn(name, "NUMBER", _INTEGERS[kind], 0, nullable, comment or "")
    if kind.startswith("DECIMAL(") and kind.endswith(")"):
        p, s = (int(v) for v in kind[len("DECIMAL(") : -1].split(","))
        return SourceColumn(name, "NUMBER", p, s, nullable, comment or "")
    if kind in _SIMPLE:
        return SourceColumn(name, _SIMPLE[kind], None, None, nullable, comment or "")
    if kind.startswith(("STRUCT(", "MAP(")) or kind.endswith("]"):
        return SourceColumn(name, "VARIANT", None, None, nullable, comment or "")
    return SourceColumn(name, kind, None, None, nullable, comment or "")


@functools.lru_cache(maxsize=512)
def to_duckdb(sql: str, names: tuple[str, str, str], *, values: bool = True) -> str:
    """Snowflake SQL of the sync engine as DuckDB SQL over ``src``; with ``values`` (a statement
    prepared by ``shared.snowflake.bound``), ``%s`` values become ``?``.

    Only the registered table may appear: any other table is refused, so a file
    connection can never be pointed at something else by a statement.

    Why sqlglot is imported here: only file sources need it, and importing it costs every
    process that imports the sync engine about 10 MB (a Snowflake table's sync never uses it).
    """
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(qmark(sql) if values else sql, read="snowflake")
    except sqlglot.errors.ParseError as e:
        raise FileSourceError(f"statement not understood for a file source: {e}") from e
    for table in list(tree.find_all(exp.Table)):
        if (table.catalog, table.db, table.name) != names:
            raise FileSourceError(f"a file source holds one table; {table.sql('snowflake')} is not it")
        source = exp.to_table(SOURCE_RELATION)
        if table.args.get("alias") is not None:  # ``FROM t AS u`` (the change scan's self-join) keeps ``u``
            source.set("alias", table.args["alias"])
        table.replace(source)
    return tree.sql("duckdb")


class FileCursor:
    """The connector cursor API the sync engine uses, over a DuckDB cursor."""

    def __init__(self, con: FileConnection) -> None:
        self._owner = con
        self._cur = con.duck  # temporary views and registered datasets are visible to this connection only
        self._rel: Any = None
        self._rows: list[tuple[Any, ...]] | None = None
        self.sfqid: str | None = None  # no query history to point at

    def execute(self, sql: str, params: Sequence[Any] = ()) -> FileCursor:
        text = to_duckdb(sql, self._owner.names, values=bool(params))
        try:
            self._rel = self._cur.sql(text, params=list(params)) if params else self._cur.sql(text)
        except duckdb.Error as e:
            raise FileSourceError(f"{self._owner.label}: {e}") from e
        self._rows = None
        return self

    def _fetched(self) -> list[tuple[Any, ...]]:
        if self._rows is None:
            try:
                self._rows = self._rel.fetchall() if self._rel is not None else []
            except duckdb.Error as e:
                raise FileSourceError(f"{self._owner.label}: {e}") from e
        return self._rows

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._fetched()

    def fetchone(self) -> tuple[Any, ...] | None:
        rows = self._fetched()
        return rows[0] if rows else None

    def fetch_arrow_batches(self) -> Iterator[pa.RecordBatch]:
        try:
            reader = self._rel.to_arrow_reader(ARROW_BATCH_ROWS)
            yield from reader
        except duckdb.Error as e:
            raise FileSourceError(f"{self._owner.label}: {e}") from e

    def close(self) -> None:
        self._rel = None


class FileConnection:
    """An in-memory DuckDB where the file source is the relation ``src`` (see module docstring)."""

    def __init__(self, names: tuple[str, str, str], label: str) -> None:
        self.names = names
        self.label = label
        self.duck = duckdb.connect(":memory:", config={"threads": 2})
        self.duck.execute("SET TimeZone = 'UTC'")

    def cursor(self) -> FileCursor:
        return FileCursor(self)

    def columns(self) -> list[SourceColumn]:
        """Columns of ``src`` in order (DuckDB file tables keep NOT NULL and comments)."""
        try:
            described = self.duck.execute(f"DESCRIBE SELECT * FROM {SOURCE_RELATION}").fetchall()
        except duckdb.Error as e:
            raise FileSourceError(f"{self.label}: {e}") from e
        details = self.column_details()
        out = []
        for name, kind, *_ in described:
            nullable, comment = details.get(name, (True, None))
            out.append(source_column(name, str(kind), nullable, comment))
        return out

    def column_details(self) -> dict[str, tuple[bool, str | None]]:
        """Nullability and comments where the source keeps them (overridden for DuckDB files)."""
        return {}

    def close(self) -> None:
        self.duck.close()
