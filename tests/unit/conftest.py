"""Marks the unit-test modules whose result cannot depend on the Keras backend.

``make test`` runs every unit test with TensorFlow, then again in an environment with JAX alone
(``.venv-jax``). Running a test twice only pays where the backend can change its outcome, so
each test module that cannot reach a Keras backend is marked ``backend_neutral`` here, and the
JAX run deselects them (``-m "not backend_neutral"``).

"Cannot reach" is decided from the syntax trees, conservatively. A test module is neutral when
its code never uses ``keras``, ``jax``, ``tensorflow`` or ``torch`` and no ``cnncourse`` module it
imports can. A module uses a backend when it imports one anywhere (a function-level ``import
keras`` included, since the test may call that function), names one as a variable, imports a
module by a computed name (``import_module``, ``__import__``), starts another Python
(``sys.executable``), or holds code for another interpreter in a string (a line ``import
keras`` or ``from cnncourse ...``: a notebook cell); and it reaches a backend when it uses one or imports, anywhere, a module that
reaches one. A package ``__init__`` that runs only because a submodule was imported
(``cnncourse/__init__.py`` for ``from cnncourse import checks``) is followed through its
module-level imports alone: its functions are not what the test called. ``import cnncourse``
itself does not import Keras (its backend functions import it lazily), which is what makes
this split possible. Mentions in docstrings, comments and data (``{"backend": "jax"}``) are not
uses. Over-approximating only costs time; the opposite mistake would hide a backend bug.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

import cnncourse  # noqa: F401  first, as the notebooks do: picks an installed backend (JAX where TensorFlow is absent)

BACKEND_ROOTS = frozenset({"keras", "jax", "jaxlib", "tensorflow", "torch"})
_CODE_IN_STRING = re.compile(r"^\s*(import|from)\s+(keras|jax|tensorflow|torch|cnncourse)\b", re.M)
PACKAGE_DIR = Path(__file__).resolve().parents[2] / "cnncourse"


def uses_backend(tree: ast.AST) -> bool:
    """Whether code names a backend, imports by a computed name, or carries code in a string."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] in BACKEND_ROOTS for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] in BACKEND_ROOTS:
            return True
        if isinstance(node, ast.Name) and node.id in BACKEND_ROOTS | {"__import__", "import_module"}:
            return True
        if isinstance(node, ast.Attribute) and node.attr in ("import_module", "__import__", "executable"):
            return True  # a computed import, or sys.executable: another Python process
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _CODE_IN_STRING.search(node.value):
            return True
    return False


def _imports(tree: ast.AST, module_name: str, is_package: bool, *, top_level: bool) -> set[str]:
    """``{module name: how it is used}`` for the ``import`` statements of ``tree`` (relative ones resolved).

    ``top_level``: only statements executed when the module is imported (not in functions). The
    value is True ("called into") for a module whose names the code uses, False for a package
    imported only to reach a submodule: ``from pkg import sub`` gives ``{pkg: False, pkg.sub: True}``
    when ``sub`` is a module, ``{pkg: True}`` when it is a function or class of ``pkg``.
    """
    if top_level:
        nodes = []
        pending = list(ast.iter_child_nodes(tree))
        while pending:  # module body, including if/try blocks, but not function or class bodies
            node = pending.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            nodes.append(node)
            pending.extend(ast.iter_child_nodes(node))
    else:
        nodes = list(ast.walk(tree))
    names: dict[str, bool] = {}

    def add(name: str, called: bool) -> None:
        names[name] = names.get(name, False) or called

    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, True)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module_name.split(".")
                parent = parts if is_package else parts[:-1]
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if _parsed(sub) is not None:
                    add(sub, True)
                    add(base, False)
                else:
                    add(base, True)
    return names


@functools.lru_cache(maxsize=None)
def _parsed(module_name: str) -> tuple[str, ast.AST, bool] | None:
    """Source, syntax tree and package flag of a ``cnncourse`` module, read without importing it."""
    parts = module_name.split(".")
    if parts[0] != "cnncourse":
        return None
    path = PACKAGE_DIR.joinpath(*parts[1:])
    for candidate, is_package in ((path / "__init__.py", True), (path.with_suffix(".py"), False)):
        if candidate.is_file():
            source = candidate.read_text(encoding="utf-8")
            return source, ast.parse(source), is_package
    return None  # a function or class imported by name, not a module


@functools.lru_cache(maxsize=None)
def reaches_backend(module_name: str, top_level: bool = False) -> bool:
    """Whether importing (and, unless ``top_level``, calling into) ``module_name`` can import a backend."""
    return _reaches(module_name, top_level, frozenset())


def _reaches(module_name: str, top_level: bool, seen: frozenset) -> bool:
    if module_name.split(".")[0] in BACKEND_ROOTS:
        return True
    found = _parsed(module_name)
    if found is None or (module_name, top_level) in seen:
        return False
    _, tree, is_package = found
    seen = seen | {(module_name, top_level)}
    if not top_level and uses_backend(tree):
        return True
    imported = _imports(tree, module_name, is_package, top_level=top_level)
    return any(_reaches_imported(name, top_level or not called, seen) for name, called in imported.items())


def _reaches_imported(name: str, top_level: bool, seen: frozenset) -> bool:
    """An imported module in the given mode; its parent packages only through their module-level imports."""
    parts = name.split(".")
    if parts[0] in BACKEND_ROOTS:
        return True
    if parts[0] != "cnncourse":
        return False
    parents = (".".join(parts[:depth]) for depth in range(1, len(parts)))
    return _reaches(name, top_level, seen) or any(_reaches(p, True, seen) for p in parents)


@functools.lru_cache(maxsize=None)
def module_is_backend_neutral(path: str) -> bool:
    """Whether the test module at ``path`` cannot reach a Keras backend (see the module docstring)."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    if uses_backend(tree):
        return False
    imported = _imports(tree, Path(path).stem, False, top_level=False)
    return not any(_reaches_imported(name, not called, frozenset()) for name, called in imported.items())


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "backend_neutral: set automatically on test modules that cannot reach a Keras backend"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.suffix == ".py" and module_is_backend_neutral(str(item.path)):
            item.add_marker(pytest.mark.backend_neutral)
