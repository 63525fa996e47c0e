"""
The shape of the package as a framework: public modules with C{__all__},
private C{_modules} without, no import circle, no module past 600 lines.
"""

from __future__ import annotations

import ast
import importlib
import os

from twisted.trial.unittest import SynchronousTestCase

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "txftps")


def _modules() -> dict[str, str]:
    """
    Every module of the package: dotted name to file path.
    """
    found = {}
    for directory, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].split(os.sep)
            if relative[-1] == "__init__":
                relative = relative[:-1]
            found[".".join(relative)] = path
    return found


def _imports(path: str, modules: dict[str, str]) -> set[str]:
    """
    The package modules a file imports, at any level (C{TYPE_CHECKING}
    blocks and function bodies included).
    """
    tree = ast.parse(open(path, encoding="utf-8").read())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("txftps"):
            names.add(node.module)
            for alias in node.names:
                if f"{node.module}.{alias.name}" in modules:
                    names.add(f"{node.module}.{alias.name}")
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.startswith("txftps"))
    return {n for n in names if n in modules}


def _isPrivate(module: str) -> bool:
    return any(part.startswith("_") for part in module.split("."))


class StructureTests(SynchronousTestCase):
    """
    The package's modules, read as files.
    """

    def test_noImportCircle(self) -> None:
        """
        No module imports, directly or through others, a module that imports
        it back (a package imports its own modules, which is no circle).
        """
        modules = _modules()
        graph = {
            name: {m for m in _imports(path, modules) if not name.startswith(m + ".")}
            for name, path in modules.items()
        }
        for start in graph:
            stack = [(start, [start])]
            seen: set[str] = set()
            while stack:
                node, trail = stack.pop()
                for target in graph[node]:
                    if target == start and not start.startswith(node + "."):
                        self.fail("import circle: " + " -> ".join([*trail, target]))
                    if target not in seen:
                        seen.add(target)
                        stack.append((target, [*trail, target]))

    def test_moduleSize(self) -> None:
        """
        No module of the package is over 600 lines.
        """
        for name, path in _modules().items():
            with open(path, encoding="utf-8") as f:
                lines = len(f.readlines())
            self.assertLessEqual(lines, 600, f"{name} has {lines} lines")

    def test_publicAndPrivate(self) -> None:
        """
        Public modules declare C{__all__}, and every name in it exists;
        private modules declare none.
        """
        for name, path in _modules().items():
            tree = ast.parse(open(path, encoding="utf-8").read())
            declares = any(
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
                for node in tree.body
            )
            if _isPrivate(name):
                self.assertFalse(declares, f"private module {name} declares __all__")
                continue
            self.assertTrue(declares, f"public module {name} has no __all__")
            module = importlib.import_module(name)
            for exported in module.__all__:
                self.assertTrue(hasattr(module, exported), f"{name}.{exported} is missing")

    def test_headers(self) -> None:
        """
        Every module names its tests and opens with a docstring.
        """
        for name, path in _modules().items():
            with open(path, encoding="utf-8") as f:
                source = f.read()
            self.assertTrue(
                source.startswith("# -*- test-case-name: tests"), f"{name}: no test-case-name"
            )
            self.assertTrue(ast.get_docstring(ast.parse(source)), f"{name}: no docstring")
