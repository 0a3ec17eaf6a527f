"""Helpers for `exapt run` tests: tiny JSONL suites, scripted replies, the CLI in a process
(the parts shared with the evolve tests are in ``tests/common_helpers.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common_helpers import SUBMIT, create, exapt_process, write_tasks

__all__ = ["SUBMIT", "create", "exapt_process", "match_script", "write_tasks"]


def match_script(path: Path, tasks: list[int], wrong: tuple[int, ...] = ()) -> Path:
    """A match-mode script: each listed task's prompt gets its `create` (a wrong value for
    the tasks in ``wrong``), every tool observation gets `submit`. Tasks not listed have no
    reply: running them raises ScriptExhausted (a ModelError)."""
    replies: dict[str, Any] = {f"TASK {i}:": create(i, -1 if i in wrong else i) for i in tasks}
    replies["wrote "] = SUBMIT
    path.write_text(json.dumps(replies))
    return path
