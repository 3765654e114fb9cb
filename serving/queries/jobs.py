"""Query jobs: every query runs as a job on a worker thread; slow ones are answered with a job id.

Why this shape:
- A query that finishes within ``wait_s`` costs no control-database write when its
  format is JSON (the body goes back inline); the hot path of an agent loop is then no
  I/O besides DuckDB and one thread hop (agent SQL never runs on the event loop).
- A query still running at ``wait_s``, or any file result (csv/parquet/arrow, served by
  link), is persisted as a ``QueryJobRow`` so any replica can report it and serve the
  file from ``<home>/results``. A per-job lock orders "request gives up waiting" against
  "worker finishes", so a row is inserted exactly once and never updated before it exists.
- Whether a job takes the FIFO short lane is decided by ``scheduling.Scheduler`` from
  what this replica learned about the query text; it always runs on a worker thread.
- JSON rows are encoded batch by batch and refused past ``QUERY_JSON_MAX_BYTES``, so an
  oversized result is never built in memory.
- Results are private: a job is visible to the token that ran it and to admin; anyone
  else gets the same 404 as for an unknown id. Expired results answer 410. A result
  read from a table the token may no longer read is refused (403 ``table_not_granted``):
  results outlive no grant.
- Cancel interrupts the cursor when the job runs on this replica; otherwise the row is
  marked cancelled, and the owning replica sees it within ``CANCEL_POLL_S`` (a thread that
  queries the control database only while this replica runs worker jobs) and
  interrupts the query. Its final write never resurrects a cancelled row. The same
  thread stops the jobs of revoked tokens, so deleting a swarm stops its queries.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from serving.lib import formats
from serving.lib.caller import Caller
from serving.lib.errors import ApiError, Forbidden, NotFound
from serving.lib.results import ArrowBatches, ArrowStream, JsonRows
from serving.queries import scheduling
from serving.queries.engine import QueryEngine
from serving.queries.guard import GuardedQuery, sql_hash
from serving.queries.scheduling import Scheduler
from serving.queries.watchdog import Handle
from shared.control.db import session_scope
from shared.control.models import QueryJobRow, TokenRow, utcnow
from shared.settings import Settings

log = logging.getLogger("agents_data.queries")
ACTIVE = ("queued", "running")
CANCEL_POLL_S = 1.0  # how soon a cancel made through another replica stops the query here


class ResultGone(ApiError):
    status, code = 410, "expired"


class Job:
    """One query's in-memory state while this replica runs it."""

    def __init__(self, caller: Caller, checked: GuardedQuery | None, sql: str, *, fmt: str, params: Any,
                 max_rows: int, timeout_s: float) -> None:
        self._id: str | None = None
        self.caller, self.checked, self.sql, self.fmt, self.params = caller, checked, sql, fmt, params
        self.max_rows, self.timeout_s = max_rows, timeout_s
        self.handle = Handle()
        self.lock = threading.Lock()
        self.detached = False  # the request stopped waiting; the row exists
        self.done = False
        self.status = "running"
        self.created_at = self.started_at = utcnow()
        self.finished_at: dt.datetime | None = None
        self.body: bytes | None = None  # inline JSON body
        self.error: ApiError | None = None
        self.row_count: int | None = None
        self.bytes: int | None = None
        self.truncated = False
        self.tables: list[dict[str, str]] = []
        self.sql_hash = checked.sql_hash if checked else sql_hash(sql)
        self.expires_at: dt.datetime | None = None
        self.result_path: Path | None = None

    @property
    def id(self) -> str:
        """Made on first use: an inline JSON query never needs one (and ``urandom`` is a syscall)."""
        if self._id is None:
            self._id = secrets.token_urlsafe(16)
        return self._id

    @property
    def owner(self) -> str | None:
        return None if self.caller.is_admin else self.caller.token_id


class JobManager:
    def __init__(self, engine: QueryEngine, settings: Settings, *, workers: int = scheduling.WORKERS) -> None:
        self.engine, self.settings, self.q = engine, settings, settings.query
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="query")
        self.running: dict[str, Job] = {}
        self.replica = settings.api.replica_id
        self.sched = Scheduler(engine.watchdog)
        settings.results_path.mkdir(parents=True, exist_ok=True)
        self._closing = threading.Event()
        self._poller = threading.Thread(target=self._poll_cancels, name="query-cancel-poller", daemon=True)
        self._poller.start()

    def _poll_cancels(self) -> None:
        """Interrupt jobs of this replica that another replica marked cancelled, or whose token was revoked.

        A revoked token (its own revocation, its parent's, or its swarm's deletion) stops
        its queries too, whether their request is still waiting or they were persisted.
        """
        while not self._closing.wait(CANCEL_POLL_S):
            mine = [job for job in list(self.running.values()) if not job.handle.cancelled]
            if not mine:
                continue  # no worker query runs here
            try:
                stop = self._to_interrupt(mine)
            except Exception:
                log.exception("could not poll for cancelled query jobs")
                continue
            for job in mine:
                if job.id in stop:
                    log.info("query job %s: %s; interrupting it", job.id, stop[job.id])
                    job.handle.cancel()

    def _to_interrupt(self, jobs: list[Job]) -> dict[str, str]:
        """Ids of ``jobs`` to stop, with why: one control-database round trip per kind."""
        persisted = [job.id for job in jobs if job.detached]
        tokens = {job.caller.token_id for job in jobs if job.caller.token_id}
        stop: dict[str, str] = {}
        with session_scope(self.settings.control_url) as s:
            if persisted:
                for job_id in s.scalars(select(QueryJobRow.id).where(QueryJobRow.id.in_(persisted),
                                                                      QueryJobRow.status == "cancelled")):
                    stop[job_id] = "cancelled through another replica"
            if tokens:
                revoked = set(s.scalars(select(TokenRow.id).where(TokenRow.id.in_(tokens),
                                                                  TokenRow.revoked_at.is_not(None))))
                for job in jobs:
                    if job.caller.token_id in revoked:
                        stop.setdefault(job.id, "its token was revoked")
        return stop

    def start(self, job: Job) -> Future[Job]:
        self.running[job.id] = job
        return self.pool.submit(self._work, job)

    # -- worker side -------------------------------------------------------------------
    def _work(self, job: Job) -> Job:
        try:
            with self.sched.lane(self.sched.is_short(job.checked.sql if job.checked else None)):
                job.checked = job.checked or self.engine.guard(job.caller, job.sql)  # the query's one guard check
                job.sql_hash = job.checked.sql_hash
                if job.fmt == "json":
                    self._run_json(job, job.checked)
                else:
                    self._run_file(job, job.checked)
            job.status = "succeeded"
        except ApiError as e:
            job.error, job.status = e, "cancelled" if e.rule == "cancelled" else "failed"
        except Exception as e:  # never leave a job running because of a bug
            log.exception("query job %s failed unexpectedly", job.id)
            job.error, job.status = ApiError("internal error while running the query"), "failed"
            del e
        job.finished_at = utcnow()
        job.expires_at = job.finished_at + dt.timedelta(seconds=self.q.result_ttl_s)
        with job.lock:
            job.done = True
            detached = job.detached
        try:
            if detached or job.fmt != "json":
                if detached and job.fmt == "json" and job.body is not None:
                    job.result_path = self._path(job)
                    job.result_path.write_bytes(job.body)
                    job.bytes = len(job.body)
                self._save(job, insert=not detached)
        except Exception:
            log.exception("could not record query job %s", job.id)
        finally:
            self.running.pop(job.id, None)
        return job

    def _run_json(self, job: Job, checked: GuardedQuery) -> None:
        started = time.perf_counter()
        result = self.engine.execute(job.caller, checked, params=job.params, max_rows=job.max_rows,
                                     timeout_s=job.timeout_s, handle=job.handle,
                                     output=JsonRows(self.q.json_max_bytes))
        self.sched.record(checked.sql, time.perf_counter() - started)
        job.row_count, job.truncated = result.row_count, result.truncated
        job.tables = [t.as_dict() for t in result.tables]
        payload = {"job_id": None, "status": "succeeded", "columns": result.columns, "rows": result.rows,
                   "row_count": result.row_count, "truncated": result.truncated, "max_rows": job.max_rows,
                   "tables": job.tables, "duration_ms": round(result.duration_ms, 3), "sql_hash": result.sql_hash}
        job.body = formats.encode_json(payload)
        job.bytes = len(job.body)
        formats.check_size(job.bytes, self.q.json_max_bytes + (64 << 10))  # rows plus the answer's own fields

    def _run_file(self, job: Job, checked: GuardedQuery) -> None:
        path = self._path(job)

        def write(stream: ArrowStream) -> int:
            job.tables = [t.as_dict() for t in stream.tables]  # known to the audit row even if writing fails
            return formats.write_file(stream, job.fmt, path, max_bytes=self.q.max_result_bytes)

        result = self.engine.execute(job.caller, checked, params=job.params, max_rows=job.max_rows,
                                     timeout_s=job.timeout_s, handle=job.handle, output=ArrowBatches(write))
        job.bytes, job.row_count, job.truncated = result.consumed, result.row_count, result.truncated
        job.result_path = path

    def _path(self, job: Job) -> Path:
        return self.settings.results_path / f"{job.id}.{formats.EXTENSIONS[job.fmt]}"

    # -- persistence -------------------------------------------------------------------
    def _row_values(self, job: Job) -> dict[str, Any]:
        finished = job.finished_at
        duration = (finished - job.started_at).total_seconds() * 1000.0 if finished else None
        return {
            "status": job.status, "row_count": job.row_count, "bytes": job.bytes, "truncated": job.truncated,
            "tables": job.tables, "error": job.error.message if job.error else None,
            "error_rule": (job.error.rule or job.error.code) if job.error else None,
            "result_path": job.result_path.name if job.result_path else None, "finished_at": finished,
            "duration_ms": duration,
            "expires_at": job.expires_at,
        }

    def _save(self, job: Job, *, insert: bool) -> None:
        values = self._row_values(job)
        with session_scope(self.settings.control_url) as s:
            if insert:
                s.add(QueryJobRow(id=job.id, token_id=job.owner, swarm_id=job.caller.swarm_id, replica=self.replica,
                                  sql_text=job.sql, sql_hash=job.sql_hash, params=job.params, output_format=job.fmt,
                                  max_rows=job.max_rows, created_at=job.created_at, started_at=job.started_at, **values))
            else:
                s.execute(update(QueryJobRow).where(QueryJobRow.id == job.id, QueryJobRow.status != "cancelled")
                          .values(**values))

    def detach(self, job: Job) -> bool:
        """The request stops waiting: persist the running job. False if it finished meanwhile."""
        with job.lock:
            if job.done:
                return False
            self._save(job, insert=True)
            job.detached = True
            return True

    # -- reading -------------------------------------------------------------------------
    def load(self, job_id: str, caller: Caller) -> QueryJobRow:
        """The job's row if ``caller`` may see it; 404 (same answer as unknown) otherwise."""
        with session_scope(self.settings.control_url) as s:
            row = s.get(QueryJobRow, job_id) if len(job_id) <= 64 else None
            if row is None or not (caller.is_admin or (row.token_id is not None and row.token_id == caller.token_id)):
                raise NotFound(f"query job {job_id[:64]} does not exist or belongs to another token", rule="job_not_found")
            s.expunge(row)
        if row.status == "succeeded" and row.expires_at is not None and row.expires_at < utcnow():
            row.status = "expired"
        return row

    def result_path(self, row: QueryJobRow, caller: Caller) -> Path:
        """The result file of ``row`` for ``caller``: 403 ``table_not_granted`` once a table it was read
        from is no longer granted to the caller, 410 when expired, 404 when there is none."""
        check_still_granted(caller, row.tables, f"the result of job {row.id}")
        if row.status == "expired":
            raise ResultGone(f"the result of job {row.id} expired and was deleted; run the query again", rule="expired")
        if row.status != "succeeded" or not row.result_path:
            raise NotFound(f"job {row.id} has no result (status {row.status})", rule="no_result")
        path = self.settings.results_path / Path(row.result_path).name
        if not path.is_file():
            raise ResultGone(f"the result of job {row.id} is no longer available; run the query again", rule="expired")
        return path

    def cancel(self, job_id: str, caller: Caller) -> QueryJobRow:
        row = self.load(job_id, caller)
        job = self.running.get(job_id)
        if job is not None:
            job.handle.cancel()
        if row.status in ACTIVE:
            with session_scope(self.settings.control_url) as s:
                s.execute(update(QueryJobRow).where(QueryJobRow.id == job_id, QueryJobRow.status.in_(ACTIVE))
                          .values(status="cancelled", finished_at=utcnow(), error="cancelled by request",
                                  error_rule="cancelled", expires_at=utcnow()))
            row.status = "cancelled"
        return row

    def close(self) -> None:
        log.info("query paths used by this process: %s", self.sched.stats)
        self._closing.set()
        for job in list(self.running.values()):
            job.handle.cancel()
        self.pool.shutdown(wait=True, cancel_futures=True)


def ungranted(caller: Caller, tables: Any) -> list[str]:
    """Tables among ``tables`` (``[{table, version, synced_at}]`` as results and artifacts record
    them) that ``caller`` may not read now."""
    if caller.is_admin:
        return []
    names = {str(t.get("table")) for t in (tables or []) if isinstance(t, dict) and t.get("table")}
    return sorted(n for n in names if not caller.may_read(n))


def check_still_granted(caller: Caller, tables: Any, what: str) -> None:
    """Results outlive no grant: data read from a table is served only to callers who may still read it."""
    missing = ungranted(caller, tables)
    if missing:
        raise Forbidden(f"{what} was read from {', '.join(missing)}, which this token may no longer read; results "
                        "are served only while their tables are granted", rule="table_not_granted",
                        details={"tables": missing})
