"""The table's status row after a successful materialization (read by the API).

Why also here and not only in the manifest: the API lists tables, freshness and last
sync from the control database without opening every served folder. Failures are
recorded by the run-failure sensor (orchestration/sensors.py), which also sees runs
killed before any code of ours could react.
"""

from __future__ import annotations

from shared.control.db import migrate, session_scope
from shared.control.models import TableStatusRow, utcnow
from shared.served import Manifest


def record_success(control_url: str, key: str, manifest: Manifest, run_id: str | None) -> None:
    migrate(control_url)
    with session_scope(control_url) as s:
        row = s.get(TableStatusRow, key)
        if row is None:
            row = TableStatusRow(key=key)
            s.add(row)
        row.served_version, row.last_success_at = manifest.version, utcnow()
        row.last_run_id, row.last_run_status = run_id, "SUCCESS"
        row.row_count, row.bytes, row.watermark = manifest.row_count, manifest.bytes, manifest.watermark
        row.stale, row.stale_reason = False, None
