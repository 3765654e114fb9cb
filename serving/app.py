"""The Litestar application: features are plugged in from a fixed list.

Why a fixed list: every feature folder (``serving/<feature>/``) has the same shape —
``controllers.py`` exporting ``ROUTES`` and, when it owns a long-lived client,
``services.py`` with ``startup(services)`` / ``shutdown(services)``. Finding "the
routes of X" or "the client of X" never needs a search.

App-wide, in one place: the ``caller`` and ``services`` dependencies, the one error
shape, the audit wrapper around every HTTP request (including 404s and refusals), the
per-agent limiter, the offline docs at ``/docs``, and the ingress wrapper (client
address from trusted proxies only, body size and read-time limits).
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Any

import anyio.to_thread
from litestar import Litestar

from serving.auth.deps import DEPENDENCIES
from serving.lib import audit, limits
from serving.lib.docs import asset_routes, document_errors, openapi_config, unique_operation_ids
from serving.lib.errors import EXCEPTION_HANDLERS
from serving.lib.ingress import Ingress
from serving.lib.params import check_request_params
from serving.lib.services import Services
from shared.control.db import migrate
from shared.filemodes import restrict_process
from shared.settings import Settings, get_settings

FEATURES = ("health", "auth", "admin", "catalog", "queries", "sampling", "artifacts", "sync", "dagster_ui", "mcp")


def _hooks(name: str) -> Any:
    try:
        return importlib.import_module(f"serving.{name}.services")
    except ModuleNotFoundError as e:
        if e.name != f"serving.{name}.services":
            raise
        return None


def _version() -> str:
    try:
        return package_version("agents-data")
    except PackageNotFoundError:
        return "0.0.0"


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> Litestar:
    """Build the API. ``services`` lets tests inject ready clients."""
    settings = settings or (services.settings if services else get_settings())
    restrict_process()  # owner-only files under AGENTS_DATA_HOME, whatever umask the process inherited
    svc = services or Services(settings=settings)
    routes: list[Any] = []
    for name in FEATURES:
        routes.extend(importlib.import_module(f"serving.{name}.controllers").ROUTES)
    routes.extend(asset_routes())

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(migrate, settings.control_url)
        limiter = limits.install(svc)
        writer = audit.start(svc)
        started = []
        try:
            for name in FEATURES:
                hooks = _hooks(name)
                if hooks is not None and hasattr(hooks, "startup"):
                    await hooks.startup(svc)
                    started.append(hooks)
            yield
        finally:
            for hooks in reversed(started):
                if hasattr(hooks, "shutdown"):
                    await hooks.shutdown(svc)
            await anyio.to_thread.run_sync(writer.stop)
            limiter.close()

    app = Litestar(
        route_handlers=routes,
        lifespan=[lifespan],
        dependencies=DEPENDENCIES,
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        before_request=check_request_params,  # out-of-range int/float/datetime parameters: 400, for every route
        openapi_config=openapi_config(_version()),
        # Logging is the process's business (serving.main configures it); Litestar's default
        # would reconfigure the root logger of whatever process builds an app.
        logging_config=None,
        state=None,
        request_max_body_size=settings.api.max_body_bytes,
    )
    app.state.services = svc
    unique_operation_ids(app)
    document_errors(app)
    # Outermost wrapper (inside Litestar's own lifespan dispatch): sees every HTTP request,
    # including routing 404/405s that never reach route middleware.
    app.asgi_handler = Ingress(audit.AuditMiddleware(app.asgi_handler, svc), settings)
    return app
