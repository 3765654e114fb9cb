"""Only shared/status.py writes a table's status row (``TableStatusRow``); everyone else calls it.

Why a source scan: the rules of that row (one run-status vocabulary, a late failure never
hides a newer success, a missing source marks the table stale) hold only while there is
one writer, and a new writer is one line away in any module.
"""

import ast
from pathlib import Path

from shared.control.models import TableStatusRow

ROOT = Path(__file__).resolve().parent.parent
OWNER = {"shared/status.py", "shared/control/models.py"}
# Columns whose names no other row uses: assigning one is writing the status row.
COLUMNS = {c.name for c in TableStatusRow.__table__.columns} - {"key", "bytes", "row_count", "stats", "updated_at", "watermark"}


def _writes(source: str) -> list[str]:
    """How ``source`` writes the status row: construction, bulk statements, or column assignment."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            args = [a.id for a in node.args if isinstance(a, ast.Name)]
            if name == "TableStatusRow" or (name in {"insert", "update", "delete"} and "TableStatusRow" in args):
                found.append(f"line {node.lineno}: {name}(…TableStatusRow…)")
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = [t for target in node.targets for t in (target.elts if isinstance(target, ast.Tuple) else [target])]
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        found += [f"line {t.lineno}: .{t.attr} =" for t in targets if isinstance(t, ast.Attribute) and t.attr in COLUMNS]
    return found


def test_only_shared_status_writes_the_status_row() -> None:
    files = [f for package in ("shared", "serving", "orchestration", "bench") for f in sorted((ROOT / package).rglob("*.py"))]
    offenders = {rel: w for f in files if (rel := str(f.relative_to(ROOT))) not in OWNER
                 and "migrations" not in rel and (w := _writes(f.read_text(encoding="utf-8")))}
    assert offenders == {}, "write the table status row through shared/status.py"


def test_the_scan_sees_every_kind_of_write() -> None:
    assert _writes("s.add(TableStatusRow(key='a'))")
    assert _writes("s.execute(update(TableStatusRow).values(stale=True))")
    assert _writes("row.last_run_status, row.last_run_id = 'SUCCESS', run_id")
    assert _writes("status.stale, status.stale_reason = True, why")
    assert not _writes("job.status, job.finished_at = 'failed', now")
