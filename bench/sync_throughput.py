"""Sync throughput: our materialization against the connector's limit, on one 1,000,000-row table.

Run: ``.venv/bin/python bench/sync_throughput.py [--rows 1000000] [--repeats 3] [--no-partitions]``

What it does, in one run against a fakesnow server it starts itself (a separate process,
loopback, free port), seeded with the demo ORDERS table (12 columns, a year of orders):

1. ``limit``: the real connector's ``fetch_arrow_batches`` of ``SELECT *`` streamed
   straight into a DuckDB table, then CHECKPOINT. Nothing else.
2. ``ours``: ``dg.materialize`` of the table's asset (unpartitioned, full strategy):
   metadata query, key-range slices fetched by two connections, typed CASTs into a new
   served version, checks, publish. Timed as the whole ``materialize`` call, Dagster
   overhead included (the ephemeral instance it would create is created first, inside the
   timed span, so ``ours_dagster_instance_s`` shows its share).
3. Partitions: the same table daily-partitioned. A backfill of the whole year (ranges of
   30 partitions per run, as the backfill policy does), then one daily partition
   re-materialized with the year already served (copy-on-write of the served file).
   Then the served table is grown to ``--scale`` (50) times the year by publishing a
   synthesized version (the year plus 49 copies moved back k years, keys offset), and the
   same partition is re-materialized: ``partition_cost_ratio_50x`` is that run's time over
   the first one's (target: at most 1.5, a run costing its window, not the table).
   ``--no-partitions`` skips this phase (and its figures) when only the sync is measured.

Every phase runs in its own subprocess so peak RSS (``ru_maxrss``) is that of the process
doing the work; limit and ours alternate and the medians are reported. The last stdout
line is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TABLE = "DEMO.PUBLIC.ORDERS"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _server_cpu_s(pid: int) -> float:
    """CPU seconds used so far by the stand-in's process (and its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _settings(args: argparse.Namespace) -> Any:
    from shared.settings import Settings

    return Settings.from_env({
        "AGENTS_DATA_HOME": args.home, "SNOWFLAKE_HOST": "127.0.0.1", "SNOWFLAKE_PORT": str(args.port),
        "SNOWFLAKE_PROTOCOL": "http", "SNOWFLAKE_DATABASE": "DEMO", "SNOWFLAKE_NETWORK_TIMEOUT_S": "600",
    })


def phase_limit(args: argparse.Namespace) -> dict[str, Any]:
    import duckdb

    from shared.snowflake import connect

    settings = _settings(args)
    base_rss = _rss_mb()
    out = Path(args.home) / f"limit-{time.time_ns()}.duckdb"
    with connect(settings.snowflake) as con:
        db = duckdb.connect(str(out))
        t0, c0 = time.perf_counter(), _cpu_s()
        cur = con.cursor()
        cur.execute(f"SELECT * FROM {TABLE}")
        rows, first = 0, True
        for batch in cur.fetch_arrow_batches():
            db.register("b", batch)
            db.execute("CREATE TABLE t AS SELECT * FROM b" if first else "INSERT INTO t SELECT * FROM b")
            db.unregister("b")
            rows, first = rows + batch.num_rows, False
        db.execute("CHECKPOINT")
        seconds, cpu = time.perf_counter() - t0, _cpu_s() - c0
        db.close()
    out.unlink()
    return {"rows": rows, "seconds": seconds, "cpu_s": cpu, "base_rss_mb": base_rss, "peak_rss_mb": _rss_mb()}


def _table(args: argparse.Namespace, partitioned: bool) -> Any:
    from shared.registry import build_registration

    raw: dict[str, Any] = {"schema_name": "PUBLIC", "table_name": "ORDERS", "primary_key": ["ORDER_ID"]}
    if partitioned:
        raw["partitioning"] = {"kind": "daily", "column": "ORDERED_AT", "start": args.start}
    return build_registration(raw, default_database="DEMO")


def _resources(args: argparse.Namespace) -> dict[str, Any]:
    from orchestration.resources import ServedDataResource, snowflake_resource

    settings = _settings(args)
    return {"snowflake": snowflake_resource(settings, env={}),
            "served": ServedDataResource(home=args.home, control_url=settings.control_url,
                                         slice_rows=args.slice_rows or settings.snowflake.slice_rows)}


def _meta(result: Any) -> dict[str, Any]:
    mats = result.get_asset_materialization_events()
    return {k: v.value for k, v in mats[-1].materialization.metadata.items()}


def phase_ours(args: argparse.Namespace) -> dict[str, Any]:
    import dagster as dg

    from orchestration.assets import build_table_asset

    asset, res = build_table_asset(table=_table(args, partitioned=False)), _resources(args)
    base_rss = _rss_mb()
    t0, c0 = time.perf_counter(), _cpu_s()
    # The instance materialize would make itself, made here inside the timed span so its share shows.
    instance = dg.DagsterInstance.ephemeral()
    instance_s = time.perf_counter() - t0
    result = dg.materialize([asset], resources=res, instance=instance)
    seconds, cpu = time.perf_counter() - t0, _cpu_s() - c0
    meta = _meta(result)
    return {"rows": meta["dagster/row_count"], "seconds": seconds, "cpu_s": cpu, "engine_seconds": meta["timings_s"]["total_s"],
            "dagster_instance_s": instance_s,
            "slices": meta["slices"], "timings_s": meta["timings_s"], "base_rss_mb": base_rss, "peak_rss_mb": _rss_mb()}


def phase_partitions(args: argparse.Namespace) -> dict[str, Any]:
    """Backfill the year in ranges of 30 (engine, as each backfill run does), then one partition through Dagster."""
    import dagster as dg

    from orchestration.assets import build_table_asset
    from orchestration.partitions import MAX_PARTITIONS_PER_RUN
    from orchestration.resources import source_connection
    from orchestration.sync.engine import SyncRequest, sync_table
    from shared import partitions as sp

    table, res = _table(args, partitioned=True), _resources(args)
    pdef = build_table_asset(table=table).partitions_def
    keys = [k for k in pdef.get_partition_keys() if k >= args.start][:365]  # type: ignore[union-attr]
    base_rss = _rss_mb()
    t0 = time.perf_counter()
    runs = 0
    for i in range(0, len(keys), MAX_PARTITIONS_PER_RUN):
        sync_table(SyncRequest(table=table, connect=lambda: source_connection(res["snowflake"]),
                               served_root=res["served"].served_root(), partition_keys=keys[i:i + MAX_PARTITIONS_PER_RUN],
                               slice_rows=res["served"].rows_per_slice()))
        runs += 1
    backfill_s = time.perf_counter() - t0
    one = keys[len(keys) // 2]
    assert sp.validate_partition_key(table, one)
    asset = build_table_asset(table=table)
    dg.materialize([asset], resources=res, partition_key=keys[0])  # warm Dagster in this process
    t1 = time.perf_counter()
    meta = _meta(dg.materialize([asset], resources=res, partition_key=one))
    one_s = time.perf_counter() - t1
    scaled: dict[str, Any] = {}
    if args.scale > 1:  # the same run with the served table grown to scale x the year (synthesized, not extracted)
        synth_s, scaled_bytes = _synthesize_history(res["served"].served_root(), table, args.scale)
        t2 = time.perf_counter()
        big = _meta(dg.materialize([asset], resources=res, partition_key=one))
        scaled = {"scaled_one_partition_s": time.perf_counter() - t2, "scaled_served_rows": big["dagster/row_count"],
                  "scaled_served_bytes": scaled_bytes, "scaled_synthesis_s": synth_s,
                  "scaled_one_partition_timings_s": big["timings_s"]}
    return {"backfill_365_s": backfill_s, "backfill_runs": runs, "one_partition_s": one_s, **scaled,
            "one_partition_engine_s": meta["timings_s"]["total_s"], "one_partition_rows": meta["rows_written"],
            "one_partition_timings_s": meta["timings_s"],
            "served_rows": meta["dagster/row_count"], "served_bytes": meta["bytes_written"],
            "base_rss_mb": base_rss, "peak_rss_mb": _rss_mb()}


def _synthesize_history(served_root: Path, table: Any, scale: int) -> tuple[float, int]:
    """Publish a version holding the served year plus ``scale - 1`` copies of it, each moved back
    k years with its primary key offset, as if the table had ``scale`` years of history: the
    bench's stand-in for a table ``scale`` times the demo's, without seeding the source with it."""
    from shared.served import publish, read_current, write_version

    started = time.perf_counter()
    current = read_current(served_root, table.key)
    assert current is not None
    names = [c.name for c in current.columns]

    def expr(name: str) -> str:
        quoted = '"' + name.replace('"', '""') + '"'
        if name in table.primary_key:
            return f"{quoted} + k * 10000000000"
        if name == table.partition_column:
            return f"{quoted} - to_years(k::INTEGER)"
        return quoted

    with write_version(served_root, table.key, copy_previous=True) as pending:
        pending.con.execute(f"INSERT INTO data SELECT {', '.join(expr(n) for n in names)} "
                            f"FROM data, range(1, {int(scale)}) r(k)")
        manifest = publish(served_root, pending, strategy=current.strategy, row_count=current.row_count * scale,
                           columns=current.columns, partitions=current.partitions, watermark=current.watermark,
                           run_id=current.run_id, extra=current.extra)
    return time.perf_counter() - started, manifest.bytes


PHASES = {"limit": phase_limit, "ours": phase_ours, "partitions": phase_partitions}


def _run_phase(name: str, args: argparse.Namespace) -> dict[str, Any]:
    server_cpu = _server_cpu_s(args.server_pid)
    cmd = [sys.executable, __file__, "--phase", name, "--port", str(args.port), "--home", args.home,
           "--start", args.start, "--slice-rows", str(args.slice_rows), "--scale", str(args.scale)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=1800, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"phase {name} failed:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["server_cpu_s"] = _server_cpu_s(args.server_pid) - server_cpu  # includes the phase's start-up queries
    print(f"  {name}: {json.dumps(result)}", file=sys.stderr, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slice-rows", type=int, default=50_000,
                        help="rows per extraction slice (the recommended SYNC_SLICE_ROWS; 0: the setting's value)")
    parser.add_argument("--scale", type=int, default=50,
                        help="also time the one-partition run on a served table this many times the year (1: skip)")
    parser.add_argument("--no-partitions", action="store_true", help="skip the partition phase (3.)")
    parser.add_argument("--phase", choices=sorted(PHASES))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--home", default="")
    parser.add_argument("--start", default="")
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(PHASES[args.phase](args)))
        return

    from shared import demo, processes

    args.port = processes.free_port()
    server = processes.start([sys.executable, "-m", "fakesnow", "-s", "--host", "127.0.0.1", "-p", str(args.port)], cwd=ROOT)
    args.server_pid = server.pid
    try:
        processes.wait_for_port(args.port, proc=server, timeout_s=120)
        with tempfile.TemporaryDirectory(prefix="sync-bench-") as home:
            args.home = home
            source = demo.DemoSource(host="127.0.0.1", port=args.port, orders_rows=args.rows, owned=False)
            t0 = time.perf_counter()
            demo.seed_demo(source, rows={"CUSTOMERS": 10, "PRODUCTS": 10, "EVENTS": 10})
            seed_s = time.perf_counter() - t0
            args.start = demo_start(source)
            from shared.control.db import migrate

            migrate(_settings(args).control_url)  # as `agents-data up` does before any run
            print(f"seeded {args.rows} rows in {seed_s:.1f}s; phases:", file=sys.stderr, flush=True)
            limits, ours = [], []
            for _ in range(args.repeats):
                limits.append(_run_phase("limit", args))
                ours.append(_run_phase("ours", args))
            parts = None if args.no_partitions else _run_phase("partitions", args)
    finally:
        processes.stop(server)
    report(args, seed_s, limits, ours, parts)


def demo_start(source: Any) -> str:
    from shared.snowflake import connect

    with connect(dataclasses.replace(source.snowflake(), database="DEMO")) as con:
        cur = con.cursor()
        cur.execute(f"SELECT MIN(ORDERED_AT) FROM {TABLE}")
        return str(cur.fetchone()[0].date())


def report(args: argparse.Namespace, seed_s: float, limits: list[dict], ours: list[dict], parts: dict | None) -> None:
    limit_s = statistics.median(r["seconds"] for r in limits)
    ours_s = statistics.median(r["seconds"] for r in ours)
    engine_s = statistics.median(r["engine_seconds"] for r in ours)
    median_run = sorted(ours, key=lambda r: r["engine_seconds"])[len(ours) // 2]
    full_year_s = ours_s
    figures = {
        "rows": args.rows, "repeats": args.repeats, "slice_rows": args.slice_rows or "SYNC_SLICE_ROWS",
        "seed_s": round(seed_s, 2),
        "limit_rows_per_s": round(args.rows / limit_s), "ours_rows_per_s": round(args.rows / ours_s),
        "ratio_vs_limit": round(limit_s / ours_s, 3),
        "ours_timings_s": median_run["timings_s"],  # the engine's steps in the run of median engine time
        "ours_engine_rows_per_s": round(args.rows / engine_s), "ratio_engine_vs_limit": round(limit_s / engine_s, 3),
        "limit_s": round(limit_s, 2), "ours_s": round(ours_s, 2), "ours_slices": ours[0]["slices"],
        # CPU seconds (client process + stand-in process): independent of other load on the machine.
        "limit_cpu_s": round(statistics.median(r["cpu_s"] + r["server_cpu_s"] for r in limits), 2),
        "ours_cpu_s": round(statistics.median(r["cpu_s"] + r["server_cpu_s"] for r in ours), 2),
        "peak_rss_mb": round(max(r["peak_rss_mb"] for r in ours), 1),
        "peak_rss_mb_limit": round(max(r["peak_rss_mb"] for r in limits), 1),
        "import_rss_mb_ours": round(max(r["base_rss_mb"] for r in ours), 1),
        # Of ours_s: creating Dagster's ephemeral instance (storage imports, schema stamp), which
        # a run worker does once at start-up, before its run.
        "ours_dagster_instance_s": round(statistics.median(r["dagster_instance_s"] for r in ours), 2),
        "full_year_load_s": round(full_year_s, 2),
    }
    if parts is not None:
        figures.update(_partition_figures(args, parts, engine_s))
    figures["load_average_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(figures))


def _partition_figures(args: argparse.Namespace, parts: dict, engine_s: float) -> dict[str, Any]:
    figures = {
        "one_partition_s": round(parts["one_partition_s"], 2),
        "one_partition_engine_s": round(parts["one_partition_engine_s"], 3),
        "one_partition_rows": parts["one_partition_rows"],
        "partition_vs_full_ratio": round(parts["one_partition_engine_s"] / engine_s, 4),
        "one_partition_timings_s": parts["one_partition_timings_s"],
        "backfill_365_s": round(parts["backfill_365_s"], 2), "backfill_runs": parts["backfill_runs"],
        "served_bytes_year": parts["served_bytes"], "peak_rss_mb_partitions": round(parts["peak_rss_mb"], 1),
    }
    if "scaled_one_partition_s" in parts:
        figures.update({
            "partition_cost_ratio_50x" if args.scale == 50 else f"partition_cost_ratio_{args.scale}x":
                round(parts["scaled_one_partition_s"] / parts["one_partition_s"], 3),
            "scaled_one_partition_s": round(parts["scaled_one_partition_s"], 2),
            "scaled_served_rows": parts["scaled_served_rows"], "scaled_served_bytes": parts["scaled_served_bytes"],
            "scaled_synthesis_s": round(parts["scaled_synthesis_s"], 1),
            "scaled_one_partition_timings_s": parts["scaled_one_partition_timings_s"],
        })
    return figures


if __name__ == "__main__":
    main()
