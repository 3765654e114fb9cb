"""Control-database operations on swarms and tokens (blocking; handlers run them in a thread).

Why here and not in the handlers: the rules — grants are lower-case table keys, an
agent token's tables are a subset of its swarm's grants, revoking a swarm token revokes
the agent tokens it minted, a token never outlives the one that minted it — live in one
place that the admin and swarm endpoints share.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from serving.admin.schemas import Swarm, SwarmCreate, SwarmDeleted, SwarmUpdate, Token, TokenCreated
from serving.lib.errors import BadRequest, Conflict, NotFound
from serving.lib.tokens import TokenCodec, token_hash
from shared.control.db import session_scope
from shared.control.locks import lock_swarm
from shared.control.models import SwarmRow, TokenRow
from shared.housekeeping import retire_swarm_data
from shared.identifiers import canonical_key
from shared.policies import forget_swarm

MAX_TTL_S = 10 * 365 * 24 * 3600


def normalize_grants(keys: Iterable[str], field: str = "grants") -> list[str]:
    """Canonical, de-duplicated table keys, or 400 naming the bad ones. A grant is written as a key
    (``demo.public.orders``) or as SQL names (``demo.public."Order Lines"``: unquoted parts are
    case-insensitive, quoted ones exact)."""
    out: list[str] = []
    bad: list[str] = []
    for raw in keys:
        try:
            key = canonical_key(str(raw))
        except ValueError:
            bad.append(str(raw))
            continue
        if key not in out:
            out.append(key)
    if bad:
        raise BadRequest(f"{field} must be table keys 'database.schema.table': {', '.join(bad[:20])}",
                         details={"invalid": bad})
    return out


def _swarm(row: SwarmRow) -> Swarm:
    return Swarm(id=row.id, name=row.name, description=row.description, grants=list(row.grants or []),
                 created_at=row.created_at, updated_at=row.updated_at)


def _token(row: TokenRow, now: dt.datetime) -> Token:
    return Token(token_id=row.id, type=row.type, swarm_id=row.swarm_id, name=row.name, created_at=row.created_at,
                 expires_at=row.expires_at, revoked_at=row.revoked_at,
                 allowed_tables=row.allowed_tables, parent_id=row.parent_id,
                 active=row.revoked_at is None and row.expires_at > now)


def _name(name: str, what: str) -> str:
    name = name.strip()
    if not name or len(name) > 255:
        raise BadRequest(f"{what} name must be 1 to 255 characters")
    return name


def create_swarm(url: str, data: SwarmCreate) -> Swarm:
    row = SwarmRow(id="swm_" + secrets.token_hex(8), name=_name(data.name, "swarm"), description=data.description,
                   grants=normalize_grants(data.grants))
    try:
        with session_scope(url) as s:
            s.add(row)
    except IntegrityError as e:
        raise Conflict(f"a swarm named {row.name!r} already exists") from e
    return _swarm(row)


def list_swarms(url: str) -> list[Swarm]:
    with session_scope(url) as s:
        return [_swarm(r) for r in s.scalars(sa.select(SwarmRow).order_by(SwarmRow.created_at, SwarmRow.id))]


def get_swarm(url: str, swarm_id: str) -> Swarm:
    with session_scope(url) as s:
        row = s.get(SwarmRow, swarm_id)
        if row is None:
            raise NotFound(f"no swarm {swarm_id!r}")
        return _swarm(row)


def update_swarm(url: str, swarm_id: str, data: SwarmUpdate) -> Swarm:
    try:
        with session_scope(url) as s:
            row = s.get(SwarmRow, swarm_id)
            if row is None:
                raise NotFound(f"no swarm {swarm_id!r}")
            if data.name is not None:
                row.name = _name(data.name, "swarm")
            if data.description is not None:
                row.description = data.description
            if data.grants is not None:
                row.grants = normalize_grants(data.grants)
            row.updated_at = dt.datetime.now(dt.UTC)
            s.flush()
            return _swarm(row)
    except IntegrityError as e:
        raise Conflict(f"a swarm named {data.name!r} already exists") from e


def delete_swarm(url: str, swarm_id: str, *, artifact_grace_s: int) -> SwarmDeleted:
    """Delete a swarm, revoke all its tokens (their rows stay for the audit trail), and retire
    its jobs and artifacts by the deleted-swarm rule (``shared.housekeeping.retire_swarm_data``),
    all in one transaction."""
    now = dt.datetime.now(dt.UTC)
    with session_scope(url) as s:
        row = s.get(SwarmRow, swarm_id)
        if row is None:
            raise NotFound(f"no swarm {swarm_id!r}")
        ids = list(s.scalars(sa.select(TokenRow.id).where(TokenRow.swarm_id == swarm_id, TokenRow.revoked_at.is_(None))))
        s.execute(sa.update(TokenRow).where(TokenRow.swarm_id == swarm_id, TokenRow.revoked_at.is_(None))
                  .values(revoked_at=now))
        retired = retire_swarm_data(s, swarm_id, now=now, grace_s=artifact_grace_s)
        forget_swarm(s, swarm_id)
        s.delete(row)
    return SwarmDeleted(swarm_id=swarm_id, revoked=ids, query_jobs_cancelled=retired["query_jobs_cancelled"],
                        artifacts_kept=retired["artifacts_expiring"],
                        artifacts_deleted_after=now + dt.timedelta(seconds=artifact_grace_s))


def mint_token(url: str, codec: TokenCodec, *, kind: str, swarm_id: str, name: str, expires_in: int | None,
               allowed_tables: list[str] | None, default_ttl_s: int, parent_id: str | None = None,
               not_after: dt.datetime | None = None, max_minted: int = 0) -> TokenCreated:
    """Record and sign a swarm or agent token. ``not_after`` caps expiry (a minting token's own).

    ``max_minted`` (a swarm token minting, ``SWARM_MAX_AGENT_TOKENS``) bounds the live agent
    tokens swarm tokens have minted for the swarm: every token is a row the identity store
    loads and caches, and an unbounded number of them is an unbounded control database.
    The per-token limits themselves are capped swarm-wide elsewhere (slots, rates, storage)."""
    name = _name(name, "token")
    if expires_in is not None and not 0 < expires_in <= MAX_TTL_S:
        raise BadRequest(f"expires_in must be between 1 and {MAX_TTL_S} seconds")
    if kind == "swarm" and allowed_tables is not None:
        raise BadRequest("allowed_tables applies to agent tokens only; a swarm token carries the swarm's grants")
    now = dt.datetime.now(dt.UTC)
    ttl = int(expires_in or default_ttl_s)
    if not_after is not None:
        ttl = min(ttl, int((not_after - now).total_seconds()))
        if ttl <= 0:
            raise BadRequest("the minting token has expired")
    with session_scope(url) as s:
        if parent_id and max_minted > 0:
            lock_swarm(s, swarm_id)  # mints of one swarm count and insert one after another
        swarm = s.get(SwarmRow, swarm_id)
        if swarm is None:
            raise NotFound(f"no swarm {swarm_id!r}")
        if parent_id and max_minted > 0:
            _check_minted(s, swarm_id, max_minted, now)
        tables = None
        if allowed_tables is not None:
            tables = normalize_grants(allowed_tables, "allowed_tables")
            outside = [t for t in tables if t not in set(swarm.grants or [])]
            if outside:
                raise BadRequest(f"allowed_tables must be a subset of the swarm's grants; not granted: {', '.join(outside)}",
                                 rule="table_not_granted", details={"not_granted": outside})
        minted = codec.mint(typ="agent" if kind == "agent" else "swarm", sub=name, ttl_s=ttl, swarm_id=swarm_id,
                            now=now.timestamp())
        created = dt.datetime.fromtimestamp(minted.issued_at, dt.UTC)
        expires = dt.datetime.fromtimestamp(minted.expires_at, dt.UTC)
        s.add(TokenRow(id=minted.token_id, type=kind, swarm_id=swarm_id, parent_id=parent_id, name=name,
                       token_hash=token_hash(minted.token), allowed_tables=tables, created_at=created,
                       expires_at=expires))
    return TokenCreated(token_id=minted.token_id, token=minted.token, type=kind, swarm_id=swarm_id, name=name,
                        created_at=created, expires_at=expires, allowed_tables=tables, parent_id=parent_id)


def _check_minted(s: Any, swarm_id: str, limit: int, now: dt.datetime) -> None:
    """409 ``token_limit`` when the swarm already has ``limit`` live agent tokens minted by swarm tokens."""
    live = s.scalar(sa.select(sa.func.count()).select_from(TokenRow).where(
        TokenRow.swarm_id == swarm_id, TokenRow.type == "agent", TokenRow.parent_id.is_not(None),
        TokenRow.parent_id != "", TokenRow.revoked_at.is_(None), TokenRow.expires_at > now))
    if int(live or 0) >= limit:
        raise Conflict(f"this swarm already has {limit} live agent tokens minted by swarm tokens; revoke some "
                       "(or let them expire) before minting more, or ask the admin", rule="token_limit",
                       details={"limit": limit, "live": int(live or 0)})


def token_expiry(url: str, token_id: str) -> dt.datetime:
    with session_scope(url) as s:
        row = s.get(TokenRow, token_id)
        if row is None:
            raise NotFound(f"no token {token_id!r}")
        return row.expires_at


def list_tokens(url: str, *, swarm_id: str | None, kind: str | None, include_revoked: bool, limit: int,
                offset: int) -> list[Token]:
    now = dt.datetime.now(dt.UTC)
    q = sa.select(TokenRow).order_by(TokenRow.created_at.desc(), TokenRow.id).limit(limit).offset(offset)
    if swarm_id:
        q = q.where(TokenRow.swarm_id == swarm_id)
    if kind:
        q = q.where(TokenRow.type == kind)
    if not include_revoked:
        q = q.where(TokenRow.revoked_at.is_(None))
    with session_scope(url) as s:
        return [_token(r, now) for r in s.scalars(q)]


def revoke_token(url: str, token_id: str) -> list[str]:
    """Revoke a token and every token it minted; returns the ids now revoked (idempotent)."""
    now = dt.datetime.now(dt.UTC)
    with session_scope(url) as s:
        row = s.get(TokenRow, token_id)
        if row is None:
            raise NotFound(f"no token {token_id!r}")
        children = list(s.scalars(sa.select(TokenRow.id).where(TokenRow.parent_id == token_id)))
        s.execute(sa.update(TokenRow).where(sa.or_(TokenRow.id == token_id, TokenRow.parent_id == token_id),
                                            TokenRow.revoked_at.is_(None)).values(revoked_at=now))
    return [token_id, *children]
