"""Samples and profiles of live tables, without a source: the SQL each method writes and what it
transpiles to for Snowflake, the aggregates-only profile, the TTL cache, the live budget in the
budget headers and its status. The same paths through the stand-in: ``test_pushdown.py``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import types
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot

from serving.lib.budgets import DAY, Budgets, Reported, Snapshot
from serving.lib.caller import Caller
from serving.queries import budget
from serving.queries.pushdown import Pushdown, duck_type
from serving.sampling.services import SampleRequest, live_plan
from serving.sampling.ttl import TtlCache
from serving.tables.platform import FILTER_GUARD
from shared.control.db import migrate
from shared.profile import ColumnSpec, compute_profile, connection_runner
from shared.served import Column, Manifest
from shared.settings import Settings

KEY = "db.sch.events"


@dataclasses.dataclass
class _Reg:
    database: str = "DB"
    schema: str = "SCH"
    table: str = "Events"
    from_files: bool = False
    source_kind: str = "snowflake"


def _pushdown() -> Pushdown:
    pd = Pushdown.__new__(Pushdown)
    pd.registrations = lambda: {KEY: _Reg()}  # type: ignore[method-assign,dict-item]
    return pd


def _manifest() -> Manifest:
    cols = [Column("ID", "DECIMAL(38,0)"), Column("KIND", "VARCHAR"), Column("AT", "TIMESTAMP")]
    return Manifest(table_key=KEY, version="live", file="", published_at="2026-01-01T00:00:00+00:00", strategy="live",
                    row_count=100, bytes=0, columns=cols)


def _services() -> Any:
    return types.SimpleNamespace(parts={FILTER_GUARD: lambda where, caller: where})


def _plan(**req: Any) -> Any:
    base: dict[str, Any] = {"method": "random", "size": 10, "fraction": None, "seed": None, "columns": None,
                            "where": None, "by": None, "fmt": "json"}
    caller = Caller("agent", "a1", swarm_id="s1", grants=frozenset({KEY}))
    return live_plan(_services(), caller, KEY, _manifest(), SampleRequest(**(base | req)))


def _snowflake(sql: str) -> str:
    return _pushdown().transpile_trusted(sql, frozenset({KEY}))


def test_a_sized_random_sample_is_snowflakes_row_sample_without_a_seed() -> None:
    plan = _plan(size=10, seed=5)
    assert (plan.sampling, plan.seed) == ("rows", None)  # Snowflake takes no seed for a fixed row count
    assert _snowflake(plan.sql) == 'SELECT "ID", "KIND", "AT" FROM "DB"."SCH"."Events" AS s TABLESAMPLE (10 ROWS)'
    filtered = _snowflake(_plan(size=3, where="\"KIND\" = 'a'").sql)
    assert filtered == ('SELECT "ID", "KIND", "AT" FROM (SELECT "ID", "KIND", "AT" FROM "DB"."SCH"."Events" '
                        "WHERE \"KIND\" = 'a') AS s TABLESAMPLE (3 ROWS)")


def test_a_fraction_is_a_seeded_bernoulli_sample_of_the_table_then_the_filter() -> None:
    plan = _plan(size=None, fraction=0.25, seed=7, where="\"ID\" > 3", columns=["kind"])
    assert (plan.sampling, plan.seed) == ("bernoulli", 7)
    assert _snowflake(plan.sql) == ('SELECT "KIND" FROM "DB"."SCH"."Events" AS s TABLESAMPLE BERNOULLI (25.0) SEED (7) '
                                    'WHERE "ID" > 3')


def test_stratified_head_and_recent_transpile() -> None:
    strat = _plan(method="stratified", size=2, by="kind", seed=3)
    assert (strat.sampling, strat.by) == ("per_value", "KIND")
    assert _snowflake(strat.sql) == ('SELECT "ID", "KIND", "AT" FROM "DB"."SCH"."Events" QUALIFY ROW_NUMBER() OVER '
                                     '(PARTITION BY "KIND" ORDER BY HASH("ID", "KIND", "AT", 3)) <= 2 ORDER BY "KIND"')
    assert _snowflake(_plan(method="head", size=4).sql) == 'SELECT "ID", "KIND", "AT" FROM "DB"."SCH"."Events" LIMIT 4'
    recent = _plan(method="recent", size=5, by="at")
    assert _snowflake(recent.sql).endswith('ORDER BY "AT" DESC NULLS LAST LIMIT 5')
    with pytest.raises(Exception, match="fraction applies"):
        _plan(method="head", size=None, fraction=0.5)


def test_server_sql_may_name_only_its_tables() -> None:
    with pytest.raises(Exception, match="cannot be read here"):
        _pushdown().transpile_trusted('SELECT * FROM "db"."sch"."other"', frozenset({KEY}))


def test_snowflake_types_map_to_duckdb_types() -> None:
    assert duck_type("NUMBER", 10, 2) == "DECIMAL(10,2)"
    assert duck_type("TEXT", None, None) == "VARCHAR"
    assert duck_type("TIMESTAMP_TZ", None, None) == "TIMESTAMP WITH TIME ZONE"
    assert duck_type("VARIANT", None, None) == "VARCHAR"


def test_an_aggregates_only_profile_runs_one_transpilable_scan() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT range AS n, 'w' || (range % 7) AS w, range % 2 = 0 AS b FROM range(1000)")
    cols = [ColumnSpec("n", "BIGINT"), ColumnSpec("w", "VARCHAR"), ColumnSpec("b", "BOOLEAN")]
    seen: list[str] = []
    runner = connection_runner(con)

    def run(sql: str, params: Any) -> Any:
        seen.append(sql)
        return runner(sql, params)

    live = compute_profile(run, "t", cols, aggregates_only=True)
    copy = compute_profile(connection_runner(con), "t", cols)
    assert live["scans"] == 1
    assert len(seen) == 1
    assert "APPROX_PERCENTILE(CAST(\"n\" AS DOUBLE), 0.5)" in sqlglot.transpile(seen[0], read="duckdb",
                                                                                 write="snowflake")[0]
    by_name = {c["name"]: c for c in live["columns"]}
    full = {c["name"]: c for c in copy["columns"]}
    assert live["row_count"] == copy["row_count"] == 1000
    assert by_name["n"]["quantiles"] == full["n"]["quantiles"]
    assert (by_name["n"]["min"], by_name["n"]["max"], by_name["w"]["max_length"]) == (0, 999, 2)
    assert by_name["w"]["top_k"] is None
    assert "Snowflake" in by_name["w"]["top_k_note"]
    assert by_name["n"]["histogram"] is None
    assert full["n"]["histogram"] is not None


def test_the_ttl_cache_expires_and_is_bounded() -> None:
    now = [100.0]
    cache: TtlCache[str] = TtlCache(10, max_entries=2, clock=lambda: now[0])
    cache.put("a", "A")
    now[0] += 4
    assert cache.get("a") == ("A", 4.0)
    now[0] += 6
    assert cache.get("a") is None  # expired after ttl seconds
    cache.put("a", "A")
    cache.put("b", "B")
    cache.put("c", "C")
    assert (cache.get("a"), cache.get("c")) == (None, ("C", 0.0))  # the oldest went first
    cache.put("d", "D")  # "c" was read last, so "b" is the least recently used and leaves
    assert (cache.get("b"), cache.get("c"), cache.get("d")) == (None, ("C", 0.0), ("D", 0.0))
    forever: TtlCache[str] = TtlCache(None, clock=lambda: now[0])
    forever.put("a", "A")
    now[0] += 10**9
    assert forever.get("a") == ("A", 10**9)
    off: TtlCache[str] = TtlCache(0)
    off.put("a", "A")
    assert off.get("a") is None


def test_reported_limits_join_the_budget_headers() -> None:
    headers = dict(Budgets.headers(Budgets.__new__(Budgets), Snapshot([], {}, 0.0, reported={
        "swarm-snowflake-seconds": Reported(limit=60, window_s=DAY, unit="seconds", remaining=42, reset_s=900)})))
    assert headers[b"ratelimit-policy"] == b'"swarm-snowflake-seconds";q=60;w=86400;qu="seconds"'
    assert headers[b"ratelimit"] == b'"swarm-snowflake-seconds";r=42;t=900'


def test_the_live_budget_status_counts_the_swarms_seconds(tmp_path: Path) -> None:
    settings = Settings.from_env({"AGENTS_DATA_HOME": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}",
                                  "LIVE_DAILY_BUDGET_S": "100"})
    migrate(settings.control_url)
    agent = Caller("agent", "a1", token_id="t1", swarm_id="s1", grants=frozenset())  # noqa: S106 - an id
    assert budget.status(settings, Caller("admin", "admin", grants=frozenset())) is None
    budget.spend(settings, agent, 30.5)
    budget.spend(settings, agent, 10.0)
    got = budget.status(settings, agent)
    assert got is not None
    assert (got.limit, got.remaining, got.window_s, got.unit) == (100, 59, DAY, "seconds")
    midnight = dt.datetime.combine(dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1), dt.time(), dt.UTC)
    assert abs(got.reset_s - (midnight - dt.datetime.now(dt.UTC)).total_seconds()) <= 2


class _LiveEngine:
    """Runs the profile's SQL on DuckDB and reports each read as one of ``version``, counting the scans."""

    def __init__(self, version: str = "live") -> None:
        self.version = version
        self.con = duckdb.connect()
        self.con.execute('CREATE SCHEMA sch; CREATE TABLE sch.events AS SELECT range AS "ID" FROM range(10)')
        self.scans = 0

    def execute_platform_sql(self, caller: Caller, tables: Any, sql: str, **kw: Any) -> Any:
        from serving.lib.results import TableRead

        self.scans += 1
        rows = self.con.execute(sql.replace('"db".', ""), kw.get("params")).fetchall()
        return types.SimpleNamespace(rows=rows, tables=[TableRead(KEY, self.version, "now", "q-1")])


@pytest.mark.parametrize("ttl", [300, 0])
def test_a_live_profile_is_cached_for_its_ttl_and_never_on_disk(tmp_path: Path, ttl: int) -> None:
    from serving.sampling.profile import ProfileCache

    settings = Settings.from_env({"AGENTS_DATA_HOME": str(tmp_path), "LIVE_SAMPLE_TTL_S": str(ttl)})
    cache, engine = ProfileCache(settings), _LiveEngine()
    manifest = dataclasses.replace(_manifest(), columns=[Column("ID", "BIGINT")])
    caller = Caller("agent", "a1", swarm_id="s1", grants=frozenset({KEY}))
    answers = [cache.get_or_compute(engine, caller, KEY, manifest, [ColumnSpec("ID", "BIGINT")], all_columns=True,  # type: ignore[arg-type]
                                    sample_rows=None, seed=None, force=False) for _ in range(2)]
    assert answers[0][0]["row_count"] == 10
    assert [cached for _, cached in answers] == ([False, True] if ttl else [False, False])
    assert engine.scans == (1 if ttl else 2)
    assert not (tmp_path / "profiles").exists()


def test_a_live_profile_is_computed_again_once_its_ttl_has_passed(tmp_path: Path) -> None:
    from serving.sampling import profile

    now = [1000.0]
    cache = profile.ProfileCache(Settings.from_env({"AGENTS_DATA_HOME": str(tmp_path), "LIVE_SAMPLE_TTL_S": "60"}),
                                 clock=lambda: now[0])
    engines = {"live": _LiveEngine(), "v-1": _LiveEngine("v-1")}
    live = dataclasses.replace(_manifest(), columns=[Column("ID", "BIGINT")])
    served = dataclasses.replace(live, version="v-1", strategy="full")
    caller = Caller("agent", "a1", swarm_id="s1", grants=frozenset({KEY}))

    def ask(manifest: Manifest) -> bool:
        engine = engines[manifest.version]
        return cache.get_or_compute(engine, caller, KEY, manifest, [ColumnSpec("ID", "BIGINT")], all_columns=True,  # type: ignore[arg-type]
                                    sample_rows=None, seed=None, force=False)[1]

    assert ask(live) is False
    assert ask(served) is False
    once = {version: engine.scans for version, engine in engines.items()}
    now[0] += 59
    assert (ask(live), ask(served)) == (True, True)
    now[0] += 2
    assert ask(live) is False  # expired: Snowflake is asked again
    assert ask(served) is True  # a served version never changes: its profile does not expire
    now[0] += 10_000
    assert ask(served) is True
    assert {version: engine.scans for version, engine in engines.items()} == {"live": 2 * once["live"], "v-1": once["v-1"]}
