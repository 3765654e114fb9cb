"""Full contract fuzz of the API: schemathesis over every operation of ``/docs/openapi.json``.

Run: ``.venv/bin/python bench/fuzz_api.py [--cases 500] [--scenarios 200] [--steps 8]``.

The app runs in-process (schemathesis' ASGI transport) over real served DuckDB files, a
SQLite control database, a fakesnow server for the Snowflake endpoints and the in-memory
fake Dagster; tokens of every kind (admin, swarm, agent, other-swarm agent, expired,
revoked, none) are minted through the real endpoints. The set-up and the verdicts are
those of the bounded test (tests/fuzz/api_fuzz_support.py); this run is only larger:
``--cases`` generated cases per operation (derandomized, so reproducible), then a stateful
run of ``--scenarios`` scenarios over the links schemathesis infers (in batches, with
random seeds: see ``run_stateful`` for why a batch can be aborted as flaky).

The last stdout line is one JSON object: ``cases``, ``operations``, ``operations_covered``,
``min_cases_per_operation``, ``server_errors``, ``schema_violations``, ``stateful_links``,
``stateful_calls``, ``stateful_aborted_batches``, ``statuses`` and the first few failures. Exit status 1 if any server
error or schema violation was found.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared.settings import Settings  # noqa: E402
from tests.fuzz.api_fuzz_support import fuzz_target, operations, run_stateful, run_stateless  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=500, help="generated cases per operation")
    parser.add_argument("--scenarios", type=int, default=200, help="stateful scenarios")
    parser.add_argument("--steps", type=int, default=8, help="steps per stateful scenario")
    args = parser.parse_args()

    import fakesnow

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fuzz-api-") as tmp, fakesnow.server(host="127.0.0.1", port=None) as kw:
        home = Path(tmp)
        logging.getLogger("uvicorn.access").setLevel(logging.WARNING)  # the stand-in's access log is not the report
        settings = Settings.from_env({
            "AGENTS_DATA_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'control.db'}",
            "SNOWFLAKE_HOST": "127.0.0.1", "SNOWFLAKE_PORT": str(kw["port"]), "SNOWFLAKE_PROTOCOL": "http",
            "SNOWFLAKE_DATABASE": "DEMO", "SNOWFLAKE_NETWORK_TIMEOUT_S": "20",
            "JWT_SECRET": "fuzz-secret-" + "x" * 32, "ADMIN_PASSWORD": "admin-password"})
        with fuzz_target(settings) as target:
            labels = [op.label for op in operations(target)]
            failures = run_stateless(target, args.cases)
            stateless_s = time.monotonic() - started
            stateful = run_stateful(target, args.scenarios, args.steps, derandomize=False)
            summary = target.tally.summary(labels)
    summary.update(stateful_links=stateful.links, stateful_calls=stateful.calls, stateful_scenarios=stateful.scenarios,
                   stateful_aborted_batches=stateful.aborted_batches,
                   failures=len(failures) + len(stateful.failures),
                   failure_examples=(failures + stateful.failures)[:5], cases_per_operation_target=args.cases,
                   stateless_s=round(stateless_s, 1), total_s=round(time.monotonic() - started, 1))
    for label in labels:
        print(f"{label}: {target.tally.cases[label]} cases", file=sys.stderr)
    print(json.dumps(summary))
    return 1 if summary["server_errors"] or summary["schema_violations"] or summary["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
