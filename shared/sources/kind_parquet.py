"""Parquet files: one file, a folder (every ``.parquet`` file beneath) or a glob, local or ``s3://``.

Local files are read by DuckDB's own Parquet reader; S3 objects through a pyarrow
dataset over pyarrow's S3 filesystem (DuckDB's S3 extension is not part of the pinned
build). Files are matched by column name (``union_by_name``), so a column added to newer
files reads as NULL in older ones. The change signature covers every file's path, size
and modification time: a new, rewritten, touched or removed file is a change.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from shared.registry import RegisteredTable, RegistrationError
from shared.settings import Settings
from shared.snowflake import SourceColumn, SourceTable
from shared.sources import locations
from shared.sources.files import SOURCE_RELATION, FileConnection, FileSourceError


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class _ParquetConnection(FileConnection):
    def __init__(self, reg: RegisteredTable, settings: Settings) -> None:
        location = str(reg.source_path)
        super().__init__((reg.database, reg.schema, reg.table), f"Parquet {location}")
        try:
            self.files = locations.list_files(location, settings)
        except (locations.LocationError, OSError) as e:
            self.close()
            raise FileSourceError(f"cannot list {self.label}: {e}") from e
        if not self.files:
            return
        try:
            if locations.is_s3(location):
                import pyarrow.dataset as ds

                dataset = ds.dataset([f.path for f in self.files], format="parquet", filesystem=locations.s3_filesystem(settings))
                self.duck.register(SOURCE_RELATION, dataset)
            else:
                names = ", ".join(_literal(f.path) for f in self.files)
                self.duck.execute(
                    f"CREATE TEMP VIEW {SOURCE_RELATION} AS SELECT * FROM read_parquet([{names}], union_by_name = true)"
                )
        except Exception as e:  # duckdb.Error, pyarrow.ArrowInvalid, OSError: unreadable files
            self.close()
            raise FileSourceError(f"cannot read {self.label}: {e}") from e

    def columns(self) -> list[SourceColumn]:
        return super().columns() if self.files else []


class ParquetKind:
    name = "parquet"

    def check_location(self, reg: RegisteredTable, settings: Settings) -> None:
        location = str(reg.source_path)
        try:
            if not locations.is_s3(location):
                locations.local_path(location, settings)
            files = locations.list_files(location, settings)
        except (locations.LocationError, OSError) as e:
            raise RegistrationError("source.path", str(e)) from e
        if not files:
            raise RegistrationError("source.path", f"no Parquet files at {location}")

    @contextmanager
    def connect(self, reg: RegisteredTable, settings: Settings) -> Iterator[_ParquetConnection]:
        con = _ParquetConnection(reg, settings)
        try:
            yield con
        finally:
            con.close()

    def columns(self, con: Any, reg: RegisteredTable) -> list[SourceColumn]:
        return list(con.columns())

    def list_tables(self, reg: RegisteredTable, settings: Settings) -> list[SourceTable]:
        with self.connect(reg, settings) as con:
            if not con.files:
                return []
            rows = con.duck.execute(f"SELECT count(*) FROM {SOURCE_RELATION}").fetchone()
            size = sum(f.size for f in con.files)
        return [
            SourceTable(
                reg.database,
                reg.schema,
                reg.table,
                int(rows[0]) if rows else None,
                size,
                None,
                f"{len(con.files)} Parquet file(s) at {reg.source_path}",
            )
        ]

    def change_signatures(
        self, regs: Sequence[RegisteredTable], settings: Settings, con: Any = None
    ) -> dict[tuple[str, str, str], str]:
        out = {}
        for reg in regs:
            files = locations.list_files(str(reg.source_path), settings)
            if files:
                out[(reg.database, reg.schema, reg.table)] = locations.signature(files)
        return out

    def describe(self, reg: RegisteredTable) -> str:
        return f"Parquet {reg.source_path}"
