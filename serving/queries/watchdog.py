"""One thread that interrupts DuckDB cursors at their deadline, and cancel handles.

Why one polling thread with a heap and not a ``threading.Timer`` per query: starting a
thread costs ~100 µs, more than a whole point query's budget; arming an entry here costs
a heap push and never wakes the thread (waking it on every query meant a GIL hand-off
per query). The thread polls every ``GRANULARITY_S`` (50 ms), so deadlines fire within
that much of their time; polling faster cost measurable CPU at 16 concurrent requests,
since every wake-up takes the GIL from the event loop. ``cursor.interrupt()`` from another thread stops a runaway query in ~0.5 s
and leaves the cursor usable (measured, duckdb 2.0.1). The same thread runs periodic
maintenance (closing idle DuckDB instances).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("agents_data.queries")
GRANULARITY_S = 0.05


class Handle:
    """Cancel token of one execution: ``cancel()`` interrupts the running cursor, if any."""

    def __init__(self) -> None:
        self.cancelled = False
        self.timed_out = False
        self._cursor: Any = None
        self._lock = threading.Lock()

    def attach(self, cursor: Any) -> None:
        with self._lock:
            self._cursor = cursor
            if self.cancelled:
                _interrupt(cursor)

    def detach(self) -> None:
        with self._lock:
            self._cursor = None

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            if self._cursor is not None:
                _interrupt(self._cursor)

    def expire(self) -> None:
        """Called by the watchdog at the deadline."""
        with self._lock:
            if self._cursor is not None and not self.cancelled:
                self.timed_out = True
                _interrupt(self._cursor)


def _interrupt(cursor: Any) -> None:
    try:
        cursor.interrupt()
    except Exception:  # a cursor closed meanwhile has nothing to interrupt
        log.debug("interrupt of a closed cursor ignored")


class Expirable(Protocol):
    def expire(self) -> None: ...


class _Entry:
    __slots__ = ("active", "handle")

    def __init__(self, handle: Expirable) -> None:
        self.handle = handle
        self.active = True


class Watchdog:
    """Fires ``handle.expire()`` at each armed deadline unless disarmed first."""

    def __init__(self, *, tick_s: float = 30.0, on_tick: Callable[[], object] | None = None) -> None:
        self._heap: list[tuple[float, int, _Entry]] = []
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._tick_s = tick_s
        self._on_tick = on_tick
        self._thread = threading.Thread(target=self._run, name="query-watchdog", daemon=True)
        self._thread.start()

    def arm(self, timeout_s: float, handle: Expirable) -> _Entry:
        entry = _Entry(handle)
        with self._lock:
            heapq.heappush(self._heap, (time.monotonic() + timeout_s, next(self._seq), entry))
        return entry

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
                if entry.active:
                    entry.handle.expire()
            if time.monotonic() >= next_tick:
                next_tick = time.monotonic() + self._tick_s
                if self._on_tick is not None:
                    try:
                        self._on_tick()
                    except Exception:
                        log.exception("watchdog maintenance failed")
