"""Range checks for typed request parameters, for every route in one place.

Why: Litestar converts ``?cursor=…`` to an ``int`` and ``?since=…`` to a ``datetime``
exactly as declared, but a value that parses can still be unusable. An integer beyond
64 bits cannot be bound to the control database (SQLite refuses it, PostgreSQL turns it
into a NUMERIC that ``OFFSET`` refuses), and an aware datetime at the calendar's edge
(``0001-01-01T00:00:00+14:00``) overflows when converted to UTC or compared with a
stored timestamp. Both used to surface as 500s deep in a handler. This hook runs before
every handler, reads the handler's own signature, and answers 400 ``out_of_range``
naming the parameter, so no controller has to remember it.

Checked: query and path parameters declared ``int`` (64-bit signed range), ``float``
(finite) and ``datetime`` (convertible to UTC, with a day of margin for comparisons).
"""

from __future__ import annotations

import datetime as dt
import math
import re
import weakref
from typing import Any

from litestar import Request

from serving.lib.errors import BadRequest

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_INT = re.compile(r"^\s*[+-]?\d+\s*$")
_MARGIN = dt.timedelta(days=1)


def _out_of_range(name: str, value: str, why: str) -> BadRequest:
    return BadRequest(f"parameter {name!r} is out of range: {why}", rule="out_of_range",
                      details={"parameter": name, "value": value[:100]})


def check_value(name: str, raw: str, *, kind: type) -> None:
    """400 ``out_of_range`` when ``raw`` parses as ``kind`` but cannot be used safely."""
    if kind is int:
        if _INT.match(raw) and not INT64_MIN <= int(raw) <= INT64_MAX:
            raise _out_of_range(name, raw, f"integers must be between {INT64_MIN} and {INT64_MAX}")
    elif kind is float:
        try:
            value = float(raw)
        except ValueError:
            return  # not a number at all: Litestar's own validation answers
        if not math.isfinite(value) or abs(value) > float(INT64_MAX):
            raise _out_of_range(name, raw, "numbers must be finite and within ±9.2e18")
    elif kind is dt.datetime:
        try:
            value_dt = dt.datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            return
        try:
            utc = value_dt.astimezone(dt.UTC) if value_dt.tzinfo else value_dt.replace(tzinfo=dt.UTC)
            _ = (utc - _MARGIN, utc + _MARGIN)  # comparisons with stored times need this margin
        except OverflowError as e:
            raise _out_of_range(name, raw, "the time must be between 0001-01-02 and 9999-12-30 in UTC") from e


def _kind(field: Any) -> type | None:
    for kind in (dt.datetime, float):
        if field.has_inner_subclass_of(kind) or field.is_subclass_of(kind):
            return kind
    if (field.has_inner_subclass_of(int) or field.is_subclass_of(int)) and not field.is_subclass_of(bool):
        return int
    return None


_CHECKED: weakref.WeakKeyDictionary[Any, tuple[tuple[str, str, type], ...]] = weakref.WeakKeyDictionary()


def _checked_params(handler: Any) -> tuple[tuple[str, str, type], ...]:
    """(name, query alias, kind) of a handler's typed parameters; worked out once per handler."""
    if handler is None:
        return ()
    try:
        found = _CHECKED.get(handler)
    except TypeError:
        # Litestar's own OPTIONS handler (built per route for any OPTIONS request) is a plain
        # ``HTTPRouteHandler`` with slots and no weak reference: an OPTIONS request on any route
        # was a 500. It takes no parameters of ours.
        return ()
    if found is None:
        signature = getattr(handler, "parsed_fn_signature", None)
        params = signature.parameters.items() if signature is not None else ()
        found = tuple((name, getattr(field.kwarg_definition, "query", None) or name, kind)
                      for name, field in params if (kind := _kind(field)) is not None)
        _CHECKED[handler] = found
    return found


async def check_request_params(request: Request[Any, Any, Any]) -> None:
    """``before_request`` hook: range-check the typed query and path parameters of the matched handler."""
    params = _checked_params(request.scope.get("route_handler"))
    if not params:
        return  # the hot path (query execution) has none: one dict lookup
    query = request.query_params
    path = request.path_params
    for name, alias, kind in params:
        values: list[str] = [str(v) for v in query.getall(alias, [])] if alias in query else []
        if name in path:
            values.append(str(path[name]))
        for raw in values:
            check_value(alias, raw, kind=kind)
