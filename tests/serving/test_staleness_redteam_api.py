"""What the API tells agents about staleness and failures: catalog, refresh answers, ``min_freshness``.

Dagster is the fake GraphQL server (``dagster_fake.py``); served versions are published with
the manifest fields a real run writes (``source_read_at``, partitions' ``read_at``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from shared import status
from shared.served import table_dir as served_dir
from shared.settings import Settings
from shared.snowflake import connect
from tests.conftest import publish_table
from tests.serving import sync_support
from tests.serving.dagster_fake import FakeDagster
from tests.serving.helpers import assert_error
from tests.serving.sync_support import SCHEMA, register_body

sync_source = sync_support.sync_source
fake_dagster = sync_support.fake_dagster
app = sync_support.app

Client = TestClient[Litestar]


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, query=dataclasses.replace(settings.query, refresh_per_minute=100))


def _source(settings: Settings, sql: str) -> None:
    with connect(settings.snowflake) as con:
        cur = con.cursor()
        try:
            cur.execute(sql)
        finally:
            cur.close()


@pytest.fixture
def table(api_settings: Settings, sync_source: str) -> str:
    """A fresh source table DEMO.SYNCTEST.GONE_<hex> (dropped by the tests that want it gone)."""
    name = "GONE_" + secrets.token_hex(3).upper()
    _source(api_settings, f"CREATE TABLE DEMO.{SCHEMA}.{name} (ID NUMBER(10,0), UPDATED_AT TIMESTAMP_NTZ)")
    _source(api_settings, f"INSERT INTO DEMO.{SCHEMA}.{name} VALUES (1, '2025-01-01 00:00:00')")
    return name


def _register(client: Client, admin: dict[str, str], name: str, **extra: Any) -> str:
    r = client.post("/api/v1/sync/tables/register", json=register_body(name.lower(), **extra), headers=admin)
    assert r.status_code == 201, r.text
    return str(r.json()["table"])


def _served_now(settings: Settings, key: str) -> None:
    """A version served a moment ago, recorded as a run's success would be."""
    manifest = publish_table(settings.served_path, key, "SELECT 1::BIGINT AS ID")
    status.record_success(settings.control_url, key, manifest, "run-1")


@dataclasses.dataclass
class World:
    client: Client
    admin: dict[str, str]
    settings: Settings
    dagster: FakeDagster
    make_swarm: Callable[..., dict[str, Any]]
    agent_headers: Callable[..., dict[str, str]]

    def register(self, name: str, **extra: Any) -> tuple[str, dict[str, str]]:
        """Register DEMO.SYNCTEST.<name>; the key and an agent granted it."""
        key = _register(self.client, self.admin, name, **extra)
        return key, self.agent_headers(self.make_swarm([key])["id"])


@pytest.fixture
def world(request: pytest.FixtureRequest) -> World:
    return World(*(request.getfixturevalue(name) for name in (  # type: ignore[arg-type]
        "client", "admin_headers", "api_settings", "fake_dagster", "make_swarm", "agent_headers")))


@pytest.mark.parametrize("strategy", ["full", "incremental"])
def test_a_dropped_source_is_never_already_fresh_and_never_started(world: World, table: str, strategy: str) -> None:
    """The catalog said ``stale: the source table is missing`` while a refresh of the same table
    answered ``already_fresh`` (its copy was young), or started a run that could only fail."""
    client, settings = world.client, world.settings
    extra = {"strategy": "incremental", "incremental_key": "updated_at", "primary_key": ["id"]} \
        if strategy == "incremental" else {}
    key, h = world.register(table, freshness="1d", **extra)
    _served_now(settings, key)
    _source(settings, f"DROP TABLE DEMO.{SCHEMA}.{table}")
    status.record_source_presence(settings.control_url, missing=[key], present=[])  # the sensor's tick
    entry = client.get(f"/api/v1/data/tables/{key}", headers=h).json()
    assert entry["freshness"]["status"] == "stale"
    assert "source table is missing" in entry["freshness"]["reason"]
    r = client.post(f"/api/v1/data/tables/{key}/refresh", headers=h)
    error = assert_error(r, 409, rule="source_missing")
    assert "missing" in error["message"]
    assert not world.dagster.runs, "no run was launched for a table that is gone"
    # Re-created: the refresh runs again (nothing claims the old copy is fresh).
    _source(settings, f"CREATE TABLE DEMO.{SCHEMA}.{table} (ID NUMBER(10,0), UPDATED_AT TIMESTAMP_NTZ)")
    _source(settings, f"INSERT INTO DEMO.{SCHEMA}.{table} VALUES (2, '2025-02-01 00:00:00')")
    again = client.post(f"/api/v1/data/tables/{key}/refresh", headers=h)
    assert again.status_code == 202, again.text
    assert again.json()["outcome"] == "started"


# -- partitioned tables served in part --------------------------------------------------------------------


def _partitioned(settings: Settings, key: str, served: list[str]) -> None:
    """A version holding ``served`` partitions, each read a moment ago (as a run records them)."""
    manifest = publish_table(settings.served_path, key, "SELECT 1::BIGINT AS ID")
    now = dt.datetime.now(dt.UTC).isoformat()
    parts = {k: {"rows": 1, "run_id": "r", "materialized_at": now, "read_at": now} for k in served}
    manifest = dataclasses.replace(manifest, partitions=parts, extra={"source_read_at": now})
    folder = served_dir(settings.served_path, key)
    (folder / "CURRENT").write_text(manifest.to_json(), encoding="utf-8")
    status.record_success(settings.control_url, key, manifest, "run-1")


LAYOUTS = ("daily", "hourly", "monthly")


def _keys(kind: str) -> list[str]:
    """Every partition key of a ``kind`` table starting a little before now, up to its newest complete window."""
    from shared.partitions import KEY_FORMATS, latest_key
    from shared.registry import build_registration

    back = {"daily": dt.timedelta(days=3), "hourly": dt.timedelta(hours=3), "monthly": dt.timedelta(days=70)}[kind]
    start = (dt.datetime.now(dt.UTC) - back).date().isoformat()
    reg = build_registration({"table_name": "x", "schema_name": "s", "partitioning": {
        "kind": kind, "column": "c", "start": start}}, default_database="d")
    newest = latest_key(reg)
    assert newest is not None
    at = dt.datetime.fromisoformat(start).replace(tzinfo=dt.UTC)
    if kind == "monthly":
        at = at.replace(day=1)
    keys: list[str] = []
    while (k := at.strftime(KEY_FORMATS[kind])) <= newest:
        keys.append(k)
        at = at + dt.timedelta(hours=1) if kind == "hourly" else (
            at + dt.timedelta(days=1) if kind == "daily" else (at + dt.timedelta(days=32)).replace(day=1))
    return keys


@pytest.mark.parametrize("kind", LAYOUTS)
@pytest.mark.parametrize("gap", ["newest", "oldest"])
def test_a_partly_backfilled_table_is_not_fresh_and_a_refresh_fills_it(
        world: World, table: str, kind: str, gap: str) -> None:
    """A table whose newest complete window (or an older one) was never served was ``fresh`` in
    the catalog as soon as any partition ran, and a refresh answered ``already_fresh``: an agent's
    count over it was silently short."""
    keys = _keys(kind)
    start = keys[0][:10]
    key, h = world.register(table, freshness="1d", partitioning={"kind": kind, "column": "updated_at", "start": start})
    world.dagster.partition_keys["/".join(key.split("."))] = keys
    missing = keys[-1] if gap == "newest" else keys[0]
    _partitioned(world.settings, key, [k for k in keys if k != missing])
    entry = world.client.get(f"/api/v1/data/tables/{key}", headers=h).json()
    fresh = entry["freshness"]
    assert fresh["status"] == "stale", fresh
    assert fresh["partitions"] | {"missing_keys": None} == {"expected": len(keys), "served": len(keys) - 1,
                                                            "missing": 1, "newest": keys[-1], "missing_keys": None}
    assert fresh["partitions"]["missing_keys"] == [missing]
    assert missing in fresh["reason"]
    r = world.client.post(f"/api/v1/data/tables/{key}/refresh", headers=h)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["outcome"] == "started"
    assert missing in body["partitions"], body
    admin = world.client.get(f"/api/v1/sync/status/{SCHEMA.lower()}/{table.lower()}", headers=world.admin).json()
    assert admin["freshness"]["status"] == "stale", "the admins' status reads the same facts"


def test_every_partition_served_is_fresh(world: World, table: str) -> None:
    keys = _keys("daily")
    key, h = world.register(table, freshness="1d", partitioning={"kind": "daily", "column": "updated_at",
                                                                 "start": keys[0]})
    world.dagster.partition_keys["/".join(key.split("."))] = keys
    _partitioned(world.settings, key, keys)
    fresh = world.client.get(f"/api/v1/data/tables/{key}", headers=h).json()["freshness"]
    assert fresh["status"] == "fresh", fresh
    assert fresh["partitions"]["missing"] == 0
    r = world.client.post(f"/api/v1/data/tables/{key}/refresh", headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "already_fresh"
