"""A run launcher whose run workers start warm: forked from a process that has already imported the code location.

Why: Dagster's ``DefaultRunLauncher`` asks the code server to start each run, and the code
server starts the run worker with multiprocessing's ``spawn``: a fresh interpreter that
imports dagster, the Snowflake connector, DuckDB, SQLAlchemy and this code location again
before the first row moves. That import is most of an agent's refresh latency (seconds,
against well under one for the sync of a small table).

This launcher starts run workers through multiprocessing's ``forkserver`` with
``orchestration.definitions`` preloaded: the same mechanism Dagster's own multiprocess
executor offers for step processes (``start_method: forkserver`` with preloaded modules).
The template process imports the modules once; each run worker is a ``fork`` of it and
then does exactly what a ``DefaultRunLauncher`` worker does: load the run, rebuild the job
from its code origin (``defs()`` reads the current registrations, so nothing stale is
used), and execute it with ``core_execute_run``. Everything else stays Dagster's: the
queued run coordinator, concurrency pools, run monitoring, retries and the event log.

The launcher runs where runs are launched, which is the daemon (the queued coordinator
dequeues there). It is for one host, the topology of ``agents-data up``: termination
signals the worker by PID, recorded in the run's ``agents_data/worker`` tag with the host
name. With ``DAGSTER_WARM_RUN_WORKERS=false`` it hands every call to Dagster's
``DefaultRunLauncher`` (the code server spawns the worker), which is what a deployment
whose webserver, daemon and code server are separate containers needs (``compose.yaml``
sets it); the Kubernetes and Celery launchers (``deploy/``) replace this block altogether.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import multiprocessing
import os
import signal
import socket
import sys
import threading
from collections.abc import Mapping
from typing import Any

from dagster import _check as check
from dagster._core.launcher import DefaultRunLauncher
from dagster._core.launcher.base import CheckRunHealthResult, LaunchRunContext, RunLauncher, WorkerStatus
from dagster._serdes import ConfigurableClass, ConfigurableClassData

from shared.settings import get_settings

WORKER_TAG = "agents_data/worker"
# What every run worker imports before its first step: the code location, Dagster's run
# execution, and what the instance's storage loads lazily (dotenv, upath, psycopg2).
# The instance's own configured classes (dagster_postgres, the scheduler...) are added
# from its config, so a worker's start does not import them either (about 1 s).
PRELOAD = ("orchestration.definitions", "orchestration.launcher", "dagster._grpc.impl",
           "dagster._utils.hosted_user_process", "dagster._core.instance.ref", "dotenv", "upath", "psycopg2.extras")


def instance_modules(instance_ref: Any) -> list[str]:
    """The modules of every class the instance config names (storage, coordinator, scheduler...)."""
    names = []
    for field in instance_ref._fields:
        data = getattr(instance_ref, field)
        if isinstance(data, ConfigurableClassData) and data.module_name not in names:
            names.append(data.module_name)
    return names


@functools.cache
def _forkserver(preload: tuple[str, ...]) -> Any:
    """One forkserver per process, with the code location preloaded, started at first use.

    A module that fails to import is skipped by the forkserver (``psycopg2`` where
    PostgreSQL is not used); the worker then imports what it needs itself.
    """
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(preload))
    return ctx


def run_worker(run_id: str, instance_ref: Any) -> None:
    """The run worker, in a process forked from the warm template: run the job as Dagster's own worker does.

    Signals are reset first: the template inherits whatever the daemon had, and hosts that
    start background processes with SIGINT/SIGTERM ignored would make the run unstoppable.
    The worker gets a session of its own, so a daemon that dies or is restarted (its process
    group killed) does not take the run with it, as a code server's run would survive too.
    A daemon that stops gracefully stops its live workers (``dispose``), so stopping the
    platform leaves no run behind.
    ``gc.freeze()`` moves the template's objects (every preloaded module) out of the
    collector's reach: the run's collections then scan only what the run allocates, and do
    not touch, and so copy, the pages it shares with the template.
    """
    gc.freeze()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with contextlib.suppress(OSError):
        os.setsid()
    from dagster._core.events import EngineEventData
    from dagster._core.instance import DagsterInstance
    from dagster._grpc.impl import core_execute_run
    from dagster._utils.hosted_user_process import recon_job_from_origin
    from dagster._utils.interrupts import capture_interrupts

    with capture_interrupts(), DagsterInstance.from_ref(instance_ref) as instance:
        run = instance.get_run_by_id(run_id)
        if run is None:  # deleted between launch and start: nothing to run
            return
        instance.report_engine_event(f"Started warm run worker (pid: {os.getpid()}).", run,
                                     EngineEventData.in_process(os.getpid()))
        recon_job = recon_job_from_origin(check.not_none(run.job_code_origin))
        with contextlib.suppress(Exception):  # core_execute_run records every failure in the event log first
            for _event in core_execute_run(recon_job, run, instance, inject_env_vars=False):
                pass


class WarmRunLauncher(RunLauncher, ConfigurableClass):
    """Launch each run in a worker forked from a template that already imported the code location (see module doc)."""

    def __init__(self, inst_data: ConfigurableClassData | None = None) -> None:
        self._inst_data = inst_data
        self._workers: dict[str, Any] = {}
        self._lock = threading.Lock()  # the queue daemon launches from several threads
        self._fallback: DefaultRunLauncher | None = None
        if not get_settings().dagster.warm_run_workers:
            self._fallback = DefaultRunLauncher()
        super().__init__()

    def register_instance(self, instance: Any) -> None:
        super().register_instance(instance)
        if self._fallback is not None:
            self._fallback.register_instance(instance)

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]) -> WarmRunLauncher:
        return cls(inst_data=inst_data)

    def launch_run(self, context: LaunchRunContext) -> None:
        if self._fallback is not None:
            self._fallback.launch_run(context)
            return
        run = context.dagster_run
        check.invariant(run.job_code_origin is not None, "WarmRunLauncher: the run has no code origin")
        self._reap()
        ref = self._instance.get_ref()
        proc = _forkserver((*PRELOAD, *instance_modules(ref))).Process(
            target=run_worker, args=(run.run_id, ref), name=f"dagster-run-{run.run_id[:8]}")
        proc.start()
        with self._lock:
            self._workers[run.run_id] = proc
        self._instance.add_run_tags(run.run_id, {WORKER_TAG: json.dumps({"host": socket.gethostname(),
                                                                          "pid": proc.pid})})

    def _reap(self) -> None:
        """Forget workers that ended (the forkserver reaps the processes themselves)."""
        with self._lock:
            for run_id in [r for r, p in self._workers.items() if not p.is_alive()]:
                self._workers.pop(run_id, None)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return self._fallback is None

    def check_run_worker_health(self, run: Any) -> CheckRunHealthResult:
        """Is the run's worker process alive? Dagster's run monitoring fails a run whose worker died (kill -9, OOM).

        Without this, nothing would notice: a forked worker has no code server watching it.
        A run whose worker this host cannot see (no tag yet, another host) is not judged.
        """
        worker = _worker_of(run)
        pid = worker.get("pid")
        if not isinstance(pid, int) or worker.get("host") != socket.gethostname():
            return CheckRunHealthResult(WorkerStatus.RUNNING, "run worker not visible from this host: not judged")
        if _alive(pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(pid))
        return CheckRunHealthResult(WorkerStatus.NOT_FOUND, f"run worker process {pid} is gone", run_worker_id=str(pid))

    def terminate(self, run_id: str) -> bool:
        """Ask the run's worker to stop: SIGTERM, which Dagster turns into an interrupt, as the default cancel does."""
        check.str_param(run_id, "run_id")
        if self._fallback is not None:
            return bool(self._fallback.terminate(run_id))
        if not self.has_instance:
            return False
        run = self._instance.get_run_by_id(run_id)
        if not run or run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        worker = _worker_of(run)
        pid = worker.get("pid")
        if not isinstance(pid, int) or worker.get("host") != socket.gethostname():
            self._instance.report_engine_event(message="Unable to find the run worker to send termination to.",
                                               dagster_run=run, cls=self.__class__)
            return False
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True

    def dispose(self) -> None:
        """The daemon is stopping: stop the runs it started here (they are marked canceled, as from the UI)."""
        with self._lock:
            workers = [(run_id, p) for run_id, p in self._workers.items() if p.is_alive()]
        for run_id, proc in workers:
            with contextlib.suppress(Exception):  # best effort: the daemon is on its way out
                self.terminate(run_id)
                proc.join(10)
            with self._lock:
                self._workers.pop(run_id, None)
        if self._fallback is not None:
            self._fallback.dispose()

    def join(self, timeout: int = 30) -> None:
        if self._fallback is not None:
            self._fallback.join(timeout)
        with self._lock:
            workers = list(self._workers.values())
        for proc in workers:
            proc.join(timeout)


def _worker_of(run: Any) -> dict[str, Any]:
    """The host and PID a run's worker was started with (its ``agents_data/worker`` tag)."""
    try:
        worker = json.loads(run.tags.get(WORKER_TAG) or "{}")
    except ValueError:
        return {}
    return worker if isinstance(worker, dict) else {}


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return not sys.platform.startswith("linux")
