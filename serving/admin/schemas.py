"""API shapes of swarms, tokens and the audit log."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import msgspec

TokenKind = Literal["swarm", "agent"]


class Swarm(msgspec.Struct):
    id: str
    name: str
    description: str
    grants: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime


class SwarmCreate(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    description: str = ""
    grants: list[str] = msgspec.field(default_factory=list)


class SwarmUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Fields to change; a given ``grants`` replaces the whole list and applies at once."""

    name: str | None = None
    description: str | None = None
    grants: list[str] | None = None


class SwarmDeleted(msgspec.Struct):
    """What deleting a swarm did: its tokens are revoked and its running query jobs cancelled at
    once; its artifacts stay readable by the admin only until ``artifacts_deleted_after``, then
    housekeeping deletes them (``DELETED_SWARM_ARTIFACT_GRACE_S``)."""

    swarm_id: str
    revoked: list[str]
    query_jobs_cancelled: int
    artifacts_kept: int
    artifacts_deleted_after: dt.datetime


class TokenCreate(msgspec.Struct, forbid_unknown_fields=True):
    """``allowed_tables`` (agent tokens only) must be a subset of the swarm's grants; omitted means all of them."""

    type: TokenKind
    swarm_id: str
    name: str
    expires_in: int | None = None
    allowed_tables: list[str] | None = None


class AgentTokenCreate(msgspec.Struct, forbid_unknown_fields=True):
    """An agent token minted by a swarm token, for the swarm's own agents."""

    name: str
    expires_in: int | None = None
    allowed_tables: list[str] | None = None


class TokenCreated(msgspec.Struct):
    """The token itself appears only in this answer; only its SHA-256 is stored."""

    token_id: str
    token: str
    type: str
    swarm_id: str
    name: str
    created_at: dt.datetime
    expires_at: dt.datetime
    allowed_tables: list[str] | None = None
    parent_id: str | None = None


class Token(msgspec.Struct):
    token_id: str
    type: str
    swarm_id: str
    name: str
    created_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    allowed_tables: list[str] | None = None
    parent_id: str | None = None
    active: bool = True


class TokenRevoked(msgspec.Struct):
    token_id: str
    revoked: list[str]  # this token and every agent token it minted


class AuditEntry(msgspec.Struct):
    id: int
    at: dt.datetime
    caller_type: str
    swarm_id: str | None
    token_id: str | None
    method: str
    endpoint: str
    status_code: int
    rule: str | None
    sql_text: str | None
    sql_hash: str | None
    tables: list[Any]
    rows: int | None
    bytes: int | None
    duration_ms: float
    replica: str
    request_id: str | None = None  # X-Request-ID of the request (or the id the API made)
    run_id: str | None = None  # Dagster run(s) or backfill the request started


class AuditPage(msgspec.Struct):
    """Newest first; pass ``next_cursor`` as ``cursor`` for the next page (null: no more)."""

    items: list[AuditEntry]
    next_cursor: int | None
