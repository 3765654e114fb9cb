"""Budgets per swarm and agent: admin calls, 429 past each kind, and the rate-limit headers.

In-process, over the control database (SQLite, and PostgreSQL where the counters' upsert
differs). Exactness across worker processes is proven in ``tests/e2e/test_budgets_workers.py``.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from litestar.testing import TestClient

from serving.app import create_app
from serving.lib.audit import get_audit
from serving.lib.budgets import get_budgets
from serving.lib.counters import Counter, charge, forget_old, now_us, usage
from shared.control.db import migrate
from shared.settings import Settings
from tests.conftest import publish_table
from tests.serving.helpers import admin_token, assert_error, bearer, create_swarm, mint_token

TABLE = "demo.public.budget_rows"
EXECUTE = "/api/v1/queries/execute"


@pytest.fixture
def world(api_settings: Settings) -> Any:
    publish_table(api_settings.served_path, TABLE, "SELECT range AS id, 'x' AS label FROM range(50)")
    with TestClient(create_app(api_settings)) as client:
        admin = bearer(admin_token(client))
        swarm = create_swarm(client, admin, [TABLE])
        agent = mint_token(client, admin, "agent", swarm["id"])
        yield client, admin, swarm, agent


def _query(client: Any, headers: dict[str, str], limit: int = 5) -> Any:
    return client.post(EXECUTE, headers=headers, json={"query": f"SELECT * FROM {TABLE} ORDER BY id LIMIT {limit}"})


def _policies(header: str) -> dict[str, dict[str, str]]:
    out = {}
    for item in header.split(", "):
        name, *params = item.split(";")
        out[name.strip('"')] = dict(p.split("=", 1) for p in params)
    return out


def test_admin_sets_and_reads_budgets(world: Any) -> None:
    client, admin, swarm, agent = world
    r = client.put(f"/api/v1/admin/swarms/{swarm['id']}/budget", headers=admin, json={"queries_per_day": 10})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["subject_type"] == "swarm"
    assert body["queries_per_day"] == 10
    assert body["rows_per_day"] is None
    queries = next(u for u in body["usage"] if u["kind"] == "queries")
    assert queries["used"] == 0
    assert queries["remaining"] == 10
    assert queries["window_s"] == 86400
    assert _query(client, bearer(agent["token"])).status_code == 200
    body = client.get(f"/api/v1/admin/swarms/{swarm['id']}/budget", headers=admin).json()
    assert next(u for u in body["usage"] if u["kind"] == "queries")["used"] == 1
    rows = next(u for u in body["usage"] if u["kind"] == "rows")
    assert rows["used"] == 5
    assert rows["limit"] is None
    assert rows["remaining"] is None

    r = client.put(f"/api/v1/admin/tokens/{agent['token_id']}/budget", headers=admin, json={"rows_per_day": 7})
    assert r.status_code == 200
    assert r.json()["subject_type"] == "agent"
    assert r.json()["rows_per_day"] == 7
    # Bad input: the one error shape, never a 5xx.
    assert_error(client.put("/api/v1/admin/swarms/nope/budget", headers=admin, json={}), 404)
    swarm_token = mint_token(client, admin, "swarm", swarm["id"])
    assert_error(client.put(f"/api/v1/admin/tokens/{swarm_token['token_id']}/budget", headers=admin, json={}), 404)
    assert_error(client.put(f"/api/v1/admin/swarms/{swarm['id']}/budget", headers=admin, json={"queries_per_day": -1}), 400)
    assert_error(client.put(f"/api/v1/admin/swarms/{swarm['id']}/budget", headers=admin, json={"minutes": 1}), 400)
    assert_error(
        client.get(f"/api/v1/admin/swarms/{swarm['id']}/budget", headers=bearer(agent["token"])), 403, rule="requires_admin"
    )
    # Audited like every admin call, and documented.
    assert get_audit(client.app.state.services).flush()
    audit = client.get("/api/v1/admin/audit", headers=admin, params={"caller_type": "admin", "limit": 1000}).json()
    assert any(
        e["method"] == "PUT" and e["endpoint"] == f"/api/v1/admin/swarms/{swarm['id']}/budget" and e["status_code"] == 200
        for e in audit["items"]
    )
    operations = {
        op.get("operationId")
        for path in client.get("/docs/openapi.json").json()["paths"].values()
        for op in path.values()
        if isinstance(op, dict)
    }
    assert {"getSwarmBudget", "setSwarmBudget", "getAgentBudget", "setAgentBudget"} <= operations


def test_query_budget_refuses_with_reset_time_and_headers(world: Any) -> None:
    client, admin, swarm, agent = world
    client.put(f"/api/v1/admin/tokens/{agent['token_id']}/budget", headers=admin, json={"queries_per_day": 3})
    headers = bearer(agent["token"])
    answers = [_query(client, headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    last = _policies(answers[-1].headers["ratelimit"])
    assert last["agent-queries"]["r"] == "0"
    policy = _policies(answers[-1].headers["ratelimit-policy"])
    assert policy["agent-queries"] == {"q": "3", "w": "86400", "qu": '"requests"'}
    assert "requests" in policy  # the per-token request rate is always reported
    refused = _query(client, headers)
    error = assert_error(refused, 429, "rate_limited", "query_budget")
    assert error["details"]["budget"] == "agent-queries"
    assert error["details"]["limit"] == 3
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT00:00:00Z", error["details"]["reset_at"])
    retry = int(refused.headers["retry-after"])
    assert 1 <= retry <= 86400
    assert abs(int(_policies(refused.headers["ratelimit"])["agent-queries"]["t"]) - retry) <= 1
    again = _query(client, headers)  # refused from this process's memory, without the database
    assert_error(again, 429, "rate_limited", "query_budget")
    assert _policies(again.headers["ratelimit"])["agent-queries"]["r"] == "0"
    assert abs(int(_policies(again.headers["ratelimit"])["agent-queries"]["t"]) - int(again.headers["retry-after"])) <= 1
    # Other requests of the agent still work; another agent of the swarm is not limited by this one's budget.
    assert client.get("/api/v1/data/tables", headers=headers).status_code == 200
    other = bearer(mint_token(client, admin, "agent", swarm["id"])["token"])
    assert _query(client, other).status_code == 200
    # Raising the budget applies at once on this process.
    client.put(f"/api/v1/admin/tokens/{agent['token_id']}/budget", headers=admin, json={"queries_per_day": 5})
    assert _query(client, headers).status_code == 200


def test_a_new_budget_applies_to_a_token_already_seen(world: Any) -> None:
    """Policies are worked out once per token: a budget set afterwards still applies at once."""
    client, admin, _swarm, agent = world
    headers = bearer(agent["token"])
    first = client.post(EXECUTE, headers=headers, json={"query": f"SELECT * FROM {TABLE}"})
    assert first.status_code == 200, first.text
    assert "agent-queries" not in first.headers["ratelimit-policy"]
    r = client.put(f"/api/v1/admin/tokens/{agent['token_id']}/budget", headers=admin, json={"queries_per_day": 1})
    assert r.status_code == 200, r.text
    later = [client.post(EXECUTE, headers=headers, json={"query": f"SELECT * FROM {TABLE}"}) for _ in range(2)]
    assert '"agent-queries";q=1' in later[0].headers["ratelimit-policy"]
    refused = [r for r in later if r.status_code == 429]
    assert refused, [r.status_code for r in later]
    assert refused[0].json()["error"]["rule"] == "query_budget"


def test_swarm_budget_is_shared_by_its_agents(world: Any) -> None:
    client, admin, swarm, agent = world
    client.put(f"/api/v1/admin/swarms/{swarm['id']}/budget", headers=admin, json={"queries_per_day": 4})
    a, b = bearer(agent["token"]), bearer(mint_token(client, admin, "agent", swarm["id"])["token"])
    statuses = [_query(client, h).status_code for h in (a, b, a, b, a, b)]
    assert statuses == [200, 200, 200, 200, 429, 429]
    assert_error(_query(client, b), 429, rule="query_budget")


def test_rows_and_bytes_budgets(world: Any, api_settings: Settings) -> None:
    client, admin, swarm, agent = world
    headers = bearer(agent["token"])
    client.put(f"/api/v1/admin/tokens/{agent['token_id']}/budget", headers=admin, json={"rows_per_day": 12})
    first = _query(client, headers, limit=10)
    assert first.status_code == 200
    assert _policies(first.headers["ratelimit"])["agent-rows"]["r"] == "2"  # this answer's rows already counted
    assert _query(client, headers, limit=10).status_code == 200  # admitted while rows remain: it crosses the line
    error = assert_error(_query(client, headers), 429, rule="row_budget")
    assert error["details"]["used"] == 20
    assert error["details"]["limit"] == 12
    # Samples and result files count too, and are refused once the rows are spent.
    assert_error(client.get(f"/api/v1/data/tables/{TABLE}/sample?size=3", headers=headers), 429, rule="row_budget")

    other = mint_token(client, admin, "agent", swarm["id"])
    client.put(f"/api/v1/admin/tokens/{other['token_id']}/budget", headers=admin, json={"bytes_per_day": 100})
    h2 = bearer(other["token"])
    job = client.post(EXECUTE, headers=h2, json={"query": f"SELECT * FROM {TABLE}", "output_format": "csv"}).json()
    result = client.get(job["result_url"], headers=h2)
    assert result.status_code == 200
    assert len(result.content) > 100
    assert_error(client.get(job["result_url"], headers=h2), 429, rule="byte_budget")
    used = client.get(f"/api/v1/admin/tokens/{other['token_id']}/budget", headers=admin).json()["usage"]
    assert next(u for u in used if u["kind"] == "bytes")["used"] == len(result.content)


def test_request_rate_is_counted_in_the_control_database(api_settings: Settings) -> None:
    """Two apps on one control database stand for two workers: the token bucket is shared, exactly."""
    import dataclasses

    limited = dataclasses.replace(api_settings, query=dataclasses.replace(api_settings.query, agent_rpm=6))
    with TestClient(create_app(limited)) as one, TestClient(create_app(limited)) as two:
        admin = bearer(admin_token(one))
        swarm = create_swarm(one, admin, [])
        agent = bearer(mint_token(one, admin, "agent", swarm["id"])["token"])
        whoami = "/api/v1/auth/whoami"
        started = time.monotonic()
        answers = [(one if i % 2 else two).get(whoami, headers=agent) for i in range(8)]
        assert time.monotonic() - started < 10, "too slow to tell: the bucket refills one request every 10 s"
        assert [a.status_code for a in answers] == [200] * 6 + [429] * 2
        assert [_policies(a.headers["ratelimit"])["requests"]["r"] for a in answers[:6]] == ["5", "4", "3", "2", "1", "0"]
        error = assert_error(answers[-1], 429, rule="rate_limit")
        assert error["details"] == {"limit": 6, "window_s": 60}
        assert 1 <= int(answers[-1].headers["retry-after"]) <= 10  # one request's refill
        assert _policies(answers[-1].headers["ratelimit"])["requests"]["r"] == "0"
        again = one.get(whoami, headers=agent)  # refused from this process's memory, without the database
        assert_error(again, 429, rule="rate_limit")
        assert _policies(again.headers["ratelimit"])["requests"]["r"] == "0"
        assert 50 <= int(_policies(again.headers["ratelimit"])["requests"]["t"]) <= 70  # until the bucket is full
        assert one.get("/api/v1/admin/swarms", headers=admin).status_code == 200  # the admin is never limited
        assert "ratelimit" not in one.get("/api/v1/admin/swarms", headers=admin).headers


def test_refresh_budget_per_hour(world: Any) -> None:
    client, admin, swarm, agent = world
    client.put(f"/api/v1/admin/swarms/{swarm['id']}/budget", headers=admin, json={"refreshes_per_hour": 0})
    r = client.post(f"/api/v1/data/tables/{TABLE}/refresh", headers=bearer(agent["token"]))
    error = assert_error(r, 429, rule="refresh_budget")
    assert error["details"]["window_s"] == 3600
    assert 1 <= int(r.headers["retry-after"]) <= 3600


def test_counters_upsert_atomically(control_url: str) -> None:
    """The counter primitive on SQLite and PostgreSQL: totals, rollback on refusal, old windows forgotten."""
    migrate(control_url)
    a, b = Counter("agent:x", "queries", 86400), Counter("swarm:y", "queries", 86400)
    now = 1_800_000_000.0
    assert charge(control_url, {a: 1, b: 1}, now=now) == {a: 1, b: 1}
    assert charge(control_url, {a: 2, b: 0}, now=now) == {a: 3, b: 1}

    def refuse(totals: dict[Counter, int]) -> None:
        raise RuntimeError("over")

    with pytest.raises(RuntimeError):
        charge(control_url, {a: 5}, now=now, verdict=refuse)
    assert usage(control_url, [a, b], now=now) == {a: 3, b: 1}
    assert usage(control_url, [a], now=now + 86400) == {a: 0}  # the next day starts at zero
    # A rate counter is a token bucket: 3 a minute means 20 s of refill per request.
    bucket, cost = Counter("token:t", "requests", 60, rate=True), 20_000_000
    arrivals = [charge(control_url, {bucket: cost}, now=now)[bucket] for _ in range(4)]
    assert [(t - now_us(now)) // 1_000_000 for t in arrivals] == [20, 40, 60, 80]  # the 4th is a window ahead: refused
    later = charge(control_url, {bucket: cost}, now=now + 300)[bucket]  # a full bucket again
    assert later == now_us(now + 300) + cost
    assert forget_old(control_url, now=now + 4 * 86400) >= 3  # old windows and the full bucket


def test_budgets_accessor(world: Any) -> None:
    client = world[0]
    assert get_budgets(client.app.state.services).writer is not None


def _two_processes(control_url: str, rpm: int, clock: Any, **budget: int) -> tuple[Any, Any, Any]:
    """Two ``Budgets`` on one control database (two API processes) and an agent with ``budget`` set."""
    from serving.lib.budgets import Budgets
    from serving.lib.caller import Caller
    from shared.control.db import session_scope
    from shared.control.models import BudgetRow

    migrate(control_url)
    token = f"tok_lease_{rpm}_{sum(budget.values())}"
    with session_scope(control_url) as s:
        s.merge(BudgetRow(subject=f"agent:{token}", **budget))
    settings = Settings.from_env({"AGENT_REQUESTS_PER_MINUTE": str(rpm), "DATABASE_URL": control_url})
    caller = Caller(kind="agent", subject="a", token_id=token, swarm_id="swm_lease")
    return Budgets(control_url, settings, clock=clock), Budgets(control_url, settings, clock=clock), caller


def _count_trips(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    import serving.lib.budgets as module

    trips: list[int] = []
    real = module.charge

    def counted(*a: Any, **k: Any) -> Any:
        trips.append(1)
        return real(*a, **k)

    monkeypatch.setattr(module, "charge", counted)
    return trips


def test_leases_admit_locally_and_never_past_a_limit(control_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes lease blocks of a day's queries: exactly the limit is admitted, in few database trips."""
    from serving.lib.budgets import QUERY, BudgetExceeded, NeedsDatabase

    now = [1_800_000_000.0]
    one, two, caller = _two_processes(control_url, 10**9, lambda: now[0], queries_per_day=5000)
    with pytest.raises(NeedsDatabase):  # nothing leased yet: the local check asks for the database
        one.check(caller, QUERY, local=True)
    trips = _count_trips(monkeypatch)
    admitted, refused, rules = 0, 0, set()
    for _ in range(3000):
        for budgets in (one, two):
            try:
                budgets.check(caller, QUERY)
                admitted += 1
            except BudgetExceeded as e:
                refused += 1
                rules.add(e.rule)
    assert admitted == 5000
    assert refused == 1000
    assert rules == {"query_budget"}
    assert len(trips) < 200, len(trips)  # the rest came from leases (the last 64 are charged one by one)
    agent = Counter(f"agent:{caller.token_id}", "queries", 86400)
    assert usage(control_url, [agent], now=now[0]) == {agent: 5000}


def test_a_lease_answers_locally_and_unused_leases_go_back(control_url: str) -> None:
    from serving.lib.budgets import LEASE_S, QUERY, NeedsDatabase

    now = [1_800_000_000.0]
    one, two, caller = _two_processes(control_url, 10**9, lambda: now[0], queries_per_day=10_000)
    for _ in range(20):  # the lease doubles while it runs out before it expires
        one.check(caller, QUERY)
    snapshot = one.check(caller, QUERY, local=True)  # from the lease: no database
    agent = Counter(f"agent:{caller.token_id}", "queries", 86400)
    leased = usage(control_url, [agent], now=now[0])[agent]
    assert leased > 21  # more than was admitted is reserved ...
    headers = dict(one.headers(snapshot))
    remaining = int(_policies(headers[b"ratelimit"].decode())["agent-queries"]["r"])
    assert remaining == 10_000 - 21  # ... yet this process reports what it may still admit
    two.check(caller, QUERY)
    other = int(_policies(dict(two.headers(two.check(caller, QUERY)))[b"ratelimit"].decode())["agent-queries"]["r"])
    assert other <= 10_000 - leased - 2  # another process counts the lease as used: conservative, never more
    now[0] += LEASE_S + 0.01
    with pytest.raises(NeedsDatabase):  # the lease expired
        one.check(caller, QUERY, local=True)
    one.writer.flush()
    two.close()  # its lease goes back on shutdown
    used = usage(control_url, [agent], now=now[0])[agent]
    assert used == 21 + 2, used  # every unused lease returned: the database holds what was admitted


def test_leased_request_rate_stays_within_the_bucket(control_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bucket of 6000 a minute, two processes, no time passing: at most 6000 admitted, nearly all of them."""
    from serving.lib.budgets import LEASE_S, REQUEST, BudgetExceeded

    now = [1_800_000_000.0]
    one, two, caller = _two_processes(control_url, 6000, lambda: now[0])
    trips = _count_trips(monkeypatch)
    admitted, rules = 0, set()
    for _ in range(3500):
        for budgets in (one, two):
            try:
                budgets.check(caller, REQUEST)
                admitted += 1
            except BudgetExceeded as e:
                rules.add(e.rule)
    assert 6000 - 2 * LEASE_S * 100 <= admitted <= 6000  # a lease counts from its expiry: ≤ 0.5 s of refill lost
    assert len(trips) < 300, len(trips)
    assert rules == {"rate_limit"}


def test_rows_budget_is_read_once_per_lease_while_far_from_its_limit(control_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Far from a rows budget a process reads the counter once per LEASE_S and adds its own
    answers; past half of it every request reads the database, and the limit still refuses."""
    from serving.lib.budgets import LEASE_S, READ, BudgetExceeded

    now = [1_800_000_000.0]
    one, two, caller = _two_processes(control_url, 10**9, lambda: now[0], rows_per_day=1000)
    import serving.lib.budgets as module

    trips: list[int] = []  # database reads of the rows counter (the request rate's leases aside)
    real = module.charge

    def counted(url: str, amounts: Any, **k: Any) -> Any:
        trips.extend(1 for c in amounts if c.kind == "rows")
        return real(url, amounts, **k)

    monkeypatch.setattr(module, "charge", counted)
    for _ in range(10):
        one.check(caller, READ)
        one.returned({}, caller, rows=20, nbytes=0)
    assert len(trips) == 1  # one read, then its own 200 rows added in memory
    assert one.check(caller, READ).totals[Counter(f"agent:{caller.token_id}", "rows", 86400)] == 200
    one.writer.flush()
    two.check(caller, READ)
    two.returned({}, caller, rows=300, nbytes=0)
    two.writer.flush()
    one.check(caller, READ)  # still within its read: does not know of the other process's 300 yet
    assert len(trips) == 2
    now[0] += LEASE_S + 0.01
    snapshot = one.check(caller, READ)  # read again: 500 used, half of the budget
    assert snapshot.totals[Counter(f"agent:{caller.token_id}", "rows", 86400)] == 500
    one.check(caller, READ)
    assert len(trips) == 4  # at half or more of the budget, every request reads
    one.returned({}, caller, rows=500, nbytes=0)
    with pytest.raises(BudgetExceeded) as refused:
        one.check(caller, READ)
    assert refused.value.rule == "row_budget"
