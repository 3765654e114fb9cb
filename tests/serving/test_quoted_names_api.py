"""Tables whose Snowflake names are quoted (mixed case, spaces, reserved words, unicode, ``$``), through the API.

They are granted by their SQL names, listed with the exact name an agent must write,
fetched, sampled, profiled and queried the way SQL names them; two names differing only in
case stay two tables. The guard compares case as DuckDB does (ASCII only), so a Unicode
spelling can neither hide a system view behind a CTE nor reach a table it does not name.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest

from shared.served import table_key
from shared.settings import Settings
from tests.conftest import publish_table
from tests.serving.helpers import assert_error

KELVIN = "\u212a"
ORDERS = table_key("DEMO", "PUBLIC", "ORDERS")
LINES = table_key("DEMO", "PUBLIC", "Order Lines")
LINES_UPPER = table_key("DEMO", "PUBLIC", "ORDER LINES")
LOWER = table_key("DEMO", "PUBLIC", "lower_t")
LOWER_ORDERS = table_key("DEMO", "PUBLIC", "orders")
CAFE = table_key("DEMO", "Sales $", "Café$")
SECRET = table_key("DEMO", "PUBLIC", "Secret")
LINES_SQL = ('SELECT 1 AS "select", 2 AS "group", i AS "Order", i * 10 AS "Line Id", \'m\' || i AS "MixedCase" '
             "FROM range(5) t(i)")


@pytest.fixture
def world(client: Any, api_settings: Settings, make_swarm: Any, agent_headers: Any) -> dict[str, Any]:
    served = api_settings.served_path
    publish_table(served, ORDERS, "SELECT 'ORDERS' AS src, range AS id FROM range(3)")
    publish_table(served, LINES, LINES_SQL)
    publish_table(served, LINES_UPPER, "SELECT 'UPPER' AS src FROM range(2)")
    publish_table(served, LOWER, "SELECT 'lower_t' AS src FROM range(4)")
    publish_table(served, LOWER_ORDERS, "SELECT 'orders' AS src FROM range(6)")
    publish_table(served, CAFE, "SELECT 'café' AS src")
    publish_table(served, SECRET, "SELECT 'CANARY_quoted' AS src")
    swarm = make_swarm(["demo.public.orders", 'demo.public."Order Lines"', 'DEMO.PUBLIC."ORDER LINES"',
                        'demo.public."lower_t"', 'demo.public."orders"', 'demo."Sales $"."Café$"'])
    only_upper = make_swarm(["demo.public.orders"])
    return {"h": agent_headers(swarm["id"]), "upper": agent_headers(only_upper["id"]), "swarm": swarm}


def _query(client: Any, headers: dict[str, str], sql: str) -> Any:
    return client.post("/api/v1/queries/execute", json={"query": sql}, headers=headers)


def _rows(response: Any) -> list[list[Any]]:
    assert response.status_code in (200, 201), response.text
    return response.json()["rows"]  # type: ignore[no-any-return]


def test_grants_are_stored_as_keys_whatever_spelling_the_admin_used(world: dict[str, Any]) -> None:
    assert sorted(world["swarm"]["grants"]) == sorted([ORDERS, LINES, LINES_UPPER, LOWER, LOWER_ORDERS, CAFE])


def test_the_catalog_shows_the_name_to_write(client: Any, world: dict[str, Any]) -> None:
    body = client.get("/api/v1/data/tables", headers=world["h"]).json()
    by_key = {t["key"]: t for t in body["tables"]}
    assert set(by_key) == {ORDERS, LINES, LINES_UPPER, LOWER, LOWER_ORDERS, CAFE}
    assert by_key[LINES]["table"] == 'demo.public."Order Lines"'
    assert by_key[LINES]["source"] == {"database": "DEMO", "schema": "PUBLIC", "table": "Order Lines"}
    assert by_key[LINES_UPPER]["table"] == 'demo.public."ORDER LINES"'
    assert by_key[LOWER]["table"] == 'demo.public."lower_t"'
    assert by_key[ORDERS]["table"] == "demo.public.orders"
    assert by_key[CAFE]["table"] == 'demo."Sales $"."Café$"'
    assert [c["name"] for c in by_key[LINES]["columns"]] == ["select", "group", "Order", "Line Id", "MixedCase"]
    for t in body["tables"]:  # the name shown is the name that works
        assert _rows(_query(client, world["h"], f"SELECT count(*) FROM {t['table']}"))[0][0] >= 1


@pytest.mark.parametrize(("name", "key"), [
    ('"Order Lines"', LINES), ('public."Order Lines"', LINES), ('demo.public."Order Lines"', LINES),
    ('"ORDER LINES"', LINES_UPPER), ('"lower_t"', LOWER), ("orders", ORDERS), ('"ORDERS"', ORDERS),
    ('"orders"', LOWER_ORDERS), ('"Café$"', CAFE), ('demo."Sales $"."Café$"', CAFE), (LINES, LINES),
])
def test_one_table_by_its_sql_name_or_key(client: Any, world: dict[str, Any], name: str, key: str) -> None:
    r = client.get(f"/api/v1/data/tables/{urllib.parse.quote(name, safe='')}", headers=world["h"])
    assert r.status_code == 200, r.text
    assert r.json()["key"] == key


@pytest.mark.parametrize("name", ["order lines", '"order lines"', "lower_t", '"Secret"', "secret", '"Order Lines',
                                  f'"{KELVIN}"'])
def test_names_that_designate_no_granted_table_are_404(client: Any, world: dict[str, Any], name: str) -> None:
    r = client.get(f"/api/v1/data/tables/{urllib.parse.quote(name, safe='')}", headers=world["h"])
    assert_error(r, 404, rule="table_not_granted")
    assert "CANARY" not in r.text


def test_queries_address_quoted_names_exactly(client: Any, world: dict[str, Any]) -> None:
    h = world["h"]
    assert _rows(_query(client, h, 'SELECT "select", "group", "Order", "Line Id", "MixedCase" FROM "Order Lines" '
                                   'WHERE "Order" = 2')) == [[1, 2, 2, 20, "m2"]]
    assert _rows(_query(client, h, 'SELECT DISTINCT src FROM "ORDER LINES"')) == [["UPPER"]]
    assert _rows(_query(client, h, 'SELECT DISTINCT src FROM "lower_t"')) == [["lower_t"]]
    assert _rows(_query(client, h, "SELECT DISTINCT src FROM orders")) == [["ORDERS"]]
    assert _rows(_query(client, h, 'SELECT DISTINCT src FROM "orders"')) == [["orders"]], "quoted is exact"
    assert _rows(_query(client, h, 'SELECT src FROM demo."Sales $"."Café$"')) == [["café"]]
    both = 'SELECT (SELECT count(*) FROM "Order Lines"), (SELECT count(*) FROM "ORDER LINES")'
    assert _rows(_query(client, h, both)) == [[5, 2]], "names differing only in case stay two tables"
    assert_error(_query(client, h, "SELECT * FROM lower_t"), 400, rule="table_not_granted")
    assert_error(_query(client, h, 'SELECT * FROM "Secret"'), 400, rule="table_not_granted")


def test_a_quoted_lower_case_name_still_finds_an_ordinary_table_when_nothing_else_matches(
        client: Any, world: dict[str, Any]) -> None:
    assert _rows(_query(client, world["upper"], 'SELECT DISTINCT src FROM "orders"')) == [["ORDERS"]]
    assert _rows(_query(client, world["upper"], 'SELECT DISTINCT src FROM "Orders"')) == [["ORDERS"]]


def test_sample_and_profile_by_quoted_name(client: Any, world: dict[str, Any]) -> None:
    path = urllib.parse.quote('"Order Lines"', safe="")
    r = client.get(f"/api/v1/data/tables/{path}/sample", params={"method": "head", "size": 2,
                                                                  "columns": 'Line Id,MixedCase'}, headers=world["h"])
    assert r.status_code == 200, r.text
    r = client.get(f"/api/v1/data/tables/{path}/profile", headers=world["h"])
    assert r.status_code == 200, r.text
    assert [c["name"] for c in r.json()["columns"]] == ["select", "group", "Order", "Line Id", "MixedCase"]


KELVIN_CTE = (f'WITH "duc{KELVIN}db_databases" AS (SELECT 1) SELECT database_name, path FROM duckdb_databases '
              "WHERE EXISTS (SELECT 1 FROM orders)")


@pytest.mark.parametrize("sql", [
    KELVIN_CTE,
    f"WITH duc{KELVIN}db_settings AS (SELECT 1) SELECT * FROM duckdb_settings",
    f'WITH "{KELVIN}" AS (SELECT 1) SELECT * FROM k',
    f"SELECT * FROM orders AS o WHERE EXISTS (WITH \"Duc{KELVIN}DB_tables\" AS (SELECT 1) SELECT * FROM duckdb_tables)",
])
def test_unicode_case_never_hides_a_table_behind_a_cte(client: Any, world: dict[str, Any], sql: str) -> None:
    r = _query(client, world["h"], sql)
    error = assert_error(r, 400)
    assert error["rule"] in ("table_not_granted", "ambiguous_name")
    assert "/served/" not in r.text
    assert ".duckdb" not in r.text


@pytest.mark.parametrize("sql", [f"SELECT {KELVIN}ount(*) FROM orders", f"SELECT re{KELVIN}(1) FROM orders",
                                 f'SELECT "sq{KELVIN}rt"(4)'])
def test_function_names_that_fold_differently_are_refused(client: Any, world: dict[str, Any], sql: str) -> None:
    error = assert_error(_query(client, world["h"], sql), 400)
    assert error["rule"] in ("ambiguous_name", "function_not_allowed")


def test_lower_case_unicode_cte_names_fold_alike_and_are_kept(client: Any, world: dict[str, Any]) -> None:
    sql = 'WITH "ums\u00e4tze" AS (SELECT 3 AS x) SELECT x FROM ums\u00e4tze'
    assert _rows(_query(client, world["h"], sql)) == [[3]]
    upper = 'WITH "UMS\u00c4TZE" AS (SELECT 3 AS x) SELECT x FROM ums\u00e4tze'
    assert_error(_query(client, world["h"], upper), 400, rule="ambiguous_name")
    other = 'WITH ums\u00e4tze AS (SELECT 3 AS x) SELECT x FROM "UMS\u00c4TZE"'  # another name to DuckDB
    assert_error(_query(client, world["h"], other), 400, rule="table_not_granted")


def test_ascii_cte_shadowing_still_works_as_duckdb_does(client: Any, world: dict[str, Any]) -> None:
    assert _rows(_query(client, world["h"], 'WITH "ORDERS" AS (SELECT 42 AS x) SELECT x FROM orders')) == [[42]]
    assert _rows(_query(client, world["h"], 'WITH "Secret" AS (SELECT 7 AS x) SELECT x FROM secret')) == [[7]]
