"""Writes at the same moment: a swarm's storage quota holds under concurrent uploads and result files.

Each write used to count the swarm's stored bytes when it started and was capped by the room
it saw then, so writes running together each took the same room: with 16 result files at
once, a full quota could grow by 16 GB. Now each write reserves its room first
(``serving/lib/quota.py``), under its swarm's lock, until its row counts what it stored.
Checked on the reservation itself (SQLite and PostgreSQL), then through the API as a real
process, with concurrent uploads and concurrent result files from several agents.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.admin import store
from serving.admin.schemas import SwarmCreate
from serving.lib import quota
from serving.lib.caller import Caller
from serving.lib.errors import PayloadTooLarge
from shared.control.db import migrate
from tests.conftest import publish_table
from tests.serving.artifact_support import api_server
from tests.serving.helpers import ADMIN_PASSWORD, admin_token, bearer, create_swarm, mint_token

QUOTA = 64 * 1024
WRITERS = 8


def test_concurrent_reservations_never_hold_more_than_the_quota(control_url: str) -> None:
    migrate(control_url)
    swarm = store.create_swarm(control_url, SwarmCreate(name="reserving"))
    caller = Caller(kind="agent", subject="a", swarm_id=swarm.id)
    start = threading.Barrier(WRITERS)
    granted: list[int] = []
    refused: list[str] = []
    lock = threading.Lock()

    def take() -> None:
        start.wait()
        try:
            got = quota.reserve(control_url, caller, 100, 30)
            with lock:
                granted.append(got.bytes or 0)
        except PayloadTooLarge as e:
            with lock:
                refused.append(e.rule or "")

    threads = [threading.Thread(target=take) for _ in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(granted) == [10, 30, 30, 30]  # 100 bytes of room, 30 wanted by each
    assert refused == ["storage_quota"] * (WRITERS - 4)
    assert quota.stored_bytes(control_url, swarm.id) == 100


def test_a_released_or_expired_reservation_gives_its_room_back(sqlite_url: str) -> None:
    migrate(sqlite_url)
    swarm = store.create_swarm(sqlite_url, SwarmCreate(name="returning"))
    caller = Caller(kind="agent", subject="a", swarm_id=swarm.id)
    with quota.reserved(sqlite_url, caller, 100, 80) as room:
        assert room == 80
        assert quota.stored_bytes(sqlite_url, swarm.id) == 80
    assert quota.stored_bytes(sqlite_url, swarm.id) == 0
    quota.reserve(sqlite_url, caller, 100, 100, ttl_s=0)  # its writer died: it counts until it expires
    assert quota.reserve(sqlite_url, caller, 100, 100).bytes == 100
    admin = Caller(kind="admin", subject="admin")
    assert quota.reserve(sqlite_url, admin, 100, 100) == quota.Reservation(None, None)


@dataclasses.dataclass
class Swarm:
    url: str
    home: Path
    id: str
    agents: list[dict[str, str]]  # 4 agent tokens' headers

    @property
    def control(self) -> str:
        return f"sqlite:///{self.home / 'control.db'}"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """A real API with a 64 KiB swarm quota: (url, its home, admin headers)."""
    work = tmp_path_factory.mktemp("quota-race")
    home = work / "home"
    home.mkdir()
    publish_table(home / "served", "demo.public.orders", "select range as id, repeat('x', 200) as note from range(400)")
    env = {"AGENTS_DATA_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'control.db'}",
           "JWT_SECRET": "test-secret-" + "q" * 32, "ADMIN_PASSWORD": ADMIN_PASSWORD,
           "SWARM_STORAGE_MAX_BYTES": str(QUOTA)}
    with api_server(env, work) as (url, _pid), httpx.Client(base_url=url, timeout=30) as c:
        yield url, home, bearer(admin_token(c))


@pytest.fixture
def swarm(api: tuple[str, Path, dict[str, str]]) -> Swarm:
    """A new swarm (its whole quota free) with 4 agents, on the shared server."""
    url, home, admin = api
    with httpx.Client(base_url=url, timeout=30) as c:
        swarm_id = create_swarm(c, admin, ["demo.public.orders"])["id"]
        agents = [bearer(mint_token(c, admin, "agent", swarm_id)["token"]) for _ in range(4)]
    return Swarm(url, home, swarm_id, agents)


def _stored(url: str, agents: list[dict[str, str]]) -> int:
    """The bytes of the swarm's artifacts, as its agents see them."""
    with httpx.Client(base_url=url, timeout=30) as c:
        listed = c.get("/api/v1/artifacts", params={"limit": 500}, headers=agents[0]).json()
        return sum(a["size"] for a in (listed["items"] if isinstance(listed, dict) else listed))


def test_concurrent_uploads_stay_within_the_quota(swarm: Swarm) -> None:
    url, agents = swarm.url, swarm.agents
    start = threading.Barrier(WRITERS)

    def upload(i: int) -> httpx.Response:
        start.wait()
        with httpx.Client(base_url=url, timeout=60) as c:
            return c.post("/api/v1/artifacts", headers=agents[i % len(agents)],
                          files={"file": (f"f{i}.bin", bytes([i]) * (40 * 1024), "application/octet-stream")},
                          data={"visibility": "swarm"})

    with concurrent.futures.ThreadPoolExecutor(WRITERS) as pool:
        answers = list(pool.map(upload, range(WRITERS)))
    codes = sorted(r.status_code for r in answers)
    assert codes == [201] + [413] * (WRITERS - 1), [r.text[:200] for r in answers]
    assert all(r.json()["error"]["rule"] == "storage_quota" for r in answers if r.status_code == 413)
    assert _stored(url, agents) <= QUOTA


def test_concurrent_result_files_stay_within_the_quota(swarm: Swarm) -> None:
    url, agents = swarm.url, swarm.agents
    start = threading.Barrier(WRITERS)

    def export(i: int) -> tuple[int, int]:
        start.wait()
        with httpx.Client(base_url=url, timeout=60) as c:
            r = c.post("/api/v1/queries/execute", json={"query": f"select *, {i} as writer from orders limit 110",
                                                         "output_format": "csv", "wait_s": 30},
                       headers=agents[i % len(agents)])
            if r.status_code != 200:
                assert r.status_code in (413, 429), r.text
                return r.status_code, 0
            job = c.get(f"/api/v1/queries/jobs/{r.json()['job_id']}", headers=agents[i % len(agents)]).json()
            return 200, int(job["bytes"])

    with concurrent.futures.ThreadPoolExecutor(WRITERS) as pool:
        answers = list(pool.map(export, range(WRITERS)))
    kept = [size for code, size in answers if code == 200]
    assert kept, answers  # the first writer always gets its room
    assert all(20 * 1024 < size < 32 * 1024 for size in kept)  # each file is ~24 KiB: two fit, three do not
    assert sum(kept) <= QUOTA, answers
    assert any(code == 413 for code, _ in answers), answers




def _csv_job(url: str, agent: dict[str, str], rows: int) -> dict[str, Any]:
    with httpx.Client(base_url=url, timeout=60) as c:
        r = c.post("/api/v1/queries/execute", json={"query": f"select * from orders order by id limit {rows}",
                                                     "output_format": "csv", "wait_s": 30}, headers=agent)
        assert r.status_code == 200, r.text
        job: dict[str, Any] = c.get(f"/api/v1/queries/jobs/{r.json()['job_id']}", headers=agent).json()
    job["id"] = r.json()["job_id"]
    return job


def test_conversions_count_in_the_quota(swarm: Swarm) -> None:
    url, agents, home, control = swarm.url, swarm.agents, swarm.home, swarm.control
    job = _csv_job(url, agents[0], 100)
    assert quota.stored_bytes(control, swarm.id) >= job["bytes"]
    before = quota.stored_bytes(control, swarm.id)
    with httpx.Client(base_url=url, timeout=60) as c:
        for fmt in ("json", "arrow"):
            r = c.get(f"/api/v1/queries/jobs/{job['id']}/result", params={"format": fmt}, headers=agents[0])
            assert r.status_code == 200, r.text
        kept = sum(p.stat().st_size for p in (home / "results").glob(f"{job['id']}.as.*"))
        assert kept > 0
        assert quota.stored_bytes(control, swarm.id) == before + kept
        # A second fetch reads the conversion kept; it is not counted again.
        assert c.get(f"/api/v1/queries/jobs/{job['id']}/result", params={"format": "json"},
                     headers=agents[0]).status_code == 200
        assert quota.stored_bytes(control, swarm.id) == before + kept
        # With the room used up, a new conversion is refused, and what is kept is still served.
        fill = QUOTA - quota.stored_bytes(control, swarm.id)
        up = c.post("/api/v1/artifacts", headers=agents[1], files={"file": ("fill.bin", b"f" * (fill - 400), "x/y")})
        assert up.status_code == 201, up.text
        r = c.get(f"/api/v1/queries/jobs/{job['id']}/result", params={"format": "parquet"}, headers=agents[0])
        assert r.status_code == 413, r.text
        assert r.json()["error"]["rule"] == "storage_quota"
        assert c.get(f"/api/v1/queries/jobs/{job['id']}/result", params={"format": "arrow"},
                     headers=agents[0]).status_code == 200


def test_one_conversion_asked_for_at_once_is_whole_for_every_caller(swarm: Swarm) -> None:
    url, agents = swarm.url, swarm.agents
    job = _csv_job(url, agents[0], 100)
    start = threading.Barrier(WRITERS)

    def fetch(_: int) -> httpx.Response:
        start.wait()
        with httpx.Client(base_url=url, timeout=60) as c:
            return c.get(f"/api/v1/queries/jobs/{job['id']}/result", params={"format": "json"}, headers=agents[0])

    with concurrent.futures.ThreadPoolExecutor(WRITERS) as pool:
        answers = list(pool.map(fetch, range(WRITERS)))
    for r in answers:
        assert r.status_code == 200, r.text[:300]
        body = r.json()
        assert [row[0] for row in body["rows"]] == list(range(100))


def test_reservations_left_by_dead_writers_or_deleted_swarms_are_dropped(tmp_path: Path) -> None:
    from shared import housekeeping
    from shared.control.db import session_scope
    from shared.control.models import StorageReservationRow
    from shared.settings import Settings

    settings = Settings.from_env({"AGENTS_DATA_HOME": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}",
                                  "JWT_SECRET": "r" * 48, "ADMIN_PASSWORD": ADMIN_PASSWORD})
    url = settings.control_url
    migrate(url)
    kept, gone = (store.create_swarm(url, SwarmCreate(name=n)) for n in ("kept", "gone"))
    for swarm in (kept, gone):
        caller = Caller(kind="agent", subject="a", swarm_id=swarm.id)
        quota.reserve(url, caller, 100, 20)  # a write in progress
        quota.reserve(url, caller, 100, 10, ttl_s=0)  # its writer died (and no write of the swarm came after)
    store.delete_swarm(url, gone.id, artifact_grace_s=60)
    report = housekeeping.purge_expired_query_results(settings)
    assert report.counts.get("storage_reservations_expired") == 1  # the deleted swarm's went with it
    with session_scope(url) as s:
        left = [(r.swarm_id, r.bytes) for r in s.query(StorageReservationRow)]
    assert left == [(kept.id, 20)]
