"""The MCP endpoint: the SDK's Streamable HTTP app mounted at ``/mcp`` (and ``/mcp/``).

The mount hands each request to the app built at start-up, with what tools need of it
(the API app itself, the client address, the Host), and marks the request's audit row
``transport: mcp``. The envelope's own audit row names the verified caller once the SDK's
bearer check has run; each tool call is audited again as the route it runs.
"""

from __future__ import annotations

from typing import Any

from litestar import asgi
from litestar.types import Receive, Scope, Send
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser

from serving.lib.audit import CALLER_KEY, ENDPOINT_KEY, TRANSPORT_KEY
from serving.mcp.auth import caller_of
from serving.mcp.dispatch import TRANSPORT
from serving.mcp.refusals import refuse_get, shaped
from serving.mcp.services import OUTER, Outer, get_mcp


@asgi("/mcp", is_mount=True, copy_scope=True)
async def mcp_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    """Model Context Protocol over Streamable HTTP (POST JSON-RPC; bearer token as for REST)."""
    litestar_app: Any = scope["app"]
    services = litestar_app.state.services
    state = scope.setdefault("state", {})  # type: ignore[typeddict-item]
    state[TRANSPORT_KEY] = TRANSPORT
    state[ENDPOINT_KEY] = "/mcp" + str(scope.get("path") or "")  # Litestar strips the mount's prefix
    if scope.get("path") in ("", None):
        scope["path"] = "/"  # ``/mcp`` without the slash reaches the app's one route, like ``/mcp/``
    headers = dict(scope.get("headers", []))
    host = headers.get(b"host", b"127.0.0.1").decode("latin-1")
    forwarded = headers.get(b"x-forwarded-for")
    client = scope.get("client")
    token = OUTER.set(Outer(app=litestar_app, client=tuple(client) if client else None, host=host,  # type: ignore[arg-type]
                            forwarded_for=forwarded.decode("latin-1") if forwarded else None))
    try:
        if scope.get("method") in ("GET", "HEAD"):  # no event stream to offer (serving.mcp.refusals)
            await refuse_get(scope, send)
            return
        await get_mcp(services).app(scope, receive, shaped(scope, send))  # type: ignore[arg-type]
    finally:
        OUTER.reset(token)
        user = scope.get("user")
        if isinstance(user, AuthenticatedUser):
            state[CALLER_KEY] = caller_of(user.access_token)


ROUTES: list[Any] = [mcp_endpoint]
