"""The demo schema as the SQL guard sees it, a DuckDB copy of it, and a generator of analytical SQL.

Shared by the guard's property tests and the legitimate-query corpus. The tables and
columns are those of shared/demo_data.py (lower-case, as served); ``demo_duckdb()`` builds
them under the names the guard rewrites references to (``"demo"."public"."orders"``) with a
few rows each, so accepted queries can be run for real.

The generator takes a ``pick`` function (``pick(options) -> one of them``), so the same
grammar serves hypothesis (``data.draw(st.sampled_from(...))``) and a seeded ``random``.
Every function it writes is named in ``FUNCTIONS_USED``; a test checks that each is on the
guard's allow-list, so a generated query that the guard refuses is a false rejection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import duckdb

T = TypeVar("T")
Pick = Callable[[Sequence[Any]], Any]

KEYS = {name: f"demo.public.{name}" for name in ("orders", "customers", "products", "events")}
# table -> {column: kind}; kinds: num, text, time, bool, json
COLUMNS: dict[str, dict[str, str]] = {
    "orders": {"order_id": "num", "customer_id": "num", "product_id": "num", "ordered_at": "time", "updated_at": "time",
               "quantity": "num", "unit_price": "num", "discount": "num", "amount": "num", "status": "text",
               "channel": "text", "currency": "text"},
    "customers": {"customer_id": "num", "name": "text", "email": "text", "country": "text", "segment": "text",
                  "signup_date": "time", "lifetime_value": "num", "is_active": "bool", "updated_at": "time"},
    "products": {"product_id": "num", "sku": "text", "name": "text", "category": "text", "price": "num", "cost": "num",
                 "weight_kg": "num", "created_at": "time", "is_discontinued": "bool"},
    "events": {"event_id": "num", "event_ts": "time", "customer_id": "num", "event_type": "text", "payload": "json",
               "ingested_at": "time"},
}
# (left table, right table, join column)
JOINS = [("orders", "customers", "customer_id"), ("orders", "products", "product_id"), ("events", "customers", "customer_id")]

# Every function name the generators below can write (as DuckDB names them; COALESCE is syntax, not a function).
FUNCTIONS_USED = frozenset({
    "abs", "round", "floor", "ceil", "sign", "greatest", "least", "lower", "upper", "trim", "length", "substr", "concat",
    "left", "starts_with", "contains", "date_trunc", "year", "month", "dayofweek", "strftime", "date_diff", "count",
    "count_star", "sum", "avg", "min", "max", "median", "stddev_samp", "approx_count_distinct", "string_agg", "bool_or",
    "arg_max", "row_number", "rank", "lag", "json_extract_string", "+", "-", "*", "||", "~~", "nullif",
})

_DDL_TYPES = {"num": "DECIMAL(14,2)", "text": "VARCHAR", "time": "TIMESTAMP", "bool": "BOOLEAN", "json": "JSON"}
_VALUES = {"num": "(i % 97)::DECIMAL(14,2)", "text": "['paid','new','shipped','US','DE'][1 + i % 5]",
           "time": "TIMESTAMP '2025-01-01' + to_hours(i::BIGINT)", "bool": "i % 2 = 0",
           "json": "('{\"page\": \"p' || (i % 7) || '\", \"ms\": ' || i || '}')::JSON"}


def demo_duckdb(rows: int = 40) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB holding the demo tables as ``demo.public.<table>``, ``rows`` rows each."""
    con = duckdb.connect(":memory:")
    con.execute("ATTACH ':memory:' AS demo")
    con.execute("CREATE SCHEMA demo.public")
    for table, columns in COLUMNS.items():
        cols = ", ".join(f"({_VALUES[kind]})::{_DDL_TYPES[kind]} AS {name}" for name, kind in columns.items())
        con.execute(f"CREATE TABLE demo.public.{table} AS SELECT {cols} FROM range({rows}) t(i)")
    con.execute("USE demo.public")
    return con


def _cols(table: str, kind: str) -> list[str]:
    return [c for c, k in COLUMNS[table].items() if k == kind]


def num_expr(pick: Pick, table: str, q: str = "", depth: int = 0) -> str:
    cols = [q + c for c in _cols(table, "num")]
    base = pick(cols)
    if depth > 1:
        return str(base)
    other = num_expr(pick, table, q, depth + 1)
    return str(pick([
        base, f"abs({base})", f"round({base}, {pick([0, 1, 2])})", f"floor({base})", f"ceil({base})", f"sign({base})",
        f"({base} + {other})", f"({base} * {pick([2, 3, 0.5])})", f"({base} - {other})", f"coalesce({base}, 0)",
        f"greatest({base}, {other})", f"least({base}, {other})", f"nullif({base}, 0)",
        f"length({text_expr(pick, table, q, depth + 1)})" if _cols(table, "text") else base,
        f"year({pick([q + c for c in _cols(table, 'time')])})", f"month({pick([q + c for c in _cols(table, 'time')])})",
    ]))


def text_expr(pick: Pick, table: str, q: str = "", depth: int = 0) -> str:
    cols = [q + c for c in _cols(table, "text")]
    if not cols:
        return str(pick([f"strftime({q}{c}, '%Y-%m')" for c in _cols(table, "time")]))
    base = pick(cols)
    if depth > 1:
        return str(base)
    return str(pick([
        base, f"lower({base})", f"upper({base})", f"trim({base})", f"substr({base}, 1, {pick([1, 2, 3])})",
        f"left({base}, 2)", f"concat({base}, '-', {pick(cols)})", f"({base} || '/')", f"coalesce({base}, '')",
        f"strftime({pick([q + c for c in _cols(table, 'time')])}, '%Y-%m')",
    ]))


def time_expr(pick: Pick, table: str, q: str = "") -> str:
    base = pick([q + c for c in _cols(table, "time")])
    return str(pick([base, f"date_trunc('{pick(['day', 'week', 'month'])}', {base})", f"CAST({base} AS DATE)"]))


def predicate(pick: Pick, table: str, q: str = "", depth: int = 0) -> str:
    num, text, time = num_expr(pick, table, q, 1), text_expr(pick, table, q, 1), pick([q + c for c in _cols(table, "time")])
    options = [
        f"{num} {pick(['>', '<', '>=', '<=', '=', '<>'])} {pick([0, 1, 10, 42.5])}",
        f"{text} = '{pick(['paid', 'US', 'x'])}'", f"{text} LIKE '{pick(['p%', '%a%', 'U_'])}'",
        f"{num} BETWEEN 1 AND 50", f"{text} IN ('paid', 'new', 'DE')", f"{num} IS NOT NULL",
        f"starts_with({text}, 'p')", f"contains({text}, 'a')", f"{time} >= TIMESTAMP '2025-01-02'",
        f"date_diff('day', {time}, TIMESTAMP '2025-03-01') < 30",
    ]
    options += [q + c for c in _cols(table, "bool")]
    if depth < 1:
        options += [f"({predicate(pick, table, q, 1)} {pick(['AND', 'OR'])} {predicate(pick, table, q, 1)})",
                    f"NOT ({predicate(pick, table, q, 1)})"]
    return str(pick(options))


def aggregate(pick: Pick, table: str, q: str = "") -> str:
    num, text = num_expr(pick, table, q, 1), text_expr(pick, table, q, 2)
    return str(pick([
        "count(*)", f"count({num})", f"count(DISTINCT {text})", f"sum({num})", f"avg({num})", f"min({num})",
        f"max({text})", f"median({num})", f"stddev_samp({num})", f"approx_count_distinct({text})",
        f"string_agg({text}, ',')", f"arg_max({text}, {num})",
    ] + [f"bool_or({q}{c})" for c in _cols(table, "bool")]))


def select_query(pick: Pick, table: str, name: str | None = None) -> str:
    """One query over ``table`` (written as ``name``): a projection, a group-by, or a window."""
    ref = name or table
    shape = pick(["project", "group", "window"])
    where = f" WHERE {predicate(pick, table)}" if pick([True, False]) else ""
    if shape == "project":
        exprs = [f"{pick([num_expr, text_expr, time_expr])(pick, table)} AS c{i}" for i in range(pick([1, 2, 3]))]
        return f"SELECT {', '.join(exprs)} FROM {ref}{where} ORDER BY 1 LIMIT {pick([5, 10, 100])}"
    if shape == "group":
        key = pick([text_expr(pick, table, "", 1), time_expr(pick, table)])
        aggs = ", ".join(f"{aggregate(pick, table)} AS a{i}" for i in range(pick([1, 2])))
        having = " HAVING count(*) > 1" if pick([True, False]) else ""
        return f"SELECT {key} AS k, {aggs} FROM {ref}{where} GROUP BY 1{having} ORDER BY 1"
    order = pick(list(_cols(table, "time")))
    part = pick(_cols(table, "text") or _cols(table, "num"))
    window = pick([f"row_number() OVER (PARTITION BY {part} ORDER BY {order})",
                   f"rank() OVER (ORDER BY {order})", f"lag({order}) OVER (PARTITION BY {part} ORDER BY {order})",
                   f"sum({pick(_cols(table, 'num'))}) OVER (PARTITION BY {part} ORDER BY {order})"])
    return f"SELECT {part} AS p, {order} AS t, {window} AS w FROM {ref}{where} ORDER BY 1, 2, 3 LIMIT 50"


def query(pick: Pick, tables: Sequence[str], name_of: Callable[[str], str] = lambda t: t) -> str:
    """A query that reads only ``tables`` (at least one), in one of several shapes (CTE, join, subquery, union)."""
    table = pick(list(tables))
    joins = [j for j in JOINS if j[0] in tables and j[1] in tables]
    shapes = ["plain", "cte", "union", "derived"]
    if joins:
        shapes += ["join", "semi"]
    shape = pick(shapes)
    if shape == "plain":
        return select_query(pick, table, name_of(table))
    if shape == "cte":
        return f"WITH base AS ({select_query(pick, table, name_of(table))}) SELECT * FROM base ORDER BY ALL LIMIT 20"
    if shape == "derived":
        return f"SELECT count(*) AS n FROM ({select_query(pick, table, name_of(table))}) AS d"
    if shape == "union":
        other = pick(list(tables))
        return (f"SELECT count(*) AS n FROM {name_of(table)} WHERE {predicate(pick, table)} UNION ALL "
                f"SELECT count(*) AS n FROM {name_of(other)} WHERE {predicate(pick, other)}")
    left, right, key = pick(joins)
    if shape == "join":
        return (f"SELECT r.{pick(_cols(right, 'text') or [key])} AS g, {aggregate(pick, left, 'l.')} AS v "
                f"FROM {name_of(left)} AS l JOIN {name_of(right)} AS r ON l.{key} = r.{key} "
                f"WHERE {predicate(pick, right, 'r.')} GROUP BY 1 ORDER BY 1")
    return (f"SELECT {num_expr(pick, left)} AS v FROM {name_of(left)} WHERE {key} IN "
            f"(SELECT {key} FROM {name_of(right)} WHERE {predicate(pick, right)}) ORDER BY 1 LIMIT 10")
