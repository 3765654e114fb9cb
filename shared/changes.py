"""What changed in the source since the served watermark: the one query behind refreshes and the sensor.

Why one place: rows of a partitioned, cursor-based table arrive late and get updated in
old partitions (facts partitioned by event date, corrected weeks later). Refreshing the
newest partition misses them. Both the API's refresh (``serving/sync/refresh.py``) and the
source-change sensor (``orchestration/sensors.py``) ask the source the same question here,
so they rewrite the same partitions and call the same data fresh:

- *fresh*: no source row has a cursor newer than the served watermark (the served
  table's highest cursor, from the served manifest), no key with a cursor from the watermark
  minus the lookback to the watermark is missing from the served rows there
  (``_new_in_lookback``: rows committed late, ties at the watermark), and the source has as many rows
  without a cursor as the served version was written from (unpartitioned: as are served;
  partitioned: per partition, as its run counted in the source);
- *changed partitions*: the partitions holding a row whose cursor is past the watermark
  minus the registration's lookback (rows committed late with an older cursor
  are caught within the lookback), and those whose number of rows without a cursor
  changed (no watermark can tell such a row is new, moved or gone). A row whose partition
  column changed is found in its new partition; writing that partition removes the key's
  old copy elsewhere. A row moved to no materializable partition (NULL, before the start,
  past the newest complete window, an unlisted static value) has no new partition to
  write: the served partition still holding its key is named instead (``moved_out``), and
  its rewrite, which reads the source's rows of that window, stops serving it;
- *new partitions*: complete windows after the newest served one that hold rows, whatever
  their cursor (a daily table not synced for three days gets those days' rows).

Identifiers are quoted and every value is bound; the cursor watermark is compared as the
source column's own type. Rows outside every materializable partition (before the start,
in the current incomplete window, an unlisted static value) cannot be served by a
partition run; they are counted (``unplaced_rows``) so callers can say so. Changes that
leave the cursor alone (a delete, an update without a newer cursor) of rows with a cursor
are not seen, as for an unpartitioned table.

Cost: the source answers grouped queries (one row per partition, not per row), and only
when changed rows lie in no partition one more query takes their keys (see ``_moved_out``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Context, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from shared import partitions as sp
from shared import served_keys
from shared.registry import RegisteredTable
from shared.served import Manifest, ServedDataError
from shared.snowflake import SourceColumn, bound
from shared.sources import table_columns

_TZ_TYPES = ("TIMESTAMP_TZ", "TIMESTAMP_LTZ")
# The served version's file on this machine (``ServedStore.local_path``: downloaded first from object storage).
ServedFile = Callable[[Manifest], Path]
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
    if "partitioning" in manifest.extra and manifest.extra["partitioning"] != sp.layout(table):
        changed.append("partitioning")  # a partitioned version holds only the partitions that ran
    return changed


def watermark_value(manifest: Manifest | None, table: RegisteredTable | None = None) -> Any:
    """The served watermark as a Python value (datetime, date, Decimal or str), or None.

    With ``table``: None when the version was written under another cursor column."""
    if manifest is None or manifest.watermark is None:
        return None
    if table is not None and "cursor_column" in written_under(table, manifest):
        return None
    return _typed(manifest.watermark, manifest)


def _typed(raw: str, manifest: Manifest) -> Any:
    """A cursor value written in ``manifest`` as text, as the Python value of its watermark type."""
    kind = str(manifest.extra.get("watermark_type") or "").upper()
    if kind.startswith("TIMESTAMP"):
        return dt.datetime.fromisoformat(raw)
    if kind == "DATE":
        return dt.date.fromisoformat(raw)
    try:
        return Decimal(raw) if kind and kind not in ("VARCHAR", "TEXT") else raw
    except InvalidOperation:
        return raw


# Exact arithmetic on NUMBER values (up to 38 digits, then a scale): Python's default decimal
# context keeps 28 significant digits and rounds the rest, so a NUMBER(37,0) watermark minus its
# lookback came out rounded up past the watermark and rows written after it were never read.
DECIMALS = Context(prec=80)


def watermark_floor(table: RegisteredTable, manifest: Manifest | None) -> Any:
    """Lowest cursor to re-read: the served watermark minus the lookback (None: read everything)."""
    value = watermark_value(manifest, table)
    return None if value is None else floor_of(table, value)


def floor_of(table: RegisteredTable, value: Any) -> Any:
    """``value`` (a watermark) minus the table's lookback, in the cursor's own units."""
    if isinstance(value, dt.datetime):
        return value - dt.timedelta(seconds=table.lookback_s)
    if isinstance(value, dt.date):
        return value - dt.timedelta(days=-(-table.lookback_s // 86400))
    if isinstance(value, Decimal):
        return DECIMALS.subtract(value, Decimal(table.lookback_s))  # numeric cursors: the lookback counts cursor units
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value - table.lookback_s
    return value  # text cursors have no arithmetic: re-read from the watermark itself


def bind(value: Any) -> str:
    """A bound value's text; the SQL casts it to the column's type. A decimal is written in fixed
    point (``str`` writes ``1.000E-7`` and ``1.000000000000000000000000000E+36``)."""
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def as_text(value: Any) -> str | None:
    """A cursor value written the way the served manifest writes its watermark (the run writes
    it with this too): dates and times ISO 8601, decimals in fixed point."""
    if value is None:
        return None
    return value.isoformat() if isinstance(value, dt.date) else bind(value)


@dataclasses.dataclass(frozen=True)
class SourceChanges:
    """The answer for one table; ``partitions`` is what a refresh rewrites."""

    served_watermark: str | None
    source_newest: str | None
    newer_rows: int  # source rows with a cursor past the served watermark (all rows when nothing is served)
    changed: tuple[str, ...] = ()  # materializable partitions with rows past the floor
    new: tuple[str, ...] = ()  # windows after the newest served partition that hold rows
    unplaced_rows: int = 0  # rows past the floor outside every materializable partition
    moved_out: int = 0  # served rows whose key the source now places in no materializable partition (in ``changed``)

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


def _bucket(table: RegisteredTable, col: SourceColumn, alias: str | None = None) -> str:
    """The partition a row falls in: its truncated time, or the position of its static value.

    Static values are compared in the source as the engine selects a partition's rows
    (``column = 'value'``, in the column's type), so a value registered as ``'1.5'`` for a
    NUMBER(10,2) or ``'TRUE'`` for a boolean names the rows the engine would rewrite; the
    rows' own text (``1.50``, ``True``) would name no partition. ``alias``: the column of
    that table alias (``u."DAY"``).
    """
    kind = sp.time_kind(table)
    c = f"{alias}.{_q(col.name)}" if alias else _q(col.name)
    if kind is None:
        whens = " ".join(f"WHEN {c} = %s THEN {i}" for i in range(len(table.partition_values)))
        return f"CASE {whens} END"
    if col.data_type.upper() in _TZ_TYPES:  # truncate in UTC, where partition windows are
        c = f"CONVERT_TIMEZONE('UTC', {c})"
    return f"DATE_TRUNC('{sp.TRUNC_UNITS[kind]}', {c})"


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
    return key if _materializable(table, key, now) else None


def _served_boundary(table: RegisteredTable, manifest: Manifest | None, now: dt.datetime) -> tuple[str, dt.datetime] | None:
    """The newest served time partition and the end of its window (rows from there on are in new windows)."""
    served = sp.served_partitions(table, manifest)
    if sp.time_kind(table) is None or not served:
        return None
    newest = max(served)
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


def scan(con: Any, table: RegisteredTable, manifest: Manifest | None, *, now: dt.datetime | None = None,
         served_file: ServedFile | None = None) -> SourceChanges:
    """Ask the source what changed since ``manifest``'s watermark (see the module docstring).

    Two queries: the newest cursor and the count past the watermark; then, for partitioned
    tables, the partitions holding rows past the floor and each one's rows without a cursor
    (grouped in the source, so the answer is one row per partition, not per row). When
    changed rows lie in no materializable partition, one more query takes their keys and
    ``served_file(manifest)`` (the served version's file on this machine) says which served
    partitions still hold them (``_moved_out``).
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
        low = watermark_floor(table, manifest)
        newest, newer, nulls, in_lookback = _fetch(
            con, f"SELECT max({c}), count_if({c} > CAST(%s AS {cast})), count_if({c} IS NULL), "
                 f"count_if({c} >= CAST(%s AS {cast}) AND {c} <= CAST(%s AS {cast})) FROM {name}",
            [bind(watermark), bind(low), bind(watermark)])[0]
        # Served rows dated past the read that wrote them (``write.py`` caps the watermark there)
        # are past the watermark too: only rows beyond them are new.
        beyond = int((manifest.extra.get("cursor_beyond_watermark") or 0) if manifest is not None else 0)
        newer = max(0, int(newer or 0) - beyond)
        if beyond and manifest is not None and manifest.extra.get("cursor_newest"):
            # Their number says nothing of a row among them moved further on (an update of a row a
            # source dated ahead, local time in a naive column): rows past the highest served are new.
            (past,) = _fetch(con, f"SELECT count_if({c} > CAST(%s AS {cast})) FROM {name}",
                             [bind(_typed(str(manifest.extra["cursor_newest"]), manifest))])[0]
            newer = max(newer, int(past or 0))
        served_nulls = manifest.extra.get("cursor_nulls") if manifest is not None else None
        if served_nulls is not None and not sp.is_partitioned(table):
            # Rows without a cursor are past no watermark; a change in their number is a change
            # (a merge re-reads them all). A partitioned table compares them per partition below.
            newer = int(newer or 0) + abs(int(nulls or 0) - int(served_nulls))
    served = manifest.watermark if manifest is not None and watermark is not None else None
    tied: dict[str | None, int] = {}
    if watermark is not None and manifest is not None:
        tied = _new_in_lookback(con, table, manifest, cols, watermark, floor=low, source_rows=int(in_lookback or 0),
                                now=now, served_file=served_file)
        newer = int(newer or 0) + sum(tied.values()) + unread_values(con, table, manifest, list(cols.values()))
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
    rows = _fetch(con, f"SELECT {_bucket(table, part)} AS bucket, count_if({where}), count_if({c} IS NULL) "
                       f"FROM {name} WHERE ({where}) OR {c} IS NULL GROUP BY 1", values + params + params)
    changed: set[str] = set()
    new: set[str] = set()
    unplaced = 0
    nulls_by_key: dict[str, int] = {}

    def named(key: str) -> None:
        (new if boundary is not None and key > boundary[0] else changed).add(key)

    for bucket, past, without in rows:
        key = _key_of(table, bucket, now=now)
        if key is None:
            unplaced += int(past or 0)
            continue
        if past:
            named(key)
        nulls_by_key[key] = nulls_by_key.get(key, 0) + int(without or 0)
    for key, n in tied.items():  # keys new inside the lookback (at the watermark, which ``>`` leaves out without one)
        if key is None:
            unplaced += n
        else:
            named(key)
    if manifest is not None and not written_under(table, manifest):  # partitions a new column left NULL in
        for key in manifest.extra.get("stale_partitions") or []:
            if _materializable(table, key, now):
                named(key)
                result = dataclasses.replace(result, newer_rows=result.newer_rows + 1)
    cursorless = _cursorless_changes(table, manifest, nulls_by_key, now=now) if floor is not None else {}
    for key in cursorless:
        named(key)
    moved: dict[str, int] = {}
    if unplaced and floor is not None and manifest is not None:
        moved = _moved_out(con, table, manifest, cols=cols, floor=floor, now=now, served_file=served_file)
        for key in moved:
            named(key)
    return dataclasses.replace(result, newer_rows=result.newer_rows + sum(cursorless.values()), changed=tuple(sorted(changed)),
                               new=tuple(sorted(new)), unplaced_rows=unplaced, moved_out=sum(moved.values()))


def unread_values(con: Any, table: RegisteredTable, manifest: Manifest | None, cols: Sequence[SourceColumn]) -> int:
    """Source rows a merge would not re-read (cursor below the floor) that hold a value in a column
    the served version lacks (0: none, or nothing to compare).

    Why: a column added with a default (Snowflake fills every existing row) or renamed has values
    in rows the merge never reads again; the merge adds the column and serves NULL there, and no
    row is past the watermark, so the table looked fresh for ever. Such rows make the next run a
    whole read (``orchestration/sync/plan.py``) and the scan count them as changes. A column added
    empty costs nothing: NULL is what the merge serves. One query, only when columns were added
    (names compared without case: a column renamed only in case keeps its values in place).
    """
    floor = watermark_floor(table, manifest)
    if manifest is None or floor is None or sp.is_partitioned(table):
        return 0
    served = {c.name.upper() for c in manifest.columns}
    added = [c for c in cols if c.name.upper() not in served]
    cursor = next((c for c in cols if c.name == table.cursor_column), None)
    if not added or cursor is None:
        return 0
    valued = " OR ".join(f"{_q(c.name)} IS NOT NULL" for c in added)
    (n,) = _fetch(con, f"SELECT count(*) FROM {_source_name(table)} "
                       f"WHERE {_q(cursor.name)} < CAST(%s AS {_cast_type(cursor)}) AND ({valued})", [bind(floor)])[0]
    return int(n or 0)


def partitions_with_values(con: Any, table: RegisteredTable, cols: Sequence[SourceColumn], names: Sequence[str], *,
                           now: dt.datetime) -> set[str]:
    """The materializable partitions of ``table`` holding a source row with a value in any of the
    columns ``names`` (one grouped query).

    Why: a column added with a default (Snowflake fills every existing row) or renamed has values
    in partitions a run did not rewrite, where the served table holds NULL; those partitions are
    recorded as not served until a run rewrites them (``partitions.served_partitions``)."""
    part = next(c for c in cols if c.name == table.partition_column)
    valued = " OR ".join(f"{_q(n)} IS NOT NULL" for n in names)
    values = list(table.partition_values) if sp.time_kind(table) is None else []
    found = _fetch(con, f"SELECT DISTINCT {_bucket(table, part)} FROM {_source_name(table)} WHERE {valued}", values)
    return {key for (bucket,) in found if (key := _key_of(table, bucket, now=now)) is not None}


def _new_in_lookback(con: Any, table: RegisteredTable, manifest: Manifest, cols: dict[str, SourceColumn],
                     watermark: Any, *, floor: Any, source_rows: int, now: dt.datetime,
                     served_file: ServedFile | None) -> dict[str | None, int]:
    """Keys the source holds with a cursor from ``floor`` (the watermark minus the lookback) to the
    watermark that the served version does not hold there, by materializable partition (None: an
    unpartitioned table, or rows in no such partition); empty when none.

    Why: "fresh" looked only past the watermark, but the lookback exists for rows committed late
    with an older cursor, and a cursor with coarse values (a day, a batch number, whole seconds)
    gets more rows at the watermark after a sync: with nothing newer, every scan called the table
    fresh while the runs would have read them (``>=`` the floor). Cost: the first query counts the
    source's rows in that range; only when they outnumber the served rows there
    (``lookback_rows`` in the manifest; one per key) does one more query count the distinct keys,
    grouped by partition for a partitioned table and then compared with the served file's rows in
    the range per partition. Keys, not rows: a key repeated by identical rows, or by older versions
    of it, is served once. A key that left the range while another arrived leaves the number
    unchanged and is not seen (as deletes are not).
    """
    served_rows = manifest.extra.get("lookback_rows")
    if served_rows is None or source_rows <= int(served_rows) or written_under(table, manifest):
        return {}  # an older version did not record it; or no more rows than served keys
    keys = [cols.get(k.upper()) for k in table.primary_key]
    if not keys or any(k is None for k in keys):
        return {}  # a key column gone: the next run fails naming it
    cursor = cols[str(table.cursor_column).upper()]
    picked = ", ".join(_q(k.name) for k in keys if k is not None)
    cast, low = _cast_type(cursor), bind(floor)
    inside = f"{_q(cursor.name)} >= CAST(%s AS {cast}) AND {_q(cursor.name)} <= CAST(%s AS {cast})"
    part = cols.get(str(table.partition_column or "").upper()) if sp.is_partitioned(table) else None
    if part is None:
        (n,) = _fetch(con, f"SELECT count(*) FROM (SELECT DISTINCT {picked} FROM {_source_name(table)} WHERE {inside})",
                      [low, bind(watermark)])[0]
        return {None: int(n) - int(served_rows)} if int(n) > int(served_rows) else {}
    values = list(table.partition_values) if sp.time_kind(table) is None else []
    found = _fetch(con, f"SELECT bucket, count(*) FROM (SELECT DISTINCT {_bucket(table, part)} AS bucket, {picked} "
                        f"FROM {_source_name(table)} WHERE {inside}) GROUP BY 1", [*values, low, bind(watermark)])
    served_by: dict[str | None, int] = {}
    if served_file is not None and served_keys.can_hold(table, manifest):
        try:
            with served_keys.opened(served_file(manifest)) as served:
                for bucket, n in served_keys.rows_between(served, table, manifest, cursor.name,
                                                               low=low, high=bind(watermark)):
                    key = _key_of(table, bucket, now=now)
                    served_by[key] = served_by.get(key, 0) + n
        except ServedDataError as e:
            raise ChangeScanError(f"{table.key}: the source has new rows inside the lookback, and the served "
                                  f"version that would say in which partitions could not be read: {e}") from e
    # Without the served file every partition holding rows in the range is named (more is rewritten, nothing missed).
    source_by: dict[str | None, int] = {}
    for bucket, n in found:
        key = _key_of(table, bucket, now=now)
        source_by[key] = source_by.get(key, 0) + int(n)
    return {key: n - served_by.get(key, 0) for key, n in source_by.items() if n > served_by.get(key, 0)}


def _materializable(table: RegisteredTable, key: str, now: dt.datetime) -> bool:
    try:
        sp.validate_partition_key(table, key, now=now)
    except sp.PartitionKeyError:
        return False
    return True


def _cursorless_changes(table: RegisteredTable, manifest: Manifest | None, source_nulls: dict[str, int], *,
                        now: dt.datetime) -> dict[str, int]:
    """Per materializable partition, by how many its source rows without a cursor differ from the
    number its served copy was written from (only partitions that differ).

    Why: rows without a cursor are past no watermark, so a row inserted, moved or deleted without
    one changes nothing the cursor shows; as for an unpartitioned table, a change in their number
    is a change, here per partition, so exactly the partitions where it changed are rewritten.
    """
    census = _served_nulls(table, manifest)
    if census is None:
        return {}
    out = {}
    for key in set(census) | set(source_nulls):
        had = census.get(key, 0)
        if had is None:
            continue  # written before partitions recorded the figure
        if (diff := abs(source_nulls.get(key, 0) - had)) and _materializable(table, key, now):
            out[key] = diff  # (a served partition no longer registered cannot be rewritten)
    return out


def _served_nulls(table: RegisteredTable, manifest: Manifest | None) -> dict[str, int | None] | None:
    """Per served partition, the source rows without a cursor it was written from (None: not
    recorded); None when the version's partitions cannot be compared (written under another
    registration).

    Why the source's figure, counted when the run was planned, and not the served rows': a key
    without a cursor that a newer row of it replaced is served once but counted in the source,
    and the two would differ for ever. A partition not served counts 0: a row without a cursor
    in it was never served.
    """
    if manifest is None or written_under(table, manifest):
        return None
    return {key: (int(info["cursor_nulls"]) if info.get("cursor_nulls") is not None else None)
            for key, info in manifest.partitions.items()}


def _placed(table: RegisteredTable, part: SourceColumn, alias: str, *, now: dt.datetime) -> tuple[str, list[Any]]:
    """A predicate over ``alias``'s row: it lies in a partition that can be materialized now (the
    rows ``_key_of`` places), NULL or false otherwise."""
    bucket = _bucket(table, part, alias)
    if sp.time_kind(table) is None:
        return f"{bucket} IS NOT NULL", list(table.partition_values)
    latest = sp.latest_key(table, now)
    if latest is None:
        return "FALSE", []
    last = sp.validate_partition_key(table, latest, now=now).start
    assert last is not None
    t = _cast_type(part)
    return (f"{bucket} >= CAST(%s AS {t}) AND {bucket} <= CAST(%s AS {t})",
            [_bound(part, sp.start_of(table)), _bound(part, last)])


def _moved_out(con: Any, table: RegisteredTable, manifest: Manifest, *, cols: dict[str, SourceColumn], floor: Any,
               now: dt.datetime, served_file: ServedFile | None) -> dict[str, int]:
    """Served rows, by served partition, whose key the source now places in no partition that can
    be materialized (changed rows past the floor, in no partition, and no row of the key in one).

    Why: writing a partition removes its keys' copies from every other partition, so a row
    moved to another partition leaves its old one when the new one is written. A row moved to
    NULL, before the start, past the newest complete window or to an unlisted value is in no
    partition a run writes, so nothing removed its old copy, which stayed served as if the source
    still had it there. Rewriting the old partition removes it (the source no longer has it
    there). A key with a row in some partition is served from that row and is not named: its
    unplaced copy would otherwise name that partition on every scan.

    Cost: one query in the source, returning the distinct keys of the changed rows in no
    partition that have no row in one (an anti-join of the table with itself on the key), and
    one grouped semi-join in the served file (``shared/served_keys.py``). A single numeric key
    is bounded on both sides by the lowest and highest served key (read from the file's
    statistics), so the new keys of a sequence, which every scan of a busy table finds in the
    current window, are neither joined nor fetched. Other keys (text, composite) fetch the
    keys of every changed row in no partition, the current window's new rows included.
    """
    keys = [cols.get(k.upper()) for k in table.primary_key]
    cursor, part = cols[str(table.cursor_column).upper()], cols[str(table.partition_column).upper()]
    if not keys or not manifest.partitions or written_under(table, manifest):
        return {}  # without a key a row cannot be followed; a version under another registration is read whole
    if any(k is None for k in keys):
        return {}  # a key column gone: the next run fails naming it
    key_cols = [k for k in keys if k is not None]
    if not served_keys.can_hold(table, manifest):
        return {}  # the served version has no such key or partition column: it holds none of these keys
    if served_file is None:
        raise ChangeScanError(f"{table.key}: changed rows lie in no partition; the served version's file is needed to "
                              "find the partitions still serving their keys")
    name = _source_name(table)
    placed_u, params_u = _placed(table, part, "u", now=now)
    placed_p, params_p = _placed(table, part, "p", now=now)
    # NULL parts of a key compare equal, as the merge compares them; a column declared NOT NULL
    # is compared with ``=``, which the source can hash-join on.
    same = " AND ".join(f"p.{_q(k.name)} {'IS NOT DISTINCT FROM' if k.nullable else '='} u.{_q(k.name)}"
                        for k in key_cols)
    where_u = f"u.{_q(cursor.name)} > CAST(%s AS {_cast_type(cursor)}) AND NOT coalesce({placed_u}, FALSE)"
    where_p = f"{same} AND coalesce({placed_p}, FALSE)"
    params_u, params_p = [bind(floor), *params_u], list(params_p)
    try:
        with served_keys.opened(served_file(manifest)) as served:
            if len(key_cols) == 1 and _cast_type(key_cols[0]).startswith("NUMBER("):
                low, high = served_keys.key_range(served, key_cols[0].name)
                if low is None:
                    return {}  # nothing served
                if isinstance(low, int | Decimal) and isinstance(high, int | Decimal):
                    t, k = _cast_type(key_cols[0]), _q(key_cols[0].name)
                    where_u += f" AND u.{k} BETWEEN CAST(%s AS {t}) AND CAST(%s AS {t})"
                    where_p += f" AND p.{k} BETWEEN CAST(%s AS {t}) AND CAST(%s AS {t})"
                    params_u += [bind(low), bind(high)]
                    params_p += [bind(low), bind(high)]
            picked = ", ".join(f'u.{_q(k.name)} AS "k{i}"' for i, k in enumerate(key_cols))
            sql = (f"SELECT DISTINCT {picked} FROM {name} AS u WHERE {where_u} AND NOT EXISTS "
                   f"(SELECT 1 FROM {name} AS p WHERE {where_p})")
            params = params_u + params_p
            cur = con.cursor()
            try:
                cur.execute(bound(sql, params), params)
                found = served_keys.partitions_holding(served, table, manifest, cur.fetch_arrow_batches())
            finally:
                cur.close()
    except ServedDataError as e:
        raise ChangeScanError(f"{table.key}: changed rows lie in no partition, and the served version that would say "
                              f"which partitions still serve their keys could not be read: {e}") from e
    out: dict[str, int] = {}
    for bucket, rows in found:
        key = _key_of(table, bucket, now=now)
        if key is not None:  # a served partition no longer registered cannot be rewritten
            out[key] = out.get(key, 0) + rows
    return out


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
