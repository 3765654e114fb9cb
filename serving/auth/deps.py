"""App-wide dependencies: ``caller`` (the verified bearer token) and ``services``.

Why dependencies: a handler states what it needs in its signature
(``caller: Caller, services: Services``) and nothing else resolves identity. The
caller is stored in the request state for the audit row, and what the request costs
(its token's request rate, and a query's budget) is counted here, before any handler work.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import Provide

from serving.lib.audit import CALLER_KEY, HINT_KEY
from serving.lib.budgets import action_of, get_budgets
from serving.lib.caller import Caller
from serving.lib.errors import Unauthorized
from serving.lib.identity import get_codec, get_identity, resolve_caller
from serving.lib.services import Services
from serving.lib.tokens import CHALLENGE


def bearer_token(request: Request[Any, Any, Any]) -> str:
    """The token of an ``Authorization: Bearer …`` header, or 401 (the token is never echoed)."""
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("missing Authorization header (expected: Bearer <token>)", rule="token_missing",
                           headers=CHALLENGE)
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Authorization header must use the Bearer scheme", rule="token_missing", headers=CHALLENGE)
    if len(token) > 4096 or " " in token:
        raise Unauthorized("token is malformed", rule="token_invalid", headers=CHALLENGE)
    return token


async def provide_caller(request: Request[Any, Any, Any]) -> Caller:
    """The verified caller; resolved once per request (a route guard may already have done it)."""
    services: Services = request.app.state.services
    state = request.scope.setdefault("state", {})
    if isinstance(known := state.get(CALLER_KEY), Caller):
        return known
    hint: dict[str, Any] = {}
    state[HINT_KEY] = hint
    caller = await resolve_caller(bearer_token(request), codec=get_codec(services), store=get_identity(services),
                                  admin_username=services.settings.auth.admin_username, hint=hint)
    state[CALLER_KEY] = caller
    await get_budgets(services).admit(request.scope, caller, action_of(request))
    return caller


async def provide_services(request: Request[Any, Any, Any]) -> Services:
    services: Services = request.app.state.services
    return services


DEPENDENCIES = {
    "caller": Provide(provide_caller),
    "services": Provide(provide_services),
}
