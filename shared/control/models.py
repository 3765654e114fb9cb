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


class StorageReservationRow(Base):
    """Room a write in progress holds in its swarm's storage quota (migration 0009_storage_reservations).

    A result file or an upload is counted only once its row is recorded, after its bytes are
    written; until then its reservation counts in its place (``serving/lib/quota.py``), so
    writes running at the same moment cannot each take the same room. A reservation whose
    writer died is ignored once ``expires_at`` passes, and deleted by the next reservation.
    """

    __tablename__ = "storage_reservations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    swarm_id: Mapped[str] = mapped_column(String(64), index=True)
    bytes: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[dt.datetime] = mapped_column()


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
    # Bytes of its result's conversions kept beside it (``?format=``), counted in its swarm's quota
    # (migration 0009_storage_reservations).
    converted_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
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
    # What a cut answer and its provenance need besides the columns above:
    # {cut_by, limit, continuation, schema_changes, watermarks: {table key: source watermark}}.
    provenance: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


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
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)  # the API request


class HousekeepingTotalRow(Base):
    """Running totals of what housekeeping deleted, per job and kind (the API's metrics read them)."""

    __tablename__ = "housekeeping_totals"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    what: Mapped[str] = mapped_column(String(64), primary_key=True)
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


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
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    run_id: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)  # Dagster run(s) started
    transport: Mapped[str] = mapped_column(String(8), default="rest", server_default="rest")  # rest | mcp



class GrantPolicyRow(Base):
    """Column and row rules on a grant: swarm-wide (``token_id`` empty) or narrowing one agent token.

    Written only through ``shared/policies.py``, which owns the vocabulary (mask kinds) and
    how rules combine; the API enforces them physically (``serving/tables/policies.py``).
    """

    __tablename__ = "grant_policies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    swarm_id: Mapped[str] = mapped_column(String(64), index=True)
    token_id: Mapped[str] = mapped_column(String(64), default="")  # "" = the whole swarm
    table_key: Mapped[str] = mapped_column(String(400))
    exclude: Mapped[list[Any]] = mapped_column(JSON, default=list)  # column names
    masks: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # column name -> hash | partial | null
    row_filter: Mapped[str | None] = mapped_column(Text, nullable=True)  # regenerated by the SQL guard
    updated_by: Mapped[str] = mapped_column(String(255), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("uq_grant_policies_scope", "swarm_id", "token_id", "table_key", unique=True),)


class ColumnUnmaskRow(Base):
    """An admin's explicit grant of one personal column, unmasked, to one swarm (with the reason)."""

    __tablename__ = "column_unmasks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    swarm_id: Mapped[str] = mapped_column(String(64), index=True)
    table_key: Mapped[str] = mapped_column(String(400))
    column_name: Mapped[str] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(Text)
    granted_by: Mapped[str] = mapped_column(String(255), default="")
    granted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("uq_column_unmasks", "swarm_id", "table_key", "column_name", unique=True),)


class ColumnOverrideRow(Base):
    """An admin's verdict on one column's personal-data classification; outlives every re-sync."""

    __tablename__ = "column_overrides"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    table_key: Mapped[str] = mapped_column(String(400), index=True)
    column_name: Mapped[str] = mapped_column(String(255))
    personal: Mapped[bool] = mapped_column(Boolean)
    category: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    updated_by: Mapped[str] = mapped_column(String(255), default="")
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("uq_column_overrides", "table_key", "column_name", unique=True),)


class BudgetRow(Base):
    """An admin-set budget of one swarm (``swarm:<id>``) or agent token (``agent:<token id>``); null is unlimited."""

    __tablename__ = "budgets"

    subject: Mapped[str] = mapped_column(String(80), primary_key=True)
    queries_per_day: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    rows_per_day: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    bytes_per_day: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    refreshes_per_hour: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class BudgetUsageRow(Base):
    """What a subject used of one kind in one fixed window (``window_start``: epoch seconds, UTC-aligned).

    Shared by every API worker and replica: a request is counted by an upsert of its row
    (``serving/lib/counters.py``), so limits hold exactly whatever process answers.
    """

    __tablename__ = "budget_usage"

    subject: Mapped[str] = mapped_column(String(80), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    used: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (Index("ix_budget_usage_window", "window_start"),)


class ServedVersionRow(Base):
    """One uploaded served version (``SERVED_STORAGE=s3``): its manifest and the files that make it up.

    Written only by ``shared/served_remote.py``, in the same transaction that makes it current.
    ``files`` is ``[{name, size, sha256}]`` (the objects are keyed by sha256); ``bytes`` their
    total and ``sha256`` the digest of the sorted ``name size sha256`` lines, so one value names
    exactly what a replica must download.
    """

    __tablename__ = "served_versions"

    table_key: Mapped[str] = mapped_column(String(400), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    manifest: Mapped[str] = mapped_column(Text)
    files: Mapped[list[Any]] = mapped_column(JSON, default=list)
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    published_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    superseded_at: Mapped[dt.datetime | None] = mapped_column(nullable=True, index=True)


class ServedCurrentRow(Base):
    """The version readers use, per table (``SERVED_STORAGE=s3``): switched by compare-and-set."""

    __tablename__ = "served_current"

    table_key: Mapped[str] = mapped_column(String(400), primary_key=True)
    version: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
