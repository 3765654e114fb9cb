"""The audit trail: a row for every request (answered or refused), query facts from
``annotate``, filters on ``GET /api/v1/admin/audit``, and failure isolation."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from litestar import Litestar, Request, get
from litestar.testing import TestClient

from serving.app import create_app
from serving.lib.audit import AuditWriter, annotate
from serving.lib.caller import Caller
from serving.lib.services import Services
from shared.control.db import session_scope
from shared.control.models import AuditRow
from shared.settings import Settings
from tests.serving.helpers import assert_error, bearer, mint_token

AUDIT = "/api/v1/admin/audit"
WHOAMI = "/api/v1/auth/whoami"
ORDERS = "demo.public.orders"


@get("/test/probe-query", sync_to_thread=False)
def probe_query(request: Request[Any, Any, Any], caller: Caller) -> dict[str, int]:
    """Stands in for a query handler: annotates the audit row like the queries feature does."""
    annotate(request, sql_text="select 1 from demo.public.orders", tables=[{"table": ORDERS, "version": "v1"}],
             rows=1, bytes=42)
    return {"ok": 1}


@get("/test/probe-crash", sync_to_thread=False)
def probe_crash() -> None:
    raise RuntimeError("boom at /srv/secret/path.py")


@pytest.fixture
def probed(app: Litestar) -> Litestar:
    app.register(probe_query)
    app.register(probe_crash)
    return app


def _rows(settings: Settings) -> list[AuditRow]:
    with session_scope(settings.control_url) as s:
        return list(s.scalars(sa.select(AuditRow).order_by(AuditRow.id)))


def test_every_request_is_recorded_with_caller_status_and_rule(
        *, probed: Litestar, client: Any, admin_headers: dict[str, str], make_swarm: Callable[..., dict[str, Any]],
        flush_audit: Callable[[], None], api_settings: Settings) -> None:
    swarm = make_swarm([ORDERS])
    agent = mint_token(client, admin_headers, "agent", swarm["id"])
    h = bearer(agent["token"])
    assert client.get(WHOAMI, headers=h).status_code == 200
    assert client.get("/test/probe-query", headers=h).status_code == 200
    assert client.get("/api/v1/admin/swarms", headers=h).status_code == 403
    assert client.get(WHOAMI, headers=bearer("garbage")).status_code == 401
    assert client.get("/no/such/path").status_code == 404
    assert client.delete("/health").status_code == 405
    assert client.post("/api/v1/admin/swarms", json={"grants": 3}, headers=admin_headers).status_code == 400
    assert client.get("/test/probe-crash").status_code == 500
    client.delete(f"/api/v1/admin/tokens/{agent['token_id']}", headers=admin_headers)
    assert client.get(WHOAMI, headers=h).status_code == 401
    flush_audit()
    rows = _rows(api_settings)
    by = {(r.method, r.endpoint, r.status_code): r for r in rows}
    ok = by[("GET", WHOAMI, 200)]
    assert (ok.caller_type, ok.token_id, ok.swarm_id, ok.rule) == ("agent", agent["token_id"], swarm["id"], None)
    assert ok.duration_ms > 0
    assert ok.replica
    q = by[("GET", "/test/probe-query", 200)]
    assert q.sql_text == "select 1 from demo.public.orders"
    assert len(q.sql_hash or "") == 64
    assert (q.tables, q.rows, q.bytes) == ([{"table": ORDERS, "version": "v1"}], 1, 42)
    denied = by[("GET", "/api/v1/admin/swarms", 403)]
    assert (denied.caller_type, denied.token_id, denied.rule) == ("agent", agent["token_id"], "requires_admin")
    bad = by[("GET", WHOAMI, 401)]
    assert bad.caller_type == "anonymous"
    assert bad.rule in ("token_invalid", "token_revoked")
    assert by[("GET", "/no/such/path", 404)].rule == "not_found"
    assert by[("DELETE", "/health", 405)].status_code == 405
    assert by[("POST", "/api/v1/admin/swarms", 400)].caller_type == "admin"
    assert by[("GET", "/test/probe-crash", 500)].rule == "internal_error"
    revoked = [r for r in rows if r.endpoint == WHOAMI and r.status_code == 401 and r.token_id == agent["token_id"]]
    assert revoked, "a genuine but revoked token is named by its id in the audit row"
    assert revoked[0].rule == "token_revoked"


def test_internal_errors_do_not_leak(probed: Litestar, client: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        r = client.get("/test/probe-crash")
    error = assert_error(r, 500, "internal_error")
    assert "/srv/secret" not in r.text
    assert "boom" not in r.text
    assert error["details"]["request_id"] in caplog.text
    assert "boom at /srv/secret/path.py" in caplog.text  # the operator still sees it


def test_admin_audit_filters_and_pagination(probed: Litestar, client: Any, admin_headers: dict[str, str],
                                            make_swarm: Callable[..., dict[str, Any]],
                                            flush_audit: Callable[[], None]) -> None:
    a, b = make_swarm([ORDERS]), make_swarm([ORDERS])
    ta = mint_token(client, admin_headers, "agent", a["id"])
    tb = mint_token(client, admin_headers, "agent", b["id"])
    before = dt.datetime.now(dt.UTC)
    for _ in range(3):
        client.get("/test/probe-query", headers=bearer(ta["token"]))
    client.get(WHOAMI, headers=bearer(tb["token"]))
    client.get("/api/v1/admin/swarms", headers=bearer(tb["token"]))
    flush_audit()

    def audit(**params: Any) -> dict[str, Any]:
        r = client.get(AUDIT, params=params, headers=admin_headers)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    assert {i["token_id"] for i in audit(swarm_id=a["id"])["items"]} == {ta["token_id"]}
    assert len(audit(token_id=ta["token_id"])["items"]) == 3
    assert [i["endpoint"] for i in audit(table=ORDERS)["items"]] == ["/test/probe-query"] * 3
    assert audit(table="demo.public.order_")["items"] == []  # LIKE wildcards are escaped
    assert [i["status_code"] for i in audit(token_id=tb["token_id"], status="403")["items"]] == [403]
    assert [i["status_code"] for i in audit(token_id=tb["token_id"], status="4xx")["items"]] == [403]
    assert len(audit(token_id=tb["token_id"], status="2xx")["items"]) == 1
    assert audit(since=(before + dt.timedelta(hours=1)).isoformat())["items"] == []
    assert audit(until=before.isoformat(), token_id=ta["token_id"])["items"] == []
    assert all(i["caller_type"] == "agent" for i in audit(caller_type="agent")["items"])
    first = audit(limit=2)
    assert len(first["items"]) == 2
    second = audit(limit=2, cursor=first["next_cursor"])
    assert second["items"][0]["id"] < first["items"][-1]["id"]
    assert_error(client.get(AUDIT, params={"status": "teapot"}, headers=admin_headers), 400)
    assert_error(client.get(AUDIT, headers=bearer(ta["token"])), 403, rule="requires_admin")


def test_many_requests_are_all_written(client: Any, flush_audit: Callable[[], None], api_settings: Settings) -> None:
    for _ in range(600):
        client.get("/health")
    flush_audit()
    assert sum(1 for r in _rows(api_settings) if r.endpoint == "/health") == 600


def test_an_audit_write_failure_never_loses_the_answer(api_settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    broken = AuditWriter("sqlite:////nonexistent-dir/forbidden/audit.db")
    app = create_app(api_settings, services=Services(settings=api_settings, parts={"audit": broken}))
    with caplog.at_level(logging.ERROR, logger="agents_data.audit"), TestClient(app) as client:
        for _ in range(5):
            r = client.get("/health")
            assert r.status_code == 200
            assert r.json() == {"status": "ok"}
        assert_error(client.get("/nope"), 404)
        assert broken.flush()
    # An unreachable database drops nothing: the rows are kept for a retry, and the error is logged.
    assert broken.written == 0
    assert broken.failed == 0
    assert "control database unreachable" in caplog.text


def test_a_queueing_failure_never_loses_the_answer(client: Any, services: Services,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(row: dict[str, Any]) -> None:
        raise RuntimeError("queue broken")

    monkeypatch.setattr(services.parts["audit"], "submit", explode)
    r = client.get("/health")
    assert r.status_code == 200


def test_annotate_rejects_unknown_fields() -> None:
    with pytest.raises(TypeError):
        annotate({"type": "http"}, password="x")  # noqa: S106 - an unknown field, not a secret


def test_no_token_in_any_log_record_or_audit_row(*, client: Any, admin_headers: dict[str, str], api_settings: Settings,
                                                 make_swarm: Callable[..., dict[str, Any]],
                                                 flush_audit: Callable[[], None],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    admin_token = admin_headers["Authorization"].split()[1]
    swarm = make_swarm([ORDERS])
    parent = mint_token(client, admin_headers, "swarm", swarm["id"])
    child = mint_token(client, bearer(parent["token"]), "agent", via_swarm=True)
    tokens = [admin_token, parent["token"], child["token"]]
    for t in tokens:
        client.get(WHOAMI, headers=bearer(t))
        client.get(WHOAMI, headers=bearer(t + "x"))  # a bad signature is logged nowhere either
        client.get("/api/v1/admin/tokens", headers=bearer(t))
    client.delete(f"/api/v1/admin/tokens/{parent['token_id']}", headers=admin_headers)
    client.get(WHOAMI, headers=bearer(child["token"]))
    flush_audit()
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in caplog.records) + caplog.text
    with session_scope(api_settings.control_url) as s:
        stored = "\n".join(" ".join(map(str, row)) for row in s.execute(sa.select(AuditRow.__table__)).all())
    assert stored
    for t in tokens:
        for part in (t, t.split(".")[2]):  # neither the token nor its signature
            assert part not in logged
            assert part not in stored


def test_nul_bytes_in_the_path_are_recorded_and_lose_no_neighbours(
        client: Any, flush_audit: Callable[[], None], api_settings: Settings) -> None:
    """PostgreSQL refuses NUL in text: an agent's path with one must not cost the batch its rows."""
    client.get("/health")
    assert_error(client.get("/api/v1/artifacts/art_%00x"), 401)
    client.get("/health")
    flush_audit()
    endpoints = [r.endpoint for r in _rows(api_settings)]
    assert endpoints.count("/health") == 2
    assert "/api/v1/artifacts/art_\\x00x" in endpoints


def _audit_row(endpoint: str, **extra: Any) -> dict[str, Any]:
    return {"at": dt.datetime.now(dt.UTC), "caller_type": "anonymous", "method": "GET", "endpoint": endpoint,
            "status_code": 200, "tables": [], "duration_ms": 1.0, "replica": "t", **extra}


def _endpoints(url: str) -> list[str]:
    with session_scope(url) as s:
        return list(s.scalars(sa.select(AuditRow.endpoint).order_by(AuditRow.id)))


def test_nul_bytes_are_stored_escaped_on_both_databases(control_url: str) -> None:
    from shared.control.db import migrate

    migrate(control_url)
    writer = AuditWriter(control_url)
    writer.submit(_audit_row("/a"))
    writer.submit(_audit_row("/api/v1/artifacts/art_\x00x", sql_text="select 1 -- \x00"))
    writer.submit(_audit_row("/b"))
    assert writer.flush()
    assert (writer.written, writer.failed) == (3, 0)
    assert _endpoints(control_url) == ["/a", "/api/v1/artifacts/art_\\x00x", "/b"]


def test_one_unwritable_row_costs_only_itself(control_url: str, caplog: pytest.LogCaptureFixture) -> None:
    from shared.control.db import migrate

    migrate(control_url)
    writer = AuditWriter(control_url)

    for r in (_audit_row("/first"), _audit_row("/broken", at=None), _audit_row("/last")):  # "at" is NOT NULL
        writer.submit(r)
    with caplog.at_level(logging.WARNING, logger="agents_data.audit"):
        assert writer.flush()
    assert (writer.written, writer.failed) == (2, 1)
    endpoints = set(_endpoints(control_url))
    assert {"/first", "/last"} <= endpoints
    assert "/broken" not in endpoints
    assert "retrying row by row" in caplog.text
