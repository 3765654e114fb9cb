"""The data checks of one materialization, decided before it is published.

Why here and not only in Dagster: Dagster's blocking checks run after the step has
returned, when the new version is already served. The engine knows the figures (source
rows for the scope, served rows for the same scope, duplicate keys, drift) while the new
version is still private, so it refuses to publish when a blocking check fails and the
readers keep the last good version. ``orchestration/checks.py`` turns the same verdicts
into Dagster check results, so the UI and the gate can never disagree.

``check`` is step 3 of a materialization: it counts the written version (served rows of
the scope, duplicate keys), counts the source again when the rows differ (what to count
was decided by the plan), judges, and refuses the version, naming the failing partitions.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from typing import TYPE_CHECKING, Any

from orchestration.sync import load
from orchestration.sync.sql import qi
from shared.registry import RegisteredTable
from shared.served import Column

if TYPE_CHECKING:
    from orchestration.sync.write import Written

ROW_COUNT_CHECK = "row_count_matches_source"
PRIMARY_KEY_CHECK = "primary_key_unique"
SCHEMA_DRIFT_CHECK = "no_unexpected_schema_drift"


@dataclasses.dataclass(frozen=True)
class Verdict:
    name: str
    passed: bool
    blocking: bool  # a failure means the data is wrong: the version is not published
    metadata: dict[str, Any]

    def describe(self) -> str:
        figures = ", ".join(f"{k}={v}" for k, v in self.metadata.items())
        return f"check {self.name} failed ({figures})"


class BlockingCheckError(Exception):
    """A blocking check failed; the new version was discarded before publication.

    ``partitions``: for a run over several partitions, the ones that fail on their own
    (set by the engine), so the message can tell ops which to fix and which to re-run.
    """

    def __init__(self, verdicts: list[Verdict]):
        super().__init__()
        self.verdicts = verdicts
        self.partitions: list[str] = []

    def __str__(self) -> str:
        failed = "; ".join(v.describe() for v in self.verdicts if v.blocking and not v.passed)
        if not self.partitions:
            return failed
        return (f"{failed}; failing partition(s): {', '.join(self.partitions)} "
                "(the other partitions of this run are fine: re-run them on their own)")


def row_count_blocks(table: RegisteredTable) -> bool:
    """Every strategy: a served row count that the source and the key cannot explain means
    rows were lost or invented, whatever the strategy (a merge is judged on its own
    accounting, since it cannot see source deletes)."""
    del table
    return True


def row_count_passes(served: int, before: int, after: int | None) -> bool:
    """Served rows equal the source's, or, when the source moved during the sync (counted
    again afterwards), lie between its two counts: a read at some instant in between."""
    if served == before:
        return True
    return after is not None and min(before, after) <= served <= max(before, after)


def evaluate(table: RegisteredTable, *, source_rows: int, served_rows: int, duplicate_keys: int | None,
             drift: dict[str, list[str]], source_rows_after: int | None = None, duplicates_removed: int = 0,
             kept_newer: int = 0, merge_expected: int | None = None, elsewhere: int = 0) -> list[Verdict]:
    """The verdicts of one version.

    The row count is explained when the served rows of the scope equal the source's rows of
    the scope minus ``duplicates_removed`` (rows beyond the first per primary key, counted
    and reported) minus ``kept_newer`` (rows of a merge whose key is served with a newer
    cursor). A whole-table merge (``merge_expected``) is judged on its own accounting: rows
    served before, plus the delta's new keys; the whole-table source count is reported
    beside it (source deletes stay invisible to a merge).
    """
    removed = duplicates_removed + kept_newer
    figures: dict[str, Any] = {"source_rows": source_rows, "served_rows": served_rows}
    if duplicates_removed:
        figures["duplicates_removed"] = duplicates_removed
    if kept_newer:
        figures["kept_newer_served"] = kept_newer
    if merge_expected is not None:
        figures["expected_rows"] = merge_expected
        passed = served_rows == merge_expected
    else:
        if removed:
            figures["expected_rows"] = source_rows - removed
        if source_rows_after is not None:
            figures["source_rows_after_sync"] = source_rows_after
        after = source_rows_after - removed if source_rows_after is not None else None
        passed = row_count_passes(served_rows, source_rows - removed, after)
    verdicts = [
        Verdict(ROW_COUNT_CHECK, passed, row_count_blocks(table), figures),
        # Incompatible drift already fails the sync (SchemaDriftError); what is left is additive and warns.
        Verdict(SCHEMA_DRIFT_CHECK, not (drift.get("removed") or drift.get("widened") or drift.get("renamed")), False,
                dict(drift)),
    ]
    if table.primary_key:
        keys: dict[str, Any] = {"duplicate_rows": duplicate_keys or 0}
        if elsewhere:
            # The source holds these keys in this run's partitions only now: their rows moved
            # (the partition column changed). Rewriting those partitions too replaces them.
            keys["served_in_other_partitions"] = elsewhere
            keys["hint"] = ("rows of this run's keys are still served in partitions it does not rewrite (their "
                            "partition column changed in the source?): run those partitions in the same run")
        verdicts.append(Verdict(PRIMARY_KEY_CHECK, (duplicate_keys or 0) == 0, True, keys))
    return verdicts


def enforce(verdicts: list[Verdict]) -> None:
    if any(v.blocking and not v.passed for v in verdicts):
        raise BlockingCheckError(verdicts)


@dataclasses.dataclass
class Checked:
    """The figures the checks judged on; the manifest and the outcome report the same ones."""

    verdicts: list[Verdict]
    scope_rows: int  # served rows in the scope the source rows were counted for
    duplicate_keys: int | None
    served_by_window: dict[str, int]  # served rows per written partition (partition mode)
    drift: dict[str, list[str]]
    duplicates_removed: int
    kept_newer: int


def check(w: Written) -> Checked:
    """Judge the private version; raises ``BlockingCheckError`` (inside the write, so it is discarded)."""
    t_checks = time.perf_counter()
    planned, con, part_col, key = w.planned, w.con, w.part_col, w.key
    # Served rows per written partition, counted once: the row-count check, the refusal
    # message and the manifest's partition list all use them.
    served_by_window = ({win.key: load.count_windows(con, part_col, [win], table=w.written_table or load.DATA_TABLE)
                         for win in planned.windows}
                        if planned.mode == "partition" and part_col is not None else {})
    scope_rows = sum(served_by_window.values()) if served_by_window else _scope_rows(w)
    dupes = _duplicates(w) if key else None
    summary = w.drift.summary() if w.drift else {}
    removed, kept_newer = w.merge.get("duplicates_dropped", 0), w.merge.get("kept_newer", 0)
    merge_expected = w.merge["expected_rows"] if planned.mode == "merge" and "expected_rows" in w.merge else None
    explained = planned.source_rows - removed - kept_newer
    after = _recount(w) if merge_expected is None and scope_rows != explained else None
    elsewhere = 0
    if (dupes and planned.mode == "partition" and w.has_data and part_col is not None and not planned.key_changed
            and "duplicate_keys" not in w.merge):
        elsewhere = load.served_elsewhere(con, key, scope=load.windows_predicate(part_col, planned.windows),
                                          written=w.written_table)
    verdicts = evaluate(w.req.table, source_rows=planned.source_rows, served_rows=scope_rows, duplicate_keys=dupes,
                        drift=summary, source_rows_after=after, duplicates_removed=removed, kept_newer=kept_newer,
                        merge_expected=merge_expected, elsewhere=elsewhere)
    w.timings["checks_s"] = time.perf_counter() - t_checks
    try:
        enforce(verdicts)
    except BlockingCheckError as refused:
        if planned.mode == "partition" and part_col is not None and len(planned.windows) > 1:
            refused.partitions = _failing_windows(w, part_col, verdicts, served=served_by_window)
        raise
    return Checked(verdicts, scope_rows, dupes, served_by_window, summary, removed, kept_newer)


def _recount(w: Written) -> int | None:
    """The scope's source rows counted again after extraction (None: not comparable, or unreadable).

    Only called when the served rows differ from the count taken while planning: a source
    written to during the sync then shows where it moved, so the row-count check can tell
    a moving source (served rows between the two counts) from lost rows.
    """
    recount = w.planned.recount
    if recount is None:
        return None  # a merge counts the whole source against the whole served table; it only warns
    try:
        return recount.count(w.req.connect, w.req.table)
    except Exception as e:  # the check then judges on the first count alone
        w.req.logger.warning(f"{w.req.table.key}: could not recount the source ({type(e).__name__}: {e})")
    return None


def _failing_windows(w: Written, part_col: Column, verdicts: list[Verdict], *, served: dict[str, int]) -> list[str]:
    """Which partitions of a refused multi-partition run fail a blocking check on their own, so
    ops can re-run the others (a run publishes its partitions together or not at all)."""
    blocking = {v.name for v in verdicts if v.blocking and not v.passed}
    failing = []
    for i, win in enumerate(w.planned.windows):
        bad = False
        if ROW_COUNT_CHECK in blocking and i < len(w.planned.window_rows):
            bad = served[win.key] != w.planned.window_rows[i]
        if not bad and PRIMARY_KEY_CHECK in blocking and w.key:
            bad = load.duplicate_keys(w.con, w.key, scope=load.windows_predicate(part_col, [win])) > 0
        if bad:
            failing.append(win.key)
    return failing


def _duplicates(w: Written) -> int:
    """Primary-key duplicates, checked over what this run wrote when older rows were kept (over
    every row when they were written under another key: their uniqueness on it is unknown)."""
    if "duplicate_keys" in w.merge:  # a merge checked its staged keys before dropping the stage
        return w.merge["duplicate_keys"]
    if w.planned.mode == "snapshot":  # a key repeats across snapshot days by design; unique within one day
        day = dt.date.fromisoformat(w.planned.windows[0].key)
        return load.duplicate_keys(w.con, w.key, scope=(f"{qi(str(w.snap_col))} = ?", [day]), across=False)
    if w.planned.mode == "partition" and w.has_data and w.part_col is not None and not w.planned.key_changed:
        return load.duplicate_keys(w.con, w.key, scope=load.windows_predicate(w.part_col, w.planned.windows),
                                   written=w.written_table)
    return load.duplicate_keys(w.con, w.key)


def _scope_rows(w: Written) -> int:
    """Served rows in the scope the source rows were counted for (the row-count check), outside
    partition mode, whose rows are counted per window."""
    if w.planned.mode == "snapshot" and w.snap_key:
        row = w.con.execute(f"SELECT count(*) FROM {qi('data')} WHERE {qi(str(w.snap_col))} = ?",
                            [dt.date.fromisoformat(w.snap_key)]).fetchone()
        return int(row[0])
    return load.count_rows(w.con)
