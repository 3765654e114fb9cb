"""Regenerate ``functions.toml`` from the running DuckDB's ``duckdb_functions()``.

Why a generator and a reviewed file: the guard allows a function only if a person put it
in an allowing group of ``functions.toml``. After a DuckDB upgrade, run::

    python -m serving.queries.functions_gen          # rewrite functions.toml
    python -m serving.queries.functions_gen --check  # exit 1 if it is out of date

Every function keeps the group it was reviewed into; a function DuckDB no longer has is
dropped; a new one lands in the group ``unreviewed`` (refused), and
``tests/serving/test_functions.py`` fails until someone moves it to a group, with its reason.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path
from typing import Any

import duckdb

POLICY_FILE = Path(__file__).with_name("functions.toml")
KINDS = {"scalar": "expression", "aggregate": "expression", "window": "expression", "macro": "expression",
         "table": "table", "table_macro": "table", "pragma": "pragma"}
UNREVIEWED = "unreviewed"
HEADER = """\
# Which DuckDB functions agent SQL may call. Reviewed by hand; regenerate after a DuckDB
# upgrade with `python -m serving.queries.functions_gen` (new functions land in `unreviewed`).
#
# kind:    expression (scalar, aggregate, window functions and macros) | table | pragma
# verdict: allow | bound (allowed only through the guard's size-bound rewrite) | refuse
# A name not listed under its kind is refused.
"""


def duckdb_functions() -> dict[str, set[str]]:
    """Every function name of a fresh in-memory DuckDB, with the kinds it exists as."""
    con = duckdb.connect(":memory:")
    try:
        rows = con.execute("SELECT DISTINCT function_name, function_type FROM duckdb_functions()").fetchall()
    finally:
        con.close()
    out: dict[str, set[str]] = {}
    for name, ftype in rows:
        out.setdefault(str(name), set()).add(KINDS.get(str(ftype), "expression"))
    return out


def load(path: Path = POLICY_FILE) -> dict[str, Any]:
    with path.open("rb") as f:
        return tomllib.load(f)


def regenerate(current: dict[str, Any], live: dict[str, set[str]]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The policy for ``live`` functions, keeping reviewed placements; and what changed."""
    listed: dict[tuple[str, str], str] = {}
    groups: list[dict[str, Any]] = []
    for group in current.get("group", []):
        kept = [n for n in group["functions"] if group["kind"] in live.get(n, set())]
        for n in group["functions"]:
            listed[(group["kind"], n)] = group["name"]
        groups.append({**group, "functions": kept})
    added = sorted({(kind, n) for n, kinds in live.items() for kind in kinds} - set(listed))
    removed = sorted(f"{k}:{n}" for k, n in listed if k not in live.get(n, set()))
    for kind in ("expression", "table", "pragma"):
        new = [n for k, n in added if k == kind]
        if not new:
            continue
        group = next((g for g in groups if g["name"] == UNREVIEWED and g["kind"] == kind), None)
        if group is None:
            group = {"name": UNREVIEWED, "kind": kind, "verdict": "refuse",
                     "reason": "new in this DuckDB version: review each and move it to a group", "functions": []}
            groups.append(group)
        group["functions"] = sorted(set(group["functions"]) | set(new))
    groups = [g for g in groups if g["functions"] or g["name"] != UNREVIEWED]
    policy = {"duckdb_version": duckdb.__version__, "group": groups}
    return policy, {"added": [f"{k}:{n}" for k, n in added], "removed": removed}


def _string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dumps(policy: dict[str, Any]) -> str:
    """TOML text of ``policy``: one group per table, names sorted and wrapped at 100 columns."""
    lines = [HEADER, f"duckdb_version = {_string(policy['duckdb_version'])}", ""]
    for group in policy["group"]:
        lines += ["[[group]]", f"name = {_string(group['name'])}", f"kind = {_string(group['kind'])}",
                  f"verdict = {_string(group['verdict'])}", f"reason = {_string(group['reason'])}", "functions = ["]
        row = "   "
        for name in sorted(group["functions"]):
            item = " " + _string(name) + ","
            if len(row) + len(item) > 100:
                lines.append(row)
                row = "   "
            row += item
        if row.strip():
            lines.append(row)
        lines += ["]", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if functions.toml is out of date")
    args = parser.parse_args(argv)
    policy, changes = regenerate(load(), duckdb_functions())
    text = dumps(policy)
    for key, names in changes.items():
        if names:
            print(f"{key}: {', '.join(names)}")
    if args.check:
        return 0 if text == POLICY_FILE.read_text() else 1
    POLICY_FILE.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
