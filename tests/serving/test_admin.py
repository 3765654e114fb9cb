"""Admin endpoints: swarms, tokens (shown once, only a hash stored), revocation cascade, live grants."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from serving.lib.tokens import token_hash
from shared.control.db import session_scope
from shared.control.models import TokenRow
from tests.serving.helpers import assert_error, bearer, mint_token

SWARMS = "/api/v1/admin/swarms"
TOKENS = "/api/v1/admin/tokens"
WHOAMI = "/api/v1/auth/whoami"
ORDERS, USERS, EVENTS = "demo.public.orders", "demo.public.users", "demo.raw.events"


def test_swarm_lifecycle(client: Any, admin_headers: dict[str, str]) -> None:
    r = client.post(SWARMS, json={"name": "research", "description": "d", "grants": ["DEMO.Public.Orders", ORDERS, USERS]},
                    headers=admin_headers)
    assert r.status_code == 201, r.text
    swarm = r.json()
    assert swarm["grants"] == [ORDERS, USERS]  # lower-cased, de-duplicated, order kept
    assert swarm["id"].startswith("swm_")
    assert client.get(f"{SWARMS}/{swarm['id']}", headers=admin_headers).json() == swarm
    assert swarm in client.get(SWARMS, headers=admin_headers).json()
    r = client.patch(f"{SWARMS}/{swarm['id']}", json={"grants": [EVENTS]}, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert r.json()["grants"] == [EVENTS]
    assert r.json()["name"] == "research"


def test_swarm_validation(client: Any, admin_headers: dict[str, str], make_swarm: Callable[..., dict[str, Any]]) -> None:
    error = assert_error(client.post(SWARMS, json={"name": "x", "grants": ["orders", "a.b", "a.b.c.d", "a.b.c;drop"]},
                                     headers=admin_headers), 400, "bad_request")
    assert error["details"]["invalid"] == ["orders", "a.b", "a.b.c.d", "a.b.c;drop"]
    assert_error(client.post(SWARMS, json={"name": "", "grants": []}, headers=admin_headers), 400)
    assert_error(client.post(SWARMS, json={"grants": []}, headers=admin_headers), 400, "validation_error")
    assert_error(client.post(SWARMS, json={"name": "x", "extra": 1}, headers=admin_headers), 400, "validation_error")
    make_swarm([], name="taken")
    assert_error(client.post(SWARMS, json={"name": "taken"}, headers=admin_headers), 409, "conflict")
    other = make_swarm([])
    assert_error(client.patch(f"{SWARMS}/{other['id']}", json={"name": "taken"}, headers=admin_headers), 409)
    assert_error(client.get(f"{SWARMS}/swm_nope", headers=admin_headers), 404, "not_found")
    assert_error(client.patch(f"{SWARMS}/swm_nope", json={}, headers=admin_headers), 404, "not_found")


def test_token_is_shown_once_and_only_its_hash_is_stored(client: Any, admin_headers: dict[str, str], api_settings: Any,
                                                         make_swarm: Callable[..., dict[str, Any]]) -> None:
    swarm = make_swarm([ORDERS])
    created = mint_token(client, admin_headers, "swarm", swarm["id"], name="alpha", expires_in=3600)
    assert set(created) >= {"token_id", "token", "type", "created_at", "expires_at"}
    assert created["type"] == "swarm"
    created_at = dt.datetime.fromisoformat(created["created_at"])
    assert dt.datetime.fromisoformat(created["expires_at"]) - created_at == dt.timedelta(seconds=3600)
    listed = client.get(TOKENS, headers=admin_headers).json()
    assert [t["token_id"] for t in listed] == [created["token_id"]]
    assert "token" not in listed[0]
    assert created["token"] not in client.get(TOKENS, headers=admin_headers).text
    with session_scope(api_settings.control_url) as s:
        row = s.get(TokenRow, created["token_id"])
        assert row is not None
        assert row.token_hash == token_hash(created["token"])
        dumped = " ".join(str(v) for v in s.execute(sa.select(TokenRow.__table__)).one())
    assert created["token"] not in dumped


def test_agent_tables_must_be_a_subset_of_the_swarm_grants(client: Any, admin_headers: dict[str, str],
                                                            make_swarm: Callable[..., dict[str, Any]]) -> None:
    swarm = make_swarm([ORDERS, USERS])
    body = {"type": "agent", "swarm_id": swarm["id"], "name": "a", "allowed_tables": [ORDERS, EVENTS, "demo.x.y"]}
    error = assert_error(client.post(TOKENS, json=body, headers=admin_headers), 400, "bad_request", "table_not_granted")
    assert EVENTS in error["message"]
    assert "demo.x.y" in error["message"]
    assert error["details"]["not_granted"] == [EVENTS, "demo.x.y"]
    ok = mint_token(client, admin_headers, "agent", swarm["id"], allowed_tables=["DEMO.PUBLIC.ORDERS"])
    assert ok["allowed_tables"] == [ORDERS]


def test_token_request_validation(client: Any, admin_headers: dict[str, str],
                                  make_swarm: Callable[..., dict[str, Any]]) -> None:
    swarm = make_swarm([ORDERS])
    bad = [
        ({"type": "root", "swarm_id": swarm["id"], "name": "a"}, 400),
        ({"type": "swarm", "swarm_id": swarm["id"], "name": "a", "allowed_tables": [ORDERS]}, 400),
        ({"type": "agent", "swarm_id": swarm["id"], "name": "a", "expires_in": 0}, 400),
        ({"type": "agent", "swarm_id": swarm["id"], "name": "a", "expires_in": -5}, 400),
        ({"type": "agent", "swarm_id": swarm["id"], "name": "   "}, 400),
        ({"type": "agent", "swarm_id": "swm_missing", "name": "a"}, 404),
    ]
    for body, status in bad:
        assert_error(client.post(TOKENS, json=body, headers=admin_headers), status)


def test_grants_are_evaluated_on_every_request(client: Any, admin_headers: dict[str, str],
                                               make_swarm: Callable[..., dict[str, Any]],
                                               swarm_headers: Callable[[str], dict[str, str]],
                                               agent_headers: Callable[..., dict[str, str]]) -> None:
    swarm = make_swarm([ORDERS, USERS])
    swarm_h = swarm_headers(swarm["id"])
    agent_h = agent_headers(swarm["id"], allowed_tables=[ORDERS, USERS])
    narrow_h = agent_headers(swarm["id"], allowed_tables=[ORDERS])
    all_h = agent_headers(swarm["id"])  # no allowed_tables: the swarm's grants, whatever they become
    assert client.get(WHOAMI, headers=agent_h).json()["grants"] == [ORDERS, USERS]
    assert client.get(WHOAMI, headers=narrow_h).json()["grants"] == [ORDERS]
    client.patch(f"{SWARMS}/{swarm['id']}", json={"grants": [USERS, EVENTS]}, headers=admin_headers)
    assert client.get(WHOAMI, headers=swarm_h).json()["grants"] == sorted([EVENTS, USERS])
    assert client.get(WHOAMI, headers=agent_h).json()["grants"] == [USERS]
    assert client.get(WHOAMI, headers=narrow_h).json()["grants"] == []
    assert client.get(WHOAMI, headers=all_h).json()["grants"] == sorted([EVENTS, USERS])


def test_swarm_mints_agent_tokens_for_its_own_swarm(client: Any, admin_headers: dict[str, str],
                                                    make_swarm: Callable[..., dict[str, Any]]) -> None:
    swarm = make_swarm([ORDERS, USERS])
    other = make_swarm([EVENTS])
    parent = mint_token(client, admin_headers, "swarm", swarm["id"], expires_in=600)
    child = mint_token(client, bearer(parent["token"]), "agent", allowed_tables=[USERS], via_swarm=True,
                       expires_in=10_000)
    assert child["swarm_id"] == swarm["id"]
    assert child["parent_id"] == parent["token_id"]
    assert child["expires_at"] <= parent["expires_at"]  # never outlives the token that minted it
    me = client.get(WHOAMI, headers=bearer(child["token"])).json()
    assert me == {"kind": "agent", "subject": child["name"], "token_id": child["token_id"], "swarm_id": swarm["id"],
                  "grants": [USERS]}
    # The body cannot name another swarm, nor tables outside its own swarm's grants.
    r = client.post("/api/v1/swarm/agents/tokens", headers=bearer(parent["token"]),
                    json={"name": "x", "swarm_id": other["id"]})
    assert_error(r, 400, "validation_error")
    r = client.post("/api/v1/swarm/agents/tokens", headers=bearer(parent["token"]),
                    json={"name": "x", "allowed_tables": [EVENTS]})
    assert_error(r, 400, "bad_request", "table_not_granted")


def test_revoking_a_swarm_token_revokes_the_agents_it_minted(client: Any, admin_headers: dict[str, str],
                                                             make_swarm: Callable[..., dict[str, Any]]) -> None:
    swarm = make_swarm([ORDERS])
    parent = mint_token(client, admin_headers, "swarm", swarm["id"])
    children = [mint_token(client, bearer(parent["token"]), "agent", via_swarm=True) for _ in range(3)]
    bystander = mint_token(client, admin_headers, "agent", swarm["id"])
    r = client.delete(f"{TOKENS}/{parent['token_id']}", headers=admin_headers)
    assert r.status_code == 200, r.text
    assert set(r.json()["revoked"]) == {parent["token_id"], *(c["token_id"] for c in children)}
    for c in children:
        assert_error(client.get(WHOAMI, headers=bearer(c["token"])), 401, rule="token_revoked")
    assert client.get(WHOAMI, headers=bearer(bystander["token"])).status_code == 200
    active = {t["token_id"] for t in client.get(TOKENS, headers=admin_headers).json()}
    assert active == {bystander["token_id"]}
    everything = client.get(TOKENS, params={"include_revoked": "true"}, headers=admin_headers).json()
    assert {t["token_id"] for t in everything if not t["active"]} == {parent["token_id"], *(c["token_id"] for c in children)}
    # Revoking again is harmless; an unknown token is 404.
    assert client.delete(f"{TOKENS}/{parent['token_id']}", headers=admin_headers).status_code == 200
    assert_error(client.delete(f"{TOKENS}/tok_unknown", headers=admin_headers), 404, "not_found")


def test_list_tokens_filters(client: Any, admin_headers: dict[str, str], make_swarm: Callable[..., dict[str, Any]]) -> None:
    a, b = make_swarm([ORDERS]), make_swarm([ORDERS])
    ta = mint_token(client, admin_headers, "swarm", a["id"])
    tb = mint_token(client, admin_headers, "agent", b["id"])
    by_swarm = client.get(TOKENS, params={"swarm_id": a["id"]}, headers=admin_headers).json()
    assert [t["token_id"] for t in by_swarm] == [ta["token_id"]]
    by_type = client.get(TOKENS, params={"type": "agent"}, headers=admin_headers).json()
    assert [t["token_id"] for t in by_type] == [tb["token_id"]]
    page = client.get(TOKENS, params={"limit": 1}, headers=admin_headers).json()
    assert len(page) == 1
    assert_error(client.get(TOKENS, params={"limit": 0}, headers=admin_headers), 400, "validation_error")
