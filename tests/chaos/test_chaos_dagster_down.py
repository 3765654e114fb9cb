"""Stop the Dagster webserver under load, then start it again.

The production topology runs on loopback (fakesnow, PostgreSQL-backed Dagster code
server, webserver and daemon, one API replica). Clients loop on agent queries, catalog
reads and refreshes while the webserver is stopped for ``OUTAGE_S`` and started again on
the same port. Proven:

- reads (queries, the catalog) never fail, before, during and after;
- while Dagster is away every refresh answers 503 in the one error shape, naming Dagster
  (``dagster_unavailable``), and never a 500 or a dropped connection;
- after the restart, without touching the API, refreshes are accepted again (and, in the
  full version, a refresh runs to completion); ``/ready`` reports Dagster reachable again.
"""

from __future__ import annotations

import collections
import time
from typing import Any

import pytest

from shared.cli import _dagster_commands
from tests.chaos.chaos_support import Request, full, record, request_loops, scale
from tests.conftest import publish_table
from tests.e2e.conftest import platform_fixture
from tests.e2e.platform import Platform, wait_until
from tests.serving.helpers import assert_error, bearer, create_swarm, mint_token

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

ITEMS = "demo.chaos.items"
RUN_TIMEOUT_S = 180


def _seed(cur: Any) -> None:
    cur.execute("CREATE SCHEMA IF NOT EXISTS DEMO.CHAOS")
    cur.execute("CREATE OR REPLACE TABLE DEMO.CHAOS.ITEMS (ID NUMBER(10,0), NAME TEXT)")
    cur.execute("INSERT INTO DEMO.CHAOS.ITEMS SELECT seq4(), 'item' FROM TABLE(GENERATOR(ROWCOUNT => 100))")


def _prepare(platform: Platform) -> None:
    """Registered before Dagster starts; a served version published directly, so reads work at once."""
    platform.register(table_name="items", schema_name="chaos", strategy="FULL")
    publish_table(platform.settings.served_path, ITEMS, "SELECT range AS \"ID\", 'item' AS \"NAME\" FROM range(100)")


chaos_platform = platform_fixture(replicas=("a",), seed=_seed, prepare=_prepare,
                                  extra_env={"AGENT_REFRESHES_PER_MINUTE": "100000"})


@pytest.mark.timeout(scale(600, 900))
def test_dagster_webserver_down_under_load(chaos_platform: Platform) -> None:
    outage_s = float(scale(6, 30))
    api = chaos_platform.apis["a"]
    admin = chaos_platform.admin_headers()
    with api.client() as c:
        swarm = create_swarm(c, admin, [ITEMS])
        agent = bearer(mint_token(c, admin, "agent", swarm["id"])["token"])
    clients: dict[str, Request] = {
        "query": ("POST", "/api/v1/queries/execute", agent, {"query": f"SELECT count(*) FROM {ITEMS}"}),
        "catalog": ("GET", f"/api/v1/data/tables/{ITEMS}", agent, None),
        "refresh": ("POST", f"/api/v1/data/tables/{ITEMS}/refresh", agent, {"max_age_s": 0}),
    }
    with request_loops(api.url, clients, timeout_s=60, pause_s=0.1, pauses={"refresh": 0.5}) as log:
        time.sleep(3.0)
        down_at = time.monotonic()
        chaos_platform.stop("dagster-webserver")
        time.sleep(outage_s)
        during = [e for e in log if e[1] > down_at + 1.0]
        args = dict(_dagster_commands(chaos_platform.settings))["dagster-webserver"]
        ws = chaos_platform.start("dagster-webserver", args)
        up_at = time.monotonic()
        wait_until(lambda: ws.proc.poll() is None and any(
            e[0] == "refresh" and e[1] > up_at and e[2] in (200, 202) for e in log),
            timeout_s=120, interval_s=0.5, message="a refresh accepted again after the restart")
        recovered_s = next(e[1] for e in log if e[0] == "refresh" and e[1] > up_at and e[2] in (200, 202)) - up_at
        time.sleep(1.0)

    statuses = collections.Counter((e[0], e[2]) for e in log)
    reads_failed = [(e[0], e[2], e[3] if isinstance(e[3], str) else e[3].text[:200]) for e in log
                    if e[0] != "refresh" and e[2] != 200]
    assert not reads_failed, f"reads failed: {reads_failed[:5]}\n{statuses}"
    refreshes = [e for e in log if e[0] == "refresh"]
    bad = [(e[2], e[3] if isinstance(e[3], str) else e[3].text[:300]) for e in refreshes if e[2] not in (200, 202, 503)]
    assert not bad, f"refreshes answered other than 200/202/503: {bad[:5]}"
    refused = [e for e in refreshes if e[2] == 503]
    assert refused, f"no refresh was refused while Dagster was away: {statuses}"
    for e in refused:
        assert down_at - 1 <= e[1] <= up_at + 120, f"a 503 {down_at - e[1]:.1f}s before the outage: {e[3].text}"
        error = assert_error(e[3], 503)
        assert "Dagster" in error["message"], error
    refused_during = [e for e in during if e[0] == "refresh" and e[1] < up_at - 1]
    assert refused_during, "no refresh during the outage"
    assert all(e[2] == 503 for e in refused_during), "a refresh was accepted while Dagster was away"

    with api.client() as c:  # recovered on its own: /ready ok and a refresh runs to the end
        def dagster_ready() -> Any:
            checks = {k["name"]: k for k in c.get("/ready").json()["checks"]}
            return checks["dagster"]["ok"] or None

        wait_until(dagster_ready, timeout_s=60, message=f"/ready's Dagster check ok again ({c.get('/ready').text})")
        started = c.post(f"/api/v1/data/tables/{ITEMS}/refresh", json={"max_age_s": 0}, headers=agent)
        assert started.status_code in (200, 202), started.text
        if started.status_code == 202 and full():  # the CI version stops at "accepted again"
            url = started.json()["poll_url"]
            wait_until(lambda: c.get(url, headers=agent).json()["status"] in ("succeeded", "failed"),
                       timeout_s=RUN_TIMEOUT_S, interval_s=0.5, message="the refresh to finish")
            assert c.get(url, headers=agent).json()["status"] == "succeeded"
    record("dagster_webserver_outage", {
        "outage_s": outage_s, "reads": sum(1 for e in log if e[0] != "refresh"), "reads_failed": 0,
        "refreshes": len(refreshes), "refreshes_503": len(refused), "server_errors_other_than_503": 0,
        "recovered_s": round(recovered_s, 2)})
