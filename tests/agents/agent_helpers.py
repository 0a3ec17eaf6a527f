"""Helpers shared by the agent tests: a tiny buggy task, a scorer that runs its hidden test
in a fresh sandbox (as the real scorers do), a fake memory and scripted tool calls."""

from __future__ import annotations

import time

from exapt.agents.models.base import ModelReply, ToolCall
from exapt.memory.base import Recollection
from exapt.records import Trajectory
from exapt.tasks.base import SandboxFactory, Score, Task

BUGGY = "def add(a, b):\n    return a - b\n"
HIDDEN_TEST = "from add import add\nassert add(2, 3) == 5\nassert add(-1, 1) == 0\nprint('ok')\n"


class HiddenTestScorer:
    """Runs ``task.hidden["test"]`` on the workspace in a fresh sandbox; counts its uses."""

    def __init__(self) -> None:
        self.workspaces: list[dict[str, bytes]] = []

    def score(self, task: Task, workspace: dict[str, bytes], sandbox: SandboxFactory) -> Score:
        self.workspaces.append(dict(workspace))
        started = time.monotonic()
        files: dict[str, str | bytes] = {**workspace, "_hidden_test.py": task.hidden["test"]}
        with sandbox(files) as box:
            result = box.exec("python3 _hidden_test.py")
        passed = result.ok
        return Score(
            reward=1.0 if passed else 0.0,
            passed=passed,
            feedback=(result.stdout + result.stderr)[-500:],
            duration_s=time.monotonic() - started,
        )


class FakeMemory:
    """An ``AgentMemory`` that recalls a fixed ``Recollection`` and records what it learns."""

    def __init__(self, recollection: Recollection) -> None:
        self.recollection = recollection
        self.recalled: list[str] = []
        self.learned: list[tuple[Task, Trajectory, Score, dict[str, bytes]]] = []

    def recall(self, task: Task, *, variant_id: str = "", model: str = "") -> Recollection:
        self.recalled.append(task.id)
        return self.recollection

    def learn(
        self, task: Task, trajectory: Trajectory, score: Score, workspace: dict[str, bytes]
    ) -> None:
        self.learned.append((task, trajectory, score, workspace))


def tool_reply(name: str, call_id: str = "", **arguments: object) -> ModelReply:
    """A scripted reply that calls one tool."""
    return ModelReply(
        tool_calls=[ToolCall(id=call_id or f"call-{name}", name=name, arguments=arguments)]
    )


FIX_ADD = [  # a tool-calling session that fixes add.py and submits
    tool_reply("view", path="add.py"),
    tool_reply("str_replace", path="add.py", old_str="a - b", new_str="a + b"),
    tool_reply("shell", command="python3 -c 'from add import add; print(add(2, 3))'"),
    tool_reply("submit", message="fixed the sign"),
]
