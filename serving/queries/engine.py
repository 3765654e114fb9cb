"""THE guarded execute(): every DuckDB read of the API goes through ``QueryEngine``.

Why one place: the time limit, the row cap with its ``truncated``
flag, the typed timeout, the table versions a result came from, and the grant-scoped
instance are enforced once, for queries, sampling and profiling alike.

Two entry points, both synchronous (call them from a worker thread)::

    engine.execute(caller, sql_or_guarded, *, params=None, max_rows=None, timeout_s=None, handle=None,
                   output=TUPLES) -> QueryResult
        # THE way to run agent SQL: guarded once (or given the answer of engine.guard()),
        # grant-scoped instance; output is a mode, not another path: Tuples() (rows fetched
        # max_rows+1), JsonRows(max_bytes) (msgspec.Raw, refused 413 past max_bytes batch by
        # batch) or ArrowBatches(consume) (consume(ArrowStream) runs while the cursor is held)
    engine.execute_platform_sql(caller, tables, sql, *, ..., output=TUPLES) -> QueryResult
        # internal: SQL the server wrote (samples, profiles); ``tables`` = table keys it names
        # (quote them with guard.quote_table(key)); the caller must be granted each; runs on an
        # instance holding exactly those tables, same limits, no SQL parsing
    engine.manifests(tables) -> tuple[Manifest, ...]      # current served versions (404 if never served)
    guard.validate_filter(where_sql, caller) -> str        # a safe, regenerated WHERE fragment
    tables.served.resolve_table(caller, name, services) -> str   # "orders" -> "demo.public.orders"

``QueryResult`` (serving/lib/results.py): columns [{name, type}], rows, row_count, truncated, tables
[TableRead(table, version, synced_at)], duration_ms, sql_hash, consumed. Errors: QueryRejected
(guard rule), NotFound (table_not_granted / table_not_served), QueryTimeout
(rule ``timeout``), QueryCancelled (``cancelled``), BadRequest (``query_error``: DuckDB
refused the SQL, message cleaned of paths), PayloadTooLarge (``memory_limit``: DuckDB's
own limit, or the process memory guard interrupted the query; ``result_too_large``).

Every run is registered while it holds a cursor, so the watchdog's memory guard can
interrupt the longest-running query when the process's RSS passes
``QUERY_PROCESS_MEMORY_LIMIT`` (DuckDB's ``memory_limit`` misses some intermediates).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb

from serving.lib.caller import Caller
from serving.lib.errors import ApiError, BadRequest, NotFound, PayloadTooLarge, QueryRejected, QueryTimeout
from serving.lib.results import (
    TUPLES,
    ArrowBatches,
    ArrowStream,
    JsonRows,
    Output,
    QueryResult,
    TableRead,
    Tuples,
    table_reads,
)
from serving.queries import functions, guard
from serving.queries.guard import GuardedQuery
from serving.queries.instances import Instance, InstanceCache, check_protections, read_protections
from serving.queries.memory import memory_budget
from serving.queries.watchdog import Handle, MemoryGuard, Watchdog
from shared.served import CURRENT, Manifest, list_served, read_current, table_dir
from shared.settings import Settings

log = logging.getLogger("agents_data.queries")
_SUGGESTION = re.compile(r"\s*Did you mean .*", re.DOTALL)
_INTERNAL = re.compile(r'"?__t\d+"?(\.main\.data)?')
class QueryCancelled(ApiError):
    status, code = 409, "cancelled"


@dataclasses.dataclass
class _Run:
    """One execution's cursor, watchdog entry and handle; translates DuckDB errors."""

    engine: QueryEngine
    handle: Handle
    timeout_s: float
    reusable: bool = False  # the cursor's result was read to the end (DuckDB refuses new work otherwise)

    def translate(self, e: BaseException) -> ApiError:
        text = str(e)
        if self.handle.cancelled:
            return QueryCancelled("the query was cancelled", rule="cancelled")
        if self.handle.memory:
            return PayloadTooLarge("the server ran short of memory while this query ran, and it used the most; "
                                   "it was stopped: aggregate or filter more", rule="memory_limit")
        if isinstance(e, duckdb.InterruptException) or "INTERRUPT" in text or "maximum execution time" in text:
            return QueryTimeout(f"the query ran longer than its time limit of {self.timeout_s:g} s and was stopped",
                                rule="timeout", details={"timeout_s": self.timeout_s})
        if (refusal := functions.runtime_refusal(text)) is not None:
            return refusal  # a size bound the guard wrapped around a call was exceeded
        if isinstance(e, duckdb.OutOfMemoryException) or "Out of Memory" in text:
            return PayloadTooLarge("the query needs more memory than an agent query may use; aggregate or filter more",
                                   rule="memory_limit")
        return BadRequest(self.engine.clean_message(text), rule="query_error")


class QueryEngine:
    """Runs SQL on grant-scoped DuckDB instances with time limits, row caps and table versions."""

    def __init__(self, settings: Settings, *, max_instances: int = 32) -> None:
        self.settings = settings
        self.q = settings.query
        self.instances = InstanceCache(settings, max_instances=max_instances)
        self._running: set[Handle] = set()
        self._running_lock = threading.Lock()
        self.memory = MemoryGuard(memory_budget(settings), self.running)
        self.watchdog = Watchdog(on_tick=self.instances.reap, memory=self.memory)
        self._all: tuple[float, frozenset[str]] = (0.0, frozenset())
        self._current: dict[str, tuple[str, tuple[int, int], Manifest]] = {}

    def running(self) -> list[Handle]:
        """Handles of the queries holding a cursor now (for the memory guard)."""
        with self._running_lock:
            return list(self._running)

    # -- who may read what ------------------------------------------------------------
    def grants_of(self, caller: Caller, *, refresh: bool = False) -> frozenset[str]:
        """The caller's table keys; for admin every served table (listing cached 2 s)."""
        if not caller.is_admin:
            return caller.grants
        at, keys = self._all
        if refresh or time.monotonic() - at > 2.0:
            keys = frozenset(list_served(self.settings.served_path))
            self._all = (time.monotonic(), keys)
        return keys

    def guard(self, caller: Caller, sql: str) -> GuardedQuery:
        """Check agent SQL against the caller's grants (admin: re-list served tables once on a miss)."""
        try:
            return guard.check_sql(sql, self.grants_of(caller))
        except QueryRejected as e:
            if not (caller.is_admin and e.rule in ("table_not_granted", "ambiguous_table")):
                raise
            return guard.check_sql(sql, self.grants_of(caller, refresh=True))

    def current(self, key: str) -> Manifest | None:
        """``read_current`` with the CURRENT path precomputed: one ``stat`` per table per query."""
        hit = self._current.get(key)
        if hit is not None:
            try:
                st = os.stat(hit[0])
                if (st.st_ino, st.st_mtime_ns) == hit[1]:
                    return hit[2]
            except FileNotFoundError:
                pass
        path = table_dir(self.settings.served_path, key) / CURRENT
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._current.pop(key, None)
            return None
        manifest = read_current(self.settings.served_path, key)
        if manifest is not None:
            self._current[key] = (str(path), (st.st_ino, st.st_mtime_ns), manifest)
        return manifest

    def guard_cached(self, caller: Caller, sql: str) -> GuardedQuery | None:
        """The cached guard answer for (sql, grants) without parsing: None on a miss; a cached refusal raises."""
        return guard.cached(sql, self.grants_of(caller))

    def manifests(self, tables: Iterable[str]) -> tuple[Manifest, ...]:
        out = []
        for key in sorted(tables):
            manifest = self.current(key)
            if manifest is None:
                raise NotFound(f"table {key} has no served data yet (it has never been synced)", rule="table_not_served")
            out.append(manifest)
        return tuple(out)

    def limits(self, max_rows: int | None, timeout_s: float | None) -> tuple[int, float]:
        rows = self.q.max_rows if max_rows is None else max(0, min(int(max_rows), self.q.max_rows))
        timeout = self.q.timeout_s if timeout_s is None else max(0.001, min(float(timeout_s), self.q.max_timeout_s))
        return rows, timeout

    def clean_message(self, text: str) -> str:
        text = _SUGGESTION.sub("", text)
        text = _INTERNAL.sub("<table>", text)
        return text.replace(str(self.settings.home_path), "<home>").strip()[:2000] or "the query failed"

    # -- execution ---------------------------------------------------------------------
    @contextmanager
    def _cursor(self, manifests: tuple[Manifest, ...], timeout_s: float, handle: Handle | None) -> Iterator[tuple[Any, _Run]]:
        handle = handle or Handle()
        if handle.cancelled:
            raise QueryCancelled("the query was cancelled", rule="cancelled")
        inst: Instance = self.instances.acquire(manifests)
        run = _Run(self, handle, timeout_s)
        clean = False
        try:
            cur = inst.take_cursor()
            handle.attach(cur)
            with self._running_lock:
                self._running.add(handle)
            entry = self.watchdog.arm(timeout_s, handle)
            try:
                if handle.cancelled:  # cancelled before its statement started: an interrupt now would be lost
                    raise QueryCancelled("the query was cancelled", rule="cancelled")
                yield cur, run
                clean = run.reusable
            except duckdb.Error as e:
                raise run.translate(e) from e
            finally:
                self.watchdog.disarm(entry)
                handle.detach()
                with self._running_lock:
                    self._running.discard(handle)
                inst.give_cursor(cur, clean=clean and not (handle.timed_out or handle.cancelled or handle.memory))
        finally:
            self.instances.release(inst)

    def _run(self, sql: str, tables: frozenset[str], *, digest: str, params: Any, max_rows: int | None,
             timeout_s: float | None, handle: Handle | None, output: Output) -> QueryResult:
        """Run SQL already judged safe on an instance holding exactly ``tables``, under the limits."""
        started = time.perf_counter()
        manifests = self.manifests(tables)
        rows_cap, timeout = self.limits(max_rows, timeout_s)
        reads = table_reads(manifests)
        with self._cursor(manifests, timeout, handle) as (cur, run):
            got = output.read(cur, run, sql=sql, params=params, rows_cap=rows_cap, tables=reads)
        return QueryResult(columns=got.columns, rows=got.rows, row_count=got.row_count, truncated=got.truncated,
                           tables=reads, duration_ms=(time.perf_counter() - started) * 1000.0, sql_hash=digest,
                           consumed=got.consumed)

    def execute(self, caller: Caller, query: str | GuardedQuery, *, params: Sequence[Any] | dict[str, Any] | None = None,
                max_rows: int | None = None, timeout_s: float | None = None, handle: Handle | None = None,
                output: Output = TUPLES) -> QueryResult:
        """THE way to run agent SQL: guard it (unless ``query`` is the answer ``guard()`` already gave
        for this caller) and run it in the chosen ``output`` mode; at most ``max_rows`` rows are kept
        (``truncated`` says if more existed)."""
        checked = query if isinstance(query, GuardedQuery) else self.guard(caller, query)
        return self._run(checked.sql, checked.tables, digest=checked.sql_hash, params=params, max_rows=max_rows,
                         timeout_s=timeout_s, handle=handle, output=output)

    def execute_platform_sql(self, caller: Caller, tables: Iterable[str], sql: str, *, params: Any = None,
                             max_rows: int | None = None, timeout_s: float | None = None, handle: Handle | None = None,
                             output: Output = TUPLES) -> QueryResult:
        """Internal: run SQL the server wrote itself (samples, profiles), never agent text.

        Not guarded (there is nothing to parse), but confined the same way: ``caller`` must be
        granted each of ``tables`` (quote them with ``guard.quote_table``), and the SQL runs on
        an instance holding exactly those tables, under the same limits.
        """
        keys = self._granted_tables(caller, tables)
        return self._run(sql, keys, digest=guard.sql_hash(sql), params=params, max_rows=max_rows, timeout_s=timeout_s,
                         handle=handle, output=output)

    def _granted_tables(self, caller: Caller, tables: Iterable[str]) -> frozenset[str]:
        keys = frozenset(t.lower() for t in tables)
        grants = self.grants_of(caller, refresh=caller.is_admin and not keys <= self.grants_of(caller))
        for key in keys:
            if key not in grants:
                raise NotFound(f"table {key} does not exist or is not granted to this token", rule="table_not_granted")
        return keys

    # -- lifecycle -----------------------------------------------------------------------
    def verify_protections(self) -> dict[str, str]:
        """Build a probe instance and prove its protections hold; raise ``ProtectionError`` otherwise.

        Called at API startup: the service refuses to start rather than serve agent SQL
        on an unprotected connection.
        """
        from serving.queries.instances import ProtectionError

        inst = Instance((), (), self.settings)
        try:
            found = check_protections(inst.con, self.settings)
            probe = self.settings.home_path / "tmp" / "protection-probe.csv"
            cur = inst.con.cursor()
            for sql in ("SET threads = 1", "RESET lock_configuration", f"COPY (SELECT 1) TO '{probe}'",
                        "SELECT * FROM read_text('/etc/hostname')", "LOAD httpfs", f"ATTACH '{probe}.db' AS x"):
                try:
                    cur.execute(sql)
                except duckdb.Error:
                    continue
                raise ProtectionError(f"DuckDB accepted {sql!r} on a locked agent instance")
            if probe.exists():
                raise ProtectionError("DuckDB wrote a file from a locked agent instance")
            return found | {"probe": "ok"}
        finally:
            inst.close()

    def close(self) -> None:
        self.watchdog.stop()
        self.instances.close()


__all__ = ["ArrowBatches", "ArrowStream", "Handle", "JsonRows", "QueryCancelled", "QueryEngine", "QueryResult", "TableRead",
           "Tuples", "read_protections"]
