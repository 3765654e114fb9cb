"""One way to reach the Snowflake source: connection arguments and metadata queries.

Why here: orchestration (syncs, the change sensor) and serving (browsing, validating a
registration) must target the same endpoint. ``host``, ``port`` and ``protocol`` are
passed explicitly (dagster-snowflake's resource silently dropped them as keywords, which
would quietly point the stand-in configuration at real Snowflake; the code location's own
resource refuses unknown keywords).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import snowflake.connector

from shared.settings import SnowflakeSettings


class SourceError(RuntimeError):
    """The source could not be reached, refused the credentials, or failed a query."""


# A quoted name or a string literal (quotes inside are doubled), a ``%s`` value, or ``%%``.
_PYFORMAT_TOKENS = re.compile(r""""(?:[^"]|"")*"|'(?:[^']|'')*'|%s|%%""")


def bound(sql: str, params: Sequence[Any] | None) -> str:
    """``sql`` as the connector's client-side binding must receive it with ``params``.

    Why: with values, the connector formats the statement with Python's ``%`` operator, so a
    ``%`` in a quoted name (``"50% off"``, ``"id%s"``) breaks the statement or swallows a
    value. It is doubled there; the connector formats it back. Without values the connector
    does not format, and the text is sent as it is.
    """
    if not params:
        return sql
    return _PYFORMAT_TOKENS.sub(lambda m: m.group(0).replace("%", "%%") if m.group(0)[0] in "\"'" else m.group(0),
                                sql)


def qmark(sql: str) -> str:
    """A statement prepared by ``bound`` (with values) in DuckDB's style: ``%s`` values become
    ``?`` and the doubled ``%`` in quoted names and literals are single again."""
    def one(m: re.Match[str]) -> str:
        text = m.group(0)
        if text[0] in "\"'":
            return text.replace("%%", "%")
        return "?" if text[1] == "s" else "%"

    return _PYFORMAT_TOKENS.sub(one, sql)


def endpoint_args(settings: SnowflakeSettings) -> dict[str, Any]:
    """Endpoint and session arguments that must never be dropped (see module docstring).

    ``platform_detection_timeout_seconds`` 0: at every login the connector otherwise probes
    six cloud metadata endpoints (up to 0.2 s each, in parallel) only to report the platform
    in its login telemetry, and a sync logs in once to plan and once per extraction worker.
    Authentication does not use it.
    """
    args: dict[str, Any] = {
        "session_parameters": {
            "CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False,
            "QUERY_TAG": settings.query_tag,
        },
        "network_timeout": settings.network_timeout_s,
        "login_timeout": settings.network_timeout_s,
        "platform_detection_timeout_seconds": 0.0,
    }
    if settings.host:
        args["host"] = settings.host
    if settings.port:
        args["port"] = settings.port
    if settings.protocol:
        args["protocol"] = settings.protocol
    return args


def connect_args(settings: SnowflakeSettings) -> dict[str, Any]:
    """Full keyword arguments for ``snowflake.connector.connect``."""
    args: dict[str, Any] = {
        "account": settings.account or "fakesnow",
        "user": settings.user,
        "password": settings.password,
        **endpoint_args(settings),
    }
    for name in ("database", "warehouse", "role"):
        value = getattr(settings, name)
        if value:
            args[name] = value
    return args


@contextmanager
def connect(settings: SnowflakeSettings) -> Iterator[snowflake.connector.SnowflakeConnection]:
    """A connector session; connection failures become ``SourceError`` naming the endpoint."""
    where = f"{settings.host or (settings.account + '.snowflakecomputing.com')}:{settings.port or 443}"
    try:
        con = snowflake.connector.connect(**connect_args(settings))
    except Exception as e:  # the connector raises many unrelated types
        raise SourceError(f"cannot connect to Snowflake at {where} as {settings.user!r}: {e}") from e
    try:
        yield con
    finally:
        con.close()


@dataclasses.dataclass(frozen=True)
class SourceColumn:
    name: str
    data_type: str  # e.g. NUMBER, TEXT, TIMESTAMP_NTZ
    precision: int | None
    scale: int | None
    nullable: bool
    comment: str


@dataclasses.dataclass(frozen=True)
class SourceTable:
    database: str
    schema: str
    name: str
    row_count: int | None
    bytes: int | None
    last_altered: str | None
    comment: str


def _q(value: str) -> str:
    """Quote an identifier for Snowflake; the name is exact (an unquoted name's exact form is upper case)."""
    return '"' + value.replace('"', '""') + '"'


def list_tables(con: Any, database: str, schema: str | None = None) -> list[SourceTable]:
    """Tables of ``database`` (optionally one schema) in one INFORMATION_SCHEMA query."""
    sql = (
        "SELECT table_catalog, table_schema, table_name, row_count, bytes, last_altered, comment "
        f"FROM {_q(database.upper())}.information_schema.tables "
        "WHERE table_type = 'BASE TABLE' AND table_schema <> 'INFORMATION_SCHEMA'"
    )
    params: list[Any] = []
    if schema:
        sql += " AND upper(table_schema) = upper(%s)"
        params.append(schema)
    sql += " ORDER BY table_schema, table_name"
    cur = con.cursor()
    try:
        cur.execute(bound(sql, params), params)
        rows = cur.fetchall()
    finally:
        cur.close()
    return [
        SourceTable(
            database=r[0], schema=r[1], name=r[2], row_count=r[3], bytes=r[4],
            last_altered=str(r[5]) if r[5] is not None else None, comment=r[6] or "",
        )
        for r in rows
    ]


def table_columns(con: Any, database: str, schema: str, table: str) -> list[SourceColumn]:
    """Columns of one table, in order; empty if the table does not exist.

    Names are exact Snowflake names (``ORDERS``, ``Order Lines``): two tables whose names
    differ only in case are two tables.

    Reads INFORMATION_SCHEMA.COLUMNS (``DESCRIBE TABLE`` hangs the local stand-in).
    """
    sql = (
        "SELECT column_name, data_type, numeric_precision, numeric_scale, is_nullable, comment "
        f"FROM {_q(database)}.information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s "
        "ORDER BY ordinal_position"
    )
    cur = con.cursor()
    try:
        cur.execute(bound(sql, (schema, table)), (schema, table))
        rows = cur.fetchall()
    finally:
        cur.close()
    return [
        SourceColumn(
            name=r[0], data_type=str(r[1]).upper(), precision=r[2], scale=r[3],
            nullable=str(r[4]).upper() == "YES", comment=r[5] or "",
        )
        for r in rows
    ]


def change_signatures(con: Any, tables: Sequence[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
    """``LAST_ALTERED|ROW_COUNT`` per table, one query per source database (not per table).

    Keys are the exact ``(database, schema, table)`` names asked for; a missing table is absent.
    """
    by_db: dict[str, list[tuple[str, str]]] = {}
    for db, schema, table in tables:
        by_db.setdefault(db, []).append((schema, table))
    out: dict[tuple[str, str, str], str] = {}
    for db, pairs in by_db.items():
        placeholders = ", ".join(["(%s, %s)"] * len(pairs))
        sql = (
            "SELECT table_schema, table_name, last_altered, row_count "
            f"FROM {_q(db)}.information_schema.tables "
            f"WHERE (table_schema, table_name) IN ({placeholders})"
        )
        cur = con.cursor()
        try:
            values = [v for pair in pairs for v in pair]
            cur.execute(bound(sql, values), values)
            for schema, table, altered, rows in cur.fetchall():
                out[(db, str(schema), str(table))] = f"{altered}|{rows}"
        finally:
            cur.close()
    return out
