"""One access log line and the request metrics per HTTP request, with its request id.

Why the outermost ASGI wrapper: it must see every request (404s, 405s, refusals by the
ingress limits, streamed answers) and set the request id before anything logs. It:

1. takes the id from ``X-Request-ID`` when well formed, else makes one
   (``serving/lib/requestid.py``), and puts it in the scope's state, in the logging
   context (every line written while serving carries it) and in the answer's header;
2. after the answer, writes one line to logger ``agents_data.access``: method, route
   template (``/api/v1/data/tables/{table:str}``, never the path with its values), status,
   duration, caller kind and id, swarm, the rule of a refusal, rows and bytes, tables
   read, and the Dagster runs the request started — most of it from the audit
   annotations (``serving/lib/audit.py``) the handlers already make;
3. counts it in the request metrics (``serving/lib/metrics.py``).

The query string is never logged (its values may be anything an agent sent).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from serving.lib import metrics, requestid
from shared import logs

log = logging.getLogger("agents_data.access")
_AUDIT_FIELDS = "audit_fields"  # serving.lib.audit's state key
_CALLER = "caller"
_HINT = "auth_hint"


def route_of(scope: Scope | dict[str, Any]) -> str:
    """The route template the request matched (bounded cardinality for metrics), or ``<unmatched>``."""
    template = scope.get("path_template")
    return str(template) if template else metrics.UNMATCHED


def access_fields(scope: Scope | dict[str, Any], status: int, seconds: float) -> dict[str, Any]:
    """The access line's fields, from the scope's state after the request was answered."""
    state: dict[str, Any] = scope.get("state") or {}  # type: ignore[assignment]
    audit = state.get(_AUDIT_FIELDS) or {}
    caller = state.get(_CALLER)
    hint = state.get(_HINT) or {}
    tables = [t.get("table") if isinstance(t, dict) else str(t) for t in audit.get("tables") or []]
    return {
        "request_id": state.get(requestid.STATE_KEY),
        "method": str(scope.get("method", "")), "route": route_of(scope), "status": status,
        "duration_ms": round(seconds * 1000.0, 3),
        "caller_kind": caller.kind if caller is not None else "anonymous",
        "caller_id": (caller.token_id or caller.subject) if caller is not None else hint.get("token_id"),
        "swarm_id": caller.swarm_id if caller is not None else hint.get("swarm_id"),
        "rule": audit.get("rule") or state.get("error_rule") if status >= 400 else None,
        "rows": audit.get("rows"), "bytes": audit.get("bytes"), "tables": [t for t in tables if t],
        "run_ids": requestid.run_ids(state) or None,
    }


class AccessLog:
    """Raw ASGI wrapper: request id, one access line, request metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = requestid.from_headers(scope.get("headers"))
        state: dict[str, Any] = scope.setdefault("state", {})  # type: ignore[typeddict-item, assignment]
        state[requestid.STATE_KEY] = rid
        log_token = logs.request_id.set(rid)
        state_token = requestid.bind(state)
        started = time.perf_counter()
        status = [0]
        header = (requestid.HEADER.encode(), rid.encode())

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                headers = [h for h in message.get("headers") or () if h[0].lower() != header[0]]
                message = {**message, "headers": [*headers, header]}  # type: ignore[typeddict-item]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except BaseException:
            status[0] = status[0] or 500
            raise
        finally:
            try:
                self._record(scope, status[0] or 500, time.perf_counter() - started)
            finally:
                requestid.unbind(state_token)
                logs.request_id.reset(log_token)

    @staticmethod
    def _record(scope: Scope, status: int, seconds: float) -> None:
        if not (metrics.enabled() or log.isEnabledFor(logging.INFO)):
            return  # neither counted nor logged: nothing to gather (the hot path at LOG_LEVEL=warning)
        try:
            fields = access_fields(scope, status, seconds)
            metrics.observe_request(fields["route"], fields["method"], status, seconds, fields["rule"])
            if log.isEnabledFor(logging.INFO):
                log.info("%s %s %s %.1fms", fields["method"], fields["route"], status, fields["duration_ms"],
                         extra={k: v for k, v in fields.items() if v is not None})
        except Exception:
            log.debug("could not write the access line", exc_info=True)
