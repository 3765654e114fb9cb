"""Places for heavy work: a bounded number run at once per process, fairly across agents, within time limits.

The unit tests drive ``Admission`` from threads; the API tests run the real app (DuckDB,
the job manager, samples) with one place, so one agent's heavy query visibly holds back
another agent's heavy work but not its query known to be cheap.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import pytest

from serving.lib.admission import Admission, Cancelled, default_capacity
from serving.lib.caller import Caller
from serving.lib.errors import QueryTimeout
from serving.lib.limits import get_limiter
from serving.queries.engine import Handle
from serving.queries.services import get_jobs
from shared.settings import Settings
from tests.conftest import publish_table
from tests.serving.helpers import assert_error

ORDERS = "demo.public.orders"
DATA = "select range as id, range % 7 as k, 'note ' || range as note from range(20000)"
SLOW = "select count(*) from range(100000000000) t(i) where hash(i) % 1000003 = 7"
POINT = "select id, note from orders where id = ?"


def _later(fn: Any) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


def _wait_until(cond: Any, timeout_s: float = 5.0) -> None:
    end = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.005)


# -- the admission itself --------------------------------------------------------------------------
def test_at_most_capacity_run_and_a_freed_place_goes_to_the_next_waiter() -> None:
    adm = Admission(2)
    far = time.monotonic() + 10
    a1, a2 = adm.admit("a", deadline=far, limit_s=10), adm.admit("b", deadline=far, limit_s=10)
    assert adm.total == 2
    got: list[str] = []
    waiter = _later(lambda: got.append(adm.admit("c", deadline=far, limit_s=10).key))
    _wait_until(lambda: adm.waiting == 1)
    time.sleep(0.1)
    assert got == []  # full: it waits
    a1.release()
    waiter.join(5)
    assert got == ["c"]
    assert adm.total == 2
    a1.release()  # a second release of the same place changes nothing
    assert adm.total == 2
    a2.release()
    assert adm.total == 1


def test_the_agent_with_fewest_running_goes_first() -> None:
    adm = Admission(2)
    far = time.monotonic() + 10
    held = [adm.admit("bomber", deadline=far, limit_s=10) for _ in range(2)]
    order: list[str] = []
    lock = threading.Lock()

    def wait_for(key: str) -> None:
        place = adm.admit(key, deadline=far, limit_s=10)
        with lock:
            order.append(key)
        time.sleep(0.05)
        place.release()

    threads = [_later(lambda: wait_for("bomber")) for _ in range(3)]
    _wait_until(lambda: adm.waiting == 3)
    threads.append(_later(lambda: wait_for("quiet")))  # arrives last, behind three of the bomber's
    _wait_until(lambda: adm.waiting == 4)
    held[0].release()  # the bomber still runs one: the quiet agent (none running) is next
    for t in threads:
        t.join(5)
    held[1].release()
    assert order[0] == "quiet", order
    assert sorted(order) == ["bomber", "bomber", "bomber", "quiet"]
    assert adm.total == 0


def test_a_wait_past_the_deadline_is_a_timeout_naming_the_wait() -> None:
    adm = Admission(1)
    held = adm.admit("a", deadline=time.monotonic() + 10, limit_s=10)
    started = time.monotonic()
    with pytest.raises(QueryTimeout) as info:
        adm.admit("b", deadline=started + 0.3, limit_s=0.3)
    took = time.monotonic() - started
    assert 0.25 <= took < 1.0
    assert info.value.rule == "timeout"
    assert info.value.details["timeout_s"] == 0.3
    assert info.value.details["queued_s"] >= 0.25
    assert info.value.details["heavy_concurrent"] == 1
    assert adm.waiting == 0
    assert adm.stats["timed_out"] == 1
    held.release()
    assert adm.total == 0
    adm.admit("b", deadline=time.monotonic() + 1, limit_s=1).release()  # a place is free again at once


def test_a_cancel_ends_the_wait() -> None:
    adm = Admission(1)
    held = adm.admit("a", deadline=time.monotonic() + 10, limit_s=10)
    flag = threading.Event()

    def cancel() -> None:
        flag.set()
        adm.poke()

    threading.Timer(0.05, adm.poke).start()  # a poke for another waiter's cancel: this one keeps waiting
    threading.Timer(0.3, cancel).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        adm.admit("b", deadline=time.monotonic() + 10, limit_s=10, cancelled=flag.is_set)
    assert 0.25 <= time.monotonic() - started < 1.0
    assert adm.waiting == 0
    held.release()
    assert adm.total == 0


def test_charged_work_holds_back_admissions_past_capacity() -> None:
    adm = Admission(1)
    charged = adm.charge("a")  # a query that looked cheap and overstayed
    assert adm.total == 1
    extra = adm.charge("b")  # charging never waits, even past capacity
    assert adm.total == 2
    with pytest.raises(QueryTimeout):
        adm.admit("c", deadline=time.monotonic() + 0.1, limit_s=0.1)
    charged.release()
    with pytest.raises(QueryTimeout):  # still one over: nothing is free
        adm.admit("c", deadline=time.monotonic() + 0.1, limit_s=0.1)
    extra.release()
    adm.admit("c", deadline=time.monotonic() + 1, limit_s=1).release()
    assert adm.total == 0
    assert adm.running == {}


def test_default_capacity_is_twice_the_cpus() -> None:
    assert default_capacity() >= 2
    assert default_capacity() % 2 == 0
    assert Admission(0).capacity == default_capacity()
    assert Admission(3).capacity == 3


# -- through the real app ------------------------------------------------------------------------------
@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    q = dataclasses.replace(settings.query, heavy_concurrent=1, timeout_s=1.0, agent_concurrent=3)
    return dataclasses.replace(settings, query=q)


@pytest.fixture
def agents(client: Any, api_settings: Settings, make_swarm: Any, agent_headers: Any) -> tuple[dict[str, str], ...]:
    publish_table(api_settings.served_path, ORDERS, DATA)
    return agent_headers(make_swarm([ORDERS])["id"]), agent_headers(make_swarm([ORDERS])["id"])


def _execute(client: Any, h: dict[str, str], **body: Any) -> Any:
    return client.post("/api/v1/queries/execute", json=body, headers=h)


def test_heavy_work_waits_for_a_place_and_cheap_queries_do_not(client: Any, agents: Any, services: Any) -> None:
    bomber, other = agents
    assert _execute(client, other, query=POINT, params=[5]).json()["rows"] == [[5, "note 5"]]  # learned cheap
    # its first run built the table's DuckDB instance: that CPU is not the query's, so it stays cheap
    speeds = [s for sql, s in get_jobs(services).sched.speeds.items() if "where id = " in sql.lower()]
    assert len(speeds) == 1
    assert speeds[0].heavy_at == float("-inf")
    heavy = get_limiter(services).heavy
    job = _execute(client, bomber, query=SLOW, wait_s=0, timeout_s=30).json()
    try:
        _wait_until(lambda: heavy.total == 1)
        # the other agent's point query, known cheap, does not wait for the place
        started = time.monotonic()
        r = _execute(client, other, query=POINT, params=[7])
        assert r.status_code == 200, r.text
        assert r.json()["rows"] == [[7, "note 7"]]
        assert time.monotonic() - started < 0.9
        # its new (so heavy) query waits for the place and is answered at its time limit
        r = _execute(client, other, query="select count(*) from orders where k = 3", timeout_s=0.5)
        assert_error(r, 408, rule="timeout")
        assert r.json()["error"]["details"]["queued_s"] >= 0.4
        # a sample of a served table is heavy work too (QUERY_TIMEOUT_S is 1 s here)
        r = client.get("/api/v1/data/tables/orders/sample", params={"size": 5}, headers=other)
        assert_error(r, 408, rule="timeout")
        assert r.json()["error"]["details"]["heavy_concurrent"] == 1
    finally:
        client.delete(f"/api/v1/queries/jobs/{job['job_id']}", headers=bomber)
    _wait_until(lambda: heavy.total == 0, timeout_s=30)  # the cancelled query gives its place back
    r = _execute(client, other, query="select count(*) from orders where k = 3", timeout_s=5)
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == [[2857]]
    r = client.get("/api/v1/data/tables/orders/sample", params={"size": 5}, headers=other)
    assert r.status_code == 200, r.text
    assert r.json()["row_count"] == 5
    assert heavy.stats["timed_out"] >= 2


def test_a_queued_async_job_can_be_cancelled(client: Any, agents: Any, services: Any) -> None:
    bomber, other = agents
    heavy = get_limiter(services).heavy
    first = _execute(client, bomber, query=SLOW, wait_s=0, timeout_s=30).json()
    _wait_until(lambda: heavy.total == 1)
    queued = _execute(client, other, query=SLOW + " and i > 0", wait_s=0, timeout_s=30).json()
    try:
        _wait_until(lambda: heavy.waiting == 1)
        r = client.delete(f"/api/v1/queries/jobs/{queued['job_id']}", headers=other)
        assert r.status_code == 200, r.text
        _wait_until(lambda: heavy.waiting == 0)
        status = client.get(f"/api/v1/queries/jobs/{queued['job_id']}", headers=other).json()
        _wait_until(lambda: client.get(f"/api/v1/queries/jobs/{queued['job_id']}",
                                       headers=other).json()["status"] == "cancelled")
        assert status["status"] in {"running", "cancelled"}
        assert heavy.total == 1  # the bomber's query still holds the place; the cancelled one never ran
    finally:
        client.delete(f"/api/v1/queries/jobs/{first['job_id']}", headers=bomber)
    _wait_until(lambda: heavy.total == 0, timeout_s=30)


def test_the_cpu_of_building_an_instance_is_not_the_querys(client: Any, agents: Any, services: Any) -> None:
    engine = get_jobs(services).engine
    admin = Caller(kind="admin", subject="admin")
    first, again = Handle(), Handle()
    engine.execute_platform_sql(admin, [ORDERS], "select count(*) from demo.public.orders", handle=first)  # builds the instance
    engine.execute_platform_sql(admin, [ORDERS], "select count(*) from demo.public.orders", handle=again)
    assert first.setup_cpu_s > again.setup_cpu_s
