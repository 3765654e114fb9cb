"""Admission control for heavy agent work: at most a few such runs at once per process, fair across agents.

Why: per-agent slots bound what one agent runs, not what all of them run together. Four
agents with four bombs each put 16 CPU-bound threads (and DuckDB's own workers) on a
2-core machine; a point query or ``/health`` then waits behind them in the kernel's run
queue and for the GIL (measured: point-query p99 69 ms with 4 bombs running, 155 ms with
16). Running more CPU-bound work at once than the cores can run adds no throughput, only
latency for everyone, so this process runs at most ``capacity`` heavy runs at a time
(``QUERY_HEAVY_CONCURRENT``), as a warehouse queues statements past its concurrency level.

What is heavy: samples, profiles, and queries whose SQL text is not known to be cheap
(``scheduling.Scheduler.is_cheap``: new texts, and texts with a run lately that was both
long and CPU-heavy). A query known cheap skips the queue; if it overstays ``SHORT_S`` anyway (other
parameters) it is charged here while it runs (``charge``), so work that only looked cheap
still holds back further heavy admissions instead of adding to the CPU's queue.

Fairness: a freed place goes to the waiting swarm with the fewest heavy runs in progress,
then to its agent with the fewest, then to the longest waiting, so one agent's queue of
bombs never starves another agent's single query, and a swarm that mints many agent
tokens is one party, not many (a key is ``<group>/<agent>``; see ``limits.heavy_key``).
A wait counts against the work's own time limit (it is answered 408 at its deadline,
queued or not) and ends at once on cancel (``poke``). A waiter sleeps until then:
it is woken by its grant, a poke or its deadline, never by a timer of its own.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable

from serving.lib import metrics
from serving.lib.errors import QueryTimeout


def default_capacity() -> int:
    """Twice the CPUs this process may run on: enough to overlap I/O and keep the cores busy."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 2
    return 2 * max(1, cpus)


class Place:
    """One admitted (or charged) heavy run; ``release`` gives the place back, once."""

    __slots__ = ("_admission", "_held", "key")

    def __init__(self, admission: Admission, key: str) -> None:
        self._admission, self.key, self._held = admission, key, True

    def release(self) -> None:
        with self._admission.lock:
            if not self._held:
                return
            self._held = False
            self._admission.leave(self.key)

    def __enter__(self) -> Place:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


class _Waiter:
    __slots__ = ("event", "granted", "key", "seq")

    def __init__(self, key: str, seq: int) -> None:
        self.key, self.seq, self.event, self.granted = key, seq, threading.Event(), False


class Admission:
    """The process's places for heavy work, handed out fairly across agents. Thread-safe."""

    def __init__(self, capacity: int | None = None) -> None:
        """``capacity`` 0 or None: ``default_capacity()`` (``QUERY_HEAVY_CONCURRENT=0``)."""
        self.capacity = max(1, capacity) if capacity else default_capacity()
        self.lock = threading.Lock()
        self.running: dict[str, int] = {}  # agent key -> heavy runs in progress (admitted or charged)
        self.groups: dict[str, int] = {}  # group (swarm) of a key -> its heavy runs in progress
        self.total = 0
        self._waiting: list[_Waiter] = []
        self._seq = itertools.count()
        self.stats = {"admitted": 0, "queued": 0, "timed_out": 0, "charged": 0}

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def admit(self, key: str, *, deadline: float, limit_s: float,
              cancelled: Callable[[], bool] = lambda: False) -> Place:
        """Wait on this thread for a place until ``deadline`` (a ``time.monotonic()`` value).

        Raises 408 ``timeout`` when the deadline passes first (``limit_s`` is the work's time
        limit, named in the answer), and ``Cancelled`` when ``cancelled()`` is true at a
        ``poke`` (the caller answers with its own cancel error)."""
        with self.lock:
            if self.total < self.capacity and not self._waiting:
                self._enter(key)
                self.stats["admitted"] += 1
                return Place(self, key)
            waiter = _Waiter(key, next(self._seq))
            self._waiting.append(waiter)
            self.stats["queued"] += 1
        metrics.heavy_waiting(1)
        began = time.monotonic()
        try:
            while True:
                # One wake-up at the deadline, a grant, or a ``poke``: a waiter that polled woke
                # many times a second and took the GIL from the event loop each time.
                waiter.event.wait(max(0.0, deadline - time.monotonic()))
                with self.lock:
                    if waiter.granted:
                        return Place(self, key)
                    waiter.event.clear()
                    stop = cancelled()
                    if not stop and deadline - time.monotonic() > 0:
                        continue  # poked for another waiter's cancel
                    self._waiting.remove(waiter)
                    if not stop:
                        self.stats["timed_out"] += 1
                if stop:
                    raise Cancelled
                waited = time.monotonic() - began
                raise QueryTimeout(
                    f"the work waited {waited:.2f} s for one of this server's {self.capacity} places for heavy "
                    f"work and ran out of its time limit of {limit_s:g} s; other agents' heavy work was "
                    f"running (retry, or ask for a longer timeout_s)", rule="timeout",
                    details={"timeout_s": limit_s, "queued_s": round(waited, 3), "heavy_concurrent": self.capacity})
        finally:
            metrics.heavy_waiting(-1)

    def poke(self) -> None:
        """Wake every waiter to look at its ``cancelled()`` again: call it after cancelling work."""
        with self.lock:
            for waiter in self._waiting:
                waiter.event.set()

    def charge(self, key: str) -> Place:
        """Count a run that turned out heavy without having queued: it holds back later admissions."""
        with self.lock:
            self._enter(key)
            self.stats["charged"] += 1
        return Place(self, key)

    def _enter(self, key: str) -> None:
        self.total += 1
        self.running[key] = self.running.get(key, 0) + 1
        group = _group(key)
        self.groups[group] = self.groups.get(group, 0) + 1

    def leave(self, key: str) -> None:
        """Give back one of ``key``'s places and grant freed ones (call with ``lock`` held)."""
        self.total -= 1
        for counts, k in ((self.running, key), (self.groups, _group(key))):
            left = counts.get(k, 1) - 1
            if left > 0:
                counts[k] = left
            else:
                counts.pop(k, None)
        while self.total < self.capacity and self._waiting:
            nxt = min(self._waiting, key=lambda w: (self.groups.get(_group(w.key), 0), self.running.get(w.key, 0),
                                                    w.seq))
            self._waiting.remove(nxt)
            self._enter(nxt.key)
            self.stats["admitted"] += 1
            nxt.granted = True
            nxt.event.set()


def _group(key: str) -> str:
    """The party a key's fairness is counted for first: what precedes its last ``/`` (the key itself without one)."""
    return key.rpartition("/")[0] or key


class Cancelled(Exception):
    """The work was cancelled while it waited for a place."""
