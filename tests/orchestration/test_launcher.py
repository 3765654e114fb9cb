"""The warm run launcher starts real Dagster run workers forked from the preloaded template, and stops them."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.launcher.base import LaunchRunContext
from dagster._core.storage.dagster_run import DagsterRunStatus

from orchestration.launcher import WORKER_TAG, WarmRunLauncher
from tests.orchestration import launcher_jobs

pytestmark = pytest.mark.serial


@pytest.fixture
def instance(tmp_path: Path) -> Any:
    (tmp_path / "dagster.yaml").write_text(
        "run_launcher:\n  module: orchestration.launcher\n  class: WarmRunLauncher\n")
    with dg.DagsterInstance.from_config(str(tmp_path)) as inst:
        yield inst


def _launch(instance: Any, job: Any, path: Path) -> Any:
    recon = dg.reconstructable(job)
    op = next(iter(job.graph.node_dict))
    run = instance.create_run_for_job(job_def=job, run_config={"ops": {op: {"config": {"path": str(path)}}}},
                                      job_code_origin=recon.get_python_origin())
    instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    return run


def _wait(instance: Any, run_id: str, statuses: set[Any], timeout_s: float = 90) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if run.status in statuses:
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} is {instance.get_run_by_id(run_id).status}, not one of {statuses}")


def test_a_run_executes_in_a_forked_worker_and_succeeds(instance: Any, tmp_path: Path) -> None:
    assert isinstance(instance.run_launcher, WarmRunLauncher)
    out = tmp_path / "pid"
    run = _launch(instance, launcher_jobs.writes_pid, out)
    done = _wait(instance, run.run_id, {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE})
    assert done.status == DagsterRunStatus.SUCCESS
    worker = json.loads(done.tags[WORKER_TAG])
    assert int(out.read_text()) == worker["pid"] != os.getpid()  # the op ran in the recorded worker process
    logs = " ".join(e.message or "" for e in instance.all_logs(run.run_id))
    assert "Started warm run worker" in logs


def test_terminate_stops_the_worker_and_the_run_is_canceled(instance: Any, tmp_path: Path) -> None:
    out = tmp_path / "pid"
    run = _launch(instance, launcher_jobs.waits, out)
    _wait(instance, run.run_id, {DagsterRunStatus.STARTED})
    deadline = time.monotonic() + 60
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert instance.run_launcher.terminate(run.run_id) is True
    done = _wait(instance, run.run_id, {DagsterRunStatus.CANCELED, DagsterRunStatus.FAILURE, DagsterRunStatus.SUCCESS})
    assert done.status == DagsterRunStatus.CANCELED
    pid = int(out.read_text())
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert instance.run_launcher.terminate(run.run_id) is False  # finished: nothing to stop


def test_a_missing_worker_tag_is_reported_not_raised(instance: Any, tmp_path: Path) -> None:
    run = instance.create_run_for_job(job_def=launcher_jobs.writes_pid,
                                      run_config={"ops": {"write_pid": {"config": {"path": str(tmp_path / "p")}}}})
    assert instance.run_launcher.terminate(run.run_id) is False


def test_a_killed_worker_is_found_dead_and_run_monitoring_fails_the_run(instance: Any, tmp_path: Path) -> None:
    import logging
    import signal

    from dagster._core.launcher.base import WorkerStatus
    from dagster._daemon.monitoring.run_monitoring import monitor_started_run

    out = tmp_path / "pid"
    run = _launch(instance, launcher_jobs.waits, out)
    _wait(instance, run.run_id, {DagsterRunStatus.STARTED})
    started = instance.get_run_by_id(run.run_id)
    assert instance.run_launcher.check_run_worker_health(started).status == WorkerStatus.RUNNING
    pid = json.loads(started.tags[WORKER_TAG])["pid"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while instance.run_launcher.check_run_worker_health(started).status == WorkerStatus.RUNNING:
        assert time.monotonic() < deadline, "a killed worker still reads as running"
        time.sleep(0.05)
    assert instance.run_launcher.check_run_worker_health(started).status == WorkerStatus.NOT_FOUND
    record = instance.get_run_record_by_id(run.run_id)
    monitor_started_run(instance, None, record, logging.getLogger("test"))  # what the daemon's monitoring does
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.FAILURE


def test_a_stopping_daemon_stops_its_live_workers(instance: Any, tmp_path: Path) -> None:
    out = tmp_path / "pid"
    run = _launch(instance, launcher_jobs.waits, out)
    _wait(instance, run.run_id, {DagsterRunStatus.STARTED})
    pid = json.loads(instance.get_run_by_id(run.run_id).tags[WORKER_TAG])["pid"]
    assert os.getpgid(pid) == pid  # a session of its own: a killed daemon's group does not include it
    instance.run_launcher.dispose()
    done = _wait(instance, run.run_id, {DagsterRunStatus.CANCELED, DagsterRunStatus.FAILURE, DagsterRunStatus.SUCCESS})
    assert done.status == DagsterRunStatus.CANCELED
