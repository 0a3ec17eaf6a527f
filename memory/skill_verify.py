"""What a skill may be before its tests are even run: a module of pure definitions.

A skill is imported by later solutions (``from skills import NAME``), so it must not be able
to change anything when imported or called — not the interpreter, not the standard library,
not a test framework. ``vet`` admits a module only when it is built from capabilities that
cannot reach those (an allowlist, not a list of known tricks):

- at top level only imports of pure standard-library modules (``PURE_MODULES``), function
  and class definitions, and assignments (no other statement runs at import);
- no name that reaches the interpreter's machinery (``__import__``, ``eval``, ``exec``,
  ``open``, ``getattr``/``setattr``, ``globals``, ``vars``, ``__builtins__`` ...);
- no dunder attribute beyond the few that classes need (``__init__``, ``__name__`` ...), so
  no walk from an object to its class, globals, frames or subclasses;
- an imported module is only read (``math.sqrt``): never assigned to, rebound or passed
  around, so no skill can patch ``json.loads`` or ``re.match`` for the code that imports it.

Then ``verify`` runs the skill's tests through the caller's ``SkillCheck`` (a sandbox and a
judge the skill cannot reach). Parsing a hostile file never raises: a module too deep to
parse is refused like any other.
"""

from __future__ import annotations

import ast

from exapt.memory.base import Check, SkillCheck

#: Standard-library modules with no I/O, no process control and no interpreter access.
PURE_MODULES = frozenset(
    {
        "__future__", "abc", "array", "base64", "binascii", "bisect", "calendar", "cmath",
        "collections", "collections.abc", "copy", "dataclasses", "datetime", "decimal",
        "difflib", "enum", "fnmatch", "fractions", "functools", "hashlib", "heapq", "html",
        "itertools", "json", "math", "numbers", "operator", "random", "re", "statistics",
        "string", "struct", "textwrap", "typing", "unicodedata", "zlib",
    }
)  # fmt: skip
#: Builtins that reach past a function's own data: the interpreter, files, frames, modules.
REFUSED_NAMES = frozenset(
    {
        "__builtins__", "__import__", "__loader__", "__spec__", "breakpoint", "compile",
        "delattr", "eval", "exec", "exit", "getattr", "globals", "help", "input", "locals",
        "memoryview", "open", "quit", "setattr", "vars",
    }
)  # fmt: skip
#: Dunder attributes a class-based skill needs; every other ``x.__name__`` is refused.
ALLOWED_DUNDERS = frozenset(
    {
        "__init__", "__name__", "__doc__", "__qualname__", "__len__", "__eq__", "__ne__",
        "__lt__", "__le__", "__gt__", "__ge__", "__hash__", "__repr__", "__str__",
        "__iter__", "__next__", "__contains__", "__getitem__", "__setitem__", "__post_init__",
    }
)  # fmt: skip
MAX_SOURCE_CHARS = 50_000  # a skill is a small function; a huge one is not worth vetting


def vet(code: str) -> Check:
    """``ok`` when ``code`` is a module of pure definitions (see the module docstring)."""
    if len(code) > MAX_SOURCE_CHARS:
        return Check(False, f"skill is {len(code)} characters (at most {MAX_SOURCE_CHARS})")
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return Check(False, f"skill does not parse: {type(exc).__name__}")
    modules: set[str] = set()
    for node in tree.body:
        problem = _top_level(node, modules)
        if problem:
            return Check(False, problem)
    for child in ast.walk(tree):
        problem = _expression(child, modules)
        if problem:
            return Check(False, problem)
    return Check(True, "pure definitions")


def verify(code: str, tests: list[str], check: SkillCheck) -> Check:
    """Vet ``code``, then run ``tests`` against it with ``check``: ok only if both pass."""
    if not tests:
        return Check(False, "no tests")
    vetted = vet(code)
    if not vetted.ok:
        return Check(False, f"refused: {vetted.reason}")
    return check(code, tests)


def _top_level(node: ast.stmt, modules: set[str]) -> str:
    """Why a top-level statement is refused ('' if it is not); collects module aliases."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name not in PURE_MODULES:
                return f"imports {alias.name!r} (skills may import only pure modules)"
            modules.add(alias.asname or alias.name.split(".")[0])
        return ""
    if isinstance(node, ast.ImportFrom):
        if node.level or node.module not in PURE_MODULES:
            return f"imports from {node.module!r} (skills may import only pure modules)"
        for alias in node.names:
            if alias.name == "*":
                return f"imports * from {node.module!r}"
            if f"{node.module}.{alias.name}" in PURE_MODULES:  # a submodule, e.g. abc
                modules.add(alias.asname or alias.name)
        return ""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return ""
    if isinstance(node, ast.Assign | ast.AnnAssign):
        return ""
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return ""  # a docstring
    return f"runs a {type(node).__name__} statement at import (line {node.lineno})"


def _expression(node: ast.AST, modules: set[str]) -> str:
    """Why a node anywhere in the module is refused ('' if it is not)."""
    if isinstance(node, ast.Name):
        if node.id in REFUSED_NAMES:
            return f"uses {node.id!r} (line {node.lineno})"
        if node.id in modules and not isinstance(node.ctx, ast.Load):
            return f"rebinds the module {node.id!r} (line {node.lineno})"
    if isinstance(node, ast.Attribute):
        name = node.attr
        if name.startswith("__") and name.endswith("__") and name not in ALLOWED_DUNDERS:
            return f"reads the attribute {name!r} (line {node.lineno})"
        if _is_module(node.value, modules) and not isinstance(node.ctx, ast.Load):
            return f"patches {ast.unparse(node)} (line {node.lineno})"
    if isinstance(node, ast.Global | ast.Nonlocal) and set(node.names) & modules:
        return f"rebinds a module (line {node.lineno})"
    for child in ast.iter_child_nodes(node):
        # A module used as a value (aliased, passed, stored) could be patched elsewhere.
        if _is_module(child, modules) and not (
            isinstance(node, ast.Attribute) and child is node.value
        ):
            return f"uses the module {child.id} as a value (line {child.lineno})"  # type: ignore[attr-defined]
    return ""


def _is_module(node: ast.AST, modules: set[str]) -> bool:
    return isinstance(node, ast.Name) and node.id in modules
