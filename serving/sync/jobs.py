"""Launching Dagster runs and backfills for a job row, and reading a job's live state back.

Why one module for both directions: the admin ``/sync`` endpoints, the agents' refresh and
``min_freshness`` queries all launch through :func:`launch` and poll through
:func:`observe`, so a status, an error message or a table's ``failing`` mark means the
same thing everywhere. :func:`observe` writes what it learns back to the control
database (job row, and the table's status row on failure), so the next replica that
looks, or an agent whose replica died, sees it too.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import TYPE_CHECKING, Any

import anyio.to_thread

from serving.lib import metrics, requestid
from serving.sync import store
from serving.sync.dagster import QUEUED, RUNNING, TERMINAL_BACKFILL, BackfillInfo, DagsterUnavailable, RunInfo
from shared.dagster_names import REASON_TAG, REQUEST_TAG, TABLE_TAG
from shared.registry import RegisteredTable

if TYPE_CHECKING:
    from serving.sync.core import SyncService

ERROR_SEPARATOR = "\n---\n"
JOB_TAG = "agents_data/job"
STRATEGY_TAG = "agents_data/strategy"
# How long a failed run Dagster tagged for a retry may have no retry run yet before its failure
# stands (the daemon launches retries within a pass or two; a stopped daemon launches none).
RETRY_WAIT_S = 120.0

# Values of REASON_TAG shared with schedules and sensors (shared/dagster_names.py).
_REASON_VALUES = {"refresh": "refresh", "freshness": "refresh", "coalesced": "refresh"}
REFRESH_REASONS = frozenset(_REASON_VALUES)


def run_status(dagster_status: str) -> str:
    if dagster_status in QUEUED:
        return "queued"
    if dagster_status in RUNNING:
        return "running"
    return {"SUCCESS": "succeeded", "FAILURE": "failed", "CANCELED": "canceled"}.get(dagster_status, "running")


def backfill_status(info: BackfillInfo) -> str:
    if info.status in TERMINAL_BACKFILL and not info.terminal:
        return "running"  # a run is still ending: see ``BackfillInfo.terminal``
    status = info.status
    if status == "COMPLETED_SUCCESS" or (status == "COMPLETED" and info.failed == 0):
        return "succeeded"
    if status in ("COMPLETED", "COMPLETED_FAILED", "FAILED"):
        return "failed"
    if status == "CANCELED":
        return "canceled"
    if status == "REQUESTED" and not info.runs:
        return "queued"
    return "running"  # REQUESTED with runs, CANCELING, FAILING


def _ts(value: float | None) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(value, dt.UTC) if value else None


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def tags_for(job: store.SyncJob, strategy: str | None = None, request_id: str | None = None) -> dict[str, str]:
    """Run tags: the table (dagster.yaml allows one run per table at a time), our job id, why, strategy,
    and the API request that asked for it (the sync step's log lines carry it too)."""
    reason = _REASON_VALUES.get(job.reason) or ("backfill" if job.kind == "backfill" else "manual")
    tags = {TABLE_TAG: job.table_key, JOB_TAG: job.id, REASON_TAG: reason}
    if strategy:
        tags[STRATEGY_TAG] = strategy
    if request_id:
        tags[REQUEST_TAG] = request_id
    return tags


def run_config_for(reg: RegisteredTable, strategy: str | None) -> dict[str, Any]:
    """Run config for a strategy override: ``full`` on an incremental or snapshot table is a full
    refresh (the asset's ``full_refresh`` config); the registered strategy needs nothing."""
    if strategy is None or strategy == reg.strategy:
        return {}
    if strategy == "full":
        return {"ops": {"__".join(reg.asset_key_path): {"config": {"full_refresh": True}}}}
    raise ValueError(f"table {reg.key} is registered as {reg.strategy}; a {strategy} sync needs a registration "
                     f"with that strategy (register it again with strategy={strategy!r})")


async def launch(svc: SyncService, job: store.SyncJob, reg: RegisteredTable, *,
                 strategy: str | None = None) -> store.SyncJob:
    """Ask Dagster to run ``job`` (a run for zero or one partition, else a backfill); record the id.

    On any failure the row is marked failed with the reason before the error propagates,
    so no job stays ``launching``.
    """
    url = svc.control_url
    request_id = requestid.current()
    tags = tags_for(job, strategy, request_id)
    try:
        config = run_config_for(reg, strategy)
        if job.kind == "backfill":
            backfill_id = await svc.client.launch_backfill(reg.asset_key_path, job.partitions, tags=tags,
                                                           title=f"{reg.key} ({len(job.partitions)} partitions)",
                                                           run_config=config)
            fields: dict[str, Any] = {"dagster_id": backfill_id, "status": "queued", "request_id": request_id}
        else:
            partition = job.partitions[0] if job.partitions else None
            run = await svc.client.launch_run(reg.asset_key_path, partition=partition, tags=tags, run_config=config)
            fields = {"dagster_id": run.run_id, "status": run_status(run.status), "started_at": _ts(run.started_at),
                      "request_id": request_id}
    except Exception as e:
        reason = "Dagster is unreachable" if isinstance(e, DagsterUnavailable) else str(e)
        await anyio.to_thread.run_sync(lambda: store.update(url, job.id, status="failed", error=reason[:4000],
                                                            finished_at=dt.datetime.now(dt.UTC)))
        raise
    requestid.note_run(fields["dagster_id"])  # the request's audit row and access line name the run
    return await anyio.to_thread.run_sync(lambda: store.update(url, job.id, **fields))


async def attach(svc: SyncService, job: store.SyncJob, run: RunInfo) -> store.SyncJob:
    """Make ``job`` track a run someone else launched (schedule, sensor, UI)."""
    fields: dict[str, Any] = {"dagster_id": run.run_id, "reason": "coalesced", "status": run_status(run.status),
                              "started_at": _ts(run.started_at)}
    return await anyio.to_thread.run_sync(lambda: store.update(svc.control_url, job.id, **fields))


@dataclasses.dataclass(frozen=True)
class JobState:
    """A job as the API reports it: the row, refreshed from Dagster when it was reachable."""

    job: store.SyncJob
    done: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    rows: int | None = None
    errors: tuple[str, ...] = ()
    dagster_reachable: bool = True

    @property
    def pending(self) -> list[str]:
        finished = set(self.done) | set(self.failed)
        return [p for p in self.job.partitions if p not in finished]

    def to_dict(self, svc: SyncService, *, include_links: bool = True) -> dict[str, Any]:
        job = self.job
        out: dict[str, Any] = {
            "job_id": job.id, "kind": job.kind, "status": job.status, "table": job.table_key,
            "reason": job.reason, "requested_by": job.requested_by,
            "partitions": {"requested": job.partitions, "done": list(self.done), "failed": list(self.failed),
                           "pending": self.pending},
            "rows": self.rows, "errors": list(self.errors),
            "created_at": _iso(job.created_at), "started_at": _iso(job.started_at), "finished_at": _iso(job.finished_at),
            "dagster_reachable": self.dagster_reachable,
        }
        if include_links:
            out["dagster_id"] = job.dagster_id  # the run (or backfill) id; its runs carry the request id as a tag
            out["request_id"] = job.request_id
            out["dagster_url"] = svc.job_url(job)
        return out


def _stored_errors(job: store.SyncJob) -> tuple[str, ...]:
    return tuple(e for e in (job.error or "").split(ERROR_SEPARATOR) if e)


async def observe(svc: SyncService, job: store.SyncJob) -> JobState:
    """Read ``job``'s state from Dagster and store what changed. Raises ``DagsterUnavailable``
    only when the job is still active (a finished job is answered from the database)."""
    if job.dagster_id is None:
        return JobState(job=job, errors=_stored_errors(job))
    try:
        if job.kind == "backfill":
            return await _observe_backfill(svc, job)
        return await _observe_run(svc, job)
    except DagsterUnavailable:
        if job.active:
            raise
        return JobState(job=job, errors=_stored_errors(job), dagster_reachable=False)


async def _save(svc: SyncService, job: store.SyncJob, **fields: Any) -> store.SyncJob:
    changed = {k: v for k, v in fields.items() if getattr(job, k) != v}
    if not changed:
        return job
    saved = await anyio.to_thread.run_sync(lambda: store.update(svc.control_url, job.id, **changed))
    if changed.get("status") == "succeeded" and saved.reason in REFRESH_REASONS:
        # Counted once: by the replica that recorded the success. The step publishes before the run ends.
        metrics.observe_refresh_visible(((saved.finished_at or dt.datetime.now(dt.UTC)) - saved.created_at)
                                        .total_seconds())
    return saved


async def _observe_run(svc: SyncService, job: store.SyncJob) -> JobState:
    assert job.dagster_id is not None
    run = await svc.client.run(job.dagster_id)
    if run is None:
        job = await _save(svc, job, status="failed", error="the run no longer exists in Dagster")
        return JobState(job=job, errors=_stored_errors(job))
    if run.will_retry:
        retry = await svc.client.retry_of(run.run_id)
        if retry is not None:  # the job follows the run that can still bring the data
            return await _observe_run(svc, await _save(svc, job, dagster_id=retry.run_id))
        if run.ended_at is None or time.time() - run.ended_at < RETRY_WAIT_S:
            # Dagster is about to launch the retry: the job has not failed, and its error would be
            # a worker's death the retry makes good.
            return JobState(job=await _save(svc, job, status="running", finished_at=None))
    status = run_status(run.status)
    errors: tuple[str, ...] = ()
    if status == "failed":
        errors = tuple(await svc.client.run_errors(run.run_id)) or ("the run failed; Dagster reported no message",)
        await _record_failure(svc, job.table_key, run, errors[0])
    job = await _save(svc, job, status=status, started_at=_ts(run.started_at) or job.started_at,
                      finished_at=_ts(run.ended_at) if run.terminal else None,
                      error=ERROR_SEPARATOR.join(errors) or None)
    done = run.partitions_done or ((run.partition,) if status == "succeeded" and run.partition else ())
    failed = (run.partition,) if status == "failed" and run.partition else ()
    return JobState(job=job, done=tuple(done), failed=failed, rows=run.rows, errors=errors)


async def _record_failure(svc: SyncService, key: str, run: RunInfo, message: str) -> None:
    failed_at = _ts(run.ended_at) or dt.datetime.now(dt.UTC)
    await anyio.to_thread.run_sync(lambda: store.record_run_failure(svc.control_url, key, run.run_id, message, failed_at))


async def _observe_backfill(svc: SyncService, job: store.SyncJob) -> JobState:
    assert job.dagster_id is not None
    info = await svc.client.backfill(job.dagster_id)
    if info is None:
        job = await _save(svc, job, status="failed", error="the backfill no longer exists in Dagster")
        return JobState(job=job, errors=_stored_errors(job))
    status = backfill_status(info)
    done: list[str] = []
    failed: list[str] = []
    failed_runs: list[RunInfo] = []
    rows = 0
    ordered = list(info.partitions)
    for run in info.runs:
        rows += run.rows or 0
        done.extend(run.partitions_done or ((run.partition,) if run.status == "SUCCESS" and run.partition else ()))
        if run.status == "FAILURE":
            failed_runs.append(run)
            failed.extend(run.covered(ordered))
    errors: list[str] = [info.error] if info.error else []
    for run in failed_runs[:5]:
        messages = await svc.client.run_errors(run.run_id)
        covered = run.covered(ordered)
        where = f"partitions {covered[0]}…{covered[-1]}: " if len(covered) > 1 else \
            (f"partition {covered[0]}: " if covered else "")
        errors.extend(where + m for m in messages[:1] or ["the run failed"])
    if failed_runs:
        await _record_failure(svc, job.table_key, failed_runs[-1], errors[-1])
    done_set = set(done)
    if status == "failed":  # a failed backfill has nothing left to do: what it did not do failed
        failed.extend(p for p in job.partitions if p not in done_set)
    job = await _save(svc, job, status=status, started_at=_ts(info.created_at) or job.started_at,
                      finished_at=_ts(info.ended_at) if info.terminal else None,
                      error=ERROR_SEPARATOR.join(errors) or None)
    return JobState(job=job, done=tuple(sorted(done_set)), failed=tuple(sorted(set(failed) - done_set)),
                    rows=rows if info.runs else None, errors=tuple(errors))
