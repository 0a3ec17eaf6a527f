"""Judge a piece of Python code against ``assert`` tests: what skill verification calls.

``judge_asserts(code, tests, sandbox)`` puts ``code`` alone in a fresh sandbox as the
module ``skill`` and runs each test (Python source, e.g. ``"assert add(2, 3) == 5"``) in the
Python judge's own process, in a second fresh sandbox (the tests may come from a model:
they never run on the host), with the module's public names in scope as proxies. Plain
data only: every call must return plain values, so no object of the code's can decide an
``==``. Nothing the code prints or raises reaches the verdict but an exception's type name.

The ``Score`` is a pass only when every test ran and passed (``evidence="judge"``,
``tests_expected == tests_passed == len(tests)``); the code exiting, hanging, patching its
interpreter or printing a marker of any kind changes nothing but its own answers.

Example:
    score = judge_asserts("def add(a, b):\\n    return a + b\\n", ["assert add(2, 3) == 5"],
                          sandbox_factory("bwrap"))
    assert score.trusted
"""

from __future__ import annotations

import time

from exapt.errors import ExaptError
from exapt.records import Score
from exapt.tasks.base import SandboxFactory
from exapt.tasks.command import broken
from exapt.tasks.pyjudge import judge
from exapt.tasks.verdict import failed, from_python

MODULE = "skill"
DEFAULT_TIMEOUT_S = 10.0


def judge_asserts(
    code: str, tests: list[str], sandbox: SandboxFactory, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> Score:
    """Judge ``code`` (one module) with ``tests`` (assert statements); see module doc.

    Never raises for what the code does; a sandbox that cannot be opened is a score with
    ``error`` set (``failure="broken"``)."""
    started = time.monotonic()
    if not tests:
        return failed("no_tests", "there are no tests to judge the code with", started)
    spec = {"mode": "asserts", "plain": True, "module": MODULE, "asserts": list(tests)}
    try:
        verdict = judge(spec, {f"{MODULE}.py": code}, sandbox, timeout_s=timeout_s)
    except (ExaptError, OSError) as exc:
        return broken(exc, started)
    expected = {f"test {i}" for i in range(len(tests))}
    return from_python(verdict, expected, started, timeout_s=timeout_s, what="the code")
