"""The SQL guard: decides whether agent SQL may run, and rewrites it so DuckDB runs exactly what was checked.

Why a rewrite and not just a check: the guard parses with sqlglot (DuckDB dialect) and
DuckDB parses again. Any difference between the two parsers (comments, unicode case
folding, quoting, CTE scoping) would be a hole if the *original* text ran. So the
guard regenerates the SQL from the checked tree, without comments, with every table
reference replaced by its canonical, quoted ``"database"."schema"."table"``, and
DuckDB's own parser must then agree that the result is exactly one SELECT.

Layers (each has its own tests in tests/serving/test_guard*.py and test_security*.py):
- statement: exactly one statement whose root is SELECT, a set operation, VALUES, a
  parenthesised query, a PIVOT with an explicit IN list, or DESCRIBE/SUMMARIZE of a
  granted table or of a query (``statement_not_allowed``, ``multiple_statements``,
  ``parse_error``). No DDL/DML/PRAGMA/SET/COPY/ATTACH/EXPLAIN/CALL node anywhere.
- tables: every table reference resolves to exactly one granted key, unquoted parts
  case-insensitively and quoted parts exactly (serving/tables/names.py has the rule):
  ``orders`` / ``public.orders`` / ``demo.public."Order Lines"`` (``table_not_granted``
  for missing and ungranted alike, so existence never leaks; ``ambiguous_table`` when
  a short name matches several of the caller's own tables). String table references
  (``FROM 'x.parquet'``) are names like any other and are refused the same way.
- CTEs hide a table only within their own scope (walked per query node, not collected
  query-wide, so ``… WHERE EXISTS (WITH secret AS (…) …)`` cannot shadow an outer name),
  and only where DuckDB agrees: names compare with DuckDB's ASCII-only case folding, and a
  CTE or function name that Unicode and DuckDB fold differently is refused (``ambiguous_name``).
  A CTE sees itself only in the recursive term of a ``WITH RECURSIVE … UNION [ALL]``, where
  DuckDB binds it. Then, on DuckDB's own parse of the SQL that will run, every table read
  must be a granted key the guard wrote or a CTE in DuckDB's scope (tablerefs.py): a
  parser difference cannot leave a name for DuckDB's catalog (``pg_settings`` …).
- functions (``function_not_allowed``): an allow-list (``functions.toml``, generated
  from ``duckdb_functions()`` and reviewed), checked on DuckDB's own parse of the SQL
  that will run, so sqlglot's renaming of functions, casts and operators cannot hide a
  call (functions.py). Calls of functions whose memory DuckDB does not account for are
  rewritten with a size bound (functions_bounds.py, rule ``function_limit`` at run time).

The physical boundary is elsewhere (engine.py: a DuckDB instance that holds only the
tables the query names); the guard gives precise, early, typed refusals on top of it.

Public API (cached per (sql, grants), LRU)::

    check_sql(sql: str, grants: frozenset[str]) -> GuardedQuery        # raises QueryRejected
    validate_filter(where_sql: str, caller: object | None = None) -> str  # a WHERE fragment, regenerated
    resolve_name(name: str, grants: frozenset[str]) -> str             # "orders" -> "demo.public.orders"
    quote_table(key: str) -> str                                       # '"demo"."public"."orders"'
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from typing import Any, ClassVar

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

from serving.lib import metrics
from serving.lib.errors import ApiError, BadRequest, PayloadTooLarge, QueryRejected
from serving.queries import functions, functions_bounds, tablerefs
from serving.tables.names import (
    GrantIndex,
    Lru,
    check_foldable,
    grant_index,
    quote_ident,
    quote_table,
    reject,
    resolve_name,
    shown,
)
from shared.identifiers import duck_fold

MAX_SQL_CHARS = 100_000
MAX_CACHED_SQL_CHARS = 8_192  # bounds the guard cache's memory (4096 entries)
# Node types that are statements of their own: never allowed inside a query.
_STATEMENT_NODES: tuple[type[exp.Expr], ...] = (
    exp.Command, exp.DDL, exp.DML, exp.Drop, exp.Alter, exp.Set, exp.Pragma, exp.Attach, exp.Detach,
    exp.Install, exp.Use, exp.Transaction, exp.Commit, exp.Rollback, exp.Show, exp.Describe, exp.Summarize,
    exp.Into, exp.Export, exp.Refresh, exp.Kill, exp.Grant, exp.Revoke, exp.Analyze, exp.Cache, exp.Uncache,
    exp.LoadData, exp.Declare, exp.Execute, exp.ExecuteSql,
)
_ROOTS = (exp.Select, exp.SetOperation, exp.Values, exp.Subquery, exp.Pivot)
_TABLE_POSITION = (exp.Table, exp.From, exp.Join, exp.Lateral)


@dataclasses.dataclass(frozen=True)
class GuardedQuery:
    """A query the guard accepted: ``sql`` is what runs, ``tables`` the keys it reads."""

    sql: str
    tables: frozenset[str]
    kind: str  # select | describe | summarize
    sql_hash: str


def sql_hash(sql: str) -> str:
    return hashlib.sha256(sql.encode("utf-8", "surrogatepass")).hexdigest()


_results = Lru(4096)
_duck_lock = threading.Lock()
_duck: list[duckdb.DuckDBPyConnection] = []


def _check_function(node: exp.Func) -> None:
    """An early refusal of a function written under its DuckDB name (sqlglot's ``Anonymous``).

    Only a shortcut for a precise message: the allow-list itself is enforced on DuckDB's
    parse of the rewritten SQL (``functions.check_functions``), which also sees the
    functions sqlglot maps to its own nodes.
    """
    if not isinstance(node, exp.Anonymous):
        return
    p = functions.policy()
    check_foldable(str(node.name), "function")
    name = functions.ascii_lower(str(node.name))
    if isinstance(node.parent, _TABLE_POSITION) and node.arg_key == "this":
        if name not in p.table:
            raise reject("function_not_allowed", f"table function {shown(name)}() is not allowed: {p.refusal('table', name)}; "
                                                 f"allowed table functions: {', '.join(sorted(p.table))}")
    elif name not in p.expression and name not in p.bounded and name not in functions.PARSER_FUNCTIONS:
        raise reject("function_not_allowed", f"function {shown(name)}() is not allowed: {p.refusal('expression', name)}")


def _bound_and_check_functions(tree: exp.Expr, tables: frozenset[str], *, filter_only: bool = False) -> str:
    """Bound the size of calls that need it, print the tree, and check every function and table DuckDB will use.

    ``tables`` are the granted keys the walker wrote into the tree: DuckDB's parse may read
    those and CTEs in scope, nothing else (tablerefs.py). Returns the SQL of the tree, or with
    ``filter_only`` of its WHERE condition, bounded the same way.
    """
    bounds = functions_bounds.bound_calls(tree)
    if filter_only:
        text = bounds.expand(tree.args["where"].this.sql(dialect="duckdb", comments=False))
        sql = f"SELECT 1 WHERE {text}"
    else:
        text = sql = bounds.expand(tree.sql(dialect="duckdb", comments=False))
    _duckdb_agrees(sql)
    parsed = functions.parse_tree(sql, _duck_serialize)
    tablerefs.check_tables(parsed, tables)
    functions.check_functions(parsed, bounds.counts)
    return text


def _check_pivot(node: exp.Pivot) -> None:
    """DuckDB runs a PIVOT without an explicit IN list as CREATE TYPE + SELECT: refuse it."""
    if node.args.get("unpivot"):
        return
    fields = node.args.get("fields")
    items = fields if fields is not None else node.expressions  # PIVOT(... FOR x IN (...)) | PIVOT t ON x IN (...)
    for item in items or [None]:
        explicit = isinstance(item, exp.In) and item.expressions and not item.args.get("query")
        if not explicit or any(isinstance(v, exp.Query) for v in item.expressions):
            raise reject("statement_not_allowed", "PIVOT needs an explicit IN (...) list of values")


class _Walker:
    """Checks a tree scope by scope and rewrites table references in place."""

    def __init__(self, index: GrantIndex) -> None:
        self.index = index
        self.tables: set[str] = set()

    def visit(self, node: exp.Expr, ctes: frozenset[str]) -> None:
        with_ = node.args.get("with_")
        if isinstance(with_, exp.With):
            visible = set(ctes)
            recursive = bool(with_.args.get("recursive"))
            for cte in with_.expressions:
                check_foldable(cte.alias_or_name, "CTE name")
                name = duck_fold(cte.alias_or_name)  # DuckDB matches CTE names with ASCII-only folding
                self.cte_body(cte.this, frozenset(visible), name if recursive else None)
                visible.add(name)
            ctes = frozenset(visible)
        for child in node.iter_expressions():
            if child is with_:
                continue
            self.check_node(child, ctes)
            self.visit(child, ctes)

    def cte_body(self, body: exp.Expr, ctes: frozenset[str], recursive_name: str | None) -> None:
        """A CTE's body sees itself only where DuckDB binds it: under ``WITH RECURSIVE``, in the
        recursive term (the right operand) of a plain ``UNION [ALL]``; anywhere else its own name is
        a table (``WITH RECURSIVE pg_settings AS (SELECT * FROM pg_settings)`` reads the catalog)."""
        while isinstance(body, exp.Subquery) and {k for k, v in body.args.items() if v} == {"this"}:
            body = body.this  # ((… UNION ALL …)): DuckDB reads through plain parentheses
        recursive = (recursive_name is not None and type(body) is exp.Union and not body.args.get("with_")
                     and not body.args.get("by_name") and not body.args.get("side") and not body.args.get("kind"))
        if not recursive:
            self.visit(body, ctes)
            return
        assert recursive_name is not None
        for child in body.iter_expressions():
            scope = ctes | {recursive_name} if child is body.expression else ctes
            self.check_node(child, scope)
            self.visit(child, scope)

    def check_node(self, node: exp.Expr, ctes: frozenset[str]) -> None:
        if isinstance(node, _STATEMENT_NODES):
            raise reject("statement_not_allowed", f"{node.key.upper()} is not allowed inside a query")
        if isinstance(node, exp.Func):
            _check_function(node)
        elif isinstance(node, exp.Pivot):
            _check_pivot(node)
        elif isinstance(node, exp.Table):
            self.table(node, ctes)

    def table(self, node: exp.Table, ctes: frozenset[str]) -> None:
        target = node.this
        if isinstance(target, exp.Func | exp.Unnest):
            return  # checked as a function (allow-list) when visited
        if not isinstance(target, exp.Identifier):
            text = shown(node.sql("duckdb"))
            raise reject("table_not_granted", f"table {text} does not exist or is not granted to this token")
        parts = [p.name for p in node.parts]
        if any(not isinstance(p, exp.Identifier) for p in node.parts):
            raise reject("table_not_granted", f"table {shown('.'.join(parts))} does not exist or is not granted to this token")
        written = [(p.name, bool(p.args.get("quoted"))) for p in node.parts]
        # A CTE reference is decided with DuckDB's folding; a table name that matches no granted
        # name as DuckDB and Snowflake compare names (a Unicode look-alike) is simply not granted.
        if len(parts) == 1 and duck_fold(parts[0]) in ctes:
            return
        key = self.index.resolve(written)
        self.tables.add(key)
        db, schema, table = key.split(".")
        node.set("catalog", exp.to_identifier(db, quoted=True))
        node.set("db", exp.to_identifier(schema, quoted=True))
        node.set("this", exp.to_identifier(table, quoted=True))


class AgentDuckDB(DuckDB):
    """DuckDB as the guard reads agent SQL: sqlglot's DuckDB reader, minus a token DuckDB lacks.

    sqlglot's tokenizer reads ``?::`` as one operator (a JSON cast in other dialects), so
    ``a = ?::INT``, a parameter cast DuckDB itself accepts, was refused as a parse error.
    Without it ``?`` is the placeholder and ``::`` the cast, as in DuckDB. What the guard
    writes back is still plain DuckDB SQL.
    """

    class Tokenizer(DuckDB.Tokenizer):
        KEYWORDS: ClassVar[dict[str, TokenType]] = {k: v for k, v in DuckDB.Tokenizer.KEYWORDS.items() if k != "?::"}


def _parse(sql: str) -> exp.Expr:
    if len(sql) > MAX_SQL_CHARS:
        raise PayloadTooLarge(f"query is longer than {MAX_SQL_CHARS} characters", rule="query_too_long")
    if "\x00" in sql:
        raise reject("parse_error", "query contains a NUL character")
    try:
        statements = [s for s in sqlglot.parse(sql, read=AgentDuckDB) if s is not None]
    except (ParseError, TokenError) as e:
        _classify_unparsed(sql)  # DuckDB's parser names statements sqlglot cannot read (EXPORT, CREATE SECRET …)
        raise reject("parse_error", f"could not parse the query: {shown(str(e).splitlines()[0])}") from e
    except RecursionError as e:
        raise reject("parse_error", "query is nested too deeply") from e
    if not statements:
        raise reject("parse_error", "empty query")
    if len(statements) > 1:
        raise reject("multiple_statements", f"exactly one statement is allowed; got {len(statements)}")
    return statements[0]


def _duck_statements(sql: str) -> list[Any]:
    with _duck_lock:
        if not _duck:
            _duck.append(duckdb.connect(":memory:", config={"enable_external_access": False}))
        return list(_duck[0].extract_statements(sql))


def _duck_serialize(sql: str) -> str:
    with _duck_lock:
        if not _duck:
            _duck.append(duckdb.connect(":memory:", config={"enable_external_access": False}))
        row = _duck[0].execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    return str(row[0]) if row else ""


def _classify_unparsed(sql: str) -> None:
    """Refuse with the precise rule when DuckDB can tell what sqlglot could not parse."""
    try:
        statements = _duck_statements(sql)
    except duckdb.Error:
        return
    if len(statements) > 1:
        raise reject("multiple_statements", f"exactly one statement is allowed; got {len(statements)}")
    if len(statements) == 1 and statements[0].type != duckdb.StatementType.SELECT:
        raise reject("statement_not_allowed", f"{statements[0].type.name} statements are not allowed; only SELECT queries")


def _duckdb_agrees(sql: str) -> None:
    """DuckDB's own parser must see exactly one SELECT in the SQL we will run."""
    try:
        statements = _duck_statements(sql)
    except duckdb.Error as e:
        raise reject("parse_error", f"DuckDB could not parse the query: {shown(str(e).splitlines()[0])}") from e
    if len(statements) != 1:
        raise reject("multiple_statements", "exactly one statement is allowed")
    if statements[0].type != duckdb.StatementType.SELECT:
        raise reject("statement_not_allowed", f"only SELECT queries are allowed, not {statements[0].type.name}")


def _check(sql: str, grants: frozenset[str]) -> GuardedQuery:
    tree = _parse(sql)
    walker = _Walker(grant_index(grants))
    kind = "select"
    if isinstance(tree, exp.Describe | exp.Summarize):
        kind = "describe" if isinstance(tree, exp.Describe) else "summarize"
        if tree.args.get("style") or tree.args.get("kind") or tree.args.get("format") or tree.args.get("as_json"):
            raise reject("statement_not_allowed", f"only plain {kind.upper()} is allowed")
        target = tree.this
        if isinstance(target, exp.Table):
            walker.table(target, frozenset())
            walker.visit(target, frozenset())
        elif isinstance(target, exp.Query):
            walker.check_node(target, frozenset())
            walker.visit(target, frozenset())
        else:
            raise reject("statement_not_allowed", f"{kind.upper()} takes a table or a query")
    elif isinstance(tree, _ROOTS):
        if isinstance(tree, exp.Pivot):
            _check_pivot(tree)
        walker.visit(tree, frozenset())
    elif isinstance(tree, exp.Command):
        word = str(tree.this).split()[0].upper() if str(tree.this).split() else "COMMAND"
        raise reject("statement_not_allowed", f"{shown(word)} statements are not allowed; only SELECT queries")
    else:
        raise reject("statement_not_allowed", f"{tree.key.upper()} statements are not allowed; only SELECT queries")
    rewritten = _bound_and_check_functions(tree, frozenset(walker.tables))
    return GuardedQuery(sql=rewritten, tables=frozenset(walker.tables), kind=kind, sql_hash=sql_hash(sql))


def check_sql(sql: str, grants: frozenset[str]) -> GuardedQuery:
    """Check and rewrite agent SQL for a caller holding ``grants``; raise ``QueryRejected`` with a rule.

    Results (acceptances and refusals) are cached per (sql, grants), so a hot query costs
    one dictionary lookup.
    """
    if not isinstance(sql, str):
        raise BadRequest("query must be a string")
    cache_key = (sql, grants)
    hit: Any = _results.get(cache_key)
    metrics.guard_lookup(hit is not None)
    if hit is None:
        try:
            hit = _check(sql, grants)
        except (QueryRejected, PayloadTooLarge) as e:
            hit = e
        except RecursionError:
            hit = reject("parse_error", "query is nested too deeply")
        if len(sql) <= MAX_CACHED_SQL_CHARS:
            _results.put(cache_key, hit)
    answer = _answer(hit)
    assert answer is not None
    return answer


def _answer(hit: GuardedQuery | ApiError | None) -> GuardedQuery | None:
    """A cached answer: the accepted query, or a fresh copy of the cached refusal raised."""
    if isinstance(hit, ApiError):
        raise type(hit)(hit.message, rule=hit.rule, details=hit.details)
    return hit


def cached(sql: str, grants: frozenset[str]) -> GuardedQuery | None:
    """The cached answer of ``check_sql`` if there is one (no parsing); a cached refusal raises."""
    found = _results.get((sql, grants))
    if found is not None:  # a miss is counted by the check_sql that follows it
        metrics.guard_lookup(True)
    return _answer(found)


def validate_filter(where_sql: str, caller: object | None = None) -> str:
    """Guard a WHERE fragment written by an agent (sampling's ``where``); return it regenerated.

    Only a plain expression over the table's own columns passes: no subquery, no table
    reference, no parameter, no denied function. Embed the returned text (never the
    input) in server-built SQL. ``caller`` is accepted for symmetry and future use.
    """
    del caller
    if not isinstance(where_sql, str) or not where_sql.strip():
        raise reject("parse_error", "the filter is empty")
    tree = _parse("SELECT 1 WHERE " + where_sql)
    if not isinstance(tree, exp.Select) or {k for k, v in tree.args.items() if v} - {"expressions", "where"}:
        raise reject("statement_not_allowed", "a filter must be a single boolean expression")
    condition = tree.args["where"].this
    for node in condition.walk():
        if isinstance(node, exp.Query | exp.Table | exp.Subquery | exp.Lateral):
            raise reject("statement_not_allowed", "a filter cannot contain subqueries or table references")
        if isinstance(node, exp.Placeholder | exp.Parameter):
            raise reject("statement_not_allowed", "a filter cannot contain parameters")
        if isinstance(node, _STATEMENT_NODES):
            raise reject("statement_not_allowed", f"{node.key.upper()} is not allowed in a filter")
        if isinstance(node, exp.Func):
            _check_function(node)
    return _bound_and_check_functions(tree, frozenset(), filter_only=True)


def checked_tree(sql: str, grants: frozenset[str]) -> exp.Expr:
    """The tree ``check_sql`` accepts for ``sql``, for a query pushed down to Snowflake.

    The same guard decides first (a refusal raises exactly as for DuckDB); the tree then has
    every table reference rewritten to its canonical quoted key, and no DuckDB-only size
    bounds (the source warehouse bounds its own memory and time). DESCRIBE and SUMMARIZE
    describe copied tables and are not pushed down.
    """
    check_sql(sql, grants)
    tree = _parse(sql)
    if not isinstance(tree, _ROOTS):
        raise reject("statement_not_allowed", f"only queries run in Snowflake; {tree.key.upper()} reads copied tables")
    if isinstance(tree, exp.Pivot):
        _check_pivot(tree)
    _Walker(grant_index(grants)).visit(tree, frozenset())
    return tree


def clear_caches() -> None:
    """Forget cached guard results (tests)."""
    _results.clear()


__all__ = ["GrantIndex", "GuardedQuery", "cached", "check_sql", "checked_tree", "grant_index", "quote_ident", "quote_table",
           "resolve_name",
           "sql_hash", "validate_filter"]
