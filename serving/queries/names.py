"""Table names: quoting, and resolving what an agent wrote to one of its granted table keys.

Why separate from the guard: the catalog (``GET /api/v1/data/tables/{table}``), sampling
and profiling resolve table names exactly as the guard does inside SQL, so an agent meets
one rule everywhere: ``orders``, ``public.orders`` or ``demo.public.orders``, compared
case-insensitively, must match exactly one granted key; a missing and an ungranted table
get the same answer, and an ambiguous short name lists only the caller's own tables.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from serving.lib.errors import QueryRejected


def reject(rule: str, message: str) -> QueryRejected:
    return QueryRejected(message, rule=rule)


def shown(name: str) -> str:
    """A caller-supplied name, safe to echo in a message (printable, at most 200 characters)."""
    name = "".join(ch if ch.isprintable() else "?" for ch in name)
    return name if len(name) <= 200 else name[:200] + "…"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_table(key: str) -> str:
    """The canonical SQL reference of a table key (for SQL the server builds itself)."""
    return ".".join(quote_ident(p) for p in key.split("."))


class GrantIndex:
    """Granted keys indexed by table name and by schema.table, for unique short-name resolution."""

    def __init__(self, grants: frozenset[str]) -> None:
        self.grants = grants
        self.by_table: dict[str, list[str]] = {}
        self.by_schema_table: dict[str, list[str]] = {}
        for key in sorted(grants):
            parts = key.split(".")
            if len(parts) != 3:
                continue
            self.by_table.setdefault(parts[2], []).append(key)
            self.by_schema_table.setdefault(f"{parts[1]}.{parts[2]}", []).append(key)

    def resolve(self, parts: list[str]) -> str:
        text = shown(".".join(parts))
        lowered = [p.lower() for p in parts]
        if len(parts) == 3:
            key = ".".join(lowered)
            candidates = [key] if key in self.grants else []
        elif len(parts) == 2:
            candidates = self.by_schema_table.get(".".join(lowered), [])
        elif len(parts) == 1:
            candidates = self.by_table.get(lowered[0], [])
        else:
            candidates = []
        if len(candidates) > 1:
            raise reject("ambiguous_table", f"table {text} is ambiguous among your tables ({', '.join(candidates)}); "
                                            "name it as database.schema.table")
        if not candidates or not all(parts):
            raise reject("table_not_granted", f"table {text} does not exist or is not granted to this token")
        return candidates[0]


class Lru:
    """A small thread-safe LRU map (guard results, grant indexes)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_indexes = Lru(1024)


def grant_index(grants: frozenset[str]) -> GrantIndex:
    index = _indexes.get(grants)
    if index is None:
        index = GrantIndex(grants)
        _indexes.put(grants, index)
    return index


def resolve_name(name: str, grants: frozenset[str]) -> str:
    """Resolve ``orders``, ``public.orders`` or ``demo.public.orders`` to one granted key (or raise)."""
    return grant_index(grants).resolve(name.strip().split("."))
