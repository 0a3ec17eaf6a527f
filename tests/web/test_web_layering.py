"""The browser environment is isolation: it imports no other subsystem of exapt."""

from __future__ import annotations

import subprocess
import sys


def test_browser_environment_imports_only_sandbox_records_errors() -> None:
    code = (
        "import sys\n"
        "import exapt.sandbox.browser\n"
        "mods = sorted(m for m in sys.modules if m.startswith('exapt.'))\n"
        "allowed = ('exapt.sandbox', 'exapt.records', 'exapt.errors', 'exapt.registry')\n"
        "print([m for m in mods if not m.startswith(allowed)])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_miniwob_suite_imports_neither_agents_nor_evolve() -> None:
    code = (
        "import sys\n"
        "import exapt.tasks.miniwob as m\n"
        "list(m.MiniWoBSuite().tasks())\n"
        "print(sorted(x for x in sys.modules if x.startswith(('exapt.agents', 'exapt.evolve'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
