"""What agents are told about how fresh served data is, against real materializations.

``synced_at`` (catalog, refresh answers, ``min_freshness``, provenance) must never claim data
newer than what was read: it is when the run began reading the source, not when it published
or recorded its success, and for a partitioned table it follows the partitions that hold the
newest rows, not whichever partition ran last.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from orchestration.sync import engine
from shared import served, status
from shared.settings import Settings
from tests.orchestration.conftest import Source, current, failure_message, materialize, rows


def _ok(result: Any) -> None:
    assert result.success, failure_message(result)


def _synced(settings: Settings, key: str) -> dt.datetime:
    manifest = served.read_current(settings.served_path, key)
    assert manifest is not None
    row = status.read(settings.control_url, [key]).get(key)
    synced = status.last_synced(manifest, row)
    assert synced is not None
    return synced


@pytest.mark.parametrize("layout", ["full", "incremental", "daily", "snapshot"])
def test_synced_at_is_when_the_source_was_read_not_when_the_version_was_published(
        source: Source, sync_settings: Settings, monkeypatch: pytest.MonkeyPatch, layout: str) -> None:
    """A row committed while the run was checking and publishing is not served: a ``synced_at``
    taken at publish (or at the recorded success) said the data was newer than that row."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), DAY DATE, UPDATED_AT TIMESTAMP_NTZ)")
    source.sql(f"INSERT INTO {t} VALUES (1, '2025-01-01', '2025-01-01 00:00:00')")
    raw: dict[str, Any] = {
        "full": {},
        "incremental": {"strategy": "incremental", "incremental_key": "UPDATED_AT", "primary_key": ["ID"]},
        "daily": {"partitioning": {"kind": "daily", "column": "DAY", "start": "2025-01-01"}},
        "snapshot": {"strategy": "snapshot"},
    }[layout]
    table = source.register("T", **raw)
    key = {"daily": "2025-01-01", "snapshot": dt.datetime.now(dt.UTC).date().isoformat()}.get(layout)
    committed: list[dt.datetime] = []
    real_check = engine.check

    def check_while_the_source_changes(written: Any) -> Any:
        source.sql(f"INSERT INTO {t} VALUES (2, '2025-01-01', '2025-01-01 01:00:00')")
        committed.append(dt.datetime.now(dt.UTC))
        time.sleep(0.05)
        return real_check(written)

    monkeypatch.setattr(engine, "check", check_while_the_source_changes)
    _ok(materialize(table, sync_settings, partition_key=key))
    served_ids = [r for (r,) in rows(sync_settings, table, "SELECT ID FROM data ORDER BY 1")]
    assert served_ids == [1], "the row committed after the read is not in this version"
    synced = _synced(sync_settings, table.key)
    assert synced < committed[0], f"synced_at {synced} claims a read after the row committed at {committed[0]}"
    manifest = current(sync_settings, table)
    assert manifest is not None
    assert served.synced_at(manifest) == synced, "provenance reads the same time as the catalog"
    assert dt.datetime.fromisoformat(manifest.published_at) > committed[0]


def test_an_old_partition_rerun_does_not_make_the_newest_data_look_fresh(
        source: Source, sync_settings: Settings) -> None:
    """A daily table's newest rows land in its newest partition. Re-running an old day must not
    move ``synced_at``: the newest partition was read no later than before."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), DAY DATE)")
    source.sql(f"INSERT INTO {t} VALUES (1, '2025-01-01'), (2, '2025-01-02')")
    table = source.register("T", partitioning={"kind": "daily", "column": "DAY", "start": "2025-01-01"})
    _ok(materialize(table, sync_settings, partition_key="2025-01-02"))
    newest_read = _synced(sync_settings, table.key)
    time.sleep(0.05)
    _ok(materialize(table, sync_settings, partition_key="2025-01-01"))
    assert _synced(sync_settings, table.key) == newest_read


def test_static_partitions_are_as_fresh_as_their_oldest_value(source: Source, sync_settings: Settings) -> None:
    """Every static value can change: one value synced now does not make the others fresh."""
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0), REGION VARCHAR)")
    source.sql(f"INSERT INTO {t} VALUES (1, 'eu'), (2, 'us')")
    table = source.register("T", partitioning={"kind": "static", "column": "REGION", "values": ["eu", "us"]})
    _ok(materialize(table, sync_settings, partition_key="eu"))
    _ok(materialize(table, sync_settings, partition_key="us"))
    eu_read = current(sync_settings, table).partitions["eu"]["read_at"]  # type: ignore[union-attr]
    time.sleep(0.05)
    _ok(materialize(table, sync_settings, partition_key="us"))
    assert _synced(sync_settings, table.key) == dt.datetime.fromisoformat(eu_read)


def test_a_dropped_source_is_stale_in_the_catalog_before_any_run_fails(source: Source, sync_settings: Settings) -> None:
    """A table without a schedule may not run for days: its catalog entry said ``fresh`` about a copy
    of a table that no longer existed. The source-change sensor sees the table gone on its next tick;
    a table seen again is judged by its age again."""
    import dagster as dg

    from orchestration import sensors
    from shared.control.db import migrate
    from tests.orchestration.test_sensors import SourceResource

    url = sync_settings.control_url
    migrate(url)
    t = source.table("T")
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0))")
    source.sql(f"INSERT INTO {t} VALUES (1)")
    table = source.register("T", freshness="1d")
    _ok(materialize(table, sync_settings))
    sensor = sensors.build_source_change_sensor(  # the default writes to the process settings' database
        tables=[table], presence=lambda m, p: status.record_source_presence(url, missing=m, present=p))
    resources = {"snowflake": SourceResource(port=source.port)}

    def verdict() -> dict[str, Any]:
        row = status.read(sync_settings.control_url, [table.key]).get(table.key)
        return status.freshness(current(sync_settings, table), row, table.freshness_s, dt.datetime.now(dt.UTC))

    with dg.build_sensor_context(cursor=None, resources=resources) as ctx:
        cursor = sensor(ctx).cursor
    assert verdict()["status"] == "fresh"
    source.sql(f"DROP TABLE {t}")
    with dg.build_sensor_context(cursor=cursor, resources=resources) as ctx:
        cursor = sensor(ctx).cursor
    stale = verdict()
    assert stale["status"] == "stale", stale
    assert "source table is missing" in stale["reason"]
    source.sql(f"CREATE TABLE {t} (ID NUMBER(10,0))")
    with dg.build_sensor_context(cursor=cursor, resources=resources) as ctx:
        sensor(ctx)
    assert verdict()["status"] == "fresh"
