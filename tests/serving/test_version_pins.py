"""``at_versions``: a query read at the served versions an earlier answer named.

Through the real app (test client) over served files published by DuckDB: a new version
is published between two queries, and the pinned one must still answer the old rows, in
every format, in a dry run, and refuse clearly what it cannot pin.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from typing import Any

import pyarrow.parquet as pq
import pytest

from shared import housekeeping
from shared.control.models import utcnow
from shared.settings import Settings
from tests.conftest import publish_table
from tests.serving.helpers import assert_error

ORDERS, CUSTOMERS, HIDDEN = "demo.public.orders", "demo.public.customers", "demo.public.hidden"
SQL = "select id, tag from orders order by id"
EXECUTE = "/api/v1/queries/execute"


@pytest.fixture
def world(client: Any, settings: Settings, make_swarm: Any, agent_headers: Any) -> dict[str, Any]:
    publish_table(settings.served_path, ORDERS, "select range as id, 'v1' as tag from range(20)")
    publish_table(settings.served_path, CUSTOMERS, "select range as id from range(3)")
    publish_table(settings.served_path, HIDDEN, "select 1 as x")
    h = agent_headers(make_swarm([ORDERS, CUSTOMERS])["id"])
    first = client.post(EXECUTE, json={"query": SQL}, headers=h).json()
    publish_table(settings.served_path, ORDERS, "select range as id, 'v2' as tag from range(5)")
    return {"h": h, "v1": first["tables"][0]["version"]}


def _tags(body: dict[str, Any]) -> set[str]:
    return {row[1] for row in body["rows"]}


def test_a_pinned_query_reads_the_version_it_names_after_a_new_one_is_published(client: Any,
                                                                                world: dict[str, Any]) -> None:
    now = client.post(EXECUTE, json={"query": SQL}, headers=world["h"]).json()
    assert (_tags(now), now["row_count"]) == ({"v2"}, 5)
    assert now["tables"][0]["version"] != world["v1"]
    pinned = client.post(EXECUTE, json={"query": SQL, "at_versions": {ORDERS: world["v1"]}}, headers=world["h"])
    assert pinned.status_code == 200, pinned.text
    body = pinned.json()
    assert (_tags(body), body["row_count"]) == ({"v1"}, 20)
    assert body["tables"][0]["version"] == world["v1"]
    assert json.loads(pinned.headers["agents-data-provenance"])["tables"][0]["version"] == world["v1"]


def test_a_pin_holds_for_files_and_takes_the_tables_sql_spelling(client: Any, world: dict[str, Any]) -> None:
    r = client.post(EXECUTE, headers=world["h"], json={
        "query": SQL, "output_format": "parquet", "at_versions": {'DEMO.PUBLIC."ORDERS"': world["v1"]}})
    assert r.status_code == 200, r.text
    job = r.json()
    assert [t["version"] for t in job["tables"]] == [world["v1"]]
    data = client.get(job["result_url"], headers=world["h"])
    assert data.status_code == 200
    table = pq.read_table(io.BytesIO(data.content))
    assert (table.num_rows, set(table.column("tag").to_pylist())) == (20, {"v1"})


def test_a_dry_run_reports_the_pinned_version(client: Any, world: dict[str, Any]) -> None:
    r = client.post(EXECUTE, headers=world["h"], json={"query": SQL, "dry_run": True, "at_versions": {ORDERS: world["v1"]}})
    assert r.status_code == 200, r.text
    assert [(t["version"], t["row_count"]) for t in r.json()["tables"]] == [(world["v1"], 20)]


def test_only_the_pinned_table_is_pinned(client: Any, world: dict[str, Any], settings: Settings) -> None:
    publish_table(settings.served_path, CUSTOMERS, "select range as id from range(7)")
    sql = "select (select count(*) from orders) as o, (select count(*) from customers) as c"
    body = client.post(EXECUTE, json={"query": sql, "at_versions": {ORDERS: world["v1"]}}, headers=world["h"]).json()
    assert body["rows"] == [[20, 7]]


def test_a_pin_on_a_deleted_version_answers_410(client: Any, world: dict[str, Any], settings: Settings) -> None:
    report = housekeeping.purge_superseded_versions(settings, now=utcnow() + dt.timedelta(days=1))
    assert report.counts.get("versions_deleted") == 1
    error = assert_error(client.post(EXECUTE, json={"query": SQL, "at_versions": {ORDERS: world["v1"]}},
                                     headers=world["h"]), 410, rule="version_gone")
    assert error["details"] == {"table": ORDERS, "version": world["v1"]}


@pytest.mark.parametrize(("pins", "rule"), [
    ({CUSTOMERS: "20260101T000000000000-abcd"}, "invalid_version_pin"),  # a granted table the query does not read
    ({HIDDEN: "20260101T000000000000-abcd"}, "invalid_version_pin"),  # not granted: answered as not read
    ({"no such table": "x"}, "invalid_version_pin"),
    ({ORDERS: "../../../etc/passwd"}, "invalid_version_pin"),
    ({ORDERS: "v-1.json"}, "invalid_version_pin"),
    ({ORDERS: ""}, "invalid_version_pin"),
    ({ORDERS: "live"}, "live_table"),
])
def test_a_pin_that_cannot_hold_is_a_400_naming_it(client: Any, world: dict[str, Any], pins: dict[str, str],
                                                   rule: str) -> None:
    error = assert_error(client.post(EXECUTE, json={"query": SQL, "at_versions": pins}, headers=world["h"]),
                         400, rule=rule)
    assert HIDDEN not in json.dumps(error["details"])  # the tables a query reads are its own, never others'


def test_a_well_formed_version_that_never_existed_answers_410(client: Any, world: dict[str, Any]) -> None:
    assert_error(client.post(EXECUTE, json={"query": SQL, "at_versions": {ORDERS: "20200101T000000000000-0000"}},
                             headers=world["h"]), 410, rule="version_gone")


@pytest.mark.parametrize("pins", [["x"], {"demo.public.orders": 1}, "v1"])
def test_a_malformed_at_versions_is_a_400(client: Any, world: dict[str, Any], pins: Any) -> None:
    assert_error(client.post(EXECUTE, json={"query": SQL, "at_versions": pins}, headers=world["h"]), 400)


def test_pins_and_a_freshness_floor_together_are_refused(client: Any, world: dict[str, Any]) -> None:
    assert_error(client.post(EXECUTE, headers=world["h"], json={
        "query": SQL, "at_versions": {ORDERS: world["v1"]}, "min_freshness": 60}), 400, rule="invalid_version_pin")
