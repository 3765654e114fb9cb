"""A small in-process cache whose entries expire: samples of live tables.

Why: a live table has no served version to key a cache on, and every sample of it costs
Snowflake warehouse time from the swarm's daily budget. So an API process keeps each
answer for ``LIVE_SAMPLE_TTL_S`` seconds under the request that produced it; within that
time the same request is answered from memory (no Snowflake query, no budget spent), and
after it the next request runs in Snowflake again. Bounded by entry count (oldest first out).
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
    def __init__(self, ttl_s: float, *, max_entries: int = MAX_ENTRIES, clock: Callable[[], float] = time.monotonic) -> None:
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
            if age >= self.ttl_s:
                del self._entries[key]
                return None
            return hit[1], age

    def put(self, key: Hashable, value: V) -> None:
        if self.ttl_s <= 0:
            return
        with self._lock:
            self._entries[key] = (self._clock(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
