"""Real-process fixtures for end-to-end tests (see ``tests/e2e/platform.py`` for what runs).

Reusable pieces:

- ``e2e_platform`` (module scope): the full topology, API replicas ``a`` and ``b``, an
  empty source schema ``DEMO.E2E``; a :class:`tests.e2e.platform.Platform`.
- ``e2e_admin``: admin ``Authorization`` headers for it.
- ``platform_fixture(replicas=, seed=, prepare=, extra_env=)``: build your own module fixture
  with another source seed, pre-registered tables or replica set::

      from tests.e2e.conftest import platform_fixture

      def seed(cur): cur.execute("CREATE SCHEMA IF NOT EXISTS DEMO.JOURNEY") ...
      def prepare(platform): platform.register(table_name="orders", schema_name="journey")

      journey = platform_fixture(replicas=("a",), seed=seed, prepare=prepare)  # module scope

  Tables registered in ``prepare`` are loaded by the code server at start (no reload).
- ``shared_platform_fixture(seed=, prepare=)``: a module's view of the session's one shared
  platform (replica ``a``, ``SHARED_ENV``), cheaper than a platform of its own: every collected
  module's ``seed`` and ``prepare`` run once, before Dagster starts. A module sharing it keeps
  to its own source schema and tables, and leaves the platform as it found it (no process
  killed). Its tests run after every other e2e test (``tests/conftest.py`` orders them), so
  the platform is only up at the end of the session; a test that starts a sensor is marked
  ``shared_last`` and runs after all of them.

Every test here skips with a reason when ``TEST_POSTGRES_URL`` is not set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.platform import SHARED_SETUP, Platform, PostgresUnavailable, Prepare, Seed, start_platform


def _seed_e2e(cur: Any) -> None:
    cur.execute("CREATE SCHEMA IF NOT EXISTS DEMO.E2E")


def platform_fixture(*, replicas: tuple[str, ...] = ("a", "b"), seed: Seed | None = _seed_e2e,
                     prepare: Prepare | None = None,
                     extra_env: dict[str, str] | None = None) -> Callable[..., Iterator[Platform]]:
    """A module-scoped fixture starting the platform with these options (skips without PostgreSQL)."""

    @pytest.fixture(scope="module")
    def fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
        try:
            with start_platform(tmp_path_factory.mktemp("platform"), replicas=replicas, seed=seed,
                                prepare=prepare, extra_env=extra_env) as platform:
                yield platform
        except PostgresUnavailable as e:
            pytest.skip(str(e))

    return fixture


e2e_platform = platform_fixture()

SHARED_ENV = {"AGENT_REFRESHES_PER_MINUTE": "1000", "SYNC_RECONCILE_INTERVAL_S": "1",
              "LOG_LEVEL": "info", "LOG_FORMAT": "json"}  # the request-id trace reads info lines
# Held by tests/e2e/platform.py: this conftest is imported twice (by pytest, and as
# ``tests.e2e.conftest`` by the modules), the platform module once. Keyed by the module's file
# name: a test module imported by another is also imported twice, and must still seed once.
_shared_setup: dict[str, tuple[Seed | None, Prepare | None]] = SHARED_SETUP


def shared_platform_fixture(*, seed: Seed | None = None, prepare: Prepare | None = None) -> Callable[..., Platform]:
    """A module-scoped fixture giving the session's shared platform, with this module's ``seed`` and
    ``prepare`` added to it (modules are imported at collection, before the platform starts)."""
    owner = seed or prepare
    if owner is not None:
        _shared_setup[owner.__module__.rpartition(".")[2]] = (seed, prepare)

    @pytest.fixture(scope="module")
    def fixture(shared_platform: Platform) -> Platform:
        return shared_platform

    return fixture


@pytest.fixture(scope="session")
def shared_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    def seed(cur: Any) -> None:
        _seed_e2e(cur)
        for module_seed, _ in _shared_setup.values():
            if module_seed is not None:
                module_seed(cur)

    def prepare(platform: Platform) -> None:
        for _, module_prepare in _shared_setup.values():
            if module_prepare is not None:
                module_prepare(platform)

    try:
        with start_platform(tmp_path_factory.mktemp("shared-platform"), replicas=("a",), seed=seed, prepare=prepare,
                            extra_env=SHARED_ENV) as platform:
            yield platform
    except PostgresUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def e2e_admin(e2e_platform: Platform) -> dict[str, str]:
    return e2e_platform.admin_headers()
