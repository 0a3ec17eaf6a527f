"""Helpers the `exapt run` and `exapt evolve` tests share: tiny JSONL suites, scripted
replies, the CLI in a process. (``tests/`` is on ``sys.path``: pytest puts the root
conftest's folder there.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# The real entry point (exapt.cli:main), for what only a process shows: exit codes of
# user errors, kills, Ctrl-C.
CLI = [sys.executable, "-m", "exapt.cli"]
SUBMIT: dict[str, Any] = {"text": "", "tool_calls": [{"id": "s", "name": "submit"}]}


def write_tasks(path: Path, n: int, *, test_prefix: str = "") -> Path:
    """``n`` tasks ``demo/tI``: write fI.py with ``x = I``; ``test_prefix`` runs before the test
    (e.g. ``sleep 1;`` to make tasks slow enough to kill a run midway)."""
    lines = [
        {
            "id": f"demo/t{i}",
            "instruction": f"TASK {i}: write f{i}.py with x = {i}.",
            "tests": {"test_f.py": f"from f{i} import x\nassert x == {i}, x\n"},
            "test_command": f"{test_prefix} python3 test_f.py",
        }
        for i in range(n)
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def create(i: int, value: int) -> dict[str, Any]:
    """A scripted reply: the tool call that writes fI.py with ``x = value``."""
    arguments = {"path": f"f{i}.py", "content": f"x = {value}\n"}
    return {"text": "", "tool_calls": [{"id": f"c{i}", "name": "create", "arguments": arguments}]}


def exapt_process(*args: str, home: Path, **kwargs: Any) -> subprocess.Popen[str]:
    """``exapt ARGS`` in a process with ``EXAPT_HOME=home``, its output piped."""
    env = {**os.environ, "EXAPT_HOME": str(home)}
    return subprocess.Popen(
        [*CLI, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so a test can signal the run and its sandboxes together
        **kwargs,
    )
