"""Served versions in object storage: time from a publish to the first query that reads it.

One run, on a 1,000,000-row table shaped like the demo ORDERS (12 columns, random values),
against a real S3-compatible server (moto) on loopback and two API processes:

- an API with ``SERVED_STORAGE=s3`` and a data folder of its own (its cache), and
- the baseline measured in the same run: an API with ``SERVED_STORAGE=local`` reading the
  folder the writer publishes into (the single-host topology).

Figures: the version's size, upload (publish) time, time from publish to the first answer
that reads the new version on a replica that never served the table (download on first use)
and on one that serves it (the watcher downloads ahead of the query), the same for the local
baseline, and the replica's cache size afterwards. Last line: one JSON object.

Usage: ``python bench/served_objects.py [--rows N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.support import ROOT, log

KEY = "demo.public.orders"
JWT = "bench-secret-" + "x" * 40


def orders_sql(rows: int, seed: int) -> str:
    return f"""SELECT range + 1 AS order_id, (hash(range, {seed}) % 50000)::INTEGER AS customer_id,
        (hash(range, {seed} + 1) % 2000)::INTEGER AS product_id,
        TIMESTAMP '2025-01-01' + INTERVAL (range * 31) SECOND AS ordered_at,
        TIMESTAMP '2025-01-01' + INTERVAL (range * 31 + hash(range, {seed} + 2) % 259200) SECOND AS updated_at,
        (1 + hash(range, {seed} + 3) % 10)::SMALLINT AS quantity,
        ((199 + hash(range, {seed} + 4) % 99800) / 100)::DECIMAL(10,2) AS unit_price,
        ((hash(range, {seed} + 5) % 300) / 1000)::DECIMAL(4,3) AS discount,
        ((hash(range, {seed} + 6) % 1000000) / 100)::DECIMAL(14,2) AS amount,
        ['cancelled','pending','returned','shipped'][1 + range % 4] AS status,
        ['web','store','mobile'][1 + range % 3] AS channel, 'USD' AS currency FROM range({int(rows)})"""


def publish(store, rows: int, seed: int):  # type: ignore[no-untyped-def]
    from shared.served import Column

    with store.write_version(KEY, copy_previous=False) as pending:
        pending.con.execute(f"CREATE TABLE data AS {orders_sql(rows, seed)}")
        cols = pending.con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'data' ORDER BY ordinal_position"
        ).fetchall()
        t0 = time.perf_counter()
        manifest = store.publish(pending, strategy="full", row_count=rows, columns=[Column(c, t) for c, t in cols])
        return manifest, time.perf_counter() - t0


def start_api(env: dict[str, str], home: Path):  # type: ignore[no-untyped-def]
    from shared import processes

    port = processes.free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "serving.app:create_app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    proc = processes.start(cmd, env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, cwd=ROOT, log_path=home / "api.log")
    url = f"http://127.0.0.1:{port}"
    processes.wait_for_http(url + "/health", proc=proc, timeout_s=240)
    return proc, url


def until_served(url: str, headers: dict[str, str], version: str, start: float, timeout_s: float = 300) -> float:
    """Seconds from ``start`` to the first answer of a count query that reads ``version``."""
    import httpx

    with httpx.Client(base_url=url, headers=headers, timeout=120) as c:
        while time.perf_counter() - start < timeout_s:
            r = c.post("/api/v1/queries/execute", json={"query": "SELECT count(*) FROM demo.public.orders"})
            if r.status_code == 200 and r.json()["tables"][0]["version"] == version:
                return time.perf_counter() - start
            time.sleep(0.02)
    raise TimeoutError(f"version {version} not served within {timeout_s} s")


def admin(url: str) -> dict[str, str]:
    import httpx

    r = httpx.post(url + "/api/v1/auth/token", data={"username": "admin", "password": "bench-admin"}, timeout=60)
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()

    import boto3

    from shared import processes
    from shared.control.db import migrate
    from shared.served_storage import ObjectStore, ServedStore
    from shared.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="bench-served-objects-"))
    aws = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(aws)
    port = processes.free_port()
    moto = processes.start(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env={**os.environ}, log_path=work / "moto.log"
    )
    procs = [moto]
    try:
        endpoint = f"http://127.0.0.1:{port}"
        processes.wait_for_http(endpoint + "/moto-api/", proc=moto, timeout_s=60)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="served")
        db = f"sqlite:///{work / 'control.db'}"
        base = {"DATABASE_URL": db, "JWT_SECRET": JWT, "ADMIN_PASSWORD": "bench-admin", **aws}
        s3 = {"SERVED_STORAGE": "s3", "SERVED_S3_BUCKET": "served", "SERVED_S3_ENDPOINT_URL": endpoint}
        writer_env = {**base, **s3, "AGENTS_DATA_HOME": str(work / "writer")}
        migrate(db)
        writer = ObjectStore(Settings.from_env(writer_env))
        local = ServedStore(work / "local" / "served")

        log("starting the APIs (object storage, and the local baseline)")
        api_s3, url_s3 = start_api({**base, **s3, "AGENTS_DATA_HOME": str(work / "replica")}, work)
        procs.append(api_s3)
        (work / "local").mkdir()
        api_local, url_local = start_api({**base, "AGENTS_DATA_HOME": str(work / "local")}, work / "local")
        procs.append(api_local)
        heads = {url_s3: admin(url_s3), url_local: admin(url_local)}

        log(f"publishing {args.rows:,} rows (first version)")
        first, upload_first = publish(writer, args.rows, 1)
        t0 = time.perf_counter()
        first_use = until_served(url_s3, heads[url_s3], first.version, t0)
        log(f"first use on the replica: {first_use:.2f} s")

        second, upload_s = publish(writer, args.rows, 2)
        t1 = time.perf_counter()
        prefetched = until_served(url_s3, heads[url_s3], second.version, t1)
        log(f"publish to first query, replica serving the table: {prefetched:.2f} s")

        lfirst, _ = publish(local, args.rows, 1)
        until_served(url_local, heads[url_local], lfirst.version, time.perf_counter())
        lsecond, local_publish_s = publish(local, args.rows, 2)
        t2 = time.perf_counter()
        local_visible = until_served(url_local, heads[url_local], lsecond.version, t2)

        cache = sum(p.stat().st_size for p in (work / "replica" / "served").rglob("v-*.duckdb"))
        result = {
            "bench": "served_objects",
            "rows": args.rows,
            "version_bytes": second.bytes,
            "publish_s_s3": round(upload_s, 3),
            "publish_s_s3_first": round(upload_first, 3),
            "publish_s_local": round(local_publish_s, 3),
            "first_query_after_publish_s_first_use": round(first_use, 3),
            "first_query_after_publish_s_serving": round(prefetched, 3),
            "first_query_after_publish_s_local_baseline": round(local_visible, 3),
            "poll_interval_s": writer.cfg.poll_interval_s,
            "replica_cache_bytes_after_two_versions": cache,
        }
        print(json.dumps(result), flush=True)
    finally:
        for proc in reversed(procs):
            processes.stop(proc)


if __name__ == "__main__":
    main()
