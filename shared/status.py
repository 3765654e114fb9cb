"""A table's sync status (``table_status``): the one owner of that row, for every writer and reader.

Orchestration writes it (a run's success or failure where the asset's step ends, and the
run-failure sensor for a run that died before its step could), the API writes it too (a
failure it sees while following a run, so a failure is never silent), housekeeping and
the registry mark it stale. They all come here, so the rules are one set:

- ``last_run_status`` has one vocabulary, ``RunStatus`` (``succeeded``, ``failed``,
  ``canceled``: the spelling of the sync API's job statuses). Dagster's own words
  (``SUCCESS``, ``FAILURE``, ``CANCELED``) are mapped at the boundary by ``from_dagster``.
- A failure reported after a newer success is ignored: a late report must not hide it.
- A failure whose message says the source table is gone also marks the table stale.
- ``freshness`` is the one reading of the row agents and admins see.

Why in ``shared/``: both ``orchestration/`` and ``serving/`` write this row, and they may
only share code through ``shared/`` (the same reason ``shared/served.py`` owns the
served files).
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from shared import served
from shared.control.db import migrate, session_scope
from shared.control.models import TableStatusRow, as_utc, utcnow
from shared.served import Manifest

MAX_ERROR_CHARS = 4000
# A run's or a scan's error that says the source *table* is gone: ours ("table X does not exist in
# the source"), Snowflake's ("Object 'X' does not exist or not authorized") and the stand-in's
# ("Table with name X does not exist"). A missing *column* (a registered key, cursor or partition
# column dropped or renamed) is not a missing table: the table stays readable and its error says
# which column; read as a missing source it told agents the table was gone.
_MISSING_SOURCE = re.compile(r"\btable\b[^;:\n]*?\b(?:does not exist|no longer exists)|does not exist or not authorized",
                             re.IGNORECASE)


class RunStatus(enum.StrEnum):
    """The outcome of a table's last sync run, as stored and as the APIs show it."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @classmethod
    def from_dagster(cls, value: str | None) -> RunStatus | None:
        """Dagster's terminal run status (any case; also our own words) in this vocabulary; None if not terminal."""
        return _SPELLINGS.get((value or "").strip().lower())


_SPELLINGS = {
    "success": RunStatus.SUCCEEDED, "succeeded": RunStatus.SUCCEEDED,
    "failure": RunStatus.FAILED, "failed": RunStatus.FAILED,
    "canceled": RunStatus.CANCELED, "cancelled": RunStatus.CANCELED,
}


def run_status(row: TableStatusRow | None) -> str | None:
    """The row's ``last_run_status`` in ``RunStatus`` words (rows written before it may say ``SUCCESS``)."""
    if row is None or row.last_run_status is None:
        return None
    known = RunStatus.from_dagster(row.last_run_status)
    return known.value if known else row.last_run_status


def is_missing_source(message: str) -> bool:
    """Whether a run's error says the source table is gone (then the table is marked stale)."""
    return bool(_MISSING_SOURCE.search(message))


def _row(session: Session, key: str) -> TableStatusRow:
    row = session.get(TableStatusRow, key)
    if row is None:
        row = TableStatusRow(key=key)
        session.add(row)
    return row


def record_success(control_url: str, key: str, manifest: Manifest, run_id: str | None) -> None:
    """A run published ``manifest``: the table is served at that version and no longer stale.

    Migrations run only if the table is missing: a run worker is a fresh process, and
    checking Alembic's head on every run costs more than the write.
    """
    try:
        _write_success(control_url, key, manifest, run_id)
    except (OperationalError, ProgrammingError):
        migrate(control_url)
        _write_success(control_url, key, manifest, run_id)


def _write_success(control_url: str, key: str, manifest: Manifest, run_id: str | None) -> None:
    with session_scope(control_url) as s:
        row = _row(s, key)
        row.served_version, row.last_success_at = manifest.version, utcnow()
        row.last_run_id, row.last_run_status = run_id, RunStatus.SUCCEEDED.value
        row.row_count, row.bytes, row.watermark = manifest.row_count, manifest.bytes, manifest.watermark
        row.stale, row.stale_reason = False, None


def record_failure(control_url: str, keys: Iterable[str], run_id: str, message: str, failed_at: dt.datetime) -> bool:
    """Record a failed run on each table's row. Returns whether any row learnt something new.

    Skipped for a table whose last success is newer than ``failed_at`` (a late report),
    and a no-op when the same run's failure is already recorded (the sensor and every
    API replica may report the same run). A missing source marks the table stale: its
    served data stays queryable, but agents are told it no longer follows the source.
    Migrations run only if the table is missing, as for ``record_success``.
    """
    failed_at = as_utc(failed_at) or utcnow()
    keys = list(keys)
    try:
        return _write_failure(control_url, keys, run_id, message, failed_at)
    except (OperationalError, ProgrammingError):
        migrate(control_url)
        return _write_failure(control_url, keys, run_id, message, failed_at)


MISSING_SOURCE_REASON = "the source table is missing"


def missing_source(row: TableStatusRow | None) -> bool:
    """Whether the row says the source table is gone (a failed run's error, or the source-change sensor)."""
    return bool(row is not None and row.stale and (row.stale_reason or "").startswith(MISSING_SOURCE_REASON))


def record_source_presence(control_url: str, *, missing: Iterable[str], present: Iterable[str]) -> list[str]:
    """The source-change sensor's view of which sources exist, written on the status rows.

    Why the sensor and not only a failed run: a table without a schedule may not run for days,
    and until then its catalog entry said ``fresh`` about a copy of a table that no longer
    exists. A missing source marks the row stale (its served data stays queryable); a source
    seen again clears that mark (and only that one), so the table is judged by its age again.
    Returns the keys whose mark changed. One transaction, written only when something changes.
    Migrations run only if the table is missing, as for ``record_success``.
    """
    missing, present = set(missing), set(present)
    if not missing and not present:
        return []
    try:
        return _write_presence(control_url, missing, present)
    except (OperationalError, ProgrammingError):
        migrate(control_url)
        return _write_presence(control_url, missing, present)


def _write_presence(control_url: str, missing: set[str], present: set[str]) -> list[str]:
    changed: list[str] = []
    with session_scope(control_url) as s:
        rows = {r.key: r for r in s.scalars(select(TableStatusRow).where(TableStatusRow.key.in_(missing | present)))}
        for key in sorted(missing):
            row = rows.get(key) or _row(s, key)
            if not missing_source(row):
                row.stale = True
                row.stale_reason = (f"{MISSING_SOURCE_REASON} (dropped, renamed or no longer readable by the platform); "
                                    "serving the last copy")
                changed.append(key)
        for key in sorted(present):
            seen = rows.get(key)
            if seen is not None and missing_source(seen):
                seen.stale, seen.stale_reason = False, None
                changed.append(key)
    return changed


def _write_failure(control_url: str, keys: list[str], run_id: str, message: str, failed_at: dt.datetime) -> bool:
    changed = False
    with session_scope(control_url) as s:
        for key in keys:
            row = _row(s, key)
            if row.last_success_at is not None and row.last_success_at > failed_at:
                continue
            if is_missing_source(message) and not row.stale:
                row.stale = True
                row.stale_reason = f"{MISSING_SOURCE_REASON}; serving the last copy ({message[:300]})"
                changed = True
            if row.last_run_id == run_id and row.last_failure_at is not None and row.last_error:
                continue
            row.last_run_id, row.last_run_status = run_id, RunStatus.FAILED.value
            row.last_failure_at, row.last_error = failed_at, message[:MAX_ERROR_CHARS]
            changed = True
    return changed


def mark_stale(session: Session, key: str, reason: str, *, unserve: bool = False) -> None:
    """Mark an existing row stale, inside the caller's transaction (e.g. with a registration's delete).

    ``unserve`` also forgets the served version, for a table that is no longer served.
    """
    row = session.get(TableStatusRow, key)
    if row is None:
        return
    if unserve:
        row.served_version = None
    row.stale, row.stale_reason = True, reason


def record_stats(control_url: str, key: str, stats: dict[str, Any]) -> None:
    """Merge housekeeping's figures (served data on disk, run durations) into the row's ``stats``."""
    with session_scope(control_url) as s:
        row = _row(s, key)
        row.stats = {**(row.stats or {}), **stats}


def read(control_url: str, keys: Iterable[str]) -> dict[str, TableStatusRow]:
    """The rows of ``keys`` (detached, read-only copies), in one query."""
    wanted = list(keys)
    if not wanted:
        return {}
    with session_scope(control_url) as s:
        rows = s.scalars(select(TableStatusRow).where(TableStatusRow.key.in_(wanted))).all()
        s.expunge_all()
        return {r.key: r for r in rows}


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def last_synced(manifest: Manifest | None, status: TableStatusRow | None) -> dt.datetime | None:
    """When the served data was read from the source (``shared.served.read_time``: the time a
    run began reading, not when it published or recorded its success); for a version written
    before runs recorded that, the last recorded success, else when it was published.

    The catalog, refresh answers, ``min_freshness`` and provenance all use this one reading."""
    recorded = served.read_time(manifest) if manifest is not None else None
    if recorded is not None:
        return recorded
    if status is not None and status.last_success_at is not None:
        return status.last_success_at
    return served.synced_at(manifest) if manifest else None


def freshness(manifest: Manifest | None, status: TableStatusRow | None, freshness_s: int | None,
              now: dt.datetime, *, partitions: dict[str, Any] | None = None,
              require_partitions: bool = False) -> dict[str, Any]:
    """``fresh``, ``stale`` or ``failing``, with the reason an agent can act on.

    Failing wins while the last failure is newer than the last success; then never
    synced, marked stale, partitions missing (``partitions``, from
    ``shared.partitions.freshness_coverage``, when ``require_partitions``), and older than the
    freshness target, in that order. ``partitions`` is also shown as it is.
    """
    last_success = status.last_success_at if status else None
    last_failure = status.last_failure_at if status else None
    synced = last_synced(manifest, status)
    age = (now - synced).total_seconds() if synced else None
    out: dict[str, Any] = {"age_s": round(age, 3) if age is not None else None, "target_s": freshness_s,
                           "last_run_status": run_status(status), "last_failure_at": last_failure}
    if partitions is not None:
        out["partitions"] = partitions
    if last_failure and (last_success is None or last_failure > last_success):
        error = ((status.last_error if status else None) or "no error message").strip().splitlines()[0][:300]
        return out | {"status": "failing", "reason": f"the last sync failed at {last_failure.isoformat()}: {error}"}
    if manifest is None:
        return out | {"status": "stale", "reason": "never synced: no data is served yet"}
    if status is not None and status.stale:
        return out | {"status": "stale", "reason": status.stale_reason or "marked stale by orchestration"}
    if require_partitions and partitions and partitions.get("missing"):
        named = ", ".join(partitions.get("missing_keys") or [])
        more = " …" if partitions["missing"] > len(partitions.get("missing_keys") or []) else ""
        return out | {"status": "stale", "reason": f"{partitions['missing']} of {partitions['expected']} partitions "
                      f"are not served (missing: {named}{more}); the served rows are incomplete"}
    if freshness_s and age is not None and age > freshness_s:
        return out | {"status": "stale", "reason": f"last synced {_age(age)} ago; the freshness target is {_age(freshness_s)}"}
    target = f" (target {_age(freshness_s)})" if freshness_s else " (no freshness target)"
    return out | {"status": "fresh", "reason": f"last synced {_age(age or 0)} ago{target}"}
