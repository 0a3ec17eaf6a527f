"""From what a judge saw to a ``Score``: positive evidence, and feedback an agent may read.

A pass needs every expected hidden test seen passing: ``expected`` names the tests the
host counted itself (from the task's own test files), and the judge's or the framework's
list must match it exactly, all passing. Anything else is a failure with a reason code
(``Score.failure``).

Feedback says the verdict and the counts, and names failures only by kind (an exception's
type name, "does not import", "timed out"); never a hidden test's name, source or
assertion message, nor anything the solution printed (which could carry instructions to
whoever reads the feedback next: the agent, its reflections, the next trial's prompt).
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from exapt.records import Evidence, Score
from exapt.tasks.pyjudge import Verdict

_NAME = re.compile(r"[^A-Za-z0-9_.]")


def type_name(name: str) -> str:
    """An exception's type name as feedback may show it: an identifier, 60 characters."""
    return _NAME.sub("", name)[:60] or "an exception"


@dataclass
class Seen:
    """Tests as a judge or a report saw them: name -> (outcome, exception type name, came
    from the solution's side)."""

    outcomes: dict[str, tuple[str, str, bool]]

    @classmethod
    def of(cls, items: Iterable[tuple[str, str, str, bool]]) -> Seen:
        return cls({name: (outcome, error, remote) for name, outcome, error, remote in items})


def failed(
    failure: str, feedback: str, started: float, *, evidence: Evidence = "none", **extra: object
) -> Score:
    """A failed score (reward 0) with its reason code."""
    return Score(
        reward=0.0,
        passed=False,
        feedback=feedback,
        duration_s=time.monotonic() - started,
        evidence=evidence,
        failure=failure,
        **extra,  # type: ignore[arg-type]
    )


def judged(
    seen: Seen,
    expected: Collection[str],
    started: float,
    *,
    evidence: Evidence,
    visible: str = "",
) -> Score:
    """The score of tests ``seen`` against the ``expected`` names (see module doc)."""
    want = set(expected)
    passing = {n for n, (o, _, _) in seen.outcomes.items() if o == "pass"}
    passed_expected = len(passing & want)
    counts = {"tests_expected": len(want), "tests_passed": passed_expected}
    tail = f"\n{visible}" if visible else ""
    if want and set(seen.outcomes) == want and passing == want:
        return Score(
            reward=1.0,
            passed=True,
            feedback=f"all {len(want)} hidden tests passed{tail}",
            duration_s=time.monotonic() - started,
            evidence=evidence,
            **counts,  # type: ignore[arg-type]
        )
    bad = [(n, o, e, r) for n, (o, e, r) in seen.outcomes.items() if o != "pass"]
    missing = want - set(seen.outcomes)
    kinds = sorted({_kind(o, e, r) for _, o, e, r in bad})
    lines = [f"{passed_expected} of {len(want)} hidden tests passed"]
    if kinds:
        lines.append("failures: " + "; ".join(kinds))
    if missing and not bad:
        lines.append(f"{len(missing)} hidden tests did not run")
    failure = "tests_failed" if bad else "count_mismatch"
    return failed(failure, "\n".join(lines) + tail, started, evidence=evidence, **counts)


def _kind(outcome: str, error: str, remote: bool) -> str:
    if outcome == "skip":
        return "a test was skipped"
    if outcome == "fail" and not remote:
        return f"an assertion failed ({type_name(error or 'AssertionError')})"
    if remote:
        return f"the solution raised {type_name(error)}"
    return f"a test raised {type_name(error)}"


def from_python(
    verdict: Verdict,
    expected: Collection[str],
    started: float,
    *,
    timeout_s: float,
    what: str = "the solution",
    visible: str = "",
) -> Score:
    """The score of a Python judgement (``exapt.tasks.pyjudge``): evidence ``judge``."""
    tail = f"\n{visible}" if visible else ""
    if verdict.timed_out:
        return failed(
            "timeout", f"timed out after {timeout_s:g} s (too slow, or stuck?){tail}", started
        )
    if verdict.broken:
        score = failed("broken", "the tests could not be run (the judge failed)", started)
        return score.model_copy(update={"error": f"judge: {verdict.broken}"})
    loading = [t for t in verdict.tests if t.name == "import" or t.name.endswith("(import)")]
    if loading and loading[0].outcome != "pass":
        first = loading[0]
        if verdict.solution_gone and first.error == "Gone":
            return failed(
                "solution_died",
                f"{what} ended its process while being imported{tail}",
                started,
                evidence="judge",
            )
        return failed(
            "import_error",
            f"{what} does not import ({type_name(first.error)}){tail}",
            started,
            evidence="judge",
        )
    if any(t.error == "missing" for t in verdict.tests):
        return failed(
            "missing",
            f"{what} does not define what the tests call{tail}",
            started,
            evidence="judge",
        )
    seen = Seen.of((t.name, t.outcome, t.error, t.remote) for t in verdict.tests)
    score = judged(seen, expected, started, evidence="judge", visible=visible)
    if verdict.solution_gone and not score.passed:
        note = "the solution's process ended during the hidden tests (exit, crash or garbage)"
        return score.model_copy(
            update={"failure": "solution_died", "feedback": f"{note}\n{score.feedback}"}
        )
    return score
