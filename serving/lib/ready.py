"""Named readiness checks that features register into ``services``; ``GET /ready`` runs them.

Why a registry: readiness depends on what a process serves (the control database and
served-data folder always, Dagster once the sync feature is in). A feature adds its
check in its ``startup(services)``::

    add_ready_check(services, "dagster", check_dagster)

A check is a sync or async callable taking ``services``; it raises (or returns False)
when not ready. Sync checks run in a worker thread; every check has a time limit.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.to_thread

from serving.lib.services import Services

log = logging.getLogger("agents_data.api")

READY_CHECKS = "ready_checks"
ReadyCheck = Callable[[Services], Any] | Callable[[Services], Awaitable[Any]]


def ready_checks(services: Services) -> dict[str, ReadyCheck]:
    checks: dict[str, ReadyCheck] = services.parts.setdefault(READY_CHECKS, {})
    return checks


def add_ready_check(services: Services, name: str, check: ReadyCheck) -> None:
    """Register (or replace) the readiness check ``name``."""
    ready_checks(services)[name] = check


async def _run_one(services: Services, name: str, check: ReadyCheck, timeout_s: float) -> dict[str, Any]:
    started = time.perf_counter()
    ok, detail = True, "ok"
    try:
        with anyio.fail_after(timeout_s):
            if inspect.iscoroutinefunction(check):
                result = await check(services)
            else:
                result = await anyio.to_thread.run_sync(check, services, abandon_on_cancel=True)
        if result is False:
            ok, detail = False, "not ready"
    except TimeoutError:
        ok, detail = False, f"no answer within {timeout_s:g} s"
    except Exception as e:  # a failing dependency is an answer, not a crash
        # The message may hold internal paths or hosts: it goes to the log, not the answer.
        log.warning("ready check %s failed: %s", name, e)
        ok, detail = False, f"failed ({type(e).__name__}); see the server log"
    return {"name": name, "ok": ok, "detail": detail[:300], "duration_ms": round((time.perf_counter() - started) * 1000, 2)}


async def run_ready_checks(services: Services, timeout_s: float = 3.0) -> list[dict[str, Any]]:
    """Run every registered check concurrently; one result per check, in name order."""
    results: dict[str, dict[str, Any]] = {}
    checks = dict(ready_checks(services))

    async def run(name: str, check: ReadyCheck) -> None:
        results[name] = await _run_one(services, name, check, timeout_s)

    async with anyio.create_task_group() as tg:
        for name, check in checks.items():
            tg.start_soon(run, name, check)
    return [results[n] for n in sorted(results)]
