"""One MCP request answered in its own task: the SDK's handler chain without a per-request transport.

Why: in stateless JSON mode the SDK's Streamable HTTP transport builds, for every POST, a
transport, its memory streams, a dispatcher task and a connection, only to carry one
request to the server's handler and its one answer back. That machinery was most of the
MCP round trip's cost over the same REST call. A plain request (one JSON-RPC request, not
``initialize``, from a client that accepts JSON, under a handshake-era protocol version) is
handed here straight to the SDK's own handler chain (``serve_one``: the same argument
validation, tool call and mapping of errors to JSON-RPC errors the transport reaches) and
its answer written as the transport writes it.

Everything else goes to the SDK's transport untouched, the body replayed as received:
``initialize``, notifications, batches, bodies that do not parse or validate, refused
hosts or origins, other methods than POST, a too large body, a modern-era protocol
header. So every refusal is still the SDK's own. The bearer check runs before either
(the SDK's auth middleware sits in front of this app), and a tool answers through the
API's routes exactly as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pydantic_core
from mcp.server._streamable_http_modern import _SingleExchangeDispatchContext
from mcp.server.connection import Connection
from mcp.server.runner import serve_one
from mcp.server.streamable_http import CONTENT_TYPE_JSON, check_accept_headers
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecurityMiddleware
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp.shared.jsonrpc_dispatcher import handler_exception_to_error_data
from mcp.shared.message import ServerMessageMetadata
from mcp.shared.transport_context import TransportContext
from mcp_types import DEFAULT_NEGOTIATED_VERSION, ErrorData, JSONRPCError, JSONRPCRequest, JSONRPCResponse
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)


class SingleExchange:
    """ASGI app in place of the session manager's own: plain requests here, the rest to ``sdk``."""

    def __init__(self, manager: StreamableHTTPSessionManager, sdk: ASGIApp) -> None:
        self.manager, self.sdk = manager, sdk
        self.security = TransportSecurityMiddleware(manager.security_settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        manager = self.manager
        if scope["type"] != "http" or scope.get("method") != "POST" or not (manager.stateless and manager.json_response):
            await self.sdk(scope, receive, send)
            return
        request = Request(scope, receive)
        version = request.headers.get(MCP_PROTOCOL_VERSION_HEADER)
        if (version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS) or not check_accept_headers(request)[0] \
                or not _json_content(request.headers.get("content-type", "")) \
                or await self.security.validate_request(request, is_post=True) is not None:
            await self.sdk(scope, receive, send)
            return
        received: list[Message] = []
        body = await _read(receive, received, manager.max_request_body_size)
        req = _plain_request(body) if body is not None else None
        if req is None:
            await self.sdk(scope, _replay(received, receive), send)
            return
        replayed = _replay(received, receive)
        await self._answer(req, Request(scope, replayed), version, send)

    async def _answer(self, req: JSONRPCRequest, request: Request, version: str | None, send: Send) -> None:
        # As the stateless transport frames a request: no back channel (a JSON body carries only
        # the answer, so request-scoped notifications are dropped), a connection born ready.
        dctx = _SingleExchangeDispatchContext(
            transport=TransportContext(kind="streamable-http", can_send_request=False), request_id=req.id,
            message_metadata=ServerMessageMetadata(request_context=request, can_send_request=False))
        connection = Connection.from_envelope(version or DEFAULT_NEGOTIATED_VERSION, None, None)
        reply: JSONRPCResponse | JSONRPCError
        try:
            result = await serve_one(self.manager.app, dctx, req.method, req.params, connection=connection,
                                     lifespan_state=self.manager._lifespan_state)  # entered once at start-up
            reply = JSONRPCResponse(jsonrpc="2.0", id=req.id, result=result)
        except Exception as e:  # the transport's own mapping of a handler's exception to a JSON-RPC error
            error = handler_exception_to_error_data(e)
            if error is None:
                log.exception("MCP handler for %r raised", req.method)
                error = ErrorData(code=0, message=str(e))
            reply = JSONRPCError(jsonrpc="2.0", id=req.id, error=error)
        response = Response(reply.model_dump_json(by_alias=True, exclude_unset=True), status_code=200,
                            headers={"Content-Type": CONTENT_TYPE_JSON})
        await response(request.scope, request.receive, send)


def _json_content(content_type: str) -> bool:
    """The transport's own Content-Type test (stricter than the security check's prefix match)."""
    return any(part.strip() == CONTENT_TYPE_JSON for part in content_type.split(";", maxsplit=1)[0].split(","))


def _plain_request(body: bytes) -> JSONRPCRequest | None:
    """The one JSON-RPC request ``body`` holds, or None when the SDK's transport should judge it."""
    try:
        raw = pydantic_core.from_json(body)
    except ValueError:
        return None
    if not isinstance(raw, dict) or "id" not in raw or raw.get("method") in (None, "initialize"):
        return None
    try:
        return JSONRPCRequest.model_validate(raw)
    except ValidationError:
        return None


async def _read(receive: Receive, received: list[Message], limit: int) -> bytes | None:
    """The request body, or None past ``limit`` bytes or when the client left; every message kept in ``received``."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        received.append(message)
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(received: list[Message], receive: Receive) -> Callable[[], Any]:
    """``receive`` that gives back the messages already read, then the client's own."""
    pending = list(received)

    async def again() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return again
