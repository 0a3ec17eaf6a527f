"""`exapt run` and `exapt runs` end to end: a scripted model, tiny JSONL tasks, real sandboxes
and scorers, a temporary EXAPT_HOME."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from exapt.errors import ConfigError
from exapt.memory.trajectories import TrajectoryStore

from .helpers import SUBMIT, create, exapt_process, match_script, write_tasks

SUMMARY_FIELDS = {
    "run_id", "suite", "split", "model", "agent", "n_tasks", "n_passed", "pass_rate",
    "tokens_in", "tokens_out", "cost_usd", "wall_s", "status",
}  # fmt: skip


def run_json(cli: Callable[..., Any], *args: str) -> tuple[Any, dict[str, Any]]:
    memory = [] if "--resume" in args else ["--no-memory"]  # a resume keeps the run's choice
    result = cli("run", *args, *memory, "--json")
    assert result.stdout.startswith("{"), (result.output, result.exception)
    return result, json.loads(result.stdout)


def stored(home: Path, run_id: str) -> dict[tuple[str, int], Any]:
    with TrajectoryStore(home / "trajectories.sqlite") as store:
        return {(t.task_id, t.trial): t for t in store.trajectories(run_id)}


def test_run_stores_every_attempt_and_writes_summary(
    cli: Callable[..., Any], home: Path, tmp_path: Path, backend: str
) -> None:
    tasks = write_tasks(tmp_path / "tasks.jsonl", 3)
    script = match_script(tmp_path / "s.json", [0, 1, 2], wrong=(2,))
    result, summary = run_json(
        cli, "--suite", f"jsonl:{tasks}", "--model", f"scripted:{script}", "--sandbox", backend
    )
    assert result.exit_code == 0, result.output
    assert set(summary) >= SUMMARY_FIELDS
    assert (summary["status"], summary["n_tasks"], summary["n_passed"]) == ("done", 3, 2)
    assert summary["pass_rate"] == pytest.approx(2 / 3)
    assert summary["agent"] == "tool_coder" and summary["split"] == "all"
    assert summary["tokens_in"] > 0 and summary["tokens_out"] > 0 and summary["cost_usd"] == 0.0
    assert "per_trial" not in summary  # one trial
    run_dir = home / "runs" / summary["run_id"]
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    config = json.loads((run_dir / "config.json").read_text())
    assert config["suite"] == f"jsonl:{tasks}" and config["workers"] == 1
    attempts = stored(home, summary["run_id"])
    assert sorted(attempts) == [("demo/t0", 0), ("demo/t1", 0), ("demo/t2", 0)]
    assert [attempts[k].result.passed for k in sorted(attempts)] == [True, True, False]
    assert [s.kind for s in attempts["demo/t1", 0].steps] == [
        "model",
        "tool",
        "model",
        "tool",
        "score",
    ]


def test_runs_list_show_export(
    cli: Callable[..., Any], home: Path, tmp_path: Path, backend: str
) -> None:
    tasks = write_tasks(tmp_path / "tasks.jsonl", 2)
    script = match_script(tmp_path / "s.json", [0, 1], wrong=(1,))
    _, summary = run_json(
        cli, "--suite", f"jsonl:{tasks}", "--model", f"scripted:{script}", "--sandbox", backend
    )
    run_id = summary["run_id"]
    listed = json.loads(cli("runs", "list", "--json").stdout)
    assert [(r["run_id"], r["status"], r["n_tasks"], r["n_passed"]) for r in listed] == [
        (run_id, "done", 2, 1)
    ]
    table = cli("runs", "list").stdout
    assert run_id in table and "50.0%" in table
    shown = cli("runs", "show", run_id)
    assert shown.exit_code == 0 and "demo/t0" in shown.stdout and "demo/t1" in shown.stdout
    steps = cli("runs", "show", run_id, "--task", "demo/t1").stdout
    assert 'create({"path": "f1.py", "content": "x = -1\\n"})' in steps  # the tool call
    assert "wrote f1.py" in steps  # its observation
    assert "FAILED" in steps and "AssertionError" in steps  # the score's feedback
    data = json.loads(cli("runs", "show", run_id, "--task", "demo/t0", "--json").stdout)
    assert data["status"] == "done" and len(data["trajectories"][0]["steps"]) == 5
    out = tmp_path / "ft.jsonl"
    assert cli("runs", "export", run_id, str(out)).exit_code == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 1  # passed attempts only
    assert [m["role"] for m in records[0]["messages"]] == [
        "system", "user", "assistant", "tool", "assistant"
    ]  # fmt: skip
    assert {t["function"]["name"] for t in records[0]["tools"]} >= {"create", "submit"}
    assert cli("runs", "export", run_id, str(out), "--all").exit_code == 0
    assert len(out.read_text().splitlines()) == 2
    missing = cli("runs", "show", "no-such-run")
    assert isinstance(missing.exception, ConfigError) and "no-such-run" in str(missing.exception)


def test_trials_retry_only_failed_tasks_and_report_per_trial(
    cli: Callable[..., Any], home: Path, tmp_path: Path, backend: str
) -> None:
    """Sequence script, one worker: t0 passes at once; t1 fails trial 0, passes trial 1."""
    tasks = write_tasks(tmp_path / "tasks.jsonl", 2)
    script = tmp_path / "s.json"
    script.write_text(
        json.dumps([create(0, 0), SUBMIT, create(1, 7), SUBMIT, create(1, 1), SUBMIT])
    )
    result, summary = run_json(
        cli, "--suite", f"jsonl:{tasks}", "--model", f"scripted:{script}",
        "--sandbox", backend, "--trials", "3",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert summary["per_trial"] == [0.5, 1.0, 1.0]  # cumulative
    assert (summary["n_passed"], summary["pass_rate"], summary["trials"]) == (2, 1.0, 3)
    attempts = stored(home, summary["run_id"])
    assert sorted(attempts) == [("demo/t0", 0), ("demo/t1", 0), ("demo/t1", 1)]
    assert [attempts["demo/t1", k].result.passed for k in (0, 1)] == [False, True]


def test_reflexion_with_memory_passes_on_the_second_trial(
    cli: Callable[..., Any], home: Path, tmp_path: Path, backend: str
) -> None:
    """The real memory: t1's failure leaves a reflection; trial 1's prompt recalls it, and
    the scripted model answers right only when it sees the reflection in its prompt."""
    tasks = write_tasks(tmp_path / "tasks.jsonl", 2)
    script = tmp_path / "s.json"
    # First matching key wins: the reflection's "Failed (reward ..." only exists in trial 1.
    replies = {"Failed (reward": create(1, 1), "TASK 0:": create(0, 0), "TASK 1:": create(1, -1)}
    script.write_text(json.dumps({**replies, "wrote ": SUBMIT}))
    result = cli(
        "run", "--suite", f"jsonl:{tasks}", "--model", f"scripted:{script}",
        "--sandbox", backend, "--trials", "2", "--memory", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, (result.output, result.exception)
    summary = json.loads(result.stdout)
    assert summary["memory"] is True and summary["per_trial"] == [0.5, 1.0]
    retry = stored(home, summary["run_id"])["demo/t1", 1]
    prompt = retry.steps[0].input["messages"][-1]["content"]
    assert "Failed (reward 0.00" in prompt and "AssertionError" in prompt
    assert (home / "memory").is_dir()


def test_model_error_fails_the_run_and_resume_finishes_it(
    cli: Callable[..., Any], home: Path, tmp_path: Path, backend: str
) -> None:
    tasks = write_tasks(tmp_path / "tasks.jsonl", 3)
    script = match_script(tmp_path / "s.json", [0])  # no reply for t1: ScriptExhausted
    result, summary = run_json(
        cli, "--suite", f"jsonl:{tasks}", "--model", f"scripted:{script}", "--sandbox", backend
    )
    assert result.exit_code == 1
    assert summary["status"] == "failed" and "ScriptExhausted" in summary["error"]
    run_id = summary["run_id"]
    assert f"exapt run --resume {run_id}" in result.stderr
    assert "ScriptExhausted" in (home / "runs" / run_id / "errors.log").read_text()  # traceback
    assert sorted(stored(home, run_id)) == [("demo/t0", 0)]  # the finished task is kept
    before = stored(home, run_id)["demo/t0", 0]
    # Resume with a script that has no reply for t0: re-running it would fail the run.
    match_script(script, [1, 2])
    result, summary = run_json(cli, "--resume", run_id)
    assert result.exit_code == 0, result.output
    assert (summary["status"], summary["n_passed"], summary["error"]) == ("done", 3, None)
    after = stored(home, run_id)
    assert sorted(after) == [("demo/t0", 0), ("demo/t1", 0), ("demo/t2", 0)]
    assert after["demo/t0", 0].model_dump() == before.model_dump()


def test_budget_stops_starting_tasks(
    cli: Callable[..., Any], home: Path, tmp_path: Path, backend: str
) -> None:
    tasks = write_tasks(tmp_path / "tasks.jsonl", 4)
    script = match_script(tmp_path / "s.json", [0, 1, 2, 3])
    result, summary = run_json(
        cli, "--suite", f"jsonl:{tasks}", "--model", f"scripted:{script}",
        "--sandbox", backend, "--max-tokens", "100",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert (summary["status"], summary["stopped"]) == ("stopped", "budget")
    assert "max_tokens" in summary["stop_detail"]
    assert summary["n_attempted"] == 1 and summary["n_tasks"] == 4  # ~175 tokens per task
    assert len(stored(home, summary["run_id"])) == 1
    assert f"--resume {summary['run_id']} --max-tokens" in result.stderr


def test_bad_options_are_config_errors(cli: Callable[..., Any], home: Path, tmp_path: Path) -> None:
    tasks = write_tasks(tmp_path / "tasks.jsonl", 1)
    (tmp_path / "bad.yaml").write_text("42\n")
    cases = [
        (["--suite", f"jsonl:{tasks}", "--model", f"scripted:{tmp_path / 'bad.yaml'}"], "bad.yaml"),
        (["--suite", f"jsonl:{tasks}", "--split", "nope"], "nope"),
        (["--suite", f"jsonl:{tasks}", "--sandbox", "nope"], "nope"),
        (["--suite", f"jsonl:{tasks}", "--model", "scripted:/no/such/script.json"], "script.json"),
        (["--suite", f"jsonl:{tasks}", "--limit", "0"], "--limit"),
        (["--model", "local"], "--suite"),
        (["--resume", "no-such-run"], "no-such-run"),
        (["--resume", "x", "--suite", "humaneval"], "--suite"),
    ]
    for args, named in cases:
        result = cli("run", *args)
        assert isinstance(result.exception, ConfigError), (args, result.output)
        assert named in str(result.exception), (args, str(result.exception))
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())
    assert not (home / "trajectories.sqlite").exists()


# --- the real entry point, in a process --------------------------------------------------


def test_unknown_suite_exits_2_naming_it_and_creates_nothing(
    exapt: Callable[..., Any], home: Path
) -> None:
    result = exapt("run", "--suite", "nosuchsuite", "--no-memory")
    assert result.returncode == 2, result.stderr
    assert "nosuchsuite" in result.stderr and "Traceback" not in result.stderr
    assert not (home / "runs").exists() and not (home / "trajectories.sqlite").exists()


def wait_stored(home: Path, at_least: int, proc: Any, timeout: float = 120) -> int:
    """Poll the store (as another process would) until ``at_least`` attempts are stored."""
    db = home / "trajectories.sqlite"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if db.exists():
            conn = sqlite3.connect(db, timeout=10)
            try:
                n = conn.execute("SELECT COUNT(*) FROM trajectories").fetchone()[0]
            except sqlite3.OperationalError:  # the schema is being created
                n = 0
            conn.close()
            if n >= at_least:
                return int(n)
        time.sleep(0.05)
    raise AssertionError(f"fewer than {at_least} attempts stored after {timeout} s")


def test_resume_after_kill_reruns_nothing_finished(
    exapt: Callable[..., Any], home: Path, tmp_path: Path, backend: str
) -> None:
    tasks = write_tasks(tmp_path / "tasks.jsonl", 4, test_prefix="sleep 1;")
    script = match_script(tmp_path / "s.json", [0, 1, 2, 3])
    proc = exapt_process(
        "run", "--suite", f"jsonl:{tasks}", "--model", f"scripted:{script}",
        "--sandbox", backend, "--workers", "1", "--no-memory", home=home,
    )  # fmt: skip
    wait_stored(home, 1, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    [run_id] = [p.name for p in (home / "runs").iterdir()]
    done = stored(home, run_id)
    assert len(done) in range(1, 4) and not (home / "runs" / run_id / "summary.json").exists()
    listed = json.loads(exapt("runs", "list", "--json").stdout)
    assert listed[0]["status"] == "killed"
    # The resumed model has no reply for the finished tasks: re-running one fails the run.
    match_script(script, [i for i in range(4) if (f"demo/t{i}", 0) not in done])
    result = exapt("run", "--resume", run_id, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["status"], summary["n_passed"], summary["n_tasks"]) == ("done", 4, 4)
    after = stored(home, run_id)
    assert len(after) == 4
    for key, trajectory in done.items():
        assert after[key].model_dump() == trajectory.model_dump()


def test_ctrl_c_interrupts_cleanly(
    exapt: Callable[..., Any], home: Path, tmp_path: Path, backend: str
) -> None:
    tasks = write_tasks(tmp_path / "tasks.jsonl", 4, test_prefix="sleep 1;")
    script = match_script(tmp_path / "s.json", [0, 1, 2, 3])
    proc = exapt_process(
        "run", "--suite", f"jsonl:{tasks}", "--model", f"scripted:{script}",
        "--sandbox", backend, "--workers", "1", "--no-memory", "--json", home=home,
    )  # fmt: skip
    wait_stored(home, 1, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    summary = json.loads(out)
    assert summary["status"] == "interrupted" and summary["n_attempted"] < 4
    assert summary["error"] is None and "interrupted" in summary["stop_detail"]
    assert f"--resume {summary['run_id']}" in err
    assert len(stored(home, summary["run_id"])) == summary["n_attempted"]


def test_second_ctrl_c_leaves_at_once(
    exapt: Callable[..., Any], home: Path, tmp_path: Path, backend: str
) -> None:
    tasks = write_tasks(tmp_path / "tasks.jsonl", 3, test_prefix="sleep 8;")
    script = match_script(tmp_path / "s.json", [0, 1, 2])
    proc = exapt_process(
        "run", "--suite", f"jsonl:{tasks}", "--model", f"scripted:{script}",
        "--sandbox", backend, "--workers", "1", "--no-memory", "--json", home=home,
    )  # fmt: skip
    wait_stored(home, 1, proc)  # the second attempt now sleeps 8 s in its scorer
    proc.send_signal(signal.SIGINT)
    time.sleep(1.5)
    proc.send_signal(signal.SIGINT)
    second = time.monotonic()
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - second < 5, "did not leave before the running attempt ended"
    assert proc.returncode == 130, err
    summary = json.loads(out)
    assert summary["status"] == "interrupted" and summary["n_attempted"] == 1
    assert len(stored(home, summary["run_id"])) == 1


def test_agent_spec_file_is_used_and_named_in_the_summary(
    cli: Callable[..., Any], home: Path, tmp_path: Path, backend: str
) -> None:
    import yaml

    from exapt.agents import load_spec

    spec = load_spec("tool_coder").model_copy(update={"name": "my_coder"})
    path = tmp_path / "my_coder.yaml"
    path.write_text(spec.to_yaml())
    tasks = write_tasks(tmp_path / "tasks.jsonl", 1)
    script = match_script(tmp_path / "s.json", [0])
    _, summary = run_json(
        cli, "--suite", f"jsonl:{tasks}", "--model", f"scripted:{script}",
        "--sandbox", backend, "--agent", str(path),
    )  # fmt: skip
    assert (summary["agent"], summary["variant_id"]) == ("my_coder", spec.variant_id())
    assert summary["n_passed"] == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "x", "graph": "nope"}))
    result = cli("run", "--suite", f"jsonl:{tasks}", "--agent", str(bad), "--no-memory")
    assert isinstance(result.exception, ConfigError) and "bad.yaml" in str(result.exception)


@pytest.mark.slow
def test_local_checkpoint_end_to_end(
    exapt: Callable[..., Any], home: Path, tmp_path: Path, backend: str
) -> None:
    """`local:PATH` through the real server, the completion agent, sandbox and scorer (a tiny
    random model: it fails, but every part runs and the attempt is stored)."""
    from exapt.agents import load_spec
    from exapt.agents.models.tiny import build_tiny_checkpoint

    checkpoint = build_tiny_checkpoint(tmp_path / "tiny")
    spec = load_spec("completion")
    options = {**spec.graph_options, "max_new_tokens": 8, "retries": 0}
    agent = tmp_path / "fast.yaml"
    agent.write_text(spec.model_copy(update={"graph_options": options}).to_yaml())
    result = exapt(
        "run", "--suite", "humaneval", "--limit", "1", "--model", f"local:{checkpoint}",
        "--agent", str(agent), "--sandbox", backend, "--no-memory", "--json", timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["status"], summary["n_attempted"]) == ("done", 1)
    assert summary["agent"] == "completion"
    assert summary["tokens_out"] > 0
    [attempt] = stored(home, summary["run_id"]).values()
    assert attempt.steps[0].kind == "model" and "prompt" in attempt.steps[0].input
