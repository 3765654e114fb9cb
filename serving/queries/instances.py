"""Grant-scoped DuckDB instances: the physical boundary around agent SQL.

Why an instance per table set (measured with duckdb 2.0.1, see the README architecture section):
- ``enable_external_access=false`` still lets a query ``read_blob`` any file the instance
  has attached, and ``query_table('x')`` reaches any table of the instance. So the
  instance that runs a query holds exactly the tables that query was allowed to name:
  each table's current ``v-<version>.duckdb`` is attached READ_ONLY under an internal
  alias and exposed as a view ``"<db>"."<schema>"."<table>"``. Other tables' files are
  not attached, so no SQL trick can reach them. A caller under a grant policy gets the
  table's policy copy attached instead of the served file (``serving/tables/policies.py``):
  its instance never holds the raw rows, the excluded columns or the hash key.
- ATTACH is refused once the configuration is locked, so an instance is built once per
  (table, version file) set and never changed. A new served version gives a new key:
  new queries get a new instance, in-flight ones finish on the old one (refcounts), and
  the old one is closed when idle, which releases the superseded file.
- Creating an instance costs ~13 ms: instances are cached (LRU, with an idle reaper).
  Each query takes a fresh cursor of the instance and closes it afterwards: a cursor is a
  DuckDB connection with its own session state (the ``random()`` generator, sequences),
  and reusing one across callers would let one caller's query shape another's.

Every instance is built with external access off, extension autoload/autoinstall and
community extensions off, Python replacement scans off, memory/thread/temp-size limits, ``max_execution_time`` as a
backstop, its own temp folder, and then ``lock_configuration=true``; the settings are read
back and the instance is refused if any protection is missing.

With ``QUERY_PRIORITIES`` instances are built on batch threads (``lower_priority``): the
DuckDB worker threads an instance starts inherit their builder's nice value, so DuckDB's
parallel work for any agent yields the CPU to the event loop as the agents' own threads do.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb

from serving.lib.limits import lower_priority
from serving.tables.names import quote_ident, stored_alias
from shared.served import Manifest, version_path
from shared.settings import Settings

RESERVED_CATALOGS = frozenset({"memory", "system", "temp", "main"})
IDLE_CLOSE_S = 600.0
MAX_IDLE_CURSORS = 0  # no cursor (session state) outlives its query; a new one costs ~60 µs
# Cursors able to report DuckDB's query progress, made before the configuration is locked (the
# setting is per cursor, cannot be set globally, and cannot be changed afterwards); an instance
# whose stock is spent is rebuilt for the next query. Only query jobs known to be asynchronous
# take one, and every result file is one: with a stock of 4, every fifth export paid a rebuild
# (~13 ms, and closing the old instance) on its request. A progress cursor costs ~0.15 ms of
# CPU and ~14 KB: 32 add ~4 ms to a build and make rebuilds 8x rarer.
PROGRESS_CURSORS = 32
BUILDERS = 4  # batch threads building instances (QUERY_PRIORITIES); a build takes ~13 ms
_ids = itertools.count(1)


class ProtectionError(RuntimeError):
    """A DuckDB protection is not in force; the API must not serve agent SQL."""


def _expected(settings: Settings) -> dict[str, Any]:
    q = settings.query
    return {
        "enable_external_access": "false",
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
        "allow_community_extensions": "false",
        "python_enable_replacements": "false",
        "lock_configuration": "true",
        "threads": str(q.threads),
        "max_execution_time": str(backstop_ms(settings)),
    }


def backstop_ms(settings: Settings) -> int:
    """DuckDB's own ``max_execution_time``: the longest allowed query plus a minute for writing results."""
    return int((settings.query.max_timeout_s + 60) * 1000)


def read_protections(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    names = ("enable_external_access", "autoinstall_known_extensions", "autoload_known_extensions",
             "allow_community_extensions", "python_enable_replacements", "lock_configuration", "threads",
             "max_execution_time", "memory_limit", "max_temp_directory_size", "temp_directory")
    rows = con.execute("SELECT name, value FROM duckdb_settings() WHERE name IN (SELECT unnest(?))", [list(names)]).fetchall()
    return {str(k): str(v) for k, v in rows}


def check_protections(con: duckdb.DuckDBPyConnection, settings: Settings) -> dict[str, str]:
    """Read back the settings of ``con``'s instance; raise ``ProtectionError`` if any is off."""
    found = read_protections(con)
    wrong = {k: (found.get(k), v) for k, v in _expected(settings).items() if found.get(k, "").lower() != v}
    if wrong:
        raise ProtectionError(f"DuckDB protections not in force (setting: found, expected): {wrong}")
    return found



def exposed_path(m: Manifest, local: Callable[[Manifest], Path]) -> Path:
    """The file an instance attaches for ``m``: its policy copy when the caller reads under a policy,
    else the version's file on this machine (``local``: the served store's ``local_path``)."""
    policy_path = m.extra.get("policy_path")
    return Path(policy_path) if policy_path else local(m)


def instance_key(manifests: tuple[Manifest, ...]) -> tuple[tuple[str, str, str], ...]:
    """(table, version file, policy copy) per table: callers under different policies never share an instance."""
    return tuple(sorted((m.table_key, m.file, str(m.extra.get("policy") or "")) for m in manifests))


class Instance:
    """One locked in-memory DuckDB instance exposing exactly ``manifests``' tables."""

    def __init__(self, key: tuple[tuple[str, str, str], ...], manifests: tuple[Manifest, ...], settings: Settings,
                 path_of: Callable[[Manifest], Path] | None = None) -> None:
        self.key = key
        self.manifests = {m.table_key: m for m in manifests}
        self.refs = 0
        self.retired = False
        self._idle: list[duckdb.DuckDBPyConnection] = []  # cursors ready for reuse (~60 µs saved per query)
        self.last_used = time.monotonic()
        q = settings.query
        self.tmp_dir = settings.home_path / "tmp" / "query-spill" / f"i{next(_ids)}-{time.time_ns()}"
        self.con = duckdb.connect(":memory:", config={
            "threads": q.threads, "memory_limit": q.memory_limit, "max_temp_directory_size": q.max_temp_size,
            "temp_directory": str(self.tmp_dir), "max_execution_time": backstop_ms(settings),
            "autoinstall_known_extensions": False, "autoload_known_extensions": False,
            "allow_community_extensions": False,
            # no replacement scans: a name DuckDB does not find is never looked up among the Python
            # objects of the thread running the query (external access off also stops them; this does not
            # depend on that)
            "python_enable_replacements": False,
        })
        self._progress: list[duckdb.DuckDBPyConnection] = []
        try:
            self._expose(manifests, path_of or (lambda m: version_path(settings.served_path, m)))
            for _ in range(PROGRESS_CURSORS):
                cur = self.con.cursor()
                cur.execute("SET enable_progress_bar = true")
                cur.execute("SET enable_progress_bar_print = false")
                self._progress.append(cur)
            self.con.execute("SET enable_external_access = false")
            self.con.execute("SET lock_configuration = true")
            check_protections(self.con, settings)
        except BaseException:
            self.close()
            raise

    def _expose(self, manifests: tuple[Manifest, ...], path_of: Callable[[Manifest], Path]) -> None:
        catalogs: set[str] = set()
        schemas: set[tuple[str, str]] = set()
        for i, m in enumerate(manifests):
            db, schema, table = m.table_key.split(".")
            if db in RESERVED_CATALOGS or db.startswith("__"):
                raise ProtectionError(f"table database name {db!r} is reserved by DuckDB; it cannot be served")
            path = str(exposed_path(m, path_of)).replace("'", "''")
            alias = stored_alias(i)
            self.con.execute(f"ATTACH '{path}' AS {alias} (READ_ONLY)")
            if db not in catalogs:
                self.con.execute(f"ATTACH ':memory:' AS {quote_ident(db)}")
                catalogs.add(db)
            if (db, schema) not in schemas:
                self.con.execute(f"CREATE SCHEMA {quote_ident(db)}.{quote_ident(schema)}")
                schemas.add((db, schema))
            self.con.execute(f"CREATE VIEW {quote_ident(db)}.{quote_ident(schema)}.{quote_ident(table)} "
                             f"AS SELECT * FROM {alias}.main.data")

    def take_cursor(self) -> duckdb.DuckDBPyConnection:
        try:
            return self._idle.pop()
        except IndexError:
            return self.con.cursor()

    def take_progress_cursor(self) -> duckdb.DuckDBPyConnection | None:
        """A never-used cursor that reports ``query_progress()``, or None when the stock is spent."""
        try:
            return self._progress.pop()
        except IndexError:
            return None

    @property
    def progress_spent(self) -> bool:
        return not self._progress

    def give_cursor(self, cur: duckdb.DuckDBPyConnection, *, clean: bool) -> None:
        """Keep a cursor for the next query unless its query failed or was interrupted."""
        if clean and len(self._idle) < MAX_IDLE_CURSORS and not self.retired:
            self._idle.append(cur)
        else:
            with contextlib.suppress(duckdb.Error):
                cur.close()

    def close(self) -> None:
        for cur in [*self._idle, *self._progress]:
            with contextlib.suppress(duckdb.Error):
                cur.close()
        self._idle.clear()
        self._progress.clear()
        with contextlib.suppress(duckdb.Error):
            self.con.close()
        shutil.rmtree(self.tmp_dir, ignore_errors=True)


class InstanceCache:
    """LRU of instances keyed by ``((table_key, version_file, policy), ...)``, refcounted while queries run."""

    def __init__(self, settings: Settings, *, max_instances: int = 32,
                 path_of: Callable[[Manifest], Path] | None = None) -> None:
        self.settings = settings
        self.path_of = path_of  # the served store's local file of a version (default: the served folder)
        self.max_instances = max_instances
        self._live: OrderedDict[tuple[tuple[str, str, str], ...], Instance] = OrderedDict()
        self._building: dict[tuple[tuple[str, str, str], ...], Future[Instance]] = {}
        self._lock = threading.Lock()
        self.built = 0
        self._builders = ThreadPoolExecutor(max_workers=BUILDERS, thread_name_prefix="duckdb-build",
                                            initializer=lower_priority) if settings.query.priorities else None

    def _build(self, key: tuple[tuple[str, str, str], ...], manifests: tuple[Manifest, ...]) -> Instance:
        ordered = tuple(sorted(manifests, key=lambda m: m.table_key))
        if self._builders is None:
            return Instance(key, ordered, self.settings, self.path_of)
        return self._builders.submit(Instance, key, ordered, self.settings, self.path_of).result()

    def acquire(self, manifests: tuple[Manifest, ...], *, progress: bool = False) -> Instance:
        """An instance exposing exactly ``manifests`` (built once, shared); pair with ``release``.

        ``progress``: the caller wants a progress cursor; an instance that has none left is retired
        and a new one built (queries on the old one finish there)."""
        key = instance_key(manifests)
        while True:
            with self._lock:
                inst = self._live.get(key)
                if inst is not None and progress and inst.progress_spent:
                    spent = self._retire(key)
                    if spent is not None:
                        self._close_later([spent])
                    inst = None
                if inst is not None:
                    inst.refs += 1
                    inst.last_used = time.monotonic()
                    self._live.move_to_end(key)
                    return inst
                pending = self._building.get(key)
                if pending is None:
                    pending = self._building[key] = Future()
                    break
            pending.result()  # someone else is building it; then take it from the cache
        try:
            inst = self._build(key, manifests)
        except BaseException as e:
            with self._lock:
                self._building.pop(key, None)
            pending.set_exception(e)
            raise
        with self._lock:
            self._building.pop(key, None)
            self._retire_superseded(inst)
            self._live[key] = inst
            inst.refs += 1
            self.built += 1
            self._evict()
        pending.set_result(inst)
        return inst

    def release(self, inst: Instance) -> None:
        with self._lock:
            inst.refs -= 1
            inst.last_used = time.monotonic()
            close = inst.retired and inst.refs == 0
        if close:
            inst.close()

    def _retire(self, key: tuple[tuple[str, str, str], ...]) -> Instance | None:
        inst = self._live.pop(key)
        inst.retired = True
        return inst if inst.refs == 0 else None

    def _close_later(self, insts: list[Instance]) -> None:
        for inst in insts:
            threading.Thread(target=inst.close, name="duckdb-close", daemon=True).start()

    def _retire_superseded(self, new: Instance) -> None:
        """Instances holding an older version of any of ``new``'s tables get no new queries.

        Older only: version files are named by their time-sortable version id, and an instance
        built for an older version read on purpose (``at_versions``, a continuation) supersedes
        nothing. Retiring every instance with *another* version retired the current one of
        every caller each time one agent read a pinned version, so alternating a pinned and a
        current query made everyone's next query rebuild its instance."""
        files = {t: f for t, f, _ in new.key}
        stale = [k for k in self._live if any(t in files and f < files[t] for t, f, _ in k)]
        self._close_later([i for k in stale if (i := self._retire(k)) is not None])

    def _evict(self) -> None:
        idle = [k for k, i in self._live.items() if i.refs == 0]
        excess = len(self._live) - self.max_instances
        self._close_later([i for k in idle[:max(0, excess)] if (i := self._retire(k)) is not None])

    def reap(self, idle_s: float = IDLE_CLOSE_S) -> int:
        """Close instances unused for ``idle_s`` (frees memory and superseded files)."""
        now = time.monotonic()
        with self._lock:
            old = [k for k, i in self._live.items() if i.refs == 0 and now - i.last_used > idle_s]
            closing = [i for k in old if (i := self._retire(k)) is not None]
        for inst in closing:
            inst.close()
        return len(closing)

    def files_in_use(self) -> set[tuple[str, str]]:
        """(table key, version file) of every instance a query holds now: never evicted from the cache."""
        with self._lock:
            return {(table, file) for k, i in self._live.items() if i.refs for table, file, _policy in k}

    def drop_files(self, pairs: set[tuple[str, str]]) -> None:
        """Files evicted from the served-data cache: retire the instances attaching them, so the
        space is freed once they are idle (an in-flight query keeps its open file)."""
        with self._lock:
            stale = [k for k in self._live if any((table, file) in pairs for table, file, _policy in k)]
            closing = [i for k in stale if (i := self._retire(k)) is not None]
        self._close_later(closing)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"live": len(self._live), "busy": sum(1 for i in self._live.values() if i.refs), "built": self.built}

    def close(self) -> None:
        if self._builders is not None:
            self._builders.shutdown(wait=False)
        with self._lock:
            insts = list(self._live.values())
            self._live.clear()
        for inst in insts:
            inst.retired = True
            if inst.refs == 0:
                inst.close()
