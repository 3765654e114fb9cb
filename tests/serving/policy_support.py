"""Serving-test helpers for grant policies: publish a version classified as a sync would, and
the adversarial corpus of queries that must never leak what a policy hides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shared.classify import classify_table
from shared.served import Column, Manifest, publish, write_version

CUSTOMERS, ORDERS = "demo.public.customers", "demo.public.orders"
# Values that must never reach an agent under the test policy: excluded column, filtered-out rows, hashed e-mails.
CANARIES = ("SECRETCANARY", "HIDDENROW", "corp-canary")

CUSTOMERS_SQL = """
SELECT i AS customer_id,
       ['Alice Martin', 'Omar Okafor', 'Mei Tanaka', 'Lucas Garcia'][i % 4 + 1] AS full_name,
       'user' || i || '@corp-canary.example' AS email,
       '+1 555 010 ' || lpad(i::VARCHAR, 4, '0') AS phone,
       CASE WHEN i % 2 = 0 THEN 'EU' ELSE 'US' END AS region,
       CASE WHEN i % 2 = 0 THEN i ELSE 1000 + i END AS amount,
       CASE WHEN i % 2 = 0 THEN 'visible-' || i ELSE 'HIDDENROW-' || i END AS label,
       'SECRETCANARY-' || i AS secret,
       'note ' || i AS note
FROM range(40) t(i)
"""
ORDERS_SQL = "SELECT i AS order_id, 'user' || (i % 40) || '@corp-canary.example' AS email, i * 1.5 AS total FROM range(100) t(i)"


def publish_classified(served_root: Path, key: str, select_sql: str, *, drop: tuple[str, ...] = (),
                       not_personal: tuple[str, ...] = (), **fields: Any) -> Manifest:
    """Publish a version as a sync does: with every column's classification in the manifest
    (``drop`` leaves some columns unclassified, as a version written before classification;
    ``not_personal`` columns carry a verdict of "not personal", what an earlier sync with an
    older classifier or other data may have concluded). ``fields`` are more manifest fields."""
    with write_version(served_root, key, copy_previous=False) as pending:
        pending.con.execute(f"CREATE TABLE data AS {select_sql}")
        cols = pending.con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                   "WHERE table_name = 'data' ORDER BY ordinal_position").fetchall()
        rows = pending.con.execute("SELECT count(*) FROM data").fetchone()[0]
        columns = [Column(name=c[0], type=c[1]) for c in cols]
        verdicts = classify_table(pending.con, "data", [c.name for c in columns], types=[c.type for c in columns])
        for name in drop:
            verdicts.pop(name, None)
        for name in not_personal:
            verdicts[name] = {"category": None, "confidence": 0.0, "personal": False, "evidence": {}}
        return publish(served_root, pending, strategy="full", row_count=rows, columns=columns,
                       extra={"classification": verdicts}, **fields)


def leaks(text: str) -> list[str]:
    return [c for c in CANARIES if c in text]


# No spelling of a query recovers an excluded column, an unmasked value or a filtered-out row.
ADVERSARIAL = [
    "SELECT * FROM customers",
    "SELECT secret FROM customers",
    "SELECT c.* , d.* FROM customers c JOIN customers d USING (customer_id)",
    "SELECT t1.*, t2.label FROM customers t1, customers t2 WHERE t1.customer_id = t2.customer_id + 1",
    "SELECT * FROM customers EXCEPT SELECT * FROM customers WHERE false",
    "(SELECT label FROM customers) UNION ALL (SELECT email FROM orders)",
    "SELECT label, amount, row_number() OVER (ORDER BY amount DESC), lead(label, 1) OVER (ORDER BY customer_id), "
    "last_value(label) OVER (ORDER BY customer_id ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) "
    "FROM customers",
    "SELECT region, count(*), sum(amount), max(label), min(label), list(label) FROM customers GROUP BY region",
    "SELECT email, count(*) FROM customers GROUP BY email",
    "SELECT secret, count(*) FROM customers GROUP BY secret",
    "SELECT customers FROM customers",
    "SELECT to_json(c) FROM customers c",
    "DESCRIBE customers",
    "SUMMARIZE customers",
    "SUMMARIZE SELECT * FROM customers",
    "SELECT stats(amount) FROM customers",
    "SELECT * FROM duckdb_views()",
    "SELECT * FROM duckdb_columns()",
    "SELECT * FROM duckdb_databases()",
    "SELECT * FROM duckdb_functions()",
    'SELECT * FROM "__t0".main.data',
    "SELECT * FROM __t0.data",
    "SELECT * FROM query_table('__t0.main.data')",
    "SELECT * FROM query('SELECT * FROM __t0.main.data')",
    "SELECT * FROM read_blob('*')",
    "SELECT approx_count_distinct(label), count(*), max(customer_id), max(amount) FROM customers",
    "SELECT histogram(amount), mode(label), arg_max(label, amount) FROM customers",
    "SELECT * FROM customers USING SAMPLE 100 PERCENT (bernoulli)",
    "SELECT * FROM customers WHERE label LIKE 'HIDDEN%' OR amount >= 1000",
    "PIVOT customers ON region IN ('EU', 'US') USING count(*)",
    "SELECT * FROM customers WHERE customer_id IN (SELECT customer_id FROM customers WHERE secret IS NOT NULL)",
    "SELECT pg_get_viewdef('customers')",
    "SELECT current_setting('temp_directory')",
]


def rows_of(body: dict[str, Any]) -> list[Any]:
    return list(body.get("rows") or [])
