"""Every Snowflake type lands in DuckDB with its exact type and values: NULLs, extremes, unicode, empty strings.

One test per type mapping; values are written in the source with SQL and read back from
the served DuckDB file. Stand-in quirks (docs/local-stand-in.md) are asserted as such, not "fixed".
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest

from tests.orchestration.conftest import Source, rows, sync

UTC = dt.UTC
# The stand-in returns a NULL TIMESTAMP as 1970-01-01 (docs/local-stand-in.md); real Snowflake returns NULL.
NULL_TS = (None, dt.datetime(1970, 1, 1), dt.datetime(1970, 1, 1, tzinfo=UTC))
N37 = 10**37 - 1

CASES: dict[str, tuple[str, list[str], str, list[Any]]] = {
    # name: (Snowflake type, SQL values, served DuckDB type, expected Python values in order)
    "number_10_0": ("NUMBER(10,0)", ["0", "-9999999999", "9999999999", "NULL"], "BIGINT",
                    [0, -9999999999, 9999999999, None]),
    "number_18_0": ("NUMBER(18,0)", ["999999999999999999", "-999999999999999999", "NULL"], "BIGINT",
                    [999999999999999999, -999999999999999999, None]),
    "number_37_0_wide": ("NUMBER(37,0)", [str(N37), str(-N37), "1", "NULL"], "HUGEINT", [N37, -N37, 1, None]),
    "int_alias": ("INT", ["42", "-7", "NULL"], "HUGEINT", [42, -7, None]),
    "number_38_2_extreme": ("NUMBER(38,2)", ["999999999999999999999999999999999999.99", "-0.01", "0", "NULL"],
                            "DECIMAL(38,2)",
                            [Decimal("999999999999999999999999999999999999.99"), Decimal("-0.01"), Decimal("0.00"), None]),
    "number_12_2": ("NUMBER(12,2)", ["1234567890.12", "-1234567890.12", "NULL"], "DECIMAL(12,2)",
                    [Decimal("1234567890.12"), Decimal("-1234567890.12"), None]),
    "number_9_9": ("NUMBER(9,9)", ["0.123456789", "-0.000000001", "NULL"], "DECIMAL(9,9)",
                   [Decimal("0.123456789"), Decimal("-0.000000001"), None]),
    "float": ("FLOAT", ["1.5", "-1.7976931348623157e308", "2.2250738585072014e-308", "NULL"], "DOUBLE",
              [1.5, -1.7976931348623157e308, 2.2250738585072014e-308, None]),
    "varchar_unicode_empty": ("VARCHAR(100)", ["'héllo wörld'", "'日本語 🙂'", "''", "'it''s'", "NULL"], "VARCHAR",
                              ["héllo wörld", "日本語 🙂", "", "it's", None]),
    "text": ("TEXT", ["'x'", "NULL"], "VARCHAR", ["x", None]),
    "boolean": ("BOOLEAN", ["TRUE", "FALSE", "NULL"], "BOOLEAN", [True, False, None]),
    "date_before_1970": ("DATE", ["'1900-01-01'", "'1969-12-31'", "'2999-12-31'", "NULL"], "DATE",
                         [dt.date(1900, 1, 1), dt.date(1969, 12, 31), dt.date(2999, 12, 31), None]),
    "time": ("TIME", ["'00:00:00'", "'23:59:59.999999'", "NULL"], "TIME",
             [dt.time(0, 0), dt.time(23, 59, 59, 999999), None]),
    "timestamp_ntz": ("TIMESTAMP_NTZ", ["'1901-12-13 20:45:52.123456'", "'1969-12-31 23:59:59'", "'2200-01-01 00:00:00'",
                                        "NULL"], "TIMESTAMP",
                      [dt.datetime(1901, 12, 13, 20, 45, 52, 123456), dt.datetime(1969, 12, 31, 23, 59, 59),
                       dt.datetime(2200, 1, 1), NULL_TS]),
    "timestamp_ltz": ("TIMESTAMP_LTZ", ["'2024-01-01 12:00:00'::TIMESTAMP_LTZ", "NULL"], "TIMESTAMP WITH TIME ZONE",
                      [dt.datetime(2024, 1, 1, 12, tzinfo=UTC), NULL_TS]),
    "timestamp_tz": ("TIMESTAMP_TZ", ["'2024-06-30 23:59:59.5 +0000'::TIMESTAMP_TZ", "'1950-01-01 00:00:00 +0000'::TIMESTAMP_TZ",
                                      "NULL"], "TIMESTAMP WITH TIME ZONE",
                     [dt.datetime(2024, 6, 30, 23, 59, 59, 500000, tzinfo=UTC), dt.datetime(1950, 1, 1, tzinfo=UTC), NULL_TS]),
    "variant": ("VARIANT", ["PARSE_JSON('{\"a\": [1, 2, {\"b\": null}], \"u\": \"ü\"}')", "PARSE_JSON('\"s\"')", "NULL"],
                "JSON", [{"a": [1, 2, {"b": None}], "u": "ü"}, "s", None]),
    "object": ("OBJECT", ["OBJECT_CONSTRUCT('k', 1, 'e', '')", "NULL"], "JSON", [{"k": 1, "e": ""}, None]),
    "array": ("ARRAY", ["ARRAY_CONSTRUCT(1, 'two', 3.5)", "NULL"], "JSON", [[1, "two", 3.5], None]),
    "binary": ("BINARY", ["TO_BINARY('00FF10', 'HEX')", "TO_BINARY('', 'HEX')", "NULL"], "BLOB", [b"\x00\xff\x10", b"", None]),
}


def _create(source: Source, name: str, sf_type: str, values: list[str]) -> None:
    source.sql(f"CREATE TABLE {source.table(name)} (ID NUMBER(10,0) NOT NULL, V {sf_type})")
    selects = " UNION ALL ".join(f"SELECT {i}, {v}" for i, v in enumerate(values))
    source.sql(f"INSERT INTO {source.table(name)} (ID, V) {selects}")


def _norm(value: Any, duck_type: str) -> Any:
    if duck_type == "JSON" and value is not None:
        return json.loads(value)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)
    return value


@pytest.mark.parametrize("case", sorted(CASES))
def test_type_maps_exactly(case: str, source: Source, sync_settings: Any) -> None:
    sf_type, values, duck_type, expected = CASES[case]
    _create(source, "TY", sf_type, values)
    table = source.register("TY")
    outcome = sync(table, sync_settings, source)
    columns = {c.name: c for c in outcome.manifest.columns}
    assert columns["V"].type == duck_type
    assert columns["V"].nullable
    assert not columns["ID"].nullable
    assert rows(sync_settings, table, "SELECT typeof(V) FROM data LIMIT 1")[0][0] == duck_type
    got = [_norm(r[1], duck_type) for r in rows(sync_settings, table, "SELECT ID, V FROM data ORDER BY ID")]
    assert len(got) == len(expected)
    for value, want in zip(got, expected, strict=True):
        assert value in want if isinstance(want, tuple) else value == want, (case, got, expected)


def test_not_null_and_comments_become_constraints_and_descriptions(source: Source, sync_settings: Any) -> None:
    source.sql(f"CREATE TABLE {source.table('C')} (ID NUMBER(10,0) NOT NULL, NAME VARCHAR NOT NULL, NOTE VARCHAR)")
    source.sql(f"INSERT INTO {source.table('C')} VALUES (1, 'a', NULL)")
    with contextlib.suppress(Exception):  # the stand-in stores the comment, then raises a parser error (docs/local-stand-in.md)
        source.sql(f"COMMENT ON COLUMN {source.table('C')}.NAME IS 'Customer''s full name'")
    table = source.register("C")
    outcome = sync(table, sync_settings, source)
    cols = {c.name: c for c in outcome.manifest.columns}
    assert (cols["ID"].nullable, cols["NAME"].nullable, cols["NOTE"].nullable) == (False, False, True)
    assert cols["NAME"].description == "Customer's full name"
    constraints = rows(sync_settings, table, "SELECT column_name, is_nullable FROM information_schema.columns ORDER BY 1")
    assert dict(constraints) == {"ID": "NO", "NAME": "NO", "NOTE": "YES"}
    assert rows(sync_settings, table, "SELECT comment FROM duckdb_columns() WHERE column_name = 'NAME'") == [
        ("Customer's full name",)]


def test_zero_row_table_keeps_every_type(source: Source, sync_settings: Any) -> None:
    decl = ", ".join(f"C{i} {CASES[k][0]}" for i, k in enumerate(sorted(CASES)))
    source.sql(f"CREATE TABLE {source.table('EMPTY')} ({decl})")
    table = source.register("EMPTY")
    outcome = sync(table, sync_settings, source)
    assert outcome.manifest.row_count == 0
    assert [c.type for c in outcome.manifest.columns] == [CASES[k][2] for k in sorted(CASES)]
    described = rows(sync_settings, table,
                     "SELECT column_name, data_type FROM information_schema.columns ORDER BY ordinal_position")
    assert [d[1] for d in described] == [CASES[k][2] for k in sorted(CASES)]
