"""The table catalog: readable tables with columns, size, served version and freshness.

Why it is cheap: one request costs two control-database queries (statuses and
registrations, both ``WHERE key IN (…)``) and one ``stat`` per table (manifests are
stat-cached by the query engine), whatever the number of tables: no N+1.

Freshness, from the served manifest + ``TableStatusRow`` + the registration's target:
- ``failing``: the last run failed after the last success (reason: when and the error);
- ``stale``: never synced, marked stale by orchestration, or older than ``freshness_s``;
- ``fresh``: otherwise (reason: age, and the target if there is one).

``resolve_table(caller, name, services)`` is the one name resolver for table paths
(catalog, sampling, profiling): ``orders``, ``public.orders``, ``demo.public.orders`` or
``demo.public."Order Lines"`` (URL-encoded), or the key itself, unique among the caller's
grants; unknown and ungranted answer the same 404. Each entry's ``table`` is the name an
agent writes in SQL.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from serving.auth.caller import Caller
from serving.lib.errors import NotFound, QueryRejected
from serving.lib.services import Services
from serving.queries.names import grant_index
from serving.queries.services import get_engine
from shared import status as table_status
from shared.control.db import session_scope
from shared.control.models import RegisteredTableRow, TableStatusRow, utcnow
from shared.identifiers import canonical_key, source_names, sql_part, sql_reference
from shared.served import Manifest, split_key


def not_found(name: str) -> NotFound:
    shown = name if len(name) <= 200 else name[:200] + "…"
    return NotFound(f"table {shown} does not exist or is not granted to this token", rule="table_not_granted")


def resolve_table(caller: Caller, name: str, services: Services) -> str:
    """The granted key ``name`` designates, or 404 ``table_not_granted`` (same answer for unknown tables).

    A short name matching several of the caller's tables is also a 404, whose message
    lists the caller's own candidates (no other table is ever named).
    """
    grants = readable_keys(caller, services)
    try:
        return grant_index(grants).resolve_text(name)
    except QueryRejected as e:
        if e.rule == "ambiguous_table":
            raise NotFound(e.message, rule="ambiguous_table") from e
        raise not_found(name) from e


def readable_keys(caller: Caller, services: Services) -> frozenset[str]:
    """Keys the caller may read: its grants, or every served table for admin."""
    return get_engine(services).grants_of(caller)


# Freshness rules live with the status row they read (shared/status.py).
freshness = table_status.freshness


def _entry(key: str, manifest: Manifest | None, status: TableStatusRow | None, reg: RegisteredTableRow | None,
           now: dt.datetime) -> dict[str, Any]:
    names = source_names(key)
    db, schema, name = (sql_part(n) for n in names)
    columns = [{"name": c.name, "type": c.type, "nullable": c.nullable, "description": c.description}
               for c in (manifest.columns if manifest else [])]
    synced = status.last_success_at if status else None
    partitioning = None
    if reg is not None and reg.partition_kind != "none":
        partitioning = f"{reg.partition_kind} on {reg.partition_column}" if reg.partition_column else reg.partition_kind
    return {
        # ``table`` is what an agent writes in SQL (``demo.public."Order Lines"``; the key itself
        # for ordinary names); ``key`` is the table's key in grants and URLs; ``source`` the exact
        # Snowflake names.
        "table": sql_reference(key), "key": key, "database": db, "schema": schema, "name": name,
        "source": {"database": names[0], "schema": names[1], "table": names[2]},
        "description": reg.description if reg else "",
        "columns": columns,
        "row_count": manifest.row_count if manifest else (status.row_count if status else None),
        "bytes": manifest.bytes if manifest else None,
        "served_version": manifest.version if manifest else None,
        "last_synced_at": synced.isoformat() if synced else (manifest.published_at if manifest else None),
        "freshness": freshness(manifest, status, reg.freshness_s if reg else None, now),
        "strategy": reg.strategy if reg else (manifest.strategy if manifest else None),
        "partitioning": partitioning,
    }


def describe_tables(services: Services, keys: frozenset[str] | set[str]) -> list[dict[str, Any]]:
    """Catalog entries of ``keys`` that exist (served or registered), sorted by key. Blocking: run in a thread."""
    engine = get_engine(services)
    wanted = sorted(keys)
    with session_scope(services.control_url) as s:
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
        manifest = engine.current(key)
        if manifest is None and key not in regs:
            continue  # neither served nor registered: it does not exist
        out.append(_entry(key, manifest, statuses.get(key), regs.get(key), now))
    return out


def list_tables(caller: Caller, services: Services) -> list[dict[str, Any]]:
    keys = set(readable_keys(caller, services))
    if caller.is_admin:  # registered but never served tables too
        with session_scope(services.control_url) as s:
            keys |= set(s.scalars(select(RegisteredTableRow.key).where(RegisteredTableRow.deleted_at.is_(None))))
    return describe_tables(services, keys)


def get_table(caller: Caller, name: str, services: Services) -> dict[str, Any]:
    key = resolve_table(caller, name, services) if not caller.is_admin else _admin_key(caller, name, services)
    entries = describe_tables(services, {key})
    if not entries:
        raise not_found(name)
    return entries[0]


def _admin_key(caller: Caller, name: str, services: Services) -> str:
    """Admin may also name a registered table that was never served, by its full key or SQL name."""
    try:
        return canonical_key(name)
    except ValueError:
        return resolve_table(caller, name, services)
