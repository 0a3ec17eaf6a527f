"""What a skill may be before its tests are even run: a module of pure definitions.

A skill is imported by later solutions (``from skills import NAME``), so it must not be able
to change anything when imported or called — not the interpreter, not the standard library,
not a test framework. ``vet`` admits a module only when it is built from capabilities that
cannot reach those (an allowlist, not a list of known tricks):

- at top level only imports of pure standard-library modules (``PURE_MODULES``), function
  and class definitions, assignments and docstrings — nothing else runs at import;
- no builtin that reaches past a function's own data (``__import__``, ``eval``, ``exec``,
  ``open``, ``getattr``/``setattr``, ``globals``, ``vars``, ``__builtins__`` ...);
- no dunder attribute beyond the few classes need (``__init__``, ``__name__`` ...), no
  private attribute of a module, no attribute of a module that is itself a module (e.g.
  ``dataclasses.sys``): no walk to the interpreter, its frames, globals or module table;
- an imported name (a module, or a class from one) is never assigned into, rebound or
  passed around as a module; attributes are set only on ``self``/``cls`` or on an object
  the function made from one of the skill's own classes.

Then ``verify`` has the skill's tests judged by the caller's ``SkillCheck`` (a sandbox and a
judge the skill cannot reach). Vetting never raises: a module too deep to parse is refused.
What it does not promise: that a skill is correct beyond its tests, or harmless to code
that passes it a mutable stdlib class as an argument — the judge, which scores solutions
in their own process, is what keeps a skill from faking a pass.
"""

from __future__ import annotations

import ast
import importlib
import types

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
_TOP_LEVEL = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)
_STORES = (ast.Store, ast.Del)


def vet(code: str) -> Check:
    """``ok`` when ``code`` is a module of pure definitions (see the module docstring)."""
    if len(code) > MAX_SOURCE_CHARS:
        return Check(False, f"skill is {len(code)} characters (at most {MAX_SOURCE_CHARS})")
    try:
        tree = ast.parse(code)
        return _Vetter(tree).run()
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        return Check(False, f"skill does not parse: {type(exc).__name__}")


def verify(code: str, tests: list[str], check: SkillCheck) -> Check:
    """Vet ``code``, then have ``tests`` judged by ``check``: ok only if both pass."""
    if not tests:
        return Check(False, "no tests")
    vetted = vet(code)
    if not vetted.ok:
        return Check(False, f"refused: {vetted.reason}")
    return check(code, tests)


class _Vetter:
    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.modules: dict[str, str] = {}  # alias -> module name
        self.imported: set[str] = set()  # every name an import binds
        self.classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}

    def run(self) -> Check:
        problems = [self._top_level(statement) for statement in self.tree.body]
        problems += [self._node(node) for node in ast.walk(self.tree)]
        problems += [
            self._stores(function)
            for function in ast.walk(self.tree)
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
        ]
        for problem in problems:
            if problem:
                return Check(False, problem)
        return Check(True, "pure definitions")

    def _top_level(self, node: ast.stmt) -> str:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name not in PURE_MODULES:
                    return f"imports {alias.name!r} (skills may import only pure modules)"
                bound = alias.asname or alias.name.split(".")[0]
                self.modules[bound] = alias.name if alias.asname else bound
                self.imported.add(bound)
            return ""
        if isinstance(node, ast.ImportFrom):
            if node.level or node.module not in PURE_MODULES:
                return f"imports from {node.module!r} (skills may import only pure modules)"
            for alias in node.names:
                if alias.name == "*":
                    return f"imports * from {node.module!r}"
                bound = alias.asname or alias.name
                if f"{node.module}.{alias.name}" in PURE_MODULES:  # a submodule, e.g. abc
                    self.modules[bound] = f"{node.module}.{alias.name}"
                self.imported.add(bound)
            return ""
        if isinstance(node, _TOP_LEVEL):
            return self._no_rebinding(node)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            return ""  # a docstring
        return f"runs a {type(node).__name__} statement at import (line {node.lineno})"

    def _no_rebinding(self, node: ast.stmt) -> str:
        bound = {node.name} if hasattr(node, "name") else set()
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        bound |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        clash = bound & self.imported
        return f"rebinds the imported name {sorted(clash)[0]!r}" if clash else ""

    def _node(self, node: ast.AST) -> str:
        line = getattr(node, "lineno", "?")
        if isinstance(node, ast.Name):
            if node.id in REFUSED_NAMES:
                return f"uses {node.id!r} (line {line})"
            if node.id in self.imported and isinstance(node.ctx, _STORES):
                return f"rebinds the imported name {node.id!r} (line {line})"
        if isinstance(node, ast.Global | ast.Nonlocal) and set(node.names) & self.imported:
            return f"rebinds an imported name (line {line})"
        if isinstance(node, ast.Attribute):
            name = node.attr
            if name.startswith("__") and name.endswith("__") and name not in ALLOWED_DUNDERS:
                return f"reads the attribute {name!r} (line {line})"
            base = node.value
            if isinstance(base, ast.Name) and base.id in self.modules:
                problem = self._module_attribute(self.modules[base.id], name)
                if problem:
                    return f"{problem} (line {line})"
        # A module used as a value (aliased, passed, stored) could be patched elsewhere.
        for child in ast.iter_child_nodes(node):
            if not (isinstance(child, ast.Name) and child.id in self.modules):
                continue
            if not (isinstance(node, ast.Attribute) and child is node.value):
                return f"uses the module {child.id} as a value (line {line})"
        return ""

    @staticmethod
    def _module_attribute(module: str, name: str) -> str:
        if name.startswith("_"):
            return f"reads the private {module}.{name}"
        try:
            value = getattr(importlib.import_module(module), name, None)
        except ImportError:  # cannot happen for PURE_MODULES; refuse rather than guess
            return f"imports {module!r}, which is not importable here"
        if isinstance(value, types.ModuleType) and f"{module}.{name}" not in PURE_MODULES:
            return f"reaches the module {module}.{name}"
        return ""

    def _stores(self, function: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
        """Attributes are set only on the first parameter of a method (``self``/``cls``) or
        on a local made by calling one of the skill's own classes; nothing rooted at an
        imported name is assigned into."""
        args = function.args.posonlyargs + function.args.args
        allowed = {args[0].arg} if args and self._is_method(function) else set()
        for node in ast.walk(function):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                callee = node.value.func
                if isinstance(callee, ast.Name) and callee.id in self.classes:
                    allowed |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        for node in ast.walk(function):
            if not isinstance(node, ast.Attribute | ast.Subscript):
                continue
            if not isinstance(node.ctx, _STORES):
                continue
            root = _root(node)
            line = node.lineno
            if root in self.imported:
                return f"assigns into the imported {root!r} (line {line})"
            if isinstance(node, ast.Attribute) and root not in allowed:
                return f"sets an attribute of {root or 'an expression'!r} (line {line})"
        return ""

    def _is_method(self, function: ast.AST) -> bool:
        return any(
            isinstance(cls, ast.ClassDef) and function in cls.body for cls in ast.walk(self.tree)
        )


def _root(node: ast.expr) -> str:
    """The name an attribute/subscript chain starts from (``a`` of ``a.b[c].d``), or ''."""
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Call):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else ""
