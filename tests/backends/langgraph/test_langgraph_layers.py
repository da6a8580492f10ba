"""The LangGraph backend's modules import each other one way only (issue 15)."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import backends.langgraph

PACKAGE = "backends.langgraph"


def imports_within_the_package() -> dict[str, set[str]]:
    """module -> the package's modules it imports, at the top or inside a function."""
    root = Path(backends.langgraph.__file__).parent
    graph: dict[str, set[str]] = {}
    for path in sorted(root.glob("*.py")):
        module = f"{PACKAGE}.{path.stem}"
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            found |= {n for n in names if n.startswith(PACKAGE + ".")}
        graph[module] = found - {module}
    return graph


def test_no_module_of_the_backend_imports_one_that_imports_it_back() -> None:
    graph = imports_within_the_package()
    graph.pop(f"{PACKAGE}.__init__")  # the package re-exports the backend class only
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None
    # the store description is the bottom layer, the backend and its worker the top
    assert order.index(f"{PACKAGE}.store") < order.index(f"{PACKAGE}.savers")
    assert order.index(f"{PACKAGE}.pg") < order.index(f"{PACKAGE}.variants")
    assert graph[f"{PACKAGE}.store"] == set()
