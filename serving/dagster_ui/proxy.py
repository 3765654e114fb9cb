"""Forwarding to the Dagster webserver: HTTP (pages, static assets, GraphQL) and websockets.

Why in the API process rather than a proxy container doing ``auth_request``: the same
code protects ``agents-data up`` on a laptop and the compose deployment, it reuses the
API's own admin login, token checks, login rate limit and audit trail, and it runs (and
is tested) here without a Docker engine. The webserver itself listens only on an
internal address (loopback for ``up``, the compose network otherwise) with
``--path-prefix /dagster``, so its pages and asset URLs are already right under the
API's ``/dagster/`` and nothing in them is rewritten.

What is not forwarded: the caller's ``Authorization`` and ``Cookie`` headers (Dagster
needs neither, and the admin token must not travel further than it has to), the SSO
header, and hop-by-hop headers. Request bodies are bounded (GraphQL documents are
small); responses stream through as Dagster sent them (compressed or not).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx

from serving.lib.errors import ApiError, NotFound, PayloadTooLarge, ServiceUnavailable
from shared.dagster_names import UI_PATH_PREFIX
from shared.settings import DagsterSettings

# Raw ASGI plumbing: messages are plain dicts here (Litestar's TypedDicts are too narrow
# for a relay that passes through whatever the other side sent).
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

MAX_BODY_BYTES = 16 * 1024 * 1024
BODY_TIMEOUT_S = 30.0  # a sender slower than this holds a worker for nothing
_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                  "trailers", "transfer-encoding", "upgrade"})
_DROP_REQUEST = _HOP | {"host", "authorization", "cookie", "content-length", "origin", "referer",
                        "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "forwarded"}


class BodyTimeout(ApiError):
    status, code = 408, "request_timeout"


@dataclasses.dataclass(frozen=True)
class Upstream:
    """The internal webserver: ``origin`` (scheme://host:port) and its path prefix."""

    origin: str
    prefix: str

    @classmethod
    def from_settings(cls, settings: DagsterSettings) -> Upstream:
        parts = urlsplit(settings.graphql_url)
        path = parts.path[: -len("/graphql")] if parts.path.endswith("/graphql") else parts.path.rstrip("/")
        return cls(origin=f"{parts.scheme}://{parts.netloc}", prefix=path)

    def url(self, rest: str, query: bytes, *, websocket: bool = False) -> str:
        origin = self.origin
        if websocket:
            origin = "ws" + origin[len("http"):] if origin.startswith("http") else origin
        return f"{origin}{self.prefix}{rest}" + (f"?{query.decode('latin-1')}" if query else "")

    def public_location(self, location: str) -> str:
        """A redirect from the webserver, pointed back at the proxy (never at the internal address)."""
        if location.startswith(self.origin):
            location = location[len(self.origin):] or "/"
        if self.prefix and (location == self.prefix or location.startswith(self.prefix + "/")):
            location = UI_PATH_PREFIX + location[len(self.prefix):]
        return location


def proxied_rest(scope: Scope) -> str:
    """The path after ``/dagster``, exactly as the client sent it (percent-encoding kept).

    Why ``raw_path``: Litestar's mount hands the app a normalised remainder (a trailing
    slash added, and ``/dagsterx`` matched as ``x``); the raw path is what Dagster must see.
    """
    raw: bytes = scope.get("raw_path") or scope["path"].encode()
    path = raw.split(b"?", 1)[0].decode("latin-1")
    if path != UI_PATH_PREFIX and not path.startswith(UI_PATH_PREFIX + "/"):
        raise NotFound("no such resource")
    return path[len(UI_PATH_PREFIX):]


def _request_headers(scope: Scope, drop: frozenset[str]) -> list[tuple[str, str]]:
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", [])
            if k.decode("latin-1").lower() not in drop]


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"a request to the Dagster UI may carry at most {MAX_BODY_BYTES} bytes",
                                  rule="body_too_large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def forward_http(client: httpx.AsyncClient, upstream: Upstream, scope: Scope, receive: Receive, send: Send,
                       *, rest: str, drop: frozenset[str]) -> None:
    """Send the request to the webserver and stream its answer back."""
    try:
        with anyio.fail_after(BODY_TIMEOUT_S):
            body = await _read_body(receive)
    except TimeoutError as e:
        raise BodyTimeout(f"the request body did not arrive within {BODY_TIMEOUT_S:g} s",
                          rule="body_timeout") from e
    request = client.build_request(scope["method"], upstream.url(rest, scope.get("query_string", b"")),
                                   headers=_request_headers(scope, _DROP_REQUEST | drop), content=body)
    try:
        response = await client.send(request, stream=True)
    except httpx.HTTPError as e:
        raise ServiceUnavailable(f"the Dagster webserver is unreachable ({type(e).__name__})",
                                 rule="dagster_unavailable") from e
    try:
        headers = []
        for key, value in response.headers.raw:
            name = key.decode("latin-1").lower()
            if name in _HOP:
                continue
            if name == "location":
                headers.append((key, upstream.public_location(value.decode("latin-1")).encode("latin-1")))
            else:
                headers.append((key, value))
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        with contextlib.suppress(httpx.HTTPError):  # the status is sent: a broken stream just ends
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        await response.aclose()


async def forward_websocket(upstream: Upstream, scope: Scope, receive: Receive, send: Send, *, rest: str) -> None:
    """Relay one websocket (Dagster's GraphQL subscriptions: live run logs) until either side closes."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, WebSocketException

    first = await receive()
    if first["type"] != "websocket.connect":
        return
    subprotocols = list(scope.get("subprotocols") or [])
    try:
        remote = await connect(upstream.url(rest, scope.get("query_string", b""), websocket=True),
                               subprotocols=subprotocols or None, open_timeout=10,  # type: ignore[arg-type]
                               max_size=MAX_BODY_BYTES, proxy=None)
    except (OSError, WebSocketException, TimeoutError):
        await send({"type": "websocket.close", "code": 1011})
        return
    await send({"type": "websocket.accept", "subprotocol": remote.subprotocol})
    try:
        async with anyio.create_task_group() as tasks:

            async def client_to_dagster() -> None:
                while True:
                    message = await receive()
                    if message["type"] == "websocket.disconnect":
                        break
                    data = message.get("text") if message.get("text") is not None else message.get("bytes")
                    if data is not None:
                        await remote.send(data)
                tasks.cancel_scope.cancel()

            async def dagster_to_client() -> None:
                with contextlib.suppress(ConnectionClosed):
                    async for data in remote:
                        key = "text" if isinstance(data, str) else "bytes"
                        await send({"type": "websocket.send", key: data})
                with contextlib.suppress(Exception):  # the client may already be gone
                    await send({"type": "websocket.close", "code": 1000})
                tasks.cancel_scope.cancel()

            tasks.start_soon(client_to_dagster)
            tasks.start_soon(dagster_to_client)
    finally:
        await remote.close()

