"""The Python client's own rules, without a server: error mapping, retries, headers, continuations.

An ``httpx.MockTransport`` plays the API (the live journey is ``tests/e2e/test_python_client.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from agents_data_client import (
    ApiError,
    AsyncClient,
    BadRequest,
    Client,
    Continuation,
    Forbidden,
    JobFailed,
    QueryJob,
    QueryResult,
    RateLimited,
    RetryPolicy,
    ServerError,
    Unavailable,
)
from agents_data_client.errors import parse_retry_after

FAST = RetryPolicy(max_retries=3, backoff_s=0.01, max_backoff_s=0.02, max_wait_s=2)


def _error(status: int, code: str, rule: str | None, **headers: str) -> httpx.Response:
    body = {"error": {"status": status, "code": code, "message": f"{code}!", "rule": rule, "details": {"limit": 3}}}
    return httpx.Response(status, json=body, headers=headers)


def _client(handler: Callable[[httpx.Request], httpx.Response], retry: RetryPolicy = FAST) -> Client:
    http = httpx.Client(base_url="http://api", transport=httpx.MockTransport(handler))
    return Client("http://api", "tok", retry=retry, http=http)


TABLES = {
    "tables": [
        {
            "table": "demo.public.orders",
            "key": "demo.public.orders",
            "name": "ORDERS",
            "columns": [{"name": "ID", "type": "BIGINT", "nullable": False, "description": ""}],
            "row_count": 3,
            "freshness": {"status": "fresh", "reason": "synced", "age_s": 1.0},
        }
    ],
    "count": 1,
}


def test_every_error_keeps_the_shape_and_the_rule() -> None:
    client = _client(lambda r: _error(403, "forbidden", "table_not_granted"))
    with pytest.raises(Forbidden) as e:
        client.tables()
    assert (e.value.status, e.value.code, e.value.rule, e.value.details) == (403, "forbidden", "table_not_granted", {"limit": 3})
    assert isinstance(e.value, ApiError)
    with pytest.raises(BadRequest):
        _client(lambda r: _error(400, "query_rejected", "function_not_allowed")).query("select 1")
    with pytest.raises(ServerError) as e:
        _client(lambda r: httpx.Response(502, text="bad gateway")).tables()
    assert e.value.code == "http_error"
    assert "bad gateway" in e.value.message


def test_429_and_503_are_retried_honouring_retry_after() -> None:
    answers = [
        _error(429, "rate_limited", "concurrency_limit", **{"Retry-After": "1"}),
        _error(503, "unavailable", "control_db_unavailable"),
        httpx.Response(200, json=TABLES),
    ]
    seen: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(time.monotonic())
        assert request.headers["authorization"] == "Bearer tok"
        return answers.pop(0)

    tables = _client(handler).tables()
    assert [t.table for t in tables] == ["demo.public.orders"]
    assert tables[0].columns[0].name == "ID"
    assert tables[0].freshness.status == "fresh"
    assert len(seen) == 3
    assert seen[1] - seen[0] >= 0.95  # Retry-After: 1 was waited for


def test_no_retry_past_the_longest_wait_or_the_retry_count() -> None:
    calls = []

    def spent(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return _error(429, "rate_limited", "query_budget", **{"Retry-After": "36000"})

    with pytest.raises(RateLimited) as e:
        _client(spent).query("select 1")
    assert (e.value.rule, e.value.retry_after, len(calls)) == ("query_budget", 36000.0, 1)  # a day's budget: no wait

    calls.clear()

    def down(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return _error(503, "unavailable", None)

    with pytest.raises(Unavailable):
        _client(down).tables()
    assert len(calls) == FAST.max_retries + 1
    calls.clear()
    with pytest.raises(BadRequest):
        _client(lambda r: (calls.append(1), _error(400, "bad_request", None))[1]).tables()
    assert len(calls) == 1  # never retried


def test_retry_after_as_a_date() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("soon") is None


def test_upload_is_sent_again_on_retry(tmp_path: Any) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"a,b\n1,2\n")
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.read())
        if len(bodies) == 1:
            return _error(429, "rate_limited", "rate_limit", **{"Retry-After": "0"})
        return httpx.Response(
            201,
            json={
                "id": "art_1",
                "name": "f.csv",
                "content_type": "text/csv",
                "size": 8,
                "visibility": "swarm",
                "tags": [],
                "metadata": {},
            },
        )

    artifact = _client(handler).upload_artifact(path, content_type="text/csv", visibility="swarm")
    assert artifact.id == "art_1"
    assert len(bodies) == 2
    assert all(b"a,b\n1,2\n" in b and b'name="visibility"' in b for b in bodies)


def test_rate_limit_headers_are_parsed() -> None:
    headers = {
        "RateLimit-Policy": '"requests";q=60;w=60;qu="requests", "agent-rows";q=100;w=86400;qu="rows"',
        "RateLimit": '"requests";r=59;t=30, "agent-rows";r=0;t=3600',
    }
    client = _client(lambda r: httpx.Response(200, json=TABLES, headers=headers))
    client.tables()
    rows = client.rate_limits["agent-rows"]
    assert (rows.quota, rows.window_s, rows.unit, rows.remaining, rows.reset_s) == (100, 86400, "rows", 0, 3600)
    assert client.rate_limits["requests"].remaining == 59


def test_results_without_continuation_fields_and_with_them() -> None:
    plain = QueryResult.of(
        {"columns": [{"name": "x", "type": "INTEGER"}], "rows": [[1]], "row_count": 1, "truncated": False, "tables": []}
    )
    assert plain.continuation is None
    assert plain.records() == [{"x": 1}]
    cont = {
        "job_id": "j1",
        "status": "succeeded",
        "cut_by": "row_cap",
        "limit": 1,
        "rows_returned": 1,
        "rest_available": True,
        "next_url": "/api/v1/queries/jobs/j1/rows?cursor=MQ&limit=1",
    }
    cut = QueryResult.of({**plain.raw, "truncated": True, "continuation": cont})
    assert isinstance(cut.continuation, Continuation)
    pages = {
        "/api/v1/queries/jobs/j1/rows": [
            {"job_id": "j1", "rows": [[2]], "offset": 1, "next_url": "/api/v1/queries/jobs/j1/rows?cursor=Mg&limit=1"},
            {"job_id": "j1", "rows": [[3]], "offset": 2, "next_url": None},
        ]
    }

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/queries/jobs/j1":
            return httpx.Response(200, json={"job_id": "j1", "status": "succeeded"})
        return httpx.Response(200, json=pages[request.url.path].pop(0))

    assert _client(handler).all_rows(cut) == [[1], [2], [3]]


def test_async_client_retries_too() -> None:
    answers = [_error(429, "rate_limited", "rate_limit", **{"Retry-After": "0"}), httpx.Response(200, json=TABLES)]

    async def run() -> int:
        http = httpx.AsyncClient(base_url="http://api", transport=httpx.MockTransport(lambda r: answers.pop(0)))
        async with AsyncClient("http://api", "tok", retry=FAST, http=http) as client:
            return len(await client.tables())

    assert asyncio.run(run()) == 1
    assert answers == []


def _job_api(final: str) -> Callable[[httpx.Request], httpx.Response]:
    """Execute answers with a running job, which is polled once before it ends as ``final``."""
    polls: list[str] = ["running", final]
    result = {"columns": [{"name": "x", "type": "INTEGER"}], "rows": [[7]], "row_count": 1, "truncated": False, "tables": []}

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/api/v1/queries/execute":
            return httpx.Response(202, json={"job_id": "j9", "status": "running"})
        if path == "/api/v1/queries/jobs/j9":
            status = polls.pop(0) if polls else final
            error = {"message": "boom", "rule": "query_failed"} if status == "failed" else None
            return httpx.Response(200, json={"job_id": "j9", "status": status, "error": error})
        assert path == "/api/v1/queries/jobs/j9/result"
        return httpx.Response(200, json=result)

    return handler


def test_a_query_left_running_is_waited_for_by_both_clients() -> None:
    assert _client(_job_api("succeeded")).query("select 7").rows == [[7]]
    with pytest.raises(JobFailed) as e:
        _client(_job_api("failed")).query("select 7")
    assert (e.value.code, e.value.rule, e.value.message) == ("job_failed", "query_failed", "boom")
    assert e.value.details == {"job_id": "j9"}
    with pytest.raises(TimeoutError, match=r"query job j9 still running after 0\.01 s"):
        _client(_job_api("running")).wait(QueryJob.of({"job_id": "j9", "status": "running"}), timeout_s=0.01)

    async def run(final: str) -> list[list[Any]]:
        http = httpx.AsyncClient(base_url="http://api", transport=httpx.MockTransport(_job_api(final)))
        async with AsyncClient("http://api", "tok", retry=FAST, http=http) as client:
            return (await client.query("select 7")).rows

    assert asyncio.run(run("succeeded")) == [[7]]
    with pytest.raises(JobFailed):
        asyncio.run(run("failed"))
