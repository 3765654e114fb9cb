"""orchestration/ and serving/ import shared/, never each other (README, Architecture)."""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("orchestration", {"serving"}), ("serving", {"orchestration"}), ("shared", {"serving", "orchestration"})],
)
def test_packages_import_only_shared(package: str, forbidden: set[str]) -> None:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no modules"
    offenders = {str(f.relative_to(ROOT)): sorted(_imports(f) & forbidden) for f in files if _imports(f) & forbidden}
    assert offenders == {}


# ---------------------------------------------------------------- inside serving/
# Feature folders (serving/<feature>/) import serving.lib and serving.tables, never each
# other; serving/tables imports only serving.lib; serving/lib imports nothing of serving
# above it. serving/app.py and serving/main.py assemble the features and may import any.
LOWER = {"lib": {"lib"}, "tables": {"lib", "tables"}}
ROOT_MODULES = {"app", "main", "__main__"}
# Edges still to be removed: each one would be a feature that still reaches into another's
# internals. None is left, and the list may only shrink: a new cross-feature import fails the test.
KNOWN: set[tuple[str, str]] = set()


def _serving_imports(path: Path, *, runtime_only: bool = False) -> set[str]:
    """Every ``serving.…`` module ``path`` imports, at module level or inside a function.

    ``runtime_only`` leaves out imports under ``if TYPE_CHECKING:`` (they never run, so they
    cannot make an import cycle)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    if runtime_only:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                skipped.update(id(n) for child in node.body for n in ast.walk(child))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import: resolve against this module's package
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


def _modules(packages: tuple[str, ...]) -> dict[str, Path]:
    found = {}
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _feature_edges() -> set[tuple[str, str, str]]:
    """(importing module, its folder, the other serving folder it imports) for every import across folders."""
    edges = set()
    for path in sorted((ROOT / "serving").rglob("*.py")):
        rel = path.relative_to(ROOT / "serving").parts
        if len(rel) == 1:
            continue  # serving/app.py, main.py: the composition root
        folder = rel[0]
        for name in _serving_imports(path):
            parts = name.split(".")
            if parts[0] != "serving" or len(parts) < 2 or parts[1] == folder or parts[1] in ROOT_MODULES:
                continue
            if not (ROOT / "serving" / parts[1]).is_dir():
                continue  # ``from serving import x`` of a module, not a folder
            edges.add((str(path.relative_to(ROOT)), folder, parts[1]))
    return edges


def test_features_import_only_lib_and_tables() -> None:
    offenders = set()
    for module, folder, other in _feature_edges():
        allowed = LOWER.get(folder, {"lib", "tables"})
        if other not in allowed and (folder, other) not in KNOWN:
            offenders.add(f"{module} imports serving.{other}")
    assert sorted(offenders) == []


def test_known_exceptions_still_exist() -> None:
    """An exception that no module needs any more is removed from ``KNOWN``, so it cannot come back."""
    used = {(folder, other) for _, folder, other in _feature_edges()}
    assert sorted(KNOWN - used) == []


def test_lower_layers_import_no_feature() -> None:
    for module, folder, other in _feature_edges():
        if folder in LOWER:
            assert other in LOWER[folder], f"{module} (serving/{folder}) imports serving.{other}"


def _cycles(packages: tuple[str, ...]) -> list[list[str]]:
    """Import cycles among ``packages``' modules (runtime imports only), as lists of module names."""
    modules = _modules(packages)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for imported in _serving_or_shared(path):
            target = imported
            while target and target not in modules:
                target = target.rpartition(".")[0]  # ``from pkg.mod import func`` -> pkg.mod
            if target and target != name and not name.startswith(target + "."):
                targets.add(target)
        graph[name] = targets
    # Tarjan's strongly connected components: any component of two or more modules is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _serving_or_shared(path: Path) -> set[str]:
    return {m for m in _serving_imports(path, runtime_only=True) if m.split(".")[0] in ("serving", "shared")}


@pytest.mark.parametrize("package", ["serving", "shared"])
def test_no_import_cycles(package: str) -> None:
    assert _cycles((package,)) == []


def test_the_layering_checks_catch_what_they_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checks above see imports hidden inside functions and report a two-module cycle."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from serving.catalog import services\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert "serving.catalog.services" in _serving_imports(probe)
    pkg = tmp_path / "serving"
    (pkg / "a").mkdir(parents=True)
    (pkg / "b").mkdir()
    (pkg / "a" / "x.py").write_text("from serving.b import y\n", encoding="utf-8")
    (pkg / "b" / "y.py").write_text("def g():\n    import serving.a.x\n", encoding="utf-8")
    assert ("serving/a/x.py", "a", "b") in _feature_edges()
    assert ("serving/b/y.py", "b", "a") in _feature_edges()
    assert _cycles(("serving",)) == [["serving.a.x", "serving.b.y"]]


def test_capabilities_are_route_guards() -> None:
    """``requires_admin`` and friends are declared on routes (``guards=[…]``), never called in a handler."""
    checks = {"requires_admin", "requires_swarm", "requires_agent"}
    calls = []
    for path in sorted((ROOT / "serving").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in checks:
                calls.append(f"{path.relative_to(ROOT)}:{node.lineno} calls {node.func.id}")
    assert calls == []
