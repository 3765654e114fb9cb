"""Red-team cases against the guard and the locked instance, one table per attack class.

Every case runs through the real engine (the real guard, a real locked DuckDB instance over
real served files) and must be refused with a 4xx and the rule of its class, and leak
nothing: not the canary table no agent is granted, not a path on this machine, not the
name of an attached file. Classes where a way past the guard was found name it in a
comment; the others document what holds. A sample of every class runs through REST and
MCP, where the refusal must be the project's one error shape. Legitimate SQL of the same
shapes (recursive CTEs, CTEs shadowing system names, DuckDB syntax) must keep running.
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
from collections.abc import Iterator
from typing import Any

import duckdb
import pyarrow as pa
import pytest
import sqlglot
from sqlglot import exp

from serving.lib.caller import Caller
from serving.lib.errors import ApiError
from serving.queries import functions, guard, tablerefs
from serving.queries.engine import QueryEngine
from serving.queries.instances import Instance
from shared import registry
from shared.control.db import migrate
from shared.identifiers import duck_fold
from shared.settings import Settings
from shared.snowflake import connect
from tests.serving.helpers import assert_error
from tests.serving.test_security_corpus import CANARY, CUSTOMERS, EVENTS, ORDERS, publish_world, render

GRANTED = frozenset({ORDERS, CUSTOMERS, EVENTS})
SUBJECT = "redteam"
AGENT = Caller(kind="agent", subject=SUBJECT, token_id=f"tok-{SUBJECT}", swarm_id="s", grants=GRANTED)
NOT_GRANTED = "table_not_granted"
NO_FUNCTION = "function_not_allowed"
NO_STATEMENT = "statement_not_allowed"

# -- CTE scoping: a name the guard takes for a CTE must be one DuckDB binds to the CTE -----------------------
# FOUND: under WITH RECURSIVE the guard let a CTE see itself anywhere in its own body, while DuckDB binds
# the name only in the recursive term of a UNION; everywhere else the "self" reference was left
# unqualified and DuckDB read its catalog: pg_settings (temp folder path), duckdb_databases, sqlite_master.
SYSTEM_VIEWS = ["pg_settings", "duckdb_databases", "duckdb_views", "duckdb_tables", "duckdb_columns", "sqlite_master",
                "pg_database", "pg_class", "pg_namespace", "duckdb_indexes", "duckdb_schemas"]
RECURSIVE_SELF = [
    "WITH RECURSIVE {v} AS (SELECT * FROM {v}) SELECT * FROM {v}",
    "WITH RECURSIVE {v} AS MATERIALIZED (SELECT * FROM {v}) SELECT * FROM {v}",
    "WITH RECURSIVE {v} AS ((SELECT * FROM {v})) SELECT * FROM {v}",
    "WITH RECURSIVE {v} AS ((SELECT * FROM {v} UNION ALL SELECT 1 WHERE false)) SELECT * FROM {v}",
    "WITH RECURSIVE {v} AS ((SELECT 1 UNION ALL SELECT 1 FROM {v}) LIMIT 1) SELECT * FROM {v}",
    "WITH RECURSIVE {v} AS (SELECT * FROM (SELECT * FROM {v}) s) SELECT * FROM {v}",
    "WITH RECURSIVE {v} AS (SELECT * FROM {v} LIMIT 5) SELECT 1",
    "WITH RECURSIVE a AS (SELECT 1), {v} AS (SELECT * FROM {v}) SELECT * FROM {v}",
    # the anchor of a recursive UNION does not see the CTE either, nor any term left of the last one
    "WITH RECURSIVE {v} AS (SELECT * FROM {v} UNION ALL SELECT * FROM {v} WHERE false) SELECT * FROM {v}",
    "WITH RECURSIVE {v} AS (SELECT 'x' AS c UNION ALL SELECT 1 FROM {v} UNION ALL SELECT 'y' WHERE false) "
    "SELECT * FROM {v}",
    # only UNION [ALL] makes a recursive CTE; INTERSECT, EXCEPT and UNION BY NAME do not
    "WITH RECURSIVE {v} AS (SELECT 1 INTERSECT SELECT 1 FROM {v}) SELECT * FROM {v}",
    "WITH RECURSIVE {v} AS (SELECT 1 EXCEPT SELECT 1 FROM {v}) SELECT * FROM {v}",
    "WITH RECURSIVE {v} AS (SELECT 1 AS a UNION ALL BY NAME SELECT 1 AS a FROM {v}) SELECT * FROM {v}",
    # in any position: subqueries, joins with granted tables, set operations
    "SELECT * FROM orders WHERE id IN (WITH RECURSIVE {v} AS (SELECT 1 FROM {v}) SELECT * FROM {v})",
    "WITH RECURSIVE {v} AS (SELECT * FROM {v}) SELECT * FROM {v} d, orders LIMIT 5",
    "SELECT (WITH RECURSIVE {v} AS (SELECT count(*) FROM {v}) SELECT * FROM {v}) AS n",
    "SELECT 1 UNION ALL (WITH RECURSIVE {v} AS (SELECT 1 FROM {v}) SELECT * FROM {v})",
    "DESCRIBE WITH RECURSIVE {v} AS (SELECT * FROM {v}) SELECT * FROM {v}",
    "SUMMARIZE WITH RECURSIVE {v} AS (SELECT * FROM {v}) SELECT * FROM {v}",
]
CTE_SCOPE = [(t.format(v=v), NOT_GRANTED) for t in RECURSIVE_SELF for v in ("pg_settings", "duckdb_databases")]
CTE_SCOPE += [(RECURSIVE_SELF[0].format(v=v), NOT_GRANTED) for v in SYSTEM_VIEWS]
CTE_SCOPE += [
    # a CTE is visible only in its own scope, later CTEs of its list and its query: the classics
    ("SELECT * FROM (WITH pg_settings AS (SELECT 1) SELECT * FROM pg_settings) s, pg_settings", NOT_GRANTED),
    ("WITH a AS (SELECT * FROM pg_settings), pg_settings AS (SELECT 1) SELECT * FROM a", NOT_GRANTED),
    ("(WITH pg_settings AS (SELECT 1) SELECT * FROM pg_settings) UNION ALL SELECT 1 FROM pg_settings", NOT_GRANTED),
    ("WITH pg_settings AS (SELECT * FROM pg_settings) SELECT * FROM pg_settings", NOT_GRANTED),
    ("SELECT * FROM orders, LATERAL (WITH pg_settings AS (SELECT 1) SELECT 1) l, LATERAL (FROM pg_settings) m",
     NOT_GRANTED),
    # names compare with DuckDB's ASCII folding; a non-ASCII capital is refused outright
    ("WITH \u212aey AS (SELECT 1) SELECT * FROM key", "ambiguous_name"),
    ('WITH "duckdb_databases\u200b" AS (SELECT 1) SELECT * FROM duckdb_databases', NOT_GRANTED),
    ("WITH pg_settinGs AS (SELECT 1 AS one) SELECT * FROM PG_SETTINGS a, pg_settings b", None),  # one CTE: allowed
    ('WITH "pg_settings" AS (SELECT 1) SELECT * FROM "pg_settings "', NOT_GRANTED),
    ("WITH \u017fettings AS (SELECT 1) SELECT * FROM settings", NOT_GRANTED),  # the long s folds to s in Python only
    ("WITH \ufb01le AS (SELECT 1) SELECT * FROM file", NOT_GRANTED),  # a ligature
]
# The same CTE under other quotings and ASCII cases: DuckDB binds the CTE (the answer is the CTE's 1).
CTE_SPELLINGS = [
    'WITH "PG_SETTINGS" AS (SELECT 1 AS name) SELECT * FROM pg_settings',
    'WITH pg_settings AS (SELECT 1 AS name) SELECT * FROM "PG_SETTINGS"',
    'WITH "Pg_Settings" AS (SELECT 1 AS name) SELECT * FROM "pG_sEttings"',
    'WITH "pg_settin\u01e5s" AS (SELECT 1 AS name) SELECT * FROM pg_settin\u01e5s',
    "WITH RECURSIVE PG_SETTINGS(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM pg_settings WHERE n < 1) SELECT * FROM pg_settings",
]

# -- catalog and system names, qualified and not, in every position ---------------------------------------
SYSTEM_NAMES = ["pg_settings", "duckdb_databases", "duckdb_settings", "sqlite_master", "pg_catalog.pg_settings",
                "information_schema.tables", "system.main.duckdb_databases", "main.pg_settings", "memory.main.x",
                "temp.main.x", '"__t0".main.data', "__t1.main.data", "system.information_schema.schemata",
                '"pg_catalog"."pg_settings"', "PG_CATALOG.PG_SETTINGS", "demo.secret.vault", "secret.vault", "vault"]
SYSTEM_POSITIONS = [
    "SELECT * FROM {t}", "FROM {t}", "FROM {t} SELECT 1", "SELECT * FROM orders WHERE id IN (FROM {t} SELECT 1)",
    "SELECT list_transform([1], x -> (SELECT count(*) FROM {t}))", "SELECT [x FOR x IN (SELECT 1 FROM {t})]",
    "SELECT * FROM unnest((SELECT [1] FROM {t}))", "SELECT * FROM range((SELECT 1 FROM {t}))",
    "SELECT * FROM orders ORDER BY id LIMIT 1 OFFSET (SELECT count(*) FROM {t})",
    "SELECT COLUMNS(c -> c IN (SELECT 'id' FROM {t})) FROM orders",
    "SELECT * FROM orders PIVOT (sum(amount) FOR status IN ('paid')) p, {t}",
    "SELECT * FROM orders QUALIFY (SELECT count(*) FROM {t}) > 0", "DESCRIBE {t}", "SUMMARIZE {t}",
    "DESCRIBE SELECT * FROM {t}", "SELECT * FROM orders o ASOF JOIN {t} x ON true",
    "SELECT {{'k': (SELECT 1 FROM {t})}}", "SELECT MAP {{'k': (SELECT 1 FROM {t})}}",
    "SELECT sum(id) OVER (PARTITION BY (SELECT 1 FROM {t})) FROM orders",
    "SELECT * FROM json_each((SELECT '{{}}' FROM {t}))", "FROM orders |> WHERE id IN (SELECT 1 FROM {t})",
    "PIVOT orders ON status IN ('paid') USING first((SELECT 1 FROM {t}))", "UNPIVOT (SELECT * FROM {t}) ON x INTO NAME n VALUE v",
    "PIVOT (SELECT * FROM {t}) ON name IN ('threads') USING first(setting)",
    "SELECT * FROM (FROM {t}) UNPIVOT (v FOR n IN (setting))",
]
SYSTEM = [(p.format(t=t), NOT_GRANTED) for p in SYSTEM_POSITIONS for t in ("pg_settings", "duckdb_databases")]
SYSTEM += [(f"SELECT * FROM {t}", NOT_GRANTED) for t in SYSTEM_NAMES]

# -- files, network, extensions: as table names, table functions and scalars --------------------------------
FILES = [
    ("SELECT * FROM '{vault_file}'", NOT_GRANTED), ("FROM '{orders_file}'", NOT_GRANTED),
    ("SELECT * FROM 'https://example.com/x.csv'", NOT_GRANTED), ('SELECT * FROM "x.parquet"', NOT_GRANTED),
    ("SELECT * FROM read_csv('{vault_file}')", NO_FUNCTION), ("SELECT * FROM read_blob('{vault_file}')", NO_FUNCTION),
    ("SELECT * FROM read_text('{orders_file}')", NO_FUNCTION), ("SELECT * FROM glob('{served_glob}')", NO_FUNCTION),
    ("SELECT * FROM parquet_metadata('x.parquet')", NO_FUNCTION), ("SELECT * FROM sniff_csv('x.csv')", NO_FUNCTION),
    ("SELECT * FROM read_duckdb('{vault_file}')", NO_FUNCTION), ("SELECT * FROM query_table('vault')", NO_FUNCTION),
    ("SELECT * FROM query('SELECT * FROM pg_settings')", NO_FUNCTION), ("SELECT * FROM SYSTEM.MAIN.Query('x')", NO_FUNCTION),
    ("SELECT * FROM orders, LATERAL read_text('{vault_file}')", NO_FUNCTION),
    ("SELECT '{vault_file}'.read_text()", NO_FUNCTION), ("SELECT file_exists('{vault_file}')", NO_FUNCTION),
    ("SELECT getenv('HOME')", NO_FUNCTION), ("SELECT current_setting('temp_directory')", NO_FUNCTION),
    ("SELECT getvariable('x')", NO_FUNCTION), ("SELECT * FROM duckdb_settings()", NO_FUNCTION),
    ("SELECT list_transform([1], x -> current_setting('temp_directory'))", NO_FUNCTION),
    ("SELECT list_aggr([1], 'current_setting')", NO_FUNCTION),
    ('SELECT "current_setting"(\'temp_directory\')', NO_FUNCTION),
    ("SELECT pg_catalog.current_setting('temp_directory')", NO_FUNCTION),
    ("SELECT * FROM orders WHERE id = getvariable('x')", NO_FUNCTION),
    ("SELECT json_serialize_sql('SELECT 1')", NO_FUNCTION), ("SELECT * FROM which_secret('s3://b/x', 's3')", NO_FUNCTION),
]

# -- statements that change state or reach out, and ways to hide them ----------------------------------------
STATEMENTS = [
    ("SET temp_directory = '/tmp'", NO_STATEMENT), ("PRAGMA database_list", NO_STATEMENT),
    ("CALL duckdb_settings()", NO_STATEMENT), ("CREATE MACRO m() AS 1", NO_STATEMENT),
    ("INSERT INTO orders VALUES (1, 'x', 1)", NO_STATEMENT), ("CHECKPOINT", NO_STATEMENT), ("DETACH demo", NO_STATEMENT),
    ("USE system", NO_STATEMENT), ("EXPLAIN SELECT 1", NO_STATEMENT), ("SHOW TABLES", NO_STATEMENT),
    ("ATTACH '{vault_file}' AS v (READ_ONLY)", NO_STATEMENT), ("COPY orders TO 'x.csv'", NO_STATEMENT),
    ("EXPORT DATABASE 'x'", NO_STATEMENT), ("INSTALL httpfs", NO_STATEMENT), ("LOAD httpfs", NO_STATEMENT),
    ("PREPARE p AS SELECT 1", NO_STATEMENT), ("EXECUTE p", NO_STATEMENT), ("SET VARIABLE v = 1", NO_STATEMENT),
    ("SELECT * FROM (DESCRIBE pg_settings)", NO_STATEMENT), ("SELECT * FROM (SHOW TABLES)", NOT_GRANTED),
    ("PIVOT orders ON status", NO_STATEMENT),
    ("SELECT * FROM orders PIVOT (sum(amount) FOR status IN (SELECT name FROM pg_settings))", NO_STATEMENT),
    ("SELECT 1; SET threads = 1", "multiple_statements"), ("SELECT 1 /* ; */; CHECKPOINT", "multiple_statements"),
    ("SELECT $$a$$; DETACH demo", "multiple_statements"), ("SELECT 'a'';'; CHECKPOINT", "multiple_statements"),
]

CASES = [(s, r, "cte_scope") for s, r in CTE_SCOPE if r] + [(s, r, "system") for s, r in SYSTEM] \
    + [(s, r, "files") for s, r in FILES] + [(s, r, "statement") for s, r in STATEMENTS]

# Legitimate SQL of the same shapes: recursive CTEs, CTEs named like system views, DuckDB syntax.
LEGIT = [
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT sum(n) FROM r",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION SELECT n + 1 FROM r WHERE n < 5) SELECT max(n) FROM r",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL (SELECT n + 1 FROM r WHERE n < 3)) SELECT * FROM r",
    "WITH RECURSIVE r(n) AS (((SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3))) SELECT * FROM r",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM (SELECT * FROM r) s WHERE n < 3) SELECT * FROM r",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < (SELECT 3 FROM r LIMIT 1)) SELECT * FROM r",
    "WITH RECURSIVE r(n) USING KEY (n) AS (SELECT 1 UNION SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r",
    "WITH RECURSIVE t(n) AS (SELECT 1 UNION SELECT n + 1 FROM t WHERE n < 3), u AS (SELECT * FROM t) "
    "SELECT * FROM u JOIN orders ON orders.id = u.n",
    "WITH RECURSIVE base AS (SELECT min(id) AS id FROM orders), walk(id, depth) AS (SELECT id, 0 FROM base UNION ALL "
    "SELECT o.id, w.depth + 1 FROM walk w JOIN orders o ON o.id = w.id + 1 WHERE w.depth < 4) SELECT * FROM walk",
    "WITH RECURSIVE orders AS (SELECT * FROM orders) SELECT count(*) FROM orders",
    "SELECT * FROM orders WHERE id IN (WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) "
    "SELECT n FROM r)",
    "WITH pg_settings AS (SELECT 1 AS name) SELECT * FROM pg_settings",
    "WITH duckdb_databases AS (SELECT id FROM orders) SELECT count(*) FROM duckdb_databases UNION ALL SELECT 1",
    "WITH \"Duckdb_Tables\" AS (SELECT 1 AS x) SELECT * FROM duckdb_tables",
    "WITH a AS (SELECT id FROM orders), b AS (SELECT * FROM a WHERE id IN (WITH c AS (SELECT * FROM a) SELECT id FROM c)) "
    "SELECT count(*) FROM b",
    "SELECT * FROM orders AS duckdb_databases WHERE duckdb_databases.id < 3",
    "SELECT orders FROM orders LIMIT 1",
    "FROM orders |> WHERE id < 3 |> SELECT id",
    "SELECT id, sum(amount) OVER w FROM orders WINDOW w AS (ORDER BY id) QUALIFY rank() OVER w < 3",
    "SELECT date_trunc('month', ts), count(*) FROM events GROUP BY ALL ORDER BY ALL",
    "SELECT payload->>'$.user' AS u, regexp_extract(u, 'u([0-9])', 1) FROM events",
    "SELECT c.name, count(*) FROM orders o JOIN customers c ON c.id = o.id % 20 GROUP BY ALL",
    "SELECT list_transform(tags, x -> upper(x)), attrs.k, attrs['v'] FROM events",
    "SELECT max(COLUMNS(*)) FROM orders",
    "SELECT * FROM orders PIVOT (sum(amount) FOR status IN ('paid', 'open'))",
    "DESCRIBE WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r",
    "SELECT $$dollar ' quoted$$ AS s, 'duckdb_databases' AS name",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[QueryEngine, dict[str, str], Settings]]:
    home = tmp_path_factory.mktemp("redteam-home")
    settings = Settings.from_env({"AGENTS_DATA_HOME": str(home)})
    paths = publish_world(settings.served_path)
    engine = QueryEngine(settings)
    yield engine, paths, settings
    engine.close()


def secrets_of(settings: Settings, paths: dict[str, str]) -> list[str]:
    """What no answer may contain: the canary, this machine's paths, the attached files' names."""
    return [CANARY, str(settings.home_path), paths["vault_file"], paths["orders_file"], "query-spill", "__t0", "__t1"]


def assert_nothing_leaked(text: str, sql: str, settings: Settings, paths: dict[str, str]) -> None:
    for secret in secrets_of(settings, paths):
        assert secret not in text or secret in sql, (sql, secret, text[:500])  # only the caller's own text is echoed


@pytest.mark.parametrize(("template", "rule", "klass"), CASES, ids=[f"{k}-{i}" for i, (_, _, k) in enumerate(CASES)])
def test_refused_through_the_engine_and_nothing_leaks(world: tuple[QueryEngine, dict[str, str], Settings], template: str,
                                                      rule: str, klass: str) -> None:
    engine, paths, settings = world
    sql = render(template, paths)
    with pytest.raises(ApiError) as e:
        engine.execute(AGENT, sql, timeout_s=5)
    assert 400 <= e.value.status < 500, (sql, e.value.status, e.value.message)
    assert e.value.rule == rule, (sql, e.value.rule, e.value.message)
    assert_nothing_leaked(e.value.message, sql, settings, paths)


def test_the_found_hole_read_settings_and_paths_before_the_fix(world: tuple[QueryEngine, dict[str, str], Settings]) -> None:
    """The exploit's SQL as the old guard left it (the self reference unqualified) reads the temp folder
    on a locked instance: the attack is real, and only the guard's refusal stands in its way."""
    engine, paths, settings = world
    leaked = ("WITH RECURSIVE pg_settings AS (SELECT setting FROM pg_settings WHERE name = 'temp_directory') "
              "SELECT * FROM pg_settings")
    result = engine.execute_platform_sql(AGENT, [ORDERS], leaked)
    assert str(settings.home_path) in str(result.rows)
    with pytest.raises(ApiError) as e:
        engine.execute(AGENT, leaked)
    assert (e.value.status, e.value.rule) == (400, NOT_GRANTED)
    assert_nothing_leaked(e.value.message, leaked, settings, paths)


def catalog_views() -> list[tuple[str, str]]:
    """(schema, view) of every view DuckDB's catalog holds on its own (main, pg_catalog, information_schema)."""
    with duckdb.connect() as con:
        rows = con.execute("SELECT schema_name, view_name FROM duckdb_views() WHERE internal ORDER BY ALL").fetchall()
    return [(str(a), str(b)) for a, b in rows]


VIEW_FORMS = ["SELECT * FROM {v}", "SELECT * FROM {s}.{v}", "SELECT * FROM system.{s}.{v}", 'SELECT * FROM "{v}"',
              "WITH RECURSIVE {v} AS (SELECT * FROM {v}) SELECT * FROM {v}",
              "WITH RECURSIVE {v} AS (SELECT * FROM {v} UNION ALL SELECT * FROM {v} WHERE false) SELECT 1",
              "WITH RECURSIVE x AS (SELECT 1 UNION ALL SELECT 1 FROM x, {v}) SELECT * FROM x",
              "SELECT * FROM orders WHERE EXISTS (FROM {v})"]


def test_no_view_of_duckdbs_catalog_is_reachable_in_any_form() -> None:
    """Every view DuckDB's catalog has today (a DuckDB upgrade adds its new ones here), in each form."""
    views = catalog_views()
    assert {"pg_settings", "duckdb_databases", "sqlite_master", "tables"} <= {v for _, v in views}
    for schema, view in views:
        for form in VIEW_FORMS:
            sql = form.format(s=schema, v=view)
            with pytest.raises(ApiError) as e:
                guard.check_sql(sql, GRANTED)
            assert (e.value.status, e.value.rule) == (400, NOT_GRANTED), (sql, e.value.message)


# The check on DuckDB's own parse stands on its own: given SQL the sqlglot walker never saw, it refuses any
# table that is not a granted key or a CTE in DuckDB's scope.
BACKSTOP = [
    ("WITH RECURSIVE pg_settings AS (SELECT * FROM pg_settings) SELECT * FROM pg_settings", NOT_GRANTED),
    ("WITH RECURSIVE p AS (SELECT * FROM p UNION ALL SELECT * FROM p) SELECT * FROM p", NOT_GRANTED),
    ("WITH RECURSIVE p AS (SELECT 1 UNION ALL SELECT 1 FROM p) SELECT * FROM p", None),
    ("WITH a AS (SELECT 1) SELECT * FROM (WITH b AS (SELECT * FROM a) SELECT * FROM b)", None),
    ("WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a", NOT_GRANTED),
    ("SELECT * FROM (WITH a AS (SELECT 1) SELECT 1), a", NOT_GRANTED),
    ('SELECT * FROM "demo"."public"."orders"', None),
    ('SELECT * FROM "demo"."secret"."vault"', NOT_GRANTED),
    ('SELECT * FROM "public"."orders"', NOT_GRANTED),
    ("SELECT * FROM orders", NOT_GRANTED),
    ("SELECT * FROM 'x.csv'", NOT_GRANTED),
    ("DESCRIBE pg_settings", NOT_GRANTED),
    ("SUMMARIZE SELECT * FROM pg_settings", NOT_GRANTED),
    ("SELECT list_transform([1], x -> (SELECT 1 FROM pg_settings))", NOT_GRANTED),
    ("SELECT 1 LIMIT (SELECT 1 FROM pg_settings)", NOT_GRANTED),
    ("SELECT * FROM range((SELECT 1 FROM pg_settings))", NOT_GRANTED),
    ("SELECT string_agg('x' ORDER BY (SELECT 1 FROM pg_settings))", NOT_GRANTED),
    ('SELECT * FROM "demo"."public"."orders" AT (VERSION => (SELECT 1 FROM pg_settings))', NOT_GRANTED),
]


@pytest.mark.parametrize(("sql", "rule"), BACKSTOP)
def test_tables_are_checked_on_duckdbs_own_parse(sql: str, rule: str | None) -> None:
    tree = functions.parse_tree(sql, guard._duck_serialize)
    if rule is None:
        tablerefs.check_tables(tree, {ORDERS})
        return
    with pytest.raises(ApiError) as e:
        tablerefs.check_tables(tree, {ORDERS})
    assert (e.value.status, e.value.rule) == (400, rule)


@pytest.mark.parametrize("sql", LEGIT, ids=[f"legit-{i}" for i in range(len(LEGIT))])
def test_legitimate_sql_of_the_same_shapes_runs(world: tuple[QueryEngine, dict[str, str], Settings], sql: str) -> None:
    engine, paths, settings = world
    result = engine.execute(AGENT, sql, timeout_s=10)
    assert result.columns
    assert result.rows
    assert_nothing_leaked(str(result.rows), sql, settings, paths)


def test_one_cte_under_two_spellings_is_one_cte(world: tuple[QueryEngine, dict[str, str], Settings]) -> None:
    engine, _, _ = world
    allowed = [sql for sql, rule in CTE_SCOPE if rule is None]
    assert allowed
    for sql in allowed:
        assert engine.execute(AGENT, sql).rows == [(1, 1)]


@pytest.mark.parametrize("sql", CTE_SPELLINGS)
def test_a_cte_spelled_otherwise_is_still_the_cte(world: tuple[QueryEngine, dict[str, str], Settings], sql: str) -> None:
    engine, _, _ = world
    assert engine.execute(AGENT, sql).rows == [(1,)]


@pytest.mark.parametrize("newline", ["\n", "\r", "\r\n", "\u2028", "\u2029", "\x0b", "\x0c", "\x85"])
def test_what_a_line_comment_may_hide_is_refused_or_never_runs(world: tuple[QueryEngine, dict[str, str], Settings],
                                                               newline: str) -> None:
    """Parsers disagree on where a line comment ends; the SQL that runs is regenerated without comments,
    so the tail is either a second statement (refused) or gone, never run."""
    engine, paths, settings = world
    for tail in ("; ATTACH '{vault_file}' AS v", "; SET threads = 1", " UNION ALL SELECT path FROM duckdb_databases"):
        sql = render(f"SELECT 1 AS one --{newline}{tail}", paths)
        outcome = run_or_refusal(engine, sql)
        if isinstance(outcome, ApiError):
            assert (outcome.status, outcome.rule) in ((400, "multiple_statements"), (400, NOT_GRANTED)), outcome.message
            assert_nothing_leaked(outcome.message, sql, settings, paths)
        else:
            assert outcome == [(1,)], sql


# Quoting tricks: a statement hidden in a literal or identifier is data (the answer shows it), or the
# query is refused; it never runs. (The SQL that runs is regenerated from the checked tree.)
LITERALS: list[tuple[str, list[tuple[Any, ...]] | str]] = [
    ("SELECT $a$ ; CHECKPOINT; $a$", [(" ; CHECKPOINT; ",)]),
    ("SELECT $a$; FROM pg_settings; SELECT $a$", [("; FROM pg_settings; SELECT ",)]),
    ("SELECT $t$x$t$ AS s", [("x",)]),
    ("SELECT e'a\\'; CHECKPOINT; --'", [("a'; CHECKPOINT; --",)]),
    ("SELECT 'a\\'; CHECKPOINT; --'", "multiple_statements"),
    ('SELECT 1 AS "a"";CHECKPOINT;--"', [(1,)]),
    ('SELECT "a" FROM (SELECT 1 AS a) AS "pg_settings"', [(1,)]),
    ("SELECT 'duckdb_databases' AS t, 'pg_settings' AS u", [("duckdb_databases", "pg_settings")]),
    ('SELECT * FROM U&"\\0070g_settings"', "parse_error"),
    ('WITH U&"\\0070g_settings" AS (SELECT 1) SELECT * FROM pg_settings', "parse_error"),
]


@pytest.mark.parametrize(("sql", "expected"), LITERALS)
def test_statements_in_literals_are_data_or_refused(world: tuple[QueryEngine, dict[str, str], Settings], sql: str,
                                                    expected: list[tuple[Any, ...]] | str) -> None:
    engine, paths, settings = world
    outcome = run_or_refusal(engine, sql)
    assert_outcome(outcome, expected, sql, settings, paths)


# Parameters are values: never a name DuckDB looks up (an aggregate's, a variable's), never SQL.
PARAMS: list[tuple[str, Any, list[tuple[Any, ...]] | str]] = [
    ("SELECT list_aggr([1], ?)", ["current_setting"], NO_FUNCTION),
    ("SELECT list_aggr([1], $a)", {"a": "sum"}, NO_FUNCTION),
    ("SELECT getvariable(?)", ["x"], NO_FUNCTION),
    ("SELECT ? AS v", ["x'); CHECKPOINT; --"], [("x'); CHECKPOINT; --",)]),
    ("SELECT ? AS v", ["SELECT * FROM pg_settings"], [("SELECT * FROM pg_settings",)]),
    ("SELECT id FROM orders WHERE status = $s ORDER BY id LIMIT 1", {"s": "paid"}, [(0,)]),
    ("SELECT id FROM orders WHERE id IN (SELECT unnest(?)) ORDER BY id", [[1, 2]], [(1,), (2,)]),
    ("SELECT * FROM range(?) LIMIT 2", [10**12], [(0,), (1,)]),
    ("SELECT COLUMNS(?) FROM orders ORDER BY id LIMIT 1", ["^id$"], [(0,)]),
    # A parameter cast with ``::`` right after the placeholder, as DuckDB reads it.
    ("SELECT id FROM orders WHERE id = ?::BIGINT", ["2"], [(2,)]),
    ("SELECT ?::VARCHAR AS v, ?::INT[] AS l", [5, ["1", "2"]], [("5", [1, 2])]),
    ("SELECT '?::' AS v WHERE ?::BOOLEAN", [True], [("?::",)]),
]


@pytest.mark.parametrize(("sql", "params", "expected"), PARAMS)
def test_parameters_are_values(world: tuple[QueryEngine, dict[str, str], Settings], sql: str, params: Any,
                               expected: list[tuple[Any, ...]] | str) -> None:
    engine, paths, settings = world
    try:
        outcome: list[tuple[Any, ...]] | ApiError = list(engine.execute(AGENT, sql, params=params).rows)
    except ApiError as e:
        outcome = e
    assert_outcome(outcome, expected, sql, settings, paths)


def assert_outcome(outcome: list[tuple[Any, ...]] | ApiError, expected: list[tuple[Any, ...]] | str, sql: str,
                   settings: Settings, paths: dict[str, str]) -> None:
    """``expected`` rows, or a refusal (400 with the rule ``expected`` names) that leaks nothing."""
    if isinstance(expected, str):
        assert isinstance(outcome, ApiError), outcome
        assert (outcome.status, outcome.rule) == (400, expected), outcome.message
        assert_nothing_leaked(outcome.message, sql, settings, paths)
    else:
        assert outcome == expected


def run_or_refusal(engine: QueryEngine, sql: str) -> list[tuple[Any, ...]] | ApiError:
    try:
        return list(engine.execute(AGENT, sql).rows)
    except ApiError as e:
        return e


def test_instances_scan_no_python_objects(world: tuple[QueryEngine, dict[str, str], Settings]) -> None:
    """A name DuckDB does not find is never looked up among the Python objects of the frame running it."""
    engine, _, settings = world
    assert engine.verify_protections()["python_enable_replacements"] == "false"
    leak_me = pa.table({"secret": [CANARY]})
    assert duckdb.connect().execute("SELECT * FROM leak_me").fetchall() == [(CANARY,)]  # DuckDB's default
    inst = Instance((), (), settings)
    try:
        with pytest.raises(duckdb.CatalogException):
            inst.con.cursor().execute("SELECT * FROM leak_me")
    finally:
        inst.close()
    assert leak_me.num_rows == 1


# -- sampling's ``where``: a fragment embedded in server-built SQL, so one plain expression or nothing --------
FILTERS = [
    ("id IN (SELECT 1 FROM pg_settings)", NO_STATEMENT),
    ("(WITH RECURSIVE pg_settings AS (SELECT 1 FROM pg_settings) SELECT 1) = 1", NO_STATEMENT),
    ("list_transform([1], x -> (SELECT 1 FROM pg_settings)) IS NOT NULL", NO_STATEMENT),
    ("EXISTS (FROM duckdb_databases)", NO_STATEMENT),
    ("current_setting('temp_directory') IS NOT NULL", NO_FUNCTION),
    ("true) OR (true", "parse_error"),
    ("id > 0; SET threads = 1", "multiple_statements"),
    ("id > 0 UNION SELECT 1", NO_STATEMENT),
    ("id = $1", NO_STATEMENT),
    ("status = 'a'' OR ''1''=''1' OR id >= 0", None),
    ("id >= 0 -- ) OR (SELECT 1 FROM pg_settings", None),
]


# -- through the API: REST and MCP give the one error shape, and nothing leaks --------------------------------
@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    mcp = dataclasses.replace(settings.mcp, allowed_hosts="testserver.local")
    return dataclasses.replace(settings, mcp=mcp)


def sample() -> list[tuple[str, str, str]]:
    """Every class, every 5th case of it."""
    by_class = {k: list(g) for k, g in itertools.groupby(CASES, key=lambda c: c[2])}
    return [c for items in by_class.values() for c in items[::5]]


_ids = itertools.count(1)


def mcp_query(client: Any, headers: dict[str, str], sql: str) -> tuple[str, bool]:
    body = {"jsonrpc": "2.0", "id": next(_ids), "method": "tools/call", "params": {"name": "query", "arguments": {"sql": sql}}}
    r = client.post("/mcp", headers={"accept": "application/json, text/event-stream", "content-type": "application/json"}
                    | headers, json=body)
    assert r.status_code == 200, r.text
    result = r.json()["result"]
    return result["content"][0]["text"], bool(result.get("isError"))


def test_refused_through_rest_and_mcp_in_the_one_error_shape(client: Any, api_settings: Settings, make_swarm: Any,
                                                             agent_headers: Any) -> None:
    paths = publish_world(api_settings.served_path)
    headers = agent_headers(make_swarm(sorted(GRANTED))["id"])
    cases = sample()
    assert len(cases) >= 30
    for template, rule, _ in cases:
        sql = render(template, paths)
        resp = client.post("/api/v1/queries/execute", json={"query": sql, "timeout_s": 5}, headers=headers)
        error = assert_error(resp, 400, rule=rule)
        assert_nothing_leaked(resp.text, sql, api_settings, paths)
        text, is_error = mcp_query(client, headers, sql)
        assert is_error
        assert text == f"Error executing tool query: error 400 rule={rule}: {error['message']}"
    for where, rule in FILTERS:
        resp = client.get("/api/v1/data/tables/orders/sample", params={"method": "head", "where": where}, headers=headers)
        if rule is None:
            assert resp.status_code == 200, resp.text
            assert resp.json()["rows"]
        else:
            assert_error(resp, 400, rule=rule)
        assert_nothing_leaked(resp.text, where, api_settings, paths)
    ok = client.post("/api/v1/queries/execute", json={"query": LEGIT[0]}, headers=headers)
    assert ok.status_code == 200, ok.text
    assert ok.json()["rows"] == [[15]]


# -- queries pushed down to Snowflake ------------------------------------------------------------------------
# FOUND: the guard matches CTE names as DuckDB does (ASCII case and quoting ignored) and leaves CTE
# references unqualified; transpiled as written, ``WITH "t" AS (…) SELECT * FROM t`` names a CTE ``t`` but
# refers to ``T``, which Snowflake (unquoted names fold to upper case) resolves as a table of the platform
# session's schema; the DuckDB-based stand-in folds like DuckDB, so the tests check the Snowflake SQL's
# spelling, then run it. And the pg-compatibility names
# DuckDB answers with its own constants (``current_user`` is 'duckdb') name the platform's Snowflake
# session there (user, role, database, schema).
PUSHED_CTES = [
    'WITH "vault" AS (SELECT 1 AS x) SELECT * FROM vault, live',
    'WITH vault AS (SELECT 1 AS x) SELECT * FROM "vault", live',
    'WITH Vault AS (SELECT 1 AS x) SELECT vault.x FROM "VAULT", live',
    'WITH "Odd Name" AS (SELECT 1 AS x) SELECT * FROM "odd name", live',
    'WITH RECURSIVE "r"(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM R WHERE n < 3) SELECT r.n FROM r, live',
    'WITH RECURSIVE r(n) AS (SELECT 1 UNION SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r AS x, live',
    'SELECT * FROM live WHERE EXISTS (WITH "Vault" AS (SELECT 1) SELECT * FROM VAULT)',
]
SESSION_IDENTITY = ["SELECT current_user FROM live", "SELECT current_role FROM live", "SELECT user() FROM live",
                    "SELECT current_database() FROM live", "SELECT current_schema() FROM live",
                    "SELECT current_schemas(true) FROM live", "SELECT session_user FROM live",
                    "SELECT current_catalog FROM live", "SELECT * FROM live WHERE current_user() <> ''",
                    "SELECT list_transform([1], x -> current_database()) FROM live"]


@pytest.fixture
def live_engine(settings: Settings) -> Iterator[tuple[QueryEngine, Caller]]:
    """An engine whose caller is granted one live (Snowflake-read) table, ``live``."""
    db = f"RT_{secrets.token_hex(3).upper()}"
    with connect(settings.snowflake) as con:  # the session's stand-in
        cur = con.cursor()
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE SCHEMA {db}.PUBLIC")
        cur.execute(f"CREATE TABLE {db}.PUBLIC.LIVE AS SELECT 1 AS ID, 'x' AS NOTE")
    migrate(settings.control_url)
    reg = registry.build_registration({"schema_name": "PUBLIC", "table_name": "LIVE", "live": True}, default_database=db)
    registry.save(settings.control_url, reg)
    engine = QueryEngine(settings)
    caller = Caller(kind="agent", subject=SUBJECT, token_id=f"tok-{SUBJECT}", swarm_id="s", grants=frozenset({reg.key}))
    yield engine, caller
    engine.close()


@pytest.mark.parametrize("sql", PUSHED_CTES)
def test_snowflake_binds_the_ctes_duckdb_binds(live_engine: tuple[QueryEngine, Caller], sql: str) -> None:
    engine, caller = live_engine
    text, tables = engine.pushdown.transpile(sql, caller.grants)
    assert tables == caller.grants
    # every CTE and every one-part reference is written "__cte_<folded name>", quoted: the same spelling
    # for the definition and its references, and none a Snowflake table could answer to unless bound
    tree = sqlglot.parse_one(text, read="snowflake")
    defined = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    used = {t.name for t in tree.find_all(exp.Table) if len(t.parts) == 1}
    assert defined
    assert used == defined, text
    assert all(n.startswith("__cte_") and n == duck_fold(n) for n in defined), text
    assert all(i.args.get("quoted") for t in tree.find_all(exp.Table) if len(t.parts) == 1 for i in [t.this]), text
    assert engine.execute(caller, sql).rows  # and the stand-in runs it


@pytest.mark.parametrize("sql", SESSION_IDENTITY)
def test_a_query_run_in_snowflake_cannot_name_its_session(live_engine: tuple[QueryEngine, Caller], sql: str) -> None:
    engine, caller = live_engine
    guard.check_sql(sql, caller.grants)  # DuckDB answers these with its own constants: allowed there
    with pytest.raises(ApiError) as e:
        engine.execute(caller, sql)
    assert (e.value.status, e.value.rule) == (400, NO_FUNCTION), e.value.message
    assert "Snowflake" in e.value.message


@pytest.mark.parametrize("tree", [
    {"statements": [{"node": {"type": "SELECT_NODE", "cte_map": {"map": {"pg_settings": {}}}}}]},
    {"statements": [{"node": {"type": "SELECT_NODE", "cte_map": [["pg_settings", {}]]}}]},
    {"statements": [{"node": {"type": "SELECT_NODE", "from_table": {"type": "BASE_TABLE", "name": "pg_settings"}}}]},
])
def test_a_parse_the_table_check_does_not_know_is_refused(tree: dict[str, Any]) -> None:
    """A DuckDB upgrade that changes the serialized parse makes the check refuse, never pass."""
    with pytest.raises(ApiError) as e:
        tablerefs.check_tables(tree, {ORDERS})
    assert e.value.status == 400
    assert e.value.rule in ("parse_error", NOT_GRANTED)
