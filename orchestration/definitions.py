"""The code location: one asset per registered table, read from the registry at load time.

Why lazy (``@dg.definitions``): nothing runs at import; the registry is read when Dagster
loads (or reloads) the location, so ``reloadRepositoryLocation`` after a registration
makes the asset appear or disappear without restarting anything.

Global policy lives here once. ``EXTENSIONS`` is the hook for automation: each entry
takes the registrations and settings and returns extra ``dg.Definitions`` (schedules,
sensors, jobs) merged into the location.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import dagster as dg

from orchestration.assets import build_table_assets, build_table_jobs
from orchestration.housekeeping import HOUSEKEEPING_RESOURCE_KEY, HousekeepingResource, build_housekeeping
from orchestration.resources import build_resources
from orchestration.schedules import build_table_schedules
from orchestration.sensors import build_failure_sensor, build_source_change_sensor
from shared import partitions as sp
from shared.control.db import migrate
from shared.filemodes import restrict_process
from shared.registry import RegisteredTable, list_registered
from shared.settings import Settings, get_settings

Extension = Callable[[Sequence[RegisteredTable], Settings], dg.Definitions]

# --- Global policy ----------------------------------------------------------------------
# Freshness target of a table registered without one: its partition cadence plus slack
# for the run itself, or a day for unpartitioned and static tables.
DEFAULT_FRESHNESS_S = {sp.HOURLY: 2 * 3600, sp.DAILY: 26 * 3600, sp.MONTHLY: 32 * 86400, None: 24 * 3600}
# Every job runs its steps in the run worker's own process: a sync run is one step, and
# the multiprocess executor would start a second interpreter per step (seconds of
# import) for nothing. See dagster.yaml for the launcher/coordinator side of latency.
EXECUTOR = dg.in_process_executor


def with_policy(table: RegisteredTable) -> RegisteredTable:
    """The registration with global defaults filled in (freshness target)."""
    if table.freshness_s:
        return table
    return dataclasses.replace(table, freshness_s=DEFAULT_FRESHNESS_S[sp.time_kind(table)])


def automation(tables: Sequence[RegisteredTable], settings: Settings) -> dg.Definitions:
    """Schedules, sensors and jobs. SCHEDULES_DEFAULT_RUNNING=false starts table schedules,
    housekeeping schedules and the source-change sensor stopped; the failure sensor always
    runs, since it only records what happened.

    Every table has its own asset job, shared by its schedule and the source-change sensor:
    a job spanning tables would need one partitions definition for all of them.
    """
    running = settings.dagster.schedules_running
    housekeeping_jobs, housekeeping_schedules = build_housekeeping(running=running)
    table_jobs = build_table_jobs(tables=tables)
    sensor_status = dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED
    table_schedules = build_table_schedules(
        tables=tables, freshness_s={t.key: int(t.freshness_s or 0) for t in tables}, running=running, jobs=table_jobs)
    return dg.Definitions(
        jobs=[*housekeeping_jobs, *table_jobs.values()],
        schedules=[*table_schedules, *housekeeping_schedules],
        sensors=[build_source_change_sensor(tables=tables, default_status=sensor_status, jobs=table_jobs,
                                           minimum_interval_seconds=settings.dagster.source_change_interval_s),
                 build_failure_sensor()],
        resources={HOUSEKEEPING_RESOURCE_KEY: HousekeepingResource()},
    )


EXTENSIONS: list[Extension] = [automation]


def build_definitions(tables: Sequence[RegisteredTable], settings: Settings) -> dg.Definitions:
    tables = [with_policy(t) for t in tables if not t.live]  # live tables are not copied: no asset
    core = dg.Definitions(assets=build_table_assets(tables=tables), resources=build_resources(settings),
                          executor=EXECUTOR)
    return dg.Definitions.merge(core, *(extend(tables, settings) for extend in EXTENSIONS))


def load_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or get_settings()
    restrict_process()  # owner-only files for this process and the run workers it starts
    migrate(settings.control_url)
    return build_definitions(list_registered(settings.control_url), settings)


@dg.definitions
def defs() -> dg.Definitions:
    return load_definitions()
