"""CPU priorities of agent work (``QUERY_PRIORITIES``): batch threads run below the event loop, cheap queries at its level."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from serving.lib import limits
from serving.lib.caller import Caller
from serving.queries import scheduling
from serving.queries.engine import QueryEngine
from serving.queries.instances import InstanceCache
from serving.queries.jobs import Job, JobManager
from serving.queries.scheduling import Scheduler
from serving.queries.watchdog import DEMOTE_NICE, Handle, Watchdog
from shared.control.db import migrate
from shared.settings import Settings

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")
T = TypeVar("T")
SQL = "SELECT 1"
AGENT = Caller(kind="agent", subject="a", token_id="jti-1", swarm_id="s1")  # noqa: S106 - a token id, not a secret


def nice_of(tid: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, tid)


def loop_nice() -> int:
    """The main thread's (the event loop's, in the API process)."""
    return nice_of(os.getpid())


def batch_nice() -> int:
    return min(19, loop_nice() + limits.BATCH_NICE)


def in_thread(fn: Callable[[], T]) -> T:
    out: list[T] = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join(30)
    return out[0]


def may_lower_nice() -> bool:
    """Whether this process may lower a thread's nice value again (root, CAP_SYS_NICE or RLIMIT_NICE)."""
    def probe() -> bool:
        mine = nice_of(0)
        os.setpriority(os.PRIO_PROCESS, 0, min(19, mine + 1))
        try:
            os.setpriority(os.PRIO_PROCESS, 0, mine)
        except OSError:
            return False
        return True
    return in_thread(probe)


def settings_for(home: Path, **env: str) -> Settings:
    return Settings.from_env({"AGENTS_DATA_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'control.db'}",
                              "JWT_SECRET": "test-secret-" + "x" * 32, **env})


@pytest.fixture
def watchdog() -> Iterator[Watchdog]:
    dog = Watchdog()
    yield dog
    dog.stop()


def test_batch_threads_sit_a_fixed_step_below_the_event_loop() -> None:
    def twice() -> int:
        limits.lower_priority()
        limits.lower_priority()  # counted from the loop's level, not the thread's: still one step
        return nice_of(0)

    assert in_thread(twice) == batch_nice()


def test_a_text_that_used_much_cpu_is_batch_work_for_a_while(watchdog: Watchdog,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    sched = Scheduler(watchdog)
    assert not sched.is_cheap(SQL)  # unknown
    sched.record(SQL, 0.001)
    sched.record_cost(SQL, scheduling.HEAVY_CPU_S / 10, 0.001)
    assert sched.is_cheap(SQL)
    sched.record_cost(SQL, scheduling.HEAVY_CPU_S * 2, scheduling.SHORT_S / 2)  # much CPU, but short: still cheap
    assert sched.is_cheap(SQL)
    sched.record_cost(SQL, scheduling.HEAVY_CPU_S * 2, scheduling.SHORT_S * 4)  # e.g. the text with huge parameters
    assert sched.is_short(SQL)
    assert not sched.is_cheap(SQL)
    monkeypatch.setattr(scheduling, "HEAVY_FOR_S", 0.0)  # the heavy run is forgotten after HEAVY_FOR_S
    assert sched.is_cheap(SQL)


def test_a_demoted_query_gets_back_its_threads_own_priority() -> None:
    def run() -> tuple[int, int, int]:
        limits.lower_priority()
        own = nice_of(0)
        handle = Handle()
        handle.attach(object())
        handle.demote()
        demoted = nice_of(0)
        handle.detach()
        return own, demoted, nice_of(0)

    own, demoted, after = in_thread(run)
    assert own == batch_nice()
    assert demoted == min(19, own + DEMOTE_NICE)
    # Back to the batch level, never to the loop's; unprivileged, the lower priority is kept.
    assert after == (own if may_lower_nice() else demoted)


def test_with_priorities_a_slow_query_joins_the_batch_level_not_below_it() -> None:
    def run(lower_first: bool) -> int:
        if lower_first:
            limits.lower_priority()
        handle = Handle()
        handle.attach(object())
        handle.demote(to_batch=True)
        return nice_of(0)

    assert in_thread(lambda: run(False)) == batch_nice()  # a cheap-looking query that ran long
    assert in_thread(lambda: run(True)) == batch_nice()  # already batch work: unchanged


@pytest.fixture
def jobs(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[JobManager]:
    settings = settings_for(tmp_path, QUERY_PRIORITIES=request.param)
    migrate(settings.control_url)  # a result file counts against its swarm's storage quota there
    engine = QueryEngine(settings)
    manager = JobManager(engine, settings, workers=2)
    warm = Job(AGENT, None, "SELECT 2", fmt="json", params=None, max_rows=10, timeout_s=5.0)
    manager.start(warm).result(30)  # the process's first query costs more CPU (lazy imports, first connection)
    yield manager
    manager.close()
    engine.close()


def _job(jobs: JobManager, *, fmt: str = "json") -> Job:
    return Job(AGENT, jobs.engine.guard(AGENT, SQL), SQL, fmt=fmt, params=None, max_rows=10, timeout_s=5.0)


def _ran_at(jobs: JobManager, job: Job) -> int:
    done = jobs.start(job).result(30)
    assert done.status == "succeeded", done.error
    return nice_of(done.handle.tid)  # the pool thread that ran it is still alive


@pytest.mark.parametrize("jobs", ["true"], indirect=True)
def test_only_cheap_inline_queries_run_at_the_event_loops_priority(jobs: JobManager) -> None:
    assert _ran_at(jobs, _job(jobs)) == batch_nice()  # a new text
    assert _ran_at(jobs, _job(jobs)) == loop_nice()  # learned cheap (one fast run, little CPU)
    assert _ran_at(jobs, _job(jobs, fmt="parquet")) == batch_nice()  # a result file is batch work
    checked = _job(jobs).checked
    assert checked is not None
    jobs.sched.record_cost(checked.sql, scheduling.HEAVY_CPU_S * 2, scheduling.SHORT_S * 2)
    assert _ran_at(jobs, _job(jobs)) == batch_nice()  # the text was heavy lately


@pytest.mark.parametrize("jobs", ["false"], indirect=True)
def test_without_priorities_every_query_starts_at_the_event_loops_priority(jobs: JobManager) -> None:
    assert jobs.batch is None
    assert _ran_at(jobs, _job(jobs)) == loop_nice()
    assert _ran_at(jobs, _job(jobs, fmt="parquet")) == loop_nice()


@pytest.mark.parametrize(("priorities", "expect_below"), [("true", True), ("false", False)])
def test_duckdb_worker_threads_inherit_the_builders_priority(tmp_path: Path, priorities: str,
                                                              expect_below: bool) -> None:
    cache = InstanceCache(settings_for(tmp_path, QUERY_PRIORITIES=priorities, QUERY_THREADS="3"))
    before = set(os.listdir("/proc/self/task"))
    inst = cache.acquire(())
    started: Any = set(os.listdir("/proc/self/task")) - before
    try:
        nices = [nice_of(int(tid)) for tid in started]
        assert nices  # DuckDB's own worker threads (and, with priorities, the builder)
        if expect_below:
            assert all(n == batch_nice() for n in nices), nices
        else:
            assert all(n == loop_nice() for n in nices), nices
    finally:
        cache.release(inst)
        cache.close()


def test_a_big_answer_is_kept_in_pieces_that_make_the_same_json() -> None:
    import msgspec

    from serving.lib import formats
    from serving.lib.sliced import slices

    parts = [formats.encode_json([["x" * 50, i]])[1:-1] for i in range(20)]
    rows = formats.EncodedArray(parts)
    payload = {"job_id": None, "columns": [{"name": "rows", "type": "VARCHAR"}], "rows": rows, "row_count": 20}
    body = formats.pieces(payload, "rows", rows)
    assert any(p is part for p in body for part in parts)  # the rows' pieces are not copied
    assert b"".join(body) == formats.encode_json(payload)  # the same document msgspec makes of it whole
    assert b"".join(rows.pieces()) == rows.joined()
    assert msgspec.json.decode(b"".join(body))["rows"][19] == ["x" * 50, 19]
    chunks = list(slices(body, 64))  # re-cut for sending: the same bytes, no chunk past the size
    assert b"".join(chunks) == b"".join(body)
    assert max(map(len, chunks)) <= 64
