"""Where queries run: learned speeds, the FIFO short lane and its bounded wait; the watchdog and memory guard."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from serving.queries import scheduling
from serving.queries import watchdog as watchdog_mod
from serving.queries.scheduling import Scheduler
from serving.queries.watchdog import Handle, MemoryGuard, Watchdog

SQL = "SELECT 1"


@pytest.fixture
def watchdog() -> Iterator[Watchdog]:
    dog = Watchdog()
    yield dog
    dog.stop()


def test_speeds_are_learned_from_the_best_run(watchdog: Watchdog) -> None:
    sched = Scheduler(watchdog)
    assert not sched.is_short(SQL)  # unknown: runs freely
    sched.record(SQL, 5.0)
    assert not sched.is_short(SQL)
    sched.record(SQL, 0.001)
    sched.record(SQL, 5.0)  # a slow run (busy machine) changes nothing: the best run classifies
    assert sched.is_short(SQL)
    assert sched.speeds[SQL].runs == 3


def test_short_lane_is_fifo_and_an_overstaying_query_gives_its_slot_back(watchdog: Watchdog,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduling, "SHORT_S", 0.05)
    monkeypatch.setattr(scheduling, "LANE_WAIT_S", 5.0)
    sched = Scheduler(watchdog, slots=1)
    order: list[str] = []
    long_done = threading.Event()

    def long_query() -> None:
        with sched.lane(True):
            order.append("long-start")
            long_done.wait(5)

    def short_query(name: str) -> None:
        with sched.lane(True):
            order.append(name)

    t_long = threading.Thread(target=long_query)
    t_long.start()
    time.sleep(0.02)
    started = time.monotonic()
    shorts = [threading.Thread(target=short_query, args=(f"short-{i}",)) for i in range(3)]
    for t in shorts:
        t.start()
        time.sleep(0.01)
    for t in shorts:
        t.join(5)
    assert time.monotonic() - started < 2  # released after SHORT_S, not after the long query
    assert order == ["long-start", "short-0", "short-1", "short-2"]
    long_done.set()
    t_long.join(5)
    assert sched.stats["short_lane"] == 4


def test_a_clogged_short_lane_delays_no_one_past_its_wait(watchdog: Watchdog, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduling, "SHORT_S", 10.0)  # the holders would keep their slots for 40 s
    sched = Scheduler(watchdog, slots=2)
    release = threading.Event()

    def hold() -> None:
        with sched.lane(True):
            release.wait(10)

    holders = [threading.Thread(target=hold) for _ in range(2)]
    for t in holders:
        t.start()
    time.sleep(0.05)
    started = time.monotonic()
    with sched.lane(True):
        waited = time.monotonic() - started
    release.set()
    for t in holders:
        t.join(5)
    assert waited < scheduling.LANE_WAIT_S + 0.5


class _Stubborn:
    """A cursor whose first interrupts are lost, like a query between two phases."""

    def __init__(self, ignore: int) -> None:
        self.calls = 0
        self.ignore = ignore
        self.stopped = threading.Event()

    def interrupt(self) -> None:
        self.calls += 1
        if self.calls > self.ignore:
            self.stopped.set()


def test_a_query_past_its_deadline_is_interrupted_again_until_it_stops(watchdog: Watchdog) -> None:
    handle = Handle()
    cursor = _Stubborn(ignore=2)
    handle.attach(cursor)
    entry = watchdog.arm(0.05, handle)
    assert cursor.stopped.wait(3)
    watchdog.disarm(entry)
    handle.detach()
    assert handle.timed_out
    assert cursor.calls == 3


def test_memory_guard_interrupts_the_longest_running_query_while_rss_is_over_budget() -> None:
    rss = [100]
    old, new = Handle(), Handle()
    old_cur, new_cur = _Stubborn(ignore=0), _Stubborn(ignore=0)
    old.attach(old_cur)
    time.sleep(0.01)
    new.attach(new_cur)
    guard = MemoryGuard(1000, lambda: [new, old], rss=lambda: rss[0])
    guard.check()
    assert not old.memory
    assert not new.memory
    rss[0] = 2000
    guard.check()
    assert old.memory
    assert old_cur.calls == 1
    assert not new.memory
    guard.check()  # within MEMORY_STEP_S: the chosen one again, no second victim yet
    assert old_cur.calls == 2
    assert not new.memory
    time.sleep(watchdog_mod.MEMORY_STEP_S + 0.05)
    guard.check()
    assert new.memory  # still over budget: the next one
    rss[0] = 500
    guard.check()
    assert guard.interrupted == 2
