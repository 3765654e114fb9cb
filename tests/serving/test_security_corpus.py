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

from serving.auth.caller import Caller
from serving.lib.errors import ApiError
from serving.queries.engine import QueryEngine
from shared.served import read_current, table_dir
from shared.settings import Settings
from tests.conftest import publish_table
from tests.serving.helpers import assert_error

ORDERS, CUSTOMERS, VAULT = "demo.public.orders", "demo.public.customers", "demo.secret.vault"
CANARY = "CANARY_5e1f0c"
GRANTED = frozenset({ORDERS, CUSTOMERS})

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
    "SELECT * FROM orders o WHERE o.id IN (WITH vault AS (SELECT 1 AS id) SELECT id FROM vault) AND EXISTS (SELECT * FROM vault)",
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
    return out


CORPUS = corpus()


def test_corpus_is_big_enough_and_covers_every_class() -> None:
    assert len(CORPUS) >= 300, len(CORPUS)
    assert {c for _, c, _ in CORPUS} >= {"statement", "multiple", "table_function", "scalar_function", "ungranted",
                                         "system_catalog", "cte_shadowing", "string_ref", "comment", "unicode", "case",
                                         "runaway"}


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
