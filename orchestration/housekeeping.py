"""Housekeeping jobs, each with its own schedule, visible in the Dagster UI.

Why Dagster jobs (and not cron in the API): every pass is a run with logs, counts as
metadata, a history, and a failure that shows up next to the syncs. The rules live in
``shared.housekeeping`` as plain functions (tested without Dagster); the ops only give
them settings, the instance's run history, and log what they did.
"""


import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any

import dagster as dg

from shared import housekeeping as hk
from shared.dagster_names import TABLE_TAG
from shared.settings import Settings, get_settings

HOUSEKEEPING_RESOURCE_KEY = "housekeeping"
PURGE_EXPIRED_JOB = "housekeeping_purge_expired"
PURGE_VERSIONS_JOB = "housekeeping_purge_superseded_versions"
STUCK_JOBS_JOB = "housekeeping_mark_stuck_jobs"
SYNC_STATS_JOB = "housekeeping_refresh_sync_stats"
CRONS = {
    PURGE_EXPIRED_JOB: "*/15 * * * *",
    PURGE_VERSIONS_JOB: "*/10 * * * *",
    STUCK_JOBS_JOB: "*/5 * * * *",
    SYNC_STATS_JOB: "0 * * * *",  # hourly, as the issue asks
}
RUN_HISTORY = 20  # runs per table behind the duration statistics
_TERMINAL = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


class HousekeepingResource(dg.ConfigurableResource):
    """Settings for housekeeping; empty fields come from the environment (``get_settings()``)."""

    home: str = ""
    control_url: str = ""

    def settings(self) -> Settings:
        base = get_settings()
        return dataclasses.replace(base, home=self.home or base.home, database_url=self.control_url or base.database_url)


def _output(report: hk.Report, housekeeping: "HousekeepingResource | None" = None) -> dg.Output:
    if housekeeping is not None:
        hk.record_totals(housekeeping.settings().control_url, report)  # the API's metrics read the totals
    meta: dict[str, Any] = {k: dg.MetadataValue.int(v) for k, v in report.counts.items()}
    if report.details:
        meta["details"] = dg.MetadataValue.md("\n".join(f"- {d}" for d in report.details))
    return dg.Output(report.counts, metadata=meta)


@dg.op(description="Delete result files of expired query jobs; mark the jobs expired.")
def purge_expired_query_results(context: dg.OpExecutionContext, housekeeping: HousekeepingResource) -> dg.Output:
    report = hk.purge_expired_query_results(housekeeping.settings())
    context.log.info(f"{report.name}: {report.counts}")
    return _output(report, housekeeping)


@dg.op(description="Delete expired artifacts through the artifact store (local or S3).")
def purge_expired_artifacts(context: dg.OpExecutionContext, housekeeping: HousekeepingResource) -> dg.Output:
    report = hk.purge_expired_artifacts(housekeeping.settings())
    context.log.info(f"{report.name}: {report.counts} {report.details}")
    return _output(report, housekeeping)


@dg.op(description="Delete served versions replaced longer ago than SERVED_VERSION_GRACE_MINUTES.")
def purge_superseded_versions(context: dg.OpExecutionContext, housekeeping: HousekeepingResource) -> dg.Output:
    report = hk.purge_superseded_versions(housekeeping.settings())
    context.log.info(f"{report.name}: {report.counts}")
    return _output(report, housekeeping)


@dg.op(description="Mark query jobs and sync requests running longer than STUCK_JOB_MINUTES as failed.")
def mark_stuck_jobs_failed(context: dg.OpExecutionContext, housekeeping: HousekeepingResource) -> dg.Output:
    def run_status(run_id: str) -> str | None:
        run = context.instance.get_run_by_id(run_id)
        return run.status.value if run else None

    report = hk.mark_stuck_jobs_failed(housekeeping.settings(), run_status=run_status)
    context.log.info(f"{report.name}: {report.counts}")
    return _output(report, housekeeping)


def recent_runs(instance: dg.DagsterInstance, table_key: str) -> list[hk.RunSample]:
    """Finished runs of one table: tagged runs plus the runs behind its latest materializations."""
    key = dg.AssetKey(table_key.split("."))
    records = instance.get_run_records(dg.RunsFilter(tags={TABLE_TAG: table_key}, statuses=_TERMINAL), limit=RUN_HISTORY)
    seen = {r.dagster_run.run_id for r in records}
    mats = instance.fetch_materializations(key, limit=RUN_HISTORY).records
    extra = {m.run_id for m in mats} - seen
    if extra:
        records = [*records, *instance.get_run_records(dg.RunsFilter(run_ids=sorted(extra), statuses=_TERMINAL))]

    def when(ts: float | None) -> dt.datetime | None:
        return dt.datetime.fromtimestamp(ts, dt.UTC) if ts else None

    return [hk.RunSample(r.dagster_run.run_id, r.dagster_run.status.value, when(r.start_time), when(r.end_time))
            for r in records]


@dg.op(description="Refresh per-table sync statistics (served size, versions, run durations) in the control DB.")
def refresh_sync_stats(context: dg.OpExecutionContext, housekeeping: HousekeepingResource) -> dg.Output:
    report = hk.refresh_sync_stats(housekeeping.settings(), runs_for=lambda key: recent_runs(context.instance, key))
    context.log.info(f"{report.name}: {report.counts}")
    return _output(report, housekeeping)


@dg.job(name=PURGE_EXPIRED_JOB, description="Purge expired query results and expired artifacts.",
        tags={"agents_data/kind": "housekeeping"})
def purge_expired_job() -> None:
    purge_expired_query_results()
    purge_expired_artifacts()


@dg.job(name=PURGE_VERSIONS_JOB, description="Purge served-data versions no reader needs any more.",
        tags={"agents_data/kind": "housekeeping"})
def purge_versions_job() -> None:
    purge_superseded_versions()


@dg.job(name=STUCK_JOBS_JOB, description="Mark jobs stuck in running as failed.", tags={"agents_data/kind": "housekeeping"})
def stuck_jobs_job() -> None:
    mark_stuck_jobs_failed()


@dg.job(name=SYNC_STATS_JOB, description="Refresh per-table sync statistics (hourly).",
        tags={"agents_data/kind": "housekeeping"})
def sync_stats_job() -> None:
    refresh_sync_stats()


JOBS = [purge_expired_job, purge_versions_job, stuck_jobs_job, sync_stats_job]


def build_housekeeping(*, running: bool) -> tuple[list[dg.JobDefinition], list[dg.ScheduleDefinition]]:
    """The jobs and one schedule each (``<job>_schedule``)."""
    status = dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED
    schedules = [
        dg.ScheduleDefinition(name=f"{job.name}_schedule", job=job, cron_schedule=CRONS[job.name],
                              execution_timezone="UTC", default_status=status)
        for job in JOBS
    ]
    return list(JOBS), schedules


def run_all(settings: Settings, instance: dg.DagsterInstance | None = None) -> Iterable[hk.Report]:
    """Every pass once, outside Dagster (an operator's shell, tests)."""
    yield hk.purge_expired_query_results(settings)
    yield hk.purge_expired_artifacts(settings)
    yield hk.purge_superseded_versions(settings)
    yield hk.mark_stuck_jobs_failed(settings)
    runs_for = (lambda key: recent_runs(instance, key)) if instance else None
    yield hk.refresh_sync_stats(settings, runs_for=runs_for)
