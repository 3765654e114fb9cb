"""The table's status row after a successful materialization (read by the API).

Why also here and not only in the manifest: the API lists tables, freshness and last
sync from the control database without opening every served folder. Failures are
recorded by the run-failure sensor (orchestration/sensors.py), which also sees runs
killed before any code of ours could react.
"""

from __future__ import annotations

from sqlalchemy.exc import OperationalError, ProgrammingError

from shared.control.db import migrate, session_scope
from shared.control.models import TableStatusRow, utcnow
from shared.served import Manifest


def record_success(control_url: str, key: str, manifest: Manifest, run_id: str | None) -> None:
    """Upsert the status row. Migrations run only if the table is missing: a run worker is a
    fresh process, and checking Alembic's head on every run costs more than the write."""
    try:
        _write(control_url, key, manifest, run_id)
    except (OperationalError, ProgrammingError):
        migrate(control_url)
        _write(control_url, key, manifest, run_id)


def _write(control_url: str, key: str, manifest: Manifest, run_id: str | None) -> None:
    with session_scope(control_url) as s:
        row = s.get(TableStatusRow, key)
        if row is None:
            row = TableStatusRow(key=key)
            s.add(row)
        row.served_version, row.last_success_at = manifest.version, utcnow()
        row.last_run_id, row.last_run_status = run_id, "SUCCESS"
        row.row_count, row.bytes, row.watermark = manifest.row_count, manifest.bytes, manifest.watermark
        row.stale, row.stale_reason = False, None
