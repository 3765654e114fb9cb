"""POST /api/v1/queries/execute and the job endpoints, through the real app.

Result bodies are parsed back (Arrow IPC stream, Parquet, CSV, JSON) and compared with
the same SELECT run by DuckDB directly on the same generated data.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import threading
import time
from typing import Any

import duckdb
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from pyarrow import ipc
from sqlalchemy import select, update

from serving.lib.audit import get_audit
from serving.queries.services import get_jobs
from shared.control.db import session_scope
from shared.control.models import AuditRow, QueryJobRow
from shared.settings import Settings
from tests.conftest import publish_table
from tests.serving.helpers import assert_error

ORDERS = "demo.public.orders"
DATA = ("select range as id, ['new','paid','shipped'][1 + range % 3] as status, "
        "((range % 1000) / 100)::decimal(12,2) as amount, date '2025-01-01' + (range % 30)::int as day, "
        "'note ' || range as note from range(3000)")
SLOW = "select count(*) as n from range(20000000000) t(i) where i % 7 = 3"


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    q = dataclasses.replace(settings.query, max_rows=2500, json_max_rows=1000, max_result_bytes=150_000,
                            agent_concurrent=3, wait_s=5.0)
    return dataclasses.replace(settings, query=q)


@pytest.fixture
def agent(client: Any, api_settings: Settings, make_swarm: Any, agent_headers: Any) -> dict[str, Any]:
    publish_table(api_settings.served_path, ORDERS, DATA, descriptions={"id": "order id"})
    swarm = make_swarm([ORDERS])
    return {"swarm": swarm, "headers": agent_headers(swarm["id"]), "other": agent_headers(swarm["id"])}


def run(client: Any, headers: dict[str, str], **body: Any) -> Any:
    return client.post("/api/v1/queries/execute", json=body, headers=headers)


def expected(sql: str) -> Any:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE orders AS {DATA}")
    return con.sql(sql).to_arrow_table()


def wait_done(client: Any, headers: dict[str, str], job_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/queries/jobs/{job_id}", headers=headers).json()
        if body["status"] not in ("queued", "running"):
            return body  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still running")


def test_inline_json_result(client: Any, agent: dict[str, Any], api_settings: Settings) -> None:
    r = run(client, agent["headers"], query="select id, status, amount, day from orders where id < ? order by id", params=[3])
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["columns"] == [{"name": "id", "type": "BIGINT"}, {"name": "status", "type": "VARCHAR"},
                               {"name": "amount", "type": "DECIMAL(12,2)"}, {"name": "day", "type": "DATE"}]
    assert body["rows"] == [[0, "new", "0.00", "2025-01-01"], [1, "paid", "0.01", "2025-01-02"],
                            [2, "shipped", "0.02", "2025-01-03"]]
    assert (body["row_count"], body["truncated"]) == (3, False)
    [table] = body["tables"]
    assert table["table"] == ORDERS
    assert table["version"]
    assert dt.datetime.fromisoformat(table["synced_at"])


@pytest.mark.parametrize("path", ["/api/v1/queries/execute", "/api/v1/queries/", "/api/v1/queries"])
@pytest.mark.parametrize("fmt", ["json", "JSON", "Json"])
def test_aliases_and_case_insensitive_format(client: Any, agent: dict[str, Any], path: str, fmt: str) -> None:
    r = client.post(path, json={"query": "select 1 as one", "output_format": fmt}, headers=agent["headers"])
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == [[1]]


@pytest.mark.parametrize(("fmt", "media"), [("csv", "text/csv"), ("CSV", "text/csv"),
                                            ("parquet", "application/vnd.apache.parquet"),
                                            ("arrow", "application/vnd.apache.arrow.stream"),
                                            ("Arrow", "application/vnd.apache.arrow.stream")])
def test_file_formats_round_trip(client: Any, agent: dict[str, Any], fmt: str, media: str) -> None:
    sql = "select id, status, amount, day, note from orders where id % 3 = 1 order by id"
    r = run(client, agent["headers"], query=sql, output_format=fmt)
    assert r.status_code == 200, r.text
    meta = r.json()
    assert meta["status"] == "succeeded"
    assert meta["row_count"] == 1000
    assert meta["truncated"] is False
    assert meta["tables"][0]["table"] == ORDERS
    got = client.get(meta["result_url"], headers=agent["headers"])
    assert got.status_code == 200
    assert got.headers["content-type"].startswith(media)
    assert int(got.headers["content-length"]) == meta["bytes"] == len(got.content)
    want = expected(sql)
    if fmt.lower() == "arrow":
        table = ipc.open_stream(io.BytesIO(got.content)).read_all()
    elif fmt.lower() == "parquet":
        table = pq.read_table(io.BytesIO(got.content))
    else:
        table = pacsv.read_csv(io.BytesIO(got.content))
        want = pacsv.read_csv(io.BytesIO(_csv(want)))
    assert table.to_pylist() == want.to_pylist()


def _csv(table: Any) -> bytes:
    sink = io.BytesIO()
    pacsv.write_csv(table, sink)
    return sink.getvalue()


def test_truncation_and_row_caps(client: Any, agent: dict[str, Any]) -> None:
    body = run(client, agent["headers"], query="select id from orders order by id", max_rows=5).json()
    assert (body["row_count"], body["truncated"], body["rows"][-1]) == (5, True, [4])
    body = run(client, agent["headers"], query="select id from orders").json()  # JSON cap 1000 < max_rows 2500
    assert (body["row_count"], body["truncated"], body["max_rows"]) == (1000, True, 1000)
    assert_error(run(client, agent["headers"], query="select 1", max_rows=10_000), 413, rule="too_many_rows")


@pytest.mark.parametrize("fmt", ["arrow", "parquet", "csv"])
def test_result_files_are_capped_by_bytes_not_rows(client: Any, agent: dict[str, Any], fmt: str) -> None:
    """QUERY_MAX_ROWS (2500 here) caps JSON only: a file holds the 3000 rows, keeps a row limit the
    caller asks for (even one over QUERY_MAX_ROWS), and is refused only past QUERY_MAX_RESULT_BYTES."""
    h = agent["headers"]
    meta = run(client, h, query="select id from orders", output_format=fmt).json()
    assert (meta.get("row_count"), meta.get("truncated")) == (3000, False), meta
    meta = run(client, h, query="select id from orders order by id", output_format=fmt, max_rows=10_000).json()
    assert (meta.get("row_count"), meta.get("truncated")) == (3000, False), meta
    meta = run(client, h, query="select id from orders order by id", output_format=fmt, max_rows=7).json()
    assert (meta.get("row_count"), meta.get("truncated")) == (7, True), meta
    got = client.get(meta["result_url"], headers=h).content
    ids = {"arrow": lambda b: ipc.open_stream(b).read_all(), "parquet": lambda b: pq.read_table(io.BytesIO(b)),
           "csv": lambda b: pacsv.read_csv(io.BytesIO(b))}[fmt](got).column("id").to_pylist()
    assert ids == list(range(7))
    pad = ", ".join(f"md5((id * {k})::varchar) as pad{k}" for k in range(1, 6))  # 480 KB that does not compress away
    assert_error(run(client, h, query=f"select {pad} from orders", output_format=fmt), 413, rule="result_too_large")


def test_result_byte_limit(client: Any, agent: dict[str, Any]) -> None:
    r = run(client, agent["headers"], query="select repeat('x', 500) as pad from orders", output_format="csv")
    assert_error(r, 413, rule="result_too_large")


@pytest.mark.parametrize(("body", "rule"), [
    ({"query": "select 1", "output_format": "xml"}, "invalid_format"),
    ({"query": "select 1", "timeout_s": 100000}, "invalid_timeout"),
])
def test_bad_options(client: Any, agent: dict[str, Any], body: dict[str, Any], rule: str) -> None:
    assert_error(client.post("/api/v1/queries/execute", json=body, headers=agent["headers"]), 400, rule=rule)


def test_body_validation_is_400(client: Any, agent: dict[str, Any]) -> None:
    assert_error(client.post("/api/v1/queries/execute", json={"sql": "select 1"}, headers=agent["headers"]), 400)
    bad = {"query": "select 1", "max_rows": -1}
    assert_error(client.post("/api/v1/queries/execute", json=bad, headers=agent["headers"]), 400)


def test_timeout_is_408(client: Any, agent: dict[str, Any]) -> None:
    assert_error(run(client, agent["headers"], query=SLOW, timeout_s=0.5), 408, rule="timeout")


def test_parameters_are_bound(client: Any, agent: dict[str, Any]) -> None:
    h = agent["headers"]
    injected = run(client, h, query="select count(*) as n from orders where status = ?", params=["x' or '1'='1"])
    assert injected.json()["rows"] == [[0]]
    named = run(client, h, query="select count(*) as n from orders where status = $s", params={"s": "paid"})
    assert named.json()["rows"] == [[1000]]
    assert_error(run(client, h, query="select * from orders where id = ?"), 400, rule="query_error")


def test_async_job_poll_and_result(client: Any, agent: dict[str, Any]) -> None:
    h = agent["headers"]
    r = run(client, h, query="select count(*) as n from range(300000000) t(i) where i % 2 = 0", wait_s=0)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "running"
    assert job["job_id"]
    done = wait_done(client, h, job["job_id"])
    assert done["status"] == "succeeded"
    assert done["row_count"] == 1
    assert done["duration_ms"] > 0
    assert client.get(f"/api/v1/queries/{job['job_id']}", headers=h).json()["status"] == "succeeded"  # alias
    result = client.get(done["result_url"], headers=h)
    assert result.status_code == 200
    assert result.json()["rows"] == [[150000000]]


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_wait_zero_always_gives_a_job_even_for_an_instant_query(client: Any, agent: dict[str, Any], fmt: str) -> None:
    h = agent["headers"]
    for _ in range(5):  # the same text again and again: it would qualify for the inline path
        r = run(client, h, query="select 42 as answer", wait_s=0, output_format=fmt)
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["job_id"]
        done = wait_done(client, h, job["job_id"])
        assert done["status"] == "succeeded"
        body = client.get(done["result_url"], headers=h)
        assert body.status_code == 200
        assert "42" in body.text


def test_cancel_a_running_job(client: Any, agent: dict[str, Any]) -> None:
    h = agent["headers"]
    job = run(client, h, query=SLOW, wait_s=0, timeout_s=60).json()
    r = client.delete(f"/api/v1/queries/jobs/{job['job_id']}", headers=h)
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled"
    time.sleep(0.5)
    body = client.get(f"/api/v1/queries/jobs/{job['job_id']}", headers=h).json()
    assert body["status"] == "cancelled"
    assert body["error"]["rule"] == "cancelled"
    assert_error(client.get(f"/api/v1/queries/jobs/{job['job_id']}/result", headers=h), 404, rule="no_result")


def test_cancel_through_another_replica_stops_the_query(client: Any, services: Any, agent: dict[str, Any],
                                                        api_settings: Settings) -> None:
    """Replica B (a second app over the same control database) cancels a job running on A: A interrupts it."""
    from litestar.testing import TestClient

    from serving.app import create_app
    from serving.queries.services import get_jobs

    h = agent["headers"]
    job = run(client, h, query=SLOW, wait_s=0, timeout_s=60).json()
    running_on_a = get_jobs(services).running
    assert job["job_id"] in running_on_a
    started = time.monotonic()
    with TestClient(create_app(api_settings)) as replica_b:
        r = replica_b.delete(f"/api/v1/queries/jobs/{job['job_id']}", headers=h)
        assert r.status_code == 200
        assert r.json()["status"] == "cancelled"
        assert job["job_id"] not in get_jobs(replica_b.app.state.services).running, "B never ran it"
    deadline = started + 15
    while job["job_id"] in running_on_a and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job["job_id"] not in running_on_a, "A interrupted the query instead of running it to its end"
    assert time.monotonic() - started < 15
    body = client.get(f"/api/v1/queries/jobs/{job['job_id']}", headers=h).json()
    assert body["status"] == "cancelled"


def test_jobs_are_private_to_their_token_and_admin(client: Any, agent: dict[str, Any], admin_headers: dict[str, str]) -> None:
    meta = run(client, agent["headers"], query="select 1 as one", output_format="csv").json()
    job_id = meta["job_id"]
    other = agent["other"]
    for resp in (client.get(f"/api/v1/queries/jobs/{job_id}", headers=other),
                 client.get(f"/api/v1/queries/jobs/{job_id}/result", headers=other),
                 client.delete(f"/api/v1/queries/jobs/{job_id}", headers=other),
                 client.get("/api/v1/queries/jobs/no-such-job", headers=other)):
        assert_error(resp, 404, rule="job_not_found")
    assert client.get(f"/api/v1/queries/jobs/{job_id}/result", headers=admin_headers).text == "one\n1\n" or \
        client.get(f"/api/v1/queries/jobs/{job_id}/result", headers=admin_headers).text == '"one"\n1\n'


def test_expired_results_answer_410(client: Any, agent: dict[str, Any], api_settings: Settings) -> None:
    meta = run(client, agent["headers"], query="select 1 as one", output_format="parquet").json()
    with session_scope(api_settings.control_url) as s:
        s.execute(update(QueryJobRow).where(QueryJobRow.id == meta["job_id"])
                  .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    assert_error(client.get(meta["result_url"], headers=agent["headers"]), 410, rule="expired")
    assert client.get(f"/api/v1/queries/jobs/{meta['job_id']}", headers=agent["headers"]).json()["status"] == "expired"


def test_concurrent_query_limit_is_429(client: Any, agent: dict[str, Any]) -> None:
    h = agent["headers"]
    ids = [run(client, h, query=SLOW, wait_s=0, timeout_s=60).json()["job_id"] for _ in range(3)]
    try:
        assert_error(run(client, h, query="select 1"), 429, rule="concurrency_limit")
        assert run(client, agent["other"], query="select 1").status_code == 200  # other agents are not slowed
    finally:
        for job_id in ids:
            client.delete(f"/api/v1/queries/jobs/{job_id}", headers=h)
    deadline = time.monotonic() + 10
    while run(client, h, query="select 1").status_code == 429 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert run(client, h, query="select 1").status_code == 200


def test_every_query_is_audited(client: Any, agent: dict[str, Any], services: Any, api_settings: Settings) -> None:
    run(client, agent["headers"], query="select count(*) from orders where id < ?", params=[10])
    assert_error(run(client, agent["headers"], query="select * from vault"), 400, rule="table_not_granted")
    assert get_audit(services).flush()
    with session_scope(api_settings.control_url) as s:
        rows = s.scalars(select(AuditRow).where(AuditRow.endpoint == "/api/v1/queries/execute").order_by(AuditRow.id)).all()
    ok, refused = rows[-2], rows[-1]
    assert ok.status_code == 200
    assert ok.sql_text.startswith("select count(*)")
    assert len(ok.sql_hash or "") == 64
    assert ok.tables == [{"table": ORDERS, "version": ok.tables[0]["version"]}]
    assert ok.rows == 1
    assert ok.bytes
    assert refused.status_code == 400
    assert refused.rule == "table_not_granted"
    assert refused.sql_text == "select * from vault"


def test_agent_sql_never_runs_on_the_event_loop_whatever_the_scheduler_learned(client: Any, agent: dict[str, Any],
                                                                              services: Any,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    h = agent["headers"]
    engine = get_jobs(services).engine
    threads: list[str] = []
    real = engine.execute

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "execute", spy)
    sql = "select count(*) as n from range(0, ?) t(i) where i % 3 = 0"
    for _ in range(8):  # a text the scheduler knows to be fast
        assert run(client, h, query=sql, params=[30]).json()["rows"] == [[10]]
    manager = get_jobs(services)
    [speed] = [v for k, v in manager.sched.speeds.items() if "range" in k.lower()]
    assert speed.runs >= 8
    assert run(client, h, query=sql, params=[3_000_000], wait_s=60).json()["rows"] == [[1_000_000]]
    assert len(threads) == 9
    assert all(name.startswith("query") for name in threads), threads  # the job pool's workers, never the loop


def test_min_freshness_asks_the_sync_feature_with_the_tables_read(client: Any, agent: dict[str, Any],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from serving.tables import hooks

    calls = []

    async def fake(services: Any, caller: Any, tables: list[str], min_freshness_s: float, wait_s: float) -> list[Any]:
        calls.append((tables, min_freshness_s))
        return []

    services = client.app.state.services
    monkeypatch.setitem(services.parts, hooks.WAIT_FOR_FRESH, fake)  # the hook the sync feature registered
    assert run(client, agent["headers"], query="select count(*) from orders", min_freshness=60).status_code == 200
    assert run(client, agent["headers"], query="select 1", min_freshness=60).status_code == 200  # no table: no wait
    assert calls == [([ORDERS], 60)]


def test_every_duckdb_type_has_a_json_answer(client: Any, agent: dict[str, Any]) -> None:
    sql = ("select {'a': 1} as s, map {1: 'x'} as m, [1, 2] as l, '00000000-0000-0000-0000-000000000001'::uuid as u, "
           "interval 1 day as i, 170141183460469231731687303715884105727::hugeint as h, 'ab'::blob as b, "
           "time '12:30' as t, 'nan'::double as n, timestamptz '2025-01-01 00:00:00+00' as tz, 1.5::decimal(38,10) as d")
    r = run(client, agent["headers"], query=sql)
    assert r.status_code == 200, r.text
    [row] = r.json()["rows"]
    assert row[0] == {"a": 1}
    assert row[2] == [1, 2]
    assert row[3] == "00000000-0000-0000-0000-000000000001"
    assert row[5] == 170141183460469231731687303715884105727
    assert row[8] == "nan"  # JSON has no NaN; null would say the value is missing
    assert row[10] == "1.5000000000"


def test_nested_types_in_csv_are_a_clear_400(client: Any, agent: dict[str, Any]) -> None:
    r = run(client, agent["headers"], query="select [1, 2] as l", output_format="csv")
    assert_error(r, 400, rule="unsupported_type")


@pytest.mark.parametrize("case", [
    ("json", None, None),  # inline rows
    ("json", 0, None),  # a job to poll
    ("csv", None, None), ("arrow", None, None), ("parquet", 0, None),  # streamed to a result file
    ("json", None, 60),  # the tables are needed before running: the controller guards
])
def test_the_guard_runs_once_per_query(client: Any, agent: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                       case: tuple[str, float | None, float | None]) -> None:
    """Whatever the answer's shape, one guard decision per request: a new text is checked once, a
    repeated one is answered once from the guard's cache, and nothing downstream checks it again."""
    import serving.queries.guard
    import serving.sync.refresh

    fmt, wait_s, min_freshness = case
    decisions: list[str] = []
    real_check, real_cached = serving.queries.guard.check_sql, serving.queries.guard.cached

    def check_sql(sql: str, grants: frozenset[str]) -> Any:
        decisions.append("checked")
        return real_check(sql, grants)

    def cached(sql: str, grants: frozenset[str]) -> Any:
        hit = real_cached(sql, grants)
        if hit is not None:
            decisions.append("cached")
        return hit

    async def fresh(*_: Any) -> list[Any]:
        return []

    monkeypatch.setattr(serving.queries.guard, "check_sql", check_sql)
    monkeypatch.setattr(serving.queries.guard, "cached", cached)
    monkeypatch.setattr(serving.sync.refresh, "ensure_fresh", fresh)
    h = agent["headers"]
    sql = f"select count(*) as n, '{fmt}-{wait_s}-{min_freshness}-{time.monotonic_ns()}' as tag from orders"
    for expect in ("checked", "cached"):
        decisions.clear()
        r = run(client, h, query=sql, output_format=fmt, wait_s=wait_s, min_freshness=min_freshness)
        if wait_s == 0:
            assert r.status_code == 202, r.text
            assert wait_done(client, h, r.json()["job_id"])["status"] == "succeeded"
        else:
            assert r.status_code == 200, r.text
        assert decisions == [expect]


def test_parquet_results_keep_types_names_and_errors(client: Any, agent: dict[str, Any]) -> None:
    """Parquet is encoded by DuckDB's writer: values and nesting survive, duplicate column names
    still work (pyarrow's writer takes those), an interval is the same clear 400 as before, and a
    query stopped by its time limit while the file is written is a 408, not a writer error."""
    h = agent["headers"]
    sql = ("select id, amount, day, note, [id, id + 1] as l, {'a': id} as s from orders where id < 3 order by id")
    meta = run(client, h, query=sql, output_format="parquet").json()
    table = pq.read_table(io.BytesIO(client.get(meta["result_url"], headers=h).content))
    assert table.to_pylist() == expected(sql).to_pylist()
    meta = run(client, h, query="select 1 as a, 2 as a", output_format="parquet").json()
    table = pq.ParquetFile(io.BytesIO(client.get(meta["result_url"], headers=h).content)).read()
    assert (table.column_names, [c.to_pylist() for c in table.columns]) == (["a", "a"], [[1], [2]])
    assert_error(run(client, h, query="select interval 1 day as i", output_format="parquet"), 400, rule="unsupported_type")
    slow = "select i from range(20000000000) t(i) where hash(i) % 1000003 = 7"
    assert_error(run(client, h, query=slow, output_format="parquet", timeout_s=0.5), 408, rule="timeout")
