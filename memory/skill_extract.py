"""Proposing skills from a verified successful solution: its top-level public functions, each
made self-contained (the module's imports and the helpers and constants it uses), with tests
taken from what exercised it in the open — doctest examples in its docstring and the
asserts of visible test files that call it.

Only proposals: nothing here runs code. ``skill_verify`` vets the code and has the tests
judged before anything is stored. A hostile file (huge, or nested too deep for the parser)
is skipped, never an error: it proposes nothing.
"""

from __future__ import annotations

import ast
import doctest
from dataclasses import dataclass, field
from typing import Any

from exapt.memory.render import clip, is_test_file
from exapt.memory.skill_verify import PURE_MODULES

MAX_TESTS = 20
MAX_FILE_CHARS = 200_000  # a solution file worth a skill is far smaller
_SKIP_NAMES = {"main", "solve", "run"}
#: What parsing or unparsing a hostile file can raise (deep nesting, huge literals).
_HOSTILE = (SyntaxError, ValueError, RecursionError, MemoryError)


@dataclass
class SkillProposal:
    """A candidate skill: ``code`` defines ``name`` with no other file needed; every entry of
    ``tests`` is Python source (usually one ``assert``) that must run silently."""

    name: str
    code: str
    signature: str
    docstring: str
    tests: list[str]
    provenance: dict[str, Any] = field(default_factory=dict)

    def document(self, instruction: str = "") -> str:
        """The text a skill is found by: its signature, its docstring and the task it solved."""
        text = f"def {self.name}{self.signature}:\n{self.docstring}"
        if instruction and instruction.strip() not in text:
            text += "\n\n" + instruction.strip()
        return clip(text, 2000)


def propose(
    workspace: dict[str, bytes],
    *,
    visible_tests: dict[str, str] | None = None,
    instruction: str = "",
    provenance: dict[str, Any] | None = None,
) -> list[SkillProposal]:
    """Skill proposals from the Python files of ``workspace`` (test files and a generated
    ``skills.py`` excluded). ``visible_tests`` adds test files the agent could see (the
    task's seed). A function with no test is not proposed: it could not be verified."""
    sources: dict[str, str] = {}
    tests: dict[str, str] = dict(visible_tests or {})
    for path, data in sorted(workspace.items()):
        if not path.endswith(".py") or path.rsplit("/", 1)[-1] == "skills.py":
            continue
        if len(data) > MAX_FILE_CHARS:
            continue
        text = data.decode("utf-8", "replace")
        (tests if is_test_file(path) else sources)[path] = text
    test_asserts = [a for text in tests.values() for a in _asserts(text)]
    proposals: list[SkillProposal] = []
    seen: set[str] = set()
    for text in sources.values():
        try:
            module = ast.parse(text)
            test_asserts += _asserts_of(module)  # asserts the solution runs at top level
            found = _from_module(module, test_asserts, instruction, provenance or {})
        except _HOSTILE:
            continue
        for proposal in found:
            if proposal.name not in seen:
                seen.add(proposal.name)
                proposals.append(proposal)
    return proposals


def _from_module(
    module: ast.Module, test_asserts: list[ast.stmt], instruction: str, provenance: dict[str, Any]
) -> list[SkillProposal]:
    imports = [
        node
        for node in module.body
        if isinstance(node, ast.Import | ast.ImportFrom) and not _imports_skills(node)
    ]
    imported = {
        (alias.asname or alias.name).split(".")[0] for node in imports for alias in node.names
    }
    defs: dict[str, ast.stmt] = {}
    for node in module.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defs[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if isinstance(target, ast.Name):
                    defs[target.id] = node
    out: list[SkillProposal] = []
    for node in module.body:
        if not isinstance(node, ast.FunctionDef) or node.name.startswith("_"):
            continue
        if node.name.startswith("test") or node.name in _SKIP_NAMES:
            continue
        needed = _closure(node.name, defs)
        body = [defs[n] for n in sorted(needed, key=lambda n: defs[n].lineno)]
        used = {n.id for b in body for n in ast.walk(b) if isinstance(n, ast.Name)}
        code = "\n".join(
            [
                *(ast.unparse(i) for i in imports if _kept(i, used)),
                "",
                *(ast.unparse(b) + "\n" for b in body),
            ]
        )
        docstring = ast.get_docstring(node) or ""
        allowed = needed | imported
        tests = _doctests(node.name, docstring) + [
            ast.unparse(a)
            for a in test_asserts
            if _calls(a, node.name) and _free_names(a) <= allowed
        ]
        tests = list(dict.fromkeys(tests))[:MAX_TESTS]
        if not tests:
            continue
        if not docstring:
            docstring = clip(instruction, 300) or f"{node.name} (no docstring)"
        out.append(
            SkillProposal(
                name=node.name,
                code=code.strip() + "\n",
                signature=_signature(node),
                docstring=docstring,
                tests=tests,
                provenance=dict(provenance),
            )
        )
    return out


def _kept(node: ast.Import | ast.ImportFrom, used: set[str]) -> bool:
    """Whether a skill keeps one of its solution's imports: a pure module always (the
    solution's context), any other only when the skill uses it (and vetting then refuses)."""
    if isinstance(node, ast.ImportFrom):
        if node.module in PURE_MODULES and not node.level:
            return True
    elif all(alias.name in PURE_MODULES for alias in node.names):
        return True
    return bool({(alias.asname or alias.name).split(".")[0] for alias in node.names} & used)


def _imports_skills(node: ast.Import | ast.ImportFrom) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.module == "skills"
    return any(alias.name == "skills" for alias in node.names)


def _closure(name: str, defs: dict[str, ast.stmt]) -> set[str]:
    """``name`` and every top-level definition it reaches through the names it uses."""
    needed, todo = set(), [name]
    while todo:
        current = todo.pop()
        if current in needed or current not in defs:
            continue
        needed.add(current)
        todo += [n.id for n in ast.walk(defs[current]) if isinstance(n, ast.Name)]
    return needed


def _signature(node: ast.FunctionDef) -> str:
    returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
    return f"({ast.unparse(node.args)}){returns}"


def _calls(node: ast.AST, name: str) -> bool:
    return any(
        isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name
        for n in ast.walk(node)
    )


def _doctests(name: str, docstring: str) -> list[str]:
    """``>>> f(x)`` / ``y`` examples as ``assert f(x) == y`` (examples that do not parse
    as expressions, or print instead of returning, are skipped)."""
    out = []
    try:
        examples = doctest.DocTestParser().get_examples(docstring)
    except ValueError:  # malformed doctest indentation
        return []
    for example in examples:
        source, want = example.source.strip(), example.want.strip()
        if not want or name not in source:
            continue
        try:
            call = ast.parse(source, mode="eval").body
            expected = ast.parse(want, mode="eval").body
        except SyntaxError:
            continue
        if _calls(call, name):
            out.append(ast.unparse(ast.Assert(ast.Compare(call, [ast.Eq()], [expected]))))
    return out


def _asserts(text: str) -> list[ast.stmt]:
    try:
        return _asserts_of(ast.parse(text), deep=True)
    except _HOSTILE:
        return []


def _asserts_of(module: ast.Module, *, deep: bool = False) -> list[ast.stmt]:
    """``assert`` statements (and unittest ``self.assertEqual/True/False`` calls, rewritten
    as asserts) that use only literals, builtins and top-level names — not a test's locals."""
    nodes = ast.walk(module) if deep else iter(module.body)
    out: list[ast.stmt] = []
    for node in nodes:
        stmt: ast.stmt | None = None
        if isinstance(node, ast.Assert):
            stmt = ast.Assert(node.test)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            stmt = _unittest_assert(node.value)
        if stmt is not None:
            out.append(stmt)
    return out


def _unittest_assert(call: ast.Call) -> ast.Assert | None:
    func = call.func
    if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)):
        return None
    if func.value.id != "self" or call.keywords:
        return None
    args = call.args
    if func.attr == "assertEqual" and len(args) == 2:
        return ast.Assert(ast.Compare(args[0], [ast.Eq()], [args[1]]))
    if func.attr == "assertTrue" and len(args) == 1:
        return ast.Assert(args[0])
    if func.attr == "assertFalse" and len(args) == 1:
        return ast.Assert(ast.UnaryOp(ast.Not(), args[0]))
    return None


def _free_names(stmt: ast.AST) -> set[str]:
    """Names ``stmt`` reads that it does not bind itself (comprehension targets and lambda
    arguments are bound), builtins excluded. An assert that reads a test's locals (``self``,
    a fixture, a loop variable) has free names no skill defines, so it is not taken."""
    import builtins

    bound: set[str] = set()
    for node in ast.walk(stmt):
        if isinstance(node, ast.comprehension):
            bound |= {n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Lambda):
            bound |= {a.arg for a in ast.walk(node.args) if isinstance(a, ast.arg)}
        elif isinstance(node, ast.NamedExpr) and isinstance(node.target, ast.Name):
            bound.add(node.target.id)
    return {
        n.id
        for n in ast.walk(stmt)
        if isinstance(n, ast.Name)
        and isinstance(n.ctx, ast.Load)
        and n.id not in bound
        and not hasattr(builtins, n.id)
    }
