"""Per-agent limits: requests per minute, concurrent query slots, login attempts (budgets: test_budgets.py).

The key property: an agent far over its quota is refused in O(1) before any work, so
it does not slow the other agents.
"""

from __future__ import annotations

import dataclasses
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import anyio
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient, TestClient

from serving.app import create_app
from serving.lib.caller import Caller
from serving.lib.errors import TooManyRequests
from serving.lib.limits import Limiter, RateLimiter, get_limiter
from shared.settings import QuerySettings, Settings
from tests.serving.helpers import admin_token, assert_error, bearer, create_swarm, mint_token

WHOAMI = "/api/v1/auth/whoami"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _agent(token_id: str) -> Caller:
    return Caller(kind="agent", subject=token_id, token_id=token_id, swarm_id="swm_1")


def test_token_bucket_refills_continuously() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, clock)
    assert all(limiter.hit("a") == 0.0 for _ in range(60))
    wait = limiter.hit("a")
    assert 0.9 < wait <= 1.0  # one token per second at 60/minute
    assert limiter.hit("b") == 0.0  # other keys have their own bucket
    clock.now += 1.0
    assert limiter.hit("a") == 0.0
    assert limiter.hit("a") > 0


def test_zero_quota_refuses_everything() -> None:
    assert RateLimiter(0).hit("a") == 60.0


@pytest.mark.anyio
async def test_query_slots_are_per_agent() -> None:
    limiter = Limiter(QuerySettings(agent_concurrent=2))
    a, b = _agent("tok_a"), _agent("tok_b")
    async with limiter.query_slot(a), limiter.query_slot(a):
        assert limiter.in_flight(a) == 2
        with pytest.raises(TooManyRequests) as info:
            async with limiter.query_slot(a):
                pass
        assert info.value.rule == "concurrency_limit"
        assert "at most 2" in info.value.message
        async with limiter.query_slot(b):  # another agent is unaffected
            assert limiter.in_flight(b) == 1
    assert limiter.in_flight(a) == 0
    with pytest.raises(RuntimeError):
        async with limiter.query_slot(a):
            raise RuntimeError("query failed")
    assert limiter.in_flight(a) == 0  # a failed query frees its slot


@pytest.mark.anyio
async def test_a_slot_handed_to_running_work_is_freed_when_the_work_ends() -> None:
    limiter = Limiter(QuerySettings(agent_concurrent=1))
    a = _agent("tok_a")
    work: Future[None] = Future()
    async with limiter.query_slot(a) as slot:
        slot.release_when_done(work)
    assert limiter.in_flight(a) == 1  # the block ended, the work did not: the slot stays taken
    with pytest.raises(TooManyRequests):
        async with limiter.query_slot(a):
            pass
    threading.Thread(target=work.set_result, args=(None,)).start()  # the work ends on another thread
    for _ in range(200):
        if limiter.in_flight(a) == 0:
            break
        await anyio.sleep(0.01)
    assert limiter.in_flight(a) == 0


def _limited(settings: Settings, **query: Any) -> Settings:
    return dataclasses.replace(settings, query=dataclasses.replace(settings.query, **query))


@pytest.fixture
def limited_client(api_settings: Settings) -> Iterator[TestClient[Litestar]]:
    with TestClient(create_app(_limited(api_settings, agent_rpm=5))) as client:
        yield client


def test_http_429_with_retry_after(limited_client: TestClient[Litestar]) -> None:
    admin = bearer(admin_token(limited_client))
    swarm = create_swarm(limited_client, admin, ["demo.public.orders"])
    a = bearer(mint_token(limited_client, admin, "agent", swarm["id"])["token"])
    b = bearer(mint_token(limited_client, admin, "agent", swarm["id"])["token"])
    assert [limited_client.get(WHOAMI, headers=a).status_code for _ in range(5)] == [200] * 5
    r = limited_client.get(WHOAMI, headers=a)
    error = assert_error(r, 429, "rate_limited", "rate_limit")
    assert "per minute" in error["message"]
    assert error["details"] == {"limit": 5, "window_s": 60}
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert limited_client.get(WHOAMI, headers=b).status_code == 200
    assert all(limited_client.get("/api/v1/admin/swarms", headers=admin).status_code == 200 for _ in range(10))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_an_agent_at_ten_times_its_quota_does_not_slow_others(api_settings: Settings) -> None:
    quota = 60
    app = create_app(_limited(api_settings, agent_rpm=quota))
    async with AsyncTestClient(app) as client:
        login = await client.post("/api/v1/auth/token", data={"username": "admin", "password": "admin-password"})
        admin = bearer(login.json()["access_token"])
        swarm = (await client.post("/api/v1/admin/swarms", json={"name": "s", "grants": []}, headers=admin)).json()

        async def agent() -> dict[str, str]:
            r = await client.post("/api/v1/admin/tokens", json={"type": "agent", "swarm_id": swarm["id"], "name": "a"},
                                  headers=admin)
            return bearer(r.json()["token"])

        noisy, quiet = await agent(), await agent()

        async def timed(headers: dict[str, str], out: list[tuple[int, float]]) -> None:
            started = time.perf_counter()
            r = await client.get(WHOAMI, headers=headers)
            out.append((r.status_code, time.perf_counter() - started))

        baseline: list[tuple[int, float]] = []
        for _ in range(20):
            await timed(quiet, baseline)

        flood: list[tuple[int, float]] = []
        during: list[tuple[int, float]] = []

        async def quiet_agent() -> None:
            for _ in range(20):
                await timed(quiet, during)
                await anyio.sleep(0.005)

        async def noisy_agent() -> None:
            async with anyio.create_task_group() as tg:
                for _ in range(quota * 10):
                    tg.start_soon(timed, noisy, flood)

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(noisy_agent)
            tg.start_soon(quiet_agent)
        elapsed = time.perf_counter() - started

    assert all(status == 200 for status, _ in baseline + during), "the quiet agent was refused"
    statuses = [s for s, _ in flood]
    assert statuses.count(429) >= quota * 10 - quota - 5
    assert statuses.count(200) <= quota + 5
    assert elapsed < 30
    base_p50 = statistics.median(t for _, t in baseline)
    during_p50 = statistics.median(t for _, t in during)
    # Everything shares one in-process event loop here, so some slowdown is CPU sharing; the
    # bound catches the failure mode (refusals doing real work, or queueing behind the flood).
    print(f"quiet agent p50 {base_p50*1000:.2f} ms alone, {during_p50*1000:.2f} ms during the flood")
    assert during_p50 < base_p50 * 10 + 0.05, (base_p50, during_p50)


def test_limiter_accessor(client: Any, app: Litestar) -> None:
    assert isinstance(get_limiter(app.state.services), Limiter)


def test_injected_limiter_is_kept(api_settings: Settings) -> None:
    from serving.lib.services import Services

    mine = Limiter(QuerySettings(agent_rpm=1))
    svc = Services(settings=api_settings, parts={"limiter": mine})
    with TestClient(create_app(api_settings, services=svc)):
        assert get_limiter(svc) is mine


