"""The connection layer on its own: grant-scoped instances, locked settings, time limits, binding.

These tests bypass the guard on purpose where it matters: even SQL the guard would
refuse cannot reach another table's data from an agent instance.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from serving.lib import formats
from serving.lib.caller import Caller
from serving.lib.errors import ApiError, NotFound, QueryTimeout
from serving.lib.results import ArrowBatches, ArrowStream
from serving.queries.engine import QueryCancelled, QueryEngine
from serving.queries.instances import ProtectionError, check_protections
from serving.queries.watchdog import Handle
from shared.served import read_current, table_dir
from shared.settings import Settings
from tests.conftest import publish_table

ORDERS = "demo.public.orders"
VAULT = "demo.secret.vault"
CANARY = "CANARY_ENGINE_7f3a"


@pytest.fixture(scope="module")
def eng_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = tmp_path_factory.mktemp("engine-home")
    settings = Settings.from_env({"AGENTS_DATA_HOME": str(home), "QUERY_MAX_ROWS": "5000", "QUERY_TIMEOUT_S": "10"})
    publish_table(settings.served_path, ORDERS,
                  "select range as id, ['new','paid','shipped'][1 + range % 3] as status, range * 2.5 as amount "
                  "from range(1000)")
    publish_table(settings.served_path, VAULT, f"select '{CANARY}' as secret, range as n from range(3)")
    return settings


@pytest.fixture(scope="module")
def engine(eng_settings: Settings) -> Iterator[QueryEngine]:
    eng = QueryEngine(eng_settings)
    yield eng
    eng.close()


@pytest.fixture
def agent() -> Caller:
    return Caller(kind="agent", subject="a", token_id=f"tok-{ORDERS}", swarm_id="s", grants=frozenset({ORDERS}))


def vault_file(settings: Settings) -> Path:
    manifest = read_current(settings.served_path, VAULT)
    assert manifest is not None
    return table_dir(settings.served_path, VAULT) / manifest.file


def test_protections_verified_at_startup(engine: QueryEngine) -> None:
    found = engine.verify_protections()
    assert found["enable_external_access"] == "false"
    assert found["lock_configuration"] == "true"
    assert found["autoload_known_extensions"] == "false"
    assert found["allow_community_extensions"] == "false"
    assert int(found["max_execution_time"]) > 0
    assert found["probe"] == "ok"


def test_an_unlocked_connection_is_refused(eng_settings: Settings) -> None:
    con = duckdb.connect(":memory:")
    with pytest.raises(ProtectionError):
        check_protections(con, eng_settings)


@pytest.mark.parametrize("sql", [
    "SELECT * FROM demo.secret.vault",
    "SELECT * FROM query_table('demo.secret.vault')",
    "SELECT * FROM query('SELECT * FROM demo.secret.vault')",
    "SELECT * FROM read_blob('{vault}')",
    "SELECT * FROM read_text('{vault}')",
    "ATTACH '{vault}' AS v (READ_ONLY)",
    "SET threads = 1",
    "SET enable_external_access = true",
    "SET lock_configuration = false",
    "RESET memory_limit",
    "PRAGMA threads = 1",
    "COPY (SELECT 1) TO '{tmp}/leak.csv'",
    "EXPORT DATABASE '{tmp}/leak'",
    "INSTALL httpfs",
    "LOAD httpfs",
    "SELECT * FROM read_text('/etc/hostname')",
    "CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v')",
])
def test_instance_cannot_reach_other_tables_or_change_settings(engine: QueryEngine, eng_settings: Settings,
                                                                tmp_path: Path, sql: str) -> None:
    """Guard bypassed: a raw cursor of an orders-only instance."""
    inst = engine.instances.acquire(engine.manifests({ORDERS}))
    try:
        cur = inst.con.cursor()
        text = sql.format(vault=vault_file(eng_settings), tmp=tmp_path)
        with pytest.raises(duckdb.Error) as e:
            cur.execute(text).fetchall()
        assert CANARY not in str(e.value)
        assert not list(tmp_path.iterdir())
        assert cur.execute("SELECT count(*) FROM demo.public.orders").fetchone() == (1000,)
    finally:
        engine.instances.release(inst)


def test_the_instance_holds_only_the_queried_tables(engine: QueryEngine) -> None:
    inst = engine.instances.acquire(engine.manifests({ORDERS}))
    try:
        rows = inst.con.cursor().execute("SELECT database_name, schema_name, view_name FROM duckdb_views() "
                                         "WHERE NOT internal").fetchall()
        assert rows == [("demo", "public", "orders")]
    finally:
        engine.instances.release(inst)


def test_runaway_query_is_interrupted_and_the_instance_stays_usable(engine: QueryEngine, agent: Caller) -> None:
    started = time.monotonic()
    with pytest.raises(QueryTimeout) as e:
        engine.execute(agent, "select count(*) from range(1000000000000) a", timeout_s=0.5)
    assert e.value.rule == "timeout"
    assert e.value.status == 408
    assert time.monotonic() - started < 5
    assert engine.execute(agent, "select count(*) as n from orders").rows == [(1000,)]


def test_cancel_interrupts_a_running_query(engine: QueryEngine, agent: Caller) -> None:
    handle = Handle()
    timer = threading.Timer(0.3, handle.cancel)
    timer.start()
    with pytest.raises(QueryCancelled) as e:
        engine.execute(agent, "select count(*) from range(1000000000000) b", handle=handle)
    assert e.value.rule == "cancelled"


@pytest.mark.parametrize("value", ["new' OR '1'='1", "x'; DROP TABLE data; --", "1) UNION SELECT * FROM demo.secret.vault --"])
def test_parameters_are_bound_not_formatted(engine: QueryEngine, agent: Caller, value: str) -> None:
    assert engine.execute(agent, "select * from orders where status = ?", params=[value]).rows == []
    assert engine.execute(agent, "select count(*) from orders where status = $s", params={"s": value}).rows == [(0,)]
    assert engine.execute(agent, "select ? as v", params=[value]).rows == [(value,)]


def test_truncation_flag(engine: QueryEngine, agent: Caller) -> None:
    r = engine.execute(agent, "select id from orders order by id", max_rows=10)
    assert (r.row_count, r.truncated, r.rows[-1]) == (10, True, (9,))
    r = engine.execute(agent, "select id from orders", max_rows=1000)
    assert (r.row_count, r.truncated) == (1000, False)
    r = engine.execute(agent, "select id from orders", max_rows=999)
    assert (r.row_count, r.truncated) == (999, True)
    r = engine.execute(agent, "select id from orders")  # default cap QUERY_MAX_ROWS=5000
    assert (r.row_count, r.truncated) == (1000, False)


def test_results_name_tables_versions_and_sync_time(engine: QueryEngine, agent: Caller, eng_settings: Settings) -> None:
    manifest = read_current(eng_settings.served_path, ORDERS)
    r = engine.execute(agent, "select count(*) from orders")
    assert [t.as_dict() for t in r.tables] == [{"table": ORDERS, "version": manifest.version,  # type: ignore[union-attr]
                                                "synced_at": manifest.published_at}]  # type: ignore[union-attr]
    assert r.columns == [{"name": "count_star()", "type": "BIGINT"}]


def test_duckdb_errors_are_4xx_without_internal_names(engine: QueryEngine, agent: Caller, eng_settings: Settings) -> None:
    for sql in ("select nope from orders", "select 1 / 'x'", "select cast('x' as int)", "select * from orders where id = ?"):
        with pytest.raises(ApiError) as e:
            engine.execute(agent, sql)
        assert 400 <= e.value.status < 500
        assert e.value.rule == "query_error"
        assert "__t" not in e.value.message
        assert str(eng_settings.home_path) not in e.value.message


def test_trusted_sql_needs_grants(engine: QueryEngine, agent: Caller) -> None:
    r = engine.execute_platform_sql(agent, [ORDERS], 'select count(*) from "demo"."public"."orders" using sample 10 rows')
    assert r.rows == [(10,)]
    with pytest.raises(NotFound) as e:
        engine.execute_platform_sql(agent, [VAULT], 'select * from "demo"."secret"."vault"')
    assert e.value.rule == "table_not_granted"


def test_stream_cuts_at_max_rows(engine: QueryEngine, agent: Caller) -> None:
    r = engine.execute(agent, "select * from orders", max_rows=250,
                       output=ArrowBatches(lambda stream: sum(b.num_rows for b in stream), batch_rows=100))
    assert (r.consumed, r.row_count, r.truncated) == (250, 250, True)
    assert [c["name"] for c in r.columns] == ["id", "status", "amount"]


def test_parquet_batches_are_one_duckdb_row_group_when_the_row_is_narrow(engine: QueryEngine, agent: Caller) -> None:
    def sizes(stream: ArrowStream) -> list[int]:
        return [b.num_rows for b in stream]

    group = formats.DUCKDB_ROW_GROUP_ROWS
    rows = 2 * group + 100
    narrow = engine.execute(agent, f"select range as id, 'x' as s from range({rows})",
                            output=ArrowBatches(sizes, batch_rows=1000, capped_by_bytes=True, parquet=True))
    assert narrow.consumed == [group, group, 100]
    texts = ", ".join(f"'x' as c{i}" for i in range(formats.ROW_GROUP_BYTES // group // formats.VAR_WIDTH_GUESS + 1))
    wide = engine.execute(agent, f"select {texts} from range(2500)",
                          output=ArrowBatches(sizes, batch_rows=1000, capped_by_bytes=True, parquet=True))
    assert wide.consumed == [1000, 1000, 500]  # a wide row keeps the smaller batches


def test_new_version_gets_a_new_instance_while_in_flight_reads_finish(tmp_path: Path) -> None:
    settings = Settings.from_env({"AGENTS_DATA_HOME": str(tmp_path)})
    key = "demo.public.events"
    publish_table(settings.served_path, key, "select range as id, 'v1' as v from range(50000)")
    eng = QueryEngine(settings)
    caller = Caller(kind="agent", subject="a", token_id=f"tok-{key}", grants=frozenset({key}))
    try:
        def read_across_a_publish(old: ArrowStream) -> None:
            batches = iter(old)
            first = next(batches)
            publish_table(settings.served_path, key, "select range as id, 'v2' as v from range(10)")
            assert eng.execute(caller, "select distinct v from events").rows == [("v2",)]
            rest = sum(b.num_rows for b in batches)
            assert first.column("v")[0].as_py() == "v1"
            assert first.num_rows + rest == 50000

        eng.execute(caller, "select * from events", output=ArrowBatches(read_across_a_publish, batch_rows=1000))
        assert eng.instances.stats()["built"] == 2
        eng.instances.reap(idle_s=0)
        assert eng.instances.stats()["live"] == 0
    finally:
        eng.close()


def test_admin_reads_every_served_table(engine: QueryEngine) -> None:
    admin = Caller(kind="admin", subject="admin")
    r = engine.execute(admin, "select count(*) from demo.secret.vault")
    assert r.rows == [(3,)]


def test_cursors_with_unfinished_results_are_never_reused(engine: QueryEngine, agent: Caller) -> None:
    """DuckDB refuses new work on a cursor whose result was not read to the end."""
    for _ in range(12):  # more than an instance keeps idle
        assert engine.execute(agent, "select id from orders", max_rows=3).truncated
        streamed = engine.execute(agent, "select id from orders", max_rows=5,
                                  output=ArrowBatches(lambda stream: sum(b.num_rows for b in stream), batch_rows=2))
        assert streamed.consumed == 5
        assert engine.execute(agent, "select count(*) from orders").rows == [(1000,)]
