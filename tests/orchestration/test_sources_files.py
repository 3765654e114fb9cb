"""File sources through the real sync engine: Parquet folders and globs (local and on a moto S3
server), a table of a DuckDB file, partitions, the cursor merge, change signatures and the
location rules."""

from __future__ import annotations

import dataclasses
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from orchestration.sync.engine import SyncRequest, sync_table
from shared import changes, registry, sources
from shared.settings import Settings
from shared.sources.files import FileSourceError, to_duckdb
from tests.orchestration.conftest import current, failure_message, materialization, materialize, rows

ROWS_SQL = (
    "SELECT i AS ID, CAST(i * 1.5 AS DECIMAL(12,2)) AS AMOUNT, "
    "TIMESTAMP '2025-01-01' + to_hours(CAST(i AS BIGINT)) AS TS, "
    "{'k': i, 'tags': [i, i + 1]} AS PAYLOAD, 'n' || i AS NAME FROM range(?, ?) t(i)"
)


def _write_parquet(path: Path, lo: int, hi: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"COPY ({ROWS_SQL}) TO '{path}' (FORMAT parquet)", [lo, hi])
    con.close()


@pytest.fixture
def file_settings(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    roots = tmp_path / "files"
    roots.mkdir()
    monkeypatch.setenv("SOURCE_FILE_ROOTS", str(roots))
    monkeypatch.setenv("AGENTS_DATA_HOME", settings.home)
    from shared.settings import SourceSettings, get_settings

    get_settings.cache_clear()
    yield dataclasses.replace(settings, sources=SourceSettings(file_roots=str(roots)))
    get_settings.cache_clear()


def _reg(**raw: Any) -> registry.RegisteredTable:
    return registry.build_registration({"schema_name": "FILES", "table_name": "T", **raw}, default_database="DEMO")


def _sync(reg: registry.RegisteredTable, settings: Settings, **kw: Any) -> Any:
    return sync_table(
        SyncRequest(table=reg, connect=sources.connector(reg, settings=settings), served_root=settings.served_path, **kw)
    )


def test_parquet_folder_syncs_with_exact_types_and_nested_values_as_json(file_settings: Settings) -> None:
    folder = Path(file_settings.sources.file_roots) / "t"
    _write_parquet(folder / "a.parquet", 0, 100)
    _write_parquet(folder / "sub" / "b.parquet", 100, 250)
    reg = _reg(source={"kind": "parquet", "path": str(folder)}, primary_key=["ID"])
    sources.check_location(reg, file_settings)
    outcome = _sync(reg, file_settings, slice_rows=60)  # key-range slices over the Parquet files
    assert (outcome.manifest.row_count, outcome.source_rows) == (250, 250)
    assert len(outcome.slices) > 1
    types = {c.name: c.type for c in outcome.manifest.columns}
    assert types == {"ID": "BIGINT", "AMOUNT": "DECIMAL(12,2)", "TS": "TIMESTAMP", "PAYLOAD": "JSON", "NAME": "VARCHAR"}
    got = rows(file_settings, reg, "SELECT ID, AMOUNT, PAYLOAD->>'$.k', NAME FROM data WHERE ID = 101")
    assert got == [(101, Decimal("151.50"), "101", "n101")]
    assert rows(file_settings, reg, "SELECT count(DISTINCT ID), min(ID), max(ID) FROM data") == [(250, 0, 249)]


def test_daily_partition_of_a_parquet_glob_is_exactly_its_window(file_settings: Settings) -> None:
    folder = Path(file_settings.sources.file_roots) / "p"
    _write_parquet(folder / "x.parquet", 0, 72)  # three days of hourly rows
    _write_parquet(folder / "ignored.csv.parquet.bak", 0, 10)
    reg = _reg(
        source={"kind": "parquet", "path": f"{folder}/*.parquet"},
        partitioning={"kind": "daily", "column": "TS", "start": "2025-01-01"},
    )
    outcome = _sync(reg, file_settings, partition_keys=["2025-01-02"])
    assert outcome.manifest.row_count == 24
    assert rows(file_settings, reg, "SELECT min(ID), max(ID) FROM data") == [(24, 47)]


def test_duckdb_file_table_keeps_not_null_and_comments_and_merges_on_its_cursor(file_settings: Settings) -> None:
    path = Path(file_settings.sources.file_roots) / "shop.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA app")
    con.execute('CREATE TABLE app."Events" (ID BIGINT NOT NULL, SEEN_AT TIMESTAMP NOT NULL, V VARCHAR)')
    con.execute("COMMENT ON COLUMN app.\"Events\".V IS 'the value'")
    con.execute("INSERT INTO app.\"Events\" SELECT i, TIMESTAMP '2025-01-01' + to_minutes(i), 'v' || i FROM range(50) t(i)")
    con.close()
    reg = _reg(
        source={"kind": "duckdb", "path": str(path), "table": 'app."Events"'},
        strategy="incremental",
        incremental_key="SEEN_AT",
        primary_key=["ID"],
    )
    sources.check_location(reg, file_settings)
    first = _sync(reg, file_settings)
    cols = {c.name: c for c in first.manifest.columns}
    assert (cols["ID"].nullable, cols["V"].nullable, cols["V"].description) == (False, True, "the value")
    assert first.manifest.row_count == 50

    with sources.connect(reg, file_settings) as src:
        assert changes.scan(src, reg, current(file_settings, reg)).fresh
    con = duckdb.connect(str(path))
    con.execute("INSERT INTO app.\"Events\" VALUES (50, TIMESTAMP '2025-01-02', 'new')")
    con.execute("UPDATE app.\"Events\" SET V = 'changed' WHERE ID = 49")
    con.close()
    with sources.connect(reg, file_settings) as src:
        scan = changes.scan(src, reg, current(file_settings, reg))
    assert not scan.fresh
    second = _sync(reg, file_settings)
    assert second.mode == "merge"
    assert second.manifest.row_count == 51
    assert rows(file_settings, reg, "SELECT V FROM data WHERE ID IN (49, 50) ORDER BY ID") == [("changed",), ("new",)]


def test_a_row_of_a_file_source_moved_out_of_every_partition_names_its_old_one(file_settings: Settings) -> None:
    """The scan's key query joins the table with itself under aliases; the translation to DuckDB
    replaced each table, alias and all, with the file's relation, so the statement failed."""
    from shared.served_storage import ServedStore

    path = Path(file_settings.sources.file_roots) / "moves.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE ev (ID BIGINT, DAY DATE, U BIGINT)")
    con.execute("INSERT INTO ev VALUES (1, '2025-01-01', 1), (2, '2025-01-01', 2), (3, '2025-01-02', 3)")
    con.close()
    reg = _reg(source={"kind": "duckdb", "path": str(path), "table": "ev"}, strategy="incremental", incremental_key="U",
               primary_key=["ID"], partitioning={"kind": "daily", "column": "DAY", "start": "2025-01-01"})
    _sync(reg, file_settings, partition_keys=["2025-01-01", "2025-01-02"])
    con = duckdb.connect(str(path))
    con.execute("UPDATE ev SET DAY = NULL, U = 9 WHERE ID = 2")
    con.close()
    with sources.connect(reg, file_settings) as src:
        found = changes.scan(src, reg, current(file_settings, reg),
                             served_file=ServedStore(file_settings.served_path).local_path)
    assert (found.partitions, found.moved_out, found.unplaced_rows) == (["2025-01-01"], 1, 1)
    _sync(reg, file_settings, partition_keys=found.partitions)
    assert rows(file_settings, reg, "SELECT ID FROM data ORDER BY 1") == [(1,), (3,)]


def test_change_signatures_follow_file_sizes_and_mtimes(file_settings: Settings) -> None:
    folder = Path(file_settings.sources.file_roots) / "s"
    _write_parquet(folder / "a.parquet", 0, 10)
    reg = _reg(source={"kind": "parquet", "path": str(folder)})
    missing = _reg(table_name="GONE", source={"kind": "parquet", "path": str(folder / "none")})
    first = sources.change_signatures([reg, missing], file_settings)
    assert set(first) == {("DEMO", "FILES", "T")}  # a location without files is a missing table
    assert sources.change_signatures([reg], file_settings) == first
    stat = (folder / "a.parquet").stat()
    os.utime(folder / "a.parquet", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    touched = sources.change_signatures([reg], file_settings)
    assert touched != first
    _write_parquet(folder / "b.parquet", 10, 20)
    added = sources.change_signatures([reg], file_settings)
    assert added != touched
    assert added[("DEMO", "FILES", "T")].startswith("files=2|")


def test_locations_outside_the_roots_and_bad_shapes_are_refused(file_settings: Settings, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    _write_parquet(outside / "a.parquet", 0, 5)
    with pytest.raises(registry.RegistrationError, match="outside the folders"):
        sources.check_location(_reg(source={"kind": "parquet", "path": str(outside)}), file_settings)
    link = Path(file_settings.sources.file_roots) / "link"
    link.symlink_to(outside)
    with pytest.raises(registry.RegistrationError, match="outside"):
        sources.check_location(_reg(source={"kind": "parquet", "path": str(link)}), file_settings)
    with pytest.raises(registry.RegistrationError, match="outside the folders"):
        sources.check_location(
            _reg(source={"kind": "parquet", "path": file_settings.served_path.as_posix()}),
            dataclasses.replace(file_settings, sources=dataclasses.replace(file_settings.sources, file_roots=file_settings.home)),
        )
    with pytest.raises(registry.RegistrationError, match="absolute"):
        sources.check_location(_reg(source={"kind": "parquet", "path": "relative/x"}), file_settings)
    with pytest.raises(registry.RegistrationError, match="no Parquet files"):
        sources.check_location(
            _reg(source={"kind": "parquet", "path": file_settings.sources.file_roots + "/none"}), file_settings
        )
    for raw, field in [
        ({"kind": "csv", "path": "/x"}, "source.kind"),
        ({"kind": "duckdb", "path": "/x"}, "source.table"),
        ({"kind": "parquet"}, "source.path"),
        ({"kind": "parquet", "path": "/x", "table": "t"}, "source.table"),
        ({"kind": "parquet", "path": "/x", "extra": 1}, "source"),
    ]:
        with pytest.raises(registry.RegistrationError) as e:
            _reg(source=raw)
        assert e.value.field == field
    with pytest.raises(registry.RegistrationError, match="only Snowflake"):
        _reg(source={"kind": "parquet", "path": "/x"}, live=True)


def test_a_file_connection_runs_only_statements_over_its_own_table() -> None:
    names = ("DEMO", "FILES", "T")
    text = to_duckdb(
        'SELECT COUNT_IF("X" >= CAST(%s AS TIMESTAMP_NTZ)) FROM "DEMO"."FILES"."T" WHERE "X" < CAST(%s AS NUMBER(18,0))', names
    )
    assert text == ('SELECT COUNT_IF(("X" >= CAST(? AS TIMESTAMP)) IS TRUE) FROM src WHERE "X" < CAST(? AS DECIMAL(18, 0))')
    with pytest.raises(FileSourceError, match="holds one table"):
        to_duckdb('SELECT * FROM "DEMO"."FILES"."OTHER"', names)
    with pytest.raises(FileSourceError, match="holds one table"):
        to_duckdb('SELECT * FROM "DEMO"."FILES"."T", "DEMO"."INFORMATION_SCHEMA"."TABLES"', names)


def test_a_parquet_table_materializes_through_its_dagster_asset(file_settings: Settings) -> None:
    folder = Path(file_settings.sources.file_roots) / "d"
    _write_parquet(folder / "a.parquet", 0, 30)
    reg = _reg(source={"kind": "parquet", "path": str(folder)}, primary_key=["ID"])
    result = materialize(reg, file_settings)
    assert result.success
    meta = materialization(result)
    assert (meta["dagster/row_count"], meta["source_rows"]) == (30, 30)
    missing = _reg(table_name="NONE", source={"kind": "parquet", "path": str(folder / "nothing")})
    failed = materialize(missing, file_settings)
    assert not failed.success
    assert "does not exist in the source" in failure_message(failed)


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.serving.artifact_support import moto_server

    with moto_server(tmp_path_factory.mktemp("moto-sources")) as url:
        yield url


def test_parquet_on_s3_syncs_and_its_signature_follows_objects(
    file_settings: Settings, s3_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.serving.artifact_support import s3_client

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    s3 = s3_client(s3_endpoint)
    s3.create_bucket(Bucket="lake")
    for name, lo, hi in [("a", 0, 40), ("b", 40, 90)]:
        _write_parquet(tmp_path / f"{name}.parquet", lo, hi)
        s3.upload_file(str(tmp_path / f"{name}.parquet"), "lake", f"events/day={name}/{name}.parquet")
    s3.put_object(Bucket="lake", Key="events/README.txt", Body=b"not parquet")
    settings = dataclasses.replace(file_settings, sources=dataclasses.replace(file_settings.sources, s3_endpoint_url=s3_endpoint))
    reg = _reg(source={"kind": "parquet", "path": "s3://lake/events/"}, primary_key=["ID"])
    sources.check_location(reg, settings)
    first = sources.change_signatures([reg], settings)
    assert first[("DEMO", "FILES", "T")].startswith("files=2|")
    outcome = _sync(reg, settings, slice_rows=50)
    assert outcome.manifest.row_count == 90
    assert rows(settings, reg, "SELECT count(DISTINCT ID), sum(ID) FROM data") == [(90, sum(range(90)))]
    globbed = _reg(source={"kind": "parquet", "path": "s3://lake/events/day=b/*.parquet"})
    assert _sync(globbed, settings).manifest.row_count == 50
    s3.upload_file(str(tmp_path / "a.parquet"), "lake", "events/day=c/c.parquet")
    assert sources.change_signatures([reg], settings) != first


def test_the_source_change_sensor_runs_a_parquet_table_once_per_new_file(file_settings: Settings) -> None:
    """Only file tables registered: the sensor never asks Snowflake (its resource here is dead)."""
    import json

    import dagster as dg

    from orchestration import sensors
    from tests.orchestration.test_sensors import SourceResource

    folder = Path(file_settings.sources.file_roots) / "sensed"
    _write_parquet(folder / "a.parquet", 0, 10)
    reg = _reg(source={"kind": "parquet", "path": str(folder)})
    sensor = sensors.build_source_change_sensor(tables=[reg])
    resources = {"snowflake": SourceResource(port=9, fail=True)}
    with dg.build_sensor_context(cursor=None, resources=resources) as ctx:
        first = sensor(ctx)
    assert not first.run_requests
    assert "first signature" in first.skip_reason.skip_message
    _write_parquet(folder / "b.parquet", 10, 20)
    with dg.build_sensor_context(cursor=first.cursor, resources=resources) as ctx:
        second = sensor(ctx)
    [request] = second.run_requests
    assert request.run_key.startswith(f"{reg.key}|files=2|")
    with dg.build_sensor_context(cursor=second.cursor, resources=resources) as ctx:
        third = sensor(ctx)
    assert not third.run_requests
    assert json.loads(third.cursor)[reg.key].startswith("files=2|")


def test_a_live_registration_is_a_plain_snowflake_table() -> None:
    live = _reg(live=True)
    assert (live.live, live.source_kind, live.strategy) == (True, "snowflake", "full")
    for extra in (
        {"strategy": "snapshot"},
        {"schedule": "0 * * * *"},
        {"partitioning": {"kind": "daily", "column": "TS", "start": "2025-01-01"}},
    ):
        with pytest.raises(registry.RegistrationError) as e:
            _reg(live=True, **extra)
        assert e.value.field == "live"
    with pytest.raises(registry.RegistrationError):
        _reg(live="yes")


def test_definitions_give_file_tables_an_asset_and_live_tables_none(file_settings: Settings) -> None:
    import dagster as dg

    from orchestration.definitions import build_definitions

    files = _reg(table_name="F", source={"kind": "parquet", "path": file_settings.sources.file_roots})
    live = _reg(table_name="L", live=True)
    defs = build_definitions([files, live], file_settings)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {"demo/files/f"}
    assert isinstance(defs.get_assets_def(dg.AssetKey(["demo", "files", "f"])), dg.AssetsDefinition)
