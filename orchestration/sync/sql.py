"""The one place identifiers become SQL text.

Why: table and column names come from the registry and the source's metadata, never
from trusted literals, so every identifier goes through ``qi`` (Snowflake and DuckDB
quote the same way) and every value is bound as a parameter.
"""

from __future__ import annotations

from collections.abc import Iterable


def qi(name: str) -> str:
    """Quote one identifier; the name is kept exactly as written (case included)."""
    return '"' + str(name).replace('"', '""') + '"'


def qname(*parts: str) -> str:
    """A quoted, dotted name such as ``"DEMO"."PUBLIC"."ORDERS"``."""
    return ".".join(qi(p) for p in parts)


def qlist(names: Iterable[str]) -> str:
    return ", ".join(qi(n) for n in names)
