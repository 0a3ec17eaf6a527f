"""Fixtures for `exapt run` tests: a temporary home, the CLI in-process and in a process."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from exapt.commands import run as run_command
from exapt.commands import runs as runs_command

from .helpers import exapt_process


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    monkeypatch.setenv("EXAPT_HOME", str(path))
    return path


@pytest.fixture(scope="session")
def backend() -> str:
    """bubblewrap where it works (CI), else the unisolated ``local`` backend."""
    from exapt.sandbox import available_backends

    return "bwrap" if available_backends().get("bwrap") is None else "local"


@pytest.fixture
def cli() -> Callable[..., Any]:
    """Invoke `exapt run` / `exapt runs` in-process (fast: imports are paid once)."""
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    app.command("run")(run_command.run)
    app.add_typer(runs_command.app, name="runs")
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(app, list(args), catch_exceptions=True)

    return invoke


@pytest.fixture
def exapt(home: Path) -> Iterator[Callable[..., subprocess.CompletedProcess[str]]]:
    """Run the real `exapt` entry point to completion."""

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        proc = exapt_process(*args, home=home)
        out, err = proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    yield run
