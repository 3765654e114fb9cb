"""One exception hierarchy and one JSON error shape for the whole API.

Why: agents parse errors programmatically. Every failure, whatever raised it, answers::

    {"error": {"status": 404, "code": "not_found", "message": "...", "rule": null, "details": {}}}

``rule`` names the guard rule that rejected a query (``table_not_granted``,
``statement_not_allowed``, ``function_not_allowed``, ``timeout`` …). No stack trace or
internal path ever leaves the process: unexpected exceptions are logged and answered
as a generic 500 (and tests assert no bad input reaches that branch).
"""

from __future__ import annotations

import logging
import secrets
from typing import Any, ClassVar

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, NotFoundException, PermissionDeniedException
from litestar.exceptions import ValidationException as LitestarValidationException
from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError

from serving.lib import requestid

log = logging.getLogger("agents_data.api")


class ApiError(Exception):
    """Base of every error the API answers on purpose."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, *, rule: str | None = None, details: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.rule = rule
        self.details = details or {}
        self.headers = headers or {}

    def __init_subclass__(cls, *, status: int | None = None, code: str | None = None, **kwargs: Any) -> None:
        """``class NotFound(ApiError, status=404, code="not_found")`` sets the answer's status and code."""
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status
        if code is not None:
            cls.code = code


# The status and code of each kind of refusal; ``rule`` (given per raise) says what refused.
class BadRequest(ApiError, status=400, code="bad_request"): ...
class Unauthorized(ApiError, status=401, code="unauthorized"): ...
class Forbidden(ApiError, status=403, code="forbidden"): ...
class NotFound(ApiError, status=404, code="not_found"): ...
class Conflict(ApiError, status=409, code="conflict"): ...
class PayloadTooLarge(ApiError, status=413, code="payload_too_large"): ...
class Unprocessable(ApiError, status=422, code="invalid"): ...
class TooManyRequests(ApiError, status=429, code="rate_limited"): ...
class ServiceUnavailable(ApiError, status=503, code="unavailable"): ...
class QueryTimeout(ApiError, status=408, code="query_timeout"): ...


class QueryRejected(ApiError, status=400, code="query_rejected"):
    """The SQL guard refused a query; ``rule`` says which layer and why."""


def error_body(status: int, code: str, message: str, rule: str | None = None,
               details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"status": status, "code": code, "message": message, "rule": rule, "details": details or {}}}


def _respond(request: Request, status: int, code: str, message: str, *, rule: str | None = None,
             details: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Response:
    # The audit middleware reads the rule and status from request state.
    request.state.error_rule = rule or (code if status >= 400 else None)
    return Response(error_body(status, code, message, rule, details), status_code=status, headers=headers)


def handle_api_error(request: Request, exc: ApiError) -> Response:
    return _respond(request, exc.status, exc.code, exc.message, rule=exc.rule, details=exc.details, headers=exc.headers)


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
               413: "payload_too_large", 415: "unsupported_media_type", 429: "rate_limited"}


def handle_http_exception(request: Request, exc: HTTPException) -> Response:
    """Litestar's own errors (routing, validation, body size) in our shape."""
    status = exc.status_code
    if isinstance(exc, LitestarValidationException):
        details = {"errors": exc.extra} if exc.extra else {}
        return _respond(request, 400, "validation_error", str(exc.detail), details=details)
    if isinstance(exc, NotFoundException):
        return _respond(request, 404, "not_found", "no such resource")
    if isinstance(exc, NotAuthorizedException):
        return _respond(request, 401, "unauthorized", str(exc.detail))
    if isinstance(exc, PermissionDeniedException):
        return _respond(request, 403, "forbidden", str(exc.detail))
    if status >= 500:  # a server-side fault raised as an HTTP exception (e.g. a misconfigured route)
        log.error("HTTP %s on %s %s: %s", status, request.method, request.url.path, exc.detail, exc_info=exc)
    code = _HTTP_CODES.get(status, "http_error" if status < 500 else "internal_error")
    message = str(exc.detail) if status < 500 else "internal error"
    return _respond(request, status, code, message, headers=dict(exc.headers or {}))


def handle_unexpected(request: Request, exc: Exception) -> Response:
    # The id ties the generic answer to the logged stack trace (and the access line, the audit row) without
    # leaking it: the request's own id.
    request_id = requestid.current() or secrets.token_hex(8)
    log.exception("unhandled error [request %s] on %s %s", request_id, request.method, request.url.path)
    return _respond(request, 500, "internal_error", f"internal error; see the server log for request {request_id}",
                    details={"request_id": request_id})


def handle_too_deep(request: Request, exc: RecursionError) -> Response:
    """A JSON body nested deeper than the decoder's recursion limit: the client's input, not our fault."""
    log.info("request on %s %s refused: nested too deeply", request.method, request.url.path)
    return _respond(request, 400, "bad_request", "the request body is nested too deeply", rule="json_too_deep")


def handle_overflow(request: Request, exc: OverflowError) -> Response:
    """A number or date from the request that overflowed in arithmetic: the client's input, not our fault.

    The backstop behind ``serving.lib.params`` (which refuses such query and path
    parameters up front): a body field at the calendar's edge must not become a 500 either.
    """
    log.warning("request on %s %s refused: a value overflowed", request.method, request.url.path, exc_info=exc)
    return _respond(request, 400, "bad_request", "a number or date in the request is out of range", rule="out_of_range")


CONTROL_DB_RETRY_AFTER_S = 5


def handle_db_error(request: Request, exc: DBAPIError) -> Response:
    """The control database unreachable (down, restarting, connection lost): a clean 503 the
    client may retry, not a 500; any other database error stays an unexpected one."""
    if isinstance(exc, DataError) and "NUL" in str(exc.orig):
        # PostgreSQL refuses NUL in text: a body field carrying one (a swarm or token name, a
        # reason) is the client's input, not our fault; the transaction was rolled back.
        log.info("request on %s %s refused: a text value holds a NUL character", request.method, request.url.path)
        return _respond(request, 400, "bad_request", "a text value in the request contains a NUL character",
                        rule="nul_character")
    if not (isinstance(exc, (OperationalError, InterfaceError)) or exc.connection_invalidated):
        return handle_unexpected(request, exc)
    log.warning("control database unavailable on %s %s: %s", request.method, request.url.path, type(exc.orig).__name__)
    return _respond(request, 503, "unavailable", "the control database is unavailable; retry shortly",
                    rule="control_db_unavailable", headers={"Retry-After": str(CONTROL_DB_RETRY_AFTER_S)})


EXCEPTION_HANDLERS = {ApiError: handle_api_error, HTTPException: handle_http_exception, RecursionError: handle_too_deep,
                      OverflowError: handle_overflow, DBAPIError: handle_db_error, Exception: handle_unexpected}
