"""Plain helpers for the chaos tests: scale, counts, a real API process, a throwaway PostgreSQL.

Why a private PostgreSQL: a chaos test stops and starts the control database, and the
machine's shared server serves other work; so a cluster is made with ``initdb`` in a temp
folder, on a free loopback port, and only that one is ever stopped.

Scale: the CI versions run a handful of faults each; ``CHAOS_FULL=1`` (set by
``bench/chaos.py``) runs the full counts. Each test adds what it did to the JSON file
named by ``CHAOS_COUNTS_FILE`` when set, which the bench prints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from shared import processes
from tests.serving.artifact_support import bytecode_cache_env
from tests.serving.helpers import ADMIN_PASSWORD, bearer, create_swarm, mint_token

ROOT = Path(__file__).resolve().parents[2]
JWT_SECRET = "chaos-secret-" + "x" * 32


def full() -> bool:
    return os.environ.get("CHAOS_FULL", "") == "1"


def scale(ci: int, full_count: int) -> int:
    """``ci`` faults in the normal suite, ``full_count`` under ``CHAOS_FULL=1``."""
    return full_count if full() else ci


def record(scenario: str, counts: dict[str, Any]) -> None:
    """Merge ``counts`` under ``scenario`` into ``CHAOS_COUNTS_FILE`` (if set) and print them."""
    print(f"[chaos] {scenario}: {json.dumps(counts, sort_keys=True)}", flush=True)
    path = os.environ.get("CHAOS_COUNTS_FILE")
    if not path:
        return
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        fh.seek(0)
        text = fh.read()
        data = json.loads(text) if text.strip() else {}
        data[scenario] = counts
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(data, sort_keys=True))


Request = tuple[str, str, dict[str, str], Any]  # method, path, headers, JSON body
Answer = tuple[str, float, int, Any]  # client name, time sent, status (-1: no answer), response or error


@contextlib.contextmanager
def request_loops(url: str, clients: dict[str, Request], *, timeout_s: float, pause_s: float,
                  pauses: dict[str, float] | None = None) -> Iterator[list[Answer]]:
    """One thread per client sending its request in a loop (``pause_s`` apart, or ``pauses[name]``)
    until the block ends; every answer is appended to the yielded log as it comes."""
    log: list[Answer] = []
    stop = threading.Event()

    def loop(name: str, spec: Request) -> None:
        method, path, headers, body = spec
        with httpx.Client(base_url=url, timeout=timeout_s) as c:
            while not stop.is_set():
                t = time.monotonic()
                try:
                    r = c.request(method, path, headers=headers, json=body)
                    log.append((name, t, r.status_code, r))
                except httpx.HTTPError as e:
                    log.append((name, t, -1, repr(e)))
                time.sleep((pauses or {}).get(name, pause_s))

    threads = [threading.Thread(target=loop, args=(n, spec), daemon=True) for n, spec in clients.items()]
    for t in threads:
        t.start()
    try:
        yield log
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=timeout_s + 10)


def api_env(home: Path, control_url: str, **extra: str) -> dict[str, str]:
    """Environment for a real API process over ``home`` and ``control_url``."""
    home.mkdir(parents=True, exist_ok=True)
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("SNOWFLAKE_", "DAGSTER_", "API_", "AGENTS_DATA_", "DATABASE_URL"))}
    return {**base, **bytecode_cache_env(), "PYTHONUNBUFFERED": "1", "AGENTS_DATA_HOME": str(home),
            "DATABASE_URL": control_url, "JWT_SECRET": JWT_SECRET, "ADMIN_USERNAME": "admin",
            "ADMIN_PASSWORD": ADMIN_PASSWORD, "LOG_LEVEL": "warning", "SNOWFLAKE_ACCOUNT": "fakesnow",
            "SNOWFLAKE_HOST": "127.0.0.1", "SNOWFLAKE_PORT": "9", "SNOWFLAKE_PROTOCOL": "http", **extra}


@dataclasses.dataclass
class Api:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@contextlib.contextmanager
def api_process(env: dict[str, str], log: Path, *, timeout_s: float = 120.0) -> Iterator[Api]:
    """``python -m serving`` on a free loopback port (signals reset, own group, stopped by PID)."""
    port = processes.free_port()
    proc = processes.start([sys.executable, "-m", "serving"], env={**env, "API_PORT": str(port), "API_HOST": "127.0.0.1"},
                           cwd=ROOT, log_path=log)
    api = Api(proc, port, log)
    try:
        try:
            processes.wait_for_http(f"{api.url}/health", timeout_s=timeout_s, proc=proc)
        except Exception as e:
            raise RuntimeError(f"the API did not start: {e}\n{api.tail()}") from e
        yield api
    finally:
        processes.stop(proc, grace_s=5)


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc), never found by name."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    with contextlib.suppress(OSError):
        return [int(p) for p in path.read_text().split()]
    return []


def agent_setup(url: str, grants: list[str]) -> tuple[dict[str, str], dict[str, str], str]:
    """Admin headers, an agent token's headers (granted ``grants``) and the agent token's id."""
    with httpx.Client(base_url=url, timeout=60) as c:
        r = c.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
        assert r.status_code == 200, r.text
        admin = bearer(r.json()["access_token"])
        swarm = create_swarm(c, admin, grants)
        token = mint_token(c, admin, "agent", swarm["id"])
    return admin, bearer(token["token"]), str(token["token_id"])


# ------------------------------------------------------------------------ private PostgreSQL
def pg_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, or None."""
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    return next((c for c in candidates if (c / "initdb").exists() and (c / "pg_ctl").exists()), None)


@dataclasses.dataclass
class PrivatePostgres:
    """A throwaway cluster: ``stop()`` and ``start()`` affect only it."""

    bin: Path
    data: Path
    port: int
    as_postgres: bool

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60.0) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.data.parent,
                              check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")

    def start(self) -> None:
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data.parent} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.data.parent / "pg.log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """initdb + start a cluster in a temp folder on a free port; stop it and remove it afterwards.

    Raises ``FileNotFoundError`` when the PostgreSQL binaries are missing (the test skips).
    """
    bindir = pg_bin()
    if bindir is None:
        raise FileNotFoundError("initdb/pg_ctl not found (PATH, /usr/lib/postgresql/*/bin)")
    as_postgres = os.geteuid() == 0  # initdb refuses root
    root = Path(tempfile.mkdtemp(prefix="chaos-pg-"))
    data = root / "data"
    if as_postgres:
        shutil.chown(root, "postgres")
    pg = PrivatePostgres(bindir, data, processes.free_port(), as_postgres)
    try:
        pg._run("initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", timeout=120)
        pg.start()
        yield pg
    finally:
        with contextlib.suppress(Exception):
            pg.stop()
        shutil.rmtree(root, ignore_errors=True)

