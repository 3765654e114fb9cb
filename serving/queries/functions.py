"""The function allow-list: which DuckDB functions agent SQL may call, checked on DuckDB's own parse.

Why an allow-list checked on DuckDB's parse tree: a deny-list misses whatever a DuckDB
upgrade adds (a file-existence oracle, say), and sqlglot maps many functions to its own
nodes and prints them under other names. So the guard asks DuckDB's parser
(``json_serialize_sql``, run on the guard's own locked in-memory connection) for every
function, operator, window and table function in the exact SQL that will run, and each
name must be allowed for its position by ``functions.toml`` (a reviewed file generated
from ``duckdb_functions()`` by ``functions_gen.py``). Names DuckDB does not know are
refused too. Groups with verdict ``bound`` are allowed only through the guard's size-bound
rewrite (``functions_bounds.py``): DuckDB must see exactly as many calls of them as the
guard wrapped, so a call sqlglot did not see is refused, not run unbounded.

``list_aggr(l, 'name')`` and its aliases call an aggregate named by a string: the name
must be a constant and an allowed aggregate.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from serving.lib.errors import QueryRejected
from serving.queries.functions_gen import POLICY_FILE, load
from serving.tables.names import reject, shown

# The parser turns these into FUNCTION nodes although they are not catalog functions.
PARSER_FUNCTIONS = frozenset({"unnest", "unlist"})
NAMED_AGGREGATE_FUNCTIONS = frozenset({"list_aggr", "list_aggregate", "array_aggr", "array_aggregate", "aggregate"})
RUNTIME_MARKER = "function_limit:"  # prefix of the errors raised by size-bound checks


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(name: str) -> str:
    """Lower-case ``name`` the way DuckDB does (ASCII letters only)."""
    return name.translate(_ASCII_LOWER)


@dataclasses.dataclass(frozen=True)
class FunctionPolicy:
    """``functions.toml`` as sets: what may be called where, and why the rest may not."""

    expression: frozenset[str]  # allowed scalar, aggregate and window functions, operators and macros
    bounded: frozenset[str]  # allowed only through the size-bound rewrite
    table: frozenset[str]  # allowed table functions
    aggregates: frozenset[str]  # allowed aggregates (for list_aggr's name argument)
    reasons: dict[tuple[str, str], str]  # (kind, name) -> why it is refused

    def refusal(self, kind: str, name: str) -> str:
        return self.reasons.get((kind, name), "it is not on the reviewed list of functions agents may call")


@functools.cache
def policy() -> FunctionPolicy:
    data = load(POLICY_FILE)
    allowed: dict[str, set[str]] = {"expression": set(), "table": set(), "bound": set()}
    reasons: dict[tuple[str, str], str] = {}
    aggregates: set[str] = set()
    for group in data["group"]:
        names = set(group["functions"])
        if group["verdict"] == "allow" and group["kind"] in allowed:
            allowed[group["kind"]] |= names
            if group["name"] == "aggregates":
                aggregates |= names
        elif group["verdict"] == "bound" and group["kind"] == "expression":
            allowed["bound"] |= names
        else:
            reasons.update({(group["kind"], n): group["reason"] for n in names})
    return FunctionPolicy(expression=frozenset(allowed["expression"]), bounded=frozenset(allowed["bound"]),
                          table=frozenset(allowed["table"]), aggregates=frozenset(aggregates), reasons=reasons)


def _walk(node: Any) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(kind, name, node) for every function DuckDB's serialized parse tree calls."""
    if isinstance(node, list):
        for item in node:
            yield from _walk(item)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "TABLE_FUNCTION" and isinstance(node.get("function"), dict):
        function = node["function"]
        yield "table", str(function.get("function_name", "")), function
        for key, value in node.items():
            if key != "function":
                yield from _walk(value)
        for value in function.values():
            yield from _walk(value)
        return
    if node.get("class") in ("FUNCTION", "WINDOW") and "function_name" in node:
        yield "expression", str(node["function_name"]), node
    for value in node.values():
        yield from _walk(value)


def parse_tree(sql: str, serialize: Callable[[str], str]) -> dict[str, Any]:
    """DuckDB's parse of ``sql`` as JSON (``serialize`` runs ``json_serialize_sql`` on the guard's connection)."""
    try:
        tree = json.loads(serialize(sql))
    except (ValueError, TypeError) as e:
        raise reject("parse_error", "DuckDB could not analyse the query") from e
    if tree.get("error"):
        raise reject("parse_error", f"DuckDB could not parse the query: {shown(str(tree.get('error_message', '')))}")
    return tree


def check_functions(tree: dict[str, Any], wrapped: Counter[str]) -> None:
    """Refuse any function ``tree`` calls that its position does not allow; bounded calls must all be wrapped."""
    p = policy()
    seen: Counter[str] = Counter()
    for kind, raw, node in _walk(tree):
        name = ascii_lower(raw)
        if kind == "table":
            if name not in p.table:
                raise reject("function_not_allowed", f"table function {shown(name)}() is not allowed: "
                                                     f"{p.refusal('table', name)}; allowed table functions: "
                                                     f"{', '.join(sorted(p.table))}")
            continue
        if name in p.bounded:
            seen[name] += 1
            continue
        if name not in p.expression and name not in PARSER_FUNCTIONS:
            raise reject("function_not_allowed", f"function {shown(name)}() is not allowed: {p.refusal('expression', name)}")
        if name in NAMED_AGGREGATE_FUNCTIONS:
            _check_named_aggregate(name, node, p)
    for name, count in seen.items():
        if count != wrapped.get(name, 0):
            raise reject("function_not_allowed", f"function {shown(name)}() must be called as a plain function "
                                                 f"({name}(x, …), not as a method or qualified name) so its size can be bounded")


def _constant_text(node: Any) -> str | None:
    """The text of a constant in DuckDB's serialized parse (either serialization format), else None."""
    if not isinstance(node, dict) or node.get("class") != "CONSTANT":
        return None
    value = node.get("literal") or node.get("value") or {}
    text = value.get("text", value.get("value")) if isinstance(value, dict) else None
    return text if isinstance(text, str) else None


def _check_named_aggregate(name: str, node: dict[str, Any], p: FunctionPolicy) -> None:
    args = [a.get("expression") if isinstance(a, dict) else None for a in node.get("arguments") or []]
    args = args or list(node.get("children") or [])
    aggregate = _constant_text(args[1]) if len(args) > 1 else None
    if aggregate is None or ascii_lower(aggregate) not in p.aggregates:
        raise reject("function_not_allowed", f"{name}() needs the name of an allowed aggregate function as a constant string")


def runtime_refusal(message: str) -> QueryRejected | None:
    """The refusal for a DuckDB error raised by a size-bound check (``CAST('function_limit: …' AS INTEGER)``)."""
    at = message.find(RUNTIME_MARKER)
    if at < 0:
        return None
    text = message[at + len(RUNTIME_MARKER):].split("'", 1)[0].strip()
    return QueryRejected(text or "a size bound was exceeded", rule="function_limit")
