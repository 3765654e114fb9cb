"""How grant rules combine into what one caller sees (``shared/policies.plan``)."""

from __future__ import annotations

from shared.classify import classify_column
from shared.policies import PolicySet, Rule, plan, tighter
from shared.served import Column, Manifest


def manifest(classified: dict[str, bool] | None) -> Manifest:
    cols = [Column("id", "BIGINT"), Column("Email", "VARCHAR"), Column("region", "VARCHAR"), Column("note", "VARCHAR")]
    extra = {}
    if classified is not None:
        extra["classification"] = {n: {"personal": p} for n, p in classified.items()}
    return Manifest(table_key="d.s.t", version="v1", file="v-v1.duckdb", published_at="", strategy="full", row_count=3,
                    bytes=0, columns=cols, extra=extra)


def actions(p: PolicySet, m: Manifest) -> dict[str, str]:
    return {c.name: c.action for c in plan(p, m).columns}


CLASSIFIED = {"id": False, "Email": True, "region": False, "note": False}


def test_masks_only_tighten() -> None:
    assert tighter("plain", "partial") == "partial"
    assert tighter("partial", "hash") == "null"
    assert tighter("hash", "null") == "null"
    assert tighter("null", "exclude") == "exclude"
    assert tighter("hash", "hash") == "hash"


def test_personal_columns_are_hashed_unless_unmasked_for_the_swarm() -> None:
    m = manifest(CLASSIFIED)
    assert actions(PolicySet("s"), m) == {"id": "plain", "Email": "hash", "region": "plain", "note": "plain"}
    unmasked = PolicySet("s", unmasked={"d.s.t": frozenset({"email"})})  # folded as DuckDB folds names
    assert actions(unmasked, m)["Email"] == "plain"
    assert not plan(unmasked, m).restricted


def test_an_override_wins_over_the_classification() -> None:
    m = manifest(CLASSIFIED)
    p = PolicySet("s", overrides={"d.s.t": {"email": False, "region": True}})
    assert actions(p, m) == {"id": "plain", "Email": "plain", "region": "hash", "note": "plain"}


def test_swarm_and_agent_rules_add_up() -> None:
    swarm = Rule(exclude=("note",), masks=(("email", "partial"),), row_filter="region = 'EU'")
    agent = Rule(masks=(("EMAIL", "hash"), ("id", "null")), row_filter="id < 10")
    view = plan(PolicySet("s", rules={"d.s.t": (swarm, agent)}), manifest(CLASSIFIED))
    assert {c.name: c.action for c in view.columns} == {"id": "null", "Email": "null", "region": "plain",
                                                        "note": "exclude"}
    assert view.row_filters == ("region = 'EU'", "id < 10")
    assert [c.name for c in view.visible] == ["id", "Email", "region"]


def test_unclassified_columns_are_masked_and_old_versions_are_classified_by_name() -> None:
    partial = manifest({"id": False, "region": False, "note": False})  # Email has no verdict
    assert actions(PolicySet("s"), partial)["Email"] == "hash"
    legacy = manifest(None)  # written before classification existed: names decide
    assert actions(PolicySet("s"), legacy) == {"id": "plain", "Email": "hash", "region": "plain", "note": "plain"}
    assert classify_column("Email", []).personal


def test_fingerprints_change_with_every_input() -> None:
    m = manifest(CLASSIFIED)
    base = plan(PolicySet("s"), m)
    assert base.fingerprint("v-1") != base.fingerprint("v-2")
    assert base.fingerprint("v-1") != plan(PolicySet("other"), m).fingerprint("v-1")
    filtered = plan(PolicySet("s", rules={"d.s.t": (Rule(row_filter="id = 1"),)}), m)
    assert filtered.fingerprint("v-1") != base.fingerprint("v-1")
