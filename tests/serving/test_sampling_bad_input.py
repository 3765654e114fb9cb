"""Sampling and profiling never answer 5xx: bad parameters get a clear 4xx, odd column types work.

The table holds every awkward DuckDB type (nested, union, map, blob, interval, UUID,
huge integers and decimals, NaN and ±infinity floats, ±infinity dates and timestamps,
an all-NULL column). Each sample method and format either answers or refuses with
400 ``unsupported_type``; the profile's figures for these columns are checked against
plain DuckDB aggregates on the served file.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from serving.app import create_app
from shared.served import read_current, version_path
from shared.settings import Settings
from tests.conftest import publish_table
from tests.serving.helpers import admin_token, assert_error, bearer, create_swarm, mint_token

KEY = "demo.public.odd"
ROWS = 500
SELECT = f"""SELECT
  i AS id,
  i % 3 AS b,
  [i, i + 1] AS l,
  {{'a': i, 's': 'x' || i::VARCHAR}} AS st,
  MAP {{'k': i}} AS mp,
  union_value(k := i) AS un,
  ('\\x00\\x01' || i::VARCHAR)::BLOB AS bl,
  INTERVAL 1 DAY * i AS iv,
  uuid() AS u,
  TIME '10:00' + INTERVAL 1 MINUTE * i AS tm,
  i::HUGEINT * 170141183460469231731687303715884 AS hi,
  (i * 1234567890123.125)::DECIMAL(38, 3) AS dec,
  CASE i % 50 WHEN 0 THEN 'nan'::DOUBLE WHEN 1 THEN 'inf'::DOUBLE WHEN 2 THEN '-inf'::DOUBLE ELSE i / 7.0 END AS fl,
  CASE WHEN i = 0 THEN 'infinity'::TIMESTAMP WHEN i = 1 THEN '-infinity'::TIMESTAMP
       ELSE TIMESTAMP '2024-01-01' + INTERVAL 1 HOUR * i END AS ts,
  CASE WHEN i = 0 THEN 'infinity'::DATE ELSE DATE '2024-01-01' + i::INT END AS d,
  DATE '9999-12-30' - (i % 3)::INT AS far,
  NULL::INTEGER AS nothing,
  CASE WHEN i % 2 = 0 THEN '名前 ' || i::VARCHAR ELSE E'tab\\tnew\\nline' END AS txt
FROM range({ROWS}) t(i)"""
FORMATS = ("json", "csv", "parquet", "arrow")
METHODS: list[dict[str, Any]] = [
    {"method": "head", "size": 20},
    {"method": "random", "size": 20, "seed": 3},
    {"method": "random", "fraction": 0.1, "seed": 3},
    {"method": "stratified", "by": "b", "size": 5, "seed": 3},
    {"method": "recent", "by": "ts", "size": 5},
]


@dataclasses.dataclass
class World:
    client: TestClient[Litestar]
    settings: Settings
    agent: dict[str, str]

    def get(self, what: str, **params: Any) -> Any:
        return self.client.get(f"/api/v1/data/tables/odd/{what}", headers=self.agent, params=params)

    def reference(self, sql: str) -> list[tuple[Any, ...]]:
        manifest = read_current(self.settings.served_path, KEY)
        assert manifest is not None
        con = duckdb.connect(str(version_path(self.settings.served_path, manifest)), read_only=True)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("odd") / "home"
    home.mkdir()
    settings = Settings.from_env({"AGENTS_DATA_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'control.db'}",
                                  "JWT_SECRET": "test-secret-" + "o" * 32, "ADMIN_PASSWORD": "admin-password"})
    publish_table(settings.served_path, KEY, SELECT)
    with TestClient(create_app(settings)) as client:
        admin = bearer(admin_token(client))
        swarm = create_swarm(client, admin, [KEY])["id"]
        yield World(client, settings, bearer(mint_token(client, admin, "agent", swarm)["token"]))


def _columns(world: World) -> list[str]:
    return [r[0] for r in world.reference("SELECT column_name FROM (DESCRIBE data)")]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("params", METHODS, ids=lambda p: "-".join(str(v) for v in p.values()))
def test_every_method_and_format_answers_or_refuses_cleanly(world: World, params: dict[str, Any], fmt: str) -> None:
    r = world.get("sample", format=fmt, **params)
    if r.status_code == 200:
        assert int(r.headers["x-table-row-count"]) == world.reference("SELECT count(*) FROM data")[0][0]
        return
    assert_error(r, 400, rule="unsupported_type")
    assert fmt in ("csv", "parquet", "arrow"), r.text
    # The refusal names a way out: every single column it can write is fine on its own.
    ok = [c for c in _columns(world) if world.get("sample", format=fmt, columns=c, **params).status_code == 200]
    assert "id" in ok


@pytest.mark.parametrize("column", ["id", "l", "st", "mp", "un", "bl", "iv", "u", "tm", "hi", "dec", "fl", "ts", "d",
                                    "far", "nothing", "txt"])
def test_single_columns_in_json_match_duckdb(world: World, column: str) -> None:
    r = world.get("sample", method="head", size=ROWS, columns=column)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["row_count"] == ROWS
    nulls = world.reference(f'SELECT count(*) - count("{column}") FROM data')[0][0]
    assert sum(row[0] is None for row in body["rows"]) == nulls
    if column == "fl":  # JSON has no NaN or infinity: they are spelled "nan", "inf", "-inf", never null
        non_finite = world.reference("SELECT count_if(NOT isfinite(fl)) FROM data")[0][0]
        assert non_finite > 0
        assert sum(row[0] in ("nan", "inf", "-inf") for row in body["rows"]) == non_finite


BAD_SAMPLES: list[tuple[dict[str, Any], str | None]] = [
    ({"method": "stratified", "size": 2}, "invalid_sample"),
    ({"method": "stratified", "by": "nope", "size": 2}, "unknown_column"),
    ({"method": "recent", "by": "nope"}, "unknown_column"),
    ({"method": "head", "fraction": 0.5}, "invalid_sample"),
    ({"method": "random", "size": 5, "fraction": 0.5}, "invalid_sample"),
    ({"method": "random", "fraction": 0}, None),
    ({"method": "random", "fraction": 1.5}, None),
    ({"method": "random", "fraction": "nan"}, None),
    ({"method": "random", "fraction": "inf"}, None),
    ({"method": "random", "size": "nan"}, None),
    ({"method": "random", "size": 10**30}, None),
    ({"method": "head", "size": 2**63}, None),
    ({"method": "random", "seed": 2**31}, None),
    ({"method": "random", "seed": 10**30}, None),
    ({"method": "\x00"}, None),
    ({"method": "head", "format": "\x00"}, "invalid_format"),
    ({"method": "head", "columns": "id,\x00"}, "unknown_column"),
    ({"method": "head", "columns": "x" * 3000}, "unknown_column"),
    ({"method": "recent", "by": "\x00", "size": 1}, "unknown_column"),
    ({"method": "head", "where": "s = '\x00'"}, "parse_error"),
    ({"method": "head", "where": "'abc'"}, None),
    ({"method": "head", "where": "CAST(txt AS INT) = 1"}, None),
    ({"method": "random", "size": 5, "where": "CAST(txt AS INT) = 1"}, None),
    ({"method": "stratified", "by": "b", "size": 5, "where": "CAST(txt AS INT) = 1"}, None),
    ({"method": "recent", "by": "id", "size": 5, "where": "CAST(txt AS INT) = 1"}, None),
    ({"method": "head", "where": "id * 9223372036854775807 * 100 > 1"}, None),
    ({"method": "head", "where": "x" * 4001}, None),
    ({"method": "head", "where": "id = (SELECT 1)"}, "statement_not_allowed"),
    ({"method": "head", "where": "read_blob('/etc/passwd') IS NOT NULL"}, "function_not_allowed"),
]


@pytest.mark.parametrize(("params", "rule"), BAD_SAMPLES, ids=[repr(p)[:60] for p, _ in BAD_SAMPLES])
def test_bad_sample_parameters_are_a_clear_400(world: World, params: dict[str, Any], rule: str | None) -> None:
    error = assert_error(world.get("sample", **params), 400)
    if rule:
        assert error["rule"] == rule, error


BAD_PROFILES: list[tuple[dict[str, Any], str | None]] = [
    ({"columns": "nope"}, "unknown_column"),
    ({"columns": "\x00"}, "unknown_column"),
    ({"sample": 0}, None),
    ({"sample": 10**30}, None),
    ({"sample": 5, "seed": -1}, None),
    ({"force_refresh": "maybe"}, None),
]


@pytest.mark.parametrize(("params", "rule"), BAD_PROFILES, ids=[repr(p)[:60] for p, _ in BAD_PROFILES])
def test_bad_profile_parameters_are_a_clear_400(world: World, params: dict[str, Any], rule: str | None) -> None:
    error = assert_error(world.get("profile", **params), 400)
    if rule:
        assert error["rule"] == rule, error


@pytest.mark.parametrize("table", ["a%00b", "x" * 3000, "%E2%80%AEodd", "a.b.c.d.e", "odd%22%3B", "..%2F..%2Fetc"])
def test_bad_table_names_are_not_found(world: World, table: str) -> None:
    for what in ("sample", "profile"):
        r = world.client.get(f"/api/v1/data/tables/{table}/{what}", headers=world.agent)
        assert_error(r, 404)


@pytest.fixture(scope="module")
def profile(world: World) -> dict[str, dict[str, Any]]:
    r = world.get("profile", force_refresh=True)
    assert r.status_code == 200, r.text
    return {c["name"]: c for c in r.json()["columns"]}


def test_profile_covers_every_odd_column(world: World, profile: dict[str, dict[str, Any]]) -> None:
    assert list(profile) == _columns(world)
    for name, c in profile.items():
        nulls = world.reference(f'SELECT count(*) - count("{name}") FROM data')[0][0]
        assert c["null_count"] == nulls, name
        assert math.isclose(c["null_fraction"], nulls / ROWS), name
    assert (profile["nothing"]["null_fraction"], profile["nothing"]["top_k"]) == (1.0, [])


def test_infinite_values_get_no_histogram(world: World, profile: dict[str, dict[str, Any]]) -> None:
    """NaN/±inf floats and ±infinity dates and timestamps: min/max reported, no meaningless bins."""
    fl, ts, d = profile["fl"], profile["ts"], profile["d"]
    assert (fl["min"], fl["max"], fl["histogram"]) == ("-inf", "nan", None)  # DuckDB orders NaN above +inf
    assert (ts["histogram"], d["histogram"]) == (None, None)
    # An infinite end is spelled as DuckDB spells it, never as the last date Python can hold.
    assert world.reference("SELECT min(ts)::VARCHAR, max(ts)::VARCHAR FROM data")[0] == ("-infinity", "infinity")
    assert (ts["min"], ts["max"]) == ("-infinity", "infinity")


def test_dates_near_year_9999_keep_their_histogram(world: World, profile: dict[str, dict[str, Any]]) -> None:
    far = profile["far"]
    counts = dict(world.reference("SELECT far::VARCHAR, count(*) FROM data GROUP BY 1"))
    assert (far["min"], far["max"]) == (min(counts), max(counts))
    assert sum(far["histogram"]["counts"]) == ROWS
    assert sorted(c for c in far["histogram"]["counts"] if c) == sorted(counts.values())


def test_huge_numbers_match_duckdb(world: World, profile: dict[str, dict[str, Any]]) -> None:
    for col in ("hi", "dec"):
        lo, hi, mean = world.reference(f"SELECT min({col})::DOUBLE, max({col})::DOUBLE, avg({col}::DOUBLE) FROM data")[0]
        c = profile[col]
        assert (float(c["min"]), float(c["max"])) == (lo, hi), col
        assert math.isclose(c["mean"], mean, rel_tol=1e-12), col
        assert sum(c["histogram"]["counts"]) == ROWS, col
