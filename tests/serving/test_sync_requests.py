"""Sync requests the API must refuse or shape exactly: every error in the one error shape.

Bad bodies, unknown tables, bad identifiers, malformed partition keys (the answer names
the valid format), case-insensitive values, partition lists versus ranges, and Dagster
refusing a launch. Dagster is the fake GraphQL server (``dagster_fake.py``); the same
requests reach a real webserver in ``tests/e2e/test_replicas.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from serving.sync import store
from tests.serving import sync_support
from tests.serving.dagster_fake import FakeDagster
from tests.serving.helpers import assert_error
from tests.serving.sync_support import DAYS, EVENTS_BODY, ITEMS, SCHEMA, register_body

sync_source = sync_support.sync_source
fake_dagster = sync_support.fake_dagster
app = sync_support.app

Client = TestClient[Litestar]
START = "/api/v1/sync/start"
EVENTS_START = {"table_name": "events", "schema_name": SCHEMA}


def _register(client: Client, headers: dict[str, str], body: dict[str, Any]) -> None:
    r = client.post("/api/v1/sync/tables/register", json=body, headers=headers)
    assert r.status_code in (200, 201), r.text


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (START, {"table_name": "items", "schema_name": SCHEMA, "partition": "2025-01-01"}),  # unknown field
        (START, {"table_name": "items"}),  # schema_name missing
        (START, {"table_name": "items", "schema_name": SCHEMA, "partitions": "2025-01-01"}),  # not a list
        (START, {"table_name": "items", "schema_name": SCHEMA, "partition_range": {"start": "2025-01-01"}}),
        ("/api/v1/sync/tables/register", {"table_name": "items", "schema_name": SCHEMA, "stratgy": "full"}),
        ("/api/v1/sync/tables/register", {"table_name": 5, "schema_name": SCHEMA}),
    ],
)
def test_malformed_bodies_are_400_in_the_error_shape(client: Client, admin_headers: dict[str, str],
                                                     fake_dagster: FakeDagster, path: str,
                                                     body: dict[str, Any]) -> None:
    assert_error(client.post(path, json=body, headers=admin_headers), 400)
    assert fake_dagster.launch_params == []


def test_unknown_tables_are_404_and_bad_names_400(client: Client, admin_headers: dict[str, str],
                                                  fake_dagster: FakeDagster) -> None:
    _register(client, admin_headers, register_body())
    missing = [
        client.post(START, json={"table_name": "nope", "schema_name": SCHEMA}, headers=admin_headers),
        client.get(f"/api/v1/sync/status/{SCHEMA}/nope", headers=admin_headers),
        client.get(f"/api/v1/sync/status/{SCHEMA}/items", params={"database": "other"}, headers=admin_headers),
        client.delete(f"/api/v1/sync/tables/{SCHEMA}/nope", headers=admin_headers),
        client.get("/api/v1/sync/jobs/sync_0000000000000000", headers=admin_headers),
    ]
    for r in missing:
        error = assert_error(r, 404, code="not_found")
        assert "nope" in error["message"] or "other" in error["message"] or "sync_0" in error["message"]
    bad = assert_error(client.post(START, json={"table_name": "items; drop", "schema_name": SCHEMA},
                                   headers=admin_headers), 400, rule="invalid_identifier")
    assert "items; drop" in bad["message"]
    assert fake_dagster.launch_params == []


def test_partition_lists_and_ranges(client: Client, admin_headers: dict[str, str], fake_dagster: FakeDagster) -> None:
    """One key is a run with the partition tag; several keys (a list or a range) are one backfill."""
    _register(client, admin_headers, EVENTS_BODY)
    listed = client.post(START, json={**EVENTS_START, "partitions": [DAYS[5], DAYS[3], DAYS[5]]},
                         headers=admin_headers)
    assert listed.status_code == 202, listed.text
    body = listed.json()
    assert body["kind"] == "backfill"
    assert body["partitions"] == [DAYS[5], DAYS[3]]  # as asked, duplicates dropped
    params = fake_dagster.launch_params[-1]
    assert params["partitionNames"] == [DAYS[5], DAYS[3]]
    assert params["assetSelection"] == [{"path": ["demo", "synctest", "events"]}]
    assert {t["key"]: t["value"] for t in params["tags"]}["agents_data/job"] == body["job_id"]

    single_range = client.post(START, json={**EVENTS_START, "partition_range": {"start": DAYS[2], "end": DAYS[2]}},
                               headers=admin_headers).json()
    assert single_range["kind"] == "run"
    assert single_range["partitions"] == [DAYS[2]]
    tags = {t["key"]: t["value"] for t in fake_dagster.launch_params[-1]["executionMetadata"]["tags"]}
    assert tags["dagster/partition"] == DAYS[2]

    job = client.get(f"/api/v1/sync/jobs/{body['job_id']}", headers=admin_headers).json()
    assert job["kind"] == "backfill"
    assert job["partitions"] == {"requested": [DAYS[5], DAYS[3]], "done": [], "failed": [],
                                 "pending": [DAYS[5], DAYS[3]]}
    assert job["dagster_url"].endswith(f"/runs/b/{next(iter(fake_dagster.backfills))}")


@pytest.mark.parametrize(
    "request_part",
    [{"partitions": ["2025-1-2"]}, {"partitions": ["20250102"]}, {"partitions": ["2025-01-02T00:00"]},
     {"partition_range": {"start": DAYS[0], "end": "Jan 3"}}, {"partition_range": {"start": "", "end": DAYS[1]}}],
)
def test_malformed_partition_keys_name_the_valid_format(client: Client, admin_headers: dict[str, str],
                                                        fake_dagster: FakeDagster,
                                                        request_part: dict[str, Any]) -> None:
    _register(client, admin_headers, EVENTS_BODY)
    calls = len(fake_dagster.calls)
    error = assert_error(client.post(START, json={**EVENTS_START, **request_part}, headers=admin_headers), 400,
                         rule="invalid_partition")
    assert "YYYY-MM-DD" in error["message"]
    assert error["details"]["valid_format"].startswith("YYYY-MM-DD")
    assert fake_dagster.calls[calls:] == []  # answered before Dagster is asked


def test_static_partitions_name_their_values(client: Client, admin_headers: dict[str, str],
                                             fake_dagster: FakeDagster) -> None:
    _register(client, admin_headers, register_body("events", partitioning={"kind": "Static", "column": "kind",
                                                                           "values": ["x", "y"]}))
    error = assert_error(client.post(START, json={**EVENTS_START, "partitions": ["z"]}, headers=admin_headers), 400,
                         rule="invalid_partition")
    assert error["details"]["valid_format"] == "one of x, y"
    assert "'z'" in error["message"]


def test_unpartitioned_table_refuses_partitions(client: Client, admin_headers: dict[str, str],
                                                fake_dagster: FakeDagster) -> None:
    _register(client, admin_headers, register_body())
    for part in ({"partitions": [DAYS[0]]}, {"partition_range": {"start": DAYS[0], "end": DAYS[1]}}):
        error = assert_error(client.post(START, json={"table_name": "items", "schema_name": SCHEMA, **part},
                                         headers=admin_headers), 400, rule="invalid_partition")
        assert "not partitioned" in error["message"]
    assert fake_dagster.launch_params == []


@pytest.mark.parametrize("strategy", ["FULL", "Full", "fUlL"])
def test_strategy_any_case(client: Client, admin_headers: dict[str, str], fake_dagster: FakeDagster,
                           strategy: str) -> None:
    _register(client, admin_headers, register_body(strategy=strategy))
    listed = client.get("/api/v1/sync/tables", headers=admin_headers).json()["tables"]
    assert listed[0]["strategy"] == "full"
    r = client.post(START, json={"table_name": "ITEMS", "schema_name": SCHEMA.lower(), "strategy": strategy},
                    headers=admin_headers)
    assert r.status_code == 202, r.text
    tags = {t["key"]: t["value"] for t in fake_dagster.launch_params[-1]["executionMetadata"]["tags"]}
    assert tags["agents_data/strategy"] == "full"


def test_dagster_refusing_a_launch_is_409_with_its_message(client: Client, admin_headers: dict[str, str],
                                                           fake_dagster: FakeDagster) -> None:
    """The job row is kept, failed with Dagster's reason, so the table's status shows what happened."""
    _register(client, admin_headers, register_body())
    fake_dagster.assets.discard(("demo", "synctest", "items"))  # the code location lost the asset
    error = assert_error(client.post(START, json={"table_name": "items", "schema_name": SCHEMA},
                                     headers=admin_headers), 409, rule="dagster_refused")
    assert "Dagster refused the run" in error["message"]
    assert "not found" in error["message"]
    assert error["details"]["dagster_error"] == "InvalidSubsetError"
    status = client.get(f"/api/v1/sync/status/{SCHEMA}/items", headers=admin_headers).json()
    assert status["last_job"]["status"] == "failed"
    job = store.get(client.app.state.services.control_url, status["last_job"]["job_id"])
    assert job is not None
    assert "not found" in (job.error or "")
    polled = client.get(f"/api/v1/sync/jobs/{job.id}", headers=admin_headers).json()
    assert polled["status"] == "failed"
    assert "not found" in polled["errors"][0]
    assert polled["dagster_url"] is None
    assert polled["table"] == ITEMS


def test_a_range_run_covers_the_partitions_between_its_tags() -> None:
    from serving.sync.dagster import RunInfo
    from shared.dagster_names import PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG

    days = ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04"]
    ranged = RunInfo("r1", "FAILURE", tags={RANGE_START_TAG: "2025-01-02", RANGE_END_TAG: "2025-01-04"})
    assert ranged.covered(days) == ["2025-01-02", "2025-01-03", "2025-01-04"]
    assert RunInfo("r2", "FAILURE", tags={PARTITION_TAG: "2025-01-03"}).covered(days) == ["2025-01-03"]
    assert RunInfo("r3", "FAILURE").covered(days) == []
    assert RunInfo("r4", "FAILURE", tags={RANGE_START_TAG: "2024-12-01", RANGE_END_TAG: "2025-01-02"}).covered(days) == []
