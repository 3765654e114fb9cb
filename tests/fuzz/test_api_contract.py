"""Contract fuzzing (bounded): every operation of ``/docs/openapi.json`` against the real app.

Schemathesis generates requests from the OpenAPI document (valid and invalid), sends each
with one of the roles' tokens (admin, swarm, agent, other-swarm agent, expired, revoked,
none) and checks the response against the document. Asserted: 0 server errors, 0 response
schema violations, no stack trace in any body, and every operation exercised.

A stateful run follows the links schemathesis infers from the document and from the
responses (create a swarm, then read, update, delete it; upload an artifact, then fetch
it …). The full run (≥ 500 cases per operation) is ``bench/fuzz_api.py``; this one is
sized for CI (derandomized, so it is the same every run).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from shared.settings import Settings
from tests.fuzz.api_fuzz_support import ROLES, FuzzTarget, fill_known, fuzz_target, run_case
from tests.serving.helpers import assert_error

CASES_PER_OPERATION = 12
STATEFUL_SCENARIOS = 12
STATEFUL_STEPS = 6


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory, fakesnow_port: int) -> Iterator[FuzzTarget]:
    home: Path = tmp_path_factory.mktemp("fuzz-home")
    env = {"AGENTS_DATA_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'control.db'}",
           "SNOWFLAKE_HOST": "127.0.0.1", "SNOWFLAKE_PORT": str(fakesnow_port), "SNOWFLAKE_PROTOCOL": "http",
           "SNOWFLAKE_DATABASE": "DEMO", "SNOWFLAKE_NETWORK_TIMEOUT_S": "20",
           "JWT_SECRET": "fuzz-secret-" + "x" * 32, "ADMIN_PASSWORD": "admin-password"}
    with fuzz_target(Settings.from_env(env)) as t:
        yield t


def _operations(target: FuzzTarget) -> list[Any]:
    return [result.ok() for result in target.schema.get_all_operations()]


def test_the_roles_are_what_they_claim(target: FuzzTarget) -> None:
    """The fuzzer's tokens: three valid identities in two swarms, and three refused ones."""
    whoami = "/api/v1/auth/whoami"
    seen = {role: target.client.get(whoami, headers=target.headers[role]) for role in ROLES}
    for role in ("admin", "swarm", "agent", "other_swarm"):
        assert seen[role].status_code == 200, (role, seen[role].text)
    assert seen["agent"].json().get("swarm_id") != seen["other_swarm"].json().get("swarm_id")
    assert_error(seen["expired"], 401, rule="token_expired")
    assert_error(seen["revoked"], 401)
    assert_error(seen["anonymous"], 401, rule="token_missing")
    artifact = target.known["artifact_id"][0]
    assert target.client.get(f"/api/v1/artifacts/{artifact}", headers=target.headers["agent"]).status_code == 200
    assert target.client.get(f"/api/v1/artifacts/{artifact}", headers=target.headers["other_swarm"]).status_code == 404


def test_the_document_states_one_error_shape(target: FuzzTarget) -> None:
    """Every operation documents its errors as the one error shape, so error bodies are checked too."""
    doc = target.client.get("/docs/openapi.json").json()
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            assert "default" in responses, (method, path)
            for status, response in responses.items():
                if status == "default" or status[0] in "45":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)


def test_every_operation_without_server_errors_or_schema_violations(target: FuzzTarget) -> None:
    operations = _operations(target)
    assert len(operations) >= 40, "the document lost operations"
    failures: list[str] = []
    for operation in operations:

        @given(case=operation.as_strategy(), role=st.sampled_from(ROLES), pick=st.integers(0, 999))
        @settings(max_examples=CASES_PER_OPERATION, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
        def fuzz(case: Any, role: str, pick: int) -> None:
            fill_known(case, target.known, pick)
            try:
                run_case(target, case, role)
            except AssertionError as e:
                failures.append(str(e)[:600])

        fuzz()
    labels = [op.label for op in operations]
    summary = target.tally.summary(labels)
    assert not failures, "\n\n".join(failures[:10])
    assert summary["server_errors"] == 0, summary["server_error_examples"]
    assert summary["schema_violations"] == 0, summary["schema_violation_examples"]
    assert summary["operations_covered"] == len(labels), [op for op in labels if not target.tally.cases[op]]
    assert summary["min_cases_per_operation"] >= CASES_PER_OPERATION // 2, summary
    # The run reached past authentication: successes and refusals both occurred.
    assert summary["statuses"].get("200", 0) > 0, summary
    assert summary["statuses"].get("401", 0) > 0, summary


def _role_for(path: str, rng: random.Random) -> str:
    """The owner's role for a step (so chains get somewhere), now and then a token that must be refused."""
    roll = rng.random()
    if roll < 0.1:
        return rng.choice(("other_swarm", "expired", "revoked", "anonymous"))
    if path.startswith("/api/v1/admin"):
        return "admin"
    if path.startswith("/api/v1/swarm/"):
        return "swarm"
    if path.startswith(("/api/v1/sync", "/api/v1/auth/token")):
        return "admin"
    return "agent"


def test_stateful_links_without_server_errors_or_schema_violations(target: FuzzTarget) -> None:
    machine = target.schema.as_state_machine()
    rng = random.Random(17)  # noqa: S311 (a reproducible choice of roles, not a secret)
    failures: list[str] = []
    links = target.schema.statistic.links.total if hasattr(target.schema, "statistic") else None

    class Workflow(machine):  # type: ignore[misc,valid-type]
        def call(self, case: Any, **kwargs: Any) -> Any:
            role = _role_for(case.path, rng)
            try:
                run_case(target, case, role)
            except AssertionError as e:
                failures.append(str(e)[:600])
            return target.last_response

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            return None  # run_case already judged the response

    Workflow.TestCase.settings = settings(max_examples=STATEFUL_SCENARIOS, stateful_step_count=STATEFUL_STEPS,
                                          deadline=None, database=None, derandomize=True,
                                          suppress_health_check=list(HealthCheck),
                                          phases=[Phase.explicit, Phase.generate])
    before = sum(target.tally.cases.values())
    Workflow.TestCase().runTest()
    steps = sum(target.tally.cases.values()) - before
    assert not failures, "\n\n".join(failures[:10])
    assert steps > STATEFUL_SCENARIOS, f"the state machine made {steps} calls (links: {links})"
