"""Budget benchmark: what counting requests and budgets in the control database adds to a point query.

Run: ``.venv/bin/python bench/budgets.py [--rows 100000] [--requests 400]``.

One real API process (``python -m serving``, SQLite control database) over a served table.
Sequential point queries (``WHERE id = ?``, a random id each) alternate between two callers
on one keep-alive connection each:
- ``agent``: an agent token with every budget set, so each query is counted in one
  control-database transaction (the request rate, the queries budget, the rows and bytes
  check) and its rows and bytes are added after the answer;
- ``admin``: the admin token, which no budget or rate applies to (the baseline, same run).

``added_p50_ms`` is the difference of the two medians. The check itself is also timed
in-process (``Budgets.check`` on SQLite, and on PostgreSQL when ``TEST_POSTGRES_URL`` is
set). The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import log, publish_select  # noqa: E402
from shared import processes  # noqa: E402

TABLE = "demo.public.orders"
POINT = "select * from orders where id = ?"


def _time_check(url: str, n: int) -> float:
    """Median ms of one ``Budgets.check`` for an agent with every budget set, on ``url``."""
    from serving.lib.budgets import QUERY, Budgets
    from serving.lib.caller import Caller
    from shared.control.db import migrate, session_scope
    from shared.control.models import BudgetRow
    from shared.settings import Settings

    migrate(url)
    token = "tok_" + secrets.token_hex(4)
    with session_scope(url) as s:
        s.add(
            BudgetRow(
                subject=f"agent:{token}",
                queries_per_day=10**12,
                rows_per_day=10**12,
                bytes_per_day=10**12,
                refreshes_per_hour=10**6,
            )
        )
    settings = Settings.from_env({"AGENT_REQUESTS_PER_MINUTE": str(10**9), "SWARM_REQUESTS_PER_MINUTE": str(10**9),
                                  "DATABASE_URL": url})
    budgets = Budgets(url, settings)
    caller = Caller(kind="agent", subject="a", token_id=token, swarm_id="swm_bench")
    times = []
    for _ in range(n):
        started = time.perf_counter()
        budgets.check(caller, QUERY)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _on_private_schema(base: str, fn: Any) -> Any:
    """Run ``fn(url)`` on a schema of its own on the PostgreSQL server at ``base``, dropped after."""
    import sqlalchemy as sa

    from shared.control.db import get_engine, normalize_url

    schema = "bench_" + secrets.token_hex(6)
    admin = sa.create_engine(normalize_url(base))
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    try:
        return fn(url)
    finally:
        get_engine(url).dispose()
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=400)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-budgets-"))
    home = tmp / "home"
    publish_select(home / "served", TABLE, f"SELECT range AS id, range % 100 AS amount FROM range({args.rows})", args.rows)
    password = secrets.token_urlsafe(16)
    port = processes.free_port()
    env = {
        **os.environ,
        "AGENTS_DATA_HOME": str(home),
        "ADMIN_PASSWORD": password,
        "JWT_SECRET": "b" * 40,
        "API_PORT": str(port),
        "API_HOST": "127.0.0.1",
        "LOG_LEVEL": "warning",
        "SNOWFLAKE_ACCOUNT": "bench",
        "SNOWFLAKE_HOST": "127.0.0.1",
        "SNOWFLAKE_PORT": "9",
        "AGENT_REQUESTS_PER_MINUTE": str(10**9),
        "AGENT_MAX_CONCURRENT_QUERIES": "64",
        "SWARM_REQUESTS_PER_MINUTE": str(10**9),
        "SWARM_MAX_CONCURRENT_QUERIES": "64",
    }
    url = f"http://127.0.0.1:{port}"
    proc = processes.start([sys.executable, "-m", "serving"], env=env, cwd=ROOT, log_path=tmp / "api.log")
    try:
        processes.wait_for_http(f"{url}/health", proc=proc, timeout_s=240)
        with httpx.Client(base_url=url, timeout=60) as c:
            admin_token = c.post("/api/v1/auth/token", data={"username": "admin", "password": password}).json()
            admin = {"Authorization": f"Bearer {admin_token['access_token']}"}
            swarm = c.post("/api/v1/admin/swarms", headers=admin, json={"name": "bench", "grants": [TABLE]}).json()
            token = c.post(
                "/api/v1/admin/tokens", headers=admin, json={"type": "agent", "swarm_id": swarm["id"], "name": "bench"}
            ).json()
            big = {"queries_per_day": 10**12, "rows_per_day": 10**12, "bytes_per_day": 10**12}
            c.put(f"/api/v1/admin/tokens/{token['token_id']}/budget", headers=admin, json=big).raise_for_status()
            c.put(f"/api/v1/admin/swarms/{swarm['id']}/budget", headers=admin, json=big).raise_for_status()
        agent = {"Authorization": f"Bearer {token['token']}"}
        times: dict[str, list[float]] = {"agent": [], "admin": []}
        with httpx.Client(base_url=url, timeout=60) as a, httpx.Client(base_url=url, timeout=60) as b:
            clients = {"agent": (a, agent), "admin": (b, admin)}
            for i in range(args.requests * 2 + 40):
                who = "agent" if i % 2 else "admin"
                client, headers = clients[who]
                body = {"query": POINT, "params": [secrets.randbelow(args.rows)]}
                started = time.perf_counter()
                r = client.post("/api/v1/queries/execute", headers=headers, json=body)
                elapsed = (time.perf_counter() - started) * 1000
                r.raise_for_status()
                if i >= 40:  # warm-up: caches, DuckDB instances, connections
                    times[who].append(elapsed)
            assert "ratelimit" in r.headers or who == "admin"
    finally:
        processes.stop(proc, grace_s=10)
    agent_p50, admin_p50 = statistics.median(times["agent"]), statistics.median(times["admin"])
    result = {
        "agent_p50_ms": round(agent_p50, 3),
        "admin_p50_ms": round(admin_p50, 3),
        "added_p50_ms": round(agent_p50 - admin_p50, 3),
        "agent_p90_ms": round(statistics.quantiles(times["agent"], n=10)[-1], 3),
        "admin_p90_ms": round(statistics.quantiles(times["admin"], n=10)[-1], 3),
        "check_p50_ms_sqlite": round(_time_check(f"sqlite:///{tmp / 'check.db'}", 500), 3),
        "load_average": os.getloadavg()[0],
    }
    pg = os.environ.get("TEST_POSTGRES_URL")
    if pg:
        result["check_p50_ms_postgres"] = round(_on_private_schema(pg, lambda url: _time_check(url, 500)), 3)
    log(f"agent p50 {agent_p50:.2f} ms, admin p50 {admin_p50:.2f} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
