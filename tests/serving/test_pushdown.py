"""Queries pushed down to Snowflake, on the local stand-in through the real connector.

The API runs in process against a fakesnow server; copied tables are synced by the real
sync engine, so "the same query on the copy" is a real comparison. Covered: the legitimate
corpus transpiles and runs in Snowflake, the guard refuses exactly what it refuses for
DuckDB, results equal the copied table's in every output format with live provenance,
the catalog marks live tables with the source's figures, samples and profiles of live tables
run in Snowflake and cached, timeouts, the session limits and the per-swarm daily budget
(also reported in the budget headers).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import secrets
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.ipc
import pyarrow.parquet as pq
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from orchestration.sync.engine import SyncRequest, sync_table
from serving.lib.caller import Caller
from serving.lib.errors import QueryRejected
from serving.queries.engine import QueryEngine
from serving.queries.guard import check_sql
from shared import demo, registry
from shared.control.db import migrate
from shared.settings import Settings
from shared.snowflake import connect
from tests.fuzz.make_legit_queries import read
from tests.serving.helpers import assert_error

SMALL = {"ORDERS": 3_650, "CUSTOMERS": 300, "PRODUCTS": 40, "EVENTS": 500}
TODAY = dt.date(2025, 12, 1)
COPIED = ("ORDERS", "CUSTOMERS", "PRODUCTS", "EVENTS")


@pytest.fixture(scope="module")
def source_db(fakesnow_port: int) -> str:
    """A demo database on the shared stand-in, plus ORDERS_LIVE: the same rows as ORDERS."""
    db = "PD_" + secrets.token_hex(3).upper()
    env = {
        "SNOWFLAKE_HOST": "127.0.0.1",
        "SNOWFLAKE_PORT": str(fakesnow_port),
        "SNOWFLAKE_PROTOCOL": "http",
        "SNOWFLAKE_NETWORK_TIMEOUT_S": "20",
    }
    settings = Settings.from_env(env)
    demo.seed_demo(settings, database=db, rows=SMALL, today=TODAY)
    with connect(dataclasses.replace(settings.snowflake, database=db)) as con:
        con.cursor().execute(f"CREATE TABLE {db}.PUBLIC.ORDERS_LIVE AS SELECT * FROM {db}.PUBLIC.ORDERS")
    return db


@pytest.fixture
def api_settings(settings: Settings, source_db: str) -> Settings:
    return dataclasses.replace(settings, snowflake=dataclasses.replace(settings.snowflake, database=source_db))


@pytest.fixture
def world(api_settings: Settings, source_db: str) -> dict[str, str]:
    """Four copied tables (synced by the real engine) and one live table; returns keys by name."""
    migrate(api_settings.control_url)
    keys = {}
    for name in COPIED:
        reg = registry.build_registration({"schema_name": "PUBLIC", "table_name": name}, default_database=source_db)
        registry.save(api_settings.control_url, reg)
        sync_table(SyncRequest(table=reg, connect=lambda: connect(api_settings.snowflake), served_root=api_settings.served_path))
        keys[name.lower()] = reg.key
    live = registry.build_registration(
        {"schema_name": "PUBLIC", "table_name": "ORDERS_LIVE", "live": True}, default_database=source_db
    )
    registry.save(api_settings.control_url, live)
    keys["orders_live"] = live.key
    return keys


@pytest.fixture
def agent(
    client: TestClient[Litestar],
    make_swarm: Callable[..., dict[str, Any]],
    agent_headers: Callable[..., dict[str, str]],
    world: dict[str, str],
) -> dict[str, str]:
    swarm = make_swarm(list(world.values()))
    return agent_headers(swarm["id"])


def _run(client: TestClient[Litestar], headers: dict[str, str], query: str, **body: Any) -> Any:
    """One query; it waits for its answer (``wait_s`` 60 unless given): these tests compare answers,
    and on a loaded machine the stand-in can take longer than the default wait, which answers 202."""
    return client.post("/api/v1/queries/execute", headers=headers, json={"query": query, "wait_s": 60, **body})


def _norm(value: Any) -> Any:
    """Values compared across engines: numbers by value (the stand-in's sum of decimals is a double)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float | Decimal):
        return round(float(value), 6)
    if isinstance(value, str):
        try:
            return round(float(value), 6)
        except ValueError:
            return value
    return value


def _rows(rows: list[Any]) -> list[tuple[Any, ...]]:
    return [tuple(_norm(v) for v in row) for row in rows]


EQUAL_QUERIES = [
    "SELECT status, count(*) AS n, sum(quantity) AS units FROM {t} GROUP BY status ORDER BY status",
    "SELECT order_id, customer_id, amount, currency FROM {t} WHERE amount > 900 ORDER BY order_id LIMIT 20",
    "SELECT count(*) AS n, min(order_id) AS lo, max(order_id) AS hi, count(DISTINCT customer_id) AS c FROM {t}",
    "SELECT channel, round(avg(amount), 2) AS avg_amount FROM {t} WHERE channel IN ('web', 'app') GROUP BY 1 ORDER BY 1",
    "WITH big AS (SELECT customer_id, count(*) AS n FROM {t} GROUP BY 1) SELECT n, count(*) FROM big GROUP BY n ORDER BY n",
    "SELECT order_id, row_number() OVER (PARTITION BY customer_id ORDER BY order_id) AS rn FROM {t} "
    "WHERE order_id < (SELECT min(order_id) + 300 FROM {t}) ORDER BY order_id",
]


@pytest.mark.parametrize("query", EQUAL_QUERIES)
def test_results_in_snowflake_equal_the_copied_tables(client: TestClient[Litestar], agent: dict[str, str], query: str) -> None:
    copied = _run(client, agent, query.format(t="orders"))
    assert copied.status_code == 200, copied.text
    pushed = _run(client, agent, query.format(t="orders"), engine="snowflake")
    live = _run(client, agent, query.format(t="orders_live"))
    for answer in (pushed, live):
        assert answer.status_code == 200, answer.text
        assert _rows(answer.json()["rows"]) == _rows(copied.json()["rows"])
        assert answer.json()["columns"][0]["name"].lower() == copied.json()["columns"][0]["name"].lower()
    assert copied.json()["rows"], "the comparison needs rows"
    tables = {t["table"]: t for t in live.json()["tables"]}
    live_read = next(t for k, t in tables.items() if k.endswith("orders_live"))
    assert live_read["version"] == "live"
    assert live_read["source_query_id"]
    assert all(t["version"] == "live" for t in pushed.json()["tables"])


JOIN_QUERY = ("SELECT o.order_id, c.country FROM {t} o JOIN customers c ON c.customer_id = o.customer_id "
              "ORDER BY o.order_id LIMIT 40")


def test_pushdown_is_refused_where_masking_applies_until_the_admin_unmasks(
    client: TestClient[Litestar], make_swarm: Callable[..., dict[str, Any]],
    agent_headers: Callable[..., dict[str, str]], admin_headers: dict[str, str], world: dict[str, str],
) -> None:
    """Snowflake answers raw values, so a query whose caller reads a table masked (the demo
    customers' personal columns, hashed by default) never runs there: 403 policy_not_pushable,
    for a copied table asked for with engine=snowflake. Once the admin unmasks the personal
    columns for the swarm, the same query runs in Snowflake and equals the copy's answer."""
    swarm = make_swarm(list(world.values()))
    agent = agent_headers(swarm["id"])
    refused = _run(client, agent, JOIN_QUERY.format(t="orders"), engine="snowflake")
    assert_error(refused, 403, rule="policy_not_pushable")
    verdicts = client.get(f"/api/v1/admin/classifications/{world['customers']}", headers=admin_headers)
    assert verdicts.status_code == 200, verdicts.text
    personal = [c["name"] for c in verdicts.json()["columns"] if c["personal"]]
    assert personal, "the demo customers have personal columns"
    for column in personal:
        r = client.post(f"/api/v1/admin/swarms/{swarm['id']}/unmasked", headers=admin_headers,
                        json={"table": world["customers"], "column": column, "reason": "pushdown test"})
        assert r.status_code in (200, 201), r.text
    copied = _run(client, agent, JOIN_QUERY.format(t="orders"))
    pushed = _run(client, agent, JOIN_QUERY.format(t="orders"), engine="snowflake")
    assert copied.status_code == 200, copied.text
    assert pushed.status_code == 200, pushed.text
    assert copied.json()["rows"]
    assert _rows(pushed.json()["rows"]) == _rows(copied.json()["rows"])


@pytest.mark.parametrize("fmt", ["csv", "parquet", "arrow"])
def test_every_output_format_of_a_live_query(client: TestClient[Litestar], agent: dict[str, str], fmt: str) -> None:
    query = "SELECT order_id, amount, status FROM {t} WHERE order_id <= 25 ORDER BY order_id"
    files = []
    for table, extra in (("orders", {}), ("orders_live", {})):
        answer = _run(client, agent, query.format(t=table), output_format=fmt, wait_s=30, **extra)
        assert answer.status_code == 200, answer.text
        job = answer.json()
        assert job["row_count"] == 25
        assert ("live" in {t["version"] for t in job["tables"]}) == (table == "orders_live")
        result = client.get(job["result_url"], headers=agent)
        assert result.status_code == 200
        files.append(result.content)
    if fmt == "csv":
        assert [_rows([line.split(",")]) for line in files[0].decode().splitlines()[1:]] == [
            _rows([line.split(",")]) for line in files[1].decode().splitlines()[1:]
        ]
        return
    tables = [pq.read_table(io.BytesIO(f)) if fmt == "parquet" else pa.ipc.open_stream(f).read_all() for f in files]
    assert _rows([tuple(r.values()) for r in tables[0].to_pylist()]) == _rows([tuple(r.values()) for r in tables[1].to_pylist()])


def test_the_catalog_lists_live_tables_with_source_figures(
    client: TestClient[Litestar], agent: dict[str, str], world: dict[str, str]
) -> None:
    listed = client.get("/api/v1/data/tables", headers=agent)
    assert listed.status_code == 200, listed.text
    by_key = {t["key"]: t for t in listed.json()["tables"]}
    live = by_key[world["orders_live"]]
    assert (live["live"], live["freshness"]["status"], live["strategy"]) == (True, "live", "live")
    assert live["row_count"] == SMALL["ORDERS"]
    assert {c["name"] for c in live["columns"]} >= {"ORDER_ID", "AMOUNT", "STATUS"}
    assert live["served_version"] is None
    copied = by_key[world["orders"]]
    assert (copied["live"], copied["source_kind"]) == (False, "snowflake")


def test_engine_choices_are_checked(client: TestClient[Litestar], agent: dict[str, str]) -> None:
    assert_error(_run(client, agent, "SELECT count(*) FROM orders_live", engine="duckdb"), 400, rule="engine_not_available")
    assert_error(_run(client, agent, "SELECT 1", engine="oracle"), 400, rule="invalid_engine")
    assert_error(_run(client, agent, "DESCRIBE orders_live"), 400, rule="statement_not_allowed")
    sampled = _run(client, agent, "SELECT order_id FROM orders_live USING SAMPLE 7 ROWS")
    assert sampled.status_code == 200, sampled.text
    assert sampled.json()["row_count"] == 7
    assert_error(client.post("/api/v1/data/tables/orders_live/refresh", headers=agent), 400, rule="live_table")
    fresh = _run(client, agent, "SELECT count(*) FROM orders_live", min_freshness=1)
    assert fresh.status_code == 200, fresh.text  # a live read is as fresh as it gets: no refresh is asked
    assert_error(
        _run(client, agent, "SELECT count(*) FROM orders WHERE order_id > $n", params={"n": 1}, engine="snowflake"),
        400,
        rule="invalid_params",
    )
    bound = _run(
        client, agent, "SELECT count(*) AS n FROM orders_live WHERE order_id > ? AND status = ?", params=[100, "shipped"]
    )
    assert bound.status_code == 200, bound.text
    copied = _run(client, agent, "SELECT count(*) AS n FROM orders WHERE order_id > ? AND status = ?", params=[100, "shipped"])
    assert _rows(bound.json()["rows"]) == _rows(copied.json()["rows"])


REFUSED = [
    "SELECT * FROM secret_table",
    "SELECT * FROM orders; SELECT 1",
    "DROP TABLE orders",
    "SELECT * FROM read_csv('/etc/passwd')",
    "COPY (SELECT 1) TO '/tmp/x.csv'",
    "PRAGMA database_list",
    "SELECT * FROM query_table('orders')",
    "SELECT getenv('HOME')",
    "WITH orders AS (SELECT 1 AS x) SELECT * FROM (SELECT * FROM orders) t, information_schema.tables",
    "ATTACH 'x.db' AS x",
    "SELECT * FROM demo.public.orders_other",
]


def _sample(client: TestClient[Litestar], headers: dict[str, str], table: str = "orders_live", **params: Any) -> Any:
    return client.get(f"/api/v1/data/tables/{table}/sample", headers=headers, params=params)


def _policies(header: str) -> dict[str, str]:
    """``"name";k=v;…`` items of a RateLimit header, by name."""
    return {item.split(";", 1)[0].strip().strip('"'): item.split(";", 1)[1] for item in header.split(", ")}


def test_samples_of_a_live_table_run_in_snowflake_and_are_cached(
    client: TestClient[Litestar], agent: dict[str, str], admin_headers: dict[str, str], world: dict[str, str],
    flush_audit: Callable[[], None],
) -> None:
    first = _sample(client, agent, method="random", size=7)
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["served_version"], body["sampling"], body["seed"], body["row_count"]) == ("live", "rows", None, 7)
    assert body["table_row_count"] == SMALL["ORDERS"]
    assert body["source_query_id"] == first.headers["x-source-query-id"]
    assert "age" not in first.headers
    assert '"swarm-snowflake-seconds";q=3600;w=86400;qu="seconds"' in first.headers["ratelimit-policy"]
    again = _sample(client, agent, method="random", size=7)  # within LIVE_SAMPLE_TTL_S: from the cache
    assert again.status_code == 200, again.text
    assert int(again.headers["age"]) >= 0
    assert again.json()["rows"] == body["rows"]
    assert again.json()["source_query_id"] == body["source_query_id"]

    seeded = [_sample(client, agent, method="random", fraction=0.2, seed=11, where="amount > 500", columns="order_id,amount")]
    assert seeded[0].status_code == 200, seeded[0].text
    assert (seeded[0].json()["sampling"], seeded[0].json()["seed"]) == ("bernoulli", 11)
    rows = seeded[0].json()["rows"]
    assert rows
    assert all(float(amount) > 500 for _, amount in rows)
    assert [c["name"] for c in seeded[0].json()["columns"]] == ["ORDER_ID", "AMOUNT"]

    per_status = _sample(client, agent, method="stratified", by="status", size=2, seed=5)
    assert per_status.status_code == 200, per_status.text
    statuses = Counter(r[[c["name"] for c in per_status.json()["columns"]].index("STATUS")] for r in per_status.json()["rows"])
    copied = _run(client, agent, "SELECT DISTINCT status FROM orders")
    assert set(statuses) == {r[0] for r in copied.json()["rows"]}
    assert max(statuses.values()) == 2

    recent = _sample(client, agent, method="recent", by="order_id", size=5, columns="order_id")
    newest = _run(client, agent, "SELECT order_id FROM orders ORDER BY order_id DESC LIMIT 5")
    assert _rows(recent.json()["rows"]) == _rows(newest.json()["rows"])
    head = _sample(client, agent, method="head", size=3, format="parquet")
    assert head.status_code == 200, head.text
    assert pq.read_table(io.BytesIO(head.content)).num_rows == 3
    assert head.headers["x-served-version"] == "live"

    flush_audit()
    audit = client.get("/api/v1/admin/audit", headers=admin_headers, params={"table": world["orders_live"]})
    assert audit.status_code == 200, audit.text
    sampled = [i for i in audit.json()["items"] if i["endpoint"].endswith("/sample") and i["status_code"] == 200]
    assert sampled
    assert all(i["tables"][0]["version"] == "live" and i["tables"][0]["source_query_id"] for i in sampled)


def test_a_live_tables_profile_runs_in_snowflake_and_is_cached(client: TestClient[Litestar], agent: dict[str, str]) -> None:
    first = client.get("/api/v1/data/tables/orders_live/profile", headers=agent)
    assert first.status_code == 200, first.text
    live = first.json()
    assert (live["served_version"], live["cached"], live["scans"], live["row_count"]) == ("live", False, 1, SMALL["ORDERS"])
    assert "swarm-snowflake-seconds" in first.headers["ratelimit-policy"]
    copy = client.get("/api/v1/data/tables/orders/profile", headers=agent).json()
    by_name = {c["name"].lower(): c for c in live["columns"]}
    for c in copy["columns"]:
        mine = by_name[c["name"].lower()]
        assert (mine["null_count"], _norm(mine.get("min")), _norm(mine.get("max"))) == (
            c["null_count"], _norm(c.get("min")), _norm(c.get("max"))), c["name"]
    assert by_name["amount"]["quantiles"]["p50"] is not None
    assert by_name["status"]["top_k"] is None
    assert by_name["status"]["top_k_note"]
    again = client.get("/api/v1/data/tables/orders_live/profile", headers=agent)
    assert again.json()["cached"] is True
    sampled = client.get("/api/v1/data/tables/orders_live/profile", headers=agent, params={"sample": 50, "seed": 3})
    assert sampled.status_code == 200, sampled.text
    assert (sampled.json()["row_count"], sampled.json()["sampled"], sampled.json()["seed"]) == (50, True, None)


def test_samples_of_a_live_table_follow_masking(
    client: TestClient[Litestar], make_swarm: Callable[..., dict[str, Any]], agent_headers: Callable[..., dict[str, str]],
    api_settings: Settings, source_db: str,
) -> None:
    """Personal columns of a live table are masked by default, which only a copy enforces: its
    samples and profiles are refused like its queries (403 policy_not_pushable)."""
    with connect(api_settings.snowflake) as con:
        con.cursor().execute(f"CREATE TABLE IF NOT EXISTS {source_db}.PUBLIC.CUSTOMERS_LIVE AS "
                             f"SELECT * FROM {source_db}.PUBLIC.CUSTOMERS")
    reg = registry.build_registration({"schema_name": "PUBLIC", "table_name": "CUSTOMERS_LIVE", "live": True},
                                      default_database=source_db)
    registry.save(api_settings.control_url, reg)
    agent = agent_headers(make_swarm([reg.key])["id"])
    assert_error(_sample(client, agent, "customers_live", method="head", size=2), 403, rule="policy_not_pushable")
    assert_error(client.get("/api/v1/data/tables/customers_live/profile", headers=agent), 403, rule="policy_not_pushable")


def test_pushed_down_answers_report_the_swarms_snowflake_seconds(
    client: TestClient[Litestar], agent: dict[str, str]
) -> None:
    copied = _run(client, agent, "SELECT count(*) FROM orders")
    assert "swarm-snowflake-seconds" not in copied.headers["ratelimit-policy"]  # DuckDB answers do not
    before = _run(client, agent, "SELECT count(*) FROM orders_live")
    after = _run(client, agent, "SELECT count(*) FROM orders", engine="snowflake")
    for answer in (before, after):
        assert answer.status_code == 200, answer.text
        assert _policies(answer.headers["ratelimit-policy"])["swarm-snowflake-seconds"] == 'q=3600;w=86400;qu="seconds"'
    left = [int(_policies(a.headers["ratelimit"])["swarm-snowflake-seconds"].split(";")[0][2:]) for a in (before, after)]
    assert 3600 >= left[0] >= left[1] >= 3500  # spent seconds are counted down


def test_the_guard_refuses_the_same_queries_for_snowflake(api_settings: Settings, world: dict[str, str]) -> None:
    engine = QueryEngine(api_settings)
    caller = Caller(
        "agent",
        "agent-1",
        token_id="t1",  # noqa: S106 - an id
        swarm_id="s1",
        grants=frozenset(world.values()),
    )
    try:
        for sql in REFUSED:
            with pytest.raises(QueryRejected) as duck:
                check_sql(sql, caller.grants)
            with pytest.raises(QueryRejected) as pushed:
                engine.execute(caller, sql, engine="snowflake")
            assert pushed.value.rule == duck.value.rule, sql
    finally:
        engine.close()


def test_the_legitimate_corpus_transpiles_and_runs_in_snowflake(api_settings: Settings, world: dict[str, str]) -> None:
    """Every legitimate query the guard accepts transpiles (DESCRIBE/SUMMARIZE stay on copies); one in 25,
    spread over the corpus, also runs on the stand-in through the connector (all of them: 97.6% ran)."""
    engine = QueryEngine(api_settings)
    grants = frozenset(world[n] for n in ("orders", "customers", "products", "events"))
    outcome: Counter[str] = Counter()
    failures = []
    try:
        con_cm = connect(api_settings.snowflake)
        con = con_cm.__enter__()
        cur = con.cursor()
        for i, sql in enumerate(read()):
            try:
                guarded = check_sql(sql, grants)
            except QueryRejected:
                continue
            if guarded.kind != "select":  # DESCRIBE / SUMMARIZE describe copies; the guard says so
                with pytest.raises(QueryRejected) as refused:
                    engine.pushdown.transpile(sql, grants)
                assert refused.value.rule == "statement_not_allowed"
                outcome[f"refused:{refused.value.rule}"] += 1
                continue
            text, _ = engine.pushdown.transpile(sql, grants)
            outcome["transpiled"] += 1
            assert '"PUBLIC"' in text
            if i % 25:
                continue
            try:
                cur.execute(text)
                cur.fetchall()
                outcome["ran"] += 1
            except Exception as e:  # the stand-in's own gaps (ORDER BY ALL, generators) count against the rate
                failures.append(f"{sql}\n  -> {text}\n  !! {str(e).splitlines()[0][:160]}")
        con_cm.__exit__(None, None, None)
    finally:
        engine.close()
    print(dict(outcome), *failures, sep="\n")
    assert outcome["transpiled"] >= 1_100
    sampled = outcome["ran"] + len(failures)
    assert sampled >= 40
    assert outcome["ran"] / sampled >= 0.95, "\n".join(failures)


def test_session_limits_name_the_agent_and_bound_the_statement(api_settings: Settings, world: dict[str, str]) -> None:
    settings = dataclasses.replace(
        api_settings, sources=dataclasses.replace(api_settings.sources, live_warehouse="AGENTS_LIVE_WH")
    )
    engine = QueryEngine(settings)
    try:
        caller = Caller(
            "agent",
            "agent-7",
            token_id="t7",  # noqa: S106 - an id
            swarm_id="swarm-9",
            grants=frozenset(world.values()),
        )
        args = engine.pushdown.session_args(caller, 2.5)
        params = args["session_parameters"]
        assert params["STATEMENT_TIMEOUT_IN_SECONDS"] == 3
        assert "agent=agent-7" in params["QUERY_TAG"]
        assert "swarm=swarm-9" in params["QUERY_TAG"]
        assert args["warehouse"] == "AGENTS_LIVE_WH"
    finally:
        engine.close()


def test_the_daily_budget_stops_a_swarms_snowflake_queries(
    client: TestClient[Litestar], agent: dict[str, str], services: Any, api_settings: Settings
) -> None:
    first = _run(client, agent, "SELECT count(*) FROM orders_live")
    assert first.status_code == 200, first.text
    tight = dataclasses.replace(api_settings, sources=dataclasses.replace(api_settings.sources, live_daily_budget_s=0.001))
    engine = services.parts["query_engine"]
    engine.pushdown.settings = tight
    refused = _run(client, agent, "SELECT count(*) FROM orders_live")
    body = assert_error(refused, 429, rule="live_budget")
    assert body["details"]["used_s"] > 0
    assert _policies(refused.headers["ratelimit"])["swarm-snowflake-seconds"].startswith("r=0;")
    assert int(refused.headers["Retry-After"]) > 0
    assert _run(client, agent, "SELECT count(*) FROM orders").status_code == 200  # copies are not affected


def test_a_slow_query_stops_at_its_time_limit(client: TestClient[Litestar], agent: dict[str, str]) -> None:
    # About 10^8 hashed rows: a few seconds on the stand-in, which runs it to the end after the API
    # stops waiting (it ignores the statement timeout), so this test comes last in the module.
    slow = (
        "SELECT count(*) FROM orders_live a, orders_live b, products c "
        "WHERE c.product_id <= 40 AND (a.order_id * 7919 + b.order_id * 104729 + c.product_id * 31) % 1000003 = 7"
    )
    t0 = time.monotonic()
    answer = _run(client, agent, slow, timeout_s=1)
    assert_error(answer, 408, rule="timeout")
    assert time.monotonic() - t0 < 4
