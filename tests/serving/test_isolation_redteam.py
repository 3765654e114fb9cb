"""Second red-team pass: what one swarm may take from another, over the real app.

A swarm token mints agent tokens, and every per-token allowance (slots, request and refresh
rates, storage) is worth as much again with each token minted: so each is bounded swarm-wide
too, and minting itself is bounded. Shared storage (artifacts and result files) is bounded
per swarm. Each test drives one swarm to its limit over REST and MCP, then checks that the
other swarm is served as before. The strongest cases run again on PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import pytest
from litestar import Litestar

from serving.app import create_app
from serving.lib.admission import Admission
from serving.lib.caller import Caller
from serving.lib.limits import heavy_key
from serving.queries.services import get_engine
from serving.queries.watchdog import MemoryGuard
from shared.settings import Settings
from tests.conftest import publish_table
from tests.serving.helpers import assert_error, bearer, mcp_rpc, mcp_tool, mint_token

ORDERS, OTHER = "demo.public.orders", "demo.public.other"
SLOW = "select count(*) from range(100000000000) t(i) where hash(i) % 1000003 = 7"
QUOTA = 64 * 1024


@dataclasses.dataclass
class World:
    client: Any
    h: dict[str, dict[str, str]]  # s1 (swarm token), a1..a3 (its agents, minted by it), b1 (the other swarm), admin
    ids: dict[str, str]
    swarms: dict[str, str]


@pytest.fixture
def swarm_rpm() -> int:
    return 10_000  # the request-rate test sets a small one (by parametrizing this fixture)


@pytest.fixture
def api_settings(settings: Settings, swarm_rpm: int) -> Settings:
    """Small swarm-wide limits, large per-token ones: only the swarm-wide ones can bite."""
    query = dataclasses.replace(settings.query, agent_concurrent=4, swarm_concurrent=3, agent_rpm=10_000,
                                swarm_rpm=swarm_rpm, refresh_per_minute=100, swarm_refresh_per_minute=2)
    artifacts = dataclasses.replace(settings.artifacts, swarm_storage_max_bytes=QUOTA)
    auth = dataclasses.replace(settings.auth, swarm_max_agent_tokens=3)
    mcp = dataclasses.replace(settings.mcp, allowed_hosts="testserver.local")
    return dataclasses.replace(settings, query=query, artifacts=artifacts, auth=auth, mcp=mcp)


@pytest.fixture
def world(client: Any, api_settings: Settings, admin_headers: dict[str, str], make_swarm: Any) -> World:
    publish_table(api_settings.served_path, ORDERS, "select range as id, repeat('x', 40) as note from range(5000)")
    publish_table(api_settings.served_path, OTHER, "select range as id from range(10)")
    s1, s2 = make_swarm([ORDERS])["id"], make_swarm([ORDERS, OTHER])["id"]
    swarm = mint_token(client, admin_headers, "swarm", s1)
    h = {"s1": bearer(swarm["token"]), "admin": admin_headers}
    ids = {"s1": swarm["token_id"]}
    for name in ("a1", "a2", "a3"):
        minted = mint_token(client, h["s1"], "agent", via_swarm=True)
        h[name], ids[name] = bearer(minted["token"]), minted["token_id"]
    other = mint_token(client, admin_headers, "agent", s2)
    h["b1"], ids["b1"] = bearer(other["token"]), other["token_id"]
    return World(client, h, ids, {"s1": s1, "s2": s2})


def _rpc(w: World, who: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    return mcp_rpc(w.client, w.h[who], method, params)


def _tool(w: World, who: str, tool: str, **args: Any) -> tuple[str, bool]:
    return mcp_tool(w.client, w.h[who], tool, **args)


def _slow_job(w: World, who: str) -> str:
    r = w.client.post("/api/v1/queries/execute", json={"query": SLOW, "wait_s": 0, "timeout_s": 30}, headers=w.h[who])
    assert r.status_code == 202, r.text
    return str(r.json()["job_id"])


def _upload(w: World, who: str, size: int) -> Any:
    return w.client.post("/api/v1/artifacts", headers=w.h[who], files={"file": ("f.bin", b"z" * size,
                                                                                 "application/octet-stream")},
                         data={"visibility": "swarm"})


# -- concurrent work: minting more agents gives a swarm no more slots ----------------------------------
def test_a_swarm_gets_no_more_concurrent_slots_by_minting_agents(world: World) -> None:
    jobs = [(who, _slow_job(world, who)) for who in ("a1", "a1", "a2")]  # 3: the swarm's ceiling
    try:
        for who in ("a2", "a3"):  # each far below its own 4 slots
            r = world.client.post("/api/v1/queries/execute", json={"query": "select 1"}, headers=world.h[who])
            error = assert_error(r, 429, rule="concurrency_limit")
            assert error["details"] == {"limit": 3, "scope": "swarm"}
            assert r.headers["retry-after"] == "1"
            assert_error(world.client.get("/api/v1/data/tables/orders/sample", headers=world.h[who]), 429,
                         rule="concurrency_limit")
        text, err = _tool(world, "a3", "query", sql="select 1")
        assert err, text
        assert "error 429 rule=concurrency_limit" in text, text
        # The other swarm is served as before: inline, a sample and a job of its own.
        r = world.client.post("/api/v1/queries/execute", json={"query": "select count(*) as n from other"},
                              headers=world.h["b1"])
        assert r.status_code == 200, r.text
        assert r.json()["rows"] == [[10]]
        assert world.client.get("/api/v1/data/tables/other/sample", headers=world.h["b1"]).status_code == 200
        text, err = _tool(world, "b1", "query", sql="select count(*) as n from other")
        assert not err, text
    finally:
        for who, job in jobs:
            world.client.delete(f"/api/v1/queries/jobs/{job}", headers=world.h[who])
    for _ in range(200):  # the slots come back when the work has stopped
        r = world.client.post("/api/v1/queries/execute", json={"query": "select 1"}, headers=world.h["a3"])
        if r.status_code == 200:
            break
        time.sleep(0.05)
    assert r.status_code == 200, r.text


def test_heavy_places_go_to_the_swarm_with_fewest_running_not_the_agent() -> None:
    """A swarm of many agents is one party for the shared places for heavy work."""
    def key(swarm: str, token: str) -> str:
        return heavy_key(Caller(kind="agent", subject=token, token_id=token, swarm_id=swarm))

    admission = Admission(2)
    first = admission.admit(key("s1", "a"), deadline=time.monotonic() + 5, limit_s=5)
    admission.admit(key("s1", "b"), deadline=time.monotonic() + 5, limit_s=5)
    granted: list[str] = []

    def wait(k: str) -> None:
        with admission.admit(k, deadline=time.monotonic() + 5, limit_s=5):
            granted.append(k)
            time.sleep(0.2)

    waiters = [threading.Thread(target=wait, args=(key("s1", "c"),))]  # a fresh agent of the busy swarm, first
    waiters[0].start()
    while admission.waiting < 1:
        time.sleep(0.005)
    waiters.append(threading.Thread(target=wait, args=(key("s2", "x"),)))
    waiters[1].start()
    while admission.waiting < 2:
        time.sleep(0.005)
    first.release()
    for t in waiters:
        t.join(5)
    assert granted[0] == key("s2", "x"), granted


# -- process memory: the swarm flooding the process loses its own queries first ----------------------------
def test_over_the_memory_budget_the_busiest_swarm_loses_a_query_first(world: World, services: Any) -> None:
    engine = get_engine(services)
    victim = _slow_job(world, "b1")  # the other swarm's one long query, started first
    time.sleep(0.05)
    flood = [(who, _slow_job(world, who)) for who in ("a1", "a2")]
    for _ in range(200):
        if len([h for h in engine.running() if h.running]) == 3:
            break
        time.sleep(0.02)
    try:
        guard = MemoryGuard(1, engine.running, rss=lambda: 10)  # over budget
        guard.check()
        stopped = {h.owner for h in engine.running() if h.memory}
        assert stopped == {world.swarms["s1"]}, stopped
        assert world.client.get(f"/api/v1/queries/jobs/{victim}", headers=world.h["b1"]).json()["status"] == "running"
    finally:
        for who, job in [("b1", victim), *flood]:
            world.client.delete(f"/api/v1/queries/jobs/{job}", headers=world.h[who])


# -- request and refresh rates: swarm-wide buckets ------------------------------------------------------
@pytest.mark.parametrize("swarm_rpm", [12])
def test_a_swarm_gets_no_more_requests_per_minute_by_minting_agents(world: World) -> None:
    # The swarm token's three mints took 3 of the swarm's 12; the agents share the other 9.
    answered = [world.client.get("/api/v1/data/tables", headers=world.h[who]).status_code
                for who in ("a1", "a2", "a3") * 4]
    assert answered.count(429) >= 3, answered
    r = world.client.get("/api/v1/auth/whoami", headers=world.h["a3"])
    error = assert_error(r, 429, rule="rate_limit")
    assert error["details"]["scope"] == "swarm"
    assert "swarm-rate" in r.headers["ratelimit-policy"]
    text, err = _tool(world, "a2", "list_tables")
    assert err or "429" in text, text
    for _ in range(10):  # the other swarm has its own bucket (of 12)
        assert world.client.get("/api/v1/auth/whoami", headers=world.h["b1"]).status_code == 200


def test_a_swarm_gets_no_more_refreshes_per_minute_by_minting_agents(world: World) -> None:
    statuses = [world.client.post("/api/v1/data/tables/orders/refresh", headers=world.h[who]).status_code
                for who in ("a1", "a2")]
    assert 429 not in statuses, statuses  # the refresh is counted, whatever it answers then
    r = world.client.post("/api/v1/data/tables/orders/refresh", headers=world.h["a3"])
    error = assert_error(r, 429, rule="refresh_rate_limit")
    assert error["details"]["scope"] == "swarm"
    r = world.client.post("/api/v1/data/tables/orders/refresh", headers=world.h["b1"])
    assert r.status_code != 429, r.text


# -- minting: bounded per swarm --------------------------------------------------------------------------
def test_a_swarm_token_mints_at_most_its_live_agent_tokens(world: World) -> None:
    r = world.client.post("/api/v1/swarm/agents/tokens", json={"name": "fourth"}, headers=world.h["s1"])
    error = assert_error(r, 409, "conflict", "token_limit")
    assert error["details"] == {"limit": 3, "live": 3}
    assert "token" not in r.json()
    # The admin's own tokens do not count, and revoking one gives its place back.
    mint_token(world.client, world.h["admin"], "agent", world.swarms["s1"])
    assert world.client.delete(f"/api/v1/admin/tokens/{world.ids['a1']}", headers=world.h["admin"]).status_code == 200
    mint_token(world.client, world.h["s1"], "agent", via_swarm=True)
    r = world.client.post("/api/v1/swarm/agents/tokens", json={"name": "again"}, headers=world.h["s1"])
    assert_error(r, 409, "conflict", "token_limit")
    # Another swarm's swarm token mints as before.
    s2 = mint_token(world.client, world.h["admin"], "swarm", world.swarms["s2"])
    mint_token(world.client, bearer(s2["token"]), "agent", via_swarm=True)


# -- storage: one quota per swarm over artifacts and result files ----------------------------------------
def test_a_swarm_cannot_fill_the_shared_storage(world: World) -> None:
    first = _upload(world, "a1", 40 * 1024)
    assert first.status_code == 201, first.text
    error = assert_error(_upload(world, "a2", 40 * 1024), 413, "payload_too_large", "storage_quota")
    assert error["details"]["limit"] == QUOTA
    # A result file is capped by the room left, and a saved result counts too.
    r = world.client.post("/api/v1/queries/execute", json={"query": "select * from orders", "output_format": "csv"},
                          headers=world.h["a3"])
    assert_error(r, 413, rule="storage_quota")
    small = world.client.post("/api/v1/queries/execute",
                              json={"query": "select id from orders order by id limit 500", "output_format": "csv"},
                              headers=world.h["a3"])
    assert small.status_code == 200, small.text
    job = small.json()["job_id"]
    kept = world.client.get(f"/api/v1/queries/jobs/{job}", headers=world.h["a3"]).json()["bytes"]
    assert _upload(world, "a1", QUOTA - 40 * 1024 - kept - 100).status_code == 201  # 100 bytes left
    r = world.client.post(f"/api/v1/queries/jobs/{job}/artifact", json={"format": "csv"}, headers=world.h["a3"])
    assert_error(r, 413, rule="storage_quota")
    text, err = _tool(world, "a3", "save_result_as_artifact", job_id=job, format="csv")
    assert err, text
    assert "error 413 rule=storage_quota" in text, text
    # The other swarm stores as before.
    assert _upload(world, "b1", 40 * 1024).status_code == 201
    # Deleting gives the room back.
    assert world.client.delete(f"/api/v1/artifacts/{first.json()['id']}", headers=world.h["a1"]).status_code == 204
    assert _upload(world, "a2", 30 * 1024).status_code == 201


def test_a_swarm_with_no_room_left_is_refused_before_its_body_is_read(world: World) -> None:
    assert _upload(world, "a1", QUOTA).status_code == 201
    r = world.client.post("/api/v1/artifacts", headers=world.h["a2"] | {"content-length": str(10 * 1024 * 1024)},
                          files={"file": ("f.bin", b"z", "application/octet-stream")})
    assert_error(r, 413, rule="storage_quota")
    r = world.client.post("/api/v1/queries/execute", json={"query": "select 1 as x", "output_format": "parquet"},
                          headers=world.h["a3"])
    assert_error(r, 413, rule="storage_quota")
    r = world.client.post("/api/v1/queries/execute", json={"query": "select 1 as x"}, headers=world.h["a3"])
    assert r.status_code == 200, r.text  # inline answers store nothing


class TestOnPostgres:
    """The same limits with PostgreSQL as the control database (skipped without TEST_POSTGRES_URL)."""

    @pytest.fixture
    def app(self, api_settings: Settings, pg_url: str) -> Litestar:
        return create_app(dataclasses.replace(api_settings, database_url=pg_url))

    @pytest.mark.parametrize("swarm_rpm", [12])
    def test_requests(self, world: World) -> None:
        test_a_swarm_gets_no_more_requests_per_minute_by_minting_agents(world)

    def test_minting(self, world: World) -> None:
        test_a_swarm_token_mints_at_most_its_live_agent_tokens(world)

    def test_storage(self, world: World) -> None:
        test_a_swarm_cannot_fill_the_shared_storage(world)
