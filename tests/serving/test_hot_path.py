"""The query hot path's shortcuts give the same answers as the general code they stand in for.

- the worker wait: done as soon as the worker's future is, at the timeout otherwise, and a
  worker that ends after the request stopped waiting changes nothing;
- the provenance header: the same text as ``json.dumps`` (ASCII, compact), non-ASCII names escaped;
- budget policies made once per token: an admin's new budget still applies at once;
- the inline JSON answer: the status, headers and body a ``Response`` would send.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from serving.lib.continuation import provenance, provenance_headers
from serving.lib.counters import Counter
from serving.lib.sliced import SlicedResponse
from serving.queries.controllers import _ended_within


def test_the_wait_ends_with_the_worker_or_at_the_timeout() -> None:
    async def scenario() -> tuple[float, float, bool]:
        with ThreadPoolExecutor(1) as pool:
            quick = pool.submit(time.sleep, 0.05)
            t = time.monotonic()
            await _ended_within(quick, 30.0)
            ended_with_worker = time.monotonic() - t
            gate = threading.Event()
            slow: Future[Any] = pool.submit(gate.wait, 30)
            t = time.monotonic()
            await _ended_within(slow, 0.1)
            ended_at_timeout = time.monotonic() - t
            still_running = not slow.done()
            gate.set()
            slow.result(5)  # finishing after the wait gave up wakes nobody and raises nothing
            await asyncio.sleep(0.05)
            return ended_with_worker, ended_at_timeout, still_running

    with_worker, at_timeout, still_running = asyncio.run(scenario())
    assert with_worker < 5.0
    assert 0.09 <= at_timeout < 5.0
    assert still_running


def test_provenance_header_is_the_standard_librarys_text() -> None:
    prov = provenance(tables=[{"table": "demo.public.orders", "version": "v1", "synced_at": "2026-01-01T00:00:00+00:00"}],
                      watermarks={"demo.public.orders": "2026-01-01"}, sql_hash="abc", truncated=True, cut_by="row_cap",
                      limit=10, row_count=10, job_id=None)
    assert provenance_headers(prov)["Agents-Data-Provenance"] == json.dumps(prov, ensure_ascii=True, separators=(",", ":"))
    accented = provenance(tables=[{"table": "démo.public.bücher", "version": "v1", "synced_at": "x"}], watermarks={},
                          sql_hash="abc", truncated=False, cut_by=None, limit=None, row_count=1, job_id="j")
    text = provenance_headers(accented)["Agents-Data-Provenance"]
    assert text.isascii()
    assert text == json.dumps(accented, ensure_ascii=True, separators=(",", ":"))
    assert json.loads(text)["tables"][0]["table"] == "démo.public.bücher"


def test_counters_hash_and_compare_by_their_fields() -> None:
    a, b = Counter("agent:t", "rows", 86400), Counter("agent:t", "rows", 86400)
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert Counter("agent:t", "rows", 86400) != Counter("agent:t", "bytes", 86400)


@pytest.mark.parametrize("body", [b'{"rows":[]}', bytearray(b'{"rows":[1]}')])
def test_the_inline_answer_sends_what_a_response_would(body: bytes | bytearray) -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    asyncio.run(SlicedResponse([body], {"Agents-Data-Truncated": "false"}, media_type="application/json")({}, receive, send))
    start, payload = sent
    assert start["status"] == 200
    assert start["headers"] == [(b"agents-data-truncated", b"false"), (b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]
    assert payload == {"type": "http.response.body", "body": bytes(body), "more_body": False}
