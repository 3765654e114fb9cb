"""A tool call runs the API's own route, in process, as the caller.

Why this and not a second implementation: every rule an agent meets over REST (the
route guards, grants, the SQL guard, slots and rate limits, time and size limits, the
audit row) lives behind the route. An MCP tool that calls the route with the caller's
own bearer token gets exactly those rules, and any rule added to a route later, without
this feature importing another feature. The call never leaves the process: it is one
ASGI call into the same Litestar app (no socket, no second server), marked
``transport: mcp`` for its audit row.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

import msgspec
from litestar.types import ASGIApp, Message

from serving.lib.audit import TRANSPORT_KEY

TRANSPORT = "mcp"


@dataclasses.dataclass
class Answer:
    """A route's answer: status, headers (lower-case names), body (``cut`` when it passed ``max_body``)."""

    status: int
    headers: dict[str, str]
    body: bytes
    cut: bool = False

    def json(self) -> Any:
        return msgspec.json.decode(self.body or b"null")  # the route's own encoder wrote it

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error(self) -> dict[str, Any]:
        """The one error shape's inner object (``status, code, message, rule, details``)."""
        try:
            inner = self.json().get("error") or {}
        except (ValueError, AttributeError):
            inner = {}
        return {"status": self.status, "code": inner.get("code"), "message": inner.get("message") or "refused",
                "rule": inner.get("rule"), "details": inner.get("details") or {}}


class BadSegment(ValueError):
    """A name or id that cannot be one segment of a route's path."""


def segment(value: str, what: str) -> str:
    """``value`` as one path segment of a route, or ``BadSegment``.

    Why: a tool's table name, job id or artifact id is spliced into a route's path, and the
    route is chosen by the decoded path, so ``<id>/content`` or ``orders/profile`` reached
    another route than the tool's (as the same caller, but not the answer the tool reads:
    a download parsed as metadata crashed the tool), and an empty name reached the listing.
    """
    if not value or "/" in value or value in {".", ".."}:
        raise BadSegment(f"{what} {value!r} is not a valid {what}: it must be non-empty and may not contain '/'")
    return value


class RouteCaller:
    """Calls routes of ``app`` as the holder of ``token``, from the MCP request's client address."""

    def __init__(self, app: ASGIApp, token: str, *, client: tuple[str, int] | None, host: str,
                 forwarded_for: str | None = None) -> None:
        self.app, self.token, self.client, self.host = app, token, client, host
        self.forwarded_for = forwarded_for

    async def call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None,
                   headers: Mapping[str, str] | None = None, max_body: int | None = None) -> Answer:
        """``path`` is given decoded (``/api/v1/data/tables/demo.public."Order Lines"``); it is encoded here."""
        query = urlencode({k: v for k, v in (params or {}).items() if v is not None}, doseq=True)
        payload = b"" if body is None else json.dumps(body).encode()
        raw_headers = [(b"host", self.host.encode("latin-1")),
                       (b"authorization", f"Bearer {self.token}".encode("latin-1")),
                       (b"accept", b"application/json"), (b"user-agent", b"agents-data-mcp")]
        if body is not None:
            raw_headers += [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        if self.forwarded_for:  # the same peer and header as the MCP request: trusted proxies apply alike
            raw_headers.append((b"x-forwarded-for", self.forwarded_for.encode("latin-1")))
        raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
        raw_path = quote(path, safe="/:@!$&'()*+,;=-._~")
        scope: dict[str, Any] = {
            "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "method": method, "scheme": "http", "path": path, "raw_path": raw_path.encode("ascii"),
            "query_string": query.encode("ascii"), "root_path": "", "headers": raw_headers,
            "client": self.client, "server": ("127.0.0.1", 0), "state": {TRANSPORT_KEY: TRANSPORT}, "extensions": {},
        }
        sent = False
        done = asyncio.Event()  # the response is complete: as a server does, report the client gone after it

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": payload, "more_body": False}
            await done.wait()  # the caller never leaves while the route answers
            return {"type": "http.disconnect"}

        status, out_headers, chunks, size, cut = 500, {}, [], 0, False

        async def send(message: Message) -> None:
            nonlocal status, out_headers, size, cut
            if message["type"] == "http.response.start":
                status = message["status"]
                out_headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in message.get("headers", [])}
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                if max_body is not None and size + len(chunk) > max_body:
                    chunk, cut = chunk[: max(0, max_body - size)], True
                size += len(chunk)
                if chunk:
                    chunks.append(chunk)
                if not message.get("more_body", False):
                    done.set()

        try:
            await self.app(scope, receive, send)  # type: ignore[arg-type]
        finally:
            done.set()
        return Answer(status, out_headers, b"".join(chunks), cut)
