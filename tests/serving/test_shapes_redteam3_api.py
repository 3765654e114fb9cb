"""Served tables of source shapes the earlier passes left out, read through the API: times and
timestamps at their edges in every result format, and wide decimals in profiles.

Each answer is compared with what the inline JSON answer (or DuckDB itself) says of the same rows.
"""

from __future__ import annotations

from typing import Any

import pytest

from shared.settings import Settings
from tests.conftest import publish_table
from tests.serving.test_queries_api import wait_done

TABLE = "demo.public.shapes"
DATA = r"""select * from (values
  (1, '00:00:00'::time, '0001-01-01'::date, '0001-01-01 00:00:00'::timestamp,
   '2024-03-31 01:30:00+00'::timestamptz, 12345678901234567.89::decimal(20,2), 0.1::decimal(38,37), '{}'::json),
  (2, '23:59:59.999999'::time, '9999-12-31'::date, '9999-12-31 23:59:59.999999'::timestamp,
   '0001-01-01 00:00:00+00'::timestamptz, 12345678901234567.88::decimal(20,2), 0.2::decimal(38,37), 'null'::json),
  (3, '12:00:00.5'::time, '1969-12-31'::date, '1969-12-31 23:59:59.999999'::timestamp,
   '1969-12-31 23:59:59.999999+00'::timestamptz, 12345678901234567.88::decimal(20,2), null, null),
  (4, null, null, null, null, null, null, '[]'::json)
) t(id, "t", "d", "ts", "tz", "wide", "fine", "j")"""
QUERY = "select * from shapes order by id"


@pytest.fixture
def agent(client: Any, settings: Settings, make_swarm: Any, agent_headers: Any) -> dict[str, str]:
    publish_table(settings.served_path, TABLE, DATA)
    return agent_headers(make_swarm([TABLE])["id"])  # type: ignore[no-any-return]


def _inline(client: Any, headers: dict[str, str]) -> list[list[Any]]:
    r = client.post("/api/v1/queries/execute", json={"query": QUERY}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["rows"]  # type: ignore[no-any-return]


def _job(client: Any, headers: dict[str, str], fmt: str) -> dict[str, Any]:
    r = client.post("/api/v1/queries/execute", json={"query": QUERY, "output_format": fmt}, headers=headers)
    assert r.status_code in (200, 202), r.text
    job = r.json()
    if not job.get("result_url"):
        job = wait_done(client, headers, job["job_id"])
    assert job["status"] == "succeeded", job
    return job  # type: ignore[no-any-return]


def test_the_inline_answer_spells_times_as_iso_8601(client: Any, agent: dict[str, str]) -> None:
    rows = _inline(client, agent)
    assert [r[1:5] for r in rows] == [
        ["00:00:00", "0001-01-01", "0001-01-01T00:00:00", "2024-03-31T01:30:00Z"],
        ["23:59:59.999999", "9999-12-31", "9999-12-31T23:59:59.999999", "0001-01-01T00:00:00Z"],
        ["12:00:00.500000", "1969-12-31", "1969-12-31T23:59:59.999999", "1969-12-31T23:59:59.999999Z"],
        [None, None, None, None]]


@pytest.mark.parametrize("fmt", ["csv", "arrow", "parquet"])
def test_rows_pages_and_json_conversions_of_every_result_file_say_what_the_inline_answer_says(
        client: Any, agent: dict[str, str], fmt: str) -> None:
    """A page (or a JSON conversion) of a CSV result read times and timestamps back as the text CSV
    wrote: "00:00:00.000000", "0001-01-01 00:00:00.000000" and "2024-03-31 01:30:00.000000+0000"
    where the inline answer, and the pages of Arrow and Parquet results, say "00:00:00",
    "0001-01-01T00:00:00" and "2024-03-31T01:30:00Z"."""
    want = _inline(client, agent)
    job = _job(client, agent, fmt)
    page = client.get(f"/api/v1/queries/jobs/{job['job_id']}/rows", params={"limit": 10}, headers=agent)
    assert page.status_code == 200, page.text
    assert page.json()["rows"] == want
    converted = client.get(job["result_url"], params={"format": "json"}, headers=agent)
    assert converted.status_code == 200, converted.text
    assert converted.json()["rows"] == want


def test_a_profile_spells_decimals_exactly(client: Any, agent: dict[str, str]) -> None:
    """Minimum, maximum and top values went through float: 12345678901234567.88 and .89 were both
    shown as 1.2345678901234568e16, so the top values listed one number twice with two counts."""
    r = client.get(f"/api/v1/data/tables/{TABLE}/profile", headers=agent)
    assert r.status_code == 200, r.text
    cols = {c["name"]: c for c in r.json()["columns"]}
    wide = cols["wide"]
    assert (wide["min"], wide["max"]) == ("12345678901234567.88", "12345678901234567.89")
    assert wide["top_k"] == [{"value": "12345678901234567.88", "count": 2}, {"value": "12345678901234567.89", "count": 1}]
    fine = cols["fine"]
    assert (fine["min"], fine["max"]) == ("0.1000000000000000000000000000000000000", "0.2000000000000000000000000000000000000")
    assert isinstance(wide["mean"], float)  # the statistics computed in DOUBLE stay numbers


def test_a_csv_result_holding_a_date_csv_cannot_spell_is_still_paged(client: Any, agent: dict[str, str]) -> None:
    """An infinite DATE (a DuckDB or Parquet file source can hold one) is written by CSV as
    ``<value out of range: …>``; the page read it back as a date and answered 500. The file is now
    read as written, and the other columns still say what the inline answer says."""
    query = "select id, \"d\", \"ts\", case when id = 1 then 'infinity'::date end as inf from shapes order by id"
    r = client.post("/api/v1/queries/execute", json={"query": query}, headers=agent)
    assert r.status_code == 200, r.text
    want = [row[:2] for row in r.json()["rows"]]
    r = client.post("/api/v1/queries/execute", json={"query": query, "output_format": "csv"}, headers=agent)
    assert r.status_code in (200, 202), r.text
    job = r.json() if r.json().get("result_url") else wait_done(client, agent, r.json()["job_id"])
    page = client.get(f"/api/v1/queries/jobs/{job['job_id']}/rows", params={"limit": 10}, headers=agent)
    assert page.status_code == 200, page.text
    rows = page.json()["rows"]
    assert [row[:2] for row in rows] == want
    assert [row[3] is None for row in rows] == [False, True, True, True]


def test_the_newest_rows_of_a_wide_decimal_column_near_its_maximum_are_sampled(
        client: Any, settings: Settings, make_swarm: Any, agent_headers: Any) -> None:
    """``method=recent`` first tries a cutoff between the column's min and max; computed in Python's
    28-digit decimals, the cutoff of a NUMBER(38,2) column ending at 999…999.99 rounded up to
    10^36, which DECIMAL(38,2) cannot hold: the sample answered 400 (a conversion error)."""
    key = "demo.public.wide_amounts"
    publish_table(settings.served_path, key, "select i::bigint as id, "
                  "(999999999999999999999999999999999999.99 - i)::decimal(38,2) as amount from range(2000) t(i)")
    headers = agent_headers(make_swarm([key])["id"])
    r = client.get(f"/api/v1/data/tables/{key}/sample", params={"method": "recent", "by": "amount", "size": 5},
                   headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == [[i, f"{999999999999999999999999999999999999 - i}.99"] for i in range(5)]


COMMA_TABLE = "demo.public.comma_names"
COMMA_DATA = """select * from (values (1, 10, 20, 'x', 'pad'), (2, 11, 21, 'y', 'pad2'))
  t("id", "a", "b", "a,b", "a ")"""


@pytest.mark.parametrize("endpoint", ["sample", "profile"])
def test_columns_whose_names_hold_a_comma_or_spaces_are_asked_for_in_quotes(
        client: Any, settings: Settings, make_swarm: Any, agent_headers: Any, endpoint: str) -> None:
    """``columns`` was split on every comma and each name trimmed: a column named ``a,b`` could not be
    asked for at all (``"a`` and ``b"`` are no columns), and one named ``a `` was answered with the
    column ``a``. A name in double quotes is now taken whole and exact, as a registration's column
    list is read, and a name is trimmed only when no column has the spaces."""
    publish_table(settings.served_path, COMMA_TABLE, COMMA_DATA)
    headers = agent_headers(make_swarm([COMMA_TABLE])["id"])
    params: dict[str, Any] = {"columns": '"a,b", "a "'}
    if endpoint == "sample":
        params |= {"method": "head", "size": 10}
    r = client.get(f"/api/v1/data/tables/{COMMA_TABLE}/{endpoint}", params=params, headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [c["name"] for c in body["columns"]] == ["a,b", "a "]
    if endpoint == "sample":
        assert body["rows"] == [["x", "pad"], ["y", "pad2"]]
    plain = client.get(f"/api/v1/data/tables/{COMMA_TABLE}/{endpoint}", params={**params, "columns": "a, b"},
                       headers=headers)
    assert [c["name"] for c in plain.json()["columns"]] == ["a", "b"]  # unquoted lists are as before


def test_a_profile_tells_the_last_date_from_infinity(client: Any, settings: Settings, make_swarm: Any,
                                                     agent_headers: Any) -> None:
    """DuckDB hands ±infinity to Python as the first and last representable dates, and the profile
    judged from those objects: a column holding 9999-12-31 (the "no end" date of many tables) had
    no histogram, and one holding infinity (a DuckDB or Parquet file source can) showed 9999-12-31."""
    key = "demo.public.validity"
    publish_table(settings.served_path, key, """select * from (values
      ('2020-01-01'::date, '2020-01-01'::date), ('2021-06-01'::date, 'infinity'::date),
      ('9999-12-31'::date, '-infinity'::date)) t(valid_to, open_end)""")
    headers = agent_headers(make_swarm([key])["id"])
    r = client.get(f"/api/v1/data/tables/{key}/profile", headers=headers)
    assert r.status_code == 200, r.text
    cols = {c["name"]: c for c in r.json()["columns"]}
    valid_to = cols["valid_to"]
    assert (valid_to["min"], valid_to["max"]) == ("2020-01-01", "9999-12-31")
    assert valid_to["histogram"] is not None
    assert (valid_to["histogram"]["edges"][0], valid_to["histogram"]["edges"][-1]) == ("2020-01-01", "9999-12-31")
    assert sum(valid_to["histogram"]["counts"]) == 3
    open_end = cols["open_end"]
    assert (open_end["min"], open_end["max"], open_end["histogram"]) == ("-infinity", "infinity", None)


@pytest.mark.parametrize("endpoint", ["sample", "profile"])
def test_the_python_client_asks_for_such_columns_whole(client: Any, settings: Settings, make_swarm: Any,
                                                       agent_headers: Any, endpoint: str) -> None:
    """The client joined the names with commas as they were, so ``a,b`` was sent as the columns a and b."""
    from agents_data_client import _core

    publish_table(settings.served_path, COMMA_TABLE, COMMA_DATA)
    headers = agent_headers(make_swarm([COMMA_TABLE])["id"])
    names = ["a,b", "a ", "id"]
    call = (_core.sample_call(COMMA_TABLE, "head", size=10, fraction=None, seed=None, columns=names, where=None, by=None)
            if endpoint == "sample" else
            _core.profile_call(COMMA_TABLE, columns=names, sample=None, seed=None, force_refresh=False))
    r = client.get(call.path, params=call.params, headers=headers)
    assert r.status_code == 200, r.text
    assert [c["name"] for c in r.json()["columns"]] == names
