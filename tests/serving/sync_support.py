"""Fixtures shared by the sync and refresh API tests: source tables in the stand-in, a fake Dagster.

Imported as a pytest plugin by ``test_sync*.py`` and ``test_refresh*.py``
(``pytest_plugins`` is only allowed in the root conftest, so they import the fixtures).
"""

from __future__ import annotations

import dataclasses

import pytest
from litestar import Litestar

from serving.app import create_app
from shared.settings import Settings
from shared.snowflake import connect
from tests.serving.dagster_fake import FakeDagster


async def in_process_load_check(tables: list[dict[str, object]]) -> dict[str, object]:
    """The registration load check of ``python -m orchestration.loadcheck``, run in the test process:
    the same verdict without an interpreter start per registration."""
    from orchestration.loadcheck import check

    return check(list(tables))  # type: ignore[arg-type]

SCHEMA = "SYNCTEST"
ITEMS = "demo.synctest.items"
EVENTS = "demo.synctest.events"
DAYS = [f"2025-01-{d:02d}" for d in range(1, 11)]
# A daily-partitioned VISITS table the late-data refresh tests make in the stand-in themselves.
VISITS = "demo.synctest.visits"
VISITS_SOURCE = f"DEMO.{SCHEMA}.VISITS"
VISITS_PATH = "demo/synctest/visits"
VISITS_REFRESH = f"/api/v1/data/tables/{VISITS}/refresh"


def source_sql(settings: Settings, *statements: str) -> None:
    """Run ``statements`` in the stand-in's DEMO database (a test changing its source table)."""
    with connect(dataclasses.replace(settings.snowflake, database="DEMO")) as con:
        cur = con.cursor()
        for sql in statements:
            cur.execute(sql)
        cur.close()


@pytest.fixture(scope="session")
def sync_source(fakesnow_port: int) -> str:
    """DEMO.SYNCTEST.ITEMS (unpartitioned) and DEMO.SYNCTEST.EVENTS (a DATE column) in the stand-in."""
    settings = Settings.from_env({"SNOWFLAKE_HOST": "127.0.0.1", "SNOWFLAKE_PORT": str(fakesnow_port),
                                  "SNOWFLAKE_PROTOCOL": "http", "SNOWFLAKE_DATABASE": "DEMO",
                                  "SNOWFLAKE_NETWORK_TIMEOUT_S": "20"})
    with connect(settings.snowflake) as con:
        cur = con.cursor()
        cur.execute("CREATE DATABASE IF NOT EXISTS DEMO")
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS DEMO.{SCHEMA}")
        cur.execute(f"CREATE OR REPLACE TABLE DEMO.{SCHEMA}.ITEMS (ID NUMBER(10,0), NAME TEXT, UPDATED_AT TIMESTAMP_NTZ)")
        cur.execute(f"INSERT INTO DEMO.{SCHEMA}.ITEMS VALUES (1, 'a', '2025-01-01 00:00:00'), (2, 'b', '2025-01-02 00:00:00')")
        cur.execute(f"CREATE OR REPLACE TABLE DEMO.{SCHEMA}.EVENTS (ID NUMBER(10,0), DAY DATE, KIND TEXT)")
        cur.execute(f"INSERT INTO DEMO.{SCHEMA}.EVENTS VALUES (1, '2025-01-01', 'x')")
        cur.close()
    return SCHEMA


@pytest.fixture
def fake_dagster(api_settings: Settings, sync_source: str) -> FakeDagster:
    from shared.control.db import migrate

    migrate(api_settings.control_url)
    return FakeDagster(api_settings.control_url, partition_keys={"demo/synctest/events": DAYS})


@pytest.fixture
def app(api_settings: Settings, fake_dagster: FakeDagster) -> Litestar:
    """The API with the fake Dagster injected as its GraphQL client."""
    app = create_app(api_settings)
    app.state.services.parts["dagster"] = fake_dagster.client(api_settings.dagster)
    app.state.services.parts["load_check"] = in_process_load_check
    return app


def register_body(table: str = "items", **extra: object) -> dict[str, object]:
    return {"table_name": table, "schema_name": SCHEMA.lower(), **extra}


EVENTS_BODY = register_body("events", partitioning={"kind": "DAILY", "column": "day", "start": "2025-01-01"})
