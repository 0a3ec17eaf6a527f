"""A built wheel holds every module, built-in spec and prompt: an editable install would
hide a package or data file missing from pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {
    "exapt": "exapt",
    "agents": "exapt/agents",
    "tools": "exapt/tools",
    "memory": "exapt/memory",
    "sandbox": "exapt/sandbox",
    "tasks": "exapt/tasks",
    "evolve": "exapt/evolve",
}


def expected_files() -> set[str]:
    files = set()
    for folder, prefix in FOLDERS.items():
        for path in (ROOT / folder).rglob("*"):
            if not path.is_file() or "__pycache__" in path.parts:
                continue
            if path.suffix in {".py", ".yaml", ".j2", ".md"}:
                files.add(f"{prefix}/{path.relative_to(ROOT / folder).as_posix()}")
    return files


def test_wheel_contains_every_module_spec_and_prompt(tmp_path: Path) -> None:
    # Build from a clean copy: setuptools reuses an in-tree build/ folder, which would hide
    # a package missing from pyproject.toml.
    source = tmp_path / "src"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", ".exapt", "build", "*.egg-info", "bench", "tests", "__pycache__"
        ),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("exapt-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(expected_files() - names)
    assert not missing, (
        f"missing from the wheel (fix pyproject.toml packages/package-data): {missing}"
    )
    assert "exapt/agents/specs/completion.yaml" in names
