"""The house's map, enforced: no import cycles, and no wing imports another except through the core.

Every module of the one import package `agentslo` is read from the source (nothing is imported or
executed); imports at any depth count (a function-level import is still an edge), relative imports
are resolved, and a literal `importlib.import_module("...")` counts as the import it is. The rules
are the design's layout table:

- the core (`agentslo/*.py`, `agentslo/judges/`) imports no wing; only the CLI composes them;
- a feature wing (exporter, rules, dashboards, synthetic, feedback) imports the core and itself; the
  exporter may import the feedback wing's package, and only that (its one setup call);
- `bundle` (the build: rules + dashboards + configs) imports the core, rules and dashboards;
- `review` (report, suggest, backtest) imports the core and rules (it evaluates the generated rules);
- the demo is a composition and may import any wing; nothing imports the demo but the CLI;
- no product module imports the test suite or a bare top-level wing name (`exporter`, `rules`, ...).
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "agentslo"
WINGS = frozenset({"exporter", "rules", "dashboards", "synthetic", "feedback"})
BUILD, DEMO, REVIEW = "bundle", "demo", "review"
TOP_LEVEL_FOLDERS = WINGS | {BUILD, DEMO, REVIEW}


def _modules() -> dict[str, Path]:
    """Module name → file, walking agentslo/ through its wing symlinks (as the wheel installs it)."""
    found: dict[str, Path] = {}
    for folder, dirs, files in os.walk(PACKAGE, followlinks=True):
        dirs[:] = sorted(d for d in dirs if d not in {"__pycache__", "examples"})
        rel = Path(folder).relative_to(ROOT)
        for name in files:
            if not name.endswith(".py"):
                continue
            parts = [*rel.parts, name[:-3]]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = Path(folder) / name
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The project module an imported name lives in (a module, or the package defining the name)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imported_names(module: str, path: Path) -> Iterator[str]:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            # `from pkg import name` names a submodule or something the package defines (as the
            # shared import_cycles tool reads it): resolve `pkg.name`, falling back to `pkg`
            yield from (f"{base}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for name in _imported_names(module, path):
            target = _resolve(name)
            if target is not None and target != module:
                edges[module].add(target)
    return edges


EDGES = _edges()
RAW = {m: set(_imported_names(m, p)) for m, p in MODULES.items()}


def _room(module: str) -> str:
    """`cli`, `core`, or the wing / build / demo a module belongs to."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in TOP_LEVEL_FOLDERS:
        return parts[1]
    return "cli" if module == "agentslo.cli" else "core"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def _allowed(source: str, target: str) -> bool:
    src, dst = _room(source), _room(target)
    if src == dst or dst == "core" or src in {"cli", DEMO}:
        return True
    if src == BUILD:
        return dst in {"rules", "dashboards"}
    if src == REVIEW:  # the SLO review evaluates the generated rules (backtest), like the build
        return dst == "rules"
    return src == "exporter" and target == "agentslo.feedback"


def test_the_walk_sees_every_wing_through_the_one_namespace() -> None:
    rooms = {_room(m) for m in MODULES}
    assert rooms >= {"core", "cli", "exporter", "rules", "dashboards", "synthetic", BUILD}
    assert "agentslo.exporter.app" in MODULES and "agentslo.rules.generate" in MODULES


def test_there_are_no_import_cycles() -> None:
    assert _cycles(EDGES) == []


def test_the_cycle_finder_finds_a_cycle_at_any_depth() -> None:
    # the check above must be able to fail: a three-module ring is reported as one component
    ring = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(ring) == [["a", "b", "c"]]


def test_no_wing_imports_another_except_through_the_core() -> None:
    crossings = sorted(
        f"{source} imports {target}"
        for source, targets in EDGES.items()
        for target in targets
        if not _allowed(source, target)
    )
    assert crossings == []


def test_the_exporter_reaches_the_feedback_wing_from_one_module_only() -> None:
    users = sorted(m for m, t in EDGES.items() if _room(m) == "exporter" and "agentslo.feedback" in t)
    assert len(users) <= 1, users


@pytest.mark.parametrize("bare", sorted(TOP_LEVEL_FOLDERS | {"tests"}))
def test_no_module_imports_a_bare_top_level_name(bare: str) -> None:
    offenders = sorted(
        m for m, names in RAW.items() if any(n == bare or n.startswith(f"{bare}.") for n in names)
    )
    assert offenders == []
