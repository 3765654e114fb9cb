"""Grant policies enforced on every read path: queries in every format, samples of every
method, profiles, the catalog and artifacts saved from results, against the guard's
adversarial spellings; personal columns masked by default, unmasking, overrides and drift."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

import pyarrow.parquet as pq
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from serving.lib.services import Services
from serving.queries.services import get_engine
from shared.served import version_path
from shared.settings import Settings
from tests.serving.helpers import assert_error
from tests.serving.policy_support import (
    ADVERSARIAL,
    CUSTOMERS,
    CUSTOMERS_SQL,
    ORDERS,
    ORDERS_SQL,
    leaks,
    publish_classified,
)

Headers = dict[str, str]
HASHED = re.compile(r"^[0-9a-f]{16}$")
POLICY = {"exclude": ["secret"], "masks": {"phone": "partial", "note": "null"}, "row_filter": "region = 'EU'"}


def query(client: TestClient[Litestar], headers: Headers, sql: str, **extra: Any) -> Any:
    return client.post("/api/v1/queries/execute", headers=headers, json={"query": sql, **extra})


def rows(client: TestClient[Litestar], headers: Headers, sql: str) -> list[list[Any]]:
    r = query(client, headers, sql)
    assert r.status_code == 200, r.text
    return [list(x) for x in r.json()["rows"]]


@pytest.fixture
def world(client: TestClient[Litestar], api_settings: Settings, make_swarm: Callable[..., dict[str, Any]],
          agent_headers: Callable[..., Headers], admin_headers: Headers) -> dict[str, Any]:
    publish_classified(api_settings.served_path, CUSTOMERS, CUSTOMERS_SQL)
    publish_classified(api_settings.served_path, ORDERS, ORDERS_SQL)
    plain = make_swarm([CUSTOMERS, ORDERS])  # no policy: defaults only
    guarded = make_swarm([CUSTOMERS, ORDERS])
    r = client.put(f"/api/v1/admin/swarms/{guarded['id']}/policies/{CUSTOMERS}", headers=admin_headers, json=POLICY)
    assert r.status_code == 200, r.text
    return {"plain": plain, "guarded": guarded, "a": agent_headers(plain["id"]), "a2": agent_headers(plain["id"]),
            "g": agent_headers(guarded["id"]), "admin": admin_headers}


def test_personal_columns_are_hashed_by_default_and_the_admin_reads_raw(client: TestClient[Litestar],
                                                                        world: dict[str, Any]) -> None:
    got = rows(client, world["a"], "SELECT customer_id, full_name, email, phone, region FROM customers ORDER BY 1")
    assert len(got) == 40
    for _, name, email, phone, region in got:
        assert all(HASHED.match(v) for v in (name, email, phone)), (name, email, phone)
        assert region in ("EU", "US")
    raw = rows(client, world["admin"], "SELECT email FROM demo.public.customers ORDER BY customer_id LIMIT 1")
    assert raw == [["user0@corp-canary.example"]]
    catalog = client.get(f"/api/v1/data/tables/{CUSTOMERS}", headers=world["a"]).json()
    masked = {c["name"]: c["masked"] for c in catalog["columns"]}
    assert masked == {"customer_id": None, "full_name": "hash", "email": "hash", "phone": "hash", "region": None,
                      "amount": None, "label": None, "secret": None, "note": None}
    email = next(c for c in catalog["columns"] if c["name"] == "email")["classification"]
    assert email["category"] == "email"
    assert email["personal"]
    assert email["confidence"] >= 0.9
    assert email["evidence"]["name_rule"] == "name:email"
    assert email["evidence"]["matched_share"] == 1.0
    assert not leaks(client.get("/api/v1/data/tables", headers=world["a"]).text)


def test_hash_is_stable_within_a_swarm_so_joins_work_and_differs_across_swarms(client: TestClient[Litestar],
                                                                                world: dict[str, Any]) -> None:
    sql = "SELECT count(*) FROM orders o JOIN customers c ON o.email = c.email"
    assert rows(client, world["a"], sql) == [[100]]
    first = "SELECT email FROM customers WHERE customer_id = 2"
    mine, teammate, other = (rows(client, world[h], first) for h in ("a", "a2", "g"))
    assert mine == teammate
    assert HASHED.match(other[0][0])
    assert other != mine


def test_exclusion_masks_and_row_filter(client: TestClient[Litestar], world: dict[str, Any]) -> None:
    r = query(client, world["g"], "SELECT * FROM customers ORDER BY customer_id")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [c["name"] for c in body["columns"]] == ["customer_id", "full_name", "email", "phone", "region", "amount",
                                                    "label", "note"]
    assert len(body["rows"]) == 20
    assert not leaks(r.text)
    first = dict(zip([c["name"] for c in body["columns"]], body["rows"][0], strict=True))
    assert first["phone"] == "***0000"
    assert first["note"] is None
    assert first["region"] == "EU"
    assert first["label"] == "visible-0"
    assert HASHED.match(first["email"])
    assert_error(query(client, world["g"], "SELECT secret FROM customers"), 400)
    assert rows(client, world["g"], "SELECT count(*), max(customer_id), max(amount) FROM customers") == [[20, 38, 38]]
    # An error raised by a predicate would reveal a filtered-out row: those rows are not there to raise it.
    assert rows(client, world["g"], "SELECT count(*) FROM customers WHERE CAST(amount AS TINYINT) >= 0") == [[20]]
    assert rows(client, world["g"], "SELECT count(*) FROM customers WHERE error('x' || label) IS NULL OR true") == [[20]]


@pytest.mark.parametrize("sql", ADVERSARIAL)
def test_no_spelling_of_a_query_recovers_what_the_policy_hides(client: TestClient[Litestar], world: dict[str, Any],
                                                                sql: str) -> None:
    r = query(client, world["g"], sql)
    assert r.status_code in (200, 400, 404), r.text
    assert not leaks(r.text), (sql, r.text[:500])
    if r.status_code == 200:
        body = r.json()
        names = [c["name"] for c in body["columns"]]
        assert "secret" not in names, (sql, names)
        assert "secret" not in str(body["rows"]), sql
        if sql.startswith(("SUMMARIZE", "DESCRIBE")):
            assert "secret" not in {str(row[0]) for row in body["rows"]}
        counts = [row[names.index("count_star()")] for row in body["rows"]] if "count_star()" in names else []
        assert all(n <= 20 for n in counts)
    else:
        assert_error(r, r.status_code)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "arrow"])
def test_results_in_every_format_and_artifacts_from_them(client: TestClient[Litestar], world: dict[str, Any],
                                                         fmt: str) -> None:
    job = query(client, world["g"], "SELECT * FROM customers", output_format=fmt).json()
    assert job["status"] == "succeeded", job
    data = client.get(f"/api/v1/queries/jobs/{job['job_id']}/result", headers=world["g"]).content
    if fmt == "parquet":
        table = pq.read_table(io.BytesIO(data))
        assert table.num_rows == 20
        assert "secret" not in table.column_names
        assert not leaks(str(table.to_pylist()))
    elif fmt == "csv":
        assert not leaks(data.decode())
        assert data.decode().count("\n") == 21
    else:
        from pyarrow import ipc

        table = ipc.open_stream(io.BytesIO(data)).read_all()
        assert table.num_rows == 20
        assert not leaks(str(table.to_pylist()))
    art = client.post(f"/api/v1/queries/jobs/{job['job_id']}/artifact", headers=world["g"], json={"format": "csv"})
    assert art.status_code == 201, art.text
    content = client.get(art.json()["content_url"], headers=world["g"]).content.decode()
    assert not leaks(content)
    assert "secret" not in content.splitlines()[0]
    assert len(content.splitlines()) == 21


@pytest.mark.parametrize("params", [
    "method=head&size=100", "method=random&size=100&seed=3", "method=random&fraction=1.0&seed=3",
    "method=stratified&by=region&size=100", "method=recent&by=amount&size=5", "method=head&size=100&format=csv",
    "method=random&size=100&format=parquet", "method=head&size=100&where=amount%20%3E%3D%201000",
])
def test_samples_of_every_method(client: TestClient[Litestar], world: dict[str, Any], params: str) -> None:
    r = client.get(f"/api/v1/data/tables/customers/sample?{params}", headers=world["g"])
    assert r.status_code == 200, r.text
    assert r.headers["X-Table-Row-Count"] == "20"
    if "format=parquet" in params:
        table = pq.read_table(io.BytesIO(r.content))
        assert "secret" not in table.column_names
        assert not leaks(str(table.to_pylist()))
        return
    assert not leaks(r.text)
    if "format=" not in params:
        body = r.json()
        assert "secret" not in [c["name"] for c in body["columns"]]
        assert len(body["rows"]) <= 20
        if "amount" in params and "where" in params:
            assert body["rows"] == []
    assert_error(client.get("/api/v1/data/tables/customers/sample?method=head&columns=secret", headers=world["g"]), 400)


def test_profiles_and_catalog_show_the_policy_view(client: TestClient[Litestar], world: dict[str, Any]) -> None:
    raw = client.get("/api/v1/data/tables/customers/profile", headers=world["admin"]).json()  # cached raw profile first
    assert raw["row_count"] == 40
    r = client.get("/api/v1/data/tables/customers/profile", headers=world["g"])
    assert r.status_code == 200, r.text
    prof = r.json()
    assert prof["row_count"] == 20
    assert not leaks(r.text)
    assert "secret" not in [c["name"] for c in prof["columns"]]
    amount = next(c for c in prof["columns"] if c["name"] == "amount")
    assert float(amount["max"]) == 38
    entry = client.get("/api/v1/data/tables/customers", headers=world["g"]).json()
    assert entry["row_count"] == 20
    assert entry["row_filter"] is True
    cols = {c["name"]: c["masked"] for c in entry["columns"]}
    assert "secret" not in cols
    assert cols["phone"] == "partial"
    assert cols["note"] == "null"
    assert cols["email"] == "hash"
    assert "'EU'" not in str(entry), "the predicate is shown to admins only"
    listed = client.get(f"/api/v1/admin/policies?swarm_id={world['guarded']['id']}", headers=world["admin"]).json()
    assert listed[0]["row_filter"] == "region = 'EU'"
    assert listed[0]["exclude"] == ["secret"]


def test_an_agent_token_narrows_its_swarm(client: TestClient[Litestar], world: dict[str, Any],
                                          agent_headers: Callable[..., Headers], admin_headers: Headers) -> None:
    from tests.serving.helpers import mint_token

    token = mint_token(client, admin_headers, "agent", world["guarded"]["id"])
    narrow = {"Authorization": f"Bearer {token['token']}"}
    body = {"exclude": ["email"], "masks": {"label": "hash", "phone": "hash"}, "row_filter": "amount < 10"}
    r = client.put(f"/api/v1/admin/tokens/{token['token_id']}/policies/customers", headers=admin_headers, json=body)
    assert r.status_code == 200, r.text
    got = query(client, narrow, "SELECT * FROM customers ORDER BY customer_id").json()
    names = [c["name"] for c in got["columns"]]
    assert "email" not in names
    assert "secret" not in names
    assert [row[0] for row in got["rows"]] == [0, 2, 4, 6, 8]  # both row filters apply
    assert got["rows"][0][names.index("phone")] is None  # partial (swarm) and hash (agent): null
    assert HASHED.match(got["rows"][0][names.index("label")])
    assert rows(client, world["g"], "SELECT count(*) FROM customers") == [[20]]  # the swarm's other agents: unchanged
    assert_error(client.put(f"/api/v1/admin/tokens/{token['token_id']}/policies/customers", headers=narrow, json=body),
                 403)


def test_unmasking_needs_a_reason_is_audited_and_applies_on_the_next_request(
        client: TestClient[Litestar], world: dict[str, Any], flush_audit: Callable[[], None]) -> None:
    swarm = world["plain"]["id"]
    url = f"/api/v1/admin/swarms/{swarm}/unmasked"
    assert_error(client.post(url, headers=world["admin"], json={"table": "customers", "column": "email", "reason": " "}),
                 400, rule="reason_required")
    assert_error(client.post(url, headers=world["admin"], json={"table": CUSTOMERS, "column": "nope", "reason": "x"}),
                 400, rule="unknown_column")
    r = client.post(url, headers=world["admin"], json={"table": CUSTOMERS, "column": "EMAIL", "reason": "churn study"})
    assert r.status_code == 201, r.text
    assert (r.json()["column"], r.json()["reason"], r.json()["granted_by"]) == ("email", "churn study", "admin")
    assert rows(client, world["a"], "SELECT email FROM customers WHERE customer_id = 1") == [["user1@corp-canary.example"]]
    assert HASHED.match(rows(client, world["g"], "SELECT email FROM customers LIMIT 1")[0][0])  # other swarms: masked
    assert client.get(url, headers=world["admin"]).json()[0]["reason"] == "churn study"
    flush_audit()
    audit = client.get(f"/api/v1/admin/audit?table={CUSTOMERS}&limit=50", headers=world["admin"]).json()["items"]
    assert any(a["endpoint"] == url and a["method"] == "POST" and a["status_code"] == 201 for a in audit)
    r = client.delete(f"{url}/{CUSTOMERS}/email", headers=world["admin"])
    assert r.status_code == 200
    assert r.json() == {"deleted": True}
    assert HASHED.match(rows(client, world["a"], "SELECT email FROM customers WHERE customer_id = 1")[0][0])


def test_overrides_win_and_survive_a_resync(client: TestClient[Litestar], world: dict[str, Any],
                                            api_settings: Settings) -> None:
    base = f"/api/v1/admin/classifications/{CUSTOMERS}"
    r = client.put(f"{base}/full_name", headers=world["admin"], json={"personal": False, "reason": "test names"})
    assert r.status_code == 200, r.text
    r = client.put(f"{base}/region", headers=world["admin"],
                   json={"personal": True, "category": "postal_address", "reason": "location"})
    assert r.status_code == 200, r.text
    assert_error(client.put(f"{base}/region", headers=world["admin"], json={"personal": True, "reason": ""}), 400)
    for _ in range(2):  # before and after a re-sync publishes a new version
        got = rows(client, world["a"], "SELECT full_name, region FROM customers WHERE customer_id = 0")
        assert got[0][0] == "Alice Martin"
        assert HASHED.match(got[0][1])
        publish_classified(api_settings.served_path, CUSTOMERS, CUSTOMERS_SQL)
    verdicts = {c["name"]: c for c in client.get(base, headers=world["admin"]).json()["columns"]}
    assert verdicts["full_name"]["personal"] is False
    assert verdicts["full_name"]["detected"]["personal"] is True
    assert verdicts["region"]["override"]["category"] == "postal_address"
    catalog = client.get("/api/v1/data/tables/customers", headers=world["a"]).json()
    region = next(c for c in catalog["columns"] if c["name"] == "region")
    assert region["masked"] == "hash"
    assert region["classification"]["override"] is True
    assert client.delete(f"{base}/full_name", headers=world["admin"]).json() == {"deleted": True}
    assert HASHED.match(rows(client, world["a"], "SELECT full_name FROM customers LIMIT 1")[0][0])


def test_a_drifted_column_is_classified_before_it_is_served(client: TestClient[Litestar], world: dict[str, Any],
                                                            api_settings: Settings) -> None:
    key = "demo.public.tickets"
    swarm = client.post("/api/v1/admin/swarms", headers=world["admin"],
                        json={"name": "support", "grants": [key]}).json()
    from tests.serving.helpers import bearer, mint_token

    agent = bearer(mint_token(client, world["admin"], "agent", swarm["id"])["token"])
    publish_classified(api_settings.served_path, key, "SELECT i AS ticket_id, 'open' AS state FROM range(30) t(i)")
    assert rows(client, agent, "SELECT * FROM tickets WHERE ticket_id = 1") == [[1, "open"]]
    publish_classified(api_settings.served_path, key, "SELECT i AS ticket_id, 'open' AS state, "
                       "'Reach me at jane.doe' || i || '@mail-canary.example or +44 20 7946 0' || lpad(i::VARCHAR, 3, '0') "
                       "AS body FROM range(30) t(i)")
    got = query(client, agent, "SELECT * FROM tickets WHERE ticket_id = 1")
    assert "mail-canary" not in got.text
    assert HASHED.match(got.json()["rows"][0][2])
    entry = client.get("/api/v1/data/tables/tickets", headers=agent).json()
    body = next(c for c in entry["columns"] if c["name"] == "body")
    assert body["classification"]["category"] == "free_text"
    assert body["masked"] == "hash"
    # A version that lists a column without a classification serves it masked too.
    publish_classified(api_settings.served_path, key, "SELECT i AS ticket_id, 'open' AS state, 'x' || i AS extra "
                       "FROM range(30) t(i)", drop=("extra",))
    assert HASHED.match(rows(client, agent, "SELECT extra FROM tickets WHERE ticket_id = 1")[0][0])


@pytest.mark.parametrize(("body", "rule"), [
    ({"row_filter": "region ="}, "parse_error"),
    ({"row_filter": "read_text('/etc/hostname') IS NOT NULL"}, "function_not_allowed"),
    ({"row_filter": "customer_id IN (SELECT 1)"}, "statement_not_allowed"),
    ({"row_filter": "no_such_column = 1"}, "invalid_row_filter"),
    ({"exclude": ["nope"]}, "unknown_column"),
])
def test_row_filters_are_checked_by_the_guard_when_set(client: TestClient[Litestar], world: dict[str, Any],
                                                       body: dict[str, Any], rule: str) -> None:
    url = f"/api/v1/admin/swarms/{world['plain']['id']}/policies/customers"
    assert_error(client.put(url, headers=world["admin"], json=body), 400, rule=rule)
    assert_error(client.put(url, headers=world["admin"], json={"masks": {"email": "rot13"}}), 400)
    assert_error(client.put(url, headers=world["g"], json={"row_filter": "true"}), 403)
    assert_error(client.put("/api/v1/admin/swarms/swm_nope/policies/customers", headers=world["admin"], json={}), 404)


def test_the_agent_instance_never_holds_the_raw_file_or_the_hash_key(client: TestClient[Litestar],
                                                                     world: dict[str, Any], services: Services,
                                                                     api_settings: Settings) -> None:
    assert rows(client, world["g"], "SELECT count(*) FROM customers JOIN orders USING (email)") == [[50]]
    engine = get_engine(services)
    key = engine.copies.swarm_key(world["guarded"]["id"])
    raw = str(version_path(api_settings.served_path, engine.current(CUSTOMERS)))  # type: ignore[arg-type]
    insts = list(engine.instances._live.values())
    assert insts
    for inst in insts:
        if not any(policy for _, _, policy in inst.key):
            continue
        con = inst.con.cursor()
        texts = [str(r) for q in ("SELECT sql FROM duckdb_views()", "SELECT * FROM duckdb_functions()",
                                  "SELECT path FROM duckdb_databases()", "SELECT value FROM duckdb_settings()")
                 for r in con.execute(q).fetchall()]
        con.close()
        blob = "\n".join(texts)
        assert key not in blob
        assert raw not in blob, "the raw served file is attached to a policy-bound instance"
    copies = list((api_settings.home_path / "tmp" / "policy-copies").rglob("*.duckdb"))
    assert copies
    for f in copies:
        data = f.read_bytes()
        assert key.encode() not in data
        assert b"SECRETCANARY" not in data


def test_admin_routes_are_documented(client: TestClient[Litestar]) -> None:
    doc = client.get("/docs/openapi.json").json()
    ops = {op.get("operationId") for path in doc["paths"].values() for op in path.values() if isinstance(op, dict)}
    assert {"putSwarmPolicy", "putAgentPolicy", "grantUnmasked", "overrideClassification", "getClassification",
            "listGrantPolicies"} <= ops
