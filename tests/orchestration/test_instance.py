"""The Dagster instance as deployed: code server, webserver and daemon as real processes on PostgreSQL.

One module-scoped topology (``tests/e2e/platform.py``: separate processes with signals
reset, stopped by PID, fresh PostgreSQL databases dropped afterwards) with
``dagster.postgres.yaml`` as the instance and a fakesnow server as the source. The tests:

- materialize one partition through GraphQL ``launchRun`` (asset selection plus the
  ``dagster/partition`` tag), check the served rows and read ``freshnessStatusInfo``;
- kill the daemon mid-run and start it again: the run finishes, no registration and
  no watermark is lost;
- drop the source table: the run fails saying so, the served data stays and the
  table is marked stale and failing;
- shut everything down and check that nothing is left running.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from shared import registry
from shared.control.db import session_scope
from shared.control.models import TableStatusRow
from shared.registry import build_registration
from shared.served import read_current, version_path
from tests.e2e.platform import Platform, PostgresUnavailable, start_platform, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

LOCATION = "agents_data"
EVENTS = ["demo", "inst", "events"]
ITEMS = ["demo", "inst", "items"]
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
  }
}
"""
RUN = """query Run($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status startTime endTime } } }"""
FRESHNESS = """
query Fresh($keys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $keys) { assetKey { path } freshnessStatusInfo { freshnessStatus } }
}
"""
ASSETS = """{ assetNodes { assetKey { path } } }"""


def _seed(cur: Any) -> None:
    """A small daily-partitioned fact table and an incremental dimension."""
    cur.execute("CREATE SCHEMA IF NOT EXISTS DEMO.INST")
    cur.execute("CREATE TABLE DEMO.INST.EVENTS (ID INT NOT NULL, TS TIMESTAMP_NTZ, AMOUNT NUMBER(10,2))")
    cur.execute(
        "INSERT INTO DEMO.INST.EVENTS SELECT seq4(), dateadd('hour', seq4(), '2026-01-01'::timestamp_ntz), "
        "uniform(1, 100, random()) FROM TABLE(GENERATOR(ROWCOUNT => 72))"
    )
    cur.execute("CREATE TABLE DEMO.INST.ITEMS (ID INT NOT NULL, UPDATED_AT TIMESTAMP_NTZ, NAME TEXT)")
    cur.execute("INSERT INTO DEMO.INST.ITEMS VALUES (1, '2026-01-01 00:00:00', 'a'), (2, '2026-01-02 00:00:00', 'b')")


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    try:
        with start_platform(tmp_path_factory.mktemp("instance"), replicas=(), seed=_seed,
                            extra_env={"FRESHNESS_DAEMON_INTERVAL_SECONDS": "2"}) as platform:
            url = platform.settings.control_url
            registry.save(url, build_registration({
                "table_name": "events", "schema_name": "inst", "database": "demo", "freshness": "1h",
                "partitioning": {"kind": "daily", "column": "ts", "start": "2026-01-01"},
            }, default_database="DEMO"))
            registry.save(url, build_registration({
                "table_name": "items", "schema_name": "inst", "database": "demo", "strategy": "incremental",
                "incremental_key": "updated_at", "primary_key": ["id"],
            }, default_database="DEMO"))
            from tests.orchestration.conftest import reload_code_location

            reload_code_location(platform.graphql_url, LOCATION)
            yield platform
    except PostgresUnavailable as e:
        pytest.skip(str(e))


def _launch(platform: Platform, path: list[str], partition: str | None = None) -> str:
    tags = [{"key": "agents_data/table", "value": ".".join(path)}]
    if partition:
        tags.append({"key": "dagster/partition", "value": partition})
    params = {
        "selector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__", "jobName": "__ASSET_JOB",
                     "assetSelection": [{"path": path}]},  # checks of the asset follow it
        "runConfigData": {}, "executionMetadata": {"tags": tags},
    }
    result = platform.graphql(LAUNCH, {"params": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return str(result["run"]["runId"])


def _status(platform: Platform, run_id: str) -> str:
    return str(platform.graphql(RUN, {"id": run_id})["runOrError"]["status"])


def _wait_done(platform: Platform, run_id: str, timeout_s: float = 300) -> str:
    """Poll until the run ends; on timeout say which state it was stuck in (slow machines wait long)."""
    deadline = time.monotonic() + timeout_s
    status = "?"
    while time.monotonic() < deadline:
        status = _status(platform, run_id)
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} still {status} after {timeout_s}s\n{platform.child('dagster-daemon').tail(20)}")


def _served_rows(platform: Platform, key: str, where: str = "true") -> int:
    root = platform.settings.served_path
    manifest = read_current(root, key)
    assert manifest is not None, f"{key} is not served"
    with duckdb.connect(str(version_path(root, manifest)), read_only=True) as con:
        return int(con.execute(f"SELECT count(*) FROM data WHERE {where}").fetchone()[0])  # type: ignore[index]


def test_partition_launched_through_graphql_is_served_and_fresh(instance: Platform) -> None:
    t0 = time.monotonic()
    run_id = _launch(instance, EVENTS, "2026-01-02")
    assert _wait_done(instance, run_id) == "SUCCESS", instance.child("dagster-daemon").tail()
    print(f"\n[latency] launchRun -> SUCCESS for one partition: {time.monotonic() - t0:.2f} s", file=sys.stderr)

    manifest = read_current(instance.settings.served_path, "demo.inst.events")
    assert manifest is not None
    assert set(manifest.partitions) == {"2026-01-02"}
    assert _served_rows(instance, "demo.inst.events") == 24  # one row per hour of that day
    with session_scope(instance.settings.control_url) as s:
        row = s.get(TableStatusRow, "demo.inst.events")
        assert row is not None
        assert row.served_version == manifest.version
        assert row.last_run_id == run_id

    def fresh() -> str | None:
        [node] = instance.graphql(FRESHNESS, {"keys": [{"path": EVENTS}]})["assetNodes"]
        status = (node["freshnessStatusInfo"] or {}).get("freshnessStatus")
        return status if status == "HEALTHY" else None

    assert wait_until(fresh, timeout_s=90, interval_s=1, message="freshnessStatus HEALTHY") == "HEALTHY"


def test_daemon_restart_mid_run_loses_no_registration_and_no_watermark(instance: Platform) -> None:
    first = _launch(instance, ITEMS)
    assert _wait_done(instance, first) == "SUCCESS"
    before = read_current(instance.settings.served_path, "demo.inst.items")
    assert before is not None
    assert before.watermark.startswith("2026-01-02")
    with instance.source() as cur:
        cur.execute("INSERT INTO DEMO.INST.ITEMS VALUES (3, '2026-01-05 00:00:00', 'c'), (2, '2026-01-04 00:00:00', 'b2')")

    run_id = _launch(instance, ITEMS)
    # Mid-run: the run worker is executing (it is the code server's child, not the daemon's).
    wait_until(lambda: _status(instance, run_id) in ("STARTED", "SUCCESS"), timeout_s=300, interval_s=0.05,
               message="run started")
    daemon = instance.child("dagster-daemon")
    os.killpg(daemon.proc.pid, signal.SIGKILL)  # by PID (its own process group); the run worker is not its child
    daemon.proc.wait(timeout=10)
    instance.children.remove(daemon)
    from shared.cli import _dagster_commands

    args = dict(_dagster_commands(instance.settings))["dagster-daemon"]
    instance.start("dagster-daemon", args)

    assert _wait_done(instance, run_id) == "SUCCESS"
    after = read_current(instance.settings.served_path, "demo.inst.items")
    assert after is not None
    assert after.watermark.startswith("2026-01-05")
    assert _served_rows(instance, "demo.inst.items") == 3
    assert _served_rows(instance, "demo.inst.items", "ID = 2 AND NAME = 'b2'") == 1
    assert {r.key for r in registry.list_registered(instance.settings.control_url)} == {"demo.inst.events", "demo.inst.items"}
    paths = {tuple(n["assetKey"]["path"]) for n in instance.graphql(ASSETS)["assetNodes"]}
    assert {tuple(EVENTS), tuple(ITEMS)} <= paths

    # Runs launched after the restart are dequeued by the new daemon, and two runs of the
    # same table never overlap (dagster.yaml: one run per table pool and per table tag).
    first_again, second_again = _launch(instance, ITEMS), _launch(instance, ITEMS)
    assert _wait_done(instance, first_again) == "SUCCESS"
    assert _wait_done(instance, second_again) == "SUCCESS"
    spans = sorted((r["startTime"], r["endTime"]) for r in
                   (instance.graphql(RUN, {"id": i})["runOrError"] for i in (first_again, second_again)))
    assert spans[0][1] <= spans[1][0], f"two runs of one table overlapped: {spans}"


def test_dropped_source_table_fails_clearly_keeps_served_data_and_marks_stale(instance: Platform) -> None:
    before = read_current(instance.settings.served_path, "demo.inst.events")
    assert before is not None
    with instance.source() as cur:
        cur.execute("DROP TABLE DEMO.INST.EVENTS")
    run_id = _launch(instance, EVENTS, "2026-01-03")
    assert _wait_done(instance, run_id) == "FAILURE"

    def recorded() -> TableStatusRow | None:
        with session_scope(instance.settings.control_url) as s:
            row = s.get(TableStatusRow, "demo.inst.events")
            return row if row is not None and row.last_run_id == run_id and row.last_error else None

    row = wait_until(recorded, timeout_s=60, interval_s=0.5, message="failure sensor recorded the run")
    assert "does not exist in the source" in row.last_error
    assert row.last_run_status == "failed"
    assert row.stale
    assert "missing" in row.stale_reason
    assert row.served_version == before.version
    after = read_current(instance.settings.served_path, "demo.inst.events")
    assert after is not None
    assert after.version == before.version
    assert _served_rows(instance, "demo.inst.events") == 24


def _live_members(pgid: int) -> list[int]:
    """PIDs in process group ``pgid`` that are not zombies (PID 1 in a container may never reap them)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def test_shutdown_stops_every_process(instance: Platform) -> None:
    procs = [c.proc for c in instance.children]
    assert {c.name for c in instance.children} >= {"fakesnow", "dagster-code-server", "dagster-webserver", "dagster-daemon"}
    instance.close()
    assert all(p.poll() is not None for p in procs)
    assert {p.pid: _live_members(p.pid) for p in procs} == {p.pid: [] for p in procs}, "a child's process group survived"
