"""Routes of the auth feature: the admin login."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from litestar import Request, get, post
from litestar.enums import RequestEncodingType
from litestar.params import Body

from serving.auth.schemas import AccessToken, Identity
from serving.lib.caller import Caller
from serving.lib.errors import Unauthorized
from serving.lib.identity import LoginForm, get_codec
from serving.lib.ingress import client_host
from serving.lib.limits import get_limiter
from serving.lib.services import Services
from serving.lib.tokens import CHALLENGE


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


@post("/api/v1/auth/token", operation_id="login", tags=["auth"], security=[{}], status_code=200)
async def login(request: Request[Any, Any, Any], services: Services,
                data: Annotated[LoginForm, Body(media_type=RequestEncodingType.URL_ENCODED)]) -> AccessToken:
    """Exchange the admin user name and password (form fields) for an admin bearer token."""
    get_limiter(services).check_login(client_host(request))
    auth = services.settings.auth
    # Compare both fields every time, in constant time, so timing tells nothing.
    user_ok = _same(data.username, auth.admin_username)
    password_ok = _same(data.password, auth.admin_password)
    if not (user_ok and password_ok and auth.admin_password):
        raise Unauthorized("invalid user name or password", rule="bad_credentials", headers=CHALLENGE)
    minted = get_codec(services).mint(typ="admin", sub=auth.admin_username, ttl_s=auth.admin_token_ttl_s)
    return AccessToken(access_token=minted.token, expires_in=auth.admin_token_ttl_s)


@get("/api/v1/auth/whoami", operation_id="whoami", tags=["auth"])
async def whoami(caller: Caller) -> Identity:
    """Who this token is and which tables it may read now (grants are evaluated on every request)."""
    return Identity(kind=caller.kind, subject=caller.subject, token_id=caller.token_id, swarm_id=caller.swarm_id,
                    grants=None if caller.is_admin else sorted(caller.grants))


ROUTES: list[Any] = [login, whoami]
