"""Helpers for evolve tests: tiny JSONL suites and scripted models that propose known edits
(the parts shared with the run tests are in ``tests/common_helpers.py``).

The evaluated model answers task ``i`` (instruction ``TASK i: ...``) with the wrong value
unless its prompt carries the marker ``CAREFUL``; the mutator model rewrites the
``instance`` prompt to carry it (and the ``system`` prompt to a plain variant). So a
``reflect_prompt`` child of the seed scores 1 where the seed scores 0.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import common_helpers
from common_helpers import SUBMIT, create, exapt_process

from exapt.tasks.splits import split_of

__all__ = [
    "SUBMIT",
    "agent_script",
    "create",
    "exapt_process",
    "mutator_script",
    "splits",
    "write_tasks",
]
N_TASKS = 24  # ids demo/t0..t23: 15 train, 3 dev (12, 14, 20), 6 test
CAREFUL_INSTANCE = "CAREFUL: {{ task.instruction }}\nFiles: {{ task.files | list | join(', ') }}\n"
PLAIN_SYSTEM = (
    "You are an engineer in a sandbox. Tools: {% for tool in tools %}{{ tool.name }} "
    "{% endfor %}. Call submit when done.\n"
)


def write_tasks(path: Path, n: int = N_TASKS, *, test_prefix: str = "") -> Path:
    return common_helpers.write_tasks(path, n, test_prefix=test_prefix)


def agent_script(path: Path, n: int = N_TASKS, *, right: tuple[int, ...] = ()) -> Path:
    """Match-mode replies: with CAREFUL in the prompt, the right file; without it, a wrong
    one (except for the tasks in ``right``); every observation gets submit."""
    replies: dict[str, Any] = {}
    for i in range(n):
        replies[f"CAREFUL: TASK {i}:"] = create(i, i)
    for i in range(n):
        replies[f"TASK {i}:"] = create(i, i if i in right else -1)
    replies["wrote "] = SUBMIT
    path.write_text(json.dumps(replies))
    return path


def mutator_script(path: Path) -> Path:
    replies = {
        'prompt named "instance"': f"The tasks lack care.\n```\n{CAREFUL_INSTANCE}```\n",
        'prompt named "system"': f"Shorter.\n```\n{PLAIN_SYSTEM}```\n",
    }
    path.write_text(json.dumps(replies))
    return path


def splits(n: int = N_TASKS) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"train": [], "dev": [], "test": []}
    for i in range(n):
        out[split_of(f"demo/t{i}")].append(f"demo/t{i}")
    return out
