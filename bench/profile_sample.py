"""Sampling, profiling and artifact benchmark: our API (a real uvicorn process) against in-process DuckDB.

Run: ``.venv/bin/python bench/profile_sample.py [--rows 10000000] [--repeats 5] [--mb 50]``.

One run, over one served ``--rows``-row table published with ``shared.served``:
- sample of 1,000 rows: ``GET /api/v1/data/tables/{t}/sample?method=random&size=1000``
  (auth, catalog resolver, engine, JSON encoding, HTTP) against DuckDB's
  ``USING SAMPLE 1000 ROWS`` on the same file in this process; median of ``--repeats`` paired differences.
  Target: within 20 ms. ``head`` and ``recent`` are timed too (target: milliseconds).
- full profile: ``GET …/profile?force_refresh=true`` against ``SUMMARIZE`` in process;
  median of 3, alternating. Target: at most 1.5x. The cached call is timed as well.
- artifacts: upload of a ``--mb`` MiB file (multipart, streamed by the client with a
  Content-Length) and its download, in MB/s (MiB/s), with the server's RSS sampled every
  2 ms from /proc during the upload. Targets: >= 200 MB/s up, RSS growth < 20 MB.

The last stdout line is one JSON object with at least ``sample_ms_over_inprocess``,
``profile_ratio_vs_summarize``, ``upload_mb_s``, ``download_mb_s`` and
``upload_rss_growth_mb``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import log, publish_select  # noqa: E402
from shared import processes  # noqa: E402

KEY = "demo.public.events"
TABLE_SQL = """SELECT i AS id, (i % 1000) AS customer_id, round(random() * 1000, 2)::DECIMAL(12, 2) AS amount,
  random() * 100 AS score, ['red', 'green', 'blue', 'black'][1 + (i % 4)::INT] AS color,
  'name_' || (i % 50000)::VARCHAR AS name, TIMESTAMP '2025-01-01' + to_seconds(i // 10) AS created_at,
  DATE '2025-01-01' + (i // 100000)::INT AS day, CASE WHEN i % 10 = 0 THEN NULL ELSE i % 7 END AS maybe
  FROM range({rows}) t(i)"""


def publish(served: Path, rows: int) -> Path:
    return publish_select(served, KEY, TABLE_SQL.format(rows=int(rows)), rows)


def start_api(home: Path, port: int, logfile: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "AGENTS_DATA_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'control.db'}",
           "JWT_SECRET": "bench-secret-" + "b" * 32, "ADMIN_PASSWORD": "bench-password", "PYTHONPATH": str(ROOT),
           "LOG_LEVEL": "warning",
           # The venv ships no .pyc and the sandbox sets PYTHONDONTWRITEBYTECODE: cache bytecode outside the venv.
           "PYTHONPYCACHEPREFIX": str(Path(tempfile.gettempdir()) / "agents-data-pycache"), "PYTHONDONTWRITEBYTECODE": ""}
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "serving.app:create_app", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning", "--no-access-log"]
    proc = processes.start(cmd, env=env, cwd=ROOT, log_path=logfile)
    try:
        processes.wait_for_http(f"http://127.0.0.1:{port}/health", proc=proc, timeout_s=180)
    except (RuntimeError, TimeoutError) as e:
        processes.stop(proc)
        raise RuntimeError(f"API did not start: {e}\n{logfile.read_text(errors='replace')[-3000:]}") from e
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    processes.stop(proc, grace_s=15)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def agent_headers(c: httpx.Client) -> dict[str, str]:
    r = c.post("/api/v1/auth/token", data={"username": "admin", "password": "bench-password"})
    admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
    swarm = c.post("/api/v1/admin/swarms", headers=admin, json={"name": f"bench-{secrets.token_hex(3)}", "grants": [KEY]}).json()
    tok = c.post("/api/v1/admin/tokens", headers=admin, json={"type": "agent", "swarm_id": swarm["id"], "name": "b"})
    return {"Authorization": f"Bearer {tok.json()['token']}"}


def timed(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn()
    return (time.perf_counter() - started) * 1000.0, out


def bench_sample(c: httpx.Client, h: dict[str, str], con: duckdb.DuckDBPyConnection, repeats: int) -> dict[str, float]:
    url = "/api/v1/data/tables/events/sample"

    def ours(params: dict[str, Any]) -> Any:
        r = c.get(url, headers=h, params=params)
        r.raise_for_status()
        return r.json()

    ours({"method": "random", "size": 1000, "seed": 0})  # warm: instance built, code paths loaded
    con.execute("SELECT * FROM data USING SAMPLE 1000 ROWS").fetchall()
    api, local, same_sql, diffs = [], [], [], []
    for i in range(repeats):  # alternate, so both sides see the same machine load; pair the differences
        ms, body = timed(lambda i=i: ours({"method": "random", "size": 1000, "seed": i + 1}))
        assert body["row_count"] == 1000
        base = timed(lambda: con.execute("SELECT * FROM data USING SAMPLE 1000 ROWS").fetchall())[0]
        api.append(ms)
        local.append(base)
        diffs.append(ms - base)
        same_sql.append(timed(lambda i=i: con.execute(
            f"SELECT * FROM data USING SAMPLE reservoir(1000 ROWS) REPEATABLE ({i + 1})").fetchall())[0])
    head = [timed(lambda: ours({"method": "head", "size": 1000}))[0] for _ in range(repeats)]
    recent = [timed(lambda: ours({"method": "recent", "size": 1000, "by": "created_at"}))[0] for _ in range(repeats)]
    return {"sample_api_ms": statistics.median(api), "sample_inprocess_ms": statistics.median(local),
            "sample_paired_diff_ms": statistics.median(diffs),
            "sample_inprocess_repeatable_ms": statistics.median(same_sql),
            "head_ms": statistics.median(head), "recent_ms": statistics.median(recent)}


def bench_profile(c: httpx.Client, h: dict[str, str], con: duckdb.DuckDBPyConnection, runs: int) -> dict[str, float]:
    url = "/api/v1/data/tables/events/profile"
    api, summ = [], []
    scans = 0
    for _ in range(runs):
        ms, r = timed(lambda: c.get(url, headers=h, params={"force_refresh": "true"}, timeout=600))
        r.raise_for_status()
        scans = r.json()["scans"]
        api.append(ms)
        summ.append(timed(lambda: con.execute("SUMMARIZE data").fetchall())[0])
    cached_ms, r = timed(lambda: c.get(url, headers=h))
    assert r.json()["cached"] is True
    return {"profile_api_ms": statistics.median(api), "summarize_ms": statistics.median(summ),
            "profile_cached_ms": cached_ms, "profile_scans": scans}


def multipart(data: bytes, boundary: str) -> tuple[bytes, bytes]:
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nbench.bin\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"bench.bin\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode()
    return head, f"\r\n--{boundary}--\r\n".encode()


def bench_artifacts(c: httpx.Client, h: dict[str, str], pid: int, mb: int, repeats: int) -> dict[str, float]:
    size = mb << 20
    ups, downs, growths = [], [], []
    for _ in range(repeats):
        data = os.urandom(size)
        boundary = secrets.token_hex(12)
        head, tail = multipart(data, boundary)

        def body(data: bytes = data, head: bytes = head, tail: bytes = tail) -> Iterator[bytes]:
            yield head
            view = memoryview(data)
            for i in range(0, len(data), 1 << 20):
                yield bytes(view[i:i + (1 << 20)])
            yield tail

        headers = {**h, "Content-Type": f"multipart/form-data; boundary={boundary}",
                   "Content-Length": str(len(head) + size + len(tail))}
        base = rss_mb(pid)
        peak = [base]
        done = threading.Event()

        def watch(peak: list[float] = peak, done: threading.Event = done) -> None:
            while not done.is_set():
                peak[0] = max(peak[0], rss_mb(pid))
                time.sleep(0.002)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        ms, r = timed(lambda headers=headers, body=body: c.post("/api/v1/artifacts", headers=headers, content=body(),
                                                                timeout=120))
        done.set()
        watcher.join()
        r.raise_for_status()
        art = r.json()
        assert art["sha256"] == hashlib.sha256(data).hexdigest()
        ups.append(mb / (ms / 1000.0))
        growths.append(peak[0] - base)

        def download(art: dict[str, Any] = art) -> str:
            digest = hashlib.sha256()
            with c.stream("GET", art["content_url"], headers=h, timeout=120) as resp:
                resp.raise_for_status()
                for block in resp.iter_bytes(1 << 20):
                    digest.update(block)
            return digest.hexdigest()

        ms, got = timed(download)
        assert got == art["sha256"]
        downs.append(mb / (ms / 1000.0))
        c.delete(f"/api/v1/artifacts/{art['id']}", headers=h)
    return {"upload_mb_s": statistics.median(ups), "download_mb_s": statistics.median(downs),
            "upload_rss_growth_mb": max(growths), "upload_rss_growth_mb_median": statistics.median(growths)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--profile-runs", type=int, default=3)
    ap.add_argument("--mb", type=int, default=50)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    home = tmp / "home"
    home.mkdir()
    proc = None
    try:
        log(f"publishing {args.rows:,} rows …")
        started = time.perf_counter()
        path = publish(home / "served", args.rows)
        log(f"published in {time.perf_counter() - started:.1f} s: {path.stat().st_size / 1e6:.0f} MB")
        port = processes.free_port()
        proc = start_api(home, port, tmp / "api.log")
        con = duckdb.connect(str(path), read_only=True)
        con.execute("SET threads = 2")  # what agent instances get (QUERY_THREADS)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as c:
            h = agent_headers(c)
            log("sampling …")
            sample = bench_sample(c, h, con, args.repeats)
            log(json.dumps(sample))
            log("profiling …")
            profile = bench_profile(c, h, con, args.profile_runs)
            log(json.dumps(profile))
            log("artifacts …")
            artifacts = bench_artifacts(c, h, proc.pid, args.mb, max(3, args.repeats // 2))
            log(json.dumps(artifacts))
        con.close()
        result = {
            "rows": args.rows,
            # Median of paired differences (each API call next to one in-process call): robust on a shared machine.
            "sample_ms_over_inprocess": round(sample["sample_paired_diff_ms"], 2),
            "profile_ratio_vs_summarize": round(profile["profile_api_ms"] / profile["summarize_ms"], 3),
            **{k: round(v, 2) for k, v in {**sample, **profile, **artifacts}.items()},
            "upload_mb": args.mb,
            "load_avg_1m": os.getloadavg()[0],
        }
        print(json.dumps(result))
    finally:
        if proc is not None:
            stop(proc)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
