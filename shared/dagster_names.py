"""Names Dagster runs, pools and jobs share with the API and the instance config.

Why in ``shared/``: the API tags the runs it launches, ``dagster.yaml`` limits
concurrency on the same tag, and the code location puts every table in a pool named the
same way; the API cannot import ``orchestration`` (layering), so the names live here.
"""

from __future__ import annotations

# Run tag carrying the table key (``database.schema.table``, lower case); dagster.yaml
# limits runs per unique value of it to one.
TABLE_TAG = "agents_data/table"
# Why a run was requested: schedule | source_change | refresh | manual | backfill.
REASON_TAG = "agents_data/reason"
# The API request that asked for a run (X-Request-ID, or the id the API made); the sync step's
# log lines carry it, and the request's audit row names the run.
REQUEST_TAG = "agents_data/request_id"
PARTITION_TAG = "dagster/partition"
# A run over a range of partitions (a backfill chunk) carries these instead of PARTITION_TAG.
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
POOL_PREFIX = "agents_data/"


def table_pool(key: str) -> str:
    """The concurrency pool of one table; dagster.yaml gives every pool a limit of 1."""
    return POOL_PREFIX + key.lower()

# Where the Dagster UI lives: the webserver runs with ``--path-prefix`` this value on an
# internal address, and the API serves the authenticated proxy to it at the same path.
UI_PATH_PREFIX = "/dagster"
