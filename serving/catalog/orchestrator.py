"""Dagster's own freshness verdict, shown beside the catalog's.

Why both: the catalog's ``fresh / stale / failing`` is computed from the control database
and the served manifests, so it answers even when Dagster is down. Dagster evaluates the
same freshness policy on its side (``freshnessStatusInfo``: HEALTHY, WARNING, DEGRADED,
UNKNOWN), and data engineers see that one in the UI; agents get it too, as
``freshness.dagster_status``. It is fetched in one GraphQL query for all tables of a
response, cached for ``TTL_S``, and left out (None) when Dagster does not answer within
``TIMEOUT_S``: the catalog must stay cheap and must never fail because of Dagster.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from serving.lib.services import Services
from serving.tables.hooks import freshness_source

log = logging.getLogger(__name__)
TTL_S = 10.0
TIMEOUT_S = 1.0
_KEY = "catalog_dagster_freshness"


class FreshnessCache:
    def __init__(self) -> None:
        self._values: dict[str, tuple[float, str | None]] = {}

    def fresh(self, keys: Iterable[str], now: float) -> dict[str, str | None] | None:
        """Every key's cached value, or None when any is missing or expired."""
        out = {}
        for key in keys:
            hit = self._values.get(key)
            if hit is None or hit[0] <= now:
                return None
            out[key] = hit[1]
        return out

    def store(self, values: dict[str, str | None], now: float) -> None:
        if len(self._values) > 100_000:
            self._values.clear()
        for key, value in values.items():
            self._values[key] = (now + TTL_S, value)


async def dagster_freshness(services: Services, keys: list[str]) -> dict[str, str | None]:
    """``{table key: Dagster freshness status}`` for ``keys``; empty when Dagster is unavailable."""
    client = freshness_source(services)
    if client is None or not keys:
        return {}
    cache = services.parts.setdefault(_KEY, FreshnessCache())
    now = time.monotonic()
    if (hit := cache.fresh(keys, now)) is not None:
        return hit
    try:
        found = await client.freshness_statuses([k.split(".") for k in keys], timeout_s=TIMEOUT_S)
    except Exception as e:  # down, slow or erroring: the catalog answers without it, and does
        log.info("Dagster freshness unavailable for the catalog: %s", e)  # not ask again for TTL_S
        cache.store(dict.fromkeys(keys), now)
        return {}
    values = {k: found.get(tuple(k.split("."))) for k in keys}
    cache.store(values, now)
    return values
