"""Admin sync endpoints with names Snowflake only has quoted, against the fake Dagster server.

Registration takes ``"Order Lines"`` (quoted: exact) and ``lower_t`` (unquoted: ``LOWER_T``);
status and delete paths take the same spelling; the admin list shows the SQL name.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from litestar import Litestar
from litestar.testing import TestClient

from shared.settings import Settings
from shared.snowflake import connect
from tests.serving import sync_support
from tests.serving.dagster_fake import FakeDagster
from tests.serving.helpers import assert_error
from tests.serving.sync_support import SCHEMA

sync_source = sync_support.sync_source
fake_dagster = sync_support.fake_dagster
app = sync_support.app

Client = TestClient[Litestar]
LINES = "demo.synctest.0_order_32__lines"


def _quoted_tables(settings: Settings) -> None:
    with connect(settings.snowflake) as con:
        cur = con.cursor()
        cur.execute(f'CREATE OR REPLACE TABLE DEMO.{SCHEMA}."Order Lines" ("Line Id" NUMBER(10,0), "select" TEXT)')
        cur.execute(f'CREATE OR REPLACE TABLE DEMO.{SCHEMA}."lower_t" (ID NUMBER(10,0))')
        cur.close()


def test_quoted_names_register_show_and_delete(client: Client, admin_headers: dict[str, str],
                                               fake_dagster: FakeDagster, api_settings: Settings) -> None:
    _quoted_tables(api_settings)
    r = client.post("/api/v1/sync/tables/register", headers=admin_headers, json={
        "schema_name": SCHEMA.lower(), "table_name": '"Order Lines"', "primary_key": '"Line Id"'})
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    assert body["table"] == LINES
    assert body["asset_key"] == ["demo", "synctest", "0_order_32__lines"]
    assert body["registration"]["sql_name"] == 'demo.synctest."Order Lines"'
    assert (body["registration"]["table_name"], body["registration"]["primary_key"]) == ("Order Lines", ["Line Id"])
    assert ("demo", "synctest", "0_order_32__lines") in fake_dagster.assets

    missing = client.post("/api/v1/sync/tables/register", headers=admin_headers,
                          json={"schema_name": SCHEMA.lower(), "table_name": "lower_t"})  # unquoted: LOWER_T
    assert "LOWER_T" in assert_error(missing, 400)["message"]
    wrong_case = client.post("/api/v1/sync/tables/register", headers=admin_headers, json={
        "schema_name": SCHEMA.lower(), "table_name": '"Order Lines"', "primary_key": "line_id"})
    assert assert_error(wrong_case, 400)["details"]["field"] == "primary_key"
    lower = client.post("/api/v1/sync/tables/register", headers=admin_headers,
                        json={"schema_name": SCHEMA.lower(), "table_name": '"lower_t"'})
    assert lower.status_code == 201, lower.text
    assert lower.json()["table"] == "demo.synctest.0lower__t"

    listed = {t["table"]: t["sql_name"] for t in client.get("/api/v1/sync/tables", headers=admin_headers).json()["tables"]}
    assert listed == {LINES: 'demo.synctest."Order Lines"', "demo.synctest.0lower__t": 'demo.synctest."lower_t"'}
    path = f"/api/v1/sync/status/{SCHEMA.lower()}/{urllib.parse.quote(chr(34) + 'Order Lines' + chr(34), safe='')}"
    status = client.get(path, headers=admin_headers)
    assert status.status_code == 200, status.text
    assert status.json()["table"] == LINES
    assert_error(client.get(f"/api/v1/sync/status/{SCHEMA.lower()}/Order%20Lines", headers=admin_headers), 400,
                 rule="invalid_identifier")
    gone = client.delete(f"/api/v1/sync/tables/{SCHEMA.lower()}/{urllib.parse.quote(chr(34) + 'lower_t' + chr(34))}",
                         headers=admin_headers)
    assert gone.status_code == 200, gone.text
    assert ("demo", "synctest", "0lower__t") not in fake_dagster.assets
