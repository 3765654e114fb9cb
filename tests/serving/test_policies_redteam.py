"""Red-team cases for grant policies: every figure and value an answer carries beside its rows
(dry-run estimates, schema versions, provenance watermarks) and every version it can read
(``at_versions``, continuations) must be what the caller's policy copy holds, never the
served file's. Each test names the request that leaked before and checks the raw value is
nowhere in the answer, its headers or its file."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from typing import Any

import pyarrow.parquet as pq
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from shared.settings import Settings
from tests.serving.helpers import assert_error
from tests.serving.policy_support import CUSTOMERS, CUSTOMERS_SQL, ORDERS, ORDERS_SQL, leaks, publish_classified

Headers = dict[str, str]
HASHED = re.compile(r"^[0-9a-f]{16}$")
POLICY = {"exclude": ["secret"], "masks": {"phone": "partial", "note": "null"}, "row_filter": "region = 'EU'"}
WATERMARK = "2031-01-01 WMCANARY"


def query(client: TestClient[Litestar], headers: Headers, sql: str, **extra: Any) -> Any:
    return client.post("/api/v1/queries/execute", headers=headers, json={"query": sql, **extra})


@pytest.fixture
def world(client: TestClient[Litestar], api_settings: Settings, make_swarm: Callable[..., dict[str, Any]],
          agent_headers: Callable[..., Headers], admin_headers: Headers) -> dict[str, Any]:
    publish_classified(api_settings.served_path, CUSTOMERS, CUSTOMERS_SQL, watermark=WATERMARK)
    publish_classified(api_settings.served_path, ORDERS, ORDERS_SQL)
    plain = make_swarm([CUSTOMERS, ORDERS])
    guarded = make_swarm([CUSTOMERS, ORDERS])
    r = client.put(f"/api/v1/admin/swarms/{guarded['id']}/policies/{CUSTOMERS}", headers=admin_headers, json=POLICY)
    assert r.status_code == 200, r.text
    return {"plain": plain, "guarded": guarded, "a": agent_headers(plain["id"]), "g": agent_headers(guarded["id"]),
            "admin": admin_headers}


def everything(r: Any) -> str:
    """An answer's body and headers as one text, to search for what must not be there."""
    return r.text + "\n" + json.dumps(dict(r.headers))


# -- dry runs ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("sql", ["SELECT * FROM customers", "SELECT count(*) FROM customers",
                                 "SELECT c.label, o.total FROM customers c JOIN orders o USING (email)"])
def test_a_dry_run_reports_the_policy_copy_not_the_served_file(client: TestClient[Litestar], world: dict[str, Any],
                                                               sql: str) -> None:
    """Was: ``tables[].row_count`` 40 (the rows before the row filter), the served file's bytes
    and ``schema_version`` (a digest over the excluded column too: it can be matched against
    guessed names), and bytes scanned per raw column count."""
    g = world["g"]
    entry = client.get(f"/api/v1/data/tables/{CUSTOMERS}", headers=g).json()
    r = query(client, g, sql, dry_run=True)
    assert r.status_code == 200, r.text
    assert not leaks(everything(r))
    body = r.json()
    t = next(x for x in body["tables"] if x["table"] == CUSTOMERS)
    assert t["row_count"] == entry["row_count"] == 20
    assert t["schema_version"] == entry["schema_version"]
    assert t["bytes"] == entry["bytes"]
    assert body["estimated_bytes_scanned"] <= sum(
        client.get(f"/api/v1/data/tables/{x['table']}", headers=g).json()["bytes"] for x in body["tables"])
    raw = query(client, world["admin"], "SELECT * FROM demo.public.customers", dry_run=True).json()["tables"][0]
    assert raw["row_count"] == 40  # the admin reads the served file: the figures differ where the policy bites
    assert raw["schema_version"] != t["schema_version"]


def test_a_pinned_dry_run_reports_the_policy_copy_of_that_version(client: TestClient[Litestar],
                                                                  world: dict[str, Any]) -> None:
    g = world["g"]
    first = query(client, g, "SELECT count(*) FROM customers").json()["tables"][0]["version"]
    r = query(client, g, "SELECT * FROM customers", dry_run=True, at_versions={CUSTOMERS: first})
    assert r.status_code == 200, r.text
    assert r.json()["tables"][0]["row_count"] == 20
    assert r.json()["tables"][0]["version"] == first


# -- schema versions ---------------------------------------------------------------------------------

def test_schema_changes_name_the_schema_version_the_caller_reads(client: TestClient[Litestar],
                                                                 world: dict[str, Any]) -> None:
    """Was: ``schema_changes[].current`` (and so the answer to any ``If-Schema-Version``) the
    served file's digest, over the excluded column: a different value from the catalog's,
    and one an agent could confirm a guessed hidden column against."""
    g = world["g"]
    mine = client.get(f"/api/v1/data/tables/{CUSTOMERS}", headers=g).json()["schema_version"]
    r = query(client, g, "SELECT count(*) FROM customers", if_schema_version={CUSTOMERS: "s-000000000000"})
    assert r.status_code == 200, r.text
    assert r.json()["schema_changes"] == [{"table": CUSTOMERS, "expected": "s-000000000000", "current": mine}]
    same = query(client, g, "SELECT count(*) FROM customers", if_schema_version={CUSTOMERS: mine})
    assert same.json()["schema_changes"] == []
    header = client.post("/api/v1/queries/execute", headers=g | {"If-Schema-Version": mine},
                         json={"query": "SELECT count(*) FROM customers"})
    assert header.json()["schema_changes"] == []
    assert "agents-data-schema-changed" not in header.headers


def test_schema_changes_say_nothing_of_a_table_not_granted(client: TestClient[Litestar], world: dict[str, Any],
                                                           api_settings: Settings,
                                                           make_swarm: Callable[..., dict[str, Any]],
                                                           agent_headers: Callable[..., Headers]) -> None:
    """Was: naming any served table in ``If-Schema-Version`` answered its schema digest. A name the
    query does not read is refused, the same for a table that exists and one that does not."""
    only_orders = agent_headers(make_swarm([ORDERS])["id"])
    refused = [query(client, only_orders, "SELECT count(*) FROM orders",
                     if_schema_version={ORDERS: "s-000000000000", name: "s-000000000000"})
               for name in (CUSTOMERS, "demo.public.no_such_table")]
    for r in refused:
        assert r.status_code == 400, r.text
        assert r.json()["error"]["rule"] == "invalid_schema_version"
    assert refused[0].json()["error"]["details"] == refused[1].json()["error"]["details"] == {"tables": [ORDERS]}
    r = query(client, only_orders, "SELECT count(*) FROM orders", if_schema_version={ORDERS: "s-000000000000"})
    assert r.status_code == 200, r.text
    assert [c["table"] for c in r.json()["schema_changes"]] == [ORDERS]
    assert r.json()["schema_changes"][0]["current"].startswith("s-")


# -- older versions: at_versions and continuations ---------------------------------------------------

@pytest.fixture
def reclassified(client: TestClient[Litestar], world: dict[str, Any], api_settings: Settings) -> str:
    """A version whose sync judged ``email`` and ``full_name`` not personal, then a current one
    that classifies them personal: returns the older version."""
    old = publish_classified(api_settings.served_path, CUSTOMERS, CUSTOMERS_SQL, not_personal=("email", "full_name"))
    publish_classified(api_settings.served_path, CUSTOMERS, CUSTOMERS_SQL)
    return old.version


@pytest.mark.parametrize("fmt", ["json", "csv", "parquet", "arrow"])
def test_a_pinned_older_version_masks_what_is_personal_now(client: TestClient[Litestar], world: dict[str, Any],
                                                           reclassified: str, fmt: str) -> None:
    """Was: ``at_versions`` on a version whose own classification said "not personal" served
    ``email`` raw, although the current version (and the catalog) say it is personal."""
    for who in ("a", "g"):
        r = query(client, world[who], "SELECT full_name, email FROM customers ORDER BY customer_id",
                  at_versions={CUSTOMERS: reclassified}, output_format=fmt)
        assert r.status_code == 200, r.text
        assert r.json().get("tables", [{}])[0].get("version", reclassified) == reclassified
        if fmt == "json":
            text = everything(r)
            assert all(HASHED.match(v) for row in r.json()["rows"] for v in row)
        else:
            data = client.get(r.json()["result_url"], headers=world[who])
            assert data.status_code == 200
            text = everything(data) + data.content.decode("latin-1")
            if fmt == "parquet":
                assert all(HASHED.match(v) for v in pq.read_table(io.BytesIO(data.content)).column("email").to_pylist())
        assert "corp-canary" not in text
        assert "Alice Martin" not in text


def test_a_continuation_of_an_older_version_masks_what_is_personal_now(
        client: TestClient[Litestar], world: dict[str, Any], api_settings: Settings) -> None:
    """A cut answer's continuation re-reads the version the answer read; a sync that then
    classifies a column personal masks it in the re-run too."""
    publish_classified(api_settings.served_path, CUSTOMERS, CUSTOMERS_SQL, not_personal=("email",))
    cut = query(client, world["a"], "SELECT customer_id, email FROM customers ORDER BY 1", max_rows=1).json()
    assert cut["truncated"], cut
    assert cut["rows"][0][1] == "user0@corp-canary.example"  # not personal by the version's own verdict
    publish_classified(api_settings.served_path, CUSTOMERS, CUSTOMERS_SQL)
    for url in (cut["continuation"]["next_url"], cut["continuation"]["result_url"] + "?format=csv"):
        r = client.get(url, headers=world["a"])
        assert r.status_code == 200, r.text
        assert "corp-canary" not in everything(r) + r.content.decode("latin-1")


def test_an_older_version_keeps_an_unmask_grant_and_an_override(client: TestClient[Litestar], world: dict[str, Any],
                                                                reclassified: str) -> None:
    """What the current verdict adds is masking of columns personal now; an unmask grant and an
    admin's "not personal" override still apply to the older version."""
    admin, swarm = world["admin"], world["plain"]["id"]
    r = client.post(f"/api/v1/admin/swarms/{swarm}/unmasked", headers=admin,
                    json={"table": CUSTOMERS, "column": "email", "reason": "study"})
    assert r.status_code == 201, r.text
    r = client.put(f"/api/v1/admin/classifications/{CUSTOMERS}/full_name", headers=admin,
                   json={"personal": False, "reason": "test names"})
    assert r.status_code == 200, r.text
    got = query(client, world["a"], "SELECT full_name, email FROM customers WHERE customer_id = 0",
                at_versions={CUSTOMERS: reclassified}).json()["rows"]
    assert got == [["Alice Martin", "user0@corp-canary.example"]]
    masked = query(client, world["g"], "SELECT email FROM customers WHERE customer_id = 0",
                   at_versions={CUSTOMERS: reclassified}).json()["rows"]  # the other swarm: not unmasked
    assert HASHED.match(masked[0][0])


# -- provenance ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["json", "parquet", "csv"])
def test_provenance_gives_no_watermark_to_a_caller_under_a_policy(client: TestClient[Litestar],
                                                                  world: dict[str, Any], fmt: str) -> None:
    """Was: ``source_watermark`` in every answer's provenance was the served version's highest
    cursor, taken over every row and column, also those the caller's policy removes (the
    refresh answer already hid it)."""
    for who in ("a", "g"):
        r = query(client, world[who], "SELECT label FROM customers", output_format=fmt)
        assert r.status_code == 200, r.text
        assert "WMCANARY" not in everything(r)
        if fmt != "json":
            f = client.get(r.json()["result_url"], headers=world[who])
            assert "WMCANARY" not in everything(f)
            assert b"WMCANARY" not in f.content
            conv = client.get(r.json()["result_url"] + "?format=json", headers=world[who])
            assert "WMCANARY" not in everything(conv)
    cut = query(client, world["g"], "SELECT label FROM customers", max_rows=1).json()
    page = client.get(cut["continuation"]["next_url"], headers=world["g"])
    assert page.status_code == 200, page.text
    assert "WMCANARY" not in everything(page)
    admin = query(client, world["admin"], "SELECT label FROM demo.public.customers")
    assert WATERMARK in admin.headers["agents-data-provenance"]  # the admin reads it: it is there to hide


def test_a_refused_pin_says_the_same_under_a_policy(client: TestClient[Litestar], world: dict[str, Any]) -> None:
    assert_error(query(client, world["g"], "SELECT count(*) FROM customers", at_versions={CUSTOMERS: "v-nope"}), 410,
                 rule="version_gone")
    assert_error(query(client, world["g"], "SELECT count(*) FROM customers", at_versions={ORDERS: "x"}), 400,
                 rule="invalid_version_pin")


# -- queries pushed down to Snowflake ------------------------------------------------------------------

class TestPushdownReadsOnlyWhatWasClassified:
    """``engine=snowflake`` on a copied table reads the source as it is now: a column added
    there since the last sync was never classified, and Snowflake would answer it raw."""

    @pytest.fixture
    def api_settings(self, settings: Settings) -> Settings:
        import dataclasses
        import secrets

        from shared.snowflake import connect

        db = "RT_" + secrets.token_hex(3).upper()
        with connect(settings.snowflake) as con:
            cur = con.cursor()
            cur.execute(f"CREATE DATABASE {db}")
            cur.execute(f"CREATE SCHEMA {db}.PUBLIC")
            cur.execute(f"CREATE TABLE {db}.PUBLIC.PARTS AS SELECT seq4() AS PART_ID, 'bolt' AS KIND "
                        "FROM TABLE(GENERATOR(ROWCOUNT => 10))")
        return dataclasses.replace(settings, snowflake=dataclasses.replace(settings.snowflake, database=db))

    @pytest.fixture
    def parts(self, api_settings: Settings) -> str:
        from orchestration.sync.engine import SyncRequest, sync_table
        from shared import registry
        from shared.control.db import migrate
        from shared.snowflake import connect

        migrate(api_settings.control_url)
        reg = registry.build_registration({"schema_name": "PUBLIC", "table_name": "PARTS"},
                                          default_database=api_settings.snowflake.database)
        registry.save(api_settings.control_url, reg)
        sync_table(SyncRequest(table=reg, connect=lambda: connect(api_settings.snowflake),
                               served_root=api_settings.served_path))
        return reg.key

    def test_a_column_added_in_snowflake_since_the_sync_is_not_pushed_down_raw(
            self, client: TestClient[Litestar], api_settings: Settings, parts: str,
            make_swarm: Callable[..., dict[str, Any]], agent_headers: Callable[..., Headers]) -> None:
        from shared.snowflake import connect

        agent = agent_headers(make_swarm([parts])["id"])
        body = {"query": "SELECT * FROM parts ORDER BY part_id", "engine": "snowflake", "wait_s": 60}
        before = client.post("/api/v1/queries/execute", headers=agent, json=body)
        assert before.status_code == 200, before.text  # nothing personal: it may run in Snowflake
        db = api_settings.snowflake.database
        with connect(api_settings.snowflake) as con:
            cur = con.cursor()
            cur.execute(f"ALTER TABLE {db}.PUBLIC.PARTS ADD COLUMN CONTACT_EMAIL VARCHAR")
            cur.execute(f"UPDATE {db}.PUBLIC.PARTS SET CONTACT_EMAIL = 'buyer' || PART_ID || '@drift-canary.example'")
        for sql in ("SELECT * FROM parts", "SELECT contact_email FROM parts", "SELECT p.* FROM parts p"):
            r = client.post("/api/v1/queries/execute", headers=agent, json=body | {"query": sql})
            assert "drift-canary" not in everything(r)
            assert_error(r, 403, rule="policy_not_pushable")

    def test_a_live_table_under_a_policy_is_described_as_the_policy_shows_it(
            self, client: TestClient[Litestar], api_settings: Settings, admin_headers: Headers,
            make_swarm: Callable[..., dict[str, Any]], agent_headers: Callable[..., Headers]) -> None:
        """Was: the catalog listed a live table's source columns and row count as they are,
        the excluded column and the rows a row filter removes included."""
        from shared import registry
        from shared.control.db import migrate
        from shared.snowflake import connect

        db = api_settings.snowflake.database
        with connect(api_settings.snowflake) as con:
            con.cursor().execute(f"CREATE TABLE {db}.PUBLIC.VENDORS AS SELECT seq4() AS VENDOR_ID, "
                                 "'x' AS EXCLUDEDCANARY, 'v@live-canary.example' AS CONTACT_EMAIL "
                                 "FROM TABLE(GENERATOR(ROWCOUNT => 7))")
        migrate(api_settings.control_url)
        reg = registry.build_registration({"schema_name": "PUBLIC", "table_name": "VENDORS", "live": True},
                                          default_database=db)
        registry.save(api_settings.control_url, reg)
        swarm = make_swarm([reg.key])
        agent = agent_headers(swarm["id"])
        r = client.put(f"/api/v1/admin/swarms/{swarm['id']}/policies/{reg.key}", headers=admin_headers,
                       json={"exclude": ["EXCLUDEDCANARY"], "row_filter": "vendor_id < 3"})
        assert r.status_code == 200, r.text
        for url in (f"/api/v1/data/tables/{reg.key}", "/api/v1/data/tables"):
            got = client.get(url, headers=agent)
            assert got.status_code == 200, got.text
            assert "EXCLUDEDCANARY" not in everything(got)
        entry = client.get(f"/api/v1/data/tables/{reg.key}", headers=agent).json()
        assert entry["live"] is True
        assert entry["row_filter"] is True
        assert entry["row_count"] is None
        assert {c["name"]: c["masked"] for c in entry["columns"]} == {"VENDOR_ID": None, "CONTACT_EMAIL": "hash"}
        admin = client.get(f"/api/v1/data/tables/{reg.key}", headers=admin_headers).json()
        assert "EXCLUDEDCANARY" in [c["name"] for c in admin["columns"]]  # the admin sees the source as it is
        for r in (client.post("/api/v1/queries/execute", headers=agent,
                              json={"query": "SELECT * FROM vendors", "wait_s": 60}),
                  client.get(f"/api/v1/data/tables/{reg.key}/sample?method=head&size=5", headers=agent),
                  client.get(f"/api/v1/data/tables/{reg.key}/profile", headers=agent)):
            assert "live-canary" not in everything(r)
            assert_error(r, 403, rule="policy_not_pushable")


# -- two agents of one swarm under different token rules -------------------------------------------------

@pytest.fixture
def narrowed(client: TestClient[Litestar], world: dict[str, Any], admin_headers: Headers) -> dict[str, Any]:
    """The guarded swarm's agent ``g`` and a swarm-mate ``n`` narrowed by its token rule (no
    e-mail, label hashed, fewer rows); the swarm has unmasked e-mails, so ``g`` reads them raw."""
    from tests.serving.helpers import bearer, mint_token

    swarm = world["guarded"]["id"]
    r = client.post(f"/api/v1/admin/swarms/{swarm}/unmasked", headers=admin_headers,
                    json={"table": CUSTOMERS, "column": "email", "reason": "red-team"})
    assert r.status_code == 201, r.text
    token = mint_token(client, admin_headers, "agent", swarm)
    r = client.put(f"/api/v1/admin/tokens/{token['token_id']}/policies/{CUSTOMERS}", headers=admin_headers,
                   json={"exclude": ["email"], "masks": {"label": "hash"}, "row_filter": "amount < 10"})
    assert r.status_code == 200, r.text
    return {"g": world["g"], "n": bearer(token["token"]), "n_id": {"id": token["token_id"]}}


@pytest.mark.parametrize("visibility", ["swarm", "agents"])
def test_a_swarm_mates_artifact_is_not_served_past_a_narrower_token_rule(
        client: TestClient[Litestar], narrowed: dict[str, Any], visibility: str) -> None:
    """Was: an artifact saved from ``g``'s result (raw e-mails, every EU row) was listed, read and
    downloaded by ``n``, whose own rule excludes ``email`` and most rows."""
    g, n = narrowed["g"], narrowed["n"]
    job = query(client, g, "SELECT customer_id, email, label FROM customers", output_format="parquet").json()
    assert job["status"] == "succeeded", job
    assert b"corp-canary" in client.get(job["result_url"], headers=g).content  # g may read e-mails
    body: dict[str, Any] = {"format": "csv", "visibility": visibility if visibility == "swarm" else [narrowed["n_id"]["id"]]}
    art = client.post(f"/api/v1/queries/jobs/{job['job_id']}/artifact", headers=g, json=body)
    assert art.status_code == 201, art.text
    assert "rules" not in art.text
    aid = art.json()["id"]
    assert client.get(f"/api/v1/artifacts/{aid}/content", headers=g).status_code == 200  # its maker still reads it
    for r in (client.get(f"/api/v1/artifacts/{aid}", headers=n), client.get(f"/api/v1/artifacts/{aid}/content", headers=n)):
        assert "corp-canary" not in everything(r) + r.content.decode("latin-1")
        assert_error(r, 403, rule="table_not_granted")
    listed = client.get("/api/v1/artifacts", headers=n)
    assert listed.status_code == 200
    assert aid not in listed.text
    # The other way round is safe: what n saved shows g nothing g's rules hide.
    mine = query(client, n, "SELECT * FROM customers", output_format="parquet").json()
    saved = client.post(f"/api/v1/queries/jobs/{mine['job_id']}/artifact", headers=n,
                        json={"format": "csv", "visibility": "swarm"})
    assert saved.status_code == 201, saved.text
    assert client.get(f"/api/v1/artifacts/{saved.json()['id']}/content", headers=g).status_code == 200


def test_swarm_mates_under_different_token_rules_share_no_cached_answer(
        client: TestClient[Litestar], narrowed: dict[str, Any]) -> None:
    """The broader agent reads first (guard cache, profile cache, instances and policy copies are
    warm), then the narrower one: every answer is its own view."""
    g, n = narrowed["g"], narrowed["n"]
    sqls = ["SELECT * FROM customers", "SELECT email, label FROM customers", "SELECT count(*) FROM customers",
            "SELECT max(amount), list(label) FROM customers"]
    for sql in sqls:
        assert query(client, g, sql).status_code == 200
    paths = ["/api/v1/data/tables/customers/profile", "/api/v1/data/tables/customers/sample?method=head&size=50",
             "/api/v1/data/tables/customers/sample?method=random&size=50&seed=1", "/api/v1/data/tables/customers"]
    for path in paths:
        assert client.get(path, headers=g).status_code == 200
    for sql in sqls:
        r = query(client, n, sql)
        assert "corp-canary" not in everything(r)
        assert "visible-" not in everything(r)  # labels are hashed for n
        if r.status_code == 200 and "count" in sql:
            assert r.json()["rows"] == [[5]]
    for path in paths:
        r = client.get(path, headers=n)
        assert r.status_code == 200, r.text
        assert "corp-canary" not in everything(r)
        assert "visible-" not in everything(r)
    assert client.get("/api/v1/data/tables/customers", headers=n).json()["row_count"] == 5
    assert client.get("/api/v1/data/tables/customers/profile", headers=n).json()["row_count"] == 5


def test_a_policy_tightened_before_a_continuation_starts_applies_to_its_rows(
        client: TestClient[Litestar], world: dict[str, Any], admin_headers: Headers) -> None:
    """A continuation is lazy: its re-run starts at its first fetch, under the rules of then."""
    cut = query(client, world["a"], "SELECT customer_id, label, secret FROM customers ORDER BY 1", max_rows=1).json()
    assert cut["truncated"], cut
    r = client.put(f"/api/v1/admin/swarms/{world['plain']['id']}/policies/{CUSTOMERS}", headers=admin_headers,
                   json={"masks": {"secret": "null"}, "row_filter": "region = 'EU'"})
    assert r.status_code == 200, r.text
    for url in (cut["continuation"]["next_url"], cut["continuation"]["result_url"] + "?format=csv",
                cut["continuation"]["result_url"] + "?format=json"):
        got = client.get(url, headers=world["a"])
        assert got.status_code == 200, got.text
        assert not leaks(everything(got) + got.content.decode("latin-1"))


# -- what the classifier judges ------------------------------------------------------------------------

NESTED_SQL = """
SELECT i AS id,
       {'mail': 'buyer' || i || '@nest-canary.example', 'n': i} AS contact,
       MAP(['home'], ['buyer' || i || '@nest-canary.example']) AS inbox,
       ['+1 555 010 ' || lpad(i::VARCHAR, 4, '0')] AS numbers,
       ('buyer' || i || '@nest-canary.example')::BLOB AS raw_bytes,
       [4111111111111111, 5500005555555559][i % 2 + 1] AS ref,
       [4111111111111111, 5500005555555559][i % 2 + 1]::DECIMAL(19, 0) AS ref_dec,
       ['4111 1111 1111 1111'] AS refs,
       i * 7 AS qty, [i, i + 1] AS pair, {'k': i} AS plain_struct
FROM range(60) t(i)
"""


def test_personal_data_inside_nested_binary_and_number_columns_is_masked(
        client: TestClient[Litestar], api_settings: Settings, make_swarm: Callable[..., dict[str, Any]],
        agent_headers: Callable[..., Headers], admin_headers: Headers) -> None:
    """Was: only text columns were judged by their values, so e-mails in a STRUCT field, a MAP
    or a BLOB, phone numbers in a LIST and card numbers stored as BIGINT or DECIMAL were served
    raw (their names match no rule)."""
    key = "demo.public.nested"
    publish_classified(api_settings.served_path, key, NESTED_SQL)
    agent = agent_headers(make_swarm([key])["id"])
    masked = {c["name"]: c["masked"] for c in client.get(f"/api/v1/data/tables/{key}", headers=agent).json()["columns"]}
    assert masked == {"id": None, "contact": "hash", "inbox": "hash", "numbers": "hash", "raw_bytes": "hash",
                      "ref": "hash", "ref_dec": "hash", "refs": "hash", "qty": None, "pair": None, "plain_struct": None}
    for sql in ("SELECT * FROM nested", "SELECT to_json(n) FROM nested n", "SELECT contact.mail, inbox['home'], "
                "numbers[1], ref, ref_dec, refs[1] FROM nested"):
        r = query(client, agent, sql)
        text = everything(r)
        assert "nest-canary" not in text
        assert "4111111111111111" not in text.replace(" ", "")
        assert "555 010" not in text
    for path in ("profile", "sample?method=head&size=60"):
        r = client.get(f"/api/v1/data/tables/{key}/{path}", headers=agent)
        assert r.status_code == 200, r.text
        assert "nest-canary" not in everything(r)
        assert "4111111111111111" not in everything(r)
    raw = query(client, admin_headers, "SELECT contact.mail FROM demo.public.nested WHERE id = 1").json()["rows"]
    assert raw == [["buyer1@nest-canary.example"]]


# -- error messages --------------------------------------------------------------------------------------

def test_a_failed_syncs_error_is_not_shown_to_a_caller_under_a_policy(client: TestClient[Litestar],
                                                                      world: dict[str, Any],
                                                                      api_settings: Settings) -> None:
    """Was: the catalog's freshness reason quoted the last sync error's first line, which can
    quote a value the sync read (here a failed cast on a filtered-out row's excluded column)."""
    import datetime as dt

    from shared.control.db import session_scope
    from shared.control.models import TableStatusRow

    now = dt.datetime.now(dt.UTC)
    error = "Conversion Error: Could not convert string 'SECRETCANARY-3' to INT32 (row HIDDENROW-3)"
    with session_scope(api_settings.control_url) as s:
        row = s.get(TableStatusRow, CUSTOMERS) or TableStatusRow(key=CUSTOMERS)
        row.last_success_at, row.last_failure_at, row.last_error = now - dt.timedelta(hours=1), now, error
        s.merge(row)
    for who in ("g", "a"):
        for url in (f"/api/v1/data/tables/{CUSTOMERS}", "/api/v1/data/tables"):
            r = client.get(url, headers=world[who])
            assert r.status_code == 200, r.text
            assert not leaks(everything(r))
        fresh = client.get(f"/api/v1/data/tables/{CUSTOMERS}", headers=world[who]).json()["freshness"]
        assert fresh["status"] == "failing"
        assert "shown to admins" in fresh["reason"]
    admin = client.get(f"/api/v1/data/tables/{CUSTOMERS}", headers=world["admin"]).json()["freshness"]
    assert "SECRETCANARY-3" in admin["reason"]


# -- MCP tools and resources -----------------------------------------------------------------------------

class TestMcpUnderAPolicy:
    """The tools run the REST routes as the caller: every answer is the policy copy's view."""

    @pytest.fixture
    def api_settings(self, settings: Settings) -> Settings:
        import dataclasses

        return dataclasses.replace(settings, mcp=dataclasses.replace(settings.mcp, allowed_hosts="testserver.local"))

    @staticmethod
    def rpc(client: TestClient[Litestar], headers: Headers, method: str, params: dict[str, Any]) -> dict[str, Any]:
        r = client.post("/mcp", headers={"accept": "application/json, text/event-stream",
                                         "content-type": "application/json"} | headers,
                        json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        assert r.status_code == 200, r.text
        assert not leaks(r.text), r.text
        assert "WMCANARY" not in r.text
        return r.json()  # type: ignore[no-any-return]

    def test_tools_and_resources_show_only_the_policy_view(self, client: TestClient[Litestar],
                                                           world: dict[str, Any]) -> None:
        g = world["g"]
        calls = [("list_tables", {}), ("describe_table", {"table": "customers"}),
                 ("query", {"sql": "SELECT * FROM customers"}), ("query", {"sql": "SELECT secret FROM customers"}),
                 ("sample", {"table": "customers", "method": "random", "size": 40}),
                 ("profile", {"table": "customers"})]
        texts = []
        for tool, args in calls:
            result = self.rpc(client, g, "tools/call", {"name": tool, "arguments": args})["result"]
            texts.append(result["content"][0]["text"])
        assert "secret" not in texts[1].lower().split("sample rows")[0]  # the columns described
        assert "rule=" in texts[3]  # the excluded column is refused, as over REST
        resources = self.rpc(client, g, "resources/list", {})["result"]["resources"]
        uri = next(x["uri"] for x in resources if CUSTOMERS in x["uri"])
        schema = self.rpc(client, g, "resources/read", {"uri": uri})["result"]["contents"][0]["text"]
        assert '"secret"' not in schema
        assert '"row_count": 20' in schema or '"row_count":20' in schema


# -- the adversarial corpus on the other read paths ----------------------------------------------------

def test_no_spelling_leaks_through_a_pinned_older_version_or_a_dry_run(
        client: TestClient[Litestar], world: dict[str, Any], api_settings: Settings) -> None:
    """The guard's adversarial spellings, read at an older version pinned with ``at_versions``
    (whose own classification missed the e-mails) and dry-run: nothing the policy hides."""
    from tests.serving.policy_support import ADVERSARIAL

    old = publish_classified(api_settings.served_path, CUSTOMERS, CUSTOMERS_SQL, not_personal=("email",)).version
    publish_classified(api_settings.served_path, CUSTOMERS, CUSTOMERS_SQL)
    g = world["g"]
    for sql in ADVERSARIAL:
        reads_customers = "customers" in sql.lower()
        pinned = query(client, g, sql, at_versions={CUSTOMERS: old}) if reads_customers else None
        dry = query(client, g, sql, dry_run=True)
        for r in (pinned, dry):
            if r is None:
                continue
            assert not leaks(everything(r)), (sql, r.text[:500])
            if r.status_code >= 400:
                assert_error(r, r.status_code)


def test_reading_an_older_version_keeps_the_newer_versions_copies(client: TestClient[Litestar], world: dict[str, Any],
                                                                  api_settings: Settings) -> None:
    """Was: building the copy of an older version pinned with ``at_versions`` removed the current
    version's copies past the grace period as if they were the superseded ones."""
    import os

    old = publish_classified(api_settings.served_path, CUSTOMERS, CUSTOMERS_SQL).version
    publish_classified(api_settings.served_path, CUSTOMERS, CUSTOMERS_SQL)
    g = world["g"]
    assert query(client, g, "SELECT count(*) FROM customers").json()["rows"] == [[20]]
    copies = api_settings.home_path / "tmp" / "policy-copies"
    current = [f for f in copies.rglob("*.duckdb") if not f.name.startswith(old)]
    assert current
    aged = os.stat(current[0]).st_mtime - 10 * 86400
    for f in current:
        os.utime(f, (aged, aged))
    r = query(client, g, "SELECT count(*) FROM customers", at_versions={CUSTOMERS: old})
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == [[20]]
    assert all(f.exists() for f in current)
    assert query(client, g, "SELECT count(*) FROM customers").json()["rows"] == [[20]]


def test_an_unambiguous_format_in_a_minority_of_values_is_masked(
        client: TestClient[Litestar], api_settings: Settings, make_swarm: Callable[..., dict[str, Any]],
        agent_headers: Callable[..., Headers]) -> None:
    """Was: a column judged only by its majority served the e-mails, SSNs and card numbers of a
    third of its rows raw when the rest were placeholders (``n/a``); the e-mails here are in 2% of the rows."""
    key = "demo.public.leads"
    publish_classified(api_settings.served_path, key, """
        SELECT i AS id,
               CASE WHEN i % 50 = 0 THEN 'lead' || i || '@sparse-canary.example' ELSE 'n/a' END AS reach,
               CASE WHEN i % 3 = 0 THEN '219-09-9999' ELSE 'pending' END AS ref_code,
               CASE WHEN i % 3 = 0 THEN '4111111111111111' ELSE 'none' END AS ref_no,
               (10000000000000 + i * 7919)::VARCHAR AS order_ref,
               CASE WHEN i % 3 = 0 THEN 'gold' ELSE 'n/a' END AS tier
        FROM range(300) t(i)""")
    agent = agent_headers(make_swarm([key])["id"])
    masked = {c["name"]: c["masked"] for c in client.get(f"/api/v1/data/tables/{key}", headers=agent).json()["columns"]}
    assert masked == {"id": None, "reach": "hash", "ref_code": "hash", "ref_no": "hash", "order_ref": None,
                      "tier": None}
    r = query(client, agent, "SELECT * FROM leads")
    assert r.status_code == 200, r.text
    for raw in ("sparse-canary", "219-09-9999", "4111111111111111"):
        assert raw not in everything(r)


def test_personal_data_inside_a_minority_of_short_notes_is_masked(
        client: TestClient[Litestar], api_settings: Settings, make_swarm: Callable[..., dict[str, Any]],
        agent_headers: Callable[..., Headers]) -> None:
    """Was: free text was judged only when most values were long sentences, so e-mails inside
    the few long notes of a column of mostly short ones (``ok``) were served raw."""
    key = "demo.public.tickets2"
    publish_classified(api_settings.served_path, key, """
        SELECT i AS id, CASE WHEN i % 10 = 0 THEN 'please reach me at fan' || i || '@note-canary.example'
                             ELSE 'ok' END AS remark
        FROM range(300) t(i)""")
    agent = agent_headers(make_swarm([key])["id"])
    r = query(client, agent, "SELECT * FROM tickets2")
    assert r.status_code == 200, r.text
    assert "note-canary" not in everything(r)
    entry = client.get(f"/api/v1/data/tables/{key}", headers=agent).json()
    assert {c["name"]: c["masked"] for c in entry["columns"]} == {"id": None, "remark": "hash"}


def test_a_failed_refresh_jobs_errors_are_not_shown_to_a_caller_under_a_policy(
        client: TestClient[Litestar], world: dict[str, Any], api_settings: Settings) -> None:
    """Was: polling a refresh job answered its errors as the run wrote them, quoted values included."""
    from serving.sync import store
    from shared.control.db import session_scope
    from shared.control.models import SyncRequestRow

    job = store.create(api_settings.control_url, table_key=CUSTOMERS, kind="run", partitions=[], requested_by="x",
                       reason="refresh", status="failed")
    with session_scope(api_settings.control_url) as s:
        row = s.get(SyncRequestRow, job.id)
        assert row is not None
        row.error = "Conversion Error: Could not convert string 'SECRETCANARY-7' to INT32"
    url = f"/api/v1/data/tables/customers/refresh/{job.id}"
    r = client.get(url, headers=world["g"])
    assert r.status_code == 200, r.text
    assert not leaks(everything(r))
    assert r.json()["errors"] == ["the sync failed (its error message is shown to admins)"]
    assert "SECRETCANARY-7" in client.get(url, headers=world["admin"]).text


def test_two_swarms_under_the_same_policy_share_no_copy_and_no_hash(
        client: TestClient[Litestar], world: dict[str, Any], make_swarm: Callable[..., dict[str, Any]],
        agent_headers: Callable[..., Headers], services: Any) -> None:
    """Policy copies, instances and profiles are keyed by the swarm's hash key too: an identical
    rule set in another swarm never reads this swarm's copy (its hashes would join across swarms)."""
    from serving.queries.services import get_engine

    other = make_swarm([CUSTOMERS, ORDERS])
    r = client.put(f"/api/v1/admin/swarms/{other['id']}/policies/{CUSTOMERS}", headers=world["admin"], json=POLICY)
    assert r.status_code == 200, r.text
    b = agent_headers(other["id"])
    sql = "SELECT email FROM customers ORDER BY customer_id"
    mine, theirs = (query(client, h, sql).json()["rows"] for h in (world["g"], b))
    assert len(mine) == len(theirs) == 20
    assert not set(map(tuple, mine)) & set(map(tuple, theirs))
    for h in (world["g"], b):
        prof = client.get("/api/v1/data/tables/customers/profile?columns=email", headers=h).json()
        assert not leaks(json.dumps(prof))
    engine = get_engine(services)
    copies = {policy for inst in engine.instances._live.values() for table, _, policy in inst.key
              if policy and table == CUSTOMERS}
    assert len(copies) >= 2
