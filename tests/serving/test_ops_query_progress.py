"""An asynchronous query job reports DuckDB's own progress (0-1) and its elapsed time while it runs."""

from __future__ import annotations

import time
from typing import Any

import pytest

from serving.queries import instances
from tests.conftest import publish_table

ORDERS = "demo.public.orders"
LONG = "select count(*) as n from range(4000000000) t(i) where hash(i) % 7 = 3"  # hash: no statistics to prune


@pytest.fixture
def agent(client: Any, api_settings: Any, make_swarm: Any, agent_headers: Any) -> dict[str, str]:
    publish_table(api_settings.served_path, ORDERS, "select range as id from range(10)")
    return agent_headers(make_swarm([ORDERS])["id"])  # type: ignore[no-any-return]


def _start(client: Any, agent: dict[str, str], sql: str, **extra: Any) -> str:
    r = client.post("/api/v1/queries/execute", headers=agent, json={"query": sql, "wait_s": 0, **extra})
    assert r.status_code == 202, r.text
    return str(r.json()["job_id"])


def test_a_running_job_reports_progress_and_elapsed_time(client: Any, agent: dict[str, str]) -> None:
    job_id = _start(client, agent, LONG, timeout_s=120)
    seen: list[tuple[float | None, float]] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            body = client.get(f"/api/v1/queries/jobs/{job_id}", headers=agent).json()
            assert body["status"] == "running", body
            seen.append((body["progress"], body["elapsed_s"]))
            if sum(1 for p, _ in seen if p is not None and 0 < p < 1) >= 2:
                break
            time.sleep(0.2)
    finally:
        client.delete(f"/api/v1/queries/jobs/{job_id}", headers=agent)
    known = [p for p, _ in seen if p is not None]
    assert len([p for p in known if 0 < p < 1]) >= 2, seen
    assert known == sorted(known), f"progress went backwards: {known}"
    elapsed = [e for _, e in seen]
    assert elapsed == sorted(elapsed)
    assert elapsed[-1] > elapsed[0] >= 0


def test_a_finished_job_is_complete_with_its_duration(client: Any, agent: dict[str, str]) -> None:
    job_id = _start(client, agent, "select count(*) from demo.public.orders", output_format="csv")
    deadline = time.monotonic() + 30
    while (body := client.get(f"/api/v1/queries/jobs/{job_id}", headers=agent).json())["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert body["status"] == "succeeded"
    assert body["progress"] == 1.0
    assert body["elapsed_s"] == pytest.approx(body["duration_ms"] / 1000, abs=0.002)


def test_an_instance_rebuilds_when_its_progress_cursors_are_spent(client: Any, agent: dict[str, str],
                                                                  services: Any, monkeypatch: Any) -> None:
    from serving.queries.services import get_engine

    monkeypatch.setattr(instances, "PROGRESS_CURSORS", 2)  # a small stock: the test spends it
    cache = get_engine(services).instances
    built = cache.stats()["built"]
    for _ in range(instances.PROGRESS_CURSORS + 1):
        job_id = _start(client, agent, "select count(*) as n from demo.public.orders")
        deadline = time.monotonic() + 30
        while client.get(f"/api/v1/queries/jobs/{job_id}", headers=agent).json()["status"] == "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert cache.stats()["built"] == built + 2  # one instance per stock of progress cursors
