"""Shared fixtures: the fakesnow server, control databases (SQLite and PostgreSQL), settings.

Everything a test starts binds to 127.0.0.1 on a free port and is stopped by PID.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from shared import processes
from shared.served import Manifest
from shared.settings import Settings

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "")


free_port = processes.free_port  # older tests import it from here

TESTS = Path(__file__).resolve().parent
SERIAL_FOLDERS = (TESTS / "e2e", TESTS / "chaos")


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups into the node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that start platforms, API processes or fork servers (and ``serial`` ones, which load
    the machine or bound wall time) run one after another on one xdist worker (group
    ``serial``), while the other worker runs the rest: two platforms at once would fight over
    the two cores and PostgreSQL's connections. Tests on the session's
    shared e2e platform run last (stable order otherwise), so it is up only at the end, and
    ``shared_last`` ones (they start sensors) after all of those."""
    grouping = bool(getattr(config.option, "loadgroup", False))  # set on xdist workers under --dist loadgroup
    for item in items:
        if item.get_closest_marker("e2e") or item.get_closest_marker("serial") or \
                any(p in SERIAL_FOLDERS for p in item.path.parents):
            item.add_marker(pytest.mark.xdist_group("serial"))
            if grouping:
                _tell_xdist_the_group(item, "serial")
    items.sort(key=lambda item: ("shared_platform" in getattr(item, "fixturenames", ()),
                                 item.get_closest_marker("shared_last") is not None))


def _tell_xdist_the_group(item: pytest.Item, group: str) -> None:
    """Suffix ``@group`` to the item's node id, which is how an xdist worker tells the controller
    an item's group. pytest-xdist 3.8 writes the suffix to ``item._nodeid``, which pytest 9 no
    longer reads (the id lives in ``item._id``), so without this every group is ignored."""
    from _pytest.nodeid import coerce_node_id

    if not item.nodeid.endswith(f"@{group}"):
        item._id = coerce_node_id(f"{item.nodeid}@{group}")  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def fakesnow_port() -> Iterator[int]:
    """A fakesnow server (server mode) for the whole session, reached through the real connector."""
    import fakesnow

    with fakesnow.server(host="127.0.0.1", port=None) as kwargs:
        yield int(kwargs["port"])


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def sqlite_url(home: Path) -> str:
    return f"sqlite:///{home / 'control.db'}"


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """A URL to a fresh schema on the PostgreSQL server named by TEST_POSTGRES_URL, dropped after
    use (skips without it). For fixtures of any scope; ``pg_url`` is the per-test one."""
    if not POSTGRES_URL:
        pytest.skip("TEST_POSTGRES_URL is not set (.ci/run sets it to the local PostgreSQL server)")
    from shared.control.db import normalize_url

    schema = "t_" + secrets.token_hex(6)
    engine = sa.create_engine(normalize_url(POSTGRES_URL))
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    url = f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    try:
        yield url
    finally:
        # The control database keeps one engine per URL for the process's life: its pooled
        # connections to this schema would stay open after the test, and a worker running many
        # such tests (some from a dozen threads) passes the server's max_connections.
        from shared.control.db import get_engine

        get_engine(url).dispose()
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema per test on the server named by TEST_POSTGRES_URL."""
    with postgres_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def control_url(request: pytest.FixtureRequest) -> str:
    """The control database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def settings(home: Path, sqlite_url: str, fakesnow_port: int) -> Settings:
    """Settings pointing at a temporary home, SQLite control DB and the session's fakesnow server."""
    env = {
        "AGENTS_DATA_HOME": str(home),
        "DATABASE_URL": sqlite_url,
        "SNOWFLAKE_HOST": "127.0.0.1",
        "SNOWFLAKE_PORT": str(fakesnow_port),
        "SNOWFLAKE_PROTOCOL": "http",
        "SNOWFLAKE_DATABASE": "DEMO",
        "SNOWFLAKE_NETWORK_TIMEOUT_S": "20",
        "JWT_SECRET": "test-secret-" + "x" * 32,
        "ADMIN_PASSWORD": "admin-password",
    }
    return Settings.from_env(env)


def publish_table(served_root: Path, key: str, select_sql: str, *, strategy: str = "full",
                  descriptions: dict[str, str] | None = None) -> Manifest:
    """Publish a served version of ``key`` whose rows come from a DuckDB SELECT.

    Lets serving tests run over real served files without a Dagster run.
    """
    from shared.served import Column, publish, write_version

    with write_version(served_root, key, copy_previous=False) as pending:
        pending.con.execute(f"CREATE TABLE data AS {select_sql}")
        cols = pending.con.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_name = 'data' ORDER BY ordinal_position"
        ).fetchall()
        rows = pending.con.execute("SELECT count(*) FROM data").fetchone()[0]
        columns = [Column(name=c[0], type=c[1], nullable=c[2] == "YES", description=(descriptions or {}).get(c[0], ""))
                   for c in cols]
        return publish(served_root, pending, strategy=strategy, row_count=rows, columns=columns)


@pytest.fixture
def publish() -> object:
    """The ``publish_table`` helper as a fixture."""
    return publish_table
