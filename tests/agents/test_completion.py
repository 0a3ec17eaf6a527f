"""The completion agent for base models: sample, run the visible checks, retry with the error."""

from __future__ import annotations

import pytest
from agent_helpers import HiddenTestScorer

from exapt.agents import Budget, load_spec, run_task
from exapt.agents.models import ScriptedModel
from exapt.tasks.base import SandboxFactory, Task

PROMPT = 'def add(a, b):\n    """Sum of a and b.\n    >>> add(2, 3)\n    5\n    """\n'
HIDDEN = "from solution import add\nassert add(2, 3) == 5\nassert add(10, -4) == 6\n"


@pytest.fixture
def completion_task() -> Task:
    return Task(
        id="toy/complete-add",
        suite="toy",
        instruction="Complete the function add in solution.py.",
        files={"solution.py": PROMPT},
        hidden={"test": HIDDEN},
        metadata={"entry_point": "add", "visible_tests": ["assert add(2, 3) == 5"]},
    )


def test_retries_after_a_visible_check_failure_and_the_second_sample_passes(
    completion_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    # The first sample runs past the function: the stop sequence must cut it off.
    model = ScriptedModel(
        ["    return a - b\n\n\ndef unrelated():\n    pass\n", "    return a + b\n"],
        supports_tools=False,
        is_base=True,
    )
    attempt = run_task(
        completion_task,
        spec=load_spec("completion"),
        model=model,
        sandbox=sandbox_factory,
        scorer=scorer,
        run_id="r1",
    )
    assert attempt.score.passed
    assert attempt.workspace["solution.py"].decode() == PROMPT + "    return a + b\n"
    assert attempt.trajectory.result.stop_reason == "done"
    first, second = model.calls
    assert first["kind"] == "complete" and first["prompt"] == PROMPT
    assert "\ndef " in first["stop"]
    assert first["params"]["max_tokens"] == 256
    # The retry prompt carries the failed attempt and its error as Python comments.
    assert second["prompt"].endswith(PROMPT)
    assert "#     return a - b" in second["prompt"]
    assert "# FAILED: assert add(2, 3) == 5 (got -1)" in second["prompt"]
    assert "unrelated" not in second["prompt"]
    checks = [s for s in attempt.trajectory.steps if s.kind == "note"]
    assert [c.input["passed"] for c in checks] == [False, True]


def test_keeps_the_last_solution_when_no_sample_passes(
    completion_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    replies = ["    return a - b\n", "    return a * b\n", "    return 0\n"]
    model = ScriptedModel(replies, is_base=True)
    spec = load_spec("completion")
    attempt = run_task(
        completion_task,
        spec=spec,
        model=model,
        sandbox=sandbox_factory,
        scorer=scorer,
        run_id="r1",
    )
    assert len(model.calls) == spec.graph_options["retries"] + 1 == 3
    assert attempt.workspace["solution.py"].decode().endswith("    return 0\n")
    assert not attempt.score.passed


def test_an_infinite_loop_is_a_failed_check_not_a_hang(
    completion_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    spec = load_spec("completion")
    spec = spec.model_copy(update={"graph_options": {**spec.graph_options, "check_timeout_s": 1}})
    model = ScriptedModel(["    while True:\n        pass\n", "    return a + b\n"], is_base=True)
    attempt = run_task(
        completion_task,
        spec=spec,
        model=model,
        sandbox=sandbox_factory,
        scorer=scorer,
        run_id="r1",
    )
    assert "timed out" in model.calls[1]["prompt"]
    assert attempt.score.passed


def test_real_humaneval_task_with_its_scorer(sandbox_factory: SandboxFactory) -> None:
    humaneval = pytest.importorskip("exapt.tasks.humaneval")
    task = humaneval.make_task(humaneval._problems()[0])  # has_close_elements
    body = task.hidden.get("canonical_solution")
    if not body:
        pytest.skip("humaneval tasks do not keep the canonical solution in hidden")
    model = ScriptedModel(["    return True\n", body], is_base=True)
    attempt = run_task(
        task,
        spec=load_spec("completion"),
        model=model,
        sandbox=sandbox_factory,
        scorer=humaneval.HumanEvalScorer(),
        run_id="r1",
    )
    assert len(model.calls) == 2  # `return True` fails a docstring example
    assert attempt.score.passed, attempt.score.feedback


def test_samples_are_drawn_together_and_the_passing_one_is_kept(
    completion_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    spec = load_spec("completion")
    spec = spec.with_changes(graph_options={**spec.graph_options, "samples": 3, "temperature": 0.8})
    model = ScriptedModel(
        ["    return a - b\n", "    return a + b\n", "    return 0\n"], is_base=True
    )
    attempt = run_task(
        completion_task,
        spec=spec,
        model=model,
        sandbox=sandbox_factory,
        scorer=scorer,
        run_id="r1",
    )
    assert len(model.calls) == 3 and all(c["params"]["temperature"] == 0.8 for c in model.calls)
    assert attempt.score.passed  # whichever order the three came back in
    assert attempt.workspace["solution.py"].decode().endswith("    return a + b\n")
    assert sum(step.kind == "model" for step in attempt.trajectory.steps) == 3


def test_samples_never_exceed_the_step_budget(
    completion_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    spec = load_spec("completion")
    spec = spec.with_changes(
        graph_options={**spec.graph_options, "samples": 4}, limits=Budget(max_steps=10)
    )
    model = ScriptedModel({"": "    return a - b\n"}, is_base=True)
    attempt = run_task(
        completion_task,
        spec=spec,
        model=model,
        sandbox=sandbox_factory,
        scorer=scorer,
        run_id="r1",
        budget=Budget(max_steps=6),
    )
    assert len(model.calls) == 6  # a round of 4, then 2 of the next round's 4
    assert attempt.trajectory.result.stop_reason == "max_steps"


def test_a_sample_that_does_not_run_is_reported_as_such(
    completion_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    model = ScriptedModel(["    return a +\n", "    return a + b\n"], is_base=True)
    attempt = run_task(
        completion_task,
        spec=load_spec("completion"),
        model=model,
        sandbox=sandbox_factory,
        scorer=scorer,
        run_id="r1",
    )
    assert "# solution.py does not run: SyntaxError" in model.calls[1]["prompt"]
    assert attempt.score.passed
