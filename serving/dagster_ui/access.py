"""Who may use the Dagster UI through the proxy: the admin, and nobody else.

Three ways in, checked in this order on every proxied request and websocket:

1. **SSO header.** A request whose direct peer is one of ``DAGSTER_UI_SSO_PROXIES`` and
   that carries ``DAGSTER_UI_SSO_HEADER`` (for example ``X-Forwarded-User`` set by
   oauth2-proxy) is admitted as that user. The same header from any other address is
   ignored: only the configured proxy may vouch for someone, and it must strip the
   header from what its own clients send.
2. **Bearer token.** ``Authorization: Bearer <admin token>`` from ``POST /api/v1/auth/token``.
   A genuine swarm or agent token is a 403: the UI shows every table's profile and can
   launch runs, which no table grant covers.
3. **Session cookie.** A browser cannot add a bearer header to its own page loads, so
   the admin login form at ``/dagster/_login`` sets an HttpOnly, SameSite=Strict cookie
   holding a token of its own audience (``<JWT_AUDIENCE>:dagster-ui``): the API refuses
   it as a bearer token, so a leaked UI cookie opens the UI only, for
   ``ADMIN_TOKEN_TTL_S`` at most.

Ambient credentials (the cookie and the SSO header, which the browser or the SSO proxy
add by themselves) also need a same-origin request for anything but a read: a page on
another origin must not launch runs with the admin's browser. A websocket handshake is
always checked, since browsers do not apply SameSite rules the same way there.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from litestar.connection import ASGIConnection

from serving.lib.caller import Caller
from serving.lib.errors import Forbidden, Unauthorized
from serving.lib.identity import IdentityStore, resolve_caller
from serving.lib.tokens import TokenCodec
from shared.settings import Settings

SESSION_COOKIE = "agents_data_dagster_ui"
UI_AUDIENCE_SUFFIX = ":dagster-ui"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_MAX_TOKEN = 4096
_MAX_SSO_USER = 256

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(raw: str) -> tuple[Network, ...]:
    """``DAGSTER_UI_SSO_PROXIES``: addresses or CIDR ranges, comma separated (bad entries fail the start)."""
    networks = []
    for entry in raw.split(","):
        item = entry.strip()
        if item:
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError as e:
                raise ValueError(f"DAGSTER_UI_SSO_PROXIES: {item!r} is not an address or CIDR range") from e
    return tuple(networks)


def _in(networks: Sequence[Network], host: str | None) -> bool:
    if not host or not networks:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(address in net for net in networks)


def same_origin(connection: ASGIConnection[Any, Any, Any, Any]) -> bool:
    """True when the request carries no ``Origin`` (not a cross-origin browser request) or
    an ``Origin`` naming the host the request was sent to."""
    origin = connection.headers.get("origin")
    if origin is None:
        return True
    host = (connection.headers.get("host") or "").lower()
    return bool(host) and urlsplit(origin).netloc.lower() == host


@dataclasses.dataclass(frozen=True)
class UiAccess:
    """The admission rule of one API process (built in the feature's startup)."""

    api_codec: TokenCodec
    session_codec: TokenCodec
    identity: IdentityStore
    admin_username: str
    session_ttl_s: int
    sso_header: str
    sso_networks: tuple[Network, ...]

    @classmethod
    def build(cls, settings: Settings, api_codec: TokenCodec, identity: IdentityStore) -> UiAccess:
        session_codec = TokenCodec(secret=api_codec.secret, audience=api_codec.audience + UI_AUDIENCE_SUFFIX,
                                   issuer=api_codec.issuer)
        return cls(api_codec=api_codec, session_codec=session_codec, identity=identity,
                   admin_username=settings.auth.admin_username, session_ttl_s=settings.auth.admin_token_ttl_s,
                   sso_header=settings.dagster.ui_sso_header.strip().lower(),
                   sso_networks=parse_networks(settings.dagster.ui_sso_proxies))

    def mint_session(self) -> str:
        return self.session_codec.mint(typ="admin", sub=self.admin_username, ttl_s=self.session_ttl_s).token

    async def admit(self, connection: ASGIConnection[Any, Any, Any, Any], *, method: str) -> Caller:
        """The admin caller of this request, or 401 (nobody) / 403 (someone, not the admin)."""
        peer = connection.client.host if connection.client else None
        sso_user = (connection.headers.get(self.sso_header) or "").strip() if self.sso_header else ""
        if sso_user and _in(self.sso_networks, peer):
            self._origin_check(connection, method, "the SSO session")
            return Caller(kind="admin", subject=sso_user[:_MAX_SSO_USER])
        header = connection.headers.get("authorization")
        if header:
            scheme, _, token = header.strip().partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token or len(token) > _MAX_TOKEN:
                raise Unauthorized("Authorization header must be 'Bearer <admin token>'", rule="token_invalid")
            caller = await resolve_caller(token, codec=self.api_codec, store=self.identity,
                                          admin_username=self.admin_username)
            if not caller.is_admin:
                raise Forbidden(f"the Dagster UI is for the admin; a {caller.kind} token was given",
                                rule="requires_admin")
            return caller
        cookie = connection.cookies.get(SESSION_COOKIE)
        if cookie:
            if len(cookie) > _MAX_TOKEN:
                raise Unauthorized("the UI session cookie is malformed; log in again", rule="token_invalid")
            caller = await resolve_caller(cookie, codec=self.session_codec, store=self.identity,
                                          admin_username=self.admin_username)
            self._origin_check(connection, method, "the UI session cookie")
            return caller
        raise Unauthorized("the Dagster UI needs the admin: log in at /dagster/_login, send an admin bearer token, "
                           "or come through the configured SSO proxy", rule="token_missing")

    @staticmethod
    def _origin_check(connection: ASGIConnection[Any, Any, Any, Any], method: str, what: str) -> None:
        if (method not in SAFE_METHODS or method == "WEBSOCKET") and not same_origin(connection):
            raise Forbidden(f"cross-origin request refused: {what} only works from the Dagster UI's own origin",
                            rule="cross_origin")
