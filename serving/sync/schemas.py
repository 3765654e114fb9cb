"""Request and response shapes of the sync feature (msgspec Structs, so OpenAPI documents them)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from shared.registry import MAX_AGE_MAX_S, MAX_PARTITIONS


class TableSource(msgspec.Struct, forbid_unknown_fields=True):
    """Where a table's rows come from when not a Snowflake table of the same name.

    ``duckdb``: ``path`` of a DuckDB database file and its ``table`` (``table`` or
    ``schema.table``). ``parquet``: ``path`` of a Parquet file, a folder (every ``.parquet``
    file beneath) or a glob, local (under SOURCE_FILE_ROOTS) or ``s3://bucket/prefix``.
    The registration's database, schema and table names then name the served table.
    """

    kind: str
    path: str | None = None
    table: str | None = None


class TableRegistrationCreate(msgspec.Struct, forbid_unknown_fields=True):
    """A table to register. Strategy and partition kind are case-insensitive (``FULL`` == ``full``).

    ``live``: a Snowflake table that is not copied; agents' queries on it run in Snowflake.
    ``source``: a DuckDB or Parquet source instead of Snowflake (see ``TableSource``).
    """

    table_name: str
    schema_name: str
    database: str | None = None
    strategy: str | None = None
    partitioning: str | dict[str, Any] | None = None  # "none" or {kind, column, start?, values?}
    incremental_key: str | None = None
    lookback: int | str | None = None  # seconds or "30m", "1h", "2d"; 0 to 366 days
    primary_key: list[str] | str | None = None
    schedule: str | None = None  # 5-field cron
    freshness: int | str | None = None  # seconds or a duration such as "1h"; 60 s to 366 days
    description: str | None = None
    source: TableSource | None = None
    live: bool | None = None

    def to_raw(self) -> dict[str, Any]:
        raw = {f: getattr(self, f) for f in self.__struct_fields__}
        if self.source is not None:
            raw["source"] = {k: v for k, v in msgspec.structs.asdict(self.source).items() if v is not None}
        return {k: v for k, v in raw.items() if v is not None}


class TableRegistration(msgspec.Struct):
    table: str
    created: bool
    asset_key: list[str]
    dagster_url: str
    registration: dict[str, Any]


class PartitionRange(msgspec.Struct, forbid_unknown_fields=True):
    start: str
    end: str


class SyncStart(msgspec.Struct, forbid_unknown_fields=True):
    """Start a sync of one table: the whole table, some partitions, or a range of partitions."""

    table_name: str
    schema_name: str
    database: str | None = None
    strategy: str | None = None
    partitions: Annotated[list[str], msgspec.Meta(max_length=MAX_PARTITIONS)] | None = None
    partition_range: PartitionRange | None = None


class SyncStarted(msgspec.Struct):
    job_id: str
    kind: str  # run | backfill
    status: str
    dagster_url: str | None
    table: str
    partitions: list[str]


class RefreshRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Optional body of a refresh: data younger than ``max_age_s`` counts as fresh (default: the table's target).

    Cursor-based (incremental) tables ignore it for freshness: they are fresh when no source
    row is newer than the served watermark, whatever the age.

    0 always refreshes; at most 366 days (a longer age is no freshness requirement at all).
    """

    max_age_s: Annotated[float, msgspec.Meta(ge=0, le=MAX_AGE_MAX_S, description=(
        "Seconds, 0 to 31622400 (366 days); data younger than this counts as fresh."))] | None = None


class RefreshAnswer(msgspec.Struct):
    """``outcome``: ``already_fresh`` (no job), ``existing_job`` (joined a queued or running one) or ``started``.

    ``partitions``: the partitions the job rewrites (null: the whole table). Cursor-based
    tables also report ``served_watermark`` (highest cursor served), ``source_watermark``
    (highest cursor in the source) and ``newer_rows`` (source rows past the served one).
    """

    table: str
    outcome: str
    synced_at: str | None
    age_s: float | None
    served_version: str | None
    freshness_target_s: int | None
    job_id: str | None
    job_status: str | None
    kind: str | None
    eta_s: float | None
    eta_basis: str | None
    estimated_ready_at: str | None
    poll_url: str | None = None
    partitions: list[str] | None = None
    served_watermark: str | None = None
    source_watermark: str | None = None
    newer_rows: int | None = None
    note: str | None = None
