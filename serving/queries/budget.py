"""The per-swarm daily budget of Snowflake seconds for pushed-down queries.

Why a counter of its own: pushed-down queries cost warehouse time, which DuckDB's limits do
not bound. Each swarm may spend ``LIVE_DAILY_BUDGET_S`` seconds (wall time of its queries
as the API measured them, connection included) per UTC day; past it, pushed-down queries
answer 429 ``live_budget`` until midnight UTC. The admin is not counted. The counter is one
row per swarm and day in the control database (``live_usage``), so every replica sees it;
a query that starts just under the budget may finish past it (it is checked before, added
after).

Its state is reported in the budget headers (``serving/lib/budgets.py``) as
``swarm-snowflake-seconds`` on answers that ran in, or were refused by, Snowflake (``status``).
"""

from __future__ import annotations

import datetime as dt
import math

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from serving.lib.budgets import DAY, Reported
from serving.lib.caller import Caller
from serving.lib.errors import TooManyRequests
from shared.control.db import session_scope
from shared.control.models import LiveUsageRow
from shared.settings import Settings


def _today(now: dt.datetime | None = None) -> tuple[str, int]:
    """(UTC day, seconds until the next one)."""
    now = now or dt.datetime.now(dt.UTC)
    tomorrow = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), dt.UTC)
    return now.date().isoformat(), max(1, int((tomorrow - now).total_seconds()))


def used(settings: Settings, swarm_id: str, day: str) -> float:
    with session_scope(settings.control_url) as s:
        value = s.scalar(select(LiveUsageRow.seconds).where(LiveUsageRow.swarm_id == swarm_id, LiveUsageRow.day == day))
    return float(value or 0.0)


def check(settings: Settings, caller: Caller) -> None:
    """429 ``live_budget`` once the caller's swarm has spent its Snowflake seconds for today."""
    if caller.is_admin or not caller.swarm_id:
        return
    limit = settings.sources.live_daily_budget_s
    day, retry = _today()
    spent = used(settings, caller.swarm_id, day)
    if spent >= limit:
        raise TooManyRequests(
            f"this swarm has used its {limit:g} Snowflake seconds for today ({spent:.1f} s); queries run in "
            "Snowflake are refused until midnight UTC (queries on copied tables are not affected)",
            rule="live_budget",
            details={"budget_s": limit, "used_s": round(spent, 3)},
            headers={"Retry-After": str(retry)},
        )


def status(settings: Settings, caller: Caller) -> Reported | None:
    """The swarm's Snowflake seconds for today, as the budget headers report them (None: not counted)."""
    if caller.is_admin or not caller.swarm_id:
        return None
    limit = settings.sources.live_daily_budget_s
    day, reset = _today()
    spent = used(settings, caller.swarm_id, day)
    return Reported(limit=math.ceil(limit), window_s=DAY, unit="seconds", remaining=math.floor(max(0.0, limit - spent)),
                    reset_s=reset)


def spend(settings: Settings, caller: Caller, seconds: float) -> None:
    """Add one query's seconds to its swarm's counter for today."""
    if caller.is_admin or not caller.swarm_id:
        return
    day, _ = _today()
    with session_scope(settings.control_url) as s:
        insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
        stmt = insert(LiveUsageRow).values(swarm_id=caller.swarm_id, day=day, seconds=seconds, queries=1)
        s.execute(
            stmt.on_conflict_do_update(
                index_elements=["swarm_id", "day"],
                set_={"seconds": LiveUsageRow.seconds + seconds, "queries": LiveUsageRow.queries + 1},
            )
        )
