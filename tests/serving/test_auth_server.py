"""The auth journey against a real API process (``python -m serving``) on a loopback port."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared import processes
from tests.serving.helpers import admin_token, assert_error, bearer, create_swarm, mint_token

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = processes.free_port()
    home = tmp_path / "home"
    env = {**os.environ, "AGENTS_DATA_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'control.db'}",
           "ADMIN_PASSWORD": "admin-password", "JWT_SECRET": "", "API_HOST": "127.0.0.1", "API_PORT": str(port),
           "LOG_LEVEL": "warning", "TOKEN_CACHE_TTL_S": "0.5"}
    proc = processes.start([sys.executable, "-m", "serving"], env=env, cwd=ROOT, log_path=tmp_path / "server.log")
    base = f"http://127.0.0.1:{port}"
    try:
        processes.wait_for_http(base + "/health", proc=proc, timeout_s=60)
        yield base
    finally:
        processes.stop(proc, grace_s=15)
    assert proc.returncode is not None


def test_admin_login_swarm_tokens_call_revoke(server: str, tmp_path: Path) -> None:
    with httpx.Client(base_url=server, timeout=10) as client:
        admin = bearer(admin_token(client))
        swarm = create_swarm(client, admin, ["demo.public.orders", "demo.public.users"])
        parent = mint_token(client, admin, "swarm", swarm["id"])
        agent = mint_token(client, bearer(parent["token"]), "agent", allowed_tables=["demo.public.orders"],
                           via_swarm=True)
        me = client.get("/api/v1/auth/whoami", headers=bearer(agent["token"]))
        assert me.status_code == 200, me.text
        assert me.json()["grants"] == ["demo.public.orders"]
        assert client.get("/docs").status_code == 200
        r = client.delete(f"/api/v1/admin/tokens/{parent['token_id']}", headers=admin)
        assert r.status_code == 200
        assert_error(client.get("/api/v1/auth/whoami", headers=bearer(agent["token"])), 401, rule="token_revoked")
        assert_error(client.get("/api/v1/auth/whoami", headers=bearer(parent["token"])), 401, rule="token_revoked")
        deadline = time.monotonic() + 10
        while True:  # audit rows are written in the background
            items = client.get("/api/v1/admin/audit", params={"token_id": agent["token_id"]}, headers=admin).json()["items"]
            if {i["status_code"] for i in items} >= {200, 401}:
                break
            assert time.monotonic() < deadline, items
            time.sleep(0.2)
    secret = tmp_path / "home" / "jwt_secret"
    assert secret.exists()  # JWT_SECRET was empty: generated and persisted
    assert oct(secret.stat().st_mode & 0o777) == "0o600"
    logged = (tmp_path / "server.log").read_text()
    for token in (agent["token"], parent["token"], admin["Authorization"].split()[1]):
        assert token not in logged
