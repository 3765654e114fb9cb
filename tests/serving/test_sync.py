"""Admin sync endpoints against a fake Dagster GraphQL server (the real client code runs).

The same features are exercised against a real Dagster webserver and daemon in
``tests/e2e/test_replicas.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from shared import status as table_status
from shared.settings import Settings
from tests.conftest import publish_table
from tests.serving import sync_support
from tests.serving.dagster_fake import FakeDagster
from tests.serving.helpers import assert_error
from tests.serving.sync_support import DAYS, EVENTS_BODY, ITEMS, SCHEMA, register_body

sync_source = sync_support.sync_source
fake_dagster = sync_support.fake_dagster
app = sync_support.app

Client = TestClient[Litestar]


def _register(client: Client, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    r = client.post("/api/v1/sync/tables/register", json=body, headers=headers)
    assert r.status_code in (200, 201), r.text
    result: dict[str, Any] = r.json()
    return result


def test_browse_source_lists_tables_with_counts(client: Client, admin_headers: dict[str, str]) -> None:
    r = client.get("/api/v1/sync/snowflake/tables", params={"schema_name": SCHEMA.lower()}, headers=admin_headers)
    assert r.status_code == 200, r.text
    tables = {t["table_name"]: t for t in r.json()["tables"]}
    assert {"ITEMS", "EVENTS"} <= set(tables)
    assert tables["ITEMS"]["row_count"] == 2
    assert {"bytes", "last_altered", "schema_name", "database"} <= set(tables["ITEMS"])


def test_register_validates_stores_and_reloads(client: Client, admin_headers: dict[str, str],
                                               fake_dagster: FakeDagster) -> None:
    body = _register(client, admin_headers, register_body(strategy="FULL", freshness="1h", schedule="0 * * * *"))
    assert body["created"] is True
    assert body["table"] == ITEMS
    assert body["asset_key"] == ["demo", "synctest", "items"]
    assert ("demo", "synctest", "items") in fake_dagster.assets
    assert fake_dagster.calls[-2:] == ["Reload", "Asset"]  # reloaded, then checked the asset exists
    assert body["registration"]["strategy"] == "full"
    assert body["registration"]["freshness_target_s"] == 3600

    again = client.post("/api/v1/sync/tables/register", json=register_body(strategy="full"), headers=admin_headers)
    assert again.status_code == 200
    assert again.json()["created"] is False
    listed = client.get("/api/v1/sync/tables", headers=admin_headers).json()["tables"]
    assert [t["table"] for t in listed] == [ITEMS]
    row = listed[0]
    assert {"strategy", "partitioning", "schedule", "last_run", "served_version", "freshness"} <= set(row)
    assert row["freshness"]["status"] == "stale"
    assert row["freshness"]["reason"].startswith("never synced")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (register_body("nope"), "table_name"),
        (register_body(primary_key=["MISSING"]), "primary_key"),
        (register_body(strategy="sideways"), "strategy"),
        (register_body(schedule="every day"), "schedule"),
        (register_body("events", partitioning={"kind": "daily", "column": "kind", "start": "2025-01-01"}),
         "partitioning.column"),
    ],
)
def test_register_rejects_bad_input_naming_the_field(client: Client, admin_headers: dict[str, str],
                                                     fake_dagster: FakeDagster, body: dict[str, Any], field: str) -> None:
    error = assert_error(client.post("/api/v1/sync/tables/register", json=body, headers=admin_headers), 400,
                         rule="invalid_registration")
    assert error["details"]["field"] == field
    assert fake_dagster.assets == set()


def test_register_reverted_when_the_code_location_cannot_load_it(client: Client, admin_headers: dict[str, str],
                                                                 fake_dagster: FakeDagster) -> None:
    fake_dagster.reload_error = "KeyError: 'ITEMS'"
    error = assert_error(client.post("/api/v1/sync/tables/register", json=register_body(), headers=admin_headers),
                         422, rule="dagster_load_error")
    assert "KeyError" in error["message"]
    assert client.get("/api/v1/sync/tables", headers=admin_headers).json()["tables"] == []


def test_delete_soft_deletes_removes_served_data_and_reloads(client: Client, admin_headers: dict[str, str],
                                                            fake_dagster: FakeDagster, api_settings: Settings) -> None:
    _register(client, admin_headers, register_body())
    publish_table(api_settings.served_path, ITEMS, "SELECT 1 AS id")
    r = client.delete(f"/api/v1/sync/tables/{SCHEMA.lower()}/items", headers=admin_headers)
    assert r.status_code == 200, r.text
    assert ("demo", "synctest", "items") not in fake_dagster.assets
    assert not (api_settings.served_path / "demo" / "synctest" / "items" / "CURRENT").exists()
    assert client.get("/api/v1/sync/tables", headers=admin_headers).json()["tables"] == []
    assert_error(client.delete(f"/api/v1/sync/tables/{SCHEMA.lower()}/items", headers=admin_headers), 404)


def test_start_whole_table_launches_one_asset_with_selection(client: Client, admin_headers: dict[str, str],
                                                            fake_dagster: FakeDagster) -> None:
    _register(client, admin_headers, register_body())
    r = client.post("/api/v1/sync/start", json={"table_name": "ITEMS", "schema_name": "SyncTest", "strategy": "FULL"},
                    headers=admin_headers)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["kind"] == "run"
    assert body["status"] == "queued"
    assert body["job_id"].startswith("sync_")
    assert body["dagster_url"] == f"http://127.0.0.1:3000/dagster/runs/{next(iter(fake_dagster.runs))}"
    params = fake_dagster.launch_params[-1]
    assert params["selector"]["assetSelection"] == [{"path": ["demo", "synctest", "items"]}]
    assert params["selector"]["jobName"] == "__ASSET_JOB"
    assert "assetCheckSelection" not in params["selector"]  # the asset's checks run with it
    tags = {t["key"]: t["value"] for t in params["executionMetadata"]["tags"]}
    assert "dagster/partition" not in tags
    assert tags["agents_data/strategy"] == "full"
    assert tags["agents_data/job"] == body["job_id"]


def test_strategy_override_is_a_full_refresh_or_refused(client: Client, admin_headers: dict[str, str],
                                                       fake_dagster: FakeDagster) -> None:
    _register(client, admin_headers, register_body(strategy="Incremental", incremental_key="updated_at",
                                                   primary_key=["id"]))
    start = {"table_name": "items", "schema_name": SCHEMA}
    assert client.post("/api/v1/sync/start", json={**start, "strategy": "Full"}, headers=admin_headers).status_code == 202
    assert fake_dagster.launch_params[-1]["runConfigData"] == {
        "ops": {"demo__synctest__items": {"config": {"full_refresh": True}}}}
    assert client.post("/api/v1/sync/start", json={**start, "strategy": "INCREMENTAL"},
                       headers=admin_headers).status_code == 202
    assert fake_dagster.launch_params[-1]["runConfigData"] == {}
    error = assert_error(client.post("/api/v1/sync/start", json={**start, "strategy": "snapshot"},
                                     headers=admin_headers), 400, rule="invalid_strategy")
    assert "registered as incremental" in error["message"]


def test_start_partitions_run_backfill_and_validation(client: Client, admin_headers: dict[str, str],
                                                      fake_dagster: FakeDagster) -> None:
    _register(client, admin_headers, EVENTS_BODY)
    start = {"table_name": "events", "schema_name": SCHEMA}
    one = client.post("/api/v1/sync/start", json={**start, "partitions": [DAYS[1]]}, headers=admin_headers).json()
    assert one["kind"] == "run"
    tags = {t["key"]: t["value"] for t in fake_dagster.launch_params[-1]["executionMetadata"]["tags"]}
    assert tags["dagster/partition"] == DAYS[1]

    many = client.post("/api/v1/sync/start", json={**start, "partition_range": {"start": DAYS[2], "end": DAYS[4]}},
                       headers=admin_headers)
    assert many.status_code == 202, many.text
    assert many.json()["kind"] == "backfill"
    assert many.json()["partitions"] == DAYS[2:5]
    assert fake_dagster.launch_params[-1]["partitionNames"] == DAYS[2:5]
    assert "/runs/b/" in many.json()["dagster_url"]

    bad = assert_error(client.post("/api/v1/sync/start", json={**start, "partitions": ["2025/01/02"]},
                                   headers=admin_headers), 400, rule="invalid_partition")
    assert "YYYY-MM-DD" in bad["message"]
    assert_error(client.post("/api/v1/sync/start", json={**start, "partitions": ["2031-01-01"]},
                             headers=admin_headers), 400, rule="invalid_partition")
    assert_error(client.post("/api/v1/sync/start", json=start, headers=admin_headers), 400, rule="invalid_partition")
    assert_error(client.post("/api/v1/sync/start", json={**start, "partitions": [DAYS[0]],
                                                         "partition_range": {"start": DAYS[0], "end": DAYS[1]}},
                             headers=admin_headers), 400)
    assert_error(client.post("/api/v1/sync/start", json={**start, "partition_range": {"start": DAYS[4], "end": DAYS[2]}},
                             headers=admin_headers), 400)
    assert_error(client.post("/api/v1/sync/start", json={**start, "partitions": [DAYS[0]], "strategy": "bogus"},
                             headers=admin_headers), 400, rule="invalid_strategy")
    assert_error(client.post("/api/v1/sync/start", json={"table_name": "nope", "schema_name": SCHEMA},
                             headers=admin_headers), 404)


def test_job_status_success_failure_and_table_failing(client: Client, admin_headers: dict[str, str],
                                                     fake_dagster: FakeDagster, settings: Settings) -> None:
    _register(client, admin_headers, register_body())
    start = {"table_name": "items", "schema_name": SCHEMA}
    job = client.post("/api/v1/sync/start", json=start, headers=admin_headers).json()
    run_id = next(iter(fake_dagster.runs))
    fake_dagster.start(run_id)
    running = client.get(f"/api/v1/sync/jobs/{job['job_id']}", headers=admin_headers).json()
    assert running["status"] == "running"
    assert running["started_at"] is not None
    fake_dagster.finish(run_id, rows=2)
    done = client.get(f"/api/v1/sync/jobs/{job['job_id']}", headers=admin_headers).json()
    assert done["status"] == "succeeded"
    assert done["rows"] == 2
    assert done["finished_at"] is not None
    assert done["dagster_url"].endswith(run_id)
    assert client.get(f"/api/v1/sync/jobs/{run_id}", headers=admin_headers).json()["job_id"] == job["job_id"]

    job2 = client.post("/api/v1/sync/start", json=start, headers=admin_headers).json()
    run2 = next(r for r in fake_dagster.runs if r != run_id)
    fake_dagster.finish(run2, "FAILURE", error="SourceError: table DEMO.SYNCTEST.ITEMS does not exist")
    failed = client.get(f"/api/v1/sync/jobs/{job2['job_id']}", headers=admin_headers).json()
    assert failed["status"] == "failed"
    assert "does not exist" in failed["errors"][0]
    status = client.get(f"/api/v1/sync/status/{SCHEMA}/items", headers=admin_headers).json()
    assert status["freshness"]["status"] == "failing"
    assert "does not exist" in status["freshness"]["reason"]
    assert status["last_job"]["job_id"] == job2["job_id"]
    assert status["last_run"]["status"] == "failed"
    assert status["stats"] is None, "no housekeeping pass yet"
    catalog = client.get(f"/api/v1/data/tables/{ITEMS}", headers=admin_headers).json()  # what agents see
    assert catalog["freshness"]["status"] == "failing"
    assert catalog["freshness"]["last_run_status"] == "failed", "one vocabulary on every path"
    table_status.record_stats(settings.control_url, status["table"], {"run_p50_s": 3.0, "versions_on_disk": 1})
    shown = client.get(f"/api/v1/sync/status/{SCHEMA}/items", headers=admin_headers).json()["stats"]
    assert shown == {"run_p50_s": 3.0, "versions_on_disk": 1}, "housekeeping's figures reach the admin"
    assert "does not exist" in catalog["freshness"]["reason"]
    assert_error(client.get("/api/v1/sync/jobs/sync_nope", headers=admin_headers), 404)


def test_backfill_status_counts_partitions(client: Client, admin_headers: dict[str, str],
                                           fake_dagster: FakeDagster) -> None:
    _register(client, admin_headers, EVENTS_BODY)
    body = {"table_name": "events", "schema_name": SCHEMA, "partitions": DAYS[:3]}
    job = client.post("/api/v1/sync/start", json=body, headers=admin_headers).json()
    runs = {r.partition: r.run_id for r in fake_dagster.runs.values()}
    fake_dagster.finish(runs[DAYS[0]], rows=5)
    fake_dagster.finish(runs[DAYS[1]], "FAILURE", error="boom in partition")
    state = client.get(f"/api/v1/sync/jobs/{job['job_id']}", headers=admin_headers).json()
    assert state["status"] == "running"
    assert state["partitions"] == {"requested": DAYS[:3], "done": [DAYS[0]], "failed": [DAYS[1]], "pending": [DAYS[2]]}
    assert any("boom in partition" in e for e in state["errors"])
    fake_dagster.finish(runs[DAYS[2]], rows=7)
    final = client.get(f"/api/v1/sync/jobs/{job['job_id']}", headers=admin_headers).json()
    assert final["status"] == "failed"
    assert final["rows"] == 12


def test_a_backfill_is_finished_only_when_its_runs_have_ended(client: Client, admin_headers: dict[str, str],
                                                              fake_dagster: FakeDagster) -> None:
    """Dagster can close a backfill while one of its runs is still ending; the job stays running
    until that run ends, so its failed partitions and errors are read from the run's end."""
    _register(client, admin_headers, EVENTS_BODY)
    body = {"table_name": "events", "schema_name": SCHEMA, "partitions": DAYS[:2]}
    job = client.post("/api/v1/sync/start", json=body, headers=admin_headers).json()
    runs = {r.partition: r.run_id for r in fake_dagster.runs.values()}
    fake_dagster.finish(runs[DAYS[0]], rows=5)
    fake_dagster.start(runs[DAYS[1]])
    [backfill] = fake_dagster.backfills.values()
    backfill.status = "COMPLETED_FAILED"
    ending = client.get(f"/api/v1/sync/jobs/{job['job_id']}", headers=admin_headers).json()
    assert (ending["status"], ending["finished_at"]) == ("running", None)
    assert ending["partitions"]["pending"] == [DAYS[1]]
    fake_dagster.finish(runs[DAYS[1]], "FAILURE", error="duplicate key in the day")
    final = client.get(f"/api/v1/sync/jobs/{job['job_id']}", headers=admin_headers).json()
    assert final["status"] == "failed"
    assert final["finished_at"]
    assert final["partitions"] == {"requested": DAYS[:2], "done": [DAYS[0]], "failed": [DAYS[1]], "pending": []}
    assert any("duplicate key in the day" in e for e in final["errors"])


def test_a_failed_backfill_leaves_no_partition_pending(client: Client, admin_headers: dict[str, str],
                                                       fake_dagster: FakeDagster) -> None:
    """A backfill Dagster failed (its daemon gave up, or a run was canceled) has nothing left to do:
    every partition it did not materialize is reported failed, none pending."""
    _register(client, admin_headers, EVENTS_BODY)
    body = {"table_name": "events", "schema_name": SCHEMA, "partitions": DAYS[:3]}
    job = client.post("/api/v1/sync/start", json=body, headers=admin_headers).json()
    runs = {r.partition: r.run_id for r in fake_dagster.runs.values()}
    fake_dagster.finish(runs[DAYS[0]], rows=5)
    fake_dagster.finish(runs[DAYS[1]], "CANCELED")
    fake_dagster.finish(runs[DAYS[2]], "CANCELED")
    [backfill] = fake_dagster.backfills.values()
    backfill.status = "FAILED"
    final = client.get(f"/api/v1/sync/jobs/{job['job_id']}", headers=admin_headers).json()
    assert final["status"] == "failed"
    assert final["partitions"] == {"requested": DAYS[:3], "done": [DAYS[0]], "failed": DAYS[1:3], "pending": []}


def test_sync_endpoints_are_admin_only(client: Client, make_swarm: Callable[..., dict[str, Any]],
                                       agent_headers: Callable[..., dict[str, str]]) -> None:
    headers = agent_headers(make_swarm([ITEMS])["id"])
    for method, path in [("get", "/api/v1/sync/tables"), ("get", "/api/v1/sync/snowflake/tables"),
                         ("get", "/api/v1/sync/jobs/x"), ("get", f"/api/v1/sync/status/{SCHEMA}/items"),
                         ("delete", f"/api/v1/sync/tables/{SCHEMA}/items")]:
        assert_error(getattr(client, method)(path, headers=headers), 403, rule="requires_admin")
    assert_error(client.post("/api/v1/sync/start", json={"table_name": "items", "schema_name": SCHEMA},
                             headers=headers), 403)
    assert_error(client.post("/api/v1/sync/tables/register", json=register_body(), headers=headers), 403)
    assert_error(client.get("/api/v1/sync/tables"), 401)


def test_dagster_down_sync_503_reads_work_ready_reports(client: Client, admin_headers: dict[str, str],
                                                        fake_dagster: FakeDagster,
                                                        make_swarm: Callable[..., dict[str, Any]],
                                                        agent_headers: Callable[..., dict[str, str]]) -> None:
    _register(client, admin_headers, register_body())
    publish_table(client.app.state.services.settings.served_path, ITEMS, "SELECT 1 AS id")
    start = {"table_name": "items", "schema_name": SCHEMA}
    finished = client.post("/api/v1/sync/start", json=start, headers=admin_headers).json()
    fake_dagster.finish(list(fake_dagster.runs)[-1], rows=1)
    assert client.get(f"/api/v1/sync/jobs/{finished['job_id']}", headers=admin_headers).json()["status"] == "succeeded"
    active = client.post("/api/v1/sync/start", json=start, headers=admin_headers).json()
    fake_dagster.down = True
    for r in [
        client.post("/api/v1/sync/start", json={"table_name": "items", "schema_name": SCHEMA}, headers=admin_headers),
        client.post("/api/v1/sync/tables/register", json=register_body("events"), headers=admin_headers),
        client.delete(f"/api/v1/sync/tables/{SCHEMA}/items", headers=admin_headers),
    ]:
        error = assert_error(r, 503, rule="dagster_unavailable")
        assert "Dagster" in error["message"]
        assert r.headers["retry-after"] == "5"
    agent = agent_headers(make_swarm([ITEMS])["id"])
    assert_error(client.post("/api/v1/data/tables/demo.synctest.items/refresh", headers=agent), 503,
                 rule="dagster_unavailable")
    # a finished job is answered from the control database; an active one needs Dagster
    done = client.get(f"/api/v1/sync/jobs/{finished['job_id']}", headers=admin_headers)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "succeeded"
    assert done.json()["dagster_reachable"] is False
    assert_error(client.get(f"/api/v1/sync/jobs/{active['job_id']}", headers=admin_headers), 503,
                 rule="dagster_unavailable")
    # agents' reads keep working: the catalog and queries on served data
    assert client.get(f"/api/v1/data/tables/{ITEMS}", headers=agent).status_code == 200
    query = {"query": f"SELECT count(*) FROM {ITEMS}"}
    r = client.post("/api/v1/queries/execute", json=query, headers=agent)
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == [[1]]
    time.sleep(1.1)  # only a query asking for fresher data than served needs Dagster
    assert_error(client.post("/api/v1/queries/execute", json={**query, "min_freshness": 1, "wait_s": 1},
                             headers=agent), 503, rule="dagster_unavailable")
    assert client.get("/api/v1/sync/tables", headers=admin_headers).status_code == 200
    assert client.get(f"/api/v1/sync/status/{SCHEMA}/items", headers=admin_headers).status_code == 200
    assert client.get("/health").status_code == 200
    # /ready reports Dagster failing but stays 200 ("degraded"): this replica still serves reads
    ready = client.get("/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "degraded"
    checks = {c["name"]: c for c in ready.json()["checks"]}
    assert checks["dagster"]["ok"] is False
    assert checks["dagster"]["required"] is False
    assert checks["dagster"]["detail"] == "Dagster is unreachable (ConnectError)"
    assert "syncs" in checks["dagster"]["impact"]
    assert checks["control_db"]["ok"] is True
    assert checks["served_data"]["ok"] is True
    fake_dagster.down = False
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
