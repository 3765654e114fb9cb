"""Per-process limits: concurrent query slots per agent, and admin login attempts per address.

Every agent query, sample and profile holds one of its agent's slots
(``AGENT_MAX_CONCURRENT_QUERIES``) from the moment it is accepted until its work has
really stopped, and runs on a worker thread, never on the event loop. ``run_in_slot``
answers at the latest ``OVERSHOOT_S`` after the work's time limit (408), even when the
work itself cannot be stopped that fast (DuckDB sees an interrupt only between chunks);
the slot is then given back only when the work ends, so an agent can never have more
runaway queries than slots.

Slots are counted per token and per swarm: a swarm token mints agent tokens, each with its
own ``AGENT_MAX_CONCURRENT_QUERIES``, so without a swarm-wide ceiling
(``SWARM_MAX_CONCURRENT_QUERIES``) one swarm could take every worker thread and DuckDB
instance of the process by minting more tokens, and other swarms would wait behind it.

Slots are not queued: a caller past its concurrent query limit is told so at once (429
with Retry-After) instead of holding a connection. Heavy work in a slot may then wait for
one of the process's places for heavy work (``admission.py``, all agents together),
within its own time limit.

Both stay per API process, on purpose. A slot stands for work running in this process
and is given back when that work ends; a shared count would outlive a worker killed
mid-query. Login attempts are counted per client address in a token bucket. Request
rates and budgets, which must hold across workers and replicas, are counted in the
control database (``serving/lib/budgets.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from serving.lib import metrics
from serving.lib.admission import Admission, Place
from serving.lib.caller import Caller
from serving.lib.errors import QueryTimeout, TooManyRequests
from serving.lib.services import Services
from shared.settings import QuerySettings

_MAX_KEYS = 100_000
LOGINS_PER_MINUTE = 30  # admin login attempts per client address; slows password guessing
LIMITER = "limiter"
OVERSHOOT_S = 0.25  # an answer comes at most this long after a time limit, whatever the work does
WORKERS = 64  # threads for samples and profiles of one process
BATCH_NICE = 5  # their threads' CPU priority below the event loop's
T = TypeVar("T")


class RateLimiter:
    """Token buckets of ``per_minute`` capacity, refilled continuously, one per key."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = max(int(per_minute), 0)
        self._rate = self.per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, list[float]] = {}  # key -> [tokens, updated]

    def hit(self, key: str) -> float:
        """Take one token for ``key``: 0.0 if allowed, else seconds until one is available."""
        if self.per_minute <= 0:
            return 60.0
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= _MAX_KEYS:
                self._prune(now)
            bucket = self._buckets[key] = [float(self.per_minute), now]
        else:
            bucket[0] = min(float(self.per_minute), bucket[0] + (now - bucket[1]) * self._rate)
            bucket[1] = now
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return 0.0
        return (1.0 - bucket[0]) / self._rate

    def _prune(self, now: float) -> None:
        full = 60.0  # a bucket idle this long is full again and can be forgotten
        self._buckets = {k: b for k, b in self._buckets.items() if now - b[1] < full}


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


class Limiter:
    """The per-process limits (slots, logins). Admin callers hold no slot."""

    def __init__(self, settings: QuerySettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.logins = RateLimiter(LOGINS_PER_MINUTE, clock)
        self.max_concurrent = settings.agent_concurrent
        self.swarm_max_concurrent = settings.swarm_concurrent
        self._in_flight: dict[str, int] = {}
        self._swarm_in_flight: dict[str, int] = {}
        self._pool: ThreadPoolExecutor | None = None
        self.heavy = Admission(settings.heavy_concurrent)  # the process's places for heavy work

    @staticmethod
    def _key(caller: Caller) -> str | None:
        return None if caller.is_admin else (caller.token_id or caller.subject)

    def heavy_place(self, caller: Caller, *, deadline: float, limit_s: float) -> Place:
        """Wait on this worker thread for a place for heavy work (``admission.Admission.admit``)."""
        return self.heavy.admit(heavy_key(caller), deadline=deadline, limit_s=limit_s)

    def check_login(self, client: str) -> None:
        """Count one admin login attempt from ``client``; raise 429 past ``LOGINS_PER_MINUTE``."""
        wait = self.logins.hit(client)
        if wait:
            raise TooManyRequests(f"too many login attempts; retry in {max(1, math.ceil(wait))} s",
                                  rule="login_rate_limit", headers=_retry_after(wait))

    def in_flight(self, caller: Caller) -> int:
        key = self._key(caller)
        return self._in_flight.get(key, 0) if key else 0

    def swarm_in_flight(self, swarm_id: str) -> int:
        return self._swarm_in_flight.get(swarm_id, 0)

    def take_slot(self, caller: Caller) -> SlotKey | None:
        """Take one of the caller's concurrent slots (its token's and its swarm's) or raise 429;
        give it back with ``give_slot(key)``."""
        key = self._key(caller)
        if key is None:
            return None
        used = self._in_flight.get(key, 0)
        if used >= self.max_concurrent:
            raise TooManyRequests(
                f"too many concurrent queries: at most {self.max_concurrent} per token (queries, samples and "
                f"profiles together); wait for one to finish", rule="concurrency_limit",
                details={"limit": self.max_concurrent}, headers=_retry_after(1))
        swarm = caller.swarm_id
        if swarm and self.swarm_max_concurrent > 0:
            if self._swarm_in_flight.get(swarm, 0) >= self.swarm_max_concurrent:
                raise TooManyRequests(
                    f"too many concurrent queries in this swarm: at most {self.swarm_max_concurrent} for all its "
                    f"tokens together (queries, samples and profiles); wait for one to finish",
                    rule="concurrency_limit", details={"limit": self.swarm_max_concurrent, "scope": "swarm"},
                    headers=_retry_after(1))
            self._swarm_in_flight[swarm] = self._swarm_in_flight.get(swarm, 0) + 1
        self._in_flight[key] = used + 1
        metrics.slot_taken(1)
        return key, swarm

    def give_slot(self, key: SlotKey | None) -> None:
        if key is None:
            return
        token, swarm = key
        metrics.slot_taken(-1)
        _decrement(self._in_flight, token)
        if swarm and swarm in self._swarm_in_flight:
            _decrement(self._swarm_in_flight, swarm)

    @asynccontextmanager
    async def query_slot(self, caller: Caller) -> AsyncIterator[Slot]:
        """Hold one of the caller's concurrent query slots for the block, or raise 429.

        Work that outlives the block keeps the slot through ``Slot.release_when_done``.
        """
        slot = Slot(self, self.take_slot(caller))
        try:
            yield slot
        finally:
            if not slot.handed_over:
                self.give_slot(slot.key)

    async def run_in_slot(self, caller: Caller, fn: Callable[[], T], *, limit_s: float,
                          since: float | None = None) -> T:
        """Run blocking ``fn`` on a worker thread while holding one of the caller's slots.

        Answers 408 ``timeout`` ``OVERSHOOT_S`` after ``limit_s`` (counted from ``since``, a
        ``time.monotonic()`` value such as the request's arrival) if ``fn`` has not returned;
        the slot stays taken until ``fn`` really ends.
        """
        give_up = limit_s + OVERSHOOT_S - (time.monotonic() - since if since is not None else 0.0)
        async with self.query_slot(caller) as slot:
            fut: Future[T] = self._executor().submit(fn)
            slot.release_when_done(fut)
            waiter = asyncio.wrap_future(fut)
            try:
                return await asyncio.wait_for(asyncio.shield(waiter), timeout=max(0.0, give_up))
            except TimeoutError as e:
                waiter.add_done_callback(_consume)
                raise QueryTimeout(f"the work ran longer than its time limit of {limit_s:g} s and was stopped",
                                   rule="timeout", details={"timeout_s": limit_s}) from e

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="agent-work",
                                            initializer=lower_priority)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


SlotKey = tuple[str, str | None]  # (token key, swarm id) of one slot taken


def _decrement(counts: dict[str, int], key: str) -> None:
    left = counts.get(key, 1) - 1
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


class Slot:
    """One concurrent slot held by a ``Limiter.query_slot`` block."""

    def __init__(self, limiter: Limiter, key: SlotKey | None) -> None:
        self.limiter, self.key = limiter, key
        self.handed_over = False

    def release_when_done(self, fut: Future[Any]) -> None:
        """Hand the slot to work running on another thread: it is given back, on this event loop, once
        ``fut`` ends, not when the block that took it exits. Call it from the event loop."""
        self.handed_over = True
        loop = asyncio.get_running_loop()

        def done(_: Future[Any]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone (shutdown)
                loop.call_soon_threadsafe(self.limiter.give_slot, self.key)

        fut.add_done_callback(done)


def heavy_key(caller: Caller) -> str:
    """Whose heavy work this is, for fairness: ``<swarm>/<token>`` (all admin work shares one key).

    The swarm comes first so that admission is fair across swarms before agents: a swarm
    that mints many tokens gets no more places than one with a single agent."""
    token = Limiter._key(caller)
    return f"{caller.swarm_id or '-'}/{token}" if token else "admin"


def lower_priority(by: int = BATCH_NICE) -> None:
    """Make the calling thread batch work: it yields the CPU to the event loop and point queries.

    Linux keeps a nice value per thread, and threads started by this one (DuckDB's workers,
    when it builds an instance) inherit it. The level is counted from the main thread's (the
    event loop's), not the caller's, since a thread inherits its creator's. Raising one's own
    nice needs no privilege."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, 0, batch_level(by))


def batch_level(by: int = BATCH_NICE) -> int:
    """The nice value of batch threads: ``by`` levels below the main thread's (the event loop's)."""
    return min(19, os.getpriority(os.PRIO_PROCESS, os.getpid()) + by)


def _consume(fut: asyncio.Future[Any]) -> None:
    """Read an abandoned future's outcome so asyncio does not log it as never retrieved."""
    if not fut.cancelled():
        fut.exception()


def install(services: Services) -> Limiter:
    """Create the process's limiter unless a test injected one."""
    limiter = services.parts.get(LIMITER)
    if not isinstance(limiter, Limiter):
        limiter = services.parts[LIMITER] = Limiter(services.settings.query)
    return limiter


def get_limiter(services: Services) -> Limiter:
    """The limiter of this API process (typed accessor for handlers)."""
    return services.get(LIMITER, Limiter)
