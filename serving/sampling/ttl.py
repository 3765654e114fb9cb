"""A small bounded in-process cache whose entries may expire: samples and profiles.

Why one class: the samples of live tables and the profiles (of served versions and of live
tables) all need a bounded, thread-safe map where the least recently used entry leaves
first; only live answers also expire. ``ttl_s=None`` keeps entries until they are pushed
out (a served version never changes, so its profile never goes stale).

Why live answers expire: a live table has no served version to key a cache on, and every sample of it costs
Snowflake warehouse time from the swarm's daily budget. So an API process keeps each
answer for ``LIVE_SAMPLE_TTL_S`` seconds under the request that produced it; within that
time the same request is answered from memory (no Snowflake query, no budget spent), and
after it the next request runs in Snowflake again. Bounded by entry count (least recently used first out).
Callers check access before they look here: an entry is never an authorization.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")
MAX_ENTRIES = 128


class TtlCache(Generic[V]):
    def __init__(self, ttl_s: float | None, *, max_entries: int = MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> tuple[V, float] | None:
        """(value, age in seconds) while fresh, else None (an expired entry is dropped)."""
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return None
            age = self._clock() - hit[0]
            if self.ttl_s is not None and age >= self.ttl_s:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return hit[1], age

    def put(self, key: Hashable, value: V) -> None:
        if self.ttl_s is not None and self.ttl_s <= 0:
            return
        with self._lock:
            self._entries[key] = (self._clock(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
