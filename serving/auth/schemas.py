"""API shapes of the auth feature."""

from __future__ import annotations

import msgspec


class AccessToken(msgspec.Struct):
    access_token: str
    expires_in: int
    token_type: str = "bearer"  # noqa: S105 (the OAuth2 token type, not a secret)


class Identity(msgspec.Struct):
    """The caller as the API sees it; ``grants`` is null for admin (every table)."""

    kind: str
    subject: str
    token_id: str | None
    swarm_id: str | None
    grants: list[str] | None
