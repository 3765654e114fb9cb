"""What one swarm may keep stored: its artifacts and its query results, within ``SWARM_STORAGE_MAX_BYTES``.

Why: artifacts (up to ``ARTIFACT_MAX_BYTES`` each) and result files (up to
``QUERY_MAX_RESULT_BYTES`` each, kept ``QUERY_RESULT_TTL_S``) share the data home's disk or
bucket with every other swarm, and with the served data. Per-file caps bound one file, not
how many: an agent that uploads in a loop, or runs file queries and never collects them,
would fill the disk and break everyone's uploads, results and syncs. So every swarm has
one storage quota, counted from the control database (live artifacts by their size, result
files of jobs not expired by their bytes and their conversions'), the same on every worker
and replica.

A write reserves its room before its first byte (:func:`reserved`): under its swarm's lock
(``shared/control/locks.py``) it counts what is stored plus what the writes in progress
have reserved, and takes what it may add (its own cap, or less when less is left). That
room caps the write (an upload is read at most up to it, a result file is cut off at it:
413 ``storage_quota``), and it counts for the swarm until the write's own row records
what it stored, when it is given back. So writes running at the same moment cannot each
take the same room: counted apart, 16 result files at once could each add a gigabyte to a
full quota. A reservation whose writer died counts until it expires. Expiry and deletion
of stored data give the room back. The admin is never limited.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import secrets
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy.orm import Session

from serving.lib.caller import Caller
from serving.lib.errors import PayloadTooLarge
from shared.control.db import session_scope
from shared.control.locks import lock_swarm
from shared.control.models import ArtifactRow, QueryJobRow, StorageReservationRow, utcnow

log = logging.getLogger(__name__)

# How long an upload's or a saved result's reservation counts if its writer dies before giving
# it back; a result file's counts for the query's longest time limit plus this.
WRITE_TTL_S = 3600


class StorageQuotaExceeded(PayloadTooLarge):
    """413 ``storage_quota``: the swarm keeps as much as it may."""


@dataclasses.dataclass(frozen=True)
class Reservation:
    """Room held for one write: ``bytes`` it may add (None: no quota applies, only its own caps)."""

    id: str | None
    bytes: int | None


def _stored(s: Session, swarm_id: str, now: dt.datetime) -> int:
    live = sa.or_(ArtifactRow.expires_at.is_(None), ArtifactRow.expires_at > now)
    artifacts = (sa.select(sa.func.coalesce(sa.func.sum(ArtifactRow.size), 0))
                 .where(ArtifactRow.swarm_id == swarm_id, ArtifactRow.deleted_at.is_(None), live))
    kept = sa.func.coalesce(QueryJobRow.bytes, 0) + sa.func.coalesce(QueryJobRow.converted_bytes, 0)
    results = (sa.select(sa.func.coalesce(sa.func.sum(kept), 0))
               .where(QueryJobRow.swarm_id == swarm_id, QueryJobRow.result_path.is_not(None),
                      QueryJobRow.status.notin_(("expired",)),
                      sa.or_(QueryJobRow.expires_at.is_(None), QueryJobRow.expires_at > now)))
    held = (sa.select(sa.func.coalesce(sa.func.sum(StorageReservationRow.bytes), 0))
            .where(StorageReservationRow.swarm_id == swarm_id, StorageReservationRow.expires_at > now))
    return sum(int(s.scalar(q) or 0) for q in (artifacts, results, held))


def stored_bytes(url: str, swarm_id: str) -> int:
    """Bytes ``swarm_id`` keeps now: its live artifacts, the results of its jobs that have not
    expired (with their conversions), and the room its writes in progress hold."""
    with session_scope(url) as s:
        return _stored(s, swarm_id, utcnow())


def reserve(url: str, caller: Caller, limit: int, want: int, *, ttl_s: float = WRITE_TTL_S) -> Reservation:
    """Hold up to ``want`` bytes of ``caller``'s swarm's room for one write. Blocking.

    Raises :class:`StorageQuotaExceeded` when nothing is left, so no write starts. Give it
    back with :func:`release` once the write's row records what it stored (or it failed)."""
    if caller.is_admin or not caller.swarm_id or limit <= 0:
        return Reservation(None, None)
    now = utcnow()
    with session_scope(url) as s:
        lock_swarm(s, caller.swarm_id)
        s.execute(sa.delete(StorageReservationRow).where(StorageReservationRow.swarm_id == caller.swarm_id,
                                                         StorageReservationRow.expires_at <= now))
        used = _stored(s, caller.swarm_id, now)
        if used >= limit:
            raise exceeded(limit, used)
        grant = min(want, limit - used)
        rid = secrets.token_hex(16)
        s.add(StorageReservationRow(id=rid, swarm_id=caller.swarm_id, bytes=grant,
                                    expires_at=now + dt.timedelta(seconds=ttl_s)))
    return Reservation(rid, grant)


def hand_over(s: Session, reservation: Reservation | None) -> None:
    """Drop ``reservation`` in the transaction ``s`` that records what its write stored, so the room
    is counted once, by the row, from the moment it commits (and one transaction fewer)."""
    if reservation is not None and reservation.id is not None:
        s.execute(sa.delete(StorageReservationRow).where(StorageReservationRow.id == reservation.id))


def release(url: str, reservation: Reservation | None) -> None:
    """Give a reservation's room back. Never raises: a reservation left behind expires."""
    if reservation is None or reservation.id is None:
        return
    try:
        with session_scope(url) as s:
            hand_over(s, reservation)
    except Exception:  # the control database is away: the reservation counts until it expires
        log.warning("could not give back storage reservation %s; it expires on its own", reservation.id,
                    exc_info=True)


@contextlib.contextmanager
def reserved(url: str, caller: Caller, limit: int, want: int, *, ttl_s: float = WRITE_TTL_S) -> Iterator[int | None]:
    """The room one write may use (None: no quota applies), held until the block ends.
    End the block after the write's row is recorded, so the room is never counted by neither."""
    reservation = reserve(url, caller, limit, want, ttl_s=ttl_s)
    try:
        yield reservation.bytes
    finally:
        release(url, reservation)


@contextlib.contextmanager
def cut_at_room(limit: int, cap: int, most: int) -> Iterator[None]:
    """Around a file write capped at ``cap`` bytes where its own cap is ``most``: stopped at a cap
    the swarm's room set (``cap < most``), its 413 ``result_too_large`` is the quota's 413
    ``storage_quota``, which says what to do."""
    try:
        yield
    except PayloadTooLarge as e:
        if cap < most and e.rule == "result_too_large":
            raise exceeded(limit) from e
        raise


def exceeded(limit: int, used: int | None = None) -> StorageQuotaExceeded:
    details: dict[str, int] = {"limit": limit}
    if used is not None:
        details["used"] = used
    return StorageQuotaExceeded(
        f"your swarm's storage quota of {limit} bytes (artifacts and query results together) is used up; "
        "delete artifacts you no longer need or wait for results to expire", rule="storage_quota", details=details)
