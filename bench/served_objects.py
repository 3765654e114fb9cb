"""Served versions in object storage: time from a publish to the first query that reads it.

One run, on the demo ORDERS table (1,000,000 rows, 12 columns) copied from the local
Snowflake stand-in by the sync engine, against a real S3-compatible server (moto) on
loopback and two API processes:

- an API with ``SERVED_STORAGE=s3`` and a data folder of its own (its cache), and
- the baseline measured in the same run: an API with ``SERVED_STORAGE=local`` reading the
  folder the writer publishes into (the single-host topology).

Figures: the version's size, the publish step's time (upload and the control-database
switch, against the local rename), time from publish to the first answer
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


def stand_in(port: int):  # type: ignore[no-untyped-def]
    """A connector session on the local stand-in's DEMO database."""
    import snowflake.connector

    return snowflake.connector.connect(
        user="fake",
        password="snow",  # noqa: S106 - the stand-in's fixed login
        account="fakesnow",
        host="127.0.0.1",
        port=port,
        protocol="http",
        database="DEMO",
        network_timeout=120,
        session_parameters={"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False},
    )


def sync(store, registration, port: int):  # type: ignore[no-untyped-def]
    """One full materialization of the demo ORDERS table into ``store`` (the sync engine, as a run does);
    returns its manifest and the seconds its publish step took."""
    import contextlib

    from orchestration.sync.engine import SyncRequest, sync_table

    @contextlib.contextmanager
    def connect():  # type: ignore[no-untyped-def]
        con = stand_in(port)
        try:
            yield con
        finally:
            con.close()

    outcome = sync_table(SyncRequest(table=registration, connect=connect, served_root=store.root, store=store))
    return outcome.manifest, outcome.timings["publish_s"]


def add_a_day_of_orders(port: int, rows: int) -> None:
    """New rows in the source, so the next version differs (as a day of new orders would)."""
    con = stand_in(port)
    try:
        con.cursor().execute(
            "INSERT INTO DEMO.PUBLIC.ORDERS SELECT ORDER_ID + 10000000, CUSTOMER_ID, PRODUCT_ID, "
            "ORDERED_AT, UPDATED_AT, QUANTITY, UNIT_PRICE, DISCOUNT, AMOUNT, STATUS, CHANNEL, CURRENCY "
            f"FROM DEMO.PUBLIC.ORDERS WHERE ORDER_ID <= {int(rows)}"
        )
    finally:
        con.close()


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

    from shared import demo, processes
    from shared.control.db import migrate
    from shared.registry import build_registration
    from shared.served_storage import ObjectStore, ServedStore
    from shared.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="bench-served-objects-"))
    aws = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(aws)
    port, sf_port = processes.free_port(), processes.free_port()
    moto = processes.start(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env={**os.environ}, log_path=work / "moto.log"
    )
    procs = [moto]
    try:
        stand_in = processes.start(
            [sys.executable, "-m", "fakesnow", "-s", "--host", "127.0.0.1", "-p", str(sf_port)],
            cwd=ROOT,
            log_path=work / "fakesnow.log",
        )
        procs.append(stand_in)
        endpoint = f"http://127.0.0.1:{port}"
        processes.wait_for_http(endpoint + "/moto-api/", proc=moto, timeout_s=60)
        processes.wait_for_port(sf_port, proc=stand_in, timeout_s=120)
        log(f"seeding the demo ORDERS table ({args.rows:,} rows)")
        demo.seed_demo(
            demo.DemoSource(host="127.0.0.1", port=sf_port, orders_rows=args.rows, owned=False),
            rows={"CUSTOMERS": 10, "PRODUCTS": 10, "EVENTS": 10},
        )
        orders = build_registration(
            {"schema_name": "PUBLIC", "table_name": "ORDERS", "strategy": "full", "primary_key": ["ORDER_ID"]},
            default_database="DEMO",
        )
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

        log("first version: sync, upload, publish")
        first, upload_first = sync(writer, orders, sf_port)
        t0 = time.perf_counter()
        first_use = until_served(url_s3, heads[url_s3], first.version, t0)
        log(f"first use on the replica: {first_use:.2f} s")
        lfirst, _ = sync(local, orders, sf_port)
        until_served(url_local, heads[url_local], lfirst.version, time.perf_counter())

        add_a_day_of_orders(sf_port, args.rows // 365)
        second, upload_s = sync(writer, orders, sf_port)
        t1 = time.perf_counter()
        prefetched = until_served(url_s3, heads[url_s3], second.version, t1)
        log(f"publish to first query, replica serving the table: {prefetched:.2f} s")
        lsecond, local_publish_s = sync(local, orders, sf_port)
        t2 = time.perf_counter()
        local_visible = until_served(url_local, heads[url_local], lsecond.version, t2)
        cache = sum(p.stat().st_size for p in (work / "replica" / "served").rglob("v-*.duckdb"))
        result = {
            "bench": "served_objects",
            "rows": args.rows,
            "version_bytes": second.bytes,
            "first_version_bytes": first.bytes,
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
