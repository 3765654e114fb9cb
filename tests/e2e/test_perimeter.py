"""Nothing beside the API is open: the Dagster UI and the files under the data home.

One platform of real processes (fakesnow, Dagster code server, webserver and daemon on
PostgreSQL, API replicas), started with a umask of 0022 and the stand-in's password left
to its default (as ``agents-data up`` does), so that:

- the Dagster UI at the API's ``/dagster/`` refuses anonymous callers (401) and agent
  tokens (403), and works for the admin: by bearer token (GraphQL, ``launchRun`` of an
  asset whose run then shows), by the login cookie (the page and its scripts load, the
  GraphQL websocket answers) and, on a replica that trusts loopback as its SSO proxy, by
  the SSO header, which the other replica ignores;
- resource config read as the admin through GraphQL shows no password value;
- after a sync, queries, an artifact upload and result exports, nothing under
  AGENTS_DATA_HOME grants any permission to group or others.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared import processes
from shared.cli import _dagster_commands
from shared.filemodes import loose_entries
from tests.e2e.platform import Platform, PostgresUnavailable, start_platform, wait_until
from tests.serving.helpers import assert_error, bearer, create_swarm, mint_token

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

ITEMS = "demo.perimeter.items"
STAND_IN_PASSWORD = "snow"  # noqa: S105 - the stand-in's default password, which must never be shown
GRAPHQL = "/dagster/graphql"
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) { __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } }
}
"""
RUN = "query Run($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"
RESOURCES = """
query Resources($selector: RepositorySelector!) {
  allTopLevelResourceDetailsOrError(repositorySelector: $selector) {
    __typename
    ... on ResourceDetailsList { results { name configFields { name } configuredValues { key value type } } }
  }
}
"""


def _seed(cur: Any) -> None:
    cur.execute("CREATE SCHEMA IF NOT EXISTS DEMO.PERIMETER")
    cur.execute("CREATE OR REPLACE TABLE DEMO.PERIMETER.ITEMS (ID NUMBER(10,0), COUNTRY TEXT, AMOUNT NUMBER(10,2))")
    cur.execute("INSERT INTO DEMO.PERIMETER.ITEMS SELECT seq4(), 'DE', uniform(1, 100, random()) "
                "FROM TABLE(GENERATOR(ROWCOUNT => 500))")


def _prepare(platform: Platform) -> None:
    platform.register(table_name="items", schema_name="perimeter", strategy="FULL")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """Started under umask 0022 (every child inherits it); replica ``sso`` trusts loopback as SSO proxy."""
    old = os.umask(0o022)
    try:
        with start_platform(tmp_path_factory.mktemp("perimeter"), replicas=("a",), seed=_seed, prepare=_prepare,
                            extra_env={"SNOWFLAKE_PASSWORD": ""}) as started:
            base_env = started.env
            started.env = {**base_env, "DAGSTER_UI_SSO_PROXIES": "127.0.0.1/32"}
            try:
                started.start_api("sso")
            finally:
                started.env = base_env
            yield started
    except PostgresUnavailable as e:
        pytest.skip(str(e))
    finally:
        os.umask(old)


@pytest.fixture(scope="module")
def admin(platform: Platform) -> dict[str, str]:
    return platform.admin_headers("a")


@pytest.fixture(scope="module")
def agent(platform: Platform, admin: dict[str, str]) -> dict[str, str]:
    with platform.apis["a"].client() as a:
        swarm = create_swarm(a, admin, [ITEMS])
        return bearer(mint_token(a, admin, "agent", swarm["id"])["token"])


def _gql(client: httpx.Client, query: str, variables: dict[str, Any] | None = None,
         headers: dict[str, str] | None = None) -> httpx.Response:
    return client.post(GRAPHQL, json={"query": query, "variables": variables or {}}, headers=headers or {})


def _data(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text[:500]
    body = response.json()
    assert not body.get("errors"), body
    return body["data"]  # type: ignore[no-any-return]


def _launch_params() -> dict[str, Any]:
    return {"selector": {"repositoryLocationName": "agents_data", "repositoryName": "__repository__",
                         "jobName": "__ASSET_JOB", "assetSelection": [{"path": ITEMS.split(".")}]},
            "runConfigData": {}, "executionMetadata": {"tags": [{"key": "agents_data/table", "value": ITEMS}]}}


def test_the_webserver_listens_on_loopback_under_the_prefix(platform: Platform) -> None:
    args = dict(_dagster_commands(platform.settings))["dagster-webserver"]
    assert args[args.index("-h") + 1] == "127.0.0.1"
    assert args[args.index("--path-prefix") + 1] == "/dagster"


def test_anonymous_callers_are_refused(platform: Platform) -> None:
    with platform.apis["a"].client() as a:
        assert_error(_gql(a, "{ version }"), 401, rule="token_missing")
        assert_error(_gql(a, LAUNCH, {"params": _launch_params()}), 401)
        assert_error(a.get("/dagster/assets"), 401)
        assert_error(a.get("/dagster/_next/static/chunks/nothing.js"), 401)
        page = a.get("/dagster/", headers={"Accept": "text/html"})
        assert page.status_code == 303
        assert page.headers["location"] == "/dagster/_login"
        # Forged credentials: a bad bearer, a forged cookie, an SSO header from an untrusted peer.
        assert_error(_gql(a, "{ version }", headers={"Authorization": "Bearer x.y.z"}), 401)
        assert_error(a.post(GRAPHQL, json={"query": "{ version }"}, cookies={"agents_data_dagster_ui": "x.y.z"}), 401)
        assert_error(_gql(a, "{ version }", headers={"X-Forwarded-User": "mallory"}), 401)


def test_agent_tokens_are_forbidden(platform: Platform, agent: dict[str, str], admin: dict[str, str]) -> None:
    with platform.apis["a"].client() as a:
        assert_error(_gql(a, "{ version }", headers=agent), 403, rule="requires_admin")
        assert_error(a.get("/dagster/", headers=agent), 403)
        # An API admin token is no UI session cookie (its audience differs), and vice versa.
        token = admin["Authorization"].split()[1]
        assert_error(a.post(GRAPHQL, json={"query": "{ version }"}, cookies={"agents_data_dagster_ui": token}), 401)


def test_admin_bearer_launches_a_run_that_shows_in_dagster(platform: Platform, admin: dict[str, str]) -> None:
    with platform.apis["a"].client() as a:
        assert _data(_gql(a, "{ version }", headers=admin))["version"]
        launched = _data(_gql(a, LAUNCH, {"params": _launch_params()}, headers=admin))["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run_id = launched["run"]["runId"]

        def done() -> str | None:
            status = _data(_gql(a, RUN, {"id": run_id}, headers=admin))["runOrError"]["status"]
            return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None

        assert wait_until(done, timeout_s=300, interval_s=1.0, message="the launched run to end") == "SUCCESS"
    # The internal address the API uses answers the same run (unaffected by the proxy).
    assert platform.graphql(RUN, {"id": run_id})["runOrError"]["status"] == "SUCCESS"


def test_resource_config_shows_no_password(platform: Platform, admin: dict[str, str]) -> None:
    selector = {"repositoryLocationName": "agents_data", "repositoryName": "__repository__"}
    with platform.apis["a"].client() as a:
        response = _gql(a, RESOURCES, {"selector": selector}, headers=admin)
    details = _data(response)["allTopLevelResourceDetailsOrError"]
    assert details["__typename"] == "ResourceDetailsList", details
    snowflake = next(r for r in details["results"] if r["name"] == "snowflake")
    values = {v["key"]: v for v in snowflake["configuredValues"]}
    assert values["password"]["type"] == "ENV_VAR"
    assert values["password"]["value"] == "SNOWFLAKE_PASSWORD"
    assert STAND_IN_PASSWORD not in json.dumps(values["password"])
    assert f'"{STAND_IN_PASSWORD}"' not in response.text
    # No resource shows any other secret either (the others resolve settings in the run worker).
    shown = json.dumps([r["configuredValues"] for r in details["results"]])
    for secret in ("ADMIN_PASSWORD", "JWT_SECRET", "DATABASE_URL"):
        assert platform.env[secret] not in shown, secret


def test_admin_login_cookie_loads_the_ui(platform: Platform) -> None:
    api = platform.apis["a"]
    with api.client() as browser:
        assert "<form" in browser.get("/dagster/_login").text
        wrong = browser.post("/dagster/_login", data={"username": "admin", "password": "nope"})
        assert_error(wrong, 401, rule="bad_credentials")
        login = browser.post("/dagster/_login", data={"username": "admin", "password": platform.env["ADMIN_PASSWORD"]})
        assert login.status_code == 303, login.text
        assert login.headers["location"] == "/dagster/"
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie
        assert "samesite=strict" in cookie
        assert "path=/dagster" in cookie
        page = browser.get("/dagster/", headers={"Accept": "text/html"})
        assert page.status_code == 200, page.text[:300]
        assert "text/html" in page.headers["content-type"]
        scripts = re.findall(r'src="(/dagster/[^"]+\.js)"', page.text)
        assert scripts, page.text[:1000]
        for src in scripts[:3]:
            asset = browser.get(src)
            assert asset.status_code == 200, src
            assert "javascript" in asset.headers["content-type"]
        origin = {"Origin": api.url}
        assert _data(browser.post(GRAPHQL, json={"query": "{ version }"}, headers=origin))["version"]
        # A page on another origin cannot use the admin's cookie to change anything.
        forged = browser.post(GRAPHQL, json={"query": LAUNCH, "variables": {"params": _launch_params()}},
                              headers={"Origin": "http://evil.example"})
        assert_error(forged, 403, rule="cross_origin")
        assert asyncio.run(_websocket_ack(api.url, browser.cookies.get("agents_data_dagster_ui")))
        out = browser.post("/dagster/_logout")
        assert out.status_code == 303
        assert_error(browser.post(GRAPHQL, json={"query": "{ version }"}), 401)


async def _websocket_ack(base: str, cookie: str | None) -> bool:
    """Dagster's GraphQL websocket (graphql-ws) through the proxy: connection_init → connection_ack."""
    from websockets.asyncio.client import connect

    url = base.replace("http://", "ws://") + GRAPHQL
    headers = {"Cookie": f"agents_data_dagster_ui={cookie}", "Origin": base}
    async with connect(url, subprotocols=["graphql-ws"], additional_headers=headers, open_timeout=30,  # type: ignore[list-item]
                       proxy=None) as ws:
        assert ws.subprotocol == "graphql-ws"
        await ws.send(json.dumps({"type": "connection_init", "payload": {}}))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
            if message.get("type") == "connection_ack":
                return True
    return False


def test_websockets_need_the_admin_too(platform: Platform) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus

    async def attempt() -> int:
        url = platform.apis["a"].url.replace("http://", "ws://") + GRAPHQL
        try:
            async with connect(url, subprotocols=["graphql-ws"], open_timeout=30, proxy=None):  # type: ignore[list-item]
                return 101
        except InvalidStatus as e:
            return int(e.response.status_code)

    assert asyncio.run(attempt()) == 403


def test_sso_header_is_honoured_only_from_the_trusted_proxy(platform: Platform) -> None:
    sso = {"X-Forwarded-User": "ops@example.com"}
    with platform.apis["sso"].client() as trusted, platform.apis["a"].client() as untrusted:
        assert _data(_gql(trusted, "{ version }", headers=sso))["version"]
        assert trusted.get("/dagster/", headers={**sso, "Accept": "text/html"}).status_code == 200
        assert_error(_gql(trusted, "{ version }"), 401)
        assert_error(_gql(untrusted, "{ version }", headers=sso), 401)


def test_everything_under_the_data_home_is_owner_only(platform: Platform, admin: dict[str, str],
                                                     agent: dict[str, str]) -> None:
    """Made under umask 0022: the sync above, queries with exported results, an artifact upload."""
    home = Path(platform.env["AGENTS_DATA_HOME"])
    with platform.apis["a"].client() as a:
        assert any(home.joinpath("served").rglob("*.duckdb")), "the sync served nothing"
        inline = a.post("/api/v1/queries/execute", headers=agent,
                        json={"query": f"select count(*) as n from {ITEMS}"})
        assert inline.status_code == 200, inline.text
        assert inline.json()["rows"] == [[500]]
        for fmt in ("parquet", "csv"):
            exported = a.post("/api/v1/queries/execute", headers=agent,
                              json={"query": f"select * from {ITEMS}", "output_format": fmt})
            assert exported.status_code == 200, exported.text
            link = exported.json()["result_url"]
            assert a.get(link, headers=agent).status_code == 200
        upload = a.post("/api/v1/artifacts", headers=agent,
                        data={"name": "findings.csv", "content_type": "text/csv", "visibility": "swarm"},
                        files={"file": ("findings.csv", b"country,n\nDE,500\n", "text/csv")})
        assert upload.status_code == 201, upload.text
        job = a.post("/api/v1/queries/execute", headers=agent, json={"query": f"select * from {ITEMS}", "wait_s": 0})
        job_id = job.json()["job_id"]
        wait_until(lambda: a.get(f"/api/v1/queries/jobs/{job_id}", headers=agent).json()["status"] == "succeeded",
                   timeout_s=60, message="the query job")
        saved = a.post(f"/api/v1/queries/jobs/{job_id}/artifact", headers=agent,
                       json={"name": "items.parquet", "format": "parquet"})
        assert saved.status_code in (200, 201), saved.text
    processes.wait_for_http(f"{platform.apis['a'].url}/health")
    for sub in ("served", "results", "artifacts"):
        assert any(home.joinpath(sub).rglob("*")), f"nothing was written under {sub}/"
    assert loose_entries(home) == []
    assert os.stat(home).st_mode & 0o777 == 0o700
