"""Budgets and request rates per swarm, agent and token, exact across workers and replicas.

What is counted (in the control database, ``serving/lib/counters.py``), for every swarm and
agent token whether or not the admin set a budget, so usage is known when one is set:

- ``requests``: every request of a swarm or agent token, per token, limited by
  ``AGENT_REQUESTS_PER_MINUTE`` (rule ``rate_limit``) as a token bucket of that many
  requests refilled continuously, so a burst of the whole quota is allowed and then one
  request per 60/quota seconds (kept in the database too: see ``Counter``);
- ``queries``: every ``POST /api/v1/queries/execute``, per UTC day (``query_budget``);
- ``rows`` and ``bytes`` returned (inline JSON rows, result files and samples as they are
  delivered), per UTC day (``row_budget``, ``byte_budget``);
- ``refreshes``: refresh requests, per token in the same kind of bucket
  (``AGENT_REFRESHES_PER_MINUTE``, ``refresh_rate_limit``) and per agent and swarm and
  clock hour (``refresh_budget``);
- both rates once more per swarm, all its tokens together (``SWARM_REQUESTS_PER_MINUTE``,
  ``SWARM_REFRESHES_PER_MINUTE``, the same rules): a swarm token mints agent tokens, and
  per-token buckets alone would let a swarm multiply its rate, and the Dagster runs its
  refreshes start, by minting more of them.

A route declares what it costs with ``opt={"budget": QUERY | READ}``; every other route of
a token costs one request. Queries, requests and refreshes with a limit in force are
counted before the work, in one transaction with the check, so no worker can admit one
more than the limit. Those with no limit in force (queries of a token without a query
budget, the per-subject refreshes) need no check: they go to the background writer like
rows and bytes. Rows and bytes are known only after the answer: a request that returns
rows is admitted while the day's rows and bytes are not spent (counting what this process
returned but has not written yet), and its own rows are added once answered; so one
answer in flight per worker can cross the line, and the next one is refused. While less
than half of such a budget is used, a process reads its counter at most once per
``LEASE_S`` and adds what it has returned itself since (:class:`Seen`): other processes'
answers of that moment are seen up to ``LEASE_S`` late, which only matters near the line,
and there every request reads the database.

Leases keep the database off the request path. The transaction that counts a request may
reserve a block of the counter for this process (:class:`Lease`): twice the last block
while blocks run out before they expire, at most ``1/LEASE_SHARE`` of what remains and
``LEASE_MAX``, and a single request within ``LEASE_MIN_ROOM`` of the limit, so small
quotas and the last requests of big ones are counted one by one as before. Later
requests take from the block in memory, on the event loop (no thread, no database). A
block admits for ``LEASE_S``; what is left then goes back to its window through the
writer (also on :meth:`Budgets.invalidate` and shutdown; a crash keeps it counted, which
only refuses early). A bucket's block is counted as if taken at its expiry, the latest
moment it can admit, which keeps the bucket exact (see :meth:`Budgets._grant`). Reserved
is used for every other process, so the ``RateLimit`` remaining it reports is
conservative: the limit minus what is used and what other processes hold reserved (this
process's own unused block counts as remaining).

Once a counter is found spent, this process refuses further requests on it without asking
the database again (O(1)) until it has room again (the window ends, the bucket refills one
request) or the admin changes the limit.
Every answer to a token carries ``RateLimit-Policy`` and ``RateLimit`` (IETF
draft-ietf-httpapi-ratelimit-headers): each policy in force, its quota and window, what
remains and the seconds until it resets. A feature that keeps a limit of its own adds it to
the same headers with ``report`` (``swarm-snowflake-seconds`` on answers that ran in, or were
refused by, Snowflake). The admin is never limited.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio.to_thread
import sqlalchemy as sa

from serving.lib.caller import Caller
from serving.lib.counters import Counter, CounterWriter, charge, now_us
from serving.lib.errors import TooManyRequests
from serving.lib.services import Services
from shared.control.db import session_scope
from shared.control.models import BudgetRow
from shared.settings import Settings

BUDGETS = "budgets"
STATE_KEY = "budget"
QUERY, READ, REFRESH, REQUEST = "query", "read", "refresh", "request"
DAY, HOUR, MINUTE = 86400, 3600, 60
# kind -> (BudgetRow field, window, quota unit in the headers, rule past it)
KINDS: dict[str, tuple[str, int, str, str]] = {
    "queries": ("queries_per_day", DAY, "requests", "query_budget"),
    "rows": ("rows_per_day", DAY, "rows", "row_budget"),
    "bytes": ("bytes_per_day", DAY, "content-bytes", "byte_budget"),
    "refreshes": ("refreshes_per_hour", HOUR, "requests", "refresh_budget"),
}
PER_TOKEN = {"requests": "rate_limit", "refreshes": "refresh_rate_limit"}
PER_SWARM = {"swarm-rate": "rate_limit", "swarm-refresh-rate": "refresh_rate_limit"}  # the same rates, swarm-wide
LEASE_S = 0.5  # a lease admits for this long, then what is left of it goes back
LEASE_MIN_ROOM = 64  # with less room than this, a counter is charged one request at a time
LEASE_SHARE = 8  # a lease takes at most this fraction (1/8) of the room left
LEASE_MAX = 1024


@dataclasses.dataclass(frozen=True)
class Policy:
    """One limit in force for a caller: its header name, counter, quota and the rule that refuses."""

    name: str
    counter: Counter
    limit: int
    unit: str
    rule: str


@dataclasses.dataclass
class Snapshot:
    """What a request's answer reports: the policies in force and their totals when it was admitted."""

    policies: list[Policy]
    totals: dict[Counter, int]
    at: float
    returned: dict[str, int] = dataclasses.field(default_factory=dict)
    reported: dict[str, Reported] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Reported:
    """A limit another feature keeps and checks itself, reported in the same headers (e.g. the
    swarm's Snowflake seconds of pushed-down queries): quota, window, what remains, reset."""

    limit: int
    window_s: int
    unit: str
    remaining: int
    reset_s: int


@dataclasses.dataclass
class Lease:
    """Requests of one counter reserved in the control database for this process to admit alone.

    ``total`` is the counter's database total right after the lease was taken (a bucket's
    arrival time, microseconds), so it already holds every request leased here or elsewhere.
    """

    limit: int
    start: int
    granted: int
    left: int
    total: int
    expires: float


@dataclasses.dataclass(frozen=True)
class Seen:
    """A rows or bytes counter as read from the control database: enough to estimate it for ``LEASE_S``.

    ``total`` is the database's figure plus what this process had not written yet, and
    ``added`` what this process had added to the window then (``CounterWriter.added``).
    """

    start: int
    total: int
    added: int
    expires: float


class NeedsDatabase(Exception):
    """A check that cannot be answered from this process's leases and caches alone."""


class BudgetExceeded(TooManyRequests):
    """429 past a budget or rate; carries what the refused answer still reports in its headers."""

    def __init__(self, message: str, *, snapshot: Snapshot, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.snapshot = snapshot


def subjects(caller: Caller) -> dict[str, str]:
    """Budget subjects of a caller: its agent token and its swarm (a swarm token has only the swarm)."""
    out = {}
    if caller.kind == "agent" and caller.token_id:
        out["agent"] = f"agent:{caller.token_id}"
    if caller.swarm_id:
        out["swarm"] = f"swarm:{caller.swarm_id}"
    return out


def read_limits(url: str, subject_ids: list[str]) -> dict[str, dict[str, int]]:
    """The budgets set for ``subject_ids``: subject -> {kind: limit} (kinds without a limit left out)."""
    with session_scope(url) as s:
        rows = s.execute(sa.select(BudgetRow).where(BudgetRow.subject.in_(subject_ids))).scalars().all()
    return {r.subject: {k: v for k, (field, *_) in KINDS.items() if (v := getattr(r, field)) is not None} for r in rows}


class Budgets:
    """The budget checks of one API process (the counters themselves are shared)."""

    def __init__(self, control_url: str, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        self.url = control_url
        self.requests_per_minute = settings.query.agent_rpm
        self.refreshes_per_minute = settings.query.refresh_per_minute
        self.swarm_requests_per_minute = settings.query.swarm_rpm
        self.swarm_refreshes_per_minute = settings.query.swarm_refresh_per_minute
        self.cache_ttl_s = settings.auth.token_cache_ttl_s
        self.clock = clock
        self.writer = CounterWriter(control_url, clock=clock)
        self._limits: dict[str, tuple[float, dict[str, int]]] = {}  # subject -> (read at, limits)
        self._spent: dict[Counter, tuple[float, int]] = {}  # counter -> (refused until, limit)
        self._leases: dict[Counter, Lease] = {}
        self._seen: dict[Counter, Seen] = {}
        self._returned: dict[tuple[Any, ...], tuple[Counter, ...]] = {}
        # (token, swarm, kind, action) -> (the limits they were made from, policies, amounts)
        self._policies: dict[tuple[Any, ...], tuple[tuple[dict[str, int], ...], list[Policy], dict[Counter, int]]] = {}
        self._lock = threading.Lock()
        self._swept = 0.0

    # ------------------------------------------------------------------ limits in force
    def invalidate(self) -> None:
        """Forget cached budgets and leases (after the admin changed one; other processes see it within the cache TTL)."""
        with self._lock:
            for c, lease in self._leases.items():
                self._release(c, lease)
            self._leases.clear()
            self._seen.clear()
        self._limits.clear()
        self._policies.clear()
        self._spent.clear()

    def _limits_for(self, ids: list[str], *, local: bool = False) -> dict[str, dict[str, int]]:
        now = time.monotonic()
        missing = [s for s in ids if (c := self._limits.get(s)) is None or now - c[0] > self.cache_ttl_s]
        if missing and local:
            raise NeedsDatabase
        if missing:
            found = read_limits(self.url, missing)
            if len(self._limits) > 100_000:
                self._limits.clear()
            for s in missing:
                self._limits[s] = (now, found.get(s, {}))
        return {s: self._limits[s][1] for s in ids}

    def policies(self, caller: Caller, action: str, *, local: bool = False) -> tuple[list[Policy], dict[Counter, int]]:
        """The policies to report and check for ``action``, and what the action adds to each counter.

        Worked out once per (token, action) while the subjects' limits stay the same objects (a
        re-read after the cache TTL or ``invalidate`` makes new ones): callers only read them."""
        by_scope = subjects(caller)
        limits = self._limits_for(list(by_scope.values()), local=local)
        key = (caller.token_id or caller.subject, caller.swarm_id, caller.kind, action)
        seen = tuple(limits.values())
        hit = self._policies.get(key)
        if hit is not None and len(hit[0]) == len(seen) and all(a is b for a, b in zip(hit[0], seen, strict=True)):
            return hit[1], hit[2]
        policies, amounts = self._policies_for(caller, action, by_scope, limits)
        if len(self._policies) > 100_000:
            self._policies.clear()
        self._policies[key] = (seen, policies, amounts)
        return policies, amounts

    def _policies_for(self, caller: Caller, action: str, by_scope: dict[str, str],
                      limits: dict[str, dict[str, int]]) -> tuple[list[Policy], dict[Counter, int]]:
        token = f"token:{caller.token_id or caller.subject}"
        requests = Counter(token, "requests", MINUTE, rate=True)
        policies = [Policy("requests", requests, self.requests_per_minute, "requests", PER_TOKEN["requests"])]
        amounts: dict[Counter, int] = {}
        if action == REFRESH:
            refreshes = Counter(token, "refreshes", MINUTE, rate=True)
            policies.append(Policy("refreshes", refreshes, self.refreshes_per_minute, "requests", PER_TOKEN["refreshes"]))
            amounts[refreshes] = _cost(self.refreshes_per_minute)
        else:
            amounts[requests] = _cost(self.requests_per_minute)
        if caller.swarm_id:
            name, kind, per_minute = (("swarm-refresh-rate", "refreshes", self.swarm_refreshes_per_minute)
                                      if action == REFRESH else
                                      ("swarm-rate", "requests", self.swarm_requests_per_minute))
            if per_minute > 0:
                swarm_rate = Counter(f"swarmrate:{caller.swarm_id}", kind, MINUTE, rate=True)
                policies.append(Policy(name, swarm_rate, per_minute, "requests", PER_SWARM[name]))
                amounts[swarm_rate] = _cost(per_minute)
        for scope, subject in by_scope.items():
            for kind, (_, window, unit, rule) in KINDS.items():
                counter = Counter(subject, kind, window)
                if kind in limits[subject]:
                    policies.append(Policy(f"{scope}-{kind}", counter, limits[subject][kind], unit, rule))
                if (kind == "queries" and action == QUERY) or (kind == "refreshes" and action == REFRESH):
                    amounts[counter] = 1
                elif kind in limits[subject] and kind in ("rows", "bytes") and action in (QUERY, READ):
                    amounts[counter] = 0  # read, to refuse once spent
        return policies, amounts

    # ------------------------------------------------------------------ the check
    def check(self, caller: Caller, action: str, *, local: bool = False) -> Snapshot:
        """Count ``action`` for ``caller`` and return what to report, or raise 429 naming the spent budget.

        Blocking (database) unless ``local``: then it answers from this process's leases and
        caches only, or raises :class:`NeedsDatabase` having changed nothing (see :meth:`admit`).
        """
        now = self.clock()
        policies, amounts = self.policies(caller, action, local=local)
        in_force = {p.counter: p for p in policies}
        checked = [p for p in policies if p.counter in amounts]
        for p in checked:
            until, limit = self._spent.get(p.counter, (0.0, -1))
            if (now < until and limit == p.limit) or (p.counter.rate and p.limit <= 0):
                wait = until - now if now < until else float(p.counter.window_s)
                # Reported as spent, like the first refusal: a window used up, or a bucket whose next
                # request fits in ``wait`` seconds (its arrival time one window less one cost past that).
                spent = now_us(now + wait) + p.counter.window_s * 1_000_000 - _cost(p.limit) if p.counter.rate \
                    else p.limit
                raise self._refusal(p, p.limit, now, Snapshot([p], {p.counter: spent}, now), wait_s=wait)
        background = {c: n for c, n in amounts.items() if c not in in_force}
        totals: dict[Counter, int] = {}
        taken: dict[Counter, Lease] = {}
        with self._lock:
            self._sweep(now)
            for c, n in amounts.items():
                if c in in_force and n > 0 and (lease := self._usable(c, in_force[c].limit, now)):
                    lease.left -= 1
                    taken[c] = lease
                    totals[c] = lease.total - lease.left * n  # what others reserved or used counts as used
                elif c in in_force and n == 0 and (seen := self._estimate(c, in_force[c].limit, now)) is not None:
                    totals[c] = seen
            ask = {c: n for c, n in amounts.items() if c in in_force and c not in totals}
            if ask and local:
                self._put_back(taken, now)
                raise NeedsDatabase
        if ask:
            try:
                totals.update(self._charge(policies, ask, now))
            except BudgetExceeded:
                with self._lock:
                    self._put_back(taken, now)
                raise
        self.writer.add(background)
        return Snapshot(policies, totals, now)

    def _charge(self, policies: list[Policy], ask: dict[Counter, int], now: float) -> dict[Counter, int]:
        """Lease what ``ask`` needs in one transaction: each counter with a limit gets one request's
        worth or more (see :meth:`_grant`), or the whole request is refused and nothing counted."""
        in_force = {p.counter: p for p in policies}
        with self._lock:
            wanted = {c: self._next_size(c, now) for c, n in ask.items() if n > 0}
        granted: dict[Counter, int] = {}
        seen: dict[Counter, Seen] = {}

        def verdict(totals: dict[Counter, int]) -> dict[Counter, int]:
            changed = {}
            for c, n in ask.items():
                p = in_force[c]
                if n == 0:  # rows or bytes: read, refused once spent (counting what this process has not written)
                    used = totals[c] + self.writer.pending(c)
                    seen[c] = Seen(c.start(now), used, self.writer.added(c, c.start(now)), now + LEASE_S)
                    if used >= p.limit:
                        self._remember(p, now + c.reset_in(now))
                        raise self._refusal(p, used, now, Snapshot(policies, totals, now), wait_s=c.reset_in(now))
                    continue
                k, changed[c] = self._grant(p, n, totals[c], wanted[c], now)
                if k == 0:
                    wait = (totals[c] + n - now_us(now)) / 1e6 - c.window_s if c.rate else c.reset_in(now)
                    self._remember(p, now + wait)
                    raise self._refusal(p, totals[c], now, Snapshot(policies, totals, now), wait_s=wait)
                granted[c] = k
            return changed

        totals = charge(self.url, dict.fromkeys(ask, 0), now=now, verdict=verdict)
        with self._lock:
            self._seen.update(seen)
            for c, k in granted.items():
                self._install(c, Lease(in_force[c].limit, c.start(now), k, k - 1, totals[c], now + LEASE_S), now)
                totals[c] -= (k - 1) * ask[c]
        return totals

    @staticmethod
    def _grant(p: Policy, n: int, total: int, wanted: int, now: float) -> tuple[int, int]:
        """How many requests of cost ``n`` to lease from a counter at ``total`` and its new total
        (0 when not even one fits).

        A lease takes at most ``1/LEASE_SHARE`` of the room left and is one request, counted
        exactly as without leases, once less than ``LEASE_MIN_ROOM`` remain. A bucket's lease
        is counted as if taken when it expires (``LEASE_S`` from now), the latest moment one
        of its requests can be admitted: counting a request later than it happens only makes
        the bucket fuller, so the leases never admit more than the bucket allows.
        """
        if p.counter.rate:
            window_us, at = p.counter.window_s * 1_000_000, now_us(now)
            base = max(total, at)  # the upsert already did max(used, now)
            room = (window_us - (base - at)) // n
            if room < 1:
                return 0, total
            k = min(wanted, room // LEASE_SHARE, LEASE_MAX) if room >= LEASE_MIN_ROOM else 1
            if k > 1:
                later = max(base, at + int(LEASE_S * 1_000_000))
                k = min(k, (window_us - (later - at)) // n)
                if k > 1:
                    return k, later + k * n
            return 1, base + n
        room = p.limit - total
        if room < 1:
            return 0, total
        k = max(1, min(wanted, room // LEASE_SHARE, LEASE_MAX)) if room >= LEASE_MIN_ROOM else 1
        return k, total + k * n

    # ------------------------------------------------------------------ leases (under self._lock)
    def _estimate(self, c: Counter, limit: int, now: float) -> int | None:
        """A rows or bytes counter's total from its last read plus what this process returned
        since, while that read is fresh and under half of ``limit``; else None (read it)."""
        seen = self._seen.get(c)
        if seen is None or now >= seen.expires or seen.start != c.start(now):
            return None
        total = seen.total + self.writer.added(c, seen.start) - seen.added
        return total if 2 * total < limit else None

    def _usable(self, c: Counter, limit: int, now: float) -> Lease | None:
        lease = self._leases.get(c)
        if lease is not None and lease.left > 0 and lease.limit == limit and now < lease.expires \
                and lease.start == c.start(now):
            return lease
        return None

    def _next_size(self, c: Counter, now: float) -> int:
        """Requests to ask for: twice the last lease if it ran out before it expired, else what it served."""
        lease = self._leases.get(c)
        if lease is None:
            return 1
        if lease.left == 0 and now < lease.expires:
            return min(2 * lease.granted, LEASE_MAX)
        return max(1, lease.granted - lease.left)

    def _install(self, c: Counter, lease: Lease, now: float) -> None:
        old = self._leases.get(c)
        if old is not None and self._usable(c, lease.limit, now) is old:  # two threads leased at once: keep both
            lease = Lease(lease.limit, lease.start, lease.granted + old.granted, lease.left + old.left,
                          max(lease.total, old.total), min(lease.expires, old.expires))
        elif old is not None:
            self._release(c, old)
        self._leases[c] = lease

    def _put_back(self, taken: dict[Counter, Lease], now: float) -> None:
        """Undo requests taken from leases for a request that is not admitted after all.

        Only into the lease they came from, while it is still this process's and unexpired:
        one merged or returned meanwhile no longer holds them, and they are simply lost.
        """
        for c, lease in taken.items():
            if self._leases.get(c) is lease and now < lease.expires:
                lease.left += 1

    def _release(self, c: Counter, lease: Lease) -> None:
        """Return a lease's unused part to its window (a bucket's simply lapses, see ``Counter``)."""
        self.writer.give_back(c, lease.start, lease.left)
        lease.left = 0

    def _sweep(self, now: float) -> None:
        """Return expired leases (about once per ``LEASE_S``), and forget those expired long ago."""
        if now - self._swept < LEASE_S:
            return
        self._swept = now
        for c, lease in list(self._leases.items()):
            if now >= lease.expires and lease.left:
                self._release(c, lease)
            if now - lease.expires > MINUTE:
                del self._leases[c]
        self._seen = {c: seen for c, seen in self._seen.items() if now < seen.expires}

    def _remember(self, p: Policy, until: float) -> None:
        """Refuse ``p`` in this process without the database until ``until`` (or the admin changes its limit)."""
        if len(self._spent) > 100_000:  # entries of past windows are dead weight
            self._spent = {c: v for c, v in self._spent.items() if v[0] > self.clock()}
        self._spent[p.counter] = (until, p.limit)

    async def admit(self, scope: Any, caller: Caller, action: str) -> None:
        """``check`` on a worker thread; the snapshot goes into the request state for the headers."""
        if caller.is_admin:
            return
        state = scope.setdefault("state", {})
        try:
            try:
                snapshot = self.check(caller, action, local=True)  # from a lease: no database, no thread
            except NeedsDatabase:
                snapshot = await anyio.to_thread.run_sync(self.check, caller, action)
        except BudgetExceeded as e:
            state[STATE_KEY] = _merged(state.get(STATE_KEY), e.snapshot)
            raise
        state[STATE_KEY] = _merged(state.get(STATE_KEY), snapshot)

    def _refusal(self, p: Policy, used: int, now: float, snapshot: Snapshot, *, wait_s: float) -> BudgetExceeded:
        wait = max(1, math.ceil(wait_s))
        reset = dt.datetime.fromtimestamp(now + wait_s, dt.UTC).replace(microsecond=0)
        if p.name in PER_TOKEN or p.name in PER_SWARM:
            what = "requests" if p.counter.kind == "requests" else "refreshes"
            per = "per token" if p.name in PER_TOKEN else "for all the tokens of this swarm together"
            message = f"rate limit exceeded: at most {p.limit} {what} per minute {per}; retry in {wait} s"
            details: dict[str, Any] = {"limit": p.limit, "window_s": p.counter.window_s}
            if p.name in PER_SWARM:
                details["scope"] = "swarm"
        else:
            scope, kind = p.name.split("-", 1)
            period = "day" if p.counter.window_s == DAY else "hour"
            message = (
                f"the {scope}'s {kind} budget is spent: {used} of {p.limit} {kind} this {period}; "
                f"it resets at {reset.isoformat().replace('+00:00', 'Z')} (in {wait} s)"
            )
            details = {
                "budget": p.name,
                "limit": p.limit,
                "used": used,
                "window_s": p.counter.window_s,
                "reset_at": reset.isoformat().replace("+00:00", "Z"),
            }
        return BudgetExceeded(message, snapshot=snapshot, rule=p.rule, details=details, headers={"Retry-After": str(wait)})

    # ------------------------------------------------------------------ after the answer
    def returned(self, scope: dict[str, Any], caller: Caller, *, rows: int | None, nbytes: int | None) -> None:
        """Count rows and bytes delivered to ``caller`` (written shortly after, off the request path)."""
        if caller.is_admin:
            return
        amounts = {"rows": int(rows or 0), "bytes": int(nbytes or 0)}
        snapshot = scope.setdefault("state", {}).get(STATE_KEY)
        if isinstance(snapshot, Snapshot):
            snapshot.returned = amounts
        self.writer.add({counter: amounts[counter.kind] for counter in self._returned_counters(caller)})

    def _returned_counters(self, caller: Caller) -> tuple[Counter, ...]:
        """The day counters of rows and bytes of ``caller``'s agent and swarm (made once per token)."""
        key = (caller.token_id, caller.swarm_id, caller.kind)
        found = self._returned.get(key)
        if found is None:
            if len(self._returned) > 100_000:
                self._returned.clear()
            found = self._returned[key] = tuple(Counter(s, kind, DAY) for s in subjects(caller).values()
                                                for kind in ("rows", "bytes"))
        return found

    def headers(self, snapshot: Snapshot) -> list[tuple[bytes, bytes]]:
        """``RateLimit-Policy`` and ``RateLimit`` for an answer."""
        policy, current = [], []
        for p in snapshot.policies:
            total = snapshot.totals.get(p.counter)
            if total is None:
                continue
            if p.counter.rate:  # the bucket: whole requests left before it is empty, seconds until it is full
                ahead_s = max(0.0, (total - now_us(snapshot.at)) / 1e6)
                remaining = int((p.counter.window_s - ahead_s) * p.limit / p.counter.window_s + 1e-6)
                reset = math.ceil(ahead_s)
            else:
                remaining = p.limit - total - snapshot.returned.get(p.counter.kind, 0)
                reset = math.ceil(p.counter.reset_in(snapshot.at))
            policy.append(f'"{p.name}";q={p.limit};w={p.counter.window_s};qu="{p.unit}"')
            current.append(f'"{p.name}";r={max(0, remaining)};t={max(0, reset)}')
        for name, r in snapshot.reported.items():
            policy.append(f'"{name}";q={r.limit};w={r.window_s};qu="{r.unit}"')
            current.append(f'"{name}";r={max(0, r.remaining)};t={max(0, r.reset_s)}')
        if not policy:
            return []
        return [(b"ratelimit-policy", ", ".join(policy).encode()), (b"ratelimit", ", ".join(current).encode())]

    def start(self) -> None:
        self.writer.start()

    def close(self) -> None:
        self.invalidate()  # unused leases back to their windows
        self.writer.stop()
        self.writer.flush()  # written even when the writer never ran


def _cost(per_minute: int) -> int:
    """What one request adds to a rate counter: the bucket's refill interval, in microseconds."""
    return math.ceil(MINUTE * 1_000_000 / per_minute) if per_minute > 0 else 0


def _merged(earlier: Any, later: Snapshot) -> Snapshot:
    """A second check in one request (a refresh after the request itself) reports both."""
    if not isinstance(earlier, Snapshot):
        return later
    names = {p.name for p in later.policies}
    policies = [*later.policies, *(p for p in earlier.policies if p.name not in names)]
    return Snapshot(policies, {**earlier.totals, **later.totals}, later.at, later.returned or earlier.returned,
                    {**earlier.reported, **later.reported})


def install(services: Services) -> Budgets:
    """Create the process's budgets unless a test injected them."""
    budgets = services.parts.get(BUDGETS)
    if not isinstance(budgets, Budgets):
        budgets = services.parts[BUDGETS] = Budgets(services.control_url, services.settings)
    budgets.start()
    return budgets


def get_budgets(services: Services) -> Budgets:
    return services.get(BUDGETS, Budgets)


def action_of(connection: Any) -> str:
    """What a request costs, as its route declares it (``opt={"budget": …}``)."""
    handler = connection.scope.get("route_handler")
    opt: Mapping[str, Any] = getattr(handler, "opt", None) or {}
    return str(opt.get("budget", REQUEST))


async def add_headers(message: Any, scope: Any) -> None:
    """``before_send`` hook: the rate-limit headers on every answer to a swarm or agent token."""
    if message["type"] != "http.response.start":
        return
    snapshot = (scope.get("state") or {}).get(STATE_KEY)
    if not isinstance(snapshot, Snapshot):
        return
    budgets = scope["app"].state.services.parts.get(BUDGETS)
    if isinstance(budgets, Budgets):
        message["headers"] = [*message.get("headers", []), *budgets.headers(snapshot)]


def report(request: Any, name: str, reported: Reported) -> None:
    """Add a limit kept by another feature to the headers of this request's answer (``name``
    as in ``RateLimit-Policy``); nothing for a request without budget headers (the admin)."""
    snapshot = (request.scope.get("state") or {}).get(STATE_KEY)
    if isinstance(snapshot, Snapshot):
        snapshot.reported[name] = reported


def returned(request: Any, caller: Caller, *, rows: int | None, nbytes: int | None) -> None:
    """Count rows and bytes a handler delivered to ``caller`` against its agent's and swarm's day."""
    budgets = request.app.state.services.parts.get(BUDGETS)
    if isinstance(budgets, Budgets):
        budgets.returned(request.scope, caller, rows=rows, nbytes=nbytes)
