"""Capability checks as Litestar route guards: ``guards=[requires_admin]`` on a route.

Why guards: who may call a route is stated where the route is declared, and the handler
body is only its work. A guard runs before the handler's parameters are resolved, so it
resolves the caller itself, through the resolver the auth feature registers at start-up
(``provide_resolver``); the ``caller`` dependency then reuses that ``Caller`` (one token
verification and one rate-limit count per request). Grants are not checked here: they
apply per table (``serving/tables/``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from serving.lib.audit import CALLER_KEY
from serving.lib.caller import Caller, CallerKind
from serving.lib.errors import Forbidden
from serving.lib.services import Services

Connection = ASGIConnection[Any, Any, Any, Any]
CallerResolver = Callable[[Any], Awaitable[Caller]]  # (the request) -> its verified caller, or 401
RESOLVER = "caller_resolver"


def provide_resolver(services: Services, resolver: CallerResolver) -> None:
    services.parts[RESOLVER] = resolver


async def caller_of(connection: Connection) -> Caller:
    """The request's caller: the one already resolved for it, or resolved now (401 without a valid token)."""
    known = connection.scope.get("state", {}).get(CALLER_KEY)
    if isinstance(known, Caller):
        return known
    services: Services = connection.app.state.services
    resolver: CallerResolver | None = services.parts.get(RESOLVER)
    if resolver is None:
        raise RuntimeError(f"service {RESOLVER!r} is not started")
    return await resolver(connection)


async def _require(connection: Connection, kind: CallerKind, rule: str) -> None:
    caller = await caller_of(connection)
    if caller.kind != kind:
        raise Forbidden(f"this endpoint needs {'an' if kind[0] in 'aeiou' else 'a'} {kind} token; "
                        f"a {caller.kind} token was given", rule=rule)


async def requires_admin(connection: Connection, _: BaseRouteHandler) -> None:
    """Admin only (swarm and agent tokens are refused)."""
    await _require(connection, "admin", "requires_admin")


async def requires_swarm(connection: Connection, _: BaseRouteHandler) -> None:
    """A swarm token (for example to mint agent tokens of its own swarm)."""
    await _require(connection, "swarm", "requires_swarm")


async def requires_agent(connection: Connection, _: BaseRouteHandler) -> None:
    """An agent token (work that is owned by one agent, such as query jobs)."""
    await _require(connection, "agent", "requires_agent")
