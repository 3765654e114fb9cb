"""Sensors: react to source changes and to failed materializations.

Source change: one ``INFORMATION_SCHEMA.TABLES`` query per source database gives every
registered Snowflake table's ``LAST_ALTERED|ROW_COUNT``; file sources give the sizes and
modification times of their files (``shared.sources.change_signatures``).
The cursor is the JSON map ``{table key: signature}``; a table whose signature differs
from the cursor gets a run, with ``run_key = key|signature`` so the same change can never
trigger two runs (Dagster drops a repeated run key even if the cursor were lost). Both
halves of the signature are needed: ``LAST_ALTERED`` catches updates on real Snowflake
and ``ROW_COUNT`` catches inserts on the local stand-in, where ``LAST_ALTERED`` never
moves. A changed partitioned, cursor-based (incremental) table is then asked which
partitions hold rows past its served watermark (``shared.changes``, the same question an
agent's refresh asks, with the served version's file for the partitions still serving rows
the source moved out of every partition), and exactly those, plus new windows, are requested
as runs over ranges of adjacent partitions: late rows and updates in old partitions are
served, not only the newest partition. Every tick that requests nothing says why.

Run failure: a failed run writes the failure onto the table's status row (the API shows
``failing`` with the reason), so a broken table is never silent. A source table that no
longer exists also marks the served data stale; the served data itself stays. The asset's
step records both outcomes of a run itself (``orchestration.assets.record_run``); this
sensor is the backstop for a run that dies before its step can record anything (``kill
-9``, a lost worker), and a second report of an already recorded run changes nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack
from typing import TYPE_CHECKING, Any

import dagster as dg

from orchestration.assets import build_table_jobs
from shared import changes, status
from shared import partitions as sp
from shared.dagster_names import RANGE_END_TAG, RANGE_START_TAG, REASON_TAG, TABLE_TAG
from shared.registry import RegisteredTable
from shared.served_storage import ServedStore, open_store
from shared.sources import change_signatures
from shared.sources import connect as source_connect

if TYPE_CHECKING:
    from orchestration.assets import TableJob

SOURCE_CHANGE_SENSOR = "source_change_sensor"
FAILURE_SENSOR = "table_run_failure_sensor"
SOURCE_CHANGE_INTERVAL_S = 30
FAILURE_SENSOR_INTERVAL_S = 5
# Errors that mean the source table is gone or unreadable, not that one run was unlucky.
ConnectionFactory = Callable[[], AbstractContextManager[Any]]


def _asset_key(table: RegisteredTable) -> dg.AssetKey:
    return dg.AssetKey(table.asset_key_path)


def requests_for_change(table: RegisteredTable, signature: str, *, now: dt.datetime,
                        partitions: Sequence[str] | None = None) -> list[dg.RunRequest]:
    """Run requests for one changed table: the given partitions, else the latest partition,
    every static value, or the whole table.

    ``partitions`` comes from :func:`shared.changes.scan` for cursor-based tables (the
    partitions holding rows past the served watermark, plus new ones): they are requested
    as runs over ranges of adjacent partitions, so exactly those are rewritten. Without it
    (no cursor), which rows changed is unknown (the signature is table-wide), so a
    time-partitioned table refreshes its newest partition, where new rows land, and a
    static-partitioned one every value (static lists are short).
    """
    tags = {TABLE_TAG: table.key, REASON_TAG: "source_change"}
    base = f"{table.key}|{signature}"
    if not sp.is_partitioned(table):
        return [dg.RunRequest(run_key=base, asset_selection=[_asset_key(table)], tags=tags)]
    if partitions is not None:
        out = []
        for first, last in changes.contiguous_ranges(table, partitions, now=now):
            if first == last:
                out.append(dg.RunRequest(run_key=f"{base}|{first}", asset_selection=[_asset_key(table)],
                                         partition_key=first, tags=tags))
            else:
                out.append(dg.RunRequest(run_key=f"{base}|{first}..{last}", asset_selection=[_asset_key(table)],
                                         tags={**tags, RANGE_START_TAG: first, RANGE_END_TAG: last}))
        return out
    keys = list(table.partition_values) if sp.time_kind(table) is None else [sp.latest_key(table, now)]
    return [
        dg.RunRequest(run_key=f"{base}|{k}", asset_selection=[_asset_key(table)], partition_key=k, tags=tags)
        for k in keys if k
    ]


ScanChanges = Callable[[RegisteredTable], changes.SourceChanges]


def _scans(table: RegisteredTable) -> bool:
    """Tables whose changed partitions are asked of the source: partitioned and cursor-based."""
    return changes.cursor_based(table) and table.partitioned


def evaluate_source_changes(tables: Sequence[RegisteredTable], cursor: str | None, signatures: dict[tuple[str, str, str], str],
                            *, now: dt.datetime, scan: ScanChanges | None = None) -> dg.SensorResult:
    """The sensor's decision as a pure function of (registrations, cursor, signatures, ``scan``).

    Tables seen for the first time only record a baseline: the schedule or an explicit
    sync makes their first copy, and a fresh install does not start every sync at once.
    A changed partitioned, cursor-based table is scanned (``scan(table)``): only the
    partitions with rows past the served watermark, plus new ones, are requested; none
    when no row is newer. A scan that fails keeps the table's previous signature, so the
    next tick asks again.
    """
    previous: dict[str, str] = json.loads(cursor) if cursor else {}
    new_cursor: dict[str, str] = {}
    requests: list[dg.RunRequest] = []
    changed, baseline, missing, unchanged_rows, failed = [], [], [], [], []
    for t in tables:
        sig = signatures.get((t.database, t.schema, t.table))
        if sig is None:
            missing.append(t.key)
            if t.key in previous:
                new_cursor[t.key] = previous[t.key]  # a re-created table is then seen as changed
            continue
        new_cursor[t.key] = sig
        if t.key not in previous:
            baseline.append(t.key)
        elif previous[t.key] != sig:
            changed.append(t.key)
            if scan is None or not _scans(t):
                requests.extend(requests_for_change(t, sig, now=now))
                continue
            try:
                found = scan(t)
            except Exception as e:  # the source answered the signature but not the scan: ask again next tick
                new_cursor[t.key] = previous[t.key]
                failed.append(f"{t.key} ({type(e).__name__}: {str(e)[:200]})")
                continue
            if found.partitions:
                requests.extend(requests_for_change(t, sig, now=now, partitions=found.partitions))
            else:
                unchanged_rows.append(t.key)
    cursor_out = json.dumps(new_cursor, sort_keys=True)
    if requests:
        return dg.SensorResult(run_requests=requests, cursor=cursor_out)
    reasons = [f"no registered table changed since the last tick ({len(tables) - len(missing)} checked)"]
    if changed:
        reasons = [f"changed but nothing to request (no partition yet): {', '.join(changed)}"]
    if unchanged_rows:
        reasons = [f"changed, but no row is newer than the served watermark: {', '.join(unchanged_rows)}"]
    if failed:
        reasons.append(f"could not ask the source which partitions changed (retried next tick): {', '.join(failed)}")
    if baseline:
        reasons.append(f"recorded a first signature for {', '.join(baseline)}")
    if missing:
        reasons.append(f"missing in the source (dropped or not visible to this role): {', '.join(missing)}")
    if not tables:
        reasons = ["no tables are registered"]
    return dg.SensorResult(skip_reason=dg.SkipReason("; ".join(reasons)), cursor=cursor_out)


def with_job_names(result: dg.SensorResult, job_names: Mapping[str, str]) -> dg.SensorResult:
    """Each run request names the asset job of its table (keyed by the table tag).

    The sensor targets one job per table: a single job over every table would need one
    partitions definition for all of them, which Dagster refuses for mixed layouts.
    """
    if not result.run_requests:
        return result
    by_path = {tuple(key.split(".")): name for key, name in job_names.items()}

    def job_of(request: dg.RunRequest) -> str:
        if request.tags.get(TABLE_TAG) in job_names:
            return job_names[request.tags[TABLE_TAG]]
        paths = [tuple(a.path) for a in request.asset_selection or ()]  # one table per request
        if len(paths) != 1 or paths[0] not in by_path:
            raise ValueError(f"run request {request.run_key!r} names no registered table")
        return by_path[paths[0]]

    requests = [r.with_replaced_attrs(job_name=job_of(r)) for r in result.run_requests]
    return dg.SensorResult(run_requests=requests, cursor=result.cursor)


def _served_store() -> ServedStore:
    from shared.settings import get_settings

    return open_store(get_settings())


def _presence_with_settings(missing: list[str], present: list[str]) -> list[str]:
    from shared.settings import get_settings

    return status.record_source_presence(get_settings().control_url, missing=missing, present=present)


def build_source_change_sensor(*, tables: Sequence[RegisteredTable],
                               default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
                               minimum_interval_seconds: int = SOURCE_CHANGE_INTERVAL_S,
                               jobs: Mapping[str, TableJob] | None = None,
                               served: Callable[[], ServedStore] = _served_store,
                               presence: Callable[[list[str], list[str]], list[str]] = _presence_with_settings,
                               ) -> dg.SensorDefinition:
    """The source-change sensor over the registrations loaded with the code location.

    Every tick also writes which sources are missing onto the tables' status rows
    (``presence(missing, present)``, ``shared.status.record_source_presence``), so agents see
    a dropped or unreadable source in the catalog without waiting for a run to fail.

    The Snowflake connection comes from the resource the assets use (key ``snowflake``),
    so the sensor and the syncs always look at the same account. It targets every
    table's own asset job (``jobs`` by table key, shared with the schedules; built here
    when not given). The served watermark of a changed cursor-based table is read from
    its current served manifest (``served()``, the store of ``SERVED_STORAGE``).
    """
    tables = list(tables)
    jobs = dict(jobs) if jobs is not None else build_table_jobs(tables=tables)
    job_names = {t.key: jobs[t.key].name for t in tables}

    @dg.sensor(name=SOURCE_CHANGE_SENSOR, minimum_interval_seconds=minimum_interval_seconds,
               jobs=[jobs[t.key] for t in tables] or None, default_status=default_status,
               description="Requests a sync of every registered table whose LAST_ALTERED|ROW_COUNT changed in the source "
                           "(for incremental partitioned tables: the partitions with rows past the served watermark).")
    def source_change_sensor(context: dg.SensorEvaluationContext, snowflake: dg.ResourceParam[Any]) -> dg.SensorResult:
        if not tables:
            return dg.SensorResult(skip_reason=dg.SkipReason("no tables are registered"), cursor=context.cursor)
        try:
            with ExitStack() as stack:  # Snowflake is asked only when a Snowflake table is registered
                con = stack.enter_context(snowflake.get_connection()) if any(not t.from_files for t in tables) else None
                sigs = change_signatures(tables, snowflake_con=con)
                now = dt.datetime.now(dt.UTC)
                found = {t.key for t in tables if (t.database, t.schema, t.table) in sigs}
                try:  # the run requests below must not wait for the control database
                    marked = presence(sorted({t.key for t in tables} - found), sorted(found))
                    if marked:
                        context.log.info(f"source presence changed (status rows updated): {', '.join(marked)}")
                except Exception as e:
                    context.log.warning(f"could not record which sources are missing: {type(e).__name__}: {e}")

                def scan(table: RegisteredTable) -> changes.SourceChanges:
                    store = served()
                    manifest = store.current(table.key, fresh=True)
                    if not table.from_files:
                        return changes.scan(con, table, manifest, now=now, served_file=store.local_path)
                    with source_connect(table) as own:
                        return changes.scan(own, table, manifest, now=now, served_file=store.local_path)

                result = evaluate_source_changes(tables, context.cursor, sigs, now=now, scan=scan)
                return with_job_names(result, job_names)
        except Exception as e:  # unreachable source, bad credentials: skip, keep the cursor
            return dg.SensorResult(
                skip_reason=dg.SkipReason(f"source unreachable, nothing compared (cursor kept): {type(e).__name__}: {e}"),
                cursor=context.cursor,
            )

    return source_change_sensor


# --- failures ------------------------------------------------------------------------------


def table_keys_of_run(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[str]:
    """Table keys a run was to materialize: its table tag, its asset selection, else its plan.

    The planned-materialization events cover runs launched without a selection (a whole
    asset job, ``materialize()`` in tests).
    """
    if run.tags.get(TABLE_TAG):
        return [run.tags[TABLE_TAG]]
    keys = set(run.asset_selection or ())
    if not keys:
        planned = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
        keys = {r.asset_key for r in planned.records if r.asset_key is not None}
    return sorted(".".join(k.path).lower() for k in keys if len(k.path) == 3)


def failure_message(instance: dg.DagsterInstance, run_id: str, fallback: str) -> str:
    """The most specific error of a failed run: the root cause of its first failed step."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_FAILURE).records
    for record in records:
        event = record.event_log_entry.dagster_event
        error = getattr(getattr(event, "event_specific_data", None), "error", None) if event else None
        while error is not None and error.cause is not None:
            error = error.cause
        if error is not None:
            return error.message.strip()  # already "ClassName: message"
    return fallback


is_missing_source = status.is_missing_source


def record_run_failure(control_url: str, keys: Iterable[str], run_id: str, message: str, failed_at: dt.datetime) -> None:
    """Write a failed run onto each table's status row (rules: ``shared/status.py``)."""
    from shared.control.db import migrate

    migrate(control_url)
    status.record_failure(control_url, keys, run_id, message, failed_at)


def _record_with_settings(keys: Iterable[str], run_id: str, message: str, failed_at: dt.datetime) -> None:
    from shared.settings import get_settings

    record_run_failure(get_settings().control_url, keys, run_id, message, failed_at)


def build_failure_sensor(*, record: Callable[[Iterable[str], str, str, dt.datetime], None] = _record_with_settings,
                         default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING) -> dg.SensorDefinition:
    """Run-failure sensor: ``record(table_keys, run_id, message, failed_at)`` writes the status rows."""

    @dg.run_failure_sensor(name=FAILURE_SENSOR, minimum_interval_seconds=FAILURE_SENSOR_INTERVAL_S,
                           default_status=default_status,
                           description="Records every failed table run on the table's status row, so the API reports it.")
    def table_run_failure_sensor(context: dg.RunFailureSensorContext) -> dg.SkipReason | None:
        run = context.dagster_run
        keys = table_keys_of_run(context.instance, run)
        if not keys:
            return dg.SkipReason(f"run {run.run_id} ({run.job_name}) materializes no table")
        fallback = context.failure_event.message or "run failed"
        message = failure_message(context.instance, run.run_id, fallback)
        run_record = context.instance.get_run_record_by_id(run.run_id)
        ended = run_record.end_time if run_record and run_record.end_time else None
        failed_at = dt.datetime.fromtimestamp(ended, dt.UTC) if ended else dt.datetime.now(dt.UTC)
        record(keys, run.run_id, message, failed_at)
        context.log.info(f"recorded failure of run {run.run_id} on {', '.join(keys)}: {message[:200]}")
        return None

    return table_run_failure_sensor
