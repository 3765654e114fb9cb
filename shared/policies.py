"""Column and row policies on grants: the one owner of their records, vocabulary and rules.

A grant of a table to a swarm (and, narrowed further, to one agent token) can exclude
columns, mask columns (``hash``: a keyed hash, stable within a swarm so joins still work;
``partial``: ``j***@example.com`` or the last 4 characters; ``null``) and carry a row
filter (a SQL predicate the API's guard checked when it was set). Personal columns (found
by ``shared/classify.py`` at each materialization, or set by an admin's override) are
masked with ``hash`` by default until an admin grants them unmasked to a swarm, with a
reason.

How rules combine for one caller and one table (``plan``):
- an excluded column (by the swarm's or the agent's rule) is absent;
- masks only tighten: ``partial`` and ``hash`` each hide something the other shows, so
  both together give ``null``; ``null`` beats both;
- a personal column with no explicit mask is hashed unless unmasked for the swarm;
- row filters are all applied (AND);
- a column the served version lists without a classification (possible only for a
  version written before classification existed, or a corrupt manifest) is treated as
  personal: drift can never serve an unclassified column unmasked;
- an older version read on purpose (``at_versions``, a continuation's re-run) is judged by
  its own classification and by the current version's: a column classified personal now
  stays masked in every version still readable, whatever an earlier sync concluded.

The admin reads raw data; swarm and agent tokens always read through their plan. The
records are written here only (the admin API calls these functions) and read with a
token's record, so a change reaches every API replica within ``TOKEN_CACHE_TTL_S``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shared.classify import CATEGORIES, classify_names, name_rule
from shared.control.models import ColumnOverrideRow, ColumnUnmaskRow, GrantPolicyRow
from shared.identifiers import duck_fold
from shared.served import Manifest

__all__ = ["CATEGORIES", "MASK_KINDS", "ColumnPlan", "PolicySet", "Rule", "ViewPlan", "plan"]

MaskKind = Literal["hash", "partial", "null"]
MASK_KINDS: tuple[str, ...] = ("hash", "partial", "null")
Action = Literal["plain", "hash", "partial", "null", "exclude"]
_RANK = {"plain": 0, "partial": 1, "hash": 1, "null": 2, "exclude": 3}
HASH_CHARS = 16  # hex characters of a hashed value (64 bits)


def tighter(a: str, b: str) -> str:
    """The combination of two actions on one column: the one hiding more (partial + hash: null)."""
    if a == b:
        return a
    ra, rb = _RANK[a], _RANK[b]
    if ra == rb:
        return "null"
    return a if ra > rb else b


@dataclasses.dataclass(frozen=True)
class Rule:
    """One stored rule set on a table: swarm-wide, or for one agent token."""

    exclude: tuple[str, ...] = ()
    masks: tuple[tuple[str, str], ...] = ()
    row_filter: str | None = None


@dataclasses.dataclass(frozen=True)
class PolicySet:
    """Everything a swarm or agent token is under, per table key (loaded with the token)."""

    swarm_id: str
    rules: Mapping[str, tuple[Rule, ...]] = dataclasses.field(default_factory=dict)
    unmasked: Mapping[str, frozenset[str]] = dataclasses.field(default_factory=dict)  # folded column names
    overrides: Mapping[str, Mapping[str, bool]] = dataclasses.field(default_factory=dict)  # folded name -> personal
    # What the API derived from these rules per served version (it lives as long as this
    # snapshot of the rules: a token record's cache entry).
    memo: dict[Any, Any] = dataclasses.field(default_factory=dict, compare=False, repr=False)


@dataclasses.dataclass(frozen=True)
class ColumnPlan:
    name: str
    type: str
    action: str  # plain | hash | partial | null | exclude
    why: str  # policy | personal | "" (plain)


@dataclasses.dataclass(frozen=True)
class ViewPlan:
    """What one caller sees of one served version: per-column actions and the row filters."""

    table_key: str
    swarm_id: str
    columns: tuple[ColumnPlan, ...]
    row_filters: tuple[str, ...]

    @property
    def restricted(self) -> bool:
        return bool(self.row_filters) or any(c.action != "plain" for c in self.columns)

    @property
    def visible(self) -> tuple[ColumnPlan, ...]:
        return tuple(c for c in self.columns if c.action != "exclude")

    def fingerprint(self, version_file: str) -> str:
        """Names one built policy copy: the version, the swarm (its hash key) and every rule."""
        body = json.dumps([self.table_key, version_file, self.swarm_id,
                           [(c.name, c.type, c.action) for c in self.columns], list(self.row_filters)])
        return hashlib.sha256(body.encode()).hexdigest()[:32]


def classification(manifest: Manifest) -> dict[str, dict[str, Any]]:
    """The served version's classification per column; by name alone for versions written before it existed."""
    found = manifest.extra.get("classification")
    if isinstance(found, dict):
        return found
    return classify_names(c.name for c in manifest.columns)


def is_personal(manifest: Manifest, column: str, overrides: Mapping[str, bool]) -> tuple[bool, str]:
    """(personal, source): an admin override, else the version's classification; unclassified counts as personal."""
    folded = duck_fold(column)
    if folded in overrides:
        return overrides[folded], "override"
    verdict = classification(manifest).get(column)
    if not isinstance(verdict, dict):
        return True, "unclassified"
    return bool(verdict.get("personal")), "classification"


def plan(policy: PolicySet, manifest: Manifest, current: Manifest | None = None) -> ViewPlan:
    """The view a caller under ``policy`` gets of ``manifest``'s version. ``current``: the table's
    current version when ``manifest`` is an older one; a column it classifies personal is masked
    in ``manifest`` too (the verdict of now, not of the sync that wrote the older version)."""
    key = manifest.table_key
    now_personal: set[str] = set()
    if current is not None and current.version != manifest.version:
        verdicts = classification(current)
        now_personal = {duck_fold(c.name) for c in current.columns
                        if not isinstance(verdicts.get(c.name), dict) or verdicts[c.name].get("personal")}
    rules = policy.rules.get(key, ())
    unmasked = policy.unmasked.get(key, frozenset())
    overrides = policy.overrides.get(key, {})
    cols = []
    for c in manifest.columns:
        folded = duck_fold(c.name)
        action, named = rule_action(rules, folded)
        why = "policy" if named else ""
        if action == "plain":
            personal, source = is_personal(manifest, c.name, overrides)
            personal = personal or (source != "override" and folded in now_personal)
            if personal and folded not in unmasked:
                action, why = "hash", "personal"
        cols.append(ColumnPlan(c.name, c.type, action, why))
    filters = tuple(r.row_filter for r in rules if r.row_filter)
    return ViewPlan(key, policy.swarm_id, tuple(cols), filters)


def rule_action(rules: Sequence[Rule], folded: str) -> tuple[str, bool]:
    """The action ``rules`` put on the column named ``folded`` (``duck_fold``), and whether any of
    them names it: the same rule combination for a served version's plan and a live table's view."""
    action, named = "plain", False
    for rule in rules:
        if any(duck_fold(x) == folded for x in rule.exclude):
            action, named = "exclude", True
        for name, kind in rule.masks:
            if duck_fold(name) == folded:
                action, named = tighter(action, kind), True
    return action, named


def live_masked(overrides: Mapping[str, bool], unmasked: frozenset[str], name: str) -> bool:
    """Whether a live table's column (never classified: nothing of it is copied) reads as personal,
    so masked: the admin's override, else its name's verdict; not where the swarm has it unmasked."""
    folded = duck_fold(name)
    return folded not in unmasked and overrides.get(folded, name_rule(name) is not None)


def rule_digests(policy: PolicySet | None, key: str) -> list[str]:
    """Digests of the rules ``policy`` reads ``key`` under (the swarm's and the token's), recorded
    with what is saved from a read (an artifact from a query result): see ``covers``."""
    if policy is None:
        return []
    return sorted({hashlib.sha256(json.dumps([list(r.exclude), [list(m) for m in r.masks], r.row_filter])
                                  .encode()).hexdigest()[:32] for r in policy.rules.get(key, ())})


def covers(saved: object, reader: PolicySet | None, key: str) -> bool:
    """Whether something saved from a read of ``key`` under the rules ``saved`` (``rule_digests``)
    shows ``reader`` nothing its own rules hide. Rules only tighten, so it does when every rule
    ``reader`` is under was applied to the saved read too. Two tokens of one swarm share its unmask
    grants and the overrides; only their own rules differ (an agent narrowed by its token rule must
    not read what a swarm-mate saved without that rule). Nothing recorded: only a reader under no rule."""
    if reader is None:
        return True
    mine = rule_digests(reader, key)
    if not mine:
        return True
    return isinstance(saved, list) and set(mine) <= {str(x) for x in saved}


# -- records (the admin API writes, the identity store reads) ------------------------------------

def load_policy_set(session: Session, swarm_id: str, token_id: str | None, tables: Iterable[str]) -> PolicySet:
    """The rules of a swarm (and of one of its agent tokens) on ``tables``."""
    keys = sorted(set(tables))
    if not keys:
        return PolicySet(swarm_id)
    scopes = ["", token_id] if token_id else [""]
    rules: dict[str, list[Rule]] = {}
    rows = session.scalars(sa.select(GrantPolicyRow).where(
        GrantPolicyRow.swarm_id == swarm_id, GrantPolicyRow.token_id.in_(scopes), GrantPolicyRow.table_key.in_(keys)
    ).order_by(GrantPolicyRow.token_id))
    for r in rows:
        rules.setdefault(r.table_key, []).append(Rule(
            exclude=tuple(str(x) for x in r.exclude or []),
            masks=tuple((str(k), str(v)) for k, v in sorted((r.masks or {}).items())), row_filter=r.row_filter or None))
    unmasked: dict[str, set[str]] = {}
    for u in session.scalars(sa.select(ColumnUnmaskRow).where(ColumnUnmaskRow.swarm_id == swarm_id,
                                                               ColumnUnmaskRow.table_key.in_(keys))):
        unmasked.setdefault(u.table_key, set()).add(duck_fold(u.column_name))
    overrides: dict[str, dict[str, bool]] = {}
    for o in session.scalars(sa.select(ColumnOverrideRow).where(ColumnOverrideRow.table_key.in_(keys))):
        overrides.setdefault(o.table_key, {})[duck_fold(o.column_name)] = bool(o.personal)
    return PolicySet(swarm_id, {k: tuple(v) for k, v in rules.items()},
                     {k: frozenset(v) for k, v in unmasked.items()}, overrides)


def load_overrides(session: Session, table_key: str) -> dict[str, ColumnOverrideRow]:
    """The admin's overrides on one table, by folded column name."""
    rows = session.scalars(sa.select(ColumnOverrideRow).where(ColumnOverrideRow.table_key == table_key))
    return {duck_fold(r.column_name): r for r in rows}


def check_columns(names: Sequence[str], field: str) -> list[str]:
    """Column names as given (1 to 255 characters, no control characters), de-duplicated by DuckDB's folding."""
    out: list[str] = []
    seen: set[str] = set()
    for n in names:
        if not isinstance(n, str) or not n or len(n) > 255 or any(not ch.isprintable() for ch in n):
            raise ValueError(f"{field}: column names must be 1 to 255 printable characters")
        if duck_fold(n) not in seen:
            seen.add(duck_fold(n))
            out.append(n)
    return out


def put_rule(session: Session, *, swarm_id: str, token_id: str, table_key: str, exclude: Sequence[str],
             masks: Mapping[str, str], row_filter: str | None, by: str) -> GrantPolicyRow:
    """Create or replace the rule of (swarm or token, table). ``row_filter`` must already be guarded."""
    bad = sorted({k for k in masks.values() if k not in MASK_KINDS})
    if bad:
        raise ValueError(f"masks: unknown mask kind {bad[0]!r}; use one of {', '.join(MASK_KINDS)}")
    excluded = check_columns(list(exclude), "exclude")
    masked = {n: masks[n] for n in check_columns(list(masks), "masks")}
    row = session.scalars(sa.select(GrantPolicyRow).where(
        GrantPolicyRow.swarm_id == swarm_id, GrantPolicyRow.token_id == token_id,
        GrantPolicyRow.table_key == table_key)).first()
    if row is None:
        row = GrantPolicyRow(swarm_id=swarm_id, token_id=token_id, table_key=table_key)
        session.add(row)
    row.exclude, row.masks, row.row_filter, row.updated_by = excluded, masked, row_filter, by
    row.updated_at = dt.datetime.now(dt.UTC)
    session.flush()
    return row


def delete_rule(session: Session, *, swarm_id: str, token_id: str, table_key: str) -> bool:
    result = session.execute(sa.delete(GrantPolicyRow).where(
        GrantPolicyRow.swarm_id == swarm_id, GrantPolicyRow.token_id == token_id, GrantPolicyRow.table_key == table_key))
    return bool(getattr(result, "rowcount", 0))


def unmask(session: Session, *, swarm_id: str, table_key: str, column: str, reason: str, by: str) -> ColumnUnmaskRow:
    check_columns([column], "column")
    row = session.scalars(sa.select(ColumnUnmaskRow).where(
        ColumnUnmaskRow.swarm_id == swarm_id, ColumnUnmaskRow.table_key == table_key,
        ColumnUnmaskRow.column_name == column)).first()
    if row is None:
        row = ColumnUnmaskRow(swarm_id=swarm_id, table_key=table_key, column_name=column)
        session.add(row)
    row.reason, row.granted_by, row.granted_at = reason, by, dt.datetime.now(dt.UTC)
    session.flush()
    return row


def remask(session: Session, *, swarm_id: str, table_key: str, column: str) -> bool:
    result = session.execute(sa.delete(ColumnUnmaskRow).where(
        ColumnUnmaskRow.swarm_id == swarm_id, ColumnUnmaskRow.table_key == table_key,
        ColumnUnmaskRow.column_name == column))
    return bool(getattr(result, "rowcount", 0))


def set_override(session: Session, *, table_key: str, column: str, personal: bool, category: str | None,
                 reason: str, by: str) -> ColumnOverrideRow:
    check_columns([column], "column")
    row = load_overrides(session, table_key).get(duck_fold(column))
    if row is None:
        row = ColumnOverrideRow(table_key=table_key, column_name=column)
        session.add(row)
    row.column_name, row.personal, row.category, row.reason, row.updated_by = column, personal, category, reason, by
    row.updated_at = dt.datetime.now(dt.UTC)
    session.flush()
    return row


def clear_override(session: Session, *, table_key: str, column: str) -> bool:
    row = load_overrides(session, table_key).get(duck_fold(column))
    if row is None:
        return False
    session.delete(row)
    return True


def forget_swarm(session: Session, swarm_id: str) -> None:
    """Remove a deleted swarm's rules and unmask grants."""
    session.execute(sa.delete(GrantPolicyRow).where(GrantPolicyRow.swarm_id == swarm_id))
    session.execute(sa.delete(ColumnUnmaskRow).where(ColumnUnmaskRow.swarm_id == swarm_id))
