"""The table check on DuckDB's own parse: every table DuckDB will read is a granted key or a CTE in scope.

Why a second check: the guard resolves table references on sqlglot's tree and rewrites them
to canonical keys, but which names DuckDB then binds to a CTE and which to its catalog is
DuckDB's decision. Where the two parsers disagree (under ``WITH RECURSIVE`` sqlglot lets a
CTE see itself, DuckDB only in the recursive term of a ``UNION``: ``WITH RECURSIVE
pg_settings AS (SELECT * FROM pg_settings) …`` read DuckDB's settings, temp folder
included), an unqualified name left alone as a "CTE" would reach the catalog's views
(``pg_settings``, ``duckdb_databases``, ``sqlite_master`` …). So, as for functions
(functions.py), the SQL that will run is checked on DuckDB's serialized parse, with
DuckDB's scoping:

- a query node's ``cte_map`` entries are visible in later entries, in the node itself and
  in everything nested in it; an entry never sees itself, except in the recursive term
  (``right``) of a ``RECURSIVE_CTE_NODE``, the only place DuckDB binds the CTE's own name;
- a qualified table reference must be exactly one of the granted keys the guard wrote;
  an unqualified one must name a visible CTE (compared with DuckDB's ASCII case folding);
- a ``SHOW_REF`` (DESCRIBE, SUMMARIZE) must describe a query, not a table named by text.
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any

from serving.tables.names import reject, shown
from shared.identifiers import duck_fold


def check_tables(tree: dict[str, Any], granted: Set[str]) -> None:
    """Refuse (``table_not_granted``) any table in DuckDB's parse ``tree`` that is neither in ``granted`` nor a CTE."""
    keys = {tuple(k.split(".")) for k in granted}
    _walk(tree, frozenset(), keys)


def _walk(node: Any, ctes: frozenset[str], keys: set[tuple[str, ...]]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, ctes, keys)
        return
    if not isinstance(node, dict):
        return
    cte_map = node.get("cte_map")
    if cte_map is not None:
        entries = cte_map.get("map") if isinstance(cte_map, dict) else None
        if not isinstance(entries, list) or not all(isinstance(e, dict) and "key" in e for e in entries):
            raise reject("parse_error", "DuckDB could not analyse the query")  # a parse this check does not know
        visible = set(ctes)
        for entry in entries:
            name = duck_fold(str(entry["key"]))
            _walk(entry.get("value"), frozenset(visible), keys)
            visible.add(name)
        ctes = frozenset(visible)
    kind = node.get("type")
    if kind == "BASE_TABLE":
        _check_base_table(node, ctes, keys)
    elif kind == "SHOW_REF" and node.get("table_name"):
        raise reject("table_not_granted", f"table {shown(str(node['table_name']))} does not exist or is not granted "
                                          "to this token")
    for key, value in node.items():
        if key == "cte_map":
            continue
        if kind == "RECURSIVE_CTE_NODE" and key == "right":
            _walk(value, ctes | {duck_fold(str(node.get("cte_name", "")))}, keys)
        else:
            _walk(value, ctes, keys)


def _check_base_table(node: dict[str, Any], ctes: frozenset[str], keys: set[tuple[str, ...]]) -> None:
    catalog, schema, table = (str(node.get(k) or "") for k in ("catalog_name", "schema_name", "table_name"))
    if catalog and schema and (catalog, schema, table) in keys:
        return
    if not catalog and not schema and duck_fold(table) in ctes:
        return
    written = ".".join(p for p in (catalog, schema, table) if p)
    raise reject("table_not_granted", f"table {shown(written)} does not exist or is not granted to this token")
