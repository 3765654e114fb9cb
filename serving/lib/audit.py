"""The audit trail: every request, answered or refused, becomes one ``audit_log`` row.

Why an ASGI wrapper around the whole app (not Litestar middleware): Litestar runs
route middleware only for matched routes, and 404/405/401 answers must be recorded
too. Why a queue and a writer thread: the request must never wait on the control
database. Rows are written in batches; a failed write is logged and dropped, and the
request's answer is never affected. A token is never stored: the row names the caller
by token id only, and the endpoint is the path without the query string.

Handlers add what only they know with :func:`annotate`::

    annotate(request, sql_text=sql, tables=[{"table": key, "version": v}], rows=n, bytes=b)
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import logging
import os
import socket
import threading
import time
from typing import Any

import sqlalchemy as sa
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from serving.lib import requestid
from serving.lib.batching import BatchWriter
from serving.lib.services import Services
from shared.control.db import get_engine
from shared.control.models import AuditRow

log = logging.getLogger("agents_data.audit")

ANNOTATIONS = frozenset(("sql_text", "sql_hash", "tables", "rows", "bytes", "rule"))
AUDIT = "audit"
_STATE_KEY = "audit_fields"
CALLER_KEY = "caller"  # scope["state"]["caller"]: the resolved Caller
HINT_KEY = "auth_hint"  # scope["state"]["auth_hint"]: token id of a genuine but refused token
TRANSPORT_KEY = "transport"  # scope["state"]["transport"]: "mcp" for calls made by an MCP tool; "rest" otherwise
ENDPOINT_KEY = "audit_endpoint"  # scope["state"]["audit_endpoint"]: the path as requested, when a mount rewrote it


def _state(request_or_scope: Any) -> dict[str, Any]:
    scope = request_or_scope if isinstance(request_or_scope, dict) else request_or_scope.scope
    state: dict[str, Any] = scope.setdefault("state", {})
    return state


def annotate(request: Any, **fields: Any) -> None:
    """Add query facts (sql_text, sql_hash, tables, rows, bytes, rule) to this request's audit row.

    Accepts a Litestar ``Request``/connection or a raw ASGI scope. ``sql_hash`` is derived
    from ``sql_text`` when not given. Unknown field names are a programming error.
    """
    unknown = set(fields) - ANNOTATIONS
    if unknown:
        raise TypeError(f"unknown audit fields: {sorted(unknown)}")
    if fields.get("sql_text") is not None and "sql_hash" not in fields:
        fields["sql_hash"] = hashlib.sha256(str(fields["sql_text"]).encode()).hexdigest()
    _state(request).setdefault(_STATE_KEY, {}).update(fields)


def _storable(row: dict[str, Any]) -> dict[str, Any]:
    """The row as the control database can store it: PostgreSQL refuses NUL in text
    columns, and an agent can put one in a path or in SQL. The escape keeps it readable."""
    return {k: v.replace("\x00", "\\x00") if isinstance(v, str) else v for k, v in row.items()}


def default_replica(configured: str) -> str:
    return configured or f"{socket.gethostname()}:{os.getpid()}"


class AuditWriter(BatchWriter):
    """Writes queued audit rows in batches from one daemon thread (``serving/lib/batching.py``).

    The queue is a ``deque`` (append is atomic and lock-free in CPython, so a request
    pays well under a microsecond); the thread wakes every ``interval_s``, or at once
    when a batch is full or a flush is asked for.
    """

    thread_name = "audit-writer"

    def __init__(self, control_url: str, *, batch_size: int = 500, interval_s: float = 0.2,
                 max_queue: int = 100_000) -> None:
        super().__init__(interval_s=interval_s)
        self._url = control_url
        self._batch = batch_size
        self._max = max_queue
        self._rows: collections.deque[dict[str, Any]] = collections.deque()
        self._flushes: collections.deque[threading.Event] = collections.deque()
        self.dropped = 0
        self._unreachable = False
        self.failed = 0
        self.written = 0

    def submit(self, row: dict[str, Any]) -> None:
        """Queue one row; never blocks (a full queue drops the row and logs it)."""
        if len(self._rows) >= self._max:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.error("audit queue full: %d rows dropped so far", self.dropped)
            return
        self._rows.append(row)
        if len(self._rows) >= self._batch:
            self.wake()

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until every row queued so far is written (or failed). For tests and shutdown."""
        if not self.running:
            self._drain()
            return True
        done = threading.Event()
        self._flushes.append(done)
        self.wake()
        return done.wait(timeout)

    def write_pass(self) -> None:
        flushes = []
        while self._flushes:
            flushes.append(self._flushes.popleft())
        try:
            self._drain()
        finally:
            for done in flushes:
                done.set()

    def _drain(self) -> None:
        while self._rows:
            batch: list[dict[str, Any]] = []
            while self._rows and len(batch) < self._batch:
                batch.append(self._rows.popleft())
            unwritten = self._write(batch)
            if unwritten:
                # The database is unreachable: these rows go back in front, in order, and are
                # written once it answers again (the queue bound still caps memory).
                self._rows.extendleft(reversed(unwritten))
                return

    def _write(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Insert a batch; if the batch fails, insert its rows one by one so that one bad row
        costs only itself. Returns the rows kept for a retry because the database could not
        be reached at all (a stopped or restarting control database loses no row)."""
        try:
            with get_engine(self._url).begin() as conn:
                conn.execute(sa.insert(AuditRow), [_storable(r) for r in batch])
            self.written += len(batch)
            if self._unreachable:
                self._unreachable = False
                log.warning("audit writer: control database reachable again")
            return []
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as e:
            if not self._unreachable:
                self._unreachable = True
                log.error("audit writer: control database unreachable (%s); rows are kept and retried",
                          type(e).__name__)
            return batch
        except Exception as e:
            if len(batch) == 1:
                self.failed += 1
                log.error("audit write failed; 1 row lost: %s", type(e).__name__)
                return []
            log.warning("audit batch of %d rows failed (%s); retrying row by row", len(batch), type(e).__name__)
        for i, row in enumerate(batch):
            if self._write([row]):
                return batch[i:]
        return []


def start(services: Services) -> AuditWriter:
    """Create and start the audit writer unless a test injected one."""
    writer = services.parts.get(AUDIT)
    if not isinstance(writer, AuditWriter):
        writer = services.parts[AUDIT] = AuditWriter(services.control_url)
    writer.start()
    return writer


def get_audit(services: Services) -> AuditWriter:
    return services.get(AUDIT, AuditWriter)


class AuditMiddleware:
    """Raw ASGI wrapper that times every HTTP request and queues its audit row."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services
        self.replica = default_replica(services.settings.api.replica_id)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        at = dt.datetime.now(dt.UTC)
        status = [0]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException:
            status[0] = status[0] or 500
            self._record(scope, at, status[0], started, failed=True)
            raise
        self._record(scope, at, status[0] or 500, started)

    def _record(self, scope: Scope, at: dt.datetime, status: int, started: float, failed: bool = False) -> None:
        try:
            writer = self.services.parts.get(AUDIT)
            if writer is None:
                return
            state = scope.get("state") or {}
            fields = state.get(_STATE_KEY) or {}
            caller = state.get(CALLER_KEY)
            hint = state.get(HINT_KEY) or {}
            row = {
                "at": at,
                "caller_type": caller.kind if caller is not None else "anonymous",
                "swarm_id": caller.swarm_id if caller is not None else hint.get("swarm_id"),
                "token_id": caller.token_id if caller is not None else hint.get("token_id"),
                "method": str(scope.get("method", ""))[:8],
                "endpoint": str(state.get(ENDPOINT_KEY) or scope.get("path", ""))[:1024],
                "status_code": status,
                "rule": fields.get("rule") or state.get("error_rule") or ("stream_failed" if failed else None),
                "sql_text": fields.get("sql_text"),
                "sql_hash": fields.get("sql_hash"),
                "tables": list(fields.get("tables") or []),
                "rows": fields.get("rows"),
                "bytes": fields.get("bytes"),
                "duration_ms": (time.perf_counter() - started) * 1000.0,
                "replica": self.replica,
                "request_id": state.get(requestid.STATE_KEY),
                "run_id": ",".join(requestid.run_ids(state))[:255] or None,
                "transport": str(state.get(TRANSPORT_KEY) or "rest")[:8],
            }
            writer.submit(row)
        except Exception:
            log.exception("could not queue an audit row")
