"""Exceptions mapped from the API's one error shape.

Every failure the API answers on purpose is ``{"error": {"status", "code", "message",
"rule", "details"}}``; each becomes an :class:`ApiError` subclass chosen by status, with
every field kept (``rule`` names what refused the request, e.g. ``table_not_granted``,
``query_budget``).
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Any


class ApiError(Exception):
    """An error answer of the API (or a body that was not the error shape, with ``code`` ``http_error``)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        rule: str | None = None,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}" + (f" (rule {rule})" if rule else ""))
        self.status = status
        self.code = code
        self.message = message
        self.rule = rule
        self.details: dict[str, Any] = dict(details or {})
        self.headers: dict[str, str] = {k.lower(): v for k, v in (headers or {}).items()}

    @property
    def retry_after(self) -> float | None:
        """Seconds the server asked to wait (``Retry-After``), if it said."""
        return parse_retry_after(self.headers.get("retry-after"))


class BadRequest(ApiError):
    """400: the request or the SQL was refused (``rule`` says why)."""


class Unauthorized(ApiError):
    """401: no token, or a bad, expired or revoked one."""


class Forbidden(ApiError):
    """403: the token may not do this (e.g. ``table_not_granted``, ``requires_admin``)."""


class NotFound(ApiError):
    """404: no such table, job or artifact, or not visible to this token."""


class Timeout(ApiError):
    """408: the work ran past its time limit (``timeout``), or the body was sent too slowly."""


class Conflict(ApiError):
    """409: the resource is not in a state for this (e.g. a job still running)."""


class Gone(ApiError):
    """410: the result expired."""


class PayloadTooLarge(ApiError):
    """413: a result, body or memory limit was passed."""


class RateLimited(ApiError):
    """429: a rate, concurrency limit or budget is spent; ``retry_after`` says when it resets."""


class ServerError(ApiError):
    """5xx other than 503."""


class Unavailable(ServerError):
    """503: a dependency (control database, Dagster) is down, or fresh data did not come in time."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    408: Timeout,
    409: Conflict,
    410: Gone,
    413: PayloadTooLarge,
    429: RateLimited,
    503: Unavailable,
}


def error_from(status: int, body: Any, headers: Mapping[str, str], text: str = "") -> ApiError:
    """The exception for an error answer: its status, and the fields of the error shape when present."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return cls(
            int(error.get("status") or status),
            str(error.get("code") or "http_error"),
            str(error.get("message") or ""),
            rule=error.get("rule"),
            details=error.get("details") or {},
            headers=headers,
        )
    return cls(status, "http_error", text[:500] or f"HTTP {status}", headers=headers)


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
