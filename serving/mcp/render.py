"""Answers sized for a model: compact tables, unambiguous values, a character budget, a footer.

Rules, the same for every tool:
- Numbers are plain digits with ``.`` as the decimal point and no grouping (``1234567.5``);
  exact decimals arrive as text from the route and stay exactly as written. NULL is ``NULL``.
- Dates and times are ISO 8601 as the route gives them (``2026-12-06``,
  ``2026-12-06T02:44:55+00:00``); ages are said in seconds and in words.
- A cell longer than ``CELL_CHARS`` is cut with ``…``; ``|``, line breaks and other control
  characters are escaped.
- A text that bare would read as something else is written as a JSON string (in double
  quotes): the empty string, ``NULL`` in any case, text with leading or trailing spaces
  (the table's padding would hide them) and text starting with a double quote. So ``NULL``
  is only ever a missing value, and ``""`` only ever the empty string.
- Every answer ends with a footer: the tables read, each with its served version and age,
  whether rows were cut and by what, and how to get the rest. The footer is written
  first and the body gets what is left of the budget, so it is never the part that is cut.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Sequence
from typing import Any

CELL_CHARS = 200


def value(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v) or math.isinf(v):
            return str(v)
        return repr(v)  # shortest exact form; never locale-grouped, never 1e+06 for whole numbers below 1e16
    if isinstance(v, dict | list):
        v = json.dumps(v, ensure_ascii=False, separators=(",", ":"))
    text = str(v)
    if _ambiguous(text):  # JSON escapes its backslashes and control characters itself
        text = json.dumps(text, ensure_ascii=False).replace("|", "\\|")
    else:
        text = _CONTROL.sub(_escape, text.replace("\\", "\\\\").replace("|", "\\|"))
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match[str]) -> str:
    """A control character as a visible escape (a NUL written raw vanished from the table)."""
    return _NAMED.get(m.group(), f"\\u{ord(m.group()):04x}")


def _ambiguous(text: str) -> bool:
    """Whether a bare text could be read as another value: empty, NULL, padded or already quoted."""
    return not text or text.upper() == "NULL" or text != text.strip() or text.startswith('"')


def table(columns: Sequence[dict[str, Any]], rows: Sequence[Sequence[Any]], budget: int) -> tuple[str, int]:
    """A pipe table of as many whole rows as fit in ``budget`` characters: (text, rows shown)."""
    header = "| " + " | ".join(f"{c.get('name')} ({c.get('type')})" for c in columns) + " |"
    lines = [header]
    used = len(header) + 1
    shown = 0
    for row in rows:
        line = "| " + " | ".join(value(v) for v in row) + " |"
        if used + len(line) + 1 > budget:
            break
        lines.append(line)
        used += len(line) + 1
        shown += 1
    return "\n".join(lines), shown


def age(synced_at: str | None, now: dt.datetime | None = None) -> str:
    if not synced_at:
        return "never synced"
    try:
        at = dt.datetime.fromisoformat(synced_at)
    except ValueError:
        return f"synced at {synced_at}"
    if at.tzinfo is None:
        at = at.replace(tzinfo=dt.UTC)
    seconds = max(0.0, ((now or dt.datetime.now(dt.UTC)) - at).total_seconds())
    said = f"age {int(seconds)} s" + (f" ({words(seconds)})" if seconds >= 60 else "")
    return f"{said}, synced {at.astimezone(dt.UTC).isoformat()}"


def words(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def tables_read(tables: Sequence[dict[str, Any]]) -> str:
    """The footer's line naming ``tables`` ([{table, version, synced_at}]), each with its served version and age."""
    if not tables:
        return "tables read: none"
    return "tables read: " + "; ".join(f"{t.get('table')} version {t.get('version')} ({age(t.get('synced_at'))})"
                                       for t in tables)


def footer(*, tables: Sequence[dict[str, Any]], shown: int | None, total: int | None, cut: str | None,
           rest: str | None, read: str | None = None) -> str:
    """``tables``: [{table, version, synced_at}]; ``cut``: why rows were left out (None: nothing was).
    ``read``: :func:`tables_read` of ``tables`` when already made (a tool sizing its body by a probe footer)."""
    parts = ["---", read if read is not None else tables_read(tables)]
    if shown is not None:
        if cut:
            of = f" of {total}" if total is not None else ""
            parts.append(f"rows: {shown} shown{of}; CUT by {cut}")
        else:
            parts.append(f"rows: {shown} shown; complete (nothing cut)")
    if rest:
        parts.append(f"the rest: {rest}")
    return "\n".join(parts)


def fit(body: str, foot: str, budget: int) -> str:
    """``body`` then ``foot``, the body cut (marked) so the whole stays within ``budget`` characters."""
    room = max(0, budget - len(foot) - 1)
    if len(body) > room:
        body = body[: max(0, room - 40)] + "\n[… cut at the answer's character budget]"
    return f"{body}\n{foot}" if body else foot


def fields(obj: dict[str, Any], names: Sequence[str]) -> str:
    """``name: value`` lines for the given keys that are present."""
    return "\n".join(f"{n}: {value(obj[n])}" for n in names if n in obj and obj[n] is not None)
