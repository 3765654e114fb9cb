"""Every benchmark in sequence, then ``bench/REPORT.md`` with its plots: ``python -m bench`` or ``agents-data bench``.

Run it on an otherwise idle machine: ``python -m bench [--quick] [--only NAME ...] [--skip NAME ...]``.
Each benchmark runs as its own process (``bench/<script>.py``) with the arguments below;
its last stdout line (one JSON object) is kept in ``bench/results/<name>.json``. A
benchmark that fails is recorded with its exit code and the tail of its output, and the
run goes on. ``--quick`` runs every benchmark at a small size, to check the pipeline in a
few minutes; its figures are not the report's. ``--report-only`` rebuilds the report from
the kept results.

The report (``bench/report.py``) holds the machine, the versions, the date, the figures
and PNG plots in ``bench/report/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"


@dataclasses.dataclass(frozen=True)
class Bench:
    name: str
    script: str
    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()
    timeout_s: float = 3600.0
    needs_postgres: bool = False


SUITE = (
    Bench("compare_sync", "compare_sync.py", (), ("--rows", "100000")),
    Bench("sync_throughput", "sync_throughput.py", (), ("--rows", "100000", "--repeats", "1")),
    Bench("serving", "serving.py", (), ("--rows", "100000", "--duration", "2", "--repeats", "1")),
    Bench("compare_serving", "compare_serving.py", (), ("--rows", "100000", "--duration", "2", "--repeats", "1")),
    Bench("exports", "exports.py", (), ("--rows", "100000", "--repeats", "1")),
    Bench("profile_sample", "profile_sample.py", (), ("--rows", "1000000", "--repeats", "3", "--mb", "10")),
    Bench("refresh_latency", "refresh_latency.py", (), ("--refreshes", "3", "--no-baseline")),
    Bench("backfill_latency", "backfill_latency.py", (), ("--refreshes", "2", "--no-baseline")),
    Bench("mcp_latency", "mcp_latency.py", (), ("--calls", "50")),
    Bench("policies", "policies.py", (), ("--rows", "100000", "--iterations", "50", "--repeats", "1")),
    Bench("budgets", "budgets.py", (), ("--requests", "100")),
    Bench("served_objects", "served_objects.py", (), ("--rows", "100000")),
    Bench("isolation", "isolation.py", ("--compare",), ("--duration", "10")),
    Bench("load", "load.py", ("--out", str(RESULTS / "load")), ("--duration", "60", "--out", str(RESULTS / "load")),
          timeout_s=7200, needs_postgres=True),
    Bench("chaos", "chaos.py", (), (), timeout_s=7200),
    Bench("fuzz_api", "fuzz_api.py", (), ("--cases", "30", "--scenarios", "10")),
)


def _last_json(text: str) -> dict[str, object] | None:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{") and line.endswith("}"):
            try:
                return json.loads(line)  # type: ignore[no-any-return]
            except json.JSONDecodeError:
                continue
    return None


def run_one(bench: Bench, *, quick: bool) -> dict[str, object]:
    """Run one benchmark and keep its record: figures, exit code, duration, and the output's tail on failure."""
    script = BENCH / bench.script
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=False).stdout.strip() or "unknown"
    record: dict[str, object] = {"name": bench.name, "script": f"bench/{bench.script}", "quick": quick,
                                 "commit": commit,
                                 "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                 "load_average_before": os.getloadavg()}
    if not script.exists():
        return {**record, "skipped": "no such script"}
    if bench.needs_postgres and not os.environ.get("TEST_POSTGRES_URL"):
        return {**record, "skipped": "TEST_POSTGRES_URL is not set"}
    args = [sys.executable, str(script), *(bench.quick if quick else bench.full)]
    print(f"== {bench.name}: {' '.join(args[1:])}", file=sys.stderr, flush=True)
    t0 = time.monotonic()
    try:
        done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=bench.timeout_s, check=False)
        out, err, code = done.stdout, done.stderr, done.returncode
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err, code = f"timed out after {bench.timeout_s:.0f} s", -1
    record.update(duration_s=round(time.monotonic() - t0, 1), exit_code=code, figures=_last_json(out))
    if code != 0 or record["figures"] is None:
        record["output_tail"] = (out[-1500:] + "\n" + err[-3000:]).strip()
    print(f"   exit {code} in {record['duration_s']} s", file=sys.stderr, flush=True)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes: checks the pipeline, not the figures")
    parser.add_argument("--only", nargs="*", help="run only these benchmarks")
    parser.add_argument("--skip", nargs="*", default=[], help="skip these benchmarks")
    parser.add_argument("--report-only", action="store_true", help="rebuild REPORT.md from bench/results/")
    args = parser.parse_args(argv)
    from bench import report

    names = {b.name for b in SUITE}
    unknown = sorted({*(args.only or []), *args.skip} - names)
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    if not args.report_only:
        RESULTS.mkdir(parents=True, exist_ok=True)
        for bench in SUITE:
            if (args.only and bench.name not in args.only) or bench.name in args.skip:
                continue
            record = run_one(bench, quick=args.quick)
            (RESULTS / f"{bench.name}.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    path = report.write(RESULTS, BENCH / "REPORT.md", BENCH / "report")
    print(f"report: {path.relative_to(ROOT)}", file=sys.stderr)
    failed = [json.loads(p.read_text())["name"] for p in sorted(RESULTS.glob("*.json"))
              if json.loads(p.read_text()).get("exit_code") not in (0, None)]
    print(json.dumps({"report": str(path.relative_to(ROOT)), "failed": failed}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
