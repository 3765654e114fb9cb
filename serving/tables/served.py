"""Which tables a caller may read, their current served version, and the one 404 for names.

Why a provider registered at start-up: the query engine keeps the stat-cached view of the
served files (one ``stat`` per table per request) and the admin's list of served tables.
The queries feature registers its engine here (``register``) when it starts; every other
feature reads through :func:`served_tables`, so none of them imports the queries feature.

``resolve_table(caller, name, services)`` is the one name resolver for table paths
(catalog, sampling, profiling, sync status): ``orders``, ``public.orders``,
``demo.public.orders`` or ``demo.public."Order Lines"`` (URL-encoded), or the key itself,
unique among the caller's grants; unknown and ungranted answer the same 404.
"""

from __future__ import annotations

from typing import Protocol

from serving.lib.caller import Caller
from serving.lib.errors import NotFound, QueryRejected
from serving.lib.services import Services
from serving.tables.names import grant_index
from shared.served import Manifest

PROVIDER = "served_tables"


class ServedTables(Protocol):
    def grants_of(self, caller: Caller, *, refresh: bool = False) -> frozenset[str]:
        """The caller's table keys; for admin every served table."""

    def current(self, key: str) -> Manifest | None:
        """The table's current served manifest, or None when it has never been served."""

    def seen(self, caller: Caller, manifest: Manifest) -> Manifest:
        """``manifest`` as ``caller`` reads it under its grant policy (raw for the admin)."""


def register(services: Services, provider: ServedTables) -> None:
    services.parts[PROVIDER] = provider


def served_tables(services: Services) -> ServedTables:
    provider: ServedTables | None = services.parts.get(PROVIDER)
    if provider is None:
        raise RuntimeError(f"service {PROVIDER!r} is not started")
    return provider


def not_found(name: str) -> NotFound:
    shown = name if len(name) <= 200 else name[:200] + "…"
    return NotFound(f"table {shown} does not exist or is not granted to this token", rule="table_not_granted")


def readable_keys(caller: Caller, services: Services) -> frozenset[str]:
    """Keys the caller may read: its grants, or every served table for admin."""
    return served_tables(services).grants_of(caller)


def resolve_table(caller: Caller, name: str, services: Services) -> str:
    """The granted key ``name`` designates, or 404 ``table_not_granted`` (same answer for unknown tables).

    A short name matching several of the caller's tables is also a 404, whose message
    lists the caller's own candidates (no other table is ever named).
    """
    return resolve_among(readable_keys(caller, services), name)


def resolve_among(keys: frozenset[str], name: str) -> str:
    """``name`` resolved among ``keys`` by the agents' name rule, or the 404 above."""
    try:
        return grant_index(keys).resolve_text(name)
    except QueryRejected as e:
        if e.rule == "ambiguous_table":
            raise NotFound(e.message, rule="ambiguous_table") from e
        raise not_found(name) from e
