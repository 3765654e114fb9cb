"""The sync feature's service: its admin operations over the registry, Dagster and status rows.

Handlers get the :class:`SyncService` through :func:`get_sync`; ``services.py`` builds it
at start-up.

Faults: when Dagster cannot be reached, every operation that needs it answers 503
with the same message (:func:`dagster_calls`), while reading the registry, the status
rows and served data keeps working; ``/ready`` reports the ``dagster`` check failing and
the replica ``degraded`` (still 200: it serves reads, so balancers keep it in rotation).

A registration is proven to load before it is saved (:meth:`SyncService.prove_loads`):
the code location's own builder runs in a child process (``python -m
orchestration.loadcheck``; this package never imports ``orchestration``) over the live
registrations plus the candidate. A registration that would not load is refused with
400 and its cause, so the running code location, and every other table's syncs, never
see it. The price is one interpreter start with the code location's imports per
registration (about 5 s on an idle 2-core machine, 10-14 s under load).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import anyio
import anyio.to_thread
import snowflake.connector

from serving.lib.caller import Caller
from serving.lib.errors import BadRequest, Conflict, NotFound, QueryRejected, ServiceUnavailable, Unprocessable
from serving.lib.services import Services
from serving.sync import jobs, store
from serving.sync import partitions as parts
from serving.sync.dagster import DagsterClient, DagsterError, DagsterUnavailable, clean_message
from serving.tables import hooks
from serving.tables.describe import served_facts
from serving.tables.names import grant_index
from serving.tables.served import not_found, resolve_table
from shared import registry, served, sources
from shared import status as table_status
from shared.control.models import TableStatusRow
from shared.identifiers import parse_name
from shared.registry import RegisteredTable, RegistrationError
from shared.served_storage import open_store
from shared.settings import Settings
from shared.snowflake import SourceColumn, SourceError, connect, list_tables, table_columns
from shared.sources.files import FileSourceError

DAGSTER = hooks.ORCHESTRATOR
SYNC = "sync"
LOAD_CHECK = (sys.executable, "-m", "orchestration.loadcheck")
LOAD_CHECK_TIMEOUT_S = 300.0  # the child imports the code location: seconds, more on a loaded machine

UNAVAILABLE = ("Dagster (the orchestrator) is unreachable, so syncs cannot be started or tracked right now; "
               "reading the catalog and querying served data keep working. Retry shortly.")


@contextmanager
def dagster_calls() -> Iterator[None]:
    """Map Dagster client errors to API errors: unreachable is 503, a refusal is 409 with Dagster's message."""
    try:
        yield
    except DagsterUnavailable as e:
        raise ServiceUnavailable(f"{UNAVAILABLE} ({e})", rule="dagster_unavailable",
                                 headers={"Retry-After": "5"}) from e
    except DagsterError as e:
        raise Conflict(str(e), rule="dagster_refused", details={"dagster_error": e.kind}) from e


async def run_load_check(tables: list[dict[str, Any]]) -> dict[str, Any]:
    """The verdict of ``python -m orchestration.loadcheck`` on these registrations (JSON in, JSON out).

    503 when the check itself cannot run or answer in time: nothing is saved then.
    """
    payload = json.dumps({"tables": tables}).encode()
    try:
        with anyio.fail_after(LOAD_CHECK_TIMEOUT_S):  # cancelling kills the child
            done = await anyio.run_process(list(LOAD_CHECK), input=payload, check=False)
        verdict: dict[str, Any] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    except (TimeoutError, OSError, ValueError, IndexError) as e:
        raise ServiceUnavailable("the registration could not be checked against the orchestrator's code before "
                                 f"saving it, so nothing was changed; retry shortly ({type(e).__name__})",
                                 rule="load_check_unavailable") from e
    return verdict


LoadCheck = Callable[[list[dict[str, Any]]], Awaitable[dict[str, Any]]]


class SyncService:
    """The Dagster client plus the settings the sync feature needs; one per API process.

    ``load_check`` proves registrations load (default: :func:`run_load_check`; tests may
    inject the same check run in-process under ``services.parts["load_check"]``).
    """

    def __init__(self, settings: Settings, client: DagsterClient, load_check: LoadCheck | None = None) -> None:
        self.settings = settings
        self.client = client
        self.load_check: LoadCheck = load_check or run_load_check

    @property
    def control_url(self) -> str:
        return self.settings.control_url

    def job_url(self, job: store.SyncJob) -> str | None:
        if job.dagster_id is None:
            return None
        if job.kind == "backfill":
            return self.client.backfill_url(job.dagster_id)
        return self.client.run_url(job.dagster_id)

    def key_for(self, schema_name: str, table_name: str, database: str | None = None) -> str:
        """The key of names written as in Snowflake SQL: unquoted is case-insensitive, ``"quoted"`` exact
        (an encoded key part is accepted too)."""
        try:
            names = [parse_name(n) for n in (database or self.settings.snowflake.database, schema_name, table_name)]
            return served.table_key(*names)
        except ValueError as e:
            raise BadRequest(str(e), rule="invalid_identifier") from e

    async def registered(self, key: str) -> RegisteredTable:
        reg = await anyio.to_thread.run_sync(registry.get_registered, self.control_url, key)
        if reg is None:
            raise NotFound(f"table {key} is not registered")
        return reg

    # ----------------------------------------------------------------- source
    def _source_tables(self, schema_name: str | None) -> list[dict[str, Any]]:
        sf = self.settings.snowflake
        with connect(sf) as con:
            tables = list_tables(con, sf.database, schema_name)
        return [{"database": t.database, "schema_name": t.schema, "table_name": t.name, "row_count": t.row_count,
                 "bytes": t.bytes, "last_altered": t.last_altered, "comment": t.comment} for t in tables]

    async def source_tables(self, schema_name: str | None) -> list[dict[str, Any]]:
        try:
            return await anyio.to_thread.run_sync(self._source_tables, schema_name)
        except SourceError as e:
            raise ServiceUnavailable(f"the Snowflake source is unreachable: {e}", rule="source_unavailable") from e

    # ----------------------------------------------------------- registration
    def _validated(self, raw: dict[str, Any]) -> RegisteredTable:
        reg = registry.build_registration(raw, default_database=self.settings.snowflake.database)
        if reg.from_files:
            registry.check_against_source(reg, self._file_columns(reg))
            return reg
        with connect(self.settings.snowflake) as con:
            try:
                columns = table_columns(con, reg.database, reg.schema, reg.table)
            except snowflake.connector.errors.ProgrammingError as e:
                # The lookup reads <database>.INFORMATION_SCHEMA: a refusal means the database
                # does not exist or this role cannot see it (a missing schema or table reads empty).
                raise RegistrationError("database", f"database {reg.database} does not exist in the source "
                                                    "or is not visible to the platform's role") from e
            except snowflake.connector.errors.Error as e:
                raise SourceError(f"the source failed to list the columns of {reg.key} "
                                  f"({type(e).__name__}, errno {getattr(e, 'errno', None)})") from e
        registry.check_against_source(reg, columns)
        return reg

    def _file_columns(self, reg: RegisteredTable) -> list[SourceColumn]:
        """Columns of a file source; a location not allowed, missing or unreadable is the admin's 400."""
        sources.check_location(reg, self.settings)
        try:
            with sources.connect(reg, self.settings) as con:
                return sources.table_columns(con, reg)
        except FileSourceError as e:
            raise RegistrationError("source.path", clean_message(str(e)) or "unreadable") from e

    async def prove_loads(self, reg: RegisteredTable) -> None:
        """400 ``registration_would_not_load`` when the code location would not load with ``reg``
        (replacing a live registration of the same table); see the module docstring."""
        live = await anyio.to_thread.run_sync(registry.list_registered, self.control_url)
        tables = [registry.to_dict(t) for t in live if t.key != reg.key] + [registry.to_dict(reg)]
        verdict = await self.load_check(tables)
        if verdict.get("ok"):
            return
        cause = clean_message(verdict.get("error")) or "unknown cause"
        culprit = verdict.get("table")
        if culprit and culprit != reg.key:
            cause = f"registered table {culprit}: {cause}"
        lowered = cause.lower()
        field = ("partitioning" if "partition" in lowered else "schedule" if "cron" in lowered or "schedule" in lowered
                 else None)
        raise BadRequest(f"this registration would not load in Dagster, so it was not saved: {cause}",
                         rule="registration_would_not_load", details={"field": field, "cause": cause})

    async def register(self, raw: dict[str, Any]) -> tuple[RegisteredTable, bool]:
        """Validate against the source, prove the code location loads with it, store, reload the code
        location, and check the asset exists."""
        with dagster_calls():
            await self.client.ping()
        try:
            reg = await anyio.to_thread.run_sync(self._validated, raw)
        except RegistrationError as e:
            raise BadRequest(e.message, rule="invalid_registration", details={"field": e.field}) from e
        except SourceError as e:
            raise ServiceUnavailable(f"the Snowflake source is unreachable: {e}", rule="source_unavailable") from e
        if not reg.live:  # a live table has no asset: nothing to load
            await self.prove_loads(reg)
        previous = await anyio.to_thread.run_sync(registry.get_registered, self.control_url, reg.key)
        _, created = await anyio.to_thread.run_sync(registry.save, self.control_url, reg)
        try:
            await self._reload_expecting(reg.asset_key_path, present=not reg.live)
        except Exception:
            await self._revert(reg, previous)
            raise
        return reg, created

    async def _revert(self, reg: RegisteredTable, previous: RegisteredTable | None) -> None:
        """Undo a registration Dagster could not load, so the code location keeps loading."""
        if previous is None:
            await anyio.to_thread.run_sync(registry.soft_delete, self.control_url, reg.key)
        else:
            await anyio.to_thread.run_sync(registry.save, self.control_url, previous)
        with suppress(DagsterError, DagsterUnavailable):
            await self.client.reload_location()

    async def _reload_expecting(self, path: list[str], *, present: bool) -> None:
        try:
            with dagster_calls():
                await self.client.reload_location()
                exists = await self.client.asset_exists(path)
        except Conflict as e:
            raise Unprocessable(f"Dagster could not load the code location after this change: {e.message}",
                                rule="dagster_load_error") from e
        if exists != present:
            state = "missing from" if present else "still in"
            raise ServiceUnavailable(f"asset {'/'.join(path)} is {state} Dagster after reloading the code location",
                                     rule="dagster_reload_incomplete")

    async def unregister(self, key: str) -> RegisteredTable:
        """Soft-delete, remove served data, reload so the asset disappears."""
        reg = await self.registered(key)
        with dagster_calls():
            await self.client.ping()
        await anyio.to_thread.run_sync(registry.soft_delete, self.control_url, key)
        await anyio.to_thread.run_sync(open_store(self.settings).remove_table, key)
        await self._reload_expecting(reg.asset_key_path, present=False)
        return reg

    # ----------------------------------------------------------------- syncs
    async def start(self, reg: RegisteredTable, *, strategy: str | None, partitions: list[str] | None,
                    start: str | None, end: str | None, requested_by: str | None) -> store.SyncJob:
        """Launch a run (whole table or one partition) or a backfill (several partitions)."""
        if reg.live:
            raise BadRequest(f"{reg.key} is live (not copied): it has no sync", rule="live_table")
        if strategy is not None:
            strategy = strategy.strip().lower()
            if strategy not in registry.STRATEGIES:
                raise BadRequest(f"strategy {strategy!r} is not one of {', '.join(registry.STRATEGIES)}",
                                 rule="invalid_strategy", details={"field": "strategy"})
            try:
                jobs.run_config_for(reg, strategy)
            except ValueError as e:
                raise BadRequest(str(e), rule="invalid_strategy", details={"field": "strategy"}) from e
        named = partitions is not None or start is not None
        partitioned = parts.is_partitioned(reg)
        if not partitioned and named:
            raise BadRequest(f"table {reg.key} is not partitioned; omit partitions and partition_range",
                             rule="invalid_partition")
        if partitioned and not named:
            raise BadRequest(f"table {reg.key} is partitioned; give partitions [...] or "
                             f"partition_range {{start, end}} (format: {parts.valid_format(reg)})",
                             rule="invalid_partition", details={"valid_format": parts.valid_format(reg)})
        keys: list[str] = []
        with dagster_calls():
            if named:
                for key in [*(partitions or []), *(k for k in (start, end) if k is not None)]:
                    parts.check_key(reg, key)  # a malformed key is answered before Dagster is asked
                known = await self.client.partition_keys(reg.asset_key_path)
                keys = parts.resolve(reg, known, partitions=partitions, start=start, end=end)
            else:
                await self.client.ping()
            kind = "backfill" if len(keys) > 1 else "run"
            job = await anyio.to_thread.run_sync(lambda: store.create(
                self.control_url, table_key=reg.key, kind=kind, partitions=keys, requested_by=requested_by,
                reason="manual"))
            return await jobs.launch(self, job, reg, strategy=strategy)

    async def job(self, job_id: str) -> jobs.JobState:
        """A job's live state; 404 when unknown."""
        job = await anyio.to_thread.run_sync(store.get, self.control_url, job_id)
        if job is None:
            raise NotFound(f"no sync job {job_id}")
        with dagster_calls():
            return await jobs.observe(self, job)

    # ----------------------------------------------------------------- status
    def _table_rows(self, regs: list[RegisteredTable]) -> list[dict[str, Any]]:
        keys = [r.key for r in regs]
        statuses = store.table_status(self.control_url, keys)
        latest = store.latest(self.control_url, keys)
        now = dt.datetime.now(dt.UTC)
        return [describe_table(reg, statuses.get(reg.key), latest.get(reg.key), self.settings, now) for reg in regs]

    async def tables(self) -> list[dict[str, Any]]:
        regs = await anyio.to_thread.run_sync(registry.list_registered, self.control_url)
        return await anyio.to_thread.run_sync(self._table_rows, regs)

    async def table(self, key: str) -> dict[str, Any]:
        reg = await self.registered(key)
        rows = await anyio.to_thread.run_sync(self._table_rows, [reg])
        return rows[0]


def synced_at_of(settings: Settings, key: str, status: TableStatusRow | None) -> tuple[dt.datetime | None, str | None]:
    """When the served data was read from the source (``shared.status.last_synced``, the catalog's
    reading too), and the served version's id (the manifest is the truth)."""
    manifest = open_store(settings).current(key)
    if manifest is not None:
        return table_status.last_synced(manifest, status), manifest.version
    if status is None:
        return None, None
    return status.last_success_at, status.served_version


def describe_table(reg: RegisteredTable, status: TableStatusRow | None, job: store.SyncJob | None,
                   settings: Settings, now: dt.datetime) -> dict[str, Any]:
    """One registered table for admins: its registration, the served facts and freshness of the
    tables layer's one description (``served_facts``), its last run and sync job."""
    manifest = open_store(settings).current(reg.key)
    return {
        "table": reg.key, "sql_name": reg.sql_name, "database": reg.database, "schema_name": reg.schema,
        "table_name": reg.table,
        "strategy": reg.strategy,
        "partitioning": {"kind": reg.partition_kind, "column": reg.partition_column, "start": reg.partition_start,
                         "values": list(reg.partition_values)},
        "incremental_key": reg.cursor_column, "primary_key": list(reg.primary_key), "schedule": reg.schedule,
        "freshness_target_s": reg.freshness_s, "description": reg.description,
        "source": {"kind": reg.source_kind, "path": reg.source_path, "table": reg.source_table,
                   "described": sources.describe(reg)},
        "live": reg.live,
        **served_facts(manifest, status, reg.freshness_s, now, reg),
        "last_run": {"run_id": status.last_run_id if status else None,
                     "status": table_status.run_status(status),
                     "error": clean_message(status.last_error) or None if status else None},
        "last_job": {"job_id": job.id, "kind": job.kind, "status": job.status,
                     "created_at": job.created_at.isoformat()} if job else None,
        "stats": (status.stats or None) if status else None,
    }


async def resolve_readable(caller: Caller, name: str, services: Services) -> str:
    """The table key ``name`` denotes for ``caller`` (the tables layer's resolver); 404 when not granted.

    Admins may also name a registered table that was never served, by its full or short name.
    """
    try:
        return resolve_table(caller, name, services)
    except NotFound:
        if not caller.is_admin:
            raise
    regs = await anyio.to_thread.run_sync(registry.list_registered, services.control_url)
    try:  # the agents' name rule, over every registered table
        return grant_index(frozenset(r.key for r in regs)).resolve_text(name)
    except QueryRejected as e:
        raise not_found(name) from e


def get_sync(services: Services) -> SyncService:
    return services.get(SYNC, SyncService)
