"""Step 1 of a materialization: read the source's metadata and decide everything before any write.

Why first and on its own: a dead or missing source fails here, before the served folder
is touched, and everything the later steps need from the source (mode, columns, slices,
the watermark floor, the source counts and what to count again after extraction) is
decided once. The write step runs under the table's lock and never plans again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import snowflake.connector.errors

from orchestration.sync import load
from orchestration.sync.extract import (
    Connect,
    Slice,
    key_range_slices,
    pack_windows,
    sf_type,
    window_census,
    window_counts,
    window_slices,
)
from orchestration.sync.sql import qi
from orchestration.sync.types import ORDERED_SLICE_TYPES, base_type, duckdb_type, served_columns
from shared import changes, identifiers, partitions
from shared.registry import RegisteredTable, cursor_type_problem
from shared.served import Column, Manifest
from shared.served_storage import ServedStore
from shared.snowflake import SourceColumn, SourceError
from shared.sources import describe, table_columns

# One logger for every step, so a run's lines read as one materialization.
_log = logging.getLogger("orchestration.sync.engine")
SNAPSHOT_DESCRIPTION = "Day (UTC) on which this copy of the source table was taken."


class SourceTableMissingError(SourceError):
    """The registered table is not visible in the source."""


class RegisteredColumnError(SourceError):
    """A column the registration names (primary key, cursor, partition column) is gone from the
    source, or the cursor's type cannot carry a watermark.

    Why a refusal and not drift: every other dropped column is kept and served as NULL, but
    these decide which rows are written and merged. A primary key served as NULL merges every
    new row into one; a missing cursor or partition column selects nothing meaningful. The
    registration must be changed (or the column restored) before the table can sync again.
    """


class SourceColumnsCollideError(SourceError):
    """Two source columns differ only in ASCII case: one DuckDB column name for both."""


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
    store: ServedStore | None = None  # where versions are published (default: the local folder at served_root)

    @property
    def logger(self) -> Any:
        return self.log or _log

    @property
    def served(self) -> ServedStore:
        """The served-data store this run reads its base from and publishes to."""
        return self.store if self.store is not None else ServedStore(self.served_root)


@dataclasses.dataclass(frozen=True)
class Recount:
    """What to count again in the source after extraction, decided while planning.

    The check step counts again only when the served rows differ from the planned count:
    a source written to during the sync then shows where it moved. ``windows``: the
    per-partition slices of a partition run; None: the whole table.
    """

    windows: list[Slice] | None

    def count(self, connect: Connect, table: RegisteredTable) -> int:
        with connect() as con:
            if self.windows is not None:
                return sum(window_counts(con, table, self.windows))
            return table_rows(con, table)


@dataclasses.dataclass
class Planned:
    """Everything decided from the source before the served folder is touched."""

    mode: str
    source: list[SourceColumn]
    target: list[Column]
    slices: list[Slice]
    source_rows: int
    windows: list[partitions.Window]
    window_rows: list[int] = dataclasses.field(default_factory=list)  # source rows per window (partition mode)
    # Source rows without a cursor per window (partition mode of a cursor-based table): the change
    # scan compares the source's with them, since no watermark can tell such a row is new.
    window_nulls: list[int] = dataclasses.field(default_factory=list)
    recount: Recount | None = None  # None: not comparable (a merge counts the whole source; it only warns)
    # The lowest cursor a merge re-reads (None: it reads everything): every source row at or past
    # it is in the delta, so a served row of a staged key with such a cursor is no longer the source's.
    floor: Any = None
    # Served partitions this run does not write where a column the served version lacks has values
    # (added with a default, renamed): recorded as not served until a run rewrites them.
    unread_partitions: list[str] = dataclasses.field(default_factory=list)
    key_changed: bool = False  # the served version was written under another primary key: check every row
    starts_empty: bool = False  # the served version's rows cannot be kept (a snapshot's and another strategy's)
    # When the source was first read (the real clock, not ``SyncRequest.now``): no row read
    # afterwards can have been committed before it, so a time watermark never passes it.
    read_at: dt.datetime = dataclasses.field(default_factory=lambda: dt.datetime.now(dt.UTC))

    @property
    def copies_previous(self) -> bool:
        """Whether the write starts from a copy of the served version (it keeps rows outside the scope)."""
        return self.mode in ("partition", "snapshot", "merge") and not self.starts_empty


def plan(req: SyncRequest) -> Planned:
    """Read the source's columns and counts and decide the slices; raises before anything is written."""
    table = req.table
    read_at = dt.datetime.now(dt.UTC)
    windows: list[partitions.Window] = []
    if partitions.is_partitioned(table):
        if not req.partition_keys:
            raise partitions.PartitionKeyError(f"{table.key} is partitioned; name a partition key")
        windows = partitions.windows(table, list(req.partition_keys), now=req.now)
    elif req.partition_keys:
        partitions.validate_partition_key(table, req.partition_keys[0])  # raises: not partitioned
    mode = _mode(table, req.full_refresh)
    changed = [] if req.full_refresh else changes.written_under(table, req.served.current(table.key))
    if mode == "merge" and changed:
        # The served rows were written under another cursor, key, partitioning or strategy: a
        # merge cannot continue from them, a full read under the new registration can (what a
        # first sync would serve).
        req.logger.info(f"{table.key}: the served version was written under another {' and '.join(changed)}; "
                        "reading the whole table instead of merging")
        mode = "replace"
    try:
        with req.connect() as con:
            cols = table_columns(con, table)
            if not cols:
                raise SourceTableMissingError(
                    f"table {describe(table)} does not exist in the source "
                    "(dropped, renamed, or not visible to this role)"
                )
            _require_registered_columns(table, cols)
            if mode == "merge" and (unread := changes.unread_values(con, table, req.served.current(table.key), cols)):
                # A column added with a default, or renamed, has values in rows the merge would not read again.
                req.logger.info(f"{table.key}: {unread} source row(s) below the merge's floor hold values in columns "
                                "the served version lacks; reading the whole table instead of merging")
                mode = "replace"
            floor = _watermark_floor(table, req.served.current(table.key)) if mode == "merge" else None
            stale = _unread_partitions(req, con, cols, windows) if mode == "partition" else []
            if stale:
                req.logger.info(f"{table.key}: a column the served version lacks has values in {len(stale)} served "
                                "partition(s) this run does not write; they count as not served until rewritten")
            slices, source_rows, window_rows, window_nulls, per_window = _slices(req, con, cols, mode, windows, floor=floor)
            if mode == "merge":
                source_rows = table_rows(con, table)
    except snowflake.connector.errors.Error as e:
        raise SourceError(f"reading {table.database}.{table.schema}.{table.table} from Snowflake failed: {e}") from e
    target = served_columns(cols)
    if mode == "snapshot":
        target = [Column(_snapshot_column(req, cols), "DATE", nullable=False, description=SNAPSHOT_DESCRIPTION), *target]
    recount = None if mode == "merge" else Recount(per_window if mode == "partition" else None)
    req.logger.info(f"{table.key}: {mode} of {len(slices)} slice(s), {source_rows} source row(s)")
    # Rows served as daily snapshots are no rows of a table copied once, nor the reverse: a run
    # switching between the two starts from an empty table (kept, they were served with no
    # snapshot date, or one copy per day).
    starts_empty = "strategy" in changed
    if starts_empty:
        req.logger.info(f"{table.key}: the served version was written as another strategy; its rows are not kept")
    return Planned(mode, cols, target, slices, source_rows, windows, window_rows, window_nulls, recount, floor, stale,
                   key_changed="primary_key" in changed, starts_empty=starts_empty, read_at=read_at)


def _unread_partitions(req: SyncRequest, con: Any, cols: Sequence[SourceColumn],
                       windows: list[partitions.Window]) -> list[str]:
    """Served partitions outside this run's windows where a column the served version lacks has
    values in the source (names compared without case: a rename only in case keeps its values)."""
    previous = None if req.full_refresh else req.served.current(req.table.key)
    served = partitions.served_partitions(req.table, previous)
    if previous is None or not served:
        return []
    have = {c.name.upper() for c in previous.columns}
    added = [c.name for c in cols if c.name.upper() not in have]
    if not added:
        return []
    now = req.now or dt.datetime.now(dt.UTC)
    written = {w.key for w in windows}
    found = changes.partitions_with_values(con, req.table, cols, added, now=now)
    return sorted(k for k in found if k in served and k not in written)


def _require_registered_columns(table: RegisteredTable, cols: Sequence[SourceColumn]) -> None:
    """Raise ``RegisteredColumnError`` naming every registered column the source lacks
    (names are exact: a column renamed to another case is another column), or
    ``SourceColumnsCollideError`` for two columns DuckDB cannot tell apart."""
    names = {c.name for c in cols}
    roles: list[tuple[str, str | None]] = [("primary key", k) for k in table.primary_key]
    roles += [("incremental key", table.cursor_column), ("partition", table.partition_column)]
    missing = [f"{role} column {identifiers.snowflake_reference(name)}" for role, name in roles
               if name and name not in names]
    if missing:
        raise RegisteredColumnError(
            f"the source table {describe(table)} no longer has the registered {', '.join(missing)} "
            "(dropped or renamed); register the table again with its current columns")
    cursor = next((c for c in cols if c.name == table.cursor_column), None)
    if cursor is not None and (problem := cursor_type_problem(cursor)):  # its type changed since registration
        raise RegisteredColumnError(f"the incremental key of {describe(table)} cannot be merged on: {problem}")
    clashes = identifiers.column_collisions([c.name for c in cols])
    if clashes:  # registration refuses these; a column added later must not reach DuckDB's own error
        a, b = (identifiers.snowflake_reference(n) for n in clashes[0])
        raise SourceColumnsCollideError(f"columns {a} and {b} of {describe(table)} differ only in case, which DuckDB "
                                        "cannot serve as two columns; rename one of them in the source")


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


def _watermark_floor(table: RegisteredTable, previous: Manifest | None) -> Any:
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
    previous = None if req.full_refresh else req.served.current(req.table.key)
    if previous is not None and previous.columns:
        named = previous.extra.get("snapshot_column") or load.SNAPSHOT_COLUMN
        if any(c.name == named for c in previous.columns) and not any(c.name == named for c in cols):
            return str(named)
    return load.helper_name(load.SNAPSHOT_COLUMN, [c.name for c in cols])


def table_rows(con: Any, table: RegisteredTable) -> int:
    """The source table's row count."""
    return key_range_slices(con, table, None, base=Slice("all"), slice_rows=1)[1]


def _slices(req: SyncRequest, con: Any, cols: list[SourceColumn], mode: str, windows: list[partitions.Window],
            *, floor: Any) -> tuple[list[Slice], int, list[int], list[int], list[Slice]]:
    """(slices to extract, source rows of the scope, source rows per window, of them without a
    cursor (cursor-based tables), one slice per window)."""
    table, by_name = req.table, {c.name: c for c in cols}
    splitter = _slice_column(table, cols)
    bases: list[Slice] = [Slice(label="all")]
    if mode == "partition":
        per_window = _partition_slices(table, cols, windows)
        nullable = table.cursor_column if changes.cursor_based(table) else None  # rows without it are counted
        counts, nulls = window_census(con, table, per_window, nullable)
        packed, bases = pack_windows(per_window, counts, req.slice_rows)  # only oversized windows are split further
        slices = list(packed)
        for base in bases:
            slices += key_range_slices(con, table, splitter, base=base, slice_rows=req.slice_rows)[0]
        return slices, sum(counts), list(counts), (list(nulls) if nullable else []), per_window
    if mode == "merge":
        cursor = by_name[str(table.cursor_column)]
        if floor is not None:  # >= (not >): rows sharing the watermark are re-read; the merge makes it harmless
            # Rows without a cursor are re-read too: no watermark can say whether one is new, and a
            # NULL compares with none, so a row inserted without a cursor was never served.
            c = qi(cursor.name)
            bases = [Slice(label="delta", where=f"({c} >= CAST(%s AS {sf_type(cursor)}) OR {c} IS NULL)",
                           params=(changes.bind(floor),))]
    slices, total = [], 0
    for base in bases:
        parts, count = key_range_slices(con, table, splitter, base=base, slice_rows=req.slice_rows)
        slices += parts
        total += count
    return slices, total, [], [], []
