"""Serving benchmark: our API (auth, guard, audit on) against a bare ASGI app over the same table.

Run: ``.venv/bin/python bench/serving.py [--rows 1000000] [--duration 4] [--repeats 3]``.

Both sides are real uvicorn processes on free loopback ports, over the same served
1,000,000-row DuckDB file (published with shared.served):
- ``bare``: a raw ASGI app holding one DuckDB connection to the file; it parses the same
  JSON body, runs the same SQL with the same bound parameter and answers msgspec JSON.
  No auth, no guard, no audit, no thread hop: the limit.
- ``ours``: ``serving.app:create_app`` with an agent token, the SQL guard, the grant-scoped
  instance, the per-agent limiter and the audit writer (SQLite control database).
- ``floor``: the framework's own floor, for the point query: a one-route Litestar app whose
  handler runs the bare app's statement on a worker thread (``sync_to_thread``), as any
  server must that keeps its event loop free for other callers while DuckDB works. No auth,
  no guard, no audit. ``floor_p50_ratio_vs_bare`` is what Litestar and the thread hop cost
  before any of our code runs, and ``p50_ratio_vs_floor`` what our request path adds to it.
- ``inline``: the same one-route Litestar app with the statement run on the event loop
  (``sync_to_thread=False``), as the bare app does it: what Litestar alone costs, with no
  thread hop and none of our code (``inline_p50_ratio_vs_bare``). A server built on Litestar
  cannot go below it, whatever its request path does.

Load comes from ``wrk`` (``apt-get install wrk``) with a Lua script that POSTs the body,
at concurrency 1 and 16, for a point query (``WHERE id = ?``, a random id per request)
and a group-by aggregate. Each case runs ``--repeats`` times, alternating bare/ours, and
the median run is kept (the machine is shared). ``point_literal`` (the id written into
the SQL text, so every request misses the guard cache) is reported for information.

A third server, ``python -m serving`` with ``API_WORKERS`` = cores (``--workers``), is
our API as the README recommends deploying it on this machine; it serves the point
query at the highest concurrency only. ``p50_ratio_vs_bare`` compares like with like
(one worker each side); ``point_rps`` is the deployed (``API_WORKERS``) figure, and
``point_rps_one_worker`` the single-worker one.

The last stdout line is one JSON object with at least ``p50_ratio_vs_bare`` (worst case
of point/aggregate × c1/c16) and ``point_rps`` (ours, concurrency 16), and ``stages_us``:
microseconds per point query in each stage of our request path (auth, guard cache, slot,
instance acquire, query, JSON encode, audit), from ``bench/request_stages.py``. It also carries
``cpu_ratio_vs_bare`` (server CPU per request, ours / bare, from /proc: less sensitive to
other load on a shared machine than latency) and the load average during the run.

Diagnostics: ``BENCH_DEBUG=1`` prints the servers' logs at the end;
``BENCH_TOKEN_TTL=<s>`` sets our token cache TTL (to measure the identity lookups).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import publish_select  # noqa: E402
from shared import processes  # noqa: E402

ADMIN_PASSWORD = secrets.token_urlsafe(16)
POINT = "select * from orders where id = ?"
AGG = "select status, count(*) as n, sum(amount) as total, avg(quantity) as q from orders group by status order by status"
LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
{auth}
local mode = "{mode}"
request = function()
  local id = math.random(0, {rows} - 1)
  local body
  if mode == "point" then
    body = '{{"query": "{point}", "params": [' .. id .. ']}}'
  elseif mode == "literal" then
    body = '{{"query": "select * from orders where id = ' .. id .. '"}}'
  else
    body = '{{"query": "{agg}"}}'
  end
  return wrk.format(nil, "{path}", nil, body)
end
"""


def publish(served: Path, rows: int) -> Path:
    return publish_select(served, "demo.public.orders", f"""SELECT range AS id, range % 50000 AS customer_id,
        ['new','paid','shipped','returned','cancelled'][1 + range % 5] AS status,
        ((range % 100000) / 100)::DECIMAL(12,2) AS amount, 1 + range % 9 AS quantity,
        TIMESTAMP '2025-01-01' + INTERVAL (range) SECOND AS created_at, 'note ' || range AS note,
        range % 7 = 0 AS flagged, range * 1.5 AS score, 'EU' AS region FROM range({int(rows)})""", rows)


# --- the bare app (run in a child process: ``bench/serving.py --bare FILE --port N``) ---
def bare_app(db_file: str):  # type: ignore[no-untyped-def]
    import duckdb
    import msgspec

    con = duckdb.connect(db_file, read_only=True)
    con.execute("CREATE TEMP VIEW orders AS SELECT * FROM data")
    enc = msgspec.json.Encoder(decimal_format="string")

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            msg = await receive()
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
        status, out = 200, b"{}"
        if body:
            req = msgspec.json.decode(body)
            cur = con.execute(req["query"], req.get("params") or [])
            rows = cur.fetchall()
            cols = [{"name": d[0], "type": str(d[1])} for d in cur.description]
            out = enc.encode({"columns": cols, "rows": rows, "row_count": len(rows), "truncated": False})
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": out})

    return app


def floor_app(db_file: str, *, inline: bool = False):  # type: ignore[no-untyped-def]
    import threading

    import duckdb
    import msgspec
    from litestar import Litestar, Response, post

    con = duckdb.connect(db_file, read_only=True)
    enc = msgspec.json.Encoder(decimal_format="string")
    local = threading.local()

    class Body(msgspec.Struct):
        query: str
        params: list[object] = msgspec.field(default_factory=list)

    def cursor() -> duckdb.DuckDBPyConnection:  # one cursor per worker thread, with the same view as bare's
        if not hasattr(local, "cur"):
            local.cur = con.cursor()
            local.cur.execute("CREATE TEMP VIEW orders AS SELECT * FROM data")
        return local.cur

    @post("/", sync_to_thread=not inline, status_code=200)
    def query(data: Body) -> Response[bytes]:
        cur = cursor().execute(data.query, data.params)
        rows = cur.fetchall()
        cols = [{"name": d[0], "type": str(d[1])} for d in cur.description]
        return Response(enc.encode({"columns": cols, "rows": rows, "row_count": len(rows), "truncated": False}),
                        media_type="application/json")

    # Annotations are strings here (``from __future__``); the handler's names are given to Litestar.
    return Litestar([query], signature_namespace={"Body": Body, "Response": Response})


def serve_bare(db_file: str, port: int, app: str = "bare") -> None:
    import uvicorn

    asgi = floor_app(db_file, inline=app == "inline") if app in ("floor", "inline") else bare_app(db_file)
    uvicorn.run(asgi, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def start(cmd: list[str], env: dict[str, str], url: str) -> subprocess.Popen[bytes]:
    """Start a server (signals reset, own process group, output in a log next to its data) and wait for ``url``."""
    log_path = Path(env["AGENTS_DATA_HOME"]) / f"server-{url.split(':')[2].split('/', maxsplit=1)[0]}.log"
    proc = processes.start(cmd, env=env, cwd=ROOT, log_path=log_path)
    try:
        processes.wait_for_http(url, proc=proc, timeout_s=240)  # the API imports Dagster clients; slow when loaded
    except (RuntimeError, TimeoutError) as e:
        processes.stop(proc, grace_s=10)
        raise RuntimeError(f"{cmd} did not start: {e}\n{log_path.read_text(errors='replace')[-2000:]}") from e
    return proc


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids = task / "children"
        if kids.exists():
            found += [int(k) for k in kids.read_text().split()]
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) and its live children (uvicorn workers), from /proc."""
    total = 0.0
    for p in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def run_wrk(url: str, script: Path, conns: int, duration: float, pid: int | None = None) -> dict[str, float]:
    cpu0 = cpu_seconds(pid) if pid else 0.0
    out = subprocess.run(["wrk", "-t1" if conns == 1 else "-t2", f"-c{conns}", f"-d{max(1, round(duration))}s", "--latency",
                          "-s", str(script), url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    pct = {p: _ms(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    cpu_ms = (cpu_seconds(pid) - cpu0) * 1000 / max(total, 1) if pid else 0.0
    return {"rps": rps, "p50_ms": pct["50"], "p99_ms": pct["99"], "errors": int(non2xx.group(1)) if non2xx else 0,
            "server_cpu_ms_per_req": round(cpu_ms, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--modes", default="point,agg,literal", help="comma-separated subset of point,agg,literal")
    ap.add_argument("--conns", default="1,16", help="comma-separated concurrency levels")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2,
                    help="API_WORKERS of the scaled-out side (point queries at the highest concurrency)")
    ap.add_argument("--stage-requests", type=int, default=2000,
                    help="point queries for the per-stage profile (bench/request_stages.py); 0 skips it")
    ap.add_argument("--bare", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--app", default="bare", choices=("bare", "floor", "inline"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare:
        serve_bare(args.bare, args.port, args.app)
        return
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install -y wrk")

    home = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        t0 = time.time()
        db_file = publish(home / "served", args.rows)
        print(f"published {args.rows} rows in {time.time() - t0:.1f} s", file=sys.stderr)
        env = dict(os.environ, AGENTS_DATA_HOME=str(home), DATABASE_URL=f"sqlite:///{home / 'control.db'}",
                   JWT_SECRET="bench-" + "s" * 40, ADMIN_PASSWORD=ADMIN_PASSWORD, LOG_LEVEL="warning",
                   AGENT_REQUESTS_PER_MINUTE="100000000", AGENT_MAX_CONCURRENT_QUERIES="64",
                   SWARM_REQUESTS_PER_MINUTE="100000000", SWARM_MAX_CONCURRENT_QUERIES="64",
                   **({"TOKEN_CACHE_TTL_S": os.environ["BENCH_TOKEN_TTL"]} if os.environ.get("BENCH_TOKEN_TTL") else {}))
        bare_port, our_port = processes.free_port(), processes.free_port()
        procs.append(start([sys.executable, __file__, "--bare", str(db_file), "--port", str(bare_port)], env,
                           f"http://127.0.0.1:{bare_port}/"))
        procs.append(start([sys.executable, "-m", "uvicorn", "serving.app:create_app", "--factory", "--host", "127.0.0.1",
                            "--port", str(our_port), "--log-level", "warning", "--no-access-log"], env,
                           f"http://127.0.0.1:{our_port}/health"))
        ours = f"http://127.0.0.1:{our_port}"
        floor_port = processes.free_port()
        procs.append(start([sys.executable, __file__, "--bare", str(db_file), "--port", str(floor_port), "--app", "floor"],
                           env, f"http://127.0.0.1:{floor_port}/schema/openapi.json"))
        inline_port = processes.free_port()
        procs.append(start([sys.executable, __file__, "--bare", str(db_file), "--port", str(inline_port), "--app", "inline"],
                           env, f"http://127.0.0.1:{inline_port}/schema/openapi.json"))
        # The recommended deployment: one uvicorn worker per core (API_WORKERS), via `python -m serving`.
        scaled_port = processes.free_port()
        procs.append(start([sys.executable, "-m", "serving"],
                           dict(env, API_HOST="127.0.0.1", API_PORT=str(scaled_port), API_WORKERS=str(args.workers)),
                           f"http://127.0.0.1:{scaled_port}/health"))
        with httpx.Client(base_url=ours, timeout=30) as c:
            admin = c.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}).json()
            h = {"Authorization": f"Bearer {admin['access_token']}"}
            swarm = c.post("/api/v1/admin/swarms", json={"name": "bench", "grants": ["demo.public.orders"]}, headers=h).json()
            tok = c.post("/api/v1/admin/tokens", json={"type": "agent", "swarm_id": swarm["id"], "name": "bench-agent"},
                         headers=h).json()["token"]
            check = c.post("/api/v1/queries/execute", json={"query": POINT, "params": [42]},
                           headers={"Authorization": f"Bearer {tok}"})
            if check.status_code != 200 or check.json()["row_count"] != 1:
                raise RuntimeError(f"the API did not answer the point query: {check.text}")

        scripts = {}
        for side, auth in (("bare", ""), ("ours", f'wrk.headers["Authorization"] = "Bearer {tok}"'), ("floor", ""),
                           ("inline", "")):
            for mode in ("point", "agg", "literal"):
                path = home / f"{side}-{mode}.lua"
                path.write_text(LUA.format(auth=auth, mode=mode, rows=args.rows, point=POINT, agg=AGG,
                                           path="/api/v1/queries/execute" if side == "ours" else "/"))
                scripts[side, mode] = path
        scripts["scaled", "point"] = scripts["ours", "point"]
        urls = {"bare": f"http://127.0.0.1:{bare_port}", "ours": ours, "floor": f"http://127.0.0.1:{floor_port}",
                "inline": f"http://127.0.0.1:{inline_port}", "scaled": f"http://127.0.0.1:{scaled_port}"}
        pids = {"bare": procs[0].pid, "ours": procs[1].pid, "floor": procs[2].pid, "inline": procs[3].pid,
                "scaled": procs[4].pid}
        results: dict[str, dict[str, float]] = {}
        modes = args.modes.split(",")
        for mode in modes:
            sides = ("bare", "ours") if mode == "literal" else ("bare", "ours", "floor", "inline")
            for conns in (int(c) for c in args.conns.split(",")):
                for side in sides:
                    run_wrk(urls[side], scripts[side, mode], conns, 1.0)  # warm up
                runs: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
                for _ in range(args.repeats):
                    for side in sides:
                        runs[side].append(run_wrk(urls[side], scripts[side, mode], conns, args.duration, pids[side]))
                for side in sides:
                    med = sorted(runs[side], key=lambda r: r["p50_ms"])[len(runs[side]) // 2]
                    med = dict(med, rps=statistics.median(r["rps"] for r in runs[side]),
                               server_cpu_ms_per_req=statistics.median(r["server_cpu_ms_per_req"] for r in runs[side]))
                    results[f"{side}_{mode}_c{conns}"] = med
                    print(f"{side:5s} {mode:8s} c={conns:<3d} {med['rps']:8.0f} req/s  p50 {med['p50_ms']:7.2f} ms  "
                          f"p99 {med['p99_ms']:7.2f} ms  cpu/req {med['server_cpu_ms_per_req']:.2f} ms  "
                          f"non-2xx {med['errors']:.0f}", file=sys.stderr)
        top = max(int(c) for c in args.conns.split(","))
        if "point" in modes:  # same SQL, same token, API_WORKERS=args.workers
            run_wrk(urls["scaled"], scripts["scaled", "point"], top, 1.0)
            scaled = [run_wrk(urls["scaled"], scripts["scaled", "point"], top, args.duration, pids["scaled"])
                      for _ in range(args.repeats)]
            med = sorted(scaled, key=lambda r: r["p50_ms"])[len(scaled) // 2]
            results[f"scaled_point_c{top}"] = dict(med, rps=statistics.median(r["rps"] for r in scaled))
            print(f"ours  point    c={top:<3d} {results[f'scaled_point_c{top}']['rps']:8.0f} req/s  p50 {med['p50_ms']:7.2f} ms  "
                  f"(API_WORKERS={args.workers})", file=sys.stderr)
        stages: dict[str, object] = {}
        if args.stage_requests:  # the real app in-process, each stage of the request path timed
            out = subprocess.run([sys.executable, str(ROOT / "bench" / "request_stages.py"), "--token", tok,
                                  "--requests", str(args.stage_requests), "--rows", str(args.rows)],
                                 env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False)
            if out.returncode == 0:
                stages = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"stages (us per point query): {json.dumps(stages['stages_us'])}", file=sys.stderr)
            else:
                print(f"stage profile failed: {out.stderr[-2000:]}", file=sys.stderr)
        ratios = {k[5:]: results[k]["p50_ms"] / results["bare_" + k[5:]]["p50_ms"]
                  for k in results if k.startswith("ours_") and not k.startswith("ours_literal")}
        floors = {k[6:]: results[k]["p50_ms"] / results["bare_" + k[6:]]["p50_ms"] for k in results if k.startswith("floor_")}
        inlines = {k[7:]: results[k]["p50_ms"] / results["bare_" + k[7:]]["p50_ms"] for k in results if k.startswith("inline_")}
        summary = {
            "p50_ratio_vs_bare": round(max(ratios.values()), 3) if ratios else None,
            # Litestar plus the worker-thread hop, before any of our code: the lowest ratio a
            # Litestar server that keeps its loop free can reach over this bare app.
            "floor_p50_ratio_vs_bare": {k: round(v, 3) for k, v in floors.items()},
            # Litestar alone (the statement on the event loop, as bare runs it): no Litestar server goes lower.
            "inline_p50_ratio_vs_bare": {k: round(v, 3) for k, v in inlines.items()},
            "p50_ratio_vs_floor": {k: round(results[f"ours_{k}"]["p50_ms"] / results[f"floor_{k}"]["p50_ms"], 3)
                                   for k in floors},
            "floor_point_rps": round(results.get(f"floor_point_c{top}", {}).get("rps", 0.0), 1),
            "p50_ratios": {k: round(v, 3) for k, v in ratios.items()},
            # ours at c=16 as deployed (API_WORKERS = cores); the one-worker figure beside it.
            "point_rps": round(results.get(f"scaled_point_c{top}", {}).get("rps", 0.0), 1),
            "point_rps_workers": args.workers,
            "point_rps_one_worker": round(results.get("ours_point_c16", {}).get("rps", 0.0), 1),
            "bare_point_rps": round(results.get("bare_point_c16", {}).get("rps", 0.0), 1),
            "literal_point_rps_c16": round(results.get("ours_literal_c16", {}).get("rps", 0.0), 1),
            "cpu_ratio_vs_bare": {k: round(results[f"ours_{k}"]["server_cpu_ms_per_req"]
                                           / max(results[f"bare_{k}"]["server_cpu_ms_per_req"], 1e-9), 3) for k in ratios},
            "load_average": os.getloadavg(),
            "stages_us": stages.get("stages_us"),
            "targets": {"p50_ratio_vs_bare": 1.15, "point_rps": 1500},
            "rows": args.rows, "cases": results,
        }
        print(json.dumps(summary))
    finally:
        for proc in procs:
            processes.stop(proc, grace_s=10)
        for log_path in sorted(home.glob("server-*.log")) if os.environ.get("BENCH_DEBUG") else []:
            print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
