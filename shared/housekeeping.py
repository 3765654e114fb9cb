"""Scheduled cleanups over the control database and the data home, as plain functions.

Why plain functions in ``shared/``: the Dagster jobs in ``orchestration/housekeeping.py``
are thin wrappers, so every rule here is tested directly (no Dagster instance), and
an operator can run the same code from a shell. Every function takes ``now`` so tests
control time, is idempotent (running it twice does nothing more), and returns a small
report that the Dagster op logs as metadata.

Safety rules:
- a file is only deleted if it resolves *inside* the folder it belongs to (results,
  served data), so a corrupt ``result_path`` can never delete anything else;
- a served version is only deleted when it is not ``CURRENT`` and was replaced more
  than ``SERVED_VERSION_GRACE_MINUTES`` ago (readers that opened it keep their open
  file anyway: POSIX keeps unlinked files readable);
- a job is only marked failed when it has been running longer than
  ``STUCK_JOB_MINUTES``, which is far beyond any query or sync time limit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import importlib
import os
import shutil
import statistics
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from shared import served, status
from shared.control.db import migrate, session_scope
from shared.control.models import (
    ArtifactRow,
    HousekeepingTotalRow,
    QueryJobRow,
    StorageReservationRow,
    SwarmRow,
    SyncRequestRow,
    utcnow,
)
from shared.registry import list_registered
from shared.served import list_served, superseded_versions, table_dir
from shared.served_storage import open_store
from shared.settings import Settings

# Expired query-job rows are kept (status ``expired``) so an agent polling an old job id
# learns that its result expired rather than that the job never existed; the rows
# themselves go after this long.
EXPIRED_ROW_RETENTION = dt.timedelta(days=7)
# Statuses of work that is still in flight (query jobs and sync requests; the latter
# mirror Dagster run statuses, in any case).
ACTIVE_STATUSES = ("queued", "running", "starting", "started", "not_started", "canceling", "pending")


@dataclasses.dataclass
class Report:
    """What one housekeeping pass did; logged and attached to the Dagster run."""

    name: str
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    details: list[str] = dataclasses.field(default_factory=list)

    def add(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    def note(self, text: str) -> None:
        if len(self.details) < 50:  # keep run metadata small
            self.details.append(text)


# Counts of a report that are not deletions (kept out of the deletion totals).
_NOT_DELETIONS = frozenset({"tables_refreshed", "not_available", "refused_outside_root", "query_jobs_failed",
                            "sync_requests_reconciled", "sync_requests_failed"})


def record_totals(control_url: str, report: Report) -> None:
    """Add a pass's deletion counts to the running totals (``housekeeping_totals``); never raises."""
    counts = {k: v for k, v in report.counts.items() if v and k not in _NOT_DELETIONS}
    if not counts:
        return
    try:
        with session_scope(control_url) as s:
            for what, n in counts.items():
                row = s.get(HousekeepingTotalRow, (report.name[:64], what[:64]))
                if row is None:
                    s.add(HousekeepingTotalRow(job=report.name[:64], what=what[:64], total=n))
                else:
                    row.total = (row.total or 0) + n
    except Exception:  # totals are for metrics; a pass must not fail for them
        return


def deletion_totals(control_url: str) -> dict[tuple[str, str], int]:
    """``{(job, what): total}`` of every housekeeping pass so far."""
    with session_scope(control_url) as s:
        return {(r.job, r.what): int(r.total or 0) for r in s.scalars(select(HousekeepingTotalRow))}


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _unlink(path: Path, root: Path, report: Report, what: str) -> None:
    if not _inside(path, root):
        report.add("refused_outside_root")
        report.note(f"refused to delete {path}: not under {root}")
        return
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
        report.add(what)
    elif path.exists():
        path.unlink(missing_ok=True)
        report.add(what)


# --- deleted swarms ---------------------------------------------------------------------

SWARM_DELETED_RULE = "swarm_deleted"
QUERY_ACTIVE = ("queued", "running")


def retire_swarm_data(session: Session, swarm_id: str, *, now: dt.datetime, grace_s: int) -> dict[str, int]:
    """The rule for what a deleted swarm leaves behind, applied in the caller's transaction.

    - its query jobs still queued or running are marked ``cancelled`` (rule
      ``swarm_deleted``); the replica running one sees the mark within a second and
      interrupts the query, as for any cancel made through another replica;
    - its finished query results expire now (housekeeping deletes the files);
    - its artifacts expire at the latest ``grace_s`` after the deletion
      (``DELETED_SWARM_ARTIFACT_GRACE_S``): until then only the admin can read them
      (the swarm's tokens are revoked and no other swarm can see them), then
      ``purge_expired_artifacts`` deletes rows and objects;
    - the room its writes in progress reserved in its storage quota is dropped (no later
      write of the swarm would delete it).

    Idempotent: applying it again never extends an expiry. Returns what it changed.
    """
    jobs = session.execute(
        update(QueryJobRow).where(QueryJobRow.swarm_id == swarm_id, QueryJobRow.status.in_(QUERY_ACTIVE))
        .values(status="cancelled", finished_at=now, error="cancelled: the swarm was deleted",
                error_rule=SWARM_DELETED_RULE, expires_at=now)
        .execution_options(synchronize_session=False))
    results = session.execute(
        update(QueryJobRow).where(QueryJobRow.swarm_id == swarm_id, QueryJobRow.status != "expired",
                                  or_(QueryJobRow.expires_at.is_(None), QueryJobRow.expires_at > now))
        .values(expires_at=now).execution_options(synchronize_session=False))
    until = now + dt.timedelta(seconds=grace_s)
    artifacts = session.execute(
        update(ArtifactRow).where(ArtifactRow.swarm_id == swarm_id, ArtifactRow.deleted_at.is_(None),
                                  or_(ArtifactRow.expires_at.is_(None), ArtifactRow.expires_at > until))
        .values(expires_at=until).execution_options(synchronize_session=False))
    session.execute(delete(StorageReservationRow).where(StorageReservationRow.swarm_id == swarm_id))
    return {"query_jobs_cancelled": int(jobs.rowcount or 0),  # type: ignore[attr-defined]
            "query_results_expired": int(results.rowcount or 0),  # type: ignore[attr-defined]
            "artifacts_expiring": int(artifacts.rowcount or 0)}  # type: ignore[attr-defined]


def retire_deleted_swarms(settings: Settings, *, now: dt.datetime | None = None) -> Report:
    """Apply ``retire_swarm_data`` to every swarm id that jobs or artifacts name but that no longer exists.

    Why a pass as well as the admin's delete: an upload or a query that was in flight
    while its swarm was deleted can land a row after the delete's transaction; this
    catches it on the next housekeeping pass.
    """
    now = now or utcnow()
    report = Report("retire_deleted_swarms")
    migrate(settings.control_url)
    live = select(SwarmRow.id)
    with session_scope(settings.control_url) as s:
        orphans = set(s.scalars(select(ArtifactRow.swarm_id).where(
            ArtifactRow.swarm_id.is_not(None), ArtifactRow.swarm_id.not_in(live), ArtifactRow.deleted_at.is_(None),
            or_(ArtifactRow.expires_at.is_(None), ArtifactRow.expires_at > now)).distinct()))
        orphans |= set(s.scalars(select(QueryJobRow.swarm_id).where(
            QueryJobRow.swarm_id.is_not(None), QueryJobRow.swarm_id.not_in(live), QueryJobRow.status != "expired",
            or_(QueryJobRow.expires_at.is_(None), QueryJobRow.expires_at > now)).distinct()))
        for swarm_id in sorted(o for o in orphans if o is not None):
            for what, n in retire_swarm_data(s, swarm_id, now=now,
                                             grace_s=settings.artifacts.deleted_swarm_grace_s).items():
                if n:
                    report.add(what, n)
            report.note(f"swarm {swarm_id} no longer exists: its jobs and artifacts follow the deleted-swarm rule")
    return report


# --- query results ---------------------------------------------------------------------


def purge_expired_query_results(settings: Settings, *, now: dt.datetime | None = None) -> Report:
    """Delete result files of query jobs past ``expires_at`` and mark the jobs ``expired``.

    Deleted swarms' leftovers are retired first (``retire_deleted_swarms``), so their
    results go in this same pass.

    Rows expired for longer than ``EXPIRED_ROW_RETENTION`` are deleted, and so are expired storage
    reservations (``serving/lib/quota.py``: their writers died). Result files named by a row
    (``result_path``, absolute or relative to ``<home>/results``) and any
    ``<home>/results/<job id>*`` leftovers are removed.
    """
    now = now or utcnow()
    report = Report("purge_expired_query_results")
    root = settings.results_path
    for what, n in retire_deleted_swarms(settings, now=now).counts.items():
        report.add(what, n)
    with session_scope(settings.control_url) as s:
        rows = s.scalars(
            select(QueryJobRow).where(QueryJobRow.expires_at.is_not(None), QueryJobRow.expires_at < now,
                                      or_(QueryJobRow.status != "expired", QueryJobRow.result_path.is_not(None)))
        ).all()
        for row in rows:
            if row.result_path:
                path = Path(row.result_path)
                _unlink(path if path.is_absolute() else root / path, root, report, "result_files_deleted")
            if root.exists():
                for leftover in root.glob(f"{row.id}*"):
                    _unlink(leftover, root, report, "result_files_deleted")
            if row.status == "queued" and row.started_at is None:
                row.error = row.error or "a continuation never fetched: it expired without running"
            elif row.status in ACTIVE_STATUSES:
                row.error = row.error or "expired before it finished"
            row.status, row.result_path = "expired", None
            report.add("jobs_expired")
        cutoff = now - EXPIRED_ROW_RETENTION
        gone = s.execute(delete(QueryJobRow).where(QueryJobRow.status == "expired", QueryJobRow.expires_at < cutoff)
                         .execution_options(synchronize_session=False))
        report.add("rows_deleted", int(gone.rowcount or 0))  # type: ignore[attr-defined]
        # Room reserved by writers that died; it counts for no one once expired, and a swarm that
        # never writes again would keep the row.
        held = s.execute(delete(StorageReservationRow).where(StorageReservationRow.expires_at < now)
                         .execution_options(synchronize_session=False))
        report.add("storage_reservations_expired", int(held.rowcount or 0))  # type: ignore[attr-defined]
    return report


# --- artifacts -------------------------------------------------------------------------

ARTIFACT_PURGE = "shared.artifacts_store:purge_expired_artifacts"


def purge_expired_artifacts(settings: Settings, *, now: dt.datetime | None = None) -> Report:
    """Delegate to the artifact store's own purge (it knows local vs S3 storage).

    Why a delegate: artifact bytes may live in S3, and only ``shared.artifacts_store``
    knows how to delete them. If that module is missing the report says so instead of
    silently doing nothing.
    """
    report = Report("purge_expired_artifacts")
    module_name, func_name = ARTIFACT_PURGE.split(":")
    try:
        func = getattr(importlib.import_module(module_name), func_name)
    except (ImportError, AttributeError):
        report.add("not_available")
        report.note(f"{ARTIFACT_PURGE} is not present; expired artifacts were not purged")
        return report
    try:
        result = func(settings, now=now) if now is not None else func(settings)
    except TypeError:  # a purge that does not take ``now``
        result = func(settings)
    if isinstance(result, int):
        report.add("artifacts_deleted", result)
    elif isinstance(result, dict):
        for k, v in result.items():
            if isinstance(v, int):
                report.add(str(k), v)
    elif isinstance(result, Sequence):
        report.add("artifacts_deleted", len(result))
    return report


# --- served versions -------------------------------------------------------------------


def purge_superseded_versions(settings: Settings, *, now: dt.datetime | None = None) -> Report:
    """Delete served versions replaced more than the grace period ago, and stale temp files.

    ``.tmp-*`` files are left by a killed writer; they are removed only when the table's
    writer lock can be taken without waiting (so a running writer's file is never touched).
    With ``SERVED_STORAGE=s3`` it also forgets versions superseded past the grace period,
    deletes the bucket's objects no version refers to any more, aborts abandoned uploads,
    and keeps this machine's cache within its limit.
    """
    now = now or utcnow()
    report = Report("purge_superseded_versions")
    store = open_store(settings)
    if store.remote:
        migrate(settings.control_url)
        for what, n in store.purge(now=now).items():
            report.add(what, n)
    root = settings.served_path
    older_than = now - dt.timedelta(minutes=settings.dagster.version_grace_minutes)
    for key in list_served(root):
        folder = table_dir(root, key)
        for path in superseded_versions(root, key, older_than):
            _unlink(path, folder, report, "versions_deleted")
            _unlink(path.with_suffix(".json"), folder, report, "manifests_deleted")
            _unlink(Path(str(path) + ".wal"), folder, report, "wal_deleted")
            report.note(f"{key}: deleted {path.name}")
        _remove_orphan_temp_files(folder, older_than, report)
    return report


def _remove_orphan_temp_files(folder: Path, older_than: dt.datetime, report: Report) -> None:
    temps = [p for p in folder.glob(".tmp-*") if dt.datetime.fromtimestamp(p.stat().st_mtime, dt.UTC) < older_than]
    if not temps:
        return
    with open(folder / ".lock", "a+") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            report.note(f"{folder.name}: writer busy, temp files left for the next pass")
            return
        try:
            for p in temps:
                _unlink(p, folder, report, "temp_files_deleted")
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


# --- stuck jobs ------------------------------------------------------------------------

RunStatusLookup = Callable[[str], str | None]


def mark_stuck_jobs_failed(settings: Settings, *, now: dt.datetime | None = None,
                           run_status: RunStatusLookup | None = None) -> Report:
    """Mark query jobs and sync requests in flight for more than ``STUCK_JOB_MINUTES`` failed.

    Why: an API replica killed mid-query or mid-poll leaves its row ``running`` forever,
    and agents polling it would wait forever. For sync requests, ``run_status`` (given by
    the Dagster job: the run's status from the instance) is asked first: a run that did
    finish is recorded with its real outcome instead of a guess.
    """
    now = now or utcnow()
    cutoff = now - dt.timedelta(minutes=settings.dagster.stuck_run_minutes)
    minutes = settings.dagster.stuck_run_minutes
    report = Report("mark_stuck_jobs_failed")
    migrate(settings.control_url)
    with session_scope(settings.control_url) as s:
        jobs = s.scalars(select(QueryJobRow).where(QueryJobRow.status.in_(ACTIVE_STATUSES))).all()
        for job in jobs:
            if job.status == "queued" and job.started_at is None:
                continue  # a continuation no fetch has started: nothing runs; it expires like a result
            since = job.started_at or job.created_at
            if since is None or since >= cutoff:
                continue
            job.error = (f"marked failed by housekeeping: still {job.status} after more than {minutes} minutes "
                         "(the process running it probably died)")
            job.status, job.finished_at = "failed", now
            job.error_rule = job.error_rule or "stuck"
            report.add("query_jobs_failed")
            report.note(f"query job {job.id} marked failed")
        reqs = s.scalars(select(SyncRequestRow)).all()
        for req in reqs:
            if req.status.lower() not in ACTIVE_STATUSES:
                continue
            since = req.started_at or req.created_at
            if since is None or since >= cutoff:
                continue
            real = run_status(req.dagster_id) if (run_status and req.dagster_id) else None
            outcome = status.RunStatus.from_dagster(real)
            if outcome is not None:
                req.status, req.finished_at = outcome.value, now
                report.add("sync_requests_reconciled")
                continue
            if real and real.upper() not in ("", "UNKNOWN"):
                # Dagster still runs it: Dagster's own run monitoring owns that run.
                report.note(f"sync request {req.id}: Dagster run {req.dagster_id} is still {real}")
                continue
            req.status, req.finished_at = "failed", now
            req.error = (f"marked failed by housekeeping: no outcome after more than {minutes} minutes"
                         + (f" (Dagster has no run {req.dagster_id})" if req.dagster_id and run_status else ""))
            report.add("sync_requests_failed")
            report.note(f"sync request {req.id} for {req.table_key} marked failed")
    return report


# --- per-table statistics ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RunSample:
    """One finished materialization run of a table (from the Dagster instance)."""

    run_id: str
    status: str  # SUCCESS | FAILURE | CANCELED
    start: dt.datetime | None
    end: dt.datetime | None

    @property
    def duration_s(self) -> float | None:
        if self.start and self.end:
            return max(0.0, (self.end - self.start).total_seconds())
        return None


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 3)
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return round(cuts[int(q) - 1], 3)


def table_stats(settings: Settings, key: str, runs: Iterable[RunSample] = (), *,
                now: dt.datetime | None = None) -> dict[str, Any]:
    """Statistics of one table: served data on disk and recent run durations.

    Admins see them in the table's sync status (``stats``); the API's refresh estimate
    reads its own job history instead (``serving/sync/store.py``).
    """
    now = now or utcnow()
    root = settings.served_path
    manifest = open_store(settings).current(key)
    folder = table_dir(root, key)
    files = list(folder.glob("v-*.duckdb")) if folder.exists() else []
    runs = list(runs)
    durations = sorted(d for r in runs if r.status == "SUCCESS" and (d := r.duration_s) is not None)
    stats: dict[str, Any] = {
        "refreshed_at": now.isoformat(),
        "served_version": manifest.version if manifest else None,
        "published_at": manifest.published_at if manifest else None,
        "row_count": manifest.row_count if manifest else None,
        "bytes": manifest.bytes if manifest else None,
        "columns": len(manifest.columns) if manifest else None,
        "partitions": len(manifest.partitions) if manifest else 0,
        "watermark": manifest.watermark if manifest else None,
        "versions_on_disk": len(files),
        "disk_bytes": sum(f.stat().st_size for f in files),
        "runs_sampled": len(runs),
        "runs_succeeded": sum(1 for r in runs if r.status == "SUCCESS"),
        "runs_failed": sum(1 for r in runs if r.status == "FAILURE"),
        "run_p50_s": _percentile(durations, 50),
        "run_p95_s": _percentile(durations, 95),
        "run_max_s": round(durations[-1], 3) if durations else None,
    }
    if manifest:
        stats["age_s"] = round((now - served.synced_at(manifest)).total_seconds(), 1)  # since the source was read
    return stats


def refresh_sync_stats(settings: Settings, *, now: dt.datetime | None = None,
                       runs_for: Callable[[str], Iterable[RunSample]] | None = None) -> Report:
    """Write ``table_stats`` of every registered table onto its status row (shown by the admin sync status).

    ``runs_for(key)`` returns recent runs of the table (the Dagster job reads them from
    the instance); without it only served-data figures are refreshed.
    """
    now = now or utcnow()
    report = Report("refresh_sync_stats")
    migrate(settings.control_url)
    tables = list_registered(settings.control_url)
    for reg in tables:
        try:
            runs = list(runs_for(reg.key)) if runs_for else []
        except Exception as e:  # one table's history must not stop the others
            report.note(f"{reg.key}: run history unavailable: {e}")
            runs = []
        stats = table_stats(settings, reg.key, runs, now=now)
        status.record_stats(settings.control_url, reg.key, stats)
        report.add("tables_refreshed")
    return report


def disk_usage(path: Path) -> int:
    """Bytes under ``path`` (0 if absent); for the report of the data home."""
    total = 0
    if path.exists():
        for dirpath, _dirs, names in os.walk(path):
            for n in names:
                with contextlib.suppress(OSError):
                    total += os.path.getsize(os.path.join(dirpath, n))
    return total
