"""The demo dataset's tables: DDL, one generator INSERT each, comments, registrations.

Why generator SQL: the rows are made inside the source by one statement per table, so
seeding a million orders takes about a second instead of minutes of client inserts, and
it goes through the real connector like any Snowflake client would.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

DEMO_SCHEMA = "PUBLIC"
DAYS_OF_ORDERS = 365
DAYS_OF_EVENTS = 30

T = "{db}." + DEMO_SCHEMA  # the database is filled in at seed time (tests use their own)


@dataclasses.dataclass(frozen=True)
class TableSpec:
    ddl: str
    insert: str
    params: Callable[[int, dt.date], tuple[Any, ...]]
    comments: dict[str, str]

    def sql(self, text: str, database: str) -> str:
        return text.replace("{db}", database)


def _start(today: dt.date, days: int) -> str:
    return f"{today - dt.timedelta(days=days)} 00:00:00"


CUSTOMERS = TableSpec(
    ddl=f"""CREATE OR REPLACE TABLE {T}.CUSTOMERS (
        CUSTOMER_ID NUMBER(10,0) NOT NULL, NAME VARCHAR(200), EMAIL VARCHAR(320), PHONE VARCHAR(32), COUNTRY VARCHAR(2),
        SEGMENT VARCHAR(20), SIGNUP_DATE DATE, LIFETIME_VALUE NUMBER(12,2), IS_ACTIVE BOOLEAN,
        UPDATED_AT TIMESTAMP_NTZ NOT NULL) COMMENT = 'Demo customers, one row per customer'""",
    insert=f"""INSERT INTO {T}.CUSTOMERS
        SELECT n + 1, first_name || ' ' || last_name,
            LOWER(first_name) || '.' || LOWER(last_name) || (n + 1) || '@example.com',
            '+1 555 ' || LPAD(CAST(MOD(n * 7919, 1000) AS VARCHAR), 3, '0') || ' '
                || LPAD(CAST(MOD(n, 10000) AS VARCHAR), 4, '0'),
            CASE MOD(n, 6) WHEN 0 THEN 'US' WHEN 1 THEN 'DE' WHEN 2 THEN 'FR' WHEN 3 THEN 'GB' WHEN 4 THEN 'JP' ELSE 'BR' END,
            CASE MOD(n, 3) WHEN 0 THEN 'consumer' WHEN 1 THEN 'smb' ELSE 'enterprise' END,
            DATEADD(day, -uniform(0, 1500, random()), CAST(%s AS DATE)),
            uniform(0, 5000000, random()) / 100, MOD(n, 10) <> 0,
            DATEADD(second, -uniform(0, 86400 * 30, random()), CAST(%s AS TIMESTAMP_NTZ))
        FROM (SELECT n,
            CASE MOD(n, 8) WHEN 0 THEN 'Alice' WHEN 1 THEN 'Omar' WHEN 2 THEN 'Mei' WHEN 3 THEN 'Lucas'
                WHEN 4 THEN 'Sofia' WHEN 5 THEN 'Hiroshi' WHEN 6 THEN 'Emma' ELSE 'Carlos' END AS first_name,
            CASE MOD(n, 7) WHEN 0 THEN 'Martin' WHEN 1 THEN 'Okafor' WHEN 2 THEN 'Schmidt' WHEN 3 THEN 'Garcia'
                WHEN 4 THEN 'Tanaka' WHEN 5 THEN 'Dubois' ELSE 'Smith' END AS last_name
            FROM (SELECT seq4() AS n FROM TABLE(GENERATOR(ROWCOUNT => %s))))""",
    params=lambda rows, today: (today.isoformat(), _start(today, 0), rows),
    comments={"CUSTOMER_ID": "Customer identifier", "LIFETIME_VALUE": "Total spent, in USD", "COUNTRY": "ISO 3166 code",
              "NAME": "Customer's full name (personal data)", "EMAIL": "Customer's e-mail (personal data)",
              "PHONE": "Customer's phone number (personal data)"},
)

PRODUCTS = TableSpec(
    ddl=f"""CREATE OR REPLACE TABLE {T}.PRODUCTS (
        PRODUCT_ID NUMBER(10,0) NOT NULL, SKU VARCHAR(32) NOT NULL, NAME VARCHAR(200), CATEGORY VARCHAR(40),
        PRICE NUMBER(10,2), COST NUMBER(10,2), WEIGHT_KG FLOAT, CREATED_AT TIMESTAMP_NTZ,
        IS_DISCONTINUED BOOLEAN) COMMENT = 'Demo product catalogue'""",
    insert=f"""INSERT INTO {T}.PRODUCTS
        SELECT n + 1, 'SKU-' || LPAD(CAST(n + 1 AS VARCHAR), 6, '0'), 'Product ' || (n + 1),
            CASE MOD(n, 5) WHEN 0 THEN 'books' WHEN 1 THEN 'garden' WHEN 2 THEN 'toys' WHEN 3 THEN 'kitchen' ELSE 'sports' END,
            price, ROUND(price * 0.6, 2), uniform(1, 20000, random()) / 1000.0,
            DATEADD(day, -uniform(0, 2000, random()), CAST(%s AS TIMESTAMP_NTZ)), MOD(n, 25) = 0
        FROM (SELECT seq4() AS n, uniform(199, 99999, random()) / 100 AS price FROM TABLE(GENERATOR(ROWCOUNT => %s)))""",
    params=lambda rows, today: (_start(today, 0), rows),
    comments={"PRICE": "List price in USD", "WEIGHT_KG": "Shipping weight in kilograms"},
)

ORDERS = TableSpec(
    ddl=f"""CREATE OR REPLACE TABLE {T}.ORDERS (
        ORDER_ID NUMBER(18,0) NOT NULL, CUSTOMER_ID NUMBER(10,0), PRODUCT_ID NUMBER(10,0),
        ORDERED_AT TIMESTAMP_NTZ NOT NULL, UPDATED_AT TIMESTAMP_NTZ NOT NULL, QUANTITY NUMBER(5,0),
        UNIT_PRICE NUMBER(10,2), DISCOUNT NUMBER(4,3), AMOUNT NUMBER(14,2), STATUS VARCHAR(16),
        CHANNEL VARCHAR(16), CURRENCY VARCHAR(3)) COMMENT = 'Demo orders: one row per order line, a year of history'""",
    insert=f"""INSERT INTO {T}.ORDERS
        SELECT n + 1, customer_id, product_id, ordered_at,
            DATEADD(second, uniform(0, 259200, random()), ordered_at), quantity, unit_price, discount,
            ROUND(quantity * unit_price * (1 - discount), 2),
            CASE MOD(n, 10) WHEN 0 THEN 'cancelled' WHEN 1 THEN 'pending' WHEN 2 THEN 'returned' ELSE 'shipped' END,
            CASE MOD(n, 3) WHEN 0 THEN 'web' WHEN 1 THEN 'store' ELSE 'mobile' END, 'USD'
        FROM (SELECT seq4() AS n, uniform(1, 50000, random()) AS customer_id, uniform(1, 2000, random()) AS product_id,
                DATEADD(second, FLOOR(seq4() * %s / %s), CAST(%s AS TIMESTAMP_NTZ)) AS ordered_at,
                uniform(1, 10, random()) AS quantity, uniform(199, 99999, random()) / 100 AS unit_price,
                uniform(0, 300, random()) / 1000 AS discount
              FROM TABLE(GENERATOR(ROWCOUNT => %s)))""",
    params=lambda rows, today: (DAYS_OF_ORDERS * 86400, rows, _start(today, DAYS_OF_ORDERS), rows),
    comments={"ORDERED_AT": "When the order was placed (UTC); the daily partition column",
              "UPDATED_AT": "Last change to the order (UTC)", "AMOUNT": "quantity × unit price × (1 − discount), USD"},
)

EVENTS = TableSpec(
    ddl=f"""CREATE OR REPLACE TABLE {T}.EVENTS (
        EVENT_ID NUMBER(18,0) NOT NULL, EVENT_TS TIMESTAMP_NTZ NOT NULL, CUSTOMER_ID NUMBER(10,0),
        EVENT_TYPE VARCHAR(32), PAYLOAD VARIANT, INGESTED_AT TIMESTAMP_NTZ NOT NULL)
        COMMENT = 'Demo clickstream events with a semi-structured payload'""",
    insert=f"""INSERT INTO {T}.EVENTS
        SELECT n + 1, event_ts, uniform(1, 50000, random()), event_type,
            OBJECT_CONSTRUCT('page', '/p/' || MOD(n, 500), 'duration_ms', uniform(5, 60000, random()),
                             'device', CASE MOD(n, 3) WHEN 0 THEN 'ios' WHEN 1 THEN 'android' ELSE 'web' END),
            DATEADD(second, uniform(1, 300, random()), event_ts)
        FROM (SELECT seq4() AS n, DATEADD(second, FLOOR(seq4() * %s / %s), CAST(%s AS TIMESTAMP_NTZ)) AS event_ts,
                CASE MOD(seq4(), 4) WHEN 0 THEN 'page_view' WHEN 1 THEN 'click' WHEN 2 THEN 'add_to_cart' ELSE 'purchase' END
                  AS event_type
              FROM TABLE(GENERATOR(ROWCOUNT => %s)))""",
    params=lambda rows, today: (DAYS_OF_EVENTS * 86400, rows, _start(today, DAYS_OF_EVENTS), rows),
    comments={"PAYLOAD": "Event attributes (JSON)", "INGESTED_AT": "When the event landed in Snowflake; the incremental cursor"},
)

TABLES = {"CUSTOMERS": CUSTOMERS, "PRODUCTS": PRODUCTS, "ORDERS": ORDERS, "EVENTS": EVENTS}


def comment_columns(cur: Any, database: str, table: str, spec: TableSpec) -> None:
    """Column comments, which become served column descriptions.

    The stand-in stores ``COMMENT ON COLUMN`` and then raises a parser error; real
    Snowflake does not. Either way the comment is in INFORMATION_SCHEMA afterwards.
    """
    for column, text in spec.comments.items():
        try:
            cur.execute(f"COMMENT ON COLUMN {database}.{DEMO_SCHEMA}.{table}.{column} IS %s", (text,))
        except Exception:  # noqa: S112 - the stand-in's known quirk (docs/local-stand-in.md)
            continue


def registrations(*, orders_start: str) -> list[dict[str, Any]]:
    """The demo registrations, in the API's input shape."""
    return [
        {"schema_name": DEMO_SCHEMA, "table_name": "ORDERS", "strategy": "full",
         "partitioning": {"kind": "daily", "column": "ORDERED_AT", "start": orders_start}, "primary_key": ["ORDER_ID"],
         "schedule": "15 0 * * *", "freshness": "26h",
         "description": "Order lines, daily partitions on ORDERED_AT (UTC); yesterday's partition is copied at 00:15 UTC."},
        {"schema_name": DEMO_SCHEMA, "table_name": "CUSTOMERS", "strategy": "full", "primary_key": ["CUSTOMER_ID"],
         "schedule": "0 * * * *", "freshness": "2h", "description": "Customers, copied in full every hour."},
        {"schema_name": DEMO_SCHEMA, "table_name": "PRODUCTS", "strategy": "full", "primary_key": ["PRODUCT_ID"],
         "schedule": "0 */6 * * *", "freshness": "12h", "description": "Product catalogue, copied in full every 6 hours."},
        {"schema_name": DEMO_SCHEMA, "table_name": "EVENTS", "strategy": "incremental", "incremental_key": "INGESTED_AT",
         "lookback": "1h", "primary_key": ["EVENT_ID"], "schedule": "*/15 * * * *", "freshness": "1h",
         "description": "Clickstream events with a JSON payload, merged on EVENT_ID from INGESTED_AT every 15 minutes."},
    ]


# --- A Parquet-sourced table beside the Snowflake ones: web sessions, one file per month.
SESSIONS_ROWS = 30_000
FILE_SCHEMA = "FILES"


def file_registrations(folder: str) -> list[dict[str, Any]]:
    """The demo's file-sourced registrations (``folder``: where ``seed_demo_files`` wrote them)."""
    return [
        {"schema_name": FILE_SCHEMA, "table_name": "SESSIONS", "strategy": "full", "primary_key": ["SESSION_ID"],
         "source": {"kind": "parquet", "path": folder}, "schedule": "30 * * * *", "freshness": "2h",
         "description": "Web sessions read from Parquet files (one per month), copied in full every hour and "
                        "whenever a file is added or rewritten."},
    ]

