"""Helpers for the self-modification tests: variants with code, a task and its scorer."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import yaml

from exapt.agents.budget import Budget
from exapt.agents.models.base import Model
from exapt.agents.runner import Attempt, run_task
from exapt.agents.spec import AgentSpec, load_spec
from exapt.records import Score, Task
from exapt.sandbox.base import Limits
from exapt.tasks import sandbox_factory

#: The host holds this key (set in every test's environment); no sandbox may see it.
FAKE_KEY = "sk-exapt-FAKE-KEY-must-never-enter-a-sandbox-31337"

TASK = Task(
    id="toy/answer",
    suite="toy",
    instruction="Write the answer (42) into answer.txt.",
    files={"question.txt": "what is six times seven?\n"},
    hidden={"secret": "HIDDEN-ANSWER-MARKER-7b1f"},
)

#: A graph of one node whose body is ``BODY`` (indented into ``act``); it gets ``ctx``.
ONE_NODE = """
from typing import TypedDict

from langgraph.graph import END, START, StateGraph
from exapt.agents.context import AgentContext


class S(TypedDict, total=False):
    stop_reason: str


def act(state, runtime):
    ctx = runtime.context
{body}
    return {{"stop_reason": "done"}}


def build(spec):
    g = StateGraph(S, context_schema=AgentContext)
    g.add_node("act", act)
    g.add_edge(START, "act")
    g.add_edge("act", END)
    return g
"""


class AnswerScorer:
    """1.0 when answer.txt holds 42. Counts its calls (it runs on the host)."""

    def __init__(self) -> None:
        self.calls = 0

    def score(self, task: Task, workspace: dict[str, bytes], sandbox: Any) -> Score:
        self.calls += 1
        ok = workspace.get("answer.txt", b"").strip() == b"42"
        return Score(
            reward=1.0 if ok else 0.0,
            passed=ok,
            feedback="answer.txt holds 42" if ok else "answer.txt does not hold 42",
            evidence="judge" if ok else "none",
        )


def code_variant(
    folder: Path, agent_py: str, *, base: str = "tool_coder", **changes: Any
) -> AgentSpec:
    """A variant folder: the built-in ``base`` spec with ``graph: agent.py:build`` and
    ``agent_py`` beside it; returns its loaded spec."""
    load_spec(base).save(folder)
    data = yaml.safe_load((folder / "spec.yaml").read_text())
    data.update({"name": f"{base}_code", "graph": "agent.py:build", **changes})
    (folder / "spec.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (folder / "agent.py").write_text(textwrap.dedent(agent_py))
    return load_spec(folder / "spec.yaml")


def hostile_variant(folder: Path, body: str, **changes: Any) -> AgentSpec:
    """A one-node variant whose node runs ``body`` (Python, with ``ctx`` at hand)."""
    indented = textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
    return code_variant(folder, ONE_NODE.format(body=indented), **changes)


def attempt(
    spec: AgentSpec,
    model: Model,
    *,
    backend: str = "bwrap",
    limits: Limits | None = None,
    budget: Budget | None = None,
    scorer: AnswerScorer | None = None,
    task: Task = TASK,
) -> Attempt:
    return run_task(
        task,
        spec=spec,
        model=model,
        sandbox=sandbox_factory(backend, limits=limits),
        scorer=scorer or AnswerScorer(),
        run_id="selfmod-test",
        budget=budget,
    )


def notes(a: Attempt) -> list[Any]:
    """The notes the variant reported (their data), in order."""
    return [
        s.input.get("data")
        for s in a.trajectory.steps
        if s.kind == "note" and isinstance(s.input, dict) and s.input.get("reported_by")
    ]


#: A seed agent with a known bug, for self_modify to fix.
AGENT = """
import re
from typing import TypedDict

from langgraph.graph import END, START, StateGraph
from exapt.agents.context import AgentContext

OFFSET = 1  # the bug: every value it writes is off by one


class S(TypedDict, total=False):
    stop_reason: str


def act(state, runtime):
    ctx = runtime.context
    i = int(re.search(r"TASK (\\d+):", ctx.task.instruction).group(1))
    ctx.sandbox.write(f"f{i}.py", f"x = {i + OFFSET}\\n")
    return {"stop_reason": "done"}


def build(spec):
    g = StateGraph(S, context_schema=AgentContext)
    g.add_node("act", act)
    g.add_edge(START, "act")
    g.add_edge("act", END)
    return g
"""


def write_tasks(path: Path, n: int = 24) -> Path:
    """``n`` JSONL tasks: TASK i asks for f{i}.py with x = i (the test is hidden)."""
    lines = [
        {
            "id": f"demo/t{i}",
            "instruction": f"TASK {i}: write f{i}.py with x = {i}.",
            "tests": {"test_f.py": f"from f{i} import x\nassert x == {i}, 'HIDDEN-CHECK'\n"},
            "test_command": "python3 test_f.py",
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def seed_folder(folder: Path, agent: str = AGENT) -> Path:
    """A code variant whose agent writes f{i}.py off by one (``OFFSET = 1``)."""
    load_spec("tool_coder").save(folder)
    data = yaml.safe_load((folder / "spec.yaml").read_text())
    data.update({"name": "offby1", "graph": "agent.py:build"})
    (folder / "spec.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (folder / "agent.py").write_text(textwrap.dedent(agent))
    return folder
