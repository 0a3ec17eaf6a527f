"""Builders shared by the memory tests (imported as a plain module: pytest puts this
folder on sys.path)."""

from __future__ import annotations

from exapt.records import Outcome, Step, Trajectory
from exapt.tasks.base import Task


def make_task(task_id: str, instruction: str, suite: str = "demo", **kw: object) -> Task:
    return Task(id=task_id, suite=suite, instruction=instruction, **kw)  # type: ignore[arg-type]


def make_trajectory(task_id: str, *, trial: int = 0, run_id: str = "run1") -> Trajectory:
    return Trajectory(
        run_id=run_id,
        task_id=task_id,
        trial=trial,
        variant_id="v0",
        model="scripted",
        steps=[
            Step(kind="tool", input={"name": "write_file", "arguments": {"path": "solution.py"}}),
            Step(
                kind="tool",
                input={"name": "bash", "arguments": {"command": "python3 -m pytest -q"}},
                output="1 failed",
            ),
        ],
        result=Outcome(stop_reason="submitted"),
    )
