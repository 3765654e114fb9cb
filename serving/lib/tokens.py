"""Minting and verifying JWTs, and the one signing secret.

Why so strict: a token is the only thing between an untrusted agent and the data. The
algorithm is pinned to HS256 (``alg=none``, HS512 and RS256 tokens are refused before
any key is used), and ``exp``, ``iat``, ``jti``, ``sub`` and ``typ`` plus audience and
issuer are *required* — PyJWT accepts a token without ``exp`` unless told otherwise.

Only a SHA-256 of a token is ever stored; no message raised here contains the token.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any, Literal

import jwt

from serving.lib.errors import Unauthorized
from shared.settings import Settings

log = logging.getLogger("agents_data.auth")

ALGORITHM = "HS256"
TokenType = Literal["admin", "swarm", "agent"]
TOKEN_TYPES: frozenset[str] = frozenset(("admin", "swarm", "agent"))
REQUIRED_CLAIMS = ("exp", "iat", "jti", "sub", "typ", "aud", "iss")
SECRET_FILE = "jwt_secret"  # noqa: S105 (a file name)
LEEWAY_S = 5  # clock skew tolerated between replicas
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="agents-data"'}


def token_hash(token: str) -> str:
    """The stored fingerprint of a token (the token itself is never stored)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token_id() -> str:
    return "tok_" + secrets.token_hex(12)


def resolve_jwt_secret(settings: Settings) -> str:
    """``JWT_SECRET``, or a random secret persisted under AGENTS_DATA_HOME (mode 0600).

    Persisted so every replica sharing the home verifies the others' tokens and a
    restart does not log everyone out. Created with a link of a complete temp file, so
    two replicas starting at once both end up reading the winner's secret.
    """
    if settings.auth.jwt_secret:
        if len(settings.auth.jwt_secret.encode()) < 32:
            log.warning("JWT_SECRET is shorter than 32 bytes; use a longer random secret")
        return settings.auth.jwt_secret
    path = settings.home_path / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_urlsafe(48).encode())
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
            log.info("generated a new token signing secret under AGENTS_DATA_HOME")
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return _read_secret(path)


def _read_secret(path: Path) -> str:
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise RuntimeError(f"token secret file {path} is too short; delete it to regenerate")
    return secret


@dataclasses.dataclass(frozen=True)
class MintedToken:
    token: str
    token_id: str
    issued_at: int
    expires_at: int


_VERIFIED_MAX = 20_000  # cached verified tokens per process
_VERIFIED_TTL_S = 60.0


@dataclasses.dataclass(frozen=True)
class TokenCodec:
    """Signs and verifies tokens for one secret, audience and issuer.

    Verified claims are remembered by the token's SHA-256 for up to a minute (never past
    ``exp``): PyJWT's per-call key checks cost far more than the rest of a request, and a
    byte-identical token verified a moment ago is still validly signed. Revocation is not
    cached here; the identity store checks it on every request.
    """

    secret: str
    audience: str
    issuer: str
    _verified: dict[str, tuple[float, dict[str, Any]]] = dataclasses.field(default_factory=dict, compare=False,
                                                                           repr=False)

    def verify(self, token: str, digest: str) -> dict[str, Any]:
        """Like :meth:`decode`, using the cache keyed by ``digest`` (the token's :func:`token_hash`)."""
        now = time.time()
        hit = self._verified.get(digest)
        if hit is not None:
            if hit[0] > now:
                return hit[1]
            del self._verified[digest]
        claims = self.decode(token)
        if len(self._verified) >= _VERIFIED_MAX:
            self._verified.clear()
        self._verified[digest] = (min(float(claims["exp"]), now + _VERIFIED_TTL_S), claims)
        return claims

    def mint(self, *, typ: TokenType, sub: str, ttl_s: int, token_id: str | None = None,
             swarm_id: str | None = None, now: float | None = None) -> MintedToken:
        issued = int(now if now is not None else time.time())
        jti = token_id or new_token_id()
        claims: dict[str, Any] = {"sub": sub, "typ": typ, "jti": jti, "iat": issued, "nbf": issued,
                                  "exp": issued + int(ttl_s), "aud": self.audience, "iss": self.issuer}
        if swarm_id is not None:
            claims["swarm"] = swarm_id
        token = jwt.encode(claims, self.secret, algorithm=ALGORITHM)
        return MintedToken(token=token, token_id=jti, issued_at=issued, expires_at=issued + int(ttl_s))

    def decode(self, token: str) -> dict[str, Any]:
        """Verified claims of ``token``, or :class:`Unauthorized` saying why (never echoing it)."""
        try:
            claims = jwt.decode(
                token, self.secret, algorithms=[ALGORITHM], audience=self.audience, issuer=self.issuer,
                leeway=LEEWAY_S,
                options={"require": list(REQUIRED_CLAIMS), "verify_signature": True, "verify_exp": True,
                         "verify_nbf": True, "verify_iat": True, "verify_aud": True, "verify_iss": True},
            )
        except (jwt.InvalidTokenError, ValueError, TypeError) as e:
            rule = "token_expired" if isinstance(e, jwt.ExpiredSignatureError) else "token_invalid"
            raise Unauthorized(_refusal(e), rule=rule, headers=CHALLENGE) from e
        if claims.get("typ") not in TOKEN_TYPES or not isinstance(claims.get("jti"), str) \
                or not isinstance(claims.get("sub"), str) or not claims["jti"]:
            raise Unauthorized("token claims are malformed", rule="token_invalid", headers=CHALLENGE)
        return claims


# Why PyJWT refused a token, most specific first; anything else is "malformed".
_REFUSALS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidAudienceError, "token audience is not accepted"),
    (jwt.InvalidIssuerError, "token issuer is not accepted"),
    (jwt.InvalidAlgorithmError, f"token algorithm is not allowed (only {ALGORITHM})"),
    (jwt.InvalidSignatureError, "token signature is invalid"),
)


def _refusal(e: Exception) -> str:
    """What is wrong with a refused token, in words that never echo it."""
    if isinstance(e, jwt.MissingRequiredClaimError):
        return f"token lacks the required '{e.claim}' claim"
    return next((why for kind, why in _REFUSALS if isinstance(e, kind)), "token is malformed")


def codec_for(settings: Settings) -> TokenCodec:
    return TokenCodec(secret=resolve_jwt_secret(settings), audience=settings.auth.jwt_audience,
                      issuer=settings.auth.jwt_issuer)
