"""Load: 50 concurrent agents for 10 minutes against the real topology, with served data swapped under them.

Run: ``.venv/bin/python bench/load.py [--users 50] [--duration 600] [--swaps 3]``
(``TEST_POSTGRES_URL`` set: the PostgreSQL-backed production shape; SQLite otherwise).

The platform (fakesnow, Dagster code server, webserver and daemon, one API replica with
``API_WORKERS`` workers) starts through ``tests/e2e/platform.py`` with two tables: a
200,000-row ``orders`` table and a 50,000-row ``events`` table. A swarm is granted both,
and each simulated agent gets its own token. Locust (headless, ``bench/locustfile.py``)
then runs the mix the scenario file describes. During the run, ``--swaps`` times at even
intervals, rows are added to the source and a sync of ``orders`` is started and waited
for: a materialization that swaps the served data under the running queries. The API's
memory (every process of the replica) is sampled once a second.

Targets, each reported with its verdict:
- p99 <= 2 s for small queries and catalog calls;
- 0 failed queries in flight during the swaps (from each swap's start to 2 s after its publish);
- unintended errors (not 429) below 0.1% of requests;
- memory flat after warm-up: the mean RSS of the last fifth of the run within 15% (and
  at least 64 MB) of the mean of the second fifth.

The last stdout line is one JSON object: ``requests``, ``rps``, ``endpoints`` (p50/p99 and
counts per endpoint), ``errors_by_kind``, ``throttled``, ``error_rate``,
``swap_failures``, ``swaps`` (each with its duration), ``rss_mb`` (start, warm, end,
peak), ``targets`` (name to verdict) and ``passed``. ``--out`` also writes the memory
series (``memory.csv``) and locust's CSVs there, for the report's plots.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared import processes
from tests.e2e.platform import Platform, start_platform, wait_until
from tests.serving.helpers import create_swarm, mint_token

ORDERS, EVENTS = "demo.load.orders", "demo.load.events"
SMALL = ("query: point", "query: aggregate", "catalog: list", "catalog: describe")


def _seed(orders: int, events: int) -> Any:
    def seed(cur: Any) -> None:
        cur.execute("CREATE SCHEMA IF NOT EXISTS DEMO.LOAD")
        cur.execute("CREATE OR REPLACE TABLE DEMO.LOAD.ORDERS (ID NUMBER(12,0), REGION TEXT, CUSTOMER TEXT, "
                    "AMOUNT NUMBER(12,2), ORDERED_AT TIMESTAMP_NTZ)")
        cur.execute("INSERT INTO DEMO.LOAD.ORDERS SELECT seq4(), 'r' || (seq4() %% 7), 'c' || (seq4() %% 5000), "
                    "(seq4() %% 100000) / 100, dateadd(second, seq4(), '2026-01-01'::timestamp_ntz) "
                    "FROM TABLE(GENERATOR(ROWCOUNT => %s))", (orders,))
        cur.execute("CREATE OR REPLACE TABLE DEMO.LOAD.EVENTS (ID NUMBER(12,0), KIND TEXT, VALUE DOUBLE, "
                    "HAPPENED_AT TIMESTAMP_NTZ)")
        cur.execute("INSERT INTO DEMO.LOAD.EVENTS SELECT seq4(), 'k' || (seq4() %% 11), seq4() * 0.5, "
                    "dateadd(minute, seq4(), '2026-01-01'::timestamp_ntz) FROM TABLE(GENERATOR(ROWCOUNT => %s))",
                    (events,))

    return seed


def _prepare(platform: Platform) -> None:
    for name in ("orders", "events"):
        platform.register(table_name=name, schema_name="load", strategy="full")


def _sync(api: httpx.Client, admin: dict[str, str], table: str, timeout_s: float) -> dict[str, Any]:
    """Start a sync of ``table`` through the API and wait for its job to end; returns the job."""
    r = api.post("/api/v1/sync/start", headers=admin, json={"table_name": table, "schema_name": "load"})
    r.raise_for_status()
    job_id = r.json()["job_id"]
    job: dict[str, Any] = wait_until(
        lambda: (j := api.get(f"/api/v1/sync/jobs/{job_id}", headers=admin).json())["status"]
        in ("succeeded", "failed", "canceled") and j, timeout_s=timeout_s, interval_s=0.5, message=f"sync of {table}")
    if job["status"] != "succeeded":
        raise RuntimeError(f"sync of {table} ended {job['status']}: {job}")
    return job


def _rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children (uvicorn workers), in MB."""
    total = 0
    for p in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def _children(pid: int) -> list[int]:
    try:
        kids = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return kids + [g for k in kids for g in _children(k)]


class MemorySampler(threading.Thread):
    def __init__(self, pid: int, started: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.started, self.samples = pid, started, []  # type: ignore[var-annotated]
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(1.0):
            self.samples.append((time.time() - self.started, _rss_mb(self.pid)))


def _stats(prefix: Path) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    with open(f"{prefix}_stats.csv", newline="") as f:
        for row in csv.DictReader(f):
            if row["Name"] == "Aggregated":
                continue
            out[row["Name"]] = {"requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                                "p50_ms": float(row["50%"] or 0), "p99_ms": float(row["99%"] or 0),
                                "rps": round(float(row["Requests/s"] or 0), 2)}
    return out


def _errors(prefix: Path) -> dict[str, int]:
    kinds: dict[str, int] = {}
    with open(f"{prefix}_failures.csv", newline="") as f:
        for row in csv.DictReader(f):
            key = f"{row['Name']}: {row['Error']}"
            kinds[key] = kinds.get(key, 0) + int(row["Occurrences"])
    return kinds


def _memory_verdict(samples: list[tuple[float, float]], duration: float) -> dict[str, float]:
    def mean_between(a: float, b: float) -> float:
        vals = [m for t, m in samples if a * duration <= t < b * duration]
        return statistics.fmean(vals) if vals else 0.0

    return {"start": samples[0][1] if samples else 0.0, "warm": round(mean_between(0.2, 0.4), 1),
            "end": round(mean_between(0.8, 1.01), 1), "peak": max((m for _, m in samples), default=0.0)}


def run(*, users: int, duration: float, swaps: int, spawn_rate: float, orders: int, events: int,
        workers: int, out: Path | None = None) -> dict[str, Any]:
    postgres = bool(os.environ.get("TEST_POSTGRES_URL"))
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp, start_platform(
        Path(tmp), replicas=("a",), seed=_seed(orders, events), prepare=_prepare, postgres=postgres,
        extra_env={"API_WORKERS": str(workers), "LOG_LEVEL": "warning"},
    ) as platform:
        api_url = platform.apis["a"].url
        admin = platform.admin_headers()
        with httpx.Client(base_url=api_url, timeout=300) as api:
            for name in ("orders", "events"):
                _sync(api, admin, name, timeout_s=600)
            swarm = create_swarm(api, admin, [ORDERS, EVENTS])
            tokens = [mint_token(api, admin, "agent", swarm["id"])["token"] for _ in range(users)]
            work = Path(tmp) / "load"
            work.mkdir()
            agents = work / "agents.json"
            agents.write_text(json.dumps({"tokens": tokens, "orders": ORDERS, "events": EVENTS, "max_id": orders - 1}))
            prefix, outcomes = work / "locust", work / "outcomes.json"
            env = {**os.environ, "LOAD_AGENTS": str(agents), "LOAD_OUTCOMES_OUT": str(outcomes)}
            cmd = [sys.executable, "-m", "locust", "-f", str(Path(__file__).with_name("locustfile.py")), "--headless",
                   "-u", str(users), "-r", str(spawn_rate), "-t", f"{int(duration)}s", "--host", api_url,
                   "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "30"]
            started = time.time()
            sampler = MemorySampler(platform.apis["a"].child.proc.pid, started)
            sampler.start()
            locust = processes.start(cmd, env=env, log_path=work / "locust.log")
            windows: list[dict[str, Any]] = []
            try:
                for k in range(1, swaps + 1):
                    due = started + duration * k / (swaps + 1)
                    while time.time() < due and locust.poll() is None:
                        time.sleep(0.5)
                    with platform.source() as cur:
                        cur.execute("INSERT INTO DEMO.LOAD.ORDERS SELECT seq4() + %s, 'r0', 'new', 1, "
                                    "current_timestamp() FROM TABLE(GENERATOR(ROWCOUNT => 1000))", (10_000_000 * k,))
                    t0 = time.time()
                    _sync(api, admin, "orders", timeout_s=max(duration, 600))
                    windows.append({"start": t0, "end": time.time() + 2.0, "duration_s": round(time.time() - t0, 2)})
                locust.wait(timeout=duration + 120)
            finally:
                processes.stop(locust)
                sampler.done.set()
                sampler.join()
            endpoints, errors = _stats(prefix), _errors(prefix)
            recorded = json.loads(outcomes.read_text()) if outcomes.exists() else {"throttled": {}, "failures": []}
            if out is not None:
                out.mkdir(parents=True, exist_ok=True)
                with open(out / "memory.csv", "w", newline="") as f:
                    csv.writer(f).writerows([("t_s", "rss_mb"), *sampler.samples])
                for name in ("stats", "failures"):
                    (out / f"locust_{name}.csv").write_bytes(Path(f"{prefix}_{name}.csv").read_bytes())
    swap_failures = [f for f in recorded["failures"] if f["name"].startswith(("query", "export"))
                     and any(w["start"] <= f["at"] <= w["end"] for w in windows)]
    total = sum(e["requests"] for e in endpoints.values())
    failed = sum(e["failures"] for e in endpoints.values())
    memory = _memory_verdict(sampler.samples, duration)
    small_p99 = max((endpoints[n]["p99_ms"] for n in SMALL if n in endpoints), default=0.0)
    targets = {
        "small_p99_le_2s": small_p99 <= 2000,
        "no_failed_queries_during_swaps": not swap_failures and len(windows) == swaps,
        "unintended_errors_below_0.1pct": total > 0 and failed / total < 0.001,
        "memory_flat_after_warmup": memory["end"] <= max(memory["warm"] * 1.15, memory["warm"] + 64),
    }
    return {
        "users": users, "duration_s": duration, "requests": total, "rps": round(total / duration, 1),
        "endpoints": endpoints, "errors_by_kind": errors, "throttled": recorded["throttled"],
        "error_rate": round(failed / total, 5) if total else None, "small_p99_ms": small_p99,
        "swaps": windows and [{"duration_s": w["duration_s"]} for w in windows], "swap_failures": len(swap_failures),
        "rss_mb": {k: round(v, 1) for k, v in memory.items()}, "targets": targets, "passed": all(targets.values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    parser.add_argument("--swaps", type=int, default=3, help="materializations swapping served data during the run")
    parser.add_argument("--spawn-rate", type=float, default=10.0)
    parser.add_argument("--orders", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="API_WORKERS of the replica")
    parser.add_argument("--out", type=Path, help="folder for memory.csv and locust's CSVs")
    args = parser.parse_args(argv)
    result = run(users=args.users, duration=args.duration, swaps=args.swaps, spawn_rate=args.spawn_rate,
                 orders=args.orders, events=args.events, workers=args.workers, out=args.out)
    print(json.dumps(result), flush=True)
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
