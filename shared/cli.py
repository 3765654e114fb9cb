"""``agents-data``: the one console entry point.

Subcommands start what a user runs: ``up`` (the whole local platform on the embedded
default), ``api``, ``dagster``, ``demo`` (the local Snowflake stand-in alone),
``migrate`` and ``bench`` (every benchmark, then ``bench/REPORT.md``); ``status``
prints the registered tables and which services answer. Every command and every child it
starts log in one format (``LOG_FORMAT``, ``shared/logs.py``); ``up`` shows the demo's
seeding and the first syncs as they progress (``shared/cli_progress.py``). Components run
as child processes started by module name, so this module imports neither
``orchestration`` nor ``serving``.

The Dagster webserver listens on loopback only, under ``/dagster``; people reach the UI
through the API's authenticated proxy at ``http://<API>/dagster/`` (admin login). Every
command first makes the process umask owner-only and repairs the data home's modes, so
everything the children create under AGENTS_DATA_HOME is 0700/0600.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import secrets
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from shared import logs as log_setup
from shared import processes
from shared.dagster_names import UI_PATH_PREFIX
from shared.filemodes import private_dir, secure_home
from shared.settings import Settings, get_settings

if TYPE_CHECKING:
    from shared.registry import RegisteredTable

REPO_ROOT = Path(__file__).resolve().parent.parent


def _env_for_children(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = log_setup.child_env(settings, os.environ)  # the same LOG_FORMAT and LOG_LEVEL in every child
    env["AGENTS_DATA_HOME"] = settings.home
    env["DAGSTER_HOME"] = str(settings.dagster_home_path)
    env.setdefault("PYTHONUNBUFFERED", "1")
    # The API reaches the webserver this CLI starts, on whatever port it was given; links
    # for people point at the API's authenticated proxy, never at the webserver itself.
    env.setdefault("DAGSTER_GRAPHQL_URL", f"{_webserver_url(settings)}/graphql")
    env.setdefault("DAGSTER_UI_URL", ui_url(settings))
    env.update(extra or {})
    return env


def _webserver_url(settings: Settings) -> str:
    """The webserver's internal address (loopback, under the UI path prefix)."""
    return f"http://127.0.0.1:{settings.dagster.webserver_port}{UI_PATH_PREFIX}"


def ui_url(settings: Settings) -> str:
    """Where a person opens the Dagster UI: the API's proxy, which asks for the admin login."""
    host = settings.api.host if settings.api.host not in ("0.0.0.0", "::", "") else "127.0.0.1"  # noqa: S104
    return settings.dagster.ui_url or f"http://{host}:{settings.api.port}{UI_PATH_PREFIX}"


def _secret_file(settings: Settings, name: str) -> str:
    """A random secret persisted under AGENTS_DATA_HOME (0600), created once."""
    path = settings.home_path / name
    if not path.exists():
        private_dir(settings.home_path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(18))
    return path.read_text().strip()


def _admin_env(settings: Settings) -> dict[str, str]:
    if settings.auth.admin_password:
        return {}
    return {"ADMIN_PASSWORD": _secret_file(settings, "admin-password")}


def prepare_dagster_home(settings: Settings) -> Path:
    """Install the instance config (dagster.yaml) for the storage asked for.

    ``dagster.postgres.yaml`` when DAGSTER_PG_URL is set, else ``dagster.yaml``. Why the
    bookkeeping: Dagster's YAML cannot switch on an env var, so the choice is made by
    copying a file, and a later ``DAGSTER_PG_URL`` (or a repository upgrade) must take
    effect. The hash of the installed copy is recorded next to it; a copy still equal to
    what was installed is replaced whenever the wanted file differs, and a copy edited by
    hand is kept, with a warning when it is not the wanted one.
    """
    import hashlib

    home = private_dir(settings.dagster_home_path)
    target, record = home / "dagster.yaml", home / ".agents-data-installed"
    variant = REPO_ROOT / ("dagster.postgres.yaml" if os.environ.get("DAGSTER_PG_URL") else "dagster.yaml")
    wanted = (variant if variant.exists() else REPO_ROOT / "dagster.yaml").read_bytes()
    if target.exists():
        current = target.read_bytes()
        if current == wanted:
            return home
        installed = record.read_text().strip() if record.exists() else ""
        if hashlib.sha256(current).hexdigest() != installed:
            print(f"[agents-data] keeping {target}, edited by hand; it differs from {variant.name}, which the current "
                  "settings ask for (remove it to install that one)", file=sys.stderr, flush=True)
            return home
        print(f"[agents-data] installing {variant.name} as {target}", flush=True)
    target.write_bytes(wanted)
    record.write_text(hashlib.sha256(wanted).hexdigest() + "\n")
    return home


def _grpc_workspace(settings: Settings) -> Path:
    """A workspace file pointing the webserver and daemon at the warm gRPC code server."""
    path = private_dir(settings.dagster_home_path) / "workspace.grpc.yaml"
    path.write_text(
        "load_from:\n  - grpc_server:\n      host: 127.0.0.1\n"
        f"      port: {settings.dagster.code_server_port}\n      location_name: {settings.dagster.location_name}\n"
    )
    return path


def _dagster_commands(settings: Settings) -> list[tuple[str, list[str]]]:
    py = sys.executable
    workspace = str(_grpc_workspace(settings))
    ws_port = str(settings.dagster.webserver_port)
    return [
        ("dagster-code-server", [py, "-m", "dagster", "code-server", "start", "-h", "127.0.0.1",
                                 "-p", str(settings.dagster.code_server_port), "-m", "orchestration.definitions",
                                 "--location-name", settings.dagster.location_name]),
        # Loopback only, no auth of its own: people come through the API's /dagster/ proxy.
        ("dagster-webserver", [py, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", ws_port, "-w", workspace,
                               "--path-prefix", UI_PATH_PREFIX]),
        ("dagster-daemon", [py, "-m", "orchestration.daemon", "run", "-w", workspace]),  # Dagster's, faster backfills
    ]


def _supervise(children: list[tuple[str, processes.subprocess.Popen[bytes]]]) -> int:
    """Wait until a child exits or the user interrupts; then stop every child by PID."""
    code = 0
    try:
        while True:
            for name, proc in children:
                if proc.poll() is not None:
                    print(f"[agents-data] {name} exited with {proc.returncode}; stopping the rest", file=sys.stderr)
                    code = proc.returncode or 1
                    raise StopIteration
            time.sleep(0.5)
    except (KeyboardInterrupt, StopIteration):
        pass
    finally:
        for _name, proc in reversed(children):
            processes.stop(proc)
    return code


def _logs(settings: Settings) -> Path:
    return private_dir(settings.home_path / "logs")


def cmd_demo(settings: Settings, *, register: bool = True) -> int:
    """Run the embedded Snowflake stand-in, seeded with demo data, until interrupted."""
    from shared import demo

    def report(line: str) -> None:
        print(f"[agents-data] {line}", flush=True)

    with demo.demo_source(settings.demo.port) as snow:
        demo.seed_demo(snow, report=report)
        if register:
            demo.register_demo_tables(settings, snow)
        print(f"[agents-data] demo Snowflake stand-in ready on 127.0.0.1:{settings.demo.port}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


def source_plan(settings: Settings) -> tuple[Settings, bool]:
    """The settings ``up`` gives its children, and whether it starts the embedded stand-in.

    The stand-in is started, and the endpoint pointed at it, only when neither an account
    nor a host is configured: an explicit ``SNOWFLAKE_HOST``/``SNOWFLAKE_PORT`` is used as
    given, whatever ``SNOWFLAKE_ACCOUNT`` says.
    """
    if not settings.snowflake.embedded:
        return settings, False
    sf = dataclasses.replace(settings.snowflake, host="127.0.0.1", port=settings.demo.port, protocol="http")
    return dataclasses.replace(settings, snowflake=sf), True


def _snowflake_env(settings: Settings) -> dict[str, str]:
    sf = settings.snowflake
    return {"SNOWFLAKE_HOST": sf.host, "SNOWFLAKE_PORT": str(sf.port), "SNOWFLAKE_PROTOCOL": sf.protocol}


def cmd_up(settings: Settings) -> int:
    """The whole local platform: stand-in (if embedded), Dagster, API."""
    from shared.control.db import migrate

    settings, embedded = source_plan(settings)
    migrate(settings.control_url)
    logs = _logs(settings)
    source_env = _snowflake_env(settings) if embedded else {}
    env = _env_for_children(settings, {**_admin_env(settings), **source_env})
    children: list[tuple[str, processes.subprocess.Popen[bytes]]] = []
    try:
        if embedded:
            proc = processes.start([sys.executable, "-m", "shared.cli", "demo"], env=env, cwd=REPO_ROOT,
                                   log_path=logs / "demo.log")
            children.append(("demo-snowflake", proc))
            _wait_for_log(logs / "demo.log", "stand-in ready", proc, timeout_s=300, relay="seed")
        prepare_dagster_home(settings)
        for name, args in _dagster_commands(settings):
            children.append((name, processes.start(args, env=env, cwd=REPO_ROOT, log_path=logs / f"{name}.log")))
            if name == "dagster-code-server":
                processes.wait_for_port(settings.dagster.code_server_port, proc=children[-1][1], timeout_s=120)
        api = processes.start([sys.executable, "-m", "serving"], env=env, cwd=REPO_ROOT, log_path=logs / "api.log")
        children.append(("api", api))
        processes.wait_for_http(f"http://{settings.api.host}:{settings.api.port}/health", proc=api, timeout_s=120)
        processes.wait_for_http(f"{_webserver_url(settings)}/server_info",
                                proc=children[2][1], timeout_s=120)
    except Exception as e:
        print(f"[agents-data] start-up failed: {e}; logs are in {logs}", file=sys.stderr)
        for _n, proc in reversed(children):
            processes.stop(proc)
        return 1
    admin_pw = env.get("ADMIN_PASSWORD") or "(from ADMIN_PASSWORD)"
    started: list[tuple[str, str]] = []
    if settings.dagster.sync_on_start:
        try:
            started = first_syncs(settings, env.get("ADMIN_PASSWORD") or settings.auth.admin_password)
        except Exception as e:  # the platform is up; a failed request must not take it down
            print(f"[agents-data] could not request the first syncs: {e}", file=sys.stderr, flush=True)
    print(
        "\n[agents-data] platform is up\n"
        f"  Dagster UI : {ui_url(settings)}/  (admin login; the webserver itself listens on loopback only)\n"
        f"  API        : http://{settings.api.host}:{settings.api.port}  (docs: /docs)\n"
        f"  admin      : {settings.auth.admin_username} / {admin_pw}\n"
        f"  data home  : {settings.home}\n  logs       : {logs}\nPress Ctrl-C to stop.",
        flush=True,
    )
    if started:
        _follow_first_syncs(settings, env.get("ADMIN_PASSWORD") or settings.auth.admin_password, started)
    return _supervise(children)


def _follow_first_syncs(settings: Settings, admin_password: str, started: list[tuple[str, str]]) -> threading.Thread:
    """Show the first syncs' progress (a bar per table on a terminal, periodic lines otherwise) from a
    background thread, while the main thread supervises the children."""
    import httpx

    from shared import cli_progress

    base = f"http://{settings.api.host}:{settings.api.port}"
    jobs = [cli_progress.JobProgress(table=key, job_id=job_id) for key, job_id in started]

    def run() -> None:
        with httpx.Client(base_url=base, timeout=30) as api:
            headers: dict[str, str] = {}

            def fetch(job_id: str) -> dict[str, object] | None:
                nonlocal headers
                try:
                    if not headers:
                        login = api.post("/api/v1/auth/token", data={"username": settings.auth.admin_username,
                                                                     "password": admin_password})
                        login.raise_for_status()
                        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
                    r = api.get(f"/api/v1/sync/jobs/{job_id}", headers=headers)
                    if r.status_code == 401:
                        headers = {}
                    return r.json() if r.status_code == 200 else None
                except (httpx.HTTPError, ValueError):
                    return None

            ok = cli_progress.watch_jobs(jobs, fetch)
        print(f"[agents-data] first syncs {'done' if ok else 'finished, not all succeeded'}: "
              + ", ".join(f"{j.table} {j.status}" for j in jobs), flush=True)

    thread = threading.Thread(target=run, name="first-sync-progress", daemon=True)
    thread.start()
    return thread


def first_sync_request(table: RegisteredTable, now: dt.datetime | None = None) -> dict[str, object] | None:
    """The ``POST /api/v1/sync/start`` body that copies all of ``table`` (None: nothing to copy yet).

    Time-partitioned tables get every complete partition (one backfill), static ones every
    value, a snapshot table today's copy, the rest the whole table.
    """
    from shared import partitions

    if table.live:
        return None  # not copied: queries read Snowflake
    body: dict[str, object] = {"table_name": table.table, "schema_name": table.schema, "database": table.database}
    latest = partitions.latest_key(table, now)
    if table.strategy == "snapshot":
        return {**body, "partitions": [latest]} if latest else None
    kind = partitions.time_kind(table)
    if kind is not None:
        first = partitions.key_of(kind, partitions.start_of(table))
        return {**body, "partition_range": {"start": first, "end": latest}} if latest else None
    if partitions.is_partitioned(table):
        return {**body, "partitions": list(table.partition_values)}
    return body


def first_syncs(settings: Settings, admin_password: str) -> list[tuple[str, str]]:
    """On a first start, ask the API to copy every registered table that serves nothing yet.

    Why through the API (admin login, ``/sync/start``): it is the one path that launches
    runs and backfills in Dagster, so these show up in the UI like any other sync, and the
    platform answers queries within a minute of ``up`` instead of at the first schedule tick.
    Returns ``(table key, job id)`` of every sync started.
    """
    import httpx

    from shared.registry import list_registered
    from shared.served_storage import open_store

    store = open_store(settings)
    pending = [t for t in list_registered(settings.control_url) if store.current(t.key) is None]
    started: list[tuple[str, str]] = []
    if not pending:
        return started
    with httpx.Client(base_url=f"http://{settings.api.host}:{settings.api.port}", timeout=60) as api:
        login = api.post("/api/v1/auth/token",
                         data={"username": settings.auth.admin_username, "password": admin_password})
        login.raise_for_status()
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        for table in pending:
            body = first_sync_request(table)
            if body is None:
                continue
            r = api.post("/api/v1/sync/start", json=body, headers=headers)
            if r.status_code >= 400:
                print(f"[agents-data] first sync of {table.key} refused: {r.text}", file=sys.stderr, flush=True)
                continue
            job = r.json()
            started.append((table.key, str(job["job_id"])))
            print(f"[agents-data] first sync of {table.key}: {job['kind']} {job['job_id']} ({job.get('dagster_url')})",
                  flush=True)
    return started


def _wait_for_log(path: Path, needle: str, proc: processes.subprocess.Popen[bytes], *, timeout_s: float,
                  relay: str | None = None) -> None:
    """Wait for ``needle`` in the child's log; lines containing ``relay`` are shown as they appear."""
    deadline = time.monotonic() + timeout_s
    shown = 0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}; see {path}")
        text = path.read_text(errors="replace") if path.exists() else ""
        if relay:
            lines = text.splitlines()
            for line in lines[shown:]:
                if relay in line:
                    print(line, flush=True)
            shown = len(lines)
        if needle in text:
            return
        time.sleep(0.2)
    raise TimeoutError(f"{needle!r} not seen in {path} within {timeout_s}s")


def cmd_api(settings: Settings) -> int:
    env = _env_for_children(settings, _admin_env(settings))
    return _supervise([("api", processes.start([sys.executable, "-m", "serving"], env=env, cwd=REPO_ROOT))])


def cmd_dagster(settings: Settings) -> int:
    prepare_dagster_home(settings)
    env = _env_for_children(settings)
    children = []
    for name, args in _dagster_commands(settings):
        children.append((name, processes.start(args, env=env, cwd=REPO_ROOT)))
    return _supervise(children)


def _stop_on_signals() -> None:
    """SIGINT and SIGTERM stop the command and its children cleanly.

    Why: a process may inherit SIGINT/SIGTERM ignored (a shell's background job, some
    supervisors), and Docker, Kubernetes and systemd stop services with SIGTERM; either
    way the children must be stopped by PID, not orphaned.
    """
    import signal

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, interrupt)


def cmd_bench(bench_args: Sequence[str]) -> int:
    """The benchmarks live in the repository's ``bench/``, not in the installed package: run them from a checkout."""
    import subprocess

    if not (REPO_ROOT / "bench" / "__main__.py").exists():
        print("[agents-data] bench/ is not here: run `agents-data bench` from a checkout of the repository", file=sys.stderr)
        return 2
    return subprocess.call([sys.executable, "-m", "bench", *bench_args], cwd=REPO_ROOT)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agents-data", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the whole local platform (embedded stand-in unless SNOWFLAKE_ACCOUNT or _HOST is set)")
    sub.add_parser("api", help="start the API alone")
    sub.add_parser("dagster", help="start the Dagster code server, webserver and daemon")
    demo = sub.add_parser("demo", help="start the local Snowflake stand-in with demo data alone")
    demo.add_argument("--no-register", action="store_true", help="seed only; do not register the demo tables")
    sub.add_parser("migrate", help="upgrade the control database schema")
    sub.add_parser("status", help="registered tables (freshness, last run, next scheduled run) and which services are up")
    bench = sub.add_parser("bench", help="run every benchmark and write bench/REPORT.md (python -m bench; from a checkout)")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER, help="passed to python -m bench (--quick, --only ...)")
    args = parser.parse_args(argv)
    if args.command == "bench":
        return cmd_bench(args.bench_args)
    _stop_on_signals()
    settings = get_settings()
    log_setup.configure(settings)
    secure_home(settings.home)  # owner-only umask (children inherit it) and existing modes repaired
    if args.command == "status":
        from shared import cli_progress

        return cli_progress.print_status(settings)
    if args.command == "up":
        return cmd_up(settings)
    if args.command == "api":
        return cmd_api(settings)
    if args.command == "dagster":
        return cmd_dagster(settings)
    if args.command == "demo":
        return cmd_demo(settings, register=not args.no_register)
    from shared.control.db import migrate

    migrate(settings.control_url)
    print(f"[agents-data] control database at {settings.control_url.split('@')[-1]} is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
