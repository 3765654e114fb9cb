"""Sampling through the API, checked against the same samples computed independently in DuckDB.

The reference side opens the served version file read-only with a plain DuckDB
connection and runs the textbook query (``USING SAMPLE reservoir(n ROWS) REPEATABLE``,
``LIMIT``, ``ORDER BY … DESC``); the API side goes through auth, the catalog resolver,
the filter guard and the grant-scoped engine.
"""

from __future__ import annotations

import dataclasses
import io
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from litestar import Litestar
from litestar.testing import TestClient
from pyarrow import ipc

from serving.app import create_app
from shared.registry import RegisteredTable, save
from shared.served import read_current, version_path
from shared.settings import Settings
from tests.conftest import publish_table
from tests.serving.helpers import admin_token, assert_error, bearer, create_swarm, mint_token

KEY = "demo.public.events"
OTHER = "demo.public.secret"
ROWS = 20_000
SELECT = (f"SELECT i AS id, i % 7 AS bucket, ['red', 'green', 'blue'][1 + (i % 3)::INT] AS color, "
          f"TIMESTAMP '2025-01-01' + to_seconds(i * 60) AS created_at, round(i * 0.37, 2)::DOUBLE AS amount, "
          f"CASE WHEN i % 11 = 0 THEN NULL ELSE 'n' || (i % 100)::VARCHAR END AS note FROM range({ROWS}) t(i)")


@dataclasses.dataclass
class World:
    client: TestClient[Litestar]
    settings: Settings
    agent: dict[str, str]
    admin: dict[str, str]

    def sample(self, table: str = "events", headers: dict[str, str] | None = None, **params: Any) -> Any:
        return self.client.get(f"/api/v1/data/tables/{table}/sample", headers=headers or self.agent, params=params)

    def ok(self, **params: Any) -> dict[str, Any]:
        r = self.sample(**params)
        assert r.status_code == 200, r.text
        return r.json()  # type: ignore[no-any-return]

    def reference(self, sql: str) -> list[tuple[Any, ...]]:
        """``sql`` over table ``data`` of the current version file, on a plain DuckDB connection."""
        manifest = read_current(self.settings.served_path, KEY)
        assert manifest is not None
        con = duckdb.connect(str(version_path(self.settings.served_path, manifest)), read_only=True)
        try:
            return [tuple(r) for r in con.execute(sql).fetchall()]
        finally:
            con.close()


def make_settings(home: Path) -> Settings:
    home.mkdir(parents=True)
    return Settings.from_env({"AGENTS_DATA_HOME": str(home), "DATABASE_URL": f"sqlite:///{home / 'control.db'}",
                              "JWT_SECRET": "test-secret-" + "s" * 32, "ADMIN_PASSWORD": "admin-password"})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = make_settings(tmp_path_factory.mktemp("sampling") / "home")
    publish_table(settings.served_path, KEY, SELECT)
    publish_table(settings.served_path, OTHER, "SELECT 'canary-7f3a' AS s")
    with TestClient(create_app(settings)) as client:
        admin = bearer(admin_token(client))
        swarm = create_swarm(client, admin, [KEY])["id"]
        yield World(client, settings, bearer(mint_token(client, admin, "agent", swarm)["token"]), admin)


def rows_of(body: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in body["rows"]]


def test_answer_describes_the_sample(world: World) -> None:
    body = world.ok(method="random", size=50, seed=7)
    manifest = read_current(world.settings.served_path, KEY)
    assert manifest is not None
    assert body["table"] == KEY
    assert (body["method"], body["sampling"], body["seed"], body["size"]) == ("random", "reservoir", 7, 50)
    assert (body["served_version"], body["table_row_count"]) == (manifest.version, ROWS)
    assert body["synced_at"] == manifest.published_at
    assert [c["name"] for c in body["columns"]] == ["id", "bucket", "color", "created_at", "amount", "note"]
    assert (body["row_count"], body["truncated"]) == (50, False)


def test_head_is_the_first_rows(world: World) -> None:
    body = world.ok(method="head", size=25, columns="id,color")
    assert rows_of(body) == world.reference("SELECT id, color FROM data LIMIT 25")
    assert body["seed"] is None


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**31 - 1])
def test_reservoir_matches_duckdb_and_repeats(world: World, seed: int) -> None:
    first = world.ok(method="random", size=100, seed=seed, columns="id,bucket")
    again = world.ok(method="random", size=100, seed=seed, columns="id,bucket")
    assert rows_of(first) == rows_of(again)
    expected = world.reference(f"SELECT id, bucket FROM data USING SAMPLE reservoir(100 ROWS) REPEATABLE ({seed})")
    assert sorted(rows_of(first)) == sorted(expected)
    assert len({r[0] for r in rows_of(first)}) == 100


def test_different_seeds_give_different_rows(world: World) -> None:
    a = {r[0] for r in rows_of(world.ok(method="random", size=100, seed=1, columns="id"))}
    b = {r[0] for r in rows_of(world.ok(method="random", size=100, seed=2, columns="id"))}
    assert a != b


def test_without_seed_one_is_chosen_and_reported(world: World) -> None:
    body = world.ok(method="random", size=10, columns="id")
    assert isinstance(body["seed"], int)
    again = world.ok(method="random", size=10, columns="id", seed=body["seed"])
    assert sorted(rows_of(again)) == sorted(rows_of(body))


def test_bernoulli_fraction_matches_duckdb(world: World) -> None:
    body = world.ok(method="random", fraction=0.05, seed=99, columns="id")
    assert (body["sampling"], body["fraction"], body["size"]) == ("bernoulli", 0.05, None)
    expected = world.reference("SELECT id FROM data USING SAMPLE bernoulli(5.0 PERCENT) REPEATABLE (99)")
    assert sorted(rows_of(body)) == sorted(expected)
    assert 0.035 * ROWS < body["row_count"] < 0.065 * ROWS


def test_filter_applies_before_sampling(world: World) -> None:
    body = world.ok(method="random", size=200, seed=3, where="color = 'blue' AND bucket < 3", columns="id,color,bucket")
    assert body["where"] == "color = 'blue' AND bucket < 3"
    assert body["row_count"] == 200
    assert all(r[1] == "blue" and r[2] < 3 for r in rows_of(body))
    expected = world.reference("SELECT id, color, bucket FROM (SELECT id, color, bucket FROM data "
                               "WHERE color = 'blue' AND bucket < 3) USING SAMPLE reservoir(200 ROWS) REPEATABLE (3)")
    assert sorted(rows_of(body)) == sorted(expected)


@pytest.mark.parametrize(("where", "rule"), [
    ("id IN (SELECT s FROM demo.public.secret)", "statement_not_allowed"),
    ("EXISTS (SELECT 1)", "statement_not_allowed"),
    ("length(read_text('/etc/passwd')) > 0", "function_not_allowed"),
    ("1=1; DROP TABLE data", None),
    ("id > ?", "statement_not_allowed"),
])
def test_filters_go_through_the_guard(world: World, where: str, rule: str | None) -> None:
    err = assert_error(world.sample(method="head", size=5, where=where), 400)
    if rule:
        assert err["rule"] == rule
    assert "canary-7f3a" not in str(err)


def test_stratified_per_value(world: World) -> None:
    body = world.ok(method="stratified", by="color", size=4, seed=5, columns="id,color")
    counts = Counter(r[1] for r in rows_of(body))
    assert counts == dict.fromkeys(["blue", "green", "red"], 4)
    assert body["by"] == "color"
    ids = {r[0] for r in rows_of(body)}
    assert ids == {r[0] for r in rows_of(world.ok(method="stratified", by="color", size=4, seed=5, columns="id,color"))}
    assert all(world.reference(f"SELECT color FROM data WHERE id = {i}")[0][0] in counts for i in ids)
    per_bucket = Counter(r[1] for r in rows_of(world.ok(method="stratified", by="bucket", size=2, columns="id,bucket")))
    assert per_bucket == dict.fromkeys(range(7), 2)


def test_stratified_counts_match_duckdb(world: World) -> None:
    """Per value: min(size, rows of that value after the filter), as counted by plain DuckDB; each row is real."""
    where = "id < 100 OR (bucket = 6 AND id < 300)"
    body = world.ok(method="stratified", by="bucket", size=20, seed=8, where=where, columns="id,bucket,color,amount")
    expected = {b: min(20, n) for b, n in world.reference(f"SELECT bucket, count(*) FROM data WHERE {where} GROUP BY 1")}
    assert Counter(r[1] for r in rows_of(body)) == expected
    assert body["row_count"] == sum(expected.values())
    ids = [r[0] for r in rows_of(body)]
    assert len(set(ids)) == len(ids)
    truth = {r[0]: r for r in world.reference(
        f"SELECT id, bucket, color, amount FROM data WHERE id IN ({', '.join(map(str, ids))}) AND ({where})")}
    assert {r[0]: r for r in rows_of(body)} == truth
    assert [r[1] for r in rows_of(body)] == sorted(r[1] for r in rows_of(body))  # grouped by value


def test_row_count_is_the_tables(world: World) -> None:
    for params in ({"method": "head", "size": 1}, {"method": "random", "fraction": 0.01, "seed": 1}):
        body = world.ok(**params)
        assert body["table_row_count"] == world.reference("SELECT count(*) FROM data")[0][0]


def test_recent_uses_the_registered_cursor(world: World) -> None:
    assert_error(world.sample(method="recent", size=5), 400, rule="no_recency_column")
    save(world.settings.control_url, RegisteredTable(database="DEMO", schema="PUBLIC", table="EVENTS",
                                                     strategy="incremental", cursor_column="created_at"))
    body = world.ok(method="recent", size=5, columns="id,created_at")
    assert body["by"] == "created_at"
    assert [r[0] for r in rows_of(body)] == [r[0] for r in world.reference(
        "SELECT id FROM data ORDER BY created_at DESC LIMIT 5")]
    by_amount = world.ok(method="recent", size=3, by="amount", columns="id")
    assert [r[0] for r in rows_of(by_amount)] == [ROWS - 1, ROWS - 2, ROWS - 3]
    # A selective filter defeats the zone-map cutoff: the answer must still be the exact newest rows.
    filtered = world.ok(method="recent", size=5, where="bucket = 3 AND id < 5000", columns="id")
    assert [r[0] for r in rows_of(filtered)] == [r[0] for r in world.reference(
        "SELECT id FROM data WHERE bucket = 3 AND id < 5000 ORDER BY created_at DESC LIMIT 5")]
    by_text = world.ok(method="recent", size=4, by="note", columns="note")  # no cutoff for text; NULLs last
    assert [r[0] for r in rows_of(by_text)] == [r[0] for r in world.reference(
        "SELECT note FROM data ORDER BY note DESC NULLS LAST LIMIT 4")]


@pytest.mark.parametrize("fmt", ["csv", "parquet", "arrow", "CSV"])
def test_file_formats_hold_the_same_sample(world: World, fmt: str) -> None:
    as_json = world.ok(method="random", size=30, seed=11, columns="id,color")
    r = world.sample(method="random", size=30, seed=11, columns="id,color", format=fmt)
    assert r.status_code == 200, r.text
    assert (r.headers["x-sample-method"], r.headers["x-sample-seed"]) == ("random", "11")
    assert r.headers["x-served-version"] == as_json["served_version"]
    assert (r.headers["x-table-row-count"], r.headers["x-row-count"]) == (str(ROWS), "30")
    data = r.content
    if fmt.lower() == "csv":
        table = pacsv.read_csv(io.BytesIO(data))
    elif fmt == "parquet":
        table = pq.read_table(io.BytesIO(data))
    else:
        table = ipc.open_stream(data).read_all()
    got = sorted(zip(table.column("id").to_pylist(), table.column("color").to_pylist(), strict=True))
    assert got == sorted(rows_of(as_json))


@pytest.mark.parametrize(("params", "status", "rule"), [
    ({"method": "random", "size": 10, "fraction": 0.1}, 400, "invalid_sample"),
    ({"method": "head", "fraction": 0.1}, 400, "invalid_sample"),
    ({"method": "stratified", "size": 2}, 400, "invalid_sample"),
    ({"method": "random", "size": 10, "columns": "id,nope"}, 400, "unknown_column"),
    ({"method": "stratified", "size": 2, "by": "nope"}, 400, "unknown_column"),
    ({"method": "random", "size": 10_001}, 400, "too_many_rows"),
    ({"method": "sideways"}, 400, None),
    ({"method": "random", "size": 0}, 400, None),
    ({"method": "random", "seed": -1}, 400, None),
    ({"method": "random", "format": "xml"}, 400, "invalid_format"),
])
def test_bad_requests(world: World, params: dict[str, Any], status: int, rule: str | None) -> None:
    assert_error(world.sample(**params), status, rule=rule)


def test_ungranted_table_is_not_found(world: World) -> None:
    hidden = world.sample(table="secret", method="head", size=1)
    missing = world.sample(table="no_such_table", method="head", size=1)
    assert_error(hidden, 404, rule="table_not_granted")
    assert hidden.json()["error"]["message"].replace("secret", "X") == \
        missing.json()["error"]["message"].replace("no_such_table", "X")
    assert "canary" not in hidden.text
    r = world.sample(table="demo.public.secret", method="head", size=1, headers=world.admin)
    assert r.status_code == 200
    assert r.json()["rows"] == [["canary-7f3a"]]


def test_large_fraction_is_truncated_at_the_row_cap(world: World) -> None:
    cap = world.settings.query.json_max_rows
    body = world.ok(method="random", fraction=1.0, seed=1, columns="id")
    assert (body["row_count"], body["truncated"]) == (min(cap, ROWS), cap < ROWS)


def test_new_version_is_reported(world: World) -> None:
    before = world.ok(method="head", size=1)["served_version"]
    manifest = publish_table(world.settings.served_path, KEY, SELECT + " WHERE i < 1000")
    body = world.ok(method="head", size=1)
    assert body["served_version"] == manifest.version != before
    assert body["table_row_count"] == 1000
