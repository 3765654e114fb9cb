"""One source interface: Snowflake tables, tables of DuckDB files and Parquet files.

A source kind (``SourceKind``) answers five questions about a registered table: is its
location allowed (``check_location``), which tables are there (``list_tables``), what are
its columns (``columns``), what is its change signature (``change_signatures``), and how
to open a connection (``connect``). The connection speaks the connector's cursor API
(``cursor().execute(sql, params)``, ``fetchone``, ``fetchall``, ``fetch_arrow_batches``)
for the sync engine's Snowflake SQL, so counts, partition windows, key-range slices and
Arrow extraction are the same code for every kind (``orchestration/sync/``). File kinds
answer it through DuckDB (``files.py``).

A new kind is one module with a class like ``kind_parquet.ParquetKind``, added to
``KINDS`` below and to ``registry.SOURCE_KINDS``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from shared.registry import RegisteredTable
from shared.settings import Settings, get_settings
from shared.snowflake import SourceColumn, SourceTable
from shared.sources.files import FileConnection
from shared.sources.kind_duckdb import DuckDBKind
from shared.sources.kind_parquet import ParquetKind
from shared.sources.kind_snowflake import SnowflakeKind

Connect = Callable[[], AbstractContextManager[Any]]
Names = tuple[str, str, str]


class SourceKind(Protocol):
    name: str

    def check_location(self, reg: RegisteredTable, settings: Settings) -> None:
        """Raise ``RegistrationError`` (field ``source.path``/``source.table``) for a location not allowed or absent."""

    def connect(self, reg: RegisteredTable, settings: Settings) -> AbstractContextManager[Any]:
        """A connection whose cursors run the sync engine's SQL over this table."""

    def columns(self, con: Any, reg: RegisteredTable) -> list[SourceColumn]:
        """Columns in order, in Snowflake's type vocabulary; empty when the table does not exist."""

    def list_tables(self, reg: RegisteredTable, settings: Settings) -> list[SourceTable]:
        """Tables at the registration's location (a Snowflake schema, a DuckDB file, the Parquet files)."""

    def change_signatures(self, regs: Sequence[RegisteredTable], settings: Settings, con: Any = None) -> dict[Names, str]:
        """A text per table that changes when its rows may have; absent when the table is missing."""

    def describe(self, reg: RegisteredTable) -> str:
        """Where the rows come from, for people (asset descriptions, the catalog)."""


KINDS: dict[str, SourceKind] = {k.name: k for k in (SnowflakeKind(), DuckDBKind(), ParquetKind())}


def kind_of(reg: RegisteredTable) -> SourceKind:
    return KINDS[reg.source_kind]


def connect(
    reg: RegisteredTable, settings: Settings | None = None, *, snowflake: Connect | None = None
) -> AbstractContextManager[Any]:
    """A source connection for ``reg``; ``snowflake`` (e.g. the Dagster resource's) wins for Snowflake tables."""
    if not reg.from_files and snowflake is not None:
        return snowflake()
    return kind_of(reg).connect(reg, settings or get_settings())


def connector(reg: RegisteredTable, *, snowflake: Connect | None = None, settings: Settings | None = None) -> Connect:
    """``connect`` as a factory, what ``SyncRequest.connect`` takes."""
    return lambda: connect(reg, settings, snowflake=snowflake)


def table_columns(con: Any, reg: RegisteredTable) -> list[SourceColumn]:
    """The columns of ``reg`` through an open connection of its kind."""
    if isinstance(con, FileConnection):
        return con.columns()
    return KINDS["snowflake"].columns(con, reg)


def change_signatures(
    regs: Sequence[RegisteredTable], settings: Settings | None = None, *, snowflake_con: Any = None
) -> dict[Names, str]:
    """Signatures of every table, one batch per kind (Snowflake: one query per database)."""
    settings = settings or get_settings()
    out: dict[Names, str] = {}
    for name, kind in KINDS.items():
        group = [r for r in regs if r.source_kind == name]
        if group:
            out.update(kind.change_signatures(group, settings, snowflake_con if name == "snowflake" else None))
    return out


def check_location(reg: RegisteredTable, settings: Settings | None = None) -> None:
    kind_of(reg).check_location(reg, settings or get_settings())


def describe(reg: RegisteredTable) -> str:
    return kind_of(reg).describe(reg)
