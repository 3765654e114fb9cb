"""What one swarm may keep stored: its artifacts and its query results, within ``SWARM_STORAGE_MAX_BYTES``.

Why: artifacts (up to ``ARTIFACT_MAX_BYTES`` each) and result files (up to
``QUERY_MAX_RESULT_BYTES`` each, kept ``QUERY_RESULT_TTL_S``) share the data home's disk or
bucket with every other swarm, and with the served data. Per-file caps bound one file, not
how many: an agent that uploads in a loop, or runs file queries and never collects them,
would fill the disk and break everyone's uploads, results and syncs. So every swarm has
one storage quota, counted from the control database (live artifacts by their size, result
files of jobs not expired by their bytes, and the conversions of those results to other
formats, kept beside them), the same on every worker and replica.

Checked before bytes are written, and the room left caps what a write may add: an upload is
read at most up to it, a result file is cut off at it (413 ``storage_quota``). Writes running
at the same moment each see the room as it was when they started, so a swarm can pass its
quota by at most what those writes add; the next one is refused. Expiry and deletion give
the room back. The admin is never limited.
"""

from __future__ import annotations

import sqlalchemy as sa

from serving.lib.caller import Caller
from serving.lib.errors import PayloadTooLarge
from shared.control.db import session_scope
from shared.control.models import ArtifactRow, QueryJobRow, utcnow


class StorageQuotaExceeded(PayloadTooLarge):
    """413 ``storage_quota``: the swarm keeps as much as it may."""


def stored_bytes(url: str, swarm_id: str) -> int:
    """Bytes ``swarm_id`` keeps now: its live artifacts and the results of its jobs that have not expired,
    with their conversions to other formats (kept beside them until they expire)."""
    now = utcnow()
    live = sa.or_(ArtifactRow.expires_at.is_(None), ArtifactRow.expires_at > now)
    artifacts = (sa.select(sa.func.coalesce(sa.func.sum(ArtifactRow.size), 0))
                 .where(ArtifactRow.swarm_id == swarm_id, ArtifactRow.deleted_at.is_(None), live))
    kept = sa.func.coalesce(QueryJobRow.bytes, 0) + sa.func.coalesce(QueryJobRow.converted_bytes, 0)
    results = (sa.select(sa.func.coalesce(sa.func.sum(kept), 0))
               .where(QueryJobRow.swarm_id == swarm_id, QueryJobRow.result_path.is_not(None),
                      QueryJobRow.status.notin_(("expired",)),
                      sa.or_(QueryJobRow.expires_at.is_(None), QueryJobRow.expires_at > now)))
    with session_scope(url) as s:
        return int(s.scalar(artifacts) or 0) + int(s.scalar(results) or 0)


def room(url: str, caller: Caller, limit: int) -> int | None:
    """Bytes ``caller``'s swarm may still add (None: no quota applies). Blocking.

    Raises :class:`StorageQuotaExceeded` when nothing is left, so no write starts."""
    if caller.is_admin or not caller.swarm_id or limit <= 0:
        return None
    used = stored_bytes(url, caller.swarm_id)
    if used >= limit:
        raise exceeded(limit, used)
    return limit - used


def exceeded(limit: int, used: int | None = None) -> StorageQuotaExceeded:
    details: dict[str, int] = {"limit": limit}
    if used is not None:
        details["used"] = used
    return StorageQuotaExceeded(
        f"your swarm's storage quota of {limit} bytes (artifacts and query results together) is used up; "
        "delete artifacts you no longer need or wait for results to expire", rule="storage_quota", details=details)
