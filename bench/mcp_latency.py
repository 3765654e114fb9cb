"""MCP round trip against the REST call for the same query, in the same run. Target: MCP p50 within 1.2x of REST.

Run: ``.venv/bin/python bench/mcp_latency.py [--rows 100000] [--calls 300]``.

One API process (``python -m serving``, one worker, SQLite control database) serves a
published table. The same agent token asks the same point query (``WHERE id = ?``, a
random id per call) three ways, interleaved call by call so machine noise hits each alike:

- ``rest``: ``POST /api/v1/queries/execute`` with httpx, JSON rows parsed;
- ``mcp``: the ``query`` tool through the MCP SDK's own client (``ClientSession`` over
  Streamable HTTP, one session), the answer rendered as text;
- ``mcp_raw``: the same tool call as one JSON-RPC POST with httpx (no SDK client), to
  tell client-side cost from server-side cost.

The last stdout line is one JSON object: p50/p90 of each in ms, ``mcp_p50_ratio_vs_rest``
(the target's figure) and ``mcp_raw_p50_ratio_vs_rest``, plus the load average. It also
splits the gap by side: ``<way>_client_cpu_ms`` is this (client) process's CPU per call, so
``sdk_client_cpu_over_rest_ms`` is what the SDK's client costs beyond an httpx POST, and
``server_ms_over_rest`` what the server's MCP framing adds (raw JSON-RPC p50 minus REST p50).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import log, publish_select  # noqa: E402
from shared import processes  # noqa: E402

ADMIN_PASSWORD = secrets.token_urlsafe(16)
POINT = "select * from orders where id = ?"
ACCEPT = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round((len(ordered) - 1) * q))]


async def measure(base: str, token: str, rows: int, calls: int) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    import httpx2
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    auth = {"Authorization": f"Bearer {token}"}
    times: dict[str, list[float]] = {"rest": [], "mcp": [], "mcp_raw": []}
    cpu: dict[str, list[float]] = {name: [] for name in times}
    rng = random.Random(7)  # noqa: S311 - the order and ids of calls, not a secret
    async with httpx.AsyncClient(base_url=base, headers=auth, timeout=60) as rest, \
            httpx2.AsyncClient(headers=auth, timeout=60) as http, \
            streamable_http_client(f"{base}/mcp", http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()

        async def one_rest(i: int) -> None:
            r = await rest.post("/api/v1/queries/execute", json={"query": POINT, "params": [i]})
            if r.status_code != 200 or r.json()["row_count"] != 1:
                raise RuntimeError(f"REST answered {r.status_code}: {r.text[:300]}")

        async def one_mcp(i: int) -> None:
            res = await session.call_tool("query", {"sql": POINT, "params": [i]})
            if res.is_error or "rows: 1 shown" not in res.content[0].text:  # type: ignore[union-attr]
                raise RuntimeError(f"MCP answered {res}")

        async def one_raw(i: int) -> None:
            r = await rest.post("/mcp", headers=ACCEPT, json={
                "jsonrpc": "2.0", "id": i, "method": "tools/call",
                "params": {"name": "query", "arguments": {"sql": POINT, "params": [i]}}})
            if r.status_code != 200 or "rows: 1 shown" not in r.text:
                raise RuntimeError(f"MCP (raw) answered {r.status_code}: {r.text[:300]}")

        runners = {"rest": one_rest, "mcp": one_mcp, "mcp_raw": one_raw}
        for warm in range(20):
            for fn in runners.values():
                await fn(warm)
        for _ in range(calls):
            order = list(runners)
            rng.shuffle(order)
            for name in order:
                i = rng.randrange(rows)
                t0, c0 = time.perf_counter(), time.process_time()
                await runners[name](i)
                times[name].append((time.perf_counter() - t0) * 1000.0)
                cpu[name].append((time.process_time() - c0) * 1000.0)
    return times, cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--calls", type=int, default=300)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench-mcp-"))
    publish_select(home / "served", "demo.public.orders",
                   f"select range as id, 'c' || (range % 977) as customer, (range % 1000) / 10.0 as amount, "
                   f"['new','paid','shipped'][1 + range % 3] as status from range({args.rows})", args.rows)
    port = processes.free_port()
    env = dict(os.environ, AGENTS_DATA_HOME=str(home), DATABASE_URL=f"sqlite:///{home / 'control.db'}",
               JWT_SECRET="bench-" + "s" * 40, ADMIN_PASSWORD=ADMIN_PASSWORD, LOG_LEVEL="warning",
               API_HOST="127.0.0.1", API_PORT=str(port), API_WORKERS="1",
               AGENT_REQUESTS_PER_MINUTE="100000000", AGENT_MAX_CONCURRENT_QUERIES="64",
               SWARM_REQUESTS_PER_MINUTE="100000000", SWARM_MAX_CONCURRENT_QUERIES="64")
    log_path = home / "api.log"
    proc: subprocess.Popen[bytes] = processes.start([sys.executable, "-m", "serving"], env=env, cwd=ROOT,
                                                    log_path=log_path)
    base = f"http://127.0.0.1:{port}"
    try:
        processes.wait_for_http(f"{base}/health", timeout_s=120, proc=proc)
        with httpx.Client(base_url=base, timeout=30) as c:
            admin = c.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD}).json()
            h = {"Authorization": f"Bearer {admin['access_token']}"}
            swarm = c.post("/api/v1/admin/swarms", json={"name": "bench", "grants": ["demo.public.orders"]},
                           headers=h).json()
            token = c.post("/api/v1/admin/tokens", json={"type": "agent", "swarm_id": swarm["id"], "name": "bench"},
                           headers=h).json()["token"]
        log(f"measuring {args.calls} calls of each against {base}")
        times, cpu = asyncio.run(measure(base, token, args.rows, args.calls))
    finally:
        processes.stop(proc, grace_s=10)
    out: dict[str, float | str] = {}
    for name, values in times.items():
        out[f"{name}_p50_ms"] = round(statistics.median(values), 3)
        out[f"{name}_p90_ms"] = round(_pct(values, 0.9), 3)
        log(f"{name}: p50 {out[f'{name}_p50_ms']} ms, p90 {out[f'{name}_p90_ms']} ms")
    for name, values in cpu.items():  # this (client) process's CPU per call: what each client costs
        out[f"{name}_client_cpu_ms"] = round(statistics.mean(values), 3)
    out["sdk_client_cpu_over_rest_ms"] = round(float(out["mcp_client_cpu_ms"]) - float(out["rest_client_cpu_ms"]), 3)
    out["server_ms_over_rest"] = round(float(out["mcp_raw_p50_ms"]) - float(out["rest_p50_ms"]), 3)
    out["mcp_p50_ratio_vs_rest"] = round(float(out["mcp_p50_ms"]) / float(out["rest_p50_ms"]), 3)
    out["mcp_raw_p50_ratio_vs_rest"] = round(float(out["mcp_raw_p50_ms"]) / float(out["rest_p50_ms"]), 3)
    out["target"] = "mcp_p50_ratio_vs_rest <= 1.2"
    out["loadavg_1m"] = round(os.getloadavg()[0], 2)
    out["calls"] = args.calls
    print(json.dumps(out))


if __name__ == "__main__":
    main()
