"""Properties of the SQL guard (``check_sql(sql, grants)``), with generated queries (hypothesis).

- A query that reads only granted tables and calls only allowed functions is accepted,
  and the SQL the guard returns runs on a real DuckDB holding those tables.
- A query that reads a table outside the grants, wherever the reference sits (FROM, JOIN,
  a subquery, a CTE body, a UNION branch, a scalar subquery) and however it is spelled, is
  refused with ``table_not_granted``; an unknown name is refused too.
- A query that calls a function off the allow-list (``serving/queries/functions.toml``), in
  expression or table position, or a name DuckDB does not know, is refused with
  ``function_not_allowed``.

The grammar is tests/fuzz/sql_world.py; the runs are derandomized, so each CI run checks
the same examples.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from serving.lib.errors import QueryRejected
from serving.queries import functions
from serving.queries.guard import check_sql
from tests.fuzz.sql_world import FUNCTIONS_USED, KEYS, demo_duckdb, predicate, query

PROPERTY = settings(max_examples=100, deadline=None, database=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
TABLES = sorted(KEYS)


@pytest.fixture(scope="module")
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    c = demo_duckdb()
    yield c
    c.close()


def _pick(data: st.DataObject) -> Any:
    return lambda options: data.draw(st.sampled_from(list(options)))


def _spelling(data: st.DataObject, table: str) -> str:
    """A reference to ``table`` as an agent may write it."""
    return str(data.draw(st.sampled_from([table, f"public.{table}", f"demo.public.{table}", table.upper(),
                                          f'"{table}"', f'demo."public".{table}'])))


def _rejected(sql: str, grants: frozenset[str]) -> QueryRejected:
    with pytest.raises(QueryRejected) as info:
        check_sql(sql, grants)
    return info.value


def test_the_grammar_calls_only_allowed_functions() -> None:
    """So that any refusal of a generated legitimate query is a false rejection, not a grammar slip.

    Bounded functions (``||``, ``concat``) are allowed too: the guard wraps them in a size check.
    """
    policy = functions.policy()
    assert sorted(FUNCTIONS_USED - policy.expression - policy.bounded - functions.PARSER_FUNCTIONS) == []


@PROPERTY
@given(data=st.data())
def test_queries_on_granted_tables_are_accepted_and_run(data: st.DataObject, con: duckdb.DuckDBPyConnection) -> None:
    granted = data.draw(st.lists(st.sampled_from(TABLES), min_size=1, max_size=4, unique=True))
    extra = data.draw(st.lists(st.sampled_from(TABLES), max_size=2, unique=True))  # grants beyond what is read
    grants = frozenset(KEYS[t] for t in {*granted, *extra})
    sql = query(_pick(data), granted, lambda t: _spelling(data, t))
    try:
        guarded = check_sql(sql, grants)
    except QueryRejected as e:
        pytest.fail(f"false rejection ({e.rule}: {e.message}) of:\n{sql}")
    assert guarded.tables <= grants
    assert guarded.tables, sql
    con.execute(guarded.sql).fetchall()


_PLACES = ("from", "join", "exists", "in", "cte", "union", "scalar", "lateral")


def _with_foreign_table(data: st.DataObject, granted: list[str], foreign: str) -> str:
    """A legitimate query over ``granted`` with one reference to ``foreign`` put somewhere in it."""
    pick = _pick(data)
    base = pick(granted)
    place = data.draw(st.sampled_from(_PLACES))
    cond = predicate(pick, base)
    if place == "from":
        return query(pick, [base], lambda t: foreign)
    if place == "join":
        return f"SELECT count(*) FROM {base} AS a JOIN {foreign} AS b ON true WHERE {cond}"
    if place == "exists":
        return f"SELECT count(*) FROM {base} WHERE {cond} AND EXISTS (SELECT 1 FROM {foreign})"
    if place == "in":
        return f"SELECT * FROM {base} WHERE customer_id IN (SELECT customer_id FROM {foreign}) LIMIT 5"
    if place == "cte":
        return f"WITH x AS (SELECT * FROM {foreign}) SELECT count(*) FROM {base}, x WHERE {cond}"
    if place == "union":
        return f"SELECT count(*) FROM {base} WHERE {cond} UNION ALL SELECT count(*) FROM {foreign}"
    if place == "scalar":
        return f"SELECT (SELECT count(*) FROM {foreign}) AS n, count(*) FROM {base} WHERE {cond}"
    return f"SELECT * FROM {base}, LATERAL (SELECT * FROM {foreign} LIMIT 1) AS l LIMIT 5"


@PROPERTY
@given(data=st.data())
def test_a_table_outside_the_grants_is_always_refused(data: st.DataObject) -> None:
    granted = data.draw(st.lists(st.sampled_from(TABLES), min_size=1, max_size=3, unique=True))
    foreign = data.draw(st.sampled_from([t for t in TABLES if t not in granted]))
    sql = _with_foreign_table(data, granted, _spelling(data, foreign))
    error = _rejected(sql, frozenset(KEYS[t] for t in granted))
    assert error.rule == "table_not_granted", (error.rule, error.message, sql)


_WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)


@PROPERTY
@given(data=st.data(), name=_WORDS)
def test_an_unknown_table_is_always_refused(data: st.DataObject, name: str) -> None:
    granted = data.draw(st.lists(st.sampled_from(TABLES), min_size=1, max_size=4, unique=True))
    if name in {*TABLES, "x", "base", "d", "a", "b", "l"}:  # granted tables and the grammar's own aliases
        return
    sql = _with_foreign_table(data, granted, name)
    _rejected(sql, frozenset(KEYS[t] for t in granted))


def _denied() -> tuple[list[str], list[str]]:
    """Functions refused in expression position and in table position, from the reviewed list."""
    p = functions.policy()
    expression = sorted({n for kind, n in p.reasons if kind == "expression"}
                        - p.expression - p.bounded - functions.PARSER_FUNCTIONS)
    table = sorted({n for kind, n in p.reasons if kind == "table"} - p.table)
    return expression, table


DENIED_EXPRESSION, DENIED_TABLE = _denied()


def test_the_allow_list_refuses_something() -> None:
    assert len(DENIED_EXPRESSION) > 20, DENIED_EXPRESSION
    assert {"read_csv", "read_parquet", "query", "query_table", "read_blob"} <= set(DENIED_TABLE) | set(DENIED_EXPRESSION)


@PROPERTY
@given(data=st.data())
def test_a_function_off_the_allow_list_is_always_refused(data: st.DataObject) -> None:
    granted = data.draw(st.lists(st.sampled_from(TABLES), min_size=1, max_size=4, unique=True))
    pick = _pick(data)
    base = pick(granted)
    position = data.draw(st.sampled_from(["select", "where", "table", "nested", "cte"]))
    if position == "table":
        name = data.draw(st.sampled_from(DENIED_TABLE))
        sql = f"SELECT * FROM {name}('{data.draw(st.sampled_from(['x.csv', 'select 1', 'orders']))}') LIMIT 1"
    else:
        name = data.draw(st.sampled_from(DENIED_EXPRESSION))
        call = f"{name}({data.draw(st.sampled_from(['', '1', chr(39) + 'x' + chr(39), '*']))})".replace("(*)", "()")
        sql = {
            "select": f"SELECT {call} AS f, count(*) FROM {base} WHERE {predicate(pick, base)}",
            "where": f"SELECT count(*) FROM {base} WHERE {predicate(pick, base)} AND {call} IS NOT NULL",
            "nested": f"SELECT upper(CAST({call} AS VARCHAR)) AS f FROM {base} LIMIT 1",
            "cte": f"WITH c AS (SELECT {call} AS f FROM {base}) SELECT * FROM c",
        }[position]
    error = _rejected(sql, frozenset(KEYS[t] for t in granted))
    # sqlglot knows the arity of some functions (version() takes none): a wrong argument count is
    # refused at parse time, before the allow-list is consulted. Still a refusal.
    arity = error.rule == "parse_error" and "arguments" in error.message
    assert error.rule == "function_not_allowed" or arity, (name, error.rule, error.message, sql)


@PROPERTY
@given(name=_WORDS.map(lambda w: "zz_" + w))
def test_a_function_duckdb_does_not_know_is_refused(name: str) -> None:
    error = _rejected(f"SELECT {name}(amount) FROM orders", frozenset({KEYS["orders"]}))
    assert error.rule == "function_not_allowed", (error.rule, error.message)
