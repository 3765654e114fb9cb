"""The function allow-list, the size bounds around unaccounted functions, and per-query session state.

- ``functions.toml`` must list every function of the installed DuckDB (a DuckDB upgrade
  that adds one fails here until someone reviews it into a group);
- every refused function is refused by the guard, every allowed one passes it, whatever
  name sqlglot prints it under;
- the size-bound rewrite returns exactly what the plain call returns, with literals,
  bound parameters, NULLs, method syntax and volatile arguments, and refuses past the bound;
- bombs through the HTTP API end quickly with a 400 and bounded memory;
- one caller's query cannot shape another caller's ``random()``.
"""

from __future__ import annotations

import re
import resource
import time
from collections import Counter
from typing import Any

import duckdb
import pytest

from serving.lib.caller import Caller
from serving.lib.errors import ApiError, QueryRejected
from serving.queries import functions, functions_bounds, functions_gen
from serving.queries.engine import QueryEngine
from serving.queries.guard import check_sql
from shared.settings import Settings
from tests.conftest import publish_table
from tests.serving.helpers import assert_error

ORDERS = "demo.public.orders"
GRANTS = frozenset({ORDERS})
POLICY = functions_gen.load()


def names(kind: str, verdict: str) -> list[str]:
    return sorted(n for g in POLICY["group"] if g["kind"] == kind and g["verdict"] == verdict for n in g["functions"])


def rule_of(sql: str) -> str | None:
    try:
        check_sql(sql, GRANTS)
    except ApiError as e:
        return e.rule
    return None


# -- the reviewed list ----------------------------------------------------------------------------------------

def test_functions_toml_lists_exactly_this_duckdbs_functions() -> None:
    """Fails after a DuckDB upgrade adds or drops a function: run functions_gen and review the change."""
    policy, changes = functions_gen.regenerate(POLICY, functions_gen.duckdb_functions())
    assert changes == {"added": [], "removed": []}, "run `python -m serving.queries.functions_gen` and review"
    assert not [g for g in policy["group"] if g["name"] == functions_gen.UNREVIEWED]
    assert functions_gen.dumps(policy) == functions_gen.POLICY_FILE.read_text()


def test_a_new_duckdb_function_lands_unreviewed_and_is_refused() -> None:
    live = functions_gen.duckdb_functions() | {"file_exists": {"expression"}}
    policy, changes = functions_gen.regenerate(POLICY, live)
    assert changes["added"] == ["expression:file_exists"]
    unreviewed = [g for g in policy["group"] if g["name"] == functions_gen.UNREVIEWED]
    assert unreviewed[0]["verdict"] == "refuse"
    assert unreviewed[0]["functions"] == ["file_exists"]


def test_every_group_is_reviewed_with_a_reason_and_no_name_twice() -> None:
    seen: Counter[tuple[str, str]] = Counter()
    for group in POLICY["group"]:
        assert group["kind"] in {"expression", "table", "pragma"}
        assert group["verdict"] in {"allow", "bound", "refuse"}
        assert len(group["reason"]) > 20, group["name"]
        seen.update((group["kind"], n) for n in group["functions"])
    assert [k for k, v in seen.items() if v > 1] == []
    assert set(names("expression", "bound")) == set(functions_bounds._BOUNDS) | functions_bounds._FORMATS
    assert names("table", "allow") == ["generate_series", "json_each", "json_tree", "range", "unnest"]
    assert {"setseed", "nextval", "current_setting", "getvariable", "current_query"} <= set(names("expression", "refuse"))


def arities() -> dict[tuple[str, str], set[int]]:
    """(kind, name) -> the argument counts DuckDB's signatures of it take."""
    con = duckdb.connect()
    try:
        rows = con.execute("SELECT function_name, function_type, len(parameters) FROM duckdb_functions()").fetchall()
    finally:
        con.close()
    out: dict[tuple[str, str], set[int]] = {}
    for name, ftype, count in rows:
        out.setdefault((functions_gen.KINDS.get(ftype, "expression"), name), set()).add(int(count))
    return out


ARITIES = arities()
PLAIN = re.compile(r"[a-z_][a-z0-9_]*")


def calls(kind: str, name: str) -> list[str]:
    return [name + "(" + ", ".join(["NULL"] * n) + ")" for n in sorted(ARITIES.get((kind, name), {1}))]


@pytest.mark.parametrize("name", [n for n in names("expression", "refuse") if PLAIN.fullmatch(n)])
def test_every_refused_function_is_refused(name: str) -> None:
    for call in calls("expression", name):
        assert rule_of(f"SELECT {call}") == "function_not_allowed", call
        assert rule_of(f"SELECT id FROM orders WHERE {call.upper()} IS NULL") == "function_not_allowed", call


@pytest.mark.parametrize("name", [n for n in names("table", "refuse") if PLAIN.fullmatch(n)])
def test_every_refused_table_function_is_refused(name: str) -> None:
    for call in calls("table", name):
        assert rule_of(f"SELECT * FROM {call}") == "function_not_allowed", call


@pytest.mark.parametrize("name", [n for n in names("expression", "allow") + names("expression", "bound")
                                  if PLAIN.fullmatch(n) and n not in functions.NAMED_AGGREGATE_FUNCTIONS])
def test_every_allowed_function_passes_the_allow_list(name: str) -> None:
    """Whatever sqlglot prints an allowed function as, DuckDB's name for what it prints is allowed too."""
    for plain in calls("expression", name):
        call = plain.replace("NULL", "'%s'", 1) if name in {"printf", "format"} else plain
        assert rule_of(f"SELECT {call}") != "function_not_allowed", call


@pytest.mark.parametrize(("sql", "rule"), [
    ("SELECT file_exists('/etc/passwd')", "function_not_allowed"),  # not even a function of this DuckDB
    ("SELECT version()", "function_not_allowed"),  # sqlglot: CurrentVersion
    ("SELECT system.main.setseed(0.5)", "function_not_allowed"),
    ("SELECT 'x'.current_setting()", "function_not_allowed"),
    ('SELECT "SetSeed"(0.5)', "function_not_allowed"),
    ("SELECT list_aggr([1], 'to_aggregate_state')", "function_not_allowed"),
    ("SELECT list_aggr([1], (SELECT 'sum'))", "function_not_allowed"),
    ("SELECT * FROM repeat('x', 3)", "function_not_allowed"),
    ("SELECT * FROM histogram(orders, id)", "function_not_allowed"),
    ("SELECT __guard_1 FROM orders", "statement_not_allowed"),
    ("SELECT 1 + 1, 'a' || 'b', 2::VARCHAR, [1][1], {'a': 1}.a, 1 IS DISTINCT FROM 2, 'a' ~~ 'a'", None),
    ("SELECT editdist3('a', 'b'), json_each IS NULL FROM (SELECT 1 AS json_each)", None),
])
def test_names_are_those_duckdb_sees(sql: str, rule: str | None) -> None:
    assert rule_of(sql) == rule


def test_every_table_function_duckdb_sees_is_checked() -> None:
    assert rule_of("SELECT * FROM orders, LATERAL read_csv('x')") == "function_not_allowed"
    assert rule_of("SELECT * FROM unnest(range(3)), json_each('{\"a\": 1}')") is None


# -- the size-bound rewrite -----------------------------------------------------------------------------------

SAME_RESULT = [
    ("SELECT repeat('ab', 3)", None),
    ("SELECT repeat(?, ?)", ["ab", 3]),
    ("SELECT repeat($1, $2)", ["xy", 2]),
    ("SELECT repeat([1, 2], 2), repeat(NULL, 2), repeat('a', NULL), repeat('a', -1), repeat('\\x01'::BLOB, 2)", None),
    ("SELECT 'ab'.repeat(2), s.repeat(2) FROM (SELECT 'q' AS s)", None),
    ("SELECT lpad('7', 3, '0'), rpad('ab', 4, '.'), lpad(?, ?, ?)", ["x", 4, "*"]),
    ("SELECT replace('banana', 'a', 'oo'), replace('aaa', '', 'x'), replace(?, ?, ?)", ["a-b", "-", "+"]),
    ("SELECT regexp_replace('a1b22', '[0-9]', '#', 'g'), regexp_replace('abc', '(b)', '<\\1\\1>'), "
     "regexp_replace('Ab', 'a', 'x', 'i')", None),
    ("SELECT bitstring('101', 8)", None),
    ("SELECT range(5), range(2, 11, 3), range(10, 1, -4), generate_series(3), generate_series(1, 4, 1)", None),
    ("SELECT range(?, ?, ?), generate_series(?, ?)", [0, 10, 5, 2, 4]),
    ("SELECT generate_series(DATE '2024-01-30', DATE '2024-04-01', INTERVAL 1 MONTH), "
     "range(TIMESTAMP '2024-01-01', TIMESTAMP '2024-01-01 03:00', INTERVAL 1 HOUR)", None),
    ("SELECT list_resize([1, 2], 4), list_resize([1], 3, 9), array_resize([1, 2, 3], 1)", None),
    ("SELECT levenshtein('kitten', 'sitting'), editdist3('ab', 'ba'), damerau_levenshtein('ab', 'ba'), "
     "jaro_similarity('martha', 'marhta'), jaro_winkler_similarity('martha', 'marhta')", None),
    ("SELECT printf('%05d|%-4s|%.2f', 42, 'x', 3.14159), format('{:>6}|{}', 'ab', 1)", None),
    ("SELECT upper(repeat(lpad('a', 2, 'b'), 2)), list_transform([1, 2], lambda i: repeat('*', i))", None),
    ("SELECT string_agg(repeat(s, 2), ',') FROM (VALUES ('a'), ('b')) v(s)", None),
    ("SELECT repeat(s, row_number() OVER (ORDER BY s)::INTEGER) FROM (VALUES ('a'), ('b')) v(s) ORDER BY 1", None),
    ("SELECT lpad(s, 3, '0') AS k, count(*) FROM (VALUES ('a'), ('b'), ('a')) v(s) GROUP BY lpad(s, 3, '0') ORDER BY 1", None),
    ("SELECT 'a' || 'b' || 1, concat('x', NULL, 2), concat_ws('-', 'a', NULL, 'c'), [1] || [2], list_concat([1], [2], [3]), "
     "NULL || 'a', '\\x01'::BLOB || '\\x02'::BLOB, DATE '2024-01-01' || 'x'", None),
    ("SELECT s || s AS k, count(*) FROM (VALUES ('a'), ('b')) v(s) GROUP BY s || s ORDER BY 1", None),
    ("SELECT id || ':' || name FROM (VALUES (1, 'a')) v(id, name) WHERE id || name = ?", ["1a"]),
    ("SELECT upper(repeat(repeat(s, 2), 2)) FROM (VALUES ('a')) v(s) GROUP BY upper(repeat(repeat(s, 2), 2))", None),
]


@pytest.mark.parametrize(("sql", "params"), SAME_RESULT)
def test_bounded_calls_return_what_the_plain_call_returns(sql: str, params: list[Any] | None) -> None:
    rewritten = check_sql(sql, GRANTS).sql
    assert "function_limit" in rewritten or "PRINTF" in rewritten or "FORMAT" in rewritten
    con = duckdb.connect()
    try:
        expected = con.execute(sql, params).fetchall()
        assert con.execute(rewritten, params).fetchall() == expected
    finally:
        con.close()


T = "(SELECT range AS id, 's' || (range % 3) AS status, range * 1.5 AS amount FROM range(10)) t"
PLACES = [  # bounded calls (||, lpad) where SQL restricts expressions: not volatile, equal to their twins
    "SELECT * FROM (SELECT status, amount FROM @) PIVOT (max(status || 'x') FOR status IN ('s0', 's1')) ORDER BY ALL",
    "SELECT status || '-' AS k, count(*) FROM @ GROUP BY ALL ORDER BY ALL",
    "SELECT status, string_agg(id::VARCHAR || '!', ',' ORDER BY lpad(id::VARCHAR, 3, '0')) FROM @ GROUP BY status "
    "HAVING string_agg(status, '') || 'a' <> '' ORDER BY 1",
    "SELECT status || 'a' AS k, k || 'b' AS k2 FROM @ ORDER BY k2 LIMIT 2",
    "SELECT lag(status || 'x') OVER (PARTITION BY lpad(status, 4, '0') ORDER BY id) FROM @ ORDER BY id",
    "SELECT DISTINCT ON (status || 'x') id FROM @ ORDER BY status || 'x', id",
    "SELECT id FROM @ QUALIFY row_number() OVER (PARTITION BY status || '' ORDER BY id) = 1 ORDER BY id",
    "SELECT count(*) FILTER (WHERE status || 'x' = 's1x') FROM @",
    "SUMMARIZE SELECT status || 'x' AS k FROM @",
    "SELECT list_transform([1, 2], lambda x: x::VARCHAR || status) FROM @ ORDER BY id LIMIT 1",
    "SELECT (SELECT max(lpad(s, 3, '0')) FROM (SELECT t.status AS s)) FROM @ ORDER BY id LIMIT 1",
    "SELECT status, count(*) FROM @ GROUP BY ROLLUP (status) HAVING status || '' IS NOT NULL ORDER BY 1",
]


@pytest.mark.parametrize("sql", [p.replace("@", T) for p in PLACES])
def test_bounded_calls_work_where_sql_restricts_expressions(sql: str) -> None:
    con = duckdb.connect()
    try:
        assert con.execute(check_sql(sql, GRANTS).sql).fetchall() == con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize(("sql", "params"), [
    ("SELECT repeat(?, ?)", ["x", 2_000_000_000]),
    ("SELECT length(repeat($1, $2))", ["ab", 600_000]),
    ("SELECT damerau_levenshtein(repeat('a', ?), repeat('b', ?))", [15_000, 15_000]),
    ("SELECT len(range(?))", [300_000_000]),
    ("SELECT len(generate_series(?, ?, ?))", [0, 10**18, 1]),
    ("SELECT len(range(?, ?, ?))", [10**18, 0, -1]),
    ("SELECT lpad('x', ?, ?)", [10**9, "y"]),
    ("SELECT list_resize([1], ?)", [10**9]),
    ("SELECT replace(repeat('a', ?), 'a', repeat('b', ?))", [20_000, 20_000]),
])
def test_bounds_hold_with_bound_parameters(sql: str, params: list[Any]) -> None:
    con = duckdb.connect()
    started = time.monotonic()
    try:
        with pytest.raises(duckdb.Error) as e:
            con.execute(check_sql(sql, GRANTS).sql, params).fetchall()
    finally:
        con.close()
    assert functions.RUNTIME_MARKER in str(e.value)
    assert time.monotonic() - started < 2
    refusal = functions.runtime_refusal(str(e.value))
    assert isinstance(refusal, QueryRejected)
    assert refusal.rule == "function_limit"


def test_the_bound_and_the_call_see_the_same_value_of_a_volatile_argument() -> None:
    """Each argument is evaluated once: random() cannot pass the check small and reach the call large."""
    sql = "SELECT length(repeat('a', CASE WHEN random() < 0.5 THEN 1 ELSE 2000000000 END)) FROM range(200)"
    con = duckdb.connect()
    try:
        outcomes = set()
        for _ in range(5):
            try:
                rows = con.execute(check_sql(sql, GRANTS).sql).fetchall()
            except duckdb.Error as e:
                outcomes.add("refused" if functions.RUNTIME_MARKER in str(e) else str(e))
            else:
                outcomes.add("ran" if {r[0] for r in rows} == {1} else "wrong")
        assert outcomes <= {"refused", "ran"}
    finally:
        con.close()


def test_bounds_shrink_inside_lambdas_which_run_once_per_element() -> None:
    con = duckdb.connect()
    try:
        assert con.execute(check_sql("SELECT length(repeat('a', 2000))", GRANTS).sql).fetchall() == [(2000,)]
        with pytest.raises(duckdb.Error, match="inside a lambda"):
            con.execute(check_sql("SELECT list_transform([2000], lambda n: repeat('a', n))", GRANTS).sql).fetchall()
        with pytest.raises(duckdb.Error, match="function_limit"):
            con.execute(check_sql("SELECT list_transform(range(100000), lambda i: range(1000))", GRANTS).sql).fetchall()
        ok = check_sql("SELECT list_transform([1, 2], lambda i: lpad(i::VARCHAR, 3, '0'))", GRANTS).sql
        assert con.execute(ok).fetchall() == [(["001", "002"],)]
    finally:
        con.close()


def test_the_splice_touches_only_its_own_placeholders() -> None:
    sql = "SELECT repeat('a', 2) AS r, '__guard_p0' AS s, '__guard_lambda' AS t"
    con = duckdb.connect()
    try:
        assert con.execute(check_sql(sql, GRANTS).sql).fetchall() == [("aa", "__guard_p0", "__guard_lambda")]
    finally:
        con.close()


def test_a_long_concatenation_chain_is_one_bound() -> None:
    sql = "SELECT " + " || ".join(f"'c{i}'" for i in range(250)) + " AS s, ('a' || 'b') || ('c' || 'd') AS t"
    rewritten = check_sql(sql, GRANTS).sql
    assert rewritten.count("function_limit") == 4  # the chain, and the three in t
    con = duckdb.connect()
    try:
        assert con.execute(rewritten).fetchall() == con.execute(sql).fetchall()
    finally:
        con.close()


def test_a_query_may_make_a_bounded_number_of_bounded_calls() -> None:
    many = "SELECT " + ", ".join(f"repeat('a', {i})" for i in range(functions_bounds.MAX_BOUNDED_CALLS + 1))
    assert rule_of(many) == "function_not_allowed"
    started = time.monotonic()
    assert rule_of("SELECT " + ", ".join(f"lpad(s, {i}, 'x')" for i in range(200)) + " FROM (SELECT 'a' AS s)") is None
    assert time.monotonic() - started < 3


def test_deeply_nested_bounds_grow_the_sql_linearly() -> None:
    def rewritten(depth: int) -> str:
        return check_sql("SELECT " + "repeat(" * depth + "'a'" + ", 1)" * depth, GRANTS).sql

    assert rewritten(30).lower().count("repeat([") == 30
    assert len(rewritten(30)) < 3.3 * len(rewritten(10))


# -- through the API: bombs end quickly, memory stays bounded -------------------------------------------------

BOMBS = [
    ("SELECT damerau_levenshtein(repeat('a', ?), repeat('b', ?))", [15000, 15000], 1),
    ("SELECT length(repeat('x', 2000000000))", None, 5),
    ("SELECT length(lpad('x', ?, 'y'))", [300_000_000], 5),
    ("SELECT len(range(?))", [300_000_000], 5),
    ("SELECT len(list_resize([1], 300000000))", None, 5),
    ("SELECT length(regexp_replace(repeat('a', 20000), '', repeat('b', 20000), 'g'))", None, 5),
    ("SELECT length(printf('%0300000000d', 1))", None, 5),
    ("WITH t AS (SELECT repeat('x', 1000000) s), u AS (SELECT " + " || ".join(["s"] * 40) + " AS s FROM t) "
     "SELECT length(" + " || ".join(["s"] * 40) + ") FROM u", None, 2),
    ("SELECT length(list_reduce(list_transform(range(40), lambda i: 'ab'), lambda acc, x: acc || acc))", None, 2),
]


def test_bombs_through_the_api_end_quickly_with_bounded_memory(client: Any, api_settings: Settings, make_swarm: Any,
                                                                agent_headers: Any) -> None:
    publish_table(api_settings.served_path, ORDERS, "select range as id from range(10)")
    headers = agent_headers(make_swarm([ORDERS])["id"])
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for sql, params, timeout_s in BOMBS:
        for _ in range(2):
            started = time.monotonic()
            resp = client.post("/api/v1/queries/execute", headers=headers,
                               json={"query": sql, "params": params, "timeout_s": timeout_s, "wait_s": 30})
            assert time.monotonic() - started < timeout_s + 1, sql
            error = assert_error(resp, 400)
            assert error["rule"] in {"function_limit", "function_not_allowed"}, (sql, error)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert grown_mb < 300, grown_mb
    ok = client.post("/api/v1/queries/execute", headers=headers,
                     json={"query": "SELECT repeat('ab', ?) AS s, levenshtein('kitten', 'sitting') AS d", "params": [2]})
    assert ok.status_code == 200, ok.text
    assert ok.json()["rows"] == [["abab", 3]]


# -- session state does not outlive a query ----------------------------------------------------------------------

def test_one_callers_query_cannot_shape_anothers_random(tmp_path: Any) -> None:
    settings = Settings.from_env({"AGENTS_DATA_HOME": str(tmp_path)})
    publish_table(settings.served_path, ORDERS, "select range as id from range(10)")
    alice = Caller(kind="agent", subject="alice", token_id="id-a", swarm_id="s1", grants=GRANTS)  # noqa: S106
    bob = Caller(kind="agent", subject="bob", token_id="id-b", swarm_id="s2", grants=GRANTS)  # noqa: S106
    con = duckdb.connect()
    con.execute("SELECT setseed(0.5)")
    seeded = con.execute("SELECT random()").fetchone()
    con.close()
    engine = QueryEngine(settings)
    try:
        with pytest.raises(QueryRejected) as e:
            engine.execute(alice, "SELECT setseed(0.5) FROM orders")
        assert e.value.rule == "function_not_allowed"
        for _ in range(5):
            # even if a seed were set (here through the unguarded server-side path), the next query gets a fresh session
            engine.execute_platform_sql(alice, [ORDERS], "SELECT setseed(0.5)")
            assert tuple(engine.execute(bob, "SELECT random() AS r").rows[0]) != seeded
    finally:
        engine.close()
