"""fedkit's modules import each other without cycles.

The graph is built with ``ast`` from the source, not by importing: an edge A -> B for every
``import B`` / ``from B import name`` in A that names a fedkit module (``from pkg import mod``
names the submodule ``pkg.mod``). Edges are the explicit imports only; the implicit import
of a module's parent packages is not an edge (a package ``__init__`` may re-export its
submodules). Two graphs are checked: top-level imports only, and every import including
those inside functions (a lazy import breaks a load-order cycle but not the dependency
cycle). Imports under ``if TYPE_CHECKING:`` count as top-level.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "fedkit"


def module_names(root: Path = ROOT) -> dict[str, Path]:
    """Dotted name -> file of every module of the package."""
    names = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _resolve(module: str, level: int, importer: str, is_package: bool) -> str:
    if level == 0:
        return module
    base = importer.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _imports(tree: ast.Module, *, top_level_only: bool):
    """The import nodes of a module: at module level (and in its if/try blocks), or all."""
    if not top_level_only:
        yield from (n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom))
        return
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If | ast.Try):
            stack.extend([*node.body, *node.orelse,
                          *getattr(node, "handlers", []), *getattr(node, "finalbody", [])])
        elif isinstance(node, ast.ExceptHandler):
            stack.extend(node.body)


def import_graph(*, top_level_only: bool, root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the fedkit modules it imports."""
    modules = module_names(root)
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in _imports(tree, top_level_only=top_level_only):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = _resolve(node.module or "", node.level, name, is_package)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                           for a in node.names]
            for target in targets:
                while target and target not in modules:  # import a.b.c of a non-module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_lazy_imports():
    # run_inprocess imports fedkit's apps inside the function.
    lazy = import_graph(top_level_only=False)["fedkit.flower.runtime.engines"]
    assert "fedkit.flower.apps.client_app" in lazy
    assert "fedkit.flower.apps.client_app" not in import_graph(
        top_level_only=True)["fedkit.flower.runtime.engines"]


@pytest.mark.parametrize("top_level_only", [True, False], ids=["top-level", "all-imports"])
def test_fedkit_has_no_import_cycles(top_level_only):
    assert cycles(import_graph(top_level_only=top_level_only)) == []
