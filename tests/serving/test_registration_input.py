"""Registration and sync input through the HTTP API: documented ranges, source refusals, the load check,
and Dagster's messages without stack traces or server paths.

Against the real stand-in (fakesnow through the connector) and the fake Dagster GraphQL
server; the load check runs the code location's real builder (in-process here, as
``python -m orchestration.loadcheck`` in the API; ``test_load_check_runs_as_a_child_process``
runs the child itself). Every refused registration leaves nothing saved and no reload.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from serving.sync.core import run_load_check
from serving.sync.dagster import clean_message
from shared import registry
from shared.settings import Settings
from tests.serving import sync_support
from tests.serving.dagster_fake import FakeDagster
from tests.serving.helpers import assert_error
from tests.serving.sync_support import EVENTS_BODY, ITEMS, register_body

sync_source = sync_support.sync_source
fake_dagster = sync_support.fake_dagster
app = sync_support.app

Client = TestClient[Litestar]
REGISTER = "/api/v1/sync/tables/register"
TODAY = dt.datetime.now(dt.UTC).date()
TRACE = ("DagsterCodeLocationLoadError: Failure loading agents_data: KeyError: 'ITEMS'\n\nStack Trace:\n"
         '  File "/srv/app/.venv/lib/python3.11/site-packages/dagster/_core/workspace/context.py", line 640, in _load\n'
         "    location = self._create_location_from_origin(origin)\n"
         "working_directory=/srv/app/current\n")


def _events(**part: Any) -> dict[str, Any]:
    return register_body("events", partitioning={"kind": "daily", "column": "day", **part})


def _nothing_changed(client: Client, headers: dict[str, str], fake: FakeDagster, reloads_before: int) -> None:
    assert client.get("/api/v1/sync/tables", headers=headers).json()["tables"] == []
    assert fake.calls.count("Reload") == reloads_before
    assert fake.assets == set()


@pytest.mark.parametrize(("body", "field"), [
    (register_body(database="NOPE"), "database"),
    (register_body(database="DEMO\n"), "database"),
    (register_body(strategy="incremental", incremental_key="updated_at", primary_key=["id"],
                   lookback="99999999999999999999w"), "lookback"),
    (register_body(strategy="incremental", incremental_key="updated_at", primary_key=["id"],
                   lookback=1099511627776), "lookback"),
    (register_body(strategy="incremental", incremental_key="updated_at", primary_key=["id"], lookback="367d"), "lookback"),
    (register_body(strategy="incremental", incremental_key="updated_at", primary_key=["id"], lookback=-1), "lookback"),
    (register_body(strategy="incremental", incremental_key="updated_at", primary_key=["id"],
                   lookback="9" * 5000), "lookback"),
    (register_body(freshness=59), "freshness"),
    (register_body(freshness="367d"), "freshness"),
    (register_body(freshness="99999999999999999999999999w"), "freshness"),
    (_events(start="1899-12-31"), "partitioning.start"),
    (_events(start=(TODAY + dt.timedelta(days=400)).isoformat()), "partitioning.start"),
    (_events(start="2999-01-01"), "partitioning.start"),
    (_events(start="2025-02-30"), "partitioning.start"),
    (_events(start="0001-01-01"), "partitioning.start"),
    (register_body("events", partitioning={"kind": "hourly", "column": "day", "start": "2000-01-01"}),
     "partitioning.start"),
    (register_body("events", partitioning={"kind": "static", "column": "kind", "values": ["a", "x\ty"]}),
     "partitioning.values"),
    (register_body("events", partitioning={"kind": "static", "column": "kind",
                                           "values": [str(i) for i in range(1001)]}), "partitioning.values"),
    (register_body("events", partitioning={"kind": "static", "column": "kind", "values": ["v" * 201]}),
     "partitioning.values"),
    (register_body(schedule="0 0 31 2 *"), "schedule"),
    (register_body(primary_key=["id"] * 65), "primary_key"),
    (register_body(description="d" * 10_001), "description"),
])
def test_out_of_range_registrations_are_400_naming_the_field(client: Client, admin_headers: dict[str, str],
                                                             fake_dagster: FakeDagster, body: dict[str, Any],
                                                             field: str) -> None:
    reloads = fake_dagster.calls.count("Reload")
    error = assert_error(client.post(REGISTER, json=body, headers=admin_headers), 400, rule="invalid_registration")
    assert error["details"]["field"] == field, error
    _nothing_changed(client, admin_headers, fake_dagster, reloads)


@pytest.mark.parametrize("body", [
    register_body(strategy="incremental", incremental_key="updated_at", primary_key=["id"], lookback="366d"),
    register_body(strategy="incremental", incremental_key="updated_at", primary_key=["id"], lookback=0),
    register_body(freshness=60),
    register_body(freshness="366d"),
    _events(start="1900-01-01"),
    _events(start=(TODAY + dt.timedelta(days=366)).isoformat()),
    register_body("events", partitioning={"kind": "hourly", "column": "day",
                                          "start": (TODAY - dt.timedelta(days=365 * 5)).isoformat()}),
    register_body(schedule="0 0 29 2 *"),  # fires every four years
])
def test_the_edges_of_each_range_are_accepted(client: Client, admin_headers: dict[str, str], body: dict[str, Any]) -> None:
    r = client.post(REGISTER, json=body, headers=admin_headers)
    assert r.status_code == 201, r.text


def test_a_registration_that_would_not_load_is_400_with_the_cause_and_nothing_is_disturbed(
        client: Client, admin_headers: dict[str, str], fake_dagster: FakeDagster) -> None:
    # Passes the registry's own checks; Dagster refuses "..." inside a partition key.
    assert client.post(REGISTER, json=register_body(), headers=admin_headers).status_code == 201
    reloads = fake_dagster.calls.count("Reload")
    bad = register_body("events", partitioning={"kind": "static", "column": "kind", "values": ["a", "b...c"]})
    error = assert_error(client.post(REGISTER, json=bad, headers=admin_headers), 400, rule="registration_would_not_load")
    assert "partition key" in error["message"]
    assert error["details"]["field"] == "partitioning"
    assert fake_dagster.calls.count("Reload") == reloads  # the running code location never saw it
    tables = client.get("/api/v1/sync/tables", headers=admin_headers).json()["tables"]
    assert [t["table"] for t in tables] == [ITEMS]
    # Replacing a live registration with one that would not load keeps the old one.
    bad_items = register_body(partitioning={"kind": "static", "column": "name", "values": ["x...y"]})
    assert_error(client.post(REGISTER, json=bad_items, headers=admin_headers), 400, rule="registration_would_not_load")
    [items] = client.get("/api/v1/sync/tables", headers=admin_headers).json()["tables"]
    assert items["partitioning"]["kind"] == "none"


def test_load_check_runs_as_a_child_process() -> None:
    """The API's real path: ``python -m orchestration.loadcheck`` with JSON on stdin."""
    good = registry.build_registration(EVENTS_BODY, default_database="DEMO")
    bad = registry.build_registration(
        register_body("t2", partitioning={"kind": "static", "column": "k", "values": ["a...b"]}), default_database="DEMO")
    both = [registry.to_dict(good), registry.to_dict(bad)]
    assert anyio.run(run_load_check, [registry.to_dict(good)]) == {"ok": True}
    verdict = anyio.run(run_load_check, both)
    assert verdict["ok"] is False
    assert verdict["table"] == "demo.synctest.t2"
    assert "invalid substrings in a partition key" in verdict["error"]


@pytest.fixture
def agent(client: Client, admin_headers: dict[str, str], make_swarm: Callable[..., dict[str, Any]],
          agent_headers: Callable[..., dict[str, str]]) -> dict[str, str]:
    """An agent granted ``items``, registered with a one-hour freshness target."""
    assert client.post(REGISTER, json=register_body(freshness="1h"), headers=admin_headers).status_code == 201
    return agent_headers(make_swarm([ITEMS])["id"])


@pytest.mark.parametrize("body", [{"max_age_s": 1e300}, {"max_age_s": -1}, {"max_age_s": -0.5},
                                  {"max_age_s": 31_622_401}, {"max_age_s": "soon"}])
def test_refresh_max_age_out_of_range_is_400(client: Client, agent: dict[str, str], fake_dagster: FakeDagster,
                                             body: dict[str, Any]) -> None:
    error = assert_error(client.post(f"/api/v1/data/tables/{ITEMS}/refresh", json=body, headers=agent), 400)
    assert "max_age_s" in error["message"] + str(error["details"])
    assert not fake_dagster.runs  # nothing was launched


def test_refresh_max_age_zero_always_refreshes(client: Client, agent: dict[str, str]) -> None:
    r = client.post(f"/api/v1/data/tables/{ITEMS}/refresh", json={"max_age_s": 0}, headers=agent)
    assert r.status_code == 202, r.text
    assert r.json()["outcome"] == "started"


def test_sync_start_refuses_more_partitions_than_any_table_has(client: Client, admin_headers: dict[str, str],
                                                               fake_dagster: FakeDagster) -> None:
    assert client.post(REGISTER, json=EVENTS_BODY, headers=admin_headers).status_code == 201
    body = {"table_name": "events", "schema_name": "synctest", "partitions": ["2025-01-01"] * 50_001}
    assert_error(client.post("/api/v1/sync/start", json=body, headers=admin_headers), 400)
    assert not fake_dagster.runs


# --- no stack trace or server path in any answer ------------------------------------------------


def _assert_clean(text: str) -> None:
    for leak in ("Traceback", "Stack Trace", 'File "', "/srv/app", "site-packages", ".py"):
        assert leak not in text, text


def test_clean_message_keeps_the_message_and_drops_trace_and_paths() -> None:
    cleaned = clean_message(TRACE)
    assert cleaned == "DagsterCodeLocationLoadError: Failure loading agents_data: KeyError: 'ITEMS'"
    assert clean_message("cannot open /home/u/data/v-1.duckdb: locked") == "cannot open <path>: locked"
    # URLs, relative asset paths and table keys are not server paths.
    kept = "asset demo/public/orders at http://127.0.0.1:3000/assets/demo; table demo.public.orders"
    assert clean_message(kept) == kept
    assert len(clean_message("x" * 5000)) == 1000


def test_a_refused_run_answers_without_trace_or_paths(client: Client, admin_headers: dict[str, str],
                                                      fake_dagster: FakeDagster, monkeypatch: pytest.MonkeyPatch,
                                                      ) -> None:
    assert client.post(REGISTER, json=register_body(), headers=admin_headers).status_code == 201
    monkeypatch.setattr(fake_dagster, "_op_Launch",
                        lambda _v: {"launchRun": {"__typename": "PythonError", "message": TRACE}})
    r = client.post("/api/v1/sync/start", json={"table_name": "items", "schema_name": "synctest"}, headers=admin_headers)
    error = assert_error(r, 409, rule="dagster_refused")
    assert "DagsterCodeLocationLoadError" in error["message"]
    _assert_clean(r.text)
    [table] = client.get("/api/v1/sync/tables", headers=admin_headers).json()["tables"]
    _assert_clean(str(table))


def test_a_failed_run_and_a_load_error_answer_without_trace_or_paths(client: Client, admin_headers: dict[str, str],
                                                                     fake_dagster: FakeDagster,
                                                                     api_settings: Settings) -> None:
    assert client.post(REGISTER, json=register_body(), headers=admin_headers).status_code == 201
    fake_dagster.fail_runs_with = TRACE
    started = client.post("/api/v1/sync/start", json={"table_name": "items", "schema_name": "synctest"},
                          headers=admin_headers)
    assert started.status_code == 202, started.text
    job = client.get(f"/api/v1/sync/jobs/{started.json()['job_id']}", headers=admin_headers)
    assert job.json()["status"] == "failed"
    assert job.json()["errors"][0].startswith("DagsterCodeLocationLoadError")
    _assert_clean(job.text)
    _assert_clean(client.get("/api/v1/sync/tables", headers=admin_headers).text)
    fake_dagster.reload_error = TRACE
    r = client.post(REGISTER, json=EVENTS_BODY, headers=admin_headers)
    assert_error(r, 422, rule="dagster_load_error")
    _assert_clean(r.text)
