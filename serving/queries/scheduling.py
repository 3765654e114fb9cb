"""Where a query runs: always on a worker thread, through the FIFO short lane or freely.

Agent SQL never runs on the event loop. An earlier version ran query texts it had
learned were fast inline on the loop, but speed belongs to a (text, parameters) pair and
to the data, not to the text: the same text with other parameters froze every request
of the process for seconds. A thread hop costs 60-200 µs on 2 cores (more when loaded),
a small part of a point query's HTTP round trip; see the README's isolation figures.

What this replica still learns, per guarded query text:
- short lane: a query whose best run took at most ``SHORT_S`` runs through a FIFO lane
  of ``SHORT_SLOTS`` (about one per core), so short queries finish in arrival order
  (processor sharing doubled their median latency at 16 concurrent requests). A query
  that overstays ``SHORT_S`` gives its slot back (it keeps running), so one that
  turns out long (other parameters) never holds back the others, and a query waits at
  most ``LANE_WAIT_S`` for a slot before it runs without one: a lane clogged by queries
  that only looked short (one agent's bombs) cannot delay other agents by more.
- anything else (unknown or long) runs on a worker at once and shares the CPU.
- cost: a text is *cheap* when it is short and none of its runs in the last ``HEAVY_FOR_S``
  both ran past ``SHORT_S`` and used more than ``HEAVY_CPU_S`` of its thread's CPU (the CPU
  of building a DuckDB instance is not the query's: a first run after a swap would otherwise
  mark every point query heavy).
  A query of a text not known cheap waits for a place for heavy work
  (``serving/lib/admission.py``). With ``QUERY_PRIORITIES`` only cheap
  queries run at the event loop's CPU priority; the rest start on batch threads a few nice
  levels lower (``JobManager``). CPU time, not wall time, marks a run heavy: a point query
  slowed down by a busy machine stays cheap, while a text learned fast with small
  parameters and then run with huge ones is batch work for its next runs, from any agent.

The best (not the last) duration classifies a text: runs slowed down by a busy machine
say nothing about the query itself. Workers are plentiful (``WORKERS``): a worker blocked
in a long DuckDB query costs little, and per-agent slots, not the pool, bound how many run.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator

from serving.queries.watchdog import Watchdog

SHORT_S = 0.25  # a query whose best run took at most this long goes through the FIFO short lane
SHORT_SLOTS = max(2, os.cpu_count() or 2)
LANE_WAIT_S = 0.02  # longest wait for a short-lane slot; then the query runs without one
WORKERS = 128  # query worker threads of one process
HEAVY_CPU_S = 0.05  # a run using more of its thread's CPU than this makes its text batch work ...
HEAVY_FOR_S = 60.0  # ... for this long
_ENTRIES = 10_000


class Speed:
    """What this replica learned about one query text."""

    __slots__ = ("best_s", "heavy_at", "runs")

    def __init__(self) -> None:
        self.runs, self.best_s, self.heavy_at = 0, float("inf"), float("-inf")


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
    """The per-replica memory of query speeds and the short lane."""

    def __init__(self, watchdog: Watchdog, *, slots: int = SHORT_SLOTS) -> None:
        self.speeds: dict[str, Speed] = {}  # keyed by the rewritten SQL
        self._lane = threading.Semaphore(slots)
        self._watchdog = watchdog
        self.stats = {"worker": 0, "short_lane": 0}

    def is_short(self, sql: str | None) -> bool:
        speed = self.speeds.get(sql) if sql is not None else None
        return speed is not None and speed.best_s <= SHORT_S

    def is_cheap(self, sql: str | None) -> bool:
        """Short, and no run of the text used much CPU lately: may run at the event loop's priority."""
        speed = self.speeds.get(sql) if sql is not None else None
        return (speed is not None and speed.best_s <= SHORT_S
                and time.monotonic() - speed.heavy_at > HEAVY_FOR_S)

    def _speed(self, sql: str) -> Speed:
        speed = self.speeds.get(sql)
        if speed is None:
            if len(self.speeds) >= _ENTRIES:
                self.speeds.clear()
            speed = self.speeds[sql] = Speed()
        return speed

    def record(self, sql: str, seconds: float) -> None:
        """Learn from one finished run (slow runs change nothing but the count)."""
        speed = self._speed(sql)
        speed.runs += 1
        speed.best_s = min(speed.best_s, seconds)

    def record_cost(self, sql: str, cpu_s: float, wall_s: float) -> None:
        """Learn from the CPU one run (finished, failed or stopped) used on its thread, and how long it took.

        Only a run both long (past ``SHORT_S``) and CPU-heavy marks its text: a point query
        that re-reads blocks other agents' work pushed out of the buffer pool may spend 70 ms
        of CPU and still finish fast, and marking it would queue it behind those agents' bombs."""
        if cpu_s > HEAVY_CPU_S and wall_s > SHORT_S:
            self._speed(sql).heavy_at = time.monotonic()

    @contextlib.contextmanager
    def lane(self, short: bool) -> Iterator[None]:
        """Hold a FIFO short-lane slot for the block when ``short``; otherwise run at once."""
        self.stats["worker"] += 1
        if not short:
            yield
            return
        if not self._lane.acquire(timeout=LANE_WAIT_S):
            yield
            return
        self.stats["short_lane"] += 1
        ticket = _Ticket(self._lane)
        entry = self._watchdog.arm(SHORT_S, ticket)
        try:
            yield
        finally:
            self._watchdog.disarm(entry)
            ticket.expire()
