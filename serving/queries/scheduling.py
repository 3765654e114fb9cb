"""Where a query runs: inline on the event loop, through the FIFO short lane, or freely on a worker.

Why (measured on 2 cores; see bench/serving.py): a thread hop costs 60-200 µs (more on a
loaded machine), most of a ~1 ms point query; and at 16 concurrent requests processor
sharing doubles the median latency of short queries compared with running them in
arrival order, for the same throughput. So this replica learns, per guarded query text:

- inline: a JSON query text that ran ``INLINE_AFTER`` times, at best within
  ``INLINE_FAST_S``, runs on the event loop itself, like a bare ASGI app would. The
  inline run has a time limit (``INLINE_BUDGET_S``): a query that turns out slow is
  interrupted and re-run on a worker; its text then stays on workers for
  ``INLINE_BAN_S``. If the re-run confirms the query is slow (not just a busy machine),
  the token gets a strike, and ``STRIKES`` strikes within ``STRIKE_WINDOW_S`` cost it
  the inline path for that window. A caller can thus stall the loop for at most
  ``STRIKES × INLINE_BUDGET_S`` per window, even on purpose.
- short lane: a query whose best run took at most ``SHORT_S`` runs on a worker through a
  FIFO lane of ``SHORT_SLOTS`` (about one per core), so short queries finish in arrival
  order. A query that overstays ``4 × SHORT_S`` gives its slot back (it keeps running),
  so one that turns out long never holds back the others.
- anything else (unknown or long) runs on a worker at once and shares the CPU.

The best (not the last) duration classifies a text: runs slowed down by a busy machine
say nothing about the query itself.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator

from serving.queries.watchdog import Watchdog

INLINE_AFTER = 3  # runs on a worker before a query text may run inline
INLINE_FAST_S = 0.010  # ... and its best run must have been at most this long
INLINE_BUDGET_S = 0.100  # time limit of an inline run before it is moved to a worker
INLINE_BAN_S = 1.0  # a text interrupted inline stays on workers this long
STRIKES, STRIKE_WINDOW_S = 3, 60.0  # inline interruptions that cost a token the inline path, and for how long
SHORT_S = 0.25  # a query whose best run took at most this long goes through the FIFO short lane
SHORT_SLOTS = max(2, os.cpu_count() or 2)
_ENTRIES = 10_000


class Speed:
    """What this replica learned about one query text."""

    __slots__ = ("banned_until", "best_s", "runs")

    def __init__(self) -> None:
        self.runs, self.banned_until, self.best_s = 0, 0.0, float("inf")


class _Ticket:
    """One held lane slot; released once, at the end or when the query overstays."""

    def __init__(self, sem: threading.Semaphore) -> None:
        self._sem, self._lock, self._held = sem, threading.Lock(), True

    def expire(self) -> None:
        with self._lock:
            if self._held:
                self._held = False
                self._sem.release()


class Scheduler:
    """The per-replica memory of query speeds, the short lane, and per-token strikes."""

    def __init__(self, watchdog: Watchdog, *, slots: int = SHORT_SLOTS) -> None:
        self.speeds: dict[str, Speed] = {}  # keyed by the rewritten SQL
        self._strikes: dict[str, list[float]] = {}  # token -> monotonic times of inline interruptions
        self._lane = threading.Semaphore(slots)
        self._watchdog = watchdog
        self.stats = {"inline": 0, "inline_interrupted": 0, "worker": 0, "short_lane": 0}

    def inline_ok(self, sql: str, owner: str | None) -> bool:
        speed = self.speeds.get(sql)
        if speed is None or speed.runs < INLINE_AFTER or speed.best_s > INLINE_FAST_S:
            return False
        now = time.monotonic()
        strikes = self._strikes.get(owner or "")
        if strikes and len([t for t in strikes if now - t < STRIKE_WINDOW_S]) >= STRIKES:
            return False
        return speed.banned_until <= now

    def is_short(self, sql: str | None) -> bool:
        speed = self.speeds.get(sql) if sql is not None else None
        return speed is not None and speed.best_s <= SHORT_S

    def record(self, sql: str, seconds: float) -> None:
        """Learn from one finished run (slow runs change nothing but the count)."""
        speed = self.speeds.get(sql)
        if speed is None:
            if len(self.speeds) >= _ENTRIES:
                self.speeds.clear()
            speed = self.speeds[sql] = Speed()
        speed.runs += 1
        speed.best_s = min(speed.best_s, seconds)

    def interrupted(self, sql: str) -> None:
        """An inline run hit its budget: the text stays on workers for a while."""
        speed = self.speeds.setdefault(sql, Speed())
        speed.banned_until = time.monotonic() + INLINE_BAN_S
        self.stats["inline_interrupted"] += 1

    def strike(self, owner: str | None) -> None:
        """The worker re-run of an interrupted inline query was slow too: count it against the token."""
        now = time.monotonic()
        strikes = self._strikes.setdefault(owner or "", [])
        strikes[:] = [t for t in strikes if now - t < STRIKE_WINDOW_S] + [now]
        if len(self._strikes) > _ENTRIES:
            self._strikes.clear()

    @contextlib.contextmanager
    def lane(self, short: bool) -> Iterator[None]:
        """Hold a FIFO short-lane slot for the block when ``short``; otherwise run at once."""
        self.stats["worker"] += 1
        if not short:
            yield
            return
        self.stats["short_lane"] += 1
        self._lane.acquire()
        ticket = _Ticket(self._lane)
        entry = self._watchdog.arm(4 * SHORT_S, ticket)
        try:
            yield
        finally:
            self._watchdog.disarm(entry)
            ticket.expire()
