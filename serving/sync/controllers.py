"""Routes of the sync feature: table management and syncs (admin), refresh requests (agents).

Admin (``requires_admin``): browse the source, list/register/delete tables, start syncs
and backfills, read jobs and table sync state. Agents: ask for a refresh of a granted
table and poll it; a table the caller may not read answers exactly like a missing one.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import anyio.to_thread
from litestar import Request, Response, delete, get, post

from serving.lib import metrics
from serving.lib.audit import annotate
from serving.lib.budgets import REFRESH, get_budgets
from serving.lib.caller import Caller
from serving.lib.errors import ApiError, NotFound
from serving.lib.guards import requires_admin
from serving.lib.services import Services
from serving.sync import store
from serving.sync.core import get_sync, resolve_readable
from serving.sync.refresh import request_refresh
from serving.sync.schemas import (
    RefreshAnswer,
    RefreshRequest,
    SyncStart,
    SyncStarted,
    TableRegistration,
    TableRegistrationCreate,
)
from serving.tables.policies import hides_figures, sync_errors_seen
from serving.tables.served import served_tables

TAGS = ["sync"]


@get("/api/v1/sync/snowflake/tables", operation_id="syncBrowseSource", tags=TAGS, guards=[requires_admin])
async def browse_source(services: Services, schema_name: str | None = None) -> dict[str, Any]:
    """Tables in the Snowflake source (row count, bytes, last altered), from one INFORMATION_SCHEMA query."""
    tables = await get_sync(services).source_tables(schema_name)
    return {"database": services.settings.snowflake.database, "tables": tables}


@get("/api/v1/sync/tables", operation_id="syncListTables", tags=TAGS, guards=[requires_admin])
async def list_tables(services: Services) -> dict[str, Any]:
    """Registered tables with strategy, partitioning, schedule, last run, served version and freshness."""
    return {"tables": await get_sync(services).tables()}


@post("/api/v1/sync/tables/register", operation_id="syncRegisterTable", tags=TAGS, guards=[requires_admin])
async def register_table(services: Services, data: TableRegistrationCreate) -> Response[TableRegistration]:
    """Validate against the source, store, and reload the Dagster code location: the asset exists on return."""
    svc = get_sync(services)
    reg, created = await svc.register(data.to_raw())
    body = TableRegistration(table=reg.key, created=created, asset_key=reg.asset_key_path,
                             dagster_url=svc.client.asset_url(reg.asset_key_path),
                             registration=(await svc.table(reg.key)))
    return Response(body, status_code=201 if created else 200)


@delete("/api/v1/sync/tables/{schema_name:str}/{table_name:str}", operation_id="syncDeleteTable", tags=TAGS,
        status_code=200, guards=[requires_admin])
async def delete_table(services: Services, schema_name: str, table_name: str,
                       database: str | None = None) -> dict[str, Any]:
    """Soft-delete a registration (history kept), remove its served data, reload Dagster."""
    svc = get_sync(services)
    reg = await svc.unregister(svc.key_for(schema_name, table_name, database))
    return {"table": reg.key, "deleted": True}


@post("/api/v1/sync/start", operation_id="syncStart", tags=TAGS, status_code=202, guards=[requires_admin])
async def start_sync(caller: Caller, services: Services, data: SyncStart) -> SyncStarted:
    """Launch a run (whole table or one partition) or a backfill (several partitions or a range)."""
    svc = get_sync(services)
    reg = await svc.registered(svc.key_for(data.schema_name, data.table_name, data.database))
    rng = data.partition_range
    job = await svc.start(reg, strategy=data.strategy, partitions=data.partitions,
                          start=rng.start if rng else None, end=rng.end if rng else None, requested_by=caller.subject)
    return SyncStarted(job_id=job.id, kind=job.kind, status=job.status, dagster_url=svc.job_url(job),
                       table=reg.key, partitions=job.partitions)


@get("/api/v1/sync/jobs/{job_id:str}", operation_id="syncGetJob", tags=TAGS, guards=[requires_admin])
async def get_job(services: Services, job_id: str) -> dict[str, Any]:
    """Status, partitions done/failed/pending, rows, Dagster's errors, times, and the Dagster UI link."""
    svc = get_sync(services)
    state = await svc.job(job_id)
    return state.to_dict(svc)


@get("/api/v1/sync/status/{schema_name:str}/{table_name:str}", operation_id="syncTableStatus", tags=TAGS, guards=[requires_admin])
async def table_status(services: Services, schema_name: str, table_name: str,
                       database: str | None = None) -> dict[str, Any]:
    """One table's sync state: last sync, served version, freshness, last run and last job."""
    svc = get_sync(services)
    return await svc.table(svc.key_for(schema_name, table_name, database))


@post("/api/v1/data/tables/{table:str}/refresh", operation_id="refreshTable", tags=["data"], status_code=202)
async def refresh_table(request: Request[Any, Any, Any], caller: Caller, services: Services, table: str,
                        data: RefreshRequest | None = None) -> Response[RefreshAnswer]:
    """Ask for fresh data: ``already_fresh``, the queued or running job, or a new one, with an estimate.

    Agents (any reader) may refresh tables they are granted; one refresh per table runs at a
    time whoever asks; each token may ask ``AGENT_REFRESHES_PER_MINUTE`` times a minute, within
    its agent's and swarm's refresh budgets per hour (429).
    """
    svc = get_sync(services)
    try:
        key = await resolve_readable(caller, table, services)
        annotate(request, tables=[{"table": key}])
        await get_budgets(services).admit(request.scope, caller, REFRESH)
        reg = await svc.registered(key)
        outcome = await request_refresh(svc, reg, requested_by=caller.subject,
                                        max_age_s=data.max_age_s if data else None)
    except ApiError as e:
        metrics.observe_refresh("refused" if e.status < 500 else "unavailable")
        raise
    metrics.observe_refresh(outcome.outcome)
    # Table-wide figures (row counts, watermarks, in fields or spelled in the note) would undo the policy.
    figures = not hides_figures(caller, served_tables(services).current(key), key)
    body = RefreshAnswer(**outcome.to_dict(figures=figures))
    if outcome.job is not None:
        # The table's key, each part one encoded path segment: the caller's own spelling (spaces,
        # quotes, any case) made a URL that did not parse or named the table differently.
        body.poll_url = f"/api/v1/data/tables/{quote(key, safe='')}/refresh/{quote(outcome.job.id, safe='')}"
    return Response(body, status_code=200 if outcome.outcome == "already_fresh" else 202)


@get("/api/v1/data/tables/{table:str}/refresh/{job_id:str}", operation_id="refreshStatus", tags=["data"])
async def refresh_status(request: Request[Any, Any, Any], caller: Caller, services: Services, table: str,
                         job_id: str) -> dict[str, Any]:
    """Poll a refresh job of a granted table (works through any API replica)."""
    svc = get_sync(services)
    key = await resolve_readable(caller, table, services)
    annotate(request, tables=[{"table": key}])
    # An unknown id and another table's job answer alike (the job is not looked at, nor Dagster
    # asked about it): a different answer told that the id was a real job of a table the caller
    # may not read.
    found = await anyio.to_thread.run_sync(store.get, svc.control_url, job_id)
    if found is None or found.table_key != key:
        raise NotFound(f"no refresh job {job_id[:64]} for table {table[:200]}", rule="job_not_found")
    state = await svc.job(job_id)
    out = state.to_dict(svc, include_links=caller.is_admin)
    # One refresh per table serves whoever asks, agents of other swarms too: an agent sees who
    # asked only when it was itself (the admin always); another token's name is not its business.
    if not caller.is_admin and out.get("requested_by") != caller.subject:
        out["requested_by"] = None
    current = served_tables(services).current(key)
    if hides_figures(caller, current, key):
        out["rows"] = None
    out["errors"] = sync_errors_seen(caller, current, key, list(out.get("errors") or []))
    return out


ROUTES: list[Any] = [browse_source, list_tables, register_table, delete_table, start_sync, get_job, table_status,
                     refresh_table, refresh_status]
