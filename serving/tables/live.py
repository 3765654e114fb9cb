"""Source statistics of live tables (not copied): columns, rows, bytes and last change, from Snowflake.

Why cached: the catalog describes every readable table on each call, and a live table's
description comes from the source's ``INFORMATION_SCHEMA`` (one query per schema for the
figures, one per table for the columns). An API process keeps each answer for
``LIVE_CACHE_TTL_S``; when Snowflake cannot be reached, the last answer is shown (or none),
never an error, so the catalog stays available.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from serving.lib.services import Services
from shared.control.models import RegisteredTableRow
from shared.snowflake import SourceError, connect, list_tables, table_columns

PART = "live_stats"


class LiveStats:
    def __init__(self, services: Services) -> None:
        self.settings = services.settings
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def of(self, reg: RegisteredTableRow) -> dict[str, Any] | None:
        """``{columns, row_count, bytes, last_altered}`` of a live table, or None if never answered."""
        ttl = self.settings.sources.live_cache_ttl_s
        with self._lock:
            hit = self._cache.get(reg.key)
        if hit is not None and time.monotonic() - hit[0] < ttl:
            return hit[1]
        try:
            with connect(self.settings.snowflake) as con:
                tables = [t for t in list_tables(con, reg.database, reg.schema_name) if t.name == reg.table_name]
                columns = table_columns(con, reg.database, reg.schema_name, reg.table_name)
        except (SourceError, Exception):  # the connector raises many types; the catalog must still answer
            return hit[1] if hit else None
        figures = tables[0] if tables else None
        stats = {
            "columns": [
                {
                    "name": c.name,
                    "type": _type(c.data_type, c.precision, c.scale),
                    "nullable": c.nullable,
                    "description": c.comment,
                }
                for c in columns
            ],
            "row_count": figures.row_count if figures else None,
            "bytes": figures.bytes if figures else None,
            "last_altered": figures.last_altered if figures else None,
        }
        with self._lock:
            self._cache[reg.key] = (time.monotonic(), stats)
        return stats


def _type(kind: str, precision: int | None, scale: int | None) -> str:
    if kind in ("NUMBER", "DECIMAL", "NUMERIC") and precision is not None:
        return f"NUMBER({precision},{scale or 0})"
    return kind


def live_stats(services: Services) -> LiveStats:
    part = services.parts.get(PART)
    if not isinstance(part, LiveStats):
        part = services.parts[PART] = LiveStats(services)
    return part
