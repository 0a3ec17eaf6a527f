"""tasks/ never imports agents/ or evolve/: the evaluator does not know who is evaluated."""

from __future__ import annotations

import subprocess
import sys


def test_tasks_import_neither_agents_nor_evolve() -> None:
    code = (
        "import sys\n"
        "import exapt.tasks, exapt.tasks.humaneval, exapt.tasks.jsonl, exapt.tasks.polyglot\n"
        "import exapt.tasks.splits, exapt.tasks.command, exapt.tasks.pyjudge, exapt.tasks.asserts\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('exapt.agents', 'exapt.evolve')))\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
