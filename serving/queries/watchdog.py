"""One thread that interrupts DuckDB cursors at their deadline, guards process memory, and cancel handles.

Why one polling thread with a heap and not a ``threading.Timer`` per query: starting a
thread costs ~100 µs, more than a whole point query's budget; arming an entry here costs
a heap push and never wakes the thread (waking it on every query meant a GIL hand-off
per query). The thread polls every ``GRANULARITY_S`` (50 ms), so deadlines fire within
that much of their time; polling faster cost measurable CPU at 16 concurrent requests,
since every wake-up takes the GIL from the event loop.

``cursor.interrupt()`` from another thread stops a runaway query in ~0.5 s and leaves
the cursor usable (measured, duckdb 2.0.1), but DuckDB only looks at the flag between
chunks of work: a query inside one long function call (a huge ``repeat``) sees it late,
and an interrupt can land while a query is between phases. So a handle past its
deadline is interrupted again every ``REPEAT_S`` until its query has stopped.

The same thread guards the process's memory (``MemoryGuard``): DuckDB's
``memory_limit`` only covers what its buffer manager accounts for, and some functions
build large intermediates outside it. When the process's RSS passes its budget, one query
is interrupted (then the next, one per ``MEMORY_STEP_S``) until RSS is back under it;
freed heap is handed back to the system (``malloc_trim``). The victim is a query of the
party (swarm) running the most queries in the process, its longest-running one: the
memory is most likely theirs, and choosing by age alone let a swarm that floods the
process with big queries have another swarm's one long query stopped first.
It also runs periodic maintenance (closing idle DuckDB instances).

Priorities: a query still running after ``DEMOTE_AFTER_S`` has its thread's CPU priority
lowered (``nice`` + ``DEMOTE_NICE``, Linux per-thread; with ``QUERY_PRIORITIES`` to the batch
threads' level instead, where all other agent work already runs: a thread far below the
others that holds the GIL when the event loop wants it gets the CPU rarely, and the loop
waits for it, so agent work shares one level). On a machine shared with a few
agents' heavy queries, the event loop (``/health``, HTTP parsing, answering on time) and
short queries then get the CPU first; the heavy query still gets whatever is left. The
thread restores the priority it had before (a batch thread's stays below the loop's) when
the query ends where the process may (otherwise it
keeps the lower one: fairness among queries is unchanged, the loop still comes first).
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from serving.lib.limits import batch_level

log = logging.getLogger("agents_data.queries")
GRANULARITY_S = 0.05
REPEAT_S = 0.25  # a query past its deadline is interrupted again this often until it stops
MEMORY_STEP_S = 0.25  # at most one more query is interrupted for memory this often
DEMOTE_AFTER_S = 0.2  # a query running longer than this yields the CPU to short work
DEMOTE_NICE = 10
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class Handle:
    """Cancel token of one execution: ``cancel()`` interrupts the running cursor, if any.

    ``reason`` says why it was interrupted (``timeout``, ``memory`` or ``cancelled``), so
    the engine answers the right error; ``started`` orders running queries for the
    memory guard.
    """

    def __init__(self) -> None:
        self.cancelled = False
        self.timed_out = False
        self.memory = False
        self.started = 0.0
        self.owner = ""  # whose query (its swarm; the token without one): the memory guard's first criterion
        self.tid = 0  # native id of the thread running the query
        self.demoted = False
        self._nice_before = 0  # the running thread's nice value before the demotion
        self.wants_progress = False  # an asynchronous job: run on a cursor that reports DuckDB's progress
        self.setup_cpu_s = 0.0  # CPU its thread spent building an instance and taking a cursor, not running SQL
        self._reports_progress = False
        self._cursor: Any = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._cursor is not None

    def attach(self, cursor: Any, *, reports_progress: bool = False) -> None:
        with self._lock:
            self._cursor = cursor
            self._reports_progress = reports_progress
            self.started = time.monotonic()
            self.tid = threading.get_native_id()
            if self.cancelled:
                _interrupt(cursor)

    def detach(self) -> None:
        """Called by the thread that ran the query: it stops being tracked and gets its priority back."""
        with self._lock:
            self._cursor = None
            demoted, self.demoted = self.demoted, False
        if demoted:
            _restore_priority(self._nice_before)

    def progress(self) -> float | None:
        """DuckDB's progress of the running query, 0 to 1; None when it cannot tell (not running, no
        progress cursor, or DuckDB has no estimate yet)."""
        with self._lock:
            if self._cursor is None or not self._reports_progress:
                return None
            try:
                percent = float(self._cursor.query_progress())
            except Exception:
                return None
        return None if percent < 0 else min(1.0, percent / 100.0)

    def demote(self, *, to_batch: bool = False) -> None:
        """Lower the CPU priority of the thread running this query (once): ``DEMOTE_NICE`` levels, or
        with ``to_batch`` to the batch threads' level (never higher than it is)."""
        with self._lock:
            if self._cursor is None or self.demoted:
                return
            self.demoted = True
            with contextlib.suppress(OSError, AttributeError):
                self._nice_before = os.getpriority(os.PRIO_PROCESS, self.tid)
                target = max(self._nice_before, batch_level()) if to_batch else self._nice_before + DEMOTE_NICE
                os.setpriority(os.PRIO_PROCESS, self.tid, target)

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            if self._cursor is not None:
                _interrupt(self._cursor)

    def expire(self) -> bool:
        """Called by the watchdog at the deadline (and again until the query stops): True to be called again."""
        with self._lock:
            if self._cursor is None or self.cancelled:
                return False
            self.timed_out = True
            _interrupt(self._cursor)
            return True

    def out_of_memory(self) -> bool:
        """Called by the memory guard: interrupt and say why. False if the query had already stopped."""
        with self._lock:
            if self._cursor is None:
                return False
            self.memory = True
            _interrupt(self._cursor)
            return True


def _restore_priority(nice: int) -> None:
    """Back to the thread's own level (a batch thread stays below the event loop), where the process may."""
    with contextlib.suppress(OSError, AttributeError):  # EPERM without CAP_SYS_NICE: keep the lower priority
        os.setpriority(os.PRIO_PROCESS, 0, nice)


def demote_slow(handles: Iterable[Handle], now: float, *, to_batch: bool = False) -> None:
    """Lower the priority of queries running longer than ``DEMOTE_AFTER_S``; interrupt cancelled ones again.

    A cancel that lands between a cursor's attach and the start of its statement is lost
    by DuckDB (an interrupt of an idle connection does nothing), so cancelled queries are
    interrupted on every poll until they stop.
    """
    for h in handles:
        if h.cancelled and h.running:
            h.cancel()
        elif not h.demoted and h.running and now - h.started > DEMOTE_AFTER_S:
            h.demote(to_batch=to_batch)


def _interrupt(cursor: Any) -> None:
    try:
        cursor.interrupt()
    except Exception:  # a cursor closed meanwhile has nothing to interrupt
        log.debug("interrupt of a closed cursor ignored")


class Expirable(Protocol):
    def expire(self) -> bool | None: ...


class _Entry:
    __slots__ = ("active", "handle")

    def __init__(self, handle: Expirable) -> None:
        self.handle = handle
        self.active = True


def rss_bytes() -> int:
    """Resident set size of this process (Linux ``/proc``; 0 where unavailable)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _malloc_trim() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class MemoryGuard:
    """Interrupts running queries while the process's RSS is over ``limit_bytes``: first those of the
    owner running the most queries, longest-running first among them."""

    def __init__(self, limit_bytes: int, running: Callable[[], Iterable[Handle]],
                 rss: Callable[[], int] = rss_bytes) -> None:
        self.limit_bytes = limit_bytes
        self.running = running
        self._rss = rss
        self._next_step = 0.0
        self._next_trim = 0.0
        self.interrupted = 0
        self.peak = 0

    def check(self) -> None:
        if self.limit_bytes <= 0:
            return
        used = self._rss()
        self.peak = max(self.peak, used)
        now = time.monotonic()
        if used > self.limit_bytes // 2 and now >= self._next_trim:
            self._next_trim = now + 2.0  # big results freed by Python stay in the heap otherwise
            _malloc_trim()
            used = self._rss()
        if used <= self.limit_bytes:
            return
        running = [h for h in self.running() if h.running]
        per_owner = collections.Counter(h.owner for h in running)
        handles = sorted(running, key=lambda h: (-per_owner[h.owner], h.started))
        for h in handles:
            if h.memory:
                h.out_of_memory()  # already chosen: keep interrupting until it stops
        if now < self._next_step:
            return
        for h in handles:
            if not h.memory and h.out_of_memory():
                self.interrupted += 1
                self._next_step = now + MEMORY_STEP_S
                log.warning("process RSS %d MB is over the %d MB budget: interrupted the longest-running query of "
                            "the owner running the most (%d)", used >> 20, self.limit_bytes >> 20, per_owner[h.owner])
                return


class Watchdog:
    """Fires ``handle.expire()`` at each armed deadline unless disarmed first."""

    def __init__(self, *, tick_s: float = 30.0, on_tick: Callable[[], object] | None = None,
                 memory: MemoryGuard | None = None, batch_priorities: bool = False) -> None:
        self.batch_priorities = batch_priorities  # QUERY_PRIORITIES: demote slow queries to the batch level
        self._heap: list[tuple[float, int, _Entry]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._tick_s = tick_s
        self._on_tick = on_tick
        self.memory = memory
        self._thread = threading.Thread(target=self._run, name="query-watchdog", daemon=True)
        self._thread.start()

    def arm(self, timeout_s: float, handle: Expirable) -> _Entry:
        entry = _Entry(handle)
        self._push(time.monotonic() + timeout_s, entry)
        return entry

    def _push(self, at: float, entry: _Entry) -> None:
        with self._lock:
            heapq.heappush(self._heap, (at, next(self._seq), entry))

    @staticmethod
    def disarm(entry: _Entry) -> None:
        entry.active = False

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(5)

    def _run(self) -> None:
        next_tick = time.monotonic() + self._tick_s
        while not self._stopped.wait(GRANULARITY_S):
            due: list[_Entry] = []
            now = time.monotonic()
            with self._lock:
                while self._heap and (self._heap[0][0] <= now or not self._heap[0][2].active):
                    due.append(heapq.heappop(self._heap)[2])
            for entry in due:
                if entry.active and entry.handle.expire():
                    self._push(now + REPEAT_S, entry)
            if self.memory is not None:
                try:
                    demote_slow(self.memory.running(), now, to_batch=self.batch_priorities)
                    self.memory.check()
                except Exception:
                    log.exception("memory guard failed")
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + self._tick_s
                if self._on_tick is not None:
                    try:
                        self._on_tick()
                    except Exception:
                        log.exception("watchdog maintenance failed")
