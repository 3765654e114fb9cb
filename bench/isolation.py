"""Isolation benchmark: can agents running resource bombs stall or exhaust the API for everyone else?

Run: ``.venv/bin/python bench/isolation.py [--duration 30] [--agents 4] [--per-agent 4]``.

One real API process (``python -m serving``, as deployed) on a free loopback port, over
one served table. ``--agents`` agents each run ``--per-agent`` loops of bombs for
``--duration`` seconds; each loop cycles through the kinds below, starting at a
different one. Meanwhile a further agent runs a granted point query in a loop, and
``GET /health`` is polled, each about every 20 ms; the server's RSS is sampled from
``/proc`` every 10 ms. Each agent, and the probes, is its own client process, as separate
agents would be (one process reading every bomb's answer made its own GIL part of the
figures).

The bombs (sizes scaled by ``--scale`` so a run without the SQL guard's function bounds
stays inside this machine):
- ``learned``: a text run fast with ``[1, 1]`` first, then with large parameters
  (``damerau_levenshtein`` of two long strings: quadratic memory outside DuckDB's
  accounting), 1 s limit;
- ``repeat``: ``length(repeat('x', n))``, one long uninterruptible call, 1 s limit;
- ``json``: ``repeat('x', 1000000)`` over many rows as inline JSON (refused by size);
- ``scan``: a self-join filtered on ``hash()`` (no statistics prune it), 1 s limit;
- ``sample``: a sample filtered with ``sleep_ms(1) IS NULL``, under ``QUERY_TIMEOUT_S``;
- ``profile``: a profile of a reservoir sample (server-built scans under its limit).

Every bomb answer is timed to its last byte; ``overshoot`` is its duration minus its time
limit (``worst_overshoot_to_headers_s`` and ``overshoot_to_headers_by_kind_s``: to its
status and headers, when the server has decided the answer and its work has stopped; a
JSON bomb cut at ``QUERY_JSON_MAX_BYTES`` then still has 16 MB to deliver). The
probes first run for a few seconds without bombs (``quiet_*_p99_ms``): on a shared
machine that is the floor the bombs' figures should be read against.
Targets: ``health_p99_ms`` and ``point_p99_ms`` < 100; ``peak_rss_mb`` <
``rss_budget_mb`` = QUERY_MEMORY_LIMIT × concurrent slots + 300 MB (slots: the bomb
loops plus the point-query agent); ``worst_overshoot_s`` < 1.

``server_*_p99_ms`` are the probes' durations as the server's audit rows have them (from
the request reaching the app to its last byte handed to the server): the part of the
figures the server controls, without the machine's other load on the clients.

The last stdout line is one JSON object with ``health_p99_ms``, ``point_p99_ms``,
``peak_rss_mb``, ``rss_budget_mb`` and ``worst_overshoot_s`` (and details).

``--compare`` runs the bench twice in one go, first with ``QUERY_PRIORITIES=true`` (all agent
work not known to be cheap below the event loop's CPU priority from its start), then with
the defaults (``false``: only long-running queries, samples and profiles below it); the JSON
line is the second run's, with the first's figures under ``alternative`` and the ratios
(default / alternative) under ``ratio``. On a shared machine the
ratio is the figure to read; each run reports the load average at its end.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime as dt
import json
import os
import random
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import log, publish_select  # noqa: E402
from shared import processes  # noqa: E402

KEY = "demo.public.orders"
TABLE_SQL = ("SELECT i AS id, (i % 1000) AS customer_id, round(random() * 1000, 2)::DECIMAL(12, 2) AS amount, "
             "['new', 'paid', 'shipped'][1 + (i % 3)::INT] AS status FROM range({rows}) t(i)")
POINT_SQL = "select * from orders where id = ?"
MEMORY_LIMIT_MB = 256
SAMPLE_TIMEOUT_S = 2.0  # QUERY_TIMEOUT_S of the run: the limit of samples
BOMB_TIMEOUT_S = 1.0
HTTP_TIMEOUT_S = 60.0
KINDS = ("learned", "repeat", "json", "scan", "sample", "profile")
COMPARED = ("health_p99_ms", "point_p99_ms", "health_p50_ms", "point_p50_ms", "quiet_health_p99_ms",
            "quiet_point_p99_ms", "server_health_p99_ms", "server_point_p99_ms", "peak_rss_mb",
            "worst_overshoot_s", "worst_overshoot_to_headers_s", "bombs")


def publish(served: Path, rows: int) -> None:
    publish_select(served, KEY, TABLE_SQL.format(rows=int(rows)), rows)


def start_api(home: Path, port: int, logfile: Path, *, slots: int, extra_env: dict[str, str] | None = None) -> Any:
    env = {**os.environ, "AGENTS_DATA_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'control.db'}",
           "JWT_SECRET": "bench-secret-" + "b" * 32, "ADMIN_PASSWORD": "bench-password", "PYTHONPATH": str(ROOT),
           "API_HOST": "127.0.0.1", "API_PORT": str(port), "API_WORKERS": "1", "LOG_LEVEL": "warning",
           "QUERY_MEMORY_LIMIT": f"{MEMORY_LIMIT_MB}MB", "QUERY_TIMEOUT_S": str(SAMPLE_TIMEOUT_S),
           # The process guard acts 100 MB under the budget: room for growth between its checks.
           "QUERY_PROCESS_MEMORY_LIMIT": f"{MEMORY_LIMIT_MB * slots + 200}MB",
           "AGENT_REQUESTS_PER_MINUTE": "1000000", "SWARM_REQUESTS_PER_MINUTE": "1000000",
           "SWARM_MAX_CONCURRENT_QUERIES": "0",  # the bench sizes the load by agents and loops itself
           "PYTHONPYCACHEPREFIX": str(Path(tempfile.gettempdir()) / "agents-data-pycache"), "PYTHONDONTWRITEBYTECODE": "",
           **(extra_env or {})}
    proc = processes.start([sys.executable, "-m", "serving"], env=env, cwd=ROOT, log_path=logfile)
    try:
        processes.wait_for_http(f"http://127.0.0.1:{port}/health", timeout_s=180, proc=proc)
    except BaseException:
        processes.stop(proc)
        raise
    return proc


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def tokens(c: httpx.Client, n: int) -> list[dict[str, str]]:
    r = c.post("/api/v1/auth/token", data={"username": "admin", "password": "bench-password"})
    r.raise_for_status()
    admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
    swarm = c.post("/api/v1/admin/swarms", headers=admin,
                   json={"name": f"bench-{secrets.token_hex(3)}", "grants": [KEY]}).json()
    out = []
    for i in range(n):
        tok = c.post("/api/v1/admin/tokens", headers=admin, json={"type": "agent", "swarm_id": swarm["id"],
                                                                  "name": f"agent-{i}"})
        tok.raise_for_status()
        out.append({"Authorization": f"Bearer {tok.json()['token']}"})
    return out


class Bombs:
    """Request builders for each bomb kind: (method, url, kwargs, time limit in seconds)."""

    def __init__(self, scale: float, rows: int) -> None:
        self.dl = int(4000 * scale)  # ~0.6 s and ~180 MB per call alone
        self.rep = int(100_000_000 * scale)  # one ~1.2 s call building ~200 MB
        self.json_rows = max(100, int(300 * scale))  # a DuckDB chunk of this many 1 MB strings
        self.rows = rows

    def request(self, kind: str, step: int) -> tuple[str, str, dict[str, Any], float]:
        """The ``step``-th bomb of ``kind`` of one loop."""
        q = "/api/v1/queries/execute"
        if kind == "learned":
            n = 1 if step % 3 < 2 else self.dl  # learned fast with [1, 1], then large
            sql = "select damerau_levenshtein(repeat('a', ?), repeat('b', ?)) as d"
            return "POST", q, {"json": {"query": sql, "params": [n, n], "timeout_s": BOMB_TIMEOUT_S}}, BOMB_TIMEOUT_S
        if kind == "repeat":
            return "POST", q, {"json": {"query": "select length(repeat('x', ?)) as n", "params": [self.rep],
                                        "timeout_s": BOMB_TIMEOUT_S}}, BOMB_TIMEOUT_S
        if kind == "json":
            sql = f"select repeat('x', 1000000) as s from range({self.json_rows})"
            return "POST", q, {"json": {"query": sql, "timeout_s": BOMB_TIMEOUT_S}}, BOMB_TIMEOUT_S
        if kind == "scan":
            sql = "select count(*) as n from orders a, orders b where hash(a.id, b.id) % 1000003 = 7"
            return "POST", q, {"json": {"query": sql, "timeout_s": BOMB_TIMEOUT_S}}, BOMB_TIMEOUT_S
        if kind == "sample":
            return "GET", "/api/v1/data/tables/orders/sample", {
                "params": {"method": "random", "size": 100, "where": "sleep_ms(1) IS NULL"}}, SAMPLE_TIMEOUT_S
        return "GET", "/api/v1/data/tables/orders/profile", {
            "params": {"sample": min(self.rows, 100_000), "seed": step, "force_refresh": "true"}}, 300.0


def bomb_loop(base: str, h: dict[str, str], bombs: Bombs, *, first: int, stop_at: float,
              out: list[dict[str, Any]]) -> None:
    with httpx.Client(base_url=base, headers=h, timeout=HTTP_TIMEOUT_S) as c:
        step = 0
        seen: collections.Counter[str] = collections.Counter()
        while time.monotonic() < stop_at and step < 100_000:
            kind = KINDS[(first + step) % len(KINDS)]
            method, url, kwargs, limit = bombs.request(kind, seen[kind])
            seen[kind] += 1
            started = time.monotonic()
            r = None
            headers_s = None
            try:
                with c.stream(method, url, **kwargs) as r:
                    headers_s = time.monotonic() - started
                    r.read()
                status: Any = r.status_code
            except httpx.HTTPError as e:
                status = f"error: {type(e).__name__}"
            took = time.monotonic() - started
            out.append({"kind": kind, "status": status, "s": took, "headers_s": headers_s, "limit_s": limit,
                        "rule": r.json().get("error", {}).get("rule") if status not in (200, 429) and r is not None
                        else None})
            step += 1
            if status == 429:
                time.sleep(1.0)  # all this agent's slots hold runaways: retry after Retry-After (1 s)


def probe_loop(base: str, method: str, url: str, *, kwargs: Any, stop_at: float, out: list[float],
               failures: list[str]) -> None:
    with httpx.Client(base_url=base, timeout=HTTP_TIMEOUT_S) as c:
        n = 0
        while time.monotonic() < stop_at and n < 1_000_000:
            started = time.perf_counter()
            try:
                r = c.request(method, url, **(kwargs() if callable(kwargs) else kwargs))
                if r.status_code != 200:
                    failures.append(f"{r.status_code}: {r.text[:200]}")
            except httpx.HTTPError as e:
                failures.append(type(e).__name__)
            out.append((time.perf_counter() - started) * 1000.0)
            n += 1
            time.sleep(0.02)


def client_main(spec: dict[str, Any]) -> dict[str, Any]:
    """One client process: an agent's bomb loops (``role: agent``) or the probes (``role: probe``: ``/health``
    and the fifth agent's point query), from ``start_at`` (wall clock) for ``duration_s``."""
    time.sleep(max(0.0, spec["start_at"] - time.time()))
    stop_at = time.monotonic() + spec["duration_s"]
    base, h, rows = spec["base"], spec["headers"], spec["rows"]
    threads: list[threading.Thread] = []
    if spec["role"] == "agent":
        bombs = Bombs(spec["scale"], rows)
        results: list[dict[str, Any]] = []
        threads = [threading.Thread(target=bomb_loop, args=(base, h, bombs), daemon=True,
                                    kwargs={"first": first, "stop_at": stop_at, "out": results})
                   for first in spec["firsts"]]
        out: dict[str, Any] = {"bombs": results}
    else:
        def point_kwargs() -> dict[str, Any]:
            return {"headers": h, "json": {"query": POINT_SQL,
                                           "params": [random.randrange(rows)]}}  # noqa: S311 - not a secret

        out = {"health": [], "point": [], "failures": []}
        threads = [threading.Thread(target=probe_loop, args=(base, "GET", "/health"), daemon=True, kwargs={
                       "kwargs": {}, "stop_at": stop_at, "out": out["health"], "failures": out["failures"]}),
                   threading.Thread(target=probe_loop, args=(base, "POST", "/api/v1/queries/execute"), daemon=True,
                                    kwargs={"kwargs": point_kwargs, "stop_at": stop_at, "out": out["point"],
                                            "failures": out["failures"]})]
    for t in threads:
        t.start()
    for t in threads:
        t.join(spec["duration_s"] + HTTP_TIMEOUT_S + 30)
    return out


def clients(specs: list[dict[str, Any]], *, duration_s: float) -> list[dict[str, Any]]:
    """Run each client spec in its own process, all starting together; their results, in order.

    Separate processes, as separate agents would be: in one process the bomb loops' reading of
    64 MB answers (a thousand socket reads each, every one waiting for the process's GIL) was
    part of the probes' latency and of the bombs' own durations."""
    start_at = time.time() + 3.0  # every process has imported its client by then
    procs = [subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--client",
                               json.dumps({**spec, "start_at": start_at, "duration_s": duration_s})],
                              stdout=subprocess.PIPE, cwd=ROOT)
             for spec in specs]
    outs = []
    try:
        for p in procs:
            stdout, _ = p.communicate(timeout=duration_s + HTTP_TIMEOUT_S + 90)
            if p.returncode != 0:
                raise RuntimeError(f"bench client exited with {p.returncode}")
            outs.append(json.loads(stdout.decode().strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return outs


def server_latencies(control_db: Path, *, since: dt.datetime) -> dict[str, list[float]]:
    """The probes' durations as the server's audit rows have them (from the request's arrival at the
    app to its last byte handed to the server), for the loaded phase: what the figures are without
    this machine's other load on the clients and the network stack."""
    out: dict[str, list[float]] = {"health": [], "point": []}
    with contextlib.closing(sqlite3.connect(control_db)) as con:
        rows = con.execute("SELECT at, endpoint, sql_text, duration_ms FROM audit_log WHERE status_code = 200").fetchall()
    for at, endpoint, sql, ms in rows:
        if dt.datetime.fromisoformat(str(at)).replace(tzinfo=None) < since:
            continue
        if endpoint == "/health":
            out["health"].append(float(ms))
        elif sql == POINT_SQL:
            out["point"].append(float(ms))
    return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(*, duration_s: float, agents: int, per_agent: int, rows: int, scale: float, home_root: Path | None = None,
        extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-isolation-", dir=home_root))
    home = tmp / "home"
    home.mkdir()
    slots = agents * per_agent + 1
    proc = None
    try:
        publish(home / "served", rows)
        port = processes.free_port()
        proc = start_api(home, port, tmp / "api.log", slots=slots, extra_env=extra_env)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=HTTP_TIMEOUT_S) as c:
            hs = tokens(c, agents + 1)
            point_h = hs[-1]
            warm = c.post("/api/v1/queries/execute", headers=point_h,
                          json={"query": POINT_SQL, "params": [1]})
            warm.raise_for_status()
        baseline_rss = rss_mb(proc.pid)
        peak = [baseline_rss]

        # The same probes without bombs first: what this machine gives anyway (it may be shared).
        probe = {"role": "probe", "base": base, "headers": point_h, "rows": rows}
        quiet = clients([probe], duration_s=min(5.0, duration_s / 3))[0]
        sampling = threading.Event()

        def watch() -> None:
            while not sampling.is_set():
                peak[0] = max(peak[0], rss_mb(proc.pid))
                time.sleep(0.01)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        agent_specs = [{"role": "agent", "base": base, "headers": hs[a], "rows": rows, "scale": scale,
                        "firsts": [a * per_agent + i for i in range(per_agent)]} for a in range(agents)]
        loaded_from = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        loaded, *agent_outs = clients([probe, *agent_specs], duration_s=duration_s)
        time.sleep(0.5)
        sampling.set()
        watcher.join(5)
        health, point, failures = loaded["health"], loaded["point"], loaded["failures"]
        results = [r for out in agent_outs for r in out["bombs"]]
        quiet_health, quiet_point = quiet["health"], quiet["point"]
        alive = processes_alive = proc.poll() is None
        statuses = collections.Counter(f"{r['kind']}:{r['status']}" + (f":{r['rule']}" if r["rule"] else "")
                                       for r in results)
        overshoots = [r["s"] - r["limit_s"] for r in results]
        worst = max(overshoots, default=0.0)
        worst_kind = max(results, key=lambda r: r["s"] - r["limit_s"])["kind"] if results else None
        by_kind: dict[str, float] = {}
        to_headers: dict[str, float] = {}  # the answer decided (status and headers sent), before its body arrives
        for r in results:
            by_kind[r["kind"]] = round(max(by_kind.get(r["kind"], -1e9), r["s"] - r["limit_s"]), 3)
            if r["headers_s"] is not None:
                to_headers[r["kind"]] = round(max(to_headers.get(r["kind"], -1e9), r["headers_s"] - r["limit_s"]), 3)
        processes.stop(proc)  # its audit writer flushes as it stops
        proc = None
        server = server_latencies(home / "control.db", since=loaded_from)
        return {
            "health_p99_ms": round(pct(health, 0.99), 1),
            "point_p99_ms": round(pct(point, 0.99), 1),
            "peak_rss_mb": round(peak[0], 1),
            "rss_budget_mb": MEMORY_LIMIT_MB * slots + 300,
            "worst_overshoot_s": round(max(worst, 0.0), 3),
            "worst_overshoot_kind": worst_kind,
            "worst_overshoot_to_headers_s": round(max(max(to_headers.values(), default=0.0), 0.0), 3),
            "overshoot_by_kind_s": by_kind,
            "overshoot_to_headers_by_kind_s": to_headers,
            "server_health_p99_ms": round(pct(server["health"], 0.99), 1),
            "server_point_p99_ms": round(pct(server["point"], 0.99), 1),
            "quiet_health_p99_ms": round(pct(quiet_health, 0.99), 1),
            "quiet_point_p99_ms": round(pct(quiet_point, 0.99), 1),
            "health_p50_ms": round(pct(health, 0.5), 1), "point_p50_ms": round(pct(point, 0.5), 1),
            "health_n": len(health), "point_n": len(point), "probe_failures": failures[:10],
            "probe_failure_count": len(failures), "bombs": len(results),
            "bomb_statuses": dict(sorted(statuses.items())),
            "baseline_rss_mb": round(baseline_rss, 1), "server_alive": alive and processes_alive,
            "agents": agents, "per_agent": per_agent, "duration_s": duration_s, "rows": rows, "scale": scale,
            "query_memory_limit_mb": MEMORY_LIMIT_MB, "slots": slots, "load_avg_1m": os.getloadavg()[0],
            "env": extra_env or {},
        }
    finally:
        if proc is not None:
            processes.stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--agents", type=int, default=4)
    ap.add_argument("--per-agent", type=int, default=4)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--compare", action="store_true", help="run with QUERY_PRIORITIES=true first, then the defaults")
    ap.add_argument("--client", help=argparse.SUPPRESS)  # internal: run one client process (JSON spec)
    args = ap.parse_args()
    if args.client:
        print(json.dumps(client_main(json.loads(args.client))))
        return
    common = {"duration_s": args.duration, "agents": args.agents, "per_agent": args.per_agent, "rows": args.rows,
              "scale": args.scale}
    alternative = run(**common, extra_env={"QUERY_PRIORITIES": "true"}) if args.compare else None
    if alternative is not None:
        log(json.dumps(alternative, indent=1))
    result = run(**common)
    if alternative is not None:
        result["alternative"] = {k: alternative[k] for k in (*COMPARED, "load_avg_1m", "bomb_statuses", "env")}
        result["ratio"] = {k: round(result[k] / alternative[k], 3) if alternative[k] else None for k in COMPARED}
    log(json.dumps(result, indent=1))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
