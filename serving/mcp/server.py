"""The MCP server object: tools, per-caller resources, auth and the Streamable HTTP app.

Why stateless JSON responses: each POST to ``/mcp`` is answered on its own (no session
held in one worker's memory), so any API worker or replica can answer any request,
exactly like REST, and a tool answer is one JSON body rather than an SSE stream.

Resources depend on who asks: ``table://<key>/schema`` for each table the caller may read
and ``artifact://<id>`` for each artifact it may see, listed from the routes as the caller.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from mcp.server._otel import OpenTelemetryMiddleware
from mcp.server.auth.settings import AuthSettings
from mcp.server.lowlevel.helper_types import ReadResourceContents
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import Resource as MCPResource
from starlette.applications import Starlette
from starlette.authentication import AuthenticationBackend
from starlette.middleware.authentication import AuthenticationMiddleware

from serving.lib.services import Services
from serving.mcp import render
from serving.mcp.auth import CallerTokens
from serving.mcp.dispatch import BadSegment, RouteCaller, segment
from serving.mcp.exchange import SingleExchange
from serving.mcp.tools import TOOL_NAMES, Tools

INSTRUCTIONS = (
    "Read-only SQL access to company tables copied from Snowflake into DuckDB. Start with list_tables, then "
    "describe_table; query runs DuckDB SQL over the tables you may read. Every answer ends with a footer naming "
    "the tables read (served version and age) and whether rows were cut; when they were, it gives a job id to "
    "page through (get_job) or to keep (save_result_as_artifact). refresh_table asks for fresh data."
)
TABLE_SCHEME, ARTIFACT_SCHEME = "table://", "artifact://"
PATH = "/"  # the Streamable HTTP app's one route: Litestar strips the mount's ``/mcp`` before it


class PlatformMCP(MCPServer):
    """``MCPServer`` whose resources are the caller's tables and artifacts."""

    def __init__(self, routes: Callable[[], Awaitable[RouteCaller]], *, content_bytes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._routes = routes
        self._content_bytes = content_bytes  # most bytes of an artifact a resource read returns

    async def list_resources(self) -> list[MCPResource]:
        r = await self._routes()
        out = []
        tables = await r.call("GET", "/api/v1/data/tables")
        if tables.ok:
            for t in tables.json().get("tables", []):
                out.append(MCPResource(uri=f"{TABLE_SCHEME}{t['key']}/schema", name=f"{t['table']} schema",
                                       description=f"Columns of {t['table']} (schema_version {t.get('schema_version')})",
                                       mime_type="application/json"))
        artifacts = await r.call("GET", "/api/v1/artifacts", params={"limit": 200})
        if artifacts.ok:
            for a in artifacts.json().get("items", []):
                out.append(MCPResource(uri=f"{ARTIFACT_SCHEME}{a['id']}", name=a["name"],
                                       description=f"Artifact ({a['visibility']}, {a['size']} bytes)",
                                       mime_type=a["content_type"]))
        return out

    async def read_resource(self, uri: Any, context: Any = None) -> Iterable[ReadResourceContents]:  # type: ignore[override]
        text = str(uri)
        r = await self._routes()
        if text.startswith(TABLE_SCHEME) and text.endswith("/schema"):
            key = text[len(TABLE_SCHEME):-len("/schema")]
            t = await r.call("GET", f"/api/v1/data/tables/{_seg(text, key, 'table')}")
            if not t.ok:
                raise ResourceError(f"{text}: {t.error()['message']}")
            data = t.json()
            keep = ("table", "key", "description", "columns", "row_count", "served_version", "schema_version",
                    "last_synced_at", "freshness")
            return [ReadResourceContents(content=json.dumps({k: data.get(k) for k in keep}, default=str),
                                         mime_type="application/json")]
        if text.startswith(ARTIFACT_SCHEME):
            artifact_id = text[len(ARTIFACT_SCHEME):]
            artifact_id = _seg(text, artifact_id, "artifact id")
            meta = await r.call("GET", f"/api/v1/artifacts/{artifact_id}")
            if not meta.ok:
                raise ResourceError(f"{text}: {meta.error()['message']}")
            a = meta.json()
            content = await r.call("GET", f"/api/v1/artifacts/{artifact_id}/content", max_body=self._content_bytes)
            if not content.ok:
                raise ResourceError(f"{text}: {content.error()['message']}")
            if a["content_type"].startswith(("text/", "application/json")):
                return [ReadResourceContents(content=content.body.decode("utf-8", errors="replace"),
                                             mime_type=a["content_type"])]
            return [ReadResourceContents(content=content.body, mime_type=a["content_type"])]
        raise ResourceError(f"unknown resource {render.value(text)}")


def _seg(uri: str, value: str, what: str) -> str:
    """``value`` as one segment of a route's path, else the resource's error (``dispatch.segment``)."""
    try:
        return segment(value, what)
    except BadSegment as e:
        raise ResourceError(f"{uri}: {e}") from None


@contextlib.contextmanager
def _logging_left_alone() -> Iterator[None]:
    """The SDK's server constructor calls ``logging.basicConfig`` with a rich console handler at INFO,
    which takes over the root logger of a process that has none yet (a uvicorn worker, a test).
    Logging is the process's business (``serving.main``): a handler held on the root meanwhile
    makes that call a no-op."""
    root = logging.getLogger()
    guard = logging.NullHandler()
    root.addHandler(guard)
    try:
        yield
    finally:
        root.removeHandler(guard)


def build(services: Services, routes: Callable[[], Awaitable[RouteCaller]]) -> tuple[PlatformMCP, SingleExchange]:
    """The server and the app the mount calls: the single exchange in front of the SDK's Streamable
    HTTP app (path ``/``: Litestar strips ``/mcp`` before it)."""
    settings = services.settings
    with _logging_left_alone():
        server = _server(services, routes)
    # The SDK wraps every message in an OpenTelemetry span by default; this process installs no
    # tracer, so each span is a no-op that still costs its set-up on every tool call. Opting out is
    # the SDK's documented way: drop the middleware from the chain.
    server.middleware[:] = [m for m in server.middleware if not isinstance(m, OpenTelemetryMiddleware)]
    tools = Tools(routes, settings.mcp, json_max_rows=settings.query.json_max_rows)
    for name in TOOL_NAMES:
        fn = getattr(tools, name)
        server.add_tool(fn, name=name, description=(fn.__doc__ or "").strip(), structured_output=False)
    hosts = [h.strip() for h in settings.mcp.allowed_hosts.split(",") if h.strip()]
    security = TransportSecuritySettings(enable_dns_rebinding_protection="*" not in hosts, allowed_hosts=hosts,
                                         allowed_origins=[f"http://{h}" for h in hosts] + [f"https://{h}" for h in hosts])
    sdk = server.streamable_http_app(streamable_http_path=PATH, stateless_http=True, json_response=True,
                                     transport_security=security)
    # Plain requests skip the SDK app's middleware, router and per-request transport; their
    # bearer check is the SDK app's own backend, with the scopes its route requires.
    scopes = list((server.settings.auth.required_scopes if server.settings.auth else None) or [])
    return server, SingleExchange(sdk, server.session_manager, _bearer_backend(sdk), scopes, PATH)


def _bearer_backend(app: Starlette) -> AuthenticationBackend:
    """The bearer backend the SDK's app authenticates with (its auth middleware's)."""
    for m in app.user_middleware:
        backend = m.kwargs.get("backend")
        if m.cls is AuthenticationMiddleware and isinstance(backend, AuthenticationBackend):
            return backend
    raise RuntimeError("the SDK's Streamable HTTP app has no bearer auth middleware")


def _server(services: Services, routes: Callable[[], Awaitable[RouteCaller]]) -> PlatformMCP:
    settings = services.settings
    return PlatformMCP(
        routes, content_bytes=max(1024, settings.mcp.answer_max_chars * 4), name="agents-data",
        instructions=INSTRUCTIONS, version="1",
        token_verifier=CallerTokens(services),
        auth=AuthSettings(issuer_url=f"http://{settings.api.host}:{settings.api.port}/api/v1/auth/token",  # type: ignore[arg-type]
                          resource_server_url=None),
        warn_on_duplicate_tools=True,
    )
