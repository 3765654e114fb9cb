"""Snowflake names as Snowflake allows them, and columns that shadow the engine's internals,
end to end: registered through the API (the code location reloads), synced by real Dagster
runs, granted by SQL name, listed, sampled, profiled and queried by an agent.

``"Order Lines"`` has a space, mixed case and columns named ``"select"``, ``"group"``,
``"Order"``, ``"Line Id"`` and ``"MixedCase"``; ``"lower_t"`` is a lower-case quoted name;
``T2_RID`` has a ``ROWID`` column and a duplicated key (the row count must be explained by the
duplicate the key removed, counted in the manifest).
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import httpx
import pytest

from shared.served import read_current
from tests.e2e.conftest import shared_platform_fixture
from tests.e2e.platform import Platform, wait_until
from tests.serving.helpers import assert_error, bearer, create_swarm, mint_token

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
RUN_TIMEOUT_S = 180
LINES = "demo.e2e.0_order_32__lines"
LOWER = "demo.e2e.0lower__t"
RID = "demo.e2e.t2_rid"


def _seed(cur: Any) -> None:
    cur.execute("CREATE SCHEMA IF NOT EXISTS DEMO.E2E")
    cur.execute('CREATE OR REPLACE TABLE DEMO.E2E."Order Lines" ("Line Id" NUMBER(10,0), "select" NUMBER(10,0), '
                '"group" VARCHAR, "Order" NUMBER(10,0), "MixedCase" VARCHAR, "Updated At" TIMESTAMP_NTZ)')
    cur.execute('INSERT INTO DEMO.E2E."Order Lines" SELECT seq4() + 1, seq4() % 3, \'g\' || (seq4() % 2), 7, '
                "'m', dateadd(minute, seq4(), '2025-01-01'::timestamp_ntz) FROM TABLE(GENERATOR(ROWCOUNT => 12))")
    cur.execute('CREATE OR REPLACE TABLE DEMO.E2E."lower_t" (id NUMBER(10,0))')
    cur.execute('INSERT INTO DEMO.E2E."lower_t" VALUES (1), (2), (3)')
    cur.execute("CREATE OR REPLACE TABLE DEMO.E2E.T2_RID (ID NUMBER(10,0), ROWID NUMBER(10,0), "
                "UPDATED_AT TIMESTAMP_NTZ, V VARCHAR)")
    cur.execute("INSERT INTO DEMO.E2E.T2_RID VALUES (1, 9, '2025-01-01 00:00:00', 'old'), "
                "(1, 9, '2025-01-02 00:00:00', 'new'), (2, 9, '2025-01-01 00:00:00', 'b'), "
                "(3, 9, '2025-01-01 00:00:00', 'c'), (4, 9, '2025-01-01 00:00:00', 'd')")


names_platform = shared_platform_fixture(seed=_seed)


def _poll(client: httpx.Client, url: str, headers: dict[str, str]) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        r = client.get(url, headers=headers)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        if body["status"] in ("failed", "canceled"):
            raise AssertionError(f"job ended {body['status']}: {body}")
        return body if body["status"] == "succeeded" else None

    result: dict[str, Any] = wait_until(done, timeout_s=RUN_TIMEOUT_S, interval_s=0.5, message=f"{url} to finish")
    return result


def _register_and_sync(client: httpx.Client, admin: dict[str, str], key: str, **raw: Any) -> dict[str, Any]:
    r = client.post("/api/v1/sync/tables/register", json={"schema_name": "e2e", **raw}, headers=admin)
    assert r.status_code == 201, r.text
    assert r.json()["table"] == key
    assert r.json()["asset_key"] == key.split(".")
    job = client.post("/api/v1/sync/start", json={"schema_name": "e2e", "table_name": raw["table_name"]},
                      headers=admin)
    assert job.status_code == 202, job.text
    return _poll(client, f"/api/v1/sync/jobs/{job.json()['job_id']}", admin)


def _query(client: httpx.Client, headers: dict[str, str], sql: str) -> list[list[Any]]:
    r = client.post("/api/v1/queries/execute", json={"query": sql}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["rows"]  # type: ignore[no-any-return]


def test_quoted_names_and_hostile_columns_end_to_end(names_platform: Platform) -> None:
    admin = names_platform.admin_headers()
    with names_platform.apis["a"].client() as a:
        bad = a.post("/api/v1/sync/tables/register", json={"schema_name": "e2e", "table_name": "Order Lines"},
                     headers=admin)
        assert "double quotes" in assert_error(bad, 400)["message"], "an unquoted name with a space is not a name"
        assert_error(a.post("/api/v1/sync/tables/register", json={"schema_name": "e2e", "table_name": "T2_RID\n"},
                            headers=admin), 400)
        _register_and_sync(a, admin, LINES, table_name='"Order Lines"', strategy="incremental",
                           incremental_key='"Updated At"', primary_key=['"Line Id"'])
        _register_and_sync(a, admin, LOWER, table_name='"lower_t"')
        _register_and_sync(a, admin, RID, table_name="T2_RID", strategy="incremental", incremental_key="UPDATED_AT",
                           primary_key=["ID"])
        manifest = read_current(names_platform.settings.served_path, RID)
        assert manifest is not None
        assert (manifest.extra["source_rows"], manifest.extra["duplicates_removed"], manifest.row_count) == (5, 1, 4)

        swarm = create_swarm(a, admin, ['demo.e2e."Order Lines"', 'demo.e2e."lower_t"', "demo.e2e.t2_rid"])
        agent = bearer(mint_token(a, admin, "agent", swarm["id"])["token"])
        listed = {t["key"]: t for t in a.get("/api/v1/data/tables", headers=agent).json()["tables"]}
        assert {k: t["table"] for k, t in listed.items()} == {
            LINES: 'demo.e2e."Order Lines"', LOWER: 'demo.e2e."lower_t"', RID: "demo.e2e.t2_rid"}
        assert [c["name"] for c in listed[LINES]["columns"]] == ["Line Id", "select", "group", "Order", "MixedCase",
                                                                 "Updated At"]

        assert _query(a, agent, 'SELECT count(*), sum("select"), min("group"), max("Order") FROM "Order Lines"') == \
            [[12, 12, "g0", 7]]
        assert _query(a, agent, 'SELECT count(*) FROM demo.e2e."lower_t"') == [[3]]
        assert _query(a, agent, "SELECT ID, ROWID, V FROM t2_rid ORDER BY ID") == \
            [[1, 9, "new"], [2, 9, "b"], [3, 9, "c"], [4, 9, "d"]]
        assert_error(a.post("/api/v1/queries/execute", json={"query": "SELECT * FROM lower_t"}, headers=agent), 400,
                     rule="table_not_granted")

        path = urllib.parse.quote('demo.e2e."Order Lines"', safe="")
        sample = a.get(f"/api/v1/data/tables/{path}/sample", params={"method": "random", "size": 5, "seed": 1},
                       headers=agent)
        assert sample.status_code == 200, sample.text
        profile = a.get(f"/api/v1/data/tables/{path}/profile", headers=agent)
        assert profile.status_code == 200, profile.text
        assert {c["name"] for c in profile.json()["columns"]} >= {"select", "group", "Line Id"}
        rid_sample = a.get("/api/v1/data/tables/t2_rid/sample", params={"method": "random", "size": 10, "seed": 3},
                           headers=agent)
        assert rid_sample.status_code == 200, rid_sample.text
        assert len(rid_sample.json()["rows"]) == 4, "a ROWID column never stands in for the row id"


def test_parquet_and_live_tables_end_to_end(names_platform: Platform) -> None:
    """Registered through the API beside the Snowflake tables (this module's platform, no extra start):
    a folder of Parquet files under the data home's ``sources`` folder becomes an asset, syncs
    through a Dagster run and is queried like any copy; a live Snowflake table gets no asset, and
    its queries, samples and profiles run in Snowflake with live provenance."""
    import duckdb

    folder = names_platform.settings.home_path / "sources" / "clicks"
    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    for part, lo in (("a", 0), ("b", 60)):
        con.execute(f"COPY (SELECT i AS ID, 'u' || (i % 7) AS USER_NAME, TIMESTAMP '2025-01-01' + to_minutes(i) AS AT "
                    f"FROM range({lo}, {lo + 60}) t(i)) TO '{folder / part}.parquet' (FORMAT parquet)")
    con.close()
    with names_platform.source() as cur:
        cur.execute("CREATE OR REPLACE TABLE DEMO.E2E.LIVE_EVENTS (ID NUMBER(10,0), KIND VARCHAR)")
        cur.execute("INSERT INTO DEMO.E2E.LIVE_EVENTS SELECT seq4(), 'k' || (seq4() % 3) FROM TABLE(GENERATOR(ROWCOUNT => 30))")
    admin = names_platform.admin_headers()
    with names_platform.apis["a"].client() as a:
        outside = a.post("/api/v1/sync/tables/register", headers=admin, json={
            "schema_name": "files", "table_name": "etc", "source": {"kind": "parquet", "path": "/etc"}})
        assert_error(outside, 400, rule="invalid_registration")
        r = a.post("/api/v1/sync/tables/register", headers=admin, json={
            "schema_name": "files", "table_name": "clicks", "primary_key": ["ID"],
            "source": {"kind": "parquet", "path": str(folder)}})
        assert r.status_code == 201, r.text
        assert r.json()["registration"]["source"]["kind"] == "parquet"
        job = a.post("/api/v1/sync/start", json={"schema_name": "files", "table_name": "clicks"}, headers=admin)
        assert job.status_code == 202, job.text
        _poll(a, f"/api/v1/sync/jobs/{job.json()['job_id']}", admin)

        live = a.post("/api/v1/sync/tables/register", headers=admin,
                      json={"schema_name": "e2e", "table_name": "LIVE_EVENTS", "live": True})
        assert live.status_code == 201, live.text
        assert live.json()["registration"]["live"] is True

        swarm = create_swarm(a, admin, ["demo.files.clicks", "demo.e2e.live_events", "demo.e2e.t2_rid"])
        agent = bearer(mint_token(a, admin, "agent", swarm["id"])["token"])
        listed = {t["key"]: t for t in a.get("/api/v1/data/tables", headers=agent).json()["tables"]}
        assert (listed["demo.files.clicks"]["source_kind"], listed["demo.files.clicks"]["row_count"]) == ("parquet", 120)
        assert (listed["demo.e2e.live_events"]["live"], listed["demo.e2e.live_events"]["row_count"]) == (True, 30)

        assert _query(a, agent, "SELECT count(*), count(DISTINCT USER_NAME), max(ID) FROM clicks") == [[120, 7, 119]]
        answer = a.post("/api/v1/queries/execute", headers=agent, json={
            "query": "SELECT kind, count(*) AS n FROM live_events GROUP BY kind ORDER BY kind"})
        assert answer.status_code == 200, answer.text
        assert [[k, int(n)] for k, n in answer.json()["rows"]] == [["k0", 10], ["k1", 10], ["k2", 10]]
        (read,) = answer.json()["tables"]
        assert (read["table"], read["version"]) == ("demo.e2e.live_events", "live")
        assert read["source_query_id"]
        assert '"swarm-snowflake-seconds";q=3600' in answer.headers["ratelimit-policy"]
        sampled = a.get("/api/v1/data/tables/live_events/sample", headers=agent,
                        params={"method": "stratified", "by": "kind", "size": 2, "seed": 1})
        assert sampled.status_code == 200, sampled.text
        assert (sampled.json()["served_version"], sampled.json()["row_count"]) == ("live", 6)
        profile = a.get("/api/v1/data/tables/live_events/profile", headers=agent)
        assert profile.status_code == 200, profile.text
        assert (profile.json()["served_version"], profile.json()["row_count"]) == ("live", 30)
        kind = next(c for c in profile.json()["columns"] if c["name"] == "KIND")
        assert (kind["null_count"], kind["min"], kind["max"]) == (0, "k0", "k2")
        pushed = a.post("/api/v1/queries/execute", headers=agent,
                        json={"query": "SELECT count(*) FROM t2_rid", "engine": "snowflake"})
        assert pushed.status_code == 200, pushed.text
        assert int(pushed.json()["rows"][0][0]) == 5  # the source's rows, not the deduplicated copy's 4
        assert_error(a.post("/api/v1/queries/execute", headers=agent,
                            json={"query": "SELECT count(*) FROM clicks", "engine": "snowflake"}),
                     400, rule="engine_not_available")
