"""The Python client (``clients/python``) through an agent's whole journey against a live platform.

One platform for the module (fakesnow, PostgreSQL-backed Dagster, one API replica). The
table is registered but never synced, so the journey starts with the client's refresh:
the refresh → a Dagster run → catalog → inline query → truncation and the rest of the
result → Arrow, pandas and files → sample → profile → artifact round trip → errors with
their ``rule`` → a 429 retried after its ``Retry-After``; the async client too.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from agents_data_client import (
    ApiError,
    AsyncClient,
    Client,
    Forbidden,
    NotFound,
    QueryResult,
    RateLimited,
    RetryPolicy,
    Unauthorized,
)

from tests.e2e.conftest import platform_fixture
from tests.e2e.platform import Platform
from tests.serving.helpers import create_swarm, mint_token

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.xdist_group("e2e_python_client")]

ITEMS = "demo.client.items"
ROWS = 3000
JSON_ROWS = 100
# Seconds of work that nothing prunes (hash() has no range statistics); cancelled by the test.
SLOW_SQL = (
    f"SELECT count(*) FROM {ITEMS} a, {ITEMS} b, {ITEMS} c WHERE c.id < 50 AND hash(a.id * 7919 + b.id + c.id) % 1000003 = 7"
)


def _seed(cur: Any) -> None:
    cur.execute("CREATE SCHEMA IF NOT EXISTS DEMO.CLIENT")
    cur.execute("CREATE OR REPLACE TABLE DEMO.CLIENT.ITEMS (ID NUMBER(10,0) NOT NULL, NAME TEXT, AMOUNT NUMBER(10,2))")
    cur.execute(
        f"INSERT INTO DEMO.CLIENT.ITEMS SELECT seq4(), 'item-' || seq4(), (seq4() % 100) / 4 "
        f"FROM TABLE(GENERATOR(ROWCOUNT => {ROWS}))"
    )


def _prepare(platform: Platform) -> None:
    platform.register(table_name="items", schema_name="client", primary_key=["ID"])


e2e_platform = platform_fixture(
    replicas=("a",),
    seed=_seed,
    prepare=_prepare,
    extra_env={"AGENT_MAX_CONCURRENT_QUERIES": "1", "QUERY_JSON_MAX_ROWS": str(JSON_ROWS)},
)


@pytest.fixture(scope="module")
def client(e2e_platform: Platform) -> Iterator[Client]:
    admin = e2e_platform.admin_headers()
    with e2e_platform.apis["a"].client() as api:
        swarm = create_swarm(api, admin, [ITEMS])
        token = mint_token(api, admin, "agent", swarm["id"])["token"]
    with Client(e2e_platform.apis["a"].url, token) as c:
        yield c


def test_refresh_brings_the_table_then_the_catalog_lists_it(client: Client) -> None:
    refresh = client.refresh(ITEMS, wait=True, timeout_s=300)
    assert refresh.outcome in ("started", "queued", "joined", "already_fresh"), refresh.raw
    assert refresh.raw.get("status", "succeeded") == "succeeded", refresh.raw
    tables = {t.table: t for t in client.tables()}
    assert ITEMS in tables
    items = tables[ITEMS]
    assert items.row_count == ROWS
    assert [c.name for c in items.columns] == ["ID", "NAME", "AMOUNT"]
    assert items.freshness.status in ("fresh", "stale")
    assert client.table(ITEMS).served_version == items.served_version
    assert "requests" in client.rate_limits  # the rate-limit headers, parsed
    assert client.refresh(ITEMS, max_age_s=3600).outcome == "already_fresh"


def test_inline_query_typed_result(client: Client) -> None:
    result = client.query(f"SELECT id, name FROM {ITEMS} WHERE id < ? ORDER BY id", [3])
    assert isinstance(result, QueryResult)
    assert result.rows == [[0, "item-0"], [1, "item-1"], [2, "item-2"]]
    assert [c.name for c in result.columns] == ["ID", "NAME"]
    assert result.records()[1] == {"ID": 1, "NAME": "item-1"}
    assert not result.truncated
    assert result.tables[0].table == ITEMS
    assert result.tables[0].version


def test_truncated_answer_and_the_rest_of_it(client: Client, tmp_path: Path) -> None:
    sql = f"SELECT id FROM {ITEMS} ORDER BY id"
    cut = client.query(sql)
    assert cut.truncated
    assert len(cut.rows) == JSON_ROWS
    if cut.continuation is not None:  # the server names a job holding the whole result
        assert client.all_rows(cut) == [[i] for i in range(ROWS)]
        assert client.rest_arrow(cut).num_rows == ROWS
    # Without a continuation the job API gives the rest: the whole result, streamed as Arrow.
    table = client.query_arrow(sql)
    assert table.num_rows == ROWS
    assert table.column(0).to_pylist() == list(range(ROWS))
    frame = client.query_pandas(f"SELECT id, amount FROM {ITEMS} WHERE id < 10 ORDER BY id")
    assert list(frame["ID"]) == list(range(10))
    path = client.query_to_file(sql, tmp_path / "items.parquet")
    assert pq.read_table(path).num_rows == ROWS
    job = client.wait(client.submit(sql, output_format="csv"))
    assert job.status == "succeeded"
    lines = client.download(job, tmp_path / "items.csv").read_text().splitlines()
    assert lines[0].strip('"') == "ID"
    assert len(lines) == ROWS + 1


def test_sample_and_profile(client: Client) -> None:
    sample = client.sample(ITEMS, size=5, seed=7)
    assert sample.row_count == 5
    assert sample.seed == 7
    assert client.sample(ITEMS, size=5, seed=7).rows == sample.rows  # same seed, same rows
    assert client.sample(ITEMS, method="head", size=2, columns=["ID"]).rows == [[0], [1]]
    profile = client.profile(ITEMS)
    assert profile.row_count == ROWS
    assert profile.column("ID")["null_count"] == 0
    assert profile.column("ID")["max"] == ROWS - 1


def test_artifact_round_trip(client: Client, tmp_path: Path) -> None:
    payload = b"id,score\n" + b"".join(f"{i},{i * i}\n".encode() for i in range(5000))
    source = tmp_path / "scores.csv"
    source.write_bytes(payload)
    uploaded = client.upload_artifact(source, content_type="text/csv", visibility="swarm", tags=["scores"])
    assert uploaded.size == len(payload)
    assert uploaded.visibility == "swarm"
    from_bytes = client.upload_artifact(b"hello", name="hello.txt", content_type="text/plain")
    assert client.download_artifact(from_bytes.id) == b"hello"
    target = client.download_artifact(uploaded.id, tmp_path / "back.csv")
    assert isinstance(target, Path)
    assert target.read_bytes() == payload
    assert {a.id for a in client.artifacts(tag="scores")} == {uploaded.id}
    job = client.wait(client.submit(f"SELECT id FROM {ITEMS} WHERE id < 10", output_format="parquet"))
    saved = client.save_result(job, name="ten.parquet")
    assert saved.source_job_id == job.job_id
    client.delete_artifact(from_bytes.id)
    with pytest.raises(NotFound):
        client.artifact(from_bytes.id)


def test_errors_keep_the_rule(client: Client, e2e_platform: Platform) -> None:
    with pytest.raises(ApiError) as refused:
        client.query("SELECT * FROM demo.client.secrets")
    assert refused.value.rule == "table_not_granted"
    assert refused.value.status in (400, 403, 404)
    with pytest.raises(ApiError) as bad:
        client.query("DELETE FROM demo.client.items")
    assert bad.value.status == 400
    assert bad.value.rule
    with pytest.raises(NotFound):
        client.table("demo.client.nope")
    with Client(e2e_platform.apis["a"].url, "not-a-token") as anonymous, pytest.raises(Unauthorized) as e:
        anonymous.tables()
    assert e.value.rule in ("token_invalid", "token_missing")
    assert isinstance(Forbidden(403, "forbidden", "x"), ApiError)


def test_a_429_is_retried_after_its_retry_after(client: Client, e2e_platform: Platform) -> None:
    """The agent's one slot is held by a slow job: the query gets 429 ``concurrency_limit`` (Retry-After: 1)
    until the job is cancelled, and the client retries it through."""
    slow = client.submit(SLOW_SQL, output_format="json", timeout_s=120)
    token = client._http.headers["Authorization"].split(" ", 1)[1]
    with (
        Client(e2e_platform.apis["a"].url, token, retry=RetryPolicy(max_retries=0)) as impatient,
        pytest.raises(RateLimited) as e,
    ):
        impatient.query(f"SELECT count(*) FROM {ITEMS}")
    assert e.value.rule == "concurrency_limit"
    assert e.value.retry_after == 1
    threading.Timer(2.5, lambda: client.cancel(slow.job_id)).start()
    started = time.monotonic()
    patient = Client(e2e_platform.apis["a"].url, token, retry=RetryPolicy(max_retries=30, max_wait_s=5))
    with patient:
        result = patient.query(f"SELECT count(*) FROM {ITEMS}")
    assert result.rows == [[ROWS]]
    assert time.monotonic() - started >= 2.0  # it waited for the slot, retrying


def test_async_client(client: Client, e2e_platform: Platform) -> None:
    token = client._http.headers["Authorization"].split(" ", 1)[1]

    async def journey() -> tuple[int, list[list[Any]], int, bytes]:
        async with AsyncClient(e2e_platform.apis["a"].url, token) as ac:
            tables = await ac.tables()
            result = await ac.query(f"SELECT count(*) FROM {ITEMS}")
            arrow = await ac.query_arrow(f"SELECT id FROM {ITEMS}")
            artifact = await ac.upload_artifact(b"async bytes", name="a.txt", content_type="text/plain")
            back = await ac.download_artifact(artifact.id)
            assert isinstance(back, bytes)
            return len(tables), result.rows, arrow.num_rows, back

    count, rows, arrow_rows, back = asyncio.run(journey())
    assert count == 1
    assert rows == [[ROWS]]
    assert arrow_rows == ROWS
    assert back == b"async bytes"
