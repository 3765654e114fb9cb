"""Budgets and request rates are exact across two API worker processes (``API_WORKERS=2``).

A real ``python -m serving`` process with two uvicorn workers over one control database
(SQLite, and PostgreSQL as in production). Every request opens a fresh connection, so the
kernel spreads them over both workers; the audit log proves both answered. Proven:

- a burst of 3N concurrent queries against a budget of N queries a day: exactly N answered;
- a burst of requests against ``AGENT_REQUESTS_PER_MINUTE``: that many answered, plus what the bucket
  refilled during the burst, never a quota per worker;
- a rows budget: queries are admitted until the rows returned reach it, through either worker,
  and the first one after that is refused.
"""

from __future__ import annotations

import collections
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.chaos.chaos_support import agent_setup, api_env, api_process
from tests.conftest import publish_table
from tests.serving.helpers import assert_error, bearer, mint_token

pytestmark = [pytest.mark.e2e]

TABLE = "demo.public.budget_numbers"
QUERIES = 12
RATE = 50


def _post(url: str, headers: dict[str, str], sql: str) -> httpx.Response:
    return httpx.post(f"{url}/api/v1/queries/execute", headers=headers, json={"query": sql}, timeout=120)


def _burst(n: int, fn: Any) -> list[httpx.Response]:
    with ThreadPoolExecutor(max_workers=12) as pool:
        return list(pool.map(lambda _: fn(), range(n)))


def test_budgets_are_exact_across_two_workers(tmp_path: Path, control_url: str) -> None:
    home = tmp_path / "home"
    env = api_env(
        home,
        control_url,
        API_WORKERS="2",
        AGENT_REQUESTS_PER_MINUTE=str(RATE),
        AGENT_MAX_CONCURRENT_QUERIES="64",
        TOKEN_CACHE_TTL_S="0.2",  # noqa: S106 -- a cache lifetime, not a secret
    )
    publish_table(home / "served", TABLE, "SELECT range AS id FROM range(1000)")
    with api_process(env, tmp_path / "api.log") as api:
        admin, agent, token_id = agent_setup(api.url, [TABLE])
        with httpx.Client(base_url=api.url, headers=admin, timeout=60) as c:
            r = c.put(f"/api/v1/admin/tokens/{token_id}/budget", json={"queries_per_day": QUERIES})
            assert r.status_code == 200, r.text
            time.sleep(0.5)  # past the other worker's budget cache

            # 1. Queries: 3N at once, exactly N answered.
            answers = _burst(3 * QUERIES, lambda: _post(api.url, agent, f"SELECT count(*) FROM {TABLE}"))
            statuses = collections.Counter(a.status_code for a in answers)
            assert statuses == {200: QUERIES, 429: 2 * QUERIES}, (statuses, api.tail())
            for refused in (a for a in answers if a.status_code == 429):
                assert_error(refused, 429, "rate_limited", "query_budget")
            usage = c.get(f"/api/v1/admin/tokens/{token_id}/budget").json()["usage"]
            assert next(u for u in usage if u["kind"] == "queries")["used"] == QUERIES
            audit = c.get("/api/v1/admin/audit", params={"token_id": token_id, "limit": 1000}).json()["items"]
            replicas = {e["replica"] for e in audit if e["endpoint"] == "/api/v1/queries/execute"}
            assert len(replicas) == 2, f"one worker answered everything: {replicas}"

            # 2. Requests per minute: a bucket of RATE shared by both workers (one process each would give 2 x RATE).
            swarm_id = c.get("/api/v1/admin/tokens", params={"type": "agent"}).json()[0]["swarm_id"]
            other = bearer(mint_token(c, admin, "agent", swarm_id)["token"])
            started = time.monotonic()
            answers = _burst(RATE + 30, lambda: httpx.get(f"{api.url}/api/v1/auth/whoami", headers=other))
            refilled = int((time.monotonic() - started) / (60 / RATE))  # requests the bucket regained meanwhile
            statuses = collections.Counter(a.status_code for a in answers)
            assert RATE <= statuses[200] <= RATE + refilled, (statuses, refilled)
            assert statuses[200] < RATE + 30, "both workers admitted a full quota each"
            assert all(assert_error(a, 429)["rule"] == "rate_limit" for a in answers if a.status_code == 429)

            # 3. Rows: admitted until the day's rows are spent, whichever worker answers.
            rows_agent = mint_token(c, admin, "agent", swarm_id)
            c.put(f"/api/v1/admin/tokens/{rows_agent['token_id']}/budget", json={"rows_per_day": 100})
            time.sleep(0.5)
            served = 0
            for _ in range(20):
                r = _post(api.url, bearer(rows_agent["token"]), f"SELECT id FROM {TABLE} LIMIT 10")
                if r.status_code != 200:
                    assert_error(r, 429, rule="row_budget")
                    break
                served += len(r.json()["rows"])
                time.sleep(0.3)  # rows are written shortly after each answer; the other worker then sees them
            assert served == 100
            usage = c.get(f"/api/v1/admin/tokens/{rows_agent['token_id']}/budget").json()["usage"]
            assert next(u for u in usage if u["kind"] == "rows")["used"] == 100
