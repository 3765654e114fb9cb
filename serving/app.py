"""The Litestar application: features are plugged in from a fixed list.

Why a fixed list: every feature folder (``serving/<feature>/``) has the same shape —
``controllers.py`` exporting ``ROUTES`` and, when it owns a long-lived client,
``services.py`` with ``startup(services)`` / ``shutdown(services)``. Finding "the
routes of X" or "the client of X" never needs a search.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar

from serving.lib.errors import EXCEPTION_HANDLERS
from serving.lib.services import Services
from shared.control.db import migrate
from shared.settings import Settings, get_settings

FEATURES = ("health", "auth", "admin", "catalog", "queries", "sampling", "artifacts", "sync")


def _hooks(name: str) -> Any:
    try:
        return importlib.import_module(f"serving.{name}.services")
    except ModuleNotFoundError as e:
        if e.name != f"serving.{name}.services":
            raise
        return None


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> Litestar:
    """Build the API. ``services`` lets tests inject ready clients."""
    settings = settings or (services.settings if services else get_settings())
    svc = services or Services(settings=settings)
    routes: list[Any] = []
    for name in FEATURES:
        routes.extend(importlib.import_module(f"serving.{name}.controllers").ROUTES)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        migrate(settings.control_url)
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

    app = Litestar(
        route_handlers=routes,
        lifespan=[lifespan],
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        state=None,
    )
    app.state.services = svc
    return app
