"""Named readiness checks that features register into ``services``; ``GET /ready`` runs them.

Why a registry: readiness depends on what a process serves (the control database and
served-data folder always, Dagster once the sync feature is in). A feature adds its
check in its ``startup(services)``::

    add_ready_check(services, "dagster", check_dagster, required=False,
                    impact="syncs and refreshes answer 503; reads and queries keep working")

A check is a sync or async callable taking ``services``; it raises (or returns False)
when its dependency is not usable. Sync checks run in a worker thread; every check has
a time limit. Raise :class:`NotReady` with a message that is safe to show publicly; any
other exception is logged and answered only by its type (it may name hosts or paths).

What a failing check means (:func:`readiness`):

- a *required* check (control database, served data) failing makes the replica
  ``not_ready``: ``/ready`` answers 503 so a balancer stops sending it traffic, since it
  cannot serve reads;
- an *optional* check (Dagster) failing makes it ``degraded``: ``/ready`` still answers
  200, because reads and queries keep working; the failing check and its ``impact`` say
  what does not (syncs and refreshes answer 503 until it is back).
"""

from __future__ import annotations

import dataclasses
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
READY, DEGRADED, NOT_READY = "ready", "degraded", "not_ready"
ReadyCheck = Callable[[Services], Any] | Callable[[Services], Awaitable[Any]]
DEFAULT_IMPACT = "the API cannot serve requests"


class NotReady(Exception):
    """A check's failure with a message safe to show in the public ``/ready`` answer."""


@dataclasses.dataclass(frozen=True)
class ReadySpec:
    check: ReadyCheck
    required: bool = True
    impact: str = DEFAULT_IMPACT  # what stops working while the check fails


def ready_checks(services: Services) -> dict[str, ReadySpec]:
    checks: dict[str, ReadySpec] = services.parts.setdefault(READY_CHECKS, {})
    return checks


def add_ready_check(services: Services, name: str, check: ReadyCheck, *, required: bool = True,
                    impact: str | None = None) -> None:
    """Register (or replace) the readiness check ``name``; ``required=False`` only degrades readiness."""
    ready_checks(services)[name] = ReadySpec(check, required, impact or DEFAULT_IMPACT)


async def _run_one(services: Services, name: str, spec: ReadySpec, timeout_s: float) -> dict[str, Any]:
    started = time.perf_counter()
    ok, detail = True, "ok"
    try:
        with anyio.fail_after(timeout_s):
            if inspect.iscoroutinefunction(spec.check):
                result = await spec.check(services)
            else:
                result = await anyio.to_thread.run_sync(spec.check, services, abandon_on_cancel=True)
        if result is False:
            ok, detail = False, "not ready"
    except TimeoutError:
        ok, detail = False, f"no answer within {timeout_s:g} s"
    except NotReady as e:
        if e.__cause__ is not None:
            log.warning("ready check %s failed: %s (%s)", name, e, e.__cause__)
        ok, detail = False, str(e) or "not ready"
    except Exception as e:  # a failing dependency is an answer, not a crash
        # The message may hold internal paths or hosts: it goes to the log, not the answer.
        log.warning("ready check %s failed: %s", name, e)
        ok, detail = False, f"failed ({type(e).__name__}); see the server log"
    return {"name": name, "ok": ok, "required": spec.required, "detail": detail[:300],
            "impact": None if ok else spec.impact,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2)}


async def run_ready_checks(services: Services, timeout_s: float = 3.0) -> list[dict[str, Any]]:
    """Run every registered check concurrently; one result per check, in name order."""
    results: dict[str, dict[str, Any]] = {}
    checks = dict(ready_checks(services))

    async def run(name: str, spec: ReadySpec) -> None:
        results[name] = await _run_one(services, name, spec, timeout_s)

    async with anyio.create_task_group() as tg:
        for name, spec in checks.items():
            tg.start_soon(run, name, spec)
    return [results[n] for n in sorted(results)]


def readiness(results: list[dict[str, Any]]) -> tuple[str, int]:
    """``(status, http_status)``: any required check failing is 503 ``not_ready``; only optional
    ones failing is 200 ``degraded``; all passing is 200 ``ready``."""
    if any(not r["ok"] and r["required"] for r in results):
        return NOT_READY, 503
    if any(not r["ok"] for r in results):
        return DEGRADED, 200
    return READY, 200
