"""Where queries run: inline eligibility, bans and strikes, and the FIFO short lane."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from serving.queries import scheduling
from serving.queries.scheduling import Scheduler
from serving.queries.watchdog import Watchdog

SQL = "SELECT 1"


@pytest.fixture
def watchdog() -> Iterator[Watchdog]:
    dog = Watchdog()
    yield dog
    dog.stop()


def test_inline_needs_enough_fast_runs(watchdog: Watchdog) -> None:
    sched = Scheduler(watchdog)
    for _ in range(scheduling.INLINE_AFTER - 1):
        sched.record(SQL, 0.001)
        assert not sched.inline_ok(SQL, "tok")
    sched.record(SQL, 5.0)  # a slow run (busy machine) counts, but only the best run classifies
    assert sched.inline_ok(SQL, "tok")
    sched.record("SELECT 2", 0.5)
    sched.record("SELECT 2", 0.5)
    sched.record("SELECT 2", 0.5)
    assert not sched.inline_ok("SELECT 2", "tok")  # never fast: stays on workers


def test_interruption_bans_the_text_and_strikes_the_token(watchdog: Watchdog) -> None:
    sched = Scheduler(watchdog)
    for _ in range(scheduling.INLINE_AFTER):
        sched.record(SQL, 0.001)
        sched.record("SELECT 2", 0.001)
    sched.interrupted(SQL)
    assert not sched.inline_ok(SQL, "tok")
    assert sched.inline_ok("SELECT 2", "tok")
    for _ in range(scheduling.STRIKES):
        sched.strike("tok")
    assert not sched.inline_ok("SELECT 2", "tok")  # the token lost the inline path
    assert sched.inline_ok("SELECT 2", "other")  # other tokens keep it


def test_short_lane_is_fifo_and_an_overstaying_query_gives_its_slot_back(watchdog: Watchdog,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scheduling, "SHORT_S", 0.05)
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
    assert time.monotonic() - started < 2  # released after 4 × SHORT_S, not after the long query
    assert order == ["long-start", "short-0", "short-1", "short-2"]
    long_done.set()
    t_long.join(5)
    assert sched.stats["short_lane"] == 4
