"""Serving side by side: our API, the bare ASGI limit and Datasette, on the same table and queries.

Run: ``.venv/bin/python bench/compare_serving.py [--rows 1000000] [--duration 5] [--repeats 3]`` (needs ``wrk``).

The table is ``bench/serving.py``'s 1,000,000-row orders table, published as served data.
Three servers, one process each, on free loopback ports:

- ``ours``: ``serving.app:create_app`` with an agent token: auth, the SQL guard, the
  grant-scoped instance, the per-agent limiter and the audit writer all on;
- ``bare``: ``bench/serving.py``'s bare ASGI app over the same DuckDB file (the limit);
- ``datasette``: Datasette (its own environment, ``bench/peers.py``) over a SQLite copy of the
  same rows, ``id`` as the integer primary key, read through its JSON API with a named parameter.

The same two queries as ``bench/serving.py``, a point query by key (a random id each request)
and a group-by aggregate, each at concurrency 1 and 16, for ``--duration`` seconds, with
``--repeats`` runs alternating the servers; the median run is kept. The last stdout line is
one JSON object: ``cases`` (``<system>_<query>_c<n>`` to rps, p50 and p99 in ms) and
``p50_ratio_vs_bare`` per system and case.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

import duckdb
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import peers  # noqa: E402
from bench.serving import AGG, LUA, POINT, publish, run_wrk, start  # noqa: E402
from shared import processes  # noqa: E402

ADMIN_PASSWORD = "compare-" + "p" * 16
GET_LUA = """
local mode = "{mode}"
request = function()
  if mode == "point" then
    return wrk.format("GET", "{point}" .. math.random(0, {rows} - 1))
  end
  return wrk.format("GET", "{agg}")
end
"""


def sqlite_copy(db_file: Path, out: Path) -> None:
    """The served rows in SQLite, as a Datasette user would load them (``id`` the primary key)."""
    src = duckdb.connect(str(db_file), read_only=True)
    cols = src.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'data' "
                       "ORDER BY ordinal_position").fetchall()
    kinds = {"BIGINT": "INTEGER", "INTEGER": "INTEGER", "BOOLEAN": "INTEGER", "DOUBLE": "REAL"}
    ddl = ", ".join(f'"{c}" {"INTEGER PRIMARY KEY" if c == "id" else kinds.get(t, "REAL" if t.startswith("DECIMAL") else "TEXT")}'
                    for c, t in cols)
    dst = sqlite3.connect(out)
    dst.execute(f"CREATE TABLE orders ({ddl})")
    select = ", ".join(f'CAST("{c}" AS DOUBLE)' if t.startswith("DECIMAL") else
                       f'CAST("{c}" AS VARCHAR)' if "TIMESTAMP" in t else f'"{c}"' for c, t in cols)
    cur = src.execute(f"SELECT {select} FROM data ORDER BY id")
    marks = ", ".join("?" * len(cols))
    while batch := cur.fetchmany(100_000):
        dst.executemany(f"INSERT INTO orders VALUES ({marks})", batch)
    dst.commit()
    dst.close()
    src.close()


def _agent_token(url: str) -> str:
    with httpx.Client(base_url=url, timeout=60) as c:
        admin = c.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}).json()
        h = {"Authorization": f"Bearer {admin['access_token']}"}
        swarm = c.post("/api/v1/admin/swarms", json={"name": "compare", "grants": ["demo.public.orders"]}, headers=h).json()
        tok: str = c.post("/api/v1/admin/tokens", json={"type": "agent", "swarm_id": swarm["id"], "name": "compare"},
                          headers=h).json()["token"]
        check = c.post("/api/v1/queries/execute", json={"query": POINT, "params": [42]},
                       headers={"Authorization": f"Bearer {tok}"})
        if check.status_code != 200 or check.json()["row_count"] != 1:
            raise RuntimeError(f"our API did not answer the point query: {check.text}")
    return tok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--conns", default="1,16")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install -y wrk")
    home = Path(tempfile.mkdtemp(prefix="compare-serving-"))
    procs = []
    try:
        db_file = publish(home / "served", args.rows)
        sqlite_copy(db_file, home / "bench.db")
        env = dict(os.environ, AGENTS_DATA_HOME=str(home), DATABASE_URL=f"sqlite:///{home / 'control.db'}",
                   JWT_SECRET="compare-" + "s" * 40, ADMIN_PASSWORD=ADMIN_PASSWORD, LOG_LEVEL="warning",
                   AGENT_REQUESTS_PER_MINUTE="100000000", AGENT_MAX_CONCURRENT_QUERIES="64",
                   SWARM_REQUESTS_PER_MINUTE="100000000", SWARM_MAX_CONCURRENT_QUERIES="64")
        ports = {name: processes.free_port() for name in ("bare", "ours", "datasette")}
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        procs.append(start([sys.executable, str(ROOT / "bench" / "serving.py"), "--bare", str(db_file),
                            "--port", str(ports["bare"])], env, urls["bare"] + "/"))
        procs.append(start([sys.executable, "-m", "uvicorn", "serving.app:create_app", "--factory", "--host", "127.0.0.1",
                            "--port", str(ports["ours"]), "--log-level", "warning", "--no-access-log"], env,
                           urls["ours"] + "/health"))
        procs.append(start([str(peers.python_for("datasette")), "-m", "datasette", "serve", str(home / "bench.db"),
                            "-h", "127.0.0.1", "-p", str(ports["datasette"]), "--setting", "sql_time_limit_ms", "60000",
                            "--setting", "default_cache_ttl", "0"], env, urls["datasette"] + "/-/versions.json"))
        pids = {"bare": procs[0].pid, "ours": procs[1].pid, "datasette": procs[2].pid}
        token = _agent_token(urls["ours"])
        sqlite_point = POINT.replace("?", ":id")
        scripts = {}
        for mode in ("point", "agg"):
            for side, auth in (("bare", ""), ("ours", f'wrk.headers["Authorization"] = "Bearer {token}"')):
                path = home / f"{side}-{mode}.lua"
                path.write_text(LUA.format(auth=auth, mode=mode, rows=args.rows, point=POINT, agg=AGG,
                                           path="/" if side == "bare" else "/api/v1/queries/execute"))
                scripts[side, mode] = path
            path = home / f"datasette-{mode}.lua"
            path.write_text(GET_LUA.format(mode=mode, rows=args.rows,
                                           point=f"/bench.json?_shape=array&sql={quote(sqlite_point)}&id=",
                                           agg=f"/bench.json?_shape=array&sql={quote(AGG)}"))
            scripts["datasette", mode] = path
        probe = httpx.get(urls["datasette"] + f"/bench.json?_shape=array&sql={quote(sqlite_point)}&id=42", timeout=30)
        if probe.status_code != 200 or len(probe.json()) != 1:
            raise RuntimeError(f"Datasette did not answer the point query: {probe.text[:500]}")
        cases: dict[str, dict[str, float]] = {}
        systems = ("bare", "ours", "datasette")
        for mode in ("point", "agg"):
            for conns in (int(c) for c in args.conns.split(",")):
                for side in systems:
                    run_wrk(urls[side], scripts[side, mode], conns, 1.0)  # warm up
                runs: dict[str, list[dict[str, float]]] = {s: [] for s in systems}
                for _ in range(args.repeats):
                    for side in systems:
                        runs[side].append(run_wrk(urls[side], scripts[side, mode], conns, args.duration, pids[side]))
                for side in systems:
                    med = sorted(runs[side], key=lambda r: r["p50_ms"])[len(runs[side]) // 2]
                    cases[f"{side}_{mode}_c{conns}"] = dict(med, rps=statistics.median(r["rps"] for r in runs[side]))
                    print(f"{side:9s} {mode:5s} c={conns:<3d} {cases[f'{side}_{mode}_c{conns}']['rps']:8.0f} req/s "
                          f"p50 {med['p50_ms']:7.2f} ms p99 {med['p99_ms']:7.2f} ms non-2xx {med['errors']:.0f}",
                          file=sys.stderr, flush=True)
        ratios = {f"{side}_{case[5:]}": round(cases[f"{side}_{case[5:]}"]["p50_ms"] / cases[case]["p50_ms"], 3)
                  for case in cases if case.startswith("bare_") for side in ("ours", "datasette")}
        print(json.dumps({"rows": args.rows, "cases": cases, "p50_ratio_vs_bare": ratios,
                          "versions": {"datasette": peers.version_of("datasette", "datasette")},
                          "load_average": os.getloadavg()}))
    finally:
        for proc in procs:
            processes.stop(proc)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
