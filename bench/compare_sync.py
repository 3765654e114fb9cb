"""Sync side by side: our materialization, the connector limit, dlt and a naive Dagster asset, on one table.

Run: ``.venv/bin/python bench/compare_sync.py [--rows 1000000]``

One fakesnow server (started here, loopback) is seeded with the demo ORDERS table
(``--rows`` rows, 12 columns: integers, decimals, timestamps, text). Each system then
copies it into a DuckDB file, in its own process, one after another:

- ``ours``: ``dg.materialize`` of the table's asset (``bench/sync_throughput.py --phase ours``);
- ``limit``: the connector's ``fetch_arrow_batches`` straight into DuckDB (``--phase limit``);
- ``dlt``: dlt's ``sql_database`` source, pyarrow backend, DuckDB destination, in its own
  environment (``bench/peers.py``);
- ``naive_dagster``: ``SnowflakeResource`` -> pandas -> ``DuckDBResource`` (``bench/peers/naive_dagster.py``).

For each: rows/s, peak RSS of the process doing the work, and type fidelity: how many
columns kept their source type (``NUMBER(p,s)`` as ``DECIMAL(p,s)``, ``TIMESTAMP_NTZ``
without a time zone, text as ``VARCHAR``), with the differences listed. The last stdout
line is one JSON object with ``systems`` (name to figures) and ``ratio_vs_limit`` per system.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BENCH = ROOT / "bench"


def _last_json(out: str) -> dict[str, Any]:
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)  # type: ignore[no-any-return]
    raise RuntimeError(f"no JSON line in: {out[-2000:]}")


class PeerFailed(RuntimeError):
    """A system did not finish the copy; its last error line is the report's figure."""


def _run(cmd: list[str], timeout_s: float = 3600) -> dict[str, Any]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=ROOT, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        raise PeerFailed(lines[-1][:400] if lines else f"exit {done.returncode}")
    return _last_json(done.stdout)


def _expected(kind: str, precision: Any, scale: Any) -> str:
    kind = kind.upper()
    if kind in ("NUMBER", "DECIMAL", "NUMERIC"):
        return f"DECIMAL({precision},{scale})"
    if kind == "TIMESTAMP_NTZ":
        return "TIMESTAMP"
    if kind in ("TEXT", "VARCHAR", "STRING"):
        return "VARCHAR"
    return kind


_INT_DIGITS = {"TINYINT": 2, "SMALLINT": 4, "INTEGER": 9, "BIGINT": 18, "HUGEINT": 38}


def _same(expected: str, got: str) -> bool:
    """Whether ``got`` holds every value of the source type exactly (an integer type wide
    enough for ``NUMBER(p,0)`` counts; a narrower precision, inferred from the data, does not)."""
    got = got.upper().replace(" ", "")
    if expected == "TIMESTAMP":
        return got.startswith("TIMESTAMP") and "TIMEZONE" not in got and "TZ" not in got
    if expected.startswith("DECIMAL("):
        p, s = (int(x) for x in expected[8:-1].split(","))
        if got.startswith("DECIMAL("):
            p2, s2 = (int(x) for x in got[8:-1].split(","))
            return s2 == s and p2 >= p
        return s == 0 and _INT_DIGITS.get(got, 0) >= p
    return got == expected


def fidelity(source: dict[str, str], got: dict[str, str]) -> dict[str, Any]:
    lower = {k.lower(): v for k, v in got.items()}
    diffs = {name: f"{want} -> {lower.get(name.lower(), 'missing')}" for name, want in source.items()
             if not _same(want, lower.get(name.lower(), ""))}
    return {"types_kept": f"{len(source) - len(diffs)}/{len(source)}", "type_changes": diffs,
            "decimals_exact": not any(want.startswith("DECIMAL") for want in (source[n] for n in diffs))}


def _served_types(home: Path) -> dict[str, str]:
    import duckdb

    newest = max(home.rglob("v-*.duckdb"), key=lambda p: p.stat().st_mtime)
    con = duckdb.connect(str(newest), read_only=True)
    try:
        return dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                "WHERE table_schema = 'main' ORDER BY ordinal_position").fetchall())
    finally:
        con.close()


def _system(name: str, port: int, home: Path, common: list[str]) -> tuple[dict[str, Any], dict[str, str] | None]:
    """Run one system's copy in its own process; returns its figures and the column types it wrote."""
    from bench import peers

    if name in ("limit", "ours"):
        got = _run([sys.executable, str(BENCH / "sync_throughput.py"), "--phase", name, *common])
        return got, (_served_types(home) if name == "ours" else None)
    if name == "dlt":
        got = _run([str(peers.python_for("dlt")), str(BENCH / "peers" / "dlt_sync.py"), "--port", str(port),
                    "--out", str(home / "dlt.duckdb"), "--schema", "PUBLIC", "--table", "ORDERS"])
    else:
        got = _run([sys.executable, str(BENCH / "peers" / "naive_dagster.py"), "--port", str(port),
                    "--out", str(home / "naive.duckdb"), "--table", "DEMO.PUBLIC.ORDERS"])
    return got, got.pop("types")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--only", nargs="*", default=["limit", "ours", "dlt", "naive_dagster"])
    args = parser.parse_args()

    from bench import peers
    from bench.sync_throughput import demo_start
    from shared import demo, processes
    from shared.snowflake import connect

    port = processes.free_port()
    server = processes.start([sys.executable, "-m", "fakesnow", "-s", "--host", "127.0.0.1", "-p", str(port)], cwd=ROOT)
    systems: dict[str, dict[str, Any]] = {}
    try:
        processes.wait_for_port(port, proc=server, timeout_s=120)
        with tempfile.TemporaryDirectory(prefix="compare-sync-") as tmp:
            home = Path(tmp)
            source = demo.DemoSource(host="127.0.0.1", port=port, orders_rows=args.rows, owned=False)
            demo.seed_demo(source, rows={"CUSTOMERS": 10, "PRODUCTS": 10, "EVENTS": 10})
            start = demo_start(source)
            import dataclasses

            with connect(dataclasses.replace(source.snowflake(), database="DEMO")) as con:
                cur = con.cursor()
                cur.execute("SELECT column_name, data_type, numeric_precision, numeric_scale "
                            "FROM DEMO.information_schema.columns WHERE table_schema = 'PUBLIC' "
                            "AND table_name = 'ORDERS' ORDER BY ordinal_position")
                wanted = {name: _expected(kind, p, s) for name, kind, p, s in cur.fetchall()}
            from bench.sync_throughput import _settings
            from shared.control.db import migrate

            common = ["--port", str(port), "--home", str(home), "--start", start]
            migrate(_settings(argparse.Namespace(home=str(home), port=port)).control_url)
            for name in args.only:
                print(f"{name}...", file=sys.stderr, flush=True)
                t0 = time.perf_counter()
                try:
                    got, types = _system(name, port, home, common)
                except PeerFailed as e:
                    systems[name] = {"failed": str(e), "wall_s": round(time.perf_counter() - t0, 2)}
                    print(f"  failed: {e}", file=sys.stderr, flush=True)
                    continue
                seconds = float(got["seconds"])
                systems[name] = {"rows": got["rows"], "seconds": round(seconds, 2),
                                 "rows_per_s": round(int(got["rows"]) / seconds),
                                 "peak_rss_mb": round(float(got["peak_rss_mb"]), 1),
                                 "wall_s": round(time.perf_counter() - t0, 2),
                                 **(fidelity(wanted, types) if types is not None else {})}
                print(f"  {json.dumps(systems[name])}", file=sys.stderr, flush=True)
    finally:
        processes.stop(server)
    limit = systems.get("limit", {}).get("seconds")
    figures = {"rows": args.rows, "source_types": wanted, "systems": systems,
               "ratio_vs_limit": {k: round(limit / v["seconds"], 3) for k, v in systems.items() if "seconds" in v}
               if limit else {},
               "versions": {"dlt": peers.version_of("dlt", "dlt")} if "dlt" in systems else {}}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
