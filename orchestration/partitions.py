"""Dagster partitions and backfill policy of a registered table.

Why a thin layer: key formats, windows and validation live in ``shared.partitions`` so
the API validates exactly the keys Dagster shows; this module only turns them into
Dagster objects. Time partitions are UTC; the last partition is the latest *complete*
window (end offset 0), except for snapshots, whose only materializable partition is
today (end offset 1).
"""

from __future__ import annotations

import dagster as dg

from shared import partitions as sp
from shared.registry import RegisteredTable

# A backfill of hundreds of partitions runs as a few runs of this many partitions each:
# one process start and one copy of the served file per run instead of per partition.
MAX_PARTITIONS_PER_RUN = 30


def partitions_def_for(table: RegisteredTable) -> dg.PartitionsDefinition | None:
    """Daily/hourly/monthly time windows, a static list of values, daily snapshots, or None."""
    kind = sp.time_kind(table)
    if kind is not None:
        end_offset = sp.SNAPSHOT_END_OFFSET if table.strategy == "snapshot" else sp.TIME_END_OFFSET
        return dg.TimeWindowPartitionsDefinition(
            start=sp.start_of(table), fmt=sp.KEY_FORMATS[kind], cron_schedule=sp.CRON_SCHEDULES[kind],
            timezone=sp.TIMEZONE, end_offset=end_offset,
        )
    if table.partition_kind == sp.STATIC:
        return dg.StaticPartitionsDefinition(list(table.partition_values))
    return None


def backfill_policy_for(table: RegisteredTable) -> dg.BackfillPolicy | None:
    """Partitioned tables take ranges of partitions per run; snapshots one (only today's exists to take)."""
    if not sp.is_partitioned(table):
        return None
    if table.strategy == "snapshot":
        return dg.BackfillPolicy.single_run()
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=MAX_PARTITIONS_PER_RUN)
