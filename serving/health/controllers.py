"""Liveness and readiness.

``/health`` answers as long as the process serves HTTP (no dependency is touched, so a
slow database never gets a live process restarted). ``/ready`` runs every registered
readiness check (see ``serving.lib.ready``) and reports each dependency:

- ``ready`` (200): every check passes;
- ``degraded`` (200): only optional checks fail (Dagster): reads and queries work, and
  the failing check's ``impact`` says what does not (syncs and refreshes answer 503);
- ``not_ready`` (503): a required check fails (control database, served data), so a
  balancer stops sending traffic to a replica that cannot serve reads.
"""

from __future__ import annotations

from typing import Any

from litestar import Response, get

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


ROUTES: list[Any] = [health, ready]
