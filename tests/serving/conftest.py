"""API fixtures: settings, the app and an in-process client, and ready-made token headers.

Tokens are always minted through the real admin endpoints (``helpers.mint_token``), so
tests exercise the same path as agents. Factories:

- ``make_swarm(grants, name=None) -> dict`` (the swarm JSON, with ``id``)
- ``swarm_headers(swarm_id) -> {"Authorization": "Bearer …"}``
- ``agent_headers(swarm_id, allowed_tables=None) -> {"Authorization": "Bearer …"}``
- ``flush_audit()`` waits until queued audit rows are written
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from serving.app import create_app
from serving.lib.audit import get_audit
from serving.lib.services import Services
from shared.settings import Settings
from tests.serving.helpers import admin_token, bearer, create_swarm, mint_token


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    """The shared ``settings`` (temp home, SQLite control DB, fakesnow port, JWT secret, admin password)."""
    return settings


@pytest.fixture
def app(api_settings: Settings) -> Litestar:
    return create_app(api_settings)


@pytest.fixture
def services(app: Litestar) -> Services:
    svc: Services = app.state.services
    return svc


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient[Litestar]]:
    """In-process client with the app's lifespan (migrations, audit writer, feature startups) run."""
    with TestClient(app) as c:
        yield c


@pytest.fixture
def admin_headers(client: TestClient[Litestar]) -> dict[str, str]:
    return bearer(admin_token(client))


@pytest.fixture
def make_swarm(client: TestClient[Litestar], admin_headers: dict[str, str]) -> Callable[..., dict[str, Any]]:
    def make(grants: list[str], name: str | None = None) -> dict[str, Any]:
        return create_swarm(client, admin_headers, grants, name=name)

    return make


@pytest.fixture
def swarm_headers(client: TestClient[Litestar], admin_headers: dict[str, str]) -> Callable[[str], dict[str, str]]:
    def headers(swarm_id: str) -> dict[str, str]:
        return bearer(mint_token(client, admin_headers, "swarm", swarm_id)["token"])

    return headers


@pytest.fixture
def agent_headers(client: TestClient[Litestar], admin_headers: dict[str, str]) -> Callable[..., dict[str, str]]:
    def headers(swarm_id: str, allowed_tables: list[str] | None = None) -> dict[str, str]:
        return bearer(mint_token(client, admin_headers, "agent", swarm_id, allowed_tables=allowed_tables)["token"])

    return headers


@pytest.fixture
def flush_audit(client: TestClient[Litestar], services: Services) -> Callable[[], None]:
    def flush() -> None:
        assert get_audit(services).flush(), "audit writer did not drain"

    return flush
