"""Asset checks declared on every table asset and evaluated from the materialization itself.

Why evaluated in the asset: the numbers (source rows for the window, served rows for the
same window, duplicate keys, drift) are known at the end of the sync, so the checks cost
no extra query and cannot disagree with what was published. The verdicts, and which of
them block publication, live in ``orchestration/sync/verdicts.py``: the engine refuses to
publish a version whose blocking check fails, and this module reports the same verdicts
to Dagster, on success and on refusal alike (yielded before the step fails).
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from orchestration.sync.verdicts import (
    PRIMARY_KEY_CHECK,
    ROW_COUNT_CHECK,
    SCHEMA_DRIFT_CHECK,
    Verdict,
    row_count_blocks,
)
from shared.registry import RegisteredTable

__all__ = ["PRIMARY_KEY_CHECK", "ROW_COUNT_CHECK", "SCHEMA_DRIFT_CHECK", "check_results",
           "table_check_specs"]


def table_check_specs(table: RegisteredTable) -> list[dg.AssetCheckSpec]:
    key = dg.AssetKey(table.asset_key_path)
    specs = [
        dg.AssetCheckSpec(ROW_COUNT_CHECK, asset=key, blocking=row_count_blocks(table),
                          description="Served rows in the materialized scope equal the source's rows for the same scope, "
                                      "minus the duplicates the primary key removed (counted and reported)."),
        dg.AssetCheckSpec(SCHEMA_DRIFT_CHECK, asset=key,
                          description="Source columns were not removed or retyped since the previous version."),
    ]
    if table.primary_key:
        specs.append(dg.AssetCheckSpec(PRIMARY_KEY_CHECK, asset=key, blocking=True,
                                       description=f"({', '.join(table.primary_key)}) is unique in the served table."))
    return specs


def _severity(v: Verdict) -> dg.AssetCheckSeverity:
    return dg.AssetCheckSeverity.ERROR if v.blocking else dg.AssetCheckSeverity.WARN


def _metadata(v: Verdict) -> dict[str, Any]:
    return {k: val if isinstance(val, int) else dg.MetadataValue.json(val) for k, val in v.metadata.items()}


def check_results(verdicts: list[Verdict]) -> list[dg.AssetCheckResult]:
    """The verdicts of a published materialization, one result per spec of ``table_check_specs``."""
    return [dg.AssetCheckResult(check_name=v.name, passed=v.passed, severity=_severity(v), metadata=_metadata(v))
            for v in verdicts]

