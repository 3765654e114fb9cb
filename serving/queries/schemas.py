"""API shapes of the queries feature (msgspec Structs; OpenAPI is generated from them)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec

ParamValue = str | int | float | bool | None | list[Any] | dict[str, Any]


_MAX_ROWS = (
    "Rows to keep at most. JSON: default and maximum QUERY_MAX_ROWS, then cut to QUERY_JSON_MAX_ROWS; "
    "csv, parquet, arrow: no row cap unless given, the file is limited by QUERY_MAX_RESULT_BYTES."
)


class QueryRequest(msgspec.Struct, kw_only=True):
    """``POST /api/v1/queries/execute``. ``params`` are bound (``?``/``$1`` list or ``$name`` map), never formatted."""

    query: Annotated[str, msgspec.Meta(min_length=1, description="One DuckDB SELECT (or WITH/UNION, DESCRIBE, SUMMARIZE).")]
    output_format: Annotated[str, msgspec.Meta(description="json | csv | parquet | arrow (any case)")] = "json"
    params: list[ParamValue] | dict[str, ParamValue] | None = None
    max_rows: Annotated[int, msgspec.Meta(ge=0, description=_MAX_ROWS)] | None = None
    timeout_s: Annotated[float, msgspec.Meta(gt=0)] | None = None
    wait_s: Annotated[float, msgspec.Meta(ge=0)] | None = None
    min_freshness: Annotated[float, msgspec.Meta(ge=0, description="Seconds; run on data no older than this.")] | None = None
    dry_run: Annotated[bool, msgspec.Meta(description="Check and estimate without running: guard verdict, tables and "
                                          "versions, estimated rows and bytes, whether it would be capped.")] = False
    if_schema_version: Annotated[str | dict[str, str], msgspec.Meta(
        description="schema_version(s) the query was written against ({table: version}, or one version for a "
                    "one-table query); the answer lists schema_changes. Also as the If-Schema-Version header.")
    ] | None = None
    at_versions: Annotated[dict[str, str], msgspec.Meta(description=(
        "Read these tables at these served versions ({table: version}, as an earlier answer's tables named "
        "them), so several answers agree with each other; each must be a copied table the query reads. "
        "A replaced version stays readable for SERVED_VERSION_GRACE_MINUTES, then the answer is 410 "
        "version_gone."))] | None = None
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


class Continuation(msgspec.Struct, kw_only=True):
    """Where the rest of a cut answer is: a job whose full result can be fetched in any format
    (``result_url?format=``), paged (``next_url``) or saved as an artifact (``artifact_url``).

    The job is lazy (``status`` ``queued``): it runs, reading the versions the cut answer
    read, only once ``status_url``, ``next_url`` or ``result_url`` is first fetched."""

    job_id: str | None
    status: str
    cut_by: str  # row_cap | byte_cap
    limit: int
    rows_returned: int
    rest_available: bool
    status_url: str
    result_url: str
    next_url: str | None
    artifact_url: str
    full_limit: int


class SchemaChange(msgspec.Struct):
    """A table whose schema changed since the version the query was written against."""

    table: str
    expected: str
    current: str


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
    continuation: Continuation | None = None
    schema_changes: list[SchemaChange] = msgspec.field(default_factory=list)


class JobError(msgspec.Struct):
    message: str
    rule: str | None


class QueryJob(msgspec.Struct, kw_only=True):
    """A query job: 200 when finished (file formats link ``result_url``), 202 while it runs."""

    job_id: str
    status: str  # running | succeeded | failed | cancelled | expired
    output_format: str
    status_url: str
    progress: Annotated[float, msgspec.Meta(ge=0, le=1, description="DuckDB's estimate while the job runs on the "
                                            "replica answering (1 once succeeded); null when unknown.")] | None = None
    elapsed_s: Annotated[float, msgspec.Meta(
        ge=0, description="Seconds the job has run (its duration once finished).")] | None = None
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
    continuation: Continuation | None = None
    schema_changes: list[SchemaChange] = msgspec.field(default_factory=list)
    sent_to_job: str | None = None  # "estimated_over_threshold": the dry-run estimate sent it to a job at once


class DryRunTable(msgspec.Struct, kw_only=True):
    table: str
    version: str
    synced_at: str
    schema_version: str
    row_count: int
    bytes: int


class DryRun(msgspec.Struct, kw_only=True):
    """``dry_run: true``: what a run would read and cost; nothing ran."""

    dry_run: bool
    verdict: str
    sql_hash: str
    tables: list[DryRunTable]
    estimated_rows: int | None
    estimated_bytes_scanned: int | None
    estimate_source: str
    max_rows: int
    would_be_capped: bool | None
    would_run_as_job: bool
    async_threshold_bytes: int
    schema_changes: list[SchemaChange] = msgspec.field(default_factory=list)


class RowsPage(msgspec.Struct, kw_only=True):
    """One page of a finished job's rows; ``next_cursor`` / ``next_url`` are null on the last page."""

    job_id: str
    columns: list[Column]
    rows: list[list[Any]]
    row_count: int
    offset: int
    next_cursor: str | None
    next_url: str | None
    total_rows: int
    provenance: dict[str, Any]
