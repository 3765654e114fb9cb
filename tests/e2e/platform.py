"""The production topology on loopback, without Docker: for e2e tests and benchmarks.

One module-scoped :class:`Platform` runs, as separate processes (signals reset, own
process group, killed if the test process dies, stopped by PID with ``shared.processes``,
never by name):

- a fakesnow server (``fakesnow -s``), the Snowflake stand-in;
- a dedicated PostgreSQL database pair on ``TEST_POSTGRES_URL`` (control DB + Dagster
  storage), dropped afterwards;
- the Dagster gRPC code server, webserver and daemon, with the same commands as
  ``agents-data dagster`` (``shared.cli``) and ``dagster.postgres.yaml`` as the instance;
- N API replicas (``python -m serving``) sharing the control DB and served-data folder.

Use :func:`start_platform` (a context manager) from a fixture or a benchmark; the
fixtures in ``tests/e2e/conftest.py`` wrap it. Without PostgreSQL (``postgres=False``)
Dagster keeps SQLite storage (``dagster.yaml``) and the control DB is a SQLite file:
fine for one machine, and what the latency benchmark may use. Process logs go to
``<root>/logs``; their tails are in the error when a start-up fails.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from shared import processes
from shared.dagster_names import UI_PATH_PREFIX
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "")
ADMIN_PASSWORD = "e2e-admin-password"  # noqa: S105 - test credential
Seed = Callable[[Any], None]  # receives a connector cursor
Prepare = Callable[["Platform"], None]  # runs after migrations, before Dagster starts
_PR_SET_PDEATHSIG = 1
# What the modules on the session's shared platform seed and register (tests/e2e/conftest.py).
SHARED_SETUP: dict[str, tuple[Seed | None, Prepare | None]] = {}


def _child_setup() -> None:
    """In the child before exec: default SIGINT/SIGTERM, its own process group (stopped by PID with
    ``shared.processes.stop``), and SIGKILL when the test process dies, even by ``kill -9`` or a
    timeout's ``os._exit``: a child in its own session would otherwise outlive it (Linux prctl)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.setsid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


# ----------------------------------------------------------------------------- PostgreSQL
@dataclasses.dataclass(frozen=True)
class PgDatabases:
    control_url: str  # SQLAlchemy URL (psycopg 3)
    dagster_url: str  # plain postgresql:// URL for dagster-postgres


def _admin_engine(url: str) -> sa.Engine:
    from shared.control.db import normalize_url

    return sa.create_engine(normalize_url(url), isolation_level="AUTOCOMMIT")


class PostgresUnavailable(RuntimeError):
    """TEST_POSTGRES_URL is not set."""


@contextlib.contextmanager
def postgres_databases(prefix: str = "e2e") -> Iterator[PgDatabases]:
    """Two fresh databases on the TEST_POSTGRES_URL server, dropped (with their sessions) afterwards."""
    if not POSTGRES_URL:
        raise PostgresUnavailable(
            "TEST_POSTGRES_URL is not set (.ci/run sets it to the local PostgreSQL server); the e2e topology "
            "needs PostgreSQL for Dagster storage and the control database the API replicas share")
    name = f"{prefix}_{secrets.token_hex(4)}"
    engine = _admin_engine(POSTGRES_URL)
    base = POSTGRES_URL.rsplit("/", 1)[0]
    names = (f"{name}_control", f"{name}_dagster")
    with engine.connect() as conn:
        for db in names:
            conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
    try:
        yield PgDatabases(control_url=f"{base}/{names[0]}", dagster_url=f"{base}/{names[1]}")
    finally:
        for db in names:  # each on its own, so one failure never leaves the other behind
            for attempt in range(3):
                try:
                    with engine.connect() as conn:
                        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))
                    break
                except sa.exc.SQLAlchemyError:
                    if attempt == 2:
                        raise
                    time.sleep(1.0)
        engine.dispose()


# ------------------------------------------------------------------------------- processes
@dataclasses.dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 60) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclasses.dataclass
class ApiReplica:
    name: str
    port: int
    child: Child

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, timeout_s: float = 240.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout_s)


@dataclasses.dataclass
class Platform:
    """Everything started for one e2e module. ``env`` is what every child got."""

    root: Path
    env: dict[str, str]
    snowflake_port: int
    webserver_port: int
    code_server_port: int
    databases: PgDatabases | None
    children: list[Child] = dataclasses.field(default_factory=list)
    apis: dict[str, ApiReplica] = dataclasses.field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)

    @property
    def graphql_url(self) -> str:
        return f"http://127.0.0.1:{self.webserver_port}{UI_PATH_PREFIX}/graphql"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def child(self, name: str) -> Child:
        return next(c for c in self.children if c.name == name)

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Child:
        log = self.logs / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(args, env=env or self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, preexec_fn=_child_setup)  # noqa: PLW1509
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def stop(self, name: str) -> None:
        child = self.child(name)
        processes.stop(child.proc, grace_s=10)
        self.children.remove(child)

    def start_api(self, name: str, *, timeout_s: float = 120.0) -> ApiReplica:
        """Start (or restart) API replica ``name`` on a fresh port and wait for /health."""
        port = processes.free_port()
        env = {**self.env, "API_PORT": str(port), "API_REPLICA_ID": f"api-{name}"}
        child = self.start(f"api-{name}", [sys.executable, "-m", "serving"], env)
        try:
            processes.wait_for_http(f"http://127.0.0.1:{port}/health", timeout_s=timeout_s, proc=child.proc)
        except Exception as e:
            raise RuntimeError(f"API replica {name} did not start: {e}\n{child.tail()}") from e
        self.apis[name] = ApiReplica(name, port, child)
        return self.apis[name]

    def kill_api(self, name: str, sig: int = signal.SIGKILL) -> None:
        """``kill -9`` one replica (by PID, and its process group)."""
        replica = self.apis.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(replica.child.proc.pid, sig)
        replica.child.proc.wait(timeout=10)
        self.children.remove(replica.child)

    @contextlib.contextmanager
    def source(self) -> Iterator[Any]:
        """A cursor on the stand-in through the real Snowflake connector."""
        from shared.snowflake import connect

        with connect(self.settings.snowflake) as con:
            cur = con.cursor()
            try:
                yield cur
            finally:
                cur.close()

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        r = httpx.post(self.graphql_url, json={"query": query, "variables": variables or {}}, timeout=60)
        r.raise_for_status()
        body: dict[str, Any] = r.json()
        assert not body.get("errors"), body
        return body["data"]  # type: ignore[no-any-return]

    def register(self, **raw: Any) -> str:
        """Register a table straight into the control DB (no reload: for ``prepare``); returns its key."""
        from shared import registry

        reg = registry.build_registration(raw, default_database=self.settings.snowflake.database)
        registry.save(self.settings.control_url, reg)
        return reg.key

    def admin_headers(self, replica: str | None = None) -> dict[str, str]:
        api = self.apis[replica or next(iter(self.apis))]
        r = httpx.post(f"{api.url}/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD},
                       timeout=30)
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    def agent_headers(self, grants: list[str], replica: str | None = None) -> dict[str, str]:
        """Headers of a new agent token of a new swarm granted ``grants``."""
        from tests.serving.helpers import bearer, create_swarm, mint_token

        admin = self.admin_headers(replica)
        with self.apis[replica or next(iter(self.apis))].client() as api:
            swarm = create_swarm(api, admin, grants)
            return bearer(mint_token(api, admin, "agent", swarm["id"])["token"])

    def close(self) -> None:
        for child in reversed(self.children):
            processes.stop(child.proc, grace_s=10)
        self.children.clear()
        self.apis.clear()


def _wait_for_daemon(platform: Platform, timeout_s: float) -> None:
    """Until every required daemon reports a healthy heartbeat (runs would otherwise wait in a queue)."""
    query = "{ instance { daemonHealth { allDaemonStatuses { daemonType required healthy } } } }"
    deadline = time.monotonic() + timeout_s
    statuses: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        daemon = platform.child("dagster-daemon")
        if daemon.proc.poll() is not None:
            raise RuntimeError(f"dagster-daemon exited with {daemon.proc.returncode}\n{daemon.tail()}")
        with contextlib.suppress(httpx.HTTPError, AssertionError):
            statuses = platform.graphql(query)["instance"]["daemonHealth"]["allDaemonStatuses"]
            if statuses and all(s["healthy"] for s in statuses if s["required"]):
                return
        time.sleep(0.5)
    raise TimeoutError(f"Dagster daemons not healthy within {timeout_s}s: {statuses}\n"
                       f"{platform.child('dagster-daemon').tail()}")




@contextlib.contextmanager
def start_platform(root: Path, *, replicas: tuple[str, ...] = ("a", "b"), seed: Seed | None = None,
                   prepare: Prepare | None = None, extra_env: dict[str, str] | None = None, postgres: bool = True,
                   timeout_s: float = 300.0) -> Iterator[Platform]:
    """Start the whole topology under ``root``; stop every child by PID and drop the databases at exit.

    ``postgres=True`` (the production shape, needs TEST_POSTGRES_URL, else ``PostgresUnavailable``):
    Dagster storage and the control DB in fresh PostgreSQL databases. ``False``: SQLite for both.
    ``seed(cursor)`` fills the source; ``prepare(platform)`` runs on the migrated control DB before
    Dagster starts, e.g. to register tables without paying a code-location reload each.
    """
    from shared.cli import _dagster_commands

    with postgres_databases() if postgres else contextlib.nullcontext() as dbs:
        home, dagster_home = root / "home", root / "dagster-home"
        for path in (home, dagster_home, root / "logs"):
            path.mkdir(parents=True, exist_ok=True)
        instance = ROOT / ("dagster.postgres.yaml" if dbs else "dagster.yaml")
        shutil.copyfile(instance, dagster_home / "dagster.yaml")
        snow_port, ws_port, cs_port = processes.free_port(), processes.free_port(), processes.free_port()
        control_url = dbs.control_url if dbs else f"sqlite:///{home / 'control.db'}"
        env = {
            **{k: v for k, v in os.environ.items()
               if not k.startswith(("SNOWFLAKE_", "DAGSTER_", "API_", "AGENTS_DATA_", "DATABASE_URL"))},
            "PYTHONUNBUFFERED": "1", "AGENTS_DATA_HOME": str(home), "DAGSTER_HOME": str(dagster_home),
            "DATABASE_URL": control_url,
            "SNOWFLAKE_ACCOUNT": "fakesnow", "SNOWFLAKE_USER": "fake", "SNOWFLAKE_PASSWORD": "snow",
            "SNOWFLAKE_HOST": "127.0.0.1", "SNOWFLAKE_PORT": str(snow_port), "SNOWFLAKE_PROTOCOL": "http",
            "SNOWFLAKE_DATABASE": "DEMO", "SNOWFLAKE_NETWORK_TIMEOUT_S": "30",
            "DAGSTER_WEBSERVER_PORT": str(ws_port), "DAGSTER_CODE_SERVER_PORT": str(cs_port),
            "DAGSTER_GRAPHQL_URL": f"http://127.0.0.1:{ws_port}{UI_PATH_PREFIX}/graphql", "DAGSTER_LOCATION_NAME": "agents_data",
            "SCHEDULES_DEFAULT_RUNNING": "false", "SOURCE_CHANGE_INTERVAL_S": "5", "JWT_SECRET": "e2e-" + secrets.token_hex(24),
            "ADMIN_USERNAME": "admin", "ADMIN_PASSWORD": ADMIN_PASSWORD, "LOG_LEVEL": "warning",
            **({"DAGSTER_PG_URL": dbs.dagster_url} if dbs else {}),
            **(extra_env or {}),
        }
        platform = Platform(root=root, env=env, snowflake_port=snow_port, webserver_port=ws_port,
                            code_server_port=cs_port, databases=dbs)
        try:
            snow = platform.start("fakesnow", [sys.executable, "-m", "fakesnow", "-s", "-p", str(snow_port)])
            processes.wait_for_port(snow_port, timeout_s=60, proc=snow.proc)
            with platform.source() as cur:
                cur.execute("CREATE DATABASE IF NOT EXISTS DEMO")
                if seed is not None:
                    seed(cur)
            from shared.control.db import migrate

            migrate(control_url)  # once, before several processes race to do it
            if prepare is not None:
                prepare(platform)
            for name, args in _dagster_commands(platform.settings):
                child = platform.start(name, args)
                if name == "dagster-code-server":
                    processes.wait_for_port(cs_port, timeout_s=timeout_s, proc=child.proc)
            processes.wait_for_http(f"http://127.0.0.1:{ws_port}{UI_PATH_PREFIX}/server_info", timeout_s=timeout_s,
                                    proc=platform.child("dagster-webserver").proc)
            _wait_for_daemon(platform, timeout_s)
            for name in replicas:
                platform.start_api(name)
        except Exception as e:
            logs = "\n".join(f"--- {c.name} ---\n{c.tail(30)}" for c in platform.children)
            platform.close()
            raise RuntimeError(f"e2e platform did not start: {e}\n{logs}") from e
        except BaseException:  # KeyboardInterrupt: still stop every child
            platform.close()
            raise
        try:
            yield platform
        finally:
            platform.close()


def wait_until(predicate: Callable[[], Any], *, timeout_s: float, interval_s: float = 0.2,
               message: str = "condition") -> Any:
    """Poll ``predicate`` until it returns a truthy value (returned), or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"{message} not met within {timeout_s}s (last: {last!r})")


