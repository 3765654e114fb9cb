"""The source-change sensor (cursor, run keys, skip reasons) and the run-failure sensor.

Against the fakesnow server: ROW_COUNT moves on insert there (LAST_ALTERED never does),
which is exactly what the signature is built to notice.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
import pytest

from orchestration import sensors
from shared import status
from shared.control.db import migrate, session_scope
from shared.control.models import TableStatusRow
from shared.registry import build_registration
from shared.settings import Settings
from shared.snowflake import connect

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def _reg(table: str, database: str = "demo", **extra: Any):  # type: ignore[no-untyped-def]
    return build_registration({"table_name": table, "schema_name": "public", **extra}, default_database=database)


class SourceResource(dg.ConfigurableResource):
    """Stands in for the SnowflakeResource: same ``get_connection()`` shape, settings from a port."""

    port: int
    fail: bool = False

    @contextmanager
    def get_connection(self) -> Iterator[Any]:
        if self.fail:
            raise ConnectionError("connection refused by 127.0.0.1:9")
        s = Settings.from_env({"SNOWFLAKE_HOST": "127.0.0.1", "SNOWFLAKE_PORT": str(self.port),
                               "SNOWFLAKE_PROTOCOL": "http", "SNOWFLAKE_NETWORK_TIMEOUT_S": "20"})
        with connect(s.snowflake) as con:
            yield con


# --- pure decisions -------------------------------------------------------------------------


def test_first_sight_records_a_baseline_and_says_so() -> None:
    t = _reg("orders")
    result = sensors.evaluate_source_changes([t], None, {("DEMO", "PUBLIC", "ORDERS"): "1970|10"}, now=NOW)
    assert not result.run_requests
    assert "first signature for demo.public.orders" in result.skip_reason.skip_message
    assert json.loads(result.cursor) == {"demo.public.orders": "1970|10"}


def test_a_change_requests_one_run_keyed_by_table_and_signature() -> None:
    t = _reg("orders")
    cursor = json.dumps({"demo.public.orders": "1970|10"})
    result = sensors.evaluate_source_changes([t], cursor, {("DEMO", "PUBLIC", "ORDERS"): "1970|11"}, now=NOW)
    [req] = result.run_requests
    assert req.run_key == "demo.public.orders|1970|11"
    assert req.asset_selection == [dg.AssetKey(["demo", "public", "orders"])]
    assert req.tags == {"agents_data/table": "demo.public.orders", "agents_data/reason": "source_change"}
    assert json.loads(result.cursor) == {"demo.public.orders": "1970|11"}


def test_partitioned_tables_refresh_their_latest_partition_and_static_ones_every_value() -> None:
    daily = _reg("events", partitioning={"kind": "daily", "column": "ts", "start": "2026-01-01"})
    static = _reg("sales", partitioning={"kind": "static", "column": "region", "values": ["eu", "us"]})
    cursor = json.dumps({daily.key: "a", static.key: "a"})
    sigs = {("DEMO", "PUBLIC", "EVENTS"): "b", ("DEMO", "PUBLIC", "SALES"): "b"}
    result = sensors.evaluate_source_changes([daily, static], cursor, sigs, now=NOW)
    got = {(r.tags["agents_data/table"], r.partition_key, r.run_key) for r in result.run_requests}
    assert got == {
        ("demo.public.events", "2026-11-24", "demo.public.events|b|2026-11-24"),
        ("demo.public.sales", "eu", "demo.public.sales|b|eu"),
        ("demo.public.sales", "us", "demo.public.sales|b|us"),
    }


def test_nothing_changed_and_missing_tables_are_explained() -> None:
    a, gone = _reg("a"), _reg("gone")
    cursor = json.dumps({a.key: "s1", gone.key: "s0"})
    result = sensors.evaluate_source_changes([a, gone], cursor, {("DEMO", "PUBLIC", "A"): "s1"}, now=NOW)
    msg = result.skip_reason.skip_message
    assert "no registered table changed" in msg
    assert "missing in the source" in msg
    assert "demo.public.gone" in msg
    # The dropped table keeps its last signature, so re-creating it counts as a change.
    assert json.loads(result.cursor) == {a.key: "s1", gone.key: "s0"}


def test_unregistered_tables_leave_the_cursor() -> None:
    a = _reg("a")
    result = sensors.evaluate_source_changes([a], json.dumps({a.key: "1", "demo.public.old": "9"}),
                                             {("DEMO", "PUBLIC", "A"): "1"}, now=NOW)
    assert json.loads(result.cursor) == {a.key: "1"}


# --- the sensor against the stand-in ---------------------------------------------------------


@pytest.fixture
def source_table(fakesnow_port: int, settings: Settings) -> Iterator[str]:
    """A fresh database with one table on the shared fakesnow server; yields the database name."""
    db = "SENS_" + secrets.token_hex(3).upper()
    with connect(settings.snowflake) as con:
        cur = con.cursor()
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE SCHEMA {db}.PUBLIC")
        cur.execute(f"CREATE TABLE {db}.PUBLIC.ORDERS (ID INT, AMOUNT NUMBER(12,2))")
        cur.execute(f"INSERT INTO {db}.PUBLIC.ORDERS VALUES (1, 1.5), (2, 2.5)")
    return db


def test_sensor_sees_an_insert_in_the_source_once(source_table: str, fakesnow_port: int, settings: Settings) -> None:
    tables = [_reg("orders", database=source_table), _reg("not_there", database=source_table)]
    seen: list[tuple[list[str], list[str]]] = []
    sensor = sensors.build_source_change_sensor(tables=tables, presence=lambda m, p: seen.append((m, p)) or [])
    resources = {"snowflake": SourceResource(port=fakesnow_port)}

    with dg.build_sensor_context(cursor=None, resources=resources) as ctx:
        first = sensor(ctx)
    assert not first.run_requests
    assert "first signature" in first.skip_reason.skip_message
    assert "not_there" in first.skip_reason.skip_message
    assert seen[-1] == ([tables[1].key], [tables[0].key]), "the missing source is written on the status rows"

    with connect(settings.snowflake) as con:
        con.cursor().execute(f"INSERT INTO {source_table}.PUBLIC.ORDERS VALUES (3, 3.5)")

    with dg.build_sensor_context(cursor=first.cursor, resources=resources) as ctx:
        second = sensor(ctx)
    [req] = second.run_requests
    key = f"{source_table.lower()}.public.orders"
    assert req.run_key.startswith(f"{key}|")
    assert req.run_key.endswith("|3")
    assert json.loads(second.cursor)[key].endswith("|3")

    with dg.build_sensor_context(cursor=second.cursor, resources=resources) as ctx:
        third = sensor(ctx)
    assert not third.run_requests
    assert "no registered table changed" in third.skip_reason.skip_message


def test_unreachable_source_skips_with_the_reason_and_keeps_the_cursor() -> None:
    sensor = sensors.build_source_change_sensor(tables=[_reg("orders")])
    with dg.build_sensor_context(cursor='{"demo.public.orders": "x"}',
                                 resources={"snowflake": SourceResource(port=9, fail=True)}) as ctx:
        result = sensor(ctx)
    assert "source unreachable" in result.skip_reason.skip_message
    assert "connection refused" in result.skip_reason.skip_message
    assert result.cursor == '{"demo.public.orders": "x"}'


def test_no_registrations_means_a_skip_not_an_error() -> None:
    sensor = sensors.build_source_change_sensor(tables=[])
    with dg.build_sensor_context(resources={"snowflake": SourceResource(port=9, fail=True)}) as ctx:
        assert sensor(ctx).skip_reason.skip_message == "no tables are registered"


# --- failures ----------------------------------------------------------------------------------


def test_failure_is_recorded_and_a_missing_source_marks_stale(sqlite_url: str) -> None:
    migrate(sqlite_url)
    t0 = NOW
    sensors.record_run_failure(sqlite_url, ["demo.public.a"], "r1", "SourceError: table DEMO.PUBLIC.A does not exist", t0)
    with session_scope(sqlite_url) as s:
        s.add(TableStatusRow(key="demo.public.b", last_success_at=t0 + dt.timedelta(minutes=5), served_version="v1"))
    sensors.record_run_failure(sqlite_url, ["demo.public.b"], "r0", "boom", t0)  # older than b's success
    sensors.record_run_failure(sqlite_url, ["demo.public.c"], "r2", "RuntimeError: connection reset", t0)
    with session_scope(sqlite_url) as s:
        a, b, c = (s.get(TableStatusRow, f"demo.public.{x}") for x in "abc")
    assert (a.last_run_status, a.last_run_id, a.stale) == ("failed", "r1", True)
    assert "does not exist" in a.last_error
    assert "missing" in a.stale_reason
    assert b.last_error is None, "a late failure report must not hide a newer success"
    assert b.served_version == "v1"
    assert (c.last_run_status, c.stale) == ("failed", False)


@pytest.mark.parametrize(("message", "table_gone"), [
    ("SourceError: table DEMO.PUBLIC.A does not exist", True),
    ('table "DEMO"."PUBLIC"."Order Lines" does not exist in the source (dropped, renamed, or not visible to this role)',
     True),
    ("SQL compilation error:\nObject 'DEMO.PUBLIC.X' does not exist or not authorized.", True),
    ("Catalog Error: Table with name X does not exist!", True),
    # A registered column gone from a table that is still there: the table is not missing.
    ("cursor column UPDATED_AT does not exist in demo.public.visits", False),
    ("partition column VISIT_DATE does not exist in demo.public.visits", False),
    ("the source table DEMO.PUBLIC.VISITS no longer has the registered primary key column VISIT_ID (dropped or "
     "renamed); register the table again with its current columns", False),
    ("RuntimeError: connection reset", False),
])
def test_only_a_missing_table_reads_as_a_missing_source(sqlite_url: str, message: str, table_gone: bool) -> None:
    assert sensors.is_missing_source(message) is table_gone
    migrate(sqlite_url)
    sensors.record_run_failure(sqlite_url, ["demo.public.visits"], "r1", message, NOW)
    with session_scope(sqlite_url) as s:
        row = s.get(TableStatusRow, "demo.public.visits")
    assert (row.last_run_status, row.stale) == ("failed", table_gone)
    assert status.missing_source(row) is table_gone


def test_failure_sensor_reports_the_root_cause_for_each_table() -> None:
    @dg.asset(key=["demo", "public", "broken"])
    def broken() -> None:
        raise RuntimeError("table DEMO.PUBLIC.BROKEN does not exist in the source")

    recorded: list[tuple[list[str], str, str]] = []
    sensor = sensors.build_failure_sensor(record=lambda keys, run_id, msg, at: recorded.append((list(keys), run_id, msg)))
    with dg.instance_for_test() as instance:
        result = dg.materialize([broken], instance=instance, raise_on_error=False)
        assert not result.success
        run = instance.get_run_by_id(result.run_id)
        failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
        ctx = dg.build_run_status_sensor_context(sensor_name=sensor.name, dagster_event=failure,
                                                 dagster_instance=instance, dagster_run=run).for_run_failure()
        sensor(ctx)
    [(keys, run_id, msg)] = recorded
    assert keys == ["demo.public.broken"]
    assert run_id == result.run_id
    assert msg == "RuntimeError: table DEMO.PUBLIC.BROKEN does not exist in the source"
    assert sensors.is_missing_source(msg)


def test_a_later_success_clears_failing_and_stale(sqlite_url: str) -> None:
    """The failure sensor and the asset's success write (shared/status.py) share one row."""
    from shared.served import Manifest
    from shared.status import record_success

    migrate(sqlite_url)
    failed_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    sensors.record_run_failure(sqlite_url, ["demo.public.a"], "r1", "SourceError: table A does not exist", failed_at)
    manifest = Manifest(table_key="demo.public.a", version="v2", file="v-v2.duckdb",
                        published_at=dt.datetime.now(dt.UTC).isoformat(), strategy="full", row_count=3, bytes=10, columns=[])
    record_success(sqlite_url, "demo.public.a", manifest, "r2")
    with session_scope(sqlite_url) as s:
        row = s.get(TableStatusRow, "demo.public.a")
        last_ok = row.last_success_at.replace(tzinfo=row.last_success_at.tzinfo or dt.UTC)
        last_bad = row.last_failure_at.replace(tzinfo=row.last_failure_at.tzinfo or dt.UTC)
    assert last_ok > last_bad, "the API reports failing only while the last failure is newer than the last success"
    assert not row.stale
    assert row.served_version == "v2"
