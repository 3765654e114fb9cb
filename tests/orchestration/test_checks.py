"""Asset checks and materialization metadata, on real materializations against the stand-in.

Every table asset declares its checks (row count vs the source for the same window,
primary-key uniqueness where declared, no unexpected schema drift), evaluates them from
the materialization itself, and reports the metadata the Dagster UI shows.
"""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

import dagster as dg
import pytest

from orchestration.assets import build_table_asset
from orchestration.checks import PRIMARY_KEY_CHECK, ROW_COUNT_CHECK, SCHEMA_DRIFT_CHECK, table_check_specs
from orchestration.resources import SERVED_RESOURCE_KEY, ServedDataResource, build_resources
from orchestration.sync.verdicts import BlockingCheckError, enforce, evaluate
from shared.registry import RegisteredTable, build_registration
from shared.served import read_current, table_dir
from shared.settings import Settings
from shared.snowflake import connect


def _reg(db: str, table: str, **extra: Any) -> RegisteredTable:
    return build_registration({"table_name": table, "schema_name": "public", **extra}, default_database=db)


@pytest.fixture
def source(settings: Settings) -> str:
    """A fresh source database: ORDERS (daily, commented column), ITEMS (duplicate key), CUSTOMERS (incremental)."""
    db = "CHK_" + secrets.token_hex(3).upper()
    with connect(settings.snowflake) as con:
        cur = con.cursor()
        for sql in (
            f"CREATE DATABASE {db}", f"CREATE SCHEMA {db}.PUBLIC",
            f"CREATE TABLE {db}.PUBLIC.ORDERS (ID INT NOT NULL, TS TIMESTAMP_NTZ, AMOUNT NUMBER(12,2))",
            f"INSERT INTO {db}.PUBLIC.ORDERS SELECT seq4(), dateadd('hour', seq4(), '2026-01-01'::timestamp_ntz), "
            "seq4() * 1.5 FROM TABLE(GENERATOR(ROWCOUNT => 48))",
            f"CREATE TABLE {db}.PUBLIC.ITEMS (ID INT, NAME TEXT)",
            f"INSERT INTO {db}.PUBLIC.ITEMS VALUES (1, 'a'), (1, 'again'), (2, 'b')",
            f"CREATE TABLE {db}.PUBLIC.CUSTOMERS (ID INT NOT NULL, UPDATED_AT TIMESTAMP_NTZ, NAME TEXT)",
            f"INSERT INTO {db}.PUBLIC.CUSTOMERS VALUES (1, '2026-01-01 00:00:00', 'x'), (2, '2026-01-03 00:00:00', 'y')",
        ):
            cur.execute(sql)
        with contextlib.suppress(Exception):  # the stand-in stores the comment, then raises (docs/local-stand-in.md)
            cur.execute(f"COMMENT ON COLUMN {db}.PUBLIC.ORDERS.AMOUNT IS 'Order total in EUR'")
    return db


def _materialize(settings: Settings, reg: RegisteredTable, **kwargs: Any) -> dg.ExecuteInProcessResult:
    resources = {**build_resources(settings),
                 SERVED_RESOURCE_KEY: ServedDataResource(home=settings.home, control_url=settings.control_url)}
    from shared.control.db import migrate

    migrate(settings.control_url)
    return dg.materialize([build_table_asset(table=reg)], resources=resources, raise_on_error=False, **kwargs)


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_every_table_declares_its_checks_blocking_where_wrong_data_is_at_stake() -> None:
    full = {s.name: s for s in table_check_specs(_reg("d", "t", primary_key=["id"]))}
    assert set(full) == {ROW_COUNT_CHECK, PRIMARY_KEY_CHECK, SCHEMA_DRIFT_CHECK}
    assert full[ROW_COUNT_CHECK].blocking
    assert full[PRIMARY_KEY_CHECK].blocking
    assert not full[SCHEMA_DRIFT_CHECK].blocking  # additive drift is applied on purpose; it warns
    no_pk = {s.name for s in table_check_specs(_reg("d", "t"))}
    assert no_pk == {ROW_COUNT_CHECK, SCHEMA_DRIFT_CHECK}
    incremental = {s.name: s for s in table_check_specs(_reg("d", "t", strategy="incremental", incremental_key="u",
                                                                primary_key=["id"]))}
    # Every strategy: a count the source and the key cannot explain blocks (a merge on its own accounting).
    assert incremental[ROW_COUNT_CHECK].blocking


def test_partition_materialization_passes_checks_and_reports_metadata(settings: Settings, source: str) -> None:
    reg = _reg(source, "orders", primary_key=["id"], partitioning={"kind": "daily", "column": "ts", "start": "2026-01-01"})
    result = _materialize(settings, reg, partition_key="2026-01-02")
    assert result.success
    checks = _checks(result)
    assert {k: c.passed for k, c in checks.items()} == {ROW_COUNT_CHECK: True, PRIMARY_KEY_CHECK: True, SCHEMA_DRIFT_CHECK: True}
    assert checks[ROW_COUNT_CHECK].metadata["source_rows"].value == 24
    assert checks[ROW_COUNT_CHECK].metadata["served_rows"].value == 24

    [mat] = result.asset_materializations_for_node(build_table_asset(table=reg).node_def.name)
    meta = mat.metadata
    assert meta["dagster/row_count"].value == 24
    schema = meta["dagster/column_schema"].value
    assert [c.name for c in schema.columns] == ["ID", "TS", "AMOUNT"]
    assert {c.name: c.description for c in schema.columns}["AMOUNT"] == "Order total in EUR"
    assert meta["served_version"].value
    assert meta["bytes_written"].value > 0
    assert "source_query_ids" in meta
    assert meta["source_seconds"].value >= 0
    profile = meta["profile"].value  # Markdown, as the Dagster UI renders it
    assert f"{reg.key}: profile of all (24 rows)" in profile
    assert "| column | type | nulls |" in profile
    amount = next(line for line in profile.splitlines() if line.startswith("| AMOUNT |"))
    cells = [c.strip() for c in amount.strip("|").split("|")]
    # Partition 2026-01-02 holds ids 24..47 and amounts id * 1.5: check against the source rule.
    assert (float(cells[4]), float(cells[5])) == (36.0, 70.5)
    assert cells[2] == "0 (0.0%)"

    # A later partition run profiles its own partition, not the whole served table.
    second = _materialize(settings, reg, partition_key="2026-01-01")
    assert second.success
    [mat2] = second.asset_materializations_for_node(build_table_asset(table=reg).node_def.name)
    assert mat2.metadata["dagster/row_count"].value == 48
    assert f"{reg.key}: profile of partition 2026-01-01 (24 rows)" in mat2.metadata["profile"].value


def test_incremental_materialization_reports_its_watermark(settings: Settings, source: str) -> None:
    reg = _reg(source, "customers", strategy="incremental", incremental_key="updated_at", primary_key=["id"])
    result = _materialize(settings, reg)
    assert result.success
    [mat] = result.asset_materializations_for_node(build_table_asset(table=reg).node_def.name)
    assert str(mat.metadata["watermark"].value).startswith("2026-01-03")
    assert all(c.passed for c in _checks(result).values())


def test_duplicate_primary_key_fails_the_blocking_check(settings: Settings, source: str) -> None:
    reg = _reg(source, "items", primary_key=["id"])
    result = _materialize(settings, reg)
    checks = _checks(result)
    assert not checks[PRIMARY_KEY_CHECK].passed
    assert checks[PRIMARY_KEY_CHECK].metadata["duplicate_rows"].value >= 1
    assert checks[PRIMARY_KEY_CHECK].severity == dg.AssetCheckSeverity.ERROR
    assert checks[ROW_COUNT_CHECK].passed
    assert not result.success, "a failed blocking check fails the run, so the failure sensor marks the table failing"
    assert read_current(settings.served_path, reg.key) is None, "a version failing a blocking check is never published"


def test_blocking_check_failure_keeps_the_last_good_version_served(settings: Settings, source: str) -> None:
    reg = _reg(source, "customers", primary_key=["id"])
    assert _materialize(settings, reg).success
    good = read_current(settings.served_path, reg.key)
    assert good is not None
    assert good.row_count == 2
    with connect(settings.snowflake) as con:
        con.cursor().execute(f"INSERT INTO {source}.PUBLIC.CUSTOMERS VALUES (2, '2026-01-04 00:00:00', 'dup')")
    result = _materialize(settings, reg)
    assert not result.success
    checks = _checks(result)
    assert not checks[PRIMARY_KEY_CHECK].passed
    assert checks[PRIMARY_KEY_CHECK].blocking
    assert checks[PRIMARY_KEY_CHECK].metadata["duplicate_rows"].value == 1
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = str(failure.step_failure_data.user_failure_data.description)
    assert PRIMARY_KEY_CHECK in message
    assert "not published" in message
    after = read_current(settings.served_path, reg.key)
    assert after is not None
    assert after.version == good.version, "readers keep the last good version"
    folder = table_dir(settings.served_path, reg.key)
    assert not [p for p in folder.iterdir() if p.name.startswith(".tmp-")], "the refused version left no file behind"


def test_blocking_verdicts_gate_publication_and_warnings_do_not() -> None:
    full = _reg("d", "t", primary_key=["id"])
    evaluate(full, source_rows=3, served_rows=3, duplicate_keys=0, drift={})
    enforce(evaluate(full, source_rows=3, served_rows=3, duplicate_keys=0, drift={"added": ["X"]}))
    with pytest.raises(BlockingCheckError, match=ROW_COUNT_CHECK):
        enforce(evaluate(full, source_rows=3, served_rows=2, duplicate_keys=0, drift={}))
    with pytest.raises(BlockingCheckError, match=PRIMARY_KEY_CHECK):
        enforce(evaluate(full, source_rows=3, served_rows=3, duplicate_keys=2, drift={}))
    incremental = _reg("d", "t", strategy="incremental", incremental_key="u", primary_key=["id"])
    with pytest.raises(BlockingCheckError, match=ROW_COUNT_CHECK):  # every strategy: unexplained rows refuse
        enforce(evaluate(incremental, source_rows=3, served_rows=2, duplicate_keys=0, drift={}))
    explained = evaluate(incremental, source_rows=3, served_rows=2, duplicate_keys=0, drift={}, duplicates_removed=1)
    enforce(explained)  # one duplicate key counted and removed explains the missing row
    assert explained[0].metadata == {"source_rows": 3, "served_rows": 2, "duplicates_removed": 1, "expected_rows": 2}
    merge = evaluate(incremental, source_rows=3, served_rows=4, duplicate_keys=0, drift={}, merge_expected=4)
    enforce(merge)  # a merge is judged on its own accounting: source deletes stay invisible to it


def test_large_versions_are_profiled_on_a_bounded_sample() -> None:
    import logging

    import duckdb

    from orchestration.sync import publish

    con = duckdb.connect()
    con.execute(f"CREATE TABLE data AS SELECT range AS id, range % 7 AS k FROM range({publish.PROFILE_SAMPLE_ROWS + 50_000})")
    md = publish.profile_scope(con, "d.s.t", logging.getLogger("test"))
    assert md is not None
    assert f"a {publish.PROFILE_SAMPLE_ROWS:,}-row sample of all ({publish.PROFILE_SAMPLE_ROWS + 50_000:,} rows)" in md
    assert f"{publish.PROFILE_SAMPLE_ROWS:,} rows" in md
    k_line = next(line for line in md.splitlines() if line.startswith("| k |"))
    assert "7" in k_line.split("|")[4]  # exactly 7 distinct values survive any large sample
    scoped = publish.profile_scope(con, "d.s.t", logging.getLogger("test"), scope=("k = ?", [3], "partition 3"))
    assert scoped is not None
    assert f"profile of partition 3 ({(publish.PROFILE_SAMPLE_ROWS + 50_000 + 3) // 7:,} rows)" in scoped
    assert "_profile_scope" not in {r[0] for r in con.execute("SHOW TABLES").fetchall()}
    con.execute("DROP TABLE data")
    assert publish.profile_scope(con, "d.s.t", logging.getLogger("test")) is None, "a failed profile never fails the sync"
