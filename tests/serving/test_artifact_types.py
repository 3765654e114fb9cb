"""Saving a query job's result as an artifact: every type DuckDB returns converts exactly, or the
answer is a 4xx naming the column; never a 500. Through the API, for every result format
(json, csv, parquet, arrow) and every artifact format (csv, parquet)."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import decimal
import io
import time
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.serving.helpers import assert_error

_MISSING = object()
RESULT_FORMATS = ["json", "csv", "parquet", "arrow"]
ARTIFACT_FORMATS = ["csv", "parquet"]
WKB_POINT = base64.b64encode(bytes.fromhex("0101000000000000000000f03f0000000000000040")).decode()
# name: SQL expression of one value. The walk covers every logical type DuckDB 2.0 returns.
TYPES = {
    "struct": "{'a': 1, 'b': 'x'}", "list": "[1, 2, 3]", "map": "map {1: 'x'}", "array": "[1, 2]::int[2]",
    "hugeint": "170141183460469231731687303715884105727::hugeint",
    "hugeint_min": "(-170141183460469231731687303715884105727)::hugeint - 1",
    "uhugeint": "12345678901234567890123::uhugeint", "ubigint": "18446744073709551615::ubigint",
    "bigint": "(-9223372036854775808)::bigint", "blob": "'\\xAA\\x00ab'::blob", "bit": "'10101'::bit",
    "bignum": "123456789012345678901234567890123456789012345::bignum",
    "bignum_neg": "(-123456789012345678901234567890123456789012345)::bignum",
    "union": "union_value(num := 2)::union(num int, s varchar)", "geometry": "'POINT(1 2)'::geometry",
    "interval_big": "interval '1000000 years'", "interval_neg": "interval '-83 days -3 hours -1 microsecond'",
    "uuid": "'00000000-0000-0000-0000-000000000001'::uuid", "time": "time '12:30:01.123456'",
    "timetz": "timetz '12:30:01+05:30'", "time_ns": "'12:30:01.123456789'::time_ns",
    "ts_ns": "'2025-01-01 00:00:00.123456789'::timestamp_ns", "ts_s": "'2025-01-01 00:00:01'::timestamp_s",
    "ts_ms": "'2025-01-01 00:00:01.123'::timestamp_ms", "tstz": "timestamptz '2025-01-01 00:00:00+00'",
    "tstz_ns": "'2025-01-01 00:00:00.123456789+00'::timestamptz_ns", "date_inf": "'infinity'::date",
    "date_far": "date '294247-01-10'", "ts_inf": "'-infinity'::timestamp", "enum": "'a'::enum('a', 'b')",
    "decimal": "123.45::decimal(38,10)", "nan": "'nan'::double", "json": "'{\"a\":1}'::json",
    "variant": "1::variant", "null": "null", "text": "'héllo, \"w\"\n'", "bool": "true", "date": "date '0001-01-01'",
}
# Exact values the artifact must hold, by (type, artifact format) for results that kept the
# type (parquet/arrow results); JSON and CSV results carry their own spelling, checked below.
EXACT_CSV = {
    "hugeint": "170141183460469231731687303715884105727", "hugeint_min": "-170141183460469231731687303715884105728",
    "ubigint": "18446744073709551615", "bigint": "-9223372036854775808",
    "bignum": "123456789012345678901234567890123456789012345",
    "bignum_neg": "-123456789012345678901234567890123456789012345",
    "blob": base64.b64encode(b"\xaa\x00ab").decode(), "geometry": WKB_POINT,
    "interval_big": "P12000000M0DT0S", "interval_neg": "P0M-83DT-10800.000001S",
    "struct": '{"a":1,"b":"x"}', "list": "[1,2,3]", "map": '[[1,"x"]]', "array": "[1,2]", "union": "2",
    "date_inf": "infinity", "date_far": "294247-01-10", "ts_inf": "-infinity", "decimal": "123.4500000000",
    "nan": "nan", "text": 'héllo, "w"\n', "enum": "a", "uuid": "00000000-0000-0000-0000-000000000001",
    "ts_ns": "2025-01-01 00:00:00.123456789", "date": "0001-01-01",
}
EXACT_PARQUET = {
    "hugeint": decimal.Decimal("170141183460469231731687303715884105727"),
    "ubigint": 18446744073709551615, "bigint": -9223372036854775808,
    "bignum_neg": "-123456789012345678901234567890123456789012345", "blob": b"\xaa\x00ab",
    "interval_neg": {"months": 0, "days": -83, "nanoseconds": -10_800_000_001_000},
    "struct": {"a": 1, "b": "x"}, "list": [1, 2, 3], "map": [(1, "x")], "union": "2",
    "decimal": decimal.Decimal("123.4500000000"), "text": 'héllo, "w"\n',
}
# JSON results: the artifact keeps the JSON result's value exactly (typed where DuckDB's type says so).
EXACT_FROM_JSON = {
    ("hugeint", "csv"): "170141183460469231731687303715884105727",
    ("hugeint", "parquet"): "170141183460469231731687303715884105727",
    ("uhugeint", "parquet"): "12345678901234567890123", ("ubigint", "parquet"): 18446744073709551615,
    ("bignum", "csv"): "123456789012345678901234567890123456789012345",
    ("decimal", "parquet"): decimal.Decimal("123.4500000000"), ("struct", "csv"): '{"a":1,"b":"x"}',
    ("interval_neg", "csv"): "-P83DT10800.000001S", ("blob", "parquet"): base64.b64encode(b"\xaa\x00ab").decode(),
}
# CSV results: typed only where every value reads back to the same text.
EXACT_FROM_CSV = {
    ("hugeint", "parquet"): "170141183460469231731687303715884105727", ("bigint", "parquet"): -9223372036854775808,
    ("decimal", "parquet"): "123.4500000000", ("date", "parquet"): dt.date(1, 1, 1),
}


def _job(client: Any, headers: dict[str, str], sql: str, fmt: str) -> dict[str, Any]:
    r = client.post("/api/v1/queries/execute", headers=headers, json={"query": sql, "output_format": fmt, "wait_s": 0})
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get(f"/api/v1/queries/jobs/{job_id}", headers=headers).json()
        if body["status"] not in ("queued", "running"):
            return body
        time.sleep(0.02)
    raise AssertionError("job did not finish")


def _value(content: bytes, fmt: str, column: str) -> Any:
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(content.decode("utf-8"), newline="")))
        return rows[0][column]
    table = pq.read_table(io.BytesIO(content))
    arr = table.column(column)
    return arr.to_pylist()[0]


@pytest.fixture
def agent(client: Any, make_swarm: Any, agent_headers: Any) -> dict[str, str]:
    return agent_headers(make_swarm([])["id"])  # type: ignore[no-any-return]


@pytest.mark.parametrize("result_format", RESULT_FORMATS)
def test_every_type_converts_exactly_or_is_refused_naming_the_column(client: Any, agent: dict[str, str],
                                                                      result_format: str) -> None:
    saved = refused = checked = 0
    for name, expr in TYPES.items():
        column = f"c_{name}"
        job = _job(client, agent, f"select {expr} as {column}, 1 as k", result_format)
        if job["status"] != "succeeded":  # the query itself could not write this format (a 4xx, not ours)
            assert job["error"]["rule"] in ("unsupported_type", "query_error"), job
            continue
        for fmt in ARTIFACT_FORMATS:
            r = client.post(f"/api/v1/queries/jobs/{job['job_id']}/artifact", headers=agent, json={"format": fmt})
            if r.status_code != 201:
                error = assert_error(r, r.status_code)
                assert 400 <= r.status_code < 500, (name, result_format, fmt, r.text)
                assert error["details"].get("column") == column, (name, result_format, fmt, error)
                refused += 1
                continue
            saved += 1
            content = client.get(f"/api/v1/artifacts/{r.json()['id']}/content", headers=agent).content
            want: Any = _MISSING
            if result_format in ("parquet", "arrow") and result_format != fmt:
                want = (EXACT_CSV if fmt == "csv" else EXACT_PARQUET).get(name, _MISSING)
            elif result_format == "json":
                want = EXACT_FROM_JSON.get((name, fmt), _MISSING)
            elif result_format == "csv":
                want = EXACT_FROM_CSV.get((name, fmt), _MISSING)
            if want is not _MISSING:
                got = _value(content, fmt, column)
                assert got == want, (name, result_format, fmt, got)
                checked += 1
    assert saved > 0
    assert checked >= 4
    assert refused == 0  # today every type has an exact rule; a refusal would have to name its column


def test_the_reported_example_hugeint_json_job_saved_as_csv(client: Any, agent: dict[str, str]) -> None:
    job = _job(client, agent, "select 170141183460469231731687303715884105727::hugeint", "json")
    r = client.post(f"/api/v1/queries/jobs/{job['job_id']}/artifact", headers=agent, json={"format": "csv"})
    assert r.status_code == 201, r.text
    content = client.get(f"/api/v1/artifacts/{r.json()['id']}/content", headers=agent).content.decode()
    assert content.splitlines()[1].strip('"') == "170141183460469231731687303715884105727"


def test_a_value_that_cannot_be_written_exactly_is_a_400_naming_its_column(client: Any, agent: dict[str, str]) -> None:
    """An infinite date inside a struct has no JSON text: CSV refuses that column; Parquet keeps it typed."""
    job = _job(client, agent, "select 1 as k, {'d': 'infinity'::date} as c_nested_inf", "arrow")
    assert job["status"] == "succeeded", job
    r = client.post(f"/api/v1/queries/jobs/{job['job_id']}/artifact", headers=agent, json={"format": "csv"})
    error = assert_error(r, 400, rule="type_not_convertible")
    assert error["details"]["column"] == "c_nested_inf"
    assert "c_nested_inf" in error["message"]
    r = client.post(f"/api/v1/queries/jobs/{job['job_id']}/artifact", headers=agent, json={"format": "parquet"})
    assert r.status_code == 201, r.text
