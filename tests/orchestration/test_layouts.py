"""Tables of every partition layout side by side on one code location.

Dagster refuses a job whose assets have different partitions definitions; each table
therefore has its own asset job, which its schedule and the source-change sensor use.
These tests build the definitions with one table per layout and check that they load,
that every job resolves with its table's partitions, and that the sensor's and the
schedules' run requests name a job holding exactly their table.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import tempfile

import dagster as dg

from orchestration import sensors
from orchestration.assets import table_job_name
from orchestration.definitions import build_definitions
from orchestration.schedules import schedule_name
from shared.registry import RegisteredTable, build_registration
from shared.settings import Settings

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def _reg(name: str, **raw: object) -> RegisteredTable:
    reg = build_registration({"schema_name": "public", "table_name": name, **raw}, default_database="demo")
    return dataclasses.replace(reg, registered_at="2026-11-01")


LAYOUTS = [
    _reg("daily_a", partitioning={"kind": "daily", "column": "ts", "start": "2025-01-01"}),
    _reg("daily_b", partitioning={"kind": "daily", "column": "ts", "start": "2026-01-01"}),
    _reg("hourly", partitioning={"kind": "hourly", "column": "ts", "start": "2026-11-20"}),
    _reg("monthly", partitioning={"kind": "monthly", "column": "ts", "start": "2024-03-01"}),
    _reg("static", partitioning={"kind": "static", "column": "region", "values": ["eu", "us", "apac"]}),
    _reg("snap", strategy="snapshot"),
    _reg("plain"),
    _reg("incr", strategy="incremental", incremental_key="updated_at", primary_key=["id"],
         partitioning={"kind": "daily", "column": "ts", "start": "2026-06-01"}),
]


def _defs() -> dg.Definitions:
    settings = Settings.from_env({"AGENTS_DATA_HOME": tempfile.mkdtemp(), "SCHEDULES_DEFAULT_RUNNING": "false"})
    return build_definitions(LAYOUTS, settings)


def test_definitions_with_every_layout_load_and_each_table_has_its_own_job() -> None:
    defs = _defs()
    dg.Definitions.validate_loadable(defs)
    repo = defs.get_repository_def()
    for table in LAYOUTS:
        job = repo.get_job(table_job_name(table))
        assert {k.path[-1] for k in job.asset_layer.executable_asset_keys} == {table.table.lower()}
        asset = repo.assets_defs_by_key[dg.AssetKey(table.asset_key_path)]
        assert job.partitions_def == asset.partitions_def
        schedule = repo.get_schedule_def(schedule_name(table))
        assert schedule.job_name == job.name
    sensor = repo.get_sensor_def(sensors.SOURCE_CHANGE_SENSOR)
    assert {t.job_name for t in sensor.targets} == {table_job_name(t) for t in LAYOUTS}
    # The implicit asset job the API launches through still holds every table.
    assert {k.path[-1] for k in defs.resolve_implicit_global_asset_job_def().asset_layer.executable_asset_keys} == {
        t.table.lower() for t in LAYOUTS}


def test_sensor_requests_name_the_job_of_their_table_for_every_layout() -> None:
    sigs_before = {(t.database, t.schema, t.table): "1970|1" for t in LAYOUTS}
    sigs_after = dict.fromkeys(sigs_before, "1970|2")
    first = sensors.evaluate_source_changes(LAYOUTS, None, sigs_before, now=NOW)
    changed = sensors.evaluate_source_changes(LAYOUTS, first.cursor, sigs_after, now=NOW)
    named = sensors.with_job_names(changed, {t.key: table_job_name(t) for t in LAYOUTS})
    assert json.loads(named.cursor) == json.loads(changed.cursor)
    repo = _defs().get_repository_def()
    by_key = {t.key: t for t in LAYOUTS}
    seen = set()
    for request in named.run_requests:
        table = by_key[request.tags["agents_data/table"]]
        job = repo.get_job(request.job_name)
        assert request.job_name == table_job_name(table)
        if request.partition_key is not None:  # the key exists in that job's partitions
            assert request.partition_key in job.partitions_def.get_partition_keys(current_time=NOW)
        seen.add(table.key)
    assert seen == {t.key for t in LAYOUTS}


def test_every_schedule_tick_requests_partitions_of_its_own_job() -> None:
    repo = _defs().get_repository_def()
    for table in LAYOUTS:
        schedule = repo.get_schedule_def(schedule_name(table))
        job = repo.get_job(schedule.job_name)
        with dg.build_schedule_context(scheduled_execution_time=NOW, repository_def=repo) as ctx:
            result = schedule.evaluate_tick(ctx)
        assert result.run_requests, (table.key, result.skip_message)
        for request in result.run_requests:
            if job.partitions_def is None:
                assert request.partition_key is None
            else:
                assert request.partition_key in job.partitions_def.get_partition_keys(current_time=NOW)


def test_names_stay_distinct_for_keys_that_differ_only_in_replaced_characters() -> None:
    a, b = _reg("order$lines"), _reg("order_lines")
    assert table_job_name(a) != table_job_name(b)
    assert schedule_name(a) != schedule_name(b)
    assert table_job_name(_reg("orders")) == "demo__public__orders_job"
