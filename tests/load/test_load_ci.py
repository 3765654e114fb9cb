"""The load test's CI version: ``bench/load.py`` for 60 seconds, with the full run's assertions.

50 agents (locust, one token each) on the real topology, three materializations swapping
the served data under them. Only the duration is shorter than the benchmark's ten minutes;
the targets are the same: small queries and catalog calls at p99 <= 2 s, no failed query in
flight during a swap, unintended errors (not 429) below 0.1%, and memory flat after warm-up.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


@pytest.fixture(scope="module")
def load_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    if not os.environ.get("TEST_POSTGRES_URL"):
        pytest.skip("the load test runs the PostgreSQL-backed topology: set TEST_POSTGRES_URL")
    from bench.load import run

    return run(users=50, duration=60, swaps=3, spawn_rate=25, orders=200_000, events=50_000,
               workers=os.cpu_count() or 1, out=tmp_path_factory.mktemp("load"))


def test_every_endpoint_was_exercised(load_run: dict) -> None:
    called = {name for name, e in load_run["endpoints"].items() if e["requests"] > 0}
    for name in ("catalog: list", "catalog: describe", "query: point", "query: aggregate", "sample", "profile",
                 "artifact: upload", "artifact: download", "refresh"):
        assert name in called, f"{name} was never called: {sorted(called)}"
    assert any(n.startswith("export:") for n in called)
    assert load_run["users"] == 50


def test_small_calls_p99_within_2s(load_run: dict) -> None:
    assert load_run["targets"]["small_p99_le_2s"], load_run["endpoints"]


def test_no_failed_query_during_swaps(load_run: dict) -> None:
    assert len(load_run["swaps"]) == 3, load_run["swaps"]
    assert load_run["swap_failures"] == 0, load_run["errors_by_kind"]


def test_unintended_errors_below_a_thousandth(load_run: dict) -> None:
    assert load_run["error_rate"] < 0.001, load_run["errors_by_kind"]


def test_memory_flat_after_warmup(load_run: dict) -> None:
    assert load_run["targets"]["memory_flat_after_warmup"], load_run["rss_mb"]
