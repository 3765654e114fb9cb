"""API shapes of the catalog feature: what an agent needs to decide what to query."""

from __future__ import annotations

import datetime as dt

import msgspec


class TableColumn(msgspec.Struct):
    name: str
    type: str
    nullable: bool
    description: str


class Freshness(msgspec.Struct, kw_only=True):
    """``fresh`` / ``stale`` / ``failing`` (``live``: queried in Snowflake), why, the numbers behind it,
    and Dagster's own verdict."""

    status: str
    reason: str
    age_s: float | None = None
    target_s: int | None = None
    last_run_status: str | None = None
    last_failure_at: dt.datetime | None = None
    # Dagster's own verdict on the same policy (HEALTHY, WARNING, DEGRADED, UNKNOWN); None
    # when Dagster has none or does not answer (the status above never depends on Dagster).
    dagster_status: str | None = None


class SourceName(msgspec.Struct):
    """The exact Snowflake names of a table."""

    database: str
    schema: str
    table: str


class TableInfo(msgspec.Struct, kw_only=True):
    """One readable table. ``table`` is exactly what to write in SQL: ``demo.public.orders``, or
    ``demo.public."Order Lines"`` for a name Snowflake only has quoted (case-sensitive). ``key``
    names the table in grants and URLs; ``database``/``schema``/``name`` are the SQL parts."""

    table: str
    key: str = ""
    source: SourceName | None = None
    database: str
    schema: str
    name: str
    description: str
    columns: list[TableColumn]
    row_count: int | None
    bytes: int | None
    served_version: str | None
    last_synced_at: str | None
    freshness: Freshness
    strategy: str | None = None
    partitioning: str | None = None
    # Where the rows come from (snowflake, duckdb, parquet). A live table is not copied: queries
    # on it run in Snowflake; its figures are the source's (``source_last_altered``), and its
    # freshness status is ``live``.
    source_kind: str = "snowflake"
    live: bool = False
    source_last_altered: str | None = None


class TableList(msgspec.Struct):
    tables: list[TableInfo]
    count: int
