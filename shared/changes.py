"""What changed in the source since the served watermark: the one query behind refreshes and the sensor.

Why one place: rows of a partitioned, cursor-based table arrive late and get updated in
old partitions (facts partitioned by event date, corrected weeks later). Refreshing the
newest partition misses them. Both the API's refresh (``serving/sync/refresh.py``) and the
source-change sensor (``orchestration/sensors.py``) ask the source the same question here,
so they rewrite the same partitions and call the same data fresh:

- *fresh*: no source row has a cursor newer than the served watermark (the served
  table's highest cursor, from the served manifest) and, unpartitioned, the source has as
  many rows without a cursor as are served;
- *changed partitions*: the partitions holding a row whose cursor is past the watermark
  minus the registration's lookback (rows committed late with an older cursor
  are caught within the lookback). A row whose partition column changed is found in its
  new partition; writing that partition removes the key's old copy elsewhere;
- *new partitions*: complete windows after the newest served one that hold rows, whatever
  their cursor (a daily table not synced for three days gets those days' rows).

Identifiers are quoted and every value is bound; the cursor watermark is compared as the
source column's own type. Rows outside every materializable partition (before the start,
in the current incomplete window, an unlisted static value) cannot be served by a
partition run; they are counted (``unplaced_rows``) so callers can say so.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from shared import partitions as sp
from shared.registry import RegisteredTable
from shared.served import Manifest
from shared.snowflake import SourceColumn, bound
from shared.sources import table_columns

# DATE_TRUNC unit of each time partitioning.
_UNITS = {sp.DAILY: "DAY", sp.HOURLY: "HOUR", sp.MONTHLY: "MONTH"}
_TZ_TYPES = ("TIMESTAMP_TZ", "TIMESTAMP_LTZ")
# Partitions per run of a backfill (the assets' multi-run backfill policy uses the same number).
PARTITIONS_PER_RUN = 30


class ChangeScanError(RuntimeError):
    """The source could not answer which partitions changed (table or cursor column missing)."""


def cursor_based(table: RegisteredTable) -> bool:
    """Tables whose freshness and refresh scope are decided by the cursor (incremental ones)."""
    return table.strategy == "incremental" and bool(table.cursor_column)


def _q(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _source_name(table: RegisteredTable) -> str:
    return ".".join(_q(p) for p in (table.database, table.schema, table.table))


def _cast_type(col: SourceColumn) -> str:
    """The Snowflake type a bound watermark is cast to before comparing it with ``col``."""
    kind = col.data_type.upper()
    if kind in ("NUMBER", "DECIMAL", "NUMERIC", "INT", "INTEGER", "BIGINT", "SMALLINT"):
        return f"NUMBER({col.precision or 38},{col.scale or 0})"
    return {"TEXT": "VARCHAR", "STRING": "VARCHAR", "TIMESTAMP": "TIMESTAMP_NTZ", "DATETIME": "TIMESTAMP_NTZ"}.get(kind, kind)


def written_under(table: RegisteredTable, manifest: Manifest | None) -> list[str]:
    """What of ``table``'s registration differs from the one ``manifest``'s version was written
    under: ``strategy`` (to or from snapshot), ``cursor_column``, ``primary_key``,
    ``partitioning`` (empty: the same, or not recorded).

    Why: a served version's watermark is the highest value of the cursor it was written with,
    and its rows are unique on the key it was merged on. Re-registered with another cursor,
    that watermark says nothing about the new one (rows below it were never read); with
    another key, served rows may repeat the new key outside whatever a run rewrites. A
    snapshot version holds a copy of the table per day; any other holds one.
    """
    if manifest is None:
        return []
    changed = []
    if (manifest.strategy == "snapshot") != (table.strategy == "snapshot"):
        changed.append("strategy")  # a snapshot version holds a copy per day, under a date column
    if "cursor_column" in manifest.extra and manifest.extra["cursor_column"] != table.cursor_column:
        changed.append("cursor_column")
    if "primary_key" in manifest.extra and list(manifest.extra["primary_key"] or []) != list(table.primary_key):
        changed.append("primary_key")
    layout = [table.partition_kind, table.partition_column] if table.partitioned else None
    if "partitioning" in manifest.extra and manifest.extra["partitioning"] != layout:
        changed.append("partitioning")  # a partitioned version holds only the partitions that ran
    return changed


def watermark_value(manifest: Manifest | None, table: RegisteredTable | None = None) -> Any:
    """The served watermark as a Python value (datetime, date, Decimal or str), or None.

    With ``table``: None when the version was written under another cursor column."""
    if manifest is None or manifest.watermark is None:
        return None
    if table is not None and "cursor_column" in written_under(table, manifest):
        return None
    raw, kind = manifest.watermark, str(manifest.extra.get("watermark_type") or "").upper()
    if kind.startswith("TIMESTAMP"):
        return dt.datetime.fromisoformat(raw)
    if kind == "DATE":
        return dt.date.fromisoformat(raw)
    try:
        return Decimal(raw) if kind and kind not in ("VARCHAR", "TEXT") else raw
    except InvalidOperation:
        return raw


def watermark_floor(table: RegisteredTable, manifest: Manifest | None) -> Any:
    """Lowest cursor to re-read: the served watermark minus the lookback (None: read everything)."""
    value = watermark_value(manifest, table)
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value - dt.timedelta(seconds=table.lookback_s)
    if isinstance(value, dt.date):
        return value - dt.timedelta(days=-(-table.lookback_s // 86400))
    if isinstance(value, Decimal):
        return value - table.lookback_s  # numeric cursors: the lookback counts cursor units
    return value  # text cursors have no arithmetic: re-read from the watermark itself


def bind(value: Any) -> str:
    """A bound value's text; the SQL casts it to the column's type."""
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    return str(value)


def as_text(value: Any) -> str | None:
    """A cursor value written the way the served manifest writes its watermark."""
    if value is None:
        return None
    return value.isoformat() if isinstance(value, dt.date) else str(value)


@dataclasses.dataclass(frozen=True)
class SourceChanges:
    """The answer for one table; ``partitions`` is what a refresh rewrites."""

    served_watermark: str | None
    source_newest: str | None
    newer_rows: int  # source rows with a cursor past the served watermark (all rows when nothing is served)
    changed: tuple[str, ...] = ()  # materializable partitions with rows past the floor
    new: tuple[str, ...] = ()  # windows after the newest served partition that hold rows
    unplaced_rows: int = 0  # rows past the floor outside every materializable partition

    @property
    def fresh(self) -> bool:
        return self.served_watermark is not None and self.newer_rows == 0

    @property
    def partitions(self) -> list[str]:
        return sorted(set(self.changed) | set(self.new))


def _columns(con: Any, table: RegisteredTable) -> dict[str, SourceColumn]:
    cols = {c.name.upper(): c for c in table_columns(con, table)}
    if not cols:
        raise ChangeScanError(f"table {table.database}.{table.schema}.{table.table} does not exist in the source")
    return cols


def _fetch(con: Any, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    cur = con.cursor()
    try:
        cur.execute(bound(sql, params), list(params))
        return list(cur.fetchall())
    finally:
        cur.close()


def _bucket(table: RegisteredTable, col: SourceColumn) -> str:
    """The partition a row falls in: its truncated time, or the position of its static value.

    Static values are compared in the source as the engine selects a partition's rows
    (``column = 'value'``, in the column's type), so a value registered as ``'1.5'`` for a
    NUMBER(10,2) or ``'TRUE'`` for a boolean names the rows the engine would rewrite; the
    rows' own text (``1.50``, ``True``) would name no partition.
    """
    kind = sp.time_kind(table)
    c = _q(col.name)
    if kind is None:
        whens = " ".join(f"WHEN {c} = %s THEN {i}" for i in range(len(table.partition_values)))
        return f"CASE {whens} END"
    if col.data_type.upper() in _TZ_TYPES:  # truncate in UTC, where partition windows are
        c = f"CONVERT_TIMEZONE('UTC', {c})"
    return f"DATE_TRUNC('{_UNITS[kind]}', {c})"


def _key_of(table: RegisteredTable, value: Any, *, now: dt.datetime) -> str | None:
    """The materializable partition of a bucket value, or None."""
    if value is None:
        return None
    kind = sp.time_kind(table)
    if kind is None:  # the position of the static value (``_bucket``)
        return table.partition_values[int(value)]
    if isinstance(value, dt.datetime):
        instant = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    elif isinstance(value, dt.date):
        instant = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    else:
        return None
    key = sp.key_of(kind, instant)
    try:
        sp.validate_partition_key(table, key, now=now)
    except sp.PartitionKeyError:
        return None
    return key


def _served_boundary(table: RegisteredTable, manifest: Manifest | None, now: dt.datetime) -> tuple[str, dt.datetime] | None:
    """The newest served time partition and the end of its window (rows from there on are in new windows)."""
    if sp.time_kind(table) is None or manifest is None or not manifest.partitions:
        return None
    newest = max(manifest.partitions)
    try:
        end = sp.validate_partition_key(table, newest, now=now).end
    except sp.PartitionKeyError:  # served under another layout: no boundary to extend from
        return None
    return (newest, end) if end is not None else None


def _bound(col: SourceColumn, instant: dt.datetime) -> str:
    """A window boundary as text for a CAST to ``col``'s type (naive columns hold UTC wall-clock time)."""
    if col.data_type.upper() == "DATE":
        return instant.date().isoformat()
    if col.data_type.upper() in _TZ_TYPES:
        return instant.isoformat(sep=" ")
    return instant.replace(tzinfo=None).isoformat(sep=" ")


def scan(con: Any, table: RegisteredTable, manifest: Manifest | None, *, now: dt.datetime | None = None) -> SourceChanges:
    """Ask the source what changed since ``manifest``'s watermark (see the module docstring).

    Two queries: the newest cursor and the count past the watermark; then, for partitioned
    tables, the partitions holding rows past the floor (grouped in the source, so the
    answer is one row per partition, not per row).
    """
    if not cursor_based(table):
        raise ChangeScanError(f"{table.key} has no cursor column; its changes cannot be told by cursor")
    now = now or dt.datetime.now(dt.UTC)
    cols = _columns(con, table)
    cursor = cols.get(str(table.cursor_column).upper())
    if cursor is None:
        raise ChangeScanError(f"cursor column {table.cursor_column} does not exist in {table.key}")
    c, name, cast = _q(cursor.name), _source_name(table), _cast_type(cursor)
    watermark = watermark_value(manifest, table)
    if watermark is None:
        newest, newer = _fetch(con, f"SELECT max({c}), count(*) FROM {name}", [])[0]
    else:
        newest, newer, nulls = _fetch(
            con, f"SELECT max({c}), count_if({c} > CAST(%s AS {cast})), count_if({c} IS NULL) FROM {name}",
            [bind(watermark)])[0]
        # Served rows dated past the read that wrote them (``write.py`` caps the watermark there)
        # are past the watermark too: only rows beyond them are new.
        beyond = int((manifest.extra.get("cursor_beyond_watermark") or 0) if manifest is not None else 0)
        newer = max(0, int(newer or 0) - beyond)
        served_nulls = manifest.extra.get("cursor_nulls") if manifest is not None else None
        if served_nulls is not None and not sp.is_partitioned(table):
            # Rows without a cursor are past no watermark; a change in their number is a change
            # (a merge re-reads them all). A partitioned table serves only its windows' rows, so
            # its count is not comparable with the whole source's.
            newer = int(newer or 0) + abs(int(nulls or 0) - int(served_nulls))
    served = manifest.watermark if manifest is not None and watermark is not None else None
    result = SourceChanges(served_watermark=served, source_newest=as_text(newest), newer_rows=int(newer or 0))
    if not sp.is_partitioned(table) or table.strategy == "snapshot" or not table.partition_column:
        return result
    part = cols.get(table.partition_column.upper())
    if part is None:
        raise ChangeScanError(f"partition column {table.partition_column} does not exist in {table.key}")
    floor = watermark_floor(table, manifest)
    boundary = _served_boundary(table, manifest, now)
    if floor is None:
        where, params = "TRUE", []
    else:
        where, params = f"{c} > CAST(%s AS {cast})", [bind(floor)]
        if boundary is not None:  # rows in windows after the newest served one, whatever their cursor
            where += f" OR {_q(part.name)} >= CAST(%s AS {_cast_type(part)})"
            params.append(_bound(part, boundary[1]))
    values = list(table.partition_values) if sp.time_kind(table) is None else []
    rows = _fetch(con, f"SELECT {_bucket(table, part)} AS bucket, count(*) FROM {name} WHERE {where} GROUP BY 1",
                  values + params)
    changed: set[str] = set()
    new: set[str] = set()
    unplaced = 0
    for bucket, count in rows:
        key = _key_of(table, bucket, now=now)
        if key is None:
            unplaced += int(count or 0)
        elif boundary is not None and key > boundary[0]:
            new.add(key)
        else:
            changed.add(key)
    return dataclasses.replace(result, changed=tuple(sorted(changed)), new=tuple(sorted(new)), unplaced_rows=unplaced)


def ordered_keys(table: RegisteredTable, keys: Sequence[str], *, now: dt.datetime | None = None) -> list[str]:
    """``keys`` in partition order (static partitions keep their registered order)."""
    if sp.time_kind(table) is None:
        position = {v: i for i, v in enumerate(table.partition_values)}
        return sorted(set(keys), key=lambda k: position.get(k, len(position)))
    return sorted(set(keys))


def contiguous_ranges(table: RegisteredTable, keys: Sequence[str], *, max_len: int = PARTITIONS_PER_RUN,
                      now: dt.datetime | None = None) -> list[tuple[str, str]]:
    """``keys`` as ``(first, last)`` runs of adjacent partitions, each at most ``max_len`` long.

    One run per range rewrites exactly ``keys`` (never a partition in a gap), with one
    process start and one copy of the served file per range.
    """
    ordered = ordered_keys(table, keys, now=now)
    kind = sp.time_kind(table)
    out: list[list[str]] = []
    for key in ordered:
        if out and len(out[-1]) < max_len and _adjacent(table, kind, out[-1][-1], key, now=now):
            out[-1].append(key)
        else:
            out.append([key])
    return [(group[0], group[-1]) for group in out]


def _adjacent(table: RegisteredTable, kind: str | None, before: str, after: str, *, now: dt.datetime | None) -> bool:
    if kind is None:
        values = list(table.partition_values)
        return before in values and after in values and values.index(after) == values.index(before) + 1
    end = sp.validate_partition_key(table, before, now=now).end
    return end is not None and sp.key_of(kind, end) == after
