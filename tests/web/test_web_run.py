"""`exapt run --suite miniwob` end to end: the CLI, the run engine, the browser, the store,
memory (a reflection on a failed attempt reaches the next trial's prompt) and the export."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from exapt.commands import run as run_command
from exapt.commands import runs as runs_command
from exapt.errors import ConfigError
from exapt.memory.trajectories import TrajectoryStore

from .conftest import bid, bids


@pytest.fixture
def cli() -> Callable[..., Any]:
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)
    app.command("run")(run_command.run)
    app.add_typer(runs_command.app, name="runs")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args), catch_exceptions=True)


def page_of(factory: Callable[..., Any], task: Any) -> tuple[str, str]:
    with factory(task.files) as episode:
        return episode.observe().goal, episode.observe().axtree


def test_run_cli_on_click_test(cli, home: Path, tmp_path: Path, tasks, factory) -> None:
    _, page = page_of(factory, tasks["click-test"])
    click = {"id": "c", "name": "click", "arguments": {"bid": bid(page, "button", "Click Me!")}}
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"Click the button.": {"text": "", "tool_calls": [click]}}))
    result = cli(
        "run", "--suite", "miniwob", "--tasks", "click-test", "--model", f"scripted:{script}",
        "--no-memory", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["status"], summary["n_tasks"], summary["n_passed"]) == ("done", 1, 1)
    assert summary["agent"] == "web_agent" and summary["suite"] == "miniwob"
    assert json.loads((home / "runs" / summary["run_id"] / "summary.json").read_text()) == summary
    with TrajectoryStore(home / "trajectories.sqlite") as store:
        (trajectory,) = store.trajectories(summary["run_id"])
    assert trajectory.task_id == "miniwob/click-test" and trajectory.result.passed
    assert trajectory.result.stop_reason == "episode_done"
    observations = [s.output for s in trajectory.steps if s.kind == "tool"]
    assert observations and observations[0].startswith("Goal: Click the button.")


def test_trials_with_memory_carry_the_reflection(cli, home, tmp_path, tasks, factory) -> None:
    """A base model (completion mode) clicks the wrong button; memory stores a reflection;
    trial 2 sees it in its prompt and clicks the right one."""
    goal, page = page_of(factory, tasks["click-button"])
    buttons = bids(page, "button")
    right = buttons[goal.split('"')[1]]
    wrong = next(b for b in buttons.values() if b != right)
    script = tmp_path / "script.json"
    replies = {"Lessons from earlier attempts": f"click('{right}')",
               "Click Button Task": f"click('{wrong}')"}  # fmt: skip
    script.write_text(json.dumps({"replies": replies, "supports_tools": False, "is_base": True}))
    result = cli(
        "run", "--suite", "miniwob", "--tasks", "click-button", "--model", f"scripted:{script}",
        "--trials", "2", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["n_passed"] == 1 and summary["per_trial"] == [0.0, 1.0], summary
    with TrajectoryStore(home / "trajectories.sqlite") as store:
        first, second = sorted(store.trajectories(summary["run_id"]), key=lambda t: t.trial)
    assert not first.result.passed and second.result.passed
    prompt = second.steps[0].input["prompt"]
    assert (
        "Lessons from earlier attempts" in prompt
        and "raw -1.00" not in prompt.split("Lessons from earlier attempts")[0]
    )
    export = tmp_path / "export.jsonl"
    exported = cli("runs", "export", summary["run_id"], str(export))
    assert exported.exit_code == 0, exported.output
    records = [json.loads(line) for line in export.read_text().splitlines()]
    assert records and records[0]["completion"].strip() == f"click('{right}')"


def test_bad_suite_options_are_clear_errors(cli, home) -> None:
    result = cli("run", "--suite", "miniwob:fast", "--no-memory")
    assert isinstance(result.exception, ConfigError), result.output
    assert "bad miniwob option 'fast'" in str(result.exception)
    result = cli("run", "--suite", "miniwob", "--tasks", "no-such-task", "--no-memory")
    assert isinstance(result.exception, ConfigError)
    assert "miniwob/no-such-task" in str(result.exception)


def test_budget_stop_and_resume(cli, home, tmp_path, tasks, factory) -> None:
    replies = {}
    for name in ("click-test", "click-button"):
        goal, page = page_of(factory, tasks[name])
        target = bid(page, "button", goal.split('"')[1] if '"' in goal else "Click Me!")
        replies[goal] = {"text": "", "tool_calls": [{"id": "c", "name": "click",
                                                     "arguments": {"bid": target}}]}  # fmt: skip
    script = tmp_path / "script.json"
    script.write_text(json.dumps(replies))
    args = ["--suite", "miniwob", "--tasks", "click-test,click-button", "--model",
            f"scripted:{script}", "--no-memory"]  # fmt: skip
    first = cli("run", *args, "--max-tokens", "1", "--json")
    summary = json.loads(first.stdout)
    assert summary["status"] == "stopped" and summary["n_attempted"] == 1, summary
    resumed = cli("run", "--resume", summary["run_id"], "--max-tokens", "1000000", "--json")
    final = json.loads(resumed.stdout)
    with TrajectoryStore(home / "trajectories.sqlite") as store:
        outcomes = {t.task_id: t.result for t in store.trajectories(summary["run_id"])}
    assert final["status"] == "done" and final["n_attempted"] == 2, final
    assert final["n_passed"] == 2, outcomes
