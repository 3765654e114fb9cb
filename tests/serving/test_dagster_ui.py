"""The /dagster/ proxy in process, against a recorded stand-in for the webserver (the real
webserver, websockets and the SSO header are covered in tests/e2e/test_perimeter.py).

What reaches Dagster (the path as sent, the query string, never the caller's token or
cookie), what comes back (redirects pointed at the proxy), and the refusals in the one
error shape: unknown paths, an unreachable webserver, oversized bodies, swarm tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from serving.dagster_ui.access import parse_networks
from serving.dagster_ui.proxy import MAX_BODY_BYTES, Upstream
from serving.dagster_ui.services import get_ui
from serving.lib.services import Services
from shared.settings import DagsterSettings
from tests.serving.helpers import assert_error

Seen = list[httpx.Request]


class _Body(httpx.AsyncByteStream):
    """A body that arrives as a stream, as from a real server (httpx reads plain ``content`` at once)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> Any:
        yield self.data


@pytest.fixture
def upstream(client: TestClient[Litestar], services: Services) -> Seen:
    """Replace the proxy's client with one whose transport records requests and answers like Dagster."""
    seen: Seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/dagster/old":
            return httpx.Response(302, stream=_Body(b""), headers={"location": "http://127.0.0.1:3000/dagster/new"})
        if request.url.path == "/dagster/down":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, stream=_Body(b'{"data": {"version": "1.13"}}'),
                              headers={"x-dagster": "yes", "content-type": "application/json"})

    ui = get_ui(services)
    ui.client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return seen


def test_admin_requests_reach_dagster_without_the_callers_credentials(
        client: TestClient[Litestar], admin_headers: dict[str, str], upstream: Seen) -> None:
    r = client.post("/dagster/graphql?op=Version", json={"query": "{ version }"},
                    headers={**admin_headers, "Cookie": "other=1", "X-Forwarded-User": "mallory"})
    assert r.status_code == 200, r.text
    assert r.json() == {"data": {"version": "1.13"}}
    assert r.headers["x-dagster"] == "yes"
    [sent] = upstream
    assert str(sent.url) == "http://127.0.0.1:3000/dagster/graphql?op=Version"
    assert sent.content == b'{"query":"{ version }"}'
    for header in ("authorization", "cookie", "x-forwarded-user"):
        assert header not in sent.headers


def test_redirects_point_at_the_proxy_not_the_internal_address(
        client: TestClient[Litestar], admin_headers: dict[str, str], upstream: Seen) -> None:
    r = client.get("/dagster/old", headers=admin_headers, follow_redirects=False)
    assert r.status_code == 302
    assert r.headers["location"] == "/dagster/new"
    bare = client.get("/dagster", headers=admin_headers, follow_redirects=False)
    assert bare.status_code == 307
    assert bare.headers["location"] == "/dagster/"
    assert upstream[0].url.path == "/dagster/old"


@pytest.mark.parametrize("path", ["/dagsterx", "/dagster.json", "/dagster-ui/graphql"])
def test_paths_beside_the_prefix_are_not_forwarded(client: TestClient[Litestar], admin_headers: dict[str, str],
                                                   upstream: Seen, path: str) -> None:
    assert_error(client.get(path, headers=admin_headers), 404)
    assert upstream == []


def test_unreachable_webserver_is_503(client: TestClient[Litestar], admin_headers: dict[str, str],
                                      upstream: Seen) -> None:
    assert_error(client.get("/dagster/down", headers=admin_headers), 503, rule="dagster_unavailable")


def test_oversized_bodies_are_refused(client: TestClient[Litestar], admin_headers: dict[str, str],
                                      upstream: Seen) -> None:
    r = client.post("/dagster/graphql", content=b"x" * (MAX_BODY_BYTES + 1), headers=admin_headers)
    assert_error(r, 413)
    assert upstream == []


def test_swarm_tokens_and_anonymous_callers_never_reach_dagster(
        client: TestClient[Litestar], make_swarm: Callable[..., dict[str, Any]],
        swarm_headers: Callable[[str], dict[str, str]], upstream: Seen) -> None:
    swarm = make_swarm([])
    assert_error(client.post("/dagster/graphql", json={}, headers=swarm_headers(swarm["id"])), 403,
                 rule="requires_admin")
    assert_error(client.post("/dagster/graphql", json={}), 401, rule="token_missing")
    assert_error(client.get("/dagster/", headers={"Authorization": "Basic YWRtaW46eA=="}), 401)
    assert upstream == []


def test_upstream_and_sso_settings_are_parsed_strictly() -> None:
    up = Upstream.from_settings(DagsterSettings(graphql_url="http://dagster-webserver:3000/dagster/graphql"))
    assert up == Upstream(origin="http://dagster-webserver:3000", prefix="/dagster")
    assert up.url("/graphql", b"a=1", websocket=True) == "ws://dagster-webserver:3000/dagster/graphql?a=1"
    assert [str(n) for n in parse_networks(" 10.0.0.0/8, 127.0.0.1 ,,::1")] == ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]
    with pytest.raises(ValueError, match="DAGSTER_UI_SSO_PROXIES"):
        parse_networks("proxy.internal")


def test_proxied_requests_are_audited_with_the_caller(client: TestClient[Litestar], admin_headers: dict[str, str],
                                                      upstream: Seen, flush_audit: Callable[[], None]) -> None:
    assert client.post("/dagster/graphql", json={"query": "{ version }"}, headers=admin_headers).status_code == 200
    assert_error(client.post("/dagster/graphql", json={"query": "{ version }"}), 401)
    flush_audit()
    rows = client.get("/api/v1/admin/audit", headers=admin_headers, params={"limit": 50}).json()["items"]
    proxied = [(r["caller_type"], r["status_code"]) for r in rows if r["endpoint"] == "/dagster/graphql"]
    assert sorted(proxied) == [("admin", 200), ("anonymous", 401)]


def test_a_slow_sender_is_cut_off(app: Litestar, client: TestClient[Litestar], admin_headers: dict[str, str],
                                  upstream: Seen, monkeypatch: pytest.MonkeyPatch) -> None:
    """A body that never finishes arriving is answered 408 after the body timeout, not waited for."""
    import asyncio

    from serving.dagster_ui import proxy

    monkeypatch.setattr(proxy, "BODY_TIMEOUT_S", 0.3)
    sent: list[dict[str, Any]] = []
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/dagster/graphql", "raw_path": b"/dagster/graphql", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"testserver"), (b"authorization", admin_headers["Authorization"].encode()),
                         (b"content-length", b"100")], "client": ("127.0.0.1", 5000), "server": ("testserver", 80)}

    async def receive() -> dict[str, Any]:
        if not sent and not getattr(receive, "started", False):
            receive.started = True  # type: ignore[attr-defined]
            return {"type": "http.request", "body": b"{", "more_body": True}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def call() -> None:
        await asyncio.wait_for(app(scope, receive, send), timeout=10)  # type: ignore[arg-type]

    asyncio.run(call())
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 408
    assert b"body_timeout" in b"".join(m.get("body", b"") for m in sent[1:])
    assert upstream == []
