"""Agent-requested refreshes: what is stale, coalescing, estimates, and waiting for fresh data.

Why coalescing lives here and not in Dagster: many agents asking for the same table at
once must cost one run. The order of decisions is:

1. is the table fresh?
   - cursor-based (incremental) tables ask the source (``shared.changes``): fresh means no
     source row has a cursor newer than the served watermark and the rows without a cursor
     are as many as served (per partition for a partitioned table), however recently a
     partition ran. Otherwise the refresh rewrites exactly the partitions holding rows
     past the watermark minus the lookback (late rows and updates in old
     partitions, rows whose partition column changed), plus complete windows newer
     than the newest served one; unpartitioned ones merge the cursor delta. Newer rows
     that lie in no materializable partition (the current, incomplete window) cannot be
     rewritten yet: the answer is ``already_fresh`` and says how many wait there. A served
     row whose key moved there (or to NULL, before the start, an unlisted value) names
     its old partition, whose rewrite stops serving it (the answer's ``note`` says so);
   - tables without a cursor keep the time rule: synced within the freshness target
     (the caller's ``max_age_s``, else the registration's ``freshness``) is fresh.
     Snapshot tables must also serve, in their newest snapshot, as many rows as the
     source holds now, so deletes in the source are taken up by the next refresh;
2. a job for the same partitions is active in the control database (launched through any
   replica), or Dagster has a run for the asset queued or in progress (a schedule, a
   sensor, the UI): answer that job;
3. otherwise launch one: a run for one partition or the table, else a backfill.

Every answer carries an estimate: the median request-to-done time of the table's recent
successful runs (Dagster's run history, else the jobs in the control database), times the
runs the job needs (a backfill runs one range of up to ``PARTITIONS_PER_RUN`` adjacent
partitions per run, one run at a time per table), minus the time the job has already
spent; ``already_fresh`` answers 0 (ready since ``synced_at``).

``ensure_fresh`` serves ``min_freshness`` in query requests: it returns once every
table's served version is at most N seconds old, requesting a refresh when needed and
waiting up to ``wait_s`` for it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import inspect
import statistics
import time
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.to_thread

from serving.lib.budgets import REFRESH, get_budgets
from serving.lib.caller import Caller
from serving.lib.errors import BadRequest, Conflict, ServiceUnavailable
from serving.lib.services import Services
from serving.sync import jobs, store
from serving.sync.core import SyncService, dagster_calls, get_sync, synced_at_of
from serving.sync.dagster import QUEUED, DagsterError, DagsterUnavailable
from serving.tables.policies import sync_errors_seen
from serving.tables.served import served_tables
from shared import changes, registry, sources
from shared import partitions as sp
from shared import status as table_status
from shared.dagster_names import TABLE_TAG
from shared.partitions import is_partitioned
from shared.registry import RegisteredTable
from shared.served import Manifest
from shared.served_storage import open_store
from shared.snowflake import SourceError, connect

DEFAULT_ESTIMATE_S = 10.0
ALREADY_FRESH_BASIS = "already fresh: served data is within the freshness target"
POLL_S = 0.1


@dataclasses.dataclass(frozen=True)
class Estimate:
    total_s: float
    basis: str  # "median of N recent syncs" | "last Dagster run" | "default"


@dataclasses.dataclass(frozen=True)
class RefreshOutcome:
    table: str
    outcome: str  # already_fresh | existing_job | started
    synced_at: dt.datetime | None
    served_version: str | None
    freshness_target_s: int | None
    job: store.SyncJob | None = None
    eta_s: float | None = None
    eta_basis: str | None = None
    partitions: list[str] | None = None  # what the job rewrites (None: the whole table)
    source: changes.SourceChanges | None = None  # cursor-based tables: what the source said
    note_kind: str | None = None  # "late_rows" or "moved_out": ``note`` spells it out

    def to_dict(self, *, figures: bool = True) -> dict[str, Any]:
        """The answer's fields; without ``figures`` (a caller under a policy: ``hides_figures``) no
        count or watermark taken over the whole table, in a field or spelled in ``note``."""
        now = dt.datetime.now(dt.UTC)
        out: dict[str, Any] = {
            "table": self.table, "outcome": self.outcome,
            "synced_at": self.synced_at.isoformat() if self.synced_at else None,
            "age_s": round((now - self.synced_at).total_seconds(), 3) if self.synced_at else None,
            "served_version": self.served_version, "freshness_target_s": self.freshness_target_s,
            "job_id": None, "job_status": None, "kind": None, "eta_s": self.eta_s, "eta_basis": self.eta_basis,
            "estimated_ready_at": None, "partitions": self.partitions,
            "note": outcome_note(self.note_kind, self.source, figures=figures),
            "served_watermark": self.source.served_watermark if self.source and figures else None,
            "source_watermark": self.source.source_newest if self.source and figures else None,
            "newer_rows": self.source.newer_rows if self.source and figures else None,
        }
        if self.job is not None:
            out.update(job_id=self.job.id, job_status=self.job.status, kind=self.job.kind,
                       partitions=list(self.job.partitions) or None)
        if self.outcome == "already_fresh":  # the data is there now: it has been since the sync
            out.update(eta_s=0.0, eta_basis=ALREADY_FRESH_BASIS, estimated_ready_at=out["synced_at"])
        elif self.eta_s is not None and self.job is not None:
            out["estimated_ready_at"] = (now + dt.timedelta(seconds=self.eta_s)).isoformat()
        return out


def runs_needed(reg: RegisteredTable, partitions: Sequence[str]) -> int:
    """Runs a job over ``partitions`` takes: one per range of adjacent partitions (at most
    ``PARTITIONS_PER_RUN`` each), the backfill policy of partitioned assets."""
    if len(partitions) <= 1 or not is_partitioned(reg):
        return 1
    try:
        return max(1, len(changes.contiguous_ranges(reg, partitions)))
    except ValueError:  # a key this registration no longer has: count one run per partition
        return len(partitions)


async def estimate(svc: SyncService, key: str, job: store.SyncJob | None, *, runs: int = 1) -> Estimate:
    """Expected request-to-done seconds: the median of the table's recent successful runs in Dagster
    (whoever launched them), else of the jobs in the control DB, else a default; times ``runs``
    (a table's runs go one at a time); minus what the current job has already spent."""
    try:
        durations = await svc.client.recent_durations(TABLE_TAG, key)
    except (DagsterError, DagsterUnavailable):
        durations = []
    if durations:
        n = len(durations)
        est = Estimate(statistics.median(durations), f"median of {n} recent run{'s' if n != 1 else ''}")
    else:
        typical, n = await anyio.to_thread.run_sync(store.typical_duration_s, svc.control_url, key)
        if typical is not None:
            est = Estimate(typical, f"median of {n} recent sync{'s' if n != 1 else ''}")
        else:
            est = Estimate(DEFAULT_ESTIMATE_S, "default (no sync of this table measured yet)")
    if runs > 1:
        est = Estimate(est.total_s * runs, f"{est.basis}, times {runs} runs (one per range of adjacent partitions)")
    if job is not None:
        spent = (dt.datetime.now(dt.UTC) - job.created_at).total_seconds()
        return Estimate(round(max(0.5, est.total_s - spent), 1), est.basis)
    return Estimate(round(est.total_s, 1), est.basis)


async def target_partitions(svc: SyncService, reg: RegisteredTable) -> tuple[str, list[str]]:
    """What a refresh materializes: the whole table, the latest partition plus every partition
    never served, or every static value.

    Time partitions: the newest key Dagster lists (the latest complete window; today for
    snapshots), so a refresh never asks for a partition the code location lacks; with it, once
    anything is served, every listed partition the served version lacks (a backfill that failed
    or never finished), since the table is not fresh while they are missing (``_complete``). A
    table never served gets its newest partition (its first sync is an admin's backfill; the
    catalog lists what is still missing).
    """
    if not is_partitioned(reg):
        return "run", []
    if reg.partition_kind == "static" and reg.strategy != "snapshot":
        values = list(reg.partition_values)
        return ("run", values) if len(values) == 1 else ("backfill", values)
    keys = await svc.client.partition_keys(reg.asset_key_path)
    if not keys:
        raise ServiceUnavailable(f"Dagster lists no partitions for {reg.key} yet", rule="no_partitions")
    wanted = [keys[-1]]
    manifest = await anyio.to_thread.run_sync(_current, svc, reg.key)
    served = set(sp.served_partitions(reg, manifest))
    if reg.strategy != "snapshot" and served:  # never served at all: its first sync is a backfill of its own
        wanted = sorted({k for k in keys if k not in served} | {keys[-1]})
    return ("run" if len(wanted) == 1 else "backfill"), wanted


def _current(svc: SyncService, key: str) -> Manifest | None:
    return open_store(svc.settings).current(key)


async def _complete(svc: SyncService, reg: RegisteredTable) -> bool:
    """Whether the served version holds every partition the table has up to its newest complete
    window (always, where partitions are not required: ``shared.partitions.freshness_coverage``)."""
    found = sp.freshness_coverage(reg, await anyio.to_thread.run_sync(_current, svc, reg.key))
    return not (found["require_partitions"] and found["partitions"] and found["partitions"]["missing"])


async def changed_partitions(svc: SyncService, reg: RegisteredTable,
                             scan: changes.SourceChanges) -> tuple[str, list[str]]:
    """What a refresh of a cursor-based table materializes: the scan's partitions that Dagster
    lists (so a run never names a partition the code location lacks), or the whole table."""
    if not is_partitioned(reg):
        return "run", []
    wanted = scan.partitions
    if wanted:
        listed = set(await svc.client.partition_keys(reg.asset_key_path))
        wanted = [k for k in wanted if k in listed]
    return ("run" if len(wanted) == 1 else "backfill"), wanted


async def scan_source(svc: SyncService, reg: RegisteredTable) -> changes.SourceChanges:
    """Ask the source what changed since the served watermark (503 when it cannot answer)."""
    def run() -> changes.SourceChanges:
        served = open_store(svc.settings)
        manifest = served.current(reg.key)
        with sources.connect(reg, svc.settings, snowflake=lambda: connect(svc.settings.snowflake)) as con:
            return changes.scan(con, reg, manifest, served_file=served.local_path)

    try:
        return await anyio.to_thread.run_sync(run)
    except (SourceError, changes.ChangeScanError) as e:
        if isinstance(e, changes.ChangeScanError) and table_status.is_missing_source(str(e)):
            raise source_missing(reg.key, str(e)) from e
        raise ServiceUnavailable(f"could not ask the source what changed in {reg.key}: {e}", rule="source_unavailable",
                                 headers={"Retry-After": "5"}) from e
    except Exception as e:  # the connector raises many unrelated types
        raise ServiceUnavailable(f"could not ask the source what changed in {reg.key}: {type(e).__name__}",
                                 rule="source_unavailable", headers={"Retry-After": "5"}) from e


def outcome_note(kind: str | None, scan: changes.SourceChanges | None, *, figures: bool = True) -> str | None:
    """What an answer's ``note`` says: source rows past the served watermark that no partition can
    take yet (``late_rows``), or what a job rewriting partitions for rows that left every partition
    is for (``moved_out``; None when none did). ``figures``: with the number of rows, which counts
    rows of the whole table (a row filter's hidden ones too), so only for callers shown such figures."""
    if scan is None:
        return None
    if kind == "late_rows":
        rows = f"{scan.newer_rows} source row(s) are newer than the served watermark but lie" if figures else \
            "source rows newer than the served watermark lie"
        return (f"{rows} in no partition that can be materialized yet (such as the current, incomplete window); "
                "they are served when their window completes")
    if kind == "moved_out" and scan.moved_out:
        rows = f"{scan.moved_out} served row(s) no longer lie" if figures else "served rows no longer lie"
        return (f"{rows} in their partition in the source but in none that can be materialized (a NULL or "
                "out-of-range partition value, or the current, incomplete window); the job rewrites the partitions "
                "that served them, so they are no longer served there")
    return None


async def snapshot_current(svc: SyncService, reg: RegisteredTable) -> bool:
    """Whether the newest served snapshot holds as many rows as the source does now (a
    delete or insert since then makes a refresh take a new snapshot)."""
    def run() -> bool:
        manifest = open_store(svc.settings).current(reg.key)
        if manifest is None or not manifest.partitions:
            return False
        served_rows = manifest.partitions[max(manifest.partitions)].get("rows")
        name = ".".join('"' + p.replace('"', '""') + '"' for p in (reg.database, reg.schema, reg.table))
        with sources.connect(reg, svc.settings, snowflake=lambda: connect(svc.settings.snowflake)) as con:
            cur = con.cursor()
            try:
                cur.execute(f"SELECT count(*) FROM {name}")
                row = cur.fetchone()
            finally:
                cur.close()
        return row is not None and served_rows == int(row[0])

    try:
        return await anyio.to_thread.run_sync(run)
    except Exception:  # the source is unreachable: the refresh will say so
        return False


def source_missing(key: str, why: str) -> Conflict:
    """409 ``source_missing``: no run can bring newer data, so a refresh neither starts one nor
    answers ``already_fresh`` (the catalog says ``stale`` with the same reason)."""
    return Conflict(f"the source of {key} is missing ({why}); its last copy stays queryable, and a refresh cannot "
                    "bring newer data until the source table exists again", rule="source_missing",
                    details={"table": key})


async def check_source_present(svc: SyncService, reg: RegisteredTable) -> None:
    """409 ``source_missing`` when the source table has no columns (dropped, renamed, unreadable);
    asked only of tables whose status row says the source went missing."""
    def run() -> bool:
        with sources.connect(reg, svc.settings, snowflake=lambda: connect(svc.settings.snowflake)) as con:
            return bool(sources.table_columns(con, reg))

    try:
        present = await anyio.to_thread.run_sync(run)
    except Exception as e:  # unreachable: the run would say why; do not claim it is gone
        raise ServiceUnavailable(f"could not ask the source whether {reg.key} exists: {type(e).__name__}",
                                 rule="source_unavailable", headers={"Retry-After": "5"}) from e
    if not present:
        raise source_missing(reg.key, "the table does not exist in the source or is not readable by the platform")


def _fresh(synced_at: dt.datetime | None, target_s: float | None) -> bool:
    if synced_at is None or target_s is None:
        return False
    return (dt.datetime.now(dt.UTC) - synced_at).total_seconds() <= target_s


async def _sync_state(svc: SyncService, key: str) -> tuple[dt.datetime | None, str | None]:
    def read() -> tuple[dt.datetime | None, str | None]:
        return synced_at_of(svc.settings, key, store.table_status(svc.control_url, [key]).get(key))

    return await anyio.to_thread.run_sync(read)


async def _marked_missing(svc: SyncService, key: str) -> bool:
    """Whether the table's status row says its source went missing (a failed run, the sensor)."""
    rows = await anyio.to_thread.run_sync(store.table_status, svc.control_url, [key])
    return table_status.missing_source(rows.get(key))


async def request_refresh(svc: SyncService, reg: RegisteredTable, *, requested_by: str | None,
                          max_age_s: float | None = None, reason: str = "refresh",
                          on_new_run: Any = None) -> RefreshOutcome:
    """Coalesced refresh of one table (see module docstring). ``on_new_run()`` runs before a launch
    (the refresh rate and budgets of a ``min_freshness`` query; it may return an awaitable).

    With ``max_age_s`` the caller wants data no older than that *from now*: a run that started
    reading the source earlier is not joined (a follow-up job is queued behind it instead).
    """
    key = reg.key
    if reg.live:
        raise BadRequest(f"{key} is live (not copied): every query reads Snowflake, so there is nothing to refresh",
                         rule="live_table")
    target = max_age_s if max_age_s is not None else reg.freshness_s
    fresh_after = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=max_age_s)) if max_age_s is not None else None
    not_joinable: set[str] = set()
    scan = await scan_source(svc, reg) if changes.cursor_based(reg) else None
    gone = await _marked_missing(svc, key)
    if gone and scan is None:  # a dropped source: neither fresh nor refreshable; re-created: refresh it
        await check_source_present(svc, reg)
    with dagster_calls():
        for _ in range(5):  # a job finishing, or found already started, while we look is re-evaluated
            synced_at, version = await _sync_state(svc, key)
            if scan is not None:
                kind, partitions = await changed_partitions(svc, reg, scan)
                if scan.fresh or (is_partitioned(reg) and not partitions):
                    return RefreshOutcome(key, "already_fresh", synced_at, version, reg.freshness_s, source=scan,
                                          note_kind=None if scan.fresh else "late_rows")
            else:
                if not gone and _fresh(synced_at, target) and await _complete(svc, reg) and (
                        reg.strategy != "snapshot" or await snapshot_current(svc, reg)):
                    return RefreshOutcome(key, "already_fresh", synced_at, version, reg.freshness_s)
                kind, partitions = await target_partitions(svc, reg)
            claim = functools.partial(store.claim, svc.control_url, table_key=key, kind=kind, partitions=partitions,
                                      requested_by=requested_by, reason=reason, fresh_after=fresh_after,
                                      not_joinable=frozenset(not_joinable))
            job, created = await anyio.to_thread.run_sync(claim)
            if not created:
                state = await jobs.observe(svc, job)
                started_too_early = (fresh_after is not None and state.job.status == "running"
                                     and state.job.created_at < fresh_after)
                if state.job.active and not started_too_early:
                    est = await estimate(svc, key, state.job, runs=runs_needed(reg, state.job.partitions))
                    return RefreshOutcome(key, "existing_job", synced_at, version, reg.freshness_s, state.job,
                                          est.total_s, est.basis, partitions=partitions or None, source=scan,
                                          note_kind="moved_out")
                if state.job.status == "succeeded" and target is None and scan is None:
                    synced_at, version = await _sync_state(svc, key)
                    return RefreshOutcome(key, "already_fresh", synced_at, version, reg.freshness_s, state.job)
                not_joinable.add(job.id)
                if scan is not None and state.job.status == "succeeded":  # it may have served what we saw
                    scan = await scan_source(svc, reg)
                continue
            job = await _start(svc, job, reg, on_new_run, fresh_after)
            est = await estimate(svc, key, job, runs=runs_needed(reg, job.partitions))
            outcome = "existing_job" if job.reason == "coalesced" else "started"
            return RefreshOutcome(key, outcome, synced_at, version, reg.freshness_s, job, est.total_s, est.basis,
                                  partitions=partitions or None, source=scan, note_kind="moved_out")
    raise ServiceUnavailable(f"could not settle a refresh of {key}; retry", rule="refresh_contention")


async def _start(svc: SyncService, job: store.SyncJob, reg: RegisteredTable, on_new_run: Any,
                 fresh_after: dt.datetime | None) -> store.SyncJob:
    """Join a run someone else launched for the same target (if it reads the source late enough), else launch."""
    try:
        activity = await svc.client.asset_activity(reg.asset_key_path)
        for run_id in (activity.unstarted + activity.in_progress)[:5]:
            run = await svc.client.run(run_id)
            # A run covers the whole table, one partition or one range: join it only if that is the whole job.
            if run is None or run.terminal or (job.partitions and [run.partition] != list(job.partitions)):
                continue
            started = run.started_at or run.created_at
            if fresh_after is None or run.status in QUEUED or (started and started >= fresh_after.timestamp()):
                return await jobs.attach(svc, job, run)
        if on_new_run is not None and inspect.isawaitable(started := on_new_run()):
            await started
    except Exception as e:
        message = f"not launched: {e}"[:4000]
        await anyio.to_thread.run_sync(lambda: store.update(
            svc.control_url, job.id, status="failed", error=message, finished_at=dt.datetime.now(dt.UTC)))
        raise
    return await jobs.launch(svc, job, reg)


async def ensure_fresh(services: Services, caller: Caller, table_keys: Sequence[str], min_freshness_s: float,
                       wait_s: float) -> list[dict[str, Any]]:
    """Return once every table in ``table_keys`` is at most ``min_freshness_s`` old.

    Refreshes (coalesced) the tables that are older and waits for their new versions up to
    ``wait_s`` seconds. A failed refresh answers 503 with Dagster's message; running out
    of time answers 503 (``freshness_timeout``) with the job ids to poll. The caller must
    already have checked grants on ``table_keys``. Returns one entry per table:
    ``{table, synced_at, age_s, refreshed, job_id}``.
    """
    svc = get_sync(services)
    deadline = time.monotonic() + max(0.0, wait_s)
    pending: dict[str, store.SyncJob | None] = {}
    results: dict[str, dict[str, Any]] = {}
    for key in dict.fromkeys(k.lower() for k in table_keys):
        synced_at, _ = await _sync_state(svc, key)
        reg = await anyio.to_thread.run_sync(registry.get_registered, svc.control_url, key)
        if _fresh(synced_at, min_freshness_s) and (reg is None or reg.live or await _complete(svc, reg)):
            results[key] = _entry(key, synced_at, refreshed=False, job=None)
            continue
        if reg is not None and reg.live:  # read from Snowflake when the query runs: as fresh as it gets
            results[key] = _entry(key, dt.datetime.now(dt.UTC), refreshed=False, job=None)
            continue
        if reg is None:  # served but no longer registered: nothing can refresh it
            raise ServiceUnavailable(f"table {key} is older than {min_freshness_s:g} s and is not registered for sync",
                                     rule="freshness_unavailable")
        outcome = await request_refresh(
            svc, reg, requested_by=caller.subject, max_age_s=min_freshness_s, reason="freshness",
            on_new_run=lambda: get_budgets(services).admit({}, caller, REFRESH))
        if outcome.outcome == "already_fresh":
            results[key] = _entry(key, outcome.synced_at, refreshed=False, job=outcome.job)
        else:
            pending[key] = outcome.job
    last_check = 0.0
    while pending:
        for key, job in list(pending.items()):
            synced_at, _ = await _sync_state(svc, key)
            if _fresh(synced_at, min_freshness_s) or (job is not None and synced_at is not None
                                                      and synced_at >= job.created_at):
                results[key] = _entry(key, synced_at, refreshed=True, job=job)
                del pending[key]
        if not pending:
            break
        if time.monotonic() - last_check >= 1.0:  # watch the jobs for failures, not every tick
            last_check = time.monotonic()
            for key in await _finished_jobs(svc, pending, services, caller):  # succeeded, source unchanged
                synced_at, _ = await _sync_state(svc, key)
                results[key] = _entry(key, synced_at, refreshed=True, job=pending.pop(key))
            if not pending:
                break
        if time.monotonic() >= deadline:
            raise ServiceUnavailable(
                f"fresh data for {', '.join(sorted(pending))} was not ready within {wait_s:g} s; "
                "poll the refresh job or retry with a larger wait_s", rule="freshness_timeout",
                details={"jobs": {k: (j.id if j else None) for k, j in pending.items()}},
                headers={"Retry-After": "5"})
        await anyio.sleep(POLL_S)
    return [results[k] for k in sorted(results)]


async def _finished_jobs(svc: SyncService, pending: dict[str, store.SyncJob | None], services: Services,
                         caller: Caller) -> set[str]:
    """Tables whose refresh job succeeded; raises 503 with Dagster's message if one failed (as
    ``caller`` may read it: ``sync_errors_seen``)."""
    done: set[str] = set()
    for key, job in pending.items():
        if job is None:
            continue
        with dagster_calls():
            state = await jobs.observe(svc, job)
        if state.job.status == "succeeded":
            done.add(key)
        elif state.job.status in ("failed", "canceled"):
            seen = sync_errors_seen(caller, served_tables(services).current(key), key, list(state.errors or []))
            message = seen[0] if seen else f"the refresh was {state.job.status}"
            raise ServiceUnavailable(f"the refresh of {key} {state.job.status}: {message}", rule="refresh_failed",
                                     details={"job_id": job.id, "table": key})
    return done


def _entry(key: str, synced_at: dt.datetime | None, *, refreshed: bool, job: store.SyncJob | None) -> dict[str, Any]:
    age = (dt.datetime.now(dt.UTC) - synced_at).total_seconds() if synced_at else None
    return {"table": key, "synced_at": synced_at.isoformat() if synced_at else None,
            "age_s": round(age, 3) if age is not None else None, "refreshed": refreshed,
            "job_id": job.id if job else None}
