"""The whole path with the real embedded model: ``exapt run --model local`` on two HumanEval
tasks — Gemma 3 270M converted and served on 127.0.0.1, the default (completion) agent, the
bwrap sandbox, the hidden-test scorer, the trajectory store and long-term memory.

The run gets a temp exapt home whose ``models/`` is the real home's, so the one-time model
conversion (1.5–5 min) is shared with the other Gemma tests and with users.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REAL_HOME = Path(os.environ.get("EXAPT_HOME", ".exapt")).expanduser().resolve()
EXAPT = [sys.executable, "-m", "exapt.cli"]


def exapt(home: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EXAPT_HOME": str(home)}
    return subprocess.run(
        [*EXAPT, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.slow
def test_local_model_runs_two_humaneval_tasks_end_to_end(
    tmp_path: Path, sandbox_backend: str
) -> None:
    (REAL_HOME / "models").mkdir(parents=True, exist_ok=True)
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(REAL_HOME / "models", target_is_directory=True)

    # humaneval/53 is add(x, y): the base model solves it; humaneval/0 it usually does not.
    done = exapt(
        home,
        "run",
        "--suite",
        "humaneval",
        "--task",
        "humaneval/53",
        "--task",
        "humaneval/0",
        "--model",
        "local",
        "--workers",
        "2",
        "--json",
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["status"] == "done"
    assert summary["n_tasks"] == 2 and summary["n_attempted"] == 2
    assert summary["agent"] == "completion" and summary["sandbox"] == sandbox_backend
    assert summary["tokens_out"] > 0 and summary["memory"] is True
    run_dir = home / "runs" / summary["run_id"]
    assert json.loads((run_dir / "summary.json").read_text())["run_id"] == summary["run_id"]

    shown = exapt(home, "runs", "show", summary["run_id"], "--json")
    assert shown.returncode == 0, shown.stderr
    from exapt.memory.trajectories import TrajectoryStore

    with TrajectoryStore(home / "trajectories.sqlite") as store:
        trajectories = {t.task_id: t for t in store.trajectories(summary["run_id"])}
    assert set(trajectories) == {"humaneval/53", "humaneval/0"}
    for trajectory in trajectories.values():
        kinds = [step.kind for step in trajectory.steps]
        assert "model" in kinds and kinds[-1] == "score"
        model_steps = [s for s in trajectory.steps if s.kind == "model"]
        assert all(s.tokens_out > 0 for s in model_steps)
        assert 0.0 <= trajectory.result.reward <= 1.0
    add = trajectories["humaneval/53"]
    assert add.result.passed, add.result.feedback
    assert summary["n_passed"] >= 1

    # What the run taught long-term memory: the verified add() skill, and a reflection for
    # every task that failed.
    stats = exapt(home, "memory", "stats", "--json")
    assert stats.returncode == 0, stats.stderr
    counts = json.loads(stats.stdout)
    failed = sum(not t.result.passed for t in trajectories.values())
    assert counts["reflections"]["total"] >= failed, counts
    assert counts["skills"]["total"] >= 1, counts
