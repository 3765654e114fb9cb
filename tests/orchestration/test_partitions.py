"""Partition definitions agree with the pure key parsing the API reuses (shared/partitions.py)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import dagster as dg
import pytest

from orchestration.partitions import MAX_PARTITIONS_PER_RUN, backfill_policy_for, partitions_def_for
from shared import partitions as sp
from shared.registry import RegisteredTable, build_registration

NOW = dt.datetime(2025, 3, 10, 14, 25, tzinfo=dt.UTC)


def _table(kind: str, **raw: object) -> RegisteredTable:
    part = {"kind": kind, "column": "TS", "start": "2025-01-01"} if kind != "none" else "none"
    return build_registration({"schema_name": "S", "table_name": "T", "partitioning": part, **raw}, default_database="D")


@pytest.mark.parametrize(
    ("kind", "last", "window"),
    [
        ("daily", "2025-03-09", (dt.datetime(2025, 3, 9, tzinfo=dt.UTC), dt.datetime(2025, 3, 10, tzinfo=dt.UTC))),
        ("hourly", "2025-03-10-13:00",
         (dt.datetime(2025, 3, 10, 13, tzinfo=dt.UTC), dt.datetime(2025, 3, 10, 14, tzinfo=dt.UTC))),
        ("monthly", "2025-02-01", (dt.datetime(2025, 2, 1, tzinfo=dt.UTC), dt.datetime(2025, 3, 1, tzinfo=dt.UTC))),
    ],
)
def test_time_partitions_end_at_the_latest_complete_window(kind: str, last: str, window: tuple[dt.datetime, dt.datetime]) -> None:
    table = _table(kind)
    pdef = partitions_def_for(table)
    assert isinstance(pdef, dg.TimeWindowPartitionsDefinition)
    keys = pdef.get_partition_keys(current_time=NOW)
    assert keys[0] == sp.KEY_FORMATS[kind].replace("%Y", "2025").replace("%m", "01").replace("%d", "01").replace("%H:%M", "00:00")
    assert keys[-1] == last == sp.latest_key(table, NOW)
    w = sp.validate_partition_key(table, last, now=NOW)
    assert (w.start, w.end) == window
    assert pdef.time_window_for_partition_key(last).start == w.start  # same window as Dagster's
    for key in keys[:: max(1, len(keys) // 20)]:  # every Dagster key is one the API accepts
        assert sp.validate_partition_key(table, key, now=NOW).key == key


def test_static_snapshot_and_unpartitioned() -> None:
    static = _table("static", partitioning={"kind": "static", "column": "R", "values": ["eu", "us"]})
    assert partitions_def_for(static).get_partition_keys() == ["eu", "us"]  # type: ignore[union-attr]

    snap = dataclasses.replace(_table("none", strategy="snapshot"), registered_at="2025-03-01")
    pdef = partitions_def_for(snap)
    assert pdef is not None
    assert pdef.get_partition_keys(current_time=NOW)[-1] == "2025-03-10"
    assert sp.latest_key(snap, NOW) == "2025-03-10"

    plain = _table("none")
    assert partitions_def_for(plain) is None
    assert backfill_policy_for(plain) is None
    with pytest.raises(sp.PartitionKeyError, match="not partitioned"):
        sp.validate_partition_key(plain, "2025-01-01")


def test_backfills_take_ranges_of_partitions_per_run() -> None:
    policy = backfill_policy_for(_table("daily"))
    assert policy is not None
    assert policy.max_partitions_per_run == MAX_PARTITIONS_PER_RUN
    assert backfill_policy_for(_table("none", strategy="snapshot")).max_partitions_per_run is None  # type: ignore[union-attr]


def test_key_of_floors_to_the_window() -> None:
    assert sp.key_of(sp.HOURLY, NOW) == "2025-03-10-14:00"
    assert sp.key_of(sp.DAILY, NOW) == "2025-03-10"
    assert sp.key_of(sp.MONTHLY, NOW) == "2025-03-01"
