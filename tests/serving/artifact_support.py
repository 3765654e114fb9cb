"""Real processes for artifact, sampling and profiling tests: a moto S3 server and the API under uvicorn.

Both bind to 127.0.0.1 on a free port, start with SIGINT/SIGTERM reset (the sandbox
may start children with them ignored) and are stopped by PID, never by name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from serving.app import create_app
from shared import processes
from shared.settings import Settings
from tests.serving.helpers import admin_token, bearer, create_swarm, mint_token

ROOT = Path(__file__).resolve().parents[2]
Headers = dict[str, str]


def bytecode_cache_env() -> dict[str, str]:
    """Let child processes keep compiled bytecode in a private cache outside the venv.

    The sandbox sets PYTHONDONTWRITEBYTECODE=1 and the venv ships no .pyc files, so every
    new process compiles the whole dependency tree (several seconds); a cache under the
    temp folder makes the second start fast without touching the venv.
    """
    import tempfile

    env = {"PYTHONPYCACHEPREFIX": str(Path(tempfile.gettempdir()) / "agents-data-pycache")}
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        env["PYTHONDONTWRITEBYTECODE"] = ""
    return env


@contextlib.contextmanager
def moto_server(workdir: Path) -> Iterator[str]:
    """``python -m moto.server`` on a free loopback port; yields its endpoint URL."""
    port = processes.free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", **bytecode_cache_env()}
    proc = processes.start([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                           log_path=workdir / "moto.log")
    try:
        url = f"http://127.0.0.1:{port}"
        processes.wait_for_http(url + "/moto-api/", proc=proc, timeout_s=30)
        yield url
    finally:
        processes.stop(proc)


def s3_client(endpoint: str):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")  # noqa: S106 - moto


@contextlib.contextmanager
def api_server(env: Mapping[str, str], workdir: Path) -> Iterator[tuple[str, int]]:
    """The API as a real uvicorn process (``create_app`` reading settings from ``env``); yields (url, pid)."""
    port = processes.free_port()
    full_env = {**os.environ, **env, "PYTHONPATH": str(ROOT), **bytecode_cache_env()}
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "serving.app:create_app", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning", "--no-access-log", "--timeout-graceful-shutdown", "2"]
    proc = processes.start(cmd, env=full_env, cwd=ROOT, log_path=workdir / f"api-{port}.log")
    try:
        url = f"http://127.0.0.1:{port}"
        processes.wait_for_http(url + "/health", proc=proc, timeout_s=60)
        yield url, proc.pid
    finally:
        processes.stop(proc)


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def multipart_head(boundary: str, fields: Mapping[str, str], filename: str = "data.bin",
                   content_type: str = "application/octet-stream") -> bytes:
    """Multipart framing up to the start of the file bytes (fields first, then the file part)."""
    out = b""
    for k, v in fields.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").encode()
    out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            f"Content-Type: {content_type}\r\n\r\n").encode()
    return out


def multipart_tail(boundary: str) -> bytes:
    return f"\r\n--{boundary}--\r\n".encode()


# --- in-process helpers shared by the artifact test modules ----------------------------------
# The fixtures below are imported by name into each artifact test module (pytest finds them there).

LIMIT = 256 * 1024  # ARTIFACT_MAX_BYTES in the in-process artifact tests


def make_settings(home: Path, **artifacts: Any) -> Settings:
    """Settings for artifact tests: a temporary home and SQLite, no Snowflake stand-in needed."""
    home.mkdir(parents=True, exist_ok=True)
    env = {"AGENTS_DATA_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'control.db'}",
           "JWT_SECRET": "test-secret-" + "x" * 32, "ADMIN_PASSWORD": "admin-password"}
    base = Settings.from_env(env)
    return dataclasses.replace(base, artifacts=dataclasses.replace(base.artifacts, **{"max_bytes": LIMIT, **artifacts}))


@dataclasses.dataclass
class Shared:
    """One app for the many small parametrized cases (each case checks only what it adds)."""

    client: TestClient[Litestar]
    owner: Headers
    home: Path


@contextlib.contextmanager
def shared_app(home: Path) -> Iterator[Shared]:
    """An app on ``home`` with one agent token, for a module-scoped fixture."""
    with TestClient(create_app(make_settings(home))) as client:
        admin = bearer(admin_token(client))
        swarm_id = create_swarm(client, admin, [])["id"]
        yield Shared(client, bearer(mint_token(client, admin, "agent", swarm_id)["token"]), home)


# Fixtures for the in-process artifact test modules: a temporary home without the stand-in.
@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def api_settings(home: Path) -> Settings:
    return make_settings(home)


@pytest.fixture
def swarm(make_swarm: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return make_swarm([])


@pytest.fixture
def owner(swarm: dict[str, Any], agent_headers: Callable[..., Headers]) -> Headers:
    return agent_headers(swarm["id"])


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shared]:
    with shared_app(tmp_path_factory.mktemp("shared") / "home") as s:
        yield s


def upload(client: TestClient[Litestar], headers: Headers, content: bytes = b"hello artifact",
           filename: str = "hello.txt", part_type: str = "text/plain", **fields: Any) -> Any:
    return client.post("/api/v1/artifacts", headers=headers, files={"file": (filename, content, part_type)},
                       data={k: v for k, v in fields.items() if v is not None})


def created(client: TestClient[Litestar], headers: Headers, content: bytes = b"hello artifact", **fields: Any) -> dict[str, Any]:
    r = upload(client, headers, content, **fields)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def stored_files(home: Path) -> list[Path]:
    return sorted(p for p in (home / "artifacts").rglob("*") if p.is_file())
