"""The import graph of helpers/: no circles, and no import from a lower layer to a higher one.

Every module is read with ``ast`` (nothing is imported): ``import helpers.x``, ``from helpers.x
import ...``, ``from helpers import x`` and relative imports, at a module's top, inside functions
and under ``if TYPE_CHECKING:`` alike. The layers are the table of :mod:`helpers.layers`.
(Imports by ``importlib.import_module`` are not read.)
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

from helpers.layers import LAYERS, layer_of

PACKAGE = Path(__file__).resolve().parents[1] / "helpers"


def _name(path: Path) -> str:
    """The table's name of a module file: ``"features"``, ``"sources.sf2"``, ``"__init__"``."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imports_in(source: str, package: str, known: set[str]) -> list[tuple[str, int]]:
    """``[(module, line)]``: every import of a module of ``helpers`` in ``source``, anywhere.

    ``package`` is the package the source belongs to (``""`` for ``helpers`` itself,
    ``"sources"``); ``known`` the module names. ``from helpers.x import y`` imports the module
    ``x.y`` if there is one, else ``x`` (y is a name in it); a name of the package itself
    (``from helpers import native_notices_hidden``) is an import of ``"__init__"``.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the source's own package, up level - 1 packages
                up = package.split(".") if package else []
                up = up[:max(0, len(up) - (node.level - 1))]
                base = ".".join(["helpers", *up, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            if target != "helpers" and not target.startswith("helpers."):
                continue
            parts = target.split(".")[1:]
            while parts and ".".join(parts) not in known:  # the longest prefix that is a module
                parts.pop()
            found.append((".".join(parts) or "__init__", node.lineno))
    return found


def imports_of(name: str) -> list[tuple[str, int]]:
    """``[(imported module, line)]`` of one module of helpers/ (itself left out)."""
    path = modules()[name]
    package = name if path.name == "__init__.py" and name != "__init__" else name.rpartition(".")[0]
    return [(module, line) for module, line in imports_in(path.read_text(), package, set(modules()))
            if module != name]


@cache
def graph() -> dict[str, dict[str, int]]:
    """``{module: {imported module: first line}}`` over every module of helpers/."""
    edges: dict[str, dict[str, int]] = {}
    for name in modules():
        edges[name] = {}
        for target, line in imports_of(name):
            edges[name][target] = min(line, edges[name].get(target, line))
    return edges


def circles(edges: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _loop(edges: dict[str, dict[str, int]], component: list[str]) -> str:
    """The shortest loop through a circle's first module, each import with its file and line."""
    start = component[0]
    came_from: dict[str, str] = {}
    queue = [start]
    while queue:  # breadth first inside the circle, until an import leads back to start
        here = queue.pop(0)
        if start in edges[here]:
            break
        for nxt in sorted(edges[here]):
            if nxt in component and nxt not in came_from and nxt != start:
                came_from[nxt] = here
                queue.append(nxt)
    path = [start]
    while here != start:
        path.insert(1, here)
        here = came_from[here]
    path.append(start)
    return "; ".join(f"{modules()[a].relative_to(PACKAGE.parent)}:{edges[a][b]} imports helpers.{b}"
                     for a, b in zip(path, path[1:]))


def test_every_module_has_a_layer_and_every_listed_module_exists():
    listed = [module for _, _, names in LAYERS for module in names]
    assert len(listed) == len(set(listed)), "a module is listed in two layers of helpers/layers.py"
    unlisted = sorted(set(modules()) - set(listed))
    assert not unlisted, (f"module(s) {unlisted} have no layer: place each in LAYERS of "
                          "helpers/layers.py (the lowest layer that holds everything it imports)")
    missing = sorted(set(listed) - set(modules()))
    assert not missing, f"helpers/layers.py lists module(s) {missing} that do not exist"


def test_no_modules_import_each_other_in_a_circle():
    edges = graph()
    found = circles(edges)
    assert not found, "import circle(s) in helpers/:\n" + "\n".join(
        f"  {' <-> '.join(c)}: {_loop(edges, c)}" for c in found)


def test_no_import_runs_from_a_lower_layer_to_a_higher_one():
    layer = layer_of()
    names = [name for name, _, _ in LAYERS]
    upward = [f"  {modules()[a].relative_to(PACKAGE.parent)}:{line} ({names[layer[a]]}) imports "
              f"helpers.{b} ({names[layer[b]]})"
              for a, targets in sorted(graph().items()) for b, line in sorted(targets.items())
              if a in layer and b in layer and layer[b] > layer[a]]
    assert not upward, ("import(s) from a lower layer to a higher one (layers: "
                        + " < ".join(names) + "):\n" + "\n".join(upward))


def test_the_reader_finds_imports_of_every_kind():
    """The reader itself, on a made-up package: top level, inside a function, type hints,
    ``from helpers import x`` (a module or a name), relative imports; and the circle finder."""
    known = {"__init__", "a", "b", "c", "d", "e", "f", "sub", "sub.g", "sub.h"}
    source = """
import os
import helpers
import helpers.a
from helpers.b import something
from helpers import c, NAME
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from helpers.d import Hint

def later():
    from helpers.sub.g import thing
    from . import e
    from .. import f
"""
    assert sorted(imports_in(source, "sub", known)) == [
        ("__init__", 3), ("__init__", 6),  # import helpers; NAME, a name of the package
        ("a", 4), ("b", 5), ("c", 6), ("d", 9),  # d: a type hint
        ("f", 14), ("sub", 13), ("sub.g", 12)]  # inside a function; e is no module: sub's name
    assert [m for m, _ in imports_in("from . import a", "", known)] == ["a"]
    assert circles({"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}}) == [["a", "b", "c"]]
