"""The MCP mount's HTTP refusals in the API's one error shape, and no open-ended GET stream.

Why: the SDK's Streamable HTTP app answers some refusals before any JSON-RPC exists, in its
own words: ``421 Invalid Host header`` and ``400 Invalid Content-Type header`` as plain
text, ``413 Request body too large``, ``404 Not Found`` for another path under ``/mcp``,
and ``401``/``403`` as an OAuth error object. A client parsing the API's errors met a body
it could not read. Those answers are rewritten here into ``serving.lib.errors``' shape,
status and headers (``WWW-Authenticate``, ``Allow``) kept. An answer that is a JSON-RPC
message (``{"jsonrpc": "2.0", "error": …}``: a parse or validation error, an unsupported
method) is the protocol's own and passes unchanged, as do all successful answers.

And: in stateless mode a GET opened the SDK's standalone SSE stream, on which this server
never sends anything (no session, no server-initiated messages), so the request hung for
as long as the client kept it and held a task meanwhile; any number of them could be
opened. The Streamable HTTP transport lets a server without such a stream answer GET
with 405, which is what the mount now does, before the SDK sees it.
"""

from __future__ import annotations

import json
from typing import Any

from litestar.types import Message, Scope, Send

from serving.lib.errors import error_body

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          406: "not_acceptable", 413: "payload_too_large", 415: "unsupported_media_type", 421: "misdirected_request"}
_KEPT_HEADERS = (b"www-authenticate", b"allow", b"retry-after")
MAX_MESSAGE_CHARS = 300


async def refuse(scope: Scope, send: Send, status: int, message: str, *, rule: str | None = None,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
    """Answer ``status`` in the one error shape (and tell the audit row its rule)."""
    code = _CODES.get(status, "http_error" if status < 500 else "internal_error")
    state = scope.setdefault("state", {})  # type: ignore[typeddict-item]
    state["error_rule"] = rule or code
    body = json.dumps(error_body(status, code, message, rule)).encode()
    start: Any = {"type": "http.response.start", "status": status,
                  "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                              *(headers or [])]}
    end: Any = {"type": "http.response.body", "body": body}
    await send(start)
    await send(end)


async def refuse_get(scope: Scope, send: Send) -> None:
    """405 for a GET: this stateless server offers no SSE stream to listen on."""
    await refuse(scope, send, 405, "the MCP endpoint takes JSON-RPC messages by POST; it offers no event stream",
                 rule="mcp_method_not_allowed", headers=[(b"allow", b"POST")])


def _message(body: bytes) -> str:
    """The refusal's reason in words: the SDK's plain-text line, or an OAuth error's description."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        text = str(parsed.get("error_description") or parsed.get("error") or parsed.get("detail") or "")
    return (" ".join(text.split()) or "refused")[:MAX_MESSAGE_CHARS]


def _is_jsonrpc(body: bytes) -> bool:
    try:
        parsed = json.loads(body)
    except ValueError:
        return False
    return isinstance(parsed, dict) and parsed.get("jsonrpc") == "2.0"


def shaped(scope: Scope, send: Send) -> Send:
    """``send`` for the SDK's app: an error answer that is not a JSON-RPC message is held and
    sent in the one error shape; everything else passes through as it is sent."""
    held: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            if int(message["status"]) >= 400:
                held["start"] = message
                return
            await send(message)
            return
        if message["type"] != "http.response.body" or "start" not in held:
            await send(message)
            return
        chunks.append(bytes(message.get("body", b"")))
        if message.get("more_body", False):
            return
        start, body = held.pop("start"), b"".join(chunks)
        if _is_jsonrpc(body):
            whole: Any = {"type": "http.response.body", "body": body}
            await send(start)
            await send(whole)
            return
        kept = [(k, v) for k, v in start.get("headers", []) if bytes(k).lower() in _KEPT_HEADERS]
        await refuse(scope, send, int(start["status"]), _message(body), rule="mcp_transport", headers=kept)

    return wrapped
