"""Running skill code where it can do no harm: a fresh sandbox per check.

- ``verify``: a skill's tests, each run on a fresh copy of the skill's namespace; the
  skill passes only if every test ran silently and the sandbox exited cleanly.
- ``same_behaviour``: two skills called on the same inputs; equal iff every call gives the
  same ``repr`` (or raises the same exception type).

Never raises for what the code does (that is a failed check with its reason); raises only
if the sandbox itself is broken (``SandboxError`` from the factory).
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass

from exapt.tasks.base import SandboxFactory

TIMEOUT_S = 10.0  # skills are small functions; their tests finish in well under a second
_MARK = "EXAPT_RESULT "

_VERIFY = """\
import json, sys
sys.setrecursionlimit(10000)
TESTS = json.loads(open("exapt_tests.json").read())
import exapt_skill
failures = []
for i, src in enumerate(TESTS):
    ns = dict(vars(exapt_skill))
    try:
        exec(compile(src, "<test %d>" % i, "exec"), ns)
    except BaseException as exc:  # the test's verdict, whatever it raised
        failures.append([i, ("%s: %s" % (type(exc).__name__, exc))[:300]])
print("EXAPT_RESULT " + json.dumps({"ran": len(TESTS), "failures": failures}))
"""

_COMPARE = """\
import json
CALLS = json.loads(open("exapt_calls.json").read())
import exapt_a, exapt_b
def outcome(module, name, args):
    ns = dict(vars(module))
    try:
        return "ok " + repr(eval("%s(%s)" % (name, args), ns))
    except BaseException as exc:
        return "raised " + type(exc).__name__
same = []
for args in CALLS:
    same.append(outcome(exapt_a, NAME_A, args) == outcome(exapt_b, NAME_B, args))
print("EXAPT_RESULT " + json.dumps({"same": same}))
"""


@dataclass
class Check:
    ok: bool
    reason: str = ""


def _result(stdout: str) -> dict[str, object] | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith(_MARK):
            try:
                value = json.loads(line[len(_MARK) :])
            except ValueError:
                return None
            return value if isinstance(value, dict) else None
    return None


def verify(code: str, tests: list[str], factory: SandboxFactory) -> Check:
    """Run ``tests`` against ``code`` in a fresh sandbox: ok only if all of them pass."""
    if not tests:
        return Check(False, "no tests")
    files: dict[str, str | bytes] = {
        "exapt_skill.py": code,
        "exapt_tests.json": json.dumps(tests),
        "exapt_verify.py": _VERIFY,
    }
    with factory(files) as box:
        res = box.exec(["python3", "exapt_verify.py"], timeout=TIMEOUT_S)
    data = _result(res.stdout)
    if res.timed_out:
        return Check(False, f"tests timed out after {TIMEOUT_S:.0f} s")
    if data is None or not res.ok:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        return Check(False, f"exit {res.exit_code}: " + " | ".join(tail))
    failures = data.get("failures") or []
    if failures:
        first = failures[0]  # type: ignore[index]
        return Check(False, f"{len(failures)} of {data.get('ran')} tests failed, first: {first}")  # type: ignore[arg-type]
    return Check(True, f"{data.get('ran')} tests passed")


def call_arguments(tests: list[str], name: str) -> list[str]:
    """The argument lists (source) of every call to ``name`` in ``tests``."""
    out: list[str] = []
    for src in tests:
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == name
            ):
                args = [ast.unparse(a) for a in node.args]
                args += [ast.unparse(k) for k in node.keywords]
                out.append(", ".join(args))
    return list(dict.fromkeys(out))


def same_behaviour(
    code_a: str, name_a: str, code_b: str, name_b: str, calls: list[str], factory: SandboxFactory
) -> Check:
    """Whether ``name_a`` of ``code_a`` and ``name_b`` of ``code_b`` give the same result on
    every argument list of ``calls`` (at least one)."""
    if not calls:
        return Check(False, "no inputs to compare on")
    runner = f"NAME_A = {name_a!r}\nNAME_B = {name_b!r}\n" + _COMPARE
    files: dict[str, str | bytes] = {
        "exapt_a.py": code_a,
        "exapt_b.py": code_b,
        "exapt_calls.json": json.dumps(calls),
        "exapt_compare.py": runner,
    }
    with factory(files) as box:
        res = box.exec(["python3", "exapt_compare.py"], timeout=TIMEOUT_S)
    data = _result(res.stdout)
    if data is None or not res.ok:
        return Check(False, f"comparison did not run (exit {res.exit_code})")
    same = data.get("same") or []
    if isinstance(same, list) and same and all(same):
        return Check(True, f"same on {len(same)} inputs")
    return Check(False, "different outputs")
