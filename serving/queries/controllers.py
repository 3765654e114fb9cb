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
import dataclasses
import time
from typing import Any

import anyio.to_thread
import msgspec
from litestar import Request, delete, get, post
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIFormat, OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Operation, Schema
from litestar.response import File
from litestar.response.base import ASGIResponse
from litestar.types import ASGIApp

from serving.lib import formats
from serving.lib.audit import annotate
from serving.lib.caller import Caller
from serving.lib.errors import BadRequest, PayloadTooLarge, QueryTimeout
from serving.lib.ingress import received_at
from serving.lib.limits import OVERSHOOT_S, Slot, get_limiter
from serving.lib.services import Services
from serving.queries.engine import QueryEngine
from serving.queries.guard import GuardedQuery, sql_hash
from serving.queries.jobs import Job, JobManager
from serving.queries.pushdown import ENGINES
from serving.queries.schemas import QueryJob, QueryRequest, QueryResult
from serving.queries.services import ensure_fresh, get_engine, get_jobs
from shared.control.models import QueryJobRow
from shared.settings import QuerySettings

BASE = "/api/v1/queries"


def _limits(data: QueryRequest, fmt: str, q: QuerySettings) -> tuple[int, float, float]:
    max_rows = q.max_rows if data.max_rows is None else data.max_rows
    if max_rows > q.max_rows:
        raise PayloadTooLarge(f"max_rows {max_rows} is over the limit of {q.max_rows} rows per query",
                              rule="too_many_rows", details={"limit": q.max_rows})
    if fmt == "json":
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
    return {
        "job_id": job.id, "status": job.status, "output_format": fmt,
        "status_url": f"{BASE}/jobs/{job.id}",
        "result_url": f"{BASE}/jobs/{job.id}/result" if finished else None,
        "row_count": job.row_count, "bytes": job.bytes, "truncated": job.truncated if finished else None,
        "duration_ms": duration, "tables": job.tables or [], "sql_hash": job.sql_hash, "error": error,
        "created_at": job.created_at, "finished_at": job.finished_at, "expires_at": job.expires_at,
    }



def _json(payload: Any, status: int = 200) -> ASGIResponse:
    return ASGIResponse(body=formats.encode_json(payload), media_type=formats.MEDIA_TYPES["json"], status_code=status)


@post([f"{BASE}/execute", BASE], operation_id="executeQuery", summary="Run a guarded SQL query", status_code=200,
      responses={200: ResponseSpec(QueryResult, description="Finished: JSON rows inline, or a QueryJob linking a file"),
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
    max_rows, timeout, wait = _limits(data, fmt, services.settings.query)
    if data.min_freshness is not None:
        checked = checked or await anyio.to_thread.run_sync(engine.guard, caller, data.query)
        assert checked is not None
        await ensure_fresh(services, caller, checked.tables, data.min_freshness, wait)
    job = Job(caller, checked, data.query, fmt=fmt, params=data.params, max_rows=max_rows, timeout_s=timeout,
              engine=_engine(data.engine))
    async with get_limiter(services).query_slot(caller) as slot:
        outcome = await _run(jobs, job, slot, wait=wait, started=started)
    return _answer(request, job, outcome)


_FINISHED, _DETACHED, _OVERDUE = "finished", "detached", "overdue"


def _audited_guard_answer(request: Request[Any, Any, Any], engine: QueryEngine, caller: Caller,
                          sql: str) -> GuardedQuery | None:
    """The guard's cached answer (a dict lookup; a miss is guarded later, on a worker), with the SQL
    annotated for the audit row even when the cached answer is a refusal."""
    checked = None
    try:
        checked = engine.guard_cached(caller, sql)
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
    await asyncio.wait([asyncio.wrap_future(fut)], timeout=max(0.0, min(wait, give_up)))
    if not fut.done() and wait < give_up and await anyio.to_thread.run_sync(jobs.detach, job):
        slot.release_when_done(fut)
        return _DETACHED
    if not fut.done():
        slot.release_when_done(fut)
        return _OVERDUE
    await asyncio.wrap_future(fut)
    return _FINISHED


def _answer(request: Request[Any, Any, Any], job: Job, outcome: str) -> ASGIApp:
    """The response to ``execute_query``: a job to poll, a timeout, the job's error, inline rows or a job with its file."""
    if outcome == _DETACHED:
        return _json(job_body(job), 202)
    if outcome == _OVERDUE:
        raise QueryTimeout(f"the query ran longer than its time limit of {job.timeout_s:g} s and was stopped",
                           rule="timeout", details={"timeout_s": job.timeout_s})
    annotate(request, tables=_audit_tables(job.tables), rows=job.row_count, bytes=job.bytes)
    if job.error is not None:
        raise job.error
    if job.fmt == "json":
        return ASGIResponse(body=job.body or b"", media_type=formats.MEDIA_TYPES["json"])
    return _json(job_body(job))


@get([f"{BASE}/jobs/{{job_id:str}}", f"{BASE}/{{job_id:str}}"], operation_id="getQueryJob")
async def get_job(caller: Caller, services: Services, job_id: str) -> QueryJob:
    """Status of a query job: rows, bytes, duration, tables with served versions, error, expiry."""
    row = await anyio.to_thread.run_sync(get_jobs(services).load, job_id, caller)
    return msgspec.convert(job_body(row), QueryJob)


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
     operation_class=_ResultOperation)
async def get_job_result(request: Request[Any, Any, Any], caller: Caller, services: Services, job_id: str) -> File:
    """Stream a finished job's result file in its format (Arrow IPC stream, CSV, Parquet or JSON)."""
    jobs = get_jobs(services)
    row = await anyio.to_thread.run_sync(jobs.load, job_id, caller)
    path = jobs.result_path(row, caller)
    annotate(request, sql_text=row.sql_text, sql_hash=row.sql_hash, tables=_audit_tables(row.tables or []),
             rows=row.row_count, bytes=row.bytes)
    return File(path, media_type=formats.MEDIA_TYPES[row.output_format], filename=path.name,
                content_disposition_type="attachment")


@delete([f"{BASE}/jobs/{{job_id:str}}", f"{BASE}/{{job_id:str}}"], operation_id="cancelQueryJob", status_code=200)
async def cancel_job(caller: Caller, services: Services, job_id: str) -> QueryJob:
    """Cancel a running job (its DuckDB query is interrupted). A finished job is left as it is."""
    row = await anyio.to_thread.run_sync(get_jobs(services).cancel, job_id, caller)
    return msgspec.convert(job_body(row), QueryJob)


ROUTES: list[Any] = [execute_query, get_job, get_job_result, cancel_job]
__all__ = ["ROUTES", "QueryResult"]
