"""Personal-data classification: each category by name and by values, Luhn, free text, and no false alarms."""

from __future__ import annotations

import duckdb
import pytest

from shared.classify import classify_column, classify_table, contains_personal, luhn

EMAILS = [f"person{i}@example.org" for i in range(50)]
PHONES = [f"+1 (555) 010-{i:04d}" for i in range(50)]
NAMES = ["Alice Martin", "Omar Okafor", "Mei Tanaka", "Lucas Garcia", "Sofia Dubois"] * 10
ADDRESSES = [f"{i + 1} Baker Street, London" for i in range(25)] + [f"Hauptstraße {i + 1}" for i in range(25)]
IPS = [f"10.0.{i}.{i + 1}" for i in range(40)] + ["2001:db8::1", "fe80::1"] * 5
CARDS = ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005", "6011111111111117"] * 10
SSNS = [f"{123 + i}-45-{6789 - i:04d}" for i in range(40)]
TEXT = [f"Customer wrote in: please call me back at person{i}@example.org about the order" for i in range(10)] + \
    ["The delivery was late again and the box was damaged on arrival"] * 30


@pytest.mark.parametrize(("name", "values", "category"), [
    ("contact", EMAILS, "email"), ("x", PHONES, "phone"), ("who", NAMES, "person_name"),
    ("location", ADDRESSES, "postal_address"), ("client", IPS, "ip_address"), ("pan_data", CARDS, "payment_card"),
    ("ident", SSNS, "national_id"), ("comment", TEXT, "free_text"),
])
def test_each_category_by_values(name: str, values: list[str], category: str) -> None:
    verdict = classify_column(name, values)
    assert verdict.category == category, verdict
    assert verdict.personal
    assert verdict.evidence["value_rule"] == category
    assert verdict.evidence["sampled"] == len(values)
    assert 0 < verdict.evidence["matched_share"] <= 1


@pytest.mark.parametrize(("name", "category"), [
    ("EMAIL", "email"), ("email_address", "email"), ("MobilePhone", "phone"), ("first_name", "person_name"),
    ("CUSTOMER_NAME", "person_name"), ("street_address", "postal_address"), ("COUNTRY", "postal_address"),
    ("ip_address", "ip_address"), ("credit_card", "payment_card"), ("SSN", "national_id"),
    ("passport_number", "national_id"),
])
def test_each_category_by_name(name: str, category: str) -> None:
    verdict = classify_column(name, [])
    assert verdict.category == category
    assert verdict.personal
    assert verdict.evidence["name_rule"] == f"name:{category}"


def test_name_and_values_together_are_surer_than_either() -> None:
    both = classify_column("email", EMAILS).confidence
    assert both > classify_column("contact", EMAILS).confidence
    assert both > classify_column("email", []).confidence


def test_a_name_rule_the_values_contradict_is_weaker() -> None:
    verdict = classify_column("email_sent", ["true", "false"] * 30)
    assert not verdict.personal


def test_cards_need_the_luhn_check() -> None:
    assert luhn("4111111111111111")
    assert not luhn("4111111111111112")
    bad = ["4111 1111 1111 1112", "1234 5678 9012 3456"] * 20
    assert classify_column("numbers", bad).category != "payment_card"


@pytest.mark.parametrize(("name", "values"), [
    ("order_id", [str(i) for i in range(100)]), ("status", ["shipped", "pending", "cancelled"] * 20),
    ("sku", [f"SKU-{i:06d}" for i in range(60)]), ("amount", [f"{i * 1.25:.2f}" for i in range(60)]),
    ("NAME", [f"Product {i}" for i in range(60)]), ("created_at", [f"2026-01-{i % 28 + 1:02d} 10:00:00" for i in range(60)]),
    ("version", ["1.2.3", "2.0.1"] * 30),
])
def test_ordinary_columns_are_not_personal(name: str, values: list[str]) -> None:
    assert not classify_column(name, values).personal


def test_free_text_finds_each_kind_inside() -> None:
    assert contains_personal("write to jane@example.com today") == "email"
    assert contains_personal("card 4111 1111 1111 1111 was declined") == "payment_card"
    assert contains_personal("my SSN is 123-45-6789") == "national_id"
    assert contains_personal("login from 192.168.10.4 failed") == "ip_address"
    assert contains_personal("call +44 20 7946 0018 after six") == "phone"
    assert contains_personal("the parcel arrived damaged") is None


def test_classify_table_samples_a_relation() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE data AS SELECT i AS id, 'p' || i || '@example.com' AS mail, 'x' AS flag FROM range(5000) t(i)")
    verdicts = classify_table(con, "data", ["id", "mail", "flag"])
    assert [n for n, v in verdicts.items() if v["personal"]] == ["mail"]
    assert verdicts["mail"]["evidence"]["sampled"] == 1000
    assert classify_table(con, "data", ["id", "mail", "flag"]) == verdicts  # seeded: the same verdicts every time
