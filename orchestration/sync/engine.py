"""One materialization of one registered table, without Dagster.

Why separate from the asset: the benchmark, the crash tests and the asset run exactly
this code. Order matters for the served contract: read the source's metadata and plan
the slices first (a dead source fails before anything is touched), then write a private
version under the table's lock, check drift before any row moves, and publish last — so
an error or ``kill -9`` at any point leaves the previous version served.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import snowflake.connector.errors

from orchestration.sync import drift as drift_mod
from orchestration.sync import load
from orchestration.sync.extract import (
    Connect,
    Extraction,
    Slice,
    SliceStats,
    key_range_slices,
    literal,
    pack_windows,
    sf_type,
    window_counts,
    window_slices,
)
from orchestration.sync.sql import qi
from orchestration.sync.types import ORDERED_SLICE_TYPES, base_type, duckdb_type, served_columns
from orchestration.sync.verdicts import (
    PRIMARY_KEY_CHECK,
    ROW_COUNT_CHECK,
    BlockingCheckError,
    Verdict,
    enforce,
    evaluate,
)
from shared import changes, partitions
from shared.profile import profile_markdown
from shared.registry import RegisteredTable
from shared.served import Column, Manifest, publish, read_current, write_version
from shared.snowflake import SourceColumn, SourceError, table_columns

_log = logging.getLogger(__name__)
# The profile shown in Dagster's metadata is computed on at most this many rows (a seeded
# reservoir sample of row ids): its cost stays bounded however large the table grows, so
# a one-partition run stays proportional to its partition. The API profiles full tables.
PROFILE_SAMPLE_ROWS = 100_000
SNAPSHOT_DESCRIPTION = "Day (UTC) on which this copy of the source table was taken."


class SourceTableMissingError(SourceError):
    """The registered table is not visible in the source."""


@dataclasses.dataclass
class SyncRequest:
    table: RegisteredTable
    connect: Connect
    served_root: Path
    partition_keys: Sequence[str] = ()
    run_id: str | None = None
    full_refresh: bool = False
    slice_rows: int = 250_000
    workers: int = 2
    now: dt.datetime | None = None
    log: Any = None


@dataclasses.dataclass
class _Planned:
    """Everything decided from the source before the served folder is touched."""

    mode: str
    source: list[SourceColumn]
    target: list[Column]
    slices: list[Slice]
    source_rows: int
    windows: list[partitions.Window]
    window_rows: list[int] = dataclasses.field(default_factory=list)  # source rows per window (partition mode)


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


def _mode(table: RegisteredTable, full_refresh: bool) -> str:
    if table.strategy == "snapshot":
        return "snapshot"
    if table.partitioned:
        return "partition"
    if table.strategy == "incremental" and not full_refresh:
        return "merge"
    return "replace"


def _slice_column(table: RegisteredTable, cols: Sequence[SourceColumn]) -> SourceColumn | None:
    """The column whose ranges split an unpartitioned scan: key, cursor, then any ordered column."""
    by_name = {c.name: c for c in cols}  # names are exact (case included)
    ordered = [c for c in cols if base_type(duckdb_type(c)) in ORDERED_SLICE_TYPES]
    names = (*table.primary_key[:1], table.cursor_column or "", table.partition_column or "")
    preferred = [by_name.get(n) for n in names]
    for c in [*preferred, *(c for c in ordered if not c.nullable), *ordered]:
        if c is not None and c in ordered:
            return c
    return None


def _watermark_floor(table: RegisteredTable, col: SourceColumn, previous: Manifest | None) -> Any:
    """Lowest cursor to re-read: last watermark minus the lookback window (None: read all).

    The same floor the API's refresh and the source-change sensor use (``shared.changes``)."""
    return changes.watermark_floor(table, previous)


def _partition_slices(table: RegisteredTable, cols: Sequence[SourceColumn],
                      windows: list[partitions.Window]) -> list[Slice]:
    """One source slice per partition window, on the registered partition column."""
    column = next(c for c in cols if c.name == table.partition_column)
    return window_slices(column, windows, partitions.time_kind(table) or partitions.STATIC)


def _snapshot_column(req: SyncRequest, cols: Sequence[SourceColumn]) -> str:
    """The snapshot-date column's name: the one already served, else ``_SNAPSHOT_DATE`` unless a
    source column has that name (then ``_SNAPSHOT_DATE_2`` …)."""
    previous = None if req.full_refresh else read_current(req.served_root, req.table.key)
    if previous is not None and previous.columns:
        named = previous.extra.get("snapshot_column") or load.SNAPSHOT_COLUMN
        if any(c.name == named for c in previous.columns) and not any(c.name == named for c in cols):
            return str(named)
    return load.helper_name(load.SNAPSHOT_COLUMN, [c.name for c in cols])


def _table_rows(con: Any, table: RegisteredTable) -> int:
    """The source table's row count."""
    return key_range_slices(con, table, None, base=Slice("all"), slice_rows=1)[1]


def _plan(req: SyncRequest, con: Any, cols: list[SourceColumn], mode: str,
          windows: list[partitions.Window]) -> tuple[list[Slice], int, list[int]]:
    table, by_name = req.table, {c.name: c for c in cols}
    splitter = _slice_column(table, cols)
    bases: list[Slice] = [Slice(label="all")]
    if mode == "partition":
        per_window = _partition_slices(table, cols, windows)
        counts = window_counts(con, table, per_window)
        packed, bases = pack_windows(per_window, counts, req.slice_rows)  # only oversized windows are split further
        slices = list(packed)
        for base in bases:
            slices += key_range_slices(con, table, splitter, base=base, slice_rows=req.slice_rows)[0]
        return slices, sum(counts), list(counts)
    if mode == "merge":
        cursor = by_name[str(table.cursor_column)]
        floor = _watermark_floor(table, cursor, read_current(req.served_root, table.key))
        if floor is not None:  # >= (not >): rows sharing the watermark are re-read; the merge makes it harmless
            bases = [Slice(label="delta", where=f"{qi(cursor.name)} >= CAST(%s AS {sf_type(cursor)})", params=(literal(floor),))]
    slices, total = [], 0
    for base in bases:
        parts, count = key_range_slices(con, table, splitter, base=base, slice_rows=req.slice_rows)
        slices += parts
        total += count
    return slices, total, []


def _recount(req: SyncRequest, planned: _Planned) -> int | None:
    """The scope's source rows counted again after extraction (None: not comparable, or unreadable).

    Only called when the served rows differ from the count taken while planning: a source
    written to during the sync then shows where it moved, so the row-count check can tell
    a moving source (served rows between the two counts) from lost rows.
    """
    table = req.table
    if planned.mode not in ("partition", "replace", "snapshot"):
        return None  # a merge counts the whole source against the whole served table; it only warns
    try:
        with req.connect() as con:
            if planned.mode == "partition":
                return sum(window_counts(con, table, _partition_slices(table, planned.source, planned.windows)))
            return _table_rows(con, table)
    except Exception as e:  # the check then judges on the first count alone
        (req.log or _log).warning(f"{table.key}: could not recount the source ({type(e).__name__}: {e})")
    return None


def sync_table(req: SyncRequest) -> SyncOutcome:
    """Copy the scope of ``req`` (whole table, partitions, or the cursor delta) into a new served version."""
    table, log = req.table, req.log or _log
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    windows: list[partitions.Window] = []
    if partitions.is_partitioned(table):
        if not req.partition_keys:
            raise partitions.PartitionKeyError(f"{table.key} is partitioned; name a partition key")
        windows = partitions.windows(table, list(req.partition_keys), now=req.now)
    elif req.partition_keys:
        partitions.validate_partition_key(table, req.partition_keys[0])  # raises: not partitioned
    mode = _mode(table, req.full_refresh)
    try:
        with req.connect() as con:
            cols = table_columns(con, table.database, table.schema, table.table)
            if not cols:
                raise SourceTableMissingError(
                    f"table {table.database}.{table.schema}.{table.table} does not exist in the source "
                    "(dropped, renamed, or not visible to this role)"
                )
            slices, source_rows, window_rows = _plan(req, con, cols, mode, windows)
            if mode == "merge":
                source_rows = _table_rows(con, table)
    except snowflake.connector.errors.Error as e:
        raise SourceError(f"reading {table.database}.{table.schema}.{table.table} from Snowflake failed: {e}") from e
    timings["plan_s"] = time.perf_counter() - t0
    target = served_columns(cols)
    if mode == "snapshot":
        target = [Column(_snapshot_column(req, cols), "DATE", nullable=False, description=SNAPSHOT_DESCRIPTION), *target]
    log.info(f"{table.key}: {mode} of {len(slices)} slice(s), {source_rows} source row(s)")
    return _write(req, _Planned(mode, cols, target, slices, source_rows, windows, window_rows), timings, t0)


def _write(req: SyncRequest, planned: _Planned, timings: dict[str, float], t0: float) -> SyncOutcome:
    table, log = req.table, req.log or _log
    mode, target, cols, slices, windows = planned.mode, planned.target, planned.source, planned.slices, planned.windows
    source_rows = planned.source_rows
    copy = mode in ("partition", "snapshot", "merge") and not req.full_refresh
    t_copy = time.perf_counter()
    with write_version(req.served_root, table.key, copy_previous=copy) as pending:
        timings["copy_s"] = time.perf_counter() - t_copy  # lock + copy-on-write of the previous version
        con = pending.con
        load.prepare(con)
        previous = pending.previous
        plan = drift_mod.plan(table.key, previous.columns, target) if previous and not req.full_refresh else None
        has_data = copy and previous is not None
        if has_data and plan is not None:
            drift_mod.apply(con, plan)
            columns = plan.columns
        else:
            load.create_table(con, "data", target)
            columns = target
        by_name = {c.name: c for c in columns}
        part_col = by_name.get(str(table.partition_column)) if table.partition_column else None
        if mode == "partition" and has_data and part_col is not None:
            load.delete_windows(con, part_col, windows)
        snap_key = windows[0].key if mode == "snapshot" else None
        snap_col = target[0].name if mode == "snapshot" else None
        if snap_key and has_data:
            day = dt.date.fromisoformat(snap_key)
            con.execute(f"DELETE FROM {qi('data')} WHERE {qi(str(snap_col))} = ?", [day])
        staged = table.primary_key and table.strategy == "incremental" and has_data
        into = load.STAGE_TABLE if staged else "data"
        if staged:
            load.create_table(con, load.STAGE_TABLE, columns, temp=True)
        constants: dict[str, Any] = {str(snap_col): dt.date.fromisoformat(snap_key)} if snap_key else {}
        written = 0
        t1 = time.perf_counter()
        extraction = Extraction(req.connect, table, [c.name for c in cols], slices, workers=req.workers)
        try:
            for _piece, batch in extraction:
                written += load.insert_batch(con, into, columns, batch, constants=constants)
        except snowflake.connector.errors.Error as e:
            raise SourceError(f"extracting {table.key} from Snowflake failed: {e}") from e
        timings["extract_load_s"] = time.perf_counter() - t1
        merge: dict[str, int] = {}
        key, cursor = list(table.primary_key), table.cursor_column
        if staged:
            # A partition write holds the source's current rows of its keys: a key's copy in another
            # partition (its partition column changed in the source) goes, whatever its cursor.
            merge = load.merge_stage(con, columns, key, cursor, source_wins=mode == "partition")
        elif table.strategy == "incremental" and key:
            merge = {"duplicates_dropped": load.dedupe(con, "data", key, cursor)}
        watermark, wm_type = None, None
        if table.strategy == "incremental" and cursor:
            value = load.max_value(con, cursor)
            watermark = value.isoformat() if isinstance(value, dt.date) else (str(value) if value is not None else None)
            wm_type = by_name[cursor].type if watermark else None
        t_checks = time.perf_counter()
        # Served rows per written partition, counted once: the row-count check, the refusal
        # message and the manifest's partition list all use them.
        served_by_window = ({w.key: load.count_windows(con, part_col, [w]) for w in windows}
                            if mode == "partition" and part_col is not None else {})
        scope_rows = sum(served_by_window.values()) if served_by_window else _scope_rows(con, mode, snap_key, snap_col)
        dupes = _duplicates(con, key, mode=mode, merge=merge, part_col=part_col, snap_col=snap_col,
                            windows=windows, has_data=has_data) if key else None
        summary = plan.summary() if plan else {}
        removed, kept_newer = merge.get("duplicates_dropped", 0), merge.get("kept_newer", 0)
        merge_expected = merge["expected_rows"] if mode == "merge" and "expected_rows" in merge else None
        explained = source_rows - removed - kept_newer
        after = _recount(req, planned) if merge_expected is None and scope_rows != explained else None
        verdicts = evaluate(table, source_rows=source_rows, served_rows=scope_rows, duplicate_keys=dupes, drift=summary,
                            source_rows_after=after, duplicates_removed=removed, kept_newer=kept_newer,
                            merge_expected=merge_expected)
        timings["checks_s"] = time.perf_counter() - t_checks
        try:
            enforce(verdicts)  # raises inside write_version: the private version is discarded, CURRENT untouched
        except BlockingCheckError as refused:
            if mode == "partition" and part_col is not None and len(windows) > 1:
                refused.partitions = _failing_windows(con, planned, part_col, key, verdicts, served=served_by_window)
            raise
        t_profile = time.perf_counter()
        scope = None
        if mode == "partition" and part_col is not None and has_data:
            predicate, values = load.windows_predicate(part_col, windows)
            scope = (predicate, values, "partition " + ", ".join(w.key for w in windows[:3])
                     + (f" and {len(windows) - 3} more" if len(windows) > 3 else ""))
        profile_md = _profile(con, table.key, log, scope=scope)
        timings["profile_s"] = time.perf_counter() - t_profile
        t2 = time.perf_counter()
        keys_done = [w.key for w in windows]
        parts = dict(previous.partitions) if previous and has_data else {}
        stamp = dt.datetime.now(dt.UTC).isoformat()
        for w in windows:
            rows = served_by_window.get(w.key, written)  # a snapshot's one window holds what this run wrote
            parts[w.key] = {"rows": rows, "run_id": req.run_id, "materialized_at": stamp}
        extra = {
            "mode": mode, "watermark_type": wm_type, "drift": summary, "source_rows": source_rows,
            "rows_written": written, "duplicates_removed": removed, "kept_newer_served": kept_newer,
            "snapshot_column": snap_col, "slices": len(slices),
            "source_query_ids": [s.query_id for s in extraction.stats][:100],
        }
        manifest = publish(
            req.served_root, pending, strategy=table.strategy, row_count=load.count_rows(con), columns=columns,
            partitions=parts, watermark=watermark, run_id=req.run_id, extra=extra,
        )
        timings["publish_s"] = time.perf_counter() - t2
    timings["total_s"] = time.perf_counter() - t0
    log.info(f"{table.key}: published version {manifest.version} ({manifest.row_count} rows, {written} written)")
    return SyncOutcome(
        manifest=manifest, mode=mode, rows_written=written, source_rows=source_rows, served_scope_rows=scope_rows,
        duplicate_keys=dupes, drift=summary, slices=extraction.stats, timings=timings, partition_keys=keys_done, merge=merge,
        verdicts=verdicts, profile_markdown=profile_md,
    )


def _failing_windows(con: Any, planned: _Planned, part_col: Column, key: list[str], verdicts: list[Verdict],
                     *, served: dict[str, int]) -> list[str]:
    """Which partitions of a refused multi-partition run fail a blocking check on their own, so
    ops can re-run the others (a run publishes its partitions together or not at all)."""
    blocking = {v.name for v in verdicts if v.blocking and not v.passed}
    failing = []
    for i, w in enumerate(planned.windows):
        bad = False
        if ROW_COUNT_CHECK in blocking and i < len(planned.window_rows):
            bad = served[w.key] != planned.window_rows[i]
        if not bad and PRIMARY_KEY_CHECK in blocking and key:
            bad = load.duplicate_keys(con, key, scope=load.windows_predicate(part_col, [w])) > 0
        if bad:
            failing.append(w.key)
    return failing


def _profile(con: Any, key: str, log: Any, *, scope: tuple[str, list[Any], str] | None = None) -> str | None:
    """The profile of what this materialization serves, as Markdown; None if it fails, since a
    profile is for people and must never fail or block a sync.

    ``scope`` (predicate, params, label) narrows it to the partitions this run wrote, so a
    partition run profiles its partition, not the table. Past ``PROFILE_SAMPLE_ROWS`` rows
    it profiles a seeded reservoir sample.
    """
    try:
        where, params, label = scope or ("TRUE", [], "all")
        con.execute(f"CREATE OR REPLACE TEMP TABLE _profile_scope AS SELECT * FROM (SELECT * FROM {qi('data')} "
                    f"WHERE {where}) USING SAMPLE reservoir({PROFILE_SAMPLE_ROWS} ROWS) REPEATABLE (0)", params)
        scoped = int(con.execute(f"SELECT count(*) FROM {qi('data')} WHERE {where}", params).fetchone()[0])
        what = f"{label} ({scoped:,} rows)" if scoped <= PROFILE_SAMPLE_ROWS else \
            f"a {PROFILE_SAMPLE_ROWS:,}-row sample of {label} ({scoped:,} rows)"
        return profile_markdown(con, "_profile_scope", title=f"{key}: profile of {what}")
    except Exception as e:
        log.warning(f"{key}: could not profile the new version ({type(e).__name__}: {e})")
        return None
    finally:
        with contextlib.suppress(Exception):
            con.execute("DROP TABLE IF EXISTS _profile_scope")


def _duplicates(con: Any, key: list[str], *, mode: str, merge: dict[str, int], part_col: Column | None,
                snap_col: str | None, windows: list[partitions.Window], has_data: bool) -> int:
    """Primary-key duplicates, checked over what this run wrote when older rows were kept."""
    if "duplicate_keys" in merge:  # a merge checked its staged keys before dropping the stage
        return merge["duplicate_keys"]
    if mode == "snapshot":  # a key repeats across snapshot days by design; unique within one day
        day = dt.date.fromisoformat(windows[0].key)
        return load.duplicate_keys(con, key, scope=(f"{qi(str(snap_col))} = ?", [day]), across=False)
    if mode == "partition" and has_data and part_col is not None:
        return load.duplicate_keys(con, key, scope=load.windows_predicate(part_col, windows))
    return load.duplicate_keys(con, key)


def _scope_rows(con: Any, mode: str, snap_key: str | None, snap_col: str | None) -> int:
    """Served rows in the scope the source rows were counted for (the row-count check), outside
    partition mode, whose rows are counted per window."""
    if mode == "snapshot" and snap_key:
        row = con.execute(f"SELECT count(*) FROM {qi('data')} WHERE {qi(str(snap_col))} = ?",
                          [dt.date.fromisoformat(snap_key)]).fetchone()
        return int(row[0])
    return load.count_rows(con)
