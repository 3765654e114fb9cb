"""Chaos benchmark: the full counts of the chaos scenarios in ``tests/chaos/``.

Run: ``.venv/bin/python bench/chaos.py [--only materialize|api_workers|control_db|dagster_down]``
(``TEST_POSTGRES_URL`` must name a PostgreSQL server for the Dagster scenario).

The same tests as the CI versions, with ``CHAOS_FULL=1``:
- ``materialization_kills``: 50 ``kill -9`` of a materialization, every named point
  (copy, extraction, merge, checks, publish, the file rename and the CURRENT write) in
  both modes, then random points and random moments; each time the served data is the
  last complete version, and the next run succeeds;
- ``api_worker_kills``: 20 workers killed mid-upload and 20 mid-query (``API_WORKERS=2``);
- ``control_db_outage``: a private PostgreSQL stopped 10 s under load;
- ``dagster_webserver_outage``: the Dagster webserver stopped 30 s under load.

Each test writes its counts to a shared file; the last stdout line is one JSON object
``{"passed": bool, "exit_code": int, "duration_s": float, "scenarios": {name: counts}}``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = {
    "materialize": "tests/chaos/test_chaos_materialize.py",
    "api_workers": "tests/chaos/test_chaos_api_workers.py",
    "control_db": "tests/chaos/test_chaos_control_db.py",
    "dagster_down": "tests/chaos/test_chaos_dagster_down.py",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--only", choices=sorted(MODULES), action="append", help="run only these scenarios")
    args = parser.parse_args()
    chosen = args.only or list(MODULES)
    with tempfile.TemporaryDirectory(prefix="chaos-bench-") as tmp:
        counts = Path(tmp) / "counts.json"
        env = {**os.environ, "CHAOS_FULL": "1", "CHAOS_COUNTS_FILE": str(counts)}
        t0 = time.monotonic()
        code = 0
        for name in chosen:  # one module at a time: each starts its own processes
            done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:randomly", "-o", "timeout=1800",
                                   MODULES[name]], cwd=ROOT, env=env, check=False)
            code = code or done.returncode
        scenarios = json.loads(counts.read_text()) if counts.exists() and counts.read_text().strip() else {}
    print(json.dumps({"passed": code == 0, "exit_code": code, "duration_s": round(time.monotonic() - t0, 1),
                      "scenarios": scenarios}, sort_keys=True))
    return code


if __name__ == "__main__":
    sys.exit(main())
