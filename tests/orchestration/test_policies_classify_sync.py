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
