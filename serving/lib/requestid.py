"""Request ids: one id per API request, from the caller's ``X-Request-ID`` or made here.

Why: an operator asked "my agent's refresh never showed up" needs one string that finds the
request's access line, its audit row, and the Dagster run it started (the id is a run tag,
and the sync step's log lines carry it). A caller's own id is kept when it is well formed
(1-128 characters of letters, digits and ``._:-``, starting with a letter or digit), so
an agent framework's trace id follows the work; anything else is replaced, never echoed.

The id of the request being served is in the ASGI scope's state (``request_id``), in
:data:`shared.logs.request_id` (log lines), and reachable from code that has no request
(the sync launch path) through :func:`current`.
"""

from __future__ import annotations

import contextvars
import itertools
import os
import re
from typing import Any

HEADER = "x-request-id"
STATE_KEY = "request_id"
RUN_IDS_KEY = "run_ids"  # scope["state"]["run_ids"]: Dagster runs/backfills this request started
_WELL_FORMED = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}\Z")

_scope_state: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "agents_data_request_state", default=None)


def well_formed(value: str) -> bool:
    return bool(_WELL_FORMED.match(value))


class _Ids:
    """A random per-process prefix and a counter: unique ids without a system call per request."""

    pid = -1
    prefix = ""
    counter = itertools.count()


def new_id() -> str:
    """32 hex digits: 16 random per process, then a counter (a forked process draws a new prefix)."""
    if _Ids.pid != os.getpid():
        _Ids.pid, _Ids.prefix, _Ids.counter = os.getpid(), os.urandom(8).hex(), itertools.count()
    return f"{_Ids.prefix}{next(_Ids.counter):016x}"


def from_headers(headers: list[tuple[bytes, bytes]] | Any) -> str:
    """The caller's ``X-Request-ID`` when well formed (the first one), else a new id."""
    for name, value in headers or ():
        if name.lower() == HEADER.encode():
            try:
                text = value.decode("ascii")
            except UnicodeDecodeError:
                break
            return text if well_formed(text) else new_id()
    return new_id()


def bind(state: dict[str, Any]) -> contextvars.Token[dict[str, Any] | None]:
    """Make ``state`` (the scope's state of the request being served) the current one."""
    return _scope_state.set(state)


def unbind(token: contextvars.Token[dict[str, Any] | None]) -> None:
    _scope_state.reset(token)


def current() -> str | None:
    """The id of the request being served in this context, or None (background work)."""
    state = _scope_state.get()
    return state.get(STATE_KEY) if state else None


def note_run(dagster_id: str) -> None:
    """Record that the current request started Dagster run or backfill ``dagster_id`` (audit row, access line)."""
    state = _scope_state.get()
    if state is not None:
        state.setdefault(RUN_IDS_KEY, []).append(dagster_id)


def run_ids(state: dict[str, Any]) -> list[str]:
    return list(state.get(RUN_IDS_KEY) or [])
