"""Sync jobs in the control database (``sync_requests``): the state every API replica shares.

Why the database and not process memory: a refresh requested through one replica must
be visible to the others (coalescing, polling), and survive ``kill -9`` of the replica
that launched it. A job row is written *before* Dagster is asked to launch (status
``launching``), so a concurrent request through another replica coalesces onto it
instead of launching a second run; a row stuck in ``launching`` (its replica died
between the insert and the launch) is given up after ``LAUNCH_GRACE_S``.

All functions are synchronous (SQLAlchemy); async callers use ``anyio.to_thread``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import secrets
import statistics
import threading
from contextlib import nullcontext
from typing import Any

import sqlalchemy as sa

from shared import status
from shared.control.db import session_scope
from shared.control.models import SyncRequestRow, TableStatusRow, utcnow

ACTIVE = ("launching", "queued", "running")
TERMINAL = ("succeeded", "failed", "canceled")
LAUNCH_GRACE_S = 60.0
_sqlite_lock = threading.Lock()  # SQLite has one writer anyway; this serialises claims in one process


@dataclasses.dataclass(frozen=True)
class SyncJob:
    """A detached copy of one ``sync_requests`` row."""

    id: str
    table_key: str
    kind: str  # run | backfill
    dagster_id: str | None
    status: str  # launching | queued | running | succeeded | failed | canceled
    partitions: list[str]
    requested_by: str | None
    reason: str  # manual | refresh | coalesced | freshness
    error: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    request_id: str | None = None  # the API request that launched it

    @property
    def active(self) -> bool:
        return self.status in ACTIVE


def _job(row: SyncRequestRow) -> SyncJob:
    return SyncJob(
        id=row.id, table_key=row.table_key, kind=row.kind, dagster_id=row.dagster_id, status=row.status,
        partitions=list(row.partitions or []), requested_by=row.requested_by, reason=row.reason, error=row.error,
        created_at=row.created_at or utcnow(), updated_at=row.updated_at or utcnow(),
        started_at=row.started_at, finished_at=row.finished_at, request_id=row.request_id,
    )


def new_job_id() -> str:
    return "sync_" + secrets.token_hex(8)


def _lock_table(session: Any, key: str) -> None:
    """Serialise claims for one table across replicas (PostgreSQL advisory lock, held to commit)."""
    if session.get_bind().dialect.name == "postgresql":
        lock_id = int.from_bytes(hashlib.sha256(f"sync:{key}".encode()).digest()[:8], "big", signed=True)
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id})


def create(url: str, *, table_key: str, kind: str, partitions: list[str], requested_by: str | None,
           reason: str, dagster_id: str | None = None, status: str = "launching") -> SyncJob:
    with session_scope(url) as s:
        row = SyncRequestRow(id=new_job_id(), table_key=table_key, kind=kind, dagster_id=dagster_id, status=status,
                             partitions=partitions, requested_by=requested_by, reason=reason)
        s.add(row)
        s.flush()
        return _job(row)


def claim(url: str, *, table_key: str, kind: str, partitions: list[str], requested_by: str | None,
          reason: str, fresh_after: dt.datetime | None = None,
          not_joinable: frozenset[str] = frozenset()) -> tuple[SyncJob, bool]:
    """The active job of ``table_key`` to join, or a new ``launching`` one. Returns ``(job, created)``.

    Joinable: same partitions, and either not started yet (``launching``/``queued``: it will read
    the source after now) or created at or after ``fresh_after`` (a caller wanting data no older
    than N seconds must not join a run that read the source before that). Atomic across
    replicas: concurrent claims for the same table give one new job.
    """
    with _sqlite_lock if url.startswith("sqlite") else nullcontext(), session_scope(url) as s:
        _lock_table(s, table_key)
        rows = s.scalars(
            sa.select(SyncRequestRow)
            .where(SyncRequestRow.table_key == table_key, SyncRequestRow.status.in_(ACTIVE))
            .order_by(SyncRequestRow.created_at.desc())
        ).all()
        now = utcnow()
        for row in rows:
            created = row.created_at or now
            if row.status == "launching" and row.dagster_id is None and (now - created).total_seconds() > LAUNCH_GRACE_S:
                row.status, row.finished_at = "failed", now
                row.error = "launch interrupted: the API replica handling it stopped before Dagster accepted the run"
                continue
            if row.id in not_joinable or list(row.partitions or []) != list(partitions):
                continue
            if fresh_after is None or created >= fresh_after or row.status in ("launching", "queued"):
                return _job(row), False
        row = SyncRequestRow(id=new_job_id(), table_key=table_key, kind=kind, status="launching",
                             partitions=partitions, requested_by=requested_by, reason=reason)
        s.add(row)
        s.flush()
        return _job(row), True


def unfinished(url: str, *, limit: int = 500) -> list[SyncJob]:
    """Jobs still ``launching``, ``queued`` or ``running``, oldest first (for the reconciler).

    ``launching`` rows whose replica died before Dagster accepted them (older than
    ``LAUNCH_GRACE_S``, no Dagster id) are marked failed here, as ``claim`` does.
    """
    now = utcnow()
    with session_scope(url) as s:
        rows = s.scalars(sa.select(SyncRequestRow).where(SyncRequestRow.status.in_(ACTIVE))
                         .order_by(SyncRequestRow.created_at).limit(limit)).all()
        out = []
        for row in rows:
            created = row.created_at or now
            if row.status == "launching" and row.dagster_id is None and (now - created).total_seconds() > LAUNCH_GRACE_S:
                row.status, row.finished_at, row.updated_at = "failed", now, now
                row.error = "launch interrupted: the API replica handling it stopped before Dagster accepted the run"
                continue
            out.append(_job(row))
        return out


def update(url: str, job_id: str, **fields: Any) -> SyncJob:
    with session_scope(url) as s:
        row = s.get(SyncRequestRow, job_id)
        if row is None:
            raise KeyError(job_id)
        for name, value in fields.items():
            setattr(row, name, value)
        row.updated_at = utcnow()
        s.flush()
        return _job(row)


def get(url: str, job_id: str) -> SyncJob | None:
    """A job by our id, or by the Dagster run/backfill id it tracks."""
    with session_scope(url) as s:
        row = s.get(SyncRequestRow, job_id)
        if row is None:
            row = s.scalars(
                sa.select(SyncRequestRow).where(SyncRequestRow.dagster_id == job_id)
                .order_by(SyncRequestRow.created_at.desc())
            ).first()
        return _job(row) if row else None


def latest(url: str, table_keys: list[str]) -> dict[str, SyncJob]:
    """The most recent job per table, in one query (no scan of the tables' whole history)."""
    if not table_keys:
        return {}
    newest = (
        sa.select(SyncRequestRow.table_key, sa.func.max(SyncRequestRow.created_at).label("created_at"))
        .where(SyncRequestRow.table_key.in_(table_keys)).group_by(SyncRequestRow.table_key).subquery()
    )
    with session_scope(url) as s:
        rows = s.scalars(
            sa.select(SyncRequestRow).join(newest, sa.and_(SyncRequestRow.table_key == newest.c.table_key,
                                                           SyncRequestRow.created_at == newest.c.created_at))
        ).all()
        return {row.table_key: _job(row) for row in rows}


def typical_duration_s(url: str, table_key: str, *, sample: int = 10) -> tuple[float | None, int]:
    """Median request-to-done seconds of the table's last successful jobs, and how many were used."""
    with session_scope(url) as s:
        rows = s.execute(
            sa.select(SyncRequestRow.created_at, SyncRequestRow.finished_at)
            .where(SyncRequestRow.table_key == table_key, SyncRequestRow.status == "succeeded",
                   SyncRequestRow.kind == "run", SyncRequestRow.finished_at.is_not(None))
            .order_by(SyncRequestRow.finished_at.desc()).limit(sample)
        ).all()
    durations = [((f or utcnow()) - (c or utcnow())).total_seconds() for c, f in rows]
    durations = [d for d in durations if d >= 0]
    return (statistics.median(durations) if durations else None), len(durations)


def table_status(url: str, table_keys: list[str]) -> dict[str, TableStatusRow]:
    """``table_status`` rows (detached), one query."""
    return status.read(url, table_keys)


def record_run_failure(url: str, table_key: str, run_id: str, message: str, failed_at: dt.datetime) -> bool:
    """Mark the table failing with Dagster's message: the API's copy of the failure sensor's fact,
    so a failure the API sees is never silent. Same rules as the sensor (``shared/status.py``)."""
    return status.record_failure(url, [table_key], run_id, message, failed_at)
