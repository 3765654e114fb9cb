"""One MCP request answered in its own task: the SDK's handler chain without a per-request transport.

Why: in stateless JSON mode the SDK's Streamable HTTP app runs, for every POST, a Starlette
middleware stack, a router, and then a transport, its memory streams, a dispatcher task and
a connection, only to carry one request to the server's handler and its one answer back.
That machinery was most of the MCP round trip's cost over the same REST call. A plain
request (one JSON-RPC request, not ``initialize``, to the endpoint's one path, from a client
that accepts JSON, under a handshake-era protocol version, with a bearer token the SDK's
own backend accepts) is handed here straight to the SDK's own handler chain (the runner
``serve_one`` drives: the same argument validation, tool call and mapping of errors to
JSON-RPC errors the transport reaches) and its answer written as the transport writes it.

Everything else goes to the SDK's app untouched, the body replayed as received: a missing
or refused token (the SDK answers 401 with ``WWW-Authenticate``), ``initialize``,
notifications, batches, bodies that do not parse or validate, refused hosts or origins,
other methods than POST, other paths, a too large body, a modern-era protocol header. So
every refusal is still the SDK's own. A tool answers through the API's routes exactly as
before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pydantic_core
from mcp.server._streamable_http_modern import _SingleExchangeDispatchContext
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.connection import Connection
from mcp.server.runner import ServerRunner, aclose_shielded
from mcp.server.streamable_http import CONTENT_TYPE_JSON, check_accept_headers
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecurityMiddleware
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp.shared.jsonrpc_dispatcher import handler_exception_to_error_data
from mcp.shared.message import ServerMessageMetadata
from mcp.shared.transport_context import TransportContext
from mcp_types import DEFAULT_NEGOTIATED_VERSION, ErrorData, JSONRPCError, JSONRPCRequest
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from pydantic import ValidationError
from starlette.authentication import AuthCredentials, AuthenticationBackend
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)
_TRANSPORT = TransportContext(kind="streamable-http", can_send_request=False)  # immutable: one for every request


class SingleExchange:
    """ASGI app in front of the SDK's Streamable HTTP app ``sdk``: plain requests here, the rest to ``sdk``.

    ``backend`` is the SDK app's own bearer backend and ``required_scopes`` the scopes its
    route demands: a request is answered here only when both would let it through.
    """

    def __init__(self, sdk: ASGIApp, manager: StreamableHTTPSessionManager, backend: AuthenticationBackend,
                 required_scopes: list[str], path: str) -> None:
        self.sdk, self.manager, self.backend = sdk, manager, backend
        self.required_scopes, self.path = required_scopes, path
        self.security = TransportSecurityMiddleware(manager.security_settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        manager = self.manager
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") != self.path \
                or not (manager.stateless and manager.json_response):
            await self.sdk(scope, receive, send)
            return
        request = Request(scope, receive)
        version = request.headers.get(MCP_PROTOCOL_VERSION_HEADER)
        if (version is not None and version not in HANDSHAKE_PROTOCOL_VERSIONS) or not check_accept_headers(request)[0] \
                or not _json_content(request.headers.get("content-type", "")) \
                or await self.security.validate_request(request, is_post=True) is not None:
            await self.sdk(scope, receive, send)
            return
        user = await self._user(request)
        if user is None:  # the SDK's app checks again and answers (401 with WWW-Authenticate, 403)
            await self.sdk(scope, receive, send)
            return
        received: list[Message] = []
        body = await _read(receive, received, manager.max_request_body_size)
        req = _plain_request(body) if body is not None else None
        if req is None:
            await self.sdk(scope, _replay(received, receive), send)
            return
        scope["auth"], scope["user"] = user  # as the SDK's auth middleware leaves them
        token = auth_context_var.set(user[1])  # ... and its auth context middleware (``get_access_token``)
        try:
            await self._answer(req, Request(scope, _replay(received, receive)), version, send)
        finally:
            auth_context_var.reset(token)

    async def _user(self, request: Request) -> tuple[AuthCredentials, AuthenticatedUser] | None:
        """The SDK's bearer check, as its auth middleware and its route's guard make it: the
        credentials and user when the token passes with every required scope, else None."""
        try:
            found = await self.backend.authenticate(request)
        except Exception:  # the SDK's app meets the same failure and answers it its own way
            return None
        if found is None or not isinstance(found[1], AuthenticatedUser) \
                or any(s not in found[0].scopes for s in self.required_scopes):
            return None
        return found  # type: ignore[return-value]

    async def _answer(self, req: JSONRPCRequest, request: Request, version: str | None, send: Send) -> None:
        # As the stateless transport frames a request: no back channel (a JSON body carries only
        # the answer, so request-scoped notifications are dropped), a connection born ready.
        dctx = _SingleExchangeDispatchContext(
            transport=_TRANSPORT, request_id=req.id,
            message_metadata=ServerMessageMetadata(request_context=request, can_send_request=False))
        connection = Connection.from_envelope(version or DEFAULT_NEGOTIATED_VERSION, None, None)
        # ``serve_one``'s steps: one runner over a born-ready connection (lifespan state entered
        # once at start-up), the connection's exit stack unwound after the answer. Unwinding
        # goes under a shielded cancel scope, so it is skipped when nothing was pushed on it.
        runner = ServerRunner(self.manager.app, connection, self.manager._lifespan_state)
        try:
            result = await runner.on_request(dctx, req.method, req.params)
            # The result is already the wire dict: one encoding, as ``JSONRPCResponse`` dumps it.
            body = pydantic_core.to_json({"jsonrpc": "2.0", "id": req.id, "result": result})
        except Exception as e:  # the transport's own mapping of a handler's exception to a JSON-RPC error
            error = handler_exception_to_error_data(e)
            if error is None:
                log.exception("MCP handler for %r raised", req.method)
                error = ErrorData(code=0, message=str(e))
            body = JSONRPCError(jsonrpc="2.0", id=req.id, error=error).model_dump_json(
                by_alias=True, exclude_unset=True).encode()
        finally:
            if connection.exit_stack._exit_callbacks:  # type: ignore[attr-defined]  # stdlib AsyncExitStack's list
                await aclose_shielded(connection)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", CONTENT_TYPE_JSON.encode()), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _json_content(content_type: str) -> bool:
    """The transport's own Content-Type test (stricter than the security check's prefix match)."""
    return any(part.strip() == CONTENT_TYPE_JSON for part in content_type.split(";", maxsplit=1)[0].split(","))


def _plain_request(body: bytes) -> JSONRPCRequest | None:
    """The one JSON-RPC request ``body`` holds, or None when the SDK's transport should judge it
    (not JSON, a batch, a notification, a response, ``initialize``): parsed and validated in one pass."""
    try:
        req = JSONRPCRequest.model_validate_json(body)
    except ValidationError:
        return None
    return None if req.method == "initialize" else req


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
