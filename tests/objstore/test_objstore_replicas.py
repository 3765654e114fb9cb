"""Two API processes with separate data folders and no shared disk serve the same tables from
object storage (moto), published by the real sync engine from a third folder.

They share only the bucket and the control database (PostgreSQL). A first query on each
replica downloads the version; a new publish reaches both within a bound: the replica that
already serves the table downloads it before any query asks (``SERVED_POLL_INTERVAL_S`` is
0.2 s here), the other on its next query.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from pathlib import Path

import httpx
import pytest
import snowflake.connector

from orchestration.sync.engine import SyncRequest, sync_table
from shared.served import version_path
from shared.served_storage import ObjectStore
from tests.objstore.objstore_support import objstore_env, objstore_settings
from tests.orchestration.conftest import connect_kwargs, connector
from tests.serving.artifact_support import api_server

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.usefixtures("aws_env")]
VISIBLE_WITHIN_S = 20.0


def _admin(url: str) -> dict[str, str]:
    r = httpx.post(url + "/api/v1/auth/token", data={"username": "admin", "password": "admin-password"}, timeout=30)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _count(url: str, headers: dict[str, str], table: str) -> tuple[int, str]:
    r = httpx.post(url + "/api/v1/queries/execute", json={"query": f"SELECT count(*) FROM {table}"}, headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    return int(body["rows"][0][0]), str(body["tables"][0]["version"])


def _until(check, timeout_s: float) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        if check():
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout_s} s")


def test_two_replicas_without_a_shared_disk_serve_every_publish(
    tmp_path: Path, pg_url: str, served_moto: str, bucket: str, fakesnow_port: int
) -> None:
    db = "T_" + secrets.token_hex(4).upper()
    src = snowflake.connector.connect(**connect_kwargs(fakesnow_port))
    try:
        cur = src.cursor()
        for sql in (
            f"CREATE DATABASE {db}",
            f"USE DATABASE {db}",
            f"CREATE SCHEMA {db}.S",
            f"CREATE TABLE {db}.S.ITEMS (ID NUMBER(10,0), NAME TEXT)",
            f"INSERT INTO {db}.S.ITEMS SELECT seq4(), 'item' FROM TABLE(GENERATOR(ROWCOUNT => 1000))",
        ):
            cur.execute(sql)
        from shared.registry import build_registration

        table = build_registration({"schema_name": "S", "table_name": "ITEMS"}, default_database=db)
        name = f"{db.lower()}.s.items"
        writer = ObjectStore(objstore_settings(tmp_path / "dagster", pg_url, served_moto, bucket))

        def materialize() -> str:
            outcome = sync_table(
                SyncRequest(table=table, connect=connector(fakesnow_port, db), served_root=writer.root, store=writer)
            )
            return outcome.manifest.version

        homes = [tmp_path / "replica-a", tmp_path / "replica-b"]
        with (
            api_server(objstore_env(homes[0], pg_url, served_moto, bucket), tmp_path) as (url_a, _),
            api_server(objstore_env(homes[1], pg_url, served_moto, bucket), tmp_path) as (url_b, _),
        ):
            heads = {url: _admin(url) for url in (url_a, url_b)}
            first = materialize()
            for url in (url_a, url_b):  # first use: downloaded, verified, then queried
                assert _count(url, heads[url], name) == (1000, first)
            current = writer.current(table.key, fresh=True)
            assert current is not None
            written = hashlib.sha256(version_path(writer.root, current).read_bytes()).hexdigest()
            for home in homes:
                local = version_path(home / "served", current)
                assert hashlib.sha256(local.read_bytes()).hexdigest() == written

            cur.execute(f"INSERT INTO {db}.S.ITEMS SELECT seq4() + 1000, 'new' FROM TABLE(GENERATOR(ROWCOUNT => 500))")
            published_at = time.monotonic()
            second = materialize()
            newer = writer.current(table.key, fresh=True)
            assert newer is not None
            assert newer.version == second
            # Both replicas serve the table, so both fetch the new version before any query asks.
            for home in homes:
                _until(lambda home=home: version_path(home / "served", newer).exists(), VISIBLE_WITHIN_S)
            for url in (url_a, url_b):
                _until(lambda url=url: _count(url, heads[url], name) == (1500, second), VISIBLE_WITHIN_S)
            assert time.monotonic() - published_at < VISIBLE_WITHIN_S + 5
            assert not (tmp_path / "replica-a" / "served").samefile(tmp_path / "replica-b" / "served")
    finally:
        src.close()
