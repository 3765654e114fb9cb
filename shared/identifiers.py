"""Snowflake names, exactly as Snowflake has them, and the one encoding of them everywhere else.

Why one module: a registered table is named by its Snowflake database, schema and table
names, and those reach places with stricter rules: a served folder (a file name), a
DuckDB catalog/schema/view name (compared case-insensitively, ASCII only), a Dagster
asset key (``[A-Za-z0-9_]``) and the table key used by grants, jobs and URLs. One
reversible encoding of a name part serves all of them:

- an *ordinary* name (what an unquoted identifier becomes in Snowflake: ``[A-Z_][A-Z0-9_]*``)
  is written lower-case: ``ORDERS`` -> ``orders`` (the keys the platform always had);
- any other name (quoted: mixed or lower case, spaces, reserved characters, unicode, ``$``)
  is written ``0`` + its characters, where ``a-z`` and ``0-9`` stay, ``_`` becomes ``__``,
  an upper-case ASCII letter ``X`` becomes ``_x``, and any other character becomes
  ``_<decimal code point>_``: ``Order Lines`` -> ``0_order_32__lines``,
  ``lower_t`` -> ``0lower__t``.

An ordinary name never starts with a digit, so the two forms never meet; the encoded form
uses only ``[a-z0-9_]``, so it is a valid Dagster name, a valid file name, and two names
that differ only in case stay two (also on a case-insensitive file system and in DuckDB).

Input rule (registration, grants, URLs), as in Snowflake SQL: an unquoted name is
case-insensitive and stands for its upper-case form; a name in double quotes
(``"Order Lines"``, with ``""`` for a quote inside) is exact. The encoded part itself
(``0_order_32__lines``) is accepted too, since keys are what the API hands back.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

MAX_NAME_CHARS = 255  # Snowflake's identifier limit
MAX_PART_BYTES = 255  # a file name
ORDINARY = re.compile(r"[A-Z_][A-Z0-9_]*\Z")
UNQUOTED = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*\Z")
_ORDINARY_PART = re.compile(r"[a-z_][a-z0-9_]*\Z")
_ENCODED_PART = re.compile(r"0(?:[a-z0-9]|__|_[a-z]|_[0-9]+_)+\Z")
_ESCAPE = re.compile(r"__|_([a-z])|_([0-9]+)_|([a-z0-9])")
_REFUSED_CATEGORIES = {"Cc", "Cs", "Zl", "Zp"}


class IdentifierError(ValueError):
    """A name that is not a usable Snowflake identifier (the message says why)."""


def check_name(name: str) -> str:
    """An exact Snowflake name, or ``IdentifierError``: not empty, at most 255 characters, no
    control characters or line breaks (which no tool can show or type back)."""
    if not isinstance(name, str) or not name:
        raise IdentifierError("a name must be a non-empty string")
    if len(name) > MAX_NAME_CHARS:
        raise IdentifierError(f"a name has at most {MAX_NAME_CHARS} characters")
    bad = [ch for ch in name if unicodedata.category(ch) in _REFUSED_CATEGORIES]
    if bad:
        raise IdentifierError(f"a name must not contain control characters or line breaks (found {bad[0]!r})")
    if len(encode_part(name).encode()) > MAX_PART_BYTES:
        raise IdentifierError(f"name {name[:40]!r}… is too long to store once encoded ({MAX_PART_BYTES} bytes)")
    return name


def is_ordinary(name: str) -> bool:
    return bool(ORDINARY.match(name))


def encode_part(name: str) -> str:
    """The key/folder/asset-key form of one exact Snowflake name (see the module docstring)."""
    if ORDINARY.match(name):
        return name.lower()
    out = ["0"]
    for ch in name:
        if "a" <= ch <= "z" or "0" <= ch <= "9":
            out.append(ch)
        elif ch == "_":
            out.append("__")
        elif "A" <= ch <= "Z":
            out.append("_" + ch.lower())
        else:
            out.append(f"_{ord(ch)}_")
    return "".join(out)


def decode_part(part: str) -> str:
    """The exact Snowflake name of an encoded part; ``IdentifierError`` for a non-canonical part."""
    if len(part) > MAX_PART_BYTES:
        raise IdentifierError(f"{part[:60]!r}… is not an encoded name")
    if _ORDINARY_PART.match(part):
        return part.upper()
    if not _ENCODED_PART.match(part):
        raise IdentifierError(f"{part[:60]!r} is not an encoded name")
    out = []
    for m in _ESCAPE.finditer(part, 1):
        if m.group(0) == "__":
            out.append("_")
        elif m.group(1):
            out.append(m.group(1).upper())
        elif m.group(2):
            code = int(m.group(2))
            if code > 0x10FFFF:
                raise IdentifierError(f"{part[:60]!r} is not an encoded name")
            out.append(chr(code))
        else:
            out.append(m.group(3))
    name = "".join(out)
    if encode_part(name) != part:  # one spelling per name: keys compare as strings
        raise IdentifierError(f"{part[:60]!r} is not the canonical encoding of {name!r}")
    return name


def is_part(part: str) -> bool:
    try:
        decode_part(part)
    except IdentifierError:
        return False
    return True


def parse_name(text: str) -> str:
    """The exact Snowflake name written as ``text``: quoted is exact, unquoted is upper-cased,
    an encoded part is decoded. Anything else (a trailing newline included) is refused."""
    if not isinstance(text, str):
        raise IdentifierError(f"{text!r} is not a name")
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        inner = text[1:-1]
        if '"' in inner.replace('""', ""):
            raise IdentifierError(f"{text[:60]!r}: a quote inside a quoted name is written twice (\"\")")
        return check_name(inner.replace('""', '"'))
    if UNQUOTED.match(text):
        return check_name(text.upper())
    if _ENCODED_PART.match(text):
        return check_name(decode_part(text))
    raise IdentifierError(
        f"{text[:60]!r} is not a valid identifier: unquoted names use letters, digits, _ and $; "
        'write any other name in double quotes, e.g. "Order Lines"')


def split_reference(text: str, *, sep: str = ".") -> list[tuple[str, bool]]:
    """Split a dotted (or comma-separated) reference into ``(part text, quoted)``, honouring quotes:
    ``demo.public."Order.Lines"`` -> ``[("demo", False), ("public", False), ("Order.Lines", True)]``.
    Whitespace around parts is dropped; inside quotes it is kept."""
    parts: list[tuple[str, bool]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == '"':
            j, buf = i + 1, []
            while True:
                k = text.find('"', j)
                if k < 0:
                    raise IdentifierError(f"{text[:60]!r}: unterminated quoted name")
                buf.append(text[j:k])
                if k + 1 < n and text[k + 1] == '"':
                    buf.append('"')
                    j = k + 2
                    continue
                i = k + 1
                break
            parts.append(("".join(buf), True))
        else:
            k = text.find(sep, i)
            end = n if k < 0 else k
            parts.append((text[i:end].rstrip(" \t"), False))
            i = end
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            return parts
        if text[i] != sep:
            raise IdentifierError(f"{text[:60]!r}: expected {sep!r} after a quoted name")
        i += 1


def name_of(part: str, quoted: bool) -> str:
    """The exact name of one split part (see ``split_reference``)."""
    if quoted:
        return check_name(part)
    return parse_name(part)


def table_key(database: str, schema: str, table: str) -> str:
    """The canonical key ``database.schema.table`` of three exact Snowflake names."""
    return ".".join(encode_part(check_name(p)) for p in (database, schema, table))


def split_key(key: str) -> tuple[str, str, str]:
    """The three encoded parts of a canonical key (folder, DuckDB and asset-key names)."""
    parts = key.split(".") if isinstance(key, str) else []
    if len(parts) != 3 or not all(is_part(p) for p in parts):
        raise ValueError(f"table key {str(key)[:200]!r} must be database.schema.table")
    return parts[0], parts[1], parts[2]


def source_names(key: str) -> tuple[str, str, str]:
    """The exact Snowflake (database, schema, table) of a key."""
    db, schema, table = split_key(key)
    return decode_part(db), decode_part(schema), decode_part(table)


def canonical_key(text: str) -> str:
    """The key of a table written as a key (``demo.public.orders``) or as SQL names
    (``DEMO.PUBLIC."Order Lines"``); ``ValueError`` otherwise."""
    try:
        parts = split_reference(str(text).strip())
        if len(parts) != 3:
            raise IdentifierError("a table is named database.schema.table")
        return table_key(*(name_of(p, q) for p, q in parts))
    except IdentifierError as e:
        raise ValueError(f"{str(text)[:200]!r}: {e}") from e


def duck_fold(name: str) -> str:
    """Fold case the way DuckDB compares identifiers: ASCII letters only (Python's ``lower()``
    also folds other letters, e.g. the Kelvin sign to ``k``, which DuckDB does not)."""
    return name.translate(_ASCII_LOWER)


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}


def unused_name(base: str, taken: Sequence[str]) -> str:
    """A name for something the platform adds to a query or table (a helper column, an alias),
    unequal as DuckDB compares names to every name in ``taken``: ``base``, ``base_2`` …"""
    folded = {duck_fold(n) for n in taken}
    name, i = base, 1
    while duck_fold(name) in folded:
        i += 1
        name = f"{base}_{i}"
    return name


def folds_ambiguously(name: str) -> bool:
    """True when Python's Unicode case folding and DuckDB's (ASCII only) disagree about ``name``:
    it holds a non-ASCII character that ``lower()`` changes (``É``, the Kelvin sign). Lower-case
    non-ASCII letters (``Umsätze``) fold the same way in both and pass."""
    return name.lower() != duck_fold(name)


def sql_part(name: str) -> str:
    """How an agent writes one exact name in SQL: an ordinary, non-reserved name unquoted and
    lower-case (``orders``), anything else in double quotes, exactly (``"Order Lines"``)."""
    if ORDINARY.match(name) and name.lower() not in reserved_words():
        return name.lower()
    return '"' + name.replace('"', '""') + '"'


def snowflake_reference(*names: str) -> str:
    """Names as Snowflake SQL writes them: ordinary ones bare (``DEMO.PUBLIC.ORDERS``), others quoted."""
    return ".".join(n if ORDINARY.match(n) else '"' + n.replace('"', '""') + '"' for n in names)


def sql_reference(key: str) -> str:
    """The SQL reference of a key: ``demo.public.orders``, ``demo.public."Order Lines"``."""
    return ".".join(sql_part(n) for n in source_names(key))


def column_collisions(names: Sequence[str]) -> list[tuple[str, str]]:
    """Pairs of column names DuckDB cannot hold in one table (equal once ASCII case is folded)."""
    seen: dict[str, str] = {}
    out = []
    for n in names:
        other = seen.setdefault(duck_fold(n), n)
        if other != n:
            out.append((other, n))
    return out


_reserved: list[frozenset[str]] = []


def reserved_words() -> frozenset[str]:
    """DuckDB's reserved keywords (asked once per process)."""
    if not _reserved:
        import duckdb

        con = duckdb.connect(":memory:")
        try:
            rows = con.execute("SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'").fetchall()
        finally:
            con.close()
        _reserved.append(frozenset(str(r[0]).lower() for r in rows))
    return _reserved[0]
