"""The Dagster asset with SERVED_STORAGE=s3: partition runs on two machines that share no disk.

Machine A materializes one daily partition, machine B (an empty data folder) the next: B's
run downloads A's version from the bucket as its base, so the version B publishes holds
both days, and a third machine serves it.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from shared.served_storage import ObjectStore
from shared.settings import Settings, get_settings
from tests.objstore.objstore_support import objstore_env
from tests.orchestration.conftest import Source, materialize

pytestmark = pytest.mark.usefixtures("aws_env")


def test_partition_runs_on_two_machines_share_only_the_bucket_and_the_database(
    tmp_path: Path, source: Source, served_moto: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    source.sql(f"CREATE TABLE {source.table('EV')} (ID NUMBER(10,0), TS TIMESTAMP_NTZ, V NUMBER(10,0))")
    source.sql(
        f"INSERT INTO {source.table('EV')} SELECT seq4(), DATEADD(hour, seq4(), '2025-01-01'::TIMESTAMP_NTZ), "
        "seq4() * 10 FROM TABLE(GENERATOR(ROWCOUNT => 48))"
    )
    table = source.register("EV", partitioning={"kind": "daily", "column": "TS", "start": "2025-01-01"})
    db = f"sqlite:///{tmp_path / 'control.db'}"

    def machine(name: str) -> Settings:
        env = objstore_env(
            tmp_path / name,
            db,
            served_moto,
            bucket,
            SNOWFLAKE_HOST="127.0.0.1",
            SNOWFLAKE_PORT=str(source.port),
            SNOWFLAKE_PROTOCOL="http",
            SNOWFLAKE_DATABASE=source.database,
            SNOWFLAKE_NETWORK_TIMEOUT_S="20",
        )
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        get_settings.cache_clear()  # the asset's resource reads SERVED_STORAGE from the process settings
        (tmp_path / name).mkdir(exist_ok=True)
        return Settings.from_env(env)

    try:
        assert materialize(table, machine("a"), partition_key="2025-01-01").success
        b = machine("b")
        result = materialize(table, b, partition_key="2025-01-02")
        assert result.success
        reader = ObjectStore(machine("reader"))
        manifest = reader.serve(table.key)
        assert manifest is not None
        assert sorted(manifest.partitions) == ["2025-01-01", "2025-01-02"]
        with duckdb.connect(str(reader.local_path(manifest)), read_only=True) as con:
            days = con.execute("SELECT strftime(TS, '%Y-%m-%d') AS d, count(*) FROM data GROUP BY d ORDER BY d").fetchall()
        assert days == [("2025-01-01", 24), ("2025-01-02", 24)]
        base = manifest.previous_version
        assert base is not None
        assert list(b.served_path.rglob(f"v-{base}.duckdb")), "machine B fetched A's version as its base"
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
