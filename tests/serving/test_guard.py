"""The SQL guard on its own: what passes, how it is rewritten, and which rule refuses the rest.

The bulk of must-fail statements is in test_security_corpus.py; these tests pin the
behaviours each rule is built on (name resolution, CTE scopes, rewriting, caching).
"""

from __future__ import annotations

import pytest

from serving.lib.errors import ApiError, QueryRejected
from serving.queries import guard
from serving.queries.guard import check_sql, quote_table, resolve_name, validate_filter

GRANTS = frozenset({"demo.public.orders", "demo.public.customers", "demo.sales.orders"})
ONE = frozenset({"demo.public.orders", "demo.public.customers"})


def rule_of(sql: str, grants: frozenset[str] = ONE) -> str | None:
    try:
        check_sql(sql, grants)
    except ApiError as e:
        return e.rule
    return None


@pytest.mark.parametrize(("sql", "tables", "fragment"), [
    ("select * from orders", {"demo.public.orders"}, 'FROM "demo"."public"."orders"'),
    ("SELECT * FROM Public.Orders", {"demo.public.orders"}, 'FROM "demo"."public"."orders"'),
    ('select * from "DEMO"."PUBLIC"."ORDERS"', {"demo.public.orders"}, 'FROM "demo"."public"."orders"'),
    ("from orders", {"demo.public.orders"}, 'SELECT * FROM "demo"."public"."orders"'),
    ("select o.id, c.name from orders o join customers c on o.cid = c.id", {"demo.public.orders", "demo.public.customers"},
     'JOIN "demo"."public"."customers" AS c'),
    ("select * from orders where id in (select id from customers)", {"demo.public.orders", "demo.public.customers"},
     'IN (SELECT id FROM "demo"."public"."customers")'),
    ("select id from orders union all select id from customers", {"demo.public.orders", "demo.public.customers"}, "UNION ALL"),
    ("with x as (select * from orders) select * from x", {"demo.public.orders"}, "FROM x"),
    ("with orders as (select 1 as id) select * from orders", set(), "FROM orders"),
    ("with recursive r(n) as (select 1 union all select n + 1 from r where n < 3) select * from r", set(), "RECURSIVE"),
    ("select * from range(10)", set(), "RANGE(0, 10)"),
    ("select * from generate_series(1, 3)", set(), "GENERATE_SERIES"),
    ("select * from unnest([1, 2])", set(), "UNNEST"),
    ("select * from orders, lateral (select * from customers where customers.id = orders.cid) c",
     {"demo.public.orders", "demo.public.customers"}, "LATERAL"),
    ("describe orders", {"demo.public.orders"}, 'DESCRIBE "demo"."public"."orders"'),
    ("summarize customers", {"demo.public.customers"}, 'SUMMARIZE "demo"."public"."customers"'),
    ("describe select id from orders", {"demo.public.orders"}, "DESCRIBE SELECT"),
    ("select * from orders pivot (sum(amount) for status in ('a', 'b'))", {"demo.public.orders"}, "PIVOT"),
    ("select * from orders where id = ? and name = ?", {"demo.public.orders"}, "id = ?"),
    ("select * from orders where id = $id", {"demo.public.orders"}, "id = $id"),
    ("values (1, 'a'), (2, 'b')", set(), "VALUES"),
    ("(select 1)", set(), "(SELECT 1)"),
    ("select 1 -- trailing comment", set(), "SELECT 1"),
    ("select count(*) filter (where id > 3) from orders group by all order by all", {"demo.public.orders"}, "GROUP BY ALL"),
])
def test_accepted_queries_are_rewritten_fully_qualified(sql: str, tables: set[str], fragment: str) -> None:
    checked = check_sql(sql, ONE)
    assert checked.tables == frozenset(tables)
    assert fragment in checked.sql
    assert "--" not in checked.sql
    assert "/*" not in checked.sql


def test_short_names_resolve_uniquely_among_grants_only() -> None:
    assert resolve_name("customers", GRANTS) == "demo.public.customers"
    assert resolve_name("sales.orders", GRANTS) == "demo.sales.orders"
    assert resolve_name("DEMO.Public.ORDERS", GRANTS) == "demo.public.orders"
    with pytest.raises(QueryRejected) as e:
        resolve_name("orders", GRANTS)
    assert e.value.rule == "ambiguous_table"
    assert "demo.public.orders" in e.value.message
    assert "demo.sales.orders" in e.value.message


def test_missing_and_ungranted_tables_get_the_same_answer() -> None:
    def message(sql: str) -> tuple[str | None, str]:
        with pytest.raises(QueryRejected) as e:
            check_sql(sql, ONE)
        return e.value.rule, e.value.message.replace("nope", "X").replace("secret", "X")

    assert message("select * from demo.public.nope") == message("select * from demo.public.secret")
    assert message("select * from nope") == message("select * from secret")


@pytest.mark.parametrize("sql", [
    # a CTE defined in a nested scope does not hide the outer reference
    "select * from orders where exists (with secret as (select 1) select * from secret) union all select * from secret",
    "select * from (with secret as (select 1) select * from secret) s, secret",
    "with a as (with secret as (select 1) select * from secret) select * from secret",
    "select (with secret as (select 1) select * from secret), * from secret",
    # a non-recursive CTE does not see itself or later CTEs
    "with secret as (select * from secret) select * from secret",
    "with a as (select * from b), b as (select 1) select * from a",
])
def test_cte_names_hide_tables_only_in_their_own_scope(sql: str) -> None:
    assert rule_of(sql) == "table_not_granted"


def test_cte_visible_in_later_ctes_and_main_query() -> None:
    checked = check_sql("with a as (select * from orders), b as (select * from a) select * from b, a", ONE)
    assert checked.tables == {"demo.public.orders"}


@pytest.mark.parametrize(("sql", "rule"), [
    ("select 1; select 2", "multiple_statements"),
    ("select * from orders;;select 1", "multiple_statements"),
    ("", "parse_error"),
    ("select * from (", "parse_error"),
    ("select 1\x00", "parse_error"),
    ("explain analyze select 1", "statement_not_allowed"),
    ("call pragma_version()", "statement_not_allowed"),
    ("pivot orders on status", "statement_not_allowed"),
    ("select * from read_parquet('x.parquet')", "function_not_allowed"),
    ("select * from test_all_types()", "function_not_allowed"),
    ("select current_setting('temp_directory')", "function_not_allowed"),
    ("select * from 'data.csv'", "table_not_granted"),
    ("select * from x.y.z.w", "table_not_granted"),
    ("select * from (describe orders)", "statement_not_allowed"),
])
def test_rules(sql: str, rule: str) -> None:
    assert rule_of(sql) == rule


def test_over_long_sql_is_413() -> None:
    with pytest.raises(ApiError) as e:
        check_sql("select 1 " + " " * guard.MAX_SQL_CHARS, ONE)
    assert e.value.status == 413
    assert e.value.rule == "query_too_long"


def test_deep_nesting_is_a_parse_error_not_a_crash() -> None:
    assert rule_of("select " + "(" * 5000 + "1" + ")" * 5000) == "parse_error"


def test_results_and_refusals_are_cached() -> None:
    guard.clear_caches()
    check_sql("select * from orders", ONE)
    assert guard.cached("select * from orders", ONE) is not None
    assert guard.cached("select * from orders", GRANTS) is None  # keyed by grants too
    with pytest.raises(QueryRejected):
        check_sql("select * from secret", ONE)
    with pytest.raises(QueryRejected) as e:
        guard.cached("select * from secret", ONE)
    assert e.value.rule == "table_not_granted"


@pytest.mark.parametrize(("where", "expected"), [
    ("id > 3 and status = 'paid'", "id > 3 AND status = 'paid'"),
    ("lower(name) like '%a%'", "LIKE"),
    ("created_at >= date '2025-01-01' -- comment", "CAST('2025-01-01' AS DATE)"),
])
def test_filters_are_regenerated(where: str, expected: str) -> None:
    assert expected in validate_filter(where)


@pytest.mark.parametrize(("where", "rule"), [
    ("id in (select id from secret)", "statement_not_allowed"),
    ("exists (select 1)", "statement_not_allowed"),
    ("1=1 limit 0", "statement_not_allowed"),
    ("1=1 union select 1", "statement_not_allowed"),
    ("1=1) union (select * from secret", "parse_error"),
    ("1=1; drop table x", "multiple_statements"),
    ("read_text('/etc/passwd') is not null", "function_not_allowed"),
    ("id = ?", "statement_not_allowed"),
    ("", "parse_error"),
])
def test_bad_filters(where: str, rule: str) -> None:
    with pytest.raises(ApiError) as e:
        validate_filter(where)
    assert e.value.rule == rule


def test_quote_table() -> None:
    assert quote_table("demo.public.orders") == '"demo"."public"."orders"'
