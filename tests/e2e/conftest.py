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

Every test here skips with a reason when ``TEST_POSTGRES_URL`` is not set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.platform import Platform, PostgresUnavailable, Prepare, Seed, start_platform


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


@pytest.fixture(scope="module")
def e2e_admin(e2e_platform: Platform) -> dict[str, str]:
    return e2e_platform.admin_headers()
