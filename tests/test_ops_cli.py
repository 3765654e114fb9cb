"""What ``agents-data`` shows: live progress of syncs (a bar per table on a terminal, lines otherwise),
and ``agents-data status`` (tables with freshness, last run, next run; services up or down)."""

from __future__ import annotations

import datetime as dt
import io
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from shared import cli_progress, registry, status
from shared.cli_progress import JobProgress
from shared.control.db import migrate
from shared.registry import build_registration
from shared.settings import Settings
from tests.conftest import publish_table

REPO = Path(__file__).resolve().parent.parent


def _script(states: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield from states
    while True:
        yield states[-1]


def _backfill(done: int, status_: str = "running", rows: int | None = None) -> dict[str, Any]:
    days = [f"2025-01-0{d}" for d in range(1, 5)]
    return {"status": status_, "rows": rows, "partitions": {"requested": days, "done": days[:done], "failed": []}}


def test_progress_lines_say_rows_partitions_and_eta_when_not_a_terminal() -> None:
    script = _script([_backfill(0), _backfill(1, rows=100), _backfill(2, rows=200), _backfill(4, "succeeded", 400)])
    run = _script([{"status": "running", "partitions": {"requested": []}},
                   {"status": "succeeded", "rows": 7, "partitions": {"requested": []}}])
    feeds: Mapping[str, Iterator[dict[str, Any]]] = {"b1": script, "r1": run}
    jobs = [JobProgress("demo.public.orders", "b1"), JobProgress("demo.public.customers", "r1")]
    out = io.StringIO()
    ok = cli_progress.watch_jobs(jobs, lambda job_id: next(feeds[job_id]), out=out, tty=False, poll_s=0.0,
                                 line_every_s=0.0)
    assert ok
    lines = out.getvalue().splitlines()
    assert "[agents-data] sync demo.public.orders: running, 1/4 partitions, 100 rows," in lines[2]
    assert "ETA" in lines[2]
    assert "ETA unknown" in lines[0]
    assert lines[-2].startswith("[agents-data] sync demo.public.orders: succeeded, 4/4 partitions, 400 rows")
    assert lines[-1].startswith("[agents-data] sync demo.public.customers: succeeded, 1/1 partitions, 7 rows")
    assert "\x1b[" not in out.getvalue()


def test_a_terminal_gets_one_bar_per_table_redrawn_in_place() -> None:
    script = _script([_backfill(2, rows=50), _backfill(4, "failed", 90)])
    jobs = [JobProgress("demo.public.orders", "b1")]
    out = io.StringIO()
    ok = cli_progress.watch_jobs(jobs, lambda _: next(script), out=out, tty=True, poll_s=0.0)
    assert not ok
    text = out.getvalue()
    assert f"[{'#' * 12}{'.' * 12}] demo.public.orders: running, 2/4 partitions, 50 rows" in text
    assert "\x1b[1F" in text  # the second draw goes back over the first
    assert f"[{'#' * 24}] demo.public.orders: failed, 4/4 partitions, 90 rows" in text


def test_an_unreadable_job_is_retried_and_a_timeout_ends_the_watch() -> None:
    jobs = [JobProgress("t", "j")]
    assert not cli_progress.watch_jobs(jobs, lambda _: None, out=io.StringIO(), tty=False, poll_s=0.0,
                                       timeout_s=0.0)
    assert jobs[0].status == "launching"


def test_status_rows_show_freshness_last_run_and_next_run(settings: Settings) -> None:
    migrate(settings.control_url)
    reg = build_registration({"table_name": "orders", "schema_name": "public", "freshness": "1h"},
                             default_database="demo")
    registry.save(settings.control_url, reg)
    never = build_registration({"table_name": "customers", "schema_name": "public"}, default_database="demo")
    registry.save(settings.control_url, never)
    manifest = publish_table(settings.served_path, reg.key, "SELECT range AS id FROM range(3)")
    status.record_success(settings.control_url, reg.key, manifest, "run-1")
    now = dt.datetime.now(dt.UTC)
    tick = (now + dt.timedelta(minutes=30)).timestamp()
    rows = {r["table"]: r for r in cli_progress.status_rows(settings, now=now,
                                                             ticks={"demo__public__orders_schedule": tick})}
    orders, customers = rows["demo.public.orders"], rows["demo.public.customers"]
    assert (orders["freshness"], orders["rows"]) == ("fresh", "3")
    assert orders["last run"].startswith("succeeded (")
    assert orders["next run"] == dt.datetime.fromtimestamp(tick, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    assert (customers["freshness"], customers["last run"], customers["next run"]) == ("stale", "never", "not scheduled")


def test_agents_data_status_lists_tables_and_services(settings: Settings, tmp_path: Path) -> None:
    migrate(settings.control_url)
    registry.save(settings.control_url, build_registration({"table_name": "orders", "schema_name": "public"},
                                                           default_database="demo"))
    from shared.processes import free_port

    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("API_", "DAGSTER_", "DATABASE_URL"))},
           "AGENTS_DATA_HOME": settings.home, "DATABASE_URL": settings.control_url, "API_PORT": str(free_port()),
           "DAGSTER_WEBSERVER_PORT": str(free_port()), "DAGSTER_CODE_SERVER_PORT": str(free_port()),
           "SNOWFLAKE_ACCOUNT": "acct"}
    done = subprocess.run([sys.executable, "-m", "shared.cli", "status"], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stderr  # nothing is running
    out = done.stdout
    assert "demo.public.orders" in out
    assert "unknown (Dagster not reachable)" in out
    services = dict(line.split() for line in out.split("SERVICE", 1)[1].splitlines()[1:] if line.strip())
    assert services == {"api": "down", "dagster-webserver": "down", "dagster-code-server": "down", "control-db": "up"}
