"""Exact Snowflake → DuckDB column types, decided from the source's declared metadata.

Why declared metadata and not the Arrow schema: the connector's Arrow types depend on
the server and its settings (real Snowflake sends NUMBER(12,2) as float64 unless
``arrow_number_to_decimal`` is on; the local stand-in sends decimal128 and turns
TIMESTAMP_LTZ into TIMESTAMP_TZ). Every slice is therefore CAST to the type computed
here, so a served column's type never depends on which rows a slice happened to hold.

Rules: NUMBER(p,0) stays an integer (BIGINT up to 18 digits, HUGEINT up to 38, which
holds every 38-digit value); NUMBER(p,s) is DECIMAL(p,s); FLOAT is DOUBLE; text is
VARCHAR; TIMESTAMP_NTZ is TIMESTAMP; TIMESTAMP_LTZ/TZ are TIMESTAMPTZ (an instant);
VARIANT/OBJECT/ARRAY are JSON; BINARY is BLOB. NOT NULL is kept and column comments
become descriptions.
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestration.sync.sql import qi
from shared.served import Column
from shared.snowflake import SourceColumn

MAX_PRECISION = 38
BIGINT_DIGITS = 18  # every 18-digit integer fits in a signed 64-bit integer
TIMESTAMPTZ = "TIMESTAMP WITH TIME ZONE"  # DuckDB's canonical name, as DESCRIBE reports it

_SIMPLE = {
    "FLOAT": "DOUBLE", "FLOAT4": "DOUBLE", "FLOAT8": "DOUBLE", "DOUBLE": "DOUBLE", "DOUBLE PRECISION": "DOUBLE",
    "REAL": "DOUBLE",
    "TEXT": "VARCHAR", "VARCHAR": "VARCHAR", "STRING": "VARCHAR", "CHAR": "VARCHAR", "CHARACTER": "VARCHAR",
    "NCHAR": "VARCHAR", "NVARCHAR": "VARCHAR", "NVARCHAR2": "VARCHAR", "CHAR VARYING": "VARCHAR",
    "BOOLEAN": "BOOLEAN",
    "DATE": "DATE",
    "TIME": "TIME",
    "TIMESTAMP_NTZ": "TIMESTAMP", "TIMESTAMP": "TIMESTAMP", "DATETIME": "TIMESTAMP",
    "TIMESTAMP_LTZ": TIMESTAMPTZ, "TIMESTAMP_TZ": TIMESTAMPTZ,
    "VARIANT": "JSON", "OBJECT": "JSON", "ARRAY": "JSON",
    "BINARY": "BLOB", "VARBINARY": "BLOB",
    # Spatial values arrive as GeoJSON text (GEOGRAPHY_OUTPUT_FORMAT's default).
    "GEOGRAPHY": "VARCHAR", "GEOMETRY": "VARCHAR",
}
_NUMERIC = {"NUMBER", "DECIMAL", "NUMERIC", "INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "BYTEINT"}
INTEGER_TYPES = ("BIGINT", "HUGEINT")
ORDERED_SLICE_TYPES = ("BIGINT", "HUGEINT", "DECIMAL", "DOUBLE", "DATE", "TIMESTAMP", TIMESTAMPTZ)


class UnsupportedTypeError(ValueError):
    """A source column has a type with no exact DuckDB counterpart; the message names it."""


def duckdb_type(col: SourceColumn) -> str:
    """The served DuckDB type of one source column."""
    kind = col.data_type.upper().strip()
    if kind in _NUMERIC:
        precision = col.precision if col.precision is not None else MAX_PRECISION
        scale = col.scale or 0
        if scale == 0:
            return "BIGINT" if precision <= BIGINT_DIGITS else "HUGEINT"
        return f"DECIMAL({min(precision, MAX_PRECISION)},{scale})"
    if kind in _SIMPLE:
        return _SIMPLE[kind]
    raise UnsupportedTypeError(f"column {col.name} has Snowflake type {col.data_type}, which has no exact DuckDB type")


def served_columns(source: Sequence[SourceColumn]) -> list[Column]:
    """Served columns (name, DuckDB type, nullability, description) in source order."""
    return [Column(name=c.name, type=duckdb_type(c), nullable=c.nullable, description=c.comment or "") for c in source]


def base_type(duck_type: str) -> str:
    """``DECIMAL(12,2)`` → ``DECIMAL``."""
    return duck_type.split("(", 1)[0].upper()


def decimal_parts(duck_type: str) -> tuple[int, int]:
    """(precision, scale) of a DECIMAL type; integers as (digits, 0)."""
    if duck_type == "BIGINT":
        return (BIGINT_DIGITS, 0)
    if duck_type == "HUGEINT":
        return (MAX_PRECISION, 0)
    inner = duck_type[duck_type.index("(") + 1 : duck_type.index(")")]
    p, s = inner.split(",")
    return int(p), int(s)


def cast_expr(column: Column, source_name: str | None = None) -> str:
    """The expression turning an Arrow slice column into the served type.

    VARIANT text goes through ``json()`` so it is validated and stored minified; the
    stand-in and real Snowflake format it differently.
    """
    src = qi(source_name or column.name)
    if column.type == "JSON":
        return f"json({src})"
    return f"CAST({src} AS {column.type})"


def column_ddl(column: Column) -> str:
    return f"{qi(column.name)} {column.type}" + ("" if column.nullable else " NOT NULL")
