"""What ``agents-data`` shows people: live progress of the first syncs, and ``agents-data status``.

Why here and not in the API: the CLI already starts and supervises the platform; it reads
the same sources an operator would (the API's sync jobs, the control database, Dagster's
GraphQL API, the services' health URLs), so what it prints is what is really there.

- :func:`watch_jobs` follows sync jobs through ``GET /api/v1/sync/jobs/{id}`` until they end:
  on a terminal a progress bar per table, redrawn in place; otherwise one line per table
  every ``LINE_EVERY_S``. Each shows rows copied, partitions done out of total and an ETA
  (time so far per partition, times the partitions left).
- :func:`status_rows` / :func:`print_status`: every registered table with its freshness,
  last run and next scheduled run, and which services answer.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from shared.dagster_names import UI_PATH_PREFIX
from shared.settings import Settings

TERMINAL = ("succeeded", "failed", "canceled")
POLL_S = 2.0
LINE_EVERY_S = 10.0
BAR_WIDTH = 24


@dataclasses.dataclass
class JobProgress:
    """One sync job as the CLI shows it."""

    table: str
    job_id: str
    status: str = "launching"
    done: int = 0
    total: int = 0
    rows: int | None = None
    started: float = dataclasses.field(default_factory=time.monotonic)
    ended: float | None = None

    def update(self, body: Mapping[str, Any]) -> None:
        self.status = str(body.get("status") or self.status)
        parts = body.get("partitions") or {}
        requested = len(parts.get("requested") or [])
        self.total = requested or 1  # a whole-table run is one unit of work
        finished = len(parts.get("done") or []) + len(parts.get("failed") or [])
        self.done = finished if requested else (1 if self.status in TERMINAL else 0)
        self.rows = body.get("rows") if body.get("rows") is not None else self.rows
        if self.status in TERMINAL and self.ended is None:
            self.ended = time.monotonic()

    @property
    def elapsed_s(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    @property
    def eta_s(self) -> float | None:
        """Time so far per finished unit times the units left (None until one is done)."""
        if self.status in TERMINAL:
            return 0.0
        if not self.done:
            return None
        return self.elapsed_s / self.done * (self.total - self.done)

    def line(self) -> str:
        rows = f"{self.rows:,} rows" if self.rows is not None else "rows: -"
        eta = "" if self.status in TERMINAL else (f", ETA {_duration(self.eta_s)}" if self.eta_s is not None
                                                  else ", ETA unknown")
        return (f"{self.table}: {self.status}, {self.done}/{self.total} partitions, {rows}, "
                f"{_duration(self.elapsed_s)} so far{eta}")

    def bar(self) -> str:
        filled = int(BAR_WIDTH * self.done / self.total) if self.total else 0
        return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self.line()}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = round(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


Fetch = Callable[[str], Mapping[str, Any] | None]


def watch_jobs(jobs: Sequence[JobProgress], fetch: Fetch, *, out: IO[str] | None = None, tty: bool | None = None,
               timeout_s: float = 3600.0, poll_s: float = POLL_S, line_every_s: float = LINE_EVERY_S) -> bool:
    """Follow ``jobs`` until each has ended (or ``timeout_s``); True when all succeeded.

    ``fetch(job_id)`` returns the job's status document (None when it could not be read this time).
    """
    out = out or sys.stdout
    tty = out.isatty() if tty is None else tty
    deadline = time.monotonic() + timeout_s
    last_lines = 0.0
    drawn = 0
    while True:
        for job in jobs:
            if job.status not in TERMINAL:
                body = fetch(job.job_id)
                if body is not None:
                    job.update(body)
        finished = all(j.status in TERMINAL for j in jobs)
        now = time.monotonic()
        if tty:
            if drawn:
                out.write(f"\x1b[{drawn}F")  # back to the first bar
            for job in jobs:
                out.write("\x1b[2K" + job.bar() + "\n")
            drawn = len(jobs)
            out.flush()
        elif finished or now - last_lines >= line_every_s:
            for job in jobs:
                out.write(f"[agents-data] sync {job.line()}\n")
            out.flush()
            last_lines = now
        if finished or now > deadline:
            return all(j.status == "succeeded" for j in jobs)
        time.sleep(poll_s)


# ----------------------------------------------------------------------------- status
def _http_ok(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 - loopback URLs we built
            return bool(resp.status < 500)
    except Exception:
        return False


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def services(settings: Settings) -> dict[str, bool]:
    """Which parts of the platform answer now."""
    host = settings.api.host if settings.api.host not in ("0.0.0.0", "::", "") else "127.0.0.1"  # noqa: S104
    webserver = f"http://127.0.0.1:{settings.dagster.webserver_port}{UI_PATH_PREFIX}"
    up = {
        "api": _http_ok(f"http://{host}:{settings.api.port}/health"),
        "dagster-webserver": _http_ok(f"{webserver}/server_info"),
        "dagster-code-server": _port_open(settings.dagster.code_server_port),
        "control-db": _control_db_ok(settings),
    }
    if settings.snowflake.embedded or settings.snowflake.host in ("127.0.0.1", "localhost"):
        port = settings.snowflake.port or settings.demo.port
        up["snowflake-stand-in"] = _port_open(port)
    return up


def _control_db_ok(settings: Settings) -> bool:
    try:
        import sqlalchemy as sa

        from shared.control.db import get_engine

        with get_engine(settings.control_url).connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except Exception:
        return False


def next_ticks(settings: Settings, timeout_s: float = 5.0) -> dict[str, float]:
    """Next tick (epoch seconds) of every running schedule, by schedule name, from Dagster ({} when down)."""
    import httpx

    query = """
    query Next($loc: String!) {
      repositoryOrError(repositorySelector: {repositoryLocationName: $loc, repositoryName: "__repository__"}) {
        ... on Repository { schedules { name scheduleState { status } futureTicks(limit: 1) { results { timestamp } } } }
      }
    }"""
    url = f"http://127.0.0.1:{settings.dagster.webserver_port}{UI_PATH_PREFIX}/graphql"
    try:
        r = httpx.post(url, json={"query": query, "variables": {"loc": settings.dagster.location_name}},
                       timeout=timeout_s)
        repo = (r.json().get("data") or {}).get("repositoryOrError") or {}
    except Exception:
        return {}
    out: dict[str, float] = {}
    for sched in repo.get("schedules") or []:
        if (sched.get("scheduleState") or {}).get("status") != "RUNNING":
            continue
        results = (sched.get("futureTicks") or {}).get("results") or []
        if results:
            out[sched["name"]] = float(results[0]["timestamp"])
    return out


def _schedule_name(key: str) -> str:
    """The Dagster schedule name of a table (``orchestration.schedules.schedule_name``, for ordinary keys)."""
    return "__".join(key.split(".")) + "_schedule"


def status_rows(settings: Settings, *, now: dt.datetime | None = None,
                ticks: Mapping[str, float] | None = None) -> list[dict[str, str]]:
    """One row per registered table: freshness, last run, next scheduled run."""
    from shared import partitions, registry, served, status

    now = now or dt.datetime.now(dt.UTC)
    tables = registry.list_registered(settings.control_url)
    rows = status.read(settings.control_url, [t.key for t in tables])
    ticks = next_ticks(settings) if ticks is None else ticks
    out = []
    for reg in tables:
        row = rows.get(reg.key)
        manifest = served.read_current(settings.served_path, reg.key)
        fresh = status.freshness(manifest, row, reg.freshness_s, now, **partitions.freshness_coverage(
            reg, manifest, now))
        when = row.last_success_at if row and row.last_success_at else None
        if row and row.last_failure_at and (when is None or row.last_failure_at > when):
            when = row.last_failure_at
        last = f"{status.run_status(row) or '-'} {_ago(now, when)}" if row and when else "never"
        tick = ticks.get(_schedule_name(reg.key))
        nxt = (dt.datetime.fromtimestamp(tick, dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if tick
               else ("not scheduled" if ticks else "unknown (Dagster not reachable)"))
        out.append({"table": reg.key, "freshness": str(fresh["status"]),
                    "rows": f"{manifest.row_count:,}" if manifest else "-", "last run": last, "next run": nxt})
    return out


def _ago(now: dt.datetime, when: dt.datetime) -> str:
    return f"({_duration((now - when).total_seconds())} ago)"


def format_table(rows: Sequence[Mapping[str, str]], columns: Sequence[str]) -> str:
    widths = {c: max([len(c), *(len(r.get(c, "")) for r in rows)]) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += ["  ".join(r.get(c, "").ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def print_status(settings: Settings, out: IO[str] | None = None) -> int:
    """``agents-data status``: tables, then services. Exit code 0 when the API and Dagster answer."""
    out = out or sys.stdout
    up = services(settings)
    rows = status_rows(settings) if up["control-db"] else []
    if rows:
        out.write(format_table(rows, ["table", "freshness", "rows", "last run", "next run"]) + "\n\n")
    elif up["control-db"]:
        out.write("no registered tables\n\n")
    out.write(format_table([{"service": k, "state": "up" if v else "down"} for k, v in up.items()],
                           ["service", "state"]) + "\n")
    out.flush()
    return 0 if up["api"] and up["dagster-webserver"] else 1
