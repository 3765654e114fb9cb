"""Every answer format says exactly what the served table holds, and tells each value from NULL.

One served table holds the values a Snowflake copy can hold at its edges (non-finite and
negative-zero floats, high-scale decimals, wide integers, blobs that are and are not UTF-8,
text that reads like NULL, padding, NULs); it is read through the API as inline JSON, CSV,
Arrow and Parquet result files, rows pages and conversions of those files, samples and the
MCP ``query`` tool, and each answer is compared with DuckDB's own values.
"""

from __future__ import annotations

import base64
import dataclasses
import decimal
import io
import math
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from pyarrow import ipc

from shared.settings import Settings
from tests.conftest import publish_table
from tests.serving.test_queries_api import wait_done

TABLE = "demo.public.edges"
DATA = r"""select * from (values
  (1, 'nan'::double, 0.00000001::decimal(18,8), 1.5::decimal(38,37), 170141183460469231731687303715884105727::hugeint,
   from_hex('00FF0A'), 'NULL', ''),
  (2, 'inf'::double, 0::decimal(18,8), -0.0000000000000000000000000000000000001::decimal(38,37), -5::hugeint,
   from_hex('0A2C41'), '', 'a' || chr(0) || 'b'),
  (3, '-inf'::double, 12.5::decimal(18,8), 0::decimal(38,37), 9007199254740993::hugeint, from_hex(''), '  pad  ', 'x'),
  (4, '-0.0'::double, null, null, null, null, null, null)
) t(id, f, small, fine, wide, bin, s, s2)"""
QUERY = "select * from edges order by id"
FLOATS = ["nan", "inf", "-inf", -0.0]  # JSON has no NaN or infinity: the CSV and profile spelling
SMALL = ["0.00000001", "0.00000000", "12.50000000", None]
FINE = ["1.5000000000000000000000000000000000000", "-0.0000000000000000000000000000000000001",
        "0.0000000000000000000000000000000000000", None]
WIDE = [170141183460469231731687303715884105727, -5, 9007199254740993, None]
BLOBS = [b"\x00\xff\n", b"\n,A", b"", None]
TEXT = ["NULL", "", "  pad  ", None]
TEXT2 = ["", "a\x00b", "x", None]


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    mcp = dataclasses.replace(settings.mcp, allowed_hosts="testserver.local", answer_max_chars=20_000)
    return dataclasses.replace(settings, mcp=mcp)


@pytest.fixture
def agent(client: Any, api_settings: Settings, make_swarm: Any, agent_headers: Any) -> dict[str, str]:
    publish_table(api_settings.served_path, TABLE, DATA)
    return agent_headers(make_swarm([TABLE])["id"])  # type: ignore[no-any-return]


def _file(client: Any, headers: dict[str, str], fmt: str) -> tuple[dict[str, Any], bytes]:
    r = client.post("/api/v1/queries/execute", json={"query": QUERY, "output_format": fmt}, headers=headers)
    assert r.status_code in (200, 202), r.text
    job = r.json()
    if not job.get("result_url"):
        job = wait_done(client, headers, job["job_id"])
    assert job["status"] == "succeeded", job
    got = client.get(job["result_url"], headers=headers)
    assert got.status_code == 200, got.text
    return job, got.content


def _same_float(got: Any, want: Any) -> bool:
    if isinstance(want, str):
        return got == want
    return isinstance(got, float) and got == want and math.copysign(1, got) == math.copysign(1, want)


def _json_columns(rows: list[list[Any]]) -> dict[str, list[Any]]:
    names = ["id", "f", "small", "fine", "wide", "bin", "s", "s2"]
    return {n: [r[i] for r in rows] for i, n in enumerate(names)}


def _assert_json_rows(rows: list[list[Any]]) -> None:
    cols = _json_columns(rows)
    assert all(_same_float(g, w) for g, w in zip(cols["f"], FLOATS, strict=True)), cols["f"]
    assert cols["small"] == SMALL
    assert cols["fine"] == FINE
    assert cols["wide"] == WIDE
    assert cols["bin"] == [None if b is None else base64.b64encode(b).decode() for b in BLOBS]
    assert cols["s"] == TEXT
    assert cols["s2"] == TEXT2


def test_inline_json_tells_non_finite_floats_from_null_and_spells_decimals_at_their_scale(
        client: Any, agent: dict[str, str]) -> None:
    """NaN and ±infinity came back as null, the same as a missing value; a DECIMAL(18,8) zero came
    back as "0E-8" and a DECIMAL(38,37) as "-1E-37", which is not the digits CSV or DuckDB write."""
    r = client.post("/api/v1/queries/execute", json={"query": QUERY}, headers=agent)
    assert r.status_code == 200, r.text
    _assert_json_rows(r.json()["rows"])


def test_a_sample_answers_the_same_values(client: Any, agent: dict[str, str]) -> None:
    r = client.get(f"/api/v1/data/tables/{TABLE}/sample", params={"method": "head", "size": 10}, headers=agent)
    assert r.status_code == 200, r.text
    _assert_json_rows(sorted(r.json()["rows"], key=lambda row: row[0]))


@pytest.mark.parametrize("fmt", ["arrow", "parquet", "csv"])
def test_rows_pages_of_every_result_file_answer_what_inline_json_answers(client: Any, agent: dict[str, str],
                                                                         fmt: str) -> None:
    """A page read from an Arrow or Parquet result said null for NaN and "170141…" (a string) for a
    HUGEINT the inline answer gives as a number; a page of a CSV result guessed each column's type from
    its text, so NULL and the empty string came back alike."""
    job, _ = _file(client, agent, fmt)
    page = client.get(f"/api/v1/queries/jobs/{job['job_id']}/rows", params={"limit": 10}, headers=agent)
    assert page.status_code == 200, page.text
    _assert_json_rows(page.json()["rows"])


def test_csv_writes_blobs_as_base64_and_decimals_in_fixed_point(client: Any, agent: dict[str, str]) -> None:
    """A BLOB that was not UTF-8 failed the whole export (400) and one that was came out raw, NULs and
    line breaks included, as if it were text; decimals of a high scale came out as ``0E-8``."""
    _, body = _file(client, agent, "csv")
    types = dict.fromkeys(["f", "small", "fine", "wide", "bin", "s", "s2"], pa.string())
    table = pacsv.read_csv(io.BytesIO(body), convert_options=pacsv.ConvertOptions(
        column_types=types, null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False))
    cols = table.to_pydict()
    assert cols["f"] == ["nan", "inf", "-inf", "-0"]
    assert cols["small"] == SMALL
    assert cols["fine"] == FINE
    assert cols["wide"] == [None if w is None else str(w) for w in WIDE]
    assert [None if b is None else base64.b64decode(b) for b in cols["bin"]] == BLOBS
    assert cols["s"] == TEXT
    assert cols["s2"] == TEXT2


def test_a_csv_sample_writes_blobs_as_base64(client: Any, agent: dict[str, str]) -> None:
    r = client.get(f"/api/v1/data/tables/{TABLE}/sample", params={"method": "head", "size": 10, "format": "csv"},
                   headers=agent)
    assert r.status_code == 200, r.text
    table = pacsv.read_csv(io.BytesIO(r.content), convert_options=pacsv.ConvertOptions(
        column_types={"bin": pa.string()}, null_values=[""], strings_can_be_null=True,
        quoted_strings_can_be_null=False))
    got = dict(zip(table.column("id").to_pylist(), table.column("bin").to_pylist(), strict=True))
    assert [None if got[i] is None else base64.b64decode(got[i]) for i in (1, 2, 3, 4)] == BLOBS


@pytest.mark.parametrize("fmt", ["arrow", "parquet"])
def test_typed_files_keep_every_value(client: Any, agent: dict[str, str], fmt: str) -> None:
    _, body = _file(client, agent, fmt)
    table = ipc.open_stream(body).read_all() if fmt == "arrow" else pq.read_table(io.BytesIO(body))
    cols = table.to_pydict()
    floats = cols["f"]
    assert math.isnan(floats[0])
    assert floats[1:3] == [math.inf, -math.inf]
    assert math.copysign(1, floats[3]) == -1
    assert cols["fine"][1] == decimal.Decimal("-1E-37")
    assert cols["wide"][0] == decimal.Decimal(WIDE[0])
    assert cols["bin"] == BLOBS
    assert cols["s"] == TEXT


@pytest.mark.parametrize(("target", "check"), [("json", "rows"), ("csv", "text")])
def test_converting_a_csv_result_keeps_null_and_empty_apart(client: Any, agent: dict[str, str], target: str,
                                                          check: str) -> None:
    """A CSV result converted to JSON was read back with types guessed from its text: the empty
    string became NULL's twin and the text column of "NULL" and "  pad  " was at the guesser's mercy."""
    job, _ = _file(client, agent, "csv")
    r = client.get(job["result_url"], params={"format": target}, headers=agent)
    assert r.status_code == 200, r.text
    if check == "rows":
        _assert_json_rows(r.json()["rows"])
    else:
        assert r.content.count(b'""') >= 2  # the empty strings stay quoted, NULLs stay empty


def _mcp_query(client: Any, headers: dict[str, str]) -> list[list[str]]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "query", "arguments": {"sql": QUERY}}}
    r = client.post("/mcp", json=body, headers={"Accept": "application/json, text/event-stream",
                                                "Host": "testserver.local", **headers})
    assert r.status_code == 200, r.text
    text = r.json()["result"]["content"][0]["text"]
    lines = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| id ")]
    return [[cell.strip() for cell in line[2:-2].split(" | ")] for line in lines]


def test_mcp_tells_null_the_empty_string_and_padding_apart(client: Any, agent: dict[str, str]) -> None:
    """The text "NULL" was rendered NULL, like a missing value; the empty string and "  pad  " lost
    what the table's padding hides; a NUL character was written raw; NaN was NULL."""
    rows = _mcp_query(client, agent)
    cols = _json_columns(rows)  # type: ignore[arg-type]
    assert cols["f"] == ["nan", "inf", "-inf", "-0.0"]
    assert cols["small"] == ["0.00000001", "0.00000000", "12.50000000", "NULL"]
    assert cols["fine"][1] == FINE[1]
    assert cols["s"] == ['"NULL"', '""', '"  pad  "', "NULL"]
    assert cols["s2"] == ['""', "a\\u0000b", "x", "NULL"]
