"""Keeps sync job rows true without anyone polling them.

A job row (``sync_requests``) used to change only when someone asked for it, so
``GET /api/v1/sync/tables`` could show ``queued`` for a run that had succeeded an hour
before, and a refresh could coalesce onto a job that was long over. Each API replica
now runs this loop in its lifespan: every ``SYNC_RECONCILE_INTERVAL_S`` it reads the
unfinished jobs (one indexed query; nothing else when there are none) and observes each
through :func:`serving.sync.jobs.observe`, the same call an admin's poll makes.

Why here, and not a Dagster run-status sensor:

- one writer of job rows: ``observe`` already turns a run's or a backfill's state into
  the row, Dagster's error messages and the table's ``failing`` mark; a sensor would be
  a second writer of the same record, with its own status vocabulary, in another package;
- backfills: a backfill's outcome is decided by the daemon after its last run ends, when
  a run-status sensor has already fired; observing the backfill itself gets it right;
- latency is this interval, not the daemon's sensor cadence plus a tick;
- runs launched without a job row (schedules, sensors, the UI) need no row anyway.

Replicas each reconcile (writes are idempotent and only what changed is written); while
Dagster is unreachable a pass is skipped and the next one catches up.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress
from typing import TYPE_CHECKING

import anyio.to_thread

from serving.sync import jobs, store
from serving.sync.dagster import DagsterUnavailable

if TYPE_CHECKING:
    from serving.sync.core import SyncService

log = logging.getLogger("agents_data.sync")


async def reconcile_once(svc: SyncService) -> dict[str, int]:
    """Observe every unfinished job once; returns how many were seen and how many finished."""
    pending = await anyio.to_thread.run_sync(lambda: store.unfinished(svc.control_url))
    finished = 0
    for job in pending:
        if job.dagster_id is None:
            continue  # its replica is still launching it
        try:
            state = await jobs.observe(svc, job)
        except DagsterUnavailable:
            log.info("Dagster is unreachable; sync jobs will be reconciled on a later pass")
            break
        except Exception:  # one bad job must not stop the others, nor the loop
            log.exception("could not reconcile sync job %s", job.id)
            continue
        finished += not state.job.active
    return {"unfinished": len(pending), "finished": finished}


async def run(svc: SyncService, interval_s: float) -> None:
    """Reconcile every ``interval_s`` until cancelled (the API's shutdown)."""
    while True:
        await asyncio.sleep(interval_s)
        try:
            await reconcile_once(svc)
        except Exception:
            log.exception("sync job reconciliation failed; retrying in %.1f s", interval_s)


def start(svc: SyncService, interval_s: float) -> asyncio.Task[None] | None:
    if interval_s <= 0:
        return None
    return asyncio.get_running_loop().create_task(run(svc, interval_s), name="sync-reconcile")


async def stop(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
