"""faco's imports run one way: the import graph of its modules, function-local imports included, has no
cycle, and no module imports from a layer above its own (the layer order is faco/__init__.py's LAYERS).
Function-local imports are kept for heavy third-party libraries only, never for faco's own modules: a
local import is how a cycle hides, and the cache keys follow every import (faco.core.cache).

    python -m pytest unit_tests/test_layout.py -q
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import faco

PACKAGE = Path(faco.__file__).parent


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported faco module, line, whether inside a function) of every import in `path`."""
    tree = ast.parse(path.read_text())
    found = []

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, local) for a in child.names if a.name.split(".")[0] == "faco")
            elif isinstance(child, ast.ImportFrom) and child.module and child.module.split(".")[0] == "faco":
                for alias in child.names:
                    target = f"{child.module}.{alias.name}"
                    known = (PACKAGE.parent / target.replace(".", "/")).with_suffix(".py").exists()
                    found.append((target if known else child.module, child.lineno, local))
            visit(child, inner)

    visit(tree, False)
    return found


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {name: imports(path) for name, path in MODULES.items()}


def layer(module: str) -> int:
    """The index in faco.LAYERS of the longest prefix naming `module`'s layer."""
    matches = [(len(prefix), i) for i, names in enumerate(faco.LAYERS) for prefix in names
               if module == prefix or module.startswith(prefix + ".")]
    if not matches:
        raise AssertionError(f"{module} belongs to no layer of faco.LAYERS: add its package there")
    return max(matches)[1]


def test_every_module_has_a_layer():
    for module in MODULES:
        if module != "faco":
            layer(module)


def test_no_module_imports_from_a_layer_above_its_own():
    upward = [f"{module} (layer {layer(module)}) imports {target} (layer {layer(target)}) at line {line}"
              for module, found in GRAPH.items() if module != "faco"
              for target, line, _ in found if target in MODULES and target != "faco" and layer(target) > layer(module)]
    assert upward == []


def test_faco_modules_are_imported_at_module_top_only():
    local = [f"{module}:{line} imports {target} inside a function"
             for module, found in GRAPH.items() for target, line, inside in found if inside]
    assert local == []


def test_the_import_graph_has_no_cycle():
    edges = {module: {target for target, _, _ in found if target in MODULES and target != module}
             for module, found in GRAPH.items()}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = path[path.index(module):] + [module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for target in sorted(edges[module]):
            visit(target, [*path, module])
        done.add(module)

    for module in sorted(edges):
        visit(module, [])


def test_the_check_sees_a_planted_cycle_and_an_upward_import(tmp_path):
    """The checks above are only as good as the graph: a local import and an upward one are found."""
    source = tmp_path / "planted.py"
    source.write_text("from faco.core import cache\n\ndef f():\n    from faco.study import study\n")
    assert imports(source) == [("faco.core.cache", 1, False), ("faco.study.study", 4, True)]
    assert layer("faco.study.study") > layer("faco.core.cache")
