"""Dry runs: what a query would read and cost, without running it.

The guard's verdict is the real one (a refused query is the same 4xx as a real run).
Estimates come from DuckDB's own plan (``EXPLAIN (FORMAT json)`` of the guarded SQL on an
instance holding exactly the caller's tables): ``estimated_rows`` is the plan's root
cardinality; ``estimated_bytes_scanned`` is, per table the plan scans, the served file's
bytes times the share of its columns the scan reads. Statistics are DuckDB's (row counts
and min/max per row group), so the figures are estimates, not promises.

Every figure is of the tables as the caller reads them: under a grant policy, its policy
copy's rows, bytes, columns and ``schema_version``. The served file's own figures would
tell the rows a row filter removed, and its column count and schema digest the excluded
columns (a schema digest can be matched against guessed names and types).

``over_threshold`` is the cheap test every real run makes: only when the tables a query
reads hold more bytes than ``QUERY_ASYNC_THRESHOLD_BYTES`` together is the plan asked,
so ordinary queries pay one sum.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from serving.lib.caller import Caller
from serving.queries.engine import QueryEngine
from serving.queries.guard import GuardedQuery
from serving.tables.describe import schema_version
from shared.served import Manifest

CARDINALITY = "Estimated Cardinality"


def _nodes(plan: Any) -> Iterator[dict[str, Any]]:
    stack = list(plan) if isinstance(plan, list) else [plan]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.get("children") or [])


def _root_rows(plan: Any) -> int | None:
    """The first cardinality found going down from the root (projections carry their input's)."""
    node = plan[0] if isinstance(plan, list) and plan else plan
    while isinstance(node, dict):
        value = (node.get("extra_info") or {}).get(CARDINALITY)
        if value is not None:
            try:
                return int(str(value).lstrip("~"))
            except ValueError:
                return None
        children = node.get("children") or []
        node = children[0] if children else None
    return None


def _scanned_bytes(plan: Any, manifests: tuple[Manifest, ...]) -> int:
    total = 0
    for node in _nodes(plan):
        info = node.get("extra_info") or {}
        if "SCAN" not in str(node.get("name", "")).upper() or "Table" not in info:
            continue
        name = str(info["Table"]).lower()
        match = [m for m in manifests if m.table_key.lower().split(".")[-1] in name] or list(manifests)
        for m in match[:1]:
            projected = str(info.get("Projections") or "")
            wanted = len([p for p in projected.split("\n") if p.strip()]) if projected else len(m.columns)
            share = min(1.0, wanted / max(1, len(m.columns)))
            total += int(m.bytes * share)
    return total


def plan(engine: QueryEngine, caller: Caller, checked: GuardedQuery, params: Any, timeout_s: float, *,
         versions: Mapping[str, str] | None = None) -> Any:
    """DuckDB's physical plan of ``checked`` as JSON (blocking: run it on a worker thread)."""
    result = engine.execute_platform_sql(caller, checked.tables, f"EXPLAIN (FORMAT json) {checked.sql}",
                                         params=params, max_rows=10, timeout_s=timeout_s, versions=versions)
    for row in result.rows:
        if len(row) >= 2 and row[0] == "physical_plan":
            return json.loads(row[1])
    return []


def dry_run(engine: QueryEngine, caller: Caller, checked: GuardedQuery, *, params: Any, max_rows: int,
            timeout_s: float, threshold: int, versions: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The dry-run answer (``schemas.DryRun`` without ``schema_changes``), at ``versions`` where pinned. Blocking.

    The tables as the caller reads them (its grant policy's copy): the raw version's row
    count, bytes and schema version would tell an agent how many rows its row filter hides
    and when its excluded columns change, and would not match its catalog."""
    manifests = engine.manifests(checked.tables, caller, versions)
    physical = plan(engine, caller, checked, params, timeout_s, versions=versions)
    rows = _root_rows(physical)
    scanned = _scanned_bytes(physical, manifests)
    return {
        "dry_run": True, "verdict": "allowed", "sql_hash": checked.sql_hash,
        "tables": [{"table": m.table_key, "version": m.version, "synced_at": m.published_at,
                    "schema_version": schema_version(m), "row_count": m.row_count, "bytes": m.bytes}
                   for m in manifests],
        "estimated_rows": rows, "estimated_bytes_scanned": scanned, "estimate_source": "duckdb_plan",
        "max_rows": max_rows, "would_be_capped": None if rows is None else rows > max_rows,
        "would_run_as_job": bool(threshold) and scanned > threshold, "async_threshold_bytes": threshold,
    }


def over_threshold(engine: QueryEngine, caller: Caller, checked: GuardedQuery, *, params: Any, timeout_s: float,
                   threshold: int) -> bool:
    """Whether a real run should go to an async job at once (blocking; cheap unless the tables are big)."""
    if threshold <= 0:
        return False
    manifests = engine.manifests(checked.tables, caller)
    if sum(m.bytes for m in manifests) <= threshold:
        return False
    return _scanned_bytes(plan(engine, caller, checked, params, timeout_s), manifests) > threshold
