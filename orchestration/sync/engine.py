"""One materialization of one registered table, without Dagster: plan, write, check, profile, publish.

Every version is classified for personal data (``shared/classify.py``) before it is
published, and the verdicts travel in its manifest, so a column (a drifted one too) is never
served before its classification is.

Why separate from the asset: the benchmark, the crash tests and the asset run exactly
this code. Order matters for the served contract: plan against the source first (a dead
source fails before anything is touched, ``plan.py``), then write a private version under
the table's lock (``write.py``), check it (``verdicts.py``), profile it and publish last
(``publish.py``), so an error or ``kill -9`` at any point leaves the previous version served.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from orchestration.sync.extract import SliceStats
from orchestration.sync.plan import SNAPSHOT_DESCRIPTION, SourceTableMissingError, SyncRequest, plan
from orchestration.sync.publish import classify, profile, publish_version
from orchestration.sync.verdicts import Verdict, check
from orchestration.sync.write import private_version
from shared.served import Manifest

__all__ = ["SNAPSHOT_DESCRIPTION", "SourceTableMissingError", "SyncOutcome", "SyncRequest", "sync_table"]


@dataclasses.dataclass
class SyncOutcome:
    """What one materialization did; the asset turns it into Dagster metadata and checks."""

    manifest: Manifest
    mode: str
    rows_written: int
    source_rows: int
    served_scope_rows: int
    duplicate_keys: int | None
    drift: dict[str, list[str]]
    slices: list[SliceStats]
    timings: dict[str, float]
    partition_keys: list[str]
    merge: dict[str, int] = dataclasses.field(default_factory=dict)
    verdicts: list[Verdict] = dataclasses.field(default_factory=list)
    profile_markdown: str | None = None
    classification: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)


def sync_table(req: SyncRequest) -> SyncOutcome:
    """Copy the scope of ``req`` (whole table, partitions, or the cursor delta) into a new served version."""
    t0 = time.perf_counter()
    planned = plan(req)
    timings = {"plan_s": time.perf_counter() - t0}
    with private_version(req, planned, timings) as written:  # raising inside discards the version
        checked = check(written)
        profile_md = profile(written)
        verdicts = classify(written)
        manifest = publish_version(written, checked, classification=verdicts)
    timings["total_s"] = time.perf_counter() - t0
    req.logger.info(f"{req.table.key}: published version {manifest.version} "
                    f"({manifest.row_count} rows, {written.rows_written} written)")
    return SyncOutcome(
        manifest=manifest, mode=planned.mode, rows_written=written.rows_written, source_rows=planned.source_rows,
        served_scope_rows=checked.scope_rows, duplicate_keys=checked.duplicate_keys, drift=checked.drift,
        slices=written.slices, timings=timings, partition_keys=[w.key for w in planned.windows],
        merge=written.merge, verdicts=checked.verdicts, profile_markdown=profile_md, classification=verdicts,
    )
