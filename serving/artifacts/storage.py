"""HTTP side of artifact storage: conditional and ranged downloads over the storage interface.

The backends themselves (local content-addressed folder, S3-compatible) live in
``shared.artifacts_store`` / ``shared.artifacts_s3`` so that housekeeping can purge
without importing serving. Here: ETag (the SHA-256), ``If-None-Match`` (304),
``If-Range``, and one ``Range`` (206, or 416 when unsatisfiable). Several ranges in one
request are answered with the whole object (200), which RFC 9110 allows.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator

from shared.artifacts_store import ArtifactStore

_RANGE = re.compile(r"^\s*bytes\s*=\s*([0-9]*)\s*-\s*([0-9]*)\s*$", re.IGNORECASE)
_HUGE = 10**18  # any position this large is past the end of every artifact


def etag(sha256: str) -> str:
    return f'"{sha256}"'


def _tags(header: str) -> list[str]:
    return [t.strip().removeprefix("W/") for t in header.split(",") if t.strip()]


def not_modified(if_none_match: str | None, sha256: str) -> bool:
    """``If-None-Match`` matches (weak comparison, ``*`` matches anything that exists)."""
    if not if_none_match:
        return False
    tags = _tags(if_none_match)
    return "*" in tags or etag(sha256) in tags


class RangeNotSatisfiable(Exception):
    pass


@dataclasses.dataclass(frozen=True)
class Span:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def _position(digits: str) -> int:
    """A byte position; very long digit strings saturate instead of overflowing ``int()``'s limits."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 18 else _HUGE


def parse_range(header: str | None, size: int, if_range: str | None, sha256: str) -> Span | None:
    """The single byte range to serve, or None for the whole object.

    Raises ``RangeNotSatisfiable`` for a well-formed range outside the object. A
    malformed header, several ranges, or a stale ``If-Range`` mean "send everything".
    """
    if not header or "," in header:
        return None
    if if_range is not None and if_range.strip() != etag(sha256):
        return None
    m = _RANGE.match(header)
    if not m or (not m.group(1) and not m.group(2)):
        return None
    first, last = m.group(1), m.group(2)
    if not first:  # suffix: the last N bytes
        n = _position(last)
        if n == 0 or size == 0:
            raise RangeNotSatisfiable
        return Span(max(0, size - n), size - 1)
    start = _position(first)
    if last and _position(last) < start:
        return None  # invalid syntax: ignore the header
    if start >= size:
        raise RangeNotSatisfiable
    return Span(start, min(_position(last) if last else size - 1, size - 1))


def read_span(store: ArtifactStore, key: str, span: Span | None) -> Iterator[bytes]:
    if span is None:
        return store.read(key)
    return store.read(key, span.start, span.end)
