"""The queries feature's long-lived parts: the query engine and the job manager.

Startup builds the engine, proves the DuckDB protections hold (``verify_protections``)
and refuses to start otherwise. ``ensure_fresh`` is the extension point for the sync
feature (a hook it registers at start-up): a query with ``min_freshness`` waits there for
a refresh. Startup also registers the engine as the tables layer's served-tables provider
and, with the guard's ``validate_filter``, as its platform-SQL runner and filter guard
(sampling's ``where`` and the admin feature's check of a grant's row filter), and
``finished_result`` as the artifacts feature's way to read a query job's result.
"""

from __future__ import annotations

import logging
from pathlib import Path

import anyio.to_thread

from serving.lib import limits
from serving.lib.caller import Caller
from serving.lib.errors import Conflict
from serving.lib.services import Services
from serving.queries import job_rows
from serving.queries.engine import QueryEngine
from serving.queries.guard import validate_filter
from serving.queries.jobs import ACTIVE, JobManager
from serving.tables import hooks, platform, served
from shared.control.models import QueryJobRow

log = logging.getLogger("agents_data.queries")
ENGINE = "query_engine"
JOBS = "query_jobs"


def get_engine(services: Services) -> QueryEngine:
    """The process's query engine (THE guarded execute())."""
    return services.get(ENGINE, QueryEngine)


def get_jobs(services: Services) -> JobManager:
    return services.get(JOBS, JobManager)


async def ensure_fresh(services: Services, caller: Caller, tables: frozenset[str], min_freshness_s: float | None,
                       wait_s: float) -> None:
    """Extension point for the sync feature: make ``tables`` no older than ``min_freshness_s``.

    Called by POST /api/v1/queries/execute before the query runs, only when the request
    carries ``min_freshness``. Served by the sync feature's hook (``serving.sync.refresh.ensure_fresh``): it
    triggers or joins a coalesced refresh per stale table and waits up to ``wait_s``
    (503 ``freshness_timeout`` / ``refresh_failed`` otherwise).
    """
    if min_freshness_s is None or not tables:
        return
    await hooks.wait_for_fresh(services)(services, caller, sorted(tables), min_freshness_s, wait_s)


def finished_result(services: Services, caller: Caller, job_id: str) -> tuple[QueryJobRow, Path]:
    """The job (404 unless the caller ran it, or is admin) and its result file (409 running, 410 expired).

    The artifacts feature calls it through a start-up hook to save a result as an artifact.
    """
    jobs = get_jobs(services)
    job = jobs.load(job_id, caller)
    if job_rows.deferred(job) is not None:
        raise Conflict(f"the continuation {job.id} has not run yet: fetch its status_url or next_url to start it, "
                       "and save its result once it has succeeded", rule="job_not_finished")
    if job.status in ACTIVE:
        raise Conflict(f"job {job.id} is {job.status}; save its result once it has succeeded", rule="job_not_finished")
    return job, jobs.result_path(job, caller)


async def startup(services: Services) -> None:
    engine = services.parts.get(ENGINE)
    if not isinstance(engine, QueryEngine):
        engine = QueryEngine(services.settings)
        services.parts[ENGINE] = engine
    served.register(services, engine)
    # Object storage: follow publishes, prefetch new versions, keep the cache within its limit.
    engine.served.watch(in_use=engine.instances.files_in_use, on_evict=engine.instances.drop_files)
    platform.register(services, engine, validate_filter)
    hooks.provide_job_result(services, finished_result)
    found = await anyio.to_thread.run_sync(engine.verify_protections)
    log.info("DuckDB agent-instance protections verified: %s", found)
    if not isinstance(services.parts.get(JOBS), JobManager):
        services.parts[JOBS] = JobManager(engine, services.settings, admission=limits.install(services).heavy)


async def shutdown(services: Services) -> None:
    jobs = services.parts.pop(JOBS, None)
    if isinstance(jobs, JobManager):
        await anyio.to_thread.run_sync(jobs.close)
    engine = services.parts.pop(ENGINE, None)
    if isinstance(engine, QueryEngine):
        engine.served.close()
        engine.close()
