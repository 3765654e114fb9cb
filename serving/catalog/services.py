"""The table catalog: readable tables with columns, size, served version and freshness.

The description of one table, name resolution and the "not found" answer live in the
tables layer (``serving/tables/``), which every feature shares; this module decides which
tables a caller lists or gets.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from serving.lib.caller import Caller
from serving.lib.services import Services
from serving.tables.describe import describe_tables
from serving.tables.served import not_found, readable_keys, resolve_table
from shared.control.db import session_scope
from shared.control.models import RegisteredTableRow
from shared.identifiers import canonical_key


def list_tables(caller: Caller, services: Services) -> list[dict[str, Any]]:
    keys = set(readable_keys(caller, services))
    if caller.is_admin:  # registered but never served tables too
        with session_scope(services.control_url) as s:
            keys |= set(s.scalars(select(RegisteredTableRow.key).where(RegisteredTableRow.deleted_at.is_(None))))
    return describe_tables(services, keys, caller)


def get_table(caller: Caller, name: str, services: Services) -> dict[str, Any]:
    key = resolve_table(caller, name, services) if not caller.is_admin else _admin_key(caller, name, services)
    entries = describe_tables(services, {key}, caller)
    if not entries:
        raise not_found(name)
    return entries[0]


def _admin_key(caller: Caller, name: str, services: Services) -> str:
    """Admin may also name a registered table that was never served, by its full key or SQL name."""
    try:
        return canonical_key(name)
    except ValueError:
        return resolve_table(caller, name, services)
