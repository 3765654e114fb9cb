"""Schema drift between the served version and the source, decided before any row moves.

Why: agents query served tables by column name and type, so a change in the source must
either be safe to apply (a new column, a widened number, a dropped NOT NULL) or stop the
materialization with the column named, leaving the served version as it was. A full
refresh (run config ``full_refresh``) rebuilds from the source and accepts any change.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import duckdb

from orchestration.sync.sql import qi
from orchestration.sync.types import INTEGER_TYPES, base_type, decimal_parts
from shared.identifiers import duck_fold
from shared.served import DATA_TABLE, Column


class SchemaDriftError(RuntimeError):
    """The source changed a column's type incompatibly; ``columns`` names them."""

    def __init__(self, table_key: str, changes: Sequence[tuple[str, str, str]]) -> None:
        self.columns = [c[0] for c in changes]
        detail = "; ".join(f"column {name} changed from {old} to {new}" for name, old, new in changes)
        super().__init__(
            f"incompatible schema change in the source of {table_key}: {detail}. The served data was left as it was; "
            "materialize with run config full_refresh=true to rebuild the table with the new types."
        )


@dataclasses.dataclass(frozen=True)
class DriftPlan:
    """What changes between the served columns and the new source columns."""

    added: list[Column]
    removed: list[Column]
    widened: list[tuple[Column, Column]]  # (served, source)
    relaxed: list[Column]  # source dropped NOT NULL
    columns: list[Column]  # the served schema after the change, in order
    renamed: list[tuple[Column, Column]] = dataclasses.field(default_factory=list)  # (served, source): case only

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.widened or self.relaxed or self.renamed)

    def summary(self) -> dict[str, list[str]]:
        out = {
            "added": [c.name for c in self.added],
            "removed": [c.name for c in self.removed],
            "widened": [f"{a.name}: {a.type} -> {b.type}" for a, b in self.widened],
            "nullable": [c.name for c in self.relaxed],
        }
        if self.renamed:
            out["renamed"] = [f"{a.name} -> {b.name}" for a, b in self.renamed]
        return out


def is_widening(old: str, new: str) -> bool:
    """True when every ``old`` value is exactly representable in ``new``."""
    if old == new:
        return True
    old_base, new_base = base_type(old), base_type(new)
    numeric = {*INTEGER_TYPES, "DECIMAL"}
    if old_base in numeric and new_base in numeric:
        (op, os_), (np_, ns) = decimal_parts(old), decimal_parts(new)
        if new_base in INTEGER_TYPES and os_ > 0:
            return False
        return ns >= os_ and (np_ - ns) >= (op - os_)
    return False


def plan(table_key: str, served: Sequence[Column], source: Sequence[Column]) -> DriftPlan:
    """Compare; raise ``SchemaDriftError`` naming every incompatible column."""
    by_name = {c.name: c for c in source}
    old_names = {c.name for c in served}
    # DuckDB compares names without ASCII case: a source column renamed only in case ("V" to
    # "v") is the served column under its new name, not a new one beside it (which DuckDB
    # refuses to add). It is renamed in place and keeps its values.
    by_fold = {duck_fold(c.name): c for c in source if c.name not in old_names}
    incompatible, widened, relaxed, removed, columns, renamed = [], [], [], [], [], []
    for old in served:
        new = by_name.get(old.name)
        if new is None and (new := by_fold.get(duck_fold(old.name))) is not None:
            renamed.append((old, new))
        if new is None:
            removed.append(old)  # kept in the served table, NULL from now on
            columns.append(dataclasses.replace(old, nullable=True))
            continue
        if not is_widening(old.type, new.type):
            incompatible.append((old.name, old.type, new.type))
            continue
        if new.type != old.type:
            widened.append((old, new))
        if new.nullable and not old.nullable:
            relaxed.append(old)
        nullable = old.nullable or new.nullable
        columns.append(dataclasses.replace(new, nullable=nullable, description=new.description or old.description))
    if incompatible:
        raise SchemaDriftError(table_key, incompatible)
    # A new column is nullable in the served table: the rows already there have no value.
    taken = old_names | {b.name for _, b in renamed}
    added = [dataclasses.replace(c, nullable=True) for c in source if c.name not in taken]
    return DriftPlan(added=added, removed=removed, widened=widened, relaxed=relaxed, columns=columns + added,
                     renamed=renamed)


def apply(con: duckdb.DuckDBPyConnection, drift: DriftPlan) -> None:
    """Alter the copied previous version in place so new slices fit."""
    table = qi(DATA_TABLE)
    names = {a.name: b.name for a, b in drift.renamed}
    for old, new in drift.renamed:
        con.execute(f"ALTER TABLE {table} RENAME COLUMN {qi(old.name)} TO {qi(new.name)}")
    for old, new in drift.widened:
        con.execute(f"ALTER TABLE {table} ALTER COLUMN {qi(names.get(old.name, old.name))} TYPE {new.type}")
    for col in [*drift.relaxed, *(c for c in drift.removed if not c.nullable)]:
        con.execute(f"ALTER TABLE {table} ALTER COLUMN {qi(names.get(col.name, col.name))} DROP NOT NULL")
    for col in drift.added:
        con.execute(f"ALTER TABLE {table} ADD COLUMN {qi(col.name)} {col.type}")
