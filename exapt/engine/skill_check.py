"""The ``SkillCheck`` the engine gives memory: a skill's tests judged by the tasks' Python
judge, where the skill cannot reach the verdict.

A skill's test is an ``assert`` over calls of its functions (``assert f([1, 2]) == [2, 4]``).
``exapt.tasks.judge_asserts`` runs the skill alone in one fresh sandbox and the asserts in
the judge's own process in a second one, the two exchanging plain data only: printing a
marker, patching the interpreter or exiting early decides nothing, only the values the
skill's functions return. This is the same judge that scores HumanEval and Polyglot Python,
so memory trusts a skill exactly as far as the evaluator trusts a solution.

``sandbox_skill_check(factory)`` is the one place the engine wires it.
"""

from __future__ import annotations

from exapt.memory.base import Check, SkillCheck
from exapt.tasks.asserts import judge_asserts
from exapt.tasks.base import SandboxFactory

TIMEOUT_S = 10.0  # skills are small functions; their tests finish in well under a second


def sandbox_skill_check(factory: SandboxFactory) -> SkillCheck:
    """A ``SkillCheck`` that judges skills in sandboxes opened by ``factory``.

    Example:
        memory = open_memory(check=sandbox_skill_check(suite_factory))
    """

    def check(code: str, tests: list[str]) -> Check:
        return check_skill(code, tests, factory)

    return check


def check_skill(code: str, tests: list[str], factory: SandboxFactory) -> Check:
    """``ok`` only when the judge saw every test run and pass (a trusted verdict)."""
    score = judge_asserts(code, tests, factory, timeout_s=TIMEOUT_S)
    if score.trusted and score.tests_passed == len(tests):
        return Check(True, f"{len(tests)} tests passed")
    reason = score.error or score.feedback or score.failure or ""
    return Check(False, "; ".join(reason.split("\n"))[:300] or "failed")
