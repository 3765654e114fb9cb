"""Liveness and readiness.

``/health`` answers as long as the process serves HTTP (no dependency is touched, so a
slow database never gets a live process restarted). ``/ready`` runs every registered
readiness check (see ``serving.lib.ready``) and answers 503 when any fails, so a
balancer stops sending traffic to a replica that cannot serve.
"""

from __future__ import annotations

from typing import Any

from litestar import Response, get

from serving.lib.ready import run_ready_checks
from serving.lib.services import Services


@get("/health", operation_id="health", tags=["health"], security=[{}], sync_to_thread=False)
def health() -> dict[str, str]:
    """Liveness: the process is up."""
    return {"status": "ok"}


@get("/ready", operation_id="ready", tags=["health"], security=[{}])
async def ready(services: Services) -> Response[dict[str, Any]]:
    """Readiness: every named check (control database, served data, …) passes."""
    checks = await run_ready_checks(services)
    ok = all(c["ok"] for c in checks)
    return Response({"status": "ready" if ok else "not_ready", "checks": checks}, status_code=200 if ok else 503)


ROUTES: list[Any] = [health, ready]
