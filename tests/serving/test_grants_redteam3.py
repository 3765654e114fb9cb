"""Third red-team pass over grants and isolation: what one agent can learn past its grants, or
take from the others, through paths the earlier passes did not walk. Each test names the
request that got through before its fix and asserts the exact refusal or answer now."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from litestar.testing import TestClient

from serving.app import create_app
from serving.queries.services import get_engine
from serving.sync import store
from shared import served
from shared.control.db import migrate, session_scope
from shared.control.models import RegisteredTableRow
from shared.settings import Settings
from tests.conftest import publish_table
from tests.serving import sync_support
from tests.serving.dagster_fake import FakeDagster
from tests.serving.helpers import admin_token, assert_error, bearer, create_swarm, mint_token
from tests.serving.sync_support import ITEMS, register_body

sync_source = sync_support.sync_source
fake_dagster = sync_support.fake_dagster

ORDERS, CUSTOMERS = "demo.public.orders", "demo.public.customers"
QUOTA = 256 * 1024
# A Parquet result of one repeated value compresses to almost nothing; the same rows as JSON or CSV do not.
COMPRESSIBLE = "SELECT repeat('z', 200) AS v FROM range(20000)"

Headers = dict[str, str]


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    artifacts = dataclasses.replace(settings.artifacts, swarm_storage_max_bytes=QUOTA)
    return dataclasses.replace(settings, artifacts=artifacts)


@pytest.fixture
def world(client: Any, api_settings: Settings, admin_headers: Headers, make_swarm: Any) -> dict[str, Any]:
    publish_table(api_settings.served_path, ORDERS, "SELECT range AS id, range % 7 AS k FROM range(1000)")
    publish_table(api_settings.served_path, CUSTOMERS, "SELECT range AS id, 'c' || range AS name FROM range(50)")
    x, y = make_swarm([ORDERS, CUSTOMERS])["id"], make_swarm([ORDERS])["id"]
    return {"x": bearer(mint_token(client, admin_headers, "agent", x)["token"]),
            "narrow": bearer(mint_token(client, admin_headers, "agent", x, allowed_tables=[ORDERS])["token"]),
            "y": bearer(mint_token(client, admin_headers, "agent", y)["token"]), "admin": admin_headers}


def _saved(client: Any, headers: Headers, sql: str, tag: str) -> str:
    """An artifact saved from a query's result, shared with the swarm."""
    r = client.post("/api/v1/queries/execute", headers=headers, json={"query": sql, "output_format": "csv"})
    assert r.status_code == 200, r.text
    r = client.post(f"/api/v1/queries/jobs/{r.json()['job_id']}/artifact", headers=headers,
                    json={"format": "csv", "visibility": "swarm", "tags": [tag]})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def _stored(api_settings: Settings) -> int:
    return sum(f.stat().st_size for f in api_settings.results_path.iterdir() if f.is_file())


# -- storage: every file kept for a swarm counts against its quota -----------------------------------

def test_a_result_converted_to_another_format_counts_against_the_swarms_quota(
        client: Any, world: dict[str, Any], api_settings: Settings) -> None:
    """Was: ``GET /queries/jobs/{id}/result?format=json`` wrote the conversion beside the result,
    uncounted: a Parquet result of a few kilobytes (counted as such) became a JSON file of
    megabytes (up to ``QUERY_MAX_RESULT_BYTES`` each, per format, per result), so one swarm filled
    the disk every swarm's results, uploads and syncs share, far past its storage quota."""
    x = world["x"]
    r = client.post("/api/v1/queries/execute", headers=x, json={"query": COMPRESSIBLE, "output_format": "parquet"})
    assert r.status_code == 200, r.text
    job = r.json()["job_id"]
    counted = client.get(f"/api/v1/queries/jobs/{job}", headers=x).json()["bytes"]
    assert counted < QUOTA // 8
    assert_error(client.get(f"/api/v1/queries/jobs/{job}/result?format=json", headers=x), 413, rule="storage_quota")
    assert _stored(api_settings) < QUOTA  # nothing past the quota was left on disk
    # A conversion that fits is kept and counted: the next one finds the room taken.
    small = client.post("/api/v1/queries/execute", headers=x,
                        json={"query": "SELECT repeat('z', 200) AS v FROM range(400)", "output_format": "parquet"})
    sjob = small.json()["job_id"]
    as_csv = client.get(f"/api/v1/queries/jobs/{sjob}/result?format=csv", headers=x)
    assert as_csv.status_code == 200, as_csv.text
    assert len(as_csv.content) > 400 * 200
    again = client.get(f"/api/v1/queries/jobs/{sjob}/result?format=csv", headers=x)
    assert again.content == as_csv.content  # written once, read again
    results = counted + client.get(f"/api/v1/queries/jobs/{sjob}", headers=x).json()["bytes"]
    fits_beside_the_results_alone = QUOTA - results - 1024
    r = client.post("/api/v1/artifacts", headers=x,
                    files={"file": ("f.bin", b"z" * fits_beside_the_results_alone, "application/octet-stream")})
    assert_error(r, 413, rule="storage_quota")  # the kept conversion holds room in the quota
    # The other swarm is untouched; the admin is never limited.
    other = client.post("/api/v1/queries/execute", headers=world["y"],
                        json={"query": "SELECT repeat('z', 200) AS v FROM range(400)", "output_format": "csv"})
    assert other.status_code == 200, other.text
    assert client.get(f"/api/v1/queries/jobs/{job}/result?format=json", headers=world["admin"]).status_code == 200


# -- artifacts: a listing says nothing of the artifacts it leaves out ----------------------------------

def test_a_listing_reveals_no_artifact_the_caller_may_not_read(client: Any, world: dict[str, Any]) -> None:
    """Was: ``GET /artifacts?tag=…&limit=1`` paged over the swarm's artifacts before leaving out
    those made from tables the caller may not read, so ``next_offset`` said that more matched:
    a token limited to other tables learned how many artifacts of a tag, content type, owner
    or creation time its swarm-mates had made from a table it may not read (by stepping
    ``offset``), and ``limit``-sized pages came back short or empty with a next page."""
    x, narrow = world["x"], world["narrow"]
    hidden = [_saved(client, x, "SELECT id, name FROM customers", "study") for _ in range(3)]
    shown = _saved(client, x, "SELECT id FROM orders LIMIT 5", "study")
    for offset in range(4):
        page = client.get("/api/v1/artifacts", headers=narrow, params={"tag": "study", "limit": 1, "offset": offset})
        assert page.status_code == 200, page.text
        body = page.json()
        assert body["next_offset"] is None or [i["id"] for i in body["items"]] == [shown], (offset, body)
    first = client.get("/api/v1/artifacts", headers=narrow, params={"tag": "study", "limit": 1}).json()
    assert [i["id"] for i in first["items"]] == [shown]
    assert first["next_offset"] is None  # only hidden artifacts come after it
    newest_first = [i["id"] for i in client.get("/api/v1/artifacts", headers=x, params={"tag": "study"}).json()["items"]]
    assert newest_first == [shown, *reversed(hidden)]
    # Pages of the caller's own view: each full, the next one where the last stopped.
    seen, offset = [], 0
    while True:
        body = client.get("/api/v1/artifacts", headers=x, params={"tag": "study", "limit": 3, "offset": offset}).json()
        assert len(body["items"]) == 3 or body["next_offset"] is None
        seen += [i["id"] for i in body["items"]]
        if body["next_offset"] is None:
            break
        offset = body["next_offset"]
    assert seen == newest_first
    # Hidden artifacts between readable ones: every offset answers as if they did not exist.
    between = _saved(client, x, "SELECT id FROM orders LIMIT 3", "study")
    hidden.append(_saved(client, x, "SELECT id, name FROM customers", "study"))
    newest = _saved(client, x, "SELECT id FROM orders LIMIT 2", "study")
    pages = [client.get("/api/v1/artifacts", headers=narrow, params={"tag": "study", "limit": 1, "offset": o}).json()
             for o in range(5)]
    assert [([i["id"] for i in p["items"]], p["next_offset"]) for p in pages] == [
        ([newest], 1), ([between], 2), ([shown], None), ([], None), ([], None)]


# -- shared instances: a read of an older version on purpose retires nobody else's -------------------

def test_a_pinned_older_version_does_not_retire_other_swarms_instances(
        client: Any, world: dict[str, Any], api_settings: Settings, services: Any) -> None:
    """Was: building the instance for an ``at_versions`` pin to the previous version retired every
    cached instance holding any other version of the table, the current one of every swarm
    included (as if the pinned version had superseded it): one agent alternating a pinned and a
    current query made every agent's next query rebuild its DuckDB instance, and a query that
    wanted a progress cursor found none on the rebuilt one either."""
    x, y = world["x"], world["y"]
    old = client.post("/api/v1/queries/execute", headers=y, json={"query": "SELECT count(*) FROM orders"}).json()
    old_version = old["tables"][0]["version"]
    publish_table(api_settings.served_path, ORDERS, "SELECT range AS id, range % 7 AS k FROM range(2000)")
    instances = get_engine(services).instances

    def count_x() -> int:
        r = client.post("/api/v1/queries/execute", headers=x, json={"query": "SELECT count(*) FROM orders"})
        assert r.status_code == 200, r.text
        return int(r.json()["rows"][0][0])

    assert count_x() == 2000
    built = instances.stats()["built"]
    for _ in range(3):
        pinned = client.post("/api/v1/queries/execute", headers=y, json={
            "query": "SELECT count(*) FROM orders", "at_versions": {ORDERS: old_version}})
        assert pinned.status_code == 200, pinned.text
        assert pinned.json()["rows"] == [[1000]]
        assert count_x() == 2000
    assert instances.stats()["built"] == built + 1  # the pinned one, once; x's current instance kept


# -- table metadata names no column the caller's policy excludes ---------------------------------------

EVENTS = "demo.public.events"


def test_table_metadata_names_no_excluded_column(client: Any, world: dict[str, Any], api_settings: Settings,
                                                 make_swarm: Any, agent_headers: Any) -> None:
    """Was: with the partition and cursor column excluded by the grant's policy, the catalog's
    ``partitioning`` said ``daily on HIDDEN_TS`` and ``sample?method=recent`` answered 400
    ``unknown columns: HIDDEN_TS``: the name of a column the catalog leaves out, on every read
    (the MCP ``describe_table`` tool and ``table://`` resource show the same entry)."""
    publish_table(api_settings.served_path, EVENTS,
                  "SELECT range AS id, TIMESTAMP '2026-01-01' + INTERVAL (range) HOUR AS hidden_ts, "
                  "range % 3 AS v FROM range(100)")
    with session_scope(api_settings.control_url) as s:
        s.add(RegisteredTableRow(key=EVENTS, database="DEMO", schema_name="PUBLIC", table_name="EVENTS",
                                 strategy="incremental", partition_kind="daily", partition_column="HIDDEN_TS",
                                 partition_start="2026-01-01", cursor_column="HIDDEN_TS"))
    swarm = make_swarm([EVENTS])["id"]
    r = client.put(f"/api/v1/admin/swarms/{swarm}/policies/{EVENTS}", headers=world["admin"],
                   json={"exclude": ["hidden_ts"]})
    assert r.status_code == 200, r.text
    agent = agent_headers(swarm)
    entry = client.get(f"/api/v1/data/tables/{EVENTS}", headers=agent)
    assert entry.status_code == 200, entry.text
    assert [c["name"] for c in entry.json()["columns"]] == ["id", "v"]
    assert entry.json()["partitioning"] == "daily"
    listed = client.get("/api/v1/data/tables", headers=agent)
    recent = client.get(f"/api/v1/data/tables/{EVENTS}/sample", headers=agent, params={"method": "recent"})
    assert_error(recent, 400, rule="no_recency_column")
    for r in (entry, listed, recent):
        assert "hidden_ts" not in r.text.lower(), r.text
    by_v = client.get(f"/api/v1/data/tables/{EVENTS}/sample", headers=agent,
                      params={"method": "recent", "by": "v", "size": 2})
    assert by_v.status_code == 200, by_v.text
    # Where the column is visible, both name it as before.
    plain = agent_headers(make_swarm([EVENTS])["id"])
    assert client.get(f"/api/v1/data/tables/{EVENTS}", headers=plain).json()["partitioning"] == "daily on HIDDEN_TS"
    ok = client.get(f"/api/v1/data/tables/{EVENTS}/sample", headers=plain, params={"method": "recent", "size": 1})
    assert ok.status_code == 200, ok.text
    assert ok.json()["rows"][0][1].startswith("2026-01-05T03")



# -- a sync's error text reaches no caller under a policy, by any path -------------------------------

CANARY_ERROR = "Conversion Error: Could not convert string 'SECRETCANARY-7' to INT32"


def test_a_failed_refresh_behind_min_freshness_does_not_quote_the_sync_error(
        api_settings: Settings, fake_dagster: FakeDagster) -> None:
    """Was: a query with ``min_freshness`` whose refresh failed answered 503 ``refresh_failed``
    with the run's error message as Dagster wrote it, to a caller under a policy too: the
    text polling the refresh job (``errors``) and the catalog (``failing`` reason) already
    withheld from it, since it may quote a value read from a hidden column or row."""
    app = create_app(api_settings)
    app.state.services.parts["dagster"] = fake_dagster.client(api_settings.dagster)
    app.state.services.parts["load_check"] = sync_support.in_process_load_check
    with TestClient(app) as client:
        admin = bearer(admin_token(client))
        r = client.post("/api/v1/sync/tables/register", json=register_body(freshness="1h"), headers=admin)
        assert r.status_code == 201, r.text
        publish_table(api_settings.served_path, ITEMS, "SELECT 1 AS id, 'n' AS name")
        swarm = create_swarm(client, admin, [ITEMS])["id"]
        r = client.put(f"/api/v1/admin/swarms/{swarm}/policies/{ITEMS}", headers=admin, json={"exclude": ["name"]})
        assert r.status_code == 200, r.text
        agent = bearer(mint_token(client, admin, "agent", swarm)["token"])
        time.sleep(1.2)  # older than min_freshness=1
        fake_dagster.fail_runs_with = CANARY_ERROR
        body = {"query": "SELECT count(*) FROM items", "min_freshness": 1, "wait_s": 5}
        failed = assert_error(client.post("/api/v1/queries/execute", headers=agent, json=body), 503,
                              rule="refresh_failed")
        assert "SECRETCANARY" not in failed["message"], failed
        assert "(its error message is shown to admins)" in failed["message"]
        job = failed["details"]["job_id"]
        polled = client.get(f"/api/v1/data/tables/{ITEMS}/refresh/{job}", headers=agent).json()
        assert polled["errors"] == ["the sync failed (its error message is shown to admins)"]
        admin_sees = assert_error(client.post("/api/v1/queries/execute", headers=admin, json=body), 503,
                                  rule="refresh_failed")
        assert "SECRETCANARY-7" in admin_sees["message"]


# -- a refresh's answer carries no table-wide figure in its text either ------------------------------

VISITS = "demo.synctest.visits_rt3"


def test_a_refresh_note_does_not_spell_the_figures_a_policy_hides(api_settings: Settings, sync_source: str) -> None:
    """Was: ``POST /data/tables/{t}/refresh`` hid ``newer_rows`` (and the watermarks) from a caller
    under a row filter, since they count rows the filter removes, but its ``note`` spelled the
    same count: ``1 source row(s) are newer than the served watermark …``."""
    source = f"DEMO.{sync_support.SCHEMA}.VISITS_RT3"
    sync_support.source_sql(api_settings,
                            f"CREATE OR REPLACE TABLE {source} (ID NUMBER(10,0), DAY DATE, UPDATED_AT TIMESTAMP_NTZ)",
                            f"INSERT INTO {source} VALUES (1, '2025-01-01', '2025-01-01 12:00:00'), "
                            "(6, '2025-01-11', '2025-02-01 00:00:00')")  # the second lies in no listed partition yet
    migrate(api_settings.control_url)
    dagster = FakeDagster(api_settings.control_url, partition_keys={"demo/synctest/visits_rt3": sync_support.DAYS})
    app = create_app(api_settings)
    app.state.services.parts["dagster"] = dagster.client(api_settings.dagster)
    app.state.services.parts["load_check"] = sync_support.in_process_load_check
    with TestClient(app) as client:
        admin = bearer(admin_token(client))
        body = register_body("visits_rt3", strategy="incremental", incremental_key="updated_at", primary_key=["id"],
                             freshness="1h", partitioning={"kind": "daily", "column": "day", "start": "2025-01-01"})
        r = client.post("/api/v1/sync/tables/register", json=body, headers=admin)
        assert r.status_code == 201, r.text
        with served.write_version(api_settings.served_path, VISITS, copy_previous=False) as pending:
            pending.con.execute("CREATE TABLE data AS SELECT 1 AS ID")
            served.publish(api_settings.served_path, pending, strategy="incremental", row_count=1,
                           columns=[served.Column("ID", "INTEGER")], partitions={k: {"rows": 1} for k in sync_support.DAYS[:7]},
                           watermark="2025-01-07T12:00:00", extra={"watermark_type": "TIMESTAMP"})
        filtered, plain = create_swarm(client, admin, [VISITS])["id"], create_swarm(client, admin, [VISITS])["id"]
        r = client.put(f"/api/v1/admin/swarms/{filtered}/policies/{VISITS}", headers=admin, json={"row_filter": "ID < 0"})
        assert r.status_code == 200, r.text
        refresh = f"/api/v1/data/tables/{VISITS}/refresh"
        hidden = client.post(refresh, headers=bearer(mint_token(client, admin, "agent", filtered)["token"]))
        assert hidden.status_code == 200, hidden.text
        seen = hidden.json()
        assert seen["outcome"] == "already_fresh"
        assert (seen["newer_rows"], seen["served_watermark"], seen["source_watermark"]) == (None, None, None)
        assert seen["note"] == ("source rows newer than the served watermark lie in no partition that can be "
                                "materialized yet (such as the current, incomplete window); they are served when "
                                "their window completes")
        shown = client.post(refresh, headers=bearer(mint_token(client, admin, "agent", plain)["token"])).json()
        assert shown["newer_rows"] == 1
        assert shown["note"].startswith("1 source row(s) are newer than the served watermark")


# -- job ids: another table's refresh job answers as an unknown id ------------------------------------

def test_another_tables_refresh_job_answers_as_an_unknown_job(client: Any, world: dict[str, Any],
                                                              api_settings: Settings) -> None:
    """Was: polling a refresh job of a table the caller may not read, under the path of a table it
    may, answered ``no refresh job … for table …`` while an unknown id answered ``no sync job …``
    (no rule): the difference told that the id was a real job of some other table."""
    publish_table(api_settings.served_path, "demo.public.hidden", "SELECT 1 AS id")
    job = store.create(api_settings.control_url, table_key="demo.public.hidden", kind="run", partitions=[],
                       requested_by="someone", reason="refresh", status="queued")
    answers = [client.get(f"/api/v1/data/tables/orders/refresh/{job_id}", headers=world["y"])
               for job_id in (job.id, "sync_" + "0" * len(job.id[5:]))]
    bodies = [assert_error(r, 404, "not_found", "job_not_found") for r in answers]
    assert bodies[0]["message"].replace(job.id, "ID") == bodies[1]["message"].replace("sync_" + "0" * len(job.id[5:]), "ID")



# -- an artifact records the rules its read was under, not those of its saving ----------------------

NOTES = "demo.public.notes"


def test_a_result_read_before_a_policy_is_not_shared_past_it_as_an_artifact(
        client: Any, world: dict[str, Any], api_settings: Settings, agent_headers: Any) -> None:
    """Was: saving a query result as an artifact recorded the rules the saving token was under
    *when it saved*. A result read before the swarm's policy excluded a column, saved after,
    was recorded as made under that policy: every swarm-mate under it downloaded the column
    it excludes (the result itself is private to its token; the artifact is shared)."""
    x, admin = world["x"], world["admin"]
    publish_table(api_settings.served_path, NOTES, "SELECT range AS id, 'NOTECANARY-' || range AS body FROM range(5)")
    swarm = client.get("/api/v1/auth/whoami", headers=x).json()["swarm_id"]
    r = client.patch(f"/api/v1/admin/swarms/{swarm}", headers=admin, json={"grants": [ORDERS, CUSTOMERS, NOTES]})
    assert r.status_code == 200, r.text
    mate = agent_headers(swarm)
    before = client.post("/api/v1/queries/execute", headers=x,
                         json={"query": "SELECT id, body FROM notes", "output_format": "csv"})
    assert before.status_code == 200, before.text
    r = client.put(f"/api/v1/admin/swarms/{swarm}/policies/{NOTES}", headers=admin, json={"exclude": ["body"]})
    assert r.status_code == 200, r.text
    art = client.post(f"/api/v1/queries/jobs/{before.json()['job_id']}/artifact", headers=x,
                      json={"format": "csv", "visibility": "swarm"})
    assert art.status_code == 201, art.text
    for who in (mate, x):
        assert_error(client.get(f"/api/v1/artifacts/{art.json()['id']}/content", headers=who), 403,
                     rule="table_not_granted")
        listed = client.get("/api/v1/artifacts", headers=who).json()["items"]
        assert art.json()["id"] not in [a["id"] for a in listed]
    # A result read under the policy is shared as before.
    after = client.post("/api/v1/queries/execute", headers=x, json={"query": "SELECT * FROM notes", "output_format": "csv"})
    art = client.post(f"/api/v1/queries/jobs/{after.json()['job_id']}/artifact", headers=x,
                      json={"format": "csv", "visibility": "swarm"})
    assert art.status_code == 201, art.text
    content = client.get(f"/api/v1/artifacts/{art.json()['id']}/content", headers=mate)
    assert content.status_code == 200, content.text
    assert "NOTECANARY" not in content.text
    assert content.text.splitlines()[0] == '"id"'
