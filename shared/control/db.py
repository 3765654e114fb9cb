"""Engine, sessions and migrations for the control database.

Why: SQLite is the zero-setup default and PostgreSQL the production choice; both get
the same Alembic migrations, run at every process start (idempotent, and guarded by
a lock so concurrent starters don't race). SQLite gets WAL and a busy timeout, since a
Dagster run worker and the API write it at the same time.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config

_MIGRATIONS = Path(__file__).parent / "migrations"
_migrate_lock = threading.Lock()


def normalize_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs and use the psycopg 3 driver for them."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


@functools.cache
def get_engine(url: str) -> Engine:
    """One engine per URL per process."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


@functools.cache
def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


_REVISION = re.compile(r"^(down_)?revision(?:\s*:[^=]*)?=\s*['\"]?([^'\"\s]+)", re.MULTILINE)


@functools.cache
def head_revisions() -> frozenset[str]:
    """Heads of the migration graph, read from the version files without importing Alembic
    (a test checks they equal Alembic's own heads)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (_MIGRATIONS / "versions").glob("*.py"):
        for down, value in _REVISION.findall(path.read_text()):
            (parents if down else revisions).add(value)
    return frozenset(revisions - parents - {"None"})


def _at_head(engine: Engine) -> bool:
    """True when the schema is already current: one SELECT, no Alembic import. Every
    process start (and every Dagster run worker) checks this, so it must be cheap."""
    try:
        with engine.connect() as conn:
            current = {row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))}
    except DBAPIError:  # no version table yet
        return False
    return bool(current) and current == head_revisions()


@functools.cache
def _migrated(url: str) -> bool:
    engine = get_engine(url)
    if _at_head(engine):
        return True
    from alembic import command

    with _migrate_lock, engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # Serialise concurrent starters (API replicas, Dagster processes).
            conn.execute(text("SELECT pg_advisory_xact_lock(727274)"))
        cfg = alembic_config(url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    return True


def migrate(url: str) -> None:
    """Bring the control database to the latest schema (once per process)."""
    _migrated(url)
