"""Registration races: simultaneous registrations of one new table leave exactly one live row.

A partial unique index on live keys (migration ``0002_lifecycle``) plus an
``ON CONFLICT DO NOTHING`` insert in ``registry.save`` make this hold across processes;
checked on PostgreSQL (the production control database) through the API and through
``save`` itself, and on SQLite.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import TestClient

from serving.app import create_app
from shared import registry
from shared.control.db import alembic_config, get_engine, migrate, normalize_url
from shared.settings import Settings
from tests.serving import sync_support
from tests.serving.dagster_fake import FakeDagster
from tests.serving.helpers import admin_token, bearer
from tests.serving.sync_support import ITEMS, register_body

sync_source = sync_support.sync_source
N = 8


def _live_rows(url: str, key: str) -> int:
    with get_engine(url).connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM registered_tables WHERE key = :k AND deleted_at IS NULL"),
                                {"k": key}).scalar_one())


def _all_at_once(n: int, work: Callable[[int], Any]) -> list[Any]:
    barrier = threading.Barrier(n)

    def go(i: int) -> Any:
        barrier.wait(timeout=30)
        return work(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(go, range(n)))


def _reg(key_suffix: str, description: str = "") -> registry.RegisteredTable:
    raw = {"schema_name": "PUBLIC", "table_name": f"RACE_{key_suffix}", "description": description}
    return registry.build_registration(raw, default_database="DEMO")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_concurrent_saves_of_a_new_table_make_one_live_row(backend: str, request: pytest.FixtureRequest) -> None:
    url = str(request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url"))
    migrate(url)
    for round_ in range(5):
        reg = _reg(f"{backend}_{round_}")
        results = _all_at_once(N, lambda i, reg=reg: registry.save(url, dataclasses.replace(reg, description=f"d{i}")))
        assert [created for _, created in results].count(True) == 1, results
        assert _live_rows(url, reg.key) == 1
        assert registry.get_registered(url, reg.key) is not None


def test_a_deleted_registration_stays_as_history_and_the_key_registers_again(pg_url: str) -> None:
    migrate(pg_url)
    reg = _reg("again")
    assert registry.save(pg_url, reg)[1] is True
    assert registry.soft_delete(pg_url, reg.key)
    assert registry.save(pg_url, reg)[1] is True
    assert registry.save(pg_url, dataclasses.replace(reg, description="changed"))[1] is False
    with get_engine(pg_url).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM registered_tables WHERE key = :k"),
                            {"k": reg.key}).scalar_one() == 2
    assert _live_rows(pg_url, reg.key) == 1
    assert registry.get_registered(pg_url, reg.key).description == "changed"  # type: ignore[union-attr]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migration_keeps_the_newest_of_existing_duplicates(backend: str, request: pytest.FixtureRequest) -> None:
    from alembic import command

    url = str(request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url"))
    engine = sa.create_engine(normalize_url(url))
    with engine.begin() as conn:
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        for description in ("old", "new"):
            conn.execute(sa.text(
                "INSERT INTO registered_tables (key, database, schema_name, table_name, strategy, partition_kind, "
                "partition_values, lookback_s, primary_key, description, created_at, updated_at) VALUES "
                "('demo.public.dup', 'DEMO', 'PUBLIC', 'DUP', 'full', 'none', '[]', 0, '[]', :d, "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"), {"d": description})
        command.upgrade(cfg, "head")
    engine.dispose()
    assert _live_rows(url, "demo.public.dup") == 1
    assert registry.get_registered(url, "demo.public.dup").description == "new"  # type: ignore[union-attr]


@pytest.fixture
def pg_api(api_settings: Settings, pg_url: str, sync_source: str) -> Iterator[tuple[TestClient[Litestar], str]]:
    settings = dataclasses.replace(api_settings, database_url=pg_url)
    migrate(pg_url)
    fake = FakeDagster(pg_url)
    app = create_app(settings)
    app.state.services.parts["dagster"] = fake.client(settings.dagster)
    with TestClient(app) as client:
        yield client, pg_url


def test_simultaneous_api_registrations_on_postgres_make_one_row(pg_api: tuple[TestClient[Litestar], str]) -> None:
    client, url = pg_api
    headers = bearer(admin_token(client))
    answers = _all_at_once(6, lambda _i: client.post("/api/v1/sync/tables/register", json=register_body(),
                                                     headers=headers))
    assert all(r.status_code in (200, 201) for r in answers), [r.text for r in answers]
    assert [r.status_code for r in answers].count(201) == 1, [r.status_code for r in answers]
    assert _live_rows(url, ITEMS) == 1
    listed = client.get("/api/v1/sync/tables", headers=headers).json()["tables"]
    assert [t["table"] for t in listed].count(ITEMS) == 1
