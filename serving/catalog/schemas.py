"""API shapes of the catalog feature: what an agent needs to decide what to query."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec


class Classification(msgspec.Struct, kw_only=True):
    """Whether a column likely holds personal data, how sure, and why (name rule, share of sampled
    values matching); ``override`` when an admin decided it."""

    category: str | None
    confidence: float
    personal: bool
    evidence: dict[str, Any] = msgspec.field(default_factory=dict)
    override: bool = False


class TableColumn(msgspec.Struct, kw_only=True):
    """``masked`` is how your grant shows the column (``hash``: a keyed hash, stable within your
    swarm, so joins on it still work; ``partial``; ``null``), or null when you read it as stored."""

    name: str
    type: str
    nullable: bool
    description: str
    masked: str | None = None
    classification: Classification | None = None


class PartitionCoverage(msgspec.Struct, kw_only=True):
    """How many of a partitioned table's partitions, up to its newest complete window, are served.

    A table without a cursor is ``stale`` while any is missing (its rows are incomplete); an
    incremental one only reports it (a window without newer rows is never materialized)."""

    expected: int
    served: int
    missing: int
    newest: str | None = None  # the newest complete partition (the last static value)
    missing_keys: list[str] = msgspec.field(default_factory=list)  # up to three, newest first


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
    partitions: PartitionCoverage | None = None  # partitioned tables only


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
    schema_version: str | None = None  # changes exactly when the served columns do (see If-Schema-Version)
    freshness: Freshness
    strategy: str | None = None
    partitioning: str | None = None
    # True when your grant carries a row filter: you read (and row_count counts) only the rows it
    # leaves. The predicate itself is shown to admins only (admin API).
    row_filter: bool = False
    # Where the rows come from (snowflake, duckdb, parquet). A live table is not copied: queries
    # on it run in Snowflake; its figures are the source's (``source_last_altered``), and its
    # freshness status is ``live``.
    source_kind: str = "snowflake"
    live: bool = False
    source_last_altered: str | None = None


class TableList(msgspec.Struct):
    tables: list[TableInfo]
    count: int
