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


@pytest.mark.parametrize("strategy", ["full", "incremental"])
def test_a_dropped_source_is_never_already_fresh_and_never_started(
        client: Client, admin_headers: dict[str, str], make_swarm: Callable[..., dict[str, Any]],
        agent_headers: Callable[..., dict[str, str]], api_settings: Settings, fake_dagster: FakeDagster,
        table: str, strategy: str) -> None:
    """The catalog said ``stale: the source table is missing`` while a refresh of the same table
    answered ``already_fresh`` (its copy was young), or started a run that could only fail."""
    extra = {"strategy": "incremental", "incremental_key": "updated_at", "primary_key": ["id"]} \
        if strategy == "incremental" else {}
    key = _register(client, admin_headers, table, freshness="1d", **extra)
    _served_now(api_settings, key)
    h = agent_headers(make_swarm([key])["id"])
    _source(api_settings, f"DROP TABLE DEMO.{SCHEMA}.{table}")
    status.record_source_presence(api_settings.control_url, missing=[key], present=[])  # the sensor's tick
    entry = client.get(f"/api/v1/data/tables/{key}", headers=h).json()
    assert entry["freshness"]["status"] == "stale"
    assert "source table is missing" in entry["freshness"]["reason"]
    r = client.post(f"/api/v1/data/tables/{key}/refresh", headers=h)
    error = assert_error(r, 409, rule="source_missing")
    assert "missing" in error["message"]
    assert not fake_dagster.runs, "no run was launched for a table that is gone"
    # Re-created: the refresh runs again (nothing claims the old copy is fresh).
    _source(api_settings, f"CREATE TABLE DEMO.{SCHEMA}.{table} (ID NUMBER(10,0), UPDATED_AT TIMESTAMP_NTZ)")
    _source(api_settings, f"INSERT INTO DEMO.{SCHEMA}.{table} VALUES (2, '2025-02-01 00:00:00')")
    again = client.post(f"/api/v1/data/tables/{key}/refresh", headers=h)
    assert again.status_code == 202, again.text
    assert again.json()["outcome"] == "started"
