"""Shared test helpers for the API: the one error shape, and minting tokens through the real endpoints.

They take any client with httpx's ``get``/``post`` signature (Litestar's TestClient,
``httpx.Client`` against a real server in end-to-end tests).
"""

from __future__ import annotations

import itertools
import secrets
from typing import Any

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin-password"  # noqa: S105 (test credential); the ``settings`` fixture's ADMIN_PASSWORD


def assert_error(response: Any, status: int, code: str | None = None, rule: str | None = None) -> dict[str, Any]:
    """Assert ``response`` is an error in the one JSON error shape; return its ``error`` object."""
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {response.text[:500]}"
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"status", "code", "message", "rule", "details"}, error
    assert error["status"] == status
    assert isinstance(error["code"], str)
    assert error["code"]
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error["rule"] is None or isinstance(error["rule"], str)
    assert isinstance(error["details"], dict)
    text = response.text
    assert "Traceback" not in text, "a stack trace leaked"
    assert 'File "/' not in text, "an internal path leaked"
    if code is not None:
        assert error["code"] == code, error
    if rule is not None:
        assert error["rule"] == rule, error
    return error


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def admin_token(client: Any, username: str = ADMIN_USERNAME, password: str = ADMIN_PASSWORD) -> str:
    """Log in as admin through ``POST /api/v1/auth/token``."""
    r = client.post("/api/v1/auth/token", data={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def create_swarm(client: Any, admin_headers: dict[str, str], grants: list[str], name: str | None = None,
                 description: str = "") -> dict[str, Any]:
    """Create a swarm through ``POST /api/v1/admin/swarms``; return its JSON."""
    body = {"name": name or f"swarm-{secrets.token_hex(4)}", "description": description, "grants": grants}
    r = client.post("/api/v1/admin/swarms", json=body, headers=admin_headers)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


def mint_token(client: Any, headers: dict[str, str], kind: str, swarm_id: str | None = None, *,
               allowed_tables: list[str] | None = None, name: str | None = None, expires_in: int | None = None,
               via_swarm: bool = False) -> dict[str, Any]:
    """THE token-minting helper: admin ``POST /api/v1/admin/tokens`` or, with ``via_swarm``,
    a swarm token's ``POST /api/v1/swarm/agents/tokens``. Returns the creation JSON (with ``token``)."""
    body: dict[str, Any] = {"name": name or f"{kind}-{secrets.token_hex(4)}"}
    if expires_in is not None:
        body["expires_in"] = expires_in
    if allowed_tables is not None:
        body["allowed_tables"] = allowed_tables
    if via_swarm:
        assert kind == "agent", "a swarm token mints agent tokens only"
        r = client.post("/api/v1/swarm/agents/tokens", json=body, headers=headers)
    else:
        body.update(type=kind, swarm_id=swarm_id)
        r = client.post("/api/v1/admin/tokens", json=body, headers=headers)
    assert r.status_code == 201, r.text
    result: dict[str, Any] = r.json()
    return result


MCP_ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
_mcp_ids = itertools.count(1)


def mcp_rpc(client: Any, headers: dict[str, str], method: str, params: dict[str, Any]) -> dict[str, Any]:
    """One JSON-RPC call to ``/mcp`` as ``headers``' caller (200 expected: MCP errors are in the body)."""
    body = {"jsonrpc": "2.0", "id": next(_mcp_ids), "method": method, "params": params}
    r = client.post("/mcp", headers=headers | MCP_ACCEPT, json=body)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def mcp_tool(client: Any, headers: dict[str, str], tool: str, **args: Any) -> tuple[str, bool]:
    """An MCP tool's text answer and whether it is an error."""
    result = mcp_rpc(client, headers, "tools/call", {"name": tool, "arguments": args})["result"]
    return str(result["content"][0]["text"]), bool(result.get("isError"))
