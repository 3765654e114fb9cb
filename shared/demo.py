"""The embedded default: a local Snowflake stand-in (fakesnow server) with demo data.

Why: a fresh clone must work with no Snowflake account. ``agents-data demo`` / ``up``
start the stand-in on loopback (``start_demo_source``), seed it through the real
Snowflake connector (``seed_demo``: one ``INSERT … SELECT … FROM TABLE(GENERATOR())``
per table, about a second for a million rows, and only for tables that are missing,
because the stand-in keeps data in memory and loses it when it stops) and register the
demo tables once (``register_demo_tables``) so every sync feature works out of the box:
daily partitions (ORDERS), full copies (CUSTOMERS, PRODUCTS) and an incremental merge
over a VARIANT column (EVENTS).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from shared.demo_data import (
    DAYS_OF_ORDERS,
    DEMO_SCHEMA,
    SESSIONS_ROWS,
    TABLES,
    comment_columns,
    file_registrations,
    registrations,
)
from shared.settings import Settings, SnowflakeSettings, get_settings

DEMO_DATABASE = "DEMO"
CUSTOMERS_ROWS, PRODUCTS_ROWS, EVENTS_ROWS = 50_000, 2_000, 200_000
STARTUP_TIMEOUT_S = 30


def effective_snowflake(settings: Settings) -> SnowflakeSettings:
    """Source settings, pointed at the local stand-in when neither an account nor a host is set."""
    sf = settings.snowflake
    if sf.embedded:
        return dataclasses.replace(sf, host="127.0.0.1", port=settings.demo.port, protocol="http")
    return sf


@dataclasses.dataclass
class DemoSource:
    """A running stand-in; ``owned`` is False when one was already listening on the port."""

    host: str
    port: int
    orders_rows: int
    owned: bool = True
    _stack: ExitStack | None = None

    def snowflake(self, base: SnowflakeSettings | None = None) -> SnowflakeSettings:
        base = base or SnowflakeSettings()
        return dataclasses.replace(base, account="", host=self.host, port=self.port, protocol="http", database=DEMO_DATABASE)

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def __enter__(self) -> DemoSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _listening(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def start_demo_source(port: int | None = None, *, host: str = "127.0.0.1", orders_rows: int | None = None) -> DemoSource:
    """Serve the stand-in from a thread of this process on loopback; reuse one already on ``port``.

    Started with uvicorn directly rather than ``fakesnow.server()``: importing the
    ``fakesnow.server`` module replaces that helper on the package, so it works once per
    process only.
    """
    rows = orders_rows or get_settings().demo.orders_rows
    if port and _listening(host, port):
        return DemoSource(host=host, port=port, orders_rows=rows, owned=False)
    import uvicorn
    from fakesnow.server import app

    if not port:
        with socket.socket() as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="demo snowflake stand-in", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while thread.is_alive() and not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        server.should_exit = True
        raise RuntimeError(f"the Snowflake stand-in did not start on {host}:{port} (port taken?)")

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=STARTUP_TIMEOUT_S)

    stack = ExitStack()
    stack.callback(stop)
    return DemoSource(host=host, port=port, orders_rows=rows, _stack=stack)


@contextmanager
def demo_source(port: int | None = None, **kw: Any) -> Iterator[DemoSource]:
    source = start_demo_source(port, **kw)
    try:
        yield source
    finally:
        source.stop()


def _snowflake_of(target: DemoSource | Settings, database: str) -> tuple[SnowflakeSettings, int]:
    if isinstance(target, DemoSource):
        return dataclasses.replace(target.snowflake(), database=database), target.orders_rows
    return dataclasses.replace(effective_snowflake(target), database=database), target.demo.orders_rows


def seed_demo(target: DemoSource | Settings, *, orders_rows: int | None = None, today: dt.date | None = None,
              database: str = DEMO_DATABASE, rows: dict[str, int] | None = None,
              report: Callable[[str], None] | None = None) -> dict[str, int]:
    """Create and fill every missing or empty demo table; returns row counts per table.

    Orders span the ``DAYS_OF_ORDERS`` days before ``today`` (UTC), order ids increasing
    with time, so a daily partition holds about ``orders_rows / 365`` rows. ``database``
    and ``rows`` exist for tests; ``report`` gets one line per table as it is seeded (``agents-data up``
    shows them).
    """
    from shared.snowflake import connect

    sf, default_rows = _snowflake_of(target, database)
    sizes = {"ORDERS": orders_rows or default_rows, "CUSTOMERS": CUSTOMERS_ROWS, "PRODUCTS": PRODUCTS_ROWS,
             "EVENTS": EVENTS_ROWS, **(rows or {})}
    today = today or dt.datetime.now(dt.UTC).date()
    counts: dict[str, int] = {}
    with connect(dataclasses.replace(sf, database="")) as con:
        cur = con.cursor()
        cur.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
        cur.execute(f"USE DATABASE {database}")  # the stand-in defines its helper functions per database
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {database}.{DEMO_SCHEMA}")
        existing = _row_counts(cur, database)
        for i, (name, spec) in enumerate(TABLES.items(), 1):
            if existing.get(name):
                counts[name] = existing[name]
                continue
            started = time.monotonic()
            if report:
                report(f"seeding demo table {name} ({i}/{len(TABLES)}): {sizes[name]:,} rows")
            cur.execute(spec.sql(spec.ddl, database))
            cur.execute(spec.sql(spec.insert, database), spec.params(sizes[name], today))
            comment_columns(cur, database, name, spec)
            counts[name] = sizes[name]
            if report:
                report(f"seeded demo table {name} ({i}/{len(TABLES)}): {sizes[name]:,} rows in "
                       f"{time.monotonic() - started:.1f}s")
        cur.close()
    return counts


def _row_counts(cur: Any, database: str) -> dict[str, int]:
    cur.execute(
        f"SELECT table_name, row_count FROM {database}.information_schema.tables "
        "WHERE upper(table_schema) = %s AND table_type = 'BASE TABLE'",
        (DEMO_SCHEMA,),
    )
    return {str(name).upper(): int(count or 0) for name, count in cur.fetchall()}


def register_demo_tables(settings: Settings, source: DemoSource | None = None, *,
                         database: str = DEMO_DATABASE) -> list[str]:
    """Register the demo tables that were never registered (a removed one stays removed); returns new keys.

    Each registration is checked against the source like any other. ORDERS' daily
    partitions start on the day of its first order.
    """
    from sqlalchemy import select

    from shared import registry
    from shared.control.db import migrate, session_scope
    from shared.control.models import RegisteredTableRow
    from shared.snowflake import connect, table_columns

    migrate(settings.control_url)
    sf = _snowflake_of(source if source else settings, database)[0]
    with session_scope(settings.control_url) as s:
        known = set(s.scalars(select(RegisteredTableRow.key)).all())
    added: list[str] = []
    with connect(sf) as con:
        cur = con.cursor()
        cur.execute(f"SELECT MIN(ORDERED_AT) FROM {database}.{DEMO_SCHEMA}.ORDERS")
        row = cur.fetchone()
        first = row[0] if row else None
        cur.close()
        start = (first.date() if first else dt.datetime.now(dt.UTC).date()).isoformat()
        for raw in registrations(orders_start=start):
            reg = registry.build_registration(raw, default_database=database)
            if reg.key in known:
                continue
            registry.check_against_source(reg, table_columns(con, reg.database, reg.schema, reg.table))
            registry.save(settings.control_url, reg)
            added.append(reg.key)
    return added + _register_file_tables(settings, known, database)


def seed_demo_files(settings: Settings, *, rows: int = SESSIONS_ROWS, today: dt.date | None = None) -> str:
    """Write the demo's Parquet files (one per month of sessions) unless present; returns their folder."""
    import duckdb

    folder = settings.home_path / "sources" / "demo" / "sessions"
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.glob("*.parquet")):
        return str(folder)
    today = today or dt.datetime.now(dt.UTC).date()
    start = today - dt.timedelta(days=DAYS_OF_ORDERS)
    con = duckdb.connect(":memory:")
    try:
        con.execute(
            "CREATE TABLE s AS SELECT i + 1 AS SESSION_ID, (i % 2000) + 1 AS CUSTOMER_ID, "
            "CAST(? AS TIMESTAMP) + to_seconds(CAST(i AS BIGINT) * ? // ?) AS STARTED_AT, "
            "CAST(1 + hash(i) % 3600 AS INTEGER) AS DURATION_S, "
            "['web', 'ios', 'android'][1 + CAST(hash(i + 7) % 3 AS INTEGER)] AS CHANNEL FROM range(?) t(i)",
            [start.isoformat(), DAYS_OF_ORDERS * 86400, rows, rows])
        months = [r[0] for r in con.execute("SELECT DISTINCT strftime(STARTED_AT, '%Y-%m') FROM s ORDER BY 1").fetchall()]
        for month in months:  # written under a temporary name, then renamed: a reader never sees half a file
            final = folder / f"sessions-{month}.parquet"
            tmp = folder / f".{final.name}.tmp"
            con.execute("COPY (SELECT * FROM s WHERE strftime(STARTED_AT, '%Y-%m') = ? ORDER BY SESSION_ID) "
                        "TO '" + str(tmp).replace("'", "''") + "' (FORMAT parquet)", [month])
            tmp.replace(final)
    finally:
        con.close()
    return str(folder)


def _register_file_tables(settings: Settings, known: set[str], database: str) -> list[str]:
    """Register the demo's Parquet-sourced table (its files written first); skipped, saying why,
    when SOURCE_FILE_ROOTS does not allow the data home's sources folder."""
    from shared import registry, sources
    from shared.sources.files import FileSourceError

    added = []
    for raw in file_registrations(seed_demo_files(settings)):
        reg = registry.build_registration(raw, default_database=database)
        if reg.key in known:
            continue
        try:
            sources.check_location(reg, settings)
            with sources.connect(reg, settings) as con:
                registry.check_against_source(reg, sources.table_columns(con, reg))
        except (registry.RegistrationError, FileSourceError) as e:
            print(f"[agents-data] demo table {reg.key} not registered: {e}", flush=True)
            continue
        registry.save(settings.control_url, reg)
        added.append(reg.key)
    return added
