"""run_task: memory in and out, what the agent may see, what ends a run."""

from __future__ import annotations

import pytest
from agent_helpers import FIX_ADD, FakeMemory, HiddenTestScorer

from exapt.agents import load_spec, run_task
from exapt.agents.models import ModelError, ScriptedModel
from exapt.errors import ConfigError
from exapt.memory.base import Recollection
from exapt.tasks.base import SandboxFactory, Task

RECOLLECTION = Recollection(
    reflections=["Check the sign of the result before submitting.", "second", "third", "fourth"],
    skills=["def clamp(x, lo, hi):\n    '''Clamp x into [lo, hi].'''"],
    insights=["Run the code once before submitting."],
    files={
        "skills.py": "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n",
        "add.py": "raise SystemExit('memory must not replace a task file')\n",
    },
    ids=["r1", "s1", "i1"],
)


def test_recollection_is_rendered_into_the_prompt_and_memory_learns(
    add_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    memory = FakeMemory(RECOLLECTION)
    model = ScriptedModel(FIX_ADD)
    spec = load_spec("tool_coder")
    spec = spec.model_copy(update={"memory": spec.memory.model_copy(update={"reflections_k": 2})})
    attempt = run_task(
        add_task,
        spec=spec,
        model=model,
        sandbox=sandbox_factory,
        scorer=scorer,
        run_id="r1",
        trial=1,
        memory=memory,
    )
    instance = model.calls[0]["messages"][1]["content"]
    assert "- Check the sign of the result before submitting.\n- second" in instance
    assert "third" not in instance  # cut to reflections_k
    assert "def clamp(x, lo, hi):" in instance
    # Insights are rules for every task: they go into the system prompt.
    system = model.calls[0]["messages"][0]["content"]
    assert system.endswith(
        "Rules learned on earlier tasks:\n- Run the code once before submitting."
    )
    assert attempt.workspace["skills.py"].startswith(b"def clamp")  # memory's files are seeded
    assert attempt.score.passed  # ... but the task's own add.py was not replaced
    assert memory.recalled == [add_task.id]
    [(task, trajectory, score, workspace)] = memory.learned
    assert task.id == add_task.id
    assert trajectory is attempt.trajectory and trajectory.trial == 1
    assert score is attempt.score and workspace == attempt.workspace
    assert trajectory.metadata["memory_ids"] == ["r1", "s1", "i1"]


def test_reflections_reach_the_completion_prompt_as_comments(
    sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    task = Task(
        id="toy/c",
        suite="toy",
        instruction="Complete add.",
        files={"solution.py": "def add(a, b):\n"},
        hidden={"test": "from solution import add\nassert add(1, 2) == 3\n"},
        metadata={"entry_point": "add"},
    )
    model = ScriptedModel(["    return a + b\n"], is_base=True)
    run_task(
        task,
        spec=load_spec("completion"),
        model=model,
        sandbox=sandbox_factory,
        scorer=scorer,
        run_id="r1",
        memory=FakeMemory(RECOLLECTION),
    )
    assert model.calls[0]["prompt"].startswith(
        "# Notes from earlier attempts at similar tasks:\n# Check the sign of the result"
    )
    assert model.calls[0]["prompt"].endswith("def add(a, b):\n")


def test_memory_disabled_in_the_spec_is_neither_read_nor_written(
    add_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    memory = FakeMemory(RECOLLECTION)
    spec = load_spec("tool_coder")
    spec = spec.model_copy(update={"memory": spec.memory.model_copy(update={"enabled": False})})
    model = ScriptedModel(FIX_ADD)
    run_task(
        add_task,
        spec=spec,
        model=model,
        sandbox=sandbox_factory,
        scorer=scorer,
        run_id="r1",
        memory=memory,
    )
    assert memory.recalled == [] and memory.learned == []
    assert "Lessons" not in model.calls[0]["messages"][1]["content"]


def test_the_agent_never_sees_hidden_data(
    add_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    spec = load_spec("tool_coder")
    spec = spec.model_copy(
        update={"prompts": {**spec.prompts, "instance": "{{ task }}"}}  # dump all it is given
    )
    model = ScriptedModel(FIX_ADD)
    attempt = run_task(
        add_task, spec=spec, model=model, sandbox=sandbox_factory, scorer=scorer, run_id="r1"
    )
    seen = repr(model.calls) + repr(attempt.trajectory.model_dump())
    assert "toy/add" in seen and "HIDDEN-MARKER-1234" not in seen
    assert "_hidden_test.py" not in attempt.workspace


def test_a_model_error_propagates_out_of_run_task(
    add_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    model = ScriptedModel(FIX_ADD[:2])  # runs out after two replies
    with pytest.raises(ModelError, match="out of replies"):
        run_task(
            add_task,
            spec=load_spec("tool_coder"),
            model=model,
            sandbox=sandbox_factory,
            scorer=scorer,
            run_id="r1",
        )
    assert scorer.workspaces == []  # nothing was scored


def test_a_prompt_using_an_unknown_variable_is_a_config_error(
    add_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    spec = load_spec("tool_coder")
    spec = spec.model_copy(update={"prompts": {**spec.prompts, "system": "{{ tsak.id }}"}})
    with pytest.raises(ConfigError, match="prompt 'system': 'tsak' is undefined"):
        run_task(
            add_task,
            spec=spec,
            model=ScriptedModel(FIX_ADD),
            sandbox=sandbox_factory,
            scorer=scorer,
            run_id="r1",
        )


def test_a_graph_given_as_a_dotted_path_is_built(
    add_task: Task, sandbox_factory: SandboxFactory, scorer: HiddenTestScorer
) -> None:
    spec = load_spec("tool_coder").model_copy(
        update={"graph": "exapt.agents.graphs.tool_coder:build"}
    )
    attempt = run_task(
        add_task,
        spec=spec,
        model=ScriptedModel(FIX_ADD),
        sandbox=sandbox_factory,
        scorer=scorer,
        run_id="r1",
    )
    assert attempt.score.passed and attempt.trajectory.metadata["graph"] == spec.graph
