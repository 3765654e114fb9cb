"""The MCP single exchange: a plain request is answered in its own task, exactly as the SDK's
per-request transport answers it; everything else still goes to that transport."""

from __future__ import annotations

import dataclasses
import itertools
import re
from typing import Any

import pytest
from mcp.server import streamable_http_manager

from serving.lib.services import Services
from serving.mcp.exchange import SingleExchange
from serving.mcp.services import get_mcp
from shared.settings import Settings
from tests.conftest import publish_table
from tests.serving.test_mcp_tools import ACCEPT, DATA, ORDERS, SECRET

_ids = itertools.count(1000)


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, mcp=dataclasses.replace(settings.mcp, allowed_hosts="testserver.local"))


@pytest.fixture
def agent(client: Any, api_settings: Settings, make_swarm: Any, agent_headers: Any) -> dict[str, str]:
    publish_table(api_settings.served_path, ORDERS, DATA)
    publish_table(api_settings.served_path, SECRET, "select 1 as x")
    return agent_headers(make_swarm([ORDERS])["id"])  # type: ignore[no-any-return]


AGE = re.compile(r"age [^,;)\n]+|synced [0-9.]+ (?:s|min|h|d) ago")  # ages tick between the two calls


class Transports:
    """Counts the SDK's per-request transports built while it is installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.built = 0
        real = streamable_http_manager.StreamableHTTPServerTransport

        def counting(*args: Any, **kwargs: Any) -> Any:
            self.built += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(streamable_http_manager, "StreamableHTTPServerTransport", counting)


def post(client: Any, headers: dict[str, str], body: Any, extra: dict[str, str] | None = None) -> Any:
    return client.post("/mcp", headers=ACCEPT | headers | (extra or {}), json=body)


def req(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params or {}}


PLAIN = [
    ("tools/list", {}),
    ("tools/call", {"name": "query", "arguments": {"sql": "select id, status from orders where id = ?", "params": [7]}}),
    ("tools/call", {"name": "query", "arguments": {"sql": f"select * from {SECRET}"}}),  # refused by the route
    ("tools/call", {"name": "query", "arguments": {"sql": 42}}),  # arguments the tool's schema refuses
    ("tools/call", {"name": "no_such_tool", "arguments": {}}),
    ("tools/call", {"name": "describe_table", "arguments": {"table": ORDERS}}),
    ("resources/list", {}),
    ("no/such_method", {}),
]


@pytest.mark.parametrize(("method", "params"), PLAIN)
def test_a_plain_request_skips_the_transport_and_answers_as_the_sdk_does(  # noqa: PLR0917 - fixtures
        client: Any, agent: dict[str, str], services: Services, monkeypatch: pytest.MonkeyPatch,
        method: str, params: dict[str, Any]) -> None:
    transports = Transports(monkeypatch)
    parts = get_mcp(services)
    assert isinstance(parts.app, SingleExchange)
    body = req(method, params)
    fast = post(client, agent, body)
    assert transports.built == 0
    monkeypatch.setattr(parts, "app", parts.app.sdk)  # the SDK's own app and transport, for comparison
    slow = post(client, agent, body)
    assert transports.built == 1
    assert (fast.status_code, fast.headers["content-type"]) == (slow.status_code, slow.headers["content-type"])
    assert fast.status_code == 200
    assert AGE.sub("age", fast.text) == AGE.sub("age", slow.text)
    assert fast.json()["id"] == body["id"]


def test_other_requests_still_go_to_the_sdk_transport(client: Any, agent: dict[str, str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    transports = Transports(monkeypatch)
    init = post(client, agent, req("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                                  "clientInfo": {"name": "t", "version": "1"}}))
    assert init.status_code == 200
    assert init.json()["result"]["serverInfo"]["name"] == "agents-data"
    assert transports.built == 1
    note = post(client, agent, {"jsonrpc": "2.0", "method": "notifications/initialized"})
    assert note.status_code == 202
    assert transports.built == 2
    bad = client.post("/mcp", headers=ACCEPT | agent, content=b"{not json")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == -32700  # the SDK's parse error
    assert transports.built == 3
    odd_type = client.post("/mcp", headers=ACCEPT | agent | {"content-type": "Application/JSON"},
                           content=b'{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}')
    assert odd_type.status_code == 415  # the transport's own refusal
    assert transports.built == 4
    sse_only = post(client, agent, req("tools/list"), {"accept": "text/event-stream"})
    assert sse_only.status_code == 406
    assert transports.built == 5
    versioned = post(client, agent, req("tools/list"), {"mcp-protocol-version": "2025-06-18"})
    assert versioned.status_code == 200
    assert versioned.json()["result"]["tools"]
    assert transports.built == 5  # a handshake-era version header is still a plain request


def test_a_refused_host_and_a_missing_token_are_refused_before_any_tool(client: Any, agent: dict[str, str]) -> None:
    foreign = post(client, agent, req("tools/list"), {"host": "evil.example"})
    assert foreign.status_code == 421
    anonymous = client.post("/mcp", headers=ACCEPT, json=req("tools/list"))
    assert anonymous.status_code == 401
    assert "www-authenticate" in anonymous.headers
    forged = post(client, {"authorization": "Bearer not-a-token"}, req("tools/list"))
    assert forged.status_code == 401
    assert "www-authenticate" in forged.headers


def test_a_path_besides_the_endpoint_is_the_sdk_apps_to_refuse(client: Any, agent: dict[str, str]) -> None:
    assert client.post("/mcp/elsewhere", headers=ACCEPT | agent, json=req("tools/list")).status_code == 404
