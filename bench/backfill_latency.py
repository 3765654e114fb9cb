"""Backfill latency: an agent's refresh of a daily-partitioned table whose late rows landed in
old days, from ``POST /api/v1/data/tables/{t}/refresh`` to the rows being visible in a query.

Such a refresh is a Dagster backfill of the changed days (``serving/sync/refresh.py``), so it
waits for the daemon's backfill loop: once to have its runs launched, once more to be marked
finished. The bench measures it on two fresh platforms in the same run (the real topology
of ``tests/e2e/platform.py``: fakesnow, Dagster code server, webserver and daemon, one API):

- ours: the daemon as ``agents-data`` starts it (``orchestration/daemon.py``), its backfill
  pass every ``DAGSTER_BACKFILL_INTERVAL_S`` (2 s by default);
- baseline: the same daemon with the pass at Dagster's own 30 s
  (``DAGSTER_BACKFILL_INTERVAL_S=30``), what ``dagster-daemon run`` does.

Each of ``--refreshes`` rounds inserts ``--insert`` late rows into each of two old days that are
not adjacent (one changed day, or a range of them, is refreshed as a single run instead), asks
for a refresh, and polls a count until the rows are visible; then waits for the job to
finish before the next round.

    python bench/backfill_latency.py [--refreshes 5] [--days 12] [--no-baseline]

The last stdout line is JSON with ``backfill_refresh_p50_s`` / ``_p95_s`` (ours), the
baseline's under ``dagster_default_pass``, and ``speedup_vs_dagster_default_pass``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.refresh_latency import _percentile
from tests.e2e.platform import start_platform, wait_until
from tests.serving.helpers import bearer, create_swarm, mint_token

TABLE = "demo.bench.visits"
SOURCE = "DEMO.BENCH.VISITS"
PER_DAY = 100


def _seed(days: int) -> Any:
    def seed(cur: Any) -> None:
        cur.execute("CREATE SCHEMA IF NOT EXISTS DEMO.BENCH")
        cur.execute(f"CREATE OR REPLACE TABLE {SOURCE} (VISIT_ID NUMBER(12,0) NOT NULL, VISIT_DATE DATE NOT NULL, "
                    "UPDATED_AT TIMESTAMP_NTZ NOT NULL, V VARCHAR)")
        cur.execute(
            f"INSERT INTO {SOURCE} SELECT n + 1, DATEADD(day, FLOOR(n / {PER_DAY}), CAST('2025-01-01' AS DATE)), "
            f"CAST('2025-02-01 00:00:00' AS TIMESTAMP_NTZ), 'v0' "
            f"FROM (SELECT seq4() AS n FROM TABLE(GENERATOR(ROWCOUNT => {days * PER_DAY})))")
    return seed


def _count(api: httpx.Client, agent: dict[str, str]) -> int:
    r = api.post("/api/v1/queries/execute", json={"query": f"SELECT count(*) FROM {TABLE}"}, headers=agent)
    if r.status_code == 404:  # nothing served yet: the first backfill has not published
        return 0
    r.raise_for_status()
    return int(r.json()["rows"][0][0])


def _refresh(api: httpx.Client, agent: dict[str, str], admin: dict[str, str], *, expected: int,
             timeout_s: float) -> dict[str, Any]:
    started = time.perf_counter()
    r = api.post(f"/api/v1/data/tables/{TABLE}/refresh", json={"max_age_s": 0}, headers=agent)
    r.raise_for_status()
    body = r.json()
    try:
        wait_until(lambda: _count(api, agent) >= expected, timeout_s=timeout_s, interval_s=0.1,
                   message=f"{expected} rows visible")
    except AssertionError as e:  # say what the job got to, so a stuck refresh can be told from a slow one
        job = api.get(f"/api/v1/sync/jobs/{body['job_id']}", headers=admin).json()
        raise AssertionError(f"{e}; served {_count(api, agent)} rows; the job: {job}") from e
    visible = time.perf_counter() - started
    job = wait_until(lambda: (j := api.get(f"/api/v1/sync/jobs/{body['job_id']}", headers=admin).json())["status"]
                     in ("succeeded", "failed", "canceled") and j, timeout_s=timeout_s, interval_s=0.2,
                     message="backfill finished")
    finished = time.perf_counter() - started
    return {"visible_s": visible, "finished_s": finished, "kind": body.get("kind"),
            "partitions": body.get("partitions"), "job_status": job["status"]}


def _measure(args: argparse.Namespace, postgres: bool, *, interval_s: float) -> list[dict[str, Any]]:
    print(f"== backfill pass every {interval_s:g} s", flush=True)
    samples: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp, start_platform(
        Path(tmp), replicas=("a",), seed=_seed(args.days), postgres=postgres,
        extra_env={"AGENT_REFRESHES_PER_MINUTE": "10000", "LOG_LEVEL": "warning",
                   "DAGSTER_BACKFILL_INTERVAL_S": str(interval_s)},
    ) as platform:
        admin = platform.admin_headers()
        with platform.apis["a"].client() as api:
            r = api.post("/api/v1/sync/tables/register", headers=admin, json={
                "table_name": "visits", "schema_name": "bench", "strategy": "incremental",
                "incremental_key": "UPDATED_AT", "primary_key": ["VISIT_ID"], "freshness": "1h",
                "partitioning": {"kind": "daily", "column": "VISIT_DATE", "start": "2025-01-01"}})
            r.raise_for_status()
            swarm = create_swarm(api, admin, [TABLE])
            agent = bearer(mint_token(api, admin, "agent", swarm["id"])["token"])
            expected = args.days * PER_DAY
            first = _refresh(api, agent, admin, expected=expected, timeout_s=args.timeout)
            print(f"first backfill ({args.days} days): visible after {first['visible_s']:.2f} s", flush=True)
            for i in range(args.refreshes):
                first_day = 1 + (i * 5) % (args.days - 3)
                days = [f"2025-01-{first_day:02d}", f"2025-01-{first_day + 3:02d}"]  # not adjacent: a backfill
                with platform.source() as cur:
                    for n, day in enumerate(days):
                        cur.execute(f"INSERT INTO {SOURCE} SELECT 1000000 + %s + seq4(), CAST(%s AS DATE), "
                                    "DATEADD(minute, %s, CAST('2025-03-01 00:00:00' AS TIMESTAMP_NTZ)), 'late' "
                                    "FROM TABLE(GENERATOR(ROWCOUNT => %s))",
                                    ((2 * i + n) * args.insert, day, i, args.insert))
                expected += 2 * args.insert
                sample = _refresh(api, agent, admin, expected=expected, timeout_s=args.timeout)
                if sample["kind"] != "backfill" or sample["partitions"] != days:
                    raise RuntimeError(f"expected a backfill of {days}, got {sample}")
                samples.append(sample)
                print(f"refresh {i + 1}: late rows of {' and '.join(days)} visible after {sample['visible_s']:.2f} s, "
                      f"backfill finished after {sample['finished_s']:.2f} s", flush=True)
    return samples


def _summary(samples: list[dict[str, Any]]) -> dict[str, Any]:
    visible = [s["visible_s"] for s in samples]
    finished = [s["finished_s"] for s in samples]
    return {"backfill_refresh_p50_s": round(statistics.median(visible), 2),
            "backfill_refresh_p95_s": round(_percentile(visible, 0.95), 2),
            "backfill_finished_p50_s": round(statistics.median(finished), 2),
            "samples_s": [round(v, 2) for v in visible], "refreshes": len(samples)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--refreshes", type=int, default=5, help="timed refreshes of two late days each")
    parser.add_argument("--days", type=int, default=12, help="days (partitions) in the source table")
    parser.add_argument("--insert", type=int, default=20, help="late rows inserted into each of the two days")
    parser.add_argument("--interval", type=float, default=2.0, help="our backfill pass (DAGSTER_BACKFILL_INTERVAL_S)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for one refresh")
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure Dagster's own 30 s pass, in the same run")
    args = parser.parse_args(argv)
    postgres = bool(os.environ.get("TEST_POSTGRES_URL"))
    result: dict[str, Any] = {"bench": "backfill_latency", "interval_s": args.interval,
                              **_summary(_measure(args, postgres, interval_s=args.interval))}
    if args.baseline:
        default = _summary(_measure(args, postgres, interval_s=30.0))
        result["dagster_default_pass"] = default
        result["speedup_vs_dagster_default_pass"] = round(
            default["backfill_refresh_p50_s"] / result["backfill_refresh_p50_s"], 2)
    result.update({"load_average_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
                   "dagster_storage": "postgres" if postgres else "sqlite", "rows_per_day": PER_DAY})
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
