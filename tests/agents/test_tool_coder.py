"""The tool coder: a ReAct loop with native tool calls, in a real bwrap sandbox."""

from __future__ import annotations

import pytest
from agent_helpers import FIX_ADD, HiddenTestScorer, tool_reply

from exapt.agents import load_spec, run_task
from exapt.agents.models import ModelReply, ScriptedModel
from exapt.tasks.base import SandboxFactory, Task


def test_fixes_the_file_and_submits(
    add_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    model = ScriptedModel(FIX_ADD)
    attempt = run_task(
        add_task,
        spec=load_spec("tool_coder"),
        model=model,
        sandbox=sandbox_factory,
        scorer=scorer,
        run_id="r1",
    )
    assert attempt.score.passed and attempt.trajectory.result.passed
    assert attempt.trajectory.result.stop_reason == "submitted"
    assert attempt.workspace["add.py"] == b"def add(a, b):\n    return a + b\n"
    kinds = [step.kind for step in attempt.trajectory.steps]
    assert kinds == ["model", "tool"] * 4 + ["score"]
    # The model saw the tool schemas and, after each call, the observation as a tool message.
    first, second, third = model.calls[0], model.calls[1], model.calls[2]
    assert {t["function"]["name"] for t in first["tools"]} == {
        "shell",
        "view",
        "create",
        "str_replace",
        "submit",
    }
    assert second["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call-view",
        "content": "1  def add(a, b):\n2      return a - b",
    }
    assert "replaced 1 occurrence in add.py at line 2" in third["messages"][-1]["content"]
    assert model.calls[3]["messages"][-1]["content"] == "exit code: 0\nstdout:\n5\n"
    # Every model step is recorded with its messages and the reply as an OpenAI message.
    step = attempt.trajectory.steps[0]
    assert step.input["messages"][0]["role"] == "system"
    assert step.output["tool_calls"][0]["function"]["name"] == "view"
    assert attempt.trajectory.tokens_in > 0 and attempt.trajectory.tokens_out > 0
    # Scored once, on the final snapshot, in a fresh sandbox the agent never touched.
    assert scorer.workspaces == [attempt.workspace]


def test_a_reply_without_a_tool_call_gets_the_format_error(
    add_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    model = ScriptedModel(["I would change the minus into a plus.", *FIX_ADD])
    attempt = run_task(
        add_task,
        spec=load_spec("tool_coder"),
        model=model,
        sandbox=sandbox_factory,
        scorer=scorer,
        run_id="r1",
    )
    assert attempt.score.passed
    nudge = model.calls[1]["messages"][-1]
    assert nudge["role"] == "user" and "called no tool" in nudge["content"]
    assert attempt.trajectory.steps[1].kind == "note"


def test_tool_errors_are_observations_not_crashes(
    add_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    model = ScriptedModel(
        [
            tool_reply("str_replace", path="add.py", old_str="a * b", new_str="a + b"),
            tool_reply("no_such_tool"),
            tool_reply("view", path="../../etc/shadow"),
            tool_reply("shell", _raw_arguments='{"command": "ls', _arguments_error="not JSON"),
            tool_reply("submit"),
        ]
    )
    attempt = run_task(
        add_task,
        spec=load_spec("tool_coder"),
        model=model,
        sandbox=sandbox_factory,
        scorer=scorer,
        run_id="r1",
    )
    observations = [s.output for s in attempt.trajectory.steps if s.kind == "tool"]
    assert observations[0].startswith("error: old_str does not occur in add.py")
    assert observations[1].startswith("error: unknown tool 'no_such_tool'")
    assert observations[2].startswith("error:")
    assert observations[3].startswith("error: the arguments of your shell call could not be read")
    assert attempt.trajectory.result.stop_reason == "submitted"
    assert not attempt.score.passed  # the bug is still there


def test_langchain_fake_chat_model_drives_the_same_loop(
    add_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    models = pytest.importorskip("exapt.agents.models.langchain_model")
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    def ai(reply: ModelReply) -> AIMessage:
        calls = [{"name": c.name, "args": c.arguments, "id": c.id} for c in reply.tool_calls]
        return AIMessage(content=reply.text, tool_calls=calls)

    fake = GenericFakeChatModel(messages=iter([ai(reply) for reply in FIX_ADD]))
    model = models.LangChainModel(fake)
    attempt = run_task(
        add_task,
        spec=load_spec("tool_coder"),
        model=model,
        sandbox=sandbox_factory,
        scorer=scorer,
        run_id="r1",
    )
    assert attempt.score.passed
    assert attempt.trajectory.result.stop_reason == "submitted"
    assert attempt.trajectory.model == model.name
    assert sum(step.kind == "model" for step in attempt.trajectory.steps) == 4


def test_old_observations_are_cut_in_what_the_model_is_sent(
    add_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    # Eight long outputs: the model is sent the last five whole, the older ones cut short,
    # while the trajectory keeps every observation whole.
    loud = tool_reply("shell", command="python3 -c \"print('x' * 2000)\"")
    model = ScriptedModel([loud] * 8 + [tool_reply("submit")])
    attempt = run_task(
        add_task,
        spec=load_spec("tool_coder"),
        model=model,
        sandbox=sandbox_factory,
        scorer=scorer,
        run_id="r1",
    )
    sent = [m["content"] for m in model.calls[-1]["messages"] if m["role"] == "tool"]
    assert len(sent) == 8
    assert all("characters of old output cut" in c and len(c) < 400 for c in sent[:3])
    assert all(len(c) > 2000 for c in sent[3:])
    kept = [s.output for s in attempt.trajectory.steps if s.kind == "tool"][:8]
    assert all(len(c) > 2000 for c in kept)


def test_shell_commands_get_the_task_toolchain_env(
    add_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    task = add_task.model_copy(update={"metadata": {"toolchain_env": {"TOOLCHAIN_MARK": "42"}}})
    model = ScriptedModel([tool_reply("shell", command="echo mark=$TOOLCHAIN_MARK"), *FIX_ADD[-1:]])
    attempt = run_task(
        task,
        spec=load_spec("tool_coder"),
        model=model,
        sandbox=sandbox_factory,
        scorer=scorer,
        run_id="r1",
    )
    assert attempt.trajectory.steps[1].output == "exit code: 0\nstdout:\nmark=42\n"
