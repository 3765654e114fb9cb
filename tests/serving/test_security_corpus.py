"""Must-fail statements, generated from attack classes, against the guard + engine and through HTTP.

Every statement must be refused with a 4xx and the rule of its class, never a 5xx, and
the canary table (``demo.secret.vault``, values ``CANARY_…``) that no test agent is
granted must never appear in any answer. The whole corpus runs against the engine
directly (fast); a representative sample (every class) runs through the HTTP API.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from serving.lib.caller import Caller
from serving.lib.errors import ApiError
from serving.queries.engine import QueryEngine
from shared.served import read_current, table_dir
from shared.settings import Settings
from tests.conftest import publish_table
from tests.serving.helpers import assert_error

ORDERS, CUSTOMERS, EVENTS, VAULT = "demo.public.orders", "demo.public.customers", "demo.public.events", "demo.secret.vault"
CANARY = "CANARY_5e1f0c"
GRANTED = frozenset({ORDERS, CUSTOMERS, EVENTS})

STATEMENT_NOT_ALLOWED = {"statement_not_allowed"}

STATEMENTS = [
    "PRAGMA version", "PRAGMA database_list", "PRAGMA enable_profiling", "PRAGMA threads=1",
    "SET threads = 1", "SET memory_limit = '64GB'", "SET enable_external_access = true", "SET lock_configuration = false",
    "SET GLOBAL threads = 1", "SET search_path = 'demo.secret'", "SET VARIABLE x = 1", "RESET threads", "RESET memory_limit",
    "ATTACH '/tmp/x.db' AS x", "ATTACH ':memory:' AS m", "ATTACH '{vault_file}' AS v (READ_ONLY)", "DETACH demo",
    "DETACH \"__t0\"", "COPY demo.public.orders TO '/tmp/x.csv'",
    "COPY (SELECT * FROM orders) TO '/tmp/x.parquet' (FORMAT parquet)",
    "COPY orders FROM '/etc/passwd'", "EXPORT DATABASE '/tmp/export'", "IMPORT DATABASE '/tmp/export'", "INSTALL httpfs",
    "FORCE INSTALL httpfs", "LOAD httpfs", "LOAD '/tmp/evil.duckdb_extension'", "UPDATE EXTENSIONS",
    "CREATE SECRET (TYPE s3, KEY_ID 'a', SECRET 'b')", "CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')",
    "CALL pragma_version()", "CALL duckdb_settings()", "CALL enable_logging()", "EXPLAIN SELECT 1",
    "EXPLAIN ANALYZE SELECT * FROM orders", "CREATE TABLE t AS SELECT 1", "CREATE TEMP TABLE t AS SELECT * FROM orders",
    "CREATE VIEW v AS SELECT * FROM orders", "CREATE OR REPLACE VIEW demo.public.orders AS SELECT 1 AS id",
    "CREATE MACRO m(x) AS x", "CREATE TYPE mood AS ENUM ('a', 'b')", "CREATE SEQUENCE s", "CREATE SCHEMA s",
    "CREATE INDEX i ON orders (id)", "DROP VIEW demo.public.orders", "DROP TABLE orders",
    "ALTER VIEW demo.public.orders RENAME TO x",
    "INSERT INTO orders VALUES (1)", "UPDATE orders SET id = 1", "DELETE FROM orders", "TRUNCATE orders",
    "PREPARE p AS SELECT 1", "EXECUTE p", "DEALLOCATE p", "BEGIN", "BEGIN TRANSACTION", "COMMIT", "ROLLBACK", "CHECKPOINT",
    "FORCE CHECKPOINT", "VACUUM", "ANALYZE", "USE demo", "SHOW TABLES", "SHOW DATABASES", "SHOW ALL TABLES",
    "PIVOT orders ON status", "PIVOT orders ON status USING count(*)", "SELECT * FROM (PIVOT orders ON status)",
    "SUMMARIZE (PIVOT orders ON status)", "DESCRIBE (PIVOT orders ON status)",
]
TABLE_FUNCTIONS = [
    "read_csv", "read_csv_auto", "read_parquet", "parquet_scan", "read_json", "read_json_auto", "read_ndjson",
    "read_json_objects", "read_blob", "read_text", "glob", "query", "query_table", "sniff_csv", "parquet_metadata",
    "parquet_schema", "parquet_file_metadata", "parquet_kv_metadata", "duckdb_settings", "duckdb_databases", "duckdb_tables",
    "duckdb_columns", "duckdb_views", "duckdb_functions", "duckdb_secrets", "duckdb_extensions", "duckdb_temporary_files",
    "duckdb_memory", "duckdb_logs", "pragma_table_info", "pragma_storage_info", "pragma_database_size", "pragma_version",
    "pragma_metadata_info", "iceberg_scan", "iceberg_metadata", "delta_scan", "sqlite_scan", "postgres_scan", "mysql_scan",
    "json_execute_serialized_sql", "checkpoint", "force_checkpoint", "test_all_types", "which_secret", "sql_auto_complete",
    "arrow_scan", "seq_scan", "icu_calendar_names", "summary", "repeat_row", "read_xlsx", "load_aws_credentials",
]
SCALAR_OUTREACH = [
    "getenv('HOME')", "current_setting('temp_directory')", "current_setting('memory_limit')", "getvariable('x')",
    "'{vault_file}'.read_text()", "read_blob('{vault_file}')", "json_serialize_sql('select 1')",
    "json_deserialize_sql('{{}}')", "duckdb_settings()", "query_table('demo.secret.vault')",
]
UNGRANTED_NAMES = ["vault", "secret.vault", "demo.secret.vault", '"demo"."secret"."vault"', "DEMO.SECRET.VAULT",
                   "demo.public.nonexistent"]
SYSTEM_NAMES = ["information_schema.tables", "information_schema.columns", "pg_catalog.pg_class", "duckdb_tables",
                "sqlite_master", "system.main.duckdb_settings", "memory.main.x", "temp.main.x", '"__t0".main.data',
                "__t0.main.data", "demo..vault", "main.orders", "public.orders.id", "demo.public.orders.x"]
POSITIONS = [
    "SELECT * FROM {t}",
    "SELECT * FROM orders JOIN {t} ON true",
    "SELECT * FROM orders LEFT JOIN {t} x ON true",
    "SELECT * FROM orders CROSS JOIN {t}",
    "SELECT * FROM orders WHERE id IN (SELECT 1 FROM {t})",
    "SELECT * FROM orders WHERE EXISTS (SELECT * FROM {t})",
    "SELECT (SELECT count(*) FROM {t}) AS n",
    "SELECT * FROM orders, LATERAL (SELECT * FROM {t}) l",
    "SELECT 1 FROM orders UNION ALL SELECT 1 FROM {t}",
    "SELECT 1 FROM orders INTERSECT SELECT 1 FROM {t}",
    "SELECT 1 FROM orders EXCEPT SELECT 1 FROM {t}",
    "WITH c AS (SELECT * FROM {t}) SELECT * FROM c",
    "WITH a AS (WITH b AS (SELECT * FROM {t}) SELECT * FROM b) SELECT * FROM a",
    "DESCRIBE {t}",
    "SUMMARIZE {t}",
    "SELECT * FROM orders ASOF JOIN {t} x ON orders.id >= x.n",
    "SELECT * FROM orders POSITIONAL JOIN {t}",
    "FROM {t} SELECT *",
]
CTE_SHADOWING = [
    "SELECT * FROM orders WHERE EXISTS (WITH vault AS (SELECT 1) SELECT * FROM vault) UNION ALL SELECT * FROM vault",
    "SELECT * FROM (WITH vault AS (SELECT 1) SELECT * FROM vault) s, vault",
    "WITH a AS (WITH vault AS (SELECT 1) SELECT * FROM vault) SELECT * FROM vault",
    "SELECT (WITH vault AS (SELECT 1) SELECT * FROM vault), * FROM vault",
    "WITH vault AS (SELECT * FROM vault) SELECT * FROM vault",
    "WITH a AS (SELECT * FROM vault), vault AS (SELECT 1) SELECT * FROM a",
    "SELECT * FROM orders o WHERE o.id IN (WITH vault AS (SELECT 1 AS id) SELECT id FROM vault) AND EXISTS (SELECT "
    "* FROM vault)",
    "WITH x AS (SELECT 1) SELECT * FROM (WITH vault AS (SELECT 2) SELECT 1) t JOIN vault ON true",
    "SELECT * FROM orders, LATERAL (WITH vault AS (SELECT 1) SELECT 1) l, LATERAL (SELECT * FROM vault) m",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r, vault WHERE n < 3) SELECT * FROM r",
]
STRING_REFS = ["'x.parquet'", "'/etc/passwd'", "'{vault_file}'", "'data.csv'", '"x.csv"', "'*.parquet'",
               "'s3://bucket/x.parquet'", "'https://example.com/x.csv'", "'{served_glob}'", "'{vault_file}.wal'"]
COMMENT_TRICKS = [
    ("SELECT 1 /* */ ; DROP TABLE orders", {"multiple_statements"}),
    ("SELECT 1 --\n; ATTACH 'x' AS y", {"multiple_statements"}),
    ("SELECT 1 -- */ ; SELECT * FROM vault", None),  # the line comment swallows the rest: allowed, checked below
    ("SELECT * FROM orders /* x */ UNION SELECT * FROM vault", {"table_not_granted"}),
    ("/* SELECT * FROM orders */ SELECT * FROM vault", {"table_not_granted"}),
    ("SELECT * FROM orders -- \nUNION ALL SELECT * FROM vault", {"table_not_granted"}),
    ("SELECT 1; /* just a comment */ SELECT * FROM vault", {"multiple_statements"}),
    ("SELECT * FROM/**/vault", {"table_not_granted"}),
    ("SELECT * FROM orders;\n-- done\nSELECT * FROM vault", {"multiple_statements"}),
    ("SELECT '/*' AS a FROM vault -- */", {"table_not_granted"}),
]
UNICODE_TRICKS = ["\u0455ecret.vault", "v\u0430ult", '"vault\u200b"', '"vault "', '"Vault"', "\uff56\uff41\uff55\uff4c\uff54",
                  '"demo"."secret"."VAULT"', '"demo.secret.vault"', "VaUlT", '"vau""lt"']
# Functions that reach the filesystem, environment, settings, session state or DuckDB internals: refused by
# the allow-list whatever the spelling (sqlglot maps some to its own nodes, e.g. version()).
OUTREACH_FUNCTIONS = [
    "file_exists('/etc/passwd')", '"FILE_EXISTS"(\'/etc/passwd\')', "system.main.file_exists('/etc/passwd')",
    "'/etc/passwd'.file_exists()", "read_text('/etc/passwd')", "getenv('HOME')", "version()", "current_setting('threads')",
    "getvariable('x')", "setseed(0.5)", "nextval('s')", "currval('s')", "setval('s', 1)", "current_query()",
    "current_connection_id()", "current_query_id()", "current_transaction_id()", "txid_current()", "stats(1)",
    "vector_type(1)", "json_serialize_plan('select 1')", "json_serialize_sql('select 1')", "pg_get_viewdef(1)",
    "get_block_size('memory')", "__internal_barrier(1)", "to_aggregate_state(1, 'sum')", "write_log('x')",
    "list_aggr([1], 'to_aggregate_state')", "list_aggregate([1], (SELECT 'sum'))",
    "parse_duckdb_log_message('x', 'y')", "index_key('t', 'i')", "no_such_function(1)",
]
# Functions whose work or memory DuckDB does not account for: bounded per call, refused past the bound.
RESOURCE_BOMBS = [
    ("damerau_levenshtein(repeat('a', 15000), repeat('b', 15000))", {"function_limit"}),
    ("levenshtein(repeat('a', 100000), repeat('b', 100000))", {"function_limit"}),
    ("jaro_winkler_similarity(repeat('a', 5000), repeat('b', 5000))", {"function_limit"}),
    # within a generous per-call bound, but 2,048 rows per uninterruptible chunk would take a minute
    ("(SELECT max(damerau_levenshtein(repeat('a', 2000) || range::VARCHAR, repeat('b', 2000))) FROM range(4096))",
     {"function_limit"}),
    ("(SELECT max(levenshtein(repeat('a', 1000) || range::VARCHAR, repeat('b', 1000))) FROM range(4096))",
     {"function_limit"}),
    ("length(repeat('x', 2000000000))", {"function_limit"}),
    ("length('x'.repeat(2000000000))", {"function_limit"}),
    ("len(repeat([1, 2, 3], 100000000))", {"function_limit"}),
    ("length(lpad('x', 300000000, 'y'))", {"function_limit"}),
    ("length(rpad('x', 300000000))", {"function_limit"}),
    ("length(replace(repeat('a', 20000), 'a', repeat('b', 20000)))", {"function_limit"}),
    ("length(regexp_replace(repeat('a', 20000), '', repeat('b', 20000), 'g'))", {"function_limit"}),
    ("length(bitstring('1', 2000000000))", {"function_limit"}),
    ("len(range(300000000))", {"function_limit"}),
    ("len(range(0, 9223372036854775807, 1))", {"function_limit"}),
    ("len(generate_series(1, 300000000))", {"function_limit"}),
    ("len(generate_series(TIMESTAMP '2000-01-01', TIMESTAMP '2100-01-01', INTERVAL 1 MINUTE))", {"function_limit"}),
    ("len(list_resize([1], 300000000))", {"function_limit"}),
    ("len(array_resize([1], 300000000, 0))", {"function_limit"}),
    ("list_transform([300000000], lambda n: len(range(n)))", {"function_limit"}),
    ("length(repeat(repeat('x', 1000000), 1000))", {"function_limit"}),
    ("length(list_reduce(list_transform(range(40), lambda i: 'ab'), lambda acc, x: acc || acc))", {"function_limit"}),
    ("(WITH t AS (SELECT repeat('x', 1000000) s), u AS (SELECT " + " || ".join(["s"] * 40) + " AS s FROM t) "
     "SELECT length(" + " || ".join(["s"] * 40) + ") FROM u)", {"function_limit"}),
    ("(WITH RECURSIVE r(n, s) AS (SELECT 1, 'ab' UNION ALL SELECT n + 1, concat(s, s) FROM r WHERE n < 60) "
     "SELECT max(length(s)) FROM r)", {"function_limit"}),
    ("len(list_reduce(list_transform(range(40), lambda i: [1]), lambda acc, x: list_concat(acc, acc)))", {"function_limit"}),
    ("(WITH RECURSIVE r(n, s) AS (SELECT 1, 'ab' UNION ALL SELECT n + 1, concat(NULL, s, s) FROM r WHERE n < 60) "
     "SELECT max(length(s)) FROM r)", {"function_limit"}),
    ("length(printf('%0300000000d', 1))", {"function_not_allowed"}),
    ("length(printf('%*d', 300000000, 1))", {"function_not_allowed"}),
    ("length(format('{:>300000000}', 1))", {"function_not_allowed"}),
    ("length(format('{:>{}}', 1, 300000000))", {"function_not_allowed"}),
    ("length(printf(repeat('%', 2) || '0300000000d', 1))", {"function_not_allowed"}),
]
RUNAWAY = [
    "SELECT count(*) FROM range(1000000000000) a",
    "SELECT count(*) FROM orders a, orders b, orders c, orders d, orders e",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT count(*) FROM r",
]


def corpus() -> list[tuple[str, str, set[str] | None]]:
    """(sql template, class, allowed rules) for every must-fail statement."""
    out: list[tuple[str, str, set[str] | None]] = []
    for s in STATEMENTS:
        for variant in (s, s.lower(), s.upper(), f"/* hello */ {s};", f"\n\t {s}  ;  "):
            out.append((variant, "statement", STATEMENT_NOT_ALLOWED))
    for s in STATEMENTS[:25]:
        out.append((f"SELECT 1; {s}", "multiple", {"multiple_statements"}))
    out += [("SELECT * FROM orders; SELECT * FROM vault", "multiple", {"multiple_statements"}),
            ("SELECT 1;SELECT 2", "multiple", {"multiple_statements"}),
            ("SELECT 1 ; ; SELECT 2", "multiple", {"multiple_statements"})]
    for fn in TABLE_FUNCTIONS:
        out.append((f"SELECT * FROM {fn}('x')", "table_function", {"function_not_allowed"}))
        out.append((f"SELECT * FROM orders WHERE id IN (SELECT * FROM {fn.upper()}('x'))", "table_function",
                    {"function_not_allowed"}))
        out.append((f"SELECT * FROM orders, LATERAL {fn}('x')", "table_function", {"function_not_allowed"}))
    out += [("SELECT * FROM query_table('demo.secret.vault')", "table_function", {"function_not_allowed"}),
            ("SELECT * FROM query('SELECT * FROM demo.secret.vault')", "table_function", {"function_not_allowed"}),
            ("SELECT * FROM read_blob('{vault_file}')", "table_function", {"function_not_allowed"}),
            ("SELECT * FROM read_text('{orders_file}')", "table_function", {"function_not_allowed"}),
            ("SELECT * FROM read_parquet('{served_glob}')", "table_function", {"function_not_allowed"})]
    for expr in SCALAR_OUTREACH:
        out.append((f"SELECT {expr}", "scalar_function", {"function_not_allowed"}))
        out.append((f"SELECT * FROM orders WHERE {expr} IS NOT NULL", "scalar_function", {"function_not_allowed"}))
    for pos in POSITIONS:
        for name in UNGRANTED_NAMES:
            out.append((pos.format(t=name), "ungranted", {"table_not_granted"}))
    for name in SYSTEM_NAMES:
        out.append((f"SELECT * FROM {name}", "system_catalog", {"table_not_granted"}))
    out += [(s, "cte_shadowing", {"table_not_granted"}) for s in CTE_SHADOWING]
    for ref in STRING_REFS:
        out.append((f"SELECT * FROM {ref}", "string_ref", {"table_not_granted"}))
        out.append((f"SELECT * FROM orders JOIN {ref} x ON true", "string_ref", {"table_not_granted"}))
    out += [(s, "comment", rules) for s, rules in COMMENT_TRICKS if rules]
    for name in UNICODE_TRICKS:
        out.append((f"SELECT * FROM {name}", "unicode", {"table_not_granted"}))
    out += [("SeLeCt * FrOm VaUlT", "case", {"table_not_granted"}),
            ("SELECT * FROM Read_Csv('x')", "case", {"function_not_allowed"}),
            ("select * from QUERY_TABLE('vault')", "case", {"function_not_allowed"}),
            ("pRaGmA version", "case", STATEMENT_NOT_ALLOWED)]
    out += [(s, "runaway", {"timeout"}) for s in RUNAWAY]
    for expr in OUTREACH_FUNCTIONS:
        out.append((f"SELECT {expr}", "outreach_function", {"function_not_allowed"}))
        out.append((f"SELECT id FROM orders WHERE {expr} IS NOT NULL", "outreach_function", {"function_not_allowed"}))
    for expr, rules in RESOURCE_BOMBS:
        out.append((f"SELECT {expr} AS v", "resource_bomb", rules))
        out.append((f"SELECT id FROM orders WHERE {expr} IS NOT NULL LIMIT 1", "resource_bomb", rules))
    return out


CORPUS = corpus()


def test_corpus_is_big_enough_and_covers_every_class() -> None:
    assert len(CORPUS) >= 300, len(CORPUS)
    assert {c for _, c, _ in CORPUS} >= {"statement", "multiple", "table_function", "scalar_function", "ungranted",
                                         "system_catalog", "cte_shadowing", "string_ref", "comment", "unicode", "case",
                                         "runaway", "outreach_function", "resource_bomb"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[QueryEngine, dict[str, str]]]:
    home = tmp_path_factory.mktemp("security-home")
    settings = Settings.from_env({"AGENTS_DATA_HOME": str(home)})
    paths = publish_world(settings.served_path)
    engine = QueryEngine(settings)
    yield engine, paths
    engine.close()


def publish_world(served: Path) -> dict[str, str]:
    publish_table(served, ORDERS, "select range as id, 'paid' as status, range * 1.0 as amount from range(200)")
    publish_table(served, CUSTOMERS, "select range as id, 'c' || range as name from range(20)")
    publish_table(served, EVENTS, """select range as id, timestamp '2024-01-01' + range * interval 1 day as ts,
        date '2024-01-01' + range::int as d, ['a', 'b', 'c' || range] as tags, {'k': 'x' || range, 'v': range} as attrs,
        ('{"user": "u' || (range % 3) || '", "n": ' || range || '}')::JSON as payload from range(30)""")
    publish_table(served, VAULT, f"select '{CANARY}_' || range as secret, range as n from range(5)")
    files = {}
    for key in (ORDERS, VAULT):
        manifest = read_current(served, key)
        assert manifest is not None
        files[key] = str(table_dir(served, key) / manifest.file)
    return {"vault_file": files[VAULT], "orders_file": files[ORDERS], "served_glob": f"{served}/**/*.duckdb"}


def render(template: str, paths: dict[str, str]) -> str:
    return template.replace("{vault_file}", paths["vault_file"]).replace("{orders_file}", paths["orders_file"]) \
        .replace("{served_glob}", paths["served_glob"]).replace("{{}}", "{}")


ATTACKER = "attacker"
AGENT = Caller(kind="agent", subject=ATTACKER, token_id=f"tok-{ATTACKER}", swarm_id="s", grants=GRANTED)


@pytest.mark.parametrize(("template", "klass", "rules"), CORPUS, ids=[f"{c}-{i}" for i, (_, c, _) in enumerate(CORPUS)])
def test_must_fail_against_guard_and_engine(world: tuple[QueryEngine, dict[str, str]], template: str, klass: str,
                                            rules: set[str]) -> None:
    engine, paths = world
    sql = render(template, paths)
    with pytest.raises(ApiError) as e:
        engine.execute(AGENT, sql, timeout_s=0.5 if klass == "runaway" else 5)
    assert 400 <= e.value.status < 500, (sql, e.value.status, e.value.message)
    assert e.value.rule in rules, (sql, e.value.rule, e.value.message)
    assert CANARY not in e.value.message
    assert paths["vault_file"] not in e.value.message or paths["vault_file"] in sql  # only the caller's own text is echoed


def test_swallowed_tail_after_a_line_comment_is_harmless(world: tuple[QueryEngine, dict[str, str]]) -> None:
    engine, _ = world
    result = engine.execute(AGENT, "SELECT 1 AS one -- */ ; SELECT * FROM vault")
    assert result.rows == [(1,)]


# Legitimate analytical SQL (dates, strings, math, aggregates, windows, lists, structs, maps, regexp,
# JSON, joins, DuckDB syntax): none may be refused by the guard, and each must run.
LEGIT = [
    # aggregates and grouping
    "SELECT status, count(*), sum(amount), avg(amount), min(amount), max(amount) FROM orders GROUP BY status",
    "SELECT count(DISTINCT status), approx_count_distinct(id), median(amount), mode(status) FROM orders",
    "SELECT quantile_cont(amount, 0.9), quantile_disc(amount, [0.25, 0.5, 0.75]), stddev(amount), variance(amount) "
    "FROM orders",
    "SELECT corr(id, amount), covar_pop(id, amount), regr_slope(amount, id), regr_intercept(amount, id) FROM orders",
    "SELECT string_agg(name, ', ' ORDER BY id), list(id ORDER BY id DESC), array_agg(DISTINCT name) FROM customers",
    "SELECT arg_max(name, id), arg_min(name, id), max_by(id, name), first(name), last(name), any_value(name) FROM customers",
    "SELECT bool_and(amount > 0), bool_or(amount > 100), count_if(amount > 50), sum(amount) FILTER (WHERE id % 2 = "
    "0) FROM orders",
    "SELECT histogram(status), entropy(status), kurtosis(amount), skewness(amount), product(1.0) FROM orders",
    "SELECT status, sum(amount) FROM orders GROUP BY ROLLUP (status) ORDER BY ALL",
    "SELECT status, id % 3 AS b, count(*) FROM orders GROUP BY GROUPING SETS ((status), (id % 3), ()) ORDER BY ALL",
    "SELECT status, grouping(status), count(*) FROM orders GROUP BY CUBE (status)",
    "SELECT status, count(*) AS n FROM orders GROUP BY ALL HAVING count(*) > 1 ORDER BY n DESC LIMIT 5",
    "SELECT bit_and(id), bit_or(id), bit_xor(id), geomean(amount + 1), weighted_avg(amount, id) FROM orders",
    "SELECT approx_quantile(amount, 0.5), reservoir_quantile(amount, 0.5), mad(amount), sem(amount), fsum(amount) "
    "FROM orders",
    # window functions
    "SELECT id, row_number() OVER (ORDER BY amount DESC), rank() OVER w, dense_rank() OVER w FROM orders WINDOW w "
    "AS (ORDER BY status)",
    "SELECT id, sum(amount) OVER (ORDER BY id ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS rolling FROM orders",
    "SELECT id, lag(amount, 1) OVER (ORDER BY id), lead(amount, 2, 0) OVER (ORDER BY id) FROM orders",
    "SELECT id, first_value(amount) OVER (PARTITION BY status ORDER BY id), last_value(amount) OVER (PARTITION BY "
    "status) FROM orders",
    "SELECT id, ntile(4) OVER (ORDER BY amount), percent_rank() OVER (ORDER BY amount), cume_dist() OVER (ORDER BY "
    "amount) FROM orders",
    "SELECT id, nth_value(amount, 2) OVER (ORDER BY id) FROM orders",
    "SELECT id, avg(amount) OVER (PARTITION BY status ORDER BY id RANGE BETWEEN 10 PRECEDING AND 10 FOLLOWING) FROM orders",
    "SELECT id, amount / sum(amount) OVER () AS share FROM orders ORDER BY share DESC LIMIT 3",
    "SELECT * FROM orders QUALIFY row_number() OVER (PARTITION BY status ORDER BY amount DESC) <= 2",
    "SELECT id, count(*) OVER (ORDER BY id GROUPS BETWEEN 1 PRECEDING AND 1 FOLLOWING) FROM orders",
    "SELECT id, list(id) OVER (ORDER BY id ROWS 2 PRECEDING) FROM orders LIMIT 5",
    # dates and times
    "SELECT ts, date_trunc('month', ts), date_part('year', ts), extract(dow FROM ts), strftime(ts, '%Y-%m-%d "
    "%H:%M') FROM events",
    "SELECT d, d + INTERVAL 7 DAY, d - INTERVAL '1 month', date_diff('day', d, DATE '2025-12-31'), "
    "datediff('month', d, current_date) FROM events",
    "SELECT year(d), month(d), day(d), dayofweek(d), dayname(d), monthname(d), quarter(d), week(d), isodow(d) FROM events",
    "SELECT last_day(d), make_date(2024, 2, 29), make_timestamp(2024, 1, 1, 12, 0, 0), strptime('2024-03-01', "
    "'%Y-%m-%d') FROM events",
    "SELECT time_bucket(INTERVAL '15 minutes', ts), epoch(ts), epoch_ms(ts), to_timestamp(1700000000) FROM events",
    "SELECT age(TIMESTAMP '2024-01-01', TIMESTAMP '2023-01-01'), now() > ts, current_date, today(), "
    "current_timestamp FROM events",
    "SELECT date_add(d, INTERVAL 1 YEAR), date_sub('day', d, DATE '2025-01-01'), to_days(5), to_months(2), "
    "to_hours(3) FROM events",
    "SELECT d, generate_series(d, d + INTERVAL 3 DAY, INTERVAL 1 DAY) AS days FROM events LIMIT 3",
    "SELECT unnest(generate_series(DATE '2024-01-01', DATE '2024-12-31', INTERVAL 1 MONTH)) AS month_start",
    "SELECT * FROM generate_series(TIMESTAMP '2024-01-01', TIMESTAMP '2024-01-02', INTERVAL 1 HOUR) t(h)",
    "SELECT ts::DATE, CAST(ts AS TIME), ts::VARCHAR, try_cast('x' AS DATE), TRY_STRPTIME('bad', '%Y') FROM events",
    "SELECT timezone('UTC', ts), ts AT TIME ZONE 'Europe/Berlin', make_timestamptz(2024, 1, 1, 0, 0, 0, 'UTC') FROM events",
    "SELECT date_trunc('week', d) AS wk, count(*) FROM events GROUP BY wk ORDER BY wk",
    "SELECT d BETWEEN DATE '2024-01-01' AND DATE '2024-06-30', isfinite(d), era(d), julian(d), yearweek(d) FROM events",
    # strings
    "SELECT upper(name), lower(name), length(name), reverse(name), left(name, 2), right(name, 1) FROM customers",
    "SELECT concat(name, '-', id), name || '!' , concat_ws('/', name, 'x'), repeat('-', 20), lpad(id::VARCHAR, 5, "
    "'0'), rpad(name, 8, '.') FROM customers",
    "SELECT trim('  x  '), ltrim('xxa', 'x'), rtrim('axx', 'x'), replace(name, 'c', 'C'), translate(name, 'c', 'k') "
    "FROM customers",
    "SELECT substring(name, 1, 2), substr(name, 2), position('1' IN name), strpos(name, '1'), instr(name, 'c'), "
    "contains(name, '1') FROM customers",
    "SELECT split_part('a,b,c', ',', 2), string_split('a,b,c', ','), str_split('a b', ' '), starts_with(name, 'c'), "
    "ends_with(name, '9') FROM customers",
    "SELECT name LIKE 'c1%', name ILIKE 'C%', name NOT LIKE '%5', name SIMILAR TO 'c[0-9]+', name GLOB 'c*' FROM customers",
    "SELECT md5(name), sha256(name), hash(name), left(sha1(name), 8), to_base64(encode(name)), hex(id) FROM customers",
    "SELECT format('{}-{:>5}', name, id), printf('%s has %05d', name, id), format_bytes(1000000), bar(id, 0, 20, "
    "20) FROM customers",
    "SELECT levenshtein(name, 'c10'), damerau_levenshtein(name, 'c01'), jaro_winkler_similarity(name, 'c1'), "
    "jaccard(name, 'c11'), hamming('abc', 'abd') FROM customers",
    "SELECT ascii(name), chr(65), unicode('é'), strip_accents('café'), nfc_normalize('e'), lcase('A'), ucase('a') "
    "FROM customers",
    "SELECT url_encode('a b'), url_decode('a%20b'), regexp_escape('a.b'), to_base(255, 16), bit_length(name), "
    "octet_length(encode(name)) FROM customers",
    "SELECT name, regexp_matches(name, 'c[0-9]'), regexp_replace(name, '[0-9]', '#', 'g'), regexp_extract(name, "
    "'c([0-9]+)', 1) FROM customers",
    "SELECT regexp_extract_all('a1b22c333', '[0-9]+'), regexp_split_to_array('a1b2c', '[0-9]'), "
    "regexp_full_match(name, 'c\\d+') FROM customers",
    "SELECT name FROM customers WHERE name ~ '^c1' OR regexp_matches(name, '9$', 'i')",
    "SELECT string_agg(DISTINCT status, '|'), group_concat(id, ';'), listagg(status) FROM orders",
    "SELECT overlay('abcdef' PLACING 'xy' FROM 2 FOR 3), trim(BOTH 'x' FROM 'xaxx'), 'abc'[1:2] FROM customers LIMIT 1",
    "SELECT name.upper(), name.length(), name.replace('c', 'k') FROM customers",
    # math
    "SELECT abs(-amount), round(amount, 1), ceil(amount), floor(amount), trunc(amount), sqrt(amount), power(amount, "
    "2), exp(1), ln(amount + 1), log10(amount + 1), log2(amount + 1) FROM orders",
    "SELECT amount % 7, amount // 7, id ^ 2, id << 1, id >> 1, id & 3, id | 4, xor(id, 1), greatest(id, 5), "
    "least(id, 5), sign(amount - 50) FROM orders",
    "SELECT pi(), sin(1), cos(1), tan(1), atan2(1, 2), degrees(pi()), radians(180), factorial(5), gcd(12, 18), "
    "lcm(4, 6), isnan('nan'::DOUBLE)",
    "SELECT random() < 2, uuid() IS NOT NULL, gen_random_uuid()::VARCHAR LIKE '%-%', setseed IS NULL FROM (SELECT "
    "NULL AS setseed)",
    "SELECT id::DOUBLE / 3, CAST(amount AS DECIMAL(10, 2)), amount::INTEGER, id::HUGEINT * 2, (id + 0.5)::FLOAT FROM orders",
    "SELECT coalesce(NULL, id), nullif(id, 0), ifnull(NULL, 1), if(id > 5, 'big', 'small'), CASE WHEN id < 3 THEN "
    "'a' WHEN id < 6 THEN 'b' ELSE 'c' END FROM orders",
    "SELECT id IS DISTINCT FROM 3, id IS NOT NULL, id IN (1, 2, 3), id NOT IN (4), NOT (id > 2), id BETWEEN 1 AND "
    "10 FROM orders",
    "SELECT width_bucket, count(*) FROM (SELECT floor(amount / 25) AS width_bucket FROM orders) GROUP BY 1 ORDER BY 1",
    "SELECT equi_width_bins(0, 100, 4, true), bit_count(id), even(amount), round_even(amount, 0), fmod(amount, 3) "
    "FROM orders LIMIT 3",
    # lists, structs, maps
    "SELECT tags, len(tags), tags[1], list_contains(tags, 'a'), array_length(tags), list_sort(tags), "
    "list_reverse_sort(tags) FROM events",
    "SELECT list_transform(tags, x -> upper(x)), list_filter(tags, x -> x <> 'a'), list_reduce([1, 2, 3], (a, b) -> "
    "a + b) FROM events",
    "SELECT [x * 2 FOR x IN [1, 2, 3] IF x > 1], list_apply([1, 2], lambda x: x + 1), filter([1, 2], x -> x > 1)",
    "SELECT list_distinct([1, 1, 2]), list_unique([1, 1, 2]), flatten([[1], [2, 3]]), list_concat([1], [2]), [1, 2] "
    "|| [3], list_slice([1, 2, 3], 2, 3)",
    "SELECT list_sum([1, 2]), list_avg([1, 2]), list_max([1, 2]), list_min([1, 2]), list_aggr([1, 2, 3], 'sum'), "
    "list_aggregate(['a', 'b'], 'string_agg', '-')",
    "SELECT list_has_any([1, 2], [2]), list_has_all([1, 2], [1]), list_intersect([1, 2], [2, 3]), list_position([1, "
    "2], 2), list_zip([1, 2], ['a', 'b'])",
    "SELECT unnest(tags) AS tag, count(*) FROM events GROUP BY tag ORDER BY tag",
    "SELECT e.id, t.tag FROM events e, unnest(e.tags) AS t(tag)",
    "SELECT range(5), range(1, 10, 3), generate_series(1, 4), list_resize([1], 3, 0), array_to_string(['a', 'b'], "
    "','), list_append([1], 2), list_prepend(0, [1])",
    "SELECT attrs, attrs.k, attrs['v'], struct_extract(attrs, 'k'), struct_pack(a := 1, b := 'x'), {'x': 1, 'y': "
    "[1, 2]} AS s, row(1, 'a') FROM events",
    "SELECT struct_insert(attrs, z := 3), struct_keys(attrs), (attrs).v + 1, unnest(attrs) FROM events",
    "SELECT MAP {'a': 1, 'b': 2}, map(['k'], [1])['k'], map_keys(MAP {'a': 1}), map_values(MAP {'a': 1}), "
    "map_from_entries([{'k': 'x', 'v': 1}]), cardinality(MAP {'a': 1})",
    "SELECT element_at(MAP {'a': 1}, 'a'), map_entries(MAP {'a': 1}), map_extract(MAP {'a': 1}, 'a'), "
    "map_contains(MAP {'a': 1}, 'a')",
    "SELECT [1, 2, 3]::INTEGER[3], array_value(1, 2), array_cosine_similarity([1.0, 2.0]::DOUBLE[2], [2.0, "
    "3.0]::DOUBLE[2]), list_dot_product([1, 2], [3, 4])",
    "SELECT list_transform(range(3), i -> repeat('*', i::INTEGER)), list_transform([1, 2], i -> lpad(i::VARCHAR, 3, '0'))",
    # JSON
    "SELECT payload->>'$.user', payload->'$.n', json_extract(payload, '$.n'), json_extract_string(payload, "
    "'$.user'), payload::JSON->'n' FROM events",
    "SELECT json_keys(payload), json_type(payload), json_valid(payload), json_array_length('[1,2]'), "
    "json_structure(payload) FROM events",
    "SELECT to_json(attrs), json_object('a', 1), json_array(1, 2) FROM events",
    "SELECT json_group_array(id), json_group_object(id, d), json_group_structure(payload) FROM events",
    "SELECT from_json(payload, '{\"user\": \"VARCHAR\", \"n\": \"INTEGER\"}'), json_transform(payload, '{\"n\": "
    "\"INTEGER\"}'), json_merge_patch(payload, '{\"z\": 1}') FROM events",
    "SELECT j.key, j.value FROM events, json_each(events.payload) AS j",
    "SELECT json_pretty(payload), json_quote('x'), json_contains(payload, '1'), json_exists(payload, '$.n'), "
    "json_value(payload, '$.n') FROM events",
    "SELECT (payload->>'user') AS u, sum((payload->>'n')::INT) FROM events GROUP BY u",
    # joins, CTEs, subqueries, set operations
    "WITH big AS (SELECT * FROM orders WHERE amount > 50) SELECT status, count(*) FROM big GROUP BY status",
    "SELECT c.name, count(o.id) FROM customers c LEFT JOIN orders o ON o.id % 20 = c.id GROUP BY c.name ORDER BY 2 DESC",
    "SELECT * FROM orders o WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = o.id) AND o.amount > (SELECT "
    "avg(amount) FROM orders)",
    "SELECT o.id, c.name FROM orders o ASOF JOIN customers c ON o.id >= c.id",
    "SELECT * FROM orders o SEMI JOIN customers c ON o.id = c.id",
    "SELECT * FROM orders o ANTI JOIN customers c ON o.id = c.id LIMIT 5",
    "SELECT * FROM orders JOIN customers USING (id)",
    "SELECT * FROM orders NATURAL JOIN customers",
    "SELECT id FROM orders UNION SELECT id FROM customers EXCEPT SELECT 3 INTERSECT SELECT id FROM customers",
    "SELECT id FROM orders UNION ALL BY NAME SELECT id FROM customers",
    "WITH RECURSIVE fib(n, a, b) AS (SELECT 1, 0, 1 UNION ALL SELECT n + 1, b, a + b FROM fib WHERE n < 10) SELECT "
    "* FROM fib",
    "SELECT * FROM (VALUES (1, 'a'), (2, 'b')) v(k, label) JOIN orders ON orders.id = v.k",
    "SELECT o.*, l.x FROM orders o, LATERAL (SELECT o.amount * 2 AS x) l LIMIT 3",
    "SELECT status, max(amount) FROM orders GROUP BY status ORDER BY max(amount) DESC NULLS LAST LIMIT 1 OFFSET 0",
    # DuckDB-friendly SQL
    "FROM orders SELECT status, count(*) GROUP BY status",
    "SELECT * EXCLUDE (status) FROM orders LIMIT 2",
    "SELECT * REPLACE (amount * 2 AS amount) FROM orders LIMIT 2",
    "SELECT COLUMNS('am.*') FROM orders LIMIT 2",
    "SELECT max(COLUMNS(*)) FROM orders",
    "SELECT min(COLUMNS(c -> c LIKE 'a%')) FROM orders",
    "SELECT * FROM orders USING SAMPLE 10 ROWS",
    "SELECT * FROM orders TABLESAMPLE 5%",
    "SELECT * FROM orders PIVOT (sum(amount) FOR status IN ('paid', 'open'))",
    "SELECT * FROM (SELECT id, amount, amount * 2 AS dbl FROM orders) UNPIVOT (val FOR col IN (amount, dbl)) LIMIT 4",
    "UNPIVOT (SELECT id, amount, amount * 2 AS dbl FROM orders) ON amount, dbl INTO NAME col VALUE val",
    "SELECT id, amount FROM orders ORDER BY amount DESC LIMIT 10 PERCENT",
    "DESCRIBE orders",
    "SUMMARIZE customers",
    "DESCRIBE SELECT status, sum(amount) FROM orders GROUP BY status",
    "SELECT typeof(amount), pg_typeof(id), alias(id) FROM orders LIMIT 1",
    "SELECT id, amount FROM orders WHERE id = ? AND amount >= ?",
    "SELECT $1::INTEGER + 1 AS x",
    "SELECT count(*) FROM range(1000000)",
    "SELECT sum(x) FROM generate_series(1, 100) t(x)",
    "SELECT * FROM unnest([1, 2, 3]) AS u(x)",
    "SELECT try(1 / 0), error IS NULL FROM (SELECT NULL AS error)",
    "SELECT current_database() IS NOT NULL, current_schema(), current_user",
    "SELECT name COLLATE nocase FROM customers ORDER BY name COLLATE de LIMIT 3",
    "SELECT 1 AS one -- trailing comment",
]


def legit_params(sql: str) -> list[Any] | None:
    return [1, 0] if "?" in sql else ([5] if "$1" in sql else None)


@pytest.mark.parametrize("sql", LEGIT, ids=[f"legit-{i}" for i in range(len(LEGIT))])
def test_legitimate_queries_run(world: tuple[QueryEngine, dict[str, str]], sql: str) -> None:
    engine, _ = world
    result = engine.execute(AGENT, sql, params=legit_params(sql), timeout_s=10)
    assert result.columns


def test_legit_corpus_covers_the_common_function_families() -> None:
    text = " ".join(LEGIT).lower()
    for word in ("date_trunc", "strftime", "regexp_replace", "string_agg", "over (", "list_transform", "struct_pack",
                 "json_extract", "quantile_cont", "levenshtein", "unnest", "pivot", "qualify", "lpad", "range("):
        assert word in text, word
    assert len(LEGIT) >= 120


def http_sample() -> list[tuple[str, str, set[str] | None]]:
    """Every class, every 4th statement of it (at least three per class)."""
    by_class: dict[str, list[tuple[str, str, set[str] | None]]] = {}
    for item in CORPUS:
        by_class.setdefault(item[1], []).append(item)
    out = []
    for items in by_class.values():
        out += items[::4] if len(items) >= 12 else items[:3]
    return out


def check_response(resp: Any) -> None:
    assert CANARY not in resp.text, f"canary leaked in {resp.request.url}: {resp.text[:300]}"
    assert resp.status_code < 500, resp.text


def test_must_fail_through_http(client: Any, api_settings: Settings, make_swarm: Any, agent_headers: Any) -> None:
    paths = publish_world(api_settings.served_path)
    swarm = make_swarm(sorted(GRANTED))
    headers = agent_headers(swarm["id"])
    sample = http_sample()
    assert len(sample) >= 80
    failures = []
    for template, klass, rules in sample:
        sql = render(template, paths)
        body: dict[str, Any] = {"query": sql, "timeout_s": 0.5 if klass == "runaway" else 5, "wait_s": 10}
        resp = client.post("/api/v1/queries/execute", json=body, headers=headers)
        check_response(resp)
        if not 400 <= resp.status_code < 500 or resp.json()["error"]["rule"] not in (rules or set()):
            failures.append((sql, resp.status_code, resp.text[:200]))
            continue
        assert_error(resp, resp.status_code)
    assert failures == []
    # the agent's legitimate reads and the catalog never show the canary either
    for fmt in ("json", "csv", "arrow", "parquet"):
        resp = client.post("/api/v1/queries/execute", json={"query": "select * from orders", "output_format": fmt},
                           headers=headers)
        check_response(resp)
        if fmt != "json":
            check_response(client.get(resp.json()["result_url"], headers=headers))
    for url in ("/api/v1/data/tables", "/api/v1/data/tables/vault", "/api/v1/data/tables/demo.secret.vault"):
        check_response(client.get(url, headers=headers))
    assert client.get("/api/v1/data/tables/vault", headers=headers).status_code == 404
