# ruff: noqa: E501  (one SQL template per entry reads better than wrapped fragments)
"""Generate ``legit_queries.sql``: 1,000+ legitimate analytical queries over the demo schema.

Run once, from the repository root, and commit the output (the test reads the file, so
the corpus stays fixed while the guard changes)::

    .venv/bin/python tests/fuzz/make_legit_queries.py

Why templates: the corpus should look like what analysts and agents write (revenue by
month, top customers, funnels over events, cohort counts, window functions, JSON paths
into the events payload, set operations), not like fuzzer output. Each template is
filled from a seeded ``random.Random``, so the file is reproducible; duplicates are
dropped. One query per line (each is normalised to a single line).
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).with_name("legit_queries.sql")
TARGET = 1200

STATUSES = ["'new'", "'paid'", "'shipped'", "'cancelled'", "'returned'"]
CHANNELS = ["'web'", "'app'", "'store'", "'partner'"]
COUNTRIES = ["'US'", "'DE'", "'FR'", "'GB'", "'JP'", "'BR'"]
SEGMENTS = ["'consumer'", "'smb'", "'enterprise'"]
CATEGORIES = ["'books'", "'garden'", "'toys'", "'kitchen'", "'sports'"]
EVENT_TYPES = ["'page_view'", "'click'", "'add_to_cart'", "'checkout'", "'purchase'"]
GRAINS = ["day", "week", "month", "quarter", "year"]
DATES = ["2025-01-01", "2025-02-15", "2025-03-01", "2025-06-30", "2025-09-01", "2025-11-15"]
NUM_ORDERS = ["amount", "quantity", "unit_price", "discount", "amount * (1 - discount)", "quantity * unit_price"]
AGGS = ["sum", "avg", "min", "max", "median", "stddev_samp"]
LIMITS = [5, 10, 20, 25, 50, 100, 1000]

Template = Callable[[random.Random], str]


def _in(r: random.Random, values: list[str]) -> str:
    return ", ".join(r.sample(values, r.randint(1, min(3, len(values)))))


def _since(r: random.Random, column: str) -> str:
    return f"{column} >= DATE '{r.choice(DATES)}'"


TEMPLATES: list[Template] = [
    lambda r: f"SELECT count(*) AS orders FROM orders WHERE status IN ({_in(r, STATUSES)})",
    lambda r: (f"SELECT date_trunc('{r.choice(GRAINS)}', ordered_at) AS period, {r.choice(AGGS)}({r.choice(NUM_ORDERS)}) AS value "
               f"FROM orders WHERE {_since(r, 'ordered_at')} GROUP BY 1 ORDER BY 1"),
    lambda r: (f"SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders "
               f"WHERE channel IN ({_in(r, CHANNELS)}) GROUP BY channel, status ORDER BY revenue DESC LIMIT {r.choice(LIMITS)}"),
    lambda r: (f"SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c "
               f"ON o.customer_id = c.customer_id WHERE c.country IN ({_in(r, COUNTRIES)}) "
               f"GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT {r.choice(LIMITS)}"),
    lambda r: (f"SELECT p.category, count(DISTINCT o.customer_id) AS buyers, round(avg(o.amount), {r.randint(0, 2)}) AS avg_amount "
               f"FROM orders AS o INNER JOIN products AS p USING (product_id) WHERE {_since(r, 'o.ordered_at')} "
               f"GROUP BY p.category ORDER BY buyers DESC"),
    lambda r: (f"WITH monthly AS (SELECT date_trunc('month', ordered_at) AS m, sum(amount) AS revenue FROM orders "
               f"WHERE currency = 'USD' GROUP BY 1) SELECT m, revenue, revenue - lag(revenue) OVER (ORDER BY m) AS change "
               f"FROM monthly ORDER BY m LIMIT {r.choice(LIMITS)}"),
    lambda r: (f"SELECT customer_id, order_id, amount, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at DESC) AS rn "
               f"FROM orders WHERE {_since(r, 'ordered_at')} QUALIFY rn <= {r.randint(1, 5)} ORDER BY customer_id, rn"),
    lambda r: (f"SELECT event_type, count(*) AS events, count(DISTINCT customer_id) AS people FROM events "
               f"WHERE event_ts >= TIMESTAMP '{r.choice(DATES)} 00:00:00' GROUP BY event_type ORDER BY events DESC"),
    lambda r: (f"SELECT payload->>'$.{r.choice(['page', 'referrer', 'device', 'campaign'])}' AS {r.choice(['k', 'key', 'attr'])}, "
               f"count(*) AS n FROM events WHERE event_type = {r.choice(EVENT_TYPES)} GROUP BY 1 ORDER BY n DESC LIMIT {r.choice(LIMITS)}"),
    lambda r: (f"SELECT json_extract_string(payload, '$.{r.choice(['page', 'device', 'campaign'])}') AS v, count(*) AS n "
               f"FROM events GROUP BY ALL ORDER BY n DESC LIMIT {r.choice(LIMITS)}"),
    lambda r: (f"SELECT segment, country, count(*) AS customers, avg(lifetime_value) AS ltv FROM customers "
               f"WHERE is_active AND segment IN ({_in(r, SEGMENTS)}) GROUP BY ROLLUP (segment, country) ORDER BY ALL"),
    lambda r: (f"SELECT date_trunc('{r.choice(['month', 'quarter', 'year'])}', signup_date) AS cohort, count(*) AS signups "
               f"FROM customers WHERE signup_date BETWEEN DATE '{r.choice(DATES[:3])}' AND DATE '{r.choice(DATES[3:])}' "
               f"GROUP BY cohort ORDER BY cohort"),
    lambda r: (f"SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, "
               f"avg(price - cost) AS margin FROM products WHERE NOT is_discontinued "
               f"AND category IN ({_in(r, CATEGORIES)}) GROUP BY category ORDER BY margin DESC"),
    lambda r: (f"SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products "
               f"WHERE price > {r.choice([5, 10, 20, 50, 100])} ORDER BY margin_pct DESC NULLS LAST LIMIT {r.choice(LIMITS)}"),
    lambda r: (f"SELECT c.country, count(*) FILTER (WHERE o.status = {r.choice(STATUSES)}) AS matching, count(*) AS total "
               f"FROM customers c LEFT JOIN orders o ON o.customer_id = c.customer_id GROUP BY c.country ORDER BY total DESC"),
    lambda r: (f"SELECT customer_id FROM orders WHERE status = {r.choice(STATUSES)} {r.choice(['INTERSECT', 'EXCEPT', 'UNION'])} "
               f"SELECT customer_id FROM events WHERE event_type = {r.choice(EVENT_TYPES)} ORDER BY 1 LIMIT {r.choice(LIMITS)}"),
    lambda r: (f"SELECT o.order_id, o.amount, p.category FROM orders o JOIN products p ON p.product_id = o.product_id "
               f"WHERE o.amount > (SELECT avg(amount) * {r.choice([1, 1.5, 2, 3])} FROM orders) ORDER BY o.amount DESC "
               f"LIMIT {r.choice(LIMITS)}"),
    lambda r: (f"SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders "
               f"WHERE amount > {r.choice([50, 100, 500, 1000])}) AND country = {r.choice(COUNTRIES)} ORDER BY name LIMIT {r.choice(LIMITS)}"),
    lambda r: (f"SELECT c.segment, count(*) AS customers FROM customers c WHERE EXISTS (SELECT 1 FROM events e "
               f"WHERE e.customer_id = c.customer_id AND e.event_type = {r.choice(EVENT_TYPES)}) GROUP BY c.segment ORDER BY 2 DESC"),
    lambda r: (f"WITH funnel AS (SELECT customer_id, max(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS viewed, "
               f"max(CASE WHEN event_type = {r.choice(EVENT_TYPES[1:])} THEN 1 ELSE 0 END) AS converted FROM events "
               f"WHERE event_ts >= TIMESTAMP '{r.choice(DATES)}' GROUP BY customer_id) "
               f"SELECT sum(viewed) AS viewed, sum(converted) AS converted, round(sum(converted) / nullif(sum(viewed), 0), 3) AS rate FROM funnel"),
    lambda r: (f"SELECT ordered_at::DATE AS day, sum(amount) AS revenue, avg(sum(amount)) OVER (ORDER BY ordered_at::DATE "
               f"ROWS BETWEEN {r.randint(2, 29)} PRECEDING AND CURRENT ROW) AS moving_avg FROM orders GROUP BY 1 ORDER BY 1"),
    lambda r: (f"SELECT status, quantile_cont(amount, {r.choice([0.5, 0.9, 0.95, 0.99])}) AS p, approx_count_distinct(customer_id) AS customers "
               f"FROM orders GROUP BY status ORDER BY status"),
    lambda r: (f"SELECT extract({r.choice(['year', 'month', 'dow', 'hour'])} FROM ordered_at) AS part, count(*) AS n FROM orders "
               f"GROUP BY part ORDER BY part"),
    lambda r: (f"SELECT strftime(ordered_at, '{r.choice(['%Y-%m', '%Y-W%W', '%Y', '%Y-%m-%d'])}') AS label, count(*) AS n "
               f"FROM orders WHERE channel = {r.choice(CHANNELS)} GROUP BY label ORDER BY label LIMIT {r.choice(LIMITS)}"),
    lambda r: (f"SELECT upper(left(name, {r.randint(1, 3)})) AS prefix, count(*) AS n FROM customers "
               f"WHERE email LIKE '%@{r.choice(['example.com', 'example.org', 'mail.test'])}' GROUP BY prefix ORDER BY n DESC"),
    lambda r: (f"SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders "
               f"FROM orders GROUP BY customer_id HAVING count(*) >= {r.randint(2, 10)} ORDER BY orders DESC LIMIT {r.choice(LIMITS)}"),
    lambda r: (f"SELECT date_diff('day', min(ordered_at), max(ordered_at)) AS span_days, count(*) AS orders, customer_id "
               f"FROM orders GROUP BY customer_id ORDER BY span_days DESC LIMIT {r.choice(LIMITS)}"),
    lambda r: (f"SELECT p.name, sum(o.quantity) AS units, rank() OVER (ORDER BY sum(o.quantity) DESC) AS rnk FROM orders o "
               f"JOIN products p ON o.product_id = p.product_id WHERE p.category = {r.choice(CATEGORIES)} "
               f"GROUP BY p.name ORDER BY rnk LIMIT {r.choice(LIMITS)}"),
    lambda r: (f"SELECT CASE WHEN amount < {r.choice([10, 20, 50])} THEN 'small' WHEN amount < {r.choice([100, 200, 500])} "
               f"THEN 'medium' ELSE 'large' END AS bucket, count(*) AS n, sum(amount) AS total FROM orders GROUP BY 1 ORDER BY 1"),
    lambda r: ("SELECT coalesce(segment, 'unknown') AS segment, string_agg(DISTINCT country, ',' ORDER BY country) AS countries "
               "FROM customers GROUP BY 1 ORDER BY 1"),
    lambda r: (f"SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, "
               f"sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE {_since(r, 'ordered_at')} "
               f"AND status NOT IN ({_in(r, STATUSES)})"),
    lambda r: (f"SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id "
               f"WHERE c.country IN ({_in(r, COUNTRIES)}) GROUP BY ALL ORDER BY n DESC LIMIT {r.choice(LIMITS)}"),
    lambda r: (f"SELECT * FROM orders WHERE order_id = {r.randint(1, 1_000_000)}"),
    lambda r: (f"SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = {r.randint(1, 50_000)} "
               f"ORDER BY ordered_at DESC LIMIT {r.choice(LIMITS)}"),
    lambda r: (f"SELECT * FROM customers WHERE customer_id BETWEEN {(a := r.randint(1, 40_000))} AND {a + r.randint(1, 500)} "
               f"ORDER BY customer_id"),
    lambda r: f"DESCRIBE {r.choice(['orders', 'customers', 'products', 'events'])}",
    lambda r: "SUMMARIZE SELECT {} FROM {} LIMIT {}".format(*r.choice([("amount, quantity", "orders"), ("status, channel", "orders"),
                                                                       ("price, cost", "products"), ("lifetime_value", "customers")]),
                                                             r.choice(LIMITS)),
    lambda r: (f"SELECT * FROM (SELECT channel, date_trunc('month', ordered_at) AS m, amount FROM orders) "
               f"PIVOT (sum(amount) FOR channel IN ({_in(r, CHANNELS)}))"),
    lambda r: (f"SELECT g.d::DATE AS day, count(o.order_id) AS orders FROM generate_series(DATE '{r.choice(DATES[:3])}', "
               f"DATE '{r.choice(DATES[3:])}', INTERVAL 1 DAY) AS g(d) LEFT JOIN orders o ON o.ordered_at::DATE = g.d::DATE "
               f"GROUP BY 1 ORDER BY 1"),
    lambda r: (f"SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL {r.randint(1, 90)} DAY "
               f"GROUP BY product_id ORDER BY units DESC LIMIT {r.choice(LIMITS)}"),
    lambda r: ("SELECT country, count(*) AS n, round(100.0 * count(*) / sum(count(*)) OVER (), 2) AS pct FROM customers "
               "GROUP BY country ORDER BY n DESC"),
    lambda r: (f"SELECT sku, name, price FROM products WHERE lower(name) LIKE '%{r.choice(['1', '2', 'product', 'x'])}%' "
               f"AND price BETWEEN {r.randint(1, 50)} AND {r.randint(60, 500)} ORDER BY price LIMIT {r.choice(LIMITS)}"),
    lambda r: (f"SELECT o.currency, p.category, sum(o.amount) AS revenue, count(*) AS lines FROM orders o, products p "
               f"WHERE o.product_id = p.product_id AND o.status = {r.choice(STATUSES)} GROUP BY 1, 2 ORDER BY 3 DESC"),
    lambda r: (f"SELECT customer_id, count(*) AS sessions FROM (SELECT customer_id, event_ts, "
               f"event_ts - lag(event_ts) OVER (PARTITION BY customer_id ORDER BY event_ts) > INTERVAL {r.choice([15, 30, 60])} MINUTE AS new_session "
               f"FROM events) WHERE new_session GROUP BY customer_id ORDER BY sessions DESC LIMIT {r.choice(LIMITS)}"),
    lambda r: (f"SELECT channel, bool_or(discount > {r.choice([0.1, 0.2, 0.3])}) AS any_big_discount, max(discount) AS max_discount "
               f"FROM orders GROUP BY channel ORDER BY channel"),
    lambda r: (f"SELECT year(signup_date) AS y, month(signup_date) AS m, count(*) AS n FROM customers WHERE country = "
               f"{r.choice(COUNTRIES)} GROUP BY y, m ORDER BY y, m"),
    lambda r: ("SELECT status, count(*) AS n FROM orders GROUP BY status UNION ALL SELECT 'total', count(*) FROM orders "
               "ORDER BY n DESC"),
    lambda r: (f"SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o "
               f"ON o.customer_id = c.customer_id AND {_since(r, 'o.ordered_at')} GROUP BY ALL "
               f"HAVING sum(o.amount) > {r.choice([100, 500, 1000])} ORDER BY recent DESC LIMIT {r.choice(LIMITS)}"),
    lambda r: (f"SELECT ntile({r.choice([4, 5, 10])}) OVER (ORDER BY lifetime_value) AS tile, customer_id, lifetime_value "
               f"FROM customers ORDER BY lifetime_value DESC LIMIT {r.choice(LIMITS)}"),
    lambda r: (f"SELECT category, list(sku ORDER BY price DESC)[1:{r.randint(1, 5)}] AS top_skus FROM products GROUP BY category ORDER BY category"),
    lambda r: (f"SELECT trim(both ' ' FROM name) AS name, regexp_matches(email, '{r.choice(['^customer', '@example', '[0-9]+'])}') AS m "
               f"FROM customers LIMIT {r.choice(LIMITS)}"),
]


def generate(target: int = TARGET, seed: int = 20261206) -> list[str]:
    rng = random.Random(seed)  # noqa: S311 (a reproducible corpus, not a secret)
    seen: dict[str, None] = {}
    attempts = 0
    while len(seen) < target and attempts < target * 50:
        attempts += 1
        template = TEMPLATES[attempts % len(TEMPLATES)]
        seen.setdefault(" ".join(template(rng).split()), None)
    return list(seen)


def read(path: Path = OUT) -> list[str]:
    return [q.strip() for q in path.read_text(encoding="utf-8").splitlines() if q.strip()]


def main() -> int:
    queries = generate()
    OUT.write_text("\n".join(queries) + "\n", encoding="utf-8")
    print(f"wrote {len(queries)} queries to {OUT.name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
