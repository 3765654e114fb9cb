"""The auth journey against a real API process (``python -m serving``) on a loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.serving.helpers import admin_token, assert_error, bearer, create_swarm, mint_token

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def _default_signals() -> None:
    # Background processes here may start with SIGINT/SIGTERM ignored; the server must obey them.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    home = tmp_path / "home"
    env = {**os.environ, "AGENTS_DATA_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'control.db'}",
           "ADMIN_PASSWORD": "admin-password", "JWT_SECRET": "", "API_HOST": "127.0.0.1", "API_PORT": str(port),
           "LOG_LEVEL": "warning", "TOKEN_CACHE_TTL_S": "0.5"}
    log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "serving"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=_default_signals)  # noqa: PLW1509 - only resets signal dispositions
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError("API exited: " + (tmp_path / "server.log").read_text()[-3000:])
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("API did not answer /health within 60 s")
            time.sleep(0.2)
        yield base
    finally:
        _stop(proc)
        log.close()
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
