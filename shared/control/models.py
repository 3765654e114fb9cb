"""The control database schema: registrations, table status, identities, jobs, artifacts, audit.

Why one schema for both sides: Dagster (writer of served data) and every API replica
(reader) coordinate only through this database and the served-data folder, never by
importing each other. Column types are portable between SQLite (local default) and
PostgreSQL (production); JSON columns hold small lists and maps only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Dialect, Float, Index, Integer, String, Text, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored as UTC and always read back as an aware UTC datetime.

    Why: SQLite drops the zone and hands back naive values while PostgreSQL returns aware
    ones, so every reader used to add UTC by hand. The stored form is what
    ``DateTime(timezone=True)`` wrote before (UTC wall time on SQLite, ``timestamptz`` on
    PostgreSQL), so existing rows read the same and no migration is needed. A naive value
    given to a write is taken as UTC, as every writer here means it.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        return as_utc(value)

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        return as_utc(value)


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """``value`` as an aware UTC datetime; a naive one is taken as UTC (how this schema stores time)."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        list[Any]: JSON,
        dt.datetime: UtcDateTime(),
    }


class RegisteredTableRow(Base):
    """One registered table (Snowflake, a DuckDB file or Parquet files). Soft-deleted rows keep history for audit."""

    __tablename__ = "registered_tables"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(400), index=True)  # "database.schema.table", lower case
    database: Mapped[str] = mapped_column(String(255))
    schema_name: Mapped[str] = mapped_column(String(255))
    table_name: Mapped[str] = mapped_column(String(255))
    strategy: Mapped[str] = mapped_column(String(32), default="full")
    partition_kind: Mapped[str] = mapped_column(String(16), default="none")
    partition_column: Mapped[str | None] = mapped_column(String(255), nullable=True)
    partition_start: Mapped[str | None] = mapped_column(String(64), nullable=True)
    partition_values: Mapped[list[Any]] = mapped_column(JSON, default=list)
    cursor_column: Mapped[str | None] = mapped_column(String(255), nullable=True)
    lookback_s: Mapped[int] = mapped_column(Integer, default=0)
    primary_key: Mapped[list[Any]] = mapped_column(JSON, default=list)
    schedule: Mapped[str | None] = mapped_column(String(120), nullable=True)
    freshness_s: Mapped[int | None] = mapped_column(Integer, nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    # Where the rows come from (migration 0008_sources): snowflake, duckdb or parquet; live = not copied.
    source_kind: Mapped[str] = mapped_column(String(16), default="snowflake", server_default="snowflake")
    source_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    source_table: Mapped[str | None] = mapped_column(String(512), nullable=True)
    live: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)

    __table_args__ = (
        Index("ix_registered_tables_live", "key", "deleted_at"),
        # One live row per key (soft-deleted rows are history); see migration 0002_lifecycle.
        Index("uq_registered_tables_live_key", "key", unique=True, sqlite_where=text("deleted_at IS NULL"),
              postgresql_where=text("deleted_at IS NULL")),
    )


class TableStatusRow(Base):
    """Latest sync state of a table; written only through ``shared/status.py``, which owns its rules."""

    __tablename__ = "table_status"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    served_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_success_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    last_run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_run_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    last_failure_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    row_count: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    watermark: Mapped[str | None] = mapped_column(String(64), nullable=True)
    stale: Mapped[bool] = mapped_column(Boolean, default=False)
    stale_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SwarmRow(Base):
    __tablename__ = "swarms"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    grants: Mapped[list[Any]] = mapped_column(JSON, default=list)  # table keys
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class LiveUsageRow(Base):
    """Snowflake seconds spent by a swarm's pushed-down queries on one UTC day (migration 0008_sources).

    A small counter of its own, read before and added to after each pushed-down query
    (``serving/queries/budget.py``), against ``LIVE_DAILY_BUDGET_S``.
    """

    __tablename__ = "live_usage"

    swarm_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD, UTC
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    queries: Mapped[int] = mapped_column(Integer, default=0)


class TokenRow(Base):
    """An issued swarm or agent token. Only a SHA-256 of the token is stored."""

    __tablename__ = "tokens"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the JWT's jti
    type: Mapped[str] = mapped_column(String(16))  # swarm | agent
    swarm_id: Mapped[str] = mapped_column(String(64), index=True)
    parent_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    name: Mapped[str] = mapped_column(String(255))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    allowed_tables: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    revoked_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class QueryJobRow(Base):
    __tablename__ = "query_jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    swarm_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    replica: Mapped[str] = mapped_column(String(255), default="")
    sql_text: Mapped[str] = mapped_column(Text)
    sql_hash: Mapped[str] = mapped_column(String(64))
    params: Mapped[Any] = mapped_column(JSON, nullable=True)
    output_format: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)  # queued|running|succeeded|failed|cancelled|expired
    max_rows: Mapped[int] = mapped_column(Integer)
    row_count: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    tables: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [{table, version, synced_at}]
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_rule: Mapped[str | None] = mapped_column(String(64), nullable=True)
    result_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    duration_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    expires_at: Mapped[dt.datetime | None] = mapped_column(nullable=True, index=True)


class ArtifactRow(Base):
    __tablename__ = "artifacts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner_token_id: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    owner_agent: Mapped[str | None] = mapped_column(String(255), nullable=True)
    swarm_id: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    name: Mapped[str] = mapped_column(String(1024))
    content_type: Mapped[str] = mapped_column(String(255))
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    visibility: Mapped[str] = mapped_column(String(16), default="private")  # private|swarm|agents
    visible_to: Mapped[list[Any]] = mapped_column(JSON, default=list)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(String(255))
    source_job_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sql_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    served_versions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(nullable=True, index=True)
    deleted_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class SyncRequestRow(Base):
    """A sync, backfill or agent refresh launched through Dagster, so no replica loses it."""

    __tablename__ = "sync_requests"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    table_key: Mapped[str] = mapped_column(String(400), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # run | backfill
    dagster_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    partitions: Mapped[list[Any]] = mapped_column(JSON, default=list)
    requested_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    reason: Mapped[str] = mapped_column(String(64), default="manual")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class AuditRow(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    caller_type: Mapped[str] = mapped_column(String(16))  # admin|swarm|agent|anonymous
    swarm_id: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    token_id: Mapped[str | None] = mapped_column(String(64), index=True, nullable=True)
    method: Mapped[str] = mapped_column(String(8))
    endpoint: Mapped[str] = mapped_column(String(1024))
    status_code: Mapped[int] = mapped_column(Integer, index=True)
    rule: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sql_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    sql_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tables: Mapped[list[Any]] = mapped_column(JSON, default=list)
    rows: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
    replica: Mapped[str] = mapped_column(String(255), default="")

