"""Fixtures for evolve tests: a temporary home, a 24-task JSONL suite, scripted models,
and a helper that runs an evolution in-process with the real bubblewrap sandbox."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .helpers import agent_script, mutator_script, write_tasks


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    monkeypatch.setenv("EXAPT_HOME", str(path))
    return path


@pytest.fixture(scope="session")
def bwrap() -> str:
    """The real bubblewrap sandbox (scoring runs in it); skips naming why if it is missing."""
    from exapt.sandbox import available_backends

    reason = available_backends().get("bwrap", "not known")
    if reason is not None:
        pytest.skip(f"bubblewrap is not usable here: {reason}")
    return "bwrap"


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "tasks": write_tasks(tmp_path / "tasks.jsonl"),
        "agent": agent_script(tmp_path / "agent.json"),
        "mutator": mutator_script(tmp_path / "mutator.json"),
    }


@pytest.fixture
def evolve_run(home: Path, files: dict[str, Path], bwrap: str) -> Callable[..., Any]:
    """``evolve_run(**config)`` -> (summary, evolution); the archive is closed after."""
    from exapt.evolve.config import make_config
    from exapt.evolve.prepare import close, prepare

    def run(**overrides: Any) -> tuple[dict[str, Any], Any]:
        values: dict[str, Any] = {
            "suite": f"jsonl:{files['tasks']}",
            "archive": "t",
            "model": f"scripted:{files['agent']}",
            "mutator_model": f"scripted:{files['mutator']}",
            "seed_agent": "tool_coder",
            "operators": {"reflect_prompt": 1.0, "graph_options": 1.0},
            "generations": 3,
            "stages": "1,2,all",
            "sandbox": bwrap,
            "embedder": None,
            **overrides,
        }
        embedder = values.pop("embedder")
        config = make_config(**values).model_copy(update={"embedder": embedder})
        evolution = prepare(config)
        try:
            return evolution.run(), evolution
        finally:
            close(evolution)

    return run
