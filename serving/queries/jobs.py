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
- Results are private (the job's row and the rules for reading it: ``job_rows.py``).
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

from serving.lib import formats
from serving.lib.caller import Caller
from serving.lib.errors import ApiError
from serving.lib.results import ArrowBatches, ArrowStream, JsonRows
from serving.queries import job_rows, scheduling
from serving.queries.engine import QueryEngine
from serving.queries.guard import GuardedQuery, sql_hash
from serving.queries.job_rows import ACTIVE
from serving.queries.scheduling import Scheduler
from serving.queries.watchdog import Handle
from shared.control.models import QueryJobRow, utcnow
from shared.settings import Settings

log = logging.getLogger("agents_data.queries")
CANCEL_POLL_S = 1.0  # how soon a cancel made through another replica stops the query here


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
                stop = job_rows.to_interrupt(self.settings.control_url, mine)
            except Exception:
                log.exception("could not poll for cancelled query jobs")
                continue
            for job in mine:
                if job.id in stop:
                    log.info("query job %s: %s; interrupting it", job.id, stop[job.id])
                    job.handle.cancel()

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

    def _save(self, job: Job, *, insert: bool) -> None:
        job_rows.save(self.settings.control_url, self.replica, job, insert=insert)

    def detach(self, job: Job) -> bool:
        """The request stops waiting: persist the running job. False if it finished meanwhile."""
        with job.lock:
            if job.done:
                return False
            self._save(job, insert=True)
            job.detached = True
            return True

    # -- reading (rules in job_rows.py) ---------------------------------------------------
    def load(self, job_id: str, caller: Caller) -> QueryJobRow:
        """The job's row if ``caller`` may see it; 404 (same answer as unknown) otherwise."""
        return job_rows.load(self.settings.control_url, job_id, caller)

    def result_path(self, row: QueryJobRow, caller: Caller) -> Path:
        """The result file of ``row`` for ``caller`` (403 no longer granted, 410 expired, 404 none)."""
        return job_rows.result_file(self.settings.results_path, row, caller)

    def cancel(self, job_id: str, caller: Caller) -> QueryJobRow:
        row = self.load(job_id, caller)
        job = self.running.get(job_id)
        if job is not None:
            job.handle.cancel()
        if row.status in ACTIVE:
            job_rows.mark_cancelled(self.settings.control_url, job_id)
            row.status = "cancelled"
        return row

    def close(self) -> None:
        log.info("query paths used by this process: %s", self.sched.stats)
        self._closing.set()
        for job in list(self.running.values()):
            job.handle.cancel()
        self.pool.shutdown(wait=True, cancel_futures=True)
