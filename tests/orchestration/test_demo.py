"""The embedded default: the stand-in starts on loopback, seeds fast and once, and the demo tables register."""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
import time
from pathlib import Path

import duckdb
import snowflake.connector

from shared import demo, registry
from shared.settings import Settings
from tests.orchestration.conftest import connect_kwargs

TODAY = dt.date(2025, 6, 1)
SMALL = {"ORDERS": 36_500, "CUSTOMERS": 500, "PRODUCTS": 50, "EVENTS": 2_000}


def test_seed_once_and_register_the_demo_tables(settings: Settings, fakesnow_port: int) -> None:
    db = "DEMO_" + secrets.token_hex(3).upper()
    source = demo.start_demo_source(fakesnow_port, orders_rows=SMALL["ORDERS"])
    assert not source.owned  # a server already listens there: reused, not started twice
    t0 = time.monotonic()
    assert demo.seed_demo(source, today=TODAY, database=db, rows=SMALL) == SMALL
    seeded_s = time.monotonic() - t0
    t1 = time.monotonic()
    assert demo.seed_demo(source, today=TODAY, database=db, rows={"ORDERS": 1}) == SMALL  # present: not re-seeded
    assert time.monotonic() - t1 < seeded_s

    con = snowflake.connector.connect(**connect_kwargs(fakesnow_port, database=db))
    try:
        cur = con.cursor()
        cur.execute(f"SELECT MIN(ORDERED_AT), MAX(ORDERED_AT), COUNT(DISTINCT CAST(ORDERED_AT AS DATE)) FROM {db}.PUBLIC.ORDERS")
        first, last, days = cur.fetchone()
        assert first == dt.datetime(2024, 6, 1)
        assert last.date() == dt.date(2025, 5, 31)
        assert days == 365
        cur.execute(f"SELECT PAYLOAD:device::varchar, typeof(PAYLOAD) FROM {db}.PUBLIC.EVENTS LIMIT 1")
        device, _ = cur.fetchone()
        assert device in ("ios", "android", "web")
    finally:
        con.close()

    env_settings = dataclasses.replace(settings, snowflake=dataclasses.replace(settings.snowflake, database=db))
    added = demo.register_demo_tables(env_settings, source, database=db)
    keys = {f"{db.lower()}.public.{t}" for t in ("orders", "customers", "products", "events")}
    assert set(added) == keys | {f"{db.lower()}.files.sessions"}  # beside them, one Parquet-sourced table
    assert demo.register_demo_tables(env_settings, source, database=db) == []  # only on first start
    regs = {r.table: r for r in registry.list_registered(settings.control_url)}
    assert regs["ORDERS"].partition_kind == "daily"
    assert regs["ORDERS"].partition_start == "2024-06-01"
    assert regs["EVENTS"].strategy == "incremental"
    assert regs["EVENTS"].cursor_column == "INGESTED_AT"
    assert all(r.schedule and r.freshness_s for r in regs.values())
    sessions = regs["SESSIONS"]
    assert (sessions.source_kind, sessions.schema) == ("parquet", "FILES")
    files = sorted(Path(str(sessions.source_path)).glob("*.parquet"))
    assert len(files) >= 12  # one per month of the year of sessions
    count = duckdb.connect().execute("SELECT count(*) FROM read_parquet(?)", [[str(f) for f in files]]).fetchone()
    assert count == (demo.SESSIONS_ROWS,)


def test_start_demo_source_serves_on_loopback_and_stops() -> None:
    from shared.processes import free_port

    port = free_port()
    with demo.demo_source(port, orders_rows=10) as source:
        assert source.owned
        assert (source.host, source.port) == ("127.0.0.1", port)
        con = snowflake.connector.connect(**connect_kwargs(port))
        try:
            cur = con.cursor()
            cur.execute("SELECT 1")
            assert cur.fetchone() == (1,)
        finally:
            con.close()
    assert not demo._listening("127.0.0.1", port)


def test_embedded_default_points_at_the_demo_port(settings: Settings) -> None:
    embedded = Settings.from_env({"AGENTS_DATA_HOME": settings.home, "DEMO_SNOWFLAKE_PORT": "9999"})
    sf = demo.effective_snowflake(embedded)
    assert (sf.host, sf.port, sf.protocol) == ("127.0.0.1", 9999, "http")
    real = Settings.from_env({"AGENTS_DATA_HOME": settings.home, "SNOWFLAKE_ACCOUNT": "acme"})
    assert demo.effective_snowflake(real).host == ""
