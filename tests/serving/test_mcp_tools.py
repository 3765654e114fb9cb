"""The MCP server at /mcp, through the Litestar test client (JSON-RPC over Streamable HTTP).

Fast checks of the mount, auth, every tool's answer and footer, resources, the audit rows'
transport, and that a refusal over MCP is the REST refusal (same status and rule). The
SDK's own client over a real server process is in ``tests/e2e/test_mcp_journey.py``.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import re
import time
from typing import Any

import pytest
import sqlalchemy as sa

from shared.control.db import get_engine
from shared.control.models import AuditRow
from shared.settings import Settings
from tests.conftest import publish_table

ORDERS, SECRET = "demo.public.orders", "demo.public.secret"
DATA = ("select range as id, ['new','paid','shipped'][1 + range % 3] as status, "
        "((range % 1000) / 100)::decimal(12,2) as amount, date '2025-01-01' + (range % 30)::int as day, "
        "'note ' || range as note from range(3000)")
ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
TOOLS = {"list_tables", "describe_table", "query", "sample", "profile", "refresh_table", "get_job",
         "save_result_as_artifact", "list_artifacts", "read_artifact"}
_ids = itertools.count(1)


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    q = dataclasses.replace(settings.query, max_rows=2500, json_max_rows=1000)
    mcp = dataclasses.replace(settings.mcp, allowed_hosts="testserver.local", answer_max_chars=3000)
    return dataclasses.replace(settings, query=q, mcp=mcp)


@pytest.fixture
def agent(client: Any, api_settings: Settings, make_swarm: Any, agent_headers: Any) -> dict[str, str]:
    publish_table(api_settings.served_path, ORDERS, DATA, descriptions={"id": "order id"})
    publish_table(api_settings.served_path, SECRET, "select 1 as x")
    return agent_headers(make_swarm([ORDERS])["id"])  # type: ignore[no-any-return]


def rpc(client: Any, headers: dict[str, str], method: str, params: dict[str, Any] | None = None,
        path: str = "/mcp") -> dict[str, Any]:
    r = client.post(path, headers=ACCEPT | headers,
                    json={"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params or {}})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def call(client: Any, headers: dict[str, str], tool: str, **args: Any) -> tuple[str, bool]:
    result = rpc(client, headers, "tools/call", {"name": tool, "arguments": args})["result"]
    return result["content"][0]["text"], bool(result.get("isError"))


def test_both_paths_answer_and_list_every_tool(client: Any, agent: dict[str, str]) -> None:
    for path in ("/mcp", "/mcp/"):
        init = rpc(client, agent, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                                 "clientInfo": {"name": "t", "version": "1"}}, path=path)
        assert init["result"]["serverInfo"]["name"] == "agents-data"
    tools = rpc(client, agent, "tools/list")["result"]["tools"]
    assert {t["name"] for t in tools} == TOOLS
    for t in tools:  # written for a model: what it is for, what it costs, what it returns
        assert len(t["description"]) > 120, t["name"]
        assert t["inputSchema"]["type"] == "object", t["name"]
    query = next(t for t in tools if t["name"] == "query")
    assert query["inputSchema"]["required"] == ["sql"]


@pytest.mark.parametrize("auth", [None, "Bearer not-a-token", "Basic abc"])
def test_missing_or_bad_tokens_get_401_with_a_challenge(client: Any, agent: dict[str, str], auth: str | None) -> None:
    headers = ACCEPT | ({"authorization": auth} if auth else {})
    r = client.post("/mcp", headers=headers, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer ")


def test_a_foreign_host_is_refused(client: Any, agent: dict[str, str]) -> None:
    r = client.post("/mcp", headers=ACCEPT | agent | {"host": "evil.example"},
                    json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
    assert r.status_code == 421


def test_query_renders_rows_and_a_footer(client: Any, agent: dict[str, str]) -> None:
    text, err = call(client, agent, "query", sql="select id, amount, day from orders where id in (?, ?) order by id",
                     params=[7, 1234567 % 3000])
    assert not err, text
    assert "| id (BIGINT) | amount (DECIMAL(12,2)) | day (DATE) |" in text
    assert "| 7 | 0.07 | 2025-01-08 |" in text
    version = client.get(f"/api/v1/data/tables/{ORDERS}", headers=agent).json()["served_version"]
    assert f"tables read: {ORDERS} version {version} (age " in text
    assert "rows: 2 shown; complete (nothing cut)" in text


def test_a_cut_answer_names_the_cut_and_its_continuation(client: Any, agent: dict[str, str]) -> None:
    text, err = call(client, agent, "query", sql="select id, note from orders order by id")
    assert not err
    assert len(text) <= 3000
    assert re.search(r"CUT by the server's row cap of 1000 and the answer budget of 3000 characters", text), text
    job_id = re.search(r"get_job with job_id=(\S+) ", text).group(1)  # type: ignore[union-attr]
    page, err = call(client, agent, "get_job", job_id=job_id)
    for _ in range(200):  # the continuation runs on: get_job says so until it has finished
        if "is running" not in page:
            break
        assert f"call get_job with job_id={job_id} in a few seconds" in page
        time.sleep(0.05)
        page, err = call(client, agent, "get_job", job_id=job_id)
    assert not err
    assert f"job {job_id}: rows 1–" in page
    assert "of 3000" in page  # the rest of a cut answer is the whole result
    cursor = re.search(r"cursor=(\S+)", page.split("the rest:")[1]).group(1)  # type: ignore[union-attr]
    nxt, _ = call(client, agent, "get_job", job_id=job_id, cursor=cursor)
    first_next = int(re.search(r"rows (\d+)–", nxt).group(1))  # type: ignore[union-attr]
    shown = int(re.search(r"rows 1–(\d+)", page).group(1))  # type: ignore[union-attr]
    assert first_next == shown + 1
    assert f"| {shown} | note {shown} |" in nxt


def test_a_budget_cut_without_a_server_cut_still_gives_a_job(client: Any, agent: dict[str, str]) -> None:
    text, err = call(client, agent, "query", sql="select id, note from orders order by id limit 500")
    assert not err
    assert "CUT by the answer budget of 3000 characters" in text
    assert "get_job with job_id=" in text


def test_the_rest_of_a_budget_cut_reads_the_version_the_shown_rows_came_from(
        client: Any, agent: dict[str, str], api_settings: Settings, monkeypatch: Any) -> None:
    """A sync publishing between the answer and its re-run must not change what the pages hold."""
    from serving.mcp.dispatch import RouteCaller

    original = RouteCaller.call

    async def publish_before_the_rerun(self: RouteCaller, method: str, path: str, **kw: Any) -> Any:
        if (kw.get("body") or {}).get("output_format") == "parquet":
            publish_table(api_settings.served_path, ORDERS, "select range as id, 'v2 ' || range as note from range(9)")
        return await original(self, method, path, **kw)

    monkeypatch.setattr(RouteCaller, "call", publish_before_the_rerun)
    text, err = call(client, agent, "query", sql="select id, note from orders order by id limit 500")
    assert not err, text
    assert "CUT by the answer budget" in text, text
    job_id = re.search(r"get_job with job_id=(\S+) ", text).group(1)  # type: ignore[union-attr]
    page = ""
    for _ in range(200):
        page, err = call(client, agent, "get_job", job_id=job_id)
        if "is running" not in page and "is queued" not in page:
            break
        time.sleep(0.05)
    assert not err, page
    assert "of 500" in page, page  # the shown rows' version, not the 9 rows published meanwhile
    assert "| 0 | note 0 |" in page, page
    assert "v2" not in page
    latest = client.get(f"/api/v1/data/tables/{ORDERS}", headers=agent).json()
    assert latest["row_count"] == 9  # the new version is served to new queries meanwhile


def test_a_query_refused_over_rest_is_refused_identically_over_mcp(client: Any, agent: dict[str, str]) -> None:
    for sql in ("select * from secret", "select getenv('HOME')", "delete from orders"):
        rest = client.post("/api/v1/queries/execute", json={"query": sql}, headers=agent)
        err = rest.json()["error"]
        text, is_error = call(client, agent, "query", sql=sql)
        assert is_error
        assert text == f"Error executing tool query: error {rest.status_code} rule={err['rule']}: {err['message']}"
    text, is_error = call(client, agent, "describe_table", table="secret")
    err = client.get("/api/v1/data/tables/secret", headers=agent).json()["error"]
    assert is_error
    assert f"error {err['status']} rule={err['rule'] or err['code']}: {err['message']}" in text


def test_catalog_sample_and_profile_tools(client: Any, agent: dict[str, str]) -> None:
    text, err = call(client, agent, "list_tables")
    assert not err
    assert f"- {ORDERS}: 3000 rows, 5 columns, fresh" in text
    assert "schema_version s-" in text
    assert "secret" not in text
    text, err = call(client, agent, "describe_table", table="orders")
    assert not err
    assert "- id BIGINT: order id" in text
    assert "5 sample rows (head):" in text
    assert len(re.findall(r"\| note \d+ \|", text)) == 5
    text, err = call(client, agent, "sample", table="orders", size=3, seed=7)
    assert not err
    assert "random sample of" in text
    assert "(seed 7)" in text
    assert "rows: 3 shown" in text
    text, err = call(client, agent, "profile", table="orders", columns=["amount", "status"])
    assert not err
    assert "- amount DECIMAL(12,2):" in text
    assert "- status VARCHAR:" in text
    assert "- id " not in text


def test_artifact_round_trip_and_resources(client: Any, agent: dict[str, str]) -> None:
    job = client.post("/api/v1/queries/execute", json={"query": "select id, status from orders order by id limit 20",
                                                      "output_format": "csv"}, headers=agent).json()
    text, err = call(client, agent, "save_result_as_artifact", job_id=job["job_id"], name="top.csv", format="csv")
    assert not err, text
    artifact_id = re.search(r"saved artifact (\S+)", text).group(1)  # type: ignore[union-attr]
    listed, _ = call(client, agent, "list_artifacts")
    assert f"- {artifact_id}: top.csv (text/csv" in listed
    assert f"from job {job['job_id']}" in listed
    content, err = call(client, agent, "read_artifact", artifact_id=artifact_id)
    assert not err
    assert "content:\n\"id\",\"status\"\n0,\"new\"\n1,\"paid\"" in content, content
    assert f"tables read: {ORDERS} version" in content
    resources = rpc(client, agent, "resources/list")["result"]["resources"]
    uris = {r["uri"] for r in resources}
    assert f"table://{ORDERS}/schema" in uris
    assert f"artifact://{artifact_id}" in uris
    assert not any("secret" in u for u in uris)
    schema = rpc(client, agent, "resources/read", {"uri": f"table://{ORDERS}/schema"})["result"]["contents"][0]
    assert '"name": "amount"' in schema["text"]
    assert '"schema_version": "s-' in schema["text"]
    art = rpc(client, agent, "resources/read", {"uri": f"artifact://{artifact_id}"})["result"]["contents"][0]
    assert art["text"].startswith("\"id\",\"status\"\n0,\"new\"")
    denied = rpc(client, agent, "resources/read", {"uri": f"table://{SECRET}/schema"})
    assert "error" in denied


def test_tool_calls_are_audited_as_their_routes_with_the_transport(client: Any, agent: dict[str, str],
                                                                   flush_audit: Any, api_settings: Settings) -> None:
    call(client, agent, "query", sql="select count(*) as n from orders")
    call(client, agent, "query", sql="select * from secret")
    client.post("/api/v1/queries/execute", json={"query": "select 1 as rest_marker"}, headers=agent)
    flush_audit()
    with get_engine(api_settings.control_url).connect() as conn:
        rows = conn.execute(sa.select(AuditRow.endpoint, AuditRow.status_code, AuditRow.rule, AuditRow.sql_text,
                                      AuditRow.transport, AuditRow.caller_type, AuditRow.tables)).all()
    mcp_queries = [r for r in rows if r.transport == "mcp" and r.endpoint == "/api/v1/queries/execute"]
    assert {(r.status_code, r.rule, r.sql_text) for r in mcp_queries} == {
        (200, None, "select count(*) as n from orders"), (400, "table_not_granted", "select * from secret")}
    assert all(r.caller_type == "agent" for r in mcp_queries)
    ok = next(r for r in mcp_queries if r.status_code == 200)
    assert ok.tables[0]["table"] == ORDERS
    assert any(r.transport == "rest" and r.sql_text == "select 1 as rest_marker" for r in rows)
    envelopes = [r for r in rows if r.endpoint.startswith("/mcp")]
    assert envelopes, sorted({(r.endpoint, r.transport) for r in rows})
    assert all(r.transport == "mcp" and r.caller_type == "agent" for r in envelopes)


def test_get_job_shows_a_running_query_jobs_progress_and_elapsed_time(client: Any, agent: dict[str, str]) -> None:
    started = client.post("/api/v1/queries/execute", headers=agent, json={
        "query": "select count(*) from range(4000000000) t(i) where hash(i) % 7 = 3", "wait_s": 0, "timeout_s": 120})
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]
    try:
        for _ in range(200):
            text, err = call(client, agent, "get_job", job_id=job_id)
            assert not err
            assert f"query job: job {job_id} is running" in text
            assert "elapsed_s: " in text
            if re.search(r"progress: 0\.\d*[1-9]", text):
                break
            time.sleep(0.1)
        assert re.search(r"progress: 0\.\d*[1-9]", text), text
    finally:
        client.delete(f"/api/v1/queries/jobs/{job_id}", headers=agent)

def test_building_the_server_leaves_the_process_logging_alone(api_settings: Settings, monkeypatch: Any) -> None:
    from serving.lib.services import Services
    from serving.mcp.server import build
    from serving.mcp.services import routes

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # a fresh process: no handler yet
    build(Services(settings=api_settings), routes)
    assert root.handlers == []


def test_saving_an_untouched_continuation_starts_it_first(client: Any, agent: dict[str, str]) -> None:
    cut = client.post("/api/v1/queries/execute", json={"query": "select id from orders order by id"},
                      headers=agent).json()
    cont = cut["continuation"]
    assert cont["status"] == "queued"  # lazy: nothing has run yet
    text, err = call(client, agent, "save_result_as_artifact", job_id=cont["job_id"], name="all.csv", format="csv")
    assert not err, text
    assert re.search(r"saved artifact (\S+)", text), text  # the status fetch ran it within QUERY_WAIT_S
    job = client.get(cont["status_url"], headers=agent).json()
    assert (job["status"], job["row_count"]) == ("succeeded", 3000)
