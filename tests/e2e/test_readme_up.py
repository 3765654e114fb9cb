"""The README's first command on the embedded default: ``agents-data up`` as a real process.

Everything a new user gets with no Snowflake account and no PostgreSQL: the stand-in
seeded with the demo data, one Dagster asset per demo table, the first syncs requested
through the API, every demo table served and queryable by an agent, and a clean stop on
SIGTERM. A second start over the same home serves what it served before at once and
requests no first sync again (the stand-in keeps its data in memory, so it is re-seeded:
seeding happens whenever the source lacks the data).
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared import processes
from shared.processes import free_port

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "readme-up-password"  # noqa: S105 - a throwaway test platform
DEMO_TABLES = {"demo.public.customers", "demo.public.events", "demo.public.orders", "demo.public.products",
               "demo.files.sessions"}  # the Parquet-sourced demo table
START_TIMEOUT_S = 420  # seeding + Dagster + API on a loaded 2-core machine
SYNC_TIMEOUT_S = 600  # the orders backfill covers a year of daily partitions


class Up:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.ports = {name: free_port() for name in ("api", "webserver", "code", "demo")}
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("SNOWFLAKE_", "DAGSTER_", "API_")) and k not in ("DATABASE_URL",)}
        self.env.update(AGENTS_DATA_HOME=str(home), ADMIN_PASSWORD=ADMIN_PASSWORD, API_PORT=str(self.ports["api"]),
                        DAGSTER_WEBSERVER_PORT=str(self.ports["webserver"]),
                        DAGSTER_CODE_SERVER_PORT=str(self.ports["code"]), DEMO_SNOWFLAKE_PORT=str(self.ports["demo"]))
        self.out = home / "up.out"
        self.proc: Any = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    def start(self) -> None:
        self.proc = processes.start([sys.executable, "-m", "shared.cli", "up"], env=self.env, cwd=REPO,
                                    log_path=self.out)
        deadline = time.monotonic() + START_TIMEOUT_S
        while "platform is up" not in self.text():
            assert self.proc.poll() is None, f"agents-data up exited early:\n{self.text()[-3000:]}"
            assert time.monotonic() < deadline, f"agents-data up did not come up:\n{self.text()[-3000:]}"
            time.sleep(0.5)

    def text(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    def stop(self) -> int | None:
        return processes.stop(self.proc, grace_s=60) if self.proc is not None else None

    def admin(self, client: httpx.Client) -> dict[str, str]:
        r = client.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
        r.raise_for_status()
        return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    """Started under a umask of 0022 (as many shells have): files must still be owner-only."""
    platform = Up(tmp_path_factory.mktemp("readme-up"))
    old = os.umask(0o022)
    try:
        platform.start()
        yield platform
    finally:
        os.umask(old)
        platform.stop()


def _served(client: httpx.Client, headers: dict[str, str]) -> dict[str, Any]:
    r = client.get("/api/v1/sync/tables", headers=headers)
    r.raise_for_status()
    return {t["table"]: t for t in r.json()["tables"]}


def test_up_serves_the_demo_tables_to_an_agent(up: Up) -> None:
    graphql = f"http://127.0.0.1:{up.ports['webserver']}/dagster/graphql"  # internal address, as the API uses it
    nodes = httpx.post(graphql, json={"query": "{ assetNodes { assetKey { path } } }"}, timeout=60).json()
    assert {".".join(n["assetKey"]["path"]) for n in nodes["data"]["assetNodes"]} == DEMO_TABLES

    text = up.text()
    for key in DEMO_TABLES:
        assert f"first sync of {key}:" in text, text
    assert "first sync of demo.public.orders: backfill" in text

    jobs = dict(re.findall(r"first sync of (\S+): \w+ (\S+) ", text))
    assert set(jobs) == DEMO_TABLES
    assert "[agents-data] seeded demo table ORDERS (3/4): 1,000,000 rows in" in text  # the demo's seeding, live
    with httpx.Client(base_url=up.api, timeout=60) as client:
        admin = up.admin(client)
        deadline = time.monotonic() + SYNC_TIMEOUT_S
        for key, job_id in jobs.items():
            while (job := client.get(f"/api/v1/sync/jobs/{job_id}", headers=admin).json())["status"] != "succeeded":
                assert job["status"] in ("queued", "running"), f"the first sync of {key} did not succeed: {job}"
                assert time.monotonic() < deadline, f"the first sync of {key} did not finish in time: {job}"
                time.sleep(3)
        tables = _served(client, admin)
        assert set(tables) == DEMO_TABLES
        # Progress of the first syncs, as lines (the output is not a terminal): rows, partitions, ETA.
        assert re.search(r"\[agents-data\] sync demo\.public\.orders: \w+, \d+/\d+ partitions, ", up.text()), up.text()
        assert all(t["served_version"] for t in tables.values()), tables
        assert tables["demo.public.orders"]["row_count"] >= 1_000_000

        swarm = client.post("/api/v1/admin/swarms", headers=admin,
                            json={"name": "readme", "grants": sorted(DEMO_TABLES)}).json()
        token = client.post("/api/v1/admin/tokens", headers=admin,
                            json={"type": "agent", "swarm_id": swarm["id"], "name": "first-agent"}).json()["token"]
        agent = {"Authorization": f"Bearer {token}"}
        catalog = client.get("/api/v1/data/tables", headers=agent).json()
        assert {t["table"] for t in catalog["tables"]} == DEMO_TABLES
        q = client.post("/api/v1/queries/execute", headers=agent,
                        json={"query": "select count(*) as n, min(event_id) is not null as ok from demo.public.events"})
        assert q.status_code == 200, q.text
        assert q.json()["rows"][0][0] == tables["demo.public.events"]["row_count"]
        # Personal demo columns are masked for a new agent until the admin unmasks one (README "Data protection").
        customers = next(t for t in catalog["tables"] if t["table"] == "demo.public.customers")
        masked = {c["name"]: c["masked"] for c in customers["columns"]}
        assert {n: masked[n] for n in ("NAME", "EMAIL", "PHONE", "COUNTRY", "CUSTOMER_ID")} == {
            "NAME": "hash", "EMAIL": "hash", "PHONE": "hash", "COUNTRY": "hash", "CUSTOMER_ID": None}
        sql = {"query": "select email from demo.public.customers order by customer_id limit 1"}
        assert "@" not in client.post("/api/v1/queries/execute", headers=agent, json=sql).json()["rows"][0][0]
        r = client.post(f"/api/v1/admin/swarms/{swarm['id']}/unmasked", headers=admin,
                        json={"table": "demo.public.customers", "column": "EMAIL", "reason": "README walk"})
        assert r.status_code == 201, r.text
        assert "@example.com" in client.post("/api/v1/queries/execute", headers=agent, json=sql).json()["rows"][0][0]


def test_up_shows_dagster_only_to_the_admin_and_keeps_the_home_owner_only(up: Up) -> None:
    """The UI is printed as the API's /dagster/; it asks for the admin; the webserver is on loopback;
    everything under the data home (served data, control DB, Dagster home, logs) is 0700/0600."""
    from shared.filemodes import loose_entries

    assert f"Dagster UI : {up.api}/dagster/" in up.text()
    with httpx.Client(base_url=up.api, timeout=60) as browser:
        assert browser.post("/dagster/graphql", json={"query": "{ version }"}).status_code == 401
        login = browser.post("/dagster/_login", data={"username": "admin", "password": ADMIN_PASSWORD})
        assert login.status_code == 303, login.text
        page = browser.get("/dagster/", headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert "/dagster/_next/" in page.text
    listening = [line for line in (up.home / "logs" / "dagster-webserver.log").read_text().splitlines()
                 if "Serving dagster-webserver on" in line]
    assert listening, "the webserver did not log its address"
    assert f"http://127.0.0.1:{up.ports['webserver']}/dagster" in listening[-1]
    assert loose_entries(up.home) == [], "group/other permissions under the data home"


def test_sigterm_stops_everything_and_a_restart_serves_at_once_without_first_syncs(up: Up) -> None:
    assert up.stop() is not None
    for port in up.ports.values():
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
    up.out.unlink()
    up.start()
    assert "first sync of" not in up.text(), "every table already serves data: nothing to request"
    with httpx.Client(base_url=up.api, timeout=60) as client:
        tables = _served(client, up.admin(client))
        assert all(t["served_version"] for t in tables.values()), tables
