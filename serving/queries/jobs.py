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
  With ``QUERY_PRIORITIES`` there are two pools: inline JSON queries of texts known to be
  cheap run at the event loop's CPU priority; everything else (new or recently heavy texts,
  result files, jobs nobody waits for) on batch threads a few nice levels lower, so a few
  agents' bombs cannot take the CPU from ``/health`` and other agents' point queries.
- JSON rows are encoded batch by batch and cut past ``QUERY_JSON_MAX_BYTES``, so an
  oversized result is never built in memory; the answer stays in those pieces until it is
  sent (``serving/lib/sliced.py``), never joined into one buffer.
- Results are private (the job's row and the rules for reading it: ``job_rows.py``).
- A cut answer's continuation is lazy: recorded, never run, until its first fetch
  (``resume``); its re-run reads the served versions the cut answer read. So a truncated
  answer costs one run, and an answer refused at a cap costs nothing more.
- Cancel interrupts the cursor when the job runs on this replica; otherwise the row is
  marked cancelled, and the owning replica sees it within ``CANCEL_POLL_S`` (a thread that
  queries the control database only while this replica runs worker jobs) and
  interrupts the query. Its final write never resurrects a cancelled row. The same
  thread stops the jobs of revoked tokens, so deleting a swarm stops its queries.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from serving.lib import formats, metrics, quota
from serving.lib.admission import Admission, Cancelled, Place
from serving.lib.caller import Caller
from serving.lib.continuation import PROVENANCE_KEY, continuation, provenance
from serving.lib.errors import ApiError, Conflict
from serving.lib.limits import heavy_key, lower_priority
from serving.lib.results import FILE_BATCH_ROWS, FILE_MAX_ROWS, ArrowBatches, ArrowStream, JsonRows
from serving.queries import job_rows, pages, scheduling
from serving.queries.engine import QueryCancelled, QueryEngine
from serving.queries.guard import GuardedQuery, sql_hash
from serving.queries.job_rows import ACTIVE, job_extra
from serving.queries.scheduling import Scheduler
from serving.queries.watchdog import Handle
from serving.tables.policies import hides_figures
from shared.control.models import QueryJobRow, utcnow
from shared.settings import Settings

log = logging.getLogger("agents_data.queries")
CANCEL_POLL_S = 1.0  # how soon a cancel made through another replica stops the query here


class Job:
    """One query's in-memory state while this replica runs it."""

    def __init__(self, caller: Caller, checked: GuardedQuery | None, sql: str, *, fmt: str, params: Any,
                 max_rows: int, timeout_s: float, engine: str | None = None) -> None:
        self._id: str | None = None
        self.engine = engine  # None: decided by the tables (live ones run in Snowflake)
        self.caller, self.checked, self.sql, self.fmt, self.params = caller, checked, sql, fmt, params
        self.max_rows, self.timeout_s = max_rows, timeout_s
        self.deadline = time.monotonic() + timeout_s  # a wait for a place for heavy work counts against it
        self.queued_s = 0.0  # how long it waited for that place
        self.handle = Handle()
        self.lock = threading.Lock()
        self.detached = False  # the request stopped waiting; the row exists
        self.done = False
        self.status = "running"
        self.created_at = self.started_at = utcnow()
        self.finished_at: dt.datetime | None = None
        self.body: list[formats.Piece] | None = None  # inline JSON body, in pieces (``formats.pieces``)
        self.error: ApiError | None = None
        self.row_count: int | None = None
        self.bytes: int | None = None
        self.truncated = False
        self.tables: list[dict[str, str]] = []
        self.sql_hash = checked.sql_hash if checked else sql_hash(sql)
        self.expires_at: dt.datetime | None = None
        self.result_path: Path | None = None
        self.cut_by: str | None = None  # "row_cap" | "byte_cap" when rows were cut
        self.continuation: dict[str, Any] | None = None
        self.continuation_id: str | None = None  # the deferred re-run's row, recorded once this job has succeeded
        self.versions: dict[str, str] | None = None  # {table key: served version} to read (a re-run's, or at_versions)
        self.reservation: quota.Reservation | None = None  # room held for its result file until its row counts it
        self.schema_changes: list[dict[str, str]] = []
        self.watermarks: dict[str, str | None] = {}  # table key -> source watermark of the version read
        self.columns: list[dict[str, str]] = []  # [{name, type}] as DuckDB names the types

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
    def __init__(self, engine: QueryEngine, settings: Settings, *, workers: int = scheduling.WORKERS,
                 admission: Admission | None = None) -> None:
        self.engine, self.settings, self.q = engine, settings, settings.query
        self.admission = admission or Admission(settings.query.heavy_concurrent)
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="query")
        self.batch = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="query-batch",
                                        initializer=lower_priority) if self.q.priorities else None
        self.running: dict[str, Job] = {}
        self.replica = settings.api.replica_id
        self.sched = Scheduler(engine.watchdog)
        self._conversion_locks = [threading.Lock() for _ in range(64)]  # by the conversion's name: see converted()
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
                    self.admission.poke()  # a cancelled job waiting for a place stops waiting

    def start(self, job: Job) -> Future[Job]:
        self.running[job.id] = job
        return self._pool_for(job).submit(self._work, job)

    def _pool_for(self, job: Job) -> ThreadPoolExecutor:
        """With ``QUERY_PRIORITIES``, only an inline JSON query of a cheap text runs at the loop's priority."""
        if self.batch is None or (job.fmt == "json" and not job.detached and self._cheap(job)):
            return self.pool
        return self.batch

    def _cheap(self, job: Job) -> bool:
        """Whether ``job`` takes the short lane (and, with priorities, the loop's priority)."""
        sql = job.checked.sql if job.checked else None
        return self.sched.is_cheap(sql) if self.batch is not None else self.sched.is_short(sql)

    # -- worker side -------------------------------------------------------------------
    def _work(self, job: Job) -> Job:
        # A job known to be asynchronous (nobody waits for it, or a file result) reports DuckDB's progress.
        job.handle.wants_progress = job.detached or job.fmt != "json"
        cpu: float | None = None
        began = 0.0
        try:
            with self._admitted(job), self.sched.lane(self._cheap(job)):
                job.checked = job.checked or self.engine.guard(job.caller, job.sql)  # the query's one guard check
                cpu, began = time.thread_time(), time.perf_counter()  # the run's cost, without the guard check
                job.sql_hash = job.checked.sql_hash
                if job.fmt == "json":
                    self._run_json(job, job.checked)
                else:
                    self._run_file(job, job.checked)
            if job.continuation_id is not None:  # only an answer that is given: a refused one leaves nothing behind
                job_rows.defer(self.settings.control_url, job, job.continuation_id, result_ttl_s=self.q.result_ttl_s)
            job.status = "succeeded"
        except ApiError as e:
            job.error, job.status = e, "cancelled" if e.rule == "cancelled" else "failed"
        except Exception as e:  # never leave a job running because of a bug
            log.exception("query job %s failed unexpectedly", job.id)
            job.error, job.status = ApiError("internal error while running the query"), "failed"
            del e
        if job.checked is not None and cpu is not None:
            self.sched.record_cost(job.checked.sql, time.thread_time() - cpu - job.handle.setup_cpu_s,
                                   time.perf_counter() - began)
        job.finished_at = utcnow()
        job.expires_at = job.finished_at + dt.timedelta(seconds=self.q.result_ttl_s)
        _count(job)
        with job.lock:
            job.done = True
            detached = job.detached
        try:
            if detached or job.fmt != "json":
                if detached and job.fmt == "json" and job.body is not None:
                    job.result_path = self._path(job)
                    with job.result_path.open("wb") as fh:
                        fh.writelines(job.body)
                    job.bytes = sum(map(len, job.body))
                job_rows.save(self.settings.control_url, self.replica, job, insert=not detached,
                              reservation=job.reservation)
                job.reservation = None  # the row counts the file now
        except Exception:
            log.exception("could not record query job %s", job.id)
        finally:
            self.running.pop(job.id, None)
            quota.release(self.settings.control_url, job.reservation)  # not handed over: given back
        return job

    @contextlib.contextmanager
    def _admitted(self, job: Job) -> Iterator[None]:
        """Hold a place for heavy work unless the query is known cheap (``serving/lib/admission.py``).

        A query that runs in Snowflake takes none. A cheap one runs at once; if it overstays
        ``SHORT_S`` it is charged a place while it runs, so a text that only looked cheap holds
        back further heavy work."""
        sql = job.checked.sql if job.checked else None
        if job.engine == "snowflake":
            yield
        elif self.sched.is_cheap(sql):
            overstay = _Overstay(self.admission, heavy_key(job.caller))
            entry = self.engine.watchdog.arm(scheduling.SHORT_S, overstay)
            try:
                yield
            finally:
                self.engine.watchdog.disarm(entry)
                overstay.end()
        else:
            began = time.monotonic()
            try:
                place = self.admission.admit(heavy_key(job.caller), deadline=job.deadline, limit_s=job.timeout_s,
                                             cancelled=lambda: job.handle.cancelled)
            except Cancelled:
                raise QueryCancelled("the query was cancelled", rule="cancelled") from None
            job.queued_s = time.monotonic() - began
            with place:
                yield

    def _left_s(self, job: Job) -> float:
        """The job's time left to run: its limit less its wait for a place for heavy work."""
        return max(0.001, job.timeout_s - job.queued_s)

    def _run_json(self, job: Job, checked: GuardedQuery) -> None:
        started = time.perf_counter()
        result = self.engine.execute(job.caller, checked, params=job.params, max_rows=job.max_rows,
                                     timeout_s=self._left_s(job), handle=job.handle,
                                     output=JsonRows(self.q.json_max_bytes), engine=job.engine, text=job.sql,
                                     versions=job.versions)
        self.sched.record(checked.sql, time.perf_counter() - started)
        job.row_count, job.truncated = result.row_count, result.truncated
        job.cut_by = result.consumed if result.truncated else None
        job.tables = [t.as_dict() for t in result.tables]
        job.watermarks = self.watermarks(job.caller, job.tables)
        self._continue(job, checked)
        payload = {"job_id": None, "status": "succeeded", "columns": result.columns, "rows": result.rows,
                   "row_count": result.row_count, "truncated": result.truncated, "max_rows": job.max_rows,
                   "tables": job.tables, "duration_ms": round(result.duration_ms, 3), "sql_hash": result.sql_hash,
                   "continuation": job.continuation, "schema_changes": job.schema_changes}
        job.body = formats.pieces(payload, "rows", result.rows)
        job.bytes = sum(map(len, job.body))
        formats.check_size(job.bytes, self.q.json_max_bytes + (64 << 10))  # rows plus the answer's own fields

    def _run_file(self, job: Job, checked: GuardedQuery) -> None:
        path = self._path(job)
        # A result file stays on the shared disk until it expires, collected or not: it counts
        # against its swarm's storage quota, and the room left caps it (413 storage_quota).
        # Its room is reserved first, and held until the job's row records the file (``_work``).
        quota_limit = self.settings.artifacts.swarm_storage_max_bytes
        job.reservation = quota.reserve(self.settings.control_url, job.caller, quota_limit, self.q.max_result_bytes,
                                        ttl_s=self.q.max_timeout_s + quota.WRITE_TTL_S)
        left = job.reservation.bytes
        max_bytes = self.q.max_result_bytes if left is None else left

        def write(stream: ArrowStream) -> int:
            job.tables = [t.as_dict() for t in stream.tables]  # known to the audit row even if writing fails
            fresh = self.watermarks(job.caller, job.tables)  # a re-run's stored ones count only where still shown
            job.watermarks = fresh | {k: v for k, v in job.watermarks.items() if v and k in fresh and
                                      not hides_figures(job.caller, self.engine.current(k), k)}

            def metadata() -> dict[str, str]:  # Parquet: the file carries its own provenance
                cut = "row_cap" if stream.truncated else None
                prov = provenance(tables=job.tables, watermarks=job.watermarks, sql_hash=job.sql_hash,
                                  truncated=stream.truncated, cut_by=cut, limit=job.max_rows,
                                  row_count=stream.row_count, job_id=job.id)
                return {PROVENANCE_KEY: formats.encode_json(prov).decode()}

            with quota.cut_at_room(quota_limit, max_bytes, self.q.max_result_bytes):
                return formats.write_file(stream, job.fmt, path, max_bytes=max_bytes, metadata=metadata)

        result = self.engine.execute(job.caller, checked, params=job.params, max_rows=job.max_rows,
                                     timeout_s=self._left_s(job), handle=job.handle,
                                     output=ArrowBatches(write, batch_rows=FILE_BATCH_ROWS, capped_by_bytes=True,
                                                         parquet=job.fmt == "parquet"),
                                     engine=job.engine, text=job.sql, versions=job.versions)
        job.bytes, job.row_count, job.truncated = result.consumed, result.row_count, result.truncated
        job.columns = result.columns
        job.cut_by = "row_cap" if result.truncated else None
        job.result_path = path
        self._continue(job, checked)

    def _continue(self, job: Job, checked: GuardedQuery) -> None:
        """A cut result is never silent: name the cap, and name the re-run (same SQL and params, as
        Parquet, which only ``QUERY_MAX_RESULT_BYTES`` caps) that holds the full result; only a
        result already at the file row limit has nothing more to give.

        The re-run is lazy: its row is recorded (``queued``, never started) once this job has
        succeeded, before anyone is told its id, and nothing runs until the continuation is
        first fetched (``resume``). A continuation never fetched costs one row and expires."""
        if job.cut_by is None:
            return
        limit = job.max_rows if job.cut_by == "row_cap" else self.q.json_max_bytes
        full, page = FILE_MAX_ROWS, self.q.json_max_rows
        rows = job.row_count or 0
        if job.cut_by == "row_cap" and job.max_rows >= full:
            job.continuation = continuation(job_id=job.id, status=job.status, cut_by="row_cap", limit=limit,
                                            rows_returned=rows, full_limit=full, rest_available=False, page_rows=page)
            if job.fmt == "json":
                job.continuation["job_id"] = None  # an inline answer is not kept: nothing more exists
            return
        job.continuation_id = secrets.token_urlsafe(16)
        job.continuation = continuation(job_id=job.continuation_id, status="queued", cut_by=job.cut_by,  # type: ignore[arg-type]
                                        limit=limit, rows_returned=rows, full_limit=full, rest_available=True,
                                        page_rows=page)

    def resume(self, row: QueryJobRow, caller: Caller) -> Future[Job] | None:
        """Start a deferred continuation on its first fetch; None when another fetch (on any worker or
        replica: the row's claim is the coordination point) started it first. Blocking.

        Refused, leaving it deferred: 410 ``expired`` past its expiry, 409 ``continuation_not_started``
        for anyone but the token that ran the query (the re-run reads as that token, under its
        grant policy), 403 ``table_not_granted`` once a table it reads is no longer granted.
        410 ``version_gone`` (the row is marked failed) once a version the cut answer read was deleted."""
        spec = job_rows.deferred(row)
        if spec is None:
            return None
        if row.expires_at is not None and row.expires_at < utcnow():
            raise job_rows.ResultGone(f"the continuation {row.id} expired before it was fetched; run the query again",
                                      rule="expired")
        if row.token_id != caller.token_id:
            raise Conflict(f"the continuation {row.id} has not started; only the token that ran the query starts it "
                           "(by fetching its status, rows or result)", rule="continuation_not_started")
        job_rows.check_still_granted(caller, row.tables, f"the continuation {row.id}")
        versions = None if spec.get("engine") == "snowflake" else job_rows.pinned_versions(row, self.engine.pushdown.live_keys())
        try:
            for key, version in sorted((versions or {}).items()):
                self.engine.version(key, version)
        except ApiError as e:
            job_rows.fail_deferred(self.settings.control_url, row.id, e)
            raise
        if not job_rows.claim(self.settings.control_url, row.id, self.replica):
            return None
        job = Job(caller, None, row.sql_text, fmt=row.output_format, params=row.params, max_rows=row.max_rows,
                  timeout_s=float(spec.get("timeout_s") or self.q.timeout_s), engine=spec.get("engine"))
        job._id, job.detached, job.created_at, job.versions = row.id, True, row.created_at, versions
        job.watermarks = dict((row.provenance or {}).get("watermarks") or {})
        return self.start(job)

    def watermarks(self, caller: Caller, tables: list[dict[str, str]]) -> dict[str, str | None]:
        """The source watermark (highest cursor copied) of each table's version read, when it is still current.

        None for a table ``caller`` reads under a policy a table-wide figure could undo
        (``hides_figures``): the highest cursor over every row would tell what its row filter
        or excluded columns hide, as the refresh answers already withhold it."""
        out: dict[str, str | None] = {}
        for t in tables:
            manifest = self.engine.current(t["table"])
            current = manifest is not None and manifest.version == t["version"]
            hidden = current and hides_figures(caller, manifest, t["table"])
            out[t["table"]] = manifest.watermark if manifest is not None and current and not hidden else None
        return out

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

    def converted(self, row: QueryJobRow, path: Path, caller: Caller, fmt: str, metadata: dict[str, str]) -> Path:
        """``row``'s result (``path``) in ``fmt``: the file itself, or its conversion, written once beside
        it. Blocking. A conversion stays on the shared disk with the result, so it counts in the
        caller's swarm's storage quota: its room is reserved before it is written (it may add
        ``QUERY_MAX_RESULT_BYTES``, or what is left: 413 ``storage_quota`` past it) and its bytes
        are recorded on the job's row. (Two workers or replicas converting one result at the same moment
        both count it.)"""
        target = pages.conversion_path(row, path, fmt)
        if target.is_file():
            return target
        limit, most = self.settings.artifacts.swarm_storage_max_bytes, self.q.max_result_bytes
        # One writer per conversion in this process: the callers asking at once wait for it and read
        # it, rather than each reserving room for the same file (and being refused for it).
        with self._conversion_locks[hash(target.name) % len(self._conversion_locks)]:
            if target.is_file():
                return target
            with quota.reserved(self.settings.control_url, caller, limit, most) as left:
                cap = most if left is None else left
                with quota.cut_at_room(limit, cap, most):
                    size = pages.convert(row, path, fmt, target, max_bytes=cap, metadata=metadata)
                job_rows.add_converted(self.settings.control_url, row.id, size)
        return target

    def result_path(self, row: QueryJobRow, caller: Caller) -> Path:
        """The result file of ``row`` for ``caller`` (403 no longer granted, 410 expired, 404 none)."""
        return job_rows.result_file(self.settings.results_path, row, caller)

    def cancel(self, job_id: str, caller: Caller) -> QueryJobRow:
        row = self.load(job_id, caller)
        job = self.running.get(job_id)
        if job is not None:
            job.handle.cancel()
            self.admission.poke()  # a cancelled job waiting for a place stops waiting
        if row.status in ACTIVE:
            job_rows.mark_cancelled(self.settings.control_url, job_id)
            row.status = "cancelled"
        return row

    def close(self) -> None:
        log.info("query paths used by this process: %s", self.sched.stats)
        self._closing.set()
        for job in list(self.running.values()):
            job.handle.cancel()
        self.admission.poke()
        self.pool.shutdown(wait=True, cancel_futures=True)
        if self.batch is not None:
            self.batch.shutdown(wait=True, cancel_futures=True)



def job_provenance(job: Any) -> dict[str, Any]:
    """The provenance of a job's result, from this replica's memory (``Job``) or its row."""
    extra = (job.provenance or {}) if isinstance(job, QueryJobRow) else job_extra(job)
    return provenance(tables=job.tables or [], watermarks=extra.get("watermarks") or {}, sql_hash=job.sql_hash,
                      truncated=bool(job.truncated), cut_by=extra.get("cut_by"), limit=extra.get("limit"),
                      row_count=job.row_count, job_id=job.id if isinstance(job, QueryJobRow) else _kept_id(job))


def _kept_id(job: Job) -> str | None:
    """The job's id when it is kept (a file, or an answer that moved to a job); an inline JSON answer
    is not kept, so its provenance names no job, as its body does not."""
    return job._id if job.detached or job.fmt != "json" else None


def progress_of(row: QueryJobRow, live: Job | None, now: dt.datetime | None = None) -> dict[str, float | None]:
    """``progress`` (0-1, DuckDB's own estimate while it runs on this replica; 1 when succeeded; None
    when unknown) and ``elapsed_s`` of a job."""
    now = now or utcnow()
    if row.status == "succeeded":
        progress: float | None = 1.0
    elif live is not None and row.status in ACTIVE:
        progress = live.handle.progress()
    else:
        progress = None
    elapsed: float | None
    if row.finished_at is not None and row.duration_ms is not None:
        elapsed = row.duration_ms / 1000.0
    else:
        started = row.started_at or row.created_at
        elapsed = (now - started).total_seconds() if started else None
    return {"progress": None if progress is None else round(progress, 4),
            "elapsed_s": None if elapsed is None else round(max(0.0, elapsed), 3)}


def query_outcome(error: ApiError | None) -> str:
    """The metrics' outcome of a query: succeeded, refused (the guard or a limit), timeout, cancelled, failed."""
    if error is None:
        return "succeeded"
    if error.rule == "cancelled":
        return "cancelled"
    if error.rule == "timeout" or error.status == 408:
        return "timeout"
    return "refused" if 400 <= error.status < 500 else "failed"


def _count(job: Job) -> None:
    seconds = (job.finished_at - job.started_at).total_seconds() if job.finished_at else None
    error = job.error
    metrics.observe_query(query_outcome(error), (error.rule or error.code) if error else None, seconds,
                          rows=job.row_count, nbytes=job.bytes, fmt=job.fmt)


class _Overstay:
    """Armed on the watchdog for a query known cheap: past ``SHORT_S`` it is charged a place for heavy work."""

    def __init__(self, admission: Admission, key: str) -> None:
        self._admission, self._key = admission, key
        self._lock = threading.Lock()
        self._place: Place | None = None
        self._ended = False

    def expire(self) -> bool:
        with self._lock:
            if not self._ended:
                self._place = self._admission.charge(self._key)
        return False

    def end(self) -> None:
        with self._lock:
            self._ended = True
            place, self._place = self._place, None
        if place is not None:
            place.release()
