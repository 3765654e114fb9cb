"""Turning a bearer token into a :class:`Caller`, checking revocation on every request.

Why a short cache: the control database is the authority for revocation, expiry,
grants and grant policies (a PATCH of a swarm's grants or a DELETE of a token must bite at once), but a
database round trip per request would dominate the hot path. Token rows are cached
for at most ``TOKEN_CACHE_TTL_S`` (default 1 s), and every change made through this
process's admin endpoints clears the cache, so here it takes effect immediately and on
other replicas within the TTL. Cache misses run in a worker thread.

Why in ``lib``: the auth feature (token routes), admin (minting, revoking) and the Dagster
UI's cookie login all need the same identity store and codec; the auth feature builds
them at start-up, and the others reach them through ``get_codec`` / ``get_identity``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
import time
from typing import Any

import anyio.to_thread
import msgspec
import sqlalchemy as sa
from sqlalchemy.orm import Session

from serving.lib.caller import Caller
from serving.lib.errors import Unauthorized
from serving.lib.services import Services
from serving.lib.tokens import CHALLENGE, TokenCodec, token_hash
from shared.control.db import get_engine
from shared.control.models import SwarmRow, TokenRow
from shared.policies import PolicySet, load_policy_set

_TOKENS = TokenRow.__table__
_SWARMS = SwarmRow.__table__
_MAX_CACHE = 50_000


def _epoch(value: dt.datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


@dataclasses.dataclass(frozen=True)
class TokenRecord:
    """What the control database says about one token, its parent and its swarm."""

    id: str
    type: str
    swarm_id: str
    name: str
    token_hash: str
    allowed_tables: frozenset[str] | None
    expires_at: float
    revoked: bool
    parent_revoked: bool
    swarm_exists: bool
    swarm_grants: frozenset[str]
    policy: PolicySet | None = None

    @property
    def grants(self) -> frozenset[str]:
        if self.type == "agent" and self.allowed_tables is not None:
            return self.swarm_grants & self.allowed_tables
        return self.swarm_grants


class IdentityStore:
    """Cached, read-only view of token rows keyed by ``jti``.

    Loads are single-flight: when a hot token's entry expires, the first request reloads it
    and concurrent requests for the same token wait for that one load instead of each
    starting their own (which, at 16 concurrent requests, queued 16 database round trips
    on the thread pool every TTL).
    """

    def __init__(self, control_url: str, ttl_s: float = 1.0) -> None:
        self._url = control_url
        self._ttl = ttl_s
        self._cache: dict[str, tuple[float, TokenRecord | None]] = {}
        self._loading: dict[str, anyio.Event] = {}
        self._generation = 0  # bumped by invalidate(); a load started before it is not cached

    def invalidate(self) -> None:
        """Forget every cached row (called after any identity change in this process)."""
        self._generation += 1
        self._cache.clear()

    def _fresh(self, token_id: str) -> tuple[bool, TokenRecord | None]:
        hit = self._cache.get(token_id)
        if hit is not None and hit[0] > time.monotonic():
            return True, hit[1]
        return False, None

    async def get(self, token_id: str) -> TokenRecord | None:
        found, record = self._fresh(token_id)
        while not found and (loading := self._loading.get(token_id)) is not None:
            await loading.wait()  # another request is loading this token: share its answer
            found, record = self._fresh(token_id)
        if found:
            return record
        done = self._loading[token_id] = anyio.Event()
        generation = self._generation
        try:
            record = await anyio.to_thread.run_sync(self.load, token_id)
            if generation == self._generation:
                self._remember(token_id, record)
        finally:
            del self._loading[token_id]
            done.set()
        return record

    def _remember(self, token_id: str, record: TokenRecord | None) -> None:
        now = time.monotonic()
        if len(self._cache) >= _MAX_CACHE:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            if len(self._cache) >= _MAX_CACHE:
                self._cache.clear()
        self._cache[token_id] = (now + self._ttl, record)

    def load(self, token_id: str) -> TokenRecord | None:
        engine = get_engine(self._url)
        with engine.connect() as conn:
            row = conn.execute(sa.select(_TOKENS).where(_TOKENS.c.id == token_id)).mappings().first()
            if row is None:
                return None
            parent_revoked = False
            if row["parent_id"]:
                parent = conn.execute(sa.select(_TOKENS.c.revoked_at, _TOKENS.c.expires_at)
                                      .where(_TOKENS.c.id == row["parent_id"])).first()
                parent_revoked = parent is None or parent.revoked_at is not None
            swarm = conn.execute(sa.select(_SWARMS.c.grants).where(_SWARMS.c.id == row["swarm_id"])).first()
        allowed = row["allowed_tables"]
        grants = frozenset(str(t).lower() for t in (swarm.grants if swarm else []) or [])
        with Session(engine) as session:
            policy = load_policy_set(session, row["swarm_id"], row["id"] if row["type"] == "agent" else None, grants)
        return TokenRecord(
            id=row["id"], type=row["type"], swarm_id=row["swarm_id"], name=row["name"], token_hash=row["token_hash"],
            allowed_tables=None if allowed is None else frozenset(str(t).lower() for t in allowed),
            expires_at=_epoch(row["expires_at"]) or 0.0, revoked=row["revoked_at"] is not None,
            parent_revoked=parent_revoked, swarm_exists=swarm is not None,
            swarm_grants=grants, policy=policy,
        )


def _deny(message: str, rule: str = "token_invalid") -> Unauthorized:
    return Unauthorized(message, rule=rule, headers=CHALLENGE)


async def resolve_caller(token: str, *, codec: TokenCodec, store: IdentityStore, admin_username: str,
                         hint: dict[str, Any] | None = None) -> Caller:
    """Verify ``token`` and return who is calling, or raise :class:`Unauthorized`.

    ``hint`` (if given) receives the token id and swarm once the signature is proven,
    so the audit row of a rejected-but-genuine token (revoked, expired) names it.
    """
    digest = token_hash(token)
    claims = codec.verify(token, digest)
    typ, jti, sub = claims["typ"], claims["jti"], claims["sub"]
    if typ == "admin":
        if not hmac.compare_digest(sub.encode(), admin_username.encode()):
            raise _deny("token subject is not the admin")
        return Caller(kind="admin", subject=sub)
    if hint is not None:
        hint.update(kind=typ, token_id=jti, swarm_id=claims.get("swarm"))
    record = await store.get(jti)
    if record is None:
        raise _deny("token is not known (it may have been deleted)", "token_revoked")
    if not hmac.compare_digest(record.token_hash, digest) or record.type != typ:
        raise _deny("token does not match its record")
    if claims.get("swarm") not in (None, record.swarm_id):
        raise _deny("token swarm does not match its record")
    if record.revoked:
        raise _deny("token has been revoked", "token_revoked")
    if record.parent_revoked:
        raise _deny("token has been revoked (the swarm token that minted it was revoked)", "token_revoked")
    if record.expires_at <= time.time():
        raise _deny("token expired", "token_expired")
    if not record.swarm_exists:
        raise _deny("token's swarm no longer exists", "token_revoked")
    return Caller(kind="agent" if typ == "agent" else "swarm", subject=record.name, token_id=jti,
                  swarm_id=record.swarm_id, grants=record.grants, policy=record.policy)


CODEC = "token_codec"
IDENTITY = "identity"


def get_codec(services: Services) -> TokenCodec:
    """The process's token codec (built by the auth feature at start-up)."""
    return services.get(CODEC, TokenCodec)


def get_identity(services: Services) -> IdentityStore:
    """The process's identity store (built by the auth feature at start-up)."""
    return services.get(IDENTITY, IdentityStore)


class LoginForm(msgspec.Struct):
    """OAuth2 password-style form fields (the API's token endpoint and the Dagster UI's login page)."""

    username: str
    password: str
