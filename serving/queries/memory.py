"""The process memory budget the watchdog's memory guard enforces on agent queries.

DuckDB's own ``memory_limit`` misses some intermediates, so the API process also watches
its RSS against ``QUERY_PROCESS_MEMORY_LIMIT`` (default 80% of the machine or container).
"""

from __future__ import annotations

import logging
import os
import re

from serving.queries.watchdog import rss_bytes
from shared.settings import Settings

log = logging.getLogger("agents_data.queries")
MIN_QUERY_MEMORY = 256 << 20  # the process memory budget leaves queries at least this much above start-up size
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def parse_size(text: str) -> int:
    """Bytes of a DuckDB-style size (``1GB``, ``512MiB``, ``1000000``); 0 for an empty text."""
    if not text.strip():
        return 0
    m = _SIZE.match(text)
    if m is None:
        raise ValueError(f"not a size: {text!r}")
    unit = (m.group(2) or "").lower().removesuffix("b")
    if unit not in _UNITS:
        raise ValueError(f"unknown size unit in {text!r}")
    return int(float(m.group(1)) * _UNITS[unit])


def machine_memory() -> int:
    """Physical memory, or the cgroup (container) limit when smaller."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = open(path, encoding="ascii").read().strip()  # noqa: SIM115 - tiny read
        except OSError:
            continue
        if raw.isdigit():
            total = min(total, int(raw))
    return total


def process_memory_limit(settings: Settings) -> int:
    """The RSS budget of one API process: ``QUERY_PROCESS_MEMORY_LIMIT``, default 80% of the machine."""
    return parse_size(settings.query.process_memory_limit) or int(machine_memory() * 0.8)


def memory_budget(settings: Settings) -> int:
    """``process_memory_limit``, raised to leave queries ``MIN_QUERY_MEMORY`` above this process's size:
    a budget the idle process already uses would stop every query."""
    limit, floor = process_memory_limit(settings), rss_bytes() + MIN_QUERY_MEMORY
    if limit < floor:
        log.warning("QUERY_PROCESS_MEMORY_LIMIT (%d MB) leaves queries less than %d MB above this process's "
                    "size; using %d MB", limit >> 20, MIN_QUERY_MEMORY >> 20, floor >> 20)
        limit = floor
    return limit
