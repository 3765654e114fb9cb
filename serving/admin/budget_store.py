"""Budgets of swarms and agent tokens as the admin sets them, and what was used of them.

The counting itself is the process-wide budget service (``serving/lib/budgets.py``); this
module only reads and writes the ``budgets`` rows and reads the current windows' usage.
"""

from __future__ import annotations

import datetime as dt
import time

from sqlalchemy import select

from serving.admin.schemas import Budget, BudgetSet, BudgetUsage
from serving.lib.budgets import KINDS
from serving.lib.counters import Counter, usage
from serving.lib.errors import NotFound
from shared.control.db import session_scope
from shared.control.models import BudgetRow, SwarmRow, TokenRow, utcnow


def subject_of(url: str, subject_type: str, subject_id: str) -> str:
    """The budget subject of a swarm or agent token, or 404 when there is no such swarm or agent token."""
    with session_scope(url) as s:
        if subject_type == "swarm":
            if s.get(SwarmRow, subject_id) is None:
                raise NotFound(f"no swarm {subject_id!r}")
        else:
            token = s.get(TokenRow, subject_id)
            if token is None or token.type != "agent":
                raise NotFound(f"no agent token {subject_id!r}", details={"hint": "budgets are set per swarm or per agent token"})
    return f"{subject_type}:{subject_id}"


def set_budget(url: str, subject_type: str, subject_id: str, data: BudgetSet) -> Budget:
    subject = subject_of(url, subject_type, subject_id)
    with session_scope(url) as s:
        row = s.get(BudgetRow, subject) or BudgetRow(subject=subject)
        for field, *_ in KINDS.values():
            setattr(row, field, getattr(data, field))
        row.updated_at = utcnow()
        s.add(row)
    return get_budget(url, subject_type, subject_id)


def get_budget(url: str, subject_type: str, subject_id: str) -> Budget:
    subject = subject_of(url, subject_type, subject_id)
    with session_scope(url) as s:
        row = s.execute(select(BudgetRow).where(BudgetRow.subject == subject)).scalar_one_or_none()
    limits = {field: getattr(row, field) if row is not None else None for field, *_ in KINDS.values()}
    now = time.time()
    counters = {kind: Counter(subject, kind, window) for kind, (_, window, *_) in KINDS.items()}
    used = usage(url, counters.values(), now=now)
    items = []
    for kind, counter in counters.items():
        limit = limits[KINDS[kind][0]]
        n = used[counter]
        items.append(
            BudgetUsage(
                kind=kind,  # type: ignore[arg-type]  # one of KINDS
                used=n,
                limit=limit,
                remaining=None if limit is None else max(0, limit - n),
                window_s=counter.window_s,
                resets_at=dt.datetime.fromtimestamp(counter.start(now) + counter.window_s, dt.UTC),
            )
        )
    return Budget(
        subject_type=subject_type,  # type: ignore[arg-type]  # "swarm" or "agent", from the route
        subject_id=subject_id,
        usage=items,
        updated_at=row.updated_at if row is not None else None,
        **limits,
    )
