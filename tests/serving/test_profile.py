"""Profiles through the API, each figure checked against the same figure computed independently in DuckDB.

The reference side runs plain aggregates (exact ``count(DISTINCT)``, ``quantile_cont``,
``GROUP BY`` counts) on the served version file; the API side computes with
HyperLogLog, t-digest and two or three scans, so approximate figures get tolerances.
Also: the per-version cache (memory and disk), ``force_refresh``, column subsets,
sampled profiles, access, and the Markdown rendering Dagster uses.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from serving.app import create_app
from serving.sampling.profile import ProfileCache
from shared.profile import ColumnSpec, compute_profile, connection_runner, describe, profile_markdown
from shared.served import read_current, version_path
from shared.settings import Settings
from tests.conftest import publish_table
from tests.serving.helpers import admin_token, assert_error, bearer, create_swarm, mint_token

KEY = "demo.public.facts"
ROWS = 30_000
SELECT = f"""SELECT
  i AS id,
  i % 13 AS small_int,
  CASE WHEN i % 5 = 0 THEN NULL ELSE (i * 7919) % 1000 END AS mid_int,
  ((i * 2654435761) % 100000) / 100.0 AS ratio,
  (((i * 40503) % 30000) * 1.25)::DECIMAL(12, 2) AS amount,
  ['alpha', 'beta', 'gamma', 'delta'][1 + (i % 4)::INT] || CASE WHEN i % 3 = 0 THEN 'x' ELSE '' END AS label,
  'w' || (i % 3000)::VARCHAR AS word,
  (i % 3 = 0) AS flag,
  DATE '2024-01-01' + (i % 365)::INT AS day,
  TIMESTAMP '2024-01-01' + to_seconds(i * 37) AS moment,
  CASE WHEN i % 2 = 0 THEN [i, i + 1] END AS pair,
  CASE WHEN i < 10 THEN 'v' || i::VARCHAR END AS rare
FROM range({ROWS}) t(i)"""


@dataclasses.dataclass
class World:
    client: TestClient[Litestar]
    settings: Settings
    agent: dict[str, str]

    def profile(self, table: str = "facts", **params: Any) -> Any:
        return self.client.get(f"/api/v1/data/tables/{table}/profile", headers=self.agent, params=params)

    def ok(self, **params: Any) -> dict[str, Any]:
        r = self.profile(**params)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def con(self) -> duckdb.DuckDBPyConnection:
        manifest = read_current(self.settings.served_path, KEY)
        assert manifest is not None
        return duckdb.connect(str(version_path(self.settings.served_path, manifest)), read_only=True)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("profile") / "home"
    home.mkdir()
    settings = Settings.from_env({"AGENTS_DATA_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'control.db'}",
                                  "JWT_SECRET": "test-secret-" + "p" * 32, "ADMIN_PASSWORD": "admin-password"})
    publish_table(settings.served_path, KEY, SELECT)
    publish_table(settings.served_path, "demo.public.hidden", "SELECT 1 AS x")
    with TestClient(create_app(settings)) as client:
        admin = bearer(admin_token(client))
        swarm = create_swarm(client, admin, [KEY])["id"]
        yield World(client, settings, bearer(mint_token(client, admin, "agent", swarm)["token"]))


@pytest.fixture(scope="module")
def full(world: World) -> dict[str, Any]:
    body = world.ok(force_refresh=True)
    return {c["name"]: c for c in body["columns"]} | {"": body}


def _close(a: float, b: float, rel: float = 1e-9, abs_: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def _scalar(world: World, sql: str) -> Any:
    con = world.con()
    try:
        return con.execute(sql).fetchone()[0]  # type: ignore[index]
    finally:
        con.close()


def _rows(world: World, sql: str) -> list[tuple[Any, ...]]:
    con = world.con()
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


COLUMNS = ["id", "small_int", "mid_int", "ratio", "amount", "label", "word", "flag", "day", "moment", "pair", "rare"]


def test_shape(full: dict[str, Any]) -> None:
    body = full[""]
    assert (body["table"], body["row_count"], body["sampled"], body["cached"]) == (KEY, ROWS, False, False)
    assert [c["name"] for c in body["columns"]] == COLUMNS
    kinds = {c["name"]: c["kind"] for c in body["columns"]}
    assert kinds == {"id": "number", "small_int": "number", "mid_int": "number", "ratio": "number", "amount": "number",
                     "label": "text", "word": "text", "flag": "boolean", "day": "temporal", "moment": "temporal",
                     "pair": "other", "rare": "text"}
    assert body["scans"] <= 3


@pytest.mark.parametrize("col", COLUMNS)
def test_nulls_and_distinct(world: World, full: dict[str, Any], col: str) -> None:
    c = full[col]
    nulls, distinct = _rows(world, f'SELECT count(*) - count("{col}"), count(DISTINCT "{col}") FROM data')[0]
    assert c["null_count"] == nulls
    assert _close(c["null_fraction"], nulls / ROWS)
    if c["distinct_exact"]:
        assert c["approx_distinct"] == distinct
    else:
        assert abs(c["approx_distinct"] - distinct) <= 0.05 * distinct, (c["approx_distinct"], distinct)


@pytest.mark.parametrize("col", ["id", "small_int", "mid_int", "ratio", "amount"])
def test_numbers(world: World, full: dict[str, Any], col: str) -> None:
    c = full[col]
    lo, hi, mean, std, q25, q50, q75 = _rows(world, f"""SELECT min({col}), max({col}),
        avg({col}::DOUBLE), stddev_samp({col}::DOUBLE),
        quantile_cont({col}::DOUBLE, 0.25), quantile_cont({col}::DOUBLE, 0.5), quantile_cont({col}::DOUBLE, 0.75) FROM data""")[0]
    # Exact: a decimal's digits at its scale (as query answers spell it), other numbers as they are.
    assert (c["min"], c["max"]) == tuple(format(v, "f") if isinstance(v, Decimal) else v for v in (lo, hi))
    lo, hi = float(lo), float(hi)
    assert _close(c["mean"], mean, rel=1e-12)
    assert _close(c["stddev"], std, rel=1e-9)
    spread = hi - lo
    for name, exact in (("p25", q25), ("p50", q50), ("p75", q75)):
        assert abs(c["quantiles"][name] - exact) <= 0.02 * spread, (name, c["quantiles"][name], exact)


@pytest.mark.parametrize("col", ["id", "small_int", "mid_int", "ratio", "amount", "day", "moment"])
def test_histograms(world: World, full: dict[str, Any], col: str) -> None:
    h = full[col]["histogram"]
    edges, counts = h["edges"], h["counts"]
    assert len(edges) == len(counts) + 1
    assert sum(counts) == ROWS - full[col]["null_count"]
    temporal = full[col]["kind"] == "temporal"

    def num(edge: Any) -> float:
        return dt.datetime.fromisoformat(edge).replace(tzinfo=dt.UTC).timestamp() if temporal else float(edge)

    bounds = [num(e) for e in edges]
    value = f"epoch({col})" if temporal else f"{col}::DOUBLE"
    # Independent count per bin: [edge_k, edge_k+1), the last bin closed at the maximum.
    checks = [f"count_if({value} >= {bounds[k]!r} AND {value} {'<=' if k == len(counts) - 1 else '<'} {bounds[k + 1]!r})"
              for k in range(len(counts))]
    assert list(_rows(world, f"SELECT {', '.join(checks)} FROM data")[0]) == counts
    if full[col]["kind"] == "number" and col in ("id", "small_int", "mid_int"):
        assert all(float(e).is_integer() for e in edges)  # whole-unit bins for integers
    if col == "day":
        assert all(len(e) == 10 for e in edges)  # whole-day bins, shown as dates


@pytest.mark.parametrize("col", ["small_int", "mid_int", "label", "word", "flag", "day", "rare", "amount"])
def test_top_k_counts_are_exact(world: World, full: dict[str, Any], col: str) -> None:
    top = full[col]["top_k"]
    assert top
    exact = dict(_rows(world, f'SELECT "{col}", count(*) FROM data WHERE "{col}" IS NOT NULL GROUP BY 1'))
    plain = {str(k.isoformat() if hasattr(k, "isoformat") else k): v for k, v in exact.items()}
    for entry in top:
        value = entry["value"]
        key = str(value) if not isinstance(value, float) else None
        got = exact.get(value) if key is None else plain.get(key, exact.get(value))
        if got is None and isinstance(value, float):
            got = next(v for k, v in exact.items() if _close(float(k), value))
        assert entry["count"] == got, (entry, got)
    counts = [e["count"] for e in top]
    assert counts == sorted(counts, reverse=True)
    if full[col]["distinct_exact"]:  # exact frequencies: the top count is the true maximum
        assert counts[0] == max(exact.values())


def test_text_lengths_and_range(world: World, full: dict[str, Any]) -> None:
    for col in ("label", "word", "rare"):
        lo, hi, lmin, lmax = _rows(world, f"SELECT min({col}), max({col}), min(length({col})), max(length({col})) FROM data")[0]
        c = full[col]
        assert (c["min"], c["max"], c["min_length"], c["max_length"]) == (lo, hi, lmin, lmax)


def test_dates_and_unique_columns(world: World, full: dict[str, Any]) -> None:
    assert (full["day"]["min"], full["day"]["max"]) == ("2024-01-01", "2024-12-30")
    lo, hi = _rows(world, "SELECT min(moment), max(moment) FROM data")[0]
    assert (full["moment"]["min"], full["moment"]["max"]) == (lo.isoformat(), hi.isoformat())
    assert full["id"]["top_k"] == []
    assert full["id"]["top_k_note"]
    assert full["pair"]["top_k"] is None
    assert full["pair"]["histogram"] is None


def test_cache_per_version(world: World, full: dict[str, Any]) -> None:
    version = full[""]["served_version"]
    started = time.perf_counter()
    again = world.ok()
    assert again["cached"] is True
    assert time.perf_counter() - started < 0.5
    assert again["columns"] == full[""]["columns"]
    assert (world.settings.home_path / "profiles" / KEY / f"{version}.json").is_file()
    subset = world.ok(columns="label,id")
    assert subset["cached"] is True
    assert [c["name"] for c in subset["columns"]] == ["label", "id"]
    assert world.ok(force_refresh=True)["cached"] is False
    # Another replica (a fresh cache over the same home) reads the shared file.
    replica = ProfileCache(world.settings)
    assert replica._read_disk(KEY, version) is not None


def test_force_refresh_really_recomputes(world: World) -> None:
    """A stale cached profile is served until ``force_refresh``, which scans the table again and replaces it."""
    import json

    version = world.ok()["served_version"]
    path = world.settings.home_path / "profiles" / KEY / f"{version}.json"
    planted = json.loads(path.read_text()) | {"row_count": -1, "computed_at": "2000-01-01T00:00:00+00:00"}
    planted["columns"] = [c | {"null_count": -1} for c in planted["columns"]]
    path.write_text(json.dumps(planted))
    # A fresh app (an empty memory cache, like another replica) finds the planted file.
    with TestClient(create_app(world.settings)) as other:
        url = "/api/v1/data/tables/facts/profile"
        stale = other.get(url, headers=world.agent).json()
        assert (stale["cached"], stale["row_count"], stale["computed_at"]) == (True, -1, planted["computed_at"])
        fresh = other.get(url, headers=world.agent, params={"force_refresh": True}).json()
        assert (fresh["cached"], fresh["served_version"]) == (False, version)
        assert fresh["row_count"] == _scalar(world, "SELECT count(*) FROM data") == ROWS
        assert fresh["computed_at"] > planted["computed_at"]
        for c in fresh["columns"]:
            assert c["null_count"] == _scalar(world, f'SELECT count(*) - count("{c["name"]}") FROM data'), c["name"]
        after = other.get(url, headers=world.agent).json()
        assert (after["cached"], after["row_count"], after["computed_at"]) == (True, ROWS, fresh["computed_at"])
    assert json.loads(path.read_text())["computed_at"] == fresh["computed_at"]
    # The sampled profile too: recomputed (not cached) with the same seed gives the same figures.
    first = world.ok(sample=500, seed=9)
    forced = world.ok(sample=500, seed=9, force_refresh=True)
    assert (forced["cached"], forced["columns"]) == (False, first["columns"])
    assert forced["computed_at"] >= first["computed_at"]


def test_new_version_invalidates(world: World) -> None:
    before = world.ok()
    manifest = publish_table(world.settings.served_path, KEY, SELECT + " WHERE i < 100")
    after = world.ok()
    assert after["served_version"] == manifest.version != before["served_version"]
    assert (after["cached"], after["row_count"]) == (False, 100)
    assert world.ok()["cached"] is True
    assert not (world.settings.home_path / "profiles" / KEY / f"{before['served_version']}.json").exists()
    publish_table(world.settings.served_path, KEY, SELECT)  # back to the full table for the other tests


def test_sampled_profile(world: World) -> None:
    body = world.ok(sample=1000, seed=4)
    assert (body["sampled"], body["sample_rows"], body["seed"], body["row_count"]) == (True, 1000, 4, 1000)
    again = world.ok(sample=1000, seed=4)
    assert again["cached"] is True
    assert again["columns"] == body["columns"]
    ids = _rows(world, "SELECT min(id), max(id) FROM data USING SAMPLE reservoir(1000 ROWS) REPEATABLE (4)")[0]
    id_col = next(c for c in body["columns"] if c["name"] == "id")
    assert (id_col["min"], id_col["max"]) == ids


def test_errors(world: World) -> None:
    assert_error(world.profile(columns="id,nope"), 400, rule="unknown_column")
    hidden, missing = world.profile(table="hidden"), world.profile(table="nothing_here")
    assert_error(hidden, 404, rule="table_not_granted")
    assert_error(missing, 404, rule="table_not_granted")
    assert_error(world.profile(sample=0), 400)


def test_compute_profile_on_a_plain_connection_matches_the_api(world: World, full: dict[str, Any]) -> None:
    con = world.con()
    try:
        local = compute_profile(connection_runner(con), "data", describe(con, "data"))
        markdown = profile_markdown(con, "data", title=KEY)
    finally:
        con.close()
    api = {c["name"]: c for c in world.ok()["columns"]}
    for c in local["columns"]:
        for field in ("null_count", "min", "max", "mean", "min_length", "max_length", "histogram"):
            assert c.get(field) == api[c["name"]].get(field), (c["name"], field)
    assert markdown.startswith(f"**{KEY}**")
    assert f"{ROWS:,} rows" in markdown
    for col in COLUMNS:
        assert f"| {col} |" in markdown
    assert "| label | VARCHAR | 0 (0.0%) | 8 |" in markdown


def test_markdown_escapes_and_empty_tables() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT 'a|b' AS \"odd|name\", NULL::INTEGER AS n FROM range(3)")
    text = profile_markdown(con, "t")
    assert "odd\\|name" in text
    assert "a\\|b" in text
    con.execute("CREATE TABLE e (x INTEGER, s VARCHAR)")
    empty = compute_profile(connection_runner(con), "e", [ColumnSpec("x", "INTEGER"), ColumnSpec("s", "VARCHAR")])
    assert empty["row_count"] == 0
    assert [c["null_fraction"] for c in empty["columns"]] == [0.0, 0.0]
    assert "0 rows" in profile_markdown(con, "e")


def test_profile_on_file_path_is_not_a_shortcut(tmp_path: Path) -> None:
    """``profile_markdown`` only runs what it is given; it opens nothing by itself."""
    con = duckdb.connect(str(tmp_path / "x.duckdb"))
    con.execute("CREATE TABLE data AS SELECT range AS r FROM range(10)")
    assert "10 rows" in profile_markdown(con, "data")
    con.close()
