"""Partition keys and windows of a registered table, without Dagster.

Why here and pure: the Dagster asset factory (orchestration/), the API (serving/, which
validates a key before launching a run) and the sync engine must agree on what a key
looks like and which rows it covers. Keys use Dagster's default formats so the strings
the API accepts are exactly the partition keys Dagster shows; all windows are UTC and
half-open ``[start, end)``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from typing import Any

from shared.registry import RegisteredTable
from shared.served import Manifest

DAILY, HOURLY, MONTHLY, STATIC = "daily", "hourly", "monthly", "static"
# Dagster's default key formats for daily / hourly / monthly partitions.
KEY_FORMATS = {DAILY: "%Y-%m-%d", HOURLY: "%Y-%m-%d-%H:%M", MONTHLY: "%Y-%m-%d"}
HUMAN_FORMATS = {DAILY: "YYYY-MM-DD", HOURLY: "YYYY-MM-DD-HH:00", MONTHLY: "YYYY-MM-01"}
CRON_SCHEDULES = {DAILY: "0 0 * * *", HOURLY: "0 * * * *", MONTHLY: "0 0 1 * *"}
# DATE_TRUNC unit of each time partitioning (Snowflake and DuckDB spell them alike).
TRUNC_UNITS = {DAILY: "DAY", HOURLY: "HOUR", MONTHLY: "MONTH"}
TIMEZONE = "UTC"
# A snapshot table gets one daily partition per copy; today's partition exists (end
# offset 1) because a snapshot copies the source as it is now, not a past window.
SNAPSHOT_END_OFFSET = 1
TIME_END_OFFSET = 0  # Dagster's default: the last partition is the latest *complete* window


class PartitionKeyError(ValueError):
    """A partition key is malformed or outside the table's partitions; the message gives the valid format."""


@dataclasses.dataclass(frozen=True)
class Window:
    """Rows of one partition: a UTC time window, or one static value."""

    key: str
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    value: str | None = None


def time_kind(table: RegisteredTable) -> str | None:
    """daily/hourly/monthly for time-partitioned and snapshot tables, else None."""
    if table.strategy == "snapshot":
        return DAILY
    return table.partition_kind if table.time_partitioned else None


def is_partitioned(table: RegisteredTable) -> bool:
    return table.partitioned or table.strategy == "snapshot"


def start_of(table: RegisteredTable) -> dt.datetime:
    """First partition's start (UTC). Snapshots start on the registration day."""
    raw = table.partition_start or table.registered_at or dt.datetime.now(dt.UTC).date().isoformat()
    day = dt.date.fromisoformat(str(raw)[:10])
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    return start.replace(day=1) if time_kind(table) == MONTHLY else start


def _floor(kind: str, instant: dt.datetime) -> dt.datetime:
    instant = instant.astimezone(dt.UTC)
    if kind == HOURLY:
        return instant.replace(minute=0, second=0, microsecond=0)
    if kind == DAILY:
        return instant.replace(hour=0, minute=0, second=0, microsecond=0)
    return instant.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def _next(kind: str, start: dt.datetime) -> dt.datetime:
    if kind == HOURLY:
        return start + dt.timedelta(hours=1)
    if kind == DAILY:
        return start + dt.timedelta(days=1)
    return (start + dt.timedelta(days=32)).replace(day=1)


def key_of(kind: str, instant: dt.datetime) -> str:
    """The key of the partition containing ``instant``."""
    return _floor(kind, instant).strftime(KEY_FORMATS[kind])


def latest_key(table: RegisteredTable, now: dt.datetime | None = None) -> str | None:
    """The newest partition Dagster knows: the latest complete window (today for snapshots)."""
    kind = time_kind(table)
    now = now or dt.datetime.now(dt.UTC)
    if kind is None:
        return table.partition_values[-1] if table.partition_values else None
    current = _floor(kind, now)
    if table.strategy != "snapshot":
        current = _floor(kind, current - dt.timedelta(seconds=1))  # last complete window
    return current.strftime(KEY_FORMATS[kind]) if current >= start_of(table) else None


def _format_hint(table: RegisteredTable) -> str:
    kind = time_kind(table)
    if kind is None:
        return "one of: " + ", ".join(table.partition_values)
    example = start_of(table).strftime(KEY_FORMATS[kind])
    return f"{kind} partitions use {HUMAN_FORMATS[kind]} (e.g. {example}), UTC"


def validate_partition_key(table: RegisteredTable, key: str, *, now: dt.datetime | None = None) -> Window:
    """Parse ``key`` for ``table`` or raise ``PartitionKeyError`` stating the valid format and range."""
    if not is_partitioned(table):
        raise PartitionKeyError(f"{table.key} is not partitioned; materialize it without a partition key")
    if not isinstance(key, str) or not key:
        raise PartitionKeyError(f"partition key {key!r} is not valid for {table.key}: {_format_hint(table)}")
    kind = time_kind(table)
    if kind is None:
        if key not in table.partition_values:
            raise PartitionKeyError(f"partition key {key!r} is not valid for {table.key}: {_format_hint(table)}")
        return Window(key=key, value=key)
    try:
        start = dt.datetime.strptime(key, KEY_FORMATS[kind]).replace(tzinfo=dt.UTC)
    except ValueError:
        start = None
    # strptime accepts '2025-1-1' and any minute; a key must be the canonical window start.
    if start is None or start.strftime(KEY_FORMATS[kind]) != key or _floor(kind, start) != start:
        raise PartitionKeyError(f"partition key {key!r} is not valid for {table.key}: {_format_hint(table)}")
    first, last = start_of(table), latest_key(table, now)
    if table.strategy == "snapshot" and key != last:
        raise PartitionKeyError(
            f"partition key {key!r} cannot be materialized for snapshot table {table.key}: a snapshot copies the source "
            f"as it is now, so only today's partition ({last}) can be taken; {_format_hint(table)}"
        )
    if start < first or last is None or key > last:
        bounds = f"from {first.strftime(KEY_FORMATS[kind])} to {last}" if last else "none yet"
        raise PartitionKeyError(
            f"partition key {key!r} is outside the partitions of {table.key} ({bounds}); {_format_hint(table)}"
        )
    return Window(key=key, start=start, end=_next(kind, start))


def windows(table: RegisteredTable, keys: list[str], *, now: dt.datetime | None = None) -> list[Window]:
    """Validated windows for ``keys`` (sorted, unique)."""
    return [validate_partition_key(table, k, now=now) for k in sorted(set(keys))]


MISSING_NAMED = 3  # missing partitions named in a coverage report
_MISSING_WALK = 2000  # windows walked back from the newest to name them (the count needs no walk)


def _prev(kind: str, start: dt.datetime) -> dt.datetime:
    if kind == MONTHLY:
        return (start - dt.timedelta(days=1)).replace(day=1)
    return start - (dt.timedelta(hours=1) if kind == HOURLY else dt.timedelta(days=1))


def _count(kind: str, first: dt.datetime, last: dt.datetime) -> int:
    if kind == MONTHLY:
        return (last.year - first.year) * 12 + last.month - first.month + 1
    step = 3600 if kind == HOURLY else 86400
    return int((last - first).total_seconds() // step) + 1


def layout(table: RegisteredTable) -> list[str | None] | None:
    """The partitioning a served version records it was written under (``partitioning`` in its manifest)."""
    return [table.partition_kind, table.partition_column] if table.partitioned else None


def served_partitions(table: RegisteredTable, manifest: Manifest | None) -> dict[str, dict[str, Any]]:
    """The partitions ``manifest``'s version serves under ``table``'s partitioning: none when it was
    written under another one.

    Why: daily and monthly keys are both ``YYYY-MM-DD`` and hourly ones sort among them, so the
    keys of another layout (or another partition column) read as this layout's partitions: a
    table re-registered monthly with two days served counted two months served, and called
    itself complete with a month never read. Its rows stay served; its keys say nothing here.
    Keys the registration no longer has (a static value dropped, a start moved later) are left
    out as well, and so are partitions recorded ``stale_partitions`` (a column added since they
    ran has values there that they serve as NULL; ``changes.partitions_with_values``).
    """
    if manifest is None:
        return {}
    if "partitioning" in manifest.extra and manifest.extra["partitioning"] != layout(table):
        return {}
    stale = set(manifest.extra.get("stale_partitions") or [])  # a new column's values not read there yet
    return {key: info for key, info in manifest.partitions.items() if registered(table, key) and key not in stale}


def scope(table: RegisteredTable) -> dict[str, Any] | None:
    """Which partitions the registration has: its static values, or its first time window (None:
    unpartitioned, snapshots). A version records it; a run under a narrower one removes the rows of
    partitions no longer registered (``orchestration/sync/load.py``, ``delete_unregistered``)."""
    if not table.partitioned or table.strategy == "snapshot":
        return None
    if time_kind(table) is None:
        return {"values": list(table.partition_values)}
    return {"start": start_of(table).date().isoformat()}


def registered(table: RegisteredTable, key: str) -> bool:
    """Whether ``key`` names a partition the registration still has (a listed static value, a time
    window from the start on); for a table without partitions, every key (a snapshot's days)."""
    found = scope(table)
    if found is None:
        return True
    if "values" in found:
        return key in found["values"]
    return key >= start_of(table).strftime(KEY_FORMATS[str(time_kind(table))])


def coverage(table: RegisteredTable, served: Iterable[str], now: dt.datetime | None = None) -> dict[str, Any] | None:
    """How much of the table's partitions a served version holds: ``{expected, served, missing,
    newest, missing_keys}`` (``missing_keys``: up to three, newest first); None for a table without
    partitions to complete (unpartitioned, snapshots: a past day cannot be snapshotted).

    Why: a partition run publishes a whole new version, so a table whose newest complete window,
    or half of whose backfill, never ran looked as complete and as fresh as any other. Keys
    are compared as strings, which orders every layout's key format by time."""
    if not is_partitioned(table) or table.strategy == "snapshot":
        return None
    held = set(served)
    kind = time_kind(table)
    if kind is None:
        values = list(table.partition_values)
        missing = [v for v in values if v not in held]
        return {"expected": len(values), "served": len(values) - len(missing), "missing": len(missing),
                "newest": values[-1] if values else None, "missing_keys": missing[:MISSING_NAMED]}
    newest = latest_key(table, now)
    if newest is None:
        return {"expected": 0, "served": 0, "missing": 0, "newest": None, "missing_keys": []}
    first = start_of(table)
    last = dt.datetime.strptime(newest, KEY_FORMATS[kind]).replace(tzinfo=dt.UTC)
    low = first.strftime(KEY_FORMATS[kind])
    expected = _count(kind, first, last)
    inside = sum(1 for k in held if low <= k <= newest)
    named: list[str] = []
    at = last
    for _ in range(min(expected, _MISSING_WALK)):
        if len(named) >= MISSING_NAMED or len(named) >= expected - inside:
            break
        key = at.strftime(KEY_FORMATS[kind])
        if key not in held:
            named.append(key)
        at = _prev(kind, at)
    return {"expected": expected, "served": inside, "missing": expected - inside, "newest": newest,
            "missing_keys": named}


def freshness_coverage(table: RegisteredTable, manifest: Manifest | None,
                       now: dt.datetime | None = None) -> dict[str, Any]:
    """``shared.status.freshness``'s partition arguments for ``table`` served as ``manifest``.

    Missing partitions make a table stale only where no cursor decides freshness: an incremental
    table never materializes a window without newer rows, so a gap there may be an empty window."""
    found = coverage(table, served_partitions(table, manifest), now)
    return {"partitions": found, "require_partitions": not (table.strategy == "incremental" and table.cursor_column)}
