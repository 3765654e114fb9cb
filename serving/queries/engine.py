"""THE guarded execute(): every DuckDB read of the API goes through ``QueryEngine``.

Why one place: the time limit, the row cap with its ``truncated``
flag, the typed timeout, the table versions a result came from, and the grant-scoped
instance are enforced once, for queries, sampling and profiling alike.

Two entry points, both synchronous (call them from a worker thread)::

    engine.execute(caller, sql_or_guarded, *, params=None, max_rows=None, timeout_s=None, handle=None,
                   output=TUPLES) -> QueryResult
        # THE way to run agent SQL: guarded once (or given the answer of engine.guard()),
        # grant-scoped instance; output is a mode, not another path: Tuples() (rows fetched
        # max_rows+1), JsonRows(max_bytes) (formats.EncodedArray, cut past max_bytes batch by
        # batch) or ArrowBatches(consume) (consume(ArrowStream) runs while the cursor is held)
    engine.execute_platform_sql(caller, tables, sql, *, ..., output=TUPLES) -> QueryResult
        # internal: SQL the server wrote (samples, profiles); ``tables`` = table keys it names
        # (quote them with guard.quote_table(key)); the caller must be granted each; runs on an
        # instance holding exactly those tables, same limits, no SQL parsing
    engine.manifests(tables, caller=None) -> tuple[Manifest, ...]  # current served versions (404 if never served);
        # with a caller: as that caller sees them under its grant policy (visible columns, seen
        # types, filtered row count; the instance attaches the policy copy)
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
import datetime as dt
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb

from serving.lib.budgets import Reported
from serving.lib.caller import Caller
from serving.lib.errors import (
    ApiError,
    BadRequest,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    QueryRejected,
    QueryTimeout,
    ServiceUnavailable,
)
from serving.lib.results import (
    FILE_MAX_ROWS,
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
from serving.queries import budget, functions, guard
from serving.queries.guard import GuardedQuery
from serving.queries.instances import Instance, InstanceCache, check_protections, read_protections
from serving.queries.memory import memory_budget
from serving.queries.pushdown import LIVE_VERSION, Pushdown
from serving.queries.watchdog import Handle, MemoryGuard, Watchdog
from serving.tables.policies import PolicyCopies
from shared import policies
from shared.identifiers import duck_fold
from shared.served import CURRENT, Column, Manifest, ServedDataError, list_served, read_current, table_dir
from shared.served_storage import open_store
from shared.settings import Settings

log = logging.getLogger("agents_data.queries")
_SUGGESTION = re.compile(r"\s*Did you mean .*", re.DOTALL)
_INTERNAL = re.compile(r'"?__t\d+"?(\.main\.data)?')
class QueryCancelled(ApiError):
    status, code = 409, "cancelled"


class VersionGone(ApiError):
    """A pinned served version was deleted (a continuation fetched after the version's grace period)."""

    status, code = 410, "gone"


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
        self.served = open_store(settings)  # SERVED_STORAGE: the local folder, or object storage and a cache
        self.instances = InstanceCache(settings, max_instances=max_instances, path_of=self.served.local_path)
        self.copies = PolicyCopies(settings)
        self._running: set[Handle] = set()
        self._running_lock = threading.Lock()
        self.memory = MemoryGuard(memory_budget(settings), self.running)
        self.watchdog = Watchdog(on_tick=self.instances.reap, memory=self.memory,
                                 batch_priorities=settings.query.priorities)
        self._all: tuple[float, frozenset[str]] = (0.0, frozenset())
        self.pushdown = Pushdown(settings, self.watchdog)
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
            keys = frozenset(self.served.keys(fresh=refresh) if self.served.remote else list_served(self.settings.served_path)) \
                | self.pushdown.live_keys()
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
        """``read_current`` with the CURRENT path precomputed: one ``stat`` per table per query.

        With object storage: the version the control database names (read at most every
        ``SERVED_POLL_INTERVAL_S``), whether or not this replica has downloaded it yet."""
        if self.served.remote:
            return self.served.current(key)
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

    def manifests(self, tables: Iterable[str], caller: Caller | None = None,
                  versions: Mapping[str, str] | None = None) -> tuple[Manifest, ...]:
        """The current served manifests of ``tables``; with ``caller``, as that caller sees them. Each
        version is present on this machine (object storage: downloaded and verified first when this
        replica does not hold it yet). ``versions`` pins tables to a version read before (a
        continuation's re-run): 410 ``version_gone`` once that version was deleted."""
        out = []
        keys = sorted(tables)
        live = set(keys) & self.pushdown.live_keys()
        if live:
            raise BadRequest(f"{', '.join(sorted(live))} is live (not copied): it has no served version; query, "
                             "sample or profile it (those run in Snowflake)", rule="live_table")
        for key in keys:
            manifest = current = self._serve(key) if self.served.remote else self.current(key)
            pinned = (versions or {}).get(key)
            if manifest is not None and pinned is not None and manifest.version != pinned:
                manifest = self.version(key, pinned)
            if manifest is None:
                raise NotFound(f"table {key} has no served data yet (it has never been synced)", rule="table_not_served")
            out.append(manifest if caller is None else self.seen(caller, manifest, current))
        return tuple(out)

    def seen(self, caller: Caller, manifest: Manifest, current: Manifest | None = None) -> Manifest:
        """``manifest`` as ``caller`` reads it: raw for the admin, else through its grant policy's copy.
        ``current``: the table's current version when ``manifest`` is an older one (pinned): its
        classification counts too, so a column found personal since is masked in the older version."""
        policy = caller.policy_set()
        if policy is None:
            return manifest
        older = current if current is not None and current.version != manifest.version else None
        key = (manifest.table_key, manifest.file, older.file if older is not None else None)
        hit: Manifest | None = policy.memo.get(key)  # one plan per (rules snapshot, version): off the hot path
        if hit is None:
            hit = self.copies.view(manifest, policies.plan(policy, manifest, older))
            if len(policy.memo) < 4096:
                policy.memo[key] = hit
        return hit

    def version(self, key: str, version: str) -> Manifest:
        """The served ``version`` of ``key``, current or superseded; 410 ``version_gone`` once deleted."""
        manifest = self.served.version(key, version)
        if manifest is None:
            raise VersionGone(f"version {version} of {key}, which this result is read from, was replaced and "
                              "deleted after its grace period; run the query again", rule="version_gone",
                              details={"table": key, "version": version})
        return manifest

    def _serve(self, key: str) -> Manifest | None:
        try:
            return self.served.serve(key)
        except ServedDataError as e:
            log.warning("%s", e)
            raise ServiceUnavailable(f"table {key} cannot be read on this replica now: its current version "
                                     "could not be fetched from object storage; try again shortly",
                                     rule="served_data_unavailable") from e

    def limits(self, max_rows: int | None, timeout_s: float | None, *, row_limit: int | None = None) -> tuple[int, float]:
        row_limit = self.q.max_rows if row_limit is None else row_limit
        rows = row_limit if max_rows is None else max(0, min(int(max_rows), row_limit))
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
        setup = time.thread_time()
        inst: Instance = self.instances.acquire(manifests, progress=handle.wants_progress)
        run = _Run(self, handle, timeout_s)
        clean = False
        try:
            progress_cur = inst.take_progress_cursor() if handle.wants_progress else None
            cur = progress_cur or inst.take_cursor()
            handle.setup_cpu_s += time.thread_time() - setup  # an instance built here is not the query's cost
            handle.attach(cur, reports_progress=progress_cur is not None)
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

    def _run(self, caller: Caller, sql: str, tables: frozenset[str], *, digest: str, params: Any, max_rows: int | None,
             timeout_s: float | None, handle: Handle | None, output: Output,
             versions: Mapping[str, str] | None = None) -> QueryResult:
        """Run SQL already judged safe on an instance holding exactly ``tables``, under the limits."""
        started = time.perf_counter()
        manifests = self.manifests(tables, caller, versions)
        file_cap = FILE_MAX_ROWS if isinstance(output, ArrowBatches) and output.capped_by_bytes else None
        rows_cap, timeout = self.limits(max_rows, timeout_s, row_limit=file_cap)
        reads = table_reads(manifests)
        handle = handle or Handle()
        handle.owner = caller.swarm_id or caller.token_id or caller.kind  # the memory guard picks by owner first
        with self._cursor(manifests, timeout, handle) as (cur, run):
            got = output.read(cur, run, sql=sql, params=params, rows_cap=rows_cap, tables=reads)
        return QueryResult(columns=got.columns, rows=got.rows, row_count=got.row_count, truncated=got.truncated,
                           tables=reads, duration_ms=(time.perf_counter() - started) * 1000.0, sql_hash=digest,
                           consumed=got.consumed)

    def execute(self, caller: Caller, query: str | GuardedQuery, *, params: Sequence[Any] | dict[str, Any] | None = None,
                max_rows: int | None = None, timeout_s: float | None = None, handle: Handle | None = None,
                output: Output = TUPLES, engine: str | None = None, text: str | None = None,
                versions: Mapping[str, str] | None = None) -> QueryResult:
        """THE way to run agent SQL: guard it (unless ``query`` is the answer ``guard()`` already gave
        for this caller) and run it in the chosen ``output`` mode; at most ``max_rows`` rows are kept
        (``truncated`` says if more existed). A query reading a live table, or asked for with
        ``engine="snowflake"``, runs in Snowflake (``pushdown.py``; ``text`` is the agent's SQL).
        ``versions`` ({table key: version}) reads those tables at those served versions."""
        checked = query if isinstance(query, GuardedQuery) else self.guard(caller, query)
        if self.pushdown.wanted(checked.tables, engine):
            self._check_pushable(caller, checked.tables)
            source = text if text is not None else query
            if not isinstance(source, str):
                raise BadRequest("a query run in Snowflake needs its text", rule="query_error")
            sql, tables = self.pushdown.transpile(source, self.grants_of(caller))
            rows_cap, timeout = self.limits(max_rows, timeout_s)
            return self.pushdown.run(caller, sql, tables, digest=checked.sql_hash, params=params, max_rows=rows_cap,
                                     timeout_s=timeout, handle=handle, output=output)
        return self._run(caller, checked.sql, checked.tables, digest=checked.sql_hash, params=params, max_rows=max_rows,
                         timeout_s=timeout_s, handle=handle, output=output, versions=versions)

    def _check_pushable(self, caller: Caller, tables: Iterable[str]) -> None:
        """Grant policies and default masking are enforced by the policy copy DuckDB reads; Snowflake
        would answer raw values. So a query runs there only when the caller would see every column
        of every table plain and every row: no rule on the grant, no masked column (on a copied
        table, its classified version's plan; on a live table, never classified, its column names:
        a name that looks personal counts unless the admin overrode it or unmasked it for the swarm).
        The columns judged are the source's as they are now, not a cached list: a column added in
        Snowflake since the last sync (or a moment ago) is read by the query and was never
        classified, so it counts as personal unless the admin overrode it or unmasked it."""
        policy = caller.policy_set()
        if policy is None:
            return
        live, regs = self.pushdown.live_keys(), self.pushdown.registrations()
        for key in sorted(tables):
            reg = regs.get(key)
            if reg is not None and reg.from_files:
                continue  # never pushed down: the transpiler refuses file-sourced tables with its own 400
            overrides, unmasked = policy.overrides.get(key, {}), policy.unmasked.get(key, frozenset())
            if policy.rules.get(key):
                restricted = True
            elif key in live:
                restricted = any(policies.live_masked(overrides, unmasked, name)
                                 for name in self.pushdown.source_columns(key))
            else:
                manifest = self.current(key)
                served = {duck_fold(c.name) for c in manifest.columns} if manifest is not None else set()
                unclassified = [n for n in self.pushdown.source_columns(key) if duck_fold(n) not in served]
                restricted = (manifest is not None and policies.plan(policy, manifest).restricted) or any(
                    overrides.get(duck_fold(name), True) and duck_fold(name) not in unmasked for name in unclassified)
            if restricted:
                raise Forbidden(f"{key} is read under a grant policy or personal-data masking, which only the copy "
                                "served by this platform enforces: query it without engine=snowflake (a live table: "
                                "ask the admin to sync it, or to unmask or reclassify its personal columns)",
                                rule="policy_not_pushable", details={"table": key})

    def execute_platform_sql(self, caller: Caller, tables: Iterable[str], sql: str, *, params: Any = None,
                             max_rows: int | None = None, timeout_s: float | None = None, handle: Handle | None = None,
                             output: Output = TUPLES, versions: Mapping[str, str] | None = None) -> QueryResult:
        """Internal: run SQL the server wrote itself (samples, profiles, a dry run's plan), never agent text.

        Not guarded (there is nothing to parse), but confined the same way: ``caller`` must be
        granted each of ``tables`` (quote them with ``guard.quote_table``), and the SQL runs on
        an instance holding exactly those tables, under the same limits (``versions`` as for ``execute``).
        """
        keys = self._granted_tables(caller, tables)
        if keys & self.pushdown.live_keys():  # a live table: the same SQL, transpiled, runs in Snowflake
            self._check_pushable(caller, keys)
            rows_cap, timeout = self.limits(max_rows, timeout_s)
            return self.pushdown.run(caller, self.pushdown.transpile_trusted(sql, keys), keys, digest=guard.sql_hash(sql),
                                     params=params, max_rows=rows_cap, timeout_s=timeout, handle=handle, output=output)
        return self._run(caller, sql, keys, digest=guard.sql_hash(sql), params=params, max_rows=max_rows, timeout_s=timeout_s,
                         handle=handle, output=output, versions=versions)

    def live_budget(self, caller: Caller) -> Reported | None:
        """The caller's swarm's Snowflake seconds for today, for the budget headers (None: not counted)."""
        return budget.status(self.pushdown.settings, caller)

    def live_manifest(self, key: str, caller: Caller) -> Manifest | None:
        """What samples and profiles of a live table are built from (None: ``key`` is not live):
        version ``live``, its Snowflake columns as DuckDB types, the source's row count. Checks
        first that ``caller`` may read it in Snowflake (403 ``policy_not_pushable`` otherwise)."""
        if key not in self.pushdown.live_keys():
            return None
        self._check_pushable(caller, [key])
        columns, rows = self.pushdown.describe(key)
        return Manifest(table_key=key, version=LIVE_VERSION, file="", published_at=dt.datetime.now(dt.UTC).isoformat(),
                        strategy="live", row_count=rows or 0, bytes=0,
                        columns=[Column(name, kind) for name, kind in columns], extra={"live": True})

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
