"""The MCP feature's long-lived parts: the server, its Streamable HTTP app and session manager.

The SDK's session manager must run for the app's whole life, and a mounted app's own
lifespan never runs: ``startup`` enters it inside Litestar's lifespan and ``shutdown``
leaves it (same task, as anyio requires).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from typing import Any

from litestar.types import ASGIApp
from mcp.server.auth.middleware.auth_context import get_access_token

from serving.lib.errors import Unauthorized
from serving.lib.services import Services
from serving.mcp.dispatch import RouteCaller

MCP = "mcp"


@dataclasses.dataclass
class Outer:
    """What a tool needs of the MCP request it serves: the API app, the client address, the Host."""

    app: ASGIApp
    client: tuple[str, int] | None
    host: str
    forwarded_for: str | None = None  # X-Forwarded-For as received: the ingress decides whether to believe it


OUTER: contextvars.ContextVar[Outer | None] = contextvars.ContextVar("mcp_outer_request", default=None)


@dataclasses.dataclass
class McpParts:
    server: Any
    app: ASGIApp
    stack: contextlib.AsyncExitStack


def get_mcp(services: Services) -> McpParts:
    return services.get(MCP, McpParts)


async def routes() -> RouteCaller:
    """The caller of routes for the tool call being served: the verified token of this MCP request."""
    token = get_access_token()
    outer = OUTER.get()
    if token is None or outer is None:
        raise Unauthorized("no verified MCP caller", rule="token_missing")
    return RouteCaller(outer.app, token.token, client=outer.client, host=outer.host,
                       forwarded_for=outer.forwarded_for)


async def startup(services: Services) -> None:
    from serving.mcp.server import build

    server, app = build(services, routes)
    stack = contextlib.AsyncExitStack()
    await stack.enter_async_context(server.session_manager.run())
    services.parts[MCP] = McpParts(server=server, app=app, stack=stack)  # type: ignore[arg-type]


async def shutdown(services: Services) -> None:
    parts = services.parts.pop(MCP, None)
    if isinstance(parts, McpParts):
        await parts.stack.aclose()
