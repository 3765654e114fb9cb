"""The API under contract fuzzing: a real app in-process, real data and tokens, and the checks.

Shared by the bounded run in the test suite (``test_api_contract.py``) and the full run
(``bench/fuzz_api.py``), so both fuzz exactly the same thing.

Why in-process (schemathesis' ASGI transport): no port, no process start, and the app's
lifespan (migrations, audit writer, feature start-ups) still runs once, as under uvicorn.
Every request goes through the same ASGI stack (ingress, audit, auth, guard).

The world the fuzzer meets:
- three served demo tables (orders, customers, products), published as real DuckDB files;
- swarm A granted orders and customers, swarm B granted products;
- tokens: admin, swarm A, agent A, agent B (the *other swarm*), an expired agent A token
  (signed with the app's secret, ``exp`` in the past), a revoked agent A token, and none;
- resources of agent A (an artifact, a finished query job) whose ids the fuzzer can hit,
  so the other-swarm token is tried against real ids, not only random ones;
- Dagster is the in-memory fake (tests/serving/dagster_fake.py); the Snowflake stand-in is
  the fakesnow server the settings name (the test session's, or the bench's own).

Verdicts counted per response: a server error (any 5xx: every dependency is up here, so
even the API's by-design 503 for an unavailable dependency must not appear), a schema
violation (schemathesis' response-schema, content-type and header checks against the
OpenAPI document, which states the one error shape for every error status), and a leak
(a stack trace or internal path in a body).
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import jwt
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from schemathesis.python import asgi

from serving.app import create_app
from shared.settings import Settings
from tests.conftest import publish_table
from tests.serving.dagster_fake import FakeDagster
from tests.serving.helpers import admin_token, bearer, create_swarm, mint_token

ORDERS, CUSTOMERS, PRODUCTS = "demo.public.orders", "demo.public.customers", "demo.public.products"
TABLES = {
    ORDERS: ("select range as order_id, 1 + range % 50 as customer_id, 1 + range % 20 as product_id, "
             "['new','paid','shipped'][1 + range % 3] as status, ((range % 1000) / 100)::decimal(12,2) as amount, "
             "timestamp '2025-01-01' + to_minutes(range::bigint) as ordered_at from range(500)"),
    CUSTOMERS: ("select range + 1 as customer_id, 'Customer ' || (range + 1) as name, "
                "['US','DE','FR'][1 + range % 3] as country, date '2024-01-01' + range::int as signup_date from range(50)"),
    PRODUCTS: ("select range + 1 as product_id, 'SKU-' || range as sku, ['books','toys'][1 + range % 2] as category, "
               "(range * 1.5)::decimal(10,2) as price from range(20)"),
}
ROLES = ("admin", "swarm", "agent", "other_swarm", "expired", "revoked", "anonymous")
# How often each role sends a generated case: valid tokens more often, so most cases reach the handlers.
ROLE_DRAWS = ("admin", "admin", "swarm", "agent", "agent", "agent", "other_swarm", "expired", "revoked", "anonymous")
SCHEMA_CHECKS = ("response_schema_conformance", "content_type_conformance", "response_headers_conformance")


def _maybe_str(value: Any) -> str:
    return value if isinstance(value, str) else ""


@dataclasses.dataclass
class Tally:
    """Counts of one fuzz run, per operation, for the report line."""

    cases: Counter[str] = dataclasses.field(default_factory=Counter)
    statuses: Counter[str] = dataclasses.field(default_factory=Counter)
    server_errors: list[str] = dataclasses.field(default_factory=list)
    schema_violations: list[str] = dataclasses.field(default_factory=list)

    def summary(self, operations: list[str]) -> dict[str, Any]:
        covered = sorted(op for op in operations if self.cases[op])
        return {"cases": sum(self.cases.values()), "operations": len(operations), "operations_covered": len(covered),
                "min_cases_per_operation": min((self.cases[op] for op in operations), default=0),
                "server_errors": len(self.server_errors), "schema_violations": len(self.schema_violations),
                "statuses": dict(sorted(self.statuses.items())),
                "server_error_examples": self.server_errors[:10], "schema_violation_examples": self.schema_violations[:10]}


@dataclasses.dataclass
class FuzzTarget:
    """The running app, the loaded schema, one header set per role and real ids per path parameter."""

    app: Litestar
    client: asgi.ASGIClient
    schema: Any
    headers: dict[str, dict[str, str]]
    known: dict[str, list[str]]
    tally: Tally = dataclasses.field(default_factory=Tally)
    last_response: Any = None


def _expired(settings: Settings, token: dict[str, Any], swarm_id: str) -> str:
    """An agent token signed with the app's own secret whose ``exp`` has passed (nothing else is wrong)."""
    now = int(time.time())
    claims = {"sub": token.get("name") or "agent", "typ": "agent", "jti": token["token_id"], "iat": now - 7200,
              "nbf": now - 7200, "exp": now - 3600, "aud": settings.auth.jwt_audience, "iss": settings.auth.jwt_issuer,
              "swarm": swarm_id}
    return jwt.encode(claims, settings.auth.jwt_secret, algorithm="HS256")


def _world(client: Any, settings: Settings) -> tuple[dict[str, dict[str, str]], dict[str, list[str]]]:
    admin = bearer(admin_token(client))
    swarm_a = create_swarm(client, admin, [ORDERS, CUSTOMERS], name="fuzz-a")
    swarm_b = create_swarm(client, admin, [PRODUCTS], name="fuzz-b")
    swarm_token = mint_token(client, admin, "swarm", swarm_a["id"])
    agent = mint_token(client, admin, "agent", swarm_a["id"])
    other = mint_token(client, admin, "agent", swarm_b["id"])
    revoked = mint_token(client, admin, "agent", swarm_a["id"])
    r = client.delete(f"/api/v1/admin/tokens/{revoked['token_id']}", headers=admin)
    assert r.status_code == 200, r.text
    headers = {
        "admin": admin, "swarm": bearer(swarm_token["token"]), "agent": bearer(agent["token"]),
        "other_swarm": bearer(other["token"]), "expired": bearer(_expired(settings, agent, swarm_a["id"])),
        "revoked": bearer(revoked["token"]), "anonymous": {},
    }
    up = client.post("/api/v1/artifacts", headers=headers["agent"], files={"file": ("a.csv", b"x,y\n1,2\n", "text/csv")},
                     data={"tags": "fuzz"})
    assert up.status_code == 201, up.text
    q = client.post("/api/v1/queries/execute", headers=headers["agent"],
                    json={"query": "select status, count(*) as n from orders group by status", "output_format": "parquet"})
    assert q.status_code in (200, 202), q.text
    job_id = _maybe_str(q.json().get("job_id") or q.json().get("id"))
    known = {
        "table": [ORDERS, "orders", CUSTOMERS, PRODUCTS],
        "swarm_id": [swarm_a["id"], swarm_b["id"]],
        "token_id": [agent["token_id"], other["token_id"]],
        "artifact_id": [up.json()["id"]],
        "job_id": [j for j in (job_id,) if j],
        "schema_name": ["public", "synctest"],
        "table_name": ["orders", "items"],
    }
    return headers, known


def make_app(settings: Settings) -> Litestar:
    """The app with the demo tables published, the fake Dagster and the in-process load check."""
    from shared.control.db import migrate

    for key, sql in TABLES.items():
        publish_table(settings.served_path, key, sql)
    migrate(settings.control_url)
    app = create_app(settings)
    app.state.services.parts["dagster"] = FakeDagster(settings.control_url).client(settings.dagster)

    async def load_check(tables: list[dict[str, object]]) -> dict[str, object]:
        from orchestration.loadcheck import check

        return check(list(tables))  # type: ignore[arg-type]

    app.state.services.parts["load_check"] = load_check
    return app


@contextlib.contextmanager
def fuzz_target(settings: Settings) -> Iterator[FuzzTarget]:
    """Start the app (lifespan included), build the world, load the schema from ``/docs/openapi.json``."""
    app = make_app(settings)
    try:
        with asgi.get_client(app) as client:
            headers, known = _world(client, settings)
            schema = schemathesis.openapi.from_asgi("/docs/openapi.json", app)
            yield FuzzTarget(app=app, client=client, schema=schema, headers=headers, known=known)
    finally:
        asgi.shutdown_lifespans()


def fill_known(case: Any, known: dict[str, list[str]], pick: int) -> None:
    """Point some path parameters at real objects (``pick`` chooses which), so handlers get past 404."""
    params = case.path_parameters or {}
    for name in list(params):
        values = known.get(name)
        if values and pick % 3 != 0:
            params[name] = values[pick % len(values)]


def run_case(target: FuzzTarget, case: Any, role: str) -> None:
    """Send ``case`` with ``role``'s token; record the verdicts; raise AssertionError on a failure."""
    op = case.operation.label
    headers = dict(case.headers or {})
    headers.pop("Authorization", None)
    headers.update(target.headers[role])
    case.headers = headers
    response = target.last_response = case.call(session=target.client)
    tally = target.tally
    tally.cases[op] += 1
    tally.statuses[str(response.status_code)] += 1
    failures: list[str] = []
    text = response.content.decode("utf-8", "replace") if response.content else ""
    where = f"{op} as {role}: {case.method} {case.formatted_path} -> {response.status_code}"
    if response.status_code >= 500:
        tally.server_errors.append(f"{where}: {text[:300]}")
        failures.append("server error")
    if "Traceback (most recent call last)" in text or 'File "/' in text:
        tally.server_errors.append(f"{where}: leaked a stack trace")
        failures.append("leak")
    try:
        case.validate_response(response, checks=_schema_checks())
    except (AssertionError, BaseExceptionGroup) as e:  # schemathesis raises a FailureGroup (an exception group)
        tally.schema_violations.append(f"{where}: {str(e)[:400]}")
        failures.append("schema violation")
    if failures:
        raise AssertionError(f"{where}: {', '.join(failures)}\n{text[:500]}")


def _schema_checks() -> list[Any]:
    from schemathesis.specs.openapi import checks as openapi_checks

    return [getattr(openapi_checks, name) for name in SCHEMA_CHECKS]


def operations(target: FuzzTarget) -> list[Any]:
    return [result.ok() for result in target.schema.get_all_operations()]


def _hypothesis_settings(examples: int, **extra: Any) -> settings:
    return settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate], **extra)


def run_stateless(target: FuzzTarget, cases_per_operation: int) -> list[str]:
    """Fuzz every operation with up to ``cases_per_operation`` generated cases; return the failures."""
    failures: list[str] = []
    for operation in operations(target):

        @given(case=operation.as_strategy(), role=st.sampled_from(ROLE_DRAWS), pick=st.integers(0, 999))
        @_hypothesis_settings(cases_per_operation)
        def fuzz(case: Any, role: str, pick: int) -> None:
            fill_known(case, target.known, pick)
            try:
                run_case(target, case, role)
            except AssertionError as e:
                failures.append(str(e)[:600])

        fuzz()
    return failures


def _role_for(path: str, rng: random.Random) -> str:
    """The owner's role for a step (so chains get somewhere), now and then a token that must be refused."""
    if rng.random() < 0.1:
        return rng.choice(("other_swarm", "expired", "revoked", "anonymous"))
    if path.startswith(("/api/v1/admin", "/api/v1/sync", "/api/v1/auth/token")):
        return "admin"
    if path.startswith("/api/v1/swarm/"):
        return "swarm"
    return "agent"


@dataclasses.dataclass
class StatefulRun:
    links: int
    calls: int = 0
    scenarios: int = 0
    aborted_batches: int = 0  # batches hypothesis stopped as flaky (see run_stateful)
    failures: list[str] = dataclasses.field(default_factory=list)


def run_stateful(target: FuzzTarget, scenarios: int, steps: int, *, batch: int = 20,
                 derandomize: bool = True) -> StatefulRun:
    """Run schemathesis' state machine over the links it infers, in batches of ``batch`` scenarios.

    Why batches: which links can be followed depends on the live server's answers (a link
    leaves only a 2xx response), so when hypothesis replays a scenario prefix against the
    changed server it may see a different set of enabled steps and stop the run as a
    ``FlakyStrategyDefinition``. That is a property of stateful fuzzing against a real
    server, not an API failure: the batch is counted as aborted and the next one runs.
    """
    from hypothesis.errors import Flaky, FlakyStrategyDefinition

    machine = target.schema.as_state_machine()
    result = StatefulRun(links=int(target.schema.statistic.transitions.total))
    rng = random.Random(17)  # noqa: S311 (a reproducible choice of roles, not a secret)

    class Workflow(machine):  # type: ignore[misc,valid-type]
        def call(self, case: Any, **kwargs: Any) -> Any:
            try:
                run_case(target, case, _role_for(case.path, rng))
            except AssertionError as e:
                result.failures.append(str(e)[:600])
            return target.last_response

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            return None  # run_case already judged the response

    before = sum(target.tally.cases.values())
    while result.scenarios < scenarios:
        size = min(batch, scenarios - result.scenarios)
        Workflow.TestCase.settings = settings(max_examples=size, stateful_step_count=steps, deadline=None, database=None,
                                              derandomize=derandomize, suppress_health_check=list(HealthCheck),
                                              phases=[Phase.explicit, Phase.generate])
        try:
            Workflow.TestCase().runTest()
        except (FlakyStrategyDefinition, Flaky):
            result.aborted_batches += 1
        result.scenarios += size
    result.calls = sum(target.tally.cases.values()) - before
    return result
