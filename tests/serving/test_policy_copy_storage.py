"""A policy copy stores its masked text columns uncompressed (a point lookup then reads as
fast as on the served file) and keeps every value, type and row the plan shows."""

from __future__ import annotations

from pathlib import Path

import duckdb

from serving.tables.policies import PolicyCopies
from shared.policies import PolicySet, Rule, plan
from shared.served import version_path
from shared.settings import Settings
from tests.serving.policy_support import CUSTOMERS, CUSTOMERS_SQL, publish_classified


def _storage(path: str) -> dict[str, set[str]]:
    con = duckdb.connect(path, read_only=True)
    try:
        got: dict[str, set[str]] = {}
        for name, comp in con.execute("SELECT column_name, compression FROM pragma_storage_info('data') "
                                      "WHERE segment_type <> 'VALIDITY'").fetchall():
            got.setdefault(name, set()).add(comp)
        return got
    finally:
        con.close()


def test_masked_text_columns_are_stored_uncompressed_and_values_are_unchanged(tmp_path: Path) -> None:
    settings = Settings.from_env({"AGENTS_DATA_HOME": str(tmp_path), "JWT_SECRET": "test-secret-" + "x" * 32})
    manifest = publish_classified(settings.served_path, CUSTOMERS, CUSTOMERS_SQL)
    rule = Rule(exclude=("secret",), masks=(("phone", "partial"), ("note", "null"), ("full_name", "hash")),
                row_filter="region = 'EU'")
    view_plan = plan(PolicySet("s1", rules={CUSTOMERS: (rule,)}), manifest)
    copies = PolicyCopies(settings)
    seen = copies.view(manifest, view_plan)
    path = seen.extra["policy_path"]

    storage = _storage(path)
    masked = {c.name for c in view_plan.visible if c.action in ("hash", "partial")}
    assert {"full_name", "email", "phone"} <= masked
    assert all(storage[name] == {"Uncompressed"} for name in masked), storage
    assert "secret" not in storage
    assert storage["region"] != {"Uncompressed"}  # plain columns keep DuckDB's own choice

    con = duckdb.connect(path, read_only=True)
    try:
        types = dict(con.execute("SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'data'").fetchall())
        got = con.execute("SELECT customer_id, full_name, phone, note, region FROM data ORDER BY customer_id").fetchall()
    finally:
        con.close()
    raw = duckdb.connect(str(version_path(settings.served_path, manifest)), read_only=True)
    try:
        raw_types = dict(raw.execute("SELECT column_name, data_type FROM duckdb_columns() "
                                     "WHERE table_name = 'data'").fetchall())
        want_ids = [r[0] for r in raw.execute("SELECT customer_id FROM data WHERE region = 'EU' "
                                              "ORDER BY customer_id").fetchall()]
    finally:
        raw.close()
    assert [r[0] for r in got] == want_ids
    assert seen.row_count == len(want_ids) == 20
    assert types["customer_id"] == raw_types["customer_id"]
    assert types["note"] == raw_types["note"]
    assert types["full_name"] == types["phone"] == "VARCHAR"
    key = copies.swarm_key("s1")
    check = duckdb.connect(":memory:")
    try:
        for customer_id, full_name, phone, note, region in got:
            name = ["Alice Martin", "Omar Okafor", "Mei Tanaka", "Lucas Garcia"][customer_id % 4]
            assert full_name == check.execute("SELECT left(sha256(? || ?), 16)", [key, name]).fetchone()[0]
            assert phone == "***" + f"{customer_id:04d}"
            assert note is None
            assert region == "EU"
    finally:
        check.close()
