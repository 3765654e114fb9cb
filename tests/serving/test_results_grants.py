"""Results outlive no grant: job results and artifacts made from a table are served only to callers
who may still read that table (403 ``table_not_granted``), through the API."""

from __future__ import annotations

import time
from typing import Any

import pytest

from shared.settings import Settings
from tests.conftest import publish_table
from tests.serving.helpers import assert_error

ORDERS, CUSTOMERS = "demo.public.orders", "demo.public.customers"


@pytest.fixture
def world(client: Any, api_settings: Settings, make_swarm: Any, agent_headers: Any) -> dict[str, Any]:
    publish_table(api_settings.served_path, ORDERS, "select range as id, range * 2 as amount from range(50)")
    publish_table(api_settings.served_path, CUSTOMERS, "select range as id, 'c' || range as name from range(20)")
    swarm = make_swarm([ORDERS, CUSTOMERS])
    return {"swarm": swarm, "a1": agent_headers(swarm["id"]), "a2": agent_headers(swarm["id"]),
            "customers_only": agent_headers(swarm["id"], allowed_tables=[CUSTOMERS])}


def _job(client: Any, headers: dict[str, str], query: str, fmt: str) -> str:
    r = client.post("/api/v1/queries/execute", headers=headers, json={"query": query, "output_format": fmt, "wait_s": 0})
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = client.get(f"/api/v1/queries/jobs/{job_id}", headers=headers).json()["status"]
        if status == "succeeded":
            return str(job_id)
        assert status in ("queued", "running"), status
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def _save(client: Any, headers: dict[str, str], job_id: str, fmt: str = "csv") -> Any:
    return client.post(f"/api/v1/queries/jobs/{job_id}/artifact", headers=headers,
                       json={"format": fmt, "visibility": "swarm"})


def _grants(client: Any, admin: dict[str, str], swarm_id: str, grants: list[str]) -> None:
    r = client.patch(f"/api/v1/admin/swarms/{swarm_id}", json={"grants": grants}, headers=admin)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("fmt", ["json", "csv", "parquet", "arrow"])
def test_revoked_grant_stops_results_and_artifacts_made_from_the_table(client: Any, admin_headers: dict[str, str],
                                                                       world: dict[str, Any], fmt: str) -> None:
    a1, a2 = world["a1"], world["a2"]
    orders_job = _job(client, a1, "select o.id, o.amount from orders o where o.id < 10", fmt)
    joined_job = _job(client, a1, "select c.name, o.amount from customers c join orders o using (id)", fmt)
    customers_job = _job(client, a1, "select name from customers", fmt)
    saved = _save(client, a1, orders_job)
    assert saved.status_code == 201, saved.text
    art = saved.json()
    assert {v["table"] for v in art["served_versions"]} == {ORDERS}  # the artifact records what it was made from
    joined_art = _save(client, a1, joined_job).json()
    assert {v["table"] for v in joined_art["served_versions"]} == {ORDERS, CUSTOMERS}
    customers_art = _save(client, a1, customers_job).json()
    upload = client.post("/api/v1/artifacts", headers=a1, data={"visibility": "swarm"},
                         files={"file": ("n.txt", b"notes", "text/plain")}).json()
    assert client.get(f"/api/v1/queries/jobs/{orders_job}/result", headers=a1).status_code == 200
    assert client.get(f"/api/v1/artifacts/{art['id']}/content", headers=a2).status_code == 200

    _grants(client, admin_headers, world["swarm"]["id"], [CUSTOMERS])  # orders is no longer granted

    for job in (orders_job, joined_job):
        error = assert_error(client.get(f"/api/v1/queries/jobs/{job}/result", headers=a1), 403, rule="table_not_granted")
        assert error["details"]["tables"] == [ORDERS]
        assert_error(_save(client, a1, job), 403, rule="table_not_granted")
    for who in (a1, a2):
        for a in (art, joined_art):
            assert_error(client.get(f"/api/v1/artifacts/{a['id']}", headers=who), 403, rule="table_not_granted")
            assert_error(client.get(f"/api/v1/artifacts/{a['id']}/content", headers=who), 403, rule="table_not_granted")
            assert client.head(f"/api/v1/artifacts/{a['id']}/content", headers=who).status_code == 403
        listed = {i["id"] for i in client.get("/api/v1/artifacts", headers=who).json()["items"]}
        assert listed == {customers_art["id"], upload["id"]}
    assert_error(client.patch(f"/api/v1/artifacts/{art['id']}", json={"name": "x.csv"}, headers=a1), 403,
                 rule="table_not_granted")
    # what was read only from still-granted tables keeps being served
    assert client.get(f"/api/v1/queries/jobs/{customers_job}/result", headers=a1).status_code == 200
    assert client.get(f"/api/v1/artifacts/{customers_art['id']}/content", headers=a2).status_code == 200
    # the admin still sees everything
    assert client.get(f"/api/v1/queries/jobs/{orders_job}/result", headers=admin_headers).status_code == 200
    assert client.get(f"/api/v1/artifacts/{art['id']}/content", headers=admin_headers).status_code == 200
    # granted again: served again (the rule follows the current grants)
    _grants(client, admin_headers, world["swarm"]["id"], [ORDERS, CUSTOMERS])
    assert client.get(f"/api/v1/queries/jobs/{orders_job}/result", headers=a1).status_code == 200
    assert client.get(f"/api/v1/artifacts/{art['id']}/content", headers=a2).status_code == 200
    # the owner may still delete an artifact it can no longer read
    _grants(client, admin_headers, world["swarm"]["id"], [CUSTOMERS])
    assert client.delete(f"/api/v1/artifacts/{art['id']}", headers=a1).status_code == 204


def test_an_agent_limited_to_other_tables_cannot_read_a_shared_artifact(client: Any, world: dict[str, Any]) -> None:
    job = _job(client, world["a1"], "select id from orders", "csv")
    art = _save(client, world["a1"], job).json()
    limited = world["customers_only"]
    assert_error(client.get(f"/api/v1/artifacts/{art['id']}/content", headers=limited), 403, rule="table_not_granted")
    assert art["id"] not in {i["id"] for i in client.get("/api/v1/artifacts", headers=limited).json()["items"]}
