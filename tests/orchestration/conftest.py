"""Fixtures for the sync engine: a private database on the session's fakesnow server, and helpers.

Every test gets its own Snowflake database (the stand-in shares one in-memory instance
across sessions), its own AGENTS_DATA_HOME and SQLite control database.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest
import snowflake.connector

from orchestration.resources import ServedDataResource, snowflake_resource
from shared.registry import RegisteredTable, build_registration
from shared.served import Manifest, read_current, version_path
from shared.settings import Settings


@dataclasses.dataclass
class Source:
    """A private database on the stand-in, with the schema ``S``."""

    con: Any
    database: str
    port: int

    def sql(self, text: str, params: Any = None) -> list[tuple[Any, ...]]:
        cur = self.con.cursor()
        try:
            cur.execute(text, params)
            try:
                return list(cur.fetchall())
            except snowflake.connector.errors.Error:
                return []
        finally:
            cur.close()

    def table(self, name: str) -> str:
        return f"{self.database}.S.{name}"

    def register(self, name: str, **raw: Any) -> RegisteredTable:
        return build_registration({"schema_name": "S", "table_name": name, **raw}, default_database=self.database)


def connect_kwargs(port: int, **extra: Any) -> dict[str, Any]:
    return {
        "user": "fake", "password": "snow", "account": "fakesnow", "host": "127.0.0.1", "port": port, "protocol": "http",
        "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False}, "network_timeout": 20, "login_timeout": 20,
        **extra,
    }


@pytest.fixture
def source(fakesnow_port: int) -> Iterator[Source]:
    con = snowflake.connector.connect(**connect_kwargs(fakesnow_port))
    db = "T_" + secrets.token_hex(4).upper()
    src = Source(con=con, database=db, port=fakesnow_port)
    src.sql(f"CREATE DATABASE {db}")
    src.sql(f"USE DATABASE {db}")  # the stand-in defines helper functions per database
    src.sql(f"CREATE SCHEMA {db}.S")
    try:
        yield src
    finally:
        try:  # the stand-in has no DROP DATABASE; free the tables' memory
            for (name,) in src.sql(f"SELECT table_name FROM {db}.information_schema.tables WHERE table_schema = 'S'"):
                quoted = '"' + str(name).replace('"', '""') + '"'  # exact: tables may have quoted names
                src.sql(f"DROP TABLE IF EXISTS {db}.S.{quoted}")
        finally:
            con.close()


@pytest.fixture
def sync_settings(settings: Settings, source: Source) -> Settings:
    """The shared ``settings`` fixture, with the source database set to the test's own."""
    return dataclasses.replace(settings, snowflake=dataclasses.replace(settings.snowflake, database=source.database))


def resources(settings: Settings, *, slice_rows: int = 250_000, workers: int = 2, **sf_overrides: Any) -> dict[str, Any]:
    sf = dataclasses.replace(settings.snowflake, **sf_overrides) if sf_overrides else settings.snowflake
    return {
        "snowflake": snowflake_resource(dataclasses.replace(settings, snowflake=sf), env={}),
        "served": ServedDataResource(home=settings.home, control_url=settings.control_url, slice_rows=slice_rows,
                                     extract_workers=workers),
    }


def materialize(table: RegisteredTable, settings: Settings, *, partition_key: str | None = None,
                tags: dict[str, str] | None = None, full_refresh: bool = False, **res: Any) -> dg.ExecuteInProcessResult:
    from orchestration.assets import build_table_asset

    asset = build_table_asset(table=table)
    config = {"ops": {asset.op.name: {"config": {"full_refresh": True}}}} if full_refresh else None
    return dg.materialize([asset], partition_key=partition_key, resources=resources(settings, **res), tags=tags,
                          run_config=config, raise_on_error=False)


def materialization(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    """Metadata values of the run's (single) materialization."""
    mats = result.get_asset_materialization_events()
    assert len(mats) == 1, result.all_events
    return {k: v.value for k, v in mats[0].materialization.metadata.items()}


def failure_message(result: dg.ExecuteInProcessResult) -> str:
    assert not result.success
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures, result.all_events
    data = failures[0].step_failure_data
    return f"{data.user_failure_data.description if data.user_failure_data else ''} {data.error.message if data.error else ''}"


def current(settings: Settings, table: RegisteredTable) -> Manifest | None:
    return read_current(settings.served_path, table.key)


@contextmanager
def served(settings: Settings, table: RegisteredTable) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the current served version (a versioned file name, so never a stale instance)."""
    manifest = current(settings, table)
    assert manifest is not None, f"{table.key} was never published"
    con = duckdb.connect(str(version_path(settings.served_path, manifest)), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    try:
        yield con
    finally:
        con.close()


def rows(settings: Settings, table: RegisteredTable, sql: str = "SELECT * FROM data ORDER BY 1") -> list[tuple[Any, ...]]:
    with served(settings, table) as con:
        return con.execute(sql).fetchall()


def served_files(settings: Settings, table: RegisteredTable) -> list[Path]:
    from shared.served import table_dir

    return sorted(table_dir(settings.served_path, table.key).iterdir())


def connector(port: int, database: str) -> Any:
    """A ``Connect`` factory for ``sync_table`` (the asset uses the Snowflake resource instead)."""

    @contextmanager
    def connect() -> Iterator[Any]:
        con = snowflake.connector.connect(**connect_kwargs(port, database=database))
        try:
            yield con
        finally:
            con.close()

    return connect


def sync(table: RegisteredTable, settings: Settings, source: Source, **kw: Any) -> Any:
    """Run the engine without Dagster (fast), as the asset would."""
    from orchestration.sync.engine import SyncRequest, sync_table

    kw.setdefault("slice_rows", 250_000)
    connect = connector(source.port, source.database)
    return sync_table(SyncRequest(table=table, connect=connect, served_root=settings.served_path, **kw))


def reload_code_location(graphql_url: str, location: str, *, timeout_s: float = 120.0) -> None:
    """Reload the code location the way the API does (serving/sync/dagster.py), and wait until it is loaded."""
    import asyncio

    from serving.sync.dagster import DagsterClient
    from shared.settings import DagsterSettings

    async def reload() -> None:
        client = DagsterClient(dataclasses.replace(DagsterSettings(), graphql_url=graphql_url, location_name=location))
        try:
            await client.reload_location(timeout_s=timeout_s)
        finally:
            await client.aclose()

    asyncio.run(reload())
