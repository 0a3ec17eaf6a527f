"""The text coder on a real Polyglot task, scored by the real scorer in real sandboxes."""

from __future__ import annotations

from pathlib import Path

import pytest

from exapt.agents import load_spec, run_task
from exapt.agents.models import ScriptedModel
from exapt.tasks.base import SandboxFactory

DATASET = Path("/work/shared/datasets/polyglot.jsonl")


def test_writing_the_reference_solution_passes_and_submitting_the_stub_fails(
    sandbox_factory: SandboxFactory,
) -> None:
    if not DATASET.exists():
        pytest.skip(f"{DATASET} is not on this machine")
    from exapt.tasks import load_suite
    from exapt.tasks.command import suite_sandbox_factory

    suite = load_suite(f"polyglot:{DATASET}")
    task = next(t for t in suite.tasks() if t.language == "python")
    factory = suite_sandbox_factory(suite, "bwrap")
    reference = task.hidden["reference"].items()
    writes = [f"```write {path}\n{text.rstrip()}\n```\n" for path, text in reference]
    model = ScriptedModel([*writes, "```submit\n```"], supports_tools=False)
    attempt = run_task(
        task,
        spec=load_spec("text_coder"),
        model=model,
        sandbox=factory,
        scorer=suite.scorer(),
        run_id="r1",
    )
    assert attempt.score.passed, attempt.score.feedback
    assert task.instruction in model.calls[0]["messages"][1]["content"]

    stub = run_task(
        task,
        spec=load_spec("text_coder"),
        model=ScriptedModel(["```submit\n```"], supports_tools=False),
        sandbox=factory,
        scorer=suite.scorer(),
        run_id="r1",
    )
    assert not stub.score.passed and stub.trajectory.result.stop_reason == "submitted"
