"""The table registry: what an admin registered, validated, stored in the control database.

Why one module: the API (register/delete), the Dagster code location (asset factory,
schedules, sensors) and the CLI (demo registrations) must agree on what a valid
registration is. Validation errors name the offending field so callers can show them
as 4xx answers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

from croniter import croniter
from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from shared import identifiers, status
from shared.control.db import session_scope
from shared.control.models import RegisteredTableRow, utcnow
from shared.served import split_key, table_key
from shared.snowflake import SourceColumn

STRATEGIES = ("full", "incremental", "snapshot")
SOURCE_KINDS = ("snowflake", "duckdb", "parquet")  # one module each under shared/sources/
MAX_SOURCE_PATH_CHARS = 2_000
PARTITION_KINDS = ("none", "daily", "hourly", "monthly", "static")
TIME_PARTITION_KINDS = ("daily", "hourly", "monthly")
DATE_TYPES = ("DATE", "TIMESTAMP_NTZ", "TIMESTAMP_LTZ", "TIMESTAMP_TZ", "TIMESTAMP", "DATETIME")
# Types a cursor cannot have: a watermark of them cannot move past old rows to new ones (a
# BOOLEAN's is TRUE after the first TRUE row, so rows written FALSE later are never read).
CURSOR_REFUSED_TYPES = ("BOOLEAN", "VARIANT", "OBJECT", "ARRAY", "BINARY", "VARBINARY", "GEOGRAPHY", "GEOMETRY")
PARTITION_KEY_FORMATS = {"daily": "%Y-%m-%d", "hourly": "%Y-%m-%d-%H:%M", "monthly": "%Y-%m-%d"}
_DURATION = re.compile(r"^\s*(\d{1,15})\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

# --- Accepted ranges (documented in the README; the API refuses anything outside with 400).
# Why bounded at all: every value below ends up in date arithmetic (watermark minus lookback,
# partition windows, freshness deadlines) or in Dagster's partition list, where an
# unbounded value either overflows or makes every sync fail, long after the registration.
YEAR_S = 366 * 86400
LOOKBACK_MAX_S = YEAR_S  # a cursor re-read window longer than a year is a full reload: use full
FRESHNESS_MIN_S, FRESHNESS_MAX_S = 60, YEAR_S
MAX_AGE_MAX_S = YEAR_S  # a refresh's max_age_s (0 always refreshes)
PARTITION_START_MIN = dt.date(1900, 1, 1)
PARTITION_START_MAX_AHEAD_DAYS = 366  # a start later than this is a typo, not a go-live date
MAX_PARTITIONS = 50_000  # per table, start to today (hourly: about 5.7 years); also per sync request
MAX_STATIC_VALUES, MAX_STATIC_VALUE_CHARS = 1_000, 200
MAX_PRIMARY_KEY_COLUMNS = 64
MAX_DESCRIPTION_CHARS = 10_000
CRON_HORIZON_DAYS = 5 * 366  # a cron must fire within this (29 February fires every 4 years)
_PARTITIONS_PER_DAY = {"hourly": 24, "daily": 1, "monthly": 1 / 30.4}


class RegistrationError(ValueError):
    """A registration is invalid. ``field`` names what to fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclasses.dataclass(frozen=True)
class RegisteredTable:
    """One registered source table, as every component sees it."""

    database: str
    schema: str
    table: str
    strategy: str = "full"
    partition_kind: str = "none"
    partition_column: str | None = None
    partition_start: str | None = None
    partition_values: tuple[str, ...] = ()
    cursor_column: str | None = None
    lookback_s: int = 0
    primary_key: tuple[str, ...] = ()
    schedule: str | None = None
    freshness_s: int | None = None
    description: str = ""
    # Where the rows come from (shared/sources/): a Snowflake table (the names above), a table
    # of a DuckDB file (``source_path`` + ``source_table``) or Parquet files (``source_path``:
    # a file, folder or glob, local or ``s3://``). For file sources the names above only name
    # the served table.
    source_kind: str = "snowflake"
    source_path: str | None = None
    source_table: str | None = None
    # Live: not copied; agents' queries on it run in Snowflake (pushed down).
    live: bool = False
    # Day the registration was created (YYYY-MM-DD); anchors snapshot partitions. Not part of equality.
    registered_at: str | None = dataclasses.field(default=None, compare=False)

    @property
    def key(self) -> str:
        return table_key(self.database, self.schema, self.table)

    @property
    def asset_key_path(self) -> list[str]:
        """The key's encoded parts: valid Dagster names, ``[demo, public, orders]`` for ordinary names."""
        return list(split_key(self.key))

    @property
    def sql_name(self) -> str:
        """How an agent writes this table in SQL (``demo.public."Order Lines"``)."""
        return identifiers.sql_reference(self.key)

    @property
    def from_files(self) -> bool:
        """Whether the rows come from files (DuckDB or Parquet) rather than Snowflake."""
        return self.source_kind != "snowflake"

    @property
    def partitioned(self) -> bool:
        return self.partition_kind != "none"

    @property
    def time_partitioned(self) -> bool:
        return self.partition_kind in TIME_PARTITION_KINDS


def to_dict(reg: RegisteredTable) -> dict[str, Any]:
    """A registration as plain JSON values (for the load check run in another process)."""
    out = dataclasses.asdict(reg)
    out["partition_values"], out["primary_key"] = list(reg.partition_values), list(reg.primary_key)
    return out


def from_dict(raw: dict[str, Any]) -> RegisteredTable:
    """The inverse of :func:`to_dict`; unknown keys are refused (``TypeError``)."""
    values = dict(raw)
    values["partition_values"] = tuple(values.get("partition_values") or ())
    values["primary_key"] = tuple(values.get("primary_key") or ())
    return RegisteredTable(**values)


def _human(seconds: int) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_duration(value: Any, field: str, *, minimum: int = 0, maximum: int = YEAR_S) -> int:
    """Seconds from ``3600``, ``"90m"``, ``"1h"``, ``"2d"``, within ``[minimum, maximum]``; refuses anything else."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise RegistrationError(field, f"{value!r} is not a duration; use seconds or e.g. '30m', '1h', '1d'")
    if isinstance(value, int):
        seconds = value
    else:
        m = _DURATION.match(value)
        if not m:
            raise RegistrationError(field, f"{value[:40]!r} is not a duration; use seconds or e.g. '30m', '1h', '1d'")
        seconds = int(m.group(1)) * _UNITS[m.group(2).lower()]
    if seconds < 0:
        raise RegistrationError(field, "must not be negative")
    if not minimum <= seconds <= maximum:
        raise RegistrationError(field, f"must be between {_human(minimum)} and {_human(maximum)} "
                                       f"({minimum} to {maximum} seconds)")
    return seconds


def _partition_start(start: Any, kind: str, today: dt.date) -> str:
    """A time partitioning's first day: a real date from 1900 to a year ahead, with at most
    ``MAX_PARTITIONS`` partitions up to today."""
    field = "partitioning.start"
    try:
        day = dt.date.fromisoformat(str(start)[:10])
    except ValueError as e:
        raise RegistrationError(field, f"{str(start)[:40]!r} is not a date (YYYY-MM-DD)") from e
    latest = today + dt.timedelta(days=PARTITION_START_MAX_AHEAD_DAYS)
    if not PARTITION_START_MIN <= day <= latest:
        raise RegistrationError(field, f"{day.isoformat()} is outside {PARTITION_START_MIN.isoformat()} .. "
                                       f"{latest.isoformat()} (from 1900 to at most a year ahead)")
    count = (today - day).days * _PARTITIONS_PER_DAY[kind]
    if count > MAX_PARTITIONS:
        raise RegistrationError(field, f"{day.isoformat()} gives about {int(count):,} {kind} partitions up to today; "
                                       f"at most {MAX_PARTITIONS:,} are supported, so start later or use a "
                                       "coarser partitioning")
    return day.isoformat()


def _check_schedule(schedule: Any, now: dt.datetime) -> str:
    if not isinstance(schedule, str) or len(schedule.split()) != 5 or not croniter.is_valid(schedule):
        raise RegistrationError("schedule", f"{str(schedule)[:80]!r} is not a valid 5-field cron expression")
    try:
        nxt = croniter(schedule, now).get_next(dt.datetime)
    except Exception as e:  # croniter gives up on dates that never come (31 February)
        raise RegistrationError("schedule", f"{schedule!r} never fires") from e
    if nxt - now > dt.timedelta(days=CRON_HORIZON_DAYS):
        raise RegistrationError("schedule", f"{schedule!r} does not fire within five years")
    return schedule


def _ident(value: Any, field: str) -> str:
    """The exact Snowflake name written as ``value``, by Snowflake's rule: unquoted names are
    case-insensitive and stored upper-case (``orders`` -> ``ORDERS``); a name in double
    quotes is exact (``"Order Lines"``)."""
    try:
        return identifiers.parse_name(value)
    except identifiers.IdentifierError as e:
        raise RegistrationError(field, str(e)) from e


def _ident_list(value: Any, field: str) -> tuple[str, ...]:
    """Column names from a list, or from one comma-separated string (quotes honoured)."""
    if isinstance(value, str):
        try:
            parts = identifiers.split_reference(value, sep=",")
        except identifiers.IdentifierError as e:
            raise RegistrationError(field, str(e)) from e
        value = [f'"{p.replace(chr(34), chr(34) * 2)}"' if quoted else p for p, quoted in parts if quoted or p]
    if not isinstance(value, list):
        raise RegistrationError(field, "must be a list of column names")
    return tuple(_ident(p, field) for p in value)


def build_registration(raw: dict[str, Any], *, default_database: str) -> RegisteredTable:
    """Normalise user input (API body, CLI) into a ``RegisteredTable`` or raise ``RegistrationError``.

    Accepts strategy in any case, ``partitioning`` as ``"none"`` or
    ``{"kind", "column", "start"?, "values"?}``, ``freshness`` as a duration, ``schedule``
    as a 5-field cron.
    """
    database = _ident(raw.get("database") or default_database, "database")
    schema = _ident(raw.get("schema_name") or raw.get("schema"), "schema_name")
    table = _ident(raw.get("table_name") or raw.get("table"), "table_name")

    strategy = str(raw.get("strategy") or "full").strip().lower()
    if strategy not in STRATEGIES:
        raise RegistrationError("strategy", f"{raw.get('strategy')!r} is not one of {', '.join(STRATEGIES)}")

    part = raw.get("partitioning") or "none"
    if isinstance(part, str):
        part = {"kind": part}
    if not isinstance(part, dict):
        raise RegistrationError("partitioning", "must be 'none' or an object {kind, column, start?, values?}")
    kind = str(part.get("kind") or "none").lower()
    if kind not in PARTITION_KINDS:
        raise RegistrationError("partitioning.kind", f"{part.get('kind')!r} is not one of {', '.join(PARTITION_KINDS)}")
    column = part.get("column")
    start = part.get("start")
    values: tuple[str, ...] = ()
    now = dt.datetime.now(dt.UTC)
    if kind != "none":
        column = _ident(column, "partitioning.column")
    if kind in TIME_PARTITION_KINDS:
        if not start:
            raise RegistrationError("partitioning.start", "time partitioning needs a start date such as '2025-01-01'")
        start = _partition_start(start, kind, now.date())
    if kind == "static":
        vals = part.get("values")
        if not isinstance(vals, list) or not vals or not all(isinstance(v, str | int) for v in vals):
            raise RegistrationError("partitioning.values", "static partitioning needs a non-empty list of values")
        if len(vals) > MAX_STATIC_VALUES:
            raise RegistrationError("partitioning.values", f"at most {MAX_STATIC_VALUES} values ({len(vals)} given)")
        values = tuple(str(v) for v in vals)
        if len(set(values)) != len(values):
            raise RegistrationError("partitioning.values", "values must be unique")
        for v in values:
            if not v or len(v) > MAX_STATIC_VALUE_CHARS or not v.isprintable():
                raise RegistrationError("partitioning.values", f"{v[:40]!r}: each value needs 1 to "
                                        f"{MAX_STATIC_VALUE_CHARS} printable characters")
    if strategy == "snapshot" and kind != "none":
        raise RegistrationError("strategy", "snapshot makes its own daily partitions; leave partitioning as 'none'")

    cursor = raw.get("incremental_key") or raw.get("cursor_column")
    if cursor is not None:
        cursor = _ident(cursor, "incremental_key")
    if strategy == "incremental" and not cursor:
        raise RegistrationError("incremental_key", "the incremental strategy needs a cursor column")
    lookback = parse_duration(raw.get("lookback", 0), "lookback", maximum=LOOKBACK_MAX_S)

    pk_raw = raw.get("primary_key") or []
    if isinstance(pk_raw, list) and len(pk_raw) > MAX_PRIMARY_KEY_COLUMNS:
        raise RegistrationError("primary_key", f"at most {MAX_PRIMARY_KEY_COLUMNS} columns")
    primary_key = _ident_list(pk_raw, "primary_key")
    if len(set(primary_key)) != len(primary_key):
        raise RegistrationError("primary_key", "names a column twice")
    if strategy == "incremental" and not primary_key:
        raise RegistrationError("primary_key", "the incremental strategy merges on a primary key; name one")

    schedule = raw.get("schedule") or None
    if schedule is not None:
        schedule = _check_schedule(schedule, now)
    freshness = raw.get("freshness")
    freshness_s = None if freshness in (None, "") else parse_duration(
        freshness, "freshness", minimum=FRESHNESS_MIN_S, maximum=FRESHNESS_MAX_S)

    description = raw.get("description") or ""
    if not isinstance(description, str):
        raise RegistrationError("description", "must be a string")
    if len(description) > MAX_DESCRIPTION_CHARS:
        raise RegistrationError("description", f"at most {MAX_DESCRIPTION_CHARS:,} characters")
    src_kind, path, source_table = _source(raw.get("source"))
    live = raw.get("live", False)
    if not isinstance(live, bool):
        raise RegistrationError("live", "must be true or false")
    if live:
        if src_kind != "snowflake":
            raise RegistrationError("live", "only Snowflake tables can be live (queries on them run in Snowflake)")
        if strategy != "full" or kind != "none" or schedule or cursor:
            raise RegistrationError("live", "a live table is not copied: leave strategy, partitioning, schedule and "
                                            "incremental_key unset")
    # Names are exact from here on (``_ident`` applied Snowflake's rule for unquoted ones).
    return RegisteredTable(
        database=database, schema=schema, table=table, strategy=strategy,
        partition_kind=kind, partition_column=column or None, partition_start=start,
        partition_values=values, cursor_column=cursor or None, lookback_s=lookback,
        primary_key=primary_key, schedule=schedule, freshness_s=freshness_s,
        description=description, source_kind=src_kind, source_path=path, source_table=source_table, live=live,
    )


def _source(raw: Any) -> tuple[str, str | None, str | None]:
    """``source``: absent (Snowflake, the names above), or ``{"kind", "path", "table"?}``.

    Only the shape is checked here; whether the location exists and is allowed is the
    source kind's question (``shared.sources.check_location``).
    """
    if raw is None:
        return "snowflake", None, None
    if not isinstance(raw, dict):
        raise RegistrationError("source", "must be an object {kind, path, table?}")
    unknown = set(raw) - {"kind", "path", "table"}
    if unknown:
        raise RegistrationError("source", f"unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    kind = str(raw.get("kind") or "snowflake").strip().lower()
    if kind not in SOURCE_KINDS:
        raise RegistrationError("source.kind", f"{str(raw.get('kind'))[:40]!r} is not one of {', '.join(SOURCE_KINDS)}")
    if kind == "snowflake":
        if raw.get("path") or raw.get("table"):
            raise RegistrationError("source", "a Snowflake source is named by database, schema_name and table_name")
        return kind, None, None
    path = raw.get("path")
    if not isinstance(path, str) or not path.strip():
        raise RegistrationError("source.path", f"a {kind} source needs a path")
    if len(path) > MAX_SOURCE_PATH_CHARS or not path.isprintable():
        raise RegistrationError("source.path", f"at most {MAX_SOURCE_PATH_CHARS} printable characters")
    table = raw.get("table")
    if kind == "duckdb":
        if not isinstance(table, str) or not table.strip() or len(table) > 512 or not table.isprintable():
            raise RegistrationError("source.table", "a duckdb source names its table (table or schema.table)")
    elif table is not None:
        raise RegistrationError("source.table", "a parquet source is the files themselves; leave table unset")
    return kind, path.strip(), table.strip() if isinstance(table, str) else None


def cursor_type_problem(col: SourceColumn) -> str | None:
    """Why ``col`` cannot be an incremental key (its type has no order a watermark can follow), or None."""
    kind = col.data_type.upper()
    if kind not in CURSOR_REFUSED_TYPES:
        return None
    return (f"column {identifiers.snowflake_reference(col.name)} is {kind}, which a watermark cannot follow to "
            "new rows; use a number, date, timestamp or text column that grows as rows are written")


def check_against_source(reg: RegisteredTable, columns: Sequence[SourceColumn]) -> None:
    """Refuse a registration whose table or named columns are missing in the source."""
    source = (identifiers.snowflake_reference(reg.database, reg.schema, reg.table)  # as Snowflake names it
              if not reg.from_files else f"{reg.source_kind} source {reg.source_path}")
    if not columns:
        raise RegistrationError("table_name", f"table {source} does not exist in the source (unquoted names are "
                                              'upper-cased; quote an exact name, e.g. "Order Lines")')
    by_name = {c.name: c for c in columns}  # exact: Snowflake names differing in case are different columns
    named = [("partitioning.column", reg.partition_column), ("incremental_key", reg.cursor_column)]
    named += [("primary_key", p) for p in reg.primary_key]
    for field, col in named:
        if col and col not in by_name:
            near = [c for c in by_name if c.upper() == col.upper()]
            hint = f" (did you mean {identifiers.snowflake_reference(near[0])}? quote exact names)" if near else ""
            raise RegistrationError(field, f"column {identifiers.snowflake_reference(col)} does not exist in {source}{hint}")
    clashes = identifiers.column_collisions([c.name for c in columns])
    if clashes:
        a, b = (identifiers.snowflake_reference(n) for n in clashes[0])
        raise RegistrationError("table_name", f"columns {a} and {b} of {source} differ only in case, which DuckDB "
                                              "cannot serve as two columns")
    if reg.cursor_column and (problem := cursor_type_problem(by_name[reg.cursor_column])):
        raise RegistrationError("incremental_key", problem)
    if reg.time_partitioned and reg.partition_column:
        kind = by_name[reg.partition_column].data_type
        if kind not in DATE_TYPES:
            raise RegistrationError("partitioning.column", f"column {reg.partition_column} is {kind}, not a DATE or TIMESTAMP")


def from_row(row: RegisteredTableRow) -> RegisteredTable:
    """The registration a control-database row holds (also for readers that query the rows themselves)."""
    return RegisteredTable(
        database=row.database, schema=row.schema_name, table=row.table_name, strategy=row.strategy,
        partition_kind=row.partition_kind, partition_column=row.partition_column,
        partition_start=row.partition_start, partition_values=tuple(row.partition_values or ()),
        cursor_column=row.cursor_column, lookback_s=row.lookback_s, primary_key=tuple(row.primary_key or ()),
        schedule=row.schedule, freshness_s=row.freshness_s, description=row.description,
        registered_at=row.created_at.date().isoformat() if row.created_at else None,
        source_kind=row.source_kind or "snowflake", source_path=row.source_path, source_table=row.source_table,
        live=bool(row.live),
    )


def save(url: str, reg: RegisteredTable) -> tuple[RegisteredTable, bool]:
    """Insert or update (same key: updated, never duplicated). Returns (record, created).

    Race-free across processes: the insert is ``ON CONFLICT DO NOTHING`` against the
    unique index on live keys, so of two simultaneous registrations of a new table one
    inserts and the other updates that same row (SQLite and PostgreSQL alike).
    """
    now = utcnow()
    values: dict[str, Any] = {
        "database": reg.database, "schema_name": reg.schema, "table_name": reg.table, "strategy": reg.strategy,
        "partition_kind": reg.partition_kind, "partition_column": reg.partition_column,
        "partition_start": reg.partition_start, "partition_values": list(reg.partition_values),
        "cursor_column": reg.cursor_column, "lookback_s": reg.lookback_s, "primary_key": list(reg.primary_key),
        "schedule": reg.schedule, "freshness_s": reg.freshness_s, "description": reg.description, "updated_at": now,
        "source_kind": reg.source_kind, "source_path": reg.source_path, "source_table": reg.source_table,
        "live": reg.live,
    }
    live = (RegisteredTableRow.key == reg.key, RegisteredTableRow.deleted_at.is_(None))
    for _attempt in range(3):  # a concurrent soft-delete between the two statements: try again
        with session_scope(url) as s:
            dialect = s.get_bind().dialect.name
            insert = pg_insert if dialect == "postgresql" else sqlite_insert
            stmt = (insert(RegisteredTableRow).values(key=reg.key, created_at=now, **values)
                    .on_conflict_do_nothing(index_elements=["key"], index_where=RegisteredTableRow.deleted_at.is_(None))
                    .returning(RegisteredTableRow.id))
            if s.execute(stmt).first() is not None:
                return reg, True
            changed = s.execute(update(RegisteredTableRow).where(*live).values(**values)
                                .execution_options(synchronize_session=False))
            if changed.rowcount:  # type: ignore[attr-defined]
                return reg, False
    raise RuntimeError(f"could not save the registration of {reg.key}: it changed concurrently three times")


def list_registered(url: str) -> list[RegisteredTable]:
    """Live registrations ordered by key."""
    with session_scope(url) as s:
        rows = s.scalars(
            select(RegisteredTableRow).where(RegisteredTableRow.deleted_at.is_(None)).order_by(RegisteredTableRow.key)
        ).all()
        return [from_row(r) for r in rows]


def get_registered(url: str, key: str) -> RegisteredTable | None:
    with session_scope(url) as s:
        row = s.scalars(
            select(RegisteredTableRow).where(RegisteredTableRow.key == key.lower(), RegisteredTableRow.deleted_at.is_(None))
        ).first()
        return from_row(row) if row else None


def soft_delete(url: str, key: str) -> bool:
    """Mark a registration deleted (history kept). Returns False if none was live."""
    with session_scope(url) as s:
        row = s.scalars(
            select(RegisteredTableRow).where(RegisteredTableRow.key == key.lower(), RegisteredTableRow.deleted_at.is_(None))
        ).first()
        if row is None:
            return False
        row.deleted_at = utcnow()
        status.mark_stale(s, key.lower(), "registration removed", unserve=True)
        return True
