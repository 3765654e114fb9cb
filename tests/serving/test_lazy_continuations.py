"""Continuations are lazy: a cut answer records its re-run and runs nothing until the first fetch.

Through the real app (test client) over served data made by DuckDB; the control database
(SQLite here) is read directly to see what was recorded and whether anything ran.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from serving.lib import formats
from serving.lib.caller import Caller
from serving.lib.errors import PayloadTooLarge
from serving.queries import job_rows
from serving.queries.services import get_jobs
from shared import housekeeping
from shared.control.db import session_scope
from shared.control.models import QueryJobRow, utcnow
from shared.served_storage import ServedStore
from shared.settings import Settings
from tests.conftest import publish_table
from tests.serving.helpers import assert_error

ORDERS, CUSTOMERS = "demo.public.orders", "demo.public.customers"
DATA = "select range as id, 'v1' as tag from range(1000)"
SQL = "select id, tag from orders order by id"


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    q = dataclasses.replace(settings.query, json_max_rows=100, json_max_bytes=50_000)
    return dataclasses.replace(settings, query=q)


@pytest.fixture
def world(client: Any, api_settings: Settings, make_swarm: Any, agent_headers: Any) -> dict[str, Any]:
    publish_table(api_settings.served_path, ORDERS, DATA)
    publish_table(api_settings.served_path, CUSTOMERS, "select range as id from range(3)")
    swarm = make_swarm([ORDERS, CUSTOMERS])
    return {"swarm": swarm, "h": agent_headers(swarm["id"])}


def _row(settings: Settings, job_id: str) -> QueryJobRow:
    with session_scope(settings.control_url) as s:
        row = s.get(QueryJobRow, job_id)
        assert row is not None
        s.expunge(row)
        return row


def _cut(client: Any, h: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    r = client.post("/api/v1/queries/execute", json={"query": SQL}, headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["truncated"], body["row_count"]) == (True, 100)
    return body, body["continuation"]


def _finished(client: Any, h: dict[str, str], url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = client.get(url, headers=h).json()
        if job["status"] not in ("queued", "running"):
            return job  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"{url} did not finish")


def test_a_cut_answer_runs_nothing_until_its_continuation_is_fetched(client: Any, world: dict[str, Any],
                                                                    services: Any, api_settings: Settings) -> None:
    _, cont = _cut(client, world["h"])
    assert cont["status"] == "queued"
    assert set(cont) == {"job_id", "status", "cut_by", "limit", "rows_returned", "rest_available", "status_url",
                         "result_url", "next_url", "artifact_url", "full_limit"}
    time.sleep(0.3)
    row = _row(api_settings, cont["job_id"])
    assert (row.status, row.started_at, row.result_path) == ("queued", None, None)
    assert job_rows.deferred(row) is not None
    assert cont["job_id"] not in get_jobs(services).running
    assert not list(api_settings.results_path.glob(f"{cont['job_id']}*"))
    page = client.get(cont["next_url"], headers=world["h"])  # the first fetch starts it and waits for it
    assert page.status_code == 200, page.text
    data = page.json()
    assert (data["offset"], data["row_count"], data["total_rows"]) == (100, 100, 1000)
    assert data["rows"][0] == [100, "v1"]
    row = _row(api_settings, cont["job_id"])
    assert (row.status, row.row_count) == ("succeeded", 1000)
    assert row.started_at is not None
    job = client.get(cont["status_url"], headers=world["h"]).json()  # later fetches see it like any job
    assert (job["status"], job["row_count"], job["progress"]) == ("succeeded", 1000, 1.0)


def test_one_first_fetch_starts_the_run_however_many_race(client: Any, world: dict[str, Any], services: Any,
                                                          api_settings: Settings) -> None:
    _, cont = _cut(client, world["h"])
    stale = _row(api_settings, cont["job_id"])  # what every racing fetch loaded: still deferred
    caller = Caller(kind="agent", subject="a", token_id=stale.token_id, swarm_id=stale.swarm_id,
                    grants=frozenset({ORDERS}))
    jobs = get_jobs(services)
    first = jobs.resume(stale, caller)
    assert first is not None
    assert jobs.resume(stale, caller) is None  # the row's claim is taken: no second run
    assert job_rows.claim(api_settings.control_url, stale.id, "another-replica") is False
    assert first.result(timeout=30).row_count == 1000
    assert _finished(client, world["h"], cont["status_url"])["status"] == "succeeded"


def test_concurrent_first_fetches_through_the_api_start_one_run(client: Any, world: dict[str, Any], services: Any,
                                                                  monkeypatch: Any) -> None:
    _, cont = _cut(client, world["h"])
    jobs = get_jobs(services)
    started: list[str] = []
    start = jobs.start

    def counted(job: Any) -> Any:
        started.append(job.id)
        return start(job)

    monkeypatch.setattr(jobs, "start", counted)
    urls = [cont["status_url"], cont["next_url"], cont["result_url"], cont["status_url"]]
    with ThreadPoolExecutor(len(urls)) as pool:
        answers = list(pool.map(lambda u: client.get(u, headers=world["h"]), urls))
    assert all(a.status_code in (200, 409) for a in answers), [a.text for a in answers]
    assert started == [cont["job_id"]]
    assert _finished(client, world["h"], cont["status_url"])["row_count"] == 1000


def test_the_rerun_reads_the_version_the_cut_answer_read(client: Any, world: dict[str, Any],
                                                         api_settings: Settings) -> None:
    body, cont = _cut(client, world["h"])
    read = body["tables"][0]["version"]
    publish_table(api_settings.served_path, ORDERS, "select range as id, 'v2' as tag from range(5)")
    assert client.get(f"/api/v1/data/tables/{ORDERS}", headers=world["h"]).json()["served_version"] != read
    job = _finished(client, world["h"], cont["status_url"])
    assert (job["status"], job["row_count"]) == ("succeeded", 1000)
    assert [t["version"] for t in job["tables"]] == [read]
    result = client.get(cont["result_url"], params={"format": "json"}, headers=world["h"])
    assert result.status_code == 200, result.text
    assert json.loads(result.headers["agents-data-provenance"])["tables"][0]["version"] == read
    assert {r[1] for r in result.json()["rows"]} == {"v1"}


def test_a_continuation_whose_version_was_deleted_answers_410(client: Any, world: dict[str, Any],
                                                              api_settings: Settings) -> None:
    _, cont = _cut(client, world["h"])
    publish_table(api_settings.served_path, ORDERS, "select range as id, 'v2' as tag from range(5)")
    report = housekeeping.purge_superseded_versions(api_settings, now=utcnow() + dt.timedelta(days=1))
    assert report.counts.get("versions_deleted") == 1
    error = assert_error(client.get(cont["next_url"], headers=world["h"]), 410, rule="version_gone")
    assert error["details"]["table"] == ORDERS
    job = client.get(cont["status_url"], headers=world["h"]).json()
    assert (job["status"], job["error"]["rule"]) == ("failed", "version_gone")
    assert_error(client.get(cont["result_url"], headers=world["h"]), 410, rule="version_gone")


def test_an_unfetched_continuation_expires_without_running(client: Any, world: dict[str, Any], services: Any,
                                                           api_settings: Settings) -> None:
    _, cont = _cut(client, world["h"])
    row = _row(api_settings, cont["job_id"])
    assert row.expires_at is not None
    ttl = (row.expires_at - row.created_at).total_seconds()
    assert abs(ttl - api_settings.query.result_ttl_s) < 5
    later = utcnow() + dt.timedelta(days=3)
    assert housekeeping.mark_stuck_jobs_failed(api_settings, now=row.created_at + dt.timedelta(seconds=ttl / 2)) \
        .counts.get("query_jobs_failed", 0) == 0  # never started: not stuck
    with session_scope(api_settings.control_url) as s:
        stored = s.get(QueryJobRow, cont["job_id"])
        assert stored is not None
        stored.expires_at = utcnow() - dt.timedelta(seconds=1)
    assert_error(client.get(cont["status_url"], headers=world["h"]), 410, rule="expired")
    assert cont["job_id"] not in get_jobs(services).running
    assert housekeeping.purge_expired_query_results(api_settings, now=later).counts.get("jobs_expired") == 1
    row = _row(api_settings, cont["job_id"])
    assert (row.status, row.started_at) == ("expired", None)
    assert "never fetched" in (row.error or "")


def test_an_answer_refused_at_its_size_cap_records_no_continuation(client: Any, world: dict[str, Any], services: Any,
                                                                   api_settings: Settings, monkeypatch: Any) -> None:
    def refuse(written: int, max_bytes: int) -> None:
        raise PayloadTooLarge("over the cap", rule="result_too_large")

    monkeypatch.setattr(formats, "check_size", refuse)
    assert_error(client.post("/api/v1/queries/execute", json={"query": SQL}, headers=world["h"]), 413,
                 rule="result_too_large")
    with session_scope(api_settings.control_url) as s:
        assert s.query(QueryJobRow).count() == 0
    assert not get_jobs(services).running


def test_only_the_owner_starts_it_and_only_while_granted(client: Any, world: dict[str, Any], admin_headers: Any,
                                                          api_settings: Settings) -> None:
    _, cont = _cut(client, world["h"])
    assert_error(client.get(cont["status_url"], headers=admin_headers), 409, rule="continuation_not_started")
    assert_error(client.post(cont["artifact_url"], json={"format": "parquet"}, headers=world["h"]), 409,
                 rule="job_not_finished")
    r = client.patch(f"/api/v1/admin/swarms/{world['swarm']['id']}", json={"grants": [CUSTOMERS]}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert_error(client.get(cont["status_url"], headers=world["h"]), 403, rule="table_not_granted")
    row = _row(api_settings, cont["job_id"])
    assert (row.status, row.started_at) == ("queued", None)  # refused fetches start nothing


def test_a_local_store_finds_a_superseded_version_until_it_is_deleted(api_settings: Settings) -> None:
    old = publish_table(api_settings.served_path, ORDERS, DATA)
    new = publish_table(api_settings.served_path, ORDERS, "select 1 as id, 'v2' as tag")
    store = ServedStore(api_settings.served_path)
    assert (store.version(ORDERS, old.version), store.version(ORDERS, new.version)) == (old, new)
    assert store.version(ORDERS, "20000101T000000000000-0000") is None
    housekeeping.purge_superseded_versions(api_settings, now=utcnow() + dt.timedelta(days=1))
    assert store.version(ORDERS, old.version) is None
    assert store.version(ORDERS, new.version) == new
