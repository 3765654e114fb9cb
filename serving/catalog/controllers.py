"""Routes of the catalog feature: the tables this caller may read, one request each."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
import msgspec
from litestar import Request, get

from serving.catalog import services as catalog
from serving.catalog.orchestrator import dagster_freshness
from serving.catalog.schemas import TableInfo, TableList
from serving.lib.audit import annotate
from serving.lib.caller import Caller
from serving.lib.services import Services


@get("/api/v1/data/tables", operation_id="listTables")
async def list_tables(request: Request[Any, Any, Any], caller: Caller, services: Services) -> TableList:
    """Every table this caller may read: columns (name, type, nullable, description), row count, size,
    served version, last successful sync and freshness (fresh / stale / failing, with the reason)."""
    entries = await anyio.to_thread.run_sync(catalog.list_tables, caller, services)
    await _with_dagster_freshness(services, entries)
    annotate(request, tables=[{"table": e["key"], "version": e["served_version"]} for e in entries], rows=len(entries))
    return msgspec.convert({"tables": entries, "count": len(entries)}, TableList)


@get("/api/v1/data/tables/{table:str}", operation_id="getTable")
async def get_table(request: Request[Any, Any, Any], caller: Caller, services: Services, table: str) -> TableInfo:
    """One table, named ``orders``, ``public.orders``, ``demo.public.orders``, ``demo.public."Order Lines"``
    (as in SQL: quoted names are exact) or by its key (unique among your tables).
    A table you may not read answers 404 exactly like one that does not exist."""
    entry = await anyio.to_thread.run_sync(catalog.get_table, caller, table, services)
    await _with_dagster_freshness(services, [entry])
    annotate(request, tables=[{"table": entry["key"], "version": entry["served_version"]}])
    return msgspec.convert(entry, TableInfo)


async def _with_dagster_freshness(services: Services, entries: list[dict[str, Any]]) -> None:
    statuses = await dagster_freshness(services, [e["key"] for e in entries])
    for e in entries:
        e["freshness"]["dagster_status"] = statuses.get(e["key"])


ROUTES: list[Any] = [list_tables, get_table]
