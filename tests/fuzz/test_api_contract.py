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

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.settings import Settings
from tests.fuzz.api_fuzz_support import ROLES, FuzzTarget, fuzz_target, operations, run_stateful, run_stateless
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
    labels = [op.label for op in operations(target)]
    assert len(labels) >= 40, "the document lost operations"
    failures = run_stateless(target, CASES_PER_OPERATION)
    summary = target.tally.summary(labels)
    assert not failures, "\n\n".join(failures[:10])
    assert summary["server_errors"] == 0, summary["server_error_examples"]
    assert summary["schema_violations"] == 0, summary["schema_violation_examples"]
    assert summary["operations_covered"] == len(labels), [op for op in labels if not target.tally.cases[op]]
    assert summary["min_cases_per_operation"] >= CASES_PER_OPERATION // 2, summary
    # The run reached past authentication: successes and refusals both occurred.
    assert summary["statuses"].get("200", 0) > 0, summary
    assert summary["statuses"].get("401", 0) > 0, summary


def test_stateful_links_without_server_errors_or_schema_violations(target: FuzzTarget) -> None:
    run = run_stateful(target, STATEFUL_SCENARIOS, STATEFUL_STEPS, batch=STATEFUL_SCENARIOS)
    assert run.links > 0, "schemathesis found no links between operations"
    assert not run.failures, "\n\n".join(run.failures[:10])
    assert run.calls > STATEFUL_SCENARIOS, f"the state machine made {run.calls} calls over {run.links} links"
