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
    transport: str = "rest"  # rest | mcp (a call an MCP tool made)


class AuditPage(msgspec.Struct):
    """Newest first; pass ``next_cursor`` as ``cursor`` for the next page (null: no more)."""

    items: list[AuditEntry]
    next_cursor: int | None


MaskKind = Literal["hash", "partial", "null"]


class GrantPolicy(msgspec.Struct):
    """Column and row rules on one table of a swarm's grant (``token_id`` null), or narrowing one agent token."""

    swarm_id: str
    token_id: str | None
    table: str
    exclude: list[str]
    masks: dict[str, str]
    row_filter: str | None
    updated_by: str
    updated_at: dt.datetime


class GrantPolicyUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """Replaces the rules of one table. ``exclude``: columns the grantee never sees. ``masks``: column
    to ``hash`` (keyed hash, stable within the swarm, so joins work), ``partial`` (``j***@example.com``,
    ``***1234``) or ``null``. ``row_filter``: a SQL predicate over the table's columns
    (``region = 'EU'``), checked by the SQL guard now; only matching rows are served. An agent
    token's rules only narrow its swarm's."""

    exclude: list[str] = msgspec.field(default_factory=list)
    masks: dict[str, MaskKind] = msgspec.field(default_factory=dict)
    row_filter: str | None = None


class GrantPolicyDeleted(msgspec.Struct):
    deleted: bool


class ColumnUnmask(msgspec.Struct):
    """A personal column granted unmasked to a swarm, by whom, when and why."""

    swarm_id: str
    table: str
    column: str
    reason: str
    granted_by: str
    granted_at: dt.datetime


class ColumnUnmaskCreate(msgspec.Struct, forbid_unknown_fields=True):
    """Grant a column classified as personal unmasked to the swarm. ``reason`` is required (audited).
    An explicit mask or exclusion in a grant policy still applies."""

    table: str
    column: str
    reason: str


class ColumnOverride(msgspec.Struct):
    table: str
    column: str
    personal: bool
    category: str | None
    reason: str
    updated_by: str
    updated_at: dt.datetime


class ColumnOverrideUpdate(msgspec.Struct, forbid_unknown_fields=True):
    """The admin's verdict on a column, which wins over every classification, including later syncs'."""

    personal: bool
    reason: str
    category: str | None = None


class ColumnVerdict(msgspec.Struct):
    """A column's classification at the last sync (``detected``), the admin's override, and the result."""

    name: str
    personal: bool
    detected: dict[str, Any] | None
    override: ColumnOverride | None


class TableClassification(msgspec.Struct):
    table: str
    served_version: str | None
    columns: list[ColumnVerdict]
