"""One keyword-only factory: a registered Snowflake table → a Dagster asset that serves it from DuckDB.

Why one factory: every table gets the same key shape ``[database, schema, table]``
(lower case), group, kinds, pool, tags, partitions, backfill policy, freshness policy and
checks, so the UI, the API (which launches runs by asset key) and the automation
(schedules, sensors) agree without a per-table file. The body is a thin wrapper around
``orchestration.sync.engine.sync_table``; it turns the outcome into Dagster metadata and
turns expected failures (source down, drift, bad key) into a ``dg.Failure`` saying what
happened and that the served data is untouched.
"""

# No `from __future__ import annotations`: Dagster reads the asset function's annotations at runtime.

import datetime as dt
import re
import traceback
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import dagster as dg

from orchestration.checks import check_results, table_check_specs
from orchestration.partitions import backfill_policy_for, partitions_def_for
from orchestration.resources import (
    SERVED_RESOURCE_KEY,
    SNOWFLAKE_RESOURCE_KEY,
    ServedDataResource,
    SnowflakeSource,
    source_connection,
)
from orchestration.sync.drift import SchemaDriftError
from orchestration.sync.engine import SyncOutcome, SyncRequest, sync_table
from orchestration.sync.load import TiedKeyError
from orchestration.sync.types import UnsupportedTypeError
from orchestration.sync.verdicts import BlockingCheckError
from shared import status
from shared.dagster_names import REQUEST_TAG, TABLE_TAG, table_pool
from shared.logs import PrefixedLog
from shared.partitions import PartitionKeyError
from shared.registry import RegisteredTable
from shared.snowflake import SourceError
from shared.sources import connector, describe

if TYPE_CHECKING:  # what define_asset_job returns; Dagster exports no public name for it
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition as TableJob,
    )

GROUP_NAME = "snowflake_tables"
KINDS = {"snowflake", "duckdb"}  # the source kind of a table replaces "snowflake" (Parquet: {"parquet", "duckdb"})
_STRICT_TAG = re.compile(r"[A-Za-z0-9_.-]{0,63}\Z")  # \Z: "$" would accept a trailing newline


class SyncConfig(dg.Config):
    """Run config of a table asset (Launchpad)."""

    full_refresh: bool = False  # rebuild from the source: no watermark, no copy, accept type changes


def _tag_value(key: str) -> str:
    """Dagster definition tags allow 63 characters of [A-Za-z0-9_.-]; longer keys are shortened stably."""
    if _STRICT_TAG.match(key):
        return key
    import hashlib

    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key)
    return f"{safe[:50]}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"  # noqa: S324 - a name, not security


def _description(table: RegisteredTable) -> str:
    where = f"{describe(table)}, strategy {table.strategy}."
    return f"{table.description}\n\n{where}" if table.description else where


def _definition_metadata(table: RegisteredTable) -> dict[str, object]:
    meta: dict[str, object] = {
        "agents_data/table_key": table.key, "agents_data/strategy": table.strategy,
        "agents_data/source": describe(table),
        "agents_data/partitioning": table.partition_kind if table.strategy != "snapshot" else "snapshot (daily)",
    }
    if table.primary_key:
        meta["agents_data/primary_key"] = ", ".join(table.primary_key)
    if table.cursor_column:
        meta["agents_data/cursor"] = f"{table.cursor_column} (lookback {table.lookback_s}s)"
    if table.schedule:
        meta["agents_data/schedule"] = table.schedule
    return meta


def _result_metadata(outcome: SyncOutcome) -> dict[str, Any]:
    m = outcome.manifest
    schema = dg.TableSchema(columns=[
        dg.TableColumn(name=c.name, type=c.type, description=c.description or None,
                       constraints=dg.TableColumnConstraints(nullable=c.nullable))
        for c in m.columns
    ])
    meta: dict[str, Any] = {
        "dagster/row_count": m.row_count,
        "dagster/column_schema": schema,
        "served_version": m.version,
        "bytes_written": dg.MetadataValue.int(m.bytes),
        "rows_written": outcome.rows_written,
        "source_rows": outcome.source_rows,
        "duplicates_removed": int(m.extra.get("duplicates_removed") or 0),
        "mode": outcome.mode,
        "slices": len(outcome.slices),
        "source_query_ids": dg.MetadataValue.json([s.query_id for s in outcome.slices][:50]),
        "source_seconds": round(sum(s.execute_s + s.fetch_s for s in outcome.slices), 3),
        "timings_s": dg.MetadataValue.json({k: round(v, 3) for k, v in outcome.timings.items()}),
    }
    if m.watermark is not None:
        meta["watermark"] = m.watermark
    if outcome.merge:
        meta["merge"] = dg.MetadataValue.json(outcome.merge)
    if outcome.profile_markdown:
        meta["profile"] = dg.MetadataValue.md(outcome.profile_markdown)
    if any(outcome.drift.values()):
        meta["schema_drift"] = dg.MetadataValue.json(outcome.drift)
    if outcome.classification:
        meta["personal_data"] = dg.MetadataValue.json(outcome.classification)
        meta["personal_columns"] = ", ".join(n for n, v in outcome.classification.items() if v.get("personal")) or "none"
    return meta


def _untouched(served: ServedDataResource, table: RegisteredTable) -> str:
    current = served.store().current(table.key, fresh=True)
    return f"served data of {table.key} is untouched (still version {current.version})" if current else \
        f"nothing was served for {table.key} yet, and nothing was published"


def record_run(control_url: str, key: str, run_id: str, outcome: SyncOutcome | BaseException, log: Any) -> None:
    """Record a run's end on the table's status row: the one place for both outcomes of a run step.

    Why here, at the engine/asset boundary: the step knows its outcome first, so agents see
    a failure as soon as the run fails. The run-failure sensor (``orchestration/sensors.py``)
    stays for runs that die before this line can run (``kill -9``, a lost worker, a run
    canceled before its step); ``shared.status.record_failure`` ignores its second report of
    a run already recorded here. A status row that cannot be written is logged, never
    raised: CURRENT is the readers' truth, and a lagging row must neither undo a publish
    nor hide the run's own error.
    """
    try:
        if isinstance(outcome, BaseException):
            status.record_failure(control_url, [key], run_id, _error_message(outcome), dt.datetime.now(dt.UTC))
        else:
            status.record_success(control_url, key, outcome.manifest, run_id)
    except Exception as e:
        what = "its failure" if isinstance(outcome, BaseException) else f"version {outcome.manifest.version}"
        log.warning(f"{key}: could not record {what} on the status row: {e}")


def _error_message(error: BaseException) -> str:
    """The run's root cause as ``module.Class: message``, as the failure sensor reads it from Dagster."""
    while error.__cause__ is not None:
        error = error.__cause__
    return "".join(traceback.format_exception_only(type(error), error)).strip()


def _refused(error: Exception, served: ServedDataResource, table: RegisteredTable) -> Iterator[dg.AssetCheckResult]:
    """Turn an expected failure (refused checks, source down, drift, bad key) into a ``dg.Failure``
    saying what happened and that the served data is untouched; anything else is raised as it is."""
    if isinstance(error, BlockingCheckError):
        yield from check_results(error.verdicts)  # the UI shows which check refused the version
        raise dg.Failure(description=f"{error}; the new version was not published — {_untouched(served, table)}.",
                         metadata={"table": table.key, "error": type(error).__name__}) from error
    if isinstance(error, (SourceError, SchemaDriftError, PartitionKeyError, UnsupportedTypeError, TiedKeyError)):
        raise dg.Failure(description=f"{error} — {_untouched(served, table)}.",
                         metadata={"table": table.key, "error": type(error).__name__}) from error
    raise error


def step_log(context: dg.AssetExecutionContext) -> Any:
    """The step's logger; when an API request asked for the run, every line starts with its id."""
    rid = context.run.tags.get(REQUEST_TAG)
    return PrefixedLog(context.log, f"[request_id={rid}] ") if rid else context.log


def build_table_asset(*, table: RegisteredTable) -> dg.AssetsDefinition:
    """The asset of one registered table."""
    partitions_def = partitions_def_for(table)
    freshness = (dg.FreshnessPolicy.time_window(fail_window=dt.timedelta(seconds=table.freshness_s))
                 if table.freshness_s else None)

    @dg.asset(
        key=dg.AssetKey(table.asset_key_path), group_name=GROUP_NAME, kinds={table.source_kind, "duckdb"},
        description=_description(table),
        partitions_def=partitions_def, backfill_policy=backfill_policy_for(table), freshness_policy=freshness,
        tags={TABLE_TAG: _tag_value(table.key)}, pool=table_pool(table.key), check_specs=table_check_specs(table),
        metadata=_definition_metadata(table),
    )
    def _asset(context: dg.AssetExecutionContext, config: SyncConfig, snowflake: SnowflakeSource,
               served: ServedDataResource) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        keys = list(context.partition_keys) if context.has_partition_key_range or context.has_partition_key else []
        log = step_log(context)
        log.info(f"sync of {table.key} starts ({len(keys)} partition(s))" if keys else f"sync of {table.key} starts")
        request = SyncRequest(
            table=table, connect=connector(table, snowflake=lambda: source_connection(snowflake)),
            served_root=served.served_root(), store=served.store(),
            partition_keys=keys, run_id=context.run.run_id, full_refresh=config.full_refresh,
            slice_rows=served.rows_per_slice(), workers=served.extract_workers, log=log,
        )
        try:
            outcome: SyncOutcome | Exception = sync_table(request)
        except Exception as e:
            outcome = e
        record_run(served.control_db(), table.key, context.run.run_id, outcome, log)
        if isinstance(outcome, Exception):
            yield from _refused(outcome, served, table)  # raises
        else:
            log.info(f"sync of {table.key} published version {outcome.manifest.version} "
                     f"({outcome.manifest.row_count} rows)")
            yield dg.MaterializeResult(metadata=_result_metadata(outcome), check_results=check_results(outcome.verdicts))

    # Resource parameter names must equal the resource keys the definitions provide.
    assert {SNOWFLAKE_RESOURCE_KEY, SERVED_RESOURCE_KEY} <= set(_asset.required_resource_keys)
    return _asset


def build_table_assets(*, tables: Iterable[RegisteredTable]) -> list[dg.AssetsDefinition]:
    return [build_table_asset(table=t) for t in tables]


# --- jobs --------------------------------------------------------------------------------------
# Dagster refuses a job whose assets have different partitions definitions, so nothing may
# target several tables at once: every table gets its own asset job, and schedules and the
# source-change sensor launch through it (a run request names its job). Any mix of layouts
# (daily/hourly/monthly with any start, static, snapshot, unpartitioned) then loads side by side.


def definition_name(table: RegisteredTable, suffix: str) -> str:
    """``<database>__<schema>__<table>_<suffix>``, valid as a Dagster name and unique per table.

    A key that needs replacing characters (quoted names) gets a hash of the exact key, so two
    tables that differ only in such characters never share a job or schedule name.
    """
    joined = "__".join(table.asset_key_path)
    safe = re.sub(r"[^A-Za-z0-9_]", "_", joined)
    if safe != joined:
        import hashlib

        safe = f"{safe[:80]}_{hashlib.sha1(table.key.encode()).hexdigest()[:10]}"  # noqa: S324 - a name
    return f"{safe}_{suffix}"


def table_job_name(table: RegisteredTable) -> str:
    return definition_name(table, "job")


def build_table_job(*, table: RegisteredTable) -> "TableJob":
    """The asset job of one table: its asset and checks, with the table's own partitions."""
    return dg.define_asset_job(
        name=table_job_name(table), selection=dg.AssetSelection.assets(dg.AssetKey(table.asset_key_path)),
        description=f"Syncs {table.key} (schedules and the source-change sensor launch through this job).",
    )


def build_table_jobs(*, tables: Iterable[RegisteredTable]) -> dict[str, "TableJob"]:
    """One job per table, by table key."""
    return {t.key: build_table_job(table=t) for t in tables}
