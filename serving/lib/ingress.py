"""What the API believes about a request before any route sees it: the client's address and its body.

Why here, as one ASGI wrapper around the whole app, and not in the server:
- **Client address.** ``X-Forwarded-For`` is written by whoever sends the request, so it
  is believed only when the peer itself is a configured proxy (``TRUSTED_PROXIES``:
  addresses or CIDR networks). The header is then read from the right: each hop a
  trusted proxy added is skipped, and the first address that is not a trusted proxy is
  the client. Anything else (no trusted peer, a malformed entry) leaves the peer address.
  The result is kept beside the TCP peer (``client_host``), never in its place: rate
  limits key on the client, while checks that trust a proxy by its own address (the
  Dagster UI's SSO header) keep seeing the real peer. uvicorn's own proxy handling
  rewrites the peer and trusts loopback by default, so ``serving.main`` turns it off.
- **Body limits.** A body must arrive completely within ``API_BODY_TIMEOUT_S``, with at
  most ``IDLE_S`` between two of its messages, or the request gets 408 (slow senders
  are cut off); and no body may exceed the largest one any route accepts (413), counted
  as it streams, whatever ``Content-Length`` says. Routes keep their own, smaller
  limits (Litestar's ``request_max_body_size``, the artifact upload's).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from typing import Any

import msgspec

from serving.lib.errors import ApiError, PayloadTooLarge, error_body
from shared.settings import Settings

IDLE_S = 10.0  # longest pause between two messages of one request body
CLIENT_KEY = "agents_data.client"  # the ASGI scope key holding the client address
RECEIVED_KEY = "agents_data.received"  # ... and the monotonic time the request arrived (time limits count from it)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class RequestTimeout(ApiError):
    status, code = 408, "request_timeout"


def parse_proxies(text: str) -> tuple[Network, ...]:
    """``TRUSTED_PROXIES``: comma-separated addresses or CIDR networks; raises ValueError on a bad entry."""
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in text.split(",") if item.strip())


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def client_address(peer: str | None, forwarded_for: list[str], trusted: tuple[Network, ...]) -> str | None:
    """The client's address: the peer, or, behind trusted proxies, the last hop they did not add."""
    if not trusted or peer is None:
        return peer
    addr = _address(peer)
    if addr is None or not any(addr in net for net in trusted):
        return peer
    hops = [h for value in forwarded_for for h in value.split(",") if h.strip()]
    client = peer
    for hop in reversed(hops):
        addr = _address(hop)
        if addr is None:
            return client  # garbage written by someone in front of our proxies: stop at what we know
        client = str(addr)
        if not any(addr in net for net in trusted):
            return client
    return client


def client_host(connection: Any) -> str:
    """The client address of a request (see the module docstring); ``unknown`` without one."""
    host = connection.scope.get(CLIENT_KEY)
    if host is None and connection.client:
        host = connection.client.host
    return str(host or "unknown")


def received_at(connection: Any) -> float:
    """When the request arrived (``time.monotonic()``); time limits are kept from then, not from the handler."""
    return float(connection.scope.get(RECEIVED_KEY) or time.monotonic())


class Ingress:
    """ASGI wrapper: the client address from trusted proxies; bound body size and time."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.trusted = parse_proxies(settings.api.trusted_proxies)
        self.timeout_s = settings.api.body_timeout_s
        # The largest body any route accepts: an artifact upload (file plus form fields and framing).
        self.max_bytes = max(settings.api.max_body_bytes, settings.artifacts.max_bytes + (1 << 20))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope[RECEIVED_KEY] = time.monotonic()
        peer = scope["client"][0] if scope.get("client") else None
        if self.trusted and peer is not None:
            forwarded = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-forwarded-for"]
            peer = client_address(peer, forwarded, self.trusted)
        scope[CLIENT_KEY] = peer
        body = _Body(receive, self.timeout_s, self.max_bytes)
        started = False

        async def tracked_send(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, body.receive, tracked_send)
        except (RequestTimeout, PayloadTooLarge) as e:  # raised where no route could answer it (routes do)
            if not started:
                await _answer(send, e)


class _Body:
    """Wraps ``receive``: deadlines and a byte count while the body is still arriving."""

    def __init__(self, receive: Any, timeout_s: float, max_bytes: int) -> None:
        self._receive = receive
        self._deadline = time.monotonic() + timeout_s
        self._timeout_s = timeout_s
        self._max = max_bytes
        self._size = 0
        self._complete = False

    async def receive(self) -> Any:
        if self._complete:  # afterwards only http.disconnect can come: wait for it as long as it takes
            return await self._receive()
        wait = min(IDLE_S, self._deadline - time.monotonic())
        try:
            async with asyncio.timeout(max(0.0, wait)):  # a timer on this task: no task per message as wait_for made
                message = await self._receive()
        except TimeoutError as e:
            raise RequestTimeout(f"the request body did not arrive in time (whole body within {self._timeout_s:g} s, "
                                 f"at most {IDLE_S:g} s between parts)", rule="body_timeout") from e
        if message["type"] == "http.request":
            self._size += len(message.get("body", b""))
            if self._size > self._max:
                raise PayloadTooLarge(f"the request body is larger than {self._max} bytes", rule="body_too_large",
                                      details={"max_bytes": self._max})
            if not message.get("more_body", False):
                self._complete = True
        else:
            self._complete = True
        return message


async def _answer(send: Any, error: ApiError) -> None:
    body = msgspec.json.encode(error_body(error.status, error.code, error.message, error.rule, error.details))
    await send({"type": "http.response.start", "status": error.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
