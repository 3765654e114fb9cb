"""Prove that a set of registrations loads as a code location, without touching the running one.

``python -m orchestration.loadcheck`` reads ``{"tables": [registration, ...]}`` (as
``shared.registry.to_dict`` writes them) on stdin, builds the definitions exactly as the
code location would (``orchestration.definitions.build_definitions``), resolves every
job, schedule and sensor (``Definitions.validate_loadable``) and asks each table for its
partition keys. It prints one JSON line: ``{"ok": true}`` or ``{"ok": false, "table":
key or null, "error": "<exception type>: <message>"}``, and exits 0 either way.

Why a process: the API must not import ``orchestration`` (the two packages meet only in
``shared``), yet a registration must be proven to load before it is saved and before the
code location reloads, so a bad one is refused with its cause and the running location,
and every other table's syncs, are never disturbed. Nothing here connects anywhere: the
registrations come on stdin, and resources are only constructed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

MAX_ERROR_CHARS = 1000


def _first_lines(error: BaseException) -> str:
    """``Type: message``, without Dagster's stack trace section."""
    text = f"{type(error).__name__}: {error}"
    for marker in ("\nStack Trace:", "\nTraceback"):
        text = text.split(marker, 1)[0]
    return text.strip()[:MAX_ERROR_CHARS]


def check(raw_tables: list[dict[str, Any]]) -> dict[str, Any]:
    """The verdict on these registrations (see the module docstring)."""
    import dagster as dg

    from orchestration.definitions import build_definitions, with_policy
    from orchestration.partitions import partitions_def_for
    from shared.registry import from_dict
    from shared.settings import get_settings

    tables = [from_dict(t) for t in raw_tables]
    for table in tables:  # the partitions alone, so the error can name its table
        try:
            partitions = partitions_def_for(with_policy(table))
            if partitions is not None:
                partitions.get_partition_keys()
        except Exception as e:
            return {"ok": False, "table": table.key, "error": _first_lines(e)}
    try:
        dg.Definitions.validate_loadable(build_definitions(tables, get_settings()))
    except Exception as e:
        return {"ok": False, "table": None, "error": _first_lines(e)}
    return {"ok": True}


def main() -> int:
    try:
        payload = json.loads(sys.stdin.read())
        verdict = check(list(payload["tables"]))
    except Exception as e:  # a malformed payload is the caller's bug: say so, still as a verdict
        verdict = {"ok": False, "table": None, "error": _first_lines(e)}
    sys.stdout.write(json.dumps(verdict) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
