"""``/health`` (liveness) and ``/ready`` (named readiness checks features can add).

Required checks failing make ``/ready`` 503 ``not_ready``; optional ones (Dagster) only
make it 200 ``degraded``. The Dagster check itself is tested with the sync feature
(``tests/serving/test_sync.py``) and against a real webserver (``tests/e2e/test_replicas.py``).
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from serving.lib.ready import NotReady, ReadySpec, add_ready_check, readiness, ready_checks
from serving.lib.services import Services


def test_health_is_public_and_cheap(client: Any) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


def _only_core_checks(services: Services) -> None:
    """Other features register their own checks (Dagster …) that tests here do not run."""
    checks = ready_checks(services)
    for name in [n for n in checks if n not in ("control_db", "served_data")]:
        del checks[name]


def test_ready_checks_control_db_and_served_data(client: Any, services: Services) -> None:
    _only_core_checks(services)
    r = client.get("/ready")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ready"
    assert [c["name"] for c in body["checks"]] == ["control_db", "served_data"]
    assert all(c["ok"] and c["required"] and c["impact"] is None for c in body["checks"])


def test_a_failing_check_makes_ready_503_without_leaking(client: Any, services: Services) -> None:
    def dagster(_: Services) -> None:
        raise ConnectionError("cannot reach http://10.0.0.7:3000/graphql from /opt/secret")

    _only_core_checks(services)
    add_ready_check(services, "dagster", dagster)
    r = client.get("/ready")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "not_ready"
    failed = {c["name"]: c for c in body["checks"] if not c["ok"]}
    assert set(failed) == {"dagster"}
    assert "ConnectionError" in failed["dagster"]["detail"]
    assert "10.0.0.7" not in r.text
    assert "/opt/secret" not in r.text


def test_async_checks_false_results_and_timeouts(client: Any, services: Services) -> None:
    async def ok(_: Services) -> None:
        await anyio.sleep(0)

    def says_no(_: Services) -> bool:
        return False

    async def hangs(_: Services) -> None:
        await anyio.sleep(60)

    _only_core_checks(services)
    add_ready_check(services, "ok", ok)
    add_ready_check(services, "says_no", says_no)
    add_ready_check(services, "hangs", hangs)
    started = time.monotonic()
    r = client.get("/ready")
    assert time.monotonic() - started < 10
    checks = {c["name"]: c for c in r.json()["checks"]}
    assert checks["ok"]["ok"] is True
    assert checks["says_no"]["ok"] is False
    assert checks["hangs"]["ok"] is False
    assert "no answer" in checks["hangs"]["detail"]
    assert r.status_code == 503


def test_unreachable_control_db_is_not_ready(client: Any, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    import serving.health.services as health_services

    def broken(_: Services) -> None:
        raise OSError("database is down")

    _only_core_checks(services)
    monkeypatch.setitem(ready_checks(services), "control_db", ReadySpec(broken))
    assert health_services.check_control_db is not broken
    r = client.get("/ready")
    assert r.status_code == 503
    assert {c["name"] for c in r.json()["checks"] if not c["ok"]} == {"control_db"}


def test_control_db_check_against_a_dead_server_is_clear(client: Any, services: Services,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The real check against a PostgreSQL port nobody listens on: a clear reason, no URL leaked."""
    import dataclasses

    from shared import processes

    _only_core_checks(services)
    dead = f"postgresql+psycopg://nobody:s3cret@127.0.0.1:{processes.free_port()}/gone?connect_timeout=2"
    monkeypatch.setattr(services, "settings", dataclasses.replace(services.settings, database_url=dead))
    assert services.control_url == dead
    r = client.get("/ready")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "not_ready"
    check = {c["name"]: c for c in body["checks"]}["control_db"]
    assert check["ok"] is False
    assert check["required"] is True
    assert check["detail"].startswith("the control database is unreachable")
    assert check["impact"]
    assert "s3cret" not in r.text
    assert "nobody" not in r.text


def test_an_optional_check_failing_is_degraded_not_unready(client: Any, services: Services) -> None:
    def orchestrator(_: Services) -> None:
        raise NotReady("the orchestrator is unreachable (ConnectError)")

    _only_core_checks(services)
    add_ready_check(services, "orchestrator", orchestrator, required=False, impact="syncs answer 503")
    r = client.get("/ready")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "degraded"
    checks = {c["name"]: c for c in body["checks"]}
    assert checks["orchestrator"] == {**checks["orchestrator"], "ok": False, "required": False,
                                      "detail": "the orchestrator is unreachable (ConnectError)",
                                      "impact": "syncs answer 503"}
    assert checks["control_db"]["ok"] is True
    assert checks["served_data"]["ok"] is True

    add_ready_check(services, "served_data", lambda _: False)  # a required one failing as well: 503
    r = client.get("/ready")
    assert r.status_code == 503
    assert r.json()["status"] == "not_ready"
    assert {c["name"] for c in r.json()["checks"] if not c["ok"]} == {"orchestrator", "served_data"}


@pytest.mark.parametrize(
    ("failing", "expected"),
    [((), ("ready", 200)), ((False,), ("degraded", 200)), ((True,), ("not_ready", 503)),
     ((True, False), ("not_ready", 503))],
)
def test_readiness_rule(failing: tuple[bool, ...], expected: tuple[str, int]) -> None:
    results = [{"name": "fine", "ok": True, "required": True}]
    results += [{"name": f"c{i}", "ok": False, "required": req} for i, req in enumerate(failing)]
    assert readiness(results) == expected


def test_health_and_ready_are_audited(client: Any, flush_audit: Any, admin_headers: dict[str, str]) -> None:
    client.get("/health")
    client.get("/ready")
    flush_audit()
    items = client.get("/api/v1/admin/audit", headers=admin_headers).json()["items"]
    assert {"/health", "/ready"} <= {i["endpoint"] for i in items}
