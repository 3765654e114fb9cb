"""Routes of the Dagster UI feature: the admin login for browsers, and ``/dagster/`` itself.

``/dagster/*`` is a mounted ASGI app that admits the admin (see ``access.py``) and then
forwards to the internal webserver (see ``proxy.py``). A browser that opens the UI
without a session is sent to the login form; any other request without credentials is a
401 in the API's error shape, a swarm or agent token a 403.

What the UI shows is for the admin only: it can launch and cancel runs, and its asset
pages carry every table's profile (top values, min/max, means) from the materialization
metadata, which no table grant or masking rule narrows. The admin may read every table
through the API anyway, so the UI reveals nothing the admin could not see there.
"""

from __future__ import annotations

import hmac
from html import escape
from typing import Annotated, Any, cast
from urllib.parse import unquote

from litestar import MediaType, Request, Response, asgi, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect
from litestar.types import Receive, Scope, Send

from serving.dagster_ui.access import SESSION_COOKIE
from serving.dagster_ui.proxy import forward_http, forward_websocket, proxied_rest
from serving.dagster_ui.services import get_ui
from serving.lib.audit import CALLER_KEY
from serving.lib.errors import ApiError, Unauthorized
from serving.lib.identity import LoginForm
from serving.lib.ingress import client_host
from serving.lib.limits import get_limiter
from serving.lib.services import Services
from shared.dagster_names import UI_PATH_PREFIX

LOGIN_PATH = f"{UI_PATH_PREFIX}/_login"
LOGOUT_PATH = f"{UI_PATH_PREFIX}/_logout"

_LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>agents-data: Dagster UI login</title>
<style>body{{font-family:sans-serif;max-width:22rem;margin:4rem auto}}label,input,button{{display:block;width:100%;
margin:.4rem 0}}</style></head>
<body><h1>Dagster UI</h1><p>Admins only. Log in with the agents-data admin account.</p>
<form method="post" action="{action}">
<label>User name <input name="username" autocomplete="username" value="{user}"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Log in</button></form></body></html>
"""


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def _secure(request: Request[Any, Any, Any]) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "").lower() == "https"


@get(LOGIN_PATH, operation_id="dagster_ui_login_form", tags=["dagster-ui"], security=[{}],
     include_in_schema=False, sync_to_thread=False)
def login_form(services: Services) -> Response[str]:
    """The admin login form for the Dagster UI (a browser cannot send a bearer header itself)."""
    page = _LOGIN_PAGE.format(action=LOGIN_PATH, user=escape(services.settings.auth.admin_username))
    return Response(page, media_type=MediaType.HTML, headers={"Cache-Control": "no-store"})


@post(LOGIN_PATH, operation_id="dagster_ui_login", tags=["dagster-ui"], security=[{}], include_in_schema=False,
      status_code=303)
async def login(request: Request[Any, Any, Any], services: Services,
                data: Annotated[LoginForm, Body(media_type=RequestEncodingType.URL_ENCODED)]) -> Redirect:
    """Check the admin credentials (same rate limit as the API login) and start a UI session."""
    get_limiter(services).check_login(client_host(request))
    auth = services.settings.auth
    user_ok = _same(data.username, auth.admin_username)
    password_ok = _same(data.password, auth.admin_password)
    if not (user_ok and password_ok and auth.admin_password):
        raise Unauthorized("invalid user name or password", rule="bad_credentials")
    ui = get_ui(services)
    cookie = Cookie(key=SESSION_COOKIE, value=ui.access.mint_session(), path=UI_PATH_PREFIX, httponly=True,
                    samesite="strict", secure=_secure(request), max_age=ui.access.session_ttl_s)
    return Redirect(path=f"{UI_PATH_PREFIX}/", status_code=303, cookies=[cookie],
                    headers={"Cache-Control": "no-store"})


@post(LOGOUT_PATH, operation_id="dagster_ui_logout", tags=["dagster-ui"], security=[{}], include_in_schema=False,
      status_code=303)
async def logout() -> Redirect:
    """End the UI session in this browser (the cookie is cleared)."""
    cookie = Cookie(key=SESSION_COOKIE, value="", path=UI_PATH_PREFIX, httponly=True, samesite="strict", max_age=0)
    return Redirect(path=LOGIN_PATH, status_code=303, cookies=[cookie])


async def _redirect(send: Any, location: str, status: int) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"location", location.encode()), (b"content-length", b"0"), (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": b""})


def _wants_page(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    return (connection.scope.get("method") == "GET" and "text/html" in connection.headers.get("accept", "")
            and "authorization" not in connection.headers)


@asgi(UI_PATH_PREFIX, is_mount=True, operation_id="dagster_ui", include_in_schema=False, copy_scope=False)
async def dagster_ui(scope: Scope, receive: Receive, send: Send) -> None:
    """The Dagster UI (pages, static assets, GraphQL, websockets), for the admin only."""
    await _serve(cast("dict[str, Any]", scope), receive, send)


async def _serve(scope: dict[str, Any], receive: Any, send: Any) -> None:
    services: Services = scope["app"].state.services
    ui = get_ui(services)
    connection: ASGIConnection[Any, Any, Any, Any] = ASGIConnection(scope, receive=receive, send=send)  # type: ignore[arg-type]
    websocket = scope["type"] == "websocket"
    # The mount rewrote the path to the remainder; the audit row must name what was asked.
    scope["path"] = unquote(bytes(scope.get("raw_path") or b"").split(b"?", 1)[0].decode("latin-1")) or scope["path"]
    try:
        rest = proxied_rest(scope)
        caller = await ui.access.admit(connection, method="WEBSOCKET" if websocket else scope["method"])
    except ApiError as e:
        if websocket:  # closing before accept answers the handshake with 403
            await send({"type": "websocket.close", "code": 4000 + e.status})
            return
        if isinstance(e, Unauthorized) and _wants_page(connection):
            await _redirect(send, LOGIN_PATH, 303)
            return
        raise
    scope.setdefault("state", {})[CALLER_KEY] = caller
    if websocket:
        await forward_websocket(ui.upstream, scope, receive, send, rest=rest)
        return
    if rest == "":  # the webserver serves its pages under the prefix's folder
        await _redirect(send, f"{UI_PATH_PREFIX}/", 307)
        return
    await forward_http(ui.client, ui.upstream, scope, receive, send, rest=rest,
                       drop=frozenset({ui.access.sso_header}))


ROUTES: list[Any] = [login_form, login, logout, dagster_ui]
