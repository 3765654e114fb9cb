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
- ``stale``: never synced, marked stale by orchestration, or older than ``freshness_s``;
- ``fresh``: otherwise (reason: age, and the target if there is one).

Each entry's ``table`` is the name an agent writes in SQL.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from serving.lib.services import Services
from serving.tables.served import served_tables
from shared import status as table_status
from shared.control.db import session_scope
from shared.control.models import RegisteredTableRow, TableStatusRow, utcnow
from shared.identifiers import source_names, sql_part, sql_reference
from shared.served import Manifest, split_key


def partitioning(kind: str, column: str | None) -> str | None:
    """``"daily on created_at"``, the kind alone without a column, None for unpartitioned tables."""
    if kind == "none":
        return None
    return f"{kind} on {column}" if column else kind


def served_facts(manifest: Manifest | None, status: TableStatusRow | None, freshness_s: int | None,
                 now: dt.datetime) -> dict[str, Any]:
    """What is served and how fresh it is: the part every description of a table shares (the
    agents' catalog entry here, the admins' sync status in the sync feature). The served
    manifest is the truth for what is served; rows fall back to the status row when nothing is."""
    synced = table_status.last_synced(manifest, status)
    return {
        "row_count": manifest.row_count if manifest else (status.row_count if status else None),
        "bytes": manifest.bytes if manifest else None,
        "served_version": manifest.version if manifest else None,
        "last_synced_at": synced.isoformat() if synced else None,
        "freshness": table_status.freshness(manifest, status, freshness_s, now),
    }


def entry(key: str, manifest: Manifest | None, status: TableStatusRow | None, reg: RegisteredTableRow | None,
          now: dt.datetime) -> dict[str, Any]:
    names = source_names(key)
    db, schema, name = (sql_part(n) for n in names)
    columns = [{"name": c.name, "type": c.type, "nullable": c.nullable, "description": c.description}
               for c in (manifest.columns if manifest else [])]
    return {
        # ``table`` is what an agent writes in SQL (``demo.public."Order Lines"``; the key itself
        # for ordinary names); ``key`` is the table's key in grants and URLs; ``source`` the exact
        # Snowflake names.
        "table": sql_reference(key), "key": key, "database": db, "schema": schema, "name": name,
        "source": {"database": names[0], "schema": names[1], "table": names[2]},
        "description": reg.description if reg else "",
        "columns": columns,
        **served_facts(manifest, status, reg.freshness_s if reg else None, now),
        "strategy": reg.strategy if reg else (manifest.strategy if manifest else None),
        "partitioning": partitioning(reg.partition_kind, reg.partition_column) if reg is not None else None,
    }


def describe_tables(services: Services, keys: frozenset[str] | set[str]) -> list[dict[str, Any]]:
    """Entries of ``keys`` that exist (served or registered), sorted by key. Blocking: run in a thread."""
    provider = served_tables(services)
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
        manifest = provider.current(key)
        if manifest is None and key not in regs:
            continue  # neither served nor registered: it does not exist
        out.append(entry(key, manifest, statuses.get(key), regs.get(key), now))
    return out
