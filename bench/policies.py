"""Policy-view benchmark: the same point and aggregate queries on a table read raw and through a grant policy.

Run: ``.venv/bin/python bench/policies.py [--rows 1000000] [--iterations 300] [--repeats 3]``.

One served 1,000,000-row table (the serving benchmark's ``orders``), queried in-process through
``QueryEngine.execute`` (guard, grant-scoped instance, limits) by two callers:
- ``raw``: an agent under no rule that applies to this table (the unmasked baseline);
- ``policy``: an agent whose grant hashes ``customer_id``, shows ``note`` partially, excludes
  ``score`` and carries a row filter every row passes (``amount >= 0``), so both sides return
  the same rows and the difference is the policy alone.

The policy side reads its policy copy (built once per version and plan; ``build_s`` is
that one-time cost, paid by the first query after a sync). Each case runs ``--iterations``
queries per repeat, alternating raw/policy repeats, and the median repeat's p50 is kept.
The last stdout line is one JSON object with ``p50_ratio`` (the worse of point and
aggregate, policy / raw; target 1.1) and each case's p50 in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.support import log, publish_select  # noqa: E402

KEY = "demo.public.orders"
POINT = "select * from orders where id = ?"
AGG = "select status, count(*) as n, sum(amount) as total, avg(quantity) as q from orders group by status order by status"


def publish(served: Path, rows: int) -> Path:
    return publish_select(served, KEY, f"""SELECT range AS id, range % 50000 AS customer_id,
        ['new','paid','shipped','returned','cancelled'][1 + range % 5] AS status,
        ((range % 100000) / 100)::DECIMAL(12,2) AS amount, 1 + range % 9 AS quantity,
        TIMESTAMP '2025-01-01' + INTERVAL (range) SECOND AS created_at, 'note ' || range AS note,
        range % 7 = 0 AS flagged, range * 1.5 AS score, 'EU' AS region FROM range({int(rows)})""", rows)


def p50_ms(engine, caller, sql: str, params_of, n: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        engine.execute(caller, sql, params=params_of())
        times.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from serving.lib.caller import Caller
    from serving.queries.engine import QueryEngine
    from shared.policies import PolicySet, Rule
    from shared.settings import Settings

    with tempfile.TemporaryDirectory(prefix="bench-policies-") as tmp:
        settings = Settings.from_env({"AGENTS_DATA_HOME": tmp, "JWT_SECRET": "bench-" + "x" * 40})
        log(f"publishing {args.rows:,} rows")
        publish(settings.served_path, args.rows)
        engine = QueryEngine(settings)
        grants = frozenset({KEY})
        raw = Caller(kind="agent", subject="raw", token_id="t1", swarm_id="s1",  # noqa: S106 (an id, not a secret)
                     grants=grants, policy=PolicySet("s1"))
        rule = Rule(exclude=("score",), masks=(("customer_id", "hash"), ("note", "partial")), row_filter="amount >= 0")
        guarded = Caller(kind="agent", subject="policy", token_id="t2", swarm_id="s2", grants=grants,  # noqa: S106
                         policy=PolicySet("s2", rules={KEY: (rule,)}))
        try:
            t0 = time.perf_counter()
            engine.execute(guarded, "select count(*) from orders")  # builds the policy copy once
            build_s = time.perf_counter() - t0
            assert engine.manifests([KEY], guarded)[0].extra.get("policy"), "the policy side must read a policy copy"
            rng = random.Random(7)  # noqa: S311 (query ids, not secrets)

            def point() -> list[int]:
                return [rng.randrange(args.rows)]

            cases = {"point": (POINT, point, args.iterations), "aggregate": (AGG, lambda: None, max(20, args.iterations // 10))}
            for sql, params_of, _ in cases.values():  # warm both instances and the guard cache
                for caller in (raw, guarded):
                    p50_ms(engine, caller, sql, params_of, 5)
            results: dict[str, dict[str, float]] = {}
            for name, (sql, params_of, n) in cases.items():
                runs: dict[str, list[float]] = {"raw": [], "policy": []}
                for _ in range(args.repeats):
                    runs["raw"].append(p50_ms(engine, raw, sql, params_of, n))
                    runs["policy"].append(p50_ms(engine, guarded, sql, params_of, n))
                results[name] = {side: round(statistics.median(v), 3) for side, v in runs.items()}
                log(f"{name}: raw p50 {results[name]['raw']:.3f} ms, policy p50 {results[name]['policy']:.3f} ms")
        finally:
            engine.close()
    ratios = {name: round(r["policy"] / r["raw"], 3) for name, r in results.items()}
    print(json.dumps({"bench": "policies", "rows": args.rows, "p50_ratio": max(ratios.values()), "ratios": ratios,
                      "p50_ms": results, "build_s": round(build_s, 3), "target_ratio": 1.1}))


if __name__ == "__main__":
    main()
