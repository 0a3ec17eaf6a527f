"""Every budget limit ends the graph cleanly, with the right stop_reason, and is still scored."""

from __future__ import annotations

import time

import pytest
from agent_helpers import HiddenTestScorer, tool_reply

from exapt.agents import Budget, load_spec, run_task
from exapt.agents.budget import DEFAULT_MAX_STEPS
from exapt.agents.models import ModelReply, ScriptedModel
from exapt.agents.models.base import ContextWindowExceeded
from exapt.tasks.base import SandboxFactory, Task


def forever(reply: ModelReply, **kwargs: object) -> ScriptedModel:
    """A model that gives ``reply`` to every call and never submits."""
    return ScriptedModel({"": reply}, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("budget", "reply", "reason", "calls"),
    [
        (Budget(max_steps=3), tool_reply("shell", command="echo hi"), "max_steps", 3),
        (Budget(max_tokens=1000), ModelReply(text="hmm", tokens_in=600), "max_tokens", 2),
        (Budget(max_cost_usd=1.0), ModelReply(text="hmm", cost_usd=0.4), "max_cost", 3),
    ],
)
def test_limit_ends_the_tool_coder_cleanly(
    add_task: Task,
    sandbox_factory: SandboxFactory,
    scorer: HiddenTestScorer,
    budget: Budget,
    reply: ModelReply,
    reason: str,
    calls: int,
) -> None:
    model = forever(reply)
    attempt = run_task(
        add_task,
        spec=load_spec("tool_coder"),
        model=model,
        sandbox=sandbox_factory,
        scorer=scorer,
        run_id="r1",
        budget=budget,
    )
    assert attempt.trajectory.result.stop_reason == reason
    assert len(model.calls) == calls
    assert not attempt.score.passed and len(scorer.workspaces) == 1  # scored all the same


def test_wall_clock_limit_also_cuts_the_running_command(
    add_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    model = forever(tool_reply("shell", command="sleep 30"))
    started = time.monotonic()
    attempt = run_task(
        add_task,
        spec=load_spec("tool_coder"),
        model=model,
        sandbox=sandbox_factory,
        scorer=scorer,
        run_id="r1",
        budget=Budget(max_wall_s=1.5),
    )
    assert attempt.trajectory.result.stop_reason == "max_wall"
    assert time.monotonic() - started < 10  # the 30 s command was cut to the budget left
    assert "timed out" in attempt.trajectory.steps[1].output


def test_text_coder_and_completion_stop_on_max_steps(
    add_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    text = forever(ModelReply(text="```bash\necho hi\n```"), supports_tools=False)
    attempt = run_task(
        add_task,
        spec=load_spec("text_coder"),
        model=text,
        sandbox=sandbox_factory,
        scorer=scorer,
        run_id="r1",
        budget=Budget(max_steps=2),
    )
    assert attempt.trajectory.result.stop_reason == "max_steps" and len(text.calls) == 2

    task = add_task.model_copy(
        update={"metadata": {"entry_point": "add", "visible_tests": ["assert add(2, 3) == 5"]}}
    )
    completion = forever(ModelReply(text="    return a - b\n"), is_base=True)
    attempt = run_task(
        task,
        spec=load_spec("completion"),
        model=completion,
        sandbox=sandbox_factory,
        scorer=scorer,
        run_id="r1",
        budget=Budget(max_steps=1),
    )
    assert attempt.trajectory.result.stop_reason == "max_steps" and len(completion.calls) == 1


def test_spec_limits_apply_and_the_run_budget_only_tightens_them(
    add_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    spec = load_spec("tool_coder").model_copy(update={"limits": Budget(max_steps=2)})
    model = forever(ModelReply(text="thinking"))
    run_task(
        add_task,
        spec=spec,
        model=model,
        sandbox=sandbox_factory,
        scorer=scorer,
        run_id="r1",
        budget=Budget(max_steps=10),
    )
    assert len(model.calls) == 2
    assert Budget(max_steps=5, max_wall_s=9).tighten(Budget(max_steps=7, max_tokens=3)) == Budget(
        max_steps=5, max_tokens=3, max_wall_s=9
    )


def test_without_any_limit_the_default_step_cap_ends_the_loop(
    add_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    # Replies without a tool call loop model -> model: the recursion limit must not fire first.
    spec = load_spec("tool_coder").model_copy(update={"limits": Budget()})
    model = forever(ModelReply(text="thinking"))
    attempt = run_task(
        add_task, spec=spec, model=model, sandbox=sandbox_factory, scorer=scorer, run_id="r1"
    )
    assert attempt.trajectory.result.stop_reason == "max_steps"
    assert len(model.calls) == DEFAULT_MAX_STEPS


class OverflowingModel(ScriptedModel):
    """Answers its script, then reports that the conversation outgrew its context window."""

    def chat(self, messages, *, tools=None, **params):  # type: ignore[no-untyped-def]
        if len(self.calls) >= 1:
            raise ContextWindowExceeded("model 'm': the prompt is longer than the context window")
        return super().chat(messages, tools=tools, **params)


def test_context_window_overflow_ends_the_attempt_not_the_run(
    add_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    model = OverflowingModel([tool_reply("shell", command="echo hi")])
    attempt = run_task(
        add_task,
        spec=load_spec("tool_coder"),
        model=model,
        sandbox=sandbox_factory,
        scorer=scorer,
        run_id="r1",
    )
    assert attempt.trajectory.result.stop_reason == "context_window"
    assert any("context window" in str(s.output or s.input) for s in attempt.trajectory.steps)
    assert not attempt.score.passed and len(scorer.workspaces) == 1  # scored all the same
