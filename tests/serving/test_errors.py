"""The one JSON error shape, locked (as datasette locks its own): every error the API can
answer — routing, validation, auth, limits, body size, crashes — has exactly this form."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from litestar import get
from litestar.testing import TestClient

from serving.app import create_app
from serving.lib import errors
from shared.settings import Settings
from tests.serving.helpers import assert_error, bearer, mint_token

SHAPE = {"error": {"status": int, "code": str, "message": str, "rule": (str, type(None)), "details": dict}}


def test_error_shape_is_exactly_this(client: Any) -> None:
    r = client.get("/no/such/thing")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"error": {"status": 404, "code": "not_found", "message": "no such resource", "rule": None,
                                  "details": {}}}
    body = r.json()
    assert set(body) == set(SHAPE)
    for key, kind in SHAPE["error"].items():
        assert isinstance(body["error"][key], kind), key


def test_error_body_helper_matches_the_shape() -> None:
    assert errors.error_body(418, "teapot", "short and stout") == {
        "error": {"status": 418, "code": "teapot", "message": "short and stout", "rule": None, "details": {}}}


# The hierarchy's status and code pairs are part of the contract agents parse.
HIERARCHY = {
    errors.BadRequest: (400, "bad_request"), errors.Unauthorized: (401, "unauthorized"),
    errors.Forbidden: (403, "forbidden"), errors.NotFound: (404, "not_found"), errors.Conflict: (409, "conflict"),
    errors.PayloadTooLarge: (413, "payload_too_large"), errors.Unprocessable: (422, "invalid"),
    errors.TooManyRequests: (429, "rate_limited"), errors.ServiceUnavailable: (503, "unavailable"),
    errors.QueryRejected: (400, "query_rejected"), errors.QueryTimeout: (408, "query_timeout"),
}


@pytest.mark.parametrize(("cls", "expected"), list(HIERARCHY.items()), ids=[c.__name__ for c in HIERARCHY])
def test_each_api_error_answers_its_status_and_code(api_settings: Settings, cls: type[errors.ApiError],
                                                    expected: tuple[int, str]) -> None:
    @get("/test/raise", sync_to_thread=False)
    def raising() -> None:
        raise cls("it went wrong", rule="some_rule", details={"k": "v"}, headers={"X-Extra": "1"})

    app = create_app(api_settings)
    app.register(raising)
    with TestClient(app) as client:
        r = client.get("/test/raise")
    error = assert_error(r, expected[0], expected[1], "some_rule")
    assert error == {"status": expected[0], "code": expected[1], "message": "it went wrong", "rule": "some_rule",
                     "details": {"k": "v"}}
    assert r.headers["x-extra"] == "1"


def _cases(client: Any, admin: dict[str, str], agent: dict[str, str]) -> list[tuple[str, Any, int]]:
    return [
        ("unknown route", client.get("/api/v1/nothing"), 404),
        ("wrong method", client.put("/health"), 405),
        ("bad json", client.post("/api/v1/admin/swarms", content=b"{not json", headers=admin), 400),
        ("wrong field type", client.post("/api/v1/admin/swarms", json={"name": 5}, headers=admin), 400),
        ("bad query param", client.get("/api/v1/admin/audit", params={"limit": "many"}, headers=admin), 400),
        ("missing token", client.get("/api/v1/admin/swarms"), 401),
        ("bad token", client.get("/api/v1/admin/swarms", headers=bearer("x.y.z")), 401),
        ("forbidden", client.get("/api/v1/admin/swarms", headers=agent), 403),
        ("missing swarm", client.get("/api/v1/admin/swarms/swm_missing", headers=admin), 404),
        ("conflict", client.post("/api/v1/admin/swarms", json={"name": "dup"}, headers=admin), 409),
        ("body too large", client.post("/api/v1/admin/swarms", content=b"x" * (11 * 1024 * 1024),
                                       headers={**admin, "content-type": "application/json"}), 413),
    ]


def test_every_error_class_uses_the_shape(client: Any, admin_headers: dict[str, str],
                                          make_swarm: Callable[..., dict[str, Any]]) -> None:
    swarm = make_swarm([], name="dup")
    agent = bearer(mint_token(client, admin_headers, "agent", swarm["id"])["token"])
    for name, response, status in _cases(client, admin_headers, agent):
        try:
            assert_error(response, status)
        except AssertionError as e:
            raise AssertionError(f"{name}: {e}") from e


def test_validation_errors_say_what_is_wrong(client: Any, admin_headers: dict[str, str]) -> None:
    r = client.post("/api/v1/admin/swarms", json={"name": 5}, headers=admin_headers)
    error = assert_error(r, 400, "validation_error")
    assert "name" in str(error["details"]) or "name" in error["message"]


def test_rate_limit_uses_the_shape(api_settings: Settings) -> None:
    settings = dataclasses.replace(api_settings, query=dataclasses.replace(api_settings.query, agent_rpm=1))
    with TestClient(create_app(settings)) as client:
        admin = bearer(client.post("/api/v1/auth/token", data={"username": "admin", "password": "admin-password"})
                       .json()["access_token"])
        swarm = client.post("/api/v1/admin/swarms", json={"name": "s"}, headers=admin).json()
        agent = bearer(mint_token(client, admin, "agent", swarm["id"])["token"])
        client.get("/api/v1/auth/whoami", headers=agent)
        r = client.get("/api/v1/auth/whoami", headers=agent)
    assert_error(r, 429, "rate_limited", "rate_limit")
    assert "retry-after" in r.headers


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/api/v1/admin/swarms"), ("POST", "/api/v1/queries/execute"), ("POST", "/api/v1/sync/tables/register"),
    ("PATCH", "/api/v1/artifacts/art_0123456789abcdef01234567"), ("POST", "/api/v1/queries/jobs/job_x/artifact"),
])
def test_a_deeply_nested_body_is_a_400_not_a_500(client: Any, admin_headers: dict[str, str],
                                                 agent_headers: Callable[..., dict[str, str]], method: str,
                                                 path: str) -> None:
    deep = b'{"name": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    headers = admin_headers
    if path.startswith("/api/v1/queries/jobs/"):  # an agent-only route: its guard refuses the admin first
        swarm = client.post("/api/v1/admin/swarms", json={"name": "deep"}, headers=admin_headers).json()
        headers = agent_headers(swarm["id"])
    r = client.request(method, path, content=deep, headers={**headers, "content-type": "application/json"})
    assert r.status_code == 400, r.text
    body = r.json()["error"]
    assert body["status"] == 400
    assert body["rule"] == "json_too_deep"
    assert "nested too deeply" in body["message"]


def test_a_route_guard_refuses_before_the_body_is_read(client: Any, admin_headers: dict[str, str]) -> None:
    """Capabilities are route guards: a caller the route refuses gets 403 whatever its body holds."""
    deep = b'{"name": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    r = client.post("/api/v1/queries/jobs/job_x/artifact", content=deep,
                    headers={**admin_headers, "content-type": "application/json"})
    assert_error(r, 403, "forbidden", "requires_agent")
