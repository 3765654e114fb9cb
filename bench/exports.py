"""Exports: result files through the API against DuckDB's own export of the same served file.

Run: ``.venv/bin/python bench/exports.py [--rows 1000000] [--repeats 5]``.

One run, over one served orders-like table (``--rows`` rows, published with ``shared.served``),
for 100,000 rows and for the whole table, in each file format:
- ours: ``POST /api/v1/queries/execute`` with ``output_format`` (a real uvicorn process), from
  the request to the answer naming the finished file (the file is written by then), plus
  the download of that file, timed apart;
- DuckDB's own: ``COPY (SELECT …) TO 'x.parquet'`` / ``'x.csv'`` in this process, on the same
  file, with the agent instances' thread count. DuckDB has no Arrow ``COPY`` format, so
  Arrow's baseline is DuckDB's own Arrow export (``to_arrow_reader``) written as an IPC
  stream with pyarrow.
Each pair is timed alternately ``--repeats`` times; the figure is the ratio of medians,
``copy / ours`` (throughput of ours as a fraction of DuckDB's own). Target: >= 0.7 for every
format at both sizes. The server's RSS is sampled every 5 ms during each export; its growth
must not follow the result's size.

The last stdout line is one JSON object with ``export_ratio_vs_copy`` (the worst format at
the full size), the ratio per format and size, and the RSS figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa
from pyarrow import ipc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.profile_sample import rss_mb, start_api, stop  # noqa: E402
from bench.support import log, publish_select  # noqa: E402
from shared import processes  # noqa: E402

KEY = "demo.public.orders"
TABLE_SQL = """SELECT i AS order_id, (i * 7) % 50000 AS customer_id, (i * 13) % 1000 AS product_id,
  TIMESTAMP '2025-01-01' + to_seconds(i * 31) AS ordered_at, ['new', 'paid', 'shipped', 'cancelled'][1 + (i % 4)::INT] AS status,
  ((i % 100000) / 100)::DECIMAL(12, 2) AS amount, (i % 5)::INT AS quantity, 'note ' || (i % 977)::VARCHAR AS note
  FROM range({rows}) t(i)"""
FORMATS = ("parquet", "arrow", "csv")


def agent_headers(c: httpx.Client) -> dict[str, str]:
    r = c.post("/api/v1/auth/token", data={"username": "admin", "password": "bench-password"})
    admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
    swarm = c.post("/api/v1/admin/swarms", headers=admin, json={"name": "bench-exports", "grants": [KEY]}).json()
    tok = c.post("/api/v1/admin/tokens", headers=admin, json={"type": "agent", "swarm_id": swarm["id"], "name": "b"})
    return {"Authorization": f"Bearer {tok.json()['token']}"}


class RssWatch:
    """Peak RSS of a process while a block runs, sampled every 5 ms."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._done = pid, 0.0, threading.Event()

    def __enter__(self) -> RssWatch:
        self.start = rss_mb(self.pid)
        self.peak = self.start
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._done.wait(0.005):
            self.peak = max(self.peak, rss_mb(self.pid))

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


def ours(c: httpx.Client, h: dict[str, str], sql: str, fmt: str, pid: int) -> dict[str, float]:
    with RssWatch(pid) as watch:
        started = time.perf_counter()
        r = c.post("/api/v1/queries/execute", headers=h,
                   json={"query": sql, "output_format": fmt, "wait_s": 300, "timeout_s": 300})
        written = time.perf_counter() - started
    if r.status_code != 200:
        raise RuntimeError(f"{fmt} export answered {r.status_code}: {r.text[:500]}")
    body = r.json()
    if body["status"] != "succeeded" or body["truncated"]:
        raise RuntimeError(f"{fmt} export did not finish whole: {body}")
    started = time.perf_counter()
    size = 0
    with c.stream("GET", body["result_url"], headers=h) as resp:
        for chunk in resp.iter_bytes(1 << 20):
            size += len(chunk)
    return {"s": written, "download_s": time.perf_counter() - started, "bytes": float(size),
            "rss_growth_mb": watch.peak - watch.start, "rss_peak_mb": watch.peak}


def duckdb_own(con: duckdb.DuckDBPyConnection, sql: str, fmt: str, out: Path) -> float:
    started = time.perf_counter()
    if fmt == "arrow":
        reader = con.sql(sql).to_arrow_reader(1 << 16)
        with pa.OSFile(str(out), "wb") as sink, ipc.new_stream(sink, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
    else:
        opts = "FORMAT parquet, COMPRESSION zstd" if fmt == "parquet" else "FORMAT csv, HEADER"
        con.execute(f"COPY ({sql}) TO '{out}' ({opts})")
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-exports-"))
    home = tmp / "home"
    home.mkdir()
    proc = None
    load_start = os.getloadavg()[0]
    try:
        log(f"publishing {args.rows:,} rows …")
        path = publish_select(home / "served", KEY, TABLE_SQL.format(rows=int(args.rows)), args.rows)
        port = processes.free_port()
        proc = start_api(home, port, tmp / "api.log")
        con = duckdb.connect()
        con.execute(f"ATTACH '{path}' AS orders (READ_ONLY)")
        con.execute("SET threads = 2")  # what agent instances get (QUERY_THREADS)
        figures: dict[str, Any] = {}
        worst_full = float("inf")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=900) as c:
            h = agent_headers(c)
            for rows in sorted({100_000, args.rows}):
                sql_api = f"SELECT * FROM orders WHERE order_id < {rows}"
                sql_own = f"SELECT * FROM orders.data WHERE order_id < {rows}"
                for fmt in FORMATS:
                    runs: list[dict[str, float]] = []
                    own: list[float] = []
                    ours(c, h, sql_api, fmt, proc.pid)  # warm: instance, guard cache
                    for _ in range(args.repeats):
                        runs.append(ours(c, h, sql_api, fmt, proc.pid))
                        own.append(duckdb_own(con, sql_own, fmt, tmp / f"own.{fmt}"))
                    ours_s = statistics.median(r["s"] for r in runs)
                    own_s = statistics.median(own)
                    ratio = own_s / ours_s
                    name = f"{fmt}_{rows // 1000}k"
                    figures[name] = {
                        "ours_s": round(ours_s, 4), "duckdb_s": round(own_s, 4), "ratio": round(ratio, 3),
                        "download_s": round(statistics.median(r["download_s"] for r in runs), 4),
                        "mb": round(runs[-1]["bytes"] / 1e6, 2),
                        "rss_growth_mb": round(max(r["rss_growth_mb"] for r in runs), 1),
                        "rss_peak_mb": round(max(r["rss_peak_mb"] for r in runs), 1),
                    }
                    log(f"{name}: {json.dumps(figures[name])}")
                    if rows == args.rows:
                        worst_full = min(worst_full, ratio)
        con.close()
        result = {
            "bench": "exports",
            "rows": args.rows,
            "export_ratio_vs_copy": round(worst_full, 3),
            "worst_ratio_any_size": round(min(f["ratio"] for f in figures.values()), 3),
            "rss_growth_mb_max": max(f["rss_growth_mb"] for f in figures.values()),
            **{f"{k}_ratio": v["ratio"] for k, v in figures.items()},
            "figures": figures,
            "target_ratio": 0.7,
            "load_average_1m": [round(load_start, 2), round(os.getloadavg()[0], 2)],
            "cpus": os.cpu_count(),
        }
        print(json.dumps(result))
    finally:
        if proc is not None:
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
