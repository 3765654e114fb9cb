"""Routes of the queries feature: run guarded SQL, poll, fetch and cancel query jobs.

Thin handlers: validate the options, hold one of the caller's query slots, start the
job on a worker thread and wait up to ``wait_s``; the engine and job manager do the rest.
Agent SQL never runs on the event loop. A query still running ``OVERSHOOT_S`` past its
time limit (one long uninterruptible function call) is answered 408 at that moment;
it keeps its slot until it has really stopped. Every answer is
annotated for the audit row with the SQL, its hash, the tables and versions read, rows
and bytes. Paths keep the old documentation's aliases (``POST /api/v1/queries/``,
``GET /api/v1/queries/{job_id}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import time
from concurrent.futures import Future
from typing import Any

import anyio.to_thread
import msgspec
from litestar import Request, delete, get, post
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.response import File
from litestar.response.base import ASGIResponse
from litestar.types import ASGIApp

from serving.lib import budgets, formats, metrics
from serving.lib.audit import annotate
from serving.lib.caller import Caller
from serving.lib.continuation import HEADER_SCHEMA_CHANGED, PROVENANCE_KEY, provenance_headers
from serving.lib.errors import ApiError, BadRequest, Conflict, PayloadTooLarge, QueryTimeout
from serving.lib.ingress import received_at
from serving.lib.limits import OVERSHOOT_S, Slot, get_limiter
from serving.lib.results import FILE_MAX_ROWS
from serving.lib.services import Services
from serving.lib.sliced import SlicedResponse
from serving.queries import dryrun, job_rows, pages
from serving.queries.engine import QueryEngine
from serving.queries.guard import GuardedQuery, sql_hash
from serving.queries.job_rows import ACTIVE
from serving.queries.jobs import Job, JobManager, job_provenance, progress_of
from serving.queries.pushdown import ENGINES
from serving.queries.schemas import DryRun, QueryJob, QueryRequest, QueryResult, RowsPage
from serving.queries.services import ensure_fresh, get_engine, get_jobs
from serving.tables.describe import schema_changes, schema_version
from serving.tables.platform import LIVE_VERSION, report_live_budget
from serving.tables.served import resolve_among
from shared.control.models import QueryJobRow
from shared.settings import QuerySettings

BASE = "/api/v1/queries"


def _limits(data: QueryRequest, fmt: str, q: QuerySettings) -> tuple[int, float, float]:
    """Rows: JSON is capped at ``QUERY_MAX_ROWS`` (413 past it) and ``QUERY_JSON_MAX_ROWS`` (truncated);
    a file (csv, parquet, arrow) only by its size, ``QUERY_MAX_RESULT_BYTES``, unless the caller asks
    for fewer rows."""
    if fmt != "json":
        max_rows = FILE_MAX_ROWS if data.max_rows is None else min(data.max_rows, FILE_MAX_ROWS)
    else:
        max_rows = q.max_rows if data.max_rows is None else data.max_rows
        if max_rows > q.max_rows:
            raise PayloadTooLarge(f"max_rows {max_rows} is over the limit of {q.max_rows} rows per JSON result "
                                  "(csv, parquet and arrow results are limited by size only)",
                                  rule="too_many_rows", details={"limit": q.max_rows})
        max_rows = min(max_rows, q.json_max_rows)  # JSON row cap; ``truncated`` tells the caller
    timeout = q.timeout_s if data.timeout_s is None else data.timeout_s
    if timeout > q.max_timeout_s:
        raise BadRequest(f"timeout_s {timeout:g} is over the limit of {q.max_timeout_s:g} s", rule="invalid_timeout")
    wait = q.wait_s if data.wait_s is None else min(data.wait_s, q.max_timeout_s)
    return max_rows, timeout, wait


def _audit_tables(tables: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{k: t[k] for k in ("table", "version", "source_query_id") if t.get(k)} for t in tables]


def _engine(value: str | None) -> str | None:
    if value is None:
        return None
    engine = value.strip().lower()
    if engine not in ENGINES:
        raise BadRequest(f"engine {value[:40]!r} is not one of {', '.join(ENGINES)}", rule="invalid_engine")
    return engine


def job_body(job: Any) -> dict[str, Any]:
    """The status document of a job, from this replica's memory or from its row."""
    is_row = isinstance(job, QueryJobRow)
    fmt = job.output_format if is_row else job.fmt
    error = None
    if is_row and job.error:
        error = {"message": job.error, "rule": job.error_rule}
    elif not is_row and job.error:
        error = {"message": job.error.message, "rule": job.error.rule}
    duration = job.duration_ms if is_row else (
        (job.finished_at - job.started_at).total_seconds() * 1000 if job.finished_at else None)
    finished = job.status == "succeeded"
    extra = (job.provenance or {}) if is_row else {"continuation": job.continuation, "schema_changes": job.schema_changes}
    return {
        "job_id": job.id, "status": job.status, "output_format": fmt,
        "status_url": f"{BASE}/jobs/{job.id}",
        "result_url": f"{BASE}/jobs/{job.id}/result" if finished else None,
        "row_count": job.row_count, "bytes": job.bytes, "truncated": job.truncated if finished else None,
        "duration_ms": duration, "tables": job.tables or [], "sql_hash": job.sql_hash, "error": error,
        "created_at": job.created_at, "finished_at": job.finished_at, "expires_at": job.expires_at,
        "continuation": extra.get("continuation"), "schema_changes": extra.get("schema_changes") or [],
    }



def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> ASGIResponse:
    return ASGIResponse(body=formats.encode_json(payload), media_type=formats.MEDIA_TYPES["json"], status_code=status,
                        headers=headers)


def _expected_schemas(request: Request[Any, Any, Any], data: QueryRequest) -> dict[str, str] | str | None:
    """The schema versions the caller wrote the query against: the body field, else ``If-Schema-Version``
    (``table=s-…, table=s-…``, or one bare ``s-…`` for a one-table query)."""
    if data.if_schema_version:
        return data.if_schema_version
    header = request.headers.get("if-schema-version", "").strip()
    if not header:
        return None
    if "=" not in header:
        return header
    out = {}
    for part in header.split(","):
        name, sep, version = part.strip().rpartition("=")
        if not sep or not name.strip() or not version.strip():
            raise BadRequest("If-Schema-Version must be 'table=s-…' pairs separated by commas, or one version",
                             rule="invalid_schema_version")
        out[name.strip()] = version.strip()
    return out


def _schema_changes(engine: QueryEngine, caller: Caller, checked: GuardedQuery,
                    expected: dict[str, str] | str) -> list[dict[str, str]]:
    """Tables whose schema changed since ``expected``, each ``current`` version as ``caller`` reads the
    table (its policy copy's columns, as its catalog shows): the served file's digest would name
    columns the policy excludes. A name outside the tables the query reads is a 400 (it would tell
    whether an ungranted table exists, and its version)."""
    if isinstance(expected, str):
        if len(checked.tables) != 1:
            raise BadRequest("a bare schema version needs a query over one table; give table=version pairs",
                             rule="invalid_schema_version")
        expected = {next(iter(checked.tables)): expected}
    # Each name resolves among the tables the query reads, by the agents' name rule (a short name
    # too). Why: a name outside them was looked up in the served data as given, so an ungranted
    # table's schema version came back in ``current`` (and whether it exists), and a name that
    # was not a whole key (``orders=…``) failed inside the lookup as a 500.
    keyed = {_table_read(checked, name, "If-Schema-Version", "invalid_schema_version"): version
             for name, version in expected.items()}
    # As the caller sees each table (through its grant policy), as the catalog states it: the raw
    # version differed whenever a column was excluded (a change reported on every query) and
    # told the agent when the columns hidden from it changed.
    current = {}
    for key in keyed:
        manifest = engine.current(key)
        current[key] = schema_version(engine.seen(caller, manifest) if manifest is not None else None)
    return schema_changes(keyed, current)


def _table_read(checked: GuardedQuery, name: str, field: str, rule: str) -> str:
    """The key of the table ``name`` (by the agents' name rule, a short name too) among the tables
    the query reads; a 400 naming ``field`` otherwise, the same whether the table exists or not."""
    try:
        return resolve_among(frozenset(checked.tables), name)
    except ApiError:
        raise BadRequest(f"{field} names {name[:200]!r}, which this query does not read; name only tables the "
                         "query reads", rule=rule, details={"tables": sorted(checked.tables)}) from None


_VERSION_ID = re.compile(r"[0-9A-Za-z_-]{1,80}")  # a served version id: never a path, never empty


def _pinned_versions(engine: QueryEngine, checked: GuardedQuery, wanted: dict[str, str],
                     engine_choice: str | None) -> dict[str, str]:
    """``at_versions`` as {table key: version}: each a well-formed version of a copied table the query
    reads, in a query DuckDB runs (400 otherwise: Snowflake has no served versions). Whether the
    version still exists is the engine's answer when it reads it (410 ``version_gone``), so a pin is
    judged exactly where a continuation's is."""
    if engine.pushdown.wanted(checked.tables, engine_choice):
        raise BadRequest("at_versions pins copied tables, but this query runs in Snowflake, which has no served "
                         "versions", rule="live_table")
    pinned: dict[str, str] = {}
    for name, version in wanted.items():
        key = _table_read(checked, name, "at_versions", "invalid_version_pin")
        if version == LIVE_VERSION:  # no table the query reads is live here (``wanted`` above)
            raise BadRequest(f"{key} is live (run in Snowflake): it has no served version to pin",
                             rule="live_table")
        if not isinstance(version, str) or not _VERSION_ID.fullmatch(version):
            raise BadRequest(f"at_versions[{name[:200]!r}] is not a served version id (as an answer's tables name it)",
                             rule="invalid_version_pin")
        pinned[key] = version
    return pinned


def _changed_header(changes: list[dict[str, str]]) -> dict[str, str]:
    if not changes:
        return {}
    names = ", ".join(c["table"] for c in changes)
    return {HEADER_SCHEMA_CHANGED: names.encode("ascii", "backslashreplace").decode("ascii")}


def _maybe_big(engine: QueryEngine, caller: Caller, threshold: int) -> bool:
    """Could any query of this caller scan more than ``threshold`` bytes? (The sum over every granted table.)"""
    if threshold <= 0:
        return False
    total = 0
    for key in engine.grants_of(caller):
        manifest = engine.current(key)
        total += manifest.bytes if manifest is not None else 0
        if total > threshold:
            return True
    return False


@post([f"{BASE}/execute", BASE], operation_id="executeQuery", summary="Run a guarded SQL query", status_code=200,
      opt={"budget": budgets.QUERY},
      responses={200: ResponseSpec(QueryResult | QueryJob | DryRun,  # type: ignore[arg-type]
                                   description="Finished: JSON rows inline, or a QueryJob linking a file; "
                                               "with dry_run, the DryRun estimate"),
                 202: ResponseSpec(QueryJob, description="Still running after wait_s: poll status_url")})
async def execute_query(request: Request[Any, Any, Any], caller: Caller, data: QueryRequest) -> ASGIApp:
    """Run one DuckDB SELECT over the caller's granted tables.

    Finished within ``wait_s``: JSON answers the rows inline (``QueryResult``), other
    formats answer a ``QueryJob`` whose ``result_url`` streams the file. Still running:
    202 with ``{job_id, status}``; poll ``status_url``. Every result reports
    ``truncated`` and, per table read, its served version and ``synced_at``.

    The hot path is kept lean on purpose: ``services`` comes from the app state (a second
    dependency would make Litestar resolve both in a task group) and the guard answer
    comes from its cache; the query itself always runs on a worker thread.
    """
    services: Services = request.app.state.services
    started = received_at(request)  # the time limit's answer is due counting from the request's arrival
    engine, jobs = get_engine(services), get_jobs(services)
    checked = _audited_guard_answer(request, engine, caller, data.query)
    fmt = formats.normalize_format(data.output_format)
    q = services.settings.query
    max_rows, timeout, wait = _limits(data, fmt, q)
    expected = _expected_schemas(request, data)
    big = _maybe_big(engine, caller, q.async_threshold_bytes)
    if data.at_versions is not None and data.min_freshness is not None:
        raise BadRequest("at_versions and min_freshness ask for different data: give one", rule="invalid_version_pin")
    if data.min_freshness is not None or data.dry_run or expected or big or data.at_versions:
        checked = checked or await anyio.to_thread.run_sync(engine.guard, caller, data.query)
    changes = _schema_changes(engine, caller, checked, expected) if checked is not None and expected else []
    pinned = (_pinned_versions(engine, checked, data.at_versions, _engine(data.engine))
              if checked is not None and data.at_versions else None)
    if data.dry_run:
        assert checked is not None
        return await _dry_run(request, services, caller, checked, data, max_rows=max_rows, timeout=timeout,
                              changes=changes, versions=pinned)
    if data.min_freshness is not None:
        assert checked is not None
        await ensure_fresh(services, caller, checked.tables, data.min_freshness, wait)
    sent = None
    if big and checked is not None and await anyio.to_thread.run_sync(lambda: dryrun.over_threshold(
            engine, caller, checked, params=data.params, timeout_s=timeout, threshold=q.async_threshold_bytes)):
        wait, sent = 0.0, "estimated_over_threshold"  # too big to wait for: a job at once, and the answer says why
    job = Job(caller, checked, data.query, fmt=fmt, params=data.params, max_rows=max_rows, timeout_s=timeout,
              engine=_engine(data.engine))
    job.schema_changes, job.versions = changes, pinned
    async with get_limiter(services).query_slot(caller) as slot:
        outcome = await _run(jobs, job, slot, wait=wait, started=started)
    if outcome == _FINISHED and _ran_in_snowflake(job):
        await report_live_budget(request, engine, caller)
    return _answer(request, caller, job, outcome, sent)


def _ran_in_snowflake(job: Job) -> bool:
    """Whether a finished query ran in Snowflake, or was refused or stopped there."""
    if job.engine == "snowflake" or any(t.get("version") == LIVE_VERSION for t in job.tables):
        return True
    err = job.error
    return err is not None and (err.rule == "live_budget" or err.details.get("engine") == "snowflake")


async def _dry_run(request: Request[Any, Any, Any], services: Services, caller: Caller, checked: GuardedQuery,
                   data: QueryRequest, *, max_rows: int, timeout: float, changes: list[dict[str, str]],
                   versions: dict[str, str] | None) -> ASGIApp:
    """The dry-run answer: nothing runs but DuckDB's planner, in one of the caller's slots."""
    engine = get_engine(services)
    threshold = services.settings.query.async_threshold_bytes
    body = await get_limiter(services).run_in_slot(caller, lambda: dryrun.dry_run(
        engine, caller, checked, params=data.params, max_rows=max_rows, timeout_s=timeout, threshold=threshold,
        versions=versions),
        limit_s=timeout, since=received_at(request))
    body["schema_changes"] = changes
    annotate(request, tables=[{"table": t["table"], "version": t["version"]} for t in body["tables"]])
    return _json(msgspec.to_builtins(msgspec.convert(body, DryRun)), headers=_changed_header(changes))


_FINISHED, _DETACHED, _OVERDUE = "finished", "detached", "overdue"


def _audited_guard_answer(request: Request[Any, Any, Any], engine: QueryEngine, caller: Caller,
                          sql: str) -> GuardedQuery | None:
    """The guard's cached answer (a dict lookup; a miss is guarded later, on a worker), with the SQL
    annotated for the audit row even when the cached answer is a refusal."""
    checked = None
    try:
        checked = engine.guard_cached(caller, sql)
    except ApiError as e:  # a cached refusal: the query never becomes a job
        metrics.observe_query("refused", e.rule or e.code)
        raise
    finally:
        annotate(request, sql_text=sql, sql_hash=checked.sql_hash if checked else sql_hash(sql))
    return checked


async def _run(jobs: JobManager, job: Job, slot: Slot, *, wait: float, started: float) -> str:
    """Start ``job`` and wait for it up to ``wait``, and never past its time limit counted from ``started``.

    ``_FINISHED``: it ended (the caller's slot is given back with the block). Otherwise it
    keeps running and keeps the slot until it ends: ``_DETACHED`` (persisted, the caller
    polls it) or ``_OVERDUE`` (past its time limit and not stopped yet).
    """
    if wait <= 0:  # the caller asked not to wait: always a job to poll, even for a query that ends at once
        await anyio.to_thread.run_sync(jobs.detach, job)
        slot.release_when_done(jobs.start(job))
        return _DETACHED
    fut = jobs.start(job)
    give_up = job.timeout_s + OVERSHOOT_S - (time.monotonic() - started)  # the latest answer a time limit allows
    await _ended_within(fut, max(0.0, min(wait, give_up)))
    if not fut.done() and wait < give_up and await anyio.to_thread.run_sync(jobs.detach, job):
        slot.release_when_done(fut)
        return _DETACHED
    if not fut.done():
        slot.release_when_done(fut)
        return _OVERDUE
    fut.result()  # done: re-raises what the worker raised (``_work`` catches everything it expects)
    return _FINISHED


async def _ended_within(fut: Future[Any], timeout: float) -> None:
    """Wait until ``fut`` (a worker thread's) is done or ``timeout`` has passed, whichever comes first.

    One loop future woken by the worker and one timer: ``asyncio.wait`` over ``wrap_future`` built
    two chained futures, a waiter and callbacks on each side for the same thing, which cost the
    event loop about a tenth of a point query's own time."""
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def wake() -> None:
        if not waiter.done():
            waiter.set_result(None)

    def ended(_: Future[Any]) -> None:  # on the worker thread (or here, when already done)
        if not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # closed meanwhile (shutdown)
                loop.call_soon_threadsafe(wake)

    timer = loop.call_later(timeout, wake)
    fut.add_done_callback(ended)
    try:
        await waiter
    finally:
        timer.cancel()


async def _fetched(services: Services, caller: Caller, job_id: str) -> QueryJobRow:
    """The job's row for a fetch; a deferred continuation is started by its first fetch.

    The re-run holds one of the caller's query slots while it runs (429 when none is free: it
    stays deferred). The fetch that started it waits for it up to ``QUERY_WAIT_S``, as a query
    request does, so a quick re-run answers that first fetch (status, page or file) at once."""
    jobs = get_jobs(services)
    row = await anyio.to_thread.run_sync(jobs.load, job_id, caller)
    if job_rows.deferred(row) is None:
        return row
    async with get_limiter(services).query_slot(caller) as slot:
        fut = await anyio.to_thread.run_sync(jobs.resume, row, caller)
        if fut is not None:
            slot.release_when_done(fut)
    if fut is not None:
        await asyncio.wait([asyncio.wrap_future(fut)], timeout=services.settings.query.wait_s)
    return await anyio.to_thread.run_sync(jobs.load, job_id, caller)


def _answer(request: Request[Any, Any, Any], caller: Caller, job: Job, outcome: str,
            sent: str | None = None) -> ASGIApp:
    """The response to ``execute_query``: a job to poll, a timeout, the job's error, inline rows or a job with its file."""
    if outcome == _DETACHED:
        return _json(job_body(job) | {"sent_to_job": sent}, 202, headers=_changed_header(job.schema_changes))
    if outcome == _OVERDUE:
        raise QueryTimeout(f"the query ran longer than its time limit of {job.timeout_s:g} s and was stopped",
                           rule="timeout", details={"timeout_s": job.timeout_s})
    annotate(request, tables=_audit_tables(job.tables), rows=job.row_count, bytes=job.bytes)
    if job.error is not None:
        raise job.error
    headers = provenance_headers(job_provenance(job)) | _changed_header(job.schema_changes)
    if job.fmt == "json":
        budgets.returned(request, caller, rows=job.row_count, nbytes=job.bytes or 0)
        return SlicedResponse(job.body or [], headers, media_type=formats.MEDIA_TYPES["json"])
    return _json(job_body(job), headers=headers)


@get([f"{BASE}/jobs/{{job_id:str}}", f"{BASE}/{{job_id:str}}"], operation_id="getQueryJob")
async def get_job(caller: Caller, services: Services, job_id: str) -> QueryJob:
    """Status of a query job: progress (0-1, from DuckDB) and elapsed time while it runs; rows, bytes,
    duration, tables with served versions, error, expiry. A continuation's first fetch starts it and
    waits up to ``QUERY_WAIT_S`` for it."""
    jobs = get_jobs(services)
    row = await _fetched(services, caller, job_id)

    def status() -> dict[str, Any]:  # off the event loop: DuckDB's progress call can take milliseconds
        return {**job_body(row), **progress_of(row, jobs.running.get(row.id))}

    return msgspec.convert(await anyio.to_thread.run_sync(status), QueryJob)


@dataclasses.dataclass
class _ResultOperation(Operation):
    """The result's OpenAPI operation: the file comes in its format's media type, not as octet-stream."""

    def __post_init__(self) -> None:
        ok = (self.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse):
            binary = Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
            ok.content = {media: OpenAPIMediaType(schema=Schema() if media == "application/json" else binary)
                          for media in formats.MEDIA_TYPES.values()}


@get(f"{BASE}/jobs/{{job_id:str}}/result", operation_id="getQueryJobResult", media_type="application/octet-stream",
     operation_class=_ResultOperation, opt={"budget": budgets.READ})
async def get_job_result(request: Request[Any, Any, Any], caller: Caller, services: Services, job_id: str,
                         format: str | None = None) -> File:
    """Stream a finished job's result file (Arrow IPC stream, CSV, Parquet or JSON): in its own format, or
    in ``format`` (converted once, kept beside it). Provenance comes in ``Agents-Data-*`` headers, and
    for Parquet in the file's key-value metadata too. 409 ``job_not_finished`` while it runs (a
    continuation's first fetch starts it and waits up to ``QUERY_WAIT_S``)."""
    jobs = get_jobs(services)
    fmt = formats.normalize_format(format) if format else None
    row = await _fetched(services, caller, job_id)
    if row.status in ACTIVE:
        raise Conflict(f"job {row.id} is {row.status}; poll status_url until it has succeeded", rule="job_not_finished")
    path = jobs.result_path(row, caller)
    fmt = fmt or formats.normalize_format(row.output_format)
    prov = job_provenance(row)
    if fmt != row.output_format:
        meta = {PROVENANCE_KEY: formats.encode_json(prov).decode()}
        path = await anyio.to_thread.run_sync(lambda: jobs.converted(row, path, caller, fmt, meta))
    annotate(request, sql_text=row.sql_text, sql_hash=row.sql_hash, tables=_audit_tables(row.tables or []),
             rows=row.row_count, bytes=row.bytes)
    budgets.returned(request, caller, rows=row.row_count, nbytes=path.stat().st_size)
    return File(path, media_type=formats.MEDIA_TYPES[fmt], filename=f"{row.id}.{formats.EXTENSIONS[fmt]}",
                content_disposition_type="attachment", headers=provenance_headers(prov))


@get(f"{BASE}/jobs/{{job_id:str}}/rows", operation_id="getQueryJobRows", opt={"budget": budgets.READ},
     responses={200: ResponseSpec(RowsPage, description="One page of rows; next_url is null on the last page")})
async def get_job_rows(  # noqa: PLR0917 - query parameters are keyword arguments for Litestar
        request: Request[Any, Any, Any], caller: Caller, services: Services, job_id: str,
                       cursor: str | None = None, limit: int | None = None) -> ASGIApp:
    """One page of a finished job's rows as JSON, from the stored result (the query is not run again;
    a continuation's first fetch starts its one re-run and waits up to ``QUERY_WAIT_S`` for it).

    Follow ``next_url`` (or pass ``next_cursor`` as ``cursor``) until it is null. ``limit``
    defaults to and is at most ``QUERY_JSON_MAX_ROWS``. 409 ``job_not_finished`` while it runs."""
    q = services.settings.query
    if limit is not None and not 1 <= limit <= q.json_max_rows:
        raise BadRequest(f"limit must be 1 to {q.json_max_rows}", rule="invalid_limit")
    jobs = get_jobs(services)
    row = await _fetched(services, caller, job_id)
    if row.status in ACTIVE:
        raise Conflict(f"job {row.id} is {row.status}; poll status_url until it has succeeded", rule="job_not_finished")
    path = jobs.result_path(row, caller)
    body = await anyio.to_thread.run_sync(lambda: pages.page(row, path, cursor=cursor, limit=limit or q.json_max_rows))
    prov = job_provenance(row)
    body["provenance"] = prov
    annotate(request, sql_text=row.sql_text, sql_hash=row.sql_hash, tables=_audit_tables(row.tables or []),
             rows=body["row_count"])
    payload = msgspec.to_builtins(msgspec.convert(body, RowsPage))
    encoded = formats.encode_json(payload)
    budgets.returned(request, caller, rows=body["row_count"], nbytes=len(encoded))
    return ASGIResponse(body=encoded, media_type=formats.MEDIA_TYPES["json"], headers=provenance_headers(prov))


@delete([f"{BASE}/jobs/{{job_id:str}}", f"{BASE}/{{job_id:str}}"], operation_id="cancelQueryJob", status_code=200)
async def cancel_job(caller: Caller, services: Services, job_id: str) -> QueryJob:
    """Cancel a running job (its DuckDB query is interrupted). A finished job is left as it is."""
    row = await anyio.to_thread.run_sync(get_jobs(services).cancel, job_id, caller)
    return msgspec.convert(job_body(row), QueryJob)


ROUTES: list[Any] = [execute_query, get_job, get_job_result, get_job_rows, cancel_job]
__all__ = ["ROUTES", "QueryResult"]
