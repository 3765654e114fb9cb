"""``kill -9`` of a materialization at random points leaves the last complete version served.

A warm fork server (kill_child.py) forks a writer that materializes two tables in a loop
(a full copy in many slices, and a three-partition range over a copy of the previous
version); the test SIGKILLs it after a random delay, checks that CURRENT names a complete
version with exactly the expected rows, and finally proves the next run succeeds and
clears what the killed writers left behind.
"""

from __future__ import annotations

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
from tests.orchestration.conftest import Source, materialize

KILLS = 10
FULL_ROWS, SLICE_ROWS = 8_000, 1_000
ROOT = Path(__file__).resolve().parents[2]


def _reset_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.setsid()


def _served_rows(settings: Settings, key: str) -> int:
    manifest = read_current(settings.served_path, key)
    assert manifest is not None
    con = duckdb.connect(str(version_path(settings.served_path, manifest)), read_only=True)
    try:
        return int(con.execute("SELECT count(*) FROM data").fetchone()[0])  # type: ignore[index]
    finally:
        con.close()


@pytest.mark.timeout(600)
def test_kill_9_at_random_points_keeps_the_last_complete_version(source: Source, sync_settings: Settings) -> None:
    source.sql(f"CREATE TABLE {source.table('FULLT')} (ID NUMBER(10,0) NOT NULL, V VARCHAR, AMOUNT NUMBER(12,2))")
    source.sql(f"INSERT INTO {source.table('FULLT')} SELECT n, 'value ' || n, n / 3 "
               f"FROM (SELECT seq4() AS n FROM TABLE(GENERATOR(ROWCOUNT => {FULL_ROWS})))")
    source.sql(f"CREATE TABLE {source.table('PART')} (ID NUMBER(10,0), TS TIMESTAMP_NTZ)")
    source.sql(f"INSERT INTO {source.table('PART')} SELECT n, DATEADD(hour, n, CAST('2025-01-01' AS TIMESTAMP_NTZ)) "
               "FROM (SELECT seq4() AS n FROM TABLE(GENERATOR(ROWCOUNT => 96)))")
    full = source.register("FULLT", primary_key=["ID"])
    part = source.register("PART", partitioning={"kind": "daily", "column": "TS", "start": "2025-01-01"})
    expected = {full.key: FULL_ROWS, part.key: 72}
    sf = sync_settings.snowflake
    env = {"AGENTS_DATA_HOME": sync_settings.home, "DATABASE_URL": sync_settings.control_url, "SNOWFLAKE_HOST": sf.host,
           "SNOWFLAKE_PORT": str(sf.port), "SNOWFLAKE_PROTOCOL": sf.protocol, "SNOWFLAKE_DATABASE": sf.database,
           "SNOWFLAKE_NETWORK_TIMEOUT_S": "20"}
    cfg = {"env": env, "slice_rows": SLICE_ROWS, "log": str(Path(sync_settings.home) / "writers.log"),
           "range": ["2025-01-01", "2025-01-03"], "full": dataclasses.asdict(full), "part": dataclasses.asdict(part)}
    # Started first so its imports overlap the baseline runs below.
    server = subprocess.Popen([sys.executable, str(Path(__file__).with_name("kill_child.py")), json.dumps(cfg)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
                              preexec_fn=_reset_signals)  # noqa: PLW1509 - no threads in this test process do fork work
    assert server.stdin is not None
    assert server.stdout is not None
    t0 = time.monotonic()
    assert materialize(full, sync_settings, slice_rows=SLICE_ROWS).success
    assert materialize(part, sync_settings, tags={"dagster/asset_partition_range_start": "2025-01-01",
                                                  "dagster/asset_partition_range_end": "2025-01-03"}).success
    cycle = time.monotonic() - t0
    rng = random.Random(20261125)  # noqa: S311 - reproducible kill points, not cryptography
    versions, interrupted = set(), 0
    try:
        assert server.stdout.readline().strip() == "READY"
        print(f"[kill test] fork server ready {time.monotonic() - t0:.1f}s after start; cycle {cycle:.1f}s", flush=True)
        for _ in range(KILLS):
            server.stdin.write("fork\n")
            server.stdin.flush()
            pid = int(server.stdout.readline())
            time.sleep(rng.uniform(0.05, cycle))
            os.kill(pid, signal.SIGKILL)
            print(f"[kill test] killed at {time.monotonic() - t0:.1f}s", flush=True)
            server.stdin.write(f"reap {pid}\n")
            server.stdin.flush()
            assert server.stdout.readline().strip() == "REAPED"
            for key, want in expected.items():
                assert _served_rows(sync_settings, key) == want  # a complete version, never a partial one
                versions.add(read_current(sync_settings.served_path, key).version)  # type: ignore[union-attr]
                interrupted += any(p.name.startswith(".tmp-") for p in table_dir(sync_settings.served_path, key).iterdir())
        server.stdin.write("exit\n")
        server.stdin.flush()
        server.wait(timeout=30)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)

    log = (Path(sync_settings.home) / "writers.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-3000:]
    assert interrupted >= 1, "no kill landed inside a write; the test proved nothing"
    assert len(versions) > 2, "the killed writers never published; the kill points were all too early"
    for table in (full, part):  # the next run succeeds and removes what the killed writers left
        result = materialize(table, sync_settings, slice_rows=SLICE_ROWS, tags=None if table is full else {
            "dagster/asset_partition_range_start": "2025-01-01", "dagster/asset_partition_range_end": "2025-01-03"})
        assert result.success
        assert _served_rows(sync_settings, table.key) == expected[table.key]
        leftovers = [p.name for p in table_dir(sync_settings.served_path, table.key).iterdir()
                     if p.name.startswith(".tmp-") or p.name.endswith(".tmp")]
        assert leftovers == []
