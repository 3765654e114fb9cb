"""The table status row's rules (shared/status.py) and the UTC column type, on SQLite and PostgreSQL."""

import datetime as dt

import sqlalchemy as sa

from shared import status
from shared.control.db import migrate, normalize_url, session_scope
from shared.control.models import SyncRequestRow, TableStatusRow
from shared.served import Manifest

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def _manifest(key: str, version: str = "v1") -> Manifest:
    return Manifest(table_key=key, version=version, file=f"v-{version}.duckdb", published_at=T0.isoformat(),
                    strategy="full", row_count=3, bytes=10, columns=[])


def test_datetimes_come_back_aware_utc_and_are_stored_as_before(control_url: str) -> None:
    migrate(control_url)
    plus2 = dt.timezone(dt.timedelta(hours=2))
    with session_scope(control_url) as s:
        s.add(SyncRequestRow(id="naive", table_key="a.b.c", kind="run", status="queued", reason="manual",
                             created_at=dt.datetime(2026, 3, 1, 12, 0)))
        s.add(SyncRequestRow(id="plus2", table_key="a.b.c", kind="run", status="queued", reason="manual",
                             created_at=dt.datetime(2026, 3, 1, 14, 0, tzinfo=plus2)))
    with session_scope(control_url) as s:
        for job_id in ("naive", "plus2"):
            created = s.get(SyncRequestRow, job_id).created_at
            assert (created, created.tzinfo) == (T0, dt.UTC)
    engine = sa.create_engine(normalize_url(control_url))
    with engine.connect() as conn:
        raw = conn.execute(sa.text("SELECT created_at FROM sync_requests WHERE id = 'plus2'")).scalar_one()
    engine.dispose()
    if control_url.startswith("sqlite"):
        assert raw == "2026-03-01 12:00:00.000000", "SQLite keeps the UTC wall time, as DateTime(timezone=True) did"
    else:
        assert raw == T0, "PostgreSQL keeps timestamptz"


def test_one_vocabulary_from_every_writer(control_url: str) -> None:
    migrate(control_url)
    status.record_success(control_url, "a.b.ok", _manifest("a.b.ok"), "r1")
    assert status.record_failure(control_url, ["a.b.bad"], "r2", "RuntimeError: boom", T0)
    rows = status.read(control_url, ["a.b.ok", "a.b.bad"])
    assert {k: r.last_run_status for k, r in rows.items()} == {"a.b.ok": "succeeded", "a.b.bad": "failed"}
    assert {word.value for word in status.RunStatus} == {"succeeded", "failed", "canceled"}
    assert [status.RunStatus.from_dagster(s) for s in ("SUCCESS", "FAILURE", "CANCELED", "STARTED")] == [
        status.RunStatus.SUCCEEDED, status.RunStatus.FAILED, status.RunStatus.CANCELED, None]


def test_rows_written_before_the_vocabulary_read_in_it(control_url: str) -> None:
    migrate(control_url)
    with session_scope(control_url) as s:
        s.add(TableStatusRow(key="a.b.old", last_run_status="SUCCESS", last_success_at=T0))
    row = status.read(control_url, ["a.b.old"])["a.b.old"]
    assert status.run_status(row) == "succeeded"
    assert status.freshness(_manifest("a.b.old"), row, None, T0)["last_run_status"] == "succeeded"


def test_failure_rules(control_url: str) -> None:
    migrate(control_url)
    status.record_success(control_url, "a.b.t", _manifest("a.b.t"), "r1")
    assert not status.record_failure(control_url, ["a.b.t"], "r0", "late", T0), "a late report never hides a success"
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    assert status.record_failure(control_url, ["a.b.t"], "r2", "SourceError: table T does not exist", later)
    assert not status.record_failure(control_url, ["a.b.t"], "r2", "SourceError: table T does not exist", later)
    row = status.read(control_url, ["a.b.t"])["a.b.t"]
    assert (row.last_run_id, row.stale, row.last_failure_at) == ("r2", True, later)
    fresh = status.freshness(_manifest("a.b.t"), row, None, later)
    assert (fresh["status"], fresh["last_run_status"]) == ("failing", "failed")


def test_mark_stale_unserves_in_the_callers_transaction(control_url: str) -> None:
    migrate(control_url)
    status.record_success(control_url, "a.b.t", _manifest("a.b.t"), "r1")
    with session_scope(control_url) as s:
        status.mark_stale(s, "a.b.t", "registration removed", unserve=True)
        status.mark_stale(s, "a.b.none", "no row: nothing to mark")
    rows = status.read(control_url, ["a.b.t", "a.b.none"])
    assert list(rows) == ["a.b.t"]
    assert (rows["a.b.t"].served_version, rows["a.b.t"].stale_reason) == (None, "registration removed")
