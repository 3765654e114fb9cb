"""Usage counters shared by every API worker and replica, kept in the control database.

Why in the control database: limits that each process kept in memory let an agent use N
times its quota over N workers. Every counter is one ``budget_usage`` row per subject, kind
and fixed window (epoch-aligned, so a day is a UTC day). A request is counted by one
multi-row upsert (``INSERT … ON CONFLICT DO UPDATE … RETURNING``) in one transaction: the
database serialises concurrent writers of a row, so every process sees the exact total, and
a refused request rolls its own increments back. Rows are always written in one sorted
order, so two transactions never wait on each other in a cycle. On PostgreSQL the
transaction skips the commit's flush to disk (``synchronous_commit off``): a crash can lose
the last few milliseconds of counts, never consistency.

Amounts known only after an answer (rows and bytes returned), counts with no limit to check
and unused leases given back (``serving/lib/budgets.py``) are added by
:class:`CounterWriter`, a thread that sums them in memory and writes them every
``interval_s`` in one upsert, off the request path.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from serving.lib.batching import BatchWriter
from shared.control.db import get_engine
from shared.control.models import BudgetUsageRow

log = logging.getLogger("agents_data.budgets")

KEEP_S = 2 * 86400  # counters of windows that ended this long ago are deleted


RATE_START = 0  # the window_start of a rate counter's one row


@dataclasses.dataclass(frozen=True, order=True)
class Counter:
    """One counter: ``subject`` (``agent:<token id>``, ``swarm:<id>``, ``token:<id>``), ``kind``, window length.

    A window counter counts per fixed window (epoch-aligned). A ``rate`` counter is a token
    bucket refilled continuously (GCRA): one row whose ``used`` is the bucket's theoretical
    arrival time in epoch microseconds, and each request adds its cost (the refill interval)
    to ``max(that time, now)``; the bucket is empty when that time is more than
    ``window_s`` ahead of now.
    """

    subject: str
    kind: str
    window_s: int
    rate: bool = False

    def __post_init__(self) -> None:
        # Counters key several dicts per request: their hash is worked out once, not per lookup.
        object.__setattr__(self, "_hash", hash((self.subject, self.kind, self.window_s, self.rate)))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined, no-any-return]

    def start(self, now: float) -> int:
        """Epoch second at which the window holding ``now`` began (a rate counter has one row)."""
        return RATE_START if self.rate else int(now // self.window_s) * self.window_s

    def reset_in(self, now: float) -> float:
        """Seconds from ``now`` until the window holding it ends."""
        return self.start(now) + self.window_s - now


@functools.cache
def _upsert_sql(dialect: str, paramstyle: str, n: int) -> str:
    """The upsert of ``n`` counters as driver SQL, built once per size.

    Plain SQL on purpose: compiling the equivalent SQLAlchemy statement cost more than running it.
    """
    mark = "?" if paramstyle == "qmark" else "%s"
    greatest = "GREATEST" if dialect == "postgresql" else "MAX"  # SQLite's two-argument max() is scalar
    rows = ", ".join([f"({mark}, {mark}, {mark}, {mark})"] * n)
    return (
        f"INSERT INTO budget_usage (subject, kind, window_start, used) VALUES {rows} "
        "ON CONFLICT (subject, kind, window_start) DO UPDATE SET used = CASE "
        f"WHEN budget_usage.window_start = {RATE_START} "
        f"THEN {greatest}(budget_usage.used, {mark}) + excluded.used - {mark} "
        "ELSE budget_usage.used + excluded.used END "
        "RETURNING subject, kind, window_start, used"
    )


def now_us(now: float) -> int:
    return int(now * 1_000_000)


def _params(amounts: Iterable[tuple[Counter, int]], now: float) -> tuple[Any, ...]:
    """Row values, then ``now`` twice (a rate row inserts ``now + cost``; on conflict ``max(used, now) + cost``)."""
    values = tuple(
        v for c, n in sorted(amounts) for v in (c.subject, c.kind, c.start(now), now_us(now) + int(n) if c.rate else int(n))
    )
    return (*values, now_us(now), now_us(now))


def charge(
    url: str,
    amounts: Mapping[Counter, int],
    *,
    now: float,
    verdict: Callable[[dict[Counter, int]], Mapping[Counter, int] | None] | None = None,
) -> dict[Counter, int]:
    """Add each amount (0 reads the counter) in one transaction; return every counter's new total
    (for a rate counter: the bucket's theoretical arrival time, epoch microseconds).

    ``verdict`` sees the new totals inside the transaction, with their rows locked; if it
    raises, nothing is counted and the exception propagates. It may return new totals for
    some counters (a lease sized on what it read), written in the same transaction.
    """
    if not amounts:
        return {}
    engine = get_engine(url)
    by_key = {(c.subject, c.kind, c.start(now)): c for c in amounts}
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SET LOCAL synchronous_commit TO OFF"))
        sql = _upsert_sql(engine.dialect.name, engine.dialect.paramstyle, len(amounts))
        result = conn.exec_driver_sql(sql, _params(amounts.items(), now))
        totals = {by_key[(r[0], r[1], int(r[2]))]: int(r[3]) for r in result}
        if verdict is not None and (changed := verdict(totals)):
            update = sa.text(
                "UPDATE budget_usage SET used = :used WHERE subject = :subject AND kind = :kind AND window_start = :start"
            )
            conn.execute(update, [
                {"used": int(n), "subject": c.subject, "kind": c.kind, "start": c.start(now)}
                for c, n in sorted(changed.items())
            ])
            totals.update(changed)
    return totals


def usage(url: str, counters: Iterable[Counter], *, now: float) -> dict[Counter, int]:
    """Current totals of ``counters`` (0 where nothing was counted yet), without writing."""
    wanted = {(c.subject, c.kind, c.start(now)): c for c in counters}
    if not wanted:
        return {}
    t = BudgetUsageRow
    query = sa.select(t.subject, t.kind, t.window_start, t.used).where(
        t.subject.in_({k[0] for k in wanted}), t.window_start.in_({k[2] for k in wanted})
    )
    with get_engine(url).connect() as conn:
        found = {(r[0], r[1], r[2]): int(r[3]) for r in conn.execute(query)}
    return {c: found.get(k, 0) for k, c in wanted.items()}


def forget_old(url: str, *, now: float) -> int:
    """Delete counters of windows that ended more than ``KEEP_S`` ago, and full rate buckets; returns how many."""
    with get_engine(url).begin() as conn:
        t = BudgetUsageRow
        old_window = sa.and_(t.window_start != RATE_START, t.window_start < int(now) - KEEP_S)
        full_bucket = sa.and_(t.window_start == RATE_START, t.used < now_us(now))  # forgetting it changes nothing
        result = conn.execute(sa.delete(t).where(sa.or_(old_window, full_bucket)))
        return int(getattr(result, "rowcount", 0) or 0)


class CounterWriter(BatchWriter):
    """Adds amounts known after an answer (rows, bytes) from one daemon thread, summed per counter.

    ``add`` is a dict update under a lock (no database on the request path); the thread
    (``serving/lib/batching.py``) writes every ``interval_s``, keeps what it could not
    write (the control database down) for the next pass, and deletes old windows about
    once an hour.
    """

    thread_name = "budget-writer"

    def __init__(self, control_url: str, *, interval_s: float = 0.2, clock: Callable[[], float] = time.time) -> None:
        super().__init__(interval_s=interval_s)
        self._url = control_url
        self._clock = clock
        self._pending: collections.Counter[tuple[Counter, int]] = collections.Counter()
        self._writing: collections.Counter[tuple[Counter, int]] = collections.Counter()  # taken by a flush
        self._added: collections.Counter[tuple[Counter, int]] = collections.Counter()  # ever added, per window
        self._lock = threading.Lock()
        self._flushing = threading.Lock()  # one flush at a time (the thread, an admin read, shutdown)
        self._last_cleanup = 0.0

    def add(self, amounts: Mapping[Counter, int]) -> None:
        now = self._clock()
        with self._lock:
            for counter, n in amounts.items():
                if n > 0:
                    self._pending[(counter, counter.start(now))] += int(n)
                    self._added[(counter, counter.start(now))] += int(n)

    def give_back(self, counter: Counter, start: int, n: int) -> None:
        """Subtract ``n`` from ``counter``'s window that began at ``start`` (an unused lease, returned)."""
        if n > 0 and not counter.rate:  # a bucket's arrival time cannot be wound back safely
            with self._lock:
                self._pending[(counter, start)] -= int(n)

    def added(self, counter: Counter, start: int) -> int:
        """Everything this process has added to ``counter``'s window that began at ``start``, written or not."""
        with self._lock:
            return self._added.get((counter, start), 0)

    def pending(self, counter: Counter) -> int:
        """Amount added to ``counter``'s current window and not known to be written yet.

        An amount stays counted here until its flush has committed, so a check never misses
        it; a check that reads the counter in the instant between that commit and this
        bookkeeping sees it twice and refuses early, never late.
        """
        key = (counter, counter.start(self._clock()))
        with self._lock:
            return self._pending.get(key, 0) + self._writing.get(key, 0)

    def flush(self) -> bool:
        """Write everything added so far, now, on the calling thread. True when nothing is left."""
        with self._flushing:
            with self._lock:
                batch, self._pending = self._pending, collections.Counter()
                self._writing = batch
            try:
                return self._write(batch)
            finally:
                with self._lock:
                    self._writing = collections.Counter()

    def _write(self, batch: collections.Counter[tuple[Counter, int]]) -> bool:
        if not batch:
            return True
        rows: dict[int, dict[Counter, int]] = collections.defaultdict(dict)
        for (counter, start), n in batch.items():
            rows[start][counter] = n
        try:
            for start, amounts in rows.items():
                charge(self._url, amounts, now=float(start))
            return True
        except sa.exc.OperationalError as e:  # unreachable: kept; other errors are bugs and surface
            log.warning("budget counters not written (%s); kept for the next pass", type(e).__name__)
            with self._lock:
                self._pending.update(batch)
            return False

    def write_pass(self) -> None:
        self.flush()
        now = self._clock()
        if now - self._last_cleanup > 3600:
            self._last_cleanup = now
            with self._lock:  # windows that ended are never read again
                self._added = collections.Counter({k: n for k, n in self._added.items() if k[1] + k[0].window_s > now})
            try:
                forget_old(self._url, now=now)
            except sa.exc.DBAPIError as e:
                log.warning("old budget counters not deleted: %s", type(e).__name__)
