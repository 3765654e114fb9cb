"""Peer: dlt's ``sql_database`` source with the pyarrow backend into DuckDB.

Runs in its own virtual environment, made by ``bench/peers.py`` (dlt is not a dependency
of the product): ``python dlt_sync.py --port P --out FILE --schema S --table T``. Prints one
JSON object: rows, seconds, peak RSS and the DuckDB type of every column it wrote.
"""

from __future__ import annotations

import argparse
import json
import resource
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--chunk-size", type=int, default=50_000)
    args = parser.parse_args()

    import dlt
    import duckdb
    import sqlalchemy as sa
    from dlt.sources.sql_database import sql_table

    engine = sa.create_engine("snowflake://fake:snow@fakesnow/DEMO", connect_args={
        "host": "127.0.0.1", "port": args.port, "protocol": "http",
        "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False}})
    pipeline = dlt.pipeline(pipeline_name="bench_dlt", destination=dlt.destinations.duckdb(args.out),
                            dataset_name="bench", progress=None)
    t0 = time.perf_counter()
    source = sql_table(credentials=engine, table=args.table, schema=args.schema, backend="pyarrow",
                       chunk_size=args.chunk_size, reflection_level="full_with_precision")
    pipeline.run(source)
    seconds = time.perf_counter() - t0
    con = duckdb.connect(args.out, read_only=True)
    name = args.table.lower()
    rows = con.execute(f'SELECT count(*) FROM bench."{name}"').fetchone()[0]  # type: ignore[index]
    types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_schema = 'bench' AND table_name = ? AND column_name NOT LIKE '\\_dlt%' ESCAPE '\\'",
                             [name]).fetchall())
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "types": types}))


if __name__ == "__main__":
    main()
