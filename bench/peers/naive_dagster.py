"""Peer: the Dagster asset most users would write first (SnowflakeResource -> pandas -> DuckDBResource).

Run by ``bench/compare_sync.py`` in the product's environment (Dagster is already there):
``python bench/peers/naive_dagster.py --port P --out FILE --table DB.SCHEMA.TABLE``. Prints one
JSON object: rows, seconds, peak RSS and the DuckDB type of every column it wrote.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import dagster as dg
from dagster_duckdb import DuckDBResource
from dagster_snowflake import SnowflakeResource


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--table", required=True)
    args = parser.parse_args()

    @dg.asset
    def copied(snowflake: SnowflakeResource, duckdb: DuckDBResource) -> None:
        with snowflake.get_connection() as conn:
            frame = conn.cursor().execute(f"SELECT * FROM {args.table}").fetch_pandas_all()  # noqa: F841 - read by DuckDB
        with duckdb.get_connection() as con:
            con.execute("CREATE OR REPLACE TABLE copied AS SELECT * FROM frame")

    snowflake = SnowflakeResource(account="fakesnow", user="fake", password="snow", database="DEMO",  # noqa: S106
                                  additional_snowflake_connection_args={
                                      "host": "127.0.0.1", "port": args.port, "protocol": "http",
                                      "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False}})
    t0 = time.perf_counter()
    result = dg.materialize([copied], resources={"snowflake": snowflake, "duckdb": DuckDBResource(database=args.out)})
    seconds = time.perf_counter() - t0
    assert result.success
    import duckdb

    con = duckdb.connect(args.out, read_only=True)
    rows = con.execute("SELECT count(*) FROM copied").fetchone()[0]  # type: ignore[index]
    types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_name = 'copied'").fetchall())
    print(json.dumps({"rows": rows, "seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "types": types}))


if __name__ == "__main__":
    main()
