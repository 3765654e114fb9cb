"""An agent's journey through the MCP server, with the SDK's own client over real HTTP.

One module-scoped platform (stand-in, Dagster code server, webserver, daemon, one API
process on PostgreSQL). Nothing is synced before the test: the agent's first
``refresh_table`` over MCP makes the table's first served version through Dagster.
Then: tools listed, each tool called, a bad token refused, an ungranted table refused
by the same rule as over REST, a cut answer continued, an artifact round trip, resources.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.e2e.platform import Platform, PostgresUnavailable, start_platform
from tests.serving.helpers import bearer, create_swarm, mint_token

pytestmark = pytest.mark.e2e

ORDERS, SECRET = "demo.mcpj.orders", "demo.mcpj.secret"
TOOLS = {"list_tables", "describe_table", "query", "sample", "profile", "refresh_table", "get_job",
         "save_result_as_artifact", "list_artifacts", "read_artifact"}


def _seed(cur: Any) -> None:
    cur.execute("CREATE SCHEMA IF NOT EXISTS DEMO.MCPJ")
    cur.execute("CREATE OR REPLACE TABLE DEMO.MCPJ.ORDERS (ID NUMBER(10,0), STATUS TEXT, AMOUNT NUMBER(10,2))")
    cur.execute("INSERT INTO DEMO.MCPJ.ORDERS SELECT seq4(), 'paid', uniform(1, 100, random()) "
                "FROM TABLE(GENERATOR(ROWCOUNT => 900))")
    cur.execute("CREATE OR REPLACE TABLE DEMO.MCPJ.SECRET (X NUMBER(10,0))")


def _prepare(platform: Platform) -> None:
    platform.register(table_name="orders", schema_name="mcpj", strategy="FULL")
    platform.register(table_name="secret", schema_name="mcpj", strategy="FULL")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    env = {"QUERY_JSON_MAX_ROWS": "200", "QUERY_MAX_ROWS": "900", "MCP_ANSWER_MAX_CHARS": "4000",
           "MCP_REFRESH_WAIT_S": "150"}
    try:
        with start_platform(tmp_path_factory.mktemp("mcp"), replicas=("a",), seed=_seed, prepare=_prepare,
                            extra_env=env) as started:
            yield started
    except PostgresUnavailable as e:
        pytest.skip(str(e))


@pytest.fixture(scope="module")
def agent_token(platform: Platform) -> str:
    admin = platform.admin_headers("a")
    with platform.apis["a"].client() as a:
        swarm = create_swarm(a, admin, [ORDERS])
        return str(mint_token(a, admin, "agent", swarm["id"])["token"])


@contextlib.asynccontextmanager
async def session(url: str, token: str) -> AsyncIterator[ClientSession]:
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=240) as http, \
            streamable_http_client(url, http_client=http) as (read, write), ClientSession(read, write) as s:
        await s.initialize()
        yield s


async def text_of(s: ClientSession, tool: str, **args: Any) -> tuple[str, bool]:
    result = await s.call_tool(tool, args)
    return result.content[0].text, bool(result.is_error)  # type: ignore[union-attr]


def test_the_agent_journey_over_mcp(platform: Platform, agent_token: str) -> None:
    api = platform.apis["a"].url
    rest = httpx.Client(base_url=api, headers=bearer(agent_token), timeout=120)

    async def journey() -> None:
        for path in ("/mcp", "/mcp/"):
            async with session(api + path, agent_token) as s:
                assert {t.name for t in (await s.list_tools()).tools} == TOOLS
        async with session(api + "/mcp", agent_token) as s:
            # refresh: the first sync of the table, through Dagster, waited for within the bound
            text, err = await text_of(s, "refresh_table", table=ORDERS)
            assert not err, text
            assert re.search(r"refresh of demo\.mcpj\.orders: (started|existing_job)", text), text
            assert re.search(r"job \S+: succeeded", text), text
            job_id = re.search(r"job (\S+): succeeded", text).group(1)  # type: ignore[union-attr]
            polled, err = await text_of(s, "get_job", job_id=job_id, table=ORDERS)
            assert not err
            assert f"job {job_id}: succeeded" in polled
            again, _ = await text_of(s, "refresh_table", table=ORDERS, max_age_s=3600)
            assert "already_fresh" in again

            version = rest.get(f"/api/v1/data/tables/{ORDERS}").json()["served_version"]
            text, err = await text_of(s, "list_tables")
            assert not err
            assert f"- {ORDERS}: 900 rows, 3 columns, fresh" in text
            assert "secret" not in text
            text, err = await text_of(s, "describe_table", table="mcpj.orders")
            assert not err
            assert "- AMOUNT DECIMAL(10,2)" in text
            assert "5 sample rows (head):" in text
            text, err = await text_of(s, "sample", table=ORDERS, size=4, seed=3)
            assert not err
            assert "rows: 4 shown" in text
            assert f"version {version}" in text
            text, err = await text_of(s, "profile", table=ORDERS, columns=["AMOUNT"])
            assert not err
            assert "- AMOUNT DECIMAL(10,2):" in text

            # a cut answer and its continuation
            text, err = await text_of(s, "query", sql="select id, status from mcpj.orders order by id")
            assert not err
            assert len(text) <= 4000
            assert "CUT by the server's row cap of 200" in text
            assert f"{ORDERS} version {version}" in text
            cont_id = re.search(r"get_job with job_id=(\S+) ", text).group(1)  # type: ignore[union-attr]
            seen, cursor = [], None
            for _ in range(60):
                args: dict[str, Any] = {"job_id": cont_id} | ({"cursor": cursor} if cursor else {})
                page, err = await text_of(s, "get_job", **args)
                assert not err, page
                if "is running" in page:
                    await asyncio.sleep(0.5)
                    continue
                seen += [int(m) for m in re.findall(r"^\| (\d+) \| paid \|$", page, flags=re.MULTILINE)]
                nxt = re.search(r"cursor=(\S+)$", page.strip())
                if not nxt:
                    break
                cursor = nxt.group(1)
            assert seen == list(range(900))

            # an ungranted table: the REST rule, word for word
            refused = rest.post("/api/v1/queries/execute", json={"query": "select * from mcpj.secret"})
            err_body = refused.json()["error"]
            text, err = await text_of(s, "query", sql="select * from mcpj.secret")
            assert err
            assert f"error {refused.status_code} rule={err_body['rule']}: {err_body['message']}" in text
            assert err_body["rule"] == "table_not_granted"

            # an artifact round trip, and the resources
            text, err = await text_of(s, "save_result_as_artifact", job_id=cont_id, name="orders.csv", format="csv")
            assert not err, text
            artifact_id = re.search(r"saved artifact (\S+)", text).group(1)  # type: ignore[union-attr]
            listed, _ = await text_of(s, "list_artifacts")
            assert f"- {artifact_id}: orders.csv (text/csv" in listed
            content, err = await text_of(s, "read_artifact", artifact_id=artifact_id)
            assert not err
            assert re.search(r'content:\n"ID","STATUS"\n0,"paid"', content, flags=re.IGNORECASE), content
            uris = {str(r.uri) for r in (await s.list_resources()).resources}
            assert {f"table://{ORDERS}/schema", f"artifact://{artifact_id}"} <= uris
            schema = (await s.read_resource(f"table://{ORDERS}/schema")).contents[0]
            assert '"name": "AMOUNT"' in schema.text  # type: ignore[union-attr]

    asyncio.run(journey())
    rest.close()


def test_a_bad_token_gets_401_and_the_sdk_client_is_refused(platform: Platform) -> None:
    api = platform.apis["a"].url
    r = httpx.post(api + "/mcp", headers={"Authorization": "Bearer nope", "accept": "application/json, text/event-stream"},
                   json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=60)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer ")

    async def connect() -> None:
        async with session(api + "/mcp", "nope") as s:
            await s.list_tools()

    with pytest.raises(Exception):  # noqa: B017, PT011 - the SDK wraps the 401 in its own exception group
        asyncio.run(connect())
