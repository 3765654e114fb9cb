"""The token cache: concurrent requests for an expired token share one database load."""

from __future__ import annotations

import threading
import time

import anyio

from serving.lib.identity import IdentityStore, TokenRecord


class CountingStore(IdentityStore):
    """The real cache over a fake loader that counts calls and takes a while (like a DB round trip)."""

    def __init__(self, ttl_s: float = 60.0) -> None:
        super().__init__("sqlite://", ttl_s=ttl_s)
        self.loads = 0
        self._lock = threading.Lock()

    def load(self, token_id: str) -> TokenRecord | None:
        with self._lock:
            self.loads += 1
        time.sleep(0.05)
        return TokenRecord(id=token_id, type="agent", swarm_id="s", name="a", token_hash="h",  # noqa: S106 - a fake hash
                           allowed_tables=None,
                           expires_at=time.time() + 60, revoked=False, parent_revoked=False, swarm_exists=True,
                           swarm_grants=frozenset({"d.s.t"}))


def _gather(store: IdentityStore, token_id: str, n: int) -> list[TokenRecord | None]:
    out: list[TokenRecord | None] = []

    async def one() -> None:
        out.append(await store.get(token_id))

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(n):
                tg.start_soon(one)

    anyio.run(main)
    return out


def test_concurrent_misses_share_one_load() -> None:
    store = CountingStore()
    records = _gather(store, "t1", 16)
    assert store.loads == 1
    assert len(records) == 16
    assert all(r is not None and r.id == "t1" for r in records)
    _gather(store, "t1", 4)
    assert store.loads == 1, "a fresh entry is served from the cache"
    _gather(store, "t2", 3)
    assert store.loads == 2, "another token has its own load"


def test_expiry_and_invalidation_reload() -> None:
    store = CountingStore(ttl_s=0.01)
    _gather(store, "t1", 2)
    time.sleep(0.02)
    _gather(store, "t1", 5)
    assert store.loads == 2, "an expired entry is reloaded once for all waiters"
    store.invalidate()
    _gather(store, "t1", 1)
    assert store.loads == 3, "invalidate() forces a reload"
