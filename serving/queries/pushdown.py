"""Queries pushed down to Snowflake: live tables, and ``engine: "snowflake"`` on granted tables.

Why this shape: the same guard decides on the agent's DuckDB-dialect SQL (``guard.checked_tree``
refuses exactly what ``check_sql`` refuses); sqlglot then transpiles the checked tree, whose
table references are canonical keys of granted tables, to Snowflake SQL with each key
replaced by its registration's exact Snowflake names. Nothing else can appear: a name that is
not a granted, registered, Snowflake-sourced table was refused or is refused here.

Snowflake-side protection, per query: its own session on ``LIVE_SNOWFLAKE_WAREHOUSE``,
``STATEMENT_TIMEOUT_IN_SECONDS`` from the query's time limit, ``QUERY_TAG`` naming the agent
and swarm, and a per-swarm daily budget of Snowflake seconds (``budget.py``). The API's own
watchdog also stops waiting at the time limit (the local stand-in ignores the statement
timeout), and a cancel stops waiting at once.

Results come back as Arrow through the connector, at most ``max_rows + 1`` rows, and are
read through the same output modes as a DuckDB result (an in-memory DuckDB holding the
Arrow result), so JSON, CSV, Parquet and Arrow answers are the same code. Provenance: each
table read reports version ``live`` and the Snowflake query id.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import re
import threading
import time
from collections.abc import Iterable
from typing import Any

import duckdb
import pyarrow as pa
import snowflake.connector
import snowflake.connector.errors
import sqlglot
from sqlalchemy.exc import SQLAlchemyError
from sqlglot import exp

from serving.lib.caller import Caller
from serving.lib.errors import ApiError, BadRequest, QueryRejected, QueryTimeout, ServiceUnavailable
from serving.lib.results import Output, QueryResult, TableRead
from serving.queries import budget, guard
from serving.queries.watchdog import Handle, Watchdog
from serving.tables.names import shown
from serving.tables.platform import LIVE_VERSION
from shared import registry
from shared.identifiers import duck_fold
from shared.registry import RegisteredTable
from shared.settings import Settings
from shared.snowflake import connect_args

log = logging.getLogger("agents_data.queries")
ENGINES = ("duckdb", "snowflake")
_TIMEOUT_ERRNOS = {630, 604}  # statement reached its timeout; query cancelled
_REGISTRY_TTL_S = 2.0


class QueryCancelledLive(ApiError):
    status, code = 409, "cancelled"


class _Stop:
    """What the handle interrupts: the waiting thread stops waiting (the source stops on its own timeout)."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def interrupt(self) -> None:
        self.event.set()


@dataclasses.dataclass
class _Outcome:
    table: pa.Table | None = None
    query_id: str | None = None
    error: BaseException | None = None
    truncated: bool = False


class _Run:
    """Stands in for the DuckDB run the output modes expect (``reusable``, ``translate``)."""

    reusable = True

    def translate(self, e: BaseException) -> ApiError:
        return BadRequest(str(e).splitlines()[0][:2000], rule="query_error")


_COLUMNS_TTL_S = 60.0


class Pushdown:
    """Decides which queries run in Snowflake and runs them there."""

    def __init__(self, settings: Settings, watchdog: Watchdog) -> None:
        self.settings = settings
        self.watchdog = watchdog
        self._regs: tuple[float, dict[str, RegisteredTable], frozenset[str]] = (0.0, {}, frozenset())
        self._columns: dict[str, tuple[float, tuple[tuple[str, str], ...], int | None]] = {}
        self._lock = threading.Lock()

    # -- which tables ---------------------------------------------------------------------
    def _read(self) -> tuple[float, dict[str, RegisteredTable], frozenset[str]]:
        """Registrations by key and the live keys, re-read at most every two seconds."""
        with self._lock:
            if time.monotonic() - self._regs[0] > _REGISTRY_TTL_S:
                try:
                    regs = {r.key: r for r in registry.list_registered(self.settings.control_url)}
                except SQLAlchemyError as e:  # control DB unreachable: keep what was known (copies still serve)
                    log.warning("could not read the registrations for live tables: %s", type(e).__name__)
                    regs = self._regs[1]
                self._regs = (time.monotonic(), regs, frozenset(k for k, r in regs.items() if r.live))
            return self._regs

    def registrations(self) -> dict[str, RegisteredTable]:
        return self._read()[1]

    def live_keys(self) -> frozenset[str]:
        return self._read()[2]

    def describe(self, key: str) -> tuple[tuple[tuple[str, str], ...], int | None]:
        """A live table's columns in Snowflake as (exact name, DuckDB type), and its row count
        from ``INFORMATION_SCHEMA`` (cached like the registrations): what the data-protection
        check judges, since no copy of it was ever classified, and what its samples and
        profiles are built from."""
        with self._lock:
            hit = self._columns.get(key)
        if hit is not None and time.monotonic() - hit[0] < _COLUMNS_TTL_S:
            return hit[1], hit[2]
        reg = self.registrations().get(key)
        if reg is None:
            return (), None
        from shared.snowflake import connect, list_tables, table_columns

        try:
            with connect(self.settings.snowflake) as con:
                columns = tuple((c.name, duck_type(c.data_type, c.precision, c.scale))
                                for c in table_columns(con, reg.database, reg.schema, reg.table))
                figures = [t.row_count for t in list_tables(con, reg.database, reg.schema) if t.name == reg.table]
        except Exception as e:  # the connector raises many types: the check then refuses (fails closed)
            raise ServiceUnavailable(f"the columns of live table {key} could not be read from Snowflake",
                                     rule="source_unavailable") from e
        rows = figures[0] if figures else None
        with self._lock:
            self._columns[key] = (time.monotonic(), columns, rows)
        return columns, rows

    def column_names(self, key: str) -> tuple[str, ...]:
        return tuple(name for name, _ in self.describe(key)[0])

    def source_columns(self, key: str) -> tuple[str, ...]:
        """``key``'s column names in Snowflake now, read on every call (never cached): what the
        data-protection check judges before a query runs there, since a column added in the
        source a moment ago is read by that query and was never classified (fails closed)."""
        reg = self.registrations().get(key)
        if reg is None:
            return ()
        from shared.snowflake import connect, table_columns

        try:
            with connect(self.settings.snowflake) as con:
                return tuple(c.name for c in table_columns(con, reg.database, reg.schema, reg.table))
        except Exception as e:  # the connector raises many types: the check then refuses (fails closed)
            raise ServiceUnavailable(f"the columns of {key} could not be read from Snowflake",
                                     rule="source_unavailable") from e

    def wanted(self, tables: Iterable[str], engine: str | None) -> bool:
        """Whether a query over ``tables`` runs in Snowflake: asked for, or it reads a live table."""
        if engine not in (None, *ENGINES):
            raise BadRequest(f"engine {str(engine)[:40]!r} is not one of {', '.join(ENGINES)}", rule="invalid_engine")
        live = set(tables) & self.live_keys()
        if engine == "duckdb" and live:
            raise BadRequest(
                f"{', '.join(sorted(live))} is live (not copied): it can only be queried in Snowflake",
                rule="engine_not_available",
            )
        return engine == "snowflake" or bool(live)

    def _sources(self, tables: Iterable[str]) -> dict[str, RegisteredTable]:
        regs = self.registrations()
        out = {}
        for key in tables:
            reg = regs.get(key)
            if reg is None or reg.from_files:
                what = "is not a registered Snowflake table" if reg is None else f"is read from {reg.source_kind} files"
                raise BadRequest(f"{key} {what}; it can only be queried in DuckDB", rule="engine_not_available")
            out[key] = reg
        return out

    # -- SQL -------------------------------------------------------------------------------
    def transpile(self, query: str, grants: frozenset[str]) -> tuple[str, frozenset[str]]:
        """(Snowflake SQL, table keys) for agent SQL the guard accepts for ``grants``."""
        tree = guard.checked_tree(query, grants)
        keys = frozenset(
            ".".join(p.name for p in t.parts)
            for t in tree.find_all(exp.Table)
            if isinstance(t.this, exp.Identifier) and len(t.parts) == 3
        )
        return self._to_snowflake(tree, keys)

    def transpile_trusted(self, sql: str, tables: frozenset[str]) -> str:
        """Snowflake SQL for DuckDB-dialect SQL the server wrote itself (samples, profiles of a
        live table): nothing to guard, but only ``tables`` may appear, by their canonical keys."""
        try:
            tree = sqlglot.parse_one(sql, read="duckdb")
        except sqlglot.errors.ParseError as e:  # a bug in server-written SQL, not the agent's
            raise BadRequest(f"this request cannot be written for Snowflake: {str(e)[:300]}",
                             rule="not_transpilable") from e
        keys = frozenset(
            ".".join(p.name for p in t.parts)
            for t in tree.find_all(exp.Table)
            if isinstance(t.this, exp.Identifier) and len(t.parts) == 3
        )
        if not keys <= tables:
            raise BadRequest(f"{', '.join(sorted(keys - tables))} cannot be read here", rule="engine_not_available")
        return self._to_snowflake(tree, keys)[0]

    def _to_snowflake(self, tree: exp.Expr, keys: frozenset[str]) -> tuple[str, frozenset[str]]:
        _refuse_session_identity(tree)
        _spell_ctes_alike(tree)
        sources = self._sources(keys)
        for node in list(tree.find_all(exp.Table)):
            if not isinstance(node.this, exp.Identifier) or len(node.parts) != 3:
                continue
            key = ".".join(p.name for p in node.parts)
            reg = sources.get(key)
            if reg is None:  # a CTE of three parts cannot exist; anything else was refused by the guard
                raise BadRequest(f"{key} cannot be queried in Snowflake", rule="engine_not_available")
            node.set("catalog", exp.to_identifier(reg.database, quoted=True))
            node.set("db", exp.to_identifier(reg.schema, quoted=True))
            node.set("this", exp.to_identifier(reg.table, quoted=True))
        for sample in tree.find_all(exp.TableSample):
            method = sample.args.get("method")
            if method is not None and method.name.upper() == "RESERVOIR":  # DuckDB's row-count sampling: Snowflake's
                sample.set("method", None)  # plain ``SAMPLE (n ROWS)``
        try:
            text = tree.sql(dialect="snowflake", unsupported_level=sqlglot.ErrorLevel.RAISE)
        except sqlglot.errors.UnsupportedError as e:
            raise BadRequest(f"this query cannot be written for Snowflake: {str(e)[:300]}", rule="not_transpilable") from e
        return text, keys

    # -- running ---------------------------------------------------------------------------
    def run(
        self,
        caller: Caller,
        sql: str,
        tables: frozenset[str],
        *,
        digest: str,
        params: Any,
        max_rows: int,
        timeout_s: float,
        handle: Handle | None,
        output: Output,
    ) -> QueryResult:
        """Run Snowflake SQL under the limits and read its Arrow result through ``output``."""
        if isinstance(params, dict):
            raise BadRequest("named parameters are not supported by queries run in Snowflake; use a list", rule="invalid_params")
        started = time.perf_counter()
        budget.check(self.settings, caller)
        handle = handle or Handle()
        stop = _Stop()
        outcome = _Outcome()
        worker = threading.Thread(
            name="snowflake-pushdown",
            daemon=True,
            target=lambda: self._fetch(caller, sql, params, max_rows=max_rows, timeout_s=timeout_s, out=outcome),
        )
        handle.attach(stop)
        entry = self.watchdog.arm(timeout_s, handle)
        try:
            worker.start()
            while worker.is_alive() and not stop.event.is_set():
                worker.join(0.05)
        finally:
            self.watchdog.disarm(entry)
            handle.detach()
            budget.spend(self.settings, caller, time.perf_counter() - started)
        if handle.cancelled:
            raise QueryCancelledLive("the query was cancelled", rule="cancelled")
        if stop.event.is_set() or isinstance(outcome.error, TimeoutError):
            raise QueryTimeout(
                f"the query ran longer than its time limit of {timeout_s:g} s and was stopped",
                rule="timeout",
                details={"timeout_s": timeout_s, "engine": "snowflake"},
            )
        if outcome.error is not None:
            raise self._translate(outcome.error, timeout_s)
        assert outcome.table is not None
        reads = [TableRead(key, LIVE_VERSION, dt.datetime.now(dt.UTC).isoformat(), outcome.query_id) for key in sorted(tables)]
        con = duckdb.connect(":memory:", config={"enable_external_access": False, "threads": 1})
        try:
            con.register("live_result", outcome.table)
            got = output.read(con, _Run(), sql="SELECT * FROM live_result", params=None, rows_cap=max_rows, tables=reads)
        finally:
            con.close()
        return QueryResult(
            columns=got.columns,
            rows=got.rows,
            row_count=got.row_count,
            truncated=got.truncated or outcome.truncated,
            tables=reads,
            duration_ms=(time.perf_counter() - started) * 1000.0,
            sql_hash=digest,
            consumed=got.consumed,
        )

    def session_args(self, caller: Caller, timeout_s: float) -> dict[str, Any]:
        """Connection arguments of one pushed-down query: warehouse, statement timeout, agent's query tag."""
        sf = self.settings.snowflake
        args = connect_args(sf)
        warehouse = self.settings.sources.live_warehouse or sf.warehouse
        if warehouse:
            args["warehouse"] = warehouse
        args["paramstyle"] = "qmark"
        args["arrow_number_to_decimal"] = True
        tag = f"{sf.query_tag}:live:{caller.kind}={caller.subject}"
        if caller.swarm_id:
            tag += f":swarm={caller.swarm_id}"
        args["session_parameters"] = {
            **args.get("session_parameters", {}),
            "QUERY_TAG": tag[:2000],
            "STATEMENT_TIMEOUT_IN_SECONDS": max(1, math.ceil(timeout_s)),
        }
        return args

    def _fetch(self, caller: Caller, sql: str, params: Any, *, max_rows: int, timeout_s: float, out: _Outcome) -> None:
        try:
            con = snowflake.connector.connect(**self.session_args(caller, timeout_s))
        except Exception as e:  # the connector raises many unrelated types for a dead endpoint
            out.error = ServiceUnavailable(
                f"the Snowflake source is unreachable: {type(e).__name__}",
                rule="source_unavailable",
                headers={"Retry-After": "5"},
            )
            return
        try:
            cur = con.cursor()
            cur.execute(sql, list(params or []), timeout=max(1, math.ceil(timeout_s)))
            out.query_id = cur.sfqid
            out.table, out.truncated = _arrow(cur, max_rows)
        except BaseException as e:
            out.error = e
        finally:
            con.close()

    @staticmethod
    def _translate(e: BaseException, timeout_s: float) -> ApiError:
        if isinstance(e, ApiError):
            return e
        if isinstance(e, snowflake.connector.errors.Error):
            if getattr(e, "errno", None) in _TIMEOUT_ERRNOS:
                return QueryTimeout(
                    f"the query ran longer than its time limit of {timeout_s:g} s and was stopped",
                    rule="timeout",
                    details={"timeout_s": timeout_s, "engine": "snowflake"},
                )
            message = str(getattr(e, "raw_msg", None) or e).splitlines()[0][:2000]
            return BadRequest(f"Snowflake refused the query: {message}", rule="query_error")
        return BadRequest(f"the query failed in Snowflake: {type(e).__name__}", rule="query_error")


_DUCK_TYPES = {
    "FLOAT": "DOUBLE", "FLOAT4": "DOUBLE", "FLOAT8": "DOUBLE", "DOUBLE": "DOUBLE", "DOUBLE PRECISION": "DOUBLE",
    "REAL": "DOUBLE", "TEXT": "VARCHAR", "VARCHAR": "VARCHAR", "STRING": "VARCHAR", "CHAR": "VARCHAR",
    "CHARACTER": "VARCHAR", "BOOLEAN": "BOOLEAN", "DATE": "DATE", "TIME": "TIME", "DATETIME": "TIMESTAMP",
    "TIMESTAMP": "TIMESTAMP", "TIMESTAMP_NTZ": "TIMESTAMP", "TIMESTAMP_LTZ": "TIMESTAMP WITH TIME ZONE",
    "TIMESTAMP_TZ": "TIMESTAMP WITH TIME ZONE", "BINARY": "BLOB", "VARBINARY": "BLOB",
}


def duck_type(kind: str, precision: int | None, scale: int | None) -> str:
    """The DuckDB type a Snowflake column arrives as (semi-structured values arrive as JSON text)."""
    kind = kind.upper()
    if kind in ("NUMBER", "DECIMAL", "NUMERIC", "INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "BYTEINT"):
        return f"DECIMAL({min(precision or 38, 38)},{scale or 0})"
    return _DUCK_TYPES.get(kind, "VARCHAR")


def _arrow(cur: Any, max_rows: int) -> tuple[pa.Table, bool]:
    """At most ``max_rows + 1`` rows as one Arrow table (the extra row tells about truncation)."""
    batches: list[pa.RecordBatch] = []
    rows = 0
    for part in cur.get_result_batches() or []:
        table = part.to_arrow()
        if table is None or table.num_rows == 0:
            continue
        batches.extend(table.to_batches())
        rows += table.num_rows
        if rows > max_rows:
            break
    if batches:
        table = pa.Table.from_batches(batches)
    else:  # no rows: the columns, typed loosely from the description
        table = pa.table({d[0]: pa.array([], pa.null()) for d in cur.description or []})
    truncated = table.num_rows > max_rows
    return (table.slice(0, max_rows) if truncated else table), truncated


# Functions that DuckDB answers with constants of its own instance ('duckdb', 'memory', 'main'), but
# Snowflake with the platform's session: its user, role, account, warehouse, database, schema, client.
_SESSION_IDENTITY: tuple[type[exp.Expr], ...] = tuple(
    getattr(exp, name) for name in (
        "CurrentUser", "CurrentUserId", "SessionUser", "CurrentRole", "CurrentRoleType", "CurrentAvailableRoles",
        "CurrentSecondaryRoles", "CurrentAccount", "CurrentAccountName", "CurrentOrganizationName",
        "CurrentOrganizationUser", "CurrentRegion", "CurrentWarehouse", "CurrentDatabase", "CurrentCatalog",
        "CurrentSchema", "CurrentSchemas", "CurrentClient", "CurrentIpAddress", "CurrentSession", "CurrentStatement",
        "CurrentTransaction", "CurrentVersion", "SessionParameter",
    ) if hasattr(exp, name)
)
_SESSION_NAMES = frozenset({"current_user", "current_role", "session_user", "user", "current_catalog",
                            "current_database", "current_schema", "current_schemas", "current_query"})
_SESSION_COLUMNS = _SESSION_NAMES - {"user"}  # a table may well have a column named user
_PLAIN = re.compile(r"[a-z_][a-z0-9_]*")
CTE_PREFIX = "__cte_"  # CTE names in Snowflake SQL: quoted, lower case, unlike an ordinary table name


def _refuse_session_identity(tree: exp.Expr) -> None:
    """A query run in Snowflake may not name the platform's Snowflake session (``current_user`` …)."""
    for node in tree.walk():
        name = ""
        if isinstance(node, _SESSION_IDENTITY):
            name = node.sql_name().lower() if isinstance(node, exp.Func) else node.key
        elif isinstance(node, exp.Anonymous) and duck_fold(str(node.name)) in _SESSION_NAMES:
            name = str(node.name)
        elif isinstance(node, exp.Column) and not node.table and duck_fold(node.name) in _SESSION_COLUMNS:
            name = node.name  # ``current_role`` without parentheses: a DuckDB constant, not a column
        if name:
            raise QueryRejected(f"{shown(name)} is not available in queries run in Snowflake, where it would name the "
                                "platform's own Snowflake session", rule="function_not_allowed")


def _spell_ctes_alike(tree: exp.Expr) -> None:
    """Write every CTE name and every reference to it in one spelling no table has, so Snowflake binds
    the CTEs DuckDB binds, and a reference it would not bind fails instead of reading a table.

    The guard matched CTE names as DuckDB does, ignoring ASCII case and quoting; Snowflake folds
    unquoted names to upper case and keeps quoted ones, so ``WITH "t" AS (…) SELECT * FROM t`` would
    name a table ``T`` of the session's schema. After the guard, a one-part table name is always a
    CTE: each becomes ``"__cte_<name folded as DuckDB folds it>"``, and a reference without an alias
    gets the folded name as its alias (unquoted when plain), so ``t.col`` qualifiers still match.
    """
    def spelled(name: str) -> exp.Identifier:
        return exp.to_identifier(f"{CTE_PREFIX}{duck_fold(name)}", quoted=True)

    for cte in tree.find_all(exp.CTE):
        alias = cte.args.get("alias")
        if isinstance(alias, exp.TableAlias) and isinstance(alias.this, exp.Identifier):
            alias.set("this", spelled(alias.this.name))
    for node in tree.find_all(exp.Table):
        if isinstance(node.this, exp.Identifier) and len(node.parts) == 1:
            name = node.this.name
            alias = node.args.get("alias")
            if not isinstance(alias, exp.TableAlias) or not alias.this:
                folded = duck_fold(name)
                named = exp.to_identifier(folded, quoted=not _PLAIN.fullmatch(folded))
                if isinstance(alias, exp.TableAlias):
                    alias.set("this", named)
                else:
                    node.set("alias", exp.TableAlias(this=named))
            node.set("this", spelled(name))
