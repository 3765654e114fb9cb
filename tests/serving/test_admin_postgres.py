"""Identity, revocation and audit filters on PostgreSQL (the production control database)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar, Request, get
from litestar.testing import TestClient

from serving.app import create_app
from serving.lib.audit import annotate, get_audit
from serving.lib.caller import Caller
from shared.settings import Settings
from tests.serving.helpers import admin_token, assert_error, bearer, create_swarm, mint_token

pytestmark = pytest.mark.postgres
ORDERS = "demo.public.orders"


@get("/test/pg-probe", sync_to_thread=False)
def pg_probe(request: Request[Any, Any, Any], caller: Caller) -> dict[str, bool]:
    annotate(request, sql_text="select 1", tables=[{"table": ORDERS, "version": "v9"}], rows=1, bytes=8)
    return {"ok": True}


@pytest.fixture
def pg_client(api_settings: Settings, pg_url: str) -> Iterator[TestClient[Litestar]]:
    app = create_app(dataclasses.replace(api_settings, database_url=pg_url))
    app.register(pg_probe)
    with TestClient(app) as client:
        yield client


def test_journey_on_postgres(pg_client: TestClient[Litestar]) -> None:
    admin = bearer(admin_token(pg_client))
    swarm = create_swarm(pg_client, admin, [ORDERS])
    parent = mint_token(pg_client, admin, "swarm", swarm["id"])
    agent = mint_token(pg_client, bearer(parent["token"]), "agent", via_swarm=True, allowed_tables=[ORDERS])
    assert pg_client.get("/test/pg-probe", headers=bearer(agent["token"])).status_code == 200
    pg_client.patch(f"/api/v1/admin/swarms/{swarm['id']}", json={"grants": []}, headers=admin)
    assert pg_client.get("/api/v1/auth/whoami", headers=bearer(agent["token"])).json()["grants"] == []
    pg_client.delete(f"/api/v1/admin/tokens/{parent['token_id']}", headers=admin)
    assert_error(pg_client.get("/api/v1/auth/whoami", headers=bearer(agent["token"])), 401, rule="token_revoked")
    assert get_audit(pg_client.app.state.services).flush()
    page = pg_client.get("/api/v1/admin/audit", params={"table": ORDERS}, headers=admin).json()
    assert [(i["endpoint"], i["tables"]) for i in page["items"]] == [("/test/pg-probe", [{"table": ORDERS, "version": "v9"}])]
    page = pg_client.get("/api/v1/admin/audit", params={"token_id": agent["token_id"], "status": "4xx"},
                         headers=admin).json()
    assert [i["rule"] for i in page["items"]] == ["token_revoked"]
