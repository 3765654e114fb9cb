"""A table of a DuckDB database file, attached read-only.

The file is attached read-only per connection, so a sync never writes it. DuckDB lets
no reader open a file another process holds read-write: a source file must not be held
open by a writer while it syncs (such a sync fails naming the lock, and the served data
stays as it was). The change signature is the size and modification time of the file
and of its write-ahead log.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from shared.registry import RegisteredTable, RegistrationError
from shared.settings import Settings
from shared.snowflake import SourceColumn, SourceTable
from shared.sources import locations
from shared.sources.files import SOURCE_RELATION, FileConnection, FileSourceError

if TYPE_CHECKING:
    from sqlglot import exp

ALIAS = "source_file"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _table_ref(name: str) -> exp.Table:
    """``events``, ``main.events`` or ``"My Schema"."My Table"`` inside the attached file."""
    import sqlglot  # imported here only: see shared/sources/files.py
    from sqlglot import exp

    try:
        ref = sqlglot.parse_one(name, into=exp.Table, read="duckdb")
    except sqlglot.errors.ParseError as e:
        raise RegistrationError("source.table", f"{name[:100]!r} is not a table name (table or schema.table)") from e
    if ref.catalog or not ref.name:
        raise RegistrationError("source.table", f"{name[:100]!r}: name the table as table or schema.table")
    return ref


class _DuckDBFileConnection(FileConnection):
    def __init__(self, reg: RegisteredTable, path: Path) -> None:
        super().__init__((reg.database, reg.schema, reg.table), f"DuckDB file {path}")
        ref = _table_ref(str(reg.source_table))
        self.schema_name, self.table_name = ref.db or "main", ref.name
        try:
            self.duck.execute(f"ATTACH {_literal(str(path))} AS {ALIAS} (READ_ONLY)")
        except duckdb.Error as e:
            self.close()
            raise FileSourceError(
                f"cannot open {self.label} read-only (missing, not a DuckDB file, or held by a writer): {e}"
            ) from e
        found = self.duck.execute(
            "SELECT count(*) FROM duckdb_columns() WHERE database_name = ? AND schema_name = ? AND table_name = ?",
            [ALIAS, self.schema_name, self.table_name],
        ).fetchone()
        self.exists = bool(found and found[0])
        if self.exists:
            from sqlglot import exp

            target = exp.table_(self.table_name, db=self.schema_name, catalog=ALIAS, quoted=True).sql("duckdb")
            self.duck.execute(f"CREATE TEMP VIEW {SOURCE_RELATION} AS SELECT * FROM {target}")

    def columns(self) -> list[SourceColumn]:
        return super().columns() if self.exists else []

    def column_details(self) -> dict[str, tuple[bool, str | None]]:
        rows = self.duck.execute(
            "SELECT column_name, is_nullable, comment FROM duckdb_columns() "
            "WHERE database_name = ? AND schema_name = ? AND table_name = ?",
            [ALIAS, self.schema_name, self.table_name],
        ).fetchall()
        return {r[0]: (bool(r[1]), r[2]) for r in rows}


class DuckDBKind:
    name = "duckdb"

    def _path(self, reg: RegisteredTable, settings: Settings) -> Path:
        location = str(reg.source_path)
        if locations.is_s3(location) or any(ch in location for ch in locations.GLOB_CHARS):
            raise RegistrationError("source.path", "a duckdb source is one local database file")
        try:
            return locations.local_path(location, settings)
        except locations.LocationError as e:
            raise RegistrationError("source.path", str(e)) from e

    def check_location(self, reg: RegisteredTable, settings: Settings) -> None:
        path = self._path(reg, settings)
        if not path.is_file():
            raise RegistrationError("source.path", f"{path} is not a file")
        _table_ref(str(reg.source_table))

    @contextmanager
    def connect(self, reg: RegisteredTable, settings: Settings) -> Iterator[FileConnection]:
        con = _DuckDBFileConnection(reg, self._path(reg, settings))
        try:
            yield con
        finally:
            con.close()

    def columns(self, con: Any, reg: RegisteredTable) -> list[SourceColumn]:
        return list(con.columns())

    def list_tables(self, reg: RegisteredTable, settings: Settings) -> list[SourceTable]:
        with self.connect(reg, settings) as con:
            rows = con.duck.execute(
                "SELECT schema_name, table_name, estimated_size, comment FROM duckdb_tables() "
                "WHERE database_name = ? ORDER BY 1, 2",
                [ALIAS],
            ).fetchall()
        return [SourceTable(str(reg.source_path), r[0], r[1], r[2], None, None, r[3] or "") for r in rows]

    def change_signatures(
        self, regs: Sequence[RegisteredTable], settings: Settings, con: Any = None
    ) -> dict[tuple[str, str, str], str]:
        out = {}
        for reg in regs:
            path = self._path(reg, settings)
            entries = [
                locations.FileEntry(str(p), p.stat().st_size, p.stat().st_mtime_ns)
                for p in (path, Path(f"{path}.wal"))
                if p.is_file()
            ]
            if entries and entries[0].path == str(path):
                out[(reg.database, reg.schema, reg.table)] = locations.signature(entries)
        return out

    def describe(self, reg: RegisteredTable) -> str:
        return f"DuckDB file {reg.source_path}, table {reg.source_table}"
