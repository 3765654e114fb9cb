"""Liveness and readiness.

``/health`` answers as long as the process serves HTTP (no dependency is touched, so a
slow database never gets a live process restarted). ``/ready`` runs every registered
readiness check (see ``serving.lib.ready``) and reports each dependency:

- ``ready`` (200): every check passes;
- ``degraded`` (200): only optional checks fail (Dagster): reads and queries work, and
  the failing check's ``impact`` says what does not (syncs and refreshes answer 503);
- ``not_ready`` (503): a required check fails (control database, served data), so a
  balancer stops sending traffic to a replica that cannot serve reads.

``/metrics`` (Prometheus text format) answers here only with ``METRICS=admin``, to the
admin; with ``METRICS=port`` it is served on the internal metrics port instead
(``serving/lib/metrics.py``), and with ``off`` nowhere.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Response, get

from serving.lib import metrics
from serving.lib.errors import NotFound
from serving.lib.guards import requires_admin
from serving.lib.ready import readiness, run_ready_checks
from serving.lib.services import Services


@get("/health", operation_id="health", tags=["health"], security=[{}], sync_to_thread=False)
def health() -> dict[str, str]:
    """Liveness: the process is up."""
    return {"status": "ok"}


@get("/ready", operation_id="ready", tags=["health"], security=[{}])
async def ready(services: Services) -> Response[dict[str, Any]]:
    """Readiness per dependency: 200 ``ready`` or ``degraded`` (Dagster down), 503 ``not_ready``."""
    checks = await run_ready_checks(services)
    status, code = readiness(checks)
    return Response({"status": status, "checks": checks}, status_code=code)


@get("/metrics", operation_id="metrics", tags=["health"], guards=[requires_admin], media_type=metrics.CONTENT_TYPE)
async def metrics_page(services: Services) -> Response[bytes]:
    """Prometheus metrics of this replica (every worker counted), with ``METRICS=admin``; admin only."""
    if services.settings.observability.metrics_mode != "admin":
        raise NotFound("metrics are not served on this port (METRICS is not admin)", rule="metrics_not_here")
    body = await anyio.to_thread.run_sync(metrics.render, services.settings)
    return Response(body, media_type=metrics.CONTENT_TYPE)


ROUTES: list[Any] = [health, ready, metrics_page]
