"""/metrics with two uvicorn workers (real processes): every worker is counted, and the counters add up."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from shared import processes
from tests.ops_support import sample

pytestmark = pytest.mark.e2e
REQUESTS = 120


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    home = tmp_path_factory.mktemp("ops-metrics")
    api_port, metrics_port = processes.free_port(), processes.free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("API_", "METRICS", "PROMETHEUS", "DATABASE_URL"))},
           "AGENTS_DATA_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'control.db'}",
           "API_PORT": str(api_port), "API_WORKERS": "2", "METRICS": "port", "METRICS_PORT": str(metrics_port),
           "JWT_SECRET": "ops-metrics-" + "z" * 32, "ADMIN_PASSWORD": "ops-pw", "LOG_FORMAT": "json",
           "DAGSTER_GRAPHQL_URL": "http://127.0.0.1:9/dagster/graphql", "PYTHONUNBUFFERED": "1"}
    proc = processes.start([sys.executable, "-m", "serving"], env=env, cwd=Path(__file__).resolve().parents[2],
                           log_path=home / "api.log")
    try:
        processes.wait_for_http(f"http://127.0.0.1:{api_port}/health", proc=proc, timeout_s=120)
        processes.wait_for_http(f"http://127.0.0.1:{metrics_port}/metrics", proc=proc, timeout_s=30)
        yield f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{metrics_port}/metrics", home
    finally:
        processes.stop(proc)


def _worker_files(home: Path) -> set[str]:
    """Pids that wrote counter values (one file per process in multiprocess mode)."""
    folder = next((home / "metrics").iterdir())
    return {p.stem.rsplit("_", 1)[1] for p in folder.glob("counter_*.db")}


def test_counters_of_both_workers_add_up(two_workers: tuple[str, str, Path]) -> None:
    base, scrape, home = two_workers
    before = httpx.get(scrape, timeout=30).text
    start = sample(before, "agents_data_http_requests_total", route="/health", status="200")

    def hit(_: int) -> int:  # a new connection each time, so the kernel spreads them over both workers
        with httpx.Client(base_url=base, timeout=30) as c:
            return c.get("/health").status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(hit, range(REQUESTS))) == {200}
    assert len(_worker_files(home)) >= 2, "the requests were not spread over both workers"
    text = httpx.get(scrape, timeout=30).text
    assert sample(text, "agents_data_http_requests_total", route="/health", status="200") == start + REQUESTS
    assert sample(text, "agents_data_http_request_duration_seconds_count", route="/health") == start + REQUESTS
    assert sample(text, "agents_data_query_slots_in_use") == 0
    assert sample(text, "agents_data_control_db_up") == 1
    # Not served on the API port with METRICS=port, to anyone.
    with httpx.Client(base_url=base, timeout=30) as c:
        token = c.post("/api/v1/auth/token", data={"username": "admin", "password": "ops-pw"}).json()["access_token"]
        assert c.get("/metrics", headers={"Authorization": f"Bearer {token}"}).status_code == 404


def test_the_log_is_json_with_one_access_line_per_request(two_workers: tuple[str, str, Path]) -> None:
    import json

    base, _scrape, home = two_workers
    with httpx.Client(base_url=base, timeout=30) as c:
        assert c.get("/health", headers={"X-Request-ID": "ops-json-line"}).status_code == 200
    processes_log = home / "api.log"

    def access() -> list[dict[str, object]]:
        lines = [json.loads(x) for x in processes_log.read_text().splitlines() if x.startswith("{")]
        return [x for x in lines if x.get("request_id") == "ops-json-line"]

    from tests.e2e.platform import wait_until

    [line] = wait_until(access, timeout_s=10, message="the access line")
    assert (line["logger"], line["route"], line["status"], line["caller_kind"]) == (
        "agents_data.access", "/health", 200, "anonymous")
