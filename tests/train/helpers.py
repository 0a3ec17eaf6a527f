"""Helpers for the self-training tests: toy suites (function completion for base models, file
writing for tool-calling models), scripted models that solve some tasks, fail some and repair
some, and a store filled by real scripted runs through the engine (real sandbox, real scorer).

Task splits are fixed by their ids (``exapt.tasks.splits``): toy/f0, f3, f4, f5 are train,
toy/f1 test, toy/f2 dev; chat/t0, t1, t3 train, chat/t2 dev.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from exapt.agents.models import ModelReply, ScriptedModel, ToolCall
from exapt.memory.base import Recollection
from exapt.memory.trajectories import TrajectoryStore
from exapt.records import Score, Task, Trajectory
from exapt.tasks import load_suite

FUNCTION_TASKS = (0, 1, 2, 3, 4, 5)
CHAT_TASKS = (0, 1, 2, 3)


def function_prompt(i: int) -> str:
    return f'def f{i}(x):\n    """Return x plus {i}.\n    >>> f{i}(1)\n    {i + 1}\n    """\n'


def write_function_suite(path: Path, ids: tuple[int, ...] = FUNCTION_TASKS) -> str:
    """Toy HumanEval-like tasks toy/fI: complete ``fI(x) = x + I`` in solution.py; visible
    check f(1), hidden checks f(1) and f(10). Returns the suite name."""
    lines = []
    for i in ids:
        hidden = (
            f"from solution import f{i}\nassert f{i}(1) == {i + 1}\nassert f{i}(10) == {i + 10}\n"
        )
        lines.append(
            {
                "id": f"toy/f{i}",
                "instruction": f"Complete f{i} in solution.py.",
                "files": {"solution.py": function_prompt(i)},
                "tests": {"test_hidden.py": hidden},
                "test_command": "python3 test_hidden.py",
                "metadata": {
                    "entry_point": f"f{i}",
                    "file": "solution.py",
                    "visible_tests": [f"assert f{i}(1) == {i + 1}"],
                },
            }
        )
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return f"jsonl:{path}"


def completion_script(sample: int) -> dict[str, str]:
    """Replies by prompt substring (keys are tried in order; the retry prompt quotes the failed
    draft as a comment, so a key on that draft answers the retry):

    - f0 passes (sample 1 writes it another way); f1 (test) and f2 (dev) pass;
    - f3 fails its visible check, then the retry (which carries the error) passes: a repair;
    - f4: sample 0 passes the visible check but not the hidden one; sample 1 is right;
    - f5 never passes.
    """
    return {
        "#     return x * 3": "    return x + 3\n",
        "def f0(": "    return x + 0\n" if sample == 0 else "    return 0 + x\n",
        "def f1(": "    return x + 1\n",
        "def f2(": "    return x + 2\n",
        "def f3(": "    return x * 3\n",
        "def f4(": "    return 5\n" if sample == 0 else "    return x + 4\n",
        "def f5(": "    return None\n",
    }


def chat_prompt_task(i: int) -> str:
    return f"TASK {i}: write f{i}.py with x = {i}."


def write_chat_suite(path: Path) -> str:
    lines = [
        {
            "id": f"chat/t{i}",
            "instruction": chat_prompt_task(i),
            "tests": {"test_f.py": f"from f{i} import x\nassert x == {i}, x\n"},
            "test_command": "python3 test_f.py",
        }
        for i in CHAT_TASKS
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return f"jsonl:{path}"


def create(i: int, value: int, text: str = "") -> ModelReply:
    arguments = {"path": f"f{i}.py", "content": f"x = {value}\n"}
    call = ToolCall(id=f"c{i}", name="create", arguments=arguments)
    return ModelReply(text=text, tool_calls=[call])


SUBMIT = ModelReply(tool_calls=[ToolCall(id="s", name="submit", arguments={})])


def chat_script() -> dict[str, Any]:
    """t0, t2 right; t1 wrong; t3 wrong at trial 0 and right once memory's lesson is in the
    prompt (trial 1)."""
    return {
        "LESSON-t3": create(3, 3, "Using the lesson."),
        "TASK 0:": create(0, 0),
        "TASK 1:": create(1, -1),
        "TASK 2:": create(2, 2),
        "TASK 3:": create(3, -3),
        "wrote ": SUBMIT,
    }


class LessonMemory:
    """An ``AgentMemory`` double: after a failed attempt at a task, recall gives a lesson
    naming it (what a reflection does), so the next trial's prompt differs."""

    def __init__(self) -> None:
        self.failed: set[str] = set()

    def recall(self, task: Task, *, variant_id: str = "", model: str = "") -> Recollection:
        if task.id in self.failed:
            name = task.id.split("/")[1]
            return Recollection(reflections=[f"LESSON-{name}: x must equal the task's number."])
        return Recollection()

    def learn(
        self, task: Task, trajectory: Trajectory, score: Score, workspace: dict[str, bytes]
    ) -> None:
        if not score.passed:
            self.failed.add(task.id)


def fill_function_store(home: Path, suite_name: str, backend: str, samples: int = 2) -> list[str]:
    """Scripted completion runs ``collect-s0``.. on every toy task (train, dev and test);
    returns the run ids."""
    from exapt.engine import evaluate

    suite = load_suite(suite_name)
    runs = []
    with TrajectoryStore(home / "trajectories.sqlite") as store:
        for s in range(samples):
            model = ScriptedModel(completion_script(s), supports_tools=False, is_base=True)
            evaluate(
                None, suite.tasks(), model, suite=suite, backend=backend, run_id=f"collect-s{s}",
                store=store, workers=2,
            )  # fmt: skip
            runs.append(f"collect-s{s}")
    return runs


def fill_chat_store(home: Path, suite_name: str, backend: str) -> str:
    """One scripted tool-coder run with two trials and the lesson memory."""
    from exapt.agents import load_spec
    from exapt.engine import evaluate

    suite = load_suite(suite_name)
    model = ScriptedModel(chat_script(), supports_tools=True)
    with TrajectoryStore(home / "trajectories.sqlite") as store:
        evaluate(
            load_spec("tool_coder"), suite.tasks(), model, suite=suite, backend=backend,
            run_id="chat-1", store=store, trials=2, memory=LessonMemory(),
        )  # fmt: skip
    return "chat-1"
