"""``kill -9`` of a materialization at named points and at random moments.

A warm fork server (``chaos_writer.py``) forks writers that materialize three tables in
a loop: a full copy in slices, a three-partition range (copy-on-write of the previous
version, then a window rewrite) and an incremental merge on a primary key. Each fault
targets one point (copy, extraction, merge, checks, publish, and inside publish the
file rename and the CURRENT write), killed either while parked just before the step or
a moment after entering it, or no point at all, killed after a random delay (the suite
runs every point once and three random moments; ``bench/chaos.py`` the full counts). After every
kill, each table's CURRENT names a complete version holding exactly the expected rows.
At the end the next run of each table succeeds and leaves no temporary file behind.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from shared.served import read_current, table_dir, version_path
from shared.settings import Settings
from tests.chaos.chaos_support import record, scale
from tests.orchestration.conftest import Source, materialize

ROOT = Path(__file__).resolve().parents[2]
POINTS = ("copy", "extract", "merge", "checks", "publish", "publish.rename", "publish.current")
FULL_ROWS, SLICE_ROWS, INC_ROWS = 4_000, 1_000, 500
RANDOM_MOMENTS = 3  # kills after a random delay, wherever the writer is then
RANGE = {"dagster/asset_partition_range_start": "2025-01-01", "dagster/asset_partition_range_end": "2025-01-03"}


def _reset_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.setsid()


def _served_rows(settings: Settings, key: str) -> int:
    manifest = read_current(settings.served_path, key)
    assert manifest is not None
    con = duckdb.connect(str(version_path(settings.served_path, manifest)), read_only=True)
    try:
        rows = int(con.execute("SELECT count(*) FROM data").fetchone()[0])  # type: ignore[index]
    finally:
        con.close()
    assert rows == manifest.row_count, "CURRENT names a version whose rows differ from its manifest"
    return rows


def _plan(kills: int, rng: random.Random) -> list[tuple[str, str]]:
    """Every named point first (in both modes when there is room), then RANDOM_MOMENTS kills at
    random moments, then random points and moments."""
    both = [(p, m) for m in ("stop", "during") for p in POINTS]
    plan = both if kills >= len(both) + RANDOM_MOMENTS else [(p, ("stop", "during")[i % 2]) for i, p in enumerate(POINTS)]
    plan += [("none", "during")] * min(RANDOM_MOMENTS, kills - len(plan))
    while len(plan) < kills:
        plan.append(("none", "during") if rng.random() < 0.3 else (rng.choice(POINTS), rng.choice(("stop", "during"))))
    return plan[:kills]


def _wait_marker(marker: Path, pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if marker.exists() and marker.read_text().strip():
            return True
        try:
            if os.waitpid(pid, os.WNOHANG) != (0, 0):
                return False
        except ChildProcessError:  # the fork server's child, not ours: alive unless the kill below fails
            pass
        time.sleep(0.005)
    return False


@pytest.mark.timeout(scale(600, 1800))
def test_kill_9_at_named_points_and_random_moments(source: Source, sync_settings: Settings) -> None:
    kills = scale(len(POINTS) + RANDOM_MOMENTS, 50)
    source.sql(f"CREATE TABLE {source.table('FULLT')} (ID NUMBER(10,0) NOT NULL, V VARCHAR, AMOUNT NUMBER(12,2))")
    source.sql(f"INSERT INTO {source.table('FULLT')} SELECT n, 'value ' || n, n / 3 "
               f"FROM (SELECT seq4() AS n FROM TABLE(GENERATOR(ROWCOUNT => {FULL_ROWS})))")
    source.sql(f"CREATE TABLE {source.table('PART')} (ID NUMBER(10,0), TS TIMESTAMP_NTZ)")
    source.sql(f"INSERT INTO {source.table('PART')} SELECT n, DATEADD(hour, n, CAST('2025-01-01' AS TIMESTAMP_NTZ)) "
               "FROM (SELECT seq4() AS n FROM TABLE(GENERATOR(ROWCOUNT => 96)))")
    source.sql(f"CREATE TABLE {source.table('INC')} (ID NUMBER(10,0) NOT NULL, V VARCHAR, UPDATED_AT TIMESTAMP_NTZ)")
    source.sql(f"INSERT INTO {source.table('INC')} SELECT n, 'v' || n, DATEADD(minute, n, CAST('2025-01-01' AS TIMESTAMP_NTZ)) "
               f"FROM (SELECT seq4() AS n FROM TABLE(GENERATOR(ROWCOUNT => {INC_ROWS})))")
    full = source.register("FULLT", primary_key=["ID"])
    part = source.register("PART", partitioning={"kind": "daily", "column": "TS", "start": "2025-01-01"})
    inc = source.register("INC", strategy="incremental", incremental_key="UPDATED_AT", primary_key=["ID"],
                          lookback="1d")
    tables = [(full, None), (part, RANGE), (inc, None)]
    expected = {full.key: FULL_ROWS, part.key: 72, inc.key: INC_ROWS}
    sf = sync_settings.snowflake
    env = {"AGENTS_DATA_HOME": sync_settings.home, "DATABASE_URL": sync_settings.control_url, "SNOWFLAKE_HOST": sf.host,
           "SNOWFLAKE_PORT": str(sf.port), "SNOWFLAKE_PROTOCOL": sf.protocol, "SNOWFLAKE_DATABASE": sf.database,
           "SNOWFLAKE_NETWORK_TIMEOUT_S": "20"}
    home = Path(sync_settings.home)
    cfg = {"env": env, "slice_rows": SLICE_ROWS, "log": str(home / "writers.log"),
           "tables": [[dataclasses.asdict(t), tags] for t, tags in tables]}
    server = subprocess.Popen([sys.executable, str(Path(__file__).with_name("chaos_writer.py")), json.dumps(cfg)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)},
                              preexec_fn=_reset_signals)  # noqa: PLW1509 - no threads in this test process do fork work
    assert server.stdin is not None
    assert server.stdout is not None
    t0 = time.monotonic()
    for table, tags in tables:  # the first complete versions (also warms this process)
        assert materialize(table, sync_settings, slice_rows=SLICE_ROWS, tags=tags).success
    cycle = time.monotonic() - t0
    rng = random.Random(20261206)  # noqa: S311 - reproducible kill points, not cryptography
    hits: collections.Counter[str] = collections.Counter()
    versions: set[str] = set()
    interrupted = 0
    try:
        assert server.stdout.readline().strip() == "READY"
        for i, (point, mode) in enumerate(_plan(kills, rng)):
            marker = home / f"marker-{i}"
            server.stdin.write(f"fork {point} {mode} {marker}\n")
            server.stdin.flush()
            pid = int(server.stdout.readline())
            if point == "none":
                time.sleep(rng.uniform(0.05, cycle))
            else:
                assert _wait_marker(marker, pid, timeout_s=max(60.0, 4 * cycle)), f"{point} never reached"
                if mode == "during":
                    time.sleep(rng.uniform(0.0, 0.05))
            os.kill(pid, signal.SIGKILL)
            hits[f"{point}:{mode}" if point != "none" else "random_moment"] += 1
            server.stdin.write(f"reap {pid}\n")
            server.stdin.flush()
            assert server.stdout.readline().strip() == "REAPED"
            for key, want in expected.items():
                assert _served_rows(sync_settings, key) == want, f"after a kill at {point} ({mode})"
                versions.add(read_current(sync_settings.served_path, key).version)  # type: ignore[union-attr]
                interrupted += any(p.name.startswith(".tmp-") for p in table_dir(sync_settings.served_path, key).iterdir())
        server.stdin.write("exit\n")
        server.stdin.flush()
        server.wait(timeout=30)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)

    log = (home / "writers.log").read_text(errors="replace") if (home / "writers.log").exists() else ""
    assert "Traceback" not in log, log[-3000:]
    assert interrupted >= 1, "no kill landed inside a write; the test proved nothing"
    assert len(versions) > len(tables), "the killed writers never published; the kills all landed too early"
    next_runs = 0
    for table, tags in tables:  # the next run succeeds and removes what the killed writers left
        assert materialize(table, sync_settings, slice_rows=SLICE_ROWS, tags=tags).success
        next_runs += 1
        assert _served_rows(sync_settings, table.key) == expected[table.key]
        leftovers = [p.name for p in table_dir(sync_settings.served_path, table.key).iterdir()
                     if p.name.startswith(".tmp-") or p.name.endswith(".tmp")]
        assert leftovers == []
    record("materialization_kills", {"kills": kills, "served_last_complete_version": kills, "next_run_succeeded": next_runs,
                                     "tables": len(tables), "by_point": dict(sorted(hits.items())),
                                     "versions_seen": len(versions)})
