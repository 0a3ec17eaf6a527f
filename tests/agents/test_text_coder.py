"""The text coder: actions as fenced blocks in plain text, for models without tool calls."""

from __future__ import annotations

from agent_helpers import HiddenTestScorer

from exapt.agents import load_spec, run_task
from exapt.agents.models import ScriptedModel
from exapt.tasks.base import SandboxFactory, Task

EDIT = (
    "The minus should be a plus.\n"
    "```edit add.py\n<<<<<<< SEARCH\n    return a - b\n=======\n    return a + b\n"
    ">>>>>>> REPLACE\n```\n"
)
RUN = "Let me check.\n```bash\npython3 -c 'from add import add; print(add(2, 3))'\n```\n"
SUBMIT = "It prints 5.\n```submit\n```\n"


def test_a_reply_without_an_action_gets_the_format_error_and_the_next_succeeds(
    add_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    prose = "The bug is that add subtracts; it should add instead."
    model = ScriptedModel([prose, EDIT, RUN, SUBMIT], supports_tools=False)
    attempt = run_task(
        add_task,
        spec=load_spec("text_coder"),
        model=model,
        sandbox=sandbox_factory,
        scorer=scorer,
        run_id="r1",
    )
    assert attempt.score.passed
    assert attempt.trajectory.result.stop_reason == "submitted"
    assert all(call["tools"] is None for call in model.calls)  # no native tools offered
    system = model.calls[0]["messages"][0]["content"]
    assert "```edit path/to/file.py" in system and "```submit" in system
    error = model.calls[1]["messages"][-1]
    assert error["role"] == "user" and error["content"].startswith("Format error: your reply")
    assert model.calls[1]["messages"][-2] == {"role": "assistant", "content": prose}
    observation = model.calls[2]["messages"][-1]["content"]
    assert observation.startswith("Result of `str_replace`:\nreplaced 1 occurrence")
    assert model.calls[3]["messages"][-1]["content"].endswith("exit code: 0\nstdout:\n5")
    tools = [s.input["name"] for s in attempt.trajectory.steps if s.kind == "tool"]
    assert tools == ["str_replace", "shell", "submit"]


def test_only_the_first_action_of_a_reply_runs(
    add_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    # Submitting in the same reply as the edit would skip seeing the edit's result.
    model = ScriptedModel([EDIT + SUBMIT, SUBMIT], supports_tools=False)
    attempt = run_task(
        add_task,
        spec=load_spec("text_coder"),
        model=model,
        sandbox=sandbox_factory,
        scorer=scorer,
        run_id="r1",
    )
    assert len(model.calls) == 2 and attempt.score.passed
    assert any(s.kind == "note" and "not run" in s.output for s in attempt.trajectory.steps)


def test_a_base_model_gets_a_plain_transcript_through_complete(
    add_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    model = ScriptedModel([EDIT, SUBMIT], supports_tools=False, is_base=True)
    attempt = run_task(
        add_task,
        spec=load_spec("text_coder"),
        model=model,
        sandbox=sandbox_factory,
        scorer=scorer,
        run_id="r1",
    )
    assert attempt.score.passed
    assert [call["kind"] for call in model.calls] == ["complete", "complete"]
    prompt = model.calls[1]["prompt"]
    assert "### User\n# Task toy/add" in prompt
    assert "### Assistant\nThe minus should be a plus." in prompt
    assert prompt.endswith("### Assistant\n") and model.calls[1]["stop"] == ["\n### User"]


def test_use_chat_option_sends_a_base_model_chat_messages(
    add_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    spec = load_spec("text_coder")
    spec = spec.with_changes(graph_options={**spec.graph_options, "use_chat": True})
    model = ScriptedModel([EDIT, SUBMIT], supports_tools=False, is_base=True)
    attempt = run_task(
        add_task, spec=spec, model=model, sandbox=sandbox_factory, scorer=scorer, run_id="r1"
    )
    assert attempt.score.passed and [c["kind"] for c in model.calls] == ["chat", "chat"]
