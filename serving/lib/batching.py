"""One daemon thread that writes what requests hand it to the control database, in batches.

Why: a request must never wait on the control database, yet audit rows and usage counts
must reach it. The audit trail (``serving/lib/audit.py``) and the usage counters
(``serving/lib/counters.py``) both queue in memory and let this thread write every
``interval_s``, or at once when woken (a full batch, a flush asked for, shutdown). A
subclass says what one pass writes (:meth:`BatchWriter.write_pass`); this class owns the
thread, its wake-up and its stop, and runs a last pass on the way out.
"""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("agents_data.batching")


class BatchWriter:
    """The thread, its wake-up event, start and stop; subclasses implement :meth:`write_pass`."""

    thread_name = "batch-writer"

    def __init__(self, *, interval_s: float = 0.2) -> None:
        self._interval = interval_s
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Run a pass now rather than at the next interval."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread after a last pass (nothing if it never started)."""
        if self._thread is None:
            return
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        self._thread = None

    def write_pass(self) -> None:
        """Write what was handed over since the last pass (on the writer's thread)."""
        raise NotImplementedError

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            stopping = self._stopping  # read before the pass, so the last pass sees everything queued before stop()
            try:
                self.write_pass()
            except Exception:  # the thread must outlive any one bad pass
                log.exception("%s: a pass failed", self.thread_name)
            if stopping:
                return
