"""Cut answers carry a continuation; dry runs; schema versions; provenance on every result.

Through the real app (test client), over served data made by DuckDB; expected rows come
from the same SELECT run by DuckDB directly.
"""

from __future__ import annotations

import dataclasses
import io
import json
import time
from typing import Any

import duckdb
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from pyarrow import ipc

from shared.settings import Settings
from tests.conftest import publish_table
from tests.serving.helpers import assert_error

ORDERS = "demo.public.orders"
DATA = ("select range as id, ['new','paid','shipped'][1 + range % 3] as status, "
        "((range % 1000) / 100)::decimal(12,2) as amount, date '2025-01-01' + (range % 30)::int as day "
        "from range(3000)")


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    q = dataclasses.replace(settings.query, max_rows=2500, json_max_rows=400, json_max_bytes=50_000)
    return dataclasses.replace(settings, query=q)


@pytest.fixture
def agent(client: Any, api_settings: Settings, make_swarm: Any, agent_headers: Any) -> dict[str, str]:
    publish_table(api_settings.served_path, ORDERS, DATA)
    return agent_headers(make_swarm([ORDERS])["id"])  # type: ignore[no-any-return]


def run(client: Any, headers: dict[str, str], **body: Any) -> Any:
    return client.post("/api/v1/queries/execute", json=body, headers=headers)


def expected(sql: str) -> list[list[Any]]:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE orders AS {DATA}")
    rows = con.sql(sql).fetchall()
    return [[v if isinstance(v, int | str) or v is None else str(v) for v in r] for r in rows]


def finished(client: Any, headers: dict[str, str], status_url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        job = client.get(status_url, headers=headers).json()
        if job["status"] not in ("queued", "running"):
            return job  # type: ignore[no-any-return]
        time.sleep(0.05)
    raise AssertionError(f"{status_url} did not finish")


def normalized(rows: list[list[Any]]) -> list[list[Any]]:
    return [[v if isinstance(v, int | str) or v is None else str(v) for v in r] for r in rows]


def test_a_row_capped_answer_continues_through_pages_to_the_full_result(client: Any, agent: dict[str, str]) -> None:
    sql = "select id, status, amount, day from orders order by id"
    r = run(client, agent, query=sql)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["row_count"], body["truncated"]) == (400, True)
    cont = body["continuation"]
    assert (cont["cut_by"], cont["limit"], cont["rows_returned"], cont["rest_available"]) == ("row_cap", 400, 400, True)
    assert cont["full_limit"] == 2**31 - 1  # the re-run is a file: only QUERY_MAX_RESULT_BYTES caps it
    assert cont["job_id"]
    job = finished(client, agent, cont["status_url"])
    assert (job["status"], job["row_count"], job["truncated"]) == ("succeeded", 3000, False)
    assert job["continuation"] is None  # the whole result: nothing was cut
    rows, url, pages = list(body["rows"]), cont["next_url"], 0
    while url:
        page = client.get(url, headers=agent)
        assert page.status_code == 200, page.text
        data = page.json()
        assert data["offset"] == len(rows)
        rows.extend(data["rows"])
        url, pages = data["next_url"], pages + 1
    assert pages == 7  # 2,600 more rows in pages of 400
    assert normalized(rows) == expected(sql)


def test_the_full_result_comes_in_any_format_with_provenance(client: Any, agent: dict[str, str]) -> None:
    sql = "select id, amount, day from orders where id < 1000 order by id"
    cont = run(client, agent, query=sql).json()["continuation"]
    finished(client, agent, cont["status_url"])
    want = expected(sql)
    parquet = client.get(cont["result_url"], headers=agent)
    assert parquet.status_code == 200
    prov = json.loads(parquet.headers["agents-data-provenance"])
    assert [t["table"] for t in prov["tables"]] == [ORDERS]
    assert prov["tables"][0]["version"]
    assert (prov["truncated"], prov["row_count"], prov["job_id"]) == (False, 1000, cont["job_id"])
    assert parquet.headers["agents-data-truncated"] == "false"
    assert parquet.headers["agents-data-sql-hash"] == prov["sql_hash"]
    assert parquet.headers["agents-data-tables"].startswith(f"{ORDERS}=")
    meta = pq.ParquetFile(io.BytesIO(parquet.content)).metadata.metadata
    assert json.loads(meta[b"agents_data.provenance"]) == prov
    table = pq.read_table(io.BytesIO(parquet.content))
    assert normalized([list(r.values()) for r in table.to_pylist()]) == want
    csv = client.get(cont["result_url"], params={"format": "csv"}, headers=agent)
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")
    assert json.loads(csv.headers["agents-data-provenance"]) == prov
    assert pacsv.read_csv(io.BytesIO(csv.content)).num_rows == 1000
    arrow = client.get(cont["result_url"], params={"format": "arrow"}, headers=agent)
    assert ipc.open_stream(io.BytesIO(arrow.content)).read_all().num_rows == 1000
    as_json = client.get(cont["result_url"], params={"format": "JSON"}, headers=agent).json()
    assert normalized(as_json["rows"]) == want


def test_a_byte_capped_answer_names_the_byte_cap(client: Any, agent: dict[str, str]) -> None:
    r = run(client, agent, query="select id, repeat('x', 200) as pad from orders order by id")
    body = r.json()
    assert r.status_code == 200
    assert body["truncated"] is True
    assert 0 < body["row_count"] < 400
    assert len(json.dumps(body["rows"], separators=(",", ":"))) <= 50_000
    cont = body["continuation"]
    assert (cont["cut_by"], cont["limit"]) == ("byte_cap", 50_000)
    assert finished(client, agent, cont["status_url"])["row_count"] == 3000


def test_a_file_cut_at_the_callers_max_rows_has_its_rest_in_a_rerun(client: Any, agent: dict[str, str]) -> None:
    """Files are capped by bytes, not by QUERY_MAX_ROWS: a file cut at the caller's own max_rows
    (here QUERY_MAX_ROWS, 2,500) names that cap, and its rest comes from a re-run without it."""
    meta = run(client, agent, query="select id from orders", output_format="parquet", max_rows=2500).json()
    cont = meta["continuation"]
    assert (meta["truncated"], cont["cut_by"], cont["limit"], cont["rest_available"]) == (True, "row_cap", 2500, True)
    assert cont["job_id"] != meta["job_id"]
    finished(client, agent, cont["status_url"])
    whole = client.get(cont["result_url"], params={"format": "json"}, headers=agent).json()
    assert len(whole["rows"]) == client.get(f"/api/v1/data/tables/{ORDERS}", headers=agent).json()["row_count"] > 2500
    complete = run(client, agent, query="select count(*) as n from orders").json()
    assert (complete["truncated"], complete["continuation"]) == (False, None)


def test_bad_cursors_and_limits_are_refused(client: Any, agent: dict[str, str]) -> None:
    cont = run(client, agent, query="select id from orders").json()["continuation"]
    finished(client, agent, cont["status_url"])
    rows = cont["status_url"] + "/rows"
    assert_error(client.get(rows, params={"cursor": "not-a-cursor"}, headers=agent), 400, rule="invalid_cursor")
    assert_error(client.get(rows, params={"limit": 0}, headers=agent), 400, rule="invalid_limit")
    assert_error(client.get(rows, params={"limit": 401}, headers=agent), 400, rule="invalid_limit")


def test_dry_run_answers_without_running(client: Any, agent: dict[str, str]) -> None:
    r = run(client, agent, query="select id, status from orders where id >= 100", dry_run=True)
    assert r.status_code == 200, r.text
    d = r.json()
    assert (d["dry_run"], d["verdict"], d["estimate_source"]) == (True, "allowed", "duckdb_plan")
    catalog = client.get(f"/api/v1/data/tables/{ORDERS}", headers=agent).json()
    assert d["tables"] == [{"table": ORDERS, "version": catalog["served_version"], "synced_at": d["tables"][0]["synced_at"],
                            "schema_version": catalog["schema_version"], "row_count": 3000, "bytes": catalog["bytes"]}]
    assert 0 < d["estimated_rows"] <= 3000
    assert 0 < d["estimated_bytes_scanned"] <= catalog["bytes"]
    assert (d["max_rows"], d["would_be_capped"], d["would_run_as_job"]) == (400, True, False)
    small = run(client, agent, query="select count(*) from orders", dry_run=True).json()
    assert (small["estimated_rows"], small["would_be_capped"]) == (1, False)


def test_a_dry_run_is_refused_by_the_same_rule_as_a_run(client: Any, agent: dict[str, str]) -> None:
    for sql, rule in (("select * from customers", "table_not_granted"), ("select getenv('HOME')", "function_not_allowed")):
        real = assert_error(run(client, agent, query=sql), 400, rule=rule)
        dry = assert_error(run(client, agent, query=sql, dry_run=True), 400, rule=rule)
        assert dry == real


def test_over_the_threshold_a_query_goes_to_a_job_at_once(client: Any, agent: dict[str, str],
                                                           api_settings: Settings, services: Any) -> None:
    services.settings = dataclasses.replace(api_settings, query=dataclasses.replace(api_settings.query,
                                                                                    async_threshold_bytes=1000))
    d = run(client, agent, query="select * from orders", dry_run=True).json()
    assert (d["would_run_as_job"], d["async_threshold_bytes"]) == (True, 1000)
    r = run(client, agent, query="select * from orders")
    assert r.status_code == 202, r.text
    assert r.json()["sent_to_job"] == "estimated_over_threshold"
    assert finished(client, agent, r.json()["status_url"])["status"] == "succeeded"


def test_schema_versions_and_changes(client: Any, agent: dict[str, str], api_settings: Settings) -> None:
    first = client.get(f"/api/v1/data/tables/{ORDERS}", headers=agent).json()["schema_version"]
    assert first.startswith("s-")
    assert len(first) == 14
    publish_table(api_settings.served_path, ORDERS, DATA)  # a new version, same columns
    assert client.get(f"/api/v1/data/tables/{ORDERS}", headers=agent).json()["schema_version"] == first
    ok = run(client, agent, query="select count(*) from orders", if_schema_version={ORDERS: first})
    assert ok.json()["schema_changes"] == []
    assert "agents-data-schema-changed" not in ok.headers
    publish_table(api_settings.served_path, ORDERS, DATA.replace(" as day", " as day, 1 as extra"))
    now = client.get(f"/api/v1/data/tables/{ORDERS}", headers=agent).json()["schema_version"]
    assert now != first
    r = client.post("/api/v1/queries/execute", json={"query": "select count(*) from orders"},
                    headers=agent | {"If-Schema-Version": first})
    assert r.json()["schema_changes"] == [{"table": ORDERS, "expected": first, "current": now}]
    assert r.headers["agents-data-schema-changed"] == ORDERS
    pairs = client.post("/api/v1/queries/execute", json={"query": "select count(*) from orders"},
                        headers=agent | {"If-Schema-Version": f"demo.public.ORDERS={now}"})
    assert pairs.json()["schema_changes"] == []
    assert_error(client.post("/api/v1/queries/execute", json={"query": "select 1 from orders"},
                             headers=agent | {"If-Schema-Version": "=x,"}), 400, rule="invalid_schema_version")


def test_inline_answers_carry_provenance_headers(client: Any, agent: dict[str, str]) -> None:
    r = run(client, agent, query="select id from orders order by id")
    prov = json.loads(r.headers["agents-data-provenance"])
    body = r.json()
    assert (prov["truncated"], prov["cut_by"], prov["limit"], prov["row_count"]) == (True, "row_cap", 400, 400)
    assert prov["sql_hash"] == body["sql_hash"]
    assert prov["tables"][0]["version"] == body["tables"][0]["version"]
    assert prov["tables"][0]["source_watermark"] is None  # a full-copy table has no cursor
    assert prov["job_id"] is body["job_id"] is None  # an inline answer is not kept: no job to name


def test_an_artifact_saved_from_a_continuation_keeps_its_provenance(client: Any, agent: dict[str, str]) -> None:
    cont = run(client, agent, query="select id, amount from orders order by id").json()["continuation"]
    finished(client, agent, cont["status_url"])
    prov = json.loads(client.get(cont["result_url"], headers=agent).headers["agents-data-provenance"])
    a = client.post(cont["artifact_url"], json={"name": "all.parquet", "format": "parquet"}, headers=agent)
    assert a.status_code == 201, a.text
    art = a.json()
    assert art["source_job_id"] == cont["job_id"]
    assert art["served_versions"][0]["table"] == ORDERS
    content = pq.ParquetFile(io.BytesIO(client.get(art["content_url"], headers=agent).content))
    assert content.metadata.num_rows == 3000
    assert json.loads(content.metadata.metadata[b"agents_data.provenance"]) == prov
    # a CSV result saved as Parquet is converted, and gets the same provenance
    job = run(client, agent, query="select id from orders where id < 10", output_format="csv").json()
    b = client.post(f"/api/v1/queries/jobs/{job['job_id']}/artifact", json={"format": "parquet"}, headers=agent).json()
    converted = pq.ParquetFile(io.BytesIO(client.get(b["content_url"], headers=agent).content))
    got = json.loads(converted.metadata.metadata[b"agents_data.provenance"])
    assert (got["job_id"], got["row_count"], got["truncated"]) == (job["job_id"], 10, False)
    assert got["tables"][0]["version"] == job["tables"][0]["version"]
