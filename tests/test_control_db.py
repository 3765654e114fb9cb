"""The control database migrates and stores registrations on SQLite and PostgreSQL alike."""

import pytest
from sqlalchemy import inspect

from shared import registry
from shared.control.db import get_engine, migrate
from shared.registry import RegistrationError, build_registration


def test_migrations_create_every_table(control_url: str) -> None:
    migrate(control_url)
    names = set(inspect(get_engine(control_url)).get_table_names())
    expected = {"registered_tables", "table_status", "swarms", "tokens", "query_jobs", "artifacts", "audit_log", "sync_requests"}
    assert expected <= names


def test_registering_twice_updates_without_duplicating(control_url: str) -> None:
    migrate(control_url)
    raw = {"table_name": "orders", "schema_name": "public", "strategy": "FULL", "description": "v1"}
    _, created = registry.save(control_url, build_registration(raw, default_database="demo"))
    assert created
    _, created = registry.save(control_url, build_registration({**raw, "description": "v2"}, default_database="demo"))
    assert not created
    rows = registry.list_registered(control_url)
    assert [(r.key, r.description, r.strategy) for r in rows] == [("demo.public.orders", "v2", "full")]


def test_soft_delete_keeps_history(control_url: str) -> None:
    migrate(control_url)
    registry.save(control_url, build_registration({"table_name": "t", "schema_name": "s"}, default_database="d"))
    assert registry.soft_delete(control_url, "d.s.t")
    assert registry.list_registered(control_url) == []
    assert not registry.soft_delete(control_url, "d.s.t")
    from sqlalchemy import text

    with get_engine(control_url).connect() as c:
        assert c.execute(text("select count(*) from registered_tables where deleted_at is not null")).scalar() == 1


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"schedule": "every hour"}, "schedule"),
        ({"schedule": "61 * * * *"}, "schedule"),
        ({"freshness": "soon"}, "freshness"),
        ({"freshness": 10}, "freshness"),
        ({"strategy": "sometimes"}, "strategy"),
        ({"partitioning": {"kind": "weekly", "column": "d"}}, "partitioning.kind"),
        ({"partitioning": {"kind": "daily", "column": "d"}}, "partitioning.start"),
        ({"partitioning": {"kind": "daily", "column": "d", "start": "2025-13-01"}}, "partitioning.start"),
        ({"partitioning": {"kind": "static", "column": "d", "values": []}}, "partitioning.values"),
        ({"strategy": "incremental", "primary_key": ["id"]}, "incremental_key"),
        ({"strategy": "incremental", "incremental_key": "u"}, "primary_key"),
        ({"table_name": "a;drop"}, "table_name"),
    ],
)
def test_invalid_registration_names_the_field(raw: dict, field: str) -> None:
    base = {"table_name": "t", "schema_name": "s"}
    with pytest.raises(RegistrationError) as err:
        build_registration({**base, **raw}, default_database="d")
    assert err.value.field == field


def test_head_revisions_read_without_alembic_match_alembic(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from alembic.script import ScriptDirectory

    from shared.control import db

    script = ScriptDirectory.from_config(db.alembic_config(f"sqlite:///{tmp_path / 'c.db'}"))
    assert db.head_revisions() == frozenset(script.get_heads())


def test_the_fast_path_sees_a_current_schema_and_only_that(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    from shared.control import db

    url = f"sqlite:///{tmp_path / 'c.db'}"
    engine = db.get_engine(url)
    assert not db._at_head(engine), "no version table yet"
    db.migrate(url)
    assert db._at_head(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = 'older'"))
    assert not db._at_head(engine), "an older schema takes the Alembic path"


@pytest.mark.parametrize("given", ["FULL", "full", " Full ", "Incremental", "SNAPSHOT"])
def test_strategy_is_accepted_in_any_case_and_spacing(given: str) -> None:
    extra = {"incremental_key": "u", "primary_key": ["id"]} if "ncremental" in given else {}
    reg = build_registration({"table_name": "t", "schema_name": "s", "strategy": given, **extra}, default_database="d")
    assert reg.strategy == given.strip().lower()
