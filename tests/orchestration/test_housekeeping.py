"""Housekeeping rules, tested as plain functions (no Dagster) and then as Dagster jobs.

Time is passed explicitly (``now=``) so expiry and grace periods are tested without sleeping.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import types
from pathlib import Path

import dagster as dg
import pytest

from shared import housekeeping as hk
from shared import registry
from shared.control.db import migrate, session_scope
from shared.control.models import QueryJobRow, SyncRequestRow, TableStatusRow
from shared.registry import build_registration
from shared.served import CURRENT, read_current, table_dir
from shared.settings import Settings

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def hk_settings(home: Path, sqlite_url: str) -> Settings:
    """Settings over a temporary home; no Snowflake needed for housekeeping."""
    s = Settings.from_env({"AGENTS_DATA_HOME": str(home), "DATABASE_URL": sqlite_url,
                           "STUCK_JOB_MINUTES": "60", "SERVED_VERSION_GRACE_MINUTES": "30"})
    migrate(s.control_url)
    return s


def _job(job_id: str, *, status: str = "succeeded", expires: dt.datetime | None = None,
         started: dt.datetime | None = None, result_path: str | None = None) -> QueryJobRow:
    return QueryJobRow(id=job_id, sql_text="select 1", sql_hash="h", output_format="json", status=status, max_rows=10,
                       expires_at=expires, started_at=started, created_at=started or NOW, result_path=result_path)


def test_expired_query_results_are_deleted_and_jobs_marked_expired(hk_settings: Settings) -> None:
    results = hk_settings.results_path
    results.mkdir(parents=True)
    (results / "old.parquet").write_bytes(b"x")
    (results / "old-part2.arrow").write_bytes(b"x")
    (results / "live.parquet").write_bytes(b"y")
    outside = hk_settings.home_path / "precious.txt"
    outside.write_text("keep me")
    with session_scope(hk_settings.control_url) as s:
        s.add(_job("old", expires=NOW - dt.timedelta(minutes=1), result_path=str(results / "old.parquet")))
        s.add(_job("live", expires=NOW + dt.timedelta(hours=1), result_path="live.parquet"))
        s.add(_job("evil", expires=NOW - dt.timedelta(minutes=1), result_path=str(outside)))
        s.add(_job("ancient", status="expired", expires=NOW - dt.timedelta(days=30)))

    report = hk.purge_expired_query_results(hk_settings, now=NOW)

    assert not (results / "old.parquet").exists()
    assert not (results / "old-part2.arrow").exists()
    assert (results / "live.parquet").exists()
    assert outside.read_text() == "keep me", "a result_path outside the results folder must never be deleted"
    assert report.counts["jobs_expired"] == 2
    assert report.counts["refused_outside_root"] == 1
    assert report.counts["rows_deleted"] == 1
    with session_scope(hk_settings.control_url) as s:
        by_id = {j.id: j for j in s.query(QueryJobRow).all()}
    assert set(by_id) == {"old", "live", "evil"}
    assert (by_id["old"].status, by_id["old"].result_path) == ("expired", None)
    assert by_id["live"].status == "succeeded"
    # Idempotent: a second pass finds nothing to do.
    again = hk.purge_expired_query_results(hk_settings, now=NOW)
    assert again.counts.get("jobs_expired", 0) == 0


@pytest.fixture
def publish_n(publish, hk_settings: Settings):  # type: ignore[no-untyped-def]
    """Publish a served version of ``key`` holding ``n`` rows; returns its version id."""
    return lambda key, n: publish(hk_settings.served_path, key, f"select range as id from range({n})").version


def test_superseded_versions_go_after_the_grace_period_and_current_stays(hk_settings: Settings, publish_n) -> None:
    key = "demo.public.orders"
    first = publish_n(key, 1)
    second = publish_n(key, 2)
    folder = table_dir(hk_settings.served_path, key)
    orphan = folder / ".tmp-killed.duckdb"
    orphan.write_bytes(b"half written")
    os.utime(orphan, (0, 0))

    within_grace = hk.purge_superseded_versions(hk_settings, now=dt.datetime.now(dt.UTC))
    assert within_grace.counts.get("versions_deleted", 0) == 0
    assert (folder / f"v-{first}.duckdb").exists()
    assert not orphan.exists(), "a killed writer's old temp file is removed"
    assert within_grace.counts["temp_files_deleted"] == 1

    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=31)
    report = hk.purge_superseded_versions(hk_settings, now=later)
    assert report.counts["versions_deleted"] == 1
    assert report.counts["manifests_deleted"] == 1
    assert not (folder / f"v-{first}.duckdb").exists()
    assert (folder / f"v-{second}.duckdb").exists()
    assert (folder / CURRENT).exists()
    assert read_current(hk_settings.served_path, key).version == second


def test_orphan_temp_files_are_left_while_a_writer_holds_the_lock(hk_settings: Settings, publish_n) -> None:
    from shared.served import table_lock

    key = "demo.public.t"
    publish_n(key, 1)
    folder = table_dir(hk_settings.served_path, key)
    tmp = folder / ".tmp-writing.duckdb"
    tmp.write_bytes(b"being written")
    os.utime(tmp, (0, 0))
    import multiprocessing

    # flock is per open file description: hold it from another process to be honest.
    ctx = multiprocessing.get_context("fork")
    ready, done = ctx.Event(), ctx.Event()

    def hold() -> None:
        with table_lock(hk_settings.served_path, key):
            ready.set()
            done.wait(10)

    p = ctx.Process(target=hold)
    p.start()
    try:
        assert ready.wait(10)
        report = hk.purge_superseded_versions(hk_settings, now=NOW + dt.timedelta(days=1))
        assert tmp.exists()
        assert "temp_files_deleted" not in report.counts
    finally:
        done.set()
        p.join(10)


def test_stuck_jobs_are_marked_failed_and_finished_runs_reconciled(hk_settings: Settings) -> None:
    old, recent = NOW - dt.timedelta(minutes=61), NOW - dt.timedelta(minutes=5)
    with session_scope(hk_settings.control_url) as s:
        s.add(_job("stuck", status="running", started=old))
        s.add(_job("busy", status="running", started=recent))
        s.add(_job("done", status="succeeded", started=old))
        for rid, status, dagster_id, created in [
            ("r-lost", "STARTED", "gone", old), ("r-ok", "queued", "finished", old),
            ("r-live", "running", "still", old), ("r-new", "running", "x", recent), ("r-nodag", "queued", None, old),
            ("r-cancel", "running", "stopped", old),
        ]:
            s.add(SyncRequestRow(id=rid, table_key="demo.public.t", kind="run", dagster_id=dagster_id, status=status,
                                 created_at=created))

    statuses = {"finished": "SUCCESS", "still": "STARTED", "stopped": "CANCELED"}
    report = hk.mark_stuck_jobs_failed(hk_settings, now=NOW, run_status=statuses.get)

    with session_scope(hk_settings.control_url) as s:
        jobs = {j.id: j for j in s.query(QueryJobRow).all()}
        reqs = {r.id: r for r in s.query(SyncRequestRow).all()}
    assert jobs["stuck"].status == "failed"
    assert "60 minutes" in jobs["stuck"].error
    assert "running" in jobs["stuck"].error
    assert jobs["busy"].status == "running"
    assert jobs["done"].status == "succeeded"
    assert reqs["r-lost"].status == "failed"
    assert "no run gone" in reqs["r-lost"].error
    assert reqs["r-ok"].status == "succeeded"
    assert reqs["r-cancel"].status == "canceled", "the sync API's spelling, whoever records the outcome"
    assert reqs["r-live"].status == "running", "a run Dagster still runs is left to Dagster's run monitoring"
    assert reqs["r-new"].status == "running"
    assert reqs["r-nodag"].status == "failed"
    assert report.counts == {"query_jobs_failed": 1, "sync_requests_reconciled": 2, "sync_requests_failed": 2}


def test_sync_stats_are_written_per_registered_table(hk_settings: Settings, publish_n) -> None:
    reg = build_registration({"table_name": "orders", "schema_name": "public"}, default_database="demo")
    registry.save(hk_settings.control_url, reg)
    registry.save(hk_settings.control_url, build_registration({"table_name": "never", "schema_name": "public"},
                                                              default_database="demo"))
    publish_n(reg.key, 5)
    publish_n(reg.key, 7)
    t0 = NOW - dt.timedelta(hours=1)
    runs = [hk.RunSample(f"r{i}", "SUCCESS", t0, t0 + dt.timedelta(seconds=s)) for i, s in enumerate([1, 2, 3, 4, 10])]
    runs.append(hk.RunSample("bad", "FAILURE", t0, t0 + dt.timedelta(seconds=99)))

    report = hk.refresh_sync_stats(hk_settings, now=NOW, runs_for=lambda key: runs if key == reg.key else [])

    assert report.counts["tables_refreshed"] == 2
    with session_scope(hk_settings.control_url) as s:
        stats = s.get(TableStatusRow, reg.key).stats
        never = s.get(TableStatusRow, "demo.public.never").stats
    assert stats["row_count"] == 7
    assert stats["versions_on_disk"] == 2
    assert stats["disk_bytes"] > 0
    assert (stats["runs_succeeded"], stats["runs_failed"], stats["run_p50_s"], stats["run_max_s"]) == (5, 1, 3.0, 10.0)
    assert never["served_version"] is None
    assert never["versions_on_disk"] == 0


def test_artifact_purge_delegates_to_the_artifact_store(hk_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Settings] = []
    fake = types.ModuleType("shared.artifacts_store")

    def purge_expired_artifacts(settings: Settings) -> int:
        calls.append(settings)
        return 3

    fake.purge_expired_artifacts = purge_expired_artifacts  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "shared.artifacts_store", fake)
    report = hk.purge_expired_artifacts(hk_settings, now=NOW)
    assert calls == [hk_settings]
    assert report.counts == {"artifacts_deleted": 3}


def test_artifact_purge_says_so_when_the_store_is_missing(hk_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "shared.artifacts_store", None)  # import fails
    report = hk.purge_expired_artifacts(hk_settings)
    assert report.counts == {"not_available": 1}
    assert "not purged" in report.details[0]


# --- the same rules as Dagster jobs ------------------------------------------------------------


def test_housekeeping_jobs_run_in_process_and_report_counts(hk_settings: Settings, publish_n) -> None:  # type: ignore[no-untyped-def]
    from orchestration import housekeeping as ohk

    reg = build_registration({"table_name": "orders", "schema_name": "public"}, default_database="demo")
    registry.save(hk_settings.control_url, reg)
    publish_n(reg.key, 3)
    with session_scope(hk_settings.control_url) as s:
        s.add(_job("old", expires=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)))
        s.add(_job("stuck", status="running", started=dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)))
    resources = {"housekeeping": ohk.HousekeepingResource(home=hk_settings.home, control_url=hk_settings.control_url)}

    @dg.asset(key=["demo", "public", "orders"])
    def orders() -> None:
        """Stands in for the table asset so the instance has a materialization run to measure."""

    with dg.instance_for_test() as instance:
        assert dg.materialize([orders], instance=instance, tags={"agents_data/table": reg.key}).success
        outputs = {}
        for job in ohk.JOBS:
            result = job.execute_in_process(resources=resources, instance=instance)
            assert result.success, job.name
            for node in job.graph.node_names():
                outputs[node] = result.output_for_node(node)
    assert outputs["purge_expired_query_results"]["jobs_expired"] == 1
    assert outputs["mark_stuck_jobs_failed"]["query_jobs_failed"] == 1
    assert outputs["refresh_sync_stats"]["tables_refreshed"] == 1
    assert "purge_superseded_versions" in outputs
    assert outputs["purge_expired_artifacts"] == {"artifacts_deleted": 0}
    with session_scope(hk_settings.control_url) as s:
        stats = s.get(TableStatusRow, reg.key).stats
    assert stats["row_count"] == 3
    assert stats["runs_succeeded"] == 1
    assert stats["run_p50_s"] is not None


def test_housekeeping_jobs_have_their_own_schedules() -> None:
    from orchestration import housekeeping as ohk

    jobs, schedules = ohk.build_housekeeping(running=True)
    assert {s.job_name: s.cron_schedule for s in schedules} == ohk.CRONS
    assert ohk.CRONS[ohk.SYNC_STATS_JOB] == "0 * * * *"
    assert all(s.default_status == dg.DefaultScheduleStatus.RUNNING for s in schedules)
    assert {j.name for j in jobs} == set(ohk.CRONS)
