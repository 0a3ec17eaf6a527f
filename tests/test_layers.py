"""The import layers of DESIGN.md hold, and breaking one fails the check (import-linter on
the staged package, as scripts/test.sh and CI run it)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECK = ROOT / "scripts" / "check_layers.py"


def copy_tree(target: Path) -> Path:
    """The package sources and pyproject.toml of this checkout, copied to ``target``."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for source in set(config["tool"]["setuptools"]["package-dir"].values()):
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
        shutil.copytree(ROOT / source, target / source, ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", target / "pyproject.toml")
    return target


def check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(CHECK), "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_real_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = check(copy_tree(tmp_path / "repo"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout and " KEPT" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        # memory is a store: not even a type-only import of agents
        (
            "memory/render.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from exapt.agents.models.base import Model\n",
            "memory imports neither agents",
        ),
        ("sandbox/base.py", "import exapt.tasks\n", "sandbox imports no other subsystem"),
        ("tasks/splits.py", "from exapt.memory import render\n", "tasks never import"),
        ("exapt/records.py", "import exapt.paths\n", "layers"),
        ("agents/spec.py", "import exapt.commands.run\n", "only the CLI imports the CLI"),
    ],
)
def test_a_broken_layer_fails_the_check(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    repo = copy_tree(tmp_path / "repo")
    path = repo / module
    text = path.read_text()
    # after the module's docstring and `from __future__` line, where an import may stand
    head, sep, rest = text.partition("from __future__ import annotations\n")
    path.write_text(head + sep + line + rest if sep else line + text)
    result = check(repo)
    assert result.returncode == 1, result.stdout + result.stderr
    text = " ".join(result.stdout.split())  # contract names wrap at the terminal width
    verdict = text[text.index(contract) :].split(" KEPT")[0]
    assert verdict.endswith("BROKEN") or " BROKEN" in verdict, result.stdout
