"""The background batch writer shared by the audit trail and the usage counters."""

from __future__ import annotations

import threading

from serving.lib.batching import BatchWriter


class _Recorder(BatchWriter):
    thread_name = "test-writer"

    def __init__(self) -> None:
        super().__init__(interval_s=60.0)  # never by the clock in this test: only when woken
        self.items: list[int] = []
        self.written: list[int] = []
        self.passed = threading.Event()
        self.fail_next = False

    def write_pass(self) -> None:
        if self.fail_next:
            self.fail_next = False
            self.passed.set()
            raise RuntimeError("one bad pass")
        self.written += self.items
        self.items = []
        self.passed.set()


def test_wakes_on_demand_survives_a_bad_pass_and_writes_on_stop() -> None:
    w = _Recorder()
    assert not w.running
    w.start()
    assert w.running
    w.items.append(1)
    w.wake()
    assert w.passed.wait(5)
    assert w.written == [1]
    w.passed.clear()
    w.fail_next = True
    w.wake()
    assert w.passed.wait(5)  # the pass raised; the thread lives on
    w.items.append(2)
    w.stop()  # the last pass writes what was queued before stop
    assert not w.running
    assert w.written == [1, 2]
    w.stop()  # stopping twice is harmless


def test_a_writer_never_started_does_nothing_on_stop() -> None:
    w = _Recorder()
    w.items.append(3)
    w.stop()
    assert w.written == []
    assert not w.running
