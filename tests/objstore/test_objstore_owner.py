"""Only shared/served_remote.py writes the published versions (``served_versions``, ``served_current``).

Why a source scan: "readers never see a version whose upload did not complete" holds only
while the one writer switches ``served_current`` after the upload and in the transaction
that records the version; a second writer is one line away in any module.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OWNER = {"shared/served_remote.py", "shared/control/models.py"}
ROWS = {"ServedVersionRow", "ServedCurrentRow"}


def _writes(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        args = {a.id for a in node.args if isinstance(a, ast.Name)}
        if name in ROWS or (name in {"insert", "update", "delete"} and args & ROWS):
            found.append(f"line {node.lineno}: {name}(…)")
    return found


def test_only_served_remote_writes_the_published_versions() -> None:
    files = [f for package in ("shared", "serving", "orchestration", "bench") for f in sorted((ROOT / package).rglob("*.py"))]
    offenders = {
        rel: w for f in files if (rel := str(f.relative_to(ROOT))) not in OWNER and (w := _writes(f.read_text(encoding="utf-8")))
    }
    assert offenders == {}
    assert _writes((ROOT / "shared" / "served_remote.py").read_text(encoding="utf-8")), "the scan finds the owner's writes"
