"""Artifact records: who may see and change them, and their life cycle (blocking; run in a thread).

Access rules, in one place (``can_read``):
- the owner (the agent token that created it) and the admin see an artifact;
- ``swarm`` visibility: every token of the owner's swarm; ``agents``: the listed agent
  tokens of that swarm;
- anyone else gets 404, exactly like a missing id, and so does everyone once it has
  expired or been deleted;
- only the owner changes it; the owner or the admin deletes it;
- an artifact saved from a query result records the tables it was read from
  (``served_versions``); it is served (listed, read, downloaded, changed) only to
  callers who may still read every one of them, else 403 ``table_not_granted``
  (and it is left out of listings). Uploaded files name no table.

The store (local folder or S3) is created in the lifespan and injected.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

import sqlalchemy as sa

from serving.artifacts.schemas import Artifact, ArtifactList, ArtifactUpdate
from serving.artifacts.validation import (
    check_content_type,
    check_expires_in,
    check_metadata,
    check_name,
    check_tags,
    check_visibility,
    is_id,
)
from serving.lib.caller import Caller
from serving.lib.errors import BadRequest, Forbidden, NotFound
from serving.lib.services import Services
from shared import policies
from shared.artifacts_store import ArtifactStore, StoredObject, open_store
from shared.control.db import session_scope
from shared.control.models import ArtifactRow, TokenRow, as_utc, utcnow

STORE = "artifact_store"
MAX_PAGE = 1000
LIST_SCAN_CHUNK = 200  # rows read at a time while filling a page of a listing


async def startup(services: Services) -> None:
    if services.parts.get(STORE) is None:
        services.parts[STORE] = open_store(services.settings)


def get_store(services: Services) -> ArtifactStore:
    store = services.parts.get(STORE)
    if store is None:
        raise RuntimeError("service 'artifact_store' is not started")
    return store  # type: ignore[no-any-return]


def to_schema(row: ArtifactRow) -> Artifact:
    return Artifact(
        id=row.id, name=row.name, content_type=row.content_type, size=row.size, sha256=row.sha256,
        tags=list(row.tags or []), metadata=dict(row.meta or {}), visibility=row.visibility,  # type: ignore[arg-type]
        visible_to=list(row.visible_to or []), owner=row.owner_token_id, owner_name=row.owner_agent,
        swarm_id=row.swarm_id, created_at=row.created_at, updated_at=row.updated_at,  # type: ignore[arg-type]
        expires_at=row.expires_at, source_job_id=row.source_job_id, sql_hash=row.sql_hash,
        served_versions=[{k: v for k, v in x.items() if k != "rules"} if isinstance(x, dict) else x
                         for x in row.served_versions or []],  # rule digests stay internal
        content_url=f"/api/v1/artifacts/{row.id}/content",
    )


def is_live(row: ArtifactRow, now: dt.datetime) -> bool:
    expires = row.expires_at
    return row.deleted_at is None and (expires is None or expires > now)


def can_read(row: ArtifactRow, caller: Caller) -> bool:
    if caller.is_admin:
        return True
    if caller.token_id is not None and row.owner_token_id == caller.token_id:
        return True
    if caller.swarm_id is None or row.swarm_id != caller.swarm_id:
        return False
    if row.visibility == "swarm":
        return True
    return row.visibility == "agents" and caller.token_id in (row.visible_to or [])


def ungranted_tables(row: ArtifactRow, caller: Caller) -> list[str]:
    """Tables the artifact was made from (saved query results record them) that ``caller`` may not read now,
    or may read only under a rule the read that made it was not under (``policies.covers``)."""
    if caller.is_admin:
        return []
    made = [v for v in (row.served_versions or []) if isinstance(v, dict) and v.get("table")]
    policy = caller.policy_set()
    return sorted({str(v["table"]) for v in made if not caller.may_read(str(v["table"]))
                   or not policies.covers(v.get("rules"), policy, str(v["table"]))})


def _not_found() -> NotFound:
    return NotFound("no such artifact")


def _visible_row(s: Any, artifact_id: str, caller: Caller, now: dt.datetime, *, check_grants: bool = True) -> ArtifactRow:
    row = s.get(ArtifactRow, artifact_id) if is_id(artifact_id) else None
    if row is None or not is_live(row, now) or not can_read(row, caller):
        raise _not_found()
    missing = ungranted_tables(row, caller) if check_grants else []
    if missing:
        raise Forbidden(f"this artifact was made from {', '.join(missing)}, which this token may no longer read; "
                        "artifacts made from a table are served only while it is granted, and only to tokens "
                        "under no rule on it the saved read was not under", rule="table_not_granted",
                        details={"tables": missing})
    return row  # type: ignore[no-any-return]


def _check_agents(s: Any, swarm_id: str | None, ids: list[str]) -> None:
    """Listed ids must be agent tokens of the owner's swarm (others are refused the same way as unknown ids)."""
    if not ids:
        return
    found = set(s.scalars(sa.select(TokenRow.id).where(TokenRow.id.in_(ids), TokenRow.type == "agent",
                                                        TokenRow.swarm_id == swarm_id)))
    unknown = [i for i in ids if i not in found]
    if unknown:
        raise BadRequest("visibility lists ids that are not agent tokens of your swarm",
                         rule="invalid_artifact_field", details={"field": "visibility", "unknown": unknown[:20]})


def check_visible_to(url: str, swarm_id: str | None, ids: list[str]) -> None:
    if ids:
        with session_scope(url) as s:
            _check_agents(s, swarm_id, ids)


def create(url: str, caller: Caller, stored: StoredObject, *, name: str, content_type: str, tags: list[str],
           metadata: dict[str, Any], visibility: str, visible_to: list[str], expires_in: int,
           source_job_id: str | None = None, sql_hash: str | None = None,
           served_versions: list[dict[str, Any]] | None = None) -> Artifact:
    now = utcnow()
    with session_scope(url) as s:
        _check_agents(s, caller.swarm_id, visible_to)
        row = ArtifactRow(
            id="art_" + secrets.token_hex(12), owner_token_id=caller.token_id, owner_agent=caller.subject,
            swarm_id=caller.swarm_id, name=name, content_type=content_type, tags=tags, meta=metadata,
            visibility=visibility, visible_to=visible_to, sha256=stored.sha256, size=stored.size,
            storage_key=stored.key, source_job_id=source_job_id, sql_hash=sql_hash,
            served_versions=served_versions or [], created_at=now, updated_at=now,
            expires_at=now + dt.timedelta(seconds=expires_in),
        )
        s.add(row)
        s.flush()
        return to_schema(row)


def get(url: str, caller: Caller, artifact_id: str) -> Artifact:
    with session_scope(url) as s:
        return to_schema(_visible_row(s, artifact_id, caller, utcnow()))


def _json_like(column: Any, value: str) -> Any:
    """``column`` (a JSON list of strings) contains ``value``: a portable text match, re-checked in Python."""
    import json

    needle = json.dumps(value).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return sa.cast(column, sa.Text).like(f"%{needle}%", escape="\\")


def list_visible(url: str, caller: Caller, *, tag: str | None = None, content_type: str | None = None,
                 owner: str | None = None, created_after: dt.datetime | None = None,
                 created_before: dt.datetime | None = None, limit: int = 100, offset: int = 0) -> ArtifactList:
    now = utcnow()
    limit = max(1, min(limit, MAX_PAGE))
    tag = check_tags([tag])[0] if tag else None  # stored tags are NFC and trimmed: so is the filter
    content_type = check_content_type(content_type) if content_type else None
    if owner and not is_id(owner):
        raise BadRequest("owner: must be an agent token id", rule="invalid_artifact_field", details={"field": "owner"})
    q = sa.select(ArtifactRow).where(ArtifactRow.deleted_at.is_(None),
                                     sa.or_(ArtifactRow.expires_at.is_(None), ArtifactRow.expires_at > now))
    if not caller.is_admin:
        mine = ArtifactRow.owner_token_id == caller.token_id
        if caller.swarm_id is None:
            q = q.where(mine)
        else:
            shared = sa.and_(ArtifactRow.swarm_id == caller.swarm_id, sa.or_(
                ArtifactRow.visibility == "swarm",
                sa.and_(ArtifactRow.visibility == "agents", _json_like(ArtifactRow.visible_to, caller.token_id or "")),
            ))
            q = q.where(sa.or_(mine, shared))
    if tag:
        q = q.where(_json_like(ArtifactRow.tags, tag))
    if content_type:
        q = q.where(ArtifactRow.content_type == content_type)
    if owner:
        q = q.where(ArtifactRow.owner_token_id == owner)
    if created_after:
        q = q.where(ArtifactRow.created_at > created_after)
    if created_before:
        q = q.where(ArtifactRow.created_at < created_before)
    q = q.order_by(ArtifactRow.created_at.desc(), ArtifactRow.id)
    # Some rows the query matches are left out here (made from a table the caller may not read,
    # or a tag the text match took for another), so ``offset`` and ``next_offset`` count only the
    # rows the caller may read, scanned from the first. Paging over the query's rows instead
    # told the caller where rows it may not see lie (short or empty pages with a next page, the
    # same page at two offsets): a count of the artifacts its swarm-mates made from tables it is
    # not granted, per filter.
    items: list[Artifact] = []
    skip, position, more = max(0, offset), 0, False
    with session_scope(url) as s:
        while not more:
            rows = list(s.scalars(q.offset(position).limit(LIST_SCAN_CHUNK)))
            position += len(rows)
            for r in rows:
                if not (can_read(r, caller) and (not tag or tag in (r.tags or [])) and not ungranted_tables(r, caller)):
                    continue
                if skip:
                    skip -= 1
                elif len(items) == limit:
                    more = True
                    break
                else:
                    items.append(to_schema(r))
            if len(rows) < LIST_SCAN_CHUNK:
                break
    return ArtifactList(items=items, count=len(items), next_offset=max(0, offset) + len(items) if more else None)


def update(url: str, caller: Caller, artifact_id: str, data: ArtifactUpdate, default_ttl_s: int) -> Artifact:
    import msgspec

    now = utcnow()
    with session_scope(url) as s:
        row = _visible_row(s, artifact_id, caller, now)
        if caller.token_id is None or row.owner_token_id != caller.token_id:
            raise Forbidden("only the artifact's owner may change it", rule="not_owner")
        if data.name is not msgspec.UNSET:
            row.name = check_name(data.name)
        if data.tags is not msgspec.UNSET:
            row.tags = check_tags(data.tags)
        if data.metadata is not msgspec.UNSET:
            row.meta = check_metadata(data.metadata)
        if data.visibility is not msgspec.UNSET:
            visibility, visible_to = check_visibility(data.visibility)
            _check_agents(s, row.swarm_id, visible_to)
            row.visibility, row.visible_to = visibility, visible_to
        if data.expires_in is not msgspec.UNSET and data.expires_at is not msgspec.UNSET:
            raise BadRequest("give expires_in or expires_at, not both", rule="invalid_artifact_field",
                             details={"field": "expires_at"})
        if data.expires_in is not msgspec.UNSET:
            row.expires_at = now + dt.timedelta(seconds=check_expires_in(data.expires_in, default_ttl_s))
        if data.expires_at is not msgspec.UNSET:
            at = as_utc(data.expires_at)
            if at is None or not now < at <= now + dt.timedelta(seconds=365 * 24 * 3600):
                raise BadRequest("expires_at: must be in the future and within a year", rule="invalid_artifact_field",
                                 details={"field": "expires_at"})
            row.expires_at = at
        row.updated_at = now
        s.flush()
        return to_schema(row)


def delete(url: str, caller: Caller, artifact_id: str) -> None:
    """Hide at once; the housekeeping purge removes the row and, when unreferenced, the object."""
    now = utcnow()
    with session_scope(url) as s:
        row = _visible_row(s, artifact_id, caller, now, check_grants=False)  # an owner may always delete
        if not caller.is_admin and (caller.token_id is None or row.owner_token_id != caller.token_id):
            raise Forbidden("only the artifact's owner may delete it", rule="not_owner")
        row.deleted_at = now


def content_row(url: str, caller: Caller, artifact_id: str) -> ArtifactRow:
    with session_scope(url) as s:
        row = _visible_row(s, artifact_id, caller, utcnow())
        s.expunge(row)
        return row
