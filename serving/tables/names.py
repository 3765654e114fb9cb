"""Table names: quoting, and resolving what an agent wrote to one of its granted table keys.

Why in the tables layer, not in the guard: the catalog (``GET /api/v1/data/tables/{table}``), sampling
and profiling resolve table names exactly as the guard does inside SQL, so an agent meets
one rule everywhere: ``orders``, ``public.orders`` or ``demo.public.orders`` must match
exactly one granted key; a missing and an ungranted table get the same answer, and an
ambiguous short name lists only the caller's own tables.

How a written part matches a table's exact Snowflake name (``shared/identifiers.py``), as
in Snowflake SQL: an unquoted part is case-insensitive and stands for its upper-case form
(``orders`` is ``ORDERS``); a quoted part is exact (``"Order Lines"``, ``"lower_t"``). So
``"Order Lines"`` and ``"ORDER LINES"`` stay two tables. For DuckDB habits, a quoted part
that matches no table exactly may still match an ordinary (upper-case) name
case-insensitively (``"orders"`` finds ``ORDERS`` when no table is named ``orders``).
Case is compared the way DuckDB compares it, ASCII letters only (``duck_fold``): Python's
``lower()`` would also fold e.g. the Kelvin sign into ``k``, a name DuckDB keeps distinct.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from serving.lib.errors import QueryRejected
from shared.identifiers import (
    UNQUOTED,
    IdentifierError,
    decode_part,
    duck_fold,
    folds_ambiguously,
    is_ordinary,
    is_part,
    source_names,
    split_reference,
    sql_reference,
)

Written = tuple[str, bool]  # (text of one name part, was it quoted)


def reject(rule: str, message: str) -> QueryRejected:
    return QueryRejected(message, rule=rule)


def shown(name: str) -> str:
    """A caller-supplied name, safe to echo in a message (printable, at most 200 characters)."""
    name = "".join(ch if ch.isprintable() else "?" for ch in name)
    return name if len(name) <= 200 else name[:200] + "…"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_table(key: str) -> str:
    """The canonical SQL reference of a table key (for SQL the server builds itself): its
    encoded parts, which are the names the query instance attaches it under."""
    return ".".join(quote_ident(p) for p in key.split("."))


def stored_alias(index: int) -> str:
    """The catalog the ``index``-th exposed table's file is attached as (behind its view)."""
    return quote_ident(f"__t{index}")


def stored_table(index: int) -> str:
    """The attached base table behind the ``index``-th exposed view, for server-built SQL that
    needs what a view hides (``rowid``). A single-table instance exposes its table as index 0.
    Agent SQL can never name it: the guard resolves every reference to a granted key."""
    return f"{stored_alias(index)}.main.data"


def check_foldable(name: str, what: str) -> None:
    """Refuse a case-insensitive name that Unicode and DuckDB fold differently (a non-ASCII
    upper-case letter, the Kelvin sign): DuckDB folds ASCII only, so any Unicode-aware
    comparison of it would disagree with DuckDB's."""
    if folds_ambiguously(name):
        raise reject("ambiguous_name", f"{what} {shown(name)} has non-ASCII upper-case letters, whose case DuckDB "
                                       "does not fold as Unicode does; write them in lower case or in ASCII")


def _upper_ascii(text: str) -> str:
    return text.translate(_UPPER)


_UPPER = {c: c - 32 for c in range(ord("a"), ord("z") + 1)}


def _strict(written: Written, name: str) -> bool:
    text, quoted = written
    return name == text if quoted else name == _upper_ascii(text)


def _lenient(written: Written, name: str) -> bool:
    text, quoted = written
    if _strict(written, name):
        return True
    return quoted and is_ordinary(name) and duck_fold(name) == duck_fold(text)


class GrantIndex:
    """Granted keys with their exact names, indexed by folded table name for short-name resolution."""

    def __init__(self, grants: frozenset[str]) -> None:
        self.grants = grants
        self.by_table: dict[str, list[tuple[str, tuple[str, str, str]]]] = {}
        for key in sorted(grants):
            try:
                names = source_names(key)
            except ValueError:
                continue
            self.by_table.setdefault(duck_fold(names[2]), []).append((key, names))

    def resolve(self, parts: Sequence[str | Written]) -> str:
        """The one granted key ``parts`` (1 to 3 parts; plain strings count as unquoted) names, or raise."""
        written = [(p, False) if isinstance(p, str) else p for p in parts]
        text = shown(".".join(quote_ident(t) if q else t for t, q in written))
        candidates: list[str] = []
        if 1 <= len(written) <= 3 and all(t for t, _ in written):
            pool = self.by_table.get(duck_fold(written[-1][0]), [])
            for match in (_strict, _lenient):
                candidates = [key for key, names in pool
                              if all(match(w, n) for w, n in zip(written, names[-len(written):], strict=True))]
                if candidates:
                    break
        if len(candidates) > 1:
            listed = ", ".join(sql_reference(k) for k in candidates)
            raise reject("ambiguous_table", f"table {text} is ambiguous among your tables ({listed}); "
                                            "name it as database.schema.table")
        if not candidates:
            raise reject("table_not_granted", f"table {text} does not exist or is not granted to this token")
        return candidates[0]

    def resolve_text(self, name: str) -> str:
        """Resolve a name given as text (a URL path): SQL spelling (``demo.public."Order Lines"``)
        or the table's key itself (``demo.public.0_order_32__lines``)."""
        name = name.strip()
        if name in self.grants:
            return name
        try:
            parts = [_written(p, quoted) for p, quoted in split_reference(name)]
        except IdentifierError as e:
            raise reject("table_not_granted", f"table {shown(name)} does not exist or is not granted to this token") from e
        return self.resolve(parts)


def _written(text: str, quoted: bool) -> Written:
    """A part of a name given as text: unquoted parts must be identifiers (``order lines`` is not
    ``"ORDER LINES"``), or a key's encoded part, which stands for its exact name."""
    if quoted or UNQUOTED.match(text):
        return text, quoted
    if is_part(text):
        return decode_part(text), True
    raise IdentifierError(f"{text!r} is not an identifier")


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
    """Resolve ``orders``, ``public.orders``, ``demo.public."Order Lines"`` or a key to one granted key (or raise)."""
    return grant_index(grants).resolve_text(name)
