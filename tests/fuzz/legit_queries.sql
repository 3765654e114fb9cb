SELECT date_trunc('year', ordered_at) AS period, sum(unit_price) AS value FROM orders WHERE ordered_at >= DATE '2025-11-15' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('store', 'app') GROUP BY channel, status ORDER BY revenue DESC LIMIT 100
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('US') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 25
SELECT p.category, count(DISTINCT o.customer_id) AS buyers, round(avg(o.amount), 2) AS avg_amount FROM orders AS o INNER JOIN products AS p USING (product_id) WHERE o.ordered_at >= DATE '2025-03-01' GROUP BY p.category ORDER BY buyers DESC
WITH monthly AS (SELECT date_trunc('month', ordered_at) AS m, sum(amount) AS revenue FROM orders WHERE currency = 'USD' GROUP BY 1) SELECT m, revenue, revenue - lag(revenue) OVER (ORDER BY m) AS change FROM monthly ORDER BY m LIMIT 5
SELECT customer_id, order_id, amount, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at DESC) AS rn FROM orders WHERE ordered_at >= DATE '2025-06-30' QUALIFY rn <= 4 ORDER BY customer_id, rn
SELECT event_type, count(*) AS events, count(DISTINCT customer_id) AS people FROM events WHERE event_ts >= TIMESTAMP '2025-11-15 00:00:00' GROUP BY event_type ORDER BY events DESC
SELECT payload->>'$.device' AS attr, count(*) AS n FROM events WHERE event_type = 'click' GROUP BY 1 ORDER BY n DESC LIMIT 100
SELECT json_extract_string(payload, '$.device') AS v, count(*) AS n FROM events GROUP BY ALL ORDER BY n DESC LIMIT 100
SELECT segment, country, count(*) AS customers, avg(lifetime_value) AS ltv FROM customers WHERE is_active AND segment IN ('enterprise', 'smb', 'consumer') GROUP BY ROLLUP (segment, country) ORDER BY ALL
SELECT date_trunc('month', signup_date) AS cohort, count(*) AS signups FROM customers WHERE signup_date BETWEEN DATE '2025-01-01' AND DATE '2025-06-30' GROUP BY cohort ORDER BY cohort
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('toys') GROUP BY category ORDER BY margin DESC
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 10 ORDER BY margin_pct DESC NULLS LAST LIMIT 25
SELECT c.country, count(*) FILTER (WHERE o.status = 'shipped') AS matching, count(*) AS total FROM customers c LEFT JOIN orders o ON o.customer_id = c.customer_id GROUP BY c.country ORDER BY total DESC
SELECT customer_id FROM orders WHERE status = 'returned' INTERSECT SELECT customer_id FROM events WHERE event_type = 'checkout' ORDER BY 1 LIMIT 5
SELECT o.order_id, o.amount, p.category FROM orders o JOIN products p ON p.product_id = o.product_id WHERE o.amount > (SELECT avg(amount) * 1.5 FROM orders) ORDER BY o.amount DESC LIMIT 10
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 500) AND country = 'JP' ORDER BY name LIMIT 50
SELECT c.segment, count(*) AS customers FROM customers c WHERE EXISTS (SELECT 1 FROM events e WHERE e.customer_id = c.customer_id AND e.event_type = 'purchase') GROUP BY c.segment ORDER BY 2 DESC
WITH funnel AS (SELECT customer_id, max(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS viewed, max(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS converted FROM events WHERE event_ts >= TIMESTAMP '2025-03-01' GROUP BY customer_id) SELECT sum(viewed) AS viewed, sum(converted) AS converted, round(sum(converted) / nullif(sum(viewed), 0), 3) AS rate FROM funnel
SELECT ordered_at::DATE AS day, sum(amount) AS revenue, avg(sum(amount)) OVER (ORDER BY ordered_at::DATE ROWS BETWEEN 24 PRECEDING AND CURRENT ROW) AS moving_avg FROM orders GROUP BY 1 ORDER BY 1
SELECT status, quantile_cont(amount, 0.5) AS p, approx_count_distinct(customer_id) AS customers FROM orders GROUP BY status ORDER BY status
SELECT extract(month FROM ordered_at) AS part, count(*) AS n FROM orders GROUP BY part ORDER BY part
SELECT strftime(ordered_at, '%Y-%m-%d') AS label, count(*) AS n FROM orders WHERE channel = 'web' GROUP BY label ORDER BY label LIMIT 50
SELECT upper(left(name, 1)) AS prefix, count(*) AS n FROM customers WHERE email LIKE '%@mail.test' GROUP BY prefix ORDER BY n DESC
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 3 ORDER BY orders DESC LIMIT 25
SELECT date_diff('day', min(ordered_at), max(ordered_at)) AS span_days, count(*) AS orders, customer_id FROM orders GROUP BY customer_id ORDER BY span_days DESC LIMIT 5
SELECT p.name, sum(o.quantity) AS units, rank() OVER (ORDER BY sum(o.quantity) DESC) AS rnk FROM orders o JOIN products p ON o.product_id = p.product_id WHERE p.category = 'toys' GROUP BY p.name ORDER BY rnk LIMIT 25
SELECT CASE WHEN amount < 20 THEN 'small' WHEN amount < 200 THEN 'medium' ELSE 'large' END AS bucket, count(*) AS n, sum(amount) AS total FROM orders GROUP BY 1 ORDER BY 1
SELECT coalesce(segment, 'unknown') AS segment, string_agg(DISTINCT country, ',' ORDER BY country) AS countries FROM customers GROUP BY 1 ORDER BY 1
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-06-30' AND status NOT IN ('paid', 'new', 'cancelled')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('JP') GROUP BY ALL ORDER BY n DESC LIMIT 5
SELECT * FROM orders WHERE order_id = 56339
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 49184 ORDER BY ordered_at DESC LIMIT 1000
SELECT * FROM customers WHERE customer_id BETWEEN 18052 AND 18155 ORDER BY customer_id
DESCRIBE orders
SUMMARIZE SELECT lifetime_value FROM customers LIMIT 20
SELECT * FROM (SELECT channel, date_trunc('month', ordered_at) AS m, amount FROM orders) PIVOT (sum(amount) FOR channel IN ('web', 'app'))
SELECT g.d::DATE AS day, count(o.order_id) AS orders FROM generate_series(DATE '2025-01-01', DATE '2025-11-15', INTERVAL 1 DAY) AS g(d) LEFT JOIN orders o ON o.ordered_at::DATE = g.d::DATE GROUP BY 1 ORDER BY 1
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 8 DAY GROUP BY product_id ORDER BY units DESC LIMIT 1000
SELECT country, count(*) AS n, round(100.0 * count(*) / sum(count(*)) OVER (), 2) AS pct FROM customers GROUP BY country ORDER BY n DESC
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%2%' AND price BETWEEN 43 AND 86 ORDER BY price LIMIT 1000
SELECT o.currency, p.category, sum(o.amount) AS revenue, count(*) AS lines FROM orders o, products p WHERE o.product_id = p.product_id AND o.status = 'new' GROUP BY 1, 2 ORDER BY 3 DESC
SELECT customer_id, count(*) AS sessions FROM (SELECT customer_id, event_ts, event_ts - lag(event_ts) OVER (PARTITION BY customer_id ORDER BY event_ts) > INTERVAL 60 MINUTE AS new_session FROM events) WHERE new_session GROUP BY customer_id ORDER BY sessions DESC LIMIT 10
SELECT channel, bool_or(discount > 0.1) AS any_big_discount, max(discount) AS max_discount FROM orders GROUP BY channel ORDER BY channel
SELECT year(signup_date) AS y, month(signup_date) AS m, count(*) AS n FROM customers WHERE country = 'GB' GROUP BY y, m ORDER BY y, m
SELECT status, count(*) AS n FROM orders GROUP BY status UNION ALL SELECT 'total', count(*) FROM orders ORDER BY n DESC
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-06-30' GROUP BY ALL HAVING sum(o.amount) > 1000 ORDER BY recent DESC LIMIT 1000
SELECT ntile(4) OVER (ORDER BY lifetime_value) AS tile, customer_id, lifetime_value FROM customers ORDER BY lifetime_value DESC LIMIT 10
SELECT category, list(sku ORDER BY price DESC)[1:4] AS top_skus FROM products GROUP BY category ORDER BY category
SELECT trim(both ' ' FROM name) AS name, regexp_matches(email, '^customer') AS m FROM customers LIMIT 1000
SELECT count(*) AS orders FROM orders WHERE status IN ('returned', 'shipped')
SELECT date_trunc('quarter', ordered_at) AS period, sum(quantity) AS value FROM orders WHERE ordered_at >= DATE '2025-06-30' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('store') GROUP BY channel, status ORDER BY revenue DESC LIMIT 50
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('US') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 10
SELECT p.category, count(DISTINCT o.customer_id) AS buyers, round(avg(o.amount), 1) AS avg_amount FROM orders AS o INNER JOIN products AS p USING (product_id) WHERE o.ordered_at >= DATE '2025-06-30' GROUP BY p.category ORDER BY buyers DESC
WITH monthly AS (SELECT date_trunc('month', ordered_at) AS m, sum(amount) AS revenue FROM orders WHERE currency = 'USD' GROUP BY 1) SELECT m, revenue, revenue - lag(revenue) OVER (ORDER BY m) AS change FROM monthly ORDER BY m LIMIT 50
SELECT customer_id, order_id, amount, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at DESC) AS rn FROM orders WHERE ordered_at >= DATE '2025-11-15' QUALIFY rn <= 4 ORDER BY customer_id, rn
SELECT event_type, count(*) AS events, count(DISTINCT customer_id) AS people FROM events WHERE event_ts >= TIMESTAMP '2025-09-01 00:00:00' GROUP BY event_type ORDER BY events DESC
SELECT payload->>'$.campaign' AS k, count(*) AS n FROM events WHERE event_type = 'purchase' GROUP BY 1 ORDER BY n DESC LIMIT 50
SELECT json_extract_string(payload, '$.campaign') AS v, count(*) AS n FROM events GROUP BY ALL ORDER BY n DESC LIMIT 100
SELECT segment, country, count(*) AS customers, avg(lifetime_value) AS ltv FROM customers WHERE is_active AND segment IN ('consumer') GROUP BY ROLLUP (segment, country) ORDER BY ALL
SELECT date_trunc('month', signup_date) AS cohort, count(*) AS signups FROM customers WHERE signup_date BETWEEN DATE '2025-03-01' AND DATE '2025-06-30' GROUP BY cohort ORDER BY cohort
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('sports', 'books') GROUP BY category ORDER BY margin DESC
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 5 ORDER BY margin_pct DESC NULLS LAST LIMIT 100
SELECT c.country, count(*) FILTER (WHERE o.status = 'cancelled') AS matching, count(*) AS total FROM customers c LEFT JOIN orders o ON o.customer_id = c.customer_id GROUP BY c.country ORDER BY total DESC
SELECT customer_id FROM orders WHERE status = 'new' UNION SELECT customer_id FROM events WHERE event_type = 'checkout' ORDER BY 1 LIMIT 50
SELECT o.order_id, o.amount, p.category FROM orders o JOIN products p ON p.product_id = o.product_id WHERE o.amount > (SELECT avg(amount) * 3 FROM orders) ORDER BY o.amount DESC LIMIT 25
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 500) AND country = 'US' ORDER BY name LIMIT 100
SELECT c.segment, count(*) AS customers FROM customers c WHERE EXISTS (SELECT 1 FROM events e WHERE e.customer_id = c.customer_id AND e.event_type = 'add_to_cart') GROUP BY c.segment ORDER BY 2 DESC
WITH funnel AS (SELECT customer_id, max(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS viewed, max(CASE WHEN event_type = 'checkout' THEN 1 ELSE 0 END) AS converted FROM events WHERE event_ts >= TIMESTAMP '2025-03-01' GROUP BY customer_id) SELECT sum(viewed) AS viewed, sum(converted) AS converted, round(sum(converted) / nullif(sum(viewed), 0), 3) AS rate FROM funnel
SELECT ordered_at::DATE AS day, sum(amount) AS revenue, avg(sum(amount)) OVER (ORDER BY ordered_at::DATE ROWS BETWEEN 11 PRECEDING AND CURRENT ROW) AS moving_avg FROM orders GROUP BY 1 ORDER BY 1
SELECT status, quantile_cont(amount, 0.95) AS p, approx_count_distinct(customer_id) AS customers FROM orders GROUP BY status ORDER BY status
SELECT extract(dow FROM ordered_at) AS part, count(*) AS n FROM orders GROUP BY part ORDER BY part
SELECT strftime(ordered_at, '%Y-%m-%d') AS label, count(*) AS n FROM orders WHERE channel = 'partner' GROUP BY label ORDER BY label LIMIT 50
SELECT upper(left(name, 2)) AS prefix, count(*) AS n FROM customers WHERE email LIKE '%@example.com' GROUP BY prefix ORDER BY n DESC
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 10 ORDER BY orders DESC LIMIT 1000
SELECT date_diff('day', min(ordered_at), max(ordered_at)) AS span_days, count(*) AS orders, customer_id FROM orders GROUP BY customer_id ORDER BY span_days DESC LIMIT 100
SELECT p.name, sum(o.quantity) AS units, rank() OVER (ORDER BY sum(o.quantity) DESC) AS rnk FROM orders o JOIN products p ON o.product_id = p.product_id WHERE p.category = 'sports' GROUP BY p.name ORDER BY rnk LIMIT 1000
SELECT CASE WHEN amount < 10 THEN 'small' WHEN amount < 200 THEN 'medium' ELSE 'large' END AS bucket, count(*) AS n, sum(amount) AS total FROM orders GROUP BY 1 ORDER BY 1
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-01-01' AND status NOT IN ('returned', 'cancelled', 'paid')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('US') GROUP BY ALL ORDER BY n DESC LIMIT 50
SELECT * FROM orders WHERE order_id = 91761
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 4233 ORDER BY ordered_at DESC LIMIT 20
SELECT * FROM customers WHERE customer_id BETWEEN 4963 AND 5454 ORDER BY customer_id
SUMMARIZE SELECT price, cost FROM products LIMIT 10
SELECT * FROM (SELECT channel, date_trunc('month', ordered_at) AS m, amount FROM orders) PIVOT (sum(amount) FOR channel IN ('app'))
SELECT g.d::DATE AS day, count(o.order_id) AS orders FROM generate_series(DATE '2025-02-15', DATE '2025-06-30', INTERVAL 1 DAY) AS g(d) LEFT JOIN orders o ON o.ordered_at::DATE = g.d::DATE GROUP BY 1 ORDER BY 1
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 77 DAY GROUP BY product_id ORDER BY units DESC LIMIT 50
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%2%' AND price BETWEEN 21 AND 403 ORDER BY price LIMIT 1000
SELECT customer_id, count(*) AS sessions FROM (SELECT customer_id, event_ts, event_ts - lag(event_ts) OVER (PARTITION BY customer_id ORDER BY event_ts) > INTERVAL 15 MINUTE AS new_session FROM events) WHERE new_session GROUP BY customer_id ORDER BY sessions DESC LIMIT 5
SELECT channel, bool_or(discount > 0.3) AS any_big_discount, max(discount) AS max_discount FROM orders GROUP BY channel ORDER BY channel
SELECT year(signup_date) AS y, month(signup_date) AS m, count(*) AS n FROM customers WHERE country = 'FR' GROUP BY y, m ORDER BY y, m
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-06-30' GROUP BY ALL HAVING sum(o.amount) > 100 ORDER BY recent DESC LIMIT 25
SELECT ntile(5) OVER (ORDER BY lifetime_value) AS tile, customer_id, lifetime_value FROM customers ORDER BY lifetime_value DESC LIMIT 50
SELECT category, list(sku ORDER BY price DESC)[1:1] AS top_skus FROM products GROUP BY category ORDER BY category
SELECT trim(both ' ' FROM name) AS name, regexp_matches(email, '@example') AS m FROM customers LIMIT 50
SELECT count(*) AS orders FROM orders WHERE status IN ('cancelled')
SELECT date_trunc('day', ordered_at) AS period, sum(quantity) AS value FROM orders WHERE ordered_at >= DATE '2025-06-30' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('web', 'partner', 'app') GROUP BY channel, status ORDER BY revenue DESC LIMIT 20
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('BR', 'DE') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 1000
SELECT p.category, count(DISTINCT o.customer_id) AS buyers, round(avg(o.amount), 2) AS avg_amount FROM orders AS o INNER JOIN products AS p USING (product_id) WHERE o.ordered_at >= DATE '2025-09-01' GROUP BY p.category ORDER BY buyers DESC
WITH monthly AS (SELECT date_trunc('month', ordered_at) AS m, sum(amount) AS revenue FROM orders WHERE currency = 'USD' GROUP BY 1) SELECT m, revenue, revenue - lag(revenue) OVER (ORDER BY m) AS change FROM monthly ORDER BY m LIMIT 100
SELECT customer_id, order_id, amount, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at DESC) AS rn FROM orders WHERE ordered_at >= DATE '2025-09-01' QUALIFY rn <= 5 ORDER BY customer_id, rn
SELECT event_type, count(*) AS events, count(DISTINCT customer_id) AS people FROM events WHERE event_ts >= TIMESTAMP '2025-01-01 00:00:00' GROUP BY event_type ORDER BY events DESC
SELECT payload->>'$.device' AS attr, count(*) AS n FROM events WHERE event_type = 'add_to_cart' GROUP BY 1 ORDER BY n DESC LIMIT 20
SELECT json_extract_string(payload, '$.page') AS v, count(*) AS n FROM events GROUP BY ALL ORDER BY n DESC LIMIT 5
SELECT segment, country, count(*) AS customers, avg(lifetime_value) AS ltv FROM customers WHERE is_active AND segment IN ('enterprise', 'consumer') GROUP BY ROLLUP (segment, country) ORDER BY ALL
SELECT date_trunc('month', signup_date) AS cohort, count(*) AS signups FROM customers WHERE signup_date BETWEEN DATE '2025-03-01' AND DATE '2025-11-15' GROUP BY cohort ORDER BY cohort
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('books', 'toys', 'sports') GROUP BY category ORDER BY margin DESC
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 100 ORDER BY margin_pct DESC NULLS LAST LIMIT 1000
SELECT c.country, count(*) FILTER (WHERE o.status = 'paid') AS matching, count(*) AS total FROM customers c LEFT JOIN orders o ON o.customer_id = c.customer_id GROUP BY c.country ORDER BY total DESC
SELECT customer_id FROM orders WHERE status = 'new' EXCEPT SELECT customer_id FROM events WHERE event_type = 'add_to_cart' ORDER BY 1 LIMIT 50
SELECT o.order_id, o.amount, p.category FROM orders o JOIN products p ON p.product_id = o.product_id WHERE o.amount > (SELECT avg(amount) * 2 FROM orders) ORDER BY o.amount DESC LIMIT 25
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 50) AND country = 'US' ORDER BY name LIMIT 20
SELECT c.segment, count(*) AS customers FROM customers c WHERE EXISTS (SELECT 1 FROM events e WHERE e.customer_id = c.customer_id AND e.event_type = 'click') GROUP BY c.segment ORDER BY 2 DESC
WITH funnel AS (SELECT customer_id, max(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS viewed, max(CASE WHEN event_type = 'click' THEN 1 ELSE 0 END) AS converted FROM events WHERE event_ts >= TIMESTAMP '2025-01-01' GROUP BY customer_id) SELECT sum(viewed) AS viewed, sum(converted) AS converted, round(sum(converted) / nullif(sum(viewed), 0), 3) AS rate FROM funnel
SELECT ordered_at::DATE AS day, sum(amount) AS revenue, avg(sum(amount)) OVER (ORDER BY ordered_at::DATE ROWS BETWEEN 4 PRECEDING AND CURRENT ROW) AS moving_avg FROM orders GROUP BY 1 ORDER BY 1
SELECT strftime(ordered_at, '%Y-W%W') AS label, count(*) AS n FROM orders WHERE channel = 'store' GROUP BY label ORDER BY label LIMIT 20
SELECT upper(left(name, 3)) AS prefix, count(*) AS n FROM customers WHERE email LIKE '%@example.com' GROUP BY prefix ORDER BY n DESC
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 5 ORDER BY orders DESC LIMIT 5
SELECT date_diff('day', min(ordered_at), max(ordered_at)) AS span_days, count(*) AS orders, customer_id FROM orders GROUP BY customer_id ORDER BY span_days DESC LIMIT 10
SELECT p.name, sum(o.quantity) AS units, rank() OVER (ORDER BY sum(o.quantity) DESC) AS rnk FROM orders o JOIN products p ON o.product_id = p.product_id WHERE p.category = 'toys' GROUP BY p.name ORDER BY rnk LIMIT 20
SELECT CASE WHEN amount < 50 THEN 'small' WHEN amount < 500 THEN 'medium' ELSE 'large' END AS bucket, count(*) AS n, sum(amount) AS total FROM orders GROUP BY 1 ORDER BY 1
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-02-15' AND status NOT IN ('returned')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('BR') GROUP BY ALL ORDER BY n DESC LIMIT 1000
SELECT * FROM orders WHERE order_id = 828893
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 33000 ORDER BY ordered_at DESC LIMIT 1000
SELECT * FROM customers WHERE customer_id BETWEEN 39115 AND 39551 ORDER BY customer_id
SUMMARIZE SELECT amount, quantity FROM orders LIMIT 50
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 24 DAY GROUP BY product_id ORDER BY units DESC LIMIT 20
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%product%' AND price BETWEEN 39 AND 271 ORDER BY price LIMIT 50
SELECT o.currency, p.category, sum(o.amount) AS revenue, count(*) AS lines FROM orders o, products p WHERE o.product_id = p.product_id AND o.status = 'returned' GROUP BY 1, 2 ORDER BY 3 DESC
SELECT customer_id, count(*) AS sessions FROM (SELECT customer_id, event_ts, event_ts - lag(event_ts) OVER (PARTITION BY customer_id ORDER BY event_ts) > INTERVAL 30 MINUTE AS new_session FROM events) WHERE new_session GROUP BY customer_id ORDER BY sessions DESC LIMIT 50
SELECT year(signup_date) AS y, month(signup_date) AS m, count(*) AS n FROM customers WHERE country = 'US' GROUP BY y, m ORDER BY y, m
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-02-15' GROUP BY ALL HAVING sum(o.amount) > 1000 ORDER BY recent DESC LIMIT 5
SELECT ntile(5) OVER (ORDER BY lifetime_value) AS tile, customer_id, lifetime_value FROM customers ORDER BY lifetime_value DESC LIMIT 10
SELECT category, list(sku ORDER BY price DESC)[1:3] AS top_skus FROM products GROUP BY category ORDER BY category
SELECT trim(both ' ' FROM name) AS name, regexp_matches(email, '[0-9]+') AS m FROM customers LIMIT 100
SELECT count(*) AS orders FROM orders WHERE status IN ('shipped')
SELECT date_trunc('month', ordered_at) AS period, avg(amount * (1 - discount)) AS value FROM orders WHERE ordered_at >= DATE '2025-09-01' GROUP BY 1 ORDER BY 1
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('FR') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 10
SELECT p.category, count(DISTINCT o.customer_id) AS buyers, round(avg(o.amount), 2) AS avg_amount FROM orders AS o INNER JOIN products AS p USING (product_id) WHERE o.ordered_at >= DATE '2025-06-30' GROUP BY p.category ORDER BY buyers DESC
WITH monthly AS (SELECT date_trunc('month', ordered_at) AS m, sum(amount) AS revenue FROM orders WHERE currency = 'USD' GROUP BY 1) SELECT m, revenue, revenue - lag(revenue) OVER (ORDER BY m) AS change FROM monthly ORDER BY m LIMIT 1000
SELECT customer_id, order_id, amount, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at DESC) AS rn FROM orders WHERE ordered_at >= DATE '2025-11-15' QUALIFY rn <= 2 ORDER BY customer_id, rn
SELECT payload->>'$.referrer' AS key, count(*) AS n FROM events WHERE event_type = 'click' GROUP BY 1 ORDER BY n DESC LIMIT 25
SELECT json_extract_string(payload, '$.device') AS v, count(*) AS n FROM events GROUP BY ALL ORDER BY n DESC LIMIT 20
SELECT segment, country, count(*) AS customers, avg(lifetime_value) AS ltv FROM customers WHERE is_active AND segment IN ('enterprise', 'smb') GROUP BY ROLLUP (segment, country) ORDER BY ALL
SELECT date_trunc('quarter', signup_date) AS cohort, count(*) AS signups FROM customers WHERE signup_date BETWEEN DATE '2025-02-15' AND DATE '2025-06-30' GROUP BY cohort ORDER BY cohort
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 50 ORDER BY margin_pct DESC NULLS LAST LIMIT 100
SELECT c.country, count(*) FILTER (WHERE o.status = 'returned') AS matching, count(*) AS total FROM customers c LEFT JOIN orders o ON o.customer_id = c.customer_id GROUP BY c.country ORDER BY total DESC
SELECT customer_id FROM orders WHERE status = 'returned' EXCEPT SELECT customer_id FROM events WHERE event_type = 'page_view' ORDER BY 1 LIMIT 10
SELECT o.order_id, o.amount, p.category FROM orders o JOIN products p ON p.product_id = o.product_id WHERE o.amount > (SELECT avg(amount) * 1 FROM orders) ORDER BY o.amount DESC LIMIT 5
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 50) AND country = 'BR' ORDER BY name LIMIT 5
SELECT c.segment, count(*) AS customers FROM customers c WHERE EXISTS (SELECT 1 FROM events e WHERE e.customer_id = c.customer_id AND e.event_type = 'checkout') GROUP BY c.segment ORDER BY 2 DESC
WITH funnel AS (SELECT customer_id, max(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS viewed, max(CASE WHEN event_type = 'checkout' THEN 1 ELSE 0 END) AS converted FROM events WHERE event_ts >= TIMESTAMP '2025-09-01' GROUP BY customer_id) SELECT sum(viewed) AS viewed, sum(converted) AS converted, round(sum(converted) / nullif(sum(viewed), 0), 3) AS rate FROM funnel
SELECT extract(year FROM ordered_at) AS part, count(*) AS n FROM orders GROUP BY part ORDER BY part
SELECT strftime(ordered_at, '%Y') AS label, count(*) AS n FROM orders WHERE channel = 'store' GROUP BY label ORDER BY label LIMIT 1000
SELECT upper(left(name, 3)) AS prefix, count(*) AS n FROM customers WHERE email LIKE '%@mail.test' GROUP BY prefix ORDER BY n DESC
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 5 ORDER BY orders DESC LIMIT 1000
SELECT p.name, sum(o.quantity) AS units, rank() OVER (ORDER BY sum(o.quantity) DESC) AS rnk FROM orders o JOIN products p ON o.product_id = p.product_id WHERE p.category = 'books' GROUP BY p.name ORDER BY rnk LIMIT 25
SELECT CASE WHEN amount < 20 THEN 'small' WHEN amount < 100 THEN 'medium' ELSE 'large' END AS bucket, count(*) AS n, sum(amount) AS total FROM orders GROUP BY 1 ORDER BY 1
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-09-01' AND status NOT IN ('cancelled', 'shipped', 'new')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('US', 'JP') GROUP BY ALL ORDER BY n DESC LIMIT 5
SELECT * FROM orders WHERE order_id = 127986
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 40574 ORDER BY ordered_at DESC LIMIT 1000
SELECT * FROM customers WHERE customer_id BETWEEN 3551 AND 4031 ORDER BY customer_id
DESCRIBE products
SUMMARIZE SELECT price, cost FROM products LIMIT 1000
SELECT * FROM (SELECT channel, date_trunc('month', ordered_at) AS m, amount FROM orders) PIVOT (sum(amount) FOR channel IN ('web', 'store', 'partner'))
SELECT g.d::DATE AS day, count(o.order_id) AS orders FROM generate_series(DATE '2025-02-15', DATE '2025-09-01', INTERVAL 1 DAY) AS g(d) LEFT JOIN orders o ON o.ordered_at::DATE = g.d::DATE GROUP BY 1 ORDER BY 1
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 45 DAY GROUP BY product_id ORDER BY units DESC LIMIT 5
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%1%' AND price BETWEEN 11 AND 109 ORDER BY price LIMIT 50
SELECT o.currency, p.category, sum(o.amount) AS revenue, count(*) AS lines FROM orders o, products p WHERE o.product_id = p.product_id AND o.status = 'shipped' GROUP BY 1, 2 ORDER BY 3 DESC
SELECT customer_id, count(*) AS sessions FROM (SELECT customer_id, event_ts, event_ts - lag(event_ts) OVER (PARTITION BY customer_id ORDER BY event_ts) > INTERVAL 30 MINUTE AS new_session FROM events) WHERE new_session GROUP BY customer_id ORDER BY sessions DESC LIMIT 10
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-02-15' GROUP BY ALL HAVING sum(o.amount) > 100 ORDER BY recent DESC LIMIT 50
SELECT ntile(10) OVER (ORDER BY lifetime_value) AS tile, customer_id, lifetime_value FROM customers ORDER BY lifetime_value DESC LIMIT 1000
SELECT trim(both ' ' FROM name) AS name, regexp_matches(email, '@example') AS m FROM customers LIMIT 100
SELECT count(*) AS orders FROM orders WHERE status IN ('new', 'paid', 'returned')
SELECT date_trunc('year', ordered_at) AS period, avg(unit_price) AS value FROM orders WHERE ordered_at >= DATE '2025-02-15' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('partner', 'app', 'store') GROUP BY channel, status ORDER BY revenue DESC LIMIT 5
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('FR', 'DE', 'US') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 100
SELECT customer_id, order_id, amount, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at DESC) AS rn FROM orders WHERE ordered_at >= DATE '2025-03-01' QUALIFY rn <= 2 ORDER BY customer_id, rn
SELECT payload->>'$.page' AS k, count(*) AS n FROM events WHERE event_type = 'click' GROUP BY 1 ORDER BY n DESC LIMIT 25
SELECT json_extract_string(payload, '$.page') AS v, count(*) AS n FROM events GROUP BY ALL ORDER BY n DESC LIMIT 25
SELECT segment, country, count(*) AS customers, avg(lifetime_value) AS ltv FROM customers WHERE is_active AND segment IN ('consumer', 'enterprise', 'smb') GROUP BY ROLLUP (segment, country) ORDER BY ALL
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('garden', 'kitchen') GROUP BY category ORDER BY margin DESC
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 20 ORDER BY margin_pct DESC NULLS LAST LIMIT 10
SELECT customer_id FROM orders WHERE status = 'shipped' EXCEPT SELECT customer_id FROM events WHERE event_type = 'checkout' ORDER BY 1 LIMIT 20
SELECT o.order_id, o.amount, p.category FROM orders o JOIN products p ON p.product_id = o.product_id WHERE o.amount > (SELECT avg(amount) * 1 FROM orders) ORDER BY o.amount DESC LIMIT 100
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 1000) AND country = 'BR' ORDER BY name LIMIT 25
WITH funnel AS (SELECT customer_id, max(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS viewed, max(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS converted FROM events WHERE event_ts >= TIMESTAMP '2025-06-30' GROUP BY customer_id) SELECT sum(viewed) AS viewed, sum(converted) AS converted, round(sum(converted) / nullif(sum(viewed), 0), 3) AS rate FROM funnel
SELECT ordered_at::DATE AS day, sum(amount) AS revenue, avg(sum(amount)) OVER (ORDER BY ordered_at::DATE ROWS BETWEEN 14 PRECEDING AND CURRENT ROW) AS moving_avg FROM orders GROUP BY 1 ORDER BY 1
SELECT status, quantile_cont(amount, 0.99) AS p, approx_count_distinct(customer_id) AS customers FROM orders GROUP BY status ORDER BY status
SELECT extract(hour FROM ordered_at) AS part, count(*) AS n FROM orders GROUP BY part ORDER BY part
SELECT strftime(ordered_at, '%Y-%m-%d') AS label, count(*) AS n FROM orders WHERE channel = 'store' GROUP BY label ORDER BY label LIMIT 25
SELECT upper(left(name, 2)) AS prefix, count(*) AS n FROM customers WHERE email LIKE '%@example.org' GROUP BY prefix ORDER BY n DESC
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 5 ORDER BY orders DESC LIMIT 10
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-03-01' AND status NOT IN ('cancelled', 'returned', 'new')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('JP') GROUP BY ALL ORDER BY n DESC LIMIT 25
SELECT * FROM orders WHERE order_id = 669732
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 32573 ORDER BY ordered_at DESC LIMIT 100
SELECT * FROM customers WHERE customer_id BETWEEN 18551 AND 18897 ORDER BY customer_id
DESCRIBE customers
SUMMARIZE SELECT price, cost FROM products LIMIT 25
SELECT g.d::DATE AS day, count(o.order_id) AS orders FROM generate_series(DATE '2025-02-15', DATE '2025-11-15', INTERVAL 1 DAY) AS g(d) LEFT JOIN orders o ON o.ordered_at::DATE = g.d::DATE GROUP BY 1 ORDER BY 1
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 36 DAY GROUP BY product_id ORDER BY units DESC LIMIT 5
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%x%' AND price BETWEEN 11 AND 185 ORDER BY price LIMIT 10
SELECT customer_id, count(*) AS sessions FROM (SELECT customer_id, event_ts, event_ts - lag(event_ts) OVER (PARTITION BY customer_id ORDER BY event_ts) > INTERVAL 30 MINUTE AS new_session FROM events) WHERE new_session GROUP BY customer_id ORDER BY sessions DESC LIMIT 5
SELECT year(signup_date) AS y, month(signup_date) AS m, count(*) AS n FROM customers WHERE country = 'DE' GROUP BY y, m ORDER BY y, m
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-02-15' GROUP BY ALL HAVING sum(o.amount) > 1000 ORDER BY recent DESC LIMIT 10
SELECT ntile(4) OVER (ORDER BY lifetime_value) AS tile, customer_id, lifetime_value FROM customers ORDER BY lifetime_value DESC LIMIT 100
SELECT trim(both ' ' FROM name) AS name, regexp_matches(email, '@example') AS m FROM customers LIMIT 25
SELECT date_trunc('quarter', ordered_at) AS period, stddev_samp(amount) AS value FROM orders WHERE ordered_at >= DATE '2025-01-01' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('app', 'partner', 'store') GROUP BY channel, status ORDER BY revenue DESC LIMIT 100
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('BR') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 20
SELECT p.category, count(DISTINCT o.customer_id) AS buyers, round(avg(o.amount), 1) AS avg_amount FROM orders AS o INNER JOIN products AS p USING (product_id) WHERE o.ordered_at >= DATE '2025-03-01' GROUP BY p.category ORDER BY buyers DESC
SELECT customer_id, order_id, amount, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at DESC) AS rn FROM orders WHERE ordered_at >= DATE '2025-06-30' QUALIFY rn <= 3 ORDER BY customer_id, rn
SELECT payload->>'$.page' AS attr, count(*) AS n FROM events WHERE event_type = 'click' GROUP BY 1 ORDER BY n DESC LIMIT 50
SELECT json_extract_string(payload, '$.device') AS v, count(*) AS n FROM events GROUP BY ALL ORDER BY n DESC LIMIT 25
SELECT segment, country, count(*) AS customers, avg(lifetime_value) AS ltv FROM customers WHERE is_active AND segment IN ('consumer', 'enterprise') GROUP BY ROLLUP (segment, country) ORDER BY ALL
SELECT date_trunc('year', signup_date) AS cohort, count(*) AS signups FROM customers WHERE signup_date BETWEEN DATE '2025-01-01' AND DATE '2025-06-30' GROUP BY cohort ORDER BY cohort
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('garden', 'kitchen', 'sports') GROUP BY category ORDER BY margin DESC
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 10 ORDER BY margin_pct DESC NULLS LAST LIMIT 1000
SELECT customer_id FROM orders WHERE status = 'returned' EXCEPT SELECT customer_id FROM events WHERE event_type = 'click' ORDER BY 1 LIMIT 20
SELECT o.order_id, o.amount, p.category FROM orders o JOIN products p ON p.product_id = o.product_id WHERE o.amount > (SELECT avg(amount) * 2 FROM orders) ORDER BY o.amount DESC LIMIT 1000
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 50) AND country = 'GB' ORDER BY name LIMIT 20
WITH funnel AS (SELECT customer_id, max(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS viewed, max(CASE WHEN event_type = 'checkout' THEN 1 ELSE 0 END) AS converted FROM events WHERE event_ts >= TIMESTAMP '2025-02-15' GROUP BY customer_id) SELECT sum(viewed) AS viewed, sum(converted) AS converted, round(sum(converted) / nullif(sum(viewed), 0), 3) AS rate FROM funnel
SELECT ordered_at::DATE AS day, sum(amount) AS revenue, avg(sum(amount)) OVER (ORDER BY ordered_at::DATE ROWS BETWEEN 10 PRECEDING AND CURRENT ROW) AS moving_avg FROM orders GROUP BY 1 ORDER BY 1
SELECT strftime(ordered_at, '%Y') AS label, count(*) AS n FROM orders WHERE channel = 'partner' GROUP BY label ORDER BY label LIMIT 1000
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 9 ORDER BY orders DESC LIMIT 5
SELECT date_diff('day', min(ordered_at), max(ordered_at)) AS span_days, count(*) AS orders, customer_id FROM orders GROUP BY customer_id ORDER BY span_days DESC LIMIT 20
SELECT p.name, sum(o.quantity) AS units, rank() OVER (ORDER BY sum(o.quantity) DESC) AS rnk FROM orders o JOIN products p ON o.product_id = p.product_id WHERE p.category = 'kitchen' GROUP BY p.name ORDER BY rnk LIMIT 20
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-01-01' AND status NOT IN ('returned', 'cancelled')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('JP', 'BR') GROUP BY ALL ORDER BY n DESC LIMIT 50
SELECT * FROM orders WHERE order_id = 795236
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 41856 ORDER BY ordered_at DESC LIMIT 1000
SELECT * FROM customers WHERE customer_id BETWEEN 488 AND 497 ORDER BY customer_id
SUMMARIZE SELECT lifetime_value FROM customers LIMIT 10
SELECT * FROM (SELECT channel, date_trunc('month', ordered_at) AS m, amount FROM orders) PIVOT (sum(amount) FOR channel IN ('store', 'partner', 'web'))
SELECT g.d::DATE AS day, count(o.order_id) AS orders FROM generate_series(DATE '2025-01-01', DATE '2025-09-01', INTERVAL 1 DAY) AS g(d) LEFT JOIN orders o ON o.ordered_at::DATE = g.d::DATE GROUP BY 1 ORDER BY 1
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 1 DAY GROUP BY product_id ORDER BY units DESC LIMIT 50
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%1%' AND price BETWEEN 47 AND 65 ORDER BY price LIMIT 20
SELECT customer_id, count(*) AS sessions FROM (SELECT customer_id, event_ts, event_ts - lag(event_ts) OVER (PARTITION BY customer_id ORDER BY event_ts) > INTERVAL 15 MINUTE AS new_session FROM events) WHERE new_session GROUP BY customer_id ORDER BY sessions DESC LIMIT 10
SELECT channel, bool_or(discount > 0.2) AS any_big_discount, max(discount) AS max_discount FROM orders GROUP BY channel ORDER BY channel
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-03-01' GROUP BY ALL HAVING sum(o.amount) > 100 ORDER BY recent DESC LIMIT 25
SELECT ntile(10) OVER (ORDER BY lifetime_value) AS tile, customer_id, lifetime_value FROM customers ORDER BY lifetime_value DESC LIMIT 5
SELECT trim(both ' ' FROM name) AS name, regexp_matches(email, '[0-9]+') AS m FROM customers LIMIT 1000
SELECT count(*) AS orders FROM orders WHERE status IN ('shipped', 'cancelled', 'new')
SELECT date_trunc('month', ordered_at) AS period, stddev_samp(quantity * unit_price) AS value FROM orders WHERE ordered_at >= DATE '2025-11-15' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('web') GROUP BY channel, status ORDER BY revenue DESC LIMIT 100
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('JP') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 25
SELECT p.category, count(DISTINCT o.customer_id) AS buyers, round(avg(o.amount), 0) AS avg_amount FROM orders AS o INNER JOIN products AS p USING (product_id) WHERE o.ordered_at >= DATE '2025-02-15' GROUP BY p.category ORDER BY buyers DESC
SELECT customer_id, order_id, amount, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at DESC) AS rn FROM orders WHERE ordered_at >= DATE '2025-11-15' QUALIFY rn <= 5 ORDER BY customer_id, rn
SELECT payload->>'$.page' AS key, count(*) AS n FROM events WHERE event_type = 'page_view' GROUP BY 1 ORDER BY n DESC LIMIT 20
SELECT date_trunc('quarter', signup_date) AS cohort, count(*) AS signups FROM customers WHERE signup_date BETWEEN DATE '2025-01-01' AND DATE '2025-09-01' GROUP BY cohort ORDER BY cohort
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('sports', 'garden') GROUP BY category ORDER BY margin DESC
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 10 ORDER BY margin_pct DESC NULLS LAST LIMIT 100
SELECT customer_id FROM orders WHERE status = 'shipped' INTERSECT SELECT customer_id FROM events WHERE event_type = 'purchase' ORDER BY 1 LIMIT 50
SELECT o.order_id, o.amount, p.category FROM orders o JOIN products p ON p.product_id = o.product_id WHERE o.amount > (SELECT avg(amount) * 3 FROM orders) ORDER BY o.amount DESC LIMIT 5
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 50) AND country = 'US' ORDER BY name LIMIT 10
WITH funnel AS (SELECT customer_id, max(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS viewed, max(CASE WHEN event_type = 'click' THEN 1 ELSE 0 END) AS converted FROM events WHERE event_ts >= TIMESTAMP '2025-02-15' GROUP BY customer_id) SELECT sum(viewed) AS viewed, sum(converted) AS converted, round(sum(converted) / nullif(sum(viewed), 0), 3) AS rate FROM funnel
SELECT ordered_at::DATE AS day, sum(amount) AS revenue, avg(sum(amount)) OVER (ORDER BY ordered_at::DATE ROWS BETWEEN 25 PRECEDING AND CURRENT ROW) AS moving_avg FROM orders GROUP BY 1 ORDER BY 1
SELECT status, quantile_cont(amount, 0.9) AS p, approx_count_distinct(customer_id) AS customers FROM orders GROUP BY status ORDER BY status
SELECT strftime(ordered_at, '%Y-%m-%d') AS label, count(*) AS n FROM orders WHERE channel = 'app' GROUP BY label ORDER BY label LIMIT 10
SELECT upper(left(name, 3)) AS prefix, count(*) AS n FROM customers WHERE email LIKE '%@example.org' GROUP BY prefix ORDER BY n DESC
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 7 ORDER BY orders DESC LIMIT 25
SELECT p.name, sum(o.quantity) AS units, rank() OVER (ORDER BY sum(o.quantity) DESC) AS rnk FROM orders o JOIN products p ON o.product_id = p.product_id WHERE p.category = 'garden' GROUP BY p.name ORDER BY rnk LIMIT 100
SELECT CASE WHEN amount < 50 THEN 'small' WHEN amount < 100 THEN 'medium' ELSE 'large' END AS bucket, count(*) AS n, sum(amount) AS total FROM orders GROUP BY 1 ORDER BY 1
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-06-30' AND status NOT IN ('returned')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('BR', 'US') GROUP BY ALL ORDER BY n DESC LIMIT 20
SELECT * FROM orders WHERE order_id = 495488
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 10440 ORDER BY ordered_at DESC LIMIT 100
SELECT * FROM customers WHERE customer_id BETWEEN 19800 AND 20267 ORDER BY customer_id
SUMMARIZE SELECT status, channel FROM orders LIMIT 5
SELECT * FROM (SELECT channel, date_trunc('month', ordered_at) AS m, amount FROM orders) PIVOT (sum(amount) FOR channel IN ('app', 'web', 'partner'))
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 16 DAY GROUP BY product_id ORDER BY units DESC LIMIT 10
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%x%' AND price BETWEEN 27 AND 447 ORDER BY price LIMIT 50
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-03-01' GROUP BY ALL HAVING sum(o.amount) > 1000 ORDER BY recent DESC LIMIT 100
SELECT category, list(sku ORDER BY price DESC)[1:5] AS top_skus FROM products GROUP BY category ORDER BY category
SELECT trim(both ' ' FROM name) AS name, regexp_matches(email, '^customer') AS m FROM customers LIMIT 10
SELECT date_trunc('year', ordered_at) AS period, max(unit_price) AS value FROM orders WHERE ordered_at >= DATE '2025-02-15' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('app', 'store') GROUP BY channel, status ORDER BY revenue DESC LIMIT 5
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('JP', 'GB', 'DE') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 10
SELECT p.category, count(DISTINCT o.customer_id) AS buyers, round(avg(o.amount), 2) AS avg_amount FROM orders AS o INNER JOIN products AS p USING (product_id) WHERE o.ordered_at >= DATE '2025-01-01' GROUP BY p.category ORDER BY buyers DESC
WITH monthly AS (SELECT date_trunc('month', ordered_at) AS m, sum(amount) AS revenue FROM orders WHERE currency = 'USD' GROUP BY 1) SELECT m, revenue, revenue - lag(revenue) OVER (ORDER BY m) AS change FROM monthly ORDER BY m LIMIT 25
SELECT payload->>'$.page' AS k, count(*) AS n FROM events WHERE event_type = 'click' GROUP BY 1 ORDER BY n DESC LIMIT 1000
SELECT date_trunc('quarter', signup_date) AS cohort, count(*) AS signups FROM customers WHERE signup_date BETWEEN DATE '2025-03-01' AND DATE '2025-11-15' GROUP BY cohort ORDER BY cohort
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('garden', 'books') GROUP BY category ORDER BY margin DESC
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 20 ORDER BY margin_pct DESC NULLS LAST LIMIT 5
SELECT customer_id FROM orders WHERE status = 'cancelled' INTERSECT SELECT customer_id FROM events WHERE event_type = 'checkout' ORDER BY 1 LIMIT 1000
SELECT o.order_id, o.amount, p.category FROM orders o JOIN products p ON p.product_id = o.product_id WHERE o.amount > (SELECT avg(amount) * 1 FROM orders) ORDER BY o.amount DESC LIMIT 1000
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 50) AND country = 'JP' ORDER BY name LIMIT 5
SELECT c.segment, count(*) AS customers FROM customers c WHERE EXISTS (SELECT 1 FROM events e WHERE e.customer_id = c.customer_id AND e.event_type = 'page_view') GROUP BY c.segment ORDER BY 2 DESC
WITH funnel AS (SELECT customer_id, max(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS viewed, max(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS converted FROM events WHERE event_ts >= TIMESTAMP '2025-09-01' GROUP BY customer_id) SELECT sum(viewed) AS viewed, sum(converted) AS converted, round(sum(converted) / nullif(sum(viewed), 0), 3) AS rate FROM funnel
SELECT strftime(ordered_at, '%Y-W%W') AS label, count(*) AS n FROM orders WHERE channel = 'web' GROUP BY label ORDER BY label LIMIT 20
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 9 ORDER BY orders DESC LIMIT 20
SELECT date_diff('day', min(ordered_at), max(ordered_at)) AS span_days, count(*) AS orders, customer_id FROM orders GROUP BY customer_id ORDER BY span_days DESC LIMIT 1000
SELECT p.name, sum(o.quantity) AS units, rank() OVER (ORDER BY sum(o.quantity) DESC) AS rnk FROM orders o JOIN products p ON o.product_id = p.product_id WHERE p.category = 'toys' GROUP BY p.name ORDER BY rnk LIMIT 1000
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-09-01' AND status NOT IN ('returned')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('GB', 'US') GROUP BY ALL ORDER BY n DESC LIMIT 100
SELECT * FROM orders WHERE order_id = 262681
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 31811 ORDER BY ordered_at DESC LIMIT 1000
SELECT * FROM customers WHERE customer_id BETWEEN 3476 AND 3510 ORDER BY customer_id
SUMMARIZE SELECT price, cost FROM products LIMIT 100
SELECT * FROM (SELECT channel, date_trunc('month', ordered_at) AS m, amount FROM orders) PIVOT (sum(amount) FOR channel IN ('partner', 'web', 'store'))
SELECT g.d::DATE AS day, count(o.order_id) AS orders FROM generate_series(DATE '2025-03-01', DATE '2025-06-30', INTERVAL 1 DAY) AS g(d) LEFT JOIN orders o ON o.ordered_at::DATE = g.d::DATE GROUP BY 1 ORDER BY 1
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 66 DAY GROUP BY product_id ORDER BY units DESC LIMIT 100
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%2%' AND price BETWEEN 1 AND 189 ORDER BY price LIMIT 20
SELECT customer_id, count(*) AS sessions FROM (SELECT customer_id, event_ts, event_ts - lag(event_ts) OVER (PARTITION BY customer_id ORDER BY event_ts) > INTERVAL 15 MINUTE AS new_session FROM events) WHERE new_session GROUP BY customer_id ORDER BY sessions DESC LIMIT 1000
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-06-30' GROUP BY ALL HAVING sum(o.amount) > 1000 ORDER BY recent DESC LIMIT 100
SELECT ntile(5) OVER (ORDER BY lifetime_value) AS tile, customer_id, lifetime_value FROM customers ORDER BY lifetime_value DESC LIMIT 25
SELECT trim(both ' ' FROM name) AS name, regexp_matches(email, '[0-9]+') AS m FROM customers LIMIT 5
SELECT count(*) AS orders FROM orders WHERE status IN ('new', 'paid')
SELECT date_trunc('month', ordered_at) AS period, avg(amount * (1 - discount)) AS value FROM orders WHERE ordered_at >= DATE '2025-02-15' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('store') GROUP BY channel, status ORDER BY revenue DESC LIMIT 10
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('GB') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 50
SELECT p.category, count(DISTINCT o.customer_id) AS buyers, round(avg(o.amount), 1) AS avg_amount FROM orders AS o INNER JOIN products AS p USING (product_id) WHERE o.ordered_at >= DATE '2025-01-01' GROUP BY p.category ORDER BY buyers DESC
SELECT customer_id, order_id, amount, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at DESC) AS rn FROM orders WHERE ordered_at >= DATE '2025-03-01' QUALIFY rn <= 1 ORDER BY customer_id, rn
SELECT event_type, count(*) AS events, count(DISTINCT customer_id) AS people FROM events WHERE event_ts >= TIMESTAMP '2025-06-30 00:00:00' GROUP BY event_type ORDER BY events DESC
SELECT json_extract_string(payload, '$.device') AS v, count(*) AS n FROM events GROUP BY ALL ORDER BY n DESC LIMIT 1000
SELECT date_trunc('quarter', signup_date) AS cohort, count(*) AS signups FROM customers WHERE signup_date BETWEEN DATE '2025-02-15' AND DATE '2025-09-01' GROUP BY cohort ORDER BY cohort
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 100 ORDER BY margin_pct DESC NULLS LAST LIMIT 50
SELECT c.country, count(*) FILTER (WHERE o.status = 'new') AS matching, count(*) AS total FROM customers c LEFT JOIN orders o ON o.customer_id = c.customer_id GROUP BY c.country ORDER BY total DESC
SELECT customer_id FROM orders WHERE status = 'paid' INTERSECT SELECT customer_id FROM events WHERE event_type = 'click' ORDER BY 1 LIMIT 25
SELECT o.order_id, o.amount, p.category FROM orders o JOIN products p ON p.product_id = o.product_id WHERE o.amount > (SELECT avg(amount) * 1.5 FROM orders) ORDER BY o.amount DESC LIMIT 25
SELECT ordered_at::DATE AS day, sum(amount) AS revenue, avg(sum(amount)) OVER (ORDER BY ordered_at::DATE ROWS BETWEEN 9 PRECEDING AND CURRENT ROW) AS moving_avg FROM orders GROUP BY 1 ORDER BY 1
SELECT strftime(ordered_at, '%Y-%m-%d') AS label, count(*) AS n FROM orders WHERE channel = 'web' GROUP BY label ORDER BY label LIMIT 100
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 7 ORDER BY orders DESC LIMIT 1000
SELECT date_diff('day', min(ordered_at), max(ordered_at)) AS span_days, count(*) AS orders, customer_id FROM orders GROUP BY customer_id ORDER BY span_days DESC LIMIT 25
SELECT p.name, sum(o.quantity) AS units, rank() OVER (ORDER BY sum(o.quantity) DESC) AS rnk FROM orders o JOIN products p ON o.product_id = p.product_id WHERE p.category = 'sports' GROUP BY p.name ORDER BY rnk LIMIT 5
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-01-01' AND status NOT IN ('new', 'shipped')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('GB', 'FR') GROUP BY ALL ORDER BY n DESC LIMIT 25
SELECT * FROM orders WHERE order_id = 940436
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 29721 ORDER BY ordered_at DESC LIMIT 1000
SELECT * FROM customers WHERE customer_id BETWEEN 22424 AND 22814 ORDER BY customer_id
SELECT * FROM (SELECT channel, date_trunc('month', ordered_at) AS m, amount FROM orders) PIVOT (sum(amount) FOR channel IN ('app', 'store', 'web'))
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 54 DAY GROUP BY product_id ORDER BY units DESC LIMIT 25
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%product%' AND price BETWEEN 29 AND 389 ORDER BY price LIMIT 50
SELECT o.currency, p.category, sum(o.amount) AS revenue, count(*) AS lines FROM orders o, products p WHERE o.product_id = p.product_id AND o.status = 'paid' GROUP BY 1, 2 ORDER BY 3 DESC
SELECT customer_id, count(*) AS sessions FROM (SELECT customer_id, event_ts, event_ts - lag(event_ts) OVER (PARTITION BY customer_id ORDER BY event_ts) > INTERVAL 30 MINUTE AS new_session FROM events) WHERE new_session GROUP BY customer_id ORDER BY sessions DESC LIMIT 1000
SELECT year(signup_date) AS y, month(signup_date) AS m, count(*) AS n FROM customers WHERE country = 'JP' GROUP BY y, m ORDER BY y, m
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-06-30' GROUP BY ALL HAVING sum(o.amount) > 500 ORDER BY recent DESC LIMIT 50
SELECT ntile(10) OVER (ORDER BY lifetime_value) AS tile, customer_id, lifetime_value FROM customers ORDER BY lifetime_value DESC LIMIT 50
SELECT category, list(sku ORDER BY price DESC)[1:2] AS top_skus FROM products GROUP BY category ORDER BY category
SELECT trim(both ' ' FROM name) AS name, regexp_matches(email, '@example') AS m FROM customers LIMIT 5
SELECT count(*) AS orders FROM orders WHERE status IN ('new', 'returned')
SELECT date_trunc('week', ordered_at) AS period, min(unit_price) AS value FROM orders WHERE ordered_at >= DATE '2025-06-30' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('app', 'store') GROUP BY channel, status ORDER BY revenue DESC LIMIT 50
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('US') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 50
SELECT payload->>'$.campaign' AS attr, count(*) AS n FROM events WHERE event_type = 'purchase' GROUP BY 1 ORDER BY n DESC LIMIT 1000
SELECT json_extract_string(payload, '$.campaign') AS v, count(*) AS n FROM events GROUP BY ALL ORDER BY n DESC LIMIT 10
SELECT segment, country, count(*) AS customers, avg(lifetime_value) AS ltv FROM customers WHERE is_active AND segment IN ('smb', 'enterprise') GROUP BY ROLLUP (segment, country) ORDER BY ALL
SELECT date_trunc('month', signup_date) AS cohort, count(*) AS signups FROM customers WHERE signup_date BETWEEN DATE '2025-02-15' AND DATE '2025-09-01' GROUP BY cohort ORDER BY cohort
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('sports', 'garden', 'kitchen') GROUP BY category ORDER BY margin DESC
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 50 ORDER BY margin_pct DESC NULLS LAST LIMIT 50
SELECT customer_id FROM orders WHERE status = 'shipped' UNION SELECT customer_id FROM events WHERE event_type = 'page_view' ORDER BY 1 LIMIT 5
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 1000) AND country = 'BR' ORDER BY name LIMIT 100
WITH funnel AS (SELECT customer_id, max(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS viewed, max(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS converted FROM events WHERE event_ts >= TIMESTAMP '2025-06-30' GROUP BY customer_id) SELECT sum(viewed) AS viewed, sum(converted) AS converted, round(sum(converted) / nullif(sum(viewed), 0), 3) AS rate FROM funnel
SELECT ordered_at::DATE AS day, sum(amount) AS revenue, avg(sum(amount)) OVER (ORDER BY ordered_at::DATE ROWS BETWEEN 27 PRECEDING AND CURRENT ROW) AS moving_avg FROM orders GROUP BY 1 ORDER BY 1
SELECT strftime(ordered_at, '%Y') AS label, count(*) AS n FROM orders WHERE channel = 'store' GROUP BY label ORDER BY label LIMIT 10
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 6 ORDER BY orders DESC LIMIT 10
SELECT date_diff('day', min(ordered_at), max(ordered_at)) AS span_days, count(*) AS orders, customer_id FROM orders GROUP BY customer_id ORDER BY span_days DESC LIMIT 50
SELECT p.name, sum(o.quantity) AS units, rank() OVER (ORDER BY sum(o.quantity) DESC) AS rnk FROM orders o JOIN products p ON o.product_id = p.product_id WHERE p.category = 'kitchen' GROUP BY p.name ORDER BY rnk LIMIT 10
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-03-01' AND status NOT IN ('shipped')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('DE', 'US') GROUP BY ALL ORDER BY n DESC LIMIT 5
SELECT * FROM orders WHERE order_id = 931385
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 13911 ORDER BY ordered_at DESC LIMIT 50
SELECT * FROM customers WHERE customer_id BETWEEN 10920 AND 11375 ORDER BY customer_id
SELECT * FROM (SELECT channel, date_trunc('month', ordered_at) AS m, amount FROM orders) PIVOT (sum(amount) FOR channel IN ('store'))
SELECT g.d::DATE AS day, count(o.order_id) AS orders FROM generate_series(DATE '2025-01-01', DATE '2025-06-30', INTERVAL 1 DAY) AS g(d) LEFT JOIN orders o ON o.ordered_at::DATE = g.d::DATE GROUP BY 1 ORDER BY 1
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 35 DAY GROUP BY product_id ORDER BY units DESC LIMIT 100
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%1%' AND price BETWEEN 17 AND 477 ORDER BY price LIMIT 20
SELECT o.currency, p.category, sum(o.amount) AS revenue, count(*) AS lines FROM orders o, products p WHERE o.product_id = p.product_id AND o.status = 'cancelled' GROUP BY 1, 2 ORDER BY 3 DESC
SELECT customer_id, count(*) AS sessions FROM (SELECT customer_id, event_ts, event_ts - lag(event_ts) OVER (PARTITION BY customer_id ORDER BY event_ts) > INTERVAL 15 MINUTE AS new_session FROM events) WHERE new_session GROUP BY customer_id ORDER BY sessions DESC LIMIT 20
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-11-15' GROUP BY ALL HAVING sum(o.amount) > 500 ORDER BY recent DESC LIMIT 5
SELECT count(*) AS orders FROM orders WHERE status IN ('cancelled', 'shipped')
SELECT date_trunc('month', ordered_at) AS period, avg(quantity) AS value FROM orders WHERE ordered_at >= DATE '2025-09-01' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('store', 'app', 'partner') GROUP BY channel, status ORDER BY revenue DESC LIMIT 5
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('BR', 'JP') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 10
SELECT p.category, count(DISTINCT o.customer_id) AS buyers, round(avg(o.amount), 1) AS avg_amount FROM orders AS o INNER JOIN products AS p USING (product_id) WHERE o.ordered_at >= DATE '2025-11-15' GROUP BY p.category ORDER BY buyers DESC
SELECT customer_id, order_id, amount, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at DESC) AS rn FROM orders WHERE ordered_at >= DATE '2025-06-30' QUALIFY rn <= 5 ORDER BY customer_id, rn
SELECT payload->>'$.campaign' AS k, count(*) AS n FROM events WHERE event_type = 'page_view' GROUP BY 1 ORDER BY n DESC LIMIT 50
SELECT json_extract_string(payload, '$.page') AS v, count(*) AS n FROM events GROUP BY ALL ORDER BY n DESC LIMIT 1000
SELECT segment, country, count(*) AS customers, avg(lifetime_value) AS ltv FROM customers WHERE is_active AND segment IN ('consumer', 'smb') GROUP BY ROLLUP (segment, country) ORDER BY ALL
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('toys', 'sports') GROUP BY category ORDER BY margin DESC
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 20 ORDER BY margin_pct DESC NULLS LAST LIMIT 1000
SELECT customer_id FROM orders WHERE status = 'returned' INTERSECT SELECT customer_id FROM events WHERE event_type = 'checkout' ORDER BY 1 LIMIT 1000
SELECT o.order_id, o.amount, p.category FROM orders o JOIN products p ON p.product_id = o.product_id WHERE o.amount > (SELECT avg(amount) * 1.5 FROM orders) ORDER BY o.amount DESC LIMIT 100
WITH funnel AS (SELECT customer_id, max(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS viewed, max(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS converted FROM events WHERE event_ts >= TIMESTAMP '2025-11-15' GROUP BY customer_id) SELECT sum(viewed) AS viewed, sum(converted) AS converted, round(sum(converted) / nullif(sum(viewed), 0), 3) AS rate FROM funnel
SELECT ordered_at::DATE AS day, sum(amount) AS revenue, avg(sum(amount)) OVER (ORDER BY ordered_at::DATE ROWS BETWEEN 3 PRECEDING AND CURRENT ROW) AS moving_avg FROM orders GROUP BY 1 ORDER BY 1
SELECT strftime(ordered_at, '%Y-W%W') AS label, count(*) AS n FROM orders WHERE channel = 'web' GROUP BY label ORDER BY label LIMIT 10
SELECT upper(left(name, 1)) AS prefix, count(*) AS n FROM customers WHERE email LIKE '%@example.com' GROUP BY prefix ORDER BY n DESC
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 10 ORDER BY orders DESC LIMIT 50
SELECT p.name, sum(o.quantity) AS units, rank() OVER (ORDER BY sum(o.quantity) DESC) AS rnk FROM orders o JOIN products p ON o.product_id = p.product_id WHERE p.category = 'toys' GROUP BY p.name ORDER BY rnk LIMIT 10
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-02-15' AND status NOT IN ('returned', 'new')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('GB') GROUP BY ALL ORDER BY n DESC LIMIT 20
SELECT * FROM orders WHERE order_id = 524733
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 45168 ORDER BY ordered_at DESC LIMIT 25
SELECT * FROM customers WHERE customer_id BETWEEN 39427 AND 39916 ORDER BY customer_id
SUMMARIZE SELECT status, channel FROM orders LIMIT 100
SELECT * FROM (SELECT channel, date_trunc('month', ordered_at) AS m, amount FROM orders) PIVOT (sum(amount) FOR channel IN ('web', 'partner'))
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 82 DAY GROUP BY product_id ORDER BY units DESC LIMIT 10
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%x%' AND price BETWEEN 41 AND 61 ORDER BY price LIMIT 50
SELECT customer_id, count(*) AS sessions FROM (SELECT customer_id, event_ts, event_ts - lag(event_ts) OVER (PARTITION BY customer_id ORDER BY event_ts) > INTERVAL 60 MINUTE AS new_session FROM events) WHERE new_session GROUP BY customer_id ORDER BY sessions DESC LIMIT 100
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-01-01' GROUP BY ALL HAVING sum(o.amount) > 1000 ORDER BY recent DESC LIMIT 5
SELECT ntile(10) OVER (ORDER BY lifetime_value) AS tile, customer_id, lifetime_value FROM customers ORDER BY lifetime_value DESC LIMIT 20
SELECT trim(both ' ' FROM name) AS name, regexp_matches(email, '^customer') AS m FROM customers LIMIT 100
SELECT date_trunc('month', ordered_at) AS period, max(amount * (1 - discount)) AS value FROM orders WHERE ordered_at >= DATE '2025-01-01' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('partner', 'app') GROUP BY channel, status ORDER BY revenue DESC LIMIT 50
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('DE') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 50
SELECT customer_id, order_id, amount, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at DESC) AS rn FROM orders WHERE ordered_at >= DATE '2025-06-30' QUALIFY rn <= 2 ORDER BY customer_id, rn
SELECT payload->>'$.campaign' AS attr, count(*) AS n FROM events WHERE event_type = 'click' GROUP BY 1 ORDER BY n DESC LIMIT 20
SELECT customer_id FROM orders WHERE status = 'returned' UNION SELECT customer_id FROM events WHERE event_type = 'page_view' ORDER BY 1 LIMIT 10
SELECT o.order_id, o.amount, p.category FROM orders o JOIN products p ON p.product_id = o.product_id WHERE o.amount > (SELECT avg(amount) * 2 FROM orders) ORDER BY o.amount DESC LIMIT 20
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 100) AND country = 'GB' ORDER BY name LIMIT 20
WITH funnel AS (SELECT customer_id, max(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS viewed, max(CASE WHEN event_type = 'click' THEN 1 ELSE 0 END) AS converted FROM events WHERE event_ts >= TIMESTAMP '2025-11-15' GROUP BY customer_id) SELECT sum(viewed) AS viewed, sum(converted) AS converted, round(sum(converted) / nullif(sum(viewed), 0), 3) AS rate FROM funnel
SELECT ordered_at::DATE AS day, sum(amount) AS revenue, avg(sum(amount)) OVER (ORDER BY ordered_at::DATE ROWS BETWEEN 29 PRECEDING AND CURRENT ROW) AS moving_avg FROM orders GROUP BY 1 ORDER BY 1
SELECT strftime(ordered_at, '%Y-%m') AS label, count(*) AS n FROM orders WHERE channel = 'store' GROUP BY label ORDER BY label LIMIT 1000
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 6 ORDER BY orders DESC LIMIT 100
SELECT p.name, sum(o.quantity) AS units, rank() OVER (ORDER BY sum(o.quantity) DESC) AS rnk FROM orders o JOIN products p ON o.product_id = p.product_id WHERE p.category = 'kitchen' GROUP BY p.name ORDER BY rnk LIMIT 5
SELECT CASE WHEN amount < 20 THEN 'small' WHEN amount < 500 THEN 'medium' ELSE 'large' END AS bucket, count(*) AS n, sum(amount) AS total FROM orders GROUP BY 1 ORDER BY 1
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-11-15' AND status NOT IN ('cancelled', 'returned', 'shipped')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('BR') GROUP BY ALL ORDER BY n DESC LIMIT 20
SELECT * FROM orders WHERE order_id = 586466
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 33104 ORDER BY ordered_at DESC LIMIT 50
SELECT * FROM customers WHERE customer_id BETWEEN 261 AND 604 ORDER BY customer_id
SUMMARIZE SELECT price, cost FROM products LIMIT 5
SELECT * FROM (SELECT channel, date_trunc('month', ordered_at) AS m, amount FROM orders) PIVOT (sum(amount) FOR channel IN ('partner', 'app'))
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 2 DAY GROUP BY product_id ORDER BY units DESC LIMIT 25
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%product%' AND price BETWEEN 19 AND 215 ORDER BY price LIMIT 5
SELECT customer_id, count(*) AS sessions FROM (SELECT customer_id, event_ts, event_ts - lag(event_ts) OVER (PARTITION BY customer_id ORDER BY event_ts) > INTERVAL 60 MINUTE AS new_session FROM events) WHERE new_session GROUP BY customer_id ORDER BY sessions DESC LIMIT 50
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-09-01' GROUP BY ALL HAVING sum(o.amount) > 500 ORDER BY recent DESC LIMIT 100
SELECT ntile(5) OVER (ORDER BY lifetime_value) AS tile, customer_id, lifetime_value FROM customers ORDER BY lifetime_value DESC LIMIT 100
SELECT trim(both ' ' FROM name) AS name, regexp_matches(email, '@example') AS m FROM customers LIMIT 1000
SELECT count(*) AS orders FROM orders WHERE status IN ('paid', 'returned')
SELECT date_trunc('week', ordered_at) AS period, avg(discount) AS value FROM orders WHERE ordered_at >= DATE '2025-09-01' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('store', 'partner', 'app') GROUP BY channel, status ORDER BY revenue DESC LIMIT 1000
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('DE') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 1000
SELECT p.category, count(DISTINCT o.customer_id) AS buyers, round(avg(o.amount), 0) AS avg_amount FROM orders AS o INNER JOIN products AS p USING (product_id) WHERE o.ordered_at >= DATE '2025-01-01' GROUP BY p.category ORDER BY buyers DESC
SELECT event_type, count(*) AS events, count(DISTINCT customer_id) AS people FROM events WHERE event_ts >= TIMESTAMP '2025-03-01 00:00:00' GROUP BY event_type ORDER BY events DESC
SELECT payload->>'$.referrer' AS attr, count(*) AS n FROM events WHERE event_type = 'page_view' GROUP BY 1 ORDER BY n DESC LIMIT 10
SELECT segment, country, count(*) AS customers, avg(lifetime_value) AS ltv FROM customers WHERE is_active AND segment IN ('smb') GROUP BY ROLLUP (segment, country) ORDER BY ALL
SELECT date_trunc('quarter', signup_date) AS cohort, count(*) AS signups FROM customers WHERE signup_date BETWEEN DATE '2025-03-01' AND DATE '2025-09-01' GROUP BY cohort ORDER BY cohort
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('toys', 'garden') GROUP BY category ORDER BY margin DESC
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 50 ORDER BY margin_pct DESC NULLS LAST LIMIT 1000
SELECT customer_id FROM orders WHERE status = 'paid' UNION SELECT customer_id FROM events WHERE event_type = 'click' ORDER BY 1 LIMIT 25
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 1000) AND country = 'GB' ORDER BY name LIMIT 5
WITH funnel AS (SELECT customer_id, max(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS viewed, max(CASE WHEN event_type = 'click' THEN 1 ELSE 0 END) AS converted FROM events WHERE event_ts >= TIMESTAMP '2025-06-30' GROUP BY customer_id) SELECT sum(viewed) AS viewed, sum(converted) AS converted, round(sum(converted) / nullif(sum(viewed), 0), 3) AS rate FROM funnel
SELECT ordered_at::DATE AS day, sum(amount) AS revenue, avg(sum(amount)) OVER (ORDER BY ordered_at::DATE ROWS BETWEEN 7 PRECEDING AND CURRENT ROW) AS moving_avg FROM orders GROUP BY 1 ORDER BY 1
SELECT strftime(ordered_at, '%Y-%m-%d') AS label, count(*) AS n FROM orders WHERE channel = 'web' GROUP BY label ORDER BY label LIMIT 1000
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 6 ORDER BY orders DESC LIMIT 50
SELECT CASE WHEN amount < 10 THEN 'small' WHEN amount < 100 THEN 'medium' ELSE 'large' END AS bucket, count(*) AS n, sum(amount) AS total FROM orders GROUP BY 1 ORDER BY 1
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-02-15' AND status NOT IN ('shipped')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('DE', 'BR', 'US') GROUP BY ALL ORDER BY n DESC LIMIT 5
SELECT * FROM orders WHERE order_id = 524499
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 20718 ORDER BY ordered_at DESC LIMIT 5
SELECT * FROM customers WHERE customer_id BETWEEN 21663 AND 21679 ORDER BY customer_id
SUMMARIZE SELECT lifetime_value FROM customers LIMIT 25
SELECT g.d::DATE AS day, count(o.order_id) AS orders FROM generate_series(DATE '2025-03-01', DATE '2025-09-01', INTERVAL 1 DAY) AS g(d) LEFT JOIN orders o ON o.ordered_at::DATE = g.d::DATE GROUP BY 1 ORDER BY 1
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 65 DAY GROUP BY product_id ORDER BY units DESC LIMIT 1000
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%2%' AND price BETWEEN 19 AND 492 ORDER BY price LIMIT 20
SELECT year(signup_date) AS y, month(signup_date) AS m, count(*) AS n FROM customers WHERE country = 'BR' GROUP BY y, m ORDER BY y, m
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-09-01' GROUP BY ALL HAVING sum(o.amount) > 100 ORDER BY recent DESC LIMIT 25
SELECT trim(both ' ' FROM name) AS name, regexp_matches(email, '@example') AS m FROM customers LIMIT 20
SELECT count(*) AS orders FROM orders WHERE status IN ('new', 'shipped')
SELECT date_trunc('month', ordered_at) AS period, sum(discount) AS value FROM orders WHERE ordered_at >= DATE '2025-09-01' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('partner', 'web', 'store') GROUP BY channel, status ORDER BY revenue DESC LIMIT 50
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('FR', 'JP') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 25
WITH monthly AS (SELECT date_trunc('month', ordered_at) AS m, sum(amount) AS revenue FROM orders WHERE currency = 'USD' GROUP BY 1) SELECT m, revenue, revenue - lag(revenue) OVER (ORDER BY m) AS change FROM monthly ORDER BY m LIMIT 20
SELECT customer_id, order_id, amount, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at DESC) AS rn FROM orders WHERE ordered_at >= DATE '2025-01-01' QUALIFY rn <= 2 ORDER BY customer_id, rn
SELECT payload->>'$.page' AS attr, count(*) AS n FROM events WHERE event_type = 'page_view' GROUP BY 1 ORDER BY n DESC LIMIT 100
SELECT json_extract_string(payload, '$.campaign') AS v, count(*) AS n FROM events GROUP BY ALL ORDER BY n DESC LIMIT 25
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('sports', 'garden', 'toys') GROUP BY category ORDER BY margin DESC
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 50 ORDER BY margin_pct DESC NULLS LAST LIMIT 5
SELECT customer_id FROM orders WHERE status = 'cancelled' EXCEPT SELECT customer_id FROM events WHERE event_type = 'purchase' ORDER BY 1 LIMIT 5
SELECT o.order_id, o.amount, p.category FROM orders o JOIN products p ON p.product_id = o.product_id WHERE o.amount > (SELECT avg(amount) * 1 FROM orders) ORDER BY o.amount DESC LIMIT 10
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 500) AND country = 'BR' ORDER BY name LIMIT 5
SELECT ordered_at::DATE AS day, sum(amount) AS revenue, avg(sum(amount)) OVER (ORDER BY ordered_at::DATE ROWS BETWEEN 20 PRECEDING AND CURRENT ROW) AS moving_avg FROM orders GROUP BY 1 ORDER BY 1
SELECT strftime(ordered_at, '%Y-%m-%d') AS label, count(*) AS n FROM orders WHERE channel = 'store' GROUP BY label ORDER BY label LIMIT 100
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 7 ORDER BY orders DESC LIMIT 10
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-01-01' AND status NOT IN ('returned')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('BR', 'DE', 'JP') GROUP BY ALL ORDER BY n DESC LIMIT 5
SELECT * FROM orders WHERE order_id = 440206
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 41806 ORDER BY ordered_at DESC LIMIT 5
SELECT * FROM customers WHERE customer_id BETWEEN 21664 AND 21925 ORDER BY customer_id
DESCRIBE events
SUMMARIZE SELECT amount, quantity FROM orders LIMIT 25
SELECT * FROM (SELECT channel, date_trunc('month', ordered_at) AS m, amount FROM orders) PIVOT (sum(amount) FOR channel IN ('partner', 'store', 'web'))
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 19 DAY GROUP BY product_id ORDER BY units DESC LIMIT 20
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%x%' AND price BETWEEN 34 AND 130 ORDER BY price LIMIT 20
SELECT customer_id, count(*) AS sessions FROM (SELECT customer_id, event_ts, event_ts - lag(event_ts) OVER (PARTITION BY customer_id ORDER BY event_ts) > INTERVAL 60 MINUTE AS new_session FROM events) WHERE new_session GROUP BY customer_id ORDER BY sessions DESC LIMIT 5
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-11-15' GROUP BY ALL HAVING sum(o.amount) > 1000 ORDER BY recent DESC LIMIT 20
SELECT ntile(10) OVER (ORDER BY lifetime_value) AS tile, customer_id, lifetime_value FROM customers ORDER BY lifetime_value DESC LIMIT 100
SELECT count(*) AS orders FROM orders WHERE status IN ('returned')
SELECT date_trunc('day', ordered_at) AS period, avg(quantity) AS value FROM orders WHERE ordered_at >= DATE '2025-02-15' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('web', 'partner', 'store') GROUP BY channel, status ORDER BY revenue DESC LIMIT 50
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('BR', 'US') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 20
SELECT p.category, count(DISTINCT o.customer_id) AS buyers, round(avg(o.amount), 1) AS avg_amount FROM orders AS o INNER JOIN products AS p USING (product_id) WHERE o.ordered_at >= DATE '2025-09-01' GROUP BY p.category ORDER BY buyers DESC
SELECT payload->>'$.page' AS key, count(*) AS n FROM events WHERE event_type = 'checkout' GROUP BY 1 ORDER BY n DESC LIMIT 5
SELECT json_extract_string(payload, '$.device') AS v, count(*) AS n FROM events GROUP BY ALL ORDER BY n DESC LIMIT 5
SELECT date_trunc('year', signup_date) AS cohort, count(*) AS signups FROM customers WHERE signup_date BETWEEN DATE '2025-02-15' AND DATE '2025-09-01' GROUP BY cohort ORDER BY cohort
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('kitchen') GROUP BY category ORDER BY margin DESC
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 10 ORDER BY margin_pct DESC NULLS LAST LIMIT 50
SELECT customer_id FROM orders WHERE status = 'cancelled' INTERSECT SELECT customer_id FROM events WHERE event_type = 'page_view' ORDER BY 1 LIMIT 50
SELECT o.order_id, o.amount, p.category FROM orders o JOIN products p ON p.product_id = o.product_id WHERE o.amount > (SELECT avg(amount) * 2 FROM orders) ORDER BY o.amount DESC LIMIT 50
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 500) AND country = 'US' ORDER BY name LIMIT 5
SELECT strftime(ordered_at, '%Y') AS label, count(*) AS n FROM orders WHERE channel = 'web' GROUP BY label ORDER BY label LIMIT 20
SELECT p.name, sum(o.quantity) AS units, rank() OVER (ORDER BY sum(o.quantity) DESC) AS rnk FROM orders o JOIN products p ON o.product_id = p.product_id WHERE p.category = 'garden' GROUP BY p.name ORDER BY rnk LIMIT 20
SELECT CASE WHEN amount < 50 THEN 'small' WHEN amount < 200 THEN 'medium' ELSE 'large' END AS bucket, count(*) AS n, sum(amount) AS total FROM orders GROUP BY 1 ORDER BY 1
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('FR', 'US', 'BR') GROUP BY ALL ORDER BY n DESC LIMIT 5
SELECT * FROM orders WHERE order_id = 202906
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 19691 ORDER BY ordered_at DESC LIMIT 50
SELECT * FROM customers WHERE customer_id BETWEEN 24900 AND 25234 ORDER BY customer_id
SELECT * FROM (SELECT channel, date_trunc('month', ordered_at) AS m, amount FROM orders) PIVOT (sum(amount) FOR channel IN ('partner'))
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 39 DAY GROUP BY product_id ORDER BY units DESC LIMIT 25
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%1%' AND price BETWEEN 33 AND 129 ORDER BY price LIMIT 25
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-02-15' GROUP BY ALL HAVING sum(o.amount) > 100 ORDER BY recent DESC LIMIT 100
SELECT trim(both ' ' FROM name) AS name, regexp_matches(email, '@example') AS m FROM customers LIMIT 10
SELECT count(*) AS orders FROM orders WHERE status IN ('new', 'shipped', 'cancelled')
SELECT date_trunc('month', ordered_at) AS period, sum(unit_price) AS value FROM orders WHERE ordered_at >= DATE '2025-09-01' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('partner', 'app', 'web') GROUP BY channel, status ORDER BY revenue DESC LIMIT 25
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('US', 'FR', 'DE') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 50
SELECT customer_id, order_id, amount, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at DESC) AS rn FROM orders WHERE ordered_at >= DATE '2025-06-30' QUALIFY rn <= 1 ORDER BY customer_id, rn
SELECT payload->>'$.page' AS key, count(*) AS n FROM events WHERE event_type = 'page_view' GROUP BY 1 ORDER BY n DESC LIMIT 10
SELECT segment, country, count(*) AS customers, avg(lifetime_value) AS ltv FROM customers WHERE is_active AND segment IN ('enterprise') GROUP BY ROLLUP (segment, country) ORDER BY ALL
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('garden') GROUP BY category ORDER BY margin DESC
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 100 ORDER BY margin_pct DESC NULLS LAST LIMIT 5
SELECT customer_id FROM orders WHERE status = 'returned' INTERSECT SELECT customer_id FROM events WHERE event_type = 'purchase' ORDER BY 1 LIMIT 1000
SELECT o.order_id, o.amount, p.category FROM orders o JOIN products p ON p.product_id = o.product_id WHERE o.amount > (SELECT avg(amount) * 1.5 FROM orders) ORDER BY o.amount DESC LIMIT 50
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 1000) AND country = 'FR' ORDER BY name LIMIT 1000
WITH funnel AS (SELECT customer_id, max(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS viewed, max(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS converted FROM events WHERE event_ts >= TIMESTAMP '2025-03-01' GROUP BY customer_id) SELECT sum(viewed) AS viewed, sum(converted) AS converted, round(sum(converted) / nullif(sum(viewed), 0), 3) AS rate FROM funnel
SELECT ordered_at::DATE AS day, sum(amount) AS revenue, avg(sum(amount)) OVER (ORDER BY ordered_at::DATE ROWS BETWEEN 5 PRECEDING AND CURRENT ROW) AS moving_avg FROM orders GROUP BY 1 ORDER BY 1
SELECT strftime(ordered_at, '%Y-%m') AS label, count(*) AS n FROM orders WHERE channel = 'web' GROUP BY label ORDER BY label LIMIT 5
SELECT upper(left(name, 2)) AS prefix, count(*) AS n FROM customers WHERE email LIKE '%@mail.test' GROUP BY prefix ORDER BY n DESC
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 4 ORDER BY orders DESC LIMIT 100
SELECT p.name, sum(o.quantity) AS units, rank() OVER (ORDER BY sum(o.quantity) DESC) AS rnk FROM orders o JOIN products p ON o.product_id = p.product_id WHERE p.category = 'kitchen' GROUP BY p.name ORDER BY rnk LIMIT 50
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-09-01' AND status NOT IN ('new')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('BR', 'FR') GROUP BY ALL ORDER BY n DESC LIMIT 10
SELECT * FROM orders WHERE order_id = 608928
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 35241 ORDER BY ordered_at DESC LIMIT 25
SELECT * FROM customers WHERE customer_id BETWEEN 34742 AND 35189 ORDER BY customer_id
SUMMARIZE SELECT status, channel FROM orders LIMIT 50
SELECT * FROM (SELECT channel, date_trunc('month', ordered_at) AS m, amount FROM orders) PIVOT (sum(amount) FOR channel IN ('web', 'partner', 'app'))
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 59 DAY GROUP BY product_id ORDER BY units DESC LIMIT 20
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%2%' AND price BETWEEN 8 AND 460 ORDER BY price LIMIT 100
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-02-15' GROUP BY ALL HAVING sum(o.amount) > 1000 ORDER BY recent DESC LIMIT 50
SELECT trim(both ' ' FROM name) AS name, regexp_matches(email, '^customer') AS m FROM customers LIMIT 20
SELECT count(*) AS orders FROM orders WHERE status IN ('new', 'paid', 'cancelled')
SELECT date_trunc('year', ordered_at) AS period, stddev_samp(quantity) AS value FROM orders WHERE ordered_at >= DATE '2025-01-01' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('web', 'partner', 'app') GROUP BY channel, status ORDER BY revenue DESC LIMIT 100
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('DE', 'JP', 'GB') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 20
SELECT p.category, count(DISTINCT o.customer_id) AS buyers, round(avg(o.amount), 0) AS avg_amount FROM orders AS o INNER JOIN products AS p USING (product_id) WHERE o.ordered_at >= DATE '2025-06-30' GROUP BY p.category ORDER BY buyers DESC
SELECT customer_id, order_id, amount, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at DESC) AS rn FROM orders WHERE ordered_at >= DATE '2025-11-15' QUALIFY rn <= 1 ORDER BY customer_id, rn
SELECT payload->>'$.referrer' AS attr, count(*) AS n FROM events WHERE event_type = 'page_view' GROUP BY 1 ORDER BY n DESC LIMIT 20
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('garden', 'toys', 'kitchen') GROUP BY category ORDER BY margin DESC
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 100 ORDER BY margin_pct DESC NULLS LAST LIMIT 25
SELECT customer_id FROM orders WHERE status = 'cancelled' INTERSECT SELECT customer_id FROM events WHERE event_type = 'purchase' ORDER BY 1 LIMIT 50
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 1000) AND country = 'US' ORDER BY name LIMIT 100
SELECT ordered_at::DATE AS day, sum(amount) AS revenue, avg(sum(amount)) OVER (ORDER BY ordered_at::DATE ROWS BETWEEN 15 PRECEDING AND CURRENT ROW) AS moving_avg FROM orders GROUP BY 1 ORDER BY 1
SELECT strftime(ordered_at, '%Y-%m') AS label, count(*) AS n FROM orders WHERE channel = 'app' GROUP BY label ORDER BY label LIMIT 100
SELECT p.name, sum(o.quantity) AS units, rank() OVER (ORDER BY sum(o.quantity) DESC) AS rnk FROM orders o JOIN products p ON o.product_id = p.product_id WHERE p.category = 'books' GROUP BY p.name ORDER BY rnk LIMIT 1000
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-06-30' AND status NOT IN ('paid', 'cancelled')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('BR', 'US', 'JP') GROUP BY ALL ORDER BY n DESC LIMIT 20
SELECT * FROM orders WHERE order_id = 943455
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 46311 ORDER BY ordered_at DESC LIMIT 20
SELECT * FROM customers WHERE customer_id BETWEEN 10200 AND 10390 ORDER BY customer_id
SELECT * FROM (SELECT channel, date_trunc('month', ordered_at) AS m, amount FROM orders) PIVOT (sum(amount) FOR channel IN ('web'))
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 80 DAY GROUP BY product_id ORDER BY units DESC LIMIT 5
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%2%' AND price BETWEEN 25 AND 145 ORDER BY price LIMIT 50
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-01-01' GROUP BY ALL HAVING sum(o.amount) > 500 ORDER BY recent DESC LIMIT 25
SELECT ntile(4) OVER (ORDER BY lifetime_value) AS tile, customer_id, lifetime_value FROM customers ORDER BY lifetime_value DESC LIMIT 1000
SELECT count(*) AS orders FROM orders WHERE status IN ('returned', 'paid', 'shipped')
SELECT date_trunc('year', ordered_at) AS period, max(unit_price) AS value FROM orders WHERE ordered_at >= DATE '2025-09-01' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('web', 'app', 'partner') GROUP BY channel, status ORDER BY revenue DESC LIMIT 20
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('BR', 'JP', 'GB') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 10
SELECT p.category, count(DISTINCT o.customer_id) AS buyers, round(avg(o.amount), 0) AS avg_amount FROM orders AS o INNER JOIN products AS p USING (product_id) WHERE o.ordered_at >= DATE '2025-03-01' GROUP BY p.category ORDER BY buyers DESC
SELECT customer_id, order_id, amount, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at DESC) AS rn FROM orders WHERE ordered_at >= DATE '2025-03-01' QUALIFY rn <= 4 ORDER BY customer_id, rn
SELECT payload->>'$.campaign' AS attr, count(*) AS n FROM events WHERE event_type = 'checkout' GROUP BY 1 ORDER BY n DESC LIMIT 100
SELECT json_extract_string(payload, '$.campaign') AS v, count(*) AS n FROM events GROUP BY ALL ORDER BY n DESC LIMIT 1000
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('kitchen', 'garden', 'sports') GROUP BY category ORDER BY margin DESC
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 100 ORDER BY margin_pct DESC NULLS LAST LIMIT 100
SELECT customer_id FROM orders WHERE status = 'returned' EXCEPT SELECT customer_id FROM events WHERE event_type = 'click' ORDER BY 1 LIMIT 25
SELECT o.order_id, o.amount, p.category FROM orders o JOIN products p ON p.product_id = o.product_id WHERE o.amount > (SELECT avg(amount) * 1.5 FROM orders) ORDER BY o.amount DESC LIMIT 1000
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 500) AND country = 'FR' ORDER BY name LIMIT 50
SELECT upper(left(name, 1)) AS prefix, count(*) AS n FROM customers WHERE email LIKE '%@example.org' GROUP BY prefix ORDER BY n DESC
SELECT p.name, sum(o.quantity) AS units, rank() OVER (ORDER BY sum(o.quantity) DESC) AS rnk FROM orders o JOIN products p ON o.product_id = p.product_id WHERE p.category = 'kitchen' GROUP BY p.name ORDER BY rnk LIMIT 100
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-11-15' AND status NOT IN ('cancelled')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('GB') GROUP BY ALL ORDER BY n DESC LIMIT 5
SELECT * FROM orders WHERE order_id = 871961
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 41570 ORDER BY ordered_at DESC LIMIT 1000
SELECT * FROM customers WHERE customer_id BETWEEN 23965 AND 24355 ORDER BY customer_id
SUMMARIZE SELECT price, cost FROM products LIMIT 50
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 54 DAY GROUP BY product_id ORDER BY units DESC LIMIT 20
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%1%' AND price BETWEEN 46 AND 491 ORDER BY price LIMIT 25
SELECT customer_id, count(*) AS sessions FROM (SELECT customer_id, event_ts, event_ts - lag(event_ts) OVER (PARTITION BY customer_id ORDER BY event_ts) > INTERVAL 30 MINUTE AS new_session FROM events) WHERE new_session GROUP BY customer_id ORDER BY sessions DESC LIMIT 25
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-09-01' GROUP BY ALL HAVING sum(o.amount) > 1000 ORDER BY recent DESC LIMIT 50
SELECT ntile(10) OVER (ORDER BY lifetime_value) AS tile, customer_id, lifetime_value FROM customers ORDER BY lifetime_value DESC LIMIT 10
SELECT count(*) AS orders FROM orders WHERE status IN ('paid')
SELECT date_trunc('year', ordered_at) AS period, sum(unit_price) AS value FROM orders WHERE ordered_at >= DATE '2025-03-01' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('app', 'web', 'partner') GROUP BY channel, status ORDER BY revenue DESC LIMIT 25
SELECT payload->>'$.device' AS attr, count(*) AS n FROM events WHERE event_type = 'click' GROUP BY 1 ORDER BY n DESC LIMIT 1000
SELECT json_extract_string(payload, '$.campaign') AS v, count(*) AS n FROM events GROUP BY ALL ORDER BY n DESC LIMIT 20
SELECT segment, country, count(*) AS customers, avg(lifetime_value) AS ltv FROM customers WHERE is_active AND segment IN ('smb', 'consumer') GROUP BY ROLLUP (segment, country) ORDER BY ALL
SELECT date_trunc('year', signup_date) AS cohort, count(*) AS signups FROM customers WHERE signup_date BETWEEN DATE '2025-01-01' AND DATE '2025-11-15' GROUP BY cohort ORDER BY cohort
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('toys', 'books', 'garden') GROUP BY category ORDER BY margin DESC
SELECT customer_id FROM orders WHERE status = 'cancelled' UNION SELECT customer_id FROM events WHERE event_type = 'checkout' ORDER BY 1 LIMIT 1000
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 100) AND country = 'BR' ORDER BY name LIMIT 1000
WITH funnel AS (SELECT customer_id, max(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS viewed, max(CASE WHEN event_type = 'click' THEN 1 ELSE 0 END) AS converted FROM events WHERE event_ts >= TIMESTAMP '2025-03-01' GROUP BY customer_id) SELECT sum(viewed) AS viewed, sum(converted) AS converted, round(sum(converted) / nullif(sum(viewed), 0), 3) AS rate FROM funnel
SELECT ordered_at::DATE AS day, sum(amount) AS revenue, avg(sum(amount)) OVER (ORDER BY ordered_at::DATE ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) AS moving_avg FROM orders GROUP BY 1 ORDER BY 1
SELECT strftime(ordered_at, '%Y-%m') AS label, count(*) AS n FROM orders WHERE channel = 'web' GROUP BY label ORDER BY label LIMIT 1000
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 10 ORDER BY orders DESC LIMIT 10
SELECT p.name, sum(o.quantity) AS units, rank() OVER (ORDER BY sum(o.quantity) DESC) AS rnk FROM orders o JOIN products p ON o.product_id = p.product_id WHERE p.category = 'books' GROUP BY p.name ORDER BY rnk LIMIT 50
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-11-15' AND status NOT IN ('paid')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('JP') GROUP BY ALL ORDER BY n DESC LIMIT 100
SELECT * FROM orders WHERE order_id = 999083
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 45304 ORDER BY ordered_at DESC LIMIT 10
SELECT * FROM customers WHERE customer_id BETWEEN 34187 AND 34353 ORDER BY customer_id
SUMMARIZE SELECT status, channel FROM orders LIMIT 10
SELECT * FROM (SELECT channel, date_trunc('month', ordered_at) AS m, amount FROM orders) PIVOT (sum(amount) FOR channel IN ('store', 'app'))
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%x%' AND price BETWEEN 11 AND 355 ORDER BY price LIMIT 10
SELECT customer_id, count(*) AS sessions FROM (SELECT customer_id, event_ts, event_ts - lag(event_ts) OVER (PARTITION BY customer_id ORDER BY event_ts) > INTERVAL 30 MINUTE AS new_session FROM events) WHERE new_session GROUP BY customer_id ORDER BY sessions DESC LIMIT 20
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-09-01' GROUP BY ALL HAVING sum(o.amount) > 500 ORDER BY recent DESC LIMIT 10
SELECT ntile(5) OVER (ORDER BY lifetime_value) AS tile, customer_id, lifetime_value FROM customers ORDER BY lifetime_value DESC LIMIT 5
SELECT date_trunc('quarter', ordered_at) AS period, sum(discount) AS value FROM orders WHERE ordered_at >= DATE '2025-06-30' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('store', 'partner') GROUP BY channel, status ORDER BY revenue DESC LIMIT 25
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('US') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 5
SELECT json_extract_string(payload, '$.page') AS v, count(*) AS n FROM events GROUP BY ALL ORDER BY n DESC LIMIT 100
SELECT date_trunc('month', signup_date) AS cohort, count(*) AS signups FROM customers WHERE signup_date BETWEEN DATE '2025-02-15' AND DATE '2025-06-30' GROUP BY cohort ORDER BY cohort
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('sports', 'kitchen', 'toys') GROUP BY category ORDER BY margin DESC
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 5 ORDER BY margin_pct DESC NULLS LAST LIMIT 20
SELECT customer_id FROM orders WHERE status = 'shipped' INTERSECT SELECT customer_id FROM events WHERE event_type = 'page_view' ORDER BY 1 LIMIT 1000
SELECT o.order_id, o.amount, p.category FROM orders o JOIN products p ON p.product_id = o.product_id WHERE o.amount > (SELECT avg(amount) * 1.5 FROM orders) ORDER BY o.amount DESC LIMIT 20
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 100) AND country = 'JP' ORDER BY name LIMIT 1000
SELECT ordered_at::DATE AS day, sum(amount) AS revenue, avg(sum(amount)) OVER (ORDER BY ordered_at::DATE ROWS BETWEEN 28 PRECEDING AND CURRENT ROW) AS moving_avg FROM orders GROUP BY 1 ORDER BY 1
SELECT strftime(ordered_at, '%Y-%m') AS label, count(*) AS n FROM orders WHERE channel = 'partner' GROUP BY label ORDER BY label LIMIT 5
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 3 ORDER BY orders DESC LIMIT 10
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-11-15' AND status NOT IN ('returned')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('FR', 'BR', 'US') GROUP BY ALL ORDER BY n DESC LIMIT 1000
SELECT * FROM orders WHERE order_id = 763663
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 11798 ORDER BY ordered_at DESC LIMIT 25
SELECT * FROM customers WHERE customer_id BETWEEN 14464 AND 14573 ORDER BY customer_id
SUMMARIZE SELECT status, channel FROM orders LIMIT 25
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 84 DAY GROUP BY product_id ORDER BY units DESC LIMIT 100
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%1%' AND price BETWEEN 8 AND 317 ORDER BY price LIMIT 10
SELECT customer_id, count(*) AS sessions FROM (SELECT customer_id, event_ts, event_ts - lag(event_ts) OVER (PARTITION BY customer_id ORDER BY event_ts) > INTERVAL 30 MINUTE AS new_session FROM events) WHERE new_session GROUP BY customer_id ORDER BY sessions DESC LIMIT 100
SELECT count(*) AS orders FROM orders WHERE status IN ('returned', 'cancelled', 'paid')
SELECT date_trunc('day', ordered_at) AS period, max(discount) AS value FROM orders WHERE ordered_at >= DATE '2025-03-01' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('app', 'web') GROUP BY channel, status ORDER BY revenue DESC LIMIT 25
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('GB', 'BR') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 1000
SELECT payload->>'$.page' AS key, count(*) AS n FROM events WHERE event_type = 'purchase' GROUP BY 1 ORDER BY n DESC LIMIT 100
SELECT date_trunc('year', signup_date) AS cohort, count(*) AS signups FROM customers WHERE signup_date BETWEEN DATE '2025-01-01' AND DATE '2025-09-01' GROUP BY cohort ORDER BY cohort
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('garden', 'sports', 'toys') GROUP BY category ORDER BY margin DESC
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 5 ORDER BY margin_pct DESC NULLS LAST LIMIT 5
SELECT customer_id FROM orders WHERE status = 'returned' EXCEPT SELECT customer_id FROM events WHERE event_type = 'click' ORDER BY 1 LIMIT 100
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 50) AND country = 'US' ORDER BY name LIMIT 1000
SELECT strftime(ordered_at, '%Y-%m-%d') AS label, count(*) AS n FROM orders WHERE channel = 'partner' GROUP BY label ORDER BY label LIMIT 25
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-06-30' AND status NOT IN ('returned', 'cancelled', 'paid')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('DE', 'BR', 'US') GROUP BY ALL ORDER BY n DESC LIMIT 20
SELECT * FROM orders WHERE order_id = 885862
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 1660 ORDER BY ordered_at DESC LIMIT 25
SELECT * FROM customers WHERE customer_id BETWEEN 32316 AND 32329 ORDER BY customer_id
SUMMARIZE SELECT amount, quantity FROM orders LIMIT 10
SELECT g.d::DATE AS day, count(o.order_id) AS orders FROM generate_series(DATE '2025-03-01', DATE '2025-11-15', INTERVAL 1 DAY) AS g(d) LEFT JOIN orders o ON o.ordered_at::DATE = g.d::DATE GROUP BY 1 ORDER BY 1
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 77 DAY GROUP BY product_id ORDER BY units DESC LIMIT 5
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%x%' AND price BETWEEN 7 AND 446 ORDER BY price LIMIT 50
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-03-01' GROUP BY ALL HAVING sum(o.amount) > 500 ORDER BY recent DESC LIMIT 10
SELECT ntile(5) OVER (ORDER BY lifetime_value) AS tile, customer_id, lifetime_value FROM customers ORDER BY lifetime_value DESC LIMIT 1000
SELECT date_trunc('quarter', ordered_at) AS period, stddev_samp(quantity * unit_price) AS value FROM orders WHERE ordered_at >= DATE '2025-06-30' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('web', 'store') GROUP BY channel, status ORDER BY revenue DESC LIMIT 20
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('JP', 'GB') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 25
SELECT p.category, count(DISTINCT o.customer_id) AS buyers, round(avg(o.amount), 0) AS avg_amount FROM orders AS o INNER JOIN products AS p USING (product_id) WHERE o.ordered_at >= DATE '2025-09-01' GROUP BY p.category ORDER BY buyers DESC
SELECT customer_id, order_id, amount, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at DESC) AS rn FROM orders WHERE ordered_at >= DATE '2025-09-01' QUALIFY rn <= 4 ORDER BY customer_id, rn
SELECT payload->>'$.page' AS key, count(*) AS n FROM events WHERE event_type = 'click' GROUP BY 1 ORDER BY n DESC LIMIT 10
SELECT json_extract_string(payload, '$.device') AS v, count(*) AS n FROM events GROUP BY ALL ORDER BY n DESC LIMIT 10
SELECT date_trunc('month', signup_date) AS cohort, count(*) AS signups FROM customers WHERE signup_date BETWEEN DATE '2025-01-01' AND DATE '2025-09-01' GROUP BY cohort ORDER BY cohort
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 5 ORDER BY margin_pct DESC NULLS LAST LIMIT 25
SELECT customer_id FROM orders WHERE status = 'shipped' UNION SELECT customer_id FROM events WHERE event_type = 'checkout' ORDER BY 1 LIMIT 1000
SELECT o.order_id, o.amount, p.category FROM orders o JOIN products p ON p.product_id = o.product_id WHERE o.amount > (SELECT avg(amount) * 1 FROM orders) ORDER BY o.amount DESC LIMIT 25
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 100) AND country = 'JP' ORDER BY name LIMIT 25
WITH funnel AS (SELECT customer_id, max(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS viewed, max(CASE WHEN event_type = 'checkout' THEN 1 ELSE 0 END) AS converted FROM events WHERE event_ts >= TIMESTAMP '2025-01-01' GROUP BY customer_id) SELECT sum(viewed) AS viewed, sum(converted) AS converted, round(sum(converted) / nullif(sum(viewed), 0), 3) AS rate FROM funnel
SELECT strftime(ordered_at, '%Y-W%W') AS label, count(*) AS n FROM orders WHERE channel = 'web' GROUP BY label ORDER BY label LIMIT 5
SELECT p.name, sum(o.quantity) AS units, rank() OVER (ORDER BY sum(o.quantity) DESC) AS rnk FROM orders o JOIN products p ON o.product_id = p.product_id WHERE p.category = 'kitchen' GROUP BY p.name ORDER BY rnk LIMIT 1000
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-11-15' AND status NOT IN ('returned', 'paid', 'new')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('GB', 'JP', 'DE') GROUP BY ALL ORDER BY n DESC LIMIT 50
SELECT * FROM orders WHERE order_id = 361667
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 36476 ORDER BY ordered_at DESC LIMIT 10
SELECT * FROM customers WHERE customer_id BETWEEN 27834 AND 27898 ORDER BY customer_id
SUMMARIZE SELECT price, cost FROM products LIMIT 20
SELECT * FROM (SELECT channel, date_trunc('month', ordered_at) AS m, amount FROM orders) PIVOT (sum(amount) FOR channel IN ('store', 'web'))
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 34 DAY GROUP BY product_id ORDER BY units DESC LIMIT 50
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%product%' AND price BETWEEN 14 AND 159 ORDER BY price LIMIT 10
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-06-30' GROUP BY ALL HAVING sum(o.amount) > 500 ORDER BY recent DESC LIMIT 20
SELECT trim(both ' ' FROM name) AS name, regexp_matches(email, '[0-9]+') AS m FROM customers LIMIT 10
SELECT count(*) AS orders FROM orders WHERE status IN ('shipped', 'paid', 'cancelled')
SELECT date_trunc('week', ordered_at) AS period, sum(quantity * unit_price) AS value FROM orders WHERE ordered_at >= DATE '2025-03-01' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('web', 'partner') GROUP BY channel, status ORDER BY revenue DESC LIMIT 100
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('BR', 'GB', 'JP') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 50
SELECT customer_id, order_id, amount, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at DESC) AS rn FROM orders WHERE ordered_at >= DATE '2025-03-01' QUALIFY rn <= 5 ORDER BY customer_id, rn
SELECT payload->>'$.page' AS k, count(*) AS n FROM events WHERE event_type = 'purchase' GROUP BY 1 ORDER BY n DESC LIMIT 10
SELECT json_extract_string(payload, '$.page') AS v, count(*) AS n FROM events GROUP BY ALL ORDER BY n DESC LIMIT 20
SELECT segment, country, count(*) AS customers, avg(lifetime_value) AS ltv FROM customers WHERE is_active AND segment IN ('enterprise', 'consumer', 'smb') GROUP BY ROLLUP (segment, country) ORDER BY ALL
SELECT date_trunc('year', signup_date) AS cohort, count(*) AS signups FROM customers WHERE signup_date BETWEEN DATE '2025-02-15' AND DATE '2025-06-30' GROUP BY cohort ORDER BY cohort
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('books', 'kitchen') GROUP BY category ORDER BY margin DESC
SELECT customer_id FROM orders WHERE status = 'returned' UNION SELECT customer_id FROM events WHERE event_type = 'add_to_cart' ORDER BY 1 LIMIT 50
SELECT o.order_id, o.amount, p.category FROM orders o JOIN products p ON p.product_id = o.product_id WHERE o.amount > (SELECT avg(amount) * 3 FROM orders) ORDER BY o.amount DESC LIMIT 1000
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 50) AND country = 'GB' ORDER BY name LIMIT 100
WITH funnel AS (SELECT customer_id, max(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS viewed, max(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS converted FROM events WHERE event_ts >= TIMESTAMP '2025-01-01' GROUP BY customer_id) SELECT sum(viewed) AS viewed, sum(converted) AS converted, round(sum(converted) / nullif(sum(viewed), 0), 3) AS rate FROM funnel
SELECT ordered_at::DATE AS day, sum(amount) AS revenue, avg(sum(amount)) OVER (ORDER BY ordered_at::DATE ROWS BETWEEN 23 PRECEDING AND CURRENT ROW) AS moving_avg FROM orders GROUP BY 1 ORDER BY 1
SELECT strftime(ordered_at, '%Y-%m-%d') AS label, count(*) AS n FROM orders WHERE channel = 'store' GROUP BY label ORDER BY label LIMIT 1000
SELECT p.name, sum(o.quantity) AS units, rank() OVER (ORDER BY sum(o.quantity) DESC) AS rnk FROM orders o JOIN products p ON o.product_id = p.product_id WHERE p.category = 'toys' GROUP BY p.name ORDER BY rnk LIMIT 50
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-06-30' AND status NOT IN ('shipped')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('DE', 'FR') GROUP BY ALL ORDER BY n DESC LIMIT 10
SELECT * FROM orders WHERE order_id = 19618
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 26765 ORDER BY ordered_at DESC LIMIT 10
SELECT * FROM customers WHERE customer_id BETWEEN 6810 AND 6928 ORDER BY customer_id
SUMMARIZE SELECT amount, quantity FROM orders LIMIT 20
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 44 DAY GROUP BY product_id ORDER BY units DESC LIMIT 20
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%2%' AND price BETWEEN 38 AND 414 ORDER BY price LIMIT 20
SELECT customer_id, count(*) AS sessions FROM (SELECT customer_id, event_ts, event_ts - lag(event_ts) OVER (PARTITION BY customer_id ORDER BY event_ts) > INTERVAL 60 MINUTE AS new_session FROM events) WHERE new_session GROUP BY customer_id ORDER BY sessions DESC LIMIT 25
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-11-15' GROUP BY ALL HAVING sum(o.amount) > 500 ORDER BY recent DESC LIMIT 100
SELECT count(*) AS orders FROM orders WHERE status IN ('paid', 'new')
SELECT date_trunc('day', ordered_at) AS period, min(unit_price) AS value FROM orders WHERE ordered_at >= DATE '2025-02-15' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('partner', 'web') GROUP BY channel, status ORDER BY revenue DESC LIMIT 20
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('DE') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 25
SELECT p.category, count(DISTINCT o.customer_id) AS buyers, round(avg(o.amount), 2) AS avg_amount FROM orders AS o INNER JOIN products AS p USING (product_id) WHERE o.ordered_at >= DATE '2025-02-15' GROUP BY p.category ORDER BY buyers DESC
SELECT payload->>'$.page' AS attr, count(*) AS n FROM events WHERE event_type = 'add_to_cart' GROUP BY 1 ORDER BY n DESC LIMIT 5
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('toys', 'kitchen') GROUP BY category ORDER BY margin DESC
SELECT customer_id FROM orders WHERE status = 'cancelled' UNION SELECT customer_id FROM events WHERE event_type = 'purchase' ORDER BY 1 LIMIT 10
WITH funnel AS (SELECT customer_id, max(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS viewed, max(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS converted FROM events WHERE event_ts >= TIMESTAMP '2025-02-15' GROUP BY customer_id) SELECT sum(viewed) AS viewed, sum(converted) AS converted, round(sum(converted) / nullif(sum(viewed), 0), 3) AS rate FROM funnel
SELECT strftime(ordered_at, '%Y') AS label, count(*) AS n FROM orders WHERE channel = 'partner' GROUP BY label ORDER BY label LIMIT 20
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 10 ORDER BY orders DESC LIMIT 5
SELECT p.name, sum(o.quantity) AS units, rank() OVER (ORDER BY sum(o.quantity) DESC) AS rnk FROM orders o JOIN products p ON o.product_id = p.product_id WHERE p.category = 'sports' GROUP BY p.name ORDER BY rnk LIMIT 50
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-09-01' AND status NOT IN ('paid', 'new')
SELECT * FROM orders WHERE order_id = 690411
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 5636 ORDER BY ordered_at DESC LIMIT 5
SELECT * FROM customers WHERE customer_id BETWEEN 16500 AND 16548 ORDER BY customer_id
SUMMARIZE SELECT amount, quantity FROM orders LIMIT 1000
SELECT * FROM (SELECT channel, date_trunc('month', ordered_at) AS m, amount FROM orders) PIVOT (sum(amount) FOR channel IN ('store', 'partner'))
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 66 DAY GROUP BY product_id ORDER BY units DESC LIMIT 25
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%2%' AND price BETWEEN 22 AND 136 ORDER BY price LIMIT 20
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-11-15' GROUP BY ALL HAVING sum(o.amount) > 500 ORDER BY recent DESC LIMIT 10
SELECT date_trunc('month', ordered_at) AS period, avg(discount) AS value FROM orders WHERE ordered_at >= DATE '2025-03-01' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('partner', 'app') GROUP BY channel, status ORDER BY revenue DESC LIMIT 5
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('JP', 'BR', 'US') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 25
SELECT payload->>'$.device' AS key, count(*) AS n FROM events WHERE event_type = 'purchase' GROUP BY 1 ORDER BY n DESC LIMIT 100
SELECT json_extract_string(payload, '$.page') AS v, count(*) AS n FROM events GROUP BY ALL ORDER BY n DESC LIMIT 10
SELECT segment, country, count(*) AS customers, avg(lifetime_value) AS ltv FROM customers WHERE is_active AND segment IN ('smb', 'consumer', 'enterprise') GROUP BY ROLLUP (segment, country) ORDER BY ALL
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('sports', 'toys', 'books') GROUP BY category ORDER BY margin DESC
SELECT customer_id FROM orders WHERE status = 'returned' INTERSECT SELECT customer_id FROM events WHERE event_type = 'add_to_cart' ORDER BY 1 LIMIT 100
SELECT strftime(ordered_at, '%Y-%m-%d') AS label, count(*) AS n FROM orders WHERE channel = 'store' GROUP BY label ORDER BY label LIMIT 20
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 3 ORDER BY orders DESC LIMIT 1000
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-06-30' AND status NOT IN ('returned', 'shipped', 'new')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('DE', 'FR') GROUP BY ALL ORDER BY n DESC LIMIT 100
SELECT * FROM orders WHERE order_id = 436934
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 2382 ORDER BY ordered_at DESC LIMIT 1000
SELECT * FROM customers WHERE customer_id BETWEEN 4223 AND 4501 ORDER BY customer_id
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 42 DAY GROUP BY product_id ORDER BY units DESC LIMIT 5
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%1%' AND price BETWEEN 13 AND 363 ORDER BY price LIMIT 20
SELECT count(*) AS orders FROM orders WHERE status IN ('returned', 'new', 'shipped')
SELECT date_trunc('year', ordered_at) AS period, avg(quantity * unit_price) AS value FROM orders WHERE ordered_at >= DATE '2025-01-01' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('app') GROUP BY channel, status ORDER BY revenue DESC LIMIT 25
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('FR', 'US') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 10
SELECT p.category, count(DISTINCT o.customer_id) AS buyers, round(avg(o.amount), 2) AS avg_amount FROM orders AS o INNER JOIN products AS p USING (product_id) WHERE o.ordered_at >= DATE '2025-11-15' GROUP BY p.category ORDER BY buyers DESC
SELECT event_type, count(*) AS events, count(DISTINCT customer_id) AS people FROM events WHERE event_ts >= TIMESTAMP '2025-02-15 00:00:00' GROUP BY event_type ORDER BY events DESC
SELECT payload->>'$.referrer' AS attr, count(*) AS n FROM events WHERE event_type = 'purchase' GROUP BY 1 ORDER BY n DESC LIMIT 20
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('books') GROUP BY category ORDER BY margin DESC
SELECT customer_id FROM orders WHERE status = 'cancelled' INTERSECT SELECT customer_id FROM events WHERE event_type = 'add_to_cart' ORDER BY 1 LIMIT 1000
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 1000) AND country = 'GB' ORDER BY name LIMIT 10
SELECT strftime(ordered_at, '%Y') AS label, count(*) AS n FROM orders WHERE channel = 'app' GROUP BY label ORDER BY label LIMIT 50
SELECT p.name, sum(o.quantity) AS units, rank() OVER (ORDER BY sum(o.quantity) DESC) AS rnk FROM orders o JOIN products p ON o.product_id = p.product_id WHERE p.category = 'sports' GROUP BY p.name ORDER BY rnk LIMIT 25
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('JP', 'BR') GROUP BY ALL ORDER BY n DESC LIMIT 1000
SELECT * FROM orders WHERE order_id = 837342
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 42945 ORDER BY ordered_at DESC LIMIT 20
SELECT * FROM customers WHERE customer_id BETWEEN 7696 AND 7877 ORDER BY customer_id
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 82 DAY GROUP BY product_id ORDER BY units DESC LIMIT 50
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%2%' AND price BETWEEN 4 AND 361 ORDER BY price LIMIT 10
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-02-15' GROUP BY ALL HAVING sum(o.amount) > 500 ORDER BY recent DESC LIMIT 20
SELECT count(*) AS orders FROM orders WHERE status IN ('paid', 'new', 'returned')
SELECT date_trunc('day', ordered_at) AS period, avg(quantity) AS value FROM orders WHERE ordered_at >= DATE '2025-01-01' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('web', 'partner', 'app') GROUP BY channel, status ORDER BY revenue DESC LIMIT 50
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('GB') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 25
SELECT customer_id, order_id, amount, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at DESC) AS rn FROM orders WHERE ordered_at >= DATE '2025-02-15' QUALIFY rn <= 1 ORDER BY customer_id, rn
SELECT payload->>'$.campaign' AS attr, count(*) AS n FROM events WHERE event_type = 'purchase' GROUP BY 1 ORDER BY n DESC LIMIT 5
SELECT json_extract_string(payload, '$.page') AS v, count(*) AS n FROM events GROUP BY ALL ORDER BY n DESC LIMIT 50
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('toys', 'kitchen', 'books') GROUP BY category ORDER BY margin DESC
SELECT customer_id FROM orders WHERE status = 'cancelled' INTERSECT SELECT customer_id FROM events WHERE event_type = 'click' ORDER BY 1 LIMIT 25
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 500) AND country = 'GB' ORDER BY name LIMIT 5
WITH funnel AS (SELECT customer_id, max(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS viewed, max(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS converted FROM events WHERE event_ts >= TIMESTAMP '2025-11-15' GROUP BY customer_id) SELECT sum(viewed) AS viewed, sum(converted) AS converted, round(sum(converted) / nullif(sum(viewed), 0), 3) AS rate FROM funnel
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 6 ORDER BY orders DESC LIMIT 20
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-02-15' AND status NOT IN ('new')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('US') GROUP BY ALL ORDER BY n DESC LIMIT 20
SELECT * FROM orders WHERE order_id = 669901
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 460 ORDER BY ordered_at DESC LIMIT 10
SELECT * FROM customers WHERE customer_id BETWEEN 27763 AND 27852 ORDER BY customer_id
SELECT * FROM (SELECT channel, date_trunc('month', ordered_at) AS m, amount FROM orders) PIVOT (sum(amount) FOR channel IN ('partner', 'store'))
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 5 DAY GROUP BY product_id ORDER BY units DESC LIMIT 50
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%2%' AND price BETWEEN 11 AND 446 ORDER BY price LIMIT 5
SELECT customer_id, count(*) AS sessions FROM (SELECT customer_id, event_ts, event_ts - lag(event_ts) OVER (PARTITION BY customer_id ORDER BY event_ts) > INTERVAL 15 MINUTE AS new_session FROM events) WHERE new_session GROUP BY customer_id ORDER BY sessions DESC LIMIT 25
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-11-15' GROUP BY ALL HAVING sum(o.amount) > 100 ORDER BY recent DESC LIMIT 50
SELECT date_trunc('quarter', ordered_at) AS period, max(amount) AS value FROM orders WHERE ordered_at >= DATE '2025-11-15' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('store', 'web') GROUP BY channel, status ORDER BY revenue DESC LIMIT 1000
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('FR') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 5
SELECT customer_id, order_id, amount, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at DESC) AS rn FROM orders WHERE ordered_at >= DATE '2025-02-15' QUALIFY rn <= 4 ORDER BY customer_id, rn
SELECT payload->>'$.referrer' AS key, count(*) AS n FROM events WHERE event_type = 'checkout' GROUP BY 1 ORDER BY n DESC LIMIT 100
SELECT date_trunc('month', signup_date) AS cohort, count(*) AS signups FROM customers WHERE signup_date BETWEEN DATE '2025-03-01' AND DATE '2025-09-01' GROUP BY cohort ORDER BY cohort
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('garden', 'sports') GROUP BY category ORDER BY margin DESC
SELECT customer_id FROM orders WHERE status = 'new' INTERSECT SELECT customer_id FROM events WHERE event_type = 'purchase' ORDER BY 1 LIMIT 5
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 100) AND country = 'BR' ORDER BY name LIMIT 25
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 9 ORDER BY orders DESC LIMIT 1000
SELECT p.name, sum(o.quantity) AS units, rank() OVER (ORDER BY sum(o.quantity) DESC) AS rnk FROM orders o JOIN products p ON o.product_id = p.product_id WHERE p.category = 'toys' GROUP BY p.name ORDER BY rnk LIMIT 5
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-11-15' AND status NOT IN ('shipped', 'paid', 'cancelled')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('GB', 'DE', 'JP') GROUP BY ALL ORDER BY n DESC LIMIT 20
SELECT * FROM orders WHERE order_id = 383565
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 41044 ORDER BY ordered_at DESC LIMIT 100
SELECT * FROM customers WHERE customer_id BETWEEN 23858 AND 24137 ORDER BY customer_id
SUMMARIZE SELECT lifetime_value FROM customers LIMIT 100
SELECT * FROM (SELECT channel, date_trunc('month', ordered_at) AS m, amount FROM orders) PIVOT (sum(amount) FOR channel IN ('web', 'app', 'partner'))
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 53 DAY GROUP BY product_id ORDER BY units DESC LIMIT 50
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%2%' AND price BETWEEN 22 AND 438 ORDER BY price LIMIT 25
SELECT count(*) AS orders FROM orders WHERE status IN ('new')
SELECT date_trunc('quarter', ordered_at) AS period, stddev_samp(amount) AS value FROM orders WHERE ordered_at >= DATE '2025-11-15' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('store') GROUP BY channel, status ORDER BY revenue DESC LIMIT 25
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('BR') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 50
SELECT payload->>'$.device' AS attr, count(*) AS n FROM events WHERE event_type = 'purchase' GROUP BY 1 ORDER BY n DESC LIMIT 1000
SELECT customer_id FROM orders WHERE status = 'new' UNION SELECT customer_id FROM events WHERE event_type = 'checkout' ORDER BY 1 LIMIT 10
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 100) AND country = 'US' ORDER BY name LIMIT 10
WITH funnel AS (SELECT customer_id, max(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS viewed, max(CASE WHEN event_type = 'checkout' THEN 1 ELSE 0 END) AS converted FROM events WHERE event_ts >= TIMESTAMP '2025-11-15' GROUP BY customer_id) SELECT sum(viewed) AS viewed, sum(converted) AS converted, round(sum(converted) / nullif(sum(viewed), 0), 3) AS rate FROM funnel
SELECT ordered_at::DATE AS day, sum(amount) AS revenue, avg(sum(amount)) OVER (ORDER BY ordered_at::DATE ROWS BETWEEN 26 PRECEDING AND CURRENT ROW) AS moving_avg FROM orders GROUP BY 1 ORDER BY 1
SELECT strftime(ordered_at, '%Y-%m-%d') AS label, count(*) AS n FROM orders WHERE channel = 'store' GROUP BY label ORDER BY label LIMIT 50
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 6 ORDER BY orders DESC LIMIT 5
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-09-01' AND status NOT IN ('shipped', 'paid')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('BR', 'JP') GROUP BY ALL ORDER BY n DESC LIMIT 25
SELECT * FROM orders WHERE order_id = 12732
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 45352 ORDER BY ordered_at DESC LIMIT 5
SELECT * FROM customers WHERE customer_id BETWEEN 26641 AND 26930 ORDER BY customer_id
SUMMARIZE SELECT lifetime_value FROM customers LIMIT 50
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 9 DAY GROUP BY product_id ORDER BY units DESC LIMIT 5
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%x%' AND price BETWEEN 29 AND 65 ORDER BY price LIMIT 100
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-09-01' GROUP BY ALL HAVING sum(o.amount) > 1000 ORDER BY recent DESC LIMIT 5
SELECT date_trunc('day', ordered_at) AS period, stddev_samp(amount * (1 - discount)) AS value FROM orders WHERE ordered_at >= DATE '2025-01-01' GROUP BY 1 ORDER BY 1
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('FR') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 25
SELECT payload->>'$.referrer' AS attr, count(*) AS n FROM events WHERE event_type = 'click' GROUP BY 1 ORDER BY n DESC LIMIT 1000
SELECT json_extract_string(payload, '$.campaign') AS v, count(*) AS n FROM events GROUP BY ALL ORDER BY n DESC LIMIT 50
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('books', 'sports', 'garden') GROUP BY category ORDER BY margin DESC
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 20 ORDER BY margin_pct DESC NULLS LAST LIMIT 100
SELECT customer_id FROM orders WHERE status = 'shipped' UNION SELECT customer_id FROM events WHERE event_type = 'add_to_cart' ORDER BY 1 LIMIT 25
SELECT o.order_id, o.amount, p.category FROM orders o JOIN products p ON p.product_id = o.product_id WHERE o.amount > (SELECT avg(amount) * 2 FROM orders) ORDER BY o.amount DESC LIMIT 10
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 500) AND country = 'GB' ORDER BY name LIMIT 100
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 3 ORDER BY orders DESC LIMIT 100
SELECT p.name, sum(o.quantity) AS units, rank() OVER (ORDER BY sum(o.quantity) DESC) AS rnk FROM orders o JOIN products p ON o.product_id = p.product_id WHERE p.category = 'sports' GROUP BY p.name ORDER BY rnk LIMIT 10
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-06-30' AND status NOT IN ('new', 'paid')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('JP', 'DE') GROUP BY ALL ORDER BY n DESC LIMIT 10
SELECT * FROM orders WHERE order_id = 60777
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 3792 ORDER BY ordered_at DESC LIMIT 5
SELECT * FROM customers WHERE customer_id BETWEEN 15414 AND 15634 ORDER BY customer_id
SUMMARIZE SELECT status, channel FROM orders LIMIT 20
SELECT * FROM (SELECT channel, date_trunc('month', ordered_at) AS m, amount FROM orders) PIVOT (sum(amount) FOR channel IN ('app', 'partner'))
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%product%' AND price BETWEEN 2 AND 417 ORDER BY price LIMIT 25
SELECT customer_id, count(*) AS sessions FROM (SELECT customer_id, event_ts, event_ts - lag(event_ts) OVER (PARTITION BY customer_id ORDER BY event_ts) > INTERVAL 15 MINUTE AS new_session FROM events) WHERE new_session GROUP BY customer_id ORDER BY sessions DESC LIMIT 100
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-01-01' GROUP BY ALL HAVING sum(o.amount) > 1000 ORDER BY recent DESC LIMIT 50
SELECT date_trunc('year', ordered_at) AS period, min(amount * (1 - discount)) AS value FROM orders WHERE ordered_at >= DATE '2025-03-01' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('app', 'web') GROUP BY channel, status ORDER BY revenue DESC LIMIT 50
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('JP', 'DE') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 5
WITH monthly AS (SELECT date_trunc('month', ordered_at) AS m, sum(amount) AS revenue FROM orders WHERE currency = 'USD' GROUP BY 1) SELECT m, revenue, revenue - lag(revenue) OVER (ORDER BY m) AS change FROM monthly ORDER BY m LIMIT 10
SELECT customer_id, order_id, amount, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at DESC) AS rn FROM orders WHERE ordered_at >= DATE '2025-02-15' QUALIFY rn <= 5 ORDER BY customer_id, rn
SELECT payload->>'$.page' AS key, count(*) AS n FROM events WHERE event_type = 'purchase' GROUP BY 1 ORDER BY n DESC LIMIT 20
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('sports', 'kitchen') GROUP BY category ORDER BY margin DESC
SELECT customer_id FROM orders WHERE status = 'cancelled' EXCEPT SELECT customer_id FROM events WHERE event_type = 'purchase' ORDER BY 1 LIMIT 25
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 1000) AND country = 'DE' ORDER BY name LIMIT 50
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 2 ORDER BY orders DESC LIMIT 100
SELECT p.name, sum(o.quantity) AS units, rank() OVER (ORDER BY sum(o.quantity) DESC) AS rnk FROM orders o JOIN products p ON o.product_id = p.product_id WHERE p.category = 'toys' GROUP BY p.name ORDER BY rnk LIMIT 100
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-06-30' AND status NOT IN ('paid')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('US', 'DE', 'GB') GROUP BY ALL ORDER BY n DESC LIMIT 50
SELECT * FROM orders WHERE order_id = 277384
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 12620 ORDER BY ordered_at DESC LIMIT 1000
SELECT * FROM customers WHERE customer_id BETWEEN 6291 AND 6767 ORDER BY customer_id
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 24 DAY GROUP BY product_id ORDER BY units DESC LIMIT 25
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%1%' AND price BETWEEN 22 AND 183 ORDER BY price LIMIT 100
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-02-15' GROUP BY ALL HAVING sum(o.amount) > 500 ORDER BY recent DESC LIMIT 10
SELECT trim(both ' ' FROM name) AS name, regexp_matches(email, '^customer') AS m FROM customers LIMIT 5
SELECT count(*) AS orders FROM orders WHERE status IN ('new', 'paid', 'shipped')
SELECT date_trunc('year', ordered_at) AS period, sum(amount * (1 - discount)) AS value FROM orders WHERE ordered_at >= DATE '2025-09-01' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('partner', 'store', 'web') GROUP BY channel, status ORDER BY revenue DESC LIMIT 1000
SELECT customer_id, order_id, amount, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at DESC) AS rn FROM orders WHERE ordered_at >= DATE '2025-01-01' QUALIFY rn <= 5 ORDER BY customer_id, rn
SELECT date_trunc('year', signup_date) AS cohort, count(*) AS signups FROM customers WHERE signup_date BETWEEN DATE '2025-03-01' AND DATE '2025-09-01' GROUP BY cohort ORDER BY cohort
SELECT customer_id FROM orders WHERE status = 'cancelled' INTERSECT SELECT customer_id FROM events WHERE event_type = 'purchase' ORDER BY 1 LIMIT 20
SELECT o.order_id, o.amount, p.category FROM orders o JOIN products p ON p.product_id = o.product_id WHERE o.amount > (SELECT avg(amount) * 3 FROM orders) ORDER BY o.amount DESC LIMIT 20
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 1000) AND country = 'FR' ORDER BY name LIMIT 100
WITH funnel AS (SELECT customer_id, max(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS viewed, max(CASE WHEN event_type = 'checkout' THEN 1 ELSE 0 END) AS converted FROM events WHERE event_ts >= TIMESTAMP '2025-06-30' GROUP BY customer_id) SELECT sum(viewed) AS viewed, sum(converted) AS converted, round(sum(converted) / nullif(sum(viewed), 0), 3) AS rate FROM funnel
SELECT ordered_at::DATE AS day, sum(amount) AS revenue, avg(sum(amount)) OVER (ORDER BY ordered_at::DATE ROWS BETWEEN 13 PRECEDING AND CURRENT ROW) AS moving_avg FROM orders GROUP BY 1 ORDER BY 1
SELECT strftime(ordered_at, '%Y') AS label, count(*) AS n FROM orders WHERE channel = 'app' GROUP BY label ORDER BY label LIMIT 25
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-11-15' AND status NOT IN ('shipped', 'new')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('DE', 'BR') GROUP BY ALL ORDER BY n DESC LIMIT 5
SELECT * FROM orders WHERE order_id = 890807
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 13138 ORDER BY ordered_at DESC LIMIT 20
SELECT * FROM customers WHERE customer_id BETWEEN 15097 AND 15466 ORDER BY customer_id
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 41 DAY GROUP BY product_id ORDER BY units DESC LIMIT 25
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%product%' AND price BETWEEN 25 AND 179 ORDER BY price LIMIT 25
SELECT customer_id, count(*) AS sessions FROM (SELECT customer_id, event_ts, event_ts - lag(event_ts) OVER (PARTITION BY customer_id ORDER BY event_ts) > INTERVAL 60 MINUTE AS new_session FROM events) WHERE new_session GROUP BY customer_id ORDER BY sessions DESC LIMIT 20
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-02-15' GROUP BY ALL HAVING sum(o.amount) > 100 ORDER BY recent DESC LIMIT 1000
SELECT date_trunc('year', ordered_at) AS period, stddev_samp(unit_price) AS value FROM orders WHERE ordered_at >= DATE '2025-11-15' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('partner', 'store') GROUP BY channel, status ORDER BY revenue DESC LIMIT 25
SELECT payload->>'$.device' AS k, count(*) AS n FROM events WHERE event_type = 'click' GROUP BY 1 ORDER BY n DESC LIMIT 25
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('sports', 'books', 'kitchen') GROUP BY category ORDER BY margin DESC
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 50 ORDER BY margin_pct DESC NULLS LAST LIMIT 10
SELECT customer_id FROM orders WHERE status = 'returned' EXCEPT SELECT customer_id FROM events WHERE event_type = 'page_view' ORDER BY 1 LIMIT 100
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 50) AND country = 'BR' ORDER BY name LIMIT 100
SELECT strftime(ordered_at, '%Y-%m') AS label, count(*) AS n FROM orders WHERE channel = 'store' GROUP BY label ORDER BY label LIMIT 25
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 4 ORDER BY orders DESC LIMIT 50
SELECT p.name, sum(o.quantity) AS units, rank() OVER (ORDER BY sum(o.quantity) DESC) AS rnk FROM orders o JOIN products p ON o.product_id = p.product_id WHERE p.category = 'sports' GROUP BY p.name ORDER BY rnk LIMIT 100
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-09-01' AND status NOT IN ('paid', 'shipped')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('GB', 'JP', 'DE') GROUP BY ALL ORDER BY n DESC LIMIT 25
SELECT * FROM orders WHERE order_id = 806617
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 5437 ORDER BY ordered_at DESC LIMIT 25
SELECT * FROM customers WHERE customer_id BETWEEN 5897 AND 6252 ORDER BY customer_id
SELECT * FROM (SELECT channel, date_trunc('month', ordered_at) AS m, amount FROM orders) PIVOT (sum(amount) FOR channel IN ('app', 'store'))
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 46 DAY GROUP BY product_id ORDER BY units DESC LIMIT 1000
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%2%' AND price BETWEEN 2 AND 416 ORDER BY price LIMIT 25
SELECT ntile(4) OVER (ORDER BY lifetime_value) AS tile, customer_id, lifetime_value FROM customers ORDER BY lifetime_value DESC LIMIT 5
SELECT count(*) AS orders FROM orders WHERE status IN ('paid', 'shipped')
SELECT date_trunc('month', ordered_at) AS period, min(unit_price) AS value FROM orders WHERE ordered_at >= DATE '2025-06-30' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('partner') GROUP BY channel, status ORDER BY revenue DESC LIMIT 25
SELECT payload->>'$.campaign' AS key, count(*) AS n FROM events WHERE event_type = 'page_view' GROUP BY 1 ORDER BY n DESC LIMIT 10
SELECT date_trunc('quarter', signup_date) AS cohort, count(*) AS signups FROM customers WHERE signup_date BETWEEN DATE '2025-03-01' AND DATE '2025-06-30' GROUP BY cohort ORDER BY cohort
SELECT customer_id FROM orders WHERE status = 'returned' EXCEPT SELECT customer_id FROM events WHERE event_type = 'click' ORDER BY 1 LIMIT 1000
SELECT o.order_id, o.amount, p.category FROM orders o JOIN products p ON p.product_id = o.product_id WHERE o.amount > (SELECT avg(amount) * 1 FROM orders) ORDER BY o.amount DESC LIMIT 50
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 50) AND country = 'FR' ORDER BY name LIMIT 1000
SELECT strftime(ordered_at, '%Y') AS label, count(*) AS n FROM orders WHERE channel = 'store' GROUP BY label ORDER BY label LIMIT 100
SELECT p.name, sum(o.quantity) AS units, rank() OVER (ORDER BY sum(o.quantity) DESC) AS rnk FROM orders o JOIN products p ON o.product_id = p.product_id WHERE p.category = 'garden' GROUP BY p.name ORDER BY rnk LIMIT 5
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-02-15' AND status NOT IN ('new', 'paid')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('GB') GROUP BY ALL ORDER BY n DESC LIMIT 25
SELECT * FROM orders WHERE order_id = 262334
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 16491 ORDER BY ordered_at DESC LIMIT 1000
SELECT * FROM customers WHERE customer_id BETWEEN 12884 AND 13133 ORDER BY customer_id
SELECT * FROM (SELECT channel, date_trunc('month', ordered_at) AS m, amount FROM orders) PIVOT (sum(amount) FOR channel IN ('partner', 'web'))
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 14 DAY GROUP BY product_id ORDER BY units DESC LIMIT 25
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%2%' AND price BETWEEN 28 AND 308 ORDER BY price LIMIT 20
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-01-01' GROUP BY ALL HAVING sum(o.amount) > 500 ORDER BY recent DESC LIMIT 1000
SELECT date_trunc('day', ordered_at) AS period, median(amount) AS value FROM orders WHERE ordered_at >= DATE '2025-03-01' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('web', 'store', 'partner') GROUP BY channel, status ORDER BY revenue DESC LIMIT 50
SELECT payload->>'$.page' AS attr, count(*) AS n FROM events WHERE event_type = 'purchase' GROUP BY 1 ORDER BY n DESC LIMIT 10
SELECT date_trunc('month', signup_date) AS cohort, count(*) AS signups FROM customers WHERE signup_date BETWEEN DATE '2025-02-15' AND DATE '2025-11-15' GROUP BY cohort ORDER BY cohort
SELECT customer_id FROM orders WHERE status = 'paid' UNION SELECT customer_id FROM events WHERE event_type = 'checkout' ORDER BY 1 LIMIT 50
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 1000) AND country = 'GB' ORDER BY name LIMIT 20
SELECT strftime(ordered_at, '%Y-%m-%d') AS label, count(*) AS n FROM orders WHERE channel = 'partner' GROUP BY label ORDER BY label LIMIT 20
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 9 ORDER BY orders DESC LIMIT 50
SELECT CASE WHEN amount < 10 THEN 'small' WHEN amount < 500 THEN 'medium' ELSE 'large' END AS bucket, count(*) AS n, sum(amount) AS total FROM orders GROUP BY 1 ORDER BY 1
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-02-15' AND status NOT IN ('returned', 'shipped')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('JP', 'US', 'GB') GROUP BY ALL ORDER BY n DESC LIMIT 50
SELECT * FROM orders WHERE order_id = 693617
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 11912 ORDER BY ordered_at DESC LIMIT 100
SELECT * FROM customers WHERE customer_id BETWEEN 32622 AND 32954 ORDER BY customer_id
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 13 DAY GROUP BY product_id ORDER BY units DESC LIMIT 1000
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%x%' AND price BETWEEN 2 AND 181 ORDER BY price LIMIT 10
SELECT customer_id, count(*) AS sessions FROM (SELECT customer_id, event_ts, event_ts - lag(event_ts) OVER (PARTITION BY customer_id ORDER BY event_ts) > INTERVAL 60 MINUTE AS new_session FROM events) WHERE new_session GROUP BY customer_id ORDER BY sessions DESC LIMIT 1000
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-03-01' GROUP BY ALL HAVING sum(o.amount) > 100 ORDER BY recent DESC LIMIT 100
SELECT date_trunc('month', ordered_at) AS period, sum(quantity) AS value FROM orders WHERE ordered_at >= DATE '2025-09-01' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('app', 'partner') GROUP BY channel, status ORDER BY revenue DESC LIMIT 5
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('JP') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 5
SELECT payload->>'$.page' AS k, count(*) AS n FROM events WHERE event_type = 'checkout' GROUP BY 1 ORDER BY n DESC LIMIT 25
SELECT date_trunc('year', signup_date) AS cohort, count(*) AS signups FROM customers WHERE signup_date BETWEEN DATE '2025-02-15' AND DATE '2025-11-15' GROUP BY cohort ORDER BY cohort
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('kitchen', 'garden') GROUP BY category ORDER BY margin DESC
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 20 ORDER BY margin_pct DESC NULLS LAST LIMIT 20
SELECT customer_id FROM orders WHERE status = 'new' INTERSECT SELECT customer_id FROM events WHERE event_type = 'page_view' ORDER BY 1 LIMIT 20
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 100) AND country = 'FR' ORDER BY name LIMIT 25
WITH funnel AS (SELECT customer_id, max(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS viewed, max(CASE WHEN event_type = 'click' THEN 1 ELSE 0 END) AS converted FROM events WHERE event_ts >= TIMESTAMP '2025-09-01' GROUP BY customer_id) SELECT sum(viewed) AS viewed, sum(converted) AS converted, round(sum(converted) / nullif(sum(viewed), 0), 3) AS rate FROM funnel
SELECT strftime(ordered_at, '%Y-W%W') AS label, count(*) AS n FROM orders WHERE channel = 'web' GROUP BY label ORDER BY label LIMIT 100
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 7 ORDER BY orders DESC LIMIT 100
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-03-01' AND status NOT IN ('paid')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('US') GROUP BY ALL ORDER BY n DESC LIMIT 25
SELECT * FROM orders WHERE order_id = 816546
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 6523 ORDER BY ordered_at DESC LIMIT 50
SELECT * FROM customers WHERE customer_id BETWEEN 18588 AND 18912 ORDER BY customer_id
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 35 DAY GROUP BY product_id ORDER BY units DESC LIMIT 50
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%2%' AND price BETWEEN 17 AND 184 ORDER BY price LIMIT 50
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-03-01' GROUP BY ALL HAVING sum(o.amount) > 1000 ORDER BY recent DESC LIMIT 10
SELECT ntile(4) OVER (ORDER BY lifetime_value) AS tile, customer_id, lifetime_value FROM customers ORDER BY lifetime_value DESC LIMIT 20
SELECT date_trunc('year', ordered_at) AS period, avg(quantity) AS value FROM orders WHERE ordered_at >= DATE '2025-11-15' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('app') GROUP BY channel, status ORDER BY revenue DESC LIMIT 1000
SELECT payload->>'$.device' AS key, count(*) AS n FROM events WHERE event_type = 'page_view' GROUP BY 1 ORDER BY n DESC LIMIT 50
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('books', 'garden') GROUP BY category ORDER BY margin DESC
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 5 ORDER BY margin_pct DESC NULLS LAST LIMIT 1000
SELECT customer_id FROM orders WHERE status = 'returned' INTERSECT SELECT customer_id FROM events WHERE event_type = 'purchase' ORDER BY 1 LIMIT 25
SELECT o.order_id, o.amount, p.category FROM orders o JOIN products p ON p.product_id = o.product_id WHERE o.amount > (SELECT avg(amount) * 3 FROM orders) ORDER BY o.amount DESC LIMIT 100
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 100) AND country = 'JP' ORDER BY name LIMIT 10
SELECT strftime(ordered_at, '%Y-%m-%d') AS label, count(*) AS n FROM orders WHERE channel = 'partner' GROUP BY label ORDER BY label LIMIT 1000
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 4 ORDER BY orders DESC LIMIT 20
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-09-01' AND status NOT IN ('cancelled')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('GB') GROUP BY ALL ORDER BY n DESC LIMIT 1000
SELECT * FROM orders WHERE order_id = 200218
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 22946 ORDER BY ordered_at DESC LIMIT 10
SELECT * FROM customers WHERE customer_id BETWEEN 25315 AND 25421 ORDER BY customer_id
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 24 DAY GROUP BY product_id ORDER BY units DESC LIMIT 100
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%2%' AND price BETWEEN 9 AND 129 ORDER BY price LIMIT 10
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-03-01' GROUP BY ALL HAVING sum(o.amount) > 500 ORDER BY recent DESC LIMIT 25
SELECT trim(both ' ' FROM name) AS name, regexp_matches(email, '[0-9]+') AS m FROM customers LIMIT 25
SELECT count(*) AS orders FROM orders WHERE status IN ('paid', 'new', 'shipped')
SELECT date_trunc('month', ordered_at) AS period, min(discount) AS value FROM orders WHERE ordered_at >= DATE '2025-01-01' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('app', 'store') GROUP BY channel, status ORDER BY revenue DESC LIMIT 20
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('GB', 'BR') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 5
SELECT customer_id, order_id, amount, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at DESC) AS rn FROM orders WHERE ordered_at >= DATE '2025-02-15' QUALIFY rn <= 2 ORDER BY customer_id, rn
SELECT payload->>'$.device' AS attr, count(*) AS n FROM events WHERE event_type = 'checkout' GROUP BY 1 ORDER BY n DESC LIMIT 1000
SELECT customer_id FROM orders WHERE status = 'cancelled' EXCEPT SELECT customer_id FROM events WHERE event_type = 'add_to_cart' ORDER BY 1 LIMIT 5
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 50) AND country = 'US' ORDER BY name LIMIT 25
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 6 ORDER BY orders DESC LIMIT 1000
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-06-30' AND status NOT IN ('new', 'returned')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('US', 'JP', 'FR') GROUP BY ALL ORDER BY n DESC LIMIT 25
SELECT * FROM orders WHERE order_id = 279636
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 11891 ORDER BY ordered_at DESC LIMIT 25
SELECT * FROM customers WHERE customer_id BETWEEN 22509 AND 22580 ORDER BY customer_id
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 78 DAY GROUP BY product_id ORDER BY units DESC LIMIT 5
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%1%' AND price BETWEEN 39 AND 426 ORDER BY price LIMIT 50
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-01-01' GROUP BY ALL HAVING sum(o.amount) > 500 ORDER BY recent DESC LIMIT 20
SELECT date_trunc('year', ordered_at) AS period, avg(discount) AS value FROM orders WHERE ordered_at >= DATE '2025-01-01' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('app', 'partner', 'web') GROUP BY channel, status ORDER BY revenue DESC LIMIT 20
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('JP', 'GB') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 100
SELECT payload->>'$.campaign' AS attr, count(*) AS n FROM events WHERE event_type = 'checkout' GROUP BY 1 ORDER BY n DESC LIMIT 50
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('sports', 'toys', 'garden') GROUP BY category ORDER BY margin DESC
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 10 ORDER BY margin_pct DESC NULLS LAST LIMIT 20
SELECT customer_id FROM orders WHERE status = 'new' INTERSECT SELECT customer_id FROM events WHERE event_type = 'click' ORDER BY 1 LIMIT 100
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 500) AND country = 'JP' ORDER BY name LIMIT 1000
WITH funnel AS (SELECT customer_id, max(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS viewed, max(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS converted FROM events WHERE event_ts >= TIMESTAMP '2025-02-15' GROUP BY customer_id) SELECT sum(viewed) AS viewed, sum(converted) AS converted, round(sum(converted) / nullif(sum(viewed), 0), 3) AS rate FROM funnel
SELECT strftime(ordered_at, '%Y-%m') AS label, count(*) AS n FROM orders WHERE channel = 'app' GROUP BY label ORDER BY label LIMIT 20
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 10 ORDER BY orders DESC LIMIT 20
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-01-01' AND status NOT IN ('new', 'returned', 'cancelled')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('GB', 'DE') GROUP BY ALL ORDER BY n DESC LIMIT 1000
SELECT * FROM orders WHERE order_id = 905584
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 1214 ORDER BY ordered_at DESC LIMIT 20
SELECT * FROM customers WHERE customer_id BETWEEN 8496 AND 8659 ORDER BY customer_id
SELECT * FROM (SELECT channel, date_trunc('month', ordered_at) AS m, amount FROM orders) PIVOT (sum(amount) FOR channel IN ('app', 'web', 'store'))
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 27 DAY GROUP BY product_id ORDER BY units DESC LIMIT 5
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%2%' AND price BETWEEN 30 AND 399 ORDER BY price LIMIT 20
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-09-01' GROUP BY ALL HAVING sum(o.amount) > 100 ORDER BY recent DESC LIMIT 10
SELECT count(*) AS orders FROM orders WHERE status IN ('shipped', 'cancelled', 'paid')
SELECT date_trunc('month', ordered_at) AS period, min(amount * (1 - discount)) AS value FROM orders WHERE ordered_at >= DATE '2025-06-30' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('app', 'web') GROUP BY channel, status ORDER BY revenue DESC LIMIT 100
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('FR') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 100
SELECT payload->>'$.device' AS k, count(*) AS n FROM events WHERE event_type = 'page_view' GROUP BY 1 ORDER BY n DESC LIMIT 25
SELECT date_trunc('quarter', signup_date) AS cohort, count(*) AS signups FROM customers WHERE signup_date BETWEEN DATE '2025-01-01' AND DATE '2025-11-15' GROUP BY cohort ORDER BY cohort
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('books', 'sports') GROUP BY category ORDER BY margin DESC
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 20 ORDER BY margin_pct DESC NULLS LAST LIMIT 50
SELECT customer_id FROM orders WHERE status = 'new' UNION SELECT customer_id FROM events WHERE event_type = 'click' ORDER BY 1 LIMIT 10
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 500) AND country = 'JP' ORDER BY name LIMIT 20
SELECT ordered_at::DATE AS day, sum(amount) AS revenue, avg(sum(amount)) OVER (ORDER BY ordered_at::DATE ROWS BETWEEN 19 PRECEDING AND CURRENT ROW) AS moving_avg FROM orders GROUP BY 1 ORDER BY 1
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 8 ORDER BY orders DESC LIMIT 1000
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-11-15' AND status NOT IN ('paid', 'new')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('GB', 'US') GROUP BY ALL ORDER BY n DESC LIMIT 20
SELECT * FROM orders WHERE order_id = 961298
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 13059 ORDER BY ordered_at DESC LIMIT 5
SELECT * FROM customers WHERE customer_id BETWEEN 16939 AND 17392 ORDER BY customer_id
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 6 DAY GROUP BY product_id ORDER BY units DESC LIMIT 25
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%2%' AND price BETWEEN 45 AND 225 ORDER BY price LIMIT 1000
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-01-01' GROUP BY ALL HAVING sum(o.amount) > 100 ORDER BY recent DESC LIMIT 50
SELECT date_trunc('year', ordered_at) AS period, stddev_samp(quantity * unit_price) AS value FROM orders WHERE ordered_at >= DATE '2025-09-01' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('store', 'partner', 'app') GROUP BY channel, status ORDER BY revenue DESC LIMIT 50
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('JP', 'FR') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 50
SELECT customer_id, order_id, amount, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at DESC) AS rn FROM orders WHERE ordered_at >= DATE '2025-11-15' QUALIFY rn <= 3 ORDER BY customer_id, rn
SELECT payload->>'$.device' AS key, count(*) AS n FROM events WHERE event_type = 'click' GROUP BY 1 ORDER BY n DESC LIMIT 20
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('sports', 'toys', 'kitchen') GROUP BY category ORDER BY margin DESC
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 50 ORDER BY margin_pct DESC NULLS LAST LIMIT 20
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 100) AND country = 'JP' ORDER BY name LIMIT 50
SELECT strftime(ordered_at, '%Y-%m-%d') AS label, count(*) AS n FROM orders WHERE channel = 'web' GROUP BY label ORDER BY label LIMIT 25
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('FR') GROUP BY ALL ORDER BY n DESC LIMIT 100
SELECT * FROM orders WHERE order_id = 493363
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 32845 ORDER BY ordered_at DESC LIMIT 10
SELECT * FROM customers WHERE customer_id BETWEEN 17442 AND 17501 ORDER BY customer_id
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 72 DAY GROUP BY product_id ORDER BY units DESC LIMIT 5
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%product%' AND price BETWEEN 49 AND 221 ORDER BY price LIMIT 100
SELECT trim(both ' ' FROM name) AS name, regexp_matches(email, '[0-9]+') AS m FROM customers LIMIT 20
SELECT date_trunc('week', ordered_at) AS period, sum(quantity) AS value FROM orders WHERE ordered_at >= DATE '2025-03-01' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('web') GROUP BY channel, status ORDER BY revenue DESC LIMIT 10
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('GB', 'JP', 'BR') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 25
SELECT payload->>'$.page' AS key, count(*) AS n FROM events WHERE event_type = 'purchase' GROUP BY 1 ORDER BY n DESC LIMIT 5
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 100 ORDER BY margin_pct DESC NULLS LAST LIMIT 20
SELECT customer_id FROM orders WHERE status = 'paid' EXCEPT SELECT customer_id FROM events WHERE event_type = 'click' ORDER BY 1 LIMIT 50
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 500) AND country = 'US' ORDER BY name LIMIT 1000
SELECT strftime(ordered_at, '%Y-%m-%d') AS label, count(*) AS n FROM orders WHERE channel = 'partner' GROUP BY label ORDER BY label LIMIT 10
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('GB', 'JP', 'FR') GROUP BY ALL ORDER BY n DESC LIMIT 5
SELECT * FROM orders WHERE order_id = 493404
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 2226 ORDER BY ordered_at DESC LIMIT 5
SELECT * FROM customers WHERE customer_id BETWEEN 309 AND 628 ORDER BY customer_id
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 52 DAY GROUP BY product_id ORDER BY units DESC LIMIT 20
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%1%' AND price BETWEEN 37 AND 187 ORDER BY price LIMIT 50
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-09-01' GROUP BY ALL HAVING sum(o.amount) > 500 ORDER BY recent DESC LIMIT 5
SELECT count(*) AS orders FROM orders WHERE status IN ('cancelled', 'returned', 'paid')
SELECT date_trunc('year', ordered_at) AS period, min(quantity * unit_price) AS value FROM orders WHERE ordered_at >= DATE '2025-11-15' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('store') GROUP BY channel, status ORDER BY revenue DESC LIMIT 20
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('JP', 'US', 'FR') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 100
SELECT payload->>'$.device' AS attr, count(*) AS n FROM events WHERE event_type = 'add_to_cart' GROUP BY 1 ORDER BY n DESC LIMIT 1000
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('kitchen', 'toys') GROUP BY category ORDER BY margin DESC
SELECT customer_id FROM orders WHERE status = 'paid' EXCEPT SELECT customer_id FROM events WHERE event_type = 'page_view' ORDER BY 1 LIMIT 5
SELECT o.order_id, o.amount, p.category FROM orders o JOIN products p ON p.product_id = o.product_id WHERE o.amount > (SELECT avg(amount) * 2 FROM orders) ORDER BY o.amount DESC LIMIT 100
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('BR', 'JP') GROUP BY ALL ORDER BY n DESC LIMIT 100
SELECT * FROM orders WHERE order_id = 833804
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 42213 ORDER BY ordered_at DESC LIMIT 10
SELECT * FROM customers WHERE customer_id BETWEEN 774 AND 1064 ORDER BY customer_id
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 76 DAY GROUP BY product_id ORDER BY units DESC LIMIT 20
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%1%' AND price BETWEEN 7 AND 250 ORDER BY price LIMIT 10
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-09-01' GROUP BY ALL HAVING sum(o.amount) > 1000 ORDER BY recent DESC LIMIT 100
SELECT date_trunc('day', ordered_at) AS period, avg(unit_price) AS value FROM orders WHERE ordered_at >= DATE '2025-02-15' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('app', 'web', 'partner') GROUP BY channel, status ORDER BY revenue DESC LIMIT 100
SELECT customer_id, order_id, amount, row_number() OVER (PARTITION BY customer_id ORDER BY ordered_at DESC) AS rn FROM orders WHERE ordered_at >= DATE '2025-09-01' QUALIFY rn <= 3 ORDER BY customer_id, rn
SELECT payload->>'$.campaign' AS k, count(*) AS n FROM events WHERE event_type = 'click' GROUP BY 1 ORDER BY n DESC LIMIT 5
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('toys', 'sports', 'kitchen') GROUP BY category ORDER BY margin DESC
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 5 ORDER BY margin_pct DESC NULLS LAST LIMIT 50
SELECT customer_id FROM orders WHERE status = 'new' UNION SELECT customer_id FROM events WHERE event_type = 'click' ORDER BY 1 LIMIT 50
SELECT o.order_id, o.amount, p.category FROM orders o JOIN products p ON p.product_id = o.product_id WHERE o.amount > (SELECT avg(amount) * 1.5 FROM orders) ORDER BY o.amount DESC LIMIT 5
WITH funnel AS (SELECT customer_id, max(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS viewed, max(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS converted FROM events WHERE event_ts >= TIMESTAMP '2025-01-01' GROUP BY customer_id) SELECT sum(viewed) AS viewed, sum(converted) AS converted, round(sum(converted) / nullif(sum(viewed), 0), 3) AS rate FROM funnel
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 5 ORDER BY orders DESC LIMIT 50
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-01-01' AND status NOT IN ('shipped', 'cancelled', 'returned')
SELECT * FROM orders WHERE order_id = 907577
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 29858 ORDER BY ordered_at DESC LIMIT 1000
SELECT * FROM customers WHERE customer_id BETWEEN 21600 AND 21727 ORDER BY customer_id
SUMMARIZE SELECT status, channel FROM orders LIMIT 1000
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 79 DAY GROUP BY product_id ORDER BY units DESC LIMIT 50
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%1%' AND price BETWEEN 25 AND 283 ORDER BY price LIMIT 100
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-11-15' GROUP BY ALL HAVING sum(o.amount) > 100 ORDER BY recent DESC LIMIT 5
SELECT count(*) AS orders FROM orders WHERE status IN ('shipped', 'paid', 'new')
SELECT date_trunc('month', ordered_at) AS period, median(quantity * unit_price) AS value FROM orders WHERE ordered_at >= DATE '2025-01-01' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('web') GROUP BY channel, status ORDER BY revenue DESC LIMIT 25
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('JP', 'DE', 'FR') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 1000
SELECT payload->>'$.page' AS k, count(*) AS n FROM events WHERE event_type = 'add_to_cart' GROUP BY 1 ORDER BY n DESC LIMIT 20
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('books', 'toys') GROUP BY category ORDER BY margin DESC
SELECT customer_id FROM orders WHERE status = 'new' EXCEPT SELECT customer_id FROM events WHERE event_type = 'checkout' ORDER BY 1 LIMIT 1000
SELECT ordered_at::DATE AS day, sum(amount) AS revenue, avg(sum(amount)) OVER (ORDER BY ordered_at::DATE ROWS BETWEEN 17 PRECEDING AND CURRENT ROW) AS moving_avg FROM orders GROUP BY 1 ORDER BY 1
SELECT strftime(ordered_at, '%Y-W%W') AS label, count(*) AS n FROM orders WHERE channel = 'app' GROUP BY label ORDER BY label LIMIT 10
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 7 ORDER BY orders DESC LIMIT 20
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-06-30' AND status NOT IN ('returned', 'new')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('DE') GROUP BY ALL ORDER BY n DESC LIMIT 50
SELECT * FROM orders WHERE order_id = 475523
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 27211 ORDER BY ordered_at DESC LIMIT 20
SELECT * FROM customers WHERE customer_id BETWEEN 497 AND 705 ORDER BY customer_id
SUMMARIZE SELECT lifetime_value FROM customers LIMIT 5
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 72 DAY GROUP BY product_id ORDER BY units DESC LIMIT 50
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%x%' AND price BETWEEN 32 AND 432 ORDER BY price LIMIT 20
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-01-01' GROUP BY ALL HAVING sum(o.amount) > 500 ORDER BY recent DESC LIMIT 100
SELECT count(*) AS orders FROM orders WHERE status IN ('new', 'cancelled', 'shipped')
SELECT date_trunc('quarter', ordered_at) AS period, min(discount) AS value FROM orders WHERE ordered_at >= DATE '2025-03-01' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('app', 'store', 'web') GROUP BY channel, status ORDER BY revenue DESC LIMIT 5
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('DE', 'GB') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 100
SELECT payload->>'$.page' AS k, count(*) AS n FROM events WHERE event_type = 'page_view' GROUP BY 1 ORDER BY n DESC LIMIT 100
SELECT customer_id FROM orders WHERE status = 'shipped' UNION SELECT customer_id FROM events WHERE event_type = 'checkout' ORDER BY 1 LIMIT 25
SELECT o.order_id, o.amount, p.category FROM orders o JOIN products p ON p.product_id = o.product_id WHERE o.amount > (SELECT avg(amount) * 2 FROM orders) ORDER BY o.amount DESC LIMIT 5
SELECT strftime(ordered_at, '%Y-%m-%d') AS label, count(*) AS n FROM orders WHERE channel = 'app' GROUP BY label ORDER BY label LIMIT 100
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 2 ORDER BY orders DESC LIMIT 10
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-11-15' AND status NOT IN ('new', 'returned')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('DE', 'FR', 'BR') GROUP BY ALL ORDER BY n DESC LIMIT 25
SELECT * FROM orders WHERE order_id = 253160
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 15127 ORDER BY ordered_at DESC LIMIT 25
SELECT * FROM customers WHERE customer_id BETWEEN 1428 AND 1482 ORDER BY customer_id
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 84 DAY GROUP BY product_id ORDER BY units DESC LIMIT 25
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%product%' AND price BETWEEN 26 AND 67 ORDER BY price LIMIT 1000
SELECT date_trunc('quarter', ordered_at) AS period, median(discount) AS value FROM orders WHERE ordered_at >= DATE '2025-01-01' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('app') GROUP BY channel, status ORDER BY revenue DESC LIMIT 100
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('US', 'FR') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 20
SELECT payload->>'$.referrer' AS k, count(*) AS n FROM events WHERE event_type = 'purchase' GROUP BY 1 ORDER BY n DESC LIMIT 10
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 20 ORDER BY margin_pct DESC NULLS LAST LIMIT 25
SELECT customer_id FROM orders WHERE status = 'paid' EXCEPT SELECT customer_id FROM events WHERE event_type = 'page_view' ORDER BY 1 LIMIT 25
SELECT strftime(ordered_at, '%Y-%m') AS label, count(*) AS n FROM orders WHERE channel = 'store' GROUP BY label ORDER BY label LIMIT 10
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 5 ORDER BY orders DESC LIMIT 20
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-09-01' AND status NOT IN ('returned', 'shipped')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('JP', 'GB', 'BR') GROUP BY ALL ORDER BY n DESC LIMIT 5
SELECT * FROM orders WHERE order_id = 24534
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 33410 ORDER BY ordered_at DESC LIMIT 1000
SELECT * FROM customers WHERE customer_id BETWEEN 36499 AND 36609 ORDER BY customer_id
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 18 DAY GROUP BY product_id ORDER BY units DESC LIMIT 50
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%2%' AND price BETWEEN 37 AND 469 ORDER BY price LIMIT 100
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-01-01' GROUP BY ALL HAVING sum(o.amount) > 100 ORDER BY recent DESC LIMIT 25
SELECT date_trunc('day', ordered_at) AS period, median(quantity * unit_price) AS value FROM orders WHERE ordered_at >= DATE '2025-02-15' GROUP BY 1 ORDER BY 1
SELECT channel, status, count(*) AS n, sum(amount) AS revenue FROM orders WHERE channel IN ('app', 'store', 'partner') GROUP BY channel, status ORDER BY revenue DESC LIMIT 50
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('GB') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 1000
SELECT segment, country, count(*) AS customers, avg(lifetime_value) AS ltv FROM customers WHERE is_active AND segment IN ('consumer', 'smb', 'enterprise') GROUP BY ROLLUP (segment, country) ORDER BY ALL
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('toys', 'sports', 'garden') GROUP BY category ORDER BY margin DESC
SELECT customer_id FROM orders WHERE status = 'new' EXCEPT SELECT customer_id FROM events WHERE event_type = 'checkout' ORDER BY 1 LIMIT 50
SELECT o.order_id, o.amount, p.category FROM orders o JOIN products p ON p.product_id = o.product_id WHERE o.amount > (SELECT avg(amount) * 3 FROM orders) ORDER BY o.amount DESC LIMIT 50
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 100) AND country = 'GB' ORDER BY name LIMIT 50
SELECT strftime(ordered_at, '%Y') AS label, count(*) AS n FROM orders WHERE channel = 'app' GROUP BY label ORDER BY label LIMIT 1000
SELECT customer_id, arg_max(status, ordered_at) AS last_status, max(ordered_at) AS last_order, count(*) AS orders FROM orders GROUP BY customer_id HAVING count(*) >= 3 ORDER BY orders DESC LIMIT 20
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-03-01' AND status NOT IN ('new')
SELECT * FROM orders WHERE order_id = 467423
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 6459 ORDER BY ordered_at DESC LIMIT 100
SELECT * FROM customers WHERE customer_id BETWEEN 35716 AND 35777 ORDER BY customer_id
SUMMARIZE SELECT amount, quantity FROM orders LIMIT 5
SELECT product_id, sum(quantity) AS units FROM orders WHERE ordered_at >= now() - INTERVAL 55 DAY GROUP BY product_id ORDER BY units DESC LIMIT 20
SELECT sku, name, price FROM products WHERE lower(name) LIKE '%2%' AND price BETWEEN 35 AND 182 ORDER BY price LIMIT 25
SELECT c.customer_id, c.lifetime_value, sum(o.amount) AS recent FROM customers c JOIN orders o ON o.customer_id = c.customer_id AND o.ordered_at >= DATE '2025-03-01' GROUP BY ALL HAVING sum(o.amount) > 500 ORDER BY recent DESC LIMIT 5
SELECT ntile(4) OVER (ORDER BY lifetime_value) AS tile, customer_id, lifetime_value FROM customers ORDER BY lifetime_value DESC LIMIT 50
SELECT date_trunc('week', ordered_at) AS period, sum(amount * (1 - discount)) AS value FROM orders WHERE ordered_at >= DATE '2025-09-01' GROUP BY 1 ORDER BY 1
SELECT c.customer_id, c.name, sum(o.amount) AS spent FROM orders o JOIN customers c ON o.customer_id = c.customer_id WHERE c.country IN ('DE') GROUP BY c.customer_id, c.name ORDER BY spent DESC LIMIT 5
SELECT payload->>'$.referrer' AS k, count(*) AS n FROM events WHERE event_type = 'checkout' GROUP BY 1 ORDER BY n DESC LIMIT 10
SELECT category, count(*) AS products, min(price) AS cheapest, max(price) AS dearest, avg(price - cost) AS margin FROM products WHERE NOT is_discontinued AND category IN ('sports') GROUP BY category ORDER BY margin DESC
SELECT sku, name, price, round((price - cost) / nullif(price, 0) * 100, 1) AS margin_pct FROM products WHERE price > 10 ORDER BY margin_pct DESC NULLS LAST LIMIT 10
SELECT customer_id FROM orders WHERE status = 'new' EXCEPT SELECT customer_id FROM events WHERE event_type = 'click' ORDER BY 1 LIMIT 100
SELECT name, email FROM customers WHERE customer_id IN (SELECT customer_id FROM orders WHERE amount > 500) AND country = 'US' ORDER BY name LIMIT 10
SELECT strftime(ordered_at, '%Y') AS label, count(*) AS n FROM orders WHERE channel = 'app' GROUP BY label ORDER BY label LIMIT 10
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers, sum(amount) AS revenue, sum(amount) / count(DISTINCT customer_id) AS revenue_per_customer FROM orders WHERE ordered_at >= DATE '2025-09-01' AND status NOT IN ('returned', 'paid', 'cancelled')
SELECT e.event_type, c.segment, count(*) AS n FROM events e JOIN customers c ON c.customer_id = e.customer_id WHERE c.country IN ('DE') GROUP BY ALL ORDER BY n DESC LIMIT 1000
SELECT * FROM orders WHERE order_id = 439061
SELECT order_id, customer_id, amount, status FROM orders WHERE customer_id = 40178 ORDER BY ordered_at DESC LIMIT 20
SELECT * FROM customers WHERE customer_id BETWEEN 21571 AND 21613 ORDER BY customer_id
