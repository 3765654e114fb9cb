"""GET /api/v1/data/tables and /api/v1/data/tables/{table}: precise, cheap, and leak-free."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import event

from shared.control.db import get_engine, session_scope
from shared.control.models import RegisteredTableRow, TableStatusRow
from shared.served import read_current
from shared.settings import Settings
from shared.status import freshness
from tests.conftest import publish_table
from tests.serving.helpers import assert_error

ORDERS, CUSTOMERS, SALES_ORDERS, VAULT = "demo.public.orders", "demo.public.customers", "demo.sales.orders", "demo.secret.vault"


def register(url: str, key: str, *, freshness_s: int | None = None, description: str = "") -> None:
    db, schema, table = key.split(".")
    with session_scope(url) as s:
        s.add(RegisteredTableRow(key=key, database=db.upper(), schema_name=schema.upper(), table_name=table.upper(),
                                 freshness_s=freshness_s, description=description))


def status(url: str, key: str, **fields: Any) -> None:
    with session_scope(url) as s:
        s.merge(TableStatusRow(key=key, **fields))


@pytest.fixture
def world(client: Any, api_settings: Settings, make_swarm: Any, agent_headers: Any) -> dict[str, Any]:
    served, url = api_settings.served_path, api_settings.control_url
    publish_table(served, ORDERS, "select range as id, range * 2.5 as amount from range(42)",
                  descriptions={"id": "Order id", "amount": "Total in EUR"})
    publish_table(served, CUSTOMERS, "select range as id, 'c' as name from range(7)")
    publish_table(served, SALES_ORDERS, "select 1 as id")
    publish_table(served, VAULT, "select 'CANARY_catalog' as secret")
    register(url, ORDERS, freshness_s=3600, description="All orders")
    now = dt.datetime.now(dt.UTC)
    status(url, ORDERS, last_success_at=now - dt.timedelta(minutes=5), last_run_status="succeeded")
    register(url, "demo.public.pending")  # registered and granted, never synced
    swarm = make_swarm([ORDERS, CUSTOMERS, "demo.public.pending", "demo.public.ghost"])
    wide = make_swarm([ORDERS, SALES_ORDERS])
    return {"h": agent_headers(swarm["id"]), "wide": agent_headers(wide["id"]), "url": url, "served": served}


def test_lists_only_readable_tables_with_everything_an_agent_needs(client: Any, world: dict[str, Any]) -> None:
    r = client.get("/api/v1/data/tables", headers=world["h"])
    assert r.status_code == 200
    body = r.json()
    assert [t["table"] for t in body["tables"]] == [CUSTOMERS, ORDERS, "demo.public.pending"]  # no ghost, no vault
    assert body["count"] == 3
    assert "CANARY" not in r.text
    orders = body["tables"][1]
    manifest = read_current(world["served"], ORDERS)
    base = [{k: c[k] for k in ("name", "type", "nullable", "description", "masked")} for c in orders["columns"]]
    assert base == [{"name": "id", "type": "BIGINT", "nullable": True, "description": "Order id", "masked": None},
                    {"name": "amount", "type": "DECIMAL(21,1)", "nullable": True, "description": "Total in EUR",
                     "masked": None}]
    assert [c["classification"]["personal"] for c in orders["columns"]] == [False, False]
    assert orders["row_filter"] is False
    assert (orders["row_count"], orders["bytes"], orders["served_version"]) == (42, manifest.bytes, manifest.version)  # type: ignore[union-attr]
    assert orders["description"] == "All orders"
    assert dt.datetime.fromisoformat(orders["last_synced_at"]) <= dt.datetime.now(dt.UTC)
    assert orders["freshness"]["status"] == "fresh"
    assert orders["freshness"]["target_s"] == 3600
    pending = body["tables"][2]
    assert pending["served_version"] is None
    assert pending["freshness"]["status"] == "stale"
    assert "never synced" in pending["freshness"]["reason"]


@pytest.mark.parametrize("name", ["orders", "public.orders", "demo.public.orders", "DEMO.Public.ORDERS"])
def test_one_table_by_any_unique_name(client: Any, world: dict[str, Any], name: str) -> None:
    r = client.get(f"/api/v1/data/tables/{name}", headers=world["h"])
    assert r.status_code == 200
    assert r.json()["table"] == ORDERS


def test_ungranted_and_missing_tables_answer_identically(client: Any, world: dict[str, Any]) -> None:
    bodies = []
    for name in ("vault", "nothing", "ghost"):  # ungranted, non-existent, granted but non-existent
        error = assert_error(client.get(f"/api/v1/data/tables/{name}", headers=world["h"]), 404, rule="table_not_granted")
        bodies.append(error["message"].replace(name, "X"))
    assert len(set(bodies)) == 1
    full = [assert_error(client.get(f"/api/v1/data/tables/{k}", headers=world["h"]), 404)["message"].replace(k, "X")
            for k in (VAULT, "demo.secret.nothing")]
    assert full[0] == full[1]


def test_ambiguous_short_name_lists_only_the_callers_tables(client: Any, world: dict[str, Any]) -> None:
    error = assert_error(client.get("/api/v1/data/tables/orders", headers=world["wide"]), 404, rule="ambiguous_table")
    assert ORDERS in error["message"]
    assert SALES_ORDERS in error["message"]
    assert "vault" not in error["message"]
    assert client.get("/api/v1/data/tables/sales.orders", headers=world["wide"]).json()["table"] == SALES_ORDERS


def test_freshness_statuses(client: Any, world: dict[str, Any], make_swarm: Any, agent_headers: Any) -> None:
    url, served = world["url"], world["served"]
    now = dt.datetime.now(dt.UTC)
    keys = {name: f"demo.fresh.{name}" for name in ("late", "broken", "flagged", "recovered")}
    for key in keys.values():
        publish_table(served, key, "select 1 as x")
        register(url, key, freshness_s=600)
    status(url, keys["late"], last_success_at=now - dt.timedelta(hours=2))
    status(url, keys["broken"], last_success_at=now - dt.timedelta(hours=3), last_failure_at=now - dt.timedelta(hours=1),
           last_run_status="failed", last_error="Snowflake said: table vanished\nstack…")
    status(url, keys["flagged"], last_success_at=now, stale=True, stale_reason="source schema changed")
    status(url, keys["recovered"], last_success_at=now - dt.timedelta(minutes=1), last_failure_at=now - dt.timedelta(hours=1))
    h = agent_headers(make_swarm(sorted(keys.values()))["id"])
    got = {t["name"]: t["freshness"] for t in client.get("/api/v1/data/tables", headers=h).json()["tables"]}
    assert got["late"]["status"] == "stale"
    assert "2.0 h ago" in got["late"]["reason"]
    assert "10.0 min" in got["late"]["reason"]
    assert got["broken"]["status"] == "failing"
    assert "Snowflake said: table vanished" in got["broken"]["reason"]
    assert "stack" not in got["broken"]["reason"]
    assert got["flagged"] == got["flagged"] | {"status": "stale", "reason": "source schema changed"}
    assert got["recovered"]["status"] == "fresh"


def test_freshness_without_a_target_is_fresh_once_served(api_settings: Settings) -> None:
    publish_table(api_settings.served_path, "demo.x.y", "select 1 as a")
    manifest = read_current(api_settings.served_path, "demo.x.y")
    assert freshness(manifest, None, None, dt.datetime.now(dt.UTC))["status"] == "fresh"
    assert freshness(None, None, None, dt.datetime.now(dt.UTC))["status"] == "stale"


def test_no_n_plus_one(client: Any, world: dict[str, Any], make_swarm: Any, agent_headers: Any) -> None:
    many = [f"demo.many.t{i}" for i in range(12)]
    for key in many:
        publish_table(world["served"], key, "select 1 as a")
        register(world["url"], key)
    small, big = agent_headers(make_swarm(many[:1])["id"]), agent_headers(make_swarm(many)["id"])
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = get_engine(world["url"])
    for h in (small, big):  # warm the token caches
        client.get("/api/v1/data/tables", headers=h)
    event.listen(engine, "before_cursor_execute", count)
    try:
        client.get("/api/v1/data/tables", headers=small)
        n_small = len([s for s in statements if "table_status" in s or "registered_tables" in s])
        statements.clear()
        assert len(client.get("/api/v1/data/tables", headers=big).json()["tables"]) == 12
        n_big = len([s for s in statements if "table_status" in s or "registered_tables" in s])
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert n_small == n_big == 2


def test_admin_sees_every_table_including_registered_only(client: Any, world: dict[str, Any],
                                                          admin_headers: dict[str, str]) -> None:
    tables = [t["table"] for t in client.get("/api/v1/data/tables", headers=admin_headers).json()["tables"]]
    assert {ORDERS, CUSTOMERS, SALES_ORDERS, VAULT, "demo.public.pending"} <= set(tables)
    assert client.get(f"/api/v1/data/tables/{VAULT}", headers=admin_headers).status_code == 200


def test_requires_a_token(client: Any, world: dict[str, Any]) -> None:
    assert_error(client.get("/api/v1/data/tables"), 401)


@pytest.fixture
def fake(app: Any, api_settings: Settings) -> Any:
    """The fake Dagster as the API's GraphQL client (injected before the client starts the app)."""
    from shared.control.db import migrate
    from tests.serving.dagster_fake import FakeDagster

    migrate(api_settings.control_url)
    fake = FakeDagster(api_settings.control_url)
    app.state.services.parts["dagster"] = fake.client(api_settings.dagster)
    return fake


def test_dagster_freshness_is_shown_beside_ours_in_one_cached_query(
        fake: Any, client: Any, api_settings: Settings, make_swarm: Any, agent_headers: Any) -> None:
    served, url = api_settings.served_path, api_settings.control_url
    for key in (ORDERS, CUSTOMERS):
        publish_table(served, key, "select 1 as id")
        register(url, key, freshness_s=3600)
        status(url, key, last_success_at=dt.datetime.now(dt.UTC), last_run_status="succeeded")
    fake.reload()
    fake.freshness = {("demo", "public", "orders"): "HEALTHY", ("demo", "public", "customers"): "DEGRADED"}
    h = agent_headers(make_swarm([ORDERS, CUSTOMERS])["id"])
    tables = {t["table"]: t for t in client.get("/api/v1/data/tables", headers=h).json()["tables"]}
    assert tables[ORDERS]["freshness"]["dagster_status"] == "HEALTHY"
    assert tables[CUSTOMERS]["freshness"]["dagster_status"] == "DEGRADED"
    assert tables[CUSTOMERS]["freshness"]["status"] == "fresh", "our verdict never depends on Dagster"
    assert fake.calls.count("Freshness") == 1, "one GraphQL query for every table of the response"
    one = client.get(f"/api/v1/data/tables/{ORDERS}", headers=h).json()
    assert one["freshness"]["dagster_status"] == "HEALTHY"
    assert fake.calls.count("Freshness") == 1, "answered from the cache"


def test_catalog_answers_without_dagster_and_does_not_retry_at_once(
        fake: Any, client: Any, api_settings: Settings, make_swarm: Any, agent_headers: Any) -> None:
    publish_table(api_settings.served_path, ORDERS, "select 1 as id")
    fake.down = True
    h = agent_headers(make_swarm([ORDERS])["id"])
    for _ in range(3):
        r = client.get("/api/v1/data/tables", headers=h)
        assert r.status_code == 200
        entry = r.json()["tables"][0]
        assert entry["freshness"]["dagster_status"] is None
        assert entry["freshness"]["status"] == "fresh"
    fake.down = False
    client.get("/api/v1/data/tables", headers=h)
    assert "Freshness" not in fake.calls, "a failed lookup is not retried within the cache TTL"
