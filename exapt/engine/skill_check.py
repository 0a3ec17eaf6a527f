"""The ``SkillCheck`` the engine gives memory: a skill's tests judged where the skill cannot
reach the verdict.

A skill's test is an ``assert`` over calls of its functions (``assert f([1, 2]) == [2, 4]``).
The check cuts every part of the assert that touches the skill (``f([1, 2])``: a *probe*)
out of it, evaluates the probes in a fresh sandbox that imports the skill, and gets back
plain data only: each probe's ``repr``, read here with ``ast.literal_eval``, or the name of
the exception it raised. What is left of the assert (comparisons, boolean logic, literals,
a few pure builtins, with the probes' values in place) is evaluated here, in exapt's own
process, by ``judge``. So nothing the skill does — printing a marker, patching the
interpreter, exiting early — decides the verdict: only the values its functions return.

``sandbox_skill_check(factory)`` is the one place the engine wires this; the tasks' judge
can replace it there.
"""

from __future__ import annotations

import ast
import json
import operator
from collections.abc import Callable
from typing import Any

from exapt.memory.base import Check, SkillCheck
from exapt.sandbox.base import SandboxError
from exapt.tasks.base import SandboxFactory

TIMEOUT_S = 10.0  # skills are small functions; their tests finish in well under a second
MAX_VALUES_BYTES = 2_000_000
PROBE = "__exapt_probe_"

# Runs in the sandbox, isolated (-I): nothing in the workspace shadows what it imports. What
# it reports with is taken before the skill is imported (a skill that patches ``repr``,
# ``open`` or ``json`` in its process changes nothing here), written as the repr of a list
# of str tuples (builtin types, whose repr cannot be patched), and the process ends at
# once after (no exit handler of the skill's runs).
_HARNESS = """\
import json, os, sys
_repr, _open, _eval, _compile, _dict, _exit = repr, open, eval, compile, dict, os._exit
_str, _type, _base = str, type, BaseException
sys.setrecursionlimit(10000)
probes = json.load(_open("exapt_probes.json"))
sys.path.append(".")
import exapt_skill
base = _dict(vars(exapt_skill))
out = []
for src in probes:
    try:
        out.append(("ok", _repr(_eval(_compile(src, "<probe>", "eval"), _dict(base)))[:200000]))
    except _base as exc:  # the probe's outcome, whatever it raised
        out.append(("raised", ("%s: %s" % (_type(exc).__name__, _str(exc)))[:300]))
with _open("exapt_values.txt", "w") as f:
    f.write(_repr(out))
_exit(0)
"""


def sandbox_skill_check(factory: SandboxFactory) -> SkillCheck:
    """A ``SkillCheck`` that runs the skill's probes in sandboxes opened by ``factory``.

    Example:
        memory = open_memory(check=sandbox_skill_check(suite_factory))
    """

    def check(code: str, tests: list[str]) -> Check:
        return check_skill(code, tests, factory)

    return check


def check_skill(code: str, tests: list[str], factory: SandboxFactory) -> Check:
    """``ok`` only when every test's assert holds on the values the skill returned."""
    if not tests:
        return Check(False, "no tests")
    names = _bound_names(code)
    skeletons: list[ast.expr | str] = []
    probes: list[str] = []
    for test in tests:
        skeletons.append(_split(test, names, probes))
    values = _run_probes(code, probes, factory) if probes else []
    if isinstance(values, Check):
        return values
    failures = []
    for test, skeleton in zip(tests, skeletons, strict=True):
        verdict = skeleton if isinstance(skeleton, str) else judge(skeleton, values)
        if verdict:
            failures.append(f"{verdict}: {test}")
    if failures:
        return Check(False, f"{len(failures)} of {len(tests)} tests failed, first: {failures[0]}")
    return Check(True, f"{len(tests)} tests passed")


# --- cutting the probes out of an assert ---------------------------------------------


def _bound_names(code: str) -> set[str]:
    """Every name the skill module binds at top level (functions, classes, constants,
    imports): what a probe is made of."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def _split(test: str, names: set[str], probes: list[str]) -> ast.expr | str:
    """The assert's condition with each probe replaced by a placeholder (appended to
    ``probes``), or why the test cannot be judged."""
    try:
        tree = ast.parse(test)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "SyntaxError"
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assert):
        return "NotAnAssert"
    try:
        return _lift(tree.body[0].test, names, probes)
    except RecursionError:
        return "RecursionError"


def _touches(node: ast.AST, names: set[str]) -> bool:
    return any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node))


def _lift(node: ast.expr, names: set[str], probes: list[str]) -> ast.expr:
    if not _touches(node, names):
        return node
    keep_call = (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in PURE_BUILTINS
        and node.func.id not in names
        and not node.keywords
        # a generator or a lambda is no plain data: the call is probed whole instead
        and not any(isinstance(a, ast.GeneratorExp | ast.Lambda) for a in node.args)
    )
    if keep_call or isinstance(node, _SKELETON):
        clone = ast.copy_location(type(node)(**dict(ast.iter_fields(node))), node)
        for field, value in ast.iter_fields(clone):
            if field in ("func", "ops", "op"):
                continue
            if isinstance(value, ast.expr):
                setattr(clone, field, _lift(value, names, probes))
            elif isinstance(value, list):
                lifted = [_lift(v, names, probes) if isinstance(v, ast.expr) else v for v in value]
                setattr(clone, field, lifted)
        return clone
    probes.append(ast.unparse(node))
    return ast.Name(id=f"{PROBE}{len(probes) - 1}", ctx=ast.Load())


# --- running the probes --------------------------------------------------------------


def _run_probes(code: str, probes: list[str], factory: SandboxFactory) -> list[Any] | Check:
    """Each probe's outcome as plain data: ``("ok", value)`` or ``("raised", text)``."""
    files: dict[str, str | bytes] = {
        "exapt_skill.py": code,
        "exapt_probes.json": json.dumps(probes),
        "exapt_probe.py": _HARNESS,
    }
    with factory(files) as box:
        res = box.exec(["python3", "-I", "exapt_probe.py"], timeout=TIMEOUT_S)
        if res.timed_out:
            return Check(False, f"tests timed out after {TIMEOUT_S:.0f} s")
        try:
            raw = box.read("exapt_values.txt")
        except (FileNotFoundError, SandboxError):
            tail = " | ".join((res.stderr or res.stdout).strip().splitlines()[-3:])
            return Check(False, f"the skill's process gave no values (exit {res.exit_code}) {tail}")
    return _parse_values(raw, len(probes))


def _parse_values(raw: bytes, n: int) -> list[Any] | Check:
    """The harness's report, read as plain data (``literal_eval`` runs no code)."""
    if len(raw) > MAX_VALUES_BYTES:
        return Check(False, f"the skill's values are over {MAX_VALUES_BYTES} bytes")
    try:
        rows = ast.literal_eval(raw.decode("utf-8", "replace"))
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        return Check(False, "the skill's values are not plain data")
    shape_ok = isinstance(rows, list) and len(rows) == n
    if not shape_ok or not all(_is_row(r) for r in rows):
        return Check(False, "the skill's values do not match its probes")
    values: list[Any] = []
    for kind, text in rows:
        if kind == "raised":
            values.append(("raised", text))
            continue
        try:
            value = ast.literal_eval(text)
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
            value = _NotData()
        values.append(("ok", value))
    return values


def _is_row(row: Any) -> bool:
    return (
        isinstance(row, tuple)
        and len(row) == 2
        and row[0] in ("ok", "raised")
        and isinstance(row[1], str)
    )


class _NotData:
    """A probe whose result is no Python literal (an object): nothing can be judged on it."""


# --- judging what is left, here --------------------------------------------------------

#: What of an assert is judged here (the rest, touching the skill, is probed in the sandbox).
_SKELETON = (
    ast.Compare, ast.BoolOp, ast.UnaryOp, ast.BinOp, ast.List, ast.Tuple, ast.Set, ast.Dict
)  # fmt: skip
PURE_BUILTINS: dict[str, Callable[..., Any]] = {
    "abs": abs, "all": all, "any": any, "bool": bool, "dict": dict, "float": float,
    "frozenset": frozenset, "int": int, "isinstance": isinstance, "len": len, "list": list,
    "max": max, "min": min, "round": round, "set": set, "sorted": sorted, "str": str,
    "sum": sum, "tuple": tuple, "type": type,
}  # fmt: skip
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Is: operator.is_, ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}  # fmt: skip
_NUMBER_OPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
}  # fmt: skip


class _Unjudgeable(Exception):
    pass


class _ProbeRaised(Exception):
    pass


def judge(skeleton: ast.expr, values: list[Any]) -> str:
    """'' when the assert holds, else why not (``AssertionError (got ...)``, the error a
    probe raised, or why the assert cannot be judged on plain data)."""
    try:
        holds = bool(_eval(skeleton, values))
    except _ProbeRaised as exc:
        return str(exc)
    except _Unjudgeable as exc:
        return f"cannot judge ({exc})"
    except (TypeError, ValueError, ArithmeticError, RecursionError, MemoryError) as exc:
        return f"{type(exc).__name__}: {exc}"
    if holds:
        return ""
    got = [repr(v[1])[:80] for v in values if v[0] == "ok"][:3]
    return "AssertionError" + (f" (got {', '.join(got)})" if got else "")


def _eval(node: ast.expr, values: list[Any]) -> Any:
    """A tiny evaluator: ``eval`` could not bound ``'a' * 10**10``; this checks operands."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id.startswith(PROBE):
            kind, value = values[int(node.id.removeprefix(PROBE))]
            if kind == "raised":
                raise _ProbeRaised(value)
            if isinstance(value, _NotData):
                raise _Unjudgeable("a result is not plain data")
            return value
        if node.id in PURE_BUILTINS:  # e.g. the int of isinstance(x, int)
            return PURE_BUILTINS[node.id]
        raise _Unjudgeable(f"name {node.id!r}")
    if isinstance(node, ast.Compare):
        left = _eval(node.left, values)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _eval(right_node, values)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.BoolOp):
        result: Any = isinstance(node.op, ast.And)
        for value_node in node.values:
            result = _eval(value_node, values)
            if isinstance(node.op, ast.And) != bool(result):
                return result
        return result
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand, values)
        if isinstance(node.op, ast.Not):
            return not operand
        if isinstance(node.op, ast.USub | ast.UAdd) and _is_number(operand):
            return -operand if isinstance(node.op, ast.USub) else operand
        raise _Unjudgeable(type(node.op).__name__)
    if isinstance(node, ast.BinOp):
        return _binop(node, _eval(node.left, values), _eval(node.right, values))
    if isinstance(node, ast.List | ast.Tuple | ast.Set):
        items = [_eval(e, values) for e in node.elts]
        return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise _Unjudgeable("** in a dict")
        pairs = zip(node.keys, node.values, strict=True)
        return {_eval(k, values): _eval(v, values) for k, v in pairs if k is not None}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        function = PURE_BUILTINS.get(node.func.id)
        if function is not None:
            return function(*[_eval(a, values) for a in node.args])
    raise _Unjudgeable(type(node).__name__)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | complex) and not isinstance(value, bool)


def _binop(node: ast.BinOp, left: Any, right: Any) -> Any:
    op = type(node.op)
    if _is_number(left) and _is_number(right):
        if op is ast.Pow:
            if abs(right) > 64 or (isinstance(left, int) and abs(left) > 10**6):
                raise _Unjudgeable("a power too large to judge")
            return left**right
        if op in _NUMBER_OPS:
            return _NUMBER_OPS[op](left, right)
    if op is ast.Add and type(left) is type(right) and isinstance(left, str | list | tuple):
        return left + right  # as large as its two operands, no more
    raise _Unjudgeable(f"{type(left).__name__} {op.__name__} {type(right).__name__}")
