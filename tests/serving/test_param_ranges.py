"""Out-of-range parameters are a 400 on every route, never a 500.

The route walk finds every handler's ``int``, ``float`` and ``datetime`` query and path
parameters from the handler signatures, so a route added later is covered too.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from litestar.testing import TestClient

from serving.lib.params import _kind
from tests.serving.helpers import assert_error

Client = TestClient[Litestar]
HUGE = "1180591620717411303424"  # 2**70
BAD_VALUES: dict[type, list[str]] = {
    int: [HUGE, "-" + HUGE, "9223372036854775808", "99999999999999999999999999999999999999"],
    float: ["1e400", "-1e400", "1e300"],
    dt.datetime: ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00"],
}


def _typed_params(app: Litestar) -> list[tuple[str, str, str, type]]:
    """(method, path, parameter, kind) for every typed query/path parameter of every route."""
    found = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if not isinstance(handler, HTTPRouteHandler):
                continue
            for name, field in handler.parsed_fn_signature.parameters.items():
                kind = _kind(field)
                if kind is None or (field.kwarg_definition is not None and getattr(field.kwarg_definition, "header", None)):
                    continue
                if name in {"request", "caller", "services", "data", "socket", "state"}:
                    continue
                alias = getattr(field.kwarg_definition, "query", None) or name
                for method in sorted(handler.http_methods):
                    found.append((method, route.path, alias, kind))
    return found


def _url(path: str) -> str:
    return re.sub(r"\{[^}:]+(:[^}]+)?\}", "x", path)


def test_every_typed_parameter_refuses_out_of_range_values(app: Litestar, client: Client,
                                                           admin_headers: dict[str, str]) -> None:
    params = _typed_params(app)
    names = {(p[1], p[2]) for p in params}
    # the routes named in the bug reports are among those walked
    assert {("/api/v1/admin/audit", "cursor"), ("/api/v1/admin/audit", "since"),
            ("/api/v1/artifacts", "created_after"), ("/api/v1/admin/tokens", "offset")} <= names
    checked = 0
    for method, path, name, kind in params:
        for value in BAD_VALUES[kind]:
            r = client.request(method, _url(path), params={name: value}, headers=admin_headers)
            error = assert_error(r, 400)
            assert error["rule"] in ("out_of_range", None), (method, path, name, value, error)
            if error["rule"] == "out_of_range":
                assert error["details"]["parameter"] == name
            checked += 1
    assert checked >= 20


@pytest.mark.parametrize(("url", "name"), [
    ("/api/v1/artifacts?created_after=0001-01-01T00:00:00%2B14:00", "created_after"),
    ("/api/v1/artifacts?created_before=9999-12-31T23:59:59-14:00", "created_before"),
    ("/api/v1/admin/audit?cursor=1180591620717411303424", "cursor"),
    ("/api/v1/admin/audit?since=0001-01-01T00:00:00%2B14:00", "since"),
    ("/api/v1/admin/audit?until=9999-12-31T23:59:59-14:00", "until"),
    ("/api/v1/admin/tokens?offset=1180591620717411303424", "offset"),
])
def test_reported_examples_are_400_naming_the_parameter(client: Client, admin_headers: dict[str, str],
                                                        url: str, name: str) -> None:
    error = assert_error(client.get(url, headers=admin_headers), 400, rule="out_of_range")
    assert name in error["message"]
    assert error["details"]["parameter"] == name


@pytest.mark.parametrize("url", [
    "/api/v1/artifacts?created_after=2020-01-01T00:00:00%2B14:00&created_before=9999-12-01T00:00:00Z",
    "/api/v1/admin/audit?cursor=9223372036854775807&since=0001-01-03T00:00:00%2B14:00",
    "/api/v1/admin/audit?cursor=-9223372036854775808",
    "/api/v1/admin/tokens?offset=9223372036854775807",
])
def test_values_at_the_edge_of_the_range_still_work(client: Client, admin_headers: dict[str, str],
                                                    make_swarm: Callable[..., dict[str, Any]], url: str) -> None:
    make_swarm(["demo.public.orders"])
    r = client.get(url, headers=admin_headers)
    assert r.status_code == 200, r.text


def test_an_overflowing_body_date_is_a_400(client: Client, admin_headers: dict[str, str],
                                           make_swarm: Callable[..., dict[str, Any]],
                                           agent_headers: Callable[..., dict[str, str]]) -> None:
    swarm = make_swarm([])
    agent = agent_headers(swarm["id"])
    r = client.post("/api/v1/artifacts", headers=agent, files={"file": ("a.txt", b"hello", "text/plain")})
    assert r.status_code == 201, r.text
    art = r.json()["id"]
    r = client.patch(f"/api/v1/artifacts/{art}", json={"expires_at": "0001-01-01T00:00:00+14:00"}, headers=agent)
    assert_error(r, 400)
