"""Asset checks declared on every table asset and evaluated from the materialization itself.

Why evaluated in the asset: the numbers (source rows for the window, served rows for the
same window, duplicate keys, drift) are known at the end of the sync, so the checks cost
no extra query and cannot disagree with what was published. Check names are constants so
schedules, sensors, the API and tests refer to the same strings; extend here.
"""

from __future__ import annotations

import dagster as dg

from orchestration.sync.engine import SyncOutcome
from shared.registry import RegisteredTable

ROW_COUNT_CHECK = "row_count_matches_source"
PRIMARY_KEY_CHECK = "primary_key_unique"
SCHEMA_DRIFT_CHECK = "no_unexpected_schema_drift"


def table_check_specs(table: RegisteredTable) -> list[dg.AssetCheckSpec]:
    key = dg.AssetKey(table.asset_key_path)
    specs = [
        dg.AssetCheckSpec(ROW_COUNT_CHECK, asset=key, blocking=table.strategy != "incremental",
                          description="Served rows in the materialized scope equal the source's rows for the same scope."),
        dg.AssetCheckSpec(SCHEMA_DRIFT_CHECK, asset=key,
                          description="Source columns were not removed or retyped since the previous version."),
    ]
    if table.primary_key:
        specs.append(dg.AssetCheckSpec(PRIMARY_KEY_CHECK, asset=key, blocking=True,
                                       description=f"({', '.join(table.primary_key)}) is unique in the served table."))
    return specs


def check_results(table: RegisteredTable, outcome: SyncOutcome) -> list[dg.AssetCheckResult]:
    """One result per spec of ``table_check_specs``."""
    # Incremental runs merge a delta; a source delete is invisible to them, so a mismatch warns.
    severity = dg.AssetCheckSeverity.WARN if table.strategy == "incremental" else dg.AssetCheckSeverity.ERROR
    results = [
        dg.AssetCheckResult(
            check_name=ROW_COUNT_CHECK, passed=outcome.served_scope_rows == outcome.source_rows, severity=severity,
            metadata={"source_rows": outcome.source_rows, "served_rows": outcome.served_scope_rows},
        ),
        dg.AssetCheckResult(
            check_name=SCHEMA_DRIFT_CHECK, passed=not (outcome.drift.get("removed") or outcome.drift.get("widened")),
            severity=dg.AssetCheckSeverity.WARN,
            metadata={k: dg.MetadataValue.json(v) for k, v in outcome.drift.items()},
        ),
    ]
    if table.primary_key:
        results.append(dg.AssetCheckResult(
            check_name=PRIMARY_KEY_CHECK, passed=(outcome.duplicate_keys or 0) == 0,
            metadata={"duplicate_rows": outcome.duplicate_keys or 0},
        ))
    return results
