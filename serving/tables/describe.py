"""The one description of a table: columns, size, served version and freshness.

``served_facts`` is what is served and how fresh it is, shared by every view of a table;
``entry`` is the agents' catalog entry built on it (the sync feature's admin status adds
the registration and the last run and job to the same facts).

Why it is cheap: one call costs two control-database queries (statuses and
registrations, both ``WHERE key IN (…)``) and one ``stat`` per table (manifests are
stat-cached by the served-tables provider), whatever the number of tables: no N+1.

Freshness, from the served manifest + ``TableStatusRow`` + the registration's target
(rules in ``shared/status.py``):
- ``failing``: the last run failed after the last success (reason: when and the error);
- ``stale``: never synced, marked stale by orchestration (a missing source), partitions missing
  (a table without a cursor: ``shared.partitions.freshness_coverage``), or older than ``freshness_s``
  (age since the source was read: ``shared.served.read_time``);
- ``fresh``: otherwise (reason: age, and the target if there is one).

Each entry's ``table`` is the name an agent writes in SQL. A swarm or agent caller sees the
table as its grant policy shows it (``serving/tables/policies.py``): excluded columns are
absent, each column says how it is ``masked`` (``hash``, ``partial``, ``null`` or null) and
carries its personal-data ``classification``; ``row_filter`` says whether a row filter
applies (the predicate itself only through the admin API), and ``row_count`` counts the
rows the filter leaves.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from typing import Any

from sqlalchemy import select

from serving.lib.caller import Caller
from serving.lib.errors import ApiError
from serving.lib.services import Services
from serving.tables.live import live_stats
from serving.tables.served import served_tables
from shared import partitions, policies, registry
from shared import status as table_status
from shared.control.db import session_scope
from shared.control.models import RegisteredTableRow, TableStatusRow, utcnow
from shared.identifiers import duck_fold, source_names, sql_part, sql_reference
from shared.registry import RegisteredTable
from shared.served import Manifest, split_key


def schema_version(manifest: Manifest | None) -> str | None:
    """``s-<12 hex>``: a digest of the served columns (names, types, nullability), in order.

    It changes exactly when the schema does (a new version with the same columns keeps it),
    so an agent can tell whether SQL written earlier still fits. None: nothing served yet."""
    if manifest is None:
        return None
    text = json.dumps([[c.name, c.type, bool(c.nullable)] for c in manifest.columns], separators=(",", ":"))
    return "s-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def schema_changes(expected: dict[str, str], current: dict[str, str | None]) -> list[dict[str, str]]:
    """Tables whose ``current`` schema version differs from the one the caller ``expected`` (keys as given)."""
    return [{"table": key, "expected": want, "current": current.get(key) or "none"}
            for key, want in sorted(expected.items()) if current.get(key) != want]


def partitioning(kind: str, column: str | None) -> str | None:
    """``"daily on created_at"``, the kind alone without a column, None for unpartitioned tables."""
    if kind == "none":
        return None
    return f"{kind} on {column}" if column else kind


def seen_column(seen: Manifest | None, column: str | None) -> str | None:
    """``column`` (a registration's partition or cursor column) if the caller's view of the table
    holds it, else None: a column its grant's policy excludes is named nowhere, not in the
    table's metadata either (the catalog leaves it out; naming it there undid that)."""
    if not column or seen is None:
        return None
    folded = duck_fold(column)
    return column if any(duck_fold(c.name) == folded for c in seen.columns) else None


def column_entries(raw: Manifest, seen: Manifest, plan: policies.ViewPlan | None,
                   overrides: dict[str, bool]) -> list[dict[str, Any]]:
    """The visible columns with how each is masked and its classification (an override wins)."""
    verdicts = policies.classification(raw)
    actions = {c.name: c.action for c in plan.columns} if plan else {}
    out = []
    for c in seen.columns:
        verdict = dict(verdicts.get(c.name) or {"category": None, "confidence": 0.0, "personal": True,
                                                 "evidence": {"unclassified": True}})
        if duck_fold(c.name) in overrides:
            verdict |= {"personal": overrides[duck_fold(c.name)], "override": True}
        action = actions.get(c.name, "plain")
        out.append({"name": c.name, "type": c.type, "nullable": c.nullable, "description": c.description,
                    "masked": None if action == "plain" else action, "classification": verdict})
    return out


def served_facts(manifest: Manifest | None, status: TableStatusRow | None, freshness_s: int | None,
                 now: dt.datetime, table: RegisteredTable | None = None) -> dict[str, Any]:
    """What is served and how fresh it is: the part every description of a table shares (the
    agents' catalog entry here, the admins' sync status in the sync feature). The served
    manifest is the truth for what is served; rows fall back to the status row when nothing is.
    With the registration (``table``), a partitioned table's freshness also says which of its
    partitions are served (``shared.partitions.freshness_coverage``)."""
    synced = table_status.last_synced(manifest, status)
    coverage = partitions.freshness_coverage(table, manifest, now) if table is not None and not table.live else {}
    return {
        "row_count": manifest.row_count if manifest else (status.row_count if status else None),
        "bytes": manifest.bytes if manifest else None,
        "served_version": manifest.version if manifest else None,
        "last_synced_at": synced.isoformat() if synced else None,
        "freshness": table_status.freshness(manifest, status, freshness_s, now, **coverage),
    }


def entry(key: str, manifest: Manifest | None, status: TableStatusRow | None, reg: RegisteredTableRow | None,
          now: dt.datetime, *, raw: Manifest | None = None, plan: policies.ViewPlan | None = None,
          overrides: dict[str, bool] | None = None, live: dict[str, Any] | None = None) -> dict[str, Any]:
    names = source_names(key)
    db, schema, name = (sql_part(n) for n in names)
    columns = column_entries(raw or manifest, manifest, plan, overrides or {}) if manifest else []
    return {
        # ``table`` is what an agent writes in SQL (``demo.public."Order Lines"``; the key itself
        # for ordinary names); ``key`` is the table's key in grants and URLs; ``source`` the exact
        # Snowflake names.
        "table": sql_reference(key), "key": key, "database": db, "schema": schema, "name": name,
        "source": {"database": names[0], "schema": names[1], "table": names[2]},
        "description": reg.description if reg else "",
        "columns": columns,
        **served_facts(manifest, status, reg.freshness_s if reg else None, now,
                       registry.from_row(reg) if reg is not None else None),
        "schema_version": schema_version(manifest),
        "strategy": reg.strategy if reg else (manifest.strategy if manifest else None),
        "partitioning": partitioning(reg.partition_kind, seen_column(manifest, reg.partition_column))
        if reg is not None else None,
        "row_filter": bool(plan and plan.row_filters),
        "source_kind": reg.source_kind if reg is not None else "snowflake",
        "live": bool(reg is not None and reg.live),
    } | (_live(live, now) if reg is not None and reg.live else {})


def _live(stats: dict[str, Any] | None, now: dt.datetime) -> dict[str, Any]:
    """A live table: the source's own figures, and no copy to be fresh or stale."""
    stats = stats or {}
    return {
        "columns": stats.get("columns") or [], "row_count": stats.get("row_count"), "bytes": stats.get("bytes"),
        "served_version": None, "last_synced_at": None, "strategy": "live",
        "source_last_altered": stats.get("last_altered"),
        "freshness": {"status": "live", "reason": "not copied: every query reads Snowflake when it runs",
                      "age_s": 0.0, "target_s": None, "last_run_status": None, "last_failure_at": None},
    }


def live_seen(stats: dict[str, Any], policy: policies.PolicySet, key: str) -> dict[str, Any]:
    """A live table's source figures as a caller under ``policy`` may see them. Nothing of it is
    copied, so no policy copy stands between the source and the catalog: excluded columns are
    dropped here, each column says how a read would mask it (the rule's mask, else ``hash`` for a
    name that looks personal, as the pushdown check judges it), and a row filter hides the row
    count and size, which count the rows it removes."""
    rules = policy.rules.get(key, ())
    overrides, unmasked = policy.overrides.get(key, {}), policy.unmasked.get(key, frozenset())
    columns = []
    for c in stats.get("columns") or []:
        action, _ = policies.rule_action(rules, duck_fold(str(c.get("name"))))
        if action == "plain" and policies.live_masked(overrides, unmasked, str(c.get("name"))):
            action = "hash"
        if action != "exclude":
            columns.append(c | {"masked": None if action == "plain" else action})
    hidden = any(r.row_filter for r in rules)
    return stats | {"columns": columns} | ({"row_count": None, "bytes": None} if hidden else {})


def describe_tables(services: Services, keys: frozenset[str] | set[str], caller: Caller) -> list[dict[str, Any]]:
    """Entries of ``keys`` that exist (served or registered), sorted by key, as ``caller`` sees
    them. Blocking: run in a thread."""
    provider = served_tables(services)
    wanted = sorted(keys)
    policy = caller.policy_set()
    admin_overrides: dict[str, dict[str, bool]] = {}
    with session_scope(services.control_url) as s:
        if policy is None:
            for key in wanted:
                found = policies.load_overrides(s, key)
                if found:
                    admin_overrides[key] = {k: bool(r.personal) for k, r in found.items()}
        statuses = {r.key: r for r in s.scalars(select(TableStatusRow).where(TableStatusRow.key.in_(wanted)))}
        regs = {r.key: r for r in s.scalars(select(RegisteredTableRow).where(
            RegisteredTableRow.key.in_(wanted), RegisteredTableRow.deleted_at.is_(None)))}
        s.expunge_all()
    now = utcnow()
    out = []
    for key in wanted:
        try:
            split_key(key)
        except ValueError:
            continue  # not a canonical key (a grant written before names were encoded): names no table
        manifest = provider.current(key)
        if manifest is None and key not in regs:
            continue  # neither served nor registered: it does not exist
        reg = regs.get(key)
        live = live_stats(services).of(reg) if reg is not None and reg.live else None
        if manifest is None or policy is None:
            if live is not None and policy is not None:
                live = live_seen(live, policy, key)
            out.append(entry(key, manifest, statuses.get(key), reg, now, overrides=admin_overrides.get(key), live=live))
            if policy is not None and policy.rules.get(key):
                hide_sync_error(out[-1]["freshness"])
            if live is not None and policy is not None and any(r.row_filter for r in policy.rules.get(key, ())):
                out[-1]["row_filter"] = True
            continue
        plan = policies.plan(policy, manifest)
        try:
            seen: Manifest | None = provider.seen(caller, manifest)
        except ApiError:  # the policy cannot be applied to this version: show no data, queries say why
            seen = dataclasses.replace(manifest, columns=[], row_count=0, bytes=0)
        out.append(entry(key, seen, statuses.get(key), reg, now, raw=manifest, plan=plan,
                         overrides=dict(policy.overrides.get(key, {})), live=live))
        if plan.restricted:
            hide_sync_error(out[-1]["freshness"])
    return out


def hide_sync_error(freshness: dict[str, Any]) -> None:
    """A failing table's reason without the sync's error text, for a caller under a policy on it:
    an error raised while copying rows may quote a value (a cast that failed, a duplicate key),
    taken from a column or row the policy hides."""
    if freshness.get("status") == "failing":
        at = freshness.get("last_failure_at")
        when = at.isoformat() if isinstance(at, dt.datetime) else str(at)
        freshness["reason"] = f"the last sync failed at {when} (its error message is shown to admins)"
