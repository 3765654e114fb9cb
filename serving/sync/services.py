"""The sync feature's start-up and shut-down.

``startup`` creates the Dagster GraphQL client (unless a test injected one under
``services.parts["dagster"]``), builds the :class:`~serving.sync.core.SyncService`,
registers the ``dagster`` readiness check, serves the query feature's "wait for
freshness" hook (``refresh.ensure_fresh``) and starts the reconciler that keeps
unfinished job rows true without polling (``reconcile.py``).
"""

from __future__ import annotations

from serving.lib.ready import NotReady, add_ready_check
from serving.lib.services import Services
from serving.sync import reconcile, refresh
from serving.sync.core import DAGSTER, SYNC, SyncService, get_sync
from serving.sync.dagster import DagsterClient, DagsterError, DagsterUnavailable
from serving.tables import hooks

LOAD_CHECK_PART = "load_check"
RECONCILER = "sync_reconciler"  # keeps job rows true without polling (reconcile.py)

DAGSTER_IMPACT = ("syncs, refreshes and min_freshness queries answer 503; the catalog, queries and other "
                  "reads keep working")


async def check_dagster(services: Services) -> None:
    """Optional for readiness: while Dagster is down the replica is ``degraded``, not ``not_ready``."""
    try:
        await get_sync(services).client.ping()
    except DagsterUnavailable as e:  # its messages name no host ("Dagster is unreachable (ConnectError)")
        raise NotReady(str(e)) from e
    except DagsterError as e:
        raise NotReady(f"Dagster answered with an error ({e.kind})") from e


async def startup(services: Services) -> None:
    client = services.parts.get(DAGSTER)
    if not isinstance(client, DagsterClient):
        client = services.parts[DAGSTER] = DagsterClient(services.settings.dagster)
        services.parts["dagster_owned"] = True
    services.parts[SYNC] = SyncService(services.settings, client, services.parts.get(LOAD_CHECK_PART))
    hooks.provide_wait_for_fresh(services, refresh.ensure_fresh)
    add_ready_check(services, "dagster", check_dagster, required=False, impact=DAGSTER_IMPACT)
    services.parts[RECONCILER] = reconcile.start(services.parts[SYNC], services.settings.dagster.sync_reconcile_s)


async def shutdown(services: Services) -> None:
    await reconcile.stop(services.parts.pop(RECONCILER, None))
    client = services.parts.get(DAGSTER)
    if isinstance(client, DagsterClient) and services.parts.pop("dagster_owned", False):
        await client.aclose()
        services.parts.pop(DAGSTER, None)
