"""Each materialization classifies its columns before publishing: in the manifest and in Dagster's metadata,
for drifted columns too, and the demo's customers come out personal."""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets

from shared import demo
from shared.settings import Settings
from tests.orchestration.conftest import Source, current, materialization, materialize, sync


def test_classification_is_materialization_metadata_and_travels_with_the_version(source: Source,
                                                                                  sync_settings: Settings) -> None:
    name = source.table("PEOPLE")
    source.sql(f"CREATE TABLE {name} (ID NUMBER(10,0), CONTACT VARCHAR, STATUS VARCHAR)")
    source.sql(f"INSERT INTO {name} SELECT seq4(), 'user' || seq4() || '@example.com', 'active' "
               "FROM TABLE(GENERATOR(ROWCOUNT => 200))")
    table = source.register("PEOPLE")
    meta = materialization(materialize(table, sync_settings))
    verdicts = meta["personal_data"]
    assert meta["personal_columns"] == "CONTACT"
    assert verdicts["CONTACT"]["category"] == "email"
    assert verdicts["CONTACT"]["evidence"]["matched_share"] == 1.0
    assert not verdicts["ID"]["personal"]
    assert not verdicts["STATUS"]["personal"]
    assert current(sync_settings, table).extra["classification"] == verdicts  # type: ignore[union-attr]
    # Drift: a new column is classified in the very version that first serves it.
    source.sql(f"ALTER TABLE {name} ADD COLUMN CARD VARCHAR")
    source.sql(f"INSERT INTO {name} SELECT 1000 + seq4(), 'x@example.com', 'new', '4111 1111 1111 1111' "
               "FROM TABLE(GENERATOR(ROWCOUNT => 200))")
    meta = materialization(materialize(table, sync_settings))
    assert meta["schema_drift"]["added"] == ["CARD"]
    manifest = current(sync_settings, table)
    assert manifest is not None
    assert manifest.extra["classification"]["CARD"]["category"] == "payment_card"
    assert manifest.extra["classification"]["CARD"]["personal"]


def test_demo_customers_have_personal_columns(source: Source, sync_settings: Settings, fakesnow_port: int) -> None:
    db = "DEMO_" + secrets.token_hex(3).upper()
    src = demo.start_demo_source(fakesnow_port, orders_rows=365)
    demo.seed_demo(src, today=dt.date(2025, 6, 1), database=db,
                   rows={"ORDERS": 365, "CUSTOMERS": 300, "PRODUCTS": 20, "EVENTS": 20})
    settings = dataclasses.replace(sync_settings, snowflake=dataclasses.replace(sync_settings.snowflake, database=db))
    table = dataclasses.replace(source.register("CUSTOMERS"), database=db, schema="PUBLIC")
    demo_source = dataclasses.replace(source, database=db)
    outcome = sync(table, settings, demo_source)
    personal = {n for n, v in outcome.classification.items() if v["personal"]}
    assert personal == {"NAME", "EMAIL", "PHONE", "COUNTRY"}
    assert outcome.classification["NAME"]["category"] == "person_name"


def test_merge_verdicts_keeps_personal_evidence_and_takes_new_columns() -> None:
    from orchestration.sync.publish import merge_verdicts

    kept = {"A": {"category": "email", "confidence": 0.9, "personal": True},
            "B": {"category": None, "confidence": 0.0, "personal": False},
            "C": {"category": "phone", "confidence": 0.3, "personal": False}}
    written = {"A": {"category": None, "confidence": 0.0, "personal": False},
               "B": {"category": "email", "confidence": 0.8, "personal": True},
               "C": {"category": "phone", "confidence": 0.2, "personal": False},
               "D": {"category": "payment_card", "confidence": 1.0, "personal": True}}
    merged = merge_verdicts(kept, written)
    assert merged["A"] == kept["A"]  # rows kept still hold emails: a partition without any cannot clear it
    assert merged["B"] == written["B"]  # the written rows bring personal data: it counts at once
    assert merged["C"] == kept["C"]  # neither personal: the more confident verdict
    assert merged["D"] == written["D"]  # a column the kept rows never had
    assert set(merged) == set(written)  # a column no longer served has no verdict


def test_a_partition_run_classifies_its_window_and_keeps_what_older_rows_showed(source: Source,
                                                                                 sync_settings: Settings) -> None:
    name = source.table("VISITS")
    source.sql(f"CREATE TABLE {name} (ID NUMBER(10,0), D DATE, CONTACT VARCHAR)")
    source.sql(f"INSERT INTO {name} SELECT seq4(), '2025-01-01'::DATE, 'user' || seq4() || '@example.com' "
               "FROM TABLE(GENERATOR(ROWCOUNT => 50))")
    source.sql(f"INSERT INTO {name} SELECT 100 + seq4(), '2025-01-02'::DATE, 'anonymous' "
               "FROM TABLE(GENERATOR(ROWCOUNT => 50))")
    table = source.register("VISITS", partitioning={"kind": "daily", "column": "D", "start": "2025-01-01"})
    first = sync(table, sync_settings, source, partition_keys=["2025-01-01"])
    assert first.classification["CONTACT"]["personal"]
    second = sync(table, sync_settings, source, partition_keys=["2025-01-02"])
    assert second.classification["CONTACT"] == first.classification["CONTACT"]  # the day alone shows no email
    source.sql(f"ALTER TABLE {name} ADD COLUMN CARD VARCHAR")
    source.sql(f"UPDATE {name} SET CARD = '4111 1111 1111 1111' WHERE D = '2025-01-02'::DATE")
    third = sync(table, sync_settings, source, partition_keys=["2025-01-02"])
    assert third.classification["CARD"]["category"] == "payment_card"  # a drifted column, judged on its window
    assert third.classification["CARD"]["personal"]
    manifest = current(sync_settings, table)
    assert manifest is not None
    assert manifest.extra["classification"] == third.classification
    assert {"publish_checkpoint_s", "publish_fsync_s"} <= set(third.timings)
