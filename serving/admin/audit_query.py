"""Reading the audit log with filters and keyset pagination (newest first).

Why keyset (``cursor`` = last id seen) rather than offsets: the log only grows, and a
page boundary must not shift while new requests are being recorded.
"""

from __future__ import annotations

import datetime as dt
import json

import sqlalchemy as sa

from serving.admin.schemas import AuditEntry, AuditPage
from serving.lib.errors import BadRequest
from shared.control.db import session_scope
from shared.control.models import AuditRow, as_utc
from shared.identifiers import canonical_key


def _status_filter(status: str) -> sa.ColumnElement[bool]:
    status = status.strip().lower()
    if len(status) == 3 and status[0] in "12345" and status[1:] == "xx":
        low = int(status[0]) * 100
        return sa.and_(AuditRow.status_code >= low, AuditRow.status_code < low + 100)
    if len(status) == 3 and status.isascii() and status.isdigit():  # "²" and "٣" are digits too, not codes
        return AuditRow.status_code == int(status)
    raise BadRequest("status must be a code such as 404 or a class such as 4xx", rule="out_of_range",
                     details={"parameter": "status"})


def query_audit(url: str, *, swarm_id: str | None = None, token_id: str | None = None, caller_type: str | None = None,
                table: str | None = None, since: dt.datetime | None = None, until: dt.datetime | None = None,
                status: str | None = None, limit: int = 100, cursor: int | None = None) -> AuditPage:
    q = sa.select(AuditRow).order_by(AuditRow.id.desc()).limit(limit + 1)
    if swarm_id:
        q = q.where(AuditRow.swarm_id == swarm_id)
    if token_id:
        q = q.where(AuditRow.token_id == token_id)
    if caller_type:
        q = q.where(AuditRow.caller_type == caller_type)
    if since:
        q = q.where(AuditRow.at >= as_utc(since))
    if until:
        q = q.where(AuditRow.at < as_utc(until))
    if status:
        q = q.where(_status_filter(status))
    if cursor is not None:
        q = q.where(AuditRow.id < cursor)
    if table:
        # ``tables`` holds [{"table": key, "version": v}] as JSON text on SQLite and PostgreSQL alike.
        try:  # a key, or a table written as SQL names (``demo.public."Order Lines"``)
            wanted = canonical_key(table)
        except ValueError:
            wanted = table.strip().lower()
        needle = json.dumps({"table": wanted})[1:-1]
        q = q.where(sa.cast(AuditRow.tables, sa.Text).contains(needle, autoescape=True))
    with session_scope(url) as s:
        rows = list(s.scalars(q))
    more = len(rows) > limit
    rows = rows[:limit]
    items = [AuditEntry(id=r.id, at=r.at, caller_type=r.caller_type, swarm_id=r.swarm_id, token_id=r.token_id,
                        method=r.method, endpoint=r.endpoint, status_code=r.status_code, rule=r.rule,
                        sql_text=r.sql_text, sql_hash=r.sql_hash, tables=list(r.tables or []), rows=r.rows,
                        bytes=r.bytes, duration_ms=r.duration_ms, replica=r.replica,
                        transport=r.transport or "rest") for r in rows]
    return AuditPage(items=items, next_cursor=rows[-1].id if more and rows else None)
