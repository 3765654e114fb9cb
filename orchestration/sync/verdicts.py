"""The data checks of one materialization, decided before it is published.

Why here and not only in Dagster: Dagster's blocking checks run after the step has
returned, when the new version is already served. The engine knows the figures (source
rows for the scope, served rows for the same scope, duplicate keys, drift) while the new
version is still private, so it refuses to publish when a blocking check fails and the
readers keep the last good version. ``orchestration/checks.py`` turns the same verdicts
into Dagster check results, so the UI and the gate can never disagree.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from shared.registry import RegisteredTable

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
             kept_newer: int = 0, merge_expected: int | None = None) -> list[Verdict]:
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
        Verdict(SCHEMA_DRIFT_CHECK, not (drift.get("removed") or drift.get("widened")), False,
                dict(drift)),
    ]
    if table.primary_key:
        verdicts.append(Verdict(PRIMARY_KEY_CHECK, (duplicate_keys or 0) == 0, True,
                                {"duplicate_rows": duplicate_keys or 0}))
    return verdicts


def enforce(verdicts: list[Verdict]) -> None:
    if any(v.blocking and not v.passed for v in verdicts):
        raise BlockingCheckError(verdicts)
