"""Run the API with uvicorn: ``python -m serving`` or ``run(settings)`` from the CLI.

Why a factory string with several workers: uvicorn's worker processes must each build
their own app (and their own long-lived clients) after forking.
"""

from __future__ import annotations

import sys

from shared import logs
from shared.filemodes import secure_home
from shared.settings import Settings, get_settings

SWITCH_INTERVAL_S = 0.001


def build() -> object:
    """App factory for uvicorn workers (reads settings from the environment)."""
    from serving.app import create_app

    sys.setswitchinterval(SWITCH_INTERVAL_S)
    settings = get_settings()
    logs.configure(settings)  # a spawned worker starts with no logging configuration of its own
    return create_app(settings)


def run(settings: Settings | None = None) -> None:
    """Serve the API on ``API_HOST:API_PORT`` until interrupted."""
    import uvicorn

    settings = settings or get_settings()
    # Worker threads converting query results hold the GIL; a shorter switch interval (default 5 ms)
    # lets the event loop (health checks, short queries, answers at time limits) in sooner.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    secure_home(settings.home)  # owner-only umask, and a home made before that rule repaired
    level = settings.api.log_level.lower()
    logs.configure(settings)
    mode = settings.observability.metrics_mode
    if mode != "off":
        # Before prometheus_client is imported anywhere: the workers inherit the folder and share values there.
        from serving.lib import metrics

        metrics.prepare_multiprocess_dir(settings)
        if mode == "port":
            metrics.serve_port(settings)  # this (supervising) process answers scrapes for every worker
    # uvicorn's own X-Forwarded-For handling trusts loopback peers; the app decides from
    # TRUSTED_PROXIES instead (serving.lib.ingress), so it must see the real peer. log_config=None:
    # uvicorn's loggers propagate to the one handler shared.logs installed (same format, no secrets).
    common = {"host": settings.api.host, "port": settings.api.port, "log_level": level, "access_log": False,
              "proxy_headers": False, "server_header": False, "log_config": None}
    if settings.api.workers > 1:
        # Migrate once here: workers starting together would otherwise race to create the schema
        # (SQLite has no advisory lock), and uvicorn stops every worker when one fails to start.
        from shared.control.db import migrate

        migrate(settings.control_url)
        uvicorn.run("serving.main:build", factory=True, workers=settings.api.workers, **common)  # type: ignore[arg-type]
        return
    from serving.app import create_app

    uvicorn.run(create_app(settings), **common)  # type: ignore[arg-type]
