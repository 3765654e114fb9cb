"""Where two features meet: hooks one feature registers at start-up and another calls.

Why hooks and not imports: features never import each other (``tests/test_layering.py``).
When the query feature needs the sync feature ("wait until these tables are fresh") or the
catalog needs Dagster's own freshness verdict, the artifacts feature saves a query job's
result, or the admin feature checks a grant's row filter with the SQL guard, the serving
feature registers the function in its ``startup`` and the caller looks it up here. A hook that nobody registered means its
feature is not started: waiting for freshness then fails loudly, while the catalog simply
leaves Dagster's verdict out.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from serving.lib.caller import Caller
from serving.lib.services import Services
from shared.control.models import QueryJobRow

# (services, caller, table keys, min_freshness_s, wait_s): returns once every table is fresh enough.
WaitForFresh = Callable[[Services, Caller, Sequence[str], float, float], Awaitable[Any]]
WAIT_FOR_FRESH = "hook_wait_for_fresh"
# (services, caller, job id) -> the finished job and its result file (404 not the caller's, 409 running, 410 expired)
JobResult = Callable[[Services, Caller, str], tuple[QueryJobRow, Path]]
JOB_RESULT = "hook_job_result"
# The sync feature's Dagster client lives under this key (tests inject a fake there); the
# catalog reads Dagster's own freshness verdict through it, as a ``FreshnessSource``.
ORCHESTRATOR = "dagster"


class FreshnessSource(Protocol):
    async def freshness_statuses(self, paths: Sequence[Sequence[str]], *, timeout_s: float | None = None
                                 ) -> dict[tuple[str, ...], str | None]:
        """Dagster's freshness status per asset path (database, schema, table)."""


def provide_wait_for_fresh(services: Services, hook: WaitForFresh) -> None:
    services.parts[WAIT_FOR_FRESH] = hook


def wait_for_fresh(services: Services) -> WaitForFresh:
    hook: WaitForFresh | None = services.parts.get(WAIT_FOR_FRESH)
    if hook is None:
        raise RuntimeError("no feature serves waiting for fresh tables (the sync feature is not started)")
    return hook


def provide_job_result(services: Services, hook: JobResult) -> None:
    services.parts[JOB_RESULT] = hook


def job_result(services: Services) -> JobResult:
    hook: JobResult | None = services.parts.get(JOB_RESULT)
    if hook is None:
        raise RuntimeError("no feature serves query job results (the queries feature is not started)")
    return hook


def freshness_source(services: Services) -> FreshnessSource | None:
    """The orchestrator's freshness lookup, or None when the sync feature has no client."""
    source: FreshnessSource | None = services.parts.get(ORCHESTRATOR)
    return source
