"""Schedules: one per registered table, from its cron, built with the assets from the registry.

Why one factory next to the asset factory: both read the same ``RegisteredTable`` when the
code location loads, so a registration (or its removal) makes the asset and its schedule
appear (or disappear) together after ``reloadRepositoryLocation``.

What a tick requests:
- unpartitioned: the whole table;
- time-partitioned: the latest *complete* window at the scheduled time (a snapshot
  table: today's copy);
- static partitions: every value (there is no "latest" value, and the lists are short).

A table registered without a cron still gets a schedule: its freshness target (or the
global default) would otherwise fail whenever the source is quiet, since the
source-change sensor only reacts to changes. ``default_cron`` picks one from the
partition cadence or from half the freshness target.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import dagster as dg

from orchestration.assets import build_table_job, definition_name
from shared import partitions as sp
from shared.dagster_names import REASON_TAG, TABLE_TAG
from shared.registry import RegisteredTable

if TYPE_CHECKING:
    from orchestration.assets import TableJob

SCHEDULE_TIMEZONE = "UTC"
# Just after the window closes, so the latest complete partition is the one that just ended.
PARTITION_CRONS = {sp.HOURLY: "5 * * * *", sp.DAILY: "15 0 * * *", sp.MONTHLY: "30 0 1 * *"}
_MINUTE_STEPS = (5, 10, 15, 20, 30)
_HOUR_STEPS = (1, 2, 3, 4, 6, 8, 12)


def schedule_name(table: RegisteredTable) -> str:
    """``<database>__<schema>__<table>_schedule``: stable, and valid as a Dagster name."""
    return definition_name(table, "schedule")


def default_cron(table: RegisteredTable, freshness_s: int) -> str:
    """A cron for a table registered without one.

    Time-partitioned tables follow their partition cadence; others run at least twice per
    freshness target (rounded down to a cron-friendly step, at most daily).
    """
    kind = sp.time_kind(table)
    if kind is not None and table.strategy != "snapshot":
        return PARTITION_CRONS[kind]
    half_min = max(5, freshness_s // 120)
    if half_min < 60:
        step = max(s for s in _MINUTE_STEPS if s <= half_min)
        return f"*/{step} * * * *"
    half_h = half_min // 60
    if half_h < 24:
        step = max(s for s in _HOUR_STEPS if s <= half_h)
        return "0 * * * *" if step == 1 else f"0 */{step} * * *"
    return "0 1 * * *"


def build_table_schedule(*, table: RegisteredTable, cron: str, default_status: dg.DefaultScheduleStatus,
                         job: TableJob | None = None) -> dg.ScheduleDefinition:
    """The schedule of one table (see the module docstring for what a tick requests).

    It targets the table's own asset job (``job``, built here when not given), never a
    selection spanning tables, so tables of different layouts never share a job.
    """
    job = job or build_table_job(table=table)
    tags = {TABLE_TAG: table.key, REASON_TAG: "schedule"}

    @dg.schedule(name=schedule_name(table), cron_schedule=cron, execution_timezone=SCHEDULE_TIMEZONE,
                 target=job, default_status=default_status,
                 description=f"Syncs {table.key} ({cron}, UTC).", tags={TABLE_TAG: re.sub(r"[^A-Za-z0-9_.-]", "_", table.key)})
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | list[dg.RunRequest] | dg.SkipReason:
        if not sp.is_partitioned(table):
            return dg.RunRequest(tags=tags)
        if sp.time_kind(table) is None:
            # Several requests per tick need run keys; scoped to the tick, so every tick runs.
            tick = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "now"
            return [dg.RunRequest(run_key=f"{v}@{tick}", partition_key=v, tags=tags) for v in table.partition_values]
        latest = sp.latest_key(table, context.scheduled_execution_time)
        if latest is None:
            return dg.SkipReason(f"{table.key} has no complete partition yet (partitions start {table.partition_start})")
        return dg.RunRequest(partition_key=latest, tags=tags)

    return _schedule


def build_table_schedules(*, tables: Sequence[RegisteredTable], freshness_s: dict[str, int], running: bool,
                          jobs: Mapping[str, TableJob] | None = None
                          ) -> list[dg.ScheduleDefinition]:
    """One schedule per table. ``freshness_s`` is each table's effective target (global default applied);
    ``jobs`` the tables' asset jobs by key (shared with the sensor), built here when not given."""
    status = dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED
    return [
        build_table_schedule(table=t, cron=t.schedule or default_cron(t, freshness_s[t.key]), default_status=status,
                             job=(jobs or {}).get(t.key))
        for t in tables
    ]
