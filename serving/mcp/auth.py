"""MCP bearer auth: the same agent, swarm and admin tokens as REST, through the SDK's ``TokenVerifier``.

The verifier proves the token exactly as a REST request does (``resolve_caller``: the
signature, the token's record, revocation, expiry, the swarm) and returns the caller's
identity and grants. A missing or refused token never reaches a tool: the SDK answers
401 with ``WWW-Authenticate``. Each tool then calls its route with the same token, so
the grants that decide are the ones the route reads at that moment.
"""

from __future__ import annotations

from mcp.server.auth.provider import AccessToken

from serving.lib.caller import Caller
from serving.lib.errors import ApiError
from serving.lib.identity import get_codec, get_identity, resolve_caller
from serving.lib.services import Services


def caller_claims(caller: Caller) -> dict[str, object]:
    return {"kind": caller.kind, "swarm_id": caller.swarm_id, "token_id": caller.token_id,
            "grants": sorted(caller.grants)}


def caller_of(token: AccessToken) -> Caller:
    """The ``Caller`` a verified token stands for (as the verifier found it)."""
    claims = token.claims or {}
    return Caller(kind=claims.get("kind", "agent"), subject=token.subject or token.client_id,
                  token_id=claims.get("token_id"), swarm_id=claims.get("swarm_id"),
                  grants=frozenset(claims.get("grants") or ()))


class CallerTokens:
    """``TokenVerifier`` over the API's own tokens."""

    def __init__(self, services: Services) -> None:
        self.services = services

    async def verify_token(self, token: str) -> AccessToken | None:
        if not token or len(token) > 4096 or " " in token:
            return None
        services = self.services
        try:
            caller = await resolve_caller(token.strip(), codec=get_codec(services), store=get_identity(services),
                                          admin_username=services.settings.auth.admin_username)
        except ApiError:
            return None  # the SDK answers 401 with WWW-Authenticate; the reason is not echoed
        return AccessToken(token=token.strip(), client_id=caller.token_id or caller.subject, scopes=[caller.kind],
                           subject=caller.subject, claims=caller_claims(caller))
