"""An agent's journey against the API as a real server process, over data materialized from the stand-in.

Admin login → swarm → swarm token → agent token (minted by the swarm) → catalog → queries in
every format → async job → cancel → denial on an ungranted table. A canary table that no
agent is granted is materialized too; its marker string must never appear in any response.
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import snowflake.connector
from pyarrow import ipc

from orchestration.assets import build_table_asset
from orchestration.resources import ServedDataResource, snowflake_resource
from shared import processes, registry
from shared.registry import build_registration
from shared.settings import Settings
from tests.ops_support import leaks, lines_above_info

pytestmark = pytest.mark.e2e

CANARY = "CANARY_7f3a9c_NEVER_SHOWN"
DB = "JOURNEY"


def _seed(port: int) -> None:
    con = snowflake.connector.connect(
        user="fake", password="snow", account="fakesnow", host="127.0.0.1", port=port, protocol="http",  # noqa: S106
        session_parameters={"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False}, network_timeout=20,
    )
    cur = con.cursor()
    for sql in (
        f"CREATE DATABASE IF NOT EXISTS {DB}", f"USE DATABASE {DB}", f"CREATE SCHEMA IF NOT EXISTS {DB}.SALES",
        f"CREATE OR REPLACE TABLE {DB}.SALES.ORDERS (ID NUMBER(10,0) NOT NULL, CUSTOMER VARCHAR, "
        "AMOUNT NUMBER(12,2), ORDERED_AT TIMESTAMP_NTZ)",
        f"INSERT INTO {DB}.SALES.ORDERS SELECT seq4(), 'c' || (seq4() % 50), (seq4() % 1000) / 10, "
        "dateadd(minute, seq4(), '2025-01-01'::timestamp_ntz) FROM TABLE(GENERATOR(ROWCOUNT => 5000))",
        f"CREATE OR REPLACE TABLE {DB}.SALES.SECRETS (ID NUMBER(10,0), SECRET VARCHAR)",
        f"INSERT INTO {DB}.SALES.SECRETS VALUES (1, '{CANARY}')",
    ):
        cur.execute(sql)
    con.close()


@pytest.fixture(scope="module")
def api(fakesnow_port: int, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("journey")
    env = {
        "AGENTS_DATA_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'control.db'}",
        "SNOWFLAKE_HOST": "127.0.0.1", "SNOWFLAKE_PORT": str(fakesnow_port), "SNOWFLAKE_PROTOCOL": "http",
        "SNOWFLAKE_DATABASE": DB, "SNOWFLAKE_NETWORK_TIMEOUT_S": "20", "ADMIN_PASSWORD": "journey-pw",
        "JWT_SECRET": "journey-secret-" + "y" * 32, "DAGSTER_GRAPHQL_URL": "http://127.0.0.1:9/graphql",
    }
    _seed(fakesnow_port)
    settings = Settings.from_env(env)
    from shared.control.db import migrate

    migrate(settings.control_url)
    for name in ("ORDERS", "SECRETS"):
        table = build_registration({"schema_name": "SALES", "table_name": name}, default_database=DB)
        registry.save(settings.control_url, table)
        resources = {"snowflake": snowflake_resource(settings, env={}),
                     "served": ServedDataResource(home=settings.home, control_url=settings.control_url)}
        result = dg.materialize([build_table_asset(table=table)], resources=resources)
        assert result.success
    port = processes.free_port()
    proc = processes.start([sys.executable, "-m", "serving"], env={**os.environ, **env, "API_PORT": str(port)},
                           cwd=Path(__file__).resolve().parents[2], log_path=home / "api.log")
    LOGS["api"] = home / "api.log"
    try:
        processes.wait_for_http(f"http://127.0.0.1:{port}/health", proc=proc, timeout_s=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        processes.stop(proc)
        assert CANARY not in (home / "api.log").read_text(errors="replace")


LOGS: dict[str, Path] = {}  # the API process's log, for the checks at the end of the journey


class Recorder:
    """An httpx client that keeps every response body, to check the canary never leaks."""

    def __init__(self, base: str) -> None:
        self.client = httpx.Client(base_url=base, timeout=30)
        self.bodies: list[bytes] = []

    def __call__(self, method: str, url: str, **kw: Any) -> httpx.Response:
        resp = self.client.request(method, url, **kw)
        self.bodies.append(resp.content)
        assert resp.status_code < 500, resp.text
        return resp


def test_agent_journey(api: str) -> None:
    call = Recorder(api)
    token = call("POST", "/api/v1/auth/token", data={"username": "admin", "password": "journey-pw"})
    assert token.status_code in (200, 201), token.text
    admin = {"Authorization": f"Bearer {token.json()['access_token']}"}

    swarm = call("POST", "/api/v1/admin/swarms", headers=admin,
                 json={"name": "analysts", "grants": [f"{DB.lower()}.sales.orders"]}).json()
    swarm_tok = call("POST", "/api/v1/admin/tokens", headers=admin,
                     json={"type": "swarm", "swarm_id": swarm["id"], "name": "analysts-swarm"}).json()
    minted = call("POST", "/api/v1/swarm/agents/tokens", headers={"Authorization": f"Bearer {swarm_tok['token']}"},
                  json={"name": "agent-1"})
    assert minted.status_code in (200, 201), minted.text
    agent = {"Authorization": f"Bearer {minted.json()['token']}"}

    # Catalog: only the granted table, with columns, rows and the served version.
    tables = call("GET", "/api/v1/data/tables", headers=agent).json()
    items = tables["tables"] if isinstance(tables, dict) else tables
    assert [t["table"] for t in items] == [f"{DB.lower()}.sales.orders"]
    one = call("GET", "/api/v1/data/tables/orders", headers=agent).json()
    assert one["row_count"] == 5000
    assert [c["name"].lower() for c in one["columns"]] == ["id", "customer", "amount", "ordered_at"]

    # JSON inline, with freshness of what was read.
    sql = "select customer, count(*) as n, sum(amount) as total from sales.orders group by customer order by customer"
    res = call("POST", "/api/v1/queries/execute", headers=agent, json={"query": sql, "output_format": "JSON"}).json()
    assert res["row_count"] == 50
    assert not res["truncated"]
    assert res["tables"][0]["table"] == f"{DB.lower()}.sales.orders"
    assert res["tables"][0]["version"]
    assert sum(r[1] for r in res["rows"]) == 5000

    # Every file format, read back and compared with the JSON answer.
    readers = {
        "csv": lambda b: pacsv.read_csv(io.BytesIO(b)),
        "parquet": lambda b: pq.read_table(io.BytesIO(b)),
        "arrow": lambda b: ipc.open_stream(io.BytesIO(b)).read_all(),
    }
    for fmt, read in readers.items():
        answer = call("POST", "/api/v1/queries/execute", headers=agent, json={"query": sql, "output_format": fmt}).json()
        link = answer.get("result_url")
        assert link, answer
        body = call("GET", link, headers=agent)
        assert body.status_code == 200
        table: pa.Table = read(body.content)
        assert table.num_rows == 50
        assert sum(table.column("n").to_pylist()) == 5000

    # Async job: wait_s=0 answers with a job id; poll until it succeeds, then fetch the result.
    job = call("POST", "/api/v1/queries/execute", headers=agent,
               json={"query": "select count(*) as c from orders", "wait_s": 0}).json()
    assert job["job_id"]
    assert job["status"] in ("running", "queued", "succeeded")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = call("GET", f"/api/v1/queries/jobs/{job['job_id']}", headers=agent).json()
        if status["status"] not in ("running", "queued"):
            break
        time.sleep(0.1)
    assert status["status"] == "succeeded", status
    result = call("GET", f"/api/v1/queries/jobs/{job['job_id']}/result", headers=agent).json()
    assert result["rows"] == [[5000]]

    # Cancel a long-running job.
    slow = call("POST", "/api/v1/queries/execute", headers=agent, json={
        "query": "select count(*) from range(100000000000) a", "wait_s": 0, "timeout_s": 60}).json()
    cancelled = call("DELETE", f"/api/v1/queries/jobs/{slow['job_id']}", headers=agent)
    assert cancelled.status_code == 200
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        state = call("GET", f"/api/v1/queries/jobs/{slow['job_id']}", headers=agent).json()["status"]
        if state not in ("running", "queued"):
            break
        time.sleep(0.2)
    assert state == "cancelled"

    # Denial: the ungranted table answers exactly like a table that does not exist.
    denied = call("POST", "/api/v1/queries/execute", headers=agent, json={"query": "select * from sales.secrets"})
    missing = call("POST", "/api/v1/queries/execute", headers=agent, json={"query": "select * from sales.nothing_here"})
    assert denied.status_code == missing.status_code == 404 or denied.status_code == missing.status_code == 400
    assert denied.json()["error"]["rule"] == missing.json()["error"]["rule"] == "table_not_granted"
    assert call("GET", "/api/v1/data/tables/secrets", headers=agent).status_code == 404

    # The admin audit shows the agent's queries, including the denied one.
    # Audit rows are written in batches off the request path: poll briefly.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        audit = call("GET", "/api/v1/admin/audit", headers=admin, params={"status": "4xx"}).json()
        if any(row.get("rule") == "table_not_granted" for row in audit["items"]):
            break
        time.sleep(0.3)
    assert any(row.get("rule") == "table_not_granted" for row in audit["items"]), audit

    assert not any(CANARY.encode() in body for body in call.bodies)

    # The API's log: nothing above INFO (nothing went wrong), no library chatter, and no secret.
    text = LOGS["api"].read_text(errors="replace")
    assert text.count("agents_data.access") >= len(call.bodies)  # one access line per request (INFO is on)
    assert lines_above_info(text) == []
    assert "Falling back to parsing" not in text
    assert "HTTP Request:" not in text
    used = [token.json()["access_token"], swarm_tok["token"], minted.json()["token"], "journey-pw",
            "journey-secret-" + "y" * 32]
    assert leaks([LOGS["api"]], used) == []
