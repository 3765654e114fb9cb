"""Snowflake names: the input rule, the one reversible encoding, and registration of any identifier."""

from __future__ import annotations

import re

import pytest

from shared import identifiers as ids
from shared.registry import RegistrationError, build_registration, check_against_source
from shared.served import split_key, table_dir, table_key
from shared.snowflake import SourceColumn

KELVIN = "\u212a"
NAMES = ["ORDERS", "Order Lines", "ORDER LINES", "order lines", "lower_t", "LOWER_T", "select", "SELECT", "group",
         "Order", "Line Id", "MixedCase", "MY$TABLE", "$", "_", "__", "_A", "A_", "a_b", "0", "9LIVES", "Café",
         "CAFÉ", "日本語", f"duc{KELVIN}db", "a\"b", "a.b", "a/b", "..", ".", " ", " x ", "x" * 254, "😀", "_32_",
         "0_order_32__lines", "%2e", "UPPER_AND$"]


@pytest.mark.parametrize("name", NAMES)
def test_every_name_round_trips_through_one_safe_encoding(name: str) -> None:
    part = ids.encode_part(name)
    assert ids.decode_part(part) == name
    assert re.fullmatch(r"[a-z0-9_]+", part), "a valid Dagster name, file name and DuckDB name, lower case only"
    assert part not in (".", "..")
    assert len(part.encode()) <= ids.MAX_PART_BYTES


def test_the_encoding_is_unambiguous_and_keeps_case_apart() -> None:
    parts = [ids.encode_part(n) for n in NAMES]
    assert len(set(parts)) == len(NAMES)
    assert len({p.lower() for p in parts}) == len(NAMES), "distinct on a case-insensitive file system and in DuckDB"


def test_ordinary_names_keep_the_keys_they_always_had() -> None:
    assert table_key("DEMO", "PUBLIC", "ORDERS") == "demo.public.orders"
    assert table_key("DEMO", "PUBLIC", "Order Lines") == "demo.public.0_order_32__lines"
    assert table_key("DEMO", "PUBLIC", "lower_t") == "demo.public.0lower__t"
    assert split_key("demo.public.0_order_32__lines") == ("demo", "public", "0_order_32__lines")
    assert ids.source_names("demo.public.0_order_32__lines") == ("DEMO", "PUBLIC", "Order Lines")


@pytest.mark.parametrize("bad", ["demo.public", "demo.public.orders.x", "demo.public.ORDERS", "demo.public.0_x",
                                 "demo.public.0ab_", "demo..orders", "demo.public.order lines", "demo.public.0_99999999_"])
def test_keys_have_one_spelling(bad: str) -> None:
    with pytest.raises(ValueError, match=r"database\.schema\.table"):
        split_key(bad)


def test_folders_follow_the_encoded_key(tmp_path: object) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    assert table_dir(root, "demo.public.0_order_32__lines") == root / "demo" / "public" / "0_order_32__lines"
    assert table_dir(root, "demo.public.orders") == root / "demo" / "public" / "orders"


@pytest.mark.parametrize(("text", "name"), [
    ("orders", "ORDERS"), ("Orders", "ORDERS"), ("my$t", "MY$T"), ('"Order Lines"', "Order Lines"),
    ('"lower_t"', "lower_t"), ('"select"', "select"), ('"a""b"', 'a"b'), ('"日本"', "日本"),
    ("0_order_32__lines", "Order Lines"),
])
def test_names_are_read_as_snowflake_reads_them(text: str, name: str) -> None:
    assert ids.parse_name(text) == name


@pytest.mark.parametrize("text", ["DEMO\n", "orders\n", "or ders", "select;", '"a"b"', '""', '"x\ny"', '"x\x00"',
                                  '"tab\there"', "", "1abc", '"' + "x" * 256 + '"', "0_x"])
def test_bad_names_are_refused_with_the_reason(text: str) -> None:
    with pytest.raises(ids.IdentifierError):
        ids.parse_name(text)


def test_names_too_long_to_store_are_refused() -> None:
    with pytest.raises(ids.IdentifierError, match="too long"):
        ids.check_name("x" * 255)  # a Snowflake name, but its folder name would pass 255 bytes
    with pytest.raises(ids.IdentifierError, match="at most 255"):
        ids.check_name("x" * 256)


def test_references_split_on_dots_outside_quotes() -> None:
    assert ids.split_reference('demo.public."Order.Lines"') == [("demo", False), ("public", False), ("Order.Lines", True)]
    assert ids.split_reference('ID, "Line Id"', sep=",") == [("ID", False), ("Line Id", True)]
    assert ids.canonical_key('DEMO.Public."Order Lines"') == "demo.public.0_order_32__lines"
    assert ids.canonical_key("demo.public.0_order_32__lines") == "demo.public.0_order_32__lines"
    assert ids.sql_reference("demo.public.0_order_32__lines") == 'demo.public."Order Lines"'
    assert ids.sql_reference("demo.public.orders") == "demo.public.orders"
    assert ids.sql_reference(table_key("DEMO", "PUBLIC", "SELECT")) == 'demo.public."SELECT"', "reserved words quoted"
    with pytest.raises(ValueError, match="unterminated"):
        ids.canonical_key('demo.public."Order')


def test_registration_takes_any_snowflake_identifier() -> None:
    reg = build_registration({"schema_name": "public", "table_name": '"Order Lines"', "strategy": "incremental",
                              "incremental_key": '"Updated At"', "primary_key": '"Line Id", "select"',
                              "partitioning": {"kind": "daily", "column": '"Order"', "start": "2025-01-01"}},
                             default_database="DEMO")
    assert (reg.database, reg.schema, reg.table) == ("DEMO", "PUBLIC", "Order Lines")
    assert reg.primary_key == ("Line Id", "select")
    assert (reg.cursor_column, reg.partition_column) == ("Updated At", "Order")
    assert reg.key == "demo.public.0_order_32__lines"
    assert reg.asset_key_path == ["demo", "public", "0_order_32__lines"]
    assert reg.sql_name == 'demo.public."Order Lines"'
    lower = build_registration({"schema_name": "PUBLIC", "table_name": '"lower_t"'}, default_database="DEMO")
    upper = build_registration({"schema_name": "PUBLIC", "table_name": "lower_t"}, default_database="DEMO")
    assert (lower.table, upper.table) == ("lower_t", "LOWER_T")
    assert lower.key != upper.key, "names differing only in case stay two tables"
    plain = build_registration({"schema_name": "public", "table_name": "orders", "primary_key": ["id"]},
                               default_database="demo")
    assert (plain.key, plain.primary_key) == ("demo.public.orders", ("ID",))


@pytest.mark.parametrize(("field", "value"), [("table_name", "T\n"), ("table_name", "Order Lines"),
                                              ("schema_name", '"a\u0007"'), ("database", "DEMO\n"),
                                              ("primary_key", ["ID\n"]), ("incremental_key", "a-b")])
def test_registration_refuses_names_it_cannot_keep(field: str, value: object) -> None:
    raw = {"schema_name": "PUBLIC", "table_name": "T", field: value}
    with pytest.raises(RegistrationError) as e:
        build_registration(raw, default_database="DEMO")
    assert e.value.field == field


def _col(name: str) -> SourceColumn:
    return SourceColumn(name=name, data_type="NUMBER", precision=10, scale=0, nullable=True, comment="")


def test_columns_are_matched_exactly_and_duckdb_collisions_refused() -> None:
    reg = build_registration({"schema_name": "PUBLIC", "table_name": '"Order Lines"', "primary_key": '"Line Id"'},
                             default_database="DEMO")
    check_against_source(reg, [_col("Line Id"), _col("select")])
    with pytest.raises(RegistrationError, match=r'did you mean "LINE ID"'):
        check_against_source(reg, [_col("LINE ID")])
    with pytest.raises(RegistrationError, match="differ only in case"):
        check_against_source(reg, [_col("Line Id"), _col("a"), _col("A")])
    check_against_source(reg, [_col("Line Id"), _col("\u00e9"), _col("\u00c9")])  # DuckDB keeps these apart


def test_duckdb_folding_is_ascii_only() -> None:
    assert ids.duck_fold(f"duc{KELVIN}DB") == f"duc{KELVIN}db"
    assert f"duc{KELVIN}db".lower() == "duckdb", "what Python would have said"
    assert ids.folds_ambiguously(f"duc{KELVIN}db")
    assert ids.folds_ambiguously("CAF\u00c9")
    assert not ids.folds_ambiguously("caf\u00e9"), "already lower case: Python and DuckDB agree"
    assert not ids.folds_ambiguously("DuckDB_$1")
    assert not ids.folds_ambiguously("日本")
