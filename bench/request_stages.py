"""Where a point query's time goes inside the API, stage by stage (used by bench/serving.py).

Run: ``.venv/bin/python bench/request_stages.py --home <AGENTS_DATA_HOME with a served orders table>
--token <agent token> [--requests 2000]`` with the same environment as the API under test.

The real app (``serving.app:create_app``) runs in this process behind Litestar's test client,
and the functions that make up each stage are wrapped with a timer (class attributes and
module globals looked up at call time, so every caller goes through the wrapper, on any
thread):

- ``auth``: resolving the caller (token signature, revocation and grants cache), and
  ``budgets``: ``Budgets.admit``, counting the request against its token's rate and its
  budgets (from a lease in memory, or the control database when the lease is out);
- ``guard_cache``: ``QueryEngine.guard_cached`` (the guard's answer for a repeated text);
- ``slot``: ``Limiter.take_slot`` plus ``give_slot`` (the per-agent concurrency slot);
- ``instance_acquire``: ``InstanceCache.acquire`` plus ``release`` (the grant-scoped DuckDB instance);
- ``query``: the statement and its fetch (``JsonRows.read``, which includes encoding the rows);
- ``access_log``: the access line's fields and the request metrics, after the answer;
- ``json_encode``: every ``formats.encode_json`` call (rows and the answer around them);
- ``audit_submit``: handing the audit row to the writer (on the request path), and
  ``audit_write_per_row``: the writer thread's database insert, per row (off the path).

Figures are microseconds per request (mean over ``--requests`` sequential point queries
after a warm-up), with ``request_total`` the whole request through the test client. The
wrappers cost about a microsecond each. The last stdout line is the JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import random
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

POINT = "select * from orders where id = ?"

_lock = threading.Lock()
_totals: dict[str, float] = defaultdict(float)
_counts: dict[str, int] = defaultdict(int)


def _add(stage: str, seconds: float) -> None:
    with _lock:
        _totals[stage] += seconds
        _counts[stage] += 1


def _timed(stage: str, fn: Any) -> Any:
    if asyncio.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def awrapper(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return await fn(*a, **k)
            finally:
                _add(stage, time.perf_counter() - t)
        return awrapper

    @functools.wraps(fn)
    def wrapper(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            _add(stage, time.perf_counter() - t)
    return wrapper


def _instrument() -> None:
    from serving.auth import deps
    from serving.lib import accesslog, audit, budgets, formats, limits, results
    from serving.queries import engine, instances

    deps.resolve_caller = _timed("auth", deps.resolve_caller)  # type: ignore[assignment]
    budgets.Budgets.admit = _timed("budgets", budgets.Budgets.admit)  # type: ignore[method-assign]
    accesslog.AccessLog._record = staticmethod(_timed("access_log", accesslog.AccessLog._record))  # type: ignore[method-assign]
    engine.QueryEngine.guard_cached = _timed("guard_cache", engine.QueryEngine.guard_cached)  # type: ignore[method-assign]
    limits.Limiter.take_slot = _timed("slot", limits.Limiter.take_slot)  # type: ignore[method-assign]
    limits.Limiter.give_slot = _timed("slot", limits.Limiter.give_slot)  # type: ignore[method-assign]
    instances.InstanceCache.acquire = _timed("instance_acquire", instances.InstanceCache.acquire)  # type: ignore[method-assign]
    instances.InstanceCache.release = _timed("instance_acquire", instances.InstanceCache.release)  # type: ignore[method-assign]
    results.JsonRows.read = _timed("query", results.JsonRows.read)  # type: ignore[method-assign]
    formats.encode_json = _timed("json_encode", formats.encode_json)
    audit.AuditWriter.submit = _timed("audit_submit", audit.AuditWriter.submit)  # type: ignore[method-assign]
    audit.AuditWriter._write = _timed("audit_write_batch", audit.AuditWriter._write)  # type: ignore[method-assign]


def profile(token: str, requests: int, rows: int) -> dict[str, Any]:
    _instrument()
    from litestar.testing import TestClient

    from serving.app import create_app

    app = create_app()
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(7)  # noqa: S311 - ids for a benchmark
    with TestClient(app) as client:
        for _ in range(200):  # warm: instance, guard cache, token cache
            client.post("/api/v1/queries/execute", json={"query": POINT, "params": [rng.randrange(rows)]}, headers=headers)
        from serving.lib.audit import get_audit

        get_audit(app.state.services).flush()
        with _lock:
            _totals.clear()
            _counts.clear()
        started = time.perf_counter()
        for _ in range(requests):
            r = client.post("/api/v1/queries/execute", json={"query": POINT, "params": [rng.randrange(rows)]},
                            headers=headers)
            if r.status_code != 200:
                raise RuntimeError(f"point query answered {r.status_code}: {r.text[:300]}")
        total = time.perf_counter() - started
        get_audit(app.state.services).flush()
    with _lock:
        per_request = {k: round(v / requests * 1e6, 1) for k, v in _totals.items()}
        audit_batches = _counts.get("audit_write_batch", 0)
    per_request["audit_write_per_row"] = per_request.pop("audit_write_batch", 0.0)
    per_request["request_total"] = round(total / requests * 1e6, 1)
    return {"stages_us": per_request, "requests": requests, "audit_batches": audit_batches}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--token", required=True)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    print(json.dumps(profile(args.token, args.requests, args.rows)))


if __name__ == "__main__":
    main()
