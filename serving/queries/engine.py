"""THE guarded execute(): every DuckDB read of the API goes through ``QueryEngine``.

Why one place (STYLE habit 12): the time limit, the row cap with its ``truncated``
flag, the typed timeout, the table versions a result came from, and the grant-scoped
instance are enforced once, for queries, sampling and profiling alike.

For the sampling/profiling engineer — signatures (all synchronous: call them from a
worker thread, e.g. ``await anyio.to_thread.run_sync(partial(engine.execute_trusted, …))``)::

    engine = get_engine(services)                          # serving.queries.services
    engine.execute(caller, sql, *, params=None, max_rows=None, timeout_s=None, handle=None) -> QueryResult
        # agent SQL: guard (cached) + grant-scoped instance; rows fetched max_rows+1
    engine.execute_trusted(caller, tables, sql, *, params=None, max_rows=None, timeout_s=None, handle=None) -> QueryResult
        # SQL the server built itself; ``tables`` = table keys it names (quote them with
        # guard.quote_table(key)); the caller must be granted each; runs on an instance
        # holding exactly those tables, same limits, no SQL parsing
    engine.stream(caller, sql, ...) / engine.stream_trusted(caller, tables, sql, ...)
        # context managers yielding an ArrowStream (pyarrow RecordBatches, max_rows enforced)
    engine.manifests(tables) -> tuple[Manifest, ...]      # current served versions (404 if never served)
    guard.validate_filter(where_sql, caller) -> str        # a safe, regenerated WHERE fragment
    catalog.services.resolve_table(caller, name, services) -> str   # "orders" -> "demo.public.orders"

``QueryResult``: columns [{name, type}], rows (tuples), row_count, truncated, tables
[TableRead(table, version, synced_at)], duration_ms, sql_hash. Errors: QueryRejected
(guard rule), NotFound (table_not_granted / table_not_served), QueryTimeout
(rule ``timeout``), QueryCancelled (``cancelled``), BadRequest (``query_error``: DuckDB
refused the SQL, message cleaned of paths), PayloadTooLarge (``memory_limit``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb
import pyarrow as pa

from serving.auth.caller import Caller
from serving.lib.errors import ApiError, BadRequest, NotFound, PayloadTooLarge, QueryRejected, QueryTimeout
from serving.queries import functions, guard
from serving.queries.guard import GuardedQuery
from serving.queries.instances import Instance, InstanceCache, check_protections, read_protections
from serving.queries.watchdog import Handle, Watchdog
from shared.served import CURRENT, Manifest, list_served, read_current, table_dir
from shared.settings import Settings

_SUGGESTION = re.compile(r"\s*Did you mean .*", re.DOTALL)
_INTERNAL = re.compile(r'"?__t\d+"?(\.main\.data)?')


class QueryCancelled(ApiError):
    status, code = 409, "cancelled"


@dataclasses.dataclass(frozen=True)
class TableRead:
    """A table a result was read from: its served version and when that version was synced."""

    table: str
    version: str
    synced_at: str

    def as_dict(self) -> dict[str, str]:
        return {"table": self.table, "version": self.version, "synced_at": self.synced_at}


@dataclasses.dataclass
class QueryResult:
    columns: list[dict[str, str]]
    rows: list[tuple[Any, ...]]
    row_count: int
    truncated: bool
    tables: list[TableRead]
    duration_ms: float
    sql_hash: str


class ArrowStream:
    """Record batches of a running query, cut at ``max_rows``; ``truncated`` is known once exhausted."""

    def __init__(self, reader: pa.RecordBatchReader, *, columns: list[dict[str, str]], tables: list[TableRead],
                 max_rows: int, sql_hash: str, run: _Run) -> None:
        self.reader, self.schema, self.columns, self.tables = reader, reader.schema, columns, tables
        self.max_rows, self.sql_hash, self._run = max_rows, sql_hash, run
        self.row_count = 0
        self.truncated = False

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        while True:
            try:
                batch = self.reader.read_next_batch()
            except StopIteration:
                self._run.reusable = True
                return
            except (OSError, pa.ArrowException, duckdb.Error) as e:
                raise self._run.translate(e) from e
            if batch.num_rows == 0:
                continue
            room = self.max_rows - self.row_count
            if batch.num_rows > room:
                self.truncated = True
                if room > 0:
                    self.row_count += room
                    yield batch.slice(0, room)
                return
            self.row_count += batch.num_rows
            yield batch


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
        self.watchdog = Watchdog(on_tick=self.instances.reap)
        self._all: tuple[float, frozenset[str]] = (0.0, frozenset())
        self._current: dict[str, tuple[str, tuple[int, int], Manifest]] = {}

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
            entry = self.watchdog.arm(timeout_s, handle)
            try:
                yield cur, run
                clean = run.reusable
            except duckdb.Error as e:
                raise run.translate(e) from e
            finally:
                self.watchdog.disarm(entry)
                handle.detach()
                inst.give_cursor(cur, clean=clean and not (handle.timed_out or handle.cancelled))
        finally:
            self.instances.release(inst)

    def _rows(self, sql: str, tables: frozenset[str], *, params: Any, max_rows: int | None, timeout_s: float | None,
              handle: Handle | None, digest: str) -> QueryResult:
        started = time.perf_counter()
        manifests = self.manifests(tables)
        rows_cap, timeout = self.limits(max_rows, timeout_s)
        with self._cursor(manifests, timeout, handle) as (cur, run):
            cur.execute(sql, params) if params else cur.execute(sql)
            rows = cur.fetchmany(rows_cap + 1) if rows_cap else []
            if not rows_cap and cur.fetchone() is not None:
                rows = [()]
            columns = [{"name": d[0], "type": str(d[1])} for d in cur.description or []]
            run.reusable = 0 < len(rows) <= rows_cap or (rows_cap > 0 and not rows)
        truncated = len(rows) > rows_cap
        if truncated:
            del rows[rows_cap:]
        return QueryResult(columns=columns, rows=rows, row_count=len(rows), truncated=truncated,
                           tables=table_reads(manifests), duration_ms=(time.perf_counter() - started) * 1000.0,
                           sql_hash=digest)

    def execute(self, caller: Caller, sql: str, *, params: Sequence[Any] | dict[str, Any] | None = None,
                max_rows: int | None = None, timeout_s: float | None = None, handle: Handle | None = None) -> QueryResult:
        """Guard and run agent SQL; at most ``max_rows`` rows are kept (``truncated`` says if more existed)."""
        checked = self.guard(caller, sql)
        return self._rows(checked.sql, checked.tables, params=params, max_rows=max_rows, timeout_s=timeout_s, handle=handle,
                          digest=checked.sql_hash)

    def execute_guarded(self, checked: GuardedQuery, *, params: Any = None, max_rows: int | None = None,
                        timeout_s: float | None = None, handle: Handle | None = None) -> QueryResult:
        """Run a query already accepted by ``guard()`` (the HTTP layer guards first to audit and check freshness)."""
        return self._rows(checked.sql, checked.tables, params=params, max_rows=max_rows, timeout_s=timeout_s, handle=handle,
                          digest=checked.sql_hash)

    def execute_trusted(self, caller: Caller, tables: Iterable[str], sql: str, *, params: Any = None,
                        max_rows: int | None = None, timeout_s: float | None = None, handle: Handle | None = None) -> QueryResult:
        """Run SQL built by the server over ``tables`` (which ``caller`` must be granted)."""
        keys = self._trusted_tables(caller, tables)
        return self._rows(sql, keys, params=params, max_rows=max_rows, timeout_s=timeout_s, handle=handle,
                          digest=guard.sql_hash(sql))

    def _trusted_tables(self, caller: Caller, tables: Iterable[str]) -> frozenset[str]:
        keys = frozenset(t.lower() for t in tables)
        grants = self.grants_of(caller, refresh=caller.is_admin and not keys <= self.grants_of(caller))
        for key in keys:
            if key not in grants:
                raise NotFound(f"table {key} does not exist or is not granted to this token", rule="table_not_granted")
        return keys

    @contextmanager
    def _stream(self, sql: str, tables: frozenset[str], *, params: Any, max_rows: int | None, timeout_s: float | None,
                handle: Handle | None, digest: str, batch_rows: int) -> Iterator[ArrowStream]:
        manifests = self.manifests(tables)
        rows_cap, timeout = self.limits(max_rows, timeout_s)
        with self._cursor(manifests, timeout, handle) as (cur, run):
            rel = cur.sql(sql, params=params) if params else cur.sql(sql)
            columns = [{"name": n, "type": str(t)} for n, t in zip(rel.columns, rel.types, strict=True)]
            reader = rel.to_arrow_reader(batch_rows)
            yield ArrowStream(reader, columns=columns, tables=table_reads(manifests), max_rows=rows_cap, sql_hash=digest,
                              run=run)

    def stream(self, caller: Caller, sql: str, *, params: Any = None, max_rows: int | None = None,
               timeout_s: float | None = None, handle: Handle | None = None, batch_rows: int = 65_536,
               checked: GuardedQuery | None = None) -> Any:
        """Context manager: guard and stream agent SQL as Arrow batches (for result files)."""
        checked = checked or self.guard(caller, sql)
        return self._stream(checked.sql, checked.tables, params=params, max_rows=max_rows, timeout_s=timeout_s, handle=handle,
                            digest=checked.sql_hash, batch_rows=batch_rows)

    def stream_trusted(self, caller: Caller, tables: Iterable[str], sql: str, *, params: Any = None,
                       max_rows: int | None = None, timeout_s: float | None = None, handle: Handle | None = None,
                       batch_rows: int = 65_536) -> Any:
        """Context manager: stream server-built SQL over granted ``tables`` as Arrow batches."""
        keys = self._trusted_tables(caller, tables)
        return self._stream(sql, keys, params=params, max_rows=max_rows, timeout_s=timeout_s, handle=handle,
                            digest=guard.sql_hash(sql), batch_rows=batch_rows)

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


def table_reads(manifests: Iterable[Manifest]) -> list[TableRead]:
    return [TableRead(m.table_key, m.version, m.published_at) for m in manifests]


__all__ = ["ArrowStream", "Handle", "QueryCancelled", "QueryEngine", "QueryResult", "TableRead", "read_protections"]
