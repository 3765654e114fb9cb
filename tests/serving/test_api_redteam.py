"""Red-team cases over the real app: what one agent may reach of another's, and bad input on every route.

Two swarms with different grants and two agents in each (plus swarm tokens and the admin),
all minted through the admin endpoints, over the real engine and a SQLite control
database. Each test asserts the exact answer (status, code, rule) and that nothing of the
other side leaked or changed.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any
from urllib.parse import quote

import pytest
from litestar import Litestar

from serving.app import create_app
from shared.settings import Settings
from tests.conftest import publish_table
from tests.serving import sync_support
from tests.serving.dagster_fake import FakeDagster
from tests.serving.helpers import MCP_ACCEPT, assert_error, bearer, mcp_rpc, mcp_tool, mint_token

sync_source = sync_support.sync_source  # for TestRefreshPollUrl (its Snowflake stand-in and fake Dagster)
fake_dagster = sync_support.fake_dagster

ORDERS, SECRET = "demo.public.orders", "demo.public.secret"
TOOLS_LIST = b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}'


@dataclasses.dataclass
class World:
    client: Any
    h: dict[str, dict[str, str]]  # a1, a2 (swarm 1: orders), b1, b2 (swarm 2: secret), s1, s2, admin
    ids: dict[str, str]  # token ids
    swarms: dict[str, str]


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    mcp = dataclasses.replace(settings.mcp, allowed_hosts="testserver.local")
    return dataclasses.replace(settings, mcp=mcp)


@pytest.fixture
def world(client: Any, api_settings: Settings, admin_headers: dict[str, str], make_swarm: Any) -> World:
    publish_table(api_settings.served_path, ORDERS, "select range as id, 'note ' || range as note from range(200)")
    publish_table(api_settings.served_path, SECRET, "select range as id, 'ssn-' || range as ssn from range(20)")
    s1, s2 = make_swarm([ORDERS])["id"], make_swarm([SECRET])["id"]
    minted = {n: mint_token(client, admin_headers, "agent", s1) for n in ("a1", "a2")}
    minted |= {n: mint_token(client, admin_headers, "agent", s2) for n in ("b1", "b2")}
    minted |= {"s1": mint_token(client, admin_headers, "swarm", s1), "s2": mint_token(client, admin_headers, "swarm", s2)}
    h = {n: bearer(m["token"]) for n, m in minted.items()} | {"admin": admin_headers}
    return World(client, h, {n: m["token_id"] for n, m in minted.items()}, {"s1": s1, "s2": s2})


def _finished_job(w: World, who: str, sql: str) -> str:
    r = w.client.post("/api/v1/queries/execute", json={"query": sql, "wait_s": 0}, headers=w.h[who])
    assert r.status_code in (200, 202), r.text
    job = str(r.json()["job_id"])
    for _ in range(200):
        if w.client.get(f"/api/v1/queries/jobs/{job}", headers=w.h[who]).json()["status"] == "succeeded":
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job} did not finish")


# -- the MCP mount: refusals in the one error shape, and no open-ended GET -------------------------
@pytest.mark.parametrize("accept", ["text/event-stream", "application/json, text/event-stream", "*/*"])
def test_a_get_on_the_mcp_endpoint_is_a_405_not_an_open_stream(world: World, accept: str) -> None:
    started = time.monotonic()
    for path in ("/mcp", "/mcp/"):
        r = world.client.get(path, headers=world.h["a1"] | {"accept": accept})
        error = assert_error(r, 405, "method_not_allowed", "mcp_method_not_allowed")
        assert r.headers["allow"] == "POST"
        assert "event stream" in error["message"]
    assert time.monotonic() - started < 5
    # the endpoint still answers POSTs afterwards
    r = world.client.post("/mcp", headers=world.h["a1"] | MCP_ACCEPT, content=TOOLS_LIST)
    assert r.status_code == 200
    assert "list_tables" in r.text


@pytest.mark.parametrize(("case", "headers", "path", "status"), [
    ("foreign host", {"host": "evil.example"}, "/mcp", 421),
    ("text content type", {"content-type": "text/plain"}, "/mcp", 400),
    ("another path under the mount", {}, "/mcp/x", 404),
    ("a deeper path", {}, "/mcp/tools/list", 404),
])
def test_mcp_transport_refusals_come_in_the_one_error_shape(world: World, case: str, headers: dict[str, str],
                                                             path: str, status: int) -> None:
    r = world.client.post(path, headers=world.h["a1"] | MCP_ACCEPT | headers, content=TOOLS_LIST)
    error = assert_error(r, status, rule="mcp_transport")
    assert error["message"] != "refused", case
    assert "list_tables" not in r.text


@pytest.mark.parametrize("auth", [None, "Bearer not-a-token", "Basic abc"])
def test_mcp_401_keeps_its_challenge_and_uses_the_one_error_shape(world: World, auth: str | None) -> None:
    headers = MCP_ACCEPT | ({"authorization": auth} if auth else {})
    r = world.client.post("/mcp", headers=headers, content=TOOLS_LIST)
    assert_error(r, 401, "unauthorized", "mcp_transport")
    assert r.headers["www-authenticate"].startswith("Bearer ")


def test_an_oversized_mcp_body_is_a_413_in_the_one_error_shape(world: World) -> None:
    body = b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "query", "arguments": {"sql": "' \
        + b"x" * (5 << 20) + b'"}}}'
    r = world.client.post("/mcp", headers=world.h["a1"] | MCP_ACCEPT, content=body)
    assert_error(r, 413, "payload_too_large", "mcp_transport")


def test_jsonrpc_errors_stay_the_protocols_own(world: World) -> None:
    """A parse error is a JSON-RPC message an MCP client reads: it is not rewritten."""
    r = world.client.post("/mcp", headers=world.h["a1"] | MCP_ACCEPT, content=b"{")
    assert r.status_code == 400
    body = r.json()
    assert body["jsonrpc"] == "2.0"
    assert body["error"]["code"] == -32700


# -- MCP: a name or id is one path segment of the route a tool calls -------------------------------
def _rpc(w: World, who: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    return mcp_rpc(w.client, w.h[who], method, params)


def _tool(w: World, who: str, tool: str, **args: Any) -> tuple[str, bool]:
    return mcp_tool(w.client, w.h[who], tool, **args)


def _upload(w: World, who: str, content: bytes, content_type: str, visibility: str) -> str:
    r = w.client.post("/api/v1/artifacts", headers=w.h[who], files={"file": ("f", content, content_type)},
                      data={"visibility": visibility})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_an_mcp_id_with_a_slash_reaches_no_other_route(world: World, caplog: pytest.LogCaptureFixture) -> None:
    art = _upload(world, "a1", b"[1, 2, 3]", "application/json", "swarm")
    job = _finished_job(world, "a1", "select id from orders order by id limit 3")
    cases = [("read_artifact", {"artifact_id": f"{art}/content"}), ("read_artifact", {"artifact_id": ""}),
             ("read_artifact", {"artifact_id": f"../queries/jobs/{job}"}),
             ("describe_table", {"table": "orders/profile"}), ("sample", {"table": "orders/profile"}),
             ("profile", {"table": "orders/sample"}), ("describe_table", {"table": ""}),
             ("get_job", {"job_id": f"{job}/result"}), ("get_job", {"job_id": "x", "table": "orders/sample"}),
             ("save_result_as_artifact", {"job_id": f"{job}/rows"}), ("refresh_table", {"table": "orders/refresh/x"})]
    for tool, args in cases:
        text, err = _tool(world, "a2" if tool == "read_artifact" else "a1", tool, **args)
        assert err, (tool, args, text)
        assert "rule=invalid_name" in text, (tool, args, text)
        assert "may not contain '/'" in text
    assert "raised an unexpected exception" not in caplog.text
    assert "Traceback" not in caplog.text
    # nothing was saved, and the proper ids still work
    listed = world.client.get("/api/v1/artifacts", headers=world.h["a1"]).json()
    assert [a["id"] for a in listed["items"]] == [art]
    text, err = _tool(world, "a2", "read_artifact", artifact_id=art)
    assert not err, text
    assert "[1, 2, 3]" in text


@pytest.mark.parametrize("uri", ["table://orders/profile/schema", "table:///schema", "table://orders/sample/schema",
                                 "artifact://{art}/content", "artifact://", "artifact://../queries/jobs/x"])
def test_an_mcp_resource_uri_reaches_no_other_route(world: World, uri: str) -> None:
    art = _upload(world, "a1", b"hello", "text/plain", "swarm")
    answer = _rpc(world, "a1", "resources/read", {"uri": uri.format(art=art)})
    assert "result" not in answer, answer
    assert "may not contain '/'" in answer["error"]["message"]
    assert "null_count" not in str(answer)  # a profile's figures
    # the proper resources still read
    ok = _rpc(world, "a1", "resources/read", {"uri": f"table://{ORDERS}/schema"})["result"]["contents"][0]["text"]
    assert '"columns"' in ok
    assert _rpc(world, "a1", "resources/read", {"uri": f"artifact://{art}"})["result"]["contents"][0]["text"] == "hello"


# -- held: regression cases for isolation and bad input --------------------------------------------
SLOW = "select count(*) from range(100000000000) t(i) where hash(i) % 1000003 = 7"


def test_a_query_job_answers_only_its_own_token(world: World) -> None:
    job = _finished_job(world, "a1", "select id, note from orders order by id limit 3")
    before = world.client.get(f"/api/v1/queries/jobs/{job}/rows", headers=world.h["a1"]).json()["rows"]
    for who in ("a2", "b1", "b2", "s1", "s2"):
        for path in (f"/api/v1/queries/jobs/{job}", f"/api/v1/queries/{job}", f"/api/v1/queries/jobs/{job}/result",
                     f"/api/v1/queries/jobs/{job}/rows", f"/api/v1/queries/jobs/{job}/rows?cursor=MA&limit=1"):
            r = world.client.get(path, headers=world.h[who])
            assert_error(r, 404, "not_found", "job_not_found")
            assert "note 0" not in r.text
        assert_error(world.client.delete(f"/api/v1/queries/jobs/{job}", headers=world.h[who]), 404, rule="job_not_found")
        r = world.client.post(f"/api/v1/queries/jobs/{job}/artifact", json={}, headers=world.h[who])
        assert r.status_code in (403, 404), r.text
        assert_error(r, r.status_code)
    assert world.client.get(f"/api/v1/queries/jobs/{job}", headers=world.h["a1"]).json()["status"] == "succeeded"
    assert world.client.get(f"/api/v1/queries/jobs/{job}/rows", headers=world.h["a1"]).json()["rows"] == before
    for who in ("a2", "b1", "s1"):
        assert world.client.get("/api/v1/artifacts", headers=world.h[who]).json()["items"] == []


def test_a_running_job_is_cancelled_only_by_its_token(world: World) -> None:
    r = world.client.post("/api/v1/queries/execute", json={"query": SLOW, "wait_s": 0, "timeout_s": 30},
                          headers=world.h["a1"])
    job = r.json()["job_id"]
    for who in ("a2", "b1", "s1"):
        assert_error(world.client.delete(f"/api/v1/queries/jobs/{job}", headers=world.h[who]), 404, rule="job_not_found")
    assert world.client.get(f"/api/v1/queries/jobs/{job}", headers=world.h["a1"]).json()["status"] in ("queued", "running")
    assert world.client.delete(f"/api/v1/queries/jobs/{job}", headers=world.h["a1"]).json()["status"] == "cancelled"


@pytest.mark.parametrize("name", [SECRET, "secret", "SECRET", '"secret"', '"demo"."public"."secret"', "DEMO.PUBLIC.SECRET",
                                  " secret", "secret ", "secret.", "public.secret", "demo..secret", "ｓecret", "seсret",
                                  "secret\x00", "../secret", "demo%2Epublic%2Esecret", "secret\t"])
def test_an_ungranted_table_is_unreachable_in_every_spelling(world: World, name: str) -> None:
    q = quote(name, safe="")
    for suffix in ("", "/sample", "/profile", "/sample?method=head&format=CSV"):
        r = world.client.get(f"/api/v1/data/tables/{q}{suffix}", headers=world.h["a1"])
        assert r.status_code in (400, 404), (name, suffix, r.status_code, r.text)
        assert_error(r, r.status_code)
        assert "ssn" not in r.text
    r = world.client.post(f"/api/v1/data/tables/{q}/refresh", headers=world.h["a1"])
    assert r.status_code in (400, 404), r.text
    assert "ssn" not in r.text
    r = world.client.post("/api/v1/queries/execute", json={"query": f"select * from {name}"}, headers=world.h["a1"])
    assert r.status_code in (400, 404), r.text
    assert "ssn-" not in r.text


def test_mcp_tools_and_resources_do_not_cross_swarms(world: World) -> None:
    job = _finished_job(world, "a1", "select id, note from orders order by id limit 3")
    art = _upload(world, "a1", b"swarm one only", "text/plain", "swarm")
    for tool, args in [("describe_table", {"table": ORDERS}), ("sample", {"table": "orders"}),
                       ("profile", {"table": "orders"}), ("query", {"sql": "select * from orders"}),
                       ("get_job", {"job_id": job}), ("save_result_as_artifact", {"job_id": job}),
                       ("read_artifact", {"artifact_id": art})]:
        text, err = _tool(world, "b1", tool, **args)
        assert err, (tool, text)
        assert "note 0" not in text
        assert "swarm one only" not in text
    for uri in (f"table://{ORDERS}/schema", f"artifact://{art}"):
        assert "result" not in _rpc(world, "b1", "resources/read", {"uri": uri})
    listed = _rpc(world, "b1", "resources/list", {})["result"]["resources"]
    assert [x["uri"] for x in listed] == [f"table://{SECRET}/schema"]
    text, _ = _tool(world, "a2", "read_artifact", artifact_id=art)  # the same swarm may
    assert "swarm one only" in text


def test_a_swarm_token_mints_no_agent_beyond_its_grants(world: World) -> None:
    for tables in ([SECRET], ["DEMO.PUBLIC.SECRET"], [ORDERS, SECRET], ["*"], [" secret "]):
        r = world.client.post("/api/v1/swarm/agents/tokens", json={"name": "x", "allowed_tables": tables},
                              headers=world.h["s1"])
        assert_error(r, 400)
    for who in ("a1", "s1", "b1"):
        for method, path in (("GET", "/api/v1/admin/swarms"), ("POST", "/api/v1/admin/tokens"),
                             ("GET", "/api/v1/admin/audit"), ("PUT", f"/api/v1/admin/swarms/{world.swarms['s2']}/budget"),
                             ("DELETE", f"/api/v1/admin/tokens/{world.ids['b1']}"), ("GET", "/api/v1/sync/tables")):
            r = world.client.request(method, path, headers=world.h[who], json={})
            assert_error(r, 403, "forbidden", "requires_admin")
    assert world.client.get("/api/v1/data/tables", headers=world.h["b1"]).json()["count"] == 1


def test_a_grant_removed_stops_a_continuation_and_a_revoked_token_stops_its_job(world: World) -> None:
    r = world.client.post("/api/v1/queries/execute", json={"query": "select * from orders", "max_rows": 5},
                          headers=world.h["a1"])
    cont = r.json()["continuation"]
    slow = world.client.post("/api/v1/queries/execute", json={"query": SLOW, "wait_s": 0, "timeout_s": 30},
                             headers=world.h["a2"]).json()["job_id"]
    r = world.client.delete(f"/api/v1/admin/tokens/{world.ids['a2']}", headers=world.h["admin"])
    assert r.status_code == 200, r.text
    r = world.client.patch(f"/api/v1/admin/swarms/{world.swarms['s1']}", json={"grants": []}, headers=world.h["admin"])
    assert r.status_code == 200, r.text
    for url in (cont["status_url"], cont["next_url"], cont["result_url"]):
        error = assert_error(world.client.get(url, headers=world.h["a1"]), 403, "forbidden", "table_not_granted")
        assert error["details"]["tables"] == [ORDERS]
    assert_error(world.client.get(f"/api/v1/queries/jobs/{slow}", headers=world.h["a2"]), 401, rule="token_revoked")
    for _ in range(100):
        status = world.client.get(f"/api/v1/queries/jobs/{slow}", headers=world.h["admin"]).json()["status"]
        if status != "running":
            break
        time.sleep(0.05)
    assert status == "cancelled"


@pytest.mark.parametrize("cursor", ["!!!", "LTE", "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5", "MWUz", "AP8", "TmFO", "x" * 5000,
                                    "77yR77yQ"])
def test_a_forged_cursor_or_limit_is_a_400(world: World, cursor: str) -> None:
    job = _finished_job(world, "a1", "select id from orders")
    r = world.client.get(f"/api/v1/queries/jobs/{job}/rows", params={"cursor": cursor}, headers=world.h["a1"])
    assert_error(r, 400)
    for limit in ("0", "-1", "1.5", "NaN", "99999999999999999999999", "10001"):
        r = world.client.get(f"/api/v1/queries/jobs/{job}/rows", params={"limit": limit}, headers=world.h["a1"])
        assert_error(r, 400)


class TestRefreshPollUrl:
    """The fake Dagster (``sync_support``) behind the API, for these refreshes only."""

    @pytest.fixture
    def app(self, api_settings: Settings, fake_dagster: FakeDagster) -> Litestar:
        app = create_app(api_settings)
        app.state.services.parts["dagster"] = fake_dagster.client(api_settings.dagster)
        app.state.services.parts["load_check"] = sync_support.in_process_load_check
        return app

    @pytest.mark.parametrize("spelling", [" items ", "ITEMS", '"items"', 'demo.synctest."items"', "DEMO.SYNCTEST.ITEMS"])
    def test_the_poll_url_names_the_table_by_its_key_whatever_the_spelling(
            self, client: Any, admin_headers: dict[str, str], make_swarm: Any, agent_headers: Any,
            spelling: str) -> None:
        r = client.post("/api/v1/sync/tables/register", json=sync_support.register_body(), headers=admin_headers)
        assert r.status_code == 201, r.text
        agent = agent_headers(make_swarm([sync_support.ITEMS])["id"])
        r = client.post(f"/api/v1/data/tables/{quote(spelling, safe='')}/refresh", headers=agent)
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["poll_url"] == f"/api/v1/data/tables/{sync_support.ITEMS}/refresh/{body['job_id']}"
        polled = client.get(body["poll_url"], headers=agent)
        assert polled.status_code == 200, polled.text
        assert polled.json()["table"] == sync_support.ITEMS

    def test_a_shared_refresh_names_no_other_swarms_agent(self, client: Any, admin_headers: dict[str, str],
                                                          make_swarm: Any) -> None:
        r = client.post("/api/v1/sync/tables/register", json=sync_support.register_body(), headers=admin_headers)
        assert r.status_code == 201, r.text
        s1, s2 = make_swarm([sync_support.ITEMS])["id"], make_swarm([sync_support.ITEMS])["id"]
        first = bearer(mint_token(client, admin_headers, "agent", s1, name="alice-of-swarm-one")["token"])
        other = bearer(mint_token(client, admin_headers, "agent", s2, name="bob-of-swarm-two")["token"])
        started = client.post(f"/api/v1/data/tables/{sync_support.ITEMS}/refresh", headers=first)
        joined = client.post(f"/api/v1/data/tables/{sync_support.ITEMS}/refresh", headers=other)
        assert started.status_code == joined.status_code == 202, joined.text
        assert joined.json()["job_id"] == started.json()["job_id"]  # one refresh, whoever asks
        url = started.json()["poll_url"]
        seen = client.get(url, headers=other)
        assert seen.status_code == 200, seen.text
        assert seen.json()["requested_by"] is None
        assert "alice-of-swarm-one" not in seen.text
        assert client.get(url, headers=first).json()["requested_by"] == "alice-of-swarm-one"
        assert client.get(url, headers=admin_headers).json()["requested_by"] == "alice-of-swarm-one"


# -- If-Schema-Version: names resolve among the query's own tables ----------------------------------
def _catalog_version(w: World, who: str, table: str) -> str:
    return str(w.client.get(f"/api/v1/data/tables/{table}", headers=w.h[who]).json()["schema_version"])


@pytest.mark.parametrize("header", ["orders=s-000000000000", "public.orders=s-000000000000", '"orders"=s-000000000000',
                                    "DEMO.PUBLIC.ORDERS=s-000000000000"])
def test_if_schema_version_takes_the_names_written_in_sql(world: World, header: str) -> None:
    current = _catalog_version(world, "a1", ORDERS)
    r = world.client.post("/api/v1/queries/execute", json={"query": "select count(*) from orders"},
                          headers=world.h["a1"] | {"if-schema-version": header})
    assert r.status_code == 200, r.text
    assert r.json()["schema_changes"] == [{"table": ORDERS, "expected": "s-000000000000", "current": current}]
    assert r.headers["agents-data-schema-changed"] == ORDERS
    r = world.client.post("/api/v1/queries/execute", json={"query": "select count(*) from orders"},
                          headers=world.h["a1"] | {"if-schema-version": header.replace("s-000000000000", current)})
    assert r.status_code == 200, r.text
    assert r.json()["schema_changes"] == []


@pytest.mark.parametrize("names", [SECRET, "secret", "demo.public.nothing", "a=b", "x" * 300, "demo..orders"])
def test_if_schema_version_reveals_nothing_of_tables_the_query_does_not_read(world: World, names: str) -> None:
    secret_version = _catalog_version(world, "b1", SECRET)
    for how in ("header", "body"):
        kwargs: dict[str, Any] = {"json": {"query": "select count(*) from orders"}, "headers": world.h["a1"]}
        if how == "header":
            kwargs["headers"] = world.h["a1"] | {"if-schema-version": f"{names}=s-000000000000"}
        else:
            kwargs["json"]["if_schema_version"] = {names: "s-000000000000"}
        r = world.client.post("/api/v1/queries/execute", **kwargs)
        error = assert_error(r, 400, "bad_request", "invalid_schema_version")
        assert error["details"] == {"tables": [ORDERS]}
        assert secret_version not in r.text
        assert "agents-data-schema-changed" not in r.headers
    r = world.client.post("/api/v1/queries/execute", json={"query": "select count(*) from orders", "dry_run": True},
                          headers=world.h["a1"] | {"if-schema-version": f"{names}=s-1"})
    assert_error(r, 400, rule="invalid_schema_version")


def test_schema_versions_and_dry_runs_are_as_the_grant_policy_shows_the_table(world: World) -> None:
    r = world.client.put(f"/api/v1/admin/swarms/{world.swarms['s1']}/policies/{ORDERS}",
                         json={"exclude": ["note"], "row_filter": "id < 10"}, headers=world.h["admin"])
    assert r.status_code == 200, r.text
    seen = world.client.get(f"/api/v1/data/tables/{ORDERS}", headers=world.h["a1"]).json()
    raw = world.client.get(f"/api/v1/data/tables/{ORDERS}", headers=world.h["admin"]).json()
    assert seen["schema_version"] != raw["schema_version"]
    assert (seen["row_count"], raw["row_count"]) == (10, 200)
    r = world.client.post("/api/v1/queries/execute", headers=world.h["a1"],
                          json={"query": "select count(*) from orders", "if_schema_version": {"orders": seen["schema_version"]}})
    assert r.status_code == 200, r.text
    assert r.json()["schema_changes"] == []
    assert "agents-data-schema-changed" not in r.headers
    r = world.client.post("/api/v1/queries/execute", headers=world.h["a1"],
                          json={"query": "select count(*) from orders", "if_schema_version": {"orders": "s-000000000000"}})
    assert r.json()["schema_changes"] == [{"table": ORDERS, "expected": "s-000000000000",
                                           "current": seen["schema_version"]}]
    assert raw["schema_version"] not in r.text
    r = world.client.post("/api/v1/queries/execute", headers=world.h["a1"],
                          json={"query": "select * from orders", "dry_run": True})
    assert r.status_code == 200, r.text
    [table] = r.json()["tables"]
    assert (table["schema_version"], table["row_count"]) == (seen["schema_version"], 10)
    assert table["version"] == raw["served_version"]
    r = world.client.post("/api/v1/queries/execute", headers=world.h["admin"],  # the admin reads the raw table
                          json={"query": f"select * from {ORDERS}", "dry_run": True})
    assert (r.json()["tables"][0]["schema_version"], r.json()["tables"][0]["row_count"]) == (raw["schema_version"], 200)


def _publish_with_watermark(root: Any, key: str, select_sql: str, watermark: str) -> None:
    from shared.served import Column, publish, write_version

    with write_version(root, key, copy_previous=False) as pending:
        pending.con.execute(f"CREATE TABLE data AS {select_sql}")
        cols = pending.con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                   "WHERE table_name = 'data' ORDER BY ordinal_position").fetchall()
        rows = pending.con.execute("SELECT count(*) FROM data").fetchone()[0]
        publish(root, pending, strategy="incremental", row_count=rows, watermark=watermark,
                columns=[Column(name=c[0], type=c[1], nullable=True, description="") for c in cols])


def test_query_provenance_withholds_the_watermark_a_row_filter_would_undo(world: World, api_settings: Settings) -> None:
    """The highest cursor over every row (here: a day after every row the filter leaves) is a
    table-wide figure, withheld under a restricting policy as the refresh answers withhold it."""
    _publish_with_watermark(api_settings.served_path, ORDERS,
                            "select range as id, date '2025-01-01' + range::int as day from range(200)", "2025-07-19")
    r = world.client.put(f"/api/v1/admin/swarms/{world.swarms['s1']}/policies/{ORDERS}",
                         json={"row_filter": "id < 10"}, headers=world.h["admin"])
    assert r.status_code == 200, r.text
    for fmt in ("json", "csv"):
        body = {"query": "select max(day) from orders", "output_format": fmt}
        for who, expected in (("a1", None), ("admin", "2025-07-19")):
            query = body if who == "a1" else body | {"query": f"select max(day) from {ORDERS}"}
            r = world.client.post("/api/v1/queries/execute", json=query | {"wait_s": 10}, headers=world.h[who])
            assert r.status_code == 200, r.text
            prov = json.loads(r.headers["agents-data-provenance"]) if fmt == "json" else None
            if prov is None:
                status = world.client.get(r.json()["status_url"], headers=world.h[who])
                prov = json.loads(world.client.get(r.json()["result_url"], headers=world.h[who])
                                  .headers["agents-data-provenance"])
                assert status.status_code == 200
            assert prov["tables"][0]["source_watermark"] == expected, (who, fmt, prov)
            if who == "a1":
                assert "2025-07-19" not in r.text


class TestOnPostgres:
    """The strongest cases again with PostgreSQL as the control database (skipped without TEST_POSTGRES_URL)."""

    @pytest.fixture
    def app(self, api_settings: Settings, pg_url: str) -> Litestar:
        return create_app(dataclasses.replace(api_settings, database_url=pg_url))

    def test_a_query_job_answers_only_its_own_token(self, world: World) -> None:
        test_a_query_job_answers_only_its_own_token(world)

    def test_a_grant_removed_stops_a_continuation(self, world: World) -> None:
        test_a_grant_removed_stops_a_continuation_and_a_revoked_token_stops_its_job(world)

    def test_if_schema_version_reveals_nothing(self, world: World) -> None:
        test_if_schema_version_reveals_nothing_of_tables_the_query_does_not_read(world, SECRET)

    def test_mcp_ids_reach_no_other_route(self, world: World, caplog: pytest.LogCaptureFixture) -> None:
        test_an_mcp_id_with_a_slash_reaches_no_other_route(world, caplog)

    def test_forged_cursors(self, world: World) -> None:
        test_a_forged_cursor_or_limit_is_a_400(world, "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5")

    def test_a_nul_in_an_id_is_a_400_not_a_500(self, world: World) -> None:
        _nul_in_ids(world, postgres=True)

    def test_a_nul_in_a_body_text_is_a_400_and_stores_nothing(self, world: World) -> None:
        """PostgreSQL refuses NUL in text: the insert fails, the answer is the client's 400."""
        tokens = len(world.client.get("/api/v1/admin/tokens", headers=world.h["admin"]).json())
        swarms = len(world.client.get("/api/v1/admin/swarms", headers=world.h["admin"]).json())
        for who, method, path, body in (
                ("s1", "POST", "/api/v1/swarm/agents/tokens", {"name": "a\x00b"}),
                ("admin", "POST", "/api/v1/admin/tokens", {"type": "agent", "swarm_id": world.swarms["s1"], "name": "a\x00b"}),
                ("admin", "POST", "/api/v1/admin/swarms", {"name": "a\x00b", "grants": []}),
                ("admin", "PATCH", f"/api/v1/admin/swarms/{world.swarms['s1']}", {"description": "a\x00b"}),
                ("admin", "POST", f"/api/v1/admin/swarms/{world.swarms['s1']}/unmasked",
                 {"table": ORDERS, "column": "id", "reason": "a\x00b"})):
            r = world.client.request(method, path, json=body, headers=world.h[who])
            assert_error(r, 400, "bad_request", "nul_character")
        assert len(world.client.get("/api/v1/admin/tokens", headers=world.h["admin"]).json()) == tokens
        assert len(world.client.get("/api/v1/admin/swarms", headers=world.h["admin"]).json()) == swarms
        swarm = world.client.get(f"/api/v1/admin/swarms/{world.swarms['s1']}", headers=world.h["admin"]).json()
        assert swarm["description"] == ""
        assert world.client.get(f"/api/v1/admin/swarms/{world.swarms['s1']}/unmasked",
                                headers=world.h["admin"]).json() in ([], {"items": []}, {"unmasked": []})


# -- any method on any route: never a 5xx ------------------------------------------------------------
@pytest.mark.parametrize("method", ["OPTIONS", "PUT", "PATCH", "TRACE", "PROPFIND", "FOO"])
def test_any_method_on_any_route_is_answered_without_a_5xx(world: World, method: str) -> None:
    import re

    paths = world.client.get("/docs/openapi.json").json()["paths"]
    assert len(paths) > 20
    for template in paths:
        if "dagster" in template:
            continue
        path = re.sub(r"{[^}]+}", "x", template)
        for headers in ({}, world.h["a1"]):
            r = world.client.request(method, path, headers=headers)
            assert r.status_code < 500, (method, path, r.status_code, r.text[:300])
            if r.status_code >= 400 and r.content:
                assert_error(r, r.status_code)
    r = world.client.request("OPTIONS", "/api/v1/queries/execute", headers=world.h["a1"])
    assert r.status_code == 204, r.text
    assert "POST" in r.headers["allow"]


def test_a_nul_in_a_path_or_query_is_a_4xx_on_every_route(world: World) -> None:
    _nul_in_ids(world, postgres=False)


def _nul_in_ids(world: World, *, postgres: bool) -> None:
    job = _finished_job(world, "a1", "select 1 from orders limit 1")
    cases = [("a1", "GET", f"/api/v1/queries/jobs/{job}%00"), ("a1", "DELETE", "/api/v1/queries/jobs/a%00b"),
             ("a1", "GET", "/api/v1/queries/jobs/a%00b/rows"), ("a1", "GET", "/api/v1/artifacts/a%00b/content"),
             ("a1", "GET", "/api/v1/data/tables/orders%00/sample"), ("a1", "GET", "/api/v1/data/tables/orders/refresh/a%00"),
             ("a1", "GET", "/api/v1/artifacts?tag=a%00"), ("a1", "GET", f"/api/v1/queries/jobs/{job}/rows?cursor=MA%00"),
             ("admin", "GET", "/api/v1/admin/swarms/a%00b"), ("admin", "DELETE", "/api/v1/admin/tokens/a%00b"),
             ("admin", "GET", "/api/v1/admin/tokens/a%00b/budget"), ("admin", "GET", "/api/v1/admin/audit?token_id=a%00"),
             ("admin", "GET", "/api/v1/sync/jobs/a%00b")]
    for who, method, path in cases:
        r = world.client.request(method, path, headers=world.h[who])
        assert r.status_code < 500, (path, r.status_code, r.text)
        if r.status_code >= 400:
            error = assert_error(r, r.status_code)
            assert r.status_code == 404 or error["rule"] in ("nul_character", "invalid_cursor", "invalid_artifact_field")
        if postgres and "/artifacts" not in path and "cursor" not in path and "/data/tables/orders%00" not in path:
            assert_error(r, 400, "bad_request", "nul_character")  # PostgreSQL refuses the NUL in the lookup
    assert world.client.get(f"/api/v1/queries/jobs/{job}", headers=world.h["a1"]).json()["status"] == "succeeded"
