"""API shapes of the queries feature (msgspec Structs; OpenAPI is generated from them)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec

ParamValue = str | int | float | bool | None | list[Any] | dict[str, Any]


class QueryRequest(msgspec.Struct, kw_only=True):
    """``POST /api/v1/queries/execute``. ``params`` are bound (``?``/``$1`` list or ``$name`` map), never formatted."""

    query: Annotated[str, msgspec.Meta(min_length=1, description="One DuckDB SELECT (or WITH/UNION, DESCRIBE, SUMMARIZE).")]
    output_format: Annotated[str, msgspec.Meta(description="json | csv | parquet | arrow (any case)")] = "json"
    params: list[ParamValue] | dict[str, ParamValue] | None = None
    max_rows: Annotated[int, msgspec.Meta(ge=0)] | None = None
    timeout_s: Annotated[float, msgspec.Meta(gt=0)] | None = None
    wait_s: Annotated[float, msgspec.Meta(ge=0)] | None = None
    min_freshness: Annotated[float, msgspec.Meta(ge=0, description="Seconds; run on data no older than this.")] | None = None
    engine: Annotated[str, msgspec.Meta(description=(
        "duckdb (copied tables) | snowflake (run in Snowflake, same guard and grants). Default: snowflake when "
        "the query reads a live table, else duckdb."))] | None = None


class Column(msgspec.Struct):
    name: str
    type: str


class TableVersion(msgspec.Struct):
    """A table the result was read from: served version and when it was synced (ISO 8601).

    A query run in Snowflake reads version ``live`` at ``synced_at`` (when Snowflake answered),
    with Snowflake's query id in ``source_query_id``.
    """

    table: str
    version: str
    synced_at: str
    source_query_id: str | None = None


class QueryResult(msgspec.Struct, kw_only=True):
    """Inline JSON result (200): the query finished within ``wait_s``."""

    job_id: str | None
    status: str
    columns: list[Column]
    rows: list[list[Any]]
    row_count: int
    truncated: bool
    max_rows: int
    tables: list[TableVersion]
    duration_ms: float
    sql_hash: str


class JobError(msgspec.Struct):
    message: str
    rule: str | None


class QueryJob(msgspec.Struct, kw_only=True):
    """A query job: 200 when finished (file formats link ``result_url``), 202 while it runs."""

    job_id: str
    status: str  # running | succeeded | failed | cancelled | expired
    output_format: str
    status_url: str
    result_url: str | None = None
    row_count: int | None = None
    bytes: int | None = None
    truncated: bool | None = None
    duration_ms: float | None = None
    tables: list[TableVersion] = msgspec.field(default_factory=list)
    sql_hash: str | None = None
    error: JobError | None = None
    created_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    expires_at: dt.datetime | None = None
