"""Red-team cases over the real app: what one agent may reach of another's, and bad input on every route.

Two swarms with different grants and two agents in each (plus swarm tokens and the admin),
all minted through the admin endpoints, over the real engine and a SQLite control
database. Each test asserts the exact answer (status, code, rule) and that nothing of the
other side leaked or changed.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

from shared.settings import Settings
from tests.conftest import publish_table
from tests.serving.helpers import assert_error, bearer, mint_token

ORDERS, SECRET = "demo.public.orders", "demo.public.secret"
MCP_ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
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
