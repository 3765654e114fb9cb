"""Admin login (``POST /api/v1/auth/token``), the persisted signing secret, and ``whoami``."""

from __future__ import annotations

import dataclasses
import os
import stat
from typing import Any

import jwt
import pytest
from litestar.testing import TestClient

from serving.app import create_app
from serving.lib.tokens import SECRET_FILE, resolve_jwt_secret
from shared.settings import Settings
from tests.serving.helpers import ADMIN_PASSWORD, assert_error, bearer

LOGIN = "/api/v1/auth/token"


def test_login_answers_a_bearer_token(client: Any, api_settings: Settings) -> None:
    r = client.post(LOGIN, data={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"  # noqa: S105 - the OAuth2 token type
    assert body["expires_in"] == api_settings.auth.admin_token_ttl_s
    claims = jwt.decode(body["access_token"], api_settings.auth.jwt_secret, algorithms=["HS256"],
                        audience=api_settings.auth.jwt_audience)
    assert claims["typ"] == "admin"
    assert claims["sub"] == "admin"
    assert {"exp", "iat", "jti", "iss", "aud"} <= set(claims)
    me = client.get("/api/v1/auth/whoami", headers=bearer(body["access_token"]))
    assert me.json() == {"kind": "admin", "subject": "admin", "token_id": None, "swarm_id": None, "grants": None}


@pytest.mark.parametrize(("username", "password"), [
    ("admin", "wrong"), ("admin", ""), ("root", ADMIN_PASSWORD), ("ADMIN", ADMIN_PASSWORD),
    ("admin", ADMIN_PASSWORD + " "), ("", ""),
])
def test_bad_credentials_are_401(client: Any, username: str, password: str) -> None:
    r = client.post(LOGIN, data={"username": username, "password": password})
    assert_error(r, 401, "unauthorized", "bad_credentials")
    assert ADMIN_PASSWORD not in r.text


def test_missing_fields_are_400(client: Any) -> None:
    assert_error(client.post(LOGIN, data={"username": "admin"}), 400, "validation_error")


def test_json_body_is_not_a_login(client: Any) -> None:
    r = client.post(LOGIN, json={"username": "admin", "password": ADMIN_PASSWORD})
    assert 400 <= r.status_code < 500
    assert_error(r, r.status_code)


def test_empty_admin_password_disables_login(api_settings: Settings) -> None:
    settings = dataclasses.replace(api_settings, auth=dataclasses.replace(api_settings.auth, admin_password=""))
    with TestClient(create_app(settings)) as client:
        assert_error(client.post(LOGIN, data={"username": "admin", "password": ""}), 401, "unauthorized")


def test_login_attempts_are_rate_limited(client: Any) -> None:
    statuses = [client.post(LOGIN, data={"username": "admin", "password": "guess"}).status_code for _ in range(40)]
    assert statuses.count(429) >= 5
    r = client.post(LOGIN, data={"username": "admin", "password": ADMIN_PASSWORD})
    error = assert_error(r, 429, "rate_limited", "login_rate_limit")
    assert "login" in error["message"]
    assert int(r.headers["retry-after"]) >= 1


def test_generated_secret_is_persisted_and_private(api_settings: Settings) -> None:
    settings = dataclasses.replace(api_settings, auth=dataclasses.replace(api_settings.auth, jwt_secret=""))
    first = resolve_jwt_secret(settings)
    path = settings.home_path / SECRET_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(first) >= 32
    assert resolve_jwt_secret(settings) == first  # a second replica on the same home agrees


def test_tokens_survive_a_restart_with_a_generated_secret(api_settings: Settings) -> None:
    settings = dataclasses.replace(api_settings, auth=dataclasses.replace(api_settings.auth, jwt_secret=""))
    with TestClient(create_app(settings)) as one:
        token = one.post(LOGIN, data={"username": "admin", "password": ADMIN_PASSWORD}).json()["access_token"]
    with TestClient(create_app(settings)) as two:
        assert two.get("/api/v1/admin/swarms", headers=bearer(token)).status_code == 200
