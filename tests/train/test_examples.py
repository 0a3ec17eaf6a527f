"""Labels of per-call examples in the cases a scripted run does not reach easily: a budget
that ends a completion attempt before its check, a task without visible checks, a pass the
judge did not trust, a malformed tool call."""

from __future__ import annotations

from typing import Any

from exapt.evolve.training.examples import call_examples
from exapt.records import Outcome, Step, Trajectory


def _completion(
    steps: list[Step], *, passed: bool, stop: str = "done", trusted: bool = True
) -> Trajectory:
    result = Outcome(
        reward=float(passed), passed=passed, stop_reason=stop, trusted=trusted and passed
    )
    return Trajectory(run_id="r", task_id="toy/f0", steps=steps, result=result,
                      metadata={"graph": "completion"})  # fmt: skip


def _draft(text: str, prompt: str = "def f(x):\n") -> Step:
    return Step(
        kind="model", input={"prompt": prompt}, output={"role": "assistant", "content": text}
    )


def _check(passed: bool) -> Step:
    return Step(kind="note", input={"check": "visible", "passed": passed}, output="")


def test_a_draft_cut_off_by_the_budget_before_its_check_labels_nothing() -> None:
    t = _completion(
        [_draft("a"), _check(False), _draft("b", "retry")], passed=False, stop="max_steps"
    )
    first, second = call_examples(t)
    assert (first.label, first.written) == (False, True)  # the last checked: what was written
    assert (second.label, second.written) == (None, False)


def test_without_visible_checks_the_first_draft_stands() -> None:
    first, second = call_examples(_completion([_draft("a"), _draft("b")], passed=True))
    assert (first.label, first.written) == (True, True)
    assert (second.label, second.written) == (None, False)


def test_a_pass_the_judge_did_not_trust_labels_nothing() -> None:
    (only,) = call_examples(_completion([_draft("a"), _check(True)], passed=True, trusted=False))
    assert only.label is None and only.passed is False


def test_a_malformed_tool_call_is_never_a_positive() -> None:
    call: dict[str, Any] = {"id": "c", "function": {"name": "shell", "arguments": "{not json"}}
    step = Step(
        kind="model",
        input={"messages": [{"role": "user", "content": "go", "name": None}], "tools": None},
        output={"role": "assistant", "content": None, "tool_calls": [call]},
    )
    t = Trajectory(run_id="r", task_id="chat/t0", steps=[step],
                   result=Outcome(reward=1.0, passed=True, trusted=True))  # fmt: skip
    (example,) = call_examples(t)
    assert example.label is None
    assert example.prompt == [{"role": "user", "content": "go"}]  # None values dropped
    arguments = example.completion[0]["tool_calls"][0]["function"]["arguments"]
    assert arguments["_raw_arguments"] == "{not json"
