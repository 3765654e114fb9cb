"""Truncated answers are never silent: the continuation, the rows cursor and provenance.

Why in ``lib``: the queries feature writes these shapes, the MCP adapter reads them and
the artifacts feature keeps provenance; one module owns each shape.

- ``continuation(...)``: what a cut answer carries (which cap cut it, and the job whose
  full result can be fetched in any format, paged by cursor or saved as an artifact; the
  job is lazy: it runs on its first fetch, so a continuation nobody follows costs nothing).
- ``encode_cursor`` / ``decode_cursor``: the rows cursor (opaque to callers: a row offset).
- ``provenance(...)``: tables with served versions, sync times and source watermarks, the
  SQL hash and the truncation, as one JSON object for response headers and Parquet
  key-value metadata.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal
from urllib.parse import quote

import msgspec

from serving.lib.errors import BadRequest

CutBy = Literal["row_cap", "byte_cap"]
JOBS = "/api/v1/queries/jobs"
PROVENANCE_KEY = "agents_data.provenance"  # Parquet key-value metadata
HEADER_PROVENANCE = "Agents-Data-Provenance"
HEADER_TRUNCATED = "Agents-Data-Truncated"
HEADER_SQL_HASH = "Agents-Data-Sql-Hash"
HEADER_TABLES = "Agents-Data-Tables"
HEADER_SCHEMA_CHANGED = "Agents-Data-Schema-Changed"
_MAX_OFFSET = 1 << 40


def encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(str(int(offset)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The row offset of ``cursor`` (0 when absent); 400 ``invalid_cursor`` for anything else."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        offset = int(text)
    except (binascii.Error, UnicodeDecodeError, ValueError) as e:
        raise BadRequest("cursor is not one this API gave out; use next_cursor from the previous page",
                         rule="invalid_cursor") from e
    if not 0 <= offset < _MAX_OFFSET or text != str(offset):
        raise BadRequest("cursor is not one this API gave out; use next_cursor from the previous page",
                         rule="invalid_cursor")
    return offset


def rows_url(job_id: str, offset: int, limit: int) -> str:
    return f"{JOBS}/{quote(job_id, safe='')}/rows?cursor={encode_cursor(offset)}&limit={limit}"


def continuation(*, job_id: str, status: str, cut_by: CutBy, limit: int, rows_returned: int, full_limit: int,
                 rest_available: bool, page_rows: int) -> dict[str, Any]:
    """The ``continuation`` of a cut answer (shape documented in the README, "Continuations")."""
    base = f"{JOBS}/{quote(job_id, safe='')}"
    return {
        "job_id": job_id, "status": status, "cut_by": cut_by, "limit": limit, "rows_returned": rows_returned,
        "rest_available": rest_available, "status_url": base, "result_url": f"{base}/result",
        "next_url": rows_url(job_id, rows_returned, page_rows) if rest_available else None,
        "artifact_url": f"{base}/artifact", "full_limit": full_limit,
    }


def provenance(*, tables: Iterable[Mapping[str, Any]], watermarks: Mapping[str, str | None], sql_hash: str | None,
               truncated: bool, cut_by: str | None, limit: int | None, row_count: int | None,
               job_id: str | None) -> dict[str, Any]:
    return {
        "tables": [{"table": t.get("table"), "version": t.get("version"), "synced_at": t.get("synced_at"),
                    "source_watermark": watermarks.get(str(t.get("table")))} for t in tables],
        "sql_hash": sql_hash, "truncated": bool(truncated), "cut_by": cut_by if truncated else None,
        "limit": limit if truncated else None, "row_count": row_count, "job_id": job_id,
    }


def provenance_headers(prov: Mapping[str, Any]) -> dict[str, str]:
    """Response headers of a result: ASCII only (names outside ASCII are ``\\uXXXX``-escaped JSON)."""
    tables = ", ".join(f"{t['table']}={t['version']}" for t in prov.get("tables") or [])
    return {
        HEADER_PROVENANCE: _ascii_json(prov),
        HEADER_TRUNCATED: "true" if prov.get("truncated") else "false",
        HEADER_SQL_HASH: str(prov.get("sql_hash") or ""),
        HEADER_TABLES: tables.encode("ascii", "backslashreplace").decode("ascii"),
    }


def _ascii_json(value: Mapping[str, Any]) -> str:
    """Compact JSON with non-ASCII characters escaped. msgspec writes the same text as ``json.dumps``
    for these documents (strings, integers, booleans, nulls) in a twentieth of the time; the standard
    library answers when there is anything to escape or a value msgspec would write differently."""
    try:
        text = _ENCODER.encode(value)
        if text.isascii():
            return text.decode("ascii")
    except TypeError:  # a type msgspec does not know: the standard library's default=str decides
        pass
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"), default=str)


def _no_hook(value: Any) -> Any:
    raise TypeError(type(value).__name__)


_ENCODER = msgspec.json.Encoder(enc_hook=_no_hook)
