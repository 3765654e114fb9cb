"""Per-table schedules: built from the registry, requesting the right scope at each tick."""

from __future__ import annotations

import dataclasses
import datetime as dt
import tempfile

import dagster as dg
import pytest

from orchestration.assets import build_table_asset
from orchestration.definitions import build_definitions, with_policy
from orchestration.resources import build_resources
from orchestration.schedules import build_table_schedule, build_table_schedules, default_cron, schedule_name
from shared.registry import RegistrationError, build_registration
from shared.settings import Settings

TICK = dt.datetime(2026, 11, 25, 0, 15, tzinfo=dt.UTC)


_TABLES: list = []


def _reg(table: str, **extra):  # type: ignore[no-untyped-def]
    reg = build_registration({"table_name": table, "schema_name": "public", **extra}, default_database="demo")
    _TABLES.insert(0, reg)
    return reg


def _tick(schedule: dg.ScheduleDefinition, when: dt.datetime = TICK) -> list[dg.RunRequest] | dg.SkipReason:
    """Evaluate one tick with the table's asset in the repository (partition keys are checked against it)."""
    table = next(t for t in _TABLES if schedule.name == schedule_name(t))
    repo = dg.Definitions(assets=[build_table_asset(table=table)], schedules=[schedule],
                          resources=build_resources(Settings.from_env({}))).get_repository_def()
    with dg.build_schedule_context(scheduled_execution_time=when, repository_def=repo) as ctx:
        data = schedule.evaluate_tick(ctx)
    return dg.SkipReason(data.skip_message) if data.skip_message else list(data.run_requests or [])


def test_unpartitioned_table_syncs_whole_table_with_its_tags() -> None:
    t = _reg("customers", schedule="*/30 * * * *")
    s = build_table_schedule(table=t, cron=t.schedule, default_status=dg.DefaultScheduleStatus.RUNNING)
    assert (s.name, s.cron_schedule, s.execution_timezone) == ("demo__public__customers_schedule", "*/30 * * * *", "UTC")
    [req] = _tick(s)
    assert req.partition_key is None
    assert req.tags["agents_data/table"] == "demo.public.customers"
    assert req.tags["agents_data/reason"] == "schedule"


def test_daily_table_syncs_the_latest_complete_partition() -> None:
    t = _reg("orders", partitioning={"kind": "daily", "column": "ts", "start": "2026-01-01"}, schedule="15 0 * * *")
    s = build_table_schedule(table=t, cron=t.schedule, default_status=dg.DefaultScheduleStatus.RUNNING)
    [req] = _tick(s)
    assert req.partition_key == "2026-11-24"  # yesterday: today's window is not complete


def test_hourly_and_static_and_snapshot_scopes() -> None:
    hourly = _reg("clicks", partitioning={"kind": "hourly", "column": "ts", "start": "2026-01-01"})
    static = _reg("sales", partitioning={"kind": "static", "column": "region", "values": ["eu", "us"]})
    # Snapshot partitions start on the day of registration: pin it before the tick.
    snap = dataclasses.replace(_reg("prices", strategy="snapshot"), registered_at="2026-11-01")
    _TABLES.insert(0, snap)
    status = dg.DefaultScheduleStatus.RUNNING
    [h] = _tick(build_table_schedule(table=hourly, cron="5 * * * *", default_status=status), TICK.replace(hour=10, minute=5))
    assert h.partition_key == "2026-11-25-09:00"
    reqs = _tick(build_table_schedule(table=static, cron="0 * * * *", default_status=status))
    assert sorted(r.partition_key for r in reqs) == ["eu", "us"]
    [sn] = _tick(build_table_schedule(table=snap, cron="0 6 * * *", default_status=status), TICK.replace(hour=6))
    assert sn.partition_key == "2026-11-25"  # a snapshot copies the source as it is today


def test_a_tick_before_the_first_complete_partition_skips_with_a_reason() -> None:
    t = _reg("new", partitioning={"kind": "daily", "column": "ts", "start": "2026-11-25"})
    result = _tick(build_table_schedule(table=t, cron="15 0 * * *", default_status=dg.DefaultScheduleStatus.RUNNING))
    assert isinstance(result, dg.SkipReason)
    assert "no complete partition yet" in result.skip_message


@pytest.mark.parametrize(("freshness_s", "cron"), [
    (600, "*/5 * * * *"), (3600, "*/30 * * * *"), (4 * 3600, "0 */2 * * *"), (7200, "0 * * * *"),
    (24 * 3600, "0 */12 * * *"), (7 * 86400, "0 1 * * *"), (60, "*/5 * * * *"),
])
def test_default_cron_runs_at_least_twice_per_freshness_target(freshness_s: int, cron: str) -> None:
    assert default_cron(_reg("t"), freshness_s) == cron


def test_default_cron_of_partitioned_tables_follows_the_partitions() -> None:
    assert default_cron(_reg("t", partitioning={"kind": "daily", "column": "ts", "start": "2026-01-01"}), 999) == "15 0 * * *"
    assert default_cron(_reg("t", partitioning={"kind": "hourly", "column": "ts", "start": "2026-01-01"}), 999) == "5 * * * *"


def test_global_policy_fills_a_missing_freshness_target() -> None:
    assert with_policy(_reg("t")).freshness_s == 24 * 3600
    assert with_policy(_reg("t", partitioning={"kind": "daily", "column": "ts", "start": "2026-01-01"})).freshness_s == 26 * 3600
    assert with_policy(_reg("t", freshness="15m")).freshness_s == 900


@pytest.mark.parametrize("running", [True, False])
def test_default_status_follows_the_setting(running: bool) -> None:
    [s] = build_table_schedules(tables=[_reg("t")], freshness_s={"demo.public.t": 3600}, running=running)
    assert s.default_status == (dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED)


def test_schedules_appear_and_disappear_with_registrations() -> None:
    """Built by the same load as the assets: one schedule per table, plus the housekeeping ones."""
    settings = Settings.from_env({"AGENTS_DATA_HOME": tempfile.mkdtemp(), "SCHEDULES_DEFAULT_RUNNING": "false"})
    a, b = _reg("a", schedule="0 * * * *"), _reg("b")
    both = build_definitions([a, b], settings).get_repository_def()
    names = {s.name for s in both.schedule_defs}
    assert {schedule_name(a), schedule_name(b)} <= names
    assert all(s.default_status == dg.DefaultScheduleStatus.STOPPED for s in both.schedule_defs)
    only_a = build_definitions([a], settings).get_repository_def()
    table_schedules = {s.name for s in only_a.schedule_defs if not s.name.startswith("housekeeping_")}
    assert table_schedules == {schedule_name(a)}
    assert {k.to_user_string() for k in only_a.assets_defs_by_key} == {"demo/public/a"}


@pytest.mark.parametrize(("field", "raw"), [
    ("schedule", {"schedule": "every hour"}),
    ("schedule", {"schedule": "61 * * * *"}),
    ("schedule", {"schedule": "* * * * * *"}),
    ("freshness", {"freshness": "soon"}),
    ("freshness", {"freshness": 30}),
    ("freshness", {"freshness": -5}),
])
def test_bad_cron_or_freshness_is_refused_naming_the_field(field: str, raw: dict[str, object]) -> None:
    with pytest.raises(RegistrationError) as err:
        _reg("t", **raw)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}:")
